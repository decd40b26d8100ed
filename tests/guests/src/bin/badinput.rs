//! Bad input from a guest: pointers outside memory, huge lengths, invalid
//! UTF-8, NUL bytes in names, closed and wrong-kind descriptors, extreme
//! offsets. Every call must get an errno; the host must not fail.

use vfs_test_guests::*;
use wasi::wasi_snapshot_preview1 as raw;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

/// The first byte past linear memory, and an address far beyond it.
fn out_of_bounds() -> (i32, i32) {
    let end = core::arch::wasm32::memory_size(0) * 65536;
    (end as i32, -16)
}

/// Calls that pass memory the guest does not have. The witx spec says the
/// call shall trap, and wasi-common does: each case runs on its own and is
/// expected never to return.
unsafe fn trap_case(case: &str) -> i32 {
    let mut out = [0u8; 64];
    let out_ptr = out.as_mut_ptr() as i32;
    let (end, far) = out_of_bounds();
    let path = b"f";
    let fd = open(DIR, "f", 0, RW, 0).unwrap() as i32;
    let iov = [end, 16];
    match case {
        "path-pointer" => raw::path_filestat_get(DIR as i32, 0, end, 1, out_ptr),
        "path-pointer-far" => raw::path_filestat_get(DIR as i32, 0, far, 1, out_ptr),
        "path-length" => {
            raw::path_filestat_get(DIR as i32, 0, path.as_ptr() as i32, i32::MAX, out_ptr)
        }
        "result-pointer" => raw::path_filestat_get(DIR as i32, 0, path.as_ptr() as i32, 1, end),
        "open-path" => raw::path_open(DIR as i32, 0, far, 8, 0, 0, 0, 0, out_ptr),
        "read-buffer" => raw::fd_read(fd, iov.as_ptr() as i32, 1, out_ptr),
        "write-buffer" => raw::fd_write(fd, iov.as_ptr() as i32, 1, out_ptr),
        "iovec-array" => raw::fd_write(fd, far, 4, out_ptr),
        "iovec-count" => raw::fd_write(fd, iov.as_ptr() as i32, i32::MAX, out_ptr),
        "readdir-buffer" => raw::fd_readdir(DIR as i32, end, 4096, 0, out_ptr),
        "readlink-buffer" => {
            raw::path_readlink(DIR as i32, b"l".as_ptr() as i32, 1, far, 64, out_ptr)
        }
        other => panic!("unknown case {other}"),
    }
}

/// The cases of [`trap_case`], for the harness.
pub const TRAP_CASES: &[&str] = &[
    "path-pointer",
    "path-pointer-far",
    "path-length",
    "result-pointer",
    "open-path",
    "read-buffer",
    "write-buffer",
    "iovec-array",
    "iovec-count",
    "readdir-buffer",
    "readlink-buffer",
];

unsafe fn run(c: &mut Checks) {
    if std::env::args().nth(1).as_deref() == Some("cases") {
        // The harness runs each case from this list.
        println!("{}", TRAP_CASES.join("\n"));
        return;
    }
    if let Some(case) = std::env::args().nth(1) {
        put(DIR, "f", b"data").unwrap();
        path_symlink("f", DIR, "l").unwrap();
        let code = trap_case(&case);
        println!("{case} returned {code} instead of trapping");
        std::process::exit(100);
    }
    put(DIR, "f", b"data").unwrap();
    path_symlink("f", DIR, "l").unwrap();
    let mut out = [0u8; 64];
    let out_ptr = out.as_mut_ptr() as i32;
    let fd = open(DIR, "f", 0, RW, 0).unwrap();
    c.that("trap cases", TRAP_CASES.len(), true);

    // invalid UTF-8 and NUL bytes
    let bad = [b'f', 0xff, 0xfe];
    c.eq(
        "invalid utf-8 path",
        check_code(raw::path_filestat_get(
            DIR as i32,
            0,
            bad.as_ptr() as i32,
            3,
            out_ptr,
        )),
        Err(ERRNO_ILSEQ),
    );
    c.eq(
        "invalid utf-8 mkdir",
        check_code(raw::path_create_directory(
            DIR as i32,
            bad.as_ptr() as i32,
            3,
        )),
        Err(ERRNO_ILSEQ),
    );
    c.eq("NUL in name", put(DIR, "a\0b", b"x"), Err(ERRNO_INVAL));
    c.eq(
        "NUL in mkdir",
        path_create_directory(DIR, "d\0"),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "NUL in symlink target",
        path_symlink("f\0g", DIR, "nul"),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "NUL in rename",
        path_rename(DIR, "f", DIR, "g\0"),
        Err(ERRNO_INVAL),
    );

    // closed, invalid and wrong-kind descriptors
    c.eq(
        "closed fd read",
        read(fd + 100, 4).map(|_| ()),
        Err(ERRNO_BADF),
    );
    c.eq(
        "u32::MAX fd",
        fd_filestat_get(u32::MAX).map(|_| ()),
        Err(ERRNO_BADF),
    );
    c.eq(
        "u32::MAX dir fd",
        stat(u32::MAX, "f", true).map(|_| ()),
        Err(ERRNO_BADF),
    );
    c.eq(
        "dir fd to fd_read",
        read(DIR, 4).map(|_| ()),
        Err(ERRNO_BADF),
    );
    c.eq(
        "dir fd to fd_write",
        write(DIR, b"x").map(|_| ()),
        Err(ERRNO_BADF),
    );
    c.eq(
        "dir fd to fd_seek",
        fd_seek(DIR, 0, WHENCE_SET),
        Err(ERRNO_BADF),
    );
    c.eq(
        "file fd to path_open",
        open(fd, "x", 0, RIGHTS_FD_READ, 0).map(|_| ()),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "file fd to mkdir",
        path_create_directory(fd, "x"),
        Err(ERRNO_BADF),
    );
    c.eq(
        "file fd to rename",
        path_rename(fd, "x", DIR, "y"),
        Err(ERRNO_BADF),
    );
    c.eq(
        "close then use",
        {
            let t = open(DIR, "f", 0, RIGHTS_FD_READ, 0).unwrap();
            close(t);
            read(t, 1).map(|_| ())
        },
        Err(ERRNO_BADF),
    );

    // extreme values
    // The largest file size is the filesystem's: i64::MAX here as on tmpfs,
    // 16 TiB on an ext4 host directory.
    if !on_reference() {
        c.eq(
            "max size: seek to i64::MAX",
            fd_seek(fd, i64::MAX, WHENCE_SET),
            Ok(i64::MAX as u64),
        );
        c.eq(
            "max size: write at i64::MAX",
            write(fd, b"x"),
            Err(ERRNO_INVAL),
        );
        c.eq(
            "max size: seek overflow",
            fd_seek(fd, 1, WHENCE_CUR),
            Err(ERRNO_INVAL),
        );
        c.eq(
            "max size: pwrite ending past i64::MAX",
            fd_pwrite(
                fd,
                &[Ciovec {
                    buf: b"xy".as_ptr(),
                    buf_len: 2,
                }],
                i64::MAX as u64 - 1,
            )
            .map(|_| ()),
            Err(ERRNO_INVAL),
        );
    }
    c.eq(
        "seek negative",
        fd_seek(fd, i64::MIN, WHENCE_SET),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "seek end overflow",
        fd_seek(fd, i64::MAX, WHENCE_END),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "pwrite at u64::MAX",
        fd_pwrite(
            fd,
            &[Ciovec {
                buf: b"x".as_ptr(),
                buf_len: 1,
            }],
            u64::MAX,
        )
        .map(|_| ()),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "pread at u64::MAX",
        fd_pread(
            fd,
            &[Iovec {
                buf: out.as_mut_ptr(),
                buf_len: 1,
            }],
            u64::MAX,
        )
        .map(|_| ()),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "truncate to u64::MAX",
        fd_filestat_set_size(fd, u64::MAX),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "set times u64::MAX",
        fd_filestat_set_times(fd, u64::MAX, u64::MAX, FSTFLAGS_ATIM | FSTFLAGS_MTIM).map(|_| ()),
        Ok(()),
    );
    c.eq(
        "advise u64::MAX",
        fd_advise(fd, u64::MAX, u64::MAX, ADVICE_NORMAL),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "advise whole file",
        fd_advise(fd, 0, 0, ADVICE_DONTNEED),
        Ok(()),
    );
    c.eq(
        "readdir huge cookie",
        fd_readdir(DIR, out.as_mut_ptr(), 64, u64::MAX),
        Ok(0),
    );
    c.eq(
        "readlink zero buffer",
        path_readlink(DIR, "l", out.as_mut_ptr(), 0),
        Ok(0),
    );
    c.eq(
        "file size intact",
        fd_filestat_get(fd).map(|s| s.size),
        Ok(4),
    );
    close(fd);
}
