//! The README's migration from `WasiCtxBuilder::preopened_dir`: run in a
//! directory holding `data/`.
//! `tests/readme.rs` runs it so, and checks the README shows it as it is.

use wasi_common::sync::WasiCtxBuilder;
use wasi_common_vfs::{HostDir, Vfs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before: `WasiCtxBuilder::new().preopened_dir(cap_std_dir, "/data")?`
    let vfs = Vfs::builder()
        .mount("/data", HostDir::open("data")?)
        .build()?;
    let ctx = WasiCtxBuilder::new().inherit_stdio().build();
    vfs.preopen(&ctx, "/data", "/data")?; // or a memory, overlay or tar mount
    Ok(())
}
