//! The README's threaded guest. Run in a directory holding `threaded.wasm`
//! (the demo guest built for `wasm32-wasip1-threads`).
//! `tests/readme.rs` runs it so, and checks the README shows it as it is.

use wasi_common_vfs::{Vfs, runtime};
use wasmtime::{Engine, Linker, Module, Store};

fn main() -> wasmtime::Result<()> {
    let engine = Engine::new(&runtime::config())?; // threads, shared memory, epochs
    let module = Module::from_file(&engine, "threaded.wasm")?;
    let vfs = Vfs::new();
    let ctx = runtime::context(&["threaded.wasm"])?; // VfsSched as its scheduler
    ctx.set_stdout(Box::new(wasi_common::sync::stdio::stdout())); // stdio starts empty:
    ctx.set_stderr(Box::new(wasi_common::sync::stdio::stderr())); // show the guest's output
    vfs.preopen(&ctx, "/", "/")?;
    let mut store = Store::new(&engine, ctx);
    let mut linker = Linker::new(&engine);
    let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx)?;
    match guest.run(store, &linker) {
        Ok(status) => println!("exited with {status}"),
        Err(trap) => println!("trapped: {trap}"),
    }
    Ok(()) // the process carries on, whatever the guest did
}
