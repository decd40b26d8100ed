//! Preview 0 (`wasi_unstable`): every filesystem function once, through raw
//! imports. Its `filestat` layout (32-bit `nlink`) and `whence` numbering
//! (`CUR`, `END`, `SET`) differ from preview 1.

use vfs_test_guests::{check_code, Checks, DIR, DIR2};
use wasi::{Errno, ERRNO_BADF, ERRNO_EXIST, ERRNO_NOENT, ERRNO_NOTEMPTY, ERRNO_NOTSUP};

mod unstable {
    #[link(wasm_import_module = "wasi_unstable")]
    extern "C" {
        pub fn fd_advise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
        pub fn fd_allocate(fd: i32, offset: i64, len: i64) -> i32;
        pub fn fd_close(fd: i32) -> i32;
        pub fn fd_datasync(fd: i32) -> i32;
        pub fn fd_fdstat_get(fd: i32, out: i32) -> i32;
        pub fn fd_fdstat_set_flags(fd: i32, flags: i32) -> i32;
        pub fn fd_fdstat_set_rights(fd: i32, base: i64, inheriting: i64) -> i32;
        pub fn fd_filestat_get(fd: i32, out: i32) -> i32;
        pub fn fd_filestat_set_size(fd: i32, size: i64) -> i32;
        pub fn fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, flags: i32) -> i32;
        pub fn fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, out: i32) -> i32;
        pub fn fd_prestat_get(fd: i32, out: i32) -> i32;
        pub fn fd_prestat_dir_name(fd: i32, path: i32, len: i32) -> i32;
        pub fn fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, out: i32) -> i32;
        pub fn fd_read(fd: i32, iovs: i32, iovs_len: i32, out: i32) -> i32;
        pub fn fd_readdir(fd: i32, buf: i32, len: i32, cookie: i64, out: i32) -> i32;
        pub fn fd_renumber(fd: i32, to: i32) -> i32;
        pub fn fd_seek(fd: i32, offset: i64, whence: i32, out: i32) -> i32;
        pub fn fd_sync(fd: i32) -> i32;
        pub fn fd_tell(fd: i32, out: i32) -> i32;
        pub fn fd_write(fd: i32, iovs: i32, iovs_len: i32, out: i32) -> i32;
        pub fn path_create_directory(fd: i32, path: i32, len: i32) -> i32;
        pub fn path_filestat_get(fd: i32, flags: i32, path: i32, len: i32, out: i32) -> i32;
        pub fn path_filestat_set_times(
            fd: i32,
            flags: i32,
            path: i32,
            len: i32,
            atim: i64,
            mtim: i64,
            fst: i32,
        ) -> i32;
        pub fn path_link(
            old_fd: i32,
            old_flags: i32,
            old: i32,
            old_len: i32,
            new_fd: i32,
            new: i32,
            new_len: i32,
        ) -> i32;
        pub fn path_open(
            fd: i32,
            dirflags: i32,
            path: i32,
            len: i32,
            oflags: i32,
            base: i64,
            inheriting: i64,
            fdflags: i32,
            out: i32,
        ) -> i32;
        pub fn path_readlink(fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, out: i32)
            -> i32;
        pub fn path_remove_directory(fd: i32, path: i32, len: i32) -> i32;
        pub fn path_rename(
            fd: i32,
            old: i32,
            old_len: i32,
            new_fd: i32,
            new: i32,
            new_len: i32,
        ) -> i32;
        pub fn path_symlink(old: i32, old_len: i32, fd: i32, new: i32, new_len: i32) -> i32;
        pub fn path_unlink_file(fd: i32, path: i32, len: i32) -> i32;
    }
}
use unstable::*;

const WHENCE_CUR: i32 = 0;
const WHENCE_END: i32 = 1;
const WHENCE_SET: i32 = 2;
const FOLLOW: i32 = 1;
const O_CREAT: i32 = 1;
const O_DIRECTORY: i32 = 2;
const O_TRUNC: i32 = 8;
const RIGHTS: i64 = (1 << 1) | (1 << 6) | (1 << 14); // read, write, readdir

fn ok(code: i32) -> Result<(), Errno> {
    check_code(code)
}

fn p(s: &str) -> (i32, i32) {
    (s.as_ptr() as i32, s.len() as i32)
}

/// Preview 0's `filestat`: (filetype, nlink, size, mtim).
unsafe fn filestat_at(buf: &[u8; 56]) -> (u8, u32, u64, u64) {
    let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
    (
        buf[16],
        u32::from_le_bytes(buf[20..24].try_into().unwrap()),
        u64_at(24),
        u64_at(40),
    )
}

unsafe fn open(path: &str, oflags: i32) -> Result<i32, Errno> {
    let mut fd = 0i32;
    let (ptr, len) = p(path);
    // Directories cannot be opened for writing.
    let rights = if oflags & O_DIRECTORY != 0 {
        RIGHTS & !(1 << 6)
    } else {
        RIGHTS
    };
    ok(path_open(
        DIR as i32,
        FOLLOW,
        ptr,
        len,
        oflags,
        rights,
        RIGHTS,
        0,
        &mut fd as *mut i32 as i32,
    ))?;
    Ok(fd)
}

unsafe fn write(fd: i32, data: &[u8]) -> Result<u32, Errno> {
    let iov = [data.as_ptr() as i32, data.len() as i32];
    let mut n = 0u32;
    ok(fd_write(
        fd,
        iov.as_ptr() as i32,
        1,
        &mut n as *mut u32 as i32,
    ))?;
    Ok(n)
}

unsafe fn read(fd: i32, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let iov = [buf.as_mut_ptr() as i32, len as i32];
    let mut n = 0u32;
    ok(fd_read(
        fd,
        iov.as_ptr() as i32,
        1,
        &mut n as *mut u32 as i32,
    ))?;
    buf.truncate(n as usize);
    Ok(buf)
}

unsafe fn stat(path: &str, flags: i32) -> Result<(u8, u32, u64, u64), Errno> {
    let mut buf = [0u8; 56];
    let (ptr, len) = p(path);
    ok(path_filestat_get(
        DIR as i32,
        flags,
        ptr,
        len,
        buf.as_mut_ptr() as i32,
    ))?;
    Ok(filestat_at(&buf))
}

unsafe fn seek(fd: i32, offset: i64, whence: i32) -> Result<u64, Errno> {
    let mut pos = 0u64;
    ok(fd_seek(fd, offset, whence, &mut pos as *mut u64 as i32))?;
    Ok(pos)
}

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    const FILE: u8 = 4;
    const DIRECTORY: u8 = 3;
    const SYMLINK: u8 = 7;
    let mut prestat = [0u32; 2];
    c.eq(
        "prestat",
        ok(fd_prestat_get(DIR as i32, prestat.as_mut_ptr() as i32)).map(|_| prestat[1]),
        Ok(8),
    );
    let mut name = [0u8; 8];
    c.eq(
        "prestat name",
        ok(fd_prestat_dir_name(DIR as i32, name.as_mut_ptr() as i32, 8)).map(|_| name),
        Ok(*b"/sandbox"),
    );

    let fd = open("f", O_CREAT | O_TRUNC).unwrap();
    c.eq("write", write(fd, b"preview zero"), Ok(12));
    c.eq("seek set", seek(fd, 8, WHENCE_SET), Ok(8));
    c.eq("read", read(fd, 10), Ok(b"zero".to_vec()));
    c.eq("seek cur", seek(fd, -4, WHENCE_CUR), Ok(8));
    c.eq("seek end", seek(fd, -1, WHENCE_END), Ok(11));
    let mut pos = 0u64;
    c.eq(
        "tell",
        ok(fd_tell(fd, &mut pos as *mut u64 as i32)).map(|_| pos),
        Ok(11),
    );
    let iov = [b"P".as_ptr() as i32, 1];
    let mut n = 0u32;
    c.eq(
        "pwrite",
        ok(fd_pwrite(
            fd,
            iov.as_ptr() as i32,
            1,
            0,
            &mut n as *mut u32 as i32,
        ))
        .map(|_| n),
        Ok(1),
    );
    let mut buf = [0u8; 7];
    let iov = [buf.as_mut_ptr() as i32, 7];
    c.eq(
        "pread",
        ok(fd_pread(
            fd,
            iov.as_ptr() as i32,
            1,
            0,
            &mut n as *mut u32 as i32,
        ))
        .map(|_| (n, buf)),
        Ok((7, *b"Preview")),
    );
    let mut st = [0u8; 56];
    c.eq(
        "fd_filestat_get",
        ok(fd_filestat_get(fd, st.as_mut_ptr() as i32)).map(|_| {
            let s = filestat_at(&st);
            (s.0, s.1, s.2)
        }),
        Ok((FILE, 1, 12)),
    );
    c.eq("set size", ok(fd_filestat_set_size(fd, 7)), Ok(()));
    c.eq("size", stat("f", FOLLOW).map(|s| s.2), Ok(7));
    c.eq(
        "set times",
        ok(fd_filestat_set_times(fd, 1_000, 2_000, 1 | 4)),
        Ok(()),
    );
    c.eq("mtime", stat("f", FOLLOW).map(|s| s.3), Ok(2_000));
    c.eq("advise", ok(fd_advise(fd, 0, 7, 0)), Ok(()));
    // wasi-common's host files answer ENOTSUP (58); the Vfs allocates.
    let allocated = ok(fd_allocate(fd, 0, 64))
        .and_then(|_| stat("f", FOLLOW))
        .map(|s| s.2);
    c.eq(
        "fd_allocate",
        allocated,
        if vfs_test_guests::on_reference() {
            Err(ERRNO_NOTSUP)
        } else {
            Ok(64)
        },
    );
    c.eq("sync", ok(fd_sync(fd)), Ok(()));
    c.eq("datasync", ok(fd_datasync(fd)), Ok(()));
    let mut fdstat = [0u8; 24];
    c.eq(
        "fdstat",
        ok(fd_fdstat_get(fd, fdstat.as_mut_ptr() as i32)).map(|_| (fdstat[0], fdstat[2])),
        Ok((FILE, 0)),
    );
    c.eq("set flags", ok(fd_fdstat_set_flags(fd, 1)), Ok(()));
    c.eq(
        "append flag",
        ok(fd_fdstat_get(fd, fdstat.as_mut_ptr() as i32)).map(|_| fdstat[2]),
        Ok(1),
    );
    c.eq(
        "set rights",
        ok(fd_fdstat_set_rights(fd, 0, 0)),
        Err(ERRNO_NOTSUP),
    );
    let other = open("f", 0).unwrap();
    c.eq("renumber", ok(fd_renumber(fd, other)), Ok(()));
    c.eq("close", ok(fd_close(other)), Ok(()));
    c.eq("close renumbered", ok(fd_close(fd)), Err(ERRNO_BADF));

    let (d, dl) = p("d");
    c.eq(
        "mkdir",
        ok(path_create_directory(DIR as i32, d, dl)),
        Ok(()),
    );
    c.eq(
        "mkdir again",
        ok(path_create_directory(DIR as i32, d, dl)),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "dir stat",
        stat("d", FOLLOW).map(|s| (s.0, s.1)),
        Ok((DIRECTORY, 2)),
    );
    let (t, tl) = p("f");
    let (l, ll) = p("d/link");
    c.eq(
        "symlink",
        ok(path_symlink(b"../f".as_ptr() as i32, 4, DIR as i32, l, ll)),
        Ok(()),
    );
    let mut target = [0u8; 16];
    let mut n = 0u32;
    c.eq(
        "readlink",
        ok(path_readlink(
            DIR as i32,
            l,
            ll,
            target.as_mut_ptr() as i32,
            16,
            &mut n as *mut u32 as i32,
        ))
        .map(|_| target[..n as usize].to_vec()),
        Ok(b"../f".to_vec()),
    );
    c.eq("lstat", stat("d/link", 0).map(|s| s.0), Ok(SYMLINK));
    c.eq(
        "stat through link",
        stat("d/link", FOLLOW).map(|s| s.0),
        Ok(FILE),
    );
    let (h, hl) = p("h");
    c.eq(
        "link",
        ok(path_link(DIR as i32, 0, t, tl, DIR as i32, h, hl)),
        Ok(()),
    );
    c.eq("nlink", stat("f", 0).map(|s| s.1), Ok(2));
    c.eq(
        "path set times",
        ok(path_filestat_set_times(DIR as i32, 0, h, hl, 0, 5_000, 4)),
        Ok(()),
    );
    c.eq("path mtime", stat("f", 0).map(|s| s.3), Ok(5_000));
    let (m, ml) = p("moved");
    c.eq(
        "rename to second preopen",
        ok(path_rename(DIR as i32, h, hl, DIR2 as i32, m, ml)),
        Ok(()),
    );
    c.eq("renamed", stat("sub2/moved", 0).map(|s| s.1), Ok(2));

    let dfd = open("d", O_DIRECTORY).unwrap();
    let mut listing = [0u8; 256];
    c.eq(
        "readdir",
        ok(fd_readdir(
            dfd,
            listing.as_mut_ptr() as i32,
            256,
            0,
            &mut n as *mut u32 as i32,
        ))
        .map(|_| n),
        Ok(24 * 3 + 1 + 2 + 4),
    );
    c.eq(
        "remove non-empty",
        ok(path_remove_directory(DIR as i32, d, dl)),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq("unlink", ok(path_unlink_file(DIR as i32, l, ll)), Ok(()));
    c.eq(
        "rmdir",
        ok(path_remove_directory(DIR as i32, d, dl)),
        Ok(()),
    );
    c.eq("gone", stat("d", 0).map(|_| ()), Err(ERRNO_NOENT));
}
