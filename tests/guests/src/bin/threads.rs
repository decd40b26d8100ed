//! Guests built for `wasm32-wasip1-threads`: several threads on one tree.
//! The first argument names the scenario; the preopened directory is fd 3.
//! Each scenario checks what it can and prints `ok` or a failure.

use std::sync::{Arc, Barrier};
use std::thread;
use vfs_test_guests::*;
use wasi::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    match args.get(1).map(String::as_str) {
        Some("own-files") => own_files(n),
        Some("shared-fd") => shared_fd(n),
        Some("churn") => churn(n),
        Some("set-append") => set_append(),
        Some("exit-in-thread") => exit_in_thread(),
        Some("trap-in-thread") => trap_in_thread(),
        Some("wait-forever") => wait_forever(),
        Some("spin-forever") => spin_forever(),
        Some("exit-while-main-sleeps") => exit_while_main_sleeps(),
        Some("exit-while-main-reads") => exit_while_main_reads(),
        Some("sleepers") => sleepers(n),
        Some("late-worker") => late_worker(),
        Some("race-create") => race_create(n),
        Some("race-open") => race_open(n),
        Some("iovec-gaps") => iovec_gaps(),
        Some("stdio-fgetc") => stdio_fgetc(),
        Some("large-io") => large_io(),
        Some("many-iovecs") => many_iovecs(),
        other => panic!("unknown scenario {other:?}"),
    }
}

fn check(ok: bool, what: &str) {
    if !ok {
        println!("FAILED: {what}");
        std::process::exit(1);
    }
}

/// Each thread writes its own file, then reads back everyone's.
fn own_files(n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let body = format!("thread {i} ").repeat(1000);
                put(DIR, &format!("own{i}"), body.as_bytes()).unwrap();
                barrier.wait();
                for j in 0..n {
                    let want = format!("thread {j} ").repeat(1000);
                    assert_eq!(get(DIR, &format!("own{j}")).unwrap(), want.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        check(h.join().is_ok(), "a thread failed");
    }
    println!("ok");
}

const RECORDS: usize = 200;
const RECORD_LEN: usize = 32;

fn record(thread: usize, i: usize) -> Vec<u8> {
    let mut r = format!("<t{thread:03} r{i:05}").into_bytes();
    r.resize(RECORD_LEN - 1, b'.');
    r.push(b'>');
    r
}

/// Threads share two descriptors: one with O_APPEND, one with a plain
/// position. Every record lands whole, none is lost or overwritten.
fn shared_fd(n: usize) {
    let append = open(
        DIR,
        "appended",
        OFLAGS_CREAT | OFLAGS_TRUNC,
        RW,
        FDFLAGS_APPEND,
    )
    .unwrap();
    let positioned = open(DIR, "positioned", OFLAGS_CREAT | OFLAGS_TRUNC, RW, 0).unwrap();
    let handles: Vec<_> = (0..n)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..RECORDS {
                    let r = record(t, i);
                    assert_eq!(write(append, &r).unwrap(), RECORD_LEN);
                    assert_eq!(write(positioned, &r).unwrap(), RECORD_LEN);
                }
            })
        })
        .collect();
    for h in handles {
        check(h.join().is_ok(), "a writer failed");
    }
    let total = (n * RECORDS * RECORD_LEN) as u64;
    check(
        unsafe { fd_tell(positioned) } == Ok(total),
        "the shared position moved by every write",
    );
    for name in ["appended", "positioned"] {
        let data = get(DIR, name).unwrap();
        check(data.len() as u64 == total, "no write lost");
        let mut seen = std::collections::HashSet::new();
        for chunk in data.chunks(RECORD_LEN) {
            check(
                chunk[0] == b'<' && chunk[RECORD_LEN - 1] == b'>',
                "records never interleave",
            );
            check(seen.insert(chunk.to_vec()), "no record written twice");
        }
        check(seen.len() == n * RECORDS, "every record present");
    }
    println!("ok");
}

/// Threads create, rename and unlink in one directory while another lists
/// it; the listing never shows a name twice, and the end state is exact.
fn churn(n: usize) {
    unsafe { path_create_directory(DIR, "churn").unwrap() };
    let dir = open_dir(DIR, "churn").unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lister = {
        let done = done.clone();
        thread::spawn(move || {
            let mut passes = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) || passes == 0 {
                let names = readdir_from(dir, 0, 512).unwrap();
                let mut unique: Vec<_> = names.iter().map(|e| e.0.clone()).collect();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), names.len(), "a name listed twice");
                passes += 1;
            }
            passes
        })
    };
    let workers: Vec<_> = (0..n)
        .map(|t| {
            thread::spawn(move || unsafe {
                for i in 0..100 {
                    put(DIR, &format!("churn/new-{t}-{i}"), b"x").unwrap();
                    path_rename(
                        DIR,
                        &format!("churn/new-{t}-{i}"),
                        DIR,
                        &format!("churn/kept-{t}-{i}"),
                    )
                    .unwrap();
                    if i % 2 == 1 {
                        path_unlink_file(DIR, &format!("churn/kept-{t}-{i}")).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        check(w.join().is_ok(), "a worker failed");
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let passes = lister.join();
    check(passes.is_ok(), "the lister failed");
    let mut names: Vec<String> = readdir_from(dir, 0, 4096)
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    names.retain(|n| n != "." && n != "..");
    names.sort();
    let mut want: Vec<String> = (0..n)
        .flat_map(|t| {
            (0..100)
                .filter(|i| i % 2 == 0)
                .map(move |i| format!("kept-{t}-{i}"))
        })
        .collect();
    want.sort();
    check(names == want, "the directory holds exactly the kept files");
    println!("ok");
}

/// fcntl(F_SETFL, O_APPEND) while the context is shared between threads.
fn set_append() {
    let fd = open(DIR, "flagged", OFLAGS_CREAT | OFLAGS_TRUNC, RW, 0).unwrap();
    write(fd, b"0123456789").unwrap();
    let helper = thread::spawn(move || {
        // Runs while the main thread changes the flags.
        std::thread::sleep(std::time::Duration::from_millis(50));
    });
    unsafe { fd_seek(fd, 0, WHENCE_SET).unwrap() };
    let set = unsafe { fd_fdstat_set_flags(fd, FDFLAGS_APPEND) };
    check(
        set.is_ok(),
        &format!("fd_fdstat_set_flags under threads: {}", show(&set)),
    );
    check(
        unsafe { fd_fdstat_get(fd) }.map(|s| s.fs_flags) == Ok(FDFLAGS_APPEND),
        "flag reported",
    );
    write(fd, b"END").unwrap();
    check(
        get(DIR, "flagged").unwrap() == b"0123456789END",
        "the write appended",
    );
    let bad = unsafe { fd_fdstat_set_flags(fd, FDFLAGS_SYNC) };
    check(bad == Err(ERRNO_INVAL), "sync flags refused");
    helper.join().unwrap();
    println!("ok");
}

fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// A non-main thread calls proc_exit(7) while the main thread waits.
fn exit_in_thread() {
    thread::spawn(|| {
        put(DIR, "before-exit", b"written").unwrap();
        std::process::exit(7);
    });
    park_forever();
}

/// A non-main thread traps while the main thread waits.
fn trap_in_thread() {
    thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        core::arch::wasm32::unreachable();
    });
    park_forever();
}

/// A thread blocked for good in memory.atomic.wait (std's condition
/// variable waits with it on this target); the main thread exits.
fn wait_forever() {
    thread::spawn(|| {
        let lock = std::sync::Mutex::new(());
        let never = std::sync::Condvar::new();
        let mut guard = lock.lock().unwrap();
        loop {
            guard = never.wait(guard).unwrap();
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::process::exit(3);
}

/// A thread spinning forever; the main thread returns.
fn spin_forever() {
    thread::spawn(|| {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    println!("ok");
}

const AN_HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// The main thread sleeps in `poll_oneoff` for an hour; a worker calls
/// proc_exit(3).
fn exit_while_main_sleeps() {
    thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::process::exit(3);
    });
    std::thread::sleep(AN_HOUR);
    println!("FAILED: the sleep ran to its end");
}

/// The main thread reads stdin, which never delivers; a worker calls
/// proc_exit(99).
fn exit_while_main_reads() {
    thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::process::exit(99);
    });
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut std::io::stdin(), &mut buf);
    println!("FAILED: the read returned {n:?}");
}

/// `n` threads sleep for an hour in `poll_oneoff`; the main thread returns
/// once they are asleep.
fn sleepers(n: usize) {
    let started = Arc::new(Barrier::new(n + 1));
    for _ in 0..n {
        let started = started.clone();
        thread::spawn(move || {
            started.wait();
            std::thread::sleep(AN_HOUR);
        });
    }
    started.wait();
    std::thread::sleep(std::time::Duration::from_millis(5));
}

/// A worker sleeps past the runner's stop timeout, then creates
/// `zombie.txt` and deletes `precious.txt`; the main thread returns.
fn late_worker() {
    thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(8));
        put(DIR, "zombie.txt", b"late").unwrap();
        unsafe { path_unlink_file(DIR, "precious.txt") }.unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
}

/// Creates (exclusively) and removes `f` `n` times through one descriptor
/// of directory `a`, which the host keeps swapping with `b`; every create
/// must succeed, in the directory the descriptor holds.
fn race_create(n: usize) {
    let rights =
        RIGHTS_PATH_OPEN | RIGHTS_PATH_CREATE_FILE | RIGHTS_PATH_UNLINK_FILE | RIGHTS_FD_READDIR;
    // Between two of the host's renames there is no `a` for a moment.
    let a = loop {
        if let Ok(fd) = open(DIR, "a", OFLAGS_DIRECTORY, rights, 0) {
            break fd;
        }
    };
    let mut failures = 0;
    for _ in 0..n {
        let made = open(a, "f", OFLAGS_CREAT | OFLAGS_EXCL, RIGHTS_FD_WRITE, 0);
        match made {
            Ok(fd) => {
                close(fd);
                if unsafe { path_unlink_file(a, "f") }.is_err() {
                    failures += 1;
                }
            }
            Err(_) => failures += 1,
        }
    }
    println!("create failures: {failures}");
}

/// One thread keeps stat-ing `x1` (which the host keeps pointing at the
/// file `x2` names, then at another one); the other opens `x2`, which is
/// never renamed, `n` times and reads it: always `ONE`.
fn race_open(n: usize) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = stat(DIR, "x1", false);
            }
        })
    };
    let (mut wrong, mut errors) = (0, 0);
    for _ in 0..n {
        match get(DIR, "x2") {
            Ok(data) if data == b"ONE" => {}
            Ok(_) => wrong += 1,
            Err(_) => errors += 1,
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    prober.join().unwrap();
    println!("wrong: {wrong}, errors: {errors}");
}

/// Reads and writes through iovec lists with empty iovecs among them (as
/// wasi-libc's buffered `getc` passes), one of them past 64 KiB: on this
/// shared memory every iovec is filled or drained, in order.
fn iovec_gaps() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 + 1).collect();
    put(DIR, "gaps", &body).unwrap();
    let fd = open(DIR, "gaps", 0, RW, 0).unwrap();
    let mut empty = [0u8; 0];
    let empty_at = empty.as_mut_ptr();
    let mut a = [0u8; 3];
    let mut b = vec![0u8; body.len() - 3];
    let gap = || Iovec {
        buf: empty_at,
        buf_len: 0,
    };
    let iovs = [
        gap(),
        Iovec {
            buf: a.as_mut_ptr(),
            buf_len: a.len(),
        },
        gap(),
        Iovec {
            buf: b.as_mut_ptr(),
            buf_len: b.len(),
        },
    ];
    let n = unsafe { fd_read(fd, &iovs) }.unwrap();
    check(
        n == body.len(),
        &format!("readv read {n} of {}", body.len()),
    );
    check(
        a[..] == body[..3] && b[..] == body[3..],
        "readv filled the iovecs in order",
    );

    let mut c = [0u8; 4];
    let iovs = [
        gap(),
        Iovec {
            buf: c.as_mut_ptr(),
            buf_len: c.len(),
        },
    ];
    let n = unsafe { fd_pread(fd, &iovs, 10) }.unwrap();
    check(
        n == 4 && c[..] == body[10..14],
        "preadv skipped the empty iovec",
    );

    let none = Ciovec {
        buf: b"".as_ptr(),
        buf_len: 0,
    };
    let piece = |s: &'static [u8]| Ciovec {
        buf: s.as_ptr(),
        buf_len: s.len(),
    };
    unsafe { fd_seek(fd, 0, WHENCE_SET) }.unwrap();
    let n = unsafe { fd_write(fd, &[none, piece(b"ab"), none, piece(b"cd")]) }.unwrap();
    check(n == 4, "writev wrote every iovec");
    let n = unsafe { fd_pwrite(fd, &[none, piece(b"XY")], 100) }.unwrap();
    check(n == 2, "pwritev wrote past the empty iovec");
    let now = get(DIR, "gaps").unwrap();
    check(
        &now[..4] == b"abcd" && now[4..100] == body[4..100],
        "writev in order",
    );
    check(
        &now[100..102] == b"XY" && now[102..] == body[102..],
        "pwritev in place",
    );
    println!("ok");
}

/// A read, a write and their positioned forms of 20 MiB each, in one call
/// apiece: more than the host's scratch for one call holds, and each must
/// move every byte, as on a plain memory.
fn large_io() {
    const LEN: usize = 20 << 20;
    let body: Vec<u8> = (0..LEN as u32).map(|i| (i % 251) as u8).collect();
    let fd = open(DIR, "large", OFLAGS_CREAT | OFLAGS_TRUNC, RW, 0).unwrap();
    let pieces = [
        Ciovec {
            buf: body.as_ptr(),
            buf_len: 1,
        },
        Ciovec {
            buf: body[1..].as_ptr(),
            buf_len: LEN - 1,
        },
    ];
    let n = unsafe { fd_write(fd, &pieces) }.unwrap();
    check(n == LEN, &format!("writev wrote {n} of {LEN}"));

    unsafe { fd_seek(fd, 0, WHENCE_SET) }.unwrap();
    let mut a = [0u8; 1];
    // Room for more than the file holds: the read stops at its end.
    let mut b = vec![0u8; LEN + 4];
    let iovs = [
        Iovec {
            buf: a.as_mut_ptr(),
            buf_len: a.len(),
        },
        Iovec {
            buf: b.as_mut_ptr(),
            buf_len: b.len(),
        },
    ];
    let n = unsafe { fd_read(fd, &iovs) }.unwrap();
    check(n == LEN, &format!("readv read {n} of {LEN}"));
    check(
        a[0] == body[0] && b[..LEN - 1] == body[1..],
        "readv read the file in order",
    );

    let mut c = vec![0u8; LEN];
    let iovs = [Iovec {
        buf: c.as_mut_ptr(),
        buf_len: c.len(),
    }];
    let n = unsafe { fd_pread(fd, &iovs, 7) }.unwrap();
    check(n == LEN - 7, &format!("pread read {n} of {}", LEN - 7));
    check(c[..LEN - 7] == body[7..], "pread read from its offset");

    let n = unsafe { fd_pwrite(fd, &[pieces[1]], LEN as u64) }.unwrap();
    check(n == LEN - 1, &format!("pwrite wrote {n} of {}", LEN - 1));
    close(fd);
    let now = get(DIR, "large").unwrap();
    check(
        now.len() == 2 * LEN - 1 && now[..LEN] == body[..] && now[LEN..] == body[1..],
        "pwrite wrote at its offset",
    );
    println!("ok");
}

/// A `readv` and a `writev` of 200,000 one-byte iovecs: each is served up
/// to the 1,024th (Linux's `IOV_MAX`), a short read or write, in order.
fn many_iovecs() {
    const COUNT: usize = 200_000;
    let body: Vec<u8> = (0..COUNT as u32).map(|i| (i % 251) as u8).collect();
    put(DIR, "many", &body).unwrap();
    let fd = open(DIR, "many", 0, RW, 0).unwrap();
    let mut buf = vec![0u8; COUNT];
    let iovs: Vec<Iovec> = buf
        .iter_mut()
        .map(|b| Iovec {
            buf: b as *mut u8,
            buf_len: 1,
        })
        .collect();
    let n = unsafe { fd_read(fd, &iovs) }.unwrap();
    check(n == 1024, &format!("readv read {n} bytes, not 1024"));
    check(buf[..n] == body[..n], "readv filled the iovecs in order");
    check(
        buf[n..].iter().all(|&b| b == 0),
        "readv stopped at its 1024th iovec",
    );

    let ciovs: Vec<Ciovec> = body
        .iter()
        .map(|b| Ciovec {
            buf: b as *const u8,
            buf_len: 1,
        })
        .collect();
    let n = unsafe { fd_pwrite(fd, &ciovs[..1], 0) }.unwrap();
    check(n == 1, "pwrite of one iovec");
    unsafe { fd_seek(fd, 0, WHENCE_END) }.unwrap();
    let n = unsafe { fd_write(fd, &ciovs) }.unwrap();
    check(n == 1024, &format!("writev wrote {n} bytes, not 1024"));
    close(fd);
    let now = get(DIR, "many").unwrap();
    check(
        now.len() == COUNT + 1024 && now[COUNT..] == body[..1024],
        "writev appended its first 1024 iovecs",
    );
    println!("ok");
}

extern "C" {
    fn fopen(path: *const std::ffi::c_char, mode: *const std::ffi::c_char)
        -> *mut std::ffi::c_void;
    fn fgetc(file: *mut std::ffi::c_void) -> i32;
    fn fclose(file: *mut std::ffi::c_void) -> i32;
}

/// Reads a file byte by byte with wasi-libc's buffered `fgetc`, through
/// its `FILE` buffer, on a shared memory.
fn stdio_fgetc() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 + 1).collect();
    put(DIR, "stdio", &body).unwrap();
    let file = unsafe { fopen(c"/sandbox/stdio".as_ptr(), c"r".as_ptr()) };
    check(!file.is_null(), "fopen");
    let mut read = Vec::new();
    loop {
        let c = unsafe { fgetc(file) };
        if c < 0 {
            break;
        }
        read.push(c as u8);
    }
    unsafe { fclose(file) };
    check(
        read.len() == body.len(),
        &format!("fgetc read {} of {} bytes", read.len(), body.len()),
    );
    check(read == body, "fgetc read the file's bytes");
    println!("ok");
}
