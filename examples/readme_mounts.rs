//! The README's mount table. Run in a directory holding `guest.wasm` (the
//! demo guest) and the host directories `image/`, `session/` and `data/`.
//! `tests/readme.rs` runs it so, and checks the README shows it as it is.

use wasi_common::sync::WasiCtxBuilder;
use wasi_common_vfs::{HostDir, MemFs, Overlay, Vfs, runtime};
use wasmtime::{Engine, Linker, Module, Store};

fn main() -> wasmtime::Result<()> {
    let image = Overlay::new(HostDir::open("image")?); // writes stay in memory
    let vfs = Vfs::builder()
        .mount("/", MemFs::new()) // the embedded default
        .mount("/mnt/session", HostDir::open("session")?) // read-write host dir
        .mount("/mnt/data", HostDir::open("data")?.read_only()) // EROFS on any change
        .mount("/app", image.clone())
        .build()?;
    vfs.write("/mnt/session/hello.txt", b"hi")?; // lands on the host disk
    let args = ["guest.wasm".to_owned(), "/app".to_owned()];
    let ctx = WasiCtxBuilder::new().inherit_stdio().args(&args)?.build();
    vfs.preopen_mounts(&ctx)?; // `/`, `/mnt/session`, `/mnt/data`, `/app`
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    runtime::add_to_linker(&mut linker, |cx| cx)?;
    let module = Module::from_file(&engine, "guest.wasm")?;
    runtime::run_command(&mut Store::new(&engine, ctx), &linker, &module)?;
    println!("{:?}", image.changes()?); // what the guest added, modified, deleted
    image.export_changes(std::fs::File::create_new("layer.tar")?)?; // keep it as an OCI layer
    image.reset()?; // or discard it: the next guest starts from the image again
    Ok(())
}
