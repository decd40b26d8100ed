//! Two guest threads on independent files against one: the same threaded
//! guest (`wasm32-wasip1-threads`), timed inside the guest.
//!
//! ```sh
//! cargo bench --bench threads
//! ```
//!
//! Run without `--bench` (as `cargo test` does) it uses a tiny size and
//! only checks that everything still runs.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (ops, rounds) = if quick { (200, 1) } else { (200_000, 5) };
    let one = common::threaded_rate(1, ops, rounds);
    let two = common::threaded_rate(2, ops, rounds);
    println!(
        "{:<44} {:>14}",
        "workload (4 KiB pwrite+pread, own file)", "ops/s"
    );
    println!("{:<44} {:>14.0}", "1 thread", one);
    println!("{:<44} {:>14.0}", "2 threads", two);
    println!("{:<44} {:>14.2}x", "2 threads / 1 thread", two / one);
}
