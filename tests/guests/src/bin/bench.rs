//! Benchmark workloads, timed inside the guest with its monotonic clock so
//! that module compilation is excluded. The preopened directory is fd 3.
//! Prints `name ops seconds` per workload.
//!
//! `threads T OPS`: T threads, each writing and reading back 4 KiB blocks
//! of its own file, OPS times.
//! `meta N`: create+write 100 B+close, stat, open+read+close, stat, unlink,
//! mkdir and rmdir at depth 16, mkdir, rmdir, rename (and at depth 16),
//! symlink, readlink, open+close of a directory, unlink, N times each.
//! `list N`: list a directory of N entries (made untimed first).
//! `data MIB N`: sequential write and read of MIB MiB in 64 KiB blocks, then
//! N random 4 KiB reads.

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

/// Times `op` on `0..n` and reports it as `name`.
fn timed(name: &str, n: u64, mut op: impl FnMut(u64)) {
    let start = now();
    for i in 0..n {
        op(i);
    }
    report(name, n, start);
}

/// Makes the empty files `{dir}/{prefix}{i}` for `i` in `0..n`, untimed.
fn files(dir: &str, prefix: &str, n: u64) {
    for i in 0..n {
        let path = format!("{dir}/{prefix}{i}");
        close(open(DIR, &path, OFLAGS_CREAT | OFLAGS_EXCL, RW, 0).unwrap());
    }
}

fn metadata(n: u64) {
    unsafe { path_create_directory(DIR, "m").unwrap() };
    let body = [b'x'; 100];
    timed("create", n, |i| {
        let fd = open(DIR, &format!("m/f{i}"), OFLAGS_CREAT | OFLAGS_EXCL, RW, 0).unwrap();
        assert_eq!(write(fd, &body), Ok(100));
        close(fd);
    });
    timed("stat", n, |i| {
        assert_eq!(stat(DIR, &format!("m/f{i}"), true).map(|s| s.size), Ok(100));
    });
    let mut deep = String::new();
    for level in 0..16 {
        if level > 0 {
            deep.push('/');
        }
        deep.push_str(&format!("d{level}"));
        unsafe { path_create_directory(DIR, &deep).unwrap() };
    }
    let deep_file = format!("{deep}/leaf");
    put(DIR, &deep_file, &body).unwrap();
    timed("open-read-depth16", n, |_| {
        let fd = open(DIR, &deep_file, 0, RIGHTS_FD_READ, 0).unwrap();
        assert_eq!(read(fd, 128).map(|d| d.len()), Ok(100));
        close(fd);
    });
    timed("stat-depth16", n, |_| {
        assert_eq!(stat(DIR, &deep_file, true).map(|s| s.size), Ok(100));
    });
    files(&deep, "g", n);
    timed("unlink-depth16", n, |i| unsafe {
        path_unlink_file(DIR, &format!("{deep}/g{i}")).unwrap()
    });
    timed("mkdir-depth16", n, |i| unsafe {
        path_create_directory(DIR, &format!("{deep}/h{i}")).unwrap()
    });
    timed("rmdir-depth16", n, |i| unsafe {
        path_remove_directory(DIR, &format!("{deep}/h{i}")).unwrap()
    });
    timed("mkdir", n, |i| unsafe {
        path_create_directory(DIR, &format!("m/h{i}")).unwrap()
    });
    timed("rmdir", n, |i| unsafe {
        path_remove_directory(DIR, &format!("m/h{i}")).unwrap()
    });
    files("m", "r", n);
    timed("rename", n, |i| unsafe {
        path_rename(DIR, &format!("m/r{i}"), DIR, &format!("m/s{i}")).unwrap()
    });
    files(&deep, "r", n);
    timed("rename-depth16", n, |i| unsafe {
        path_rename(DIR, &format!("{deep}/r{i}"), DIR, &format!("{deep}/s{i}")).unwrap()
    });
    timed("symlink", n, |i| unsafe {
        path_symlink("target", DIR, &format!("m/l{i}")).unwrap()
    });
    let mut buf = [0u8; 64];
    timed("readlink", n, |i| {
        let len = unsafe { path_readlink(DIR, &format!("m/l{i}"), buf.as_mut_ptr(), 64) };
        assert_eq!(len, Ok(6));
    });
    timed("opendir", n, |_| close(open_dir(DIR, "m").unwrap()));
    // `ln` and `touch`: a new name (for the files `rename` moved, so that
    // `unlink` still removes each file's only name), and both times set to
    // now through a path that follows a final symlink, as `utimensat` does
    // by default.
    let now = FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM_NOW;
    timed("link", n, |i| unsafe {
        path_link(DIR, 0, &format!("m/s{i}"), DIR, &format!("m/k{i}")).unwrap()
    });
    timed("touch", n, |i| unsafe {
        path_filestat_set_times(
            DIR,
            LOOKUPFLAGS_SYMLINK_FOLLOW,
            &format!("m/f{i}"),
            0,
            0,
            now,
        )
        .unwrap()
    });
    for i in 0..n {
        unsafe { path_symlink("target", DIR, &format!("{deep}/l{i}")).unwrap() };
    }
    timed("readlink-depth16", n, |i| {
        let len = unsafe { path_readlink(DIR, &format!("{deep}/l{i}"), buf.as_mut_ptr(), 64) };
        assert_eq!(len, Ok(6));
    });
    timed("opendir-depth16", n, |_| {
        close(open_dir(DIR, &deep).unwrap())
    });
    timed("link-depth16", n, |i| unsafe {
        path_link(DIR, 0, &deep_file, DIR, &format!("{deep}/k{i}")).unwrap()
    });
    timed("touch-depth16", n, |_| unsafe {
        path_filestat_set_times(DIR, LOOKUPFLAGS_SYMLINK_FOLLOW, &deep_file, 0, 0, now).unwrap()
    });
    timed("unlink", n, |i| unsafe {
        path_unlink_file(DIR, &format!("m/f{i}")).unwrap()
    });
}

fn listing(n: u64) {
    let dir = format!("l{n}");
    unsafe { path_create_directory(DIR, &dir).unwrap() };
    for i in 0..n {
        let fd = open(DIR, &format!("{dir}/entry-{i:07}"), OFLAGS_CREAT, RW, 0).unwrap();
        close(fd);
    }
    let fd = open_dir(DIR, &dir).unwrap();
    let start = now();
    let listed = readdir_from(fd, 0, 64 * 1024).unwrap().len() as u64;
    assert_eq!(listed, n + 2);
    report(&format!("list-{n}"), listed, start);
    close(fd);
}

fn data(mib: u64, random_reads: u64) {
    let block = vec![0xA5u8; 64 * 1024];
    let fd = open(DIR, "big", OFLAGS_CREAT | OFLAGS_TRUNC, RW, 0).unwrap();
    let blocks = mib * 16;
    let start = now();
    for _ in 0..blocks {
        assert_eq!(write(fd, &block), Ok(block.len()));
    }
    report("seq-write-bytes", blocks * block.len() as u64, start);
    unsafe { fd_seek(fd, 0, WHENCE_SET).unwrap() };
    let mut back = vec![0u8; 64 * 1024];
    let start = now();
    for _ in 0..blocks {
        let n = unsafe {
            fd_read(
                fd,
                &[Iovec {
                    buf: back.as_mut_ptr(),
                    buf_len: back.len(),
                }],
            )
            .unwrap()
        };
        assert_eq!(n, back.len());
    }
    report("seq-read-bytes", blocks * block.len() as u64, start);
    let mut small = [0u8; 4096];
    let pages = blocks * 16;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let start = now();
    for _ in 0..random_reads {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % pages) * 4096;
        let n = unsafe {
            fd_pread(
                fd,
                &[Iovec {
                    buf: small.as_mut_ptr(),
                    buf_len: 4096,
                }],
                at,
            )
            .unwrap()
        };
        assert_eq!(n, 4096);
    }
    report("random-read-4k", random_reads, start);
    close(fd);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.get(1).map(String::as_str) {
        Some("threads") => independent_files(num(2, 1) as usize, num(3, 10_000)),
        Some("meta") => metadata(num(2, 10_000)),
        Some("list") => listing(num(2, 5_000)),
        Some("data") => data(num(2, 256), num(3, 100_000)),
        other => panic!("unknown workload {other:?}"),
    }
}
