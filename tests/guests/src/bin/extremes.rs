//! Extreme values for every preview-1 filesystem function: u32::MAX and
//! closed descriptors, u64::MAX offsets, lengths, cookies and timestamps,
//! every defined flag bit and the last value of each enum. Pointers stay
//! valid and enums defined: wiggle traps the guest on an out-of-bounds
//! pointer (the WASI rule, tested elsewhere) or an undefined enum value,
//! before any filesystem code runs. Every call must come back with an
//! errno or success; the guest then checks the tree still works.

use vfs_test_guests::*;
use wasi::wasi_snapshot_preview1 as raw;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    put(DIR, "f", b"data").unwrap();
    let file = open(DIR, "f", 0, RW, 0).unwrap() as i32;
    let dir = DIR as i32;
    // Results are written here; WASI needs them aligned.
    let mut out = [0u64; 32];
    let o = out.as_mut_ptr() as i32;
    let name = b"f";
    let (n, nl) = (name.as_ptr() as i32, 1);
    let mut data = [0u8; 16];
    let iov = [data.as_mut_ptr() as i32, 16];
    let iovp = iov.as_ptr() as i32;
    let max64 = -1i64; // u64::MAX as the guest passes it
    let mut results = Vec::new();
    for fd in [i32::MAX, -1, file, dir] {
        let calls: Vec<(&str, i32)> = vec![
            ("fd_advise", raw::fd_advise(fd, max64, max64, 0)),
            ("fd_advise last advice", raw::fd_advise(fd, 0, max64, 5)),
            ("fd_allocate", raw::fd_allocate(fd, max64, max64)),
            ("fd_allocate 2^62", raw::fd_allocate(fd, 0, 1 << 62)),
            ("fd_datasync", raw::fd_datasync(fd)),
            ("fd_fdstat_get", raw::fd_fdstat_get(fd, o)),
            ("fd_fdstat_set_flags", raw::fd_fdstat_set_flags(fd, 0x1f)),
            (
                "fd_fdstat_set_rights",
                raw::fd_fdstat_set_rights(fd, ALL as i64, ALL as i64),
            ),
            ("fd_filestat_get", raw::fd_filestat_get(fd, o)),
            ("fd_filestat_set_size", raw::fd_filestat_set_size(fd, max64)),
            (
                "fd_filestat_set_times",
                raw::fd_filestat_set_times(fd, max64, max64, 0xf),
            ),
            (
                "fd_filestat_set_times max",
                raw::fd_filestat_set_times(fd, max64, max64, 1 | 4),
            ),
            ("fd_pread", raw::fd_pread(fd, iovp, 1, max64, o)),
            ("fd_prestat_get", raw::fd_prestat_get(fd, o)),
            ("fd_prestat_dir_name", raw::fd_prestat_dir_name(fd, o, 0)),
            ("fd_pwrite", raw::fd_pwrite(fd, iovp, 1, max64, o)),
            ("fd_read", raw::fd_read(fd, iovp, 1, o)),
            ("fd_readdir", raw::fd_readdir(fd, o, 256, max64, o)),
            ("fd_readdir one byte", raw::fd_readdir(fd, o, 1, 0, o)),
            ("fd_seek", raw::fd_seek(fd, i64::MAX, 0, o)),
            ("fd_seek end", raw::fd_seek(fd, i64::MIN, 2, o)),
            ("fd_sync", raw::fd_sync(fd)),
            ("fd_tell", raw::fd_tell(fd, o)),
            ("fd_write", raw::fd_write(fd, iovp, 1, o)),
            (
                "path_create_directory",
                raw::path_create_directory(fd, n, nl),
            ),
            ("path_filestat_get", raw::path_filestat_get(fd, 1, n, nl, o)),
            (
                "path_filestat_set_times",
                raw::path_filestat_set_times(fd, 1, n, nl, max64, max64, 0xf),
            ),
            ("path_link", raw::path_link(fd, 1, n, nl, fd, n, nl)),
            (
                "path_open",
                raw::path_open(fd, 1, n, nl, 0xf, ALL as i64, ALL as i64, 0x1f, o),
            ),
            ("path_readlink", raw::path_readlink(fd, n, nl, o, 256, o)),
            (
                "path_remove_directory",
                raw::path_remove_directory(fd, n, nl),
            ),
            ("path_rename", raw::path_rename(fd, n, nl, i32::MAX, n, nl)),
            ("path_symlink", raw::path_symlink(n, nl, fd, n, nl)),
            ("path_unlink_file", raw::path_unlink_file(fd, n, nl)),
            ("fd_renumber to itself", raw::fd_renumber(fd, fd)),
        ];
        for (label, code) in calls {
            results.push(format!("{label} on {fd}: {}", show(&check_code(code))));
        }
    }
    results.push(format!(
        "fd_renumber to u32::MAX: {}",
        show(&check_code(raw::fd_renumber(file, -1)))
    ));
    results.push(format!(
        "fd_close u32::MAX: {}",
        show(&check_code(raw::fd_close(-1)))
    ));
    for line in &results {
        println!("{line}");
    }
    c.that(
        "every call returned",
        results.len(),
        results.len() == 4 * 35 + 2,
    );
    // The descriptor table and the tree still work.
    let again = open(DIR, "g", wasi::OFLAGS_CREAT, RW, 0);
    c.outcome("open after", again, Ok(()));
    c.eq(
        "write after",
        put(DIR, "h", b"fine").and_then(|_| get(DIR, "h")),
        Ok(b"fine".to_vec()),
    );
}
