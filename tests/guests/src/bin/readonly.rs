//! Every change to a read-only mount fails with EROFS; reads work. The
//! preopened directory (fd 3) holds `file` ("ro"), `dir/inner`, an empty
//! directory `empty` and `link -> file`.

use vfs_test_guests::*;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    let rofs = Err(ERRNO_ROFS);
    c.eq("read", get(DIR, "file"), Ok(b"ro".to_vec()));
    c.eq("read through link", get(DIR, "link"), Ok(b"ro".to_vec()));
    c.eq(
        "list",
        open_dir(DIR, "dir").and_then(list).map(|l| l.len()),
        Ok(3),
    );
    c.eq("stat", stat(DIR, "dir/inner", true).map(|s| s.size), Ok(1));
    c.outcome("open for write", open(DIR, "file", 0, RW, 0), rofs);
    c.outcome(
        "open write-only",
        open(DIR, "file", 0, RIGHTS_FD_WRITE, 0),
        rofs,
    );
    c.outcome("create", open(DIR, "new", OFLAGS_CREAT, RW, 0), rofs);
    c.outcome(
        "create existing",
        open(DIR, "file", OFLAGS_CREAT, RW, 0),
        rofs,
    );
    c.outcome("truncate", open(DIR, "file", OFLAGS_TRUNC, RW, 0), rofs);
    c.eq("mkdir", path_create_directory(DIR, "newdir"), rofs);
    c.eq(
        "mkdir existing",
        path_create_directory(DIR, "dir"),
        Err(ERRNO_EXIST),
    );
    c.eq("rmdir", path_remove_directory(DIR, "empty"), rofs);
    // As on a read-only Linux mount, which refuses a removal before it
    // looks the name up; a make is `EEXIST` first (`mkdir existing`).
    c.eq("rmdir missing", path_remove_directory(DIR, "nope"), rofs);
    c.eq("unlink", path_unlink_file(DIR, "file"), rofs);
    c.eq("unlink missing", path_unlink_file(DIR, "nope"), rofs);
    c.eq("unlink in dir", path_unlink_file(DIR, "dir/inner"), rofs);
    c.eq("rename", path_rename(DIR, "file", DIR, "moved"), rofs);
    c.eq("symlink", path_symlink("file", DIR, "l2"), rofs);
    c.eq("link", path_link(DIR, 0, "file", DIR, "h"), rofs);
    c.eq(
        "path set times",
        path_filestat_set_times(DIR, 0, "file", 1, 1, FSTFLAGS_ATIM | FSTFLAGS_MTIM),
        rofs,
    );
    c.eq(
        "path set times now",
        path_filestat_set_times(DIR, 0, "dir", 0, 0, FSTFLAGS_MTIM_NOW),
        rofs,
    );
    let fd = open(DIR, "file", 0, RIGHTS_FD_READ, 0).unwrap();
    c.eq(
        "fd set times",
        fd_filestat_set_times(fd, 0, 0, FSTFLAGS_MTIM_NOW),
        rofs,
    );
    c.eq("fd allocate", fd_allocate(fd, 0, 10), Err(ERRNO_BADF));
    c.eq("still readable", read(fd, 10), Ok(b"ro".to_vec()));
    c.eq(
        "dir fd set times",
        fd_filestat_set_times(DIR, 0, 0, FSTFLAGS_MTIM_NOW),
        rofs,
    );
    c.eq("file untouched", get(DIR, "file"), Ok(b"ro".to_vec()));
}
