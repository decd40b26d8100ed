//! A hostile guest: tries to leave its directory, to break the tree and to
//! exhaust the host, and checks the exact errno of every attempt.
//!
//! fd 3 is the jail: a directory holding two symlinks the host planted,
//! `root -> /` and `abs -> /etc/passwd`; its parent holds a file the guest
//! must never reach. Arguments: `[threads N] [memory]`. With `threads N`,
//! N threads run every case at once, each on its own names; `memory` adds
//! filling the in-memory stores until ENOSPC (not for host directories).

use std::sync::{Arc, Barrier};
use vfs_test_guests::*;
use wasi::wasi_snapshot_preview1 as raw;
use wasi::*;

/// How often the guest tries to open a file before the limit must stop it.
const OPEN_ATTEMPTS: usize = 2_000_000;
/// Directories nested inside each other by the deep-path case.
const DEPTH: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = match args.iter().position(|a| a == "threads") {
        Some(i) => args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(4),
        None => 1,
    };
    let memory = args.iter().any(|a| a == "memory");
    let mut c = Checks::new();
    if threads == 1 {
        unsafe { cases(&mut c, "") };
        exhaust(&mut c, "", memory, None);
    } else {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut c = Checks::kept();
                    let s = format!(".{i}");
                    unsafe { cases(&mut c, &s) };
                    exhaust(&mut c, &s, memory, Some(&barrier));
                    c
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(kept) => c.merge(kept),
                Err(_) => c.that("thread finished", "panicked", false),
            }
        }
    }
    c.finish();
}

fn create(path: &str) -> Result<Fd, Errno> {
    open(DIR, path, OFLAGS_CREAT, RW, 0)
}

fn kind_of(path: &str) -> Result<&'static str, Errno> {
    stat(DIR, path, false).map(|s| kind(s.filetype))
}

/// Every attempt that needs no shared resource; names end in `s` so that
/// threads do not meet.
unsafe fn cases(c: &mut Checks, s: &str) {
    let f = format!("f{s}");
    let d = format!("d{s}");
    put(DIR, &f, b"data").unwrap();
    path_create_directory(DIR, &d).unwrap();
    path_create_directory(DIR, &format!("{d}/e")).unwrap();

    // `..` and absolute paths
    let up64 = format!("{}secret", "../".repeat(64));
    c.outcome("dot-dot chain", stat(DIR, &up64, true), Err(ERRNO_PERM));
    c.outcome(
        "dot-dot through a directory",
        stat(DIR, &format!("{d}/e/../../../secret"), true),
        Err(ERRNO_PERM),
    );
    c.outcome(
        "dot-dot create",
        create(&format!("../escaped{s}")),
        Err(ERRNO_PERM),
    );
    c.outcome("absolute", stat(DIR, "/secret", true), Err(ERRNO_PERM));
    c.outcome("absolute root", open_dir(DIR, "/"), Err(ERRNO_PERM));
    c.outcome(
        "absolute create",
        create(&format!("/escaped{s}")),
        Err(ERRNO_PERM),
    );

    // symlinks to `..` and to `/`
    let up = format!("up{s}");
    c.eq("symlink to ..", path_symlink("..", DIR, &up), Ok(()));
    c.outcome(
        "through a link to ..",
        get(DIR, &format!("{up}/secret")),
        Err(ERRNO_PERM),
    );
    c.outcome(
        "create through a link to ..",
        create(&format!("{up}/escaped{s}")),
        Err(ERRNO_PERM),
    );
    c.outcome("link to .. followed", stat(DIR, &up, true), Err(ERRNO_PERM));
    let chain = [
        (format!("c1{s}"), format!("c2{s}")),
        (format!("c2{s}"), format!("{d}/c3")),
        (format!("{d}/c3"), format!("../{up}")),
    ];
    for (link, target) in &chain {
        path_symlink(target, DIR, link).unwrap();
    }
    c.outcome(
        "symlink chain to ..",
        get(DIR, &format!("c1{s}/secret")),
        Err(ERRNO_PERM),
    );
    c.outcome(
        "planted link to / followed",
        stat(DIR, "root", true),
        Err(ERRNO_PERM),
    );
    c.eq(
        "planted link to / itself",
        kind_of("root"),
        Ok("SYMBOLIC_LINK"),
    );
    c.outcome(
        "through the link to /",
        get(DIR, "root/etc/passwd"),
        Err(ERRNO_PERM),
    );
    c.outcome(
        "create through the link to /",
        create(&format!("root/escaped{s}")),
        Err(ERRNO_PERM),
    );
    c.outcome("planted absolute link", get(DIR, "abs"), Err(ERRNO_PERM));
    let via = format!("via{s}");
    path_symlink("root", DIR, &via).unwrap();
    c.outcome(
        "symlink chain to /",
        get(DIR, &format!("{via}/etc/passwd")),
        Err(ERRNO_PERM),
    );
    c.eq(
        "absolute target refused",
        path_symlink("/", DIR, &format!("mine{s}")),
        Err(ERRNO_PERM),
    );

    // loops
    let (l1, l2) = (format!("l1{s}"), format!("l2{s}"));
    path_symlink(&l2, DIR, &l1).unwrap();
    path_symlink(&l1, DIR, &l2).unwrap();
    c.outcome("symlink loop stat", stat(DIR, &l1, true), Err(ERRNO_LOOP));
    c.outcome("symlink loop open", get(DIR, &l1), Err(ERRNO_LOOP));
    c.outcome("symlink loop create", create(&l1), Err(ERRNO_LOOP));
    let me = format!("self{s}");
    path_symlink(&format!("{me}/x"), DIR, &me).unwrap();
    c.outcome("self loop", stat(DIR, &me, true), Err(ERRNO_LOOP));
    // 40 links may be followed in one resolution, as on Linux.
    let chain_of = |n: usize, name: &str| {
        for i in 0..n {
            let target = if i + 1 == n {
                f.clone()
            } else {
                format!("{name}{}", i + 1)
            };
            path_symlink(&target, DIR, &format!("{name}{i}")).unwrap();
        }
        get(DIR, &format!("{name}0"))
    };
    c.eq(
        "chain of 40 links",
        chain_of(40, &format!("ok{s}.")),
        Ok(b"data".to_vec()),
    );
    c.outcome(
        "chain of 41 links",
        chain_of(41, &format!("long{s}.")),
        Err(ERRNO_LOOP),
    );

    // long paths and names
    let dots = vec!["."; 4096].join("/");
    c.outcome(
        "4096 components",
        stat(DIR, &dots, true),
        Err(ERRNO_NAMETOOLONG),
    );
    let many = vec!["a"; 4096].join("/");
    c.outcome(
        "4096 components create",
        create(&many),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "4096 components mkdir",
        path_create_directory(DIR, &many),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "4096 components rename",
        path_rename(DIR, &many, DIR, &format!("x{s}")),
        Err(ERRNO_NAMETOOLONG),
    );
    let within = format!("{}{f}", "./".repeat(2040));
    c.eq(
        "2041 components within PATH_MAX",
        stat(DIR, &within, true).map(|st| st.size),
        Ok(4),
    );
    c.eq(
        "deep directories",
        deep_path(&d).map(|p| p.len()),
        Ok(d.len() + 2 * DEPTH),
    );
    let mib = "a".repeat(1 << 20);
    c.outcome(
        "1 MiB path stat",
        stat(DIR, &mib, true),
        Err(ERRNO_NAMETOOLONG),
    );
    c.outcome("1 MiB path create", create(&mib), Err(ERRNO_NAMETOOLONG));
    c.eq(
        "1 MiB path mkdir",
        path_create_directory(DIR, &mib),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "1 MiB path unlink",
        path_unlink_file(DIR, &mib),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "1 MiB symlink target",
        path_symlink(&mib, DIR, &format!("big{s}")),
        Err(ERRNO_NAMETOOLONG),
    );
    c.outcome(
        "name of 256 bytes",
        create(&"n".repeat(256)),
        Err(ERRNO_NAMETOOLONG),
    );

    // bad names
    c.outcome(
        "NUL in a name",
        create(&format!("nul{s}\0x")),
        Err(ERRNO_INVAL),
    );
    let bad = [b'f', 0xff, 0xfe];
    let mut out = [0u8; 64];
    let code = raw::path_filestat_get(
        DIR as i32,
        0,
        bad.as_ptr() as i32,
        3,
        out.as_mut_ptr() as i32,
    );
    c.eq("invalid UTF-8", check_code(code), Err(ERRNO_ILSEQ));

    // the tree's shape
    c.eq(
        "rename into its own subtree",
        path_rename(DIR, &d, DIR, &format!("{d}/e/inside")),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "rename onto its own parent",
        path_rename(DIR, &format!("{d}/e"), DIR, &d),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq(
        "hard-link a directory",
        path_link(DIR, 0, &d, DIR, &format!("dlink{s}")),
        Err(ERRNO_PERM),
    );
    c.eq(
        "remove a full directory",
        path_remove_directory(DIR, &d),
        Err(ERRNO_NOTEMPTY),
    );

    // offsets and sizes past every limit
    let fd = open(DIR, &f, 0, RW, 0).unwrap();
    let byte = [Ciovec {
        buf: b"x".as_ptr(),
        buf_len: 1,
    }];
    c.outcome(
        "write at 2^63",
        fd_pwrite(fd, &byte, 1 << 63),
        Err(ERRNO_INVAL),
    );
    c.outcome(
        "write past the file size limit",
        fd_pwrite(fd, &byte, 1 << 40),
        Err(ERRNO_FBIG),
    );
    c.eq(
        "fd_allocate 2^62",
        fd_allocate(fd, 0, 1 << 62),
        Err(ERRNO_FBIG),
    );
    c.eq(
        "set size 2^62",
        fd_filestat_set_size(fd, 1 << 62),
        Err(ERRNO_FBIG),
    );
    c.eq("the file is unchanged", get(DIR, &f), Ok(b"data".to_vec()));
    close(fd);

    // tiny listing buffers
    let dir = open_dir(DIR, &d).unwrap();
    let mut buf = [0u8; 1];
    c.eq(
        "readdir 0-byte buffer",
        fd_readdir(dir, buf.as_mut_ptr(), 0, 0),
        Ok(0),
    );
    c.eq(
        "readdir 1-byte buffer",
        fd_readdir(dir, buf.as_mut_ptr(), 1, 0),
        Ok(1),
    );
    close(dir);

    // descriptors that are not there
    c.outcome("closed fd", fd_filestat_get(dir), Err(ERRNO_BADF));
    c.outcome("u32::MAX fd", fd_filestat_get(u32::MAX), Err(ERRNO_BADF));
    c.outcome("u32::MAX dir fd", stat(u32::MAX, &f, true), Err(ERRNO_BADF));
    c.eq("close u32::MAX", fd_close(u32::MAX), Err(ERRNO_BADF));
}

/// Nests [`DEPTH`] directories `x` in `d`, one `mkdir` relative to the one
/// before, then stats the whole path in one call; returns the path.
unsafe fn deep_path(d: &str) -> Result<String, Errno> {
    let mut fd = open_dir(DIR, d)?;
    for _ in 0..DEPTH {
        path_create_directory(fd, "x")?;
        let next = open_dir(fd, "x");
        close(fd);
        fd = next?;
    }
    close(fd);
    let path = format!("{d}{}", "/x".repeat(DEPTH));
    stat(DIR, &path, true)?;
    Ok(path)
}

/// Attempts on shared resources (descriptors, memory), in step with the
/// other threads so that no other case runs meanwhile.
fn exhaust(c: &mut Checks, s: &str, memory: bool, barrier: Option<&Barrier>) {
    let step = || {
        if let Some(b) = barrier {
            b.wait();
        }
    };
    let f = format!("f{s}");
    step();
    let mut fds = Vec::new();
    let mut refused = Ok(());
    for _ in 0..OPEN_ATTEMPTS {
        match open(DIR, &f, 0, RIGHTS_FD_READ, 0) {
            Ok(fd) => fds.push(fd),
            Err(e) => {
                refused = Err(e);
                break;
            }
        }
    }
    c.eq("open until refused", refused, Err(ERRNO_MFILE));
    step();
    for fd in fds {
        close(fd);
    }
    step();
    c.outcome("open after closing", get(DIR, &f), Ok(()));
    if !memory {
        return;
    }
    let big = format!("big{s}");
    let block = vec![7u8; 1 << 20];
    let fd = create(&big).unwrap();
    let mut full = Ok(());
    for _ in 0..1024 {
        if let Err(e) = write(fd, &block) {
            full = Err(e);
            break;
        }
    }
    close(fd);
    c.eq("fill memory", full, Err(ERRNO_NOSPC));
    step();
    unsafe { path_unlink_file(DIR, &big) }.unwrap();
    step();
    c.outcome("room after unlink", put(DIR, &big, &block), Ok(()));
    step();
    unsafe { path_unlink_file(DIR, &big) }.unwrap();
}
