//! Regular files: `path_open` flags, reads and writes with and without the
//! position, seeking, sizes, times, descriptor flags and lifetimes.

use vfs_test_guests::*;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    // path_open: oflags
    c.outcome(
        "open missing",
        open(DIR, "nope", 0, RW, 0),
        Err(ERRNO_NOENT),
    );
    let fd = open(DIR, "a.txt", OFLAGS_CREAT, RW, 0).unwrap();
    c.eq("write", write(fd, b"hello world"), Ok(11));
    close(fd);
    c.outcome(
        "creat existing",
        open(DIR, "a.txt", OFLAGS_CREAT, RW, 0).map(close),
        Ok(()),
    );
    c.outcome(
        "creat|excl existing",
        open(DIR, "a.txt", OFLAGS_CREAT | OFLAGS_EXCL, RW, 0),
        Err(ERRNO_EXIST),
    );
    c.outcome(
        "directory flag on file",
        open(DIR, "a.txt", OFLAGS_DIRECTORY, RW, 0),
        Err(ERRNO_NOTDIR),
    );
    c.outcome(
        "trailing slash on file",
        open(DIR, "a.txt/", 0, RIGHTS_FD_READ, 0),
        Err(ERRNO_NOTDIR),
    );
    c.outcome(
        "directory|creat",
        open(DIR, "d", OFLAGS_DIRECTORY | OFLAGS_CREAT, RW, 0),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "contents kept",
        get(DIR, "a.txt"),
        Ok(b"hello world".to_vec()),
    );
    let fd = open(DIR, "a.txt", OFLAGS_TRUNC, RW, 0).unwrap();
    c.eq("trunc empties", fd_filestat_get(fd).map(|s| s.size), Ok(0));
    close(fd);
    c.outcome(
        "trunc without write",
        open(DIR, "a.txt", OFLAGS_TRUNC, RIGHTS_FD_READ, 0),
        Err(ERRNO_INVAL),
    );

    // directories through path_open
    path_create_directory(DIR, "d").unwrap();
    let dfd = open(DIR, "d", 0, RIGHTS_FD_READ, 0);
    c.eq(
        "open dir type",
        dfd.and_then(|fd| fd_fdstat_get(fd))
            .map(|s| kind(s.fs_filetype)),
        Ok("DIRECTORY"),
    );
    c.outcome(
        "open dir for write",
        open(DIR, "d", 0, RW, 0),
        Err(ERRNO_ISDIR),
    );
    c.outcome(
        "creat on dir",
        open(DIR, "d", OFLAGS_CREAT, RIGHTS_FD_READ, 0),
        Err(ERRNO_ISDIR),
    );
    c.outcome(
        "creat with trailing slash",
        open(DIR, "newfile/", OFLAGS_CREAT, RW, 0),
        Err(ERRNO_ISDIR),
    );
    c.outcome(
        "creat in missing dir",
        open(DIR, "missing/f", OFLAGS_CREAT, RW, 0),
        Err(ERRNO_NOENT),
    );

    // rights
    put(DIR, "r.txt", b"abc").unwrap();
    let ro = open(DIR, "r.txt", 0, RIGHTS_FD_READ, 0).unwrap();
    c.outcome("write on read-only fd", write(ro, b"x"), Err(ERRNO_BADF));
    c.outcome(
        "set_size on read-only fd",
        fd_filestat_set_size(ro, 1),
        Err(ERRNO_INVAL),
    );
    close(ro);
    let wo = open(DIR, "r.txt", 0, RIGHTS_FD_WRITE, 0).unwrap();
    c.outcome("read on write-only fd", read(wo, 1), Err(ERRNO_BADF));
    close(wo);

    // positions: read/write move it, pread/pwrite do not
    let fd = open(DIR, "p.bin", OFLAGS_CREAT, RW, 0).unwrap();
    let (a, b) = (b"0123", b"456789");
    c.eq(
        "vectored write",
        fd_write(
            fd,
            &[
                Ciovec {
                    buf: a.as_ptr(),
                    buf_len: 4,
                },
                Ciovec {
                    buf: b.as_ptr(),
                    buf_len: 6,
                },
            ],
        ),
        Ok(10),
    );
    c.eq("tell after write", fd_tell(fd), Ok(10));
    c.eq(
        "pwrite",
        fd_pwrite(
            fd,
            &[Ciovec {
                buf: b"AB".as_ptr(),
                buf_len: 2,
            }],
            2,
        ),
        Ok(2),
    );
    c.eq("tell after pwrite", fd_tell(fd), Ok(10));
    let mut x = [0u8; 3];
    let mut y = [0u8; 4];
    // wasi-common hands only the first non-empty buffer of fd_pread to the
    // file: a short read, which POSIX allows.
    c.eq(
        "pread",
        fd_pread(
            fd,
            &[
                Iovec {
                    buf: x.as_mut_ptr(),
                    buf_len: 3,
                },
                Iovec {
                    buf: y.as_mut_ptr(),
                    buf_len: 4,
                },
            ],
            1,
        ),
        Ok(3),
    );
    c.eq("pread data", Ok::<_, Errno>(x), Ok(*b"1AB"));
    c.eq("tell after pread", fd_tell(fd), Ok(10));
    c.eq(
        "pread at eof",
        fd_pread(
            fd,
            &[Iovec {
                buf: x.as_mut_ptr(),
                buf_len: 3,
            }],
            100,
        ),
        Ok(0),
    );
    c.eq("seek set", fd_seek(fd, 3, WHENCE_SET), Ok(3));
    c.eq("read after seek", read(fd, 4), Ok(b"B456".to_vec()));
    c.eq("seek cur", fd_seek(fd, -2, WHENCE_CUR), Ok(5));
    c.eq("seek end", fd_seek(fd, -1, WHENCE_END), Ok(9));
    c.eq(
        "seek before start",
        fd_seek(fd, -100, WHENCE_CUR),
        Err(ERRNO_INVAL),
    );
    c.eq("position unchanged by failed seek", fd_tell(fd), Ok(9));
    c.eq("seek past end", fd_seek(fd, 20, WHENCE_SET), Ok(20));
    c.eq("write past end", write(fd, b"Z"), Ok(1));
    c.eq(
        "size with hole",
        fd_filestat_get(fd).map(|s| s.size),
        Ok(21),
    );
    let all = get(DIR, "p.bin").unwrap();
    c.that(
        "hole reads as zeros",
        &all[10..20],
        all[10..20].iter().all(|&b| b == 0),
    );
    c.eq(
        "hole bounds",
        Ok::<_, Errno>((all[9], all[20])),
        Ok((b'9', b'Z')),
    );

    // size changes
    c.eq("shrink", fd_filestat_set_size(fd, 4), Ok(()));
    c.eq("shrunk contents", get(DIR, "p.bin"), Ok(b"01AB".to_vec()));
    c.eq("grow", fd_filestat_set_size(fd, 6), Ok(()));
    c.eq(
        "grown contents",
        get(DIR, "p.bin"),
        Ok(b"01AB\0\0".to_vec()),
    );
    c.eq(
        "set_size past off_t",
        fd_filestat_set_size(fd, u64::MAX),
        Err(ERRNO_INVAL),
    );
    // wasi-common's host files answer fd_allocate with ENOTSUP; this crate
    // grows the file as posix_fallocate does.
    let alloc = fd_allocate(fd, 2, 100);
    let size = fd_filestat_get(fd).map(|s| s.size);
    if on_reference() {
        c.eq("fd_allocate", alloc, Err(ERRNO_NOTSUP));
    } else {
        c.eq("fd_allocate", alloc, Ok(()));
        c.eq("fd_allocate size", size, Ok(102));
        c.eq(
            "fd_allocate never shrinks",
            fd_allocate(fd, 0, 1)
                .and_then(|_| fd_filestat_get(fd))
                .map(|s| s.size),
            Ok(102),
        );
        c.eq(
            "fd_allocate zero length",
            fd_allocate(fd, 0, 0),
            Err(ERRNO_INVAL),
        );
        c.eq(
            "fd_allocate past off_t",
            fd_allocate(fd, u64::MAX - 1, 1),
            Err(ERRNO_INVAL),
        );
        let ro = open(DIR, "p.bin", 0, RIGHTS_FD_READ, 0).unwrap();
        c.eq(
            "fd_allocate read-only",
            fd_allocate(ro, 0, 1),
            Err(ERRNO_BADF),
        );
        close(ro);
        c.eq(
            "fd_allocate on a directory",
            fd_allocate(DIR, 0, 1),
            Err(ERRNO_BADF),
        );
    }
    c.eq("advise", fd_advise(fd, 0, 10, ADVICE_SEQUENTIAL), Ok(()));
    c.eq("sync", fd_sync(fd), Ok(()));
    c.eq("datasync", fd_datasync(fd), Ok(()));
    c.eq(
        "pwrite past off_t",
        fd_pwrite(
            fd,
            &[Ciovec {
                buf: b"x".as_ptr(),
                buf_len: 1,
            }],
            1 << 63,
        ),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "pread past off_t",
        fd_pread(
            fd,
            &[Iovec {
                buf: x.as_mut_ptr(),
                buf_len: 1,
            }],
            1 << 63,
        ),
        Err(ERRNO_INVAL),
    );
    close(fd);

    // filestat and times
    let st = stat(DIR, "r.txt", true).unwrap();
    c.eq(
        "stat type/size/nlink",
        Ok::<_, Errno>((kind(st.filetype), st.size, st.nlink)),
        Ok(("REGULAR_FILE", 3, 1)),
    );
    let fd = open(DIR, "r.txt", 0, RW, 0).unwrap();
    let fst = fd_filestat_get(fd).unwrap();
    c.that(
        "fd and path stat agree on inode",
        "same",
        fst.ino == st.ino && fst.dev == st.dev,
    );
    c.eq(
        "set times",
        fd_filestat_set_times(
            fd,
            1_000_000_000,
            2_000_000_000,
            FSTFLAGS_ATIM | FSTFLAGS_MTIM,
        ),
        Ok(()),
    );
    let t = fd_filestat_get(fd).unwrap();
    c.eq(
        "times set",
        Ok::<_, Errno>((t.atim, t.mtim)),
        Ok((1_000_000_000, 2_000_000_000)),
    );
    c.eq(
        "set mtime only",
        fd_filestat_set_times(fd, 0, 3_000_000_000, FSTFLAGS_MTIM),
        Ok(()),
    );
    let t = fd_filestat_get(fd).unwrap();
    c.eq(
        "atime kept",
        Ok::<_, Errno>((t.atim, t.mtim)),
        Ok((1_000_000_000, 3_000_000_000)),
    );
    c.eq(
        "set now",
        fd_filestat_set_times(fd, 0, 0, FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM_NOW),
        Ok(()),
    );
    let now = clock_time_get(CLOCKID_REALTIME, 1).unwrap();
    let t = fd_filestat_get(fd).unwrap();
    c.that(
        "now is recent",
        "atime and mtime within 60 s",
        now.abs_diff(t.mtim) < 60_000_000_000 && now.abs_diff(t.atim) < 60_000_000_000,
    );
    c.eq(
        "time and time-now together",
        fd_filestat_set_times(fd, 1, 0, FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW),
        Err(ERRNO_INVAL),
    );
    fd_filestat_set_times(fd, 0, 5_000_000_000, FSTFLAGS_MTIM).unwrap();
    write(fd, b"z").unwrap();
    let t = fd_filestat_get(fd).unwrap();
    c.that(
        "write updates mtime",
        "mtime advanced",
        t.mtim > 5_000_000_000 && t.ctim > 5_000_000_000,
    );
    close(fd);

    // fdstat and flags
    let fd = open(DIR, "log", OFLAGS_CREAT, RW, FDFLAGS_APPEND).unwrap();
    let s = fd_fdstat_get(fd).unwrap();
    c.eq(
        "fdstat",
        Ok::<_, Errno>((kind(s.fs_filetype), s.fs_flags)),
        Ok(("REGULAR_FILE", FDFLAGS_APPEND)),
    );
    c.that(
        "fdstat rights",
        "read and write",
        s.fs_rights_base & RW == RW,
    );
    let other = open(DIR, "log", 0, RW, 0).unwrap();
    write(fd, b"one,").unwrap();
    write(other, b"XX").unwrap(); // at offset 0 of its own position
    write(fd, b"two,").unwrap();
    c.eq(
        "append goes to the end",
        get(DIR, "log"),
        Ok(b"XXe,two,".to_vec()),
    );
    c.eq(
        "pwrite on append fd appends",
        fd_pwrite(
            fd,
            &[Ciovec {
                buf: b"3".as_ptr(),
                buf_len: 1,
            }],
            0,
        ),
        Ok(1),
    );
    c.eq(
        "append contents",
        get(DIR, "log"),
        Ok(b"XXe,two,3".to_vec()),
    );
    c.eq("clear append", fd_fdstat_set_flags(fd, 0), Ok(()));
    c.eq(
        "flags cleared",
        fd_fdstat_get(fd).map(|s| s.fs_flags),
        Ok(0),
    );
    fd_seek(fd, 0, WHENCE_SET).unwrap();
    write(fd, b"Y").unwrap();
    c.eq(
        "write at position",
        get(DIR, "log"),
        Ok(b"YXe,two,3".to_vec()),
    );
    c.eq(
        "set append",
        fd_fdstat_set_flags(other, FDFLAGS_APPEND),
        Ok(()),
    );
    write(other, b"!").unwrap();
    c.eq(
        "append after set_flags",
        get(DIR, "log"),
        Ok(b"YXe,two,3!".to_vec()),
    );
    c.eq(
        "set sync flag",
        fd_fdstat_set_flags(other, FDFLAGS_SYNC),
        Err(ERRNO_INVAL),
    );
    for (flag, label) in [
        (FDFLAGS_SYNC, "open with O_SYNC"),
        (FDFLAGS_DSYNC, "open with O_DSYNC"),
        (FDFLAGS_RSYNC, "open with O_RSYNC"),
    ] {
        c.eq(
            label,
            open(DIR, "sync.txt", OFLAGS_CREAT, RIGHTS_FD_WRITE, flag).map(close),
            Err(ERRNO_NOTSUP),
        );
        c.eq(
            &format!("{label} created nothing"),
            stat(DIR, "sync.txt", false).map(drop),
            Err(ERRNO_NOENT),
        );
    }
    for (flag, label) in [
        (FDFLAGS_DSYNC, "set dsync flag"),
        (FDFLAGS_RSYNC, "set rsync flag"),
    ] {
        c.eq(label, fd_fdstat_set_flags(other, flag), Err(ERRNO_INVAL));
    }
    c.eq(
        "set_rights is not supported",
        fd_fdstat_set_rights(other, RIGHTS_FD_READ, 0),
        Err(ERRNO_NOTSUP),
    );

    // renumber and close
    let target = open(DIR, "r.txt", 0, RIGHTS_FD_READ, 0).unwrap();
    c.eq("renumber", fd_renumber(other, target), Ok(()));
    c.eq(
        "old fd gone",
        fd_fdstat_get(other).map(|_| ()),
        Err(ERRNO_BADF),
    );
    fd_seek(target, 0, WHENCE_SET).unwrap();
    c.eq(
        "new fd is the moved file",
        read(target, 3),
        Ok(b"YXe".to_vec()),
    );
    c.eq("close", fd_close(target), Ok(()));
    c.eq("close again", fd_close(target), Err(ERRNO_BADF));
    c.eq("renumber closed", fd_renumber(target, fd), Err(ERRNO_BADF));
    close(fd);

    // an open file outlives its name and follows a rename
    put(DIR, "gone", b"still here").unwrap();
    let fd = open(DIR, "gone", 0, RW, 0).unwrap();
    c.eq("unlink open file", path_unlink_file(DIR, "gone"), Ok(()));
    c.eq("read unlinked", read(fd, 100), Ok(b"still here".to_vec()));
    c.eq(
        "unlinked nlink",
        fd_filestat_get(fd).map(|s| s.nlink),
        Ok(0),
    );
    c.eq(
        "write unlinked",
        fd_pwrite(
            fd,
            &[Ciovec {
                buf: b"S".as_ptr(),
                buf_len: 1,
            }],
            0,
        ),
        Ok(1),
    );
    close(fd);
    c.eq(
        "name stays gone",
        stat(DIR, "gone", false).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    put(DIR, "before", b"data").unwrap();
    let fd = open(DIR, "before", 0, RW, 0).unwrap();
    path_rename(DIR, "before", DIR, "after").unwrap();
    fd_seek(fd, 0, WHENCE_END).unwrap();
    write(fd, b"+more").unwrap();
    c.eq(
        "fd follows rename",
        get(DIR, "after"),
        Ok(b"data+more".to_vec()),
    );
    close(fd);
}
