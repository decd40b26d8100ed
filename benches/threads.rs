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

use wasi_common_vfs::Vfs;

/// Operations per second of the `threads` workload with `threads` threads,
/// best of `rounds` runs.
fn rate(threads: usize, ops: u64, rounds: usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let vfs = Vfs::new();
            let out = common::run_threaded(
                "bench",
                &["threads", &threads.to_string(), &ops.to_string()],
                &vfs,
            )
            .expect("the benchmark guest runs");
            let line = out.stdout.lines().next().expect("the guest reports");
            let fields: Vec<&str> = line.split(' ').collect();
            let (done, seconds): (f64, f64) =
                (fields[1].parse().unwrap(), fields[2].parse().unwrap());
            done / seconds
        })
        .fold(0.0, f64::max)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (ops, rounds) = if quick { (200, 1) } else { (200_000, 5) };
    let one = rate(1, ops, rounds);
    let two = rate(2, ops, rounds);
    println!(
        "{:<44} {:>14}",
        "workload (4 KiB pwrite+pread, own file)", "ops/s"
    );
    println!("{:<44} {:>14.0}", "1 thread", one);
    println!("{:<44} {:>14.0}", "2 threads", two);
    println!("{:<44} {:>14.2}x", "2 threads / 1 thread", two / one);
}
