//! The differential guest suite: every preview-1 filesystem function, run
//! by real `wasm32-wasip1` guests on a `Vfs` and on wasi-common's own host
//! directory, with identical transcripts required.

mod common;
use common::differential;

#[test]
fn files() {
    let out = differential(
        "files",
        &[],
        &[("fd_allocate", "wasi-common's host files answer fd_allocate with ENOTSUP; the Vfs grows the file")],
    );
    assert!(out.contains("fd_allocate size: Ok(102)"));
}
