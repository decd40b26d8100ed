//! Benchmark workloads, timed inside the guest with its monotonic clock so
//! that module compilation is excluded. The preopened directory is fd 3.
//! Prints `name ops seconds` per workload.
//!
//! `threads T OPS`: T threads, each writing and reading back 4 KiB blocks
//! of its own file, OPS times.

use std::thread;
use vfs_test_guests::*;
use wasi::*;

fn now() -> u64 {
    unsafe { clock_time_get(CLOCKID_MONOTONIC, 1).unwrap() }
}

fn report(name: &str, ops: u64, start: u64) {
    let seconds = (now() - start) as f64 / 1e9;
    println!("{name} {ops} {seconds:.6}");
}

fn independent_files(threads: usize, ops: u64) {
    let fds: Vec<Fd> = (0..threads)
        .map(|t| {
            open(
                DIR,
                &format!("bench-{t}"),
                OFLAGS_CREAT | OFLAGS_TRUNC,
                RW,
                0,
            )
            .unwrap()
        })
        .collect();
    let start = now();
    let workers: Vec<_> = fds
        .into_iter()
        .map(|fd| {
            thread::spawn(move || {
                let block = [7u8; 4096];
                let mut back = [0u8; 4096];
                for i in 0..ops {
                    let at = (i % 256) * 4096;
                    let w = unsafe {
                        fd_pwrite(
                            fd,
                            &[Ciovec {
                                buf: block.as_ptr(),
                                buf_len: 4096,
                            }],
                            at,
                        )
                    };
                    let r = unsafe {
                        fd_pread(
                            fd,
                            &[Iovec {
                                buf: back.as_mut_ptr(),
                                buf_len: 4096,
                            }],
                            at,
                        )
                    };
                    assert_eq!((w, r), (Ok(4096), Ok(4096)));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    report(
        &format!("threads-{threads}"),
        2 * ops * threads as u64,
        start,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.get(1).map(String::as_str) {
        Some("threads") => independent_files(num(2, 1) as usize, num(3, 10_000)),
        other => panic!("unknown workload {other:?}"),
    }
}
