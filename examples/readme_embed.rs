//! The README's first embedding: a guest on an in-memory tree. Run in a
//! directory holding `guest.wasm` (the demo guest answers `/input.txt`).
//! `tests/readme.rs` runs it so, and checks the README shows it as it is.

use wasi_common::sync::WasiCtxBuilder;
use wasi_common_vfs::{Vfs, runtime};
use wasmtime::{Engine, Linker, Module, Store};

fn main() -> wasmtime::Result<()> {
    let vfs = Vfs::new(); // an in-memory tree
    vfs.write("/input.txt", b"hello")?; // host-side API
    let ctx = WasiCtxBuilder::new().inherit_stdio().build();
    vfs.preopen(&ctx, "/", "/")?; // drop-in: any WasiCtx
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    runtime::add_to_linker(&mut linker, |cx| cx)?; // preview 1 and 0
    let module = Module::from_file(&engine, "guest.wasm")?;
    let mut store = Store::new(&engine, ctx);
    let status = runtime::run_command(&mut store, &linker, &module)?;
    let output = vfs.read("/output.txt")?; // what the guest wrote
    println!("exit {status}: {}", String::from_utf8_lossy(&output));
    Ok(())
}
