//! The main job: run a preview-1 guest on the embedded in-memory default
//! and show what it did, from its side and from the host's.
//!
//! ```sh
//! cargo run --example demo
//! ```
//!
//! The guest (`examples/demo-guest`) is built for `wasm32-wasip1` first.

use std::path::PathBuf;
use std::process::Command;
use wasi_common::sync::WasiCtxBuilder;
use wasi_common_vfs::{Vfs, runtime};
use wasmtime::{Engine, Linker, Module, Store};

fn build_guest() -> wasmtime::Result<PathBuf> {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/demo-guest/Cargo.toml"
    );
    let target_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/demo-guest");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
            manifest,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()?;
    if !status.success() {
        wasmtime::bail!("building the demo guest failed (is the wasm32-wasip1 target installed?)");
    }
    Ok(target_dir.join("wasm32-wasip1/release/demo-guest.wasm"))
}

fn main() -> wasmtime::Result<()> {
    let guest = build_guest()?;

    // The embedded default: an in-memory `/` with an empty `/tmp`.
    let vfs = Vfs::new();
    vfs.create_dir("/tmp")?;
    let ctx = WasiCtxBuilder::new().inherit_stdio().build();
    vfs.preopen(&ctx, "/", "/")?;

    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    runtime::add_to_linker(&mut linker, |cx| cx)?;
    let module = Module::from_file(&engine, &guest)?;
    let mut store = Store::new(&engine, ctx);
    let code = runtime::run_command(&mut store, &linker, &module)?;

    println!("host: the guest exited with status {code}");
    for entry in vfs.read_dir("/tmp/demo/notes")? {
        let meta = vfs.metadata(&format!("/tmp/demo/notes/{}", entry.name))?;
        println!(
            "host: /tmp/demo/notes/{} ({:?}, {} bytes, inode {})",
            entry.name, entry.kind, meta.size, meta.ino
        );
    }
    let text = String::from_utf8_lossy(&vfs.read("/tmp/demo/latest")?).into_owned();
    let links = vfs.metadata("/tmp/demo/latest")?.nlink;
    println!("host: /tmp/demo/latest ({links} links) reads {text:?}");
    println!("host: nothing was written to the host disk");
    std::process::exit(code);
}
