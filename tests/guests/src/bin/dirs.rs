//! Directories: creation and removal, listings with `.` and `..`, cookies
//! that survive changes, preopen names, path stat and times.

use vfs_test_guests::*;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    // preopens
    let mut names = Vec::new();
    for fd in [DIR, DIR2] {
        let pre = fd_prestat_get(fd).unwrap();
        let len = pre.u.dir.pr_name_len;
        let mut buf = vec![0u8; len];
        fd_prestat_dir_name(fd, buf.as_mut_ptr(), len).unwrap();
        names.push(String::from_utf8(buf).unwrap());
    }
    c.eq(
        "preopen names",
        Ok::<_, Errno>(names),
        Ok(vec!["/sandbox".to_string(), "/sandbox/sub2".to_string()]),
    );
    c.eq(
        "prestat of a file fd",
        fd_prestat_get(0).map(|_| ()),
        Err(ERRNO_BADF),
    );

    // create
    c.eq("mkdir", path_create_directory(DIR, "a"), Ok(()));
    c.eq(
        "mkdir existing",
        path_create_directory(DIR, "a"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "mkdir trailing slash",
        path_create_directory(DIR, "b/"),
        Ok(()),
    );
    c.eq("mkdir nested", path_create_directory(DIR, "a/x"), Ok(()));
    c.eq(
        "mkdir missing parent",
        path_create_directory(DIR, "none/x"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "mkdir dot",
        path_create_directory(DIR, "a/."),
        Err(ERRNO_EXIST),
    );
    put(DIR, "f", b"").unwrap();
    c.eq(
        "mkdir over file",
        path_create_directory(DIR, "f"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "mkdir under file",
        path_create_directory(DIR, "f/x"),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "mkdir empty path",
        path_create_directory(DIR, ""),
        Err(ERRNO_NOENT),
    );

    // stat of directories: nlink is 2 plus subdirectories
    let a = stat(DIR, "a", true).unwrap();
    c.eq(
        "dir stat",
        Ok::<_, Errno>((kind(a.filetype), a.nlink)),
        Ok(("DIRECTORY", 3)),
    );
    c.eq(
        "dir stat through dot-dot",
        stat(DIR, "a/x/..", true).map(|s| s.ino == a.ino),
        Ok(true),
    );
    c.eq(
        "dir stat with slashes",
        stat(DIR, "a//x/", true).map(|s| kind(s.filetype)),
        Ok("DIRECTORY"),
    );
    let dfd = open_dir(DIR, "a").unwrap();
    c.eq(
        "fd stat of dir",
        fd_filestat_get(dfd).map(|s| (s.ino == a.ino, kind(s.filetype))),
        Ok((true, "DIRECTORY")),
    );
    c.eq(
        "path stat relative to opened dir",
        stat(dfd, "x", true).map(|s| kind(s.filetype)),
        Ok("DIRECTORY"),
    );
    c.eq(
        "opened dir cannot reach up",
        stat(dfd, "../f", true).map(|_| ()),
        Err(ERRNO_PERM),
    );

    // listing
    put(DIR, "a/file1", b"1").unwrap();
    path_symlink("file1", dfd, "link1").unwrap();
    c.eq(
        "list",
        list(dfd),
        Ok(vec![
            "..:DIRECTORY",
            ".:DIRECTORY",
            "file1:REGULAR_FILE",
            "link1:SYMBOLIC_LINK",
            "x:DIRECTORY",
        ]
        .into_iter()
        .map(String::from)
        .collect()),
    );
    let first = readdir_from(dfd, 0, 1024).unwrap();
    c.that(
        "dot inode is the dir",
        "ok",
        first.iter().any(|(n, _, _)| n == "."),
    );
    // wasi-common's descriptor table answers before any directory sees the
    // call, with EBADF rather than getdents' ENOTDIR.
    c.eq(
        "readdir on a file",
        fd_readdir(
            open(DIR, "f", 0, RIGHTS_FD_READ, 0).unwrap(),
            [0u8; 64].as_mut_ptr(),
            64,
            0,
        ),
        Err(ERRNO_BADF),
    );
    c.eq(
        "readdir on stdin",
        fd_readdir(0, [0u8; 64].as_mut_ptr(), 64, 0),
        Err(ERRNO_BADF),
    );
    let mut tiny = [0u8; 8];
    c.eq(
        "readdir tiny buffer",
        fd_readdir(dfd, tiny.as_mut_ptr(), tiny.len(), 0),
        Ok(8),
    );
    c.eq(
        "readdir zero buffer",
        fd_readdir(dfd, tiny.as_mut_ptr(), 0, 0),
        Ok(0),
    );
    c.eq(
        "readdir past the end",
        fd_readdir(dfd, tiny.as_mut_ptr(), tiny.len(), 1000),
        Ok(0),
    );

    // cookies stay valid while the directory changes
    path_create_directory(DIR, "many").unwrap();
    let mfd = open_dir(DIR, "many").unwrap();
    for i in 0..100 {
        put(mfd, &format!("e{i:03}"), b"").unwrap();
    }
    let all = readdir_from(mfd, 0, 4096).unwrap();
    c.eq("many entries", Ok::<_, Errno>(all.len()), Ok(102));
    // Resume from the cookie after the 50th entry, having removed some
    // entries on both sides of it and added new ones.
    let (_, _, cookie) = all[50].clone();
    let seen_before: Vec<String> = all[..=50].iter().map(|e| e.0.clone()).collect();
    for (name, _, _) in &all[2..10] {
        path_unlink_file(mfd, name).unwrap();
    }
    for (name, _, _) in &all[60..70] {
        path_unlink_file(mfd, name).unwrap();
    }
    put(mfd, "new1", b"").unwrap();
    let rest: Vec<String> = readdir_from(mfd, cookie, 300)
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    let survivors: Vec<String> = all[51..]
        .iter()
        .map(|e| e.0.clone())
        .filter(|n| !all[60..70].iter().any(|r| &r.0 == n))
        .collect();
    // The host directory numbers cookies by position in a fresh scan, so
    // there removals before the cookie make it skip survivors.
    let stable = on_reference();
    c.that(
        "cookies: no entry repeated after resuming",
        rest.len(),
        stable || rest.iter().all(|n| !seen_before.contains(n)),
    );
    c.that(
        "cookies: every surviving entry listed",
        survivors.len(),
        stable || survivors.iter().all(|n| rest.contains(n)),
    );
    c.that(
        "cookies: removed entries not listed",
        "ok",
        stable || all[60..70].iter().all(|r| !rest.contains(&r.0)),
    );
    // The entry added during the listing may or may not appear (POSIX
    // leaves it open); the line is printed for neither backend.
    let mut small = readdir_from(mfd, 0, 40).unwrap();
    small.sort();
    let mut large = readdir_from(mfd, 0, 4096).unwrap();
    large.sort();
    c.that(
        "small buffers list the same",
        small.len(),
        small.iter().map(|e| &e.0).eq(large.iter().map(|e| &e.0)),
    );

    // remove
    c.eq(
        "rmdir non-empty",
        path_remove_directory(DIR, "a"),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq(
        "rmdir file",
        path_remove_directory(DIR, "f"),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "rmdir missing",
        path_remove_directory(DIR, "zz"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "rmdir symlink",
        path_remove_directory(dfd, "link1"),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "rmdir dot",
        path_remove_directory(DIR, "b/."),
        Err(ERRNO_INVAL),
    );
    c.eq("rmdir", path_remove_directory(DIR, "a/x"), Ok(()));
    c.eq(
        "nlink after rmdir",
        stat(DIR, "a", true).map(|s| s.nlink),
        Ok(2),
    );
    // cap-std refuses a trailing slash here; Linux rmdir(2) accepts it.
    let expected = if on_reference() {
        Err(ERRNO_INVAL)
    } else {
        Ok(())
    };
    c.eq(
        "rmdir trailing slash",
        path_remove_directory(DIR, "b/"),
        expected,
    );
    c.eq("unlink dir", path_unlink_file(DIR, "a"), Err(ERRNO_ISDIR));
    c.eq(
        "unlink missing",
        path_unlink_file(DIR, "zz"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "unlink trailing slash",
        path_unlink_file(DIR, "f/"),
        Err(ERRNO_NOTDIR),
    );
    c.eq("unlink", path_unlink_file(DIR, "f"), Ok(()));
    c.eq(
        "unlinked",
        stat(DIR, "f", false).map(|_| ()),
        Err(ERRNO_NOENT),
    );

    // an open directory outlives its removal
    path_create_directory(DIR, "doomed").unwrap();
    let doomed = open_dir(DIR, "doomed").unwrap();
    c.eq(
        "rmdir open dir",
        path_remove_directory(DIR, "doomed"),
        Ok(()),
    );
    c.eq(
        "list removed dir",
        readdir_from(doomed, 2, 256).map(|v| v.len()),
        Ok(0),
    );
    c.eq(
        "create in removed dir",
        open(doomed, "x", OFLAGS_CREAT, RW, 0),
        Err(ERRNO_NOENT),
    );
    close(doomed);

    // path times
    put(DIR, "t", b"").unwrap();
    c.eq(
        "path set times",
        path_filestat_set_times(
            DIR,
            LOOKUPFLAGS_SYMLINK_FOLLOW,
            "t",
            7_000_000_000,
            8_000_000_000,
            FSTFLAGS_ATIM | FSTFLAGS_MTIM,
        ),
        Ok(()),
    );
    c.eq(
        "path times",
        stat(DIR, "t", true).map(|s| (s.atim, s.mtim)),
        Ok((7_000_000_000, 8_000_000_000)),
    );
    path_symlink("t", DIR, "tl").unwrap();
    c.eq(
        "set times through symlink",
        path_filestat_set_times(
            DIR,
            LOOKUPFLAGS_SYMLINK_FOLLOW,
            "tl",
            0,
            9_000_000_000,
            FSTFLAGS_MTIM,
        ),
        Ok(()),
    );
    c.eq(
        "target changed",
        stat(DIR, "t", true).map(|s| s.mtim),
        Ok(9_000_000_000),
    );
    c.eq(
        "set times on symlink itself",
        path_filestat_set_times(DIR, 0, "tl", 0, 4_000_000_000, FSTFLAGS_MTIM),
        Ok(()),
    );
    c.eq(
        "symlink time",
        stat(DIR, "tl", false).map(|s| s.mtim),
        Ok(4_000_000_000),
    );
    c.eq(
        "target untouched",
        stat(DIR, "t", true).map(|s| s.mtim),
        Ok(9_000_000_000),
    );
    c.eq(
        "set times now",
        path_filestat_set_times(DIR, 0, "t", 0, 0, FSTFLAGS_MTIM_NOW),
        Ok(()),
    );
    let now = clock_time_get(CLOCKID_REALTIME, 1).unwrap();
    c.that(
        "mtime now",
        "recent",
        stat(DIR, "t", true).map(|s| now.abs_diff(s.mtim) < 60_000_000_000) == Ok(true),
    );
    c.eq(
        "set times missing",
        path_filestat_set_times(DIR, 0, "zz", 0, 0, FSTFLAGS_MTIM_NOW),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "set times on dir fd",
        fd_filestat_set_times(dfd, 0, 6_000_000_000, FSTFLAGS_MTIM),
        Ok(()),
    );
    c.eq(
        "dir time",
        stat(DIR, "a", true).map(|s| s.mtim),
        Ok(6_000_000_000),
    );
    let before = stat(DIR, "a", true).unwrap();
    put(DIR, "a/new", b"").unwrap();
    let after = stat(DIR, "a", true).unwrap();
    c.that(
        "creating an entry updates the dir mtime",
        "advanced",
        after.mtim > before.mtim,
    );
    // Paths with three directories and more on the way, which a host
    // directory takes in one step: the same answers as name by name.
    for d in ["p", "p/q", "p/q/r"] {
        path_create_directory(DIR, d).unwrap();
    }
    put(DIR, "p/q/r/file", b"deep").unwrap();
    c.eq("deep mkdir", path_create_directory(DIR, "p/q/r/s"), Ok(()));
    c.eq(
        "deep mkdir existing",
        path_create_directory(DIR, "p/q/r/s"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "deep mkdir over a file",
        path_create_directory(DIR, "p/q/r/file"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "deep mkdir in a missing directory",
        path_create_directory(DIR, "p/q/none/s"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep mkdir under a file",
        path_create_directory(DIR, "p/q/r/file/x"),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "deep symlink",
        path_symlink("../file", DIR, "p/q/r/s/up"),
        Ok(()),
    );
    c.eq(
        "deep symlink existing",
        path_symlink("x", DIR, "p/q/r/s/up"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "deep symlink in a missing directory",
        path_symlink("x", DIR, "p/q/none/up"),
        Err(ERRNO_NOENT),
    );
    let readlink = |path: &str| {
        let mut buf = [0u8; 64];
        path_readlink(DIR, path, buf.as_mut_ptr(), buf.len())
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    c.eq(
        "deep readlink",
        readlink("p/q/r/s/up"),
        Ok("../file".to_string()),
    );
    c.eq(
        "deep readlink of a directory",
        readlink("p/q/r/s"),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "deep readlink missing",
        readlink("p/q/r/s/none"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep stat",
        stat(DIR, "p/q/r/file", true).map(|s| (kind(s.filetype), s.size)),
        Ok(("REGULAR_FILE", 4)),
    );
    c.eq(
        "deep lstat of a symlink",
        stat(DIR, "p/q/r/s/up", false).map(|s| kind(s.filetype)),
        Ok("SYMBOLIC_LINK"),
    );
    c.eq(
        "deep stat through a symlink",
        stat(DIR, "p/q/r/s/up", true).map(|s| s.size),
        Ok(4),
    );
    path_symlink("..", DIR, "p/q/r/s/back").unwrap();
    c.eq(
        "deep stat with a symlink on the way",
        stat(DIR, "p/q/r/s/back/file", true).map(|s| s.size),
        Ok(4),
    );
    c.eq(
        "deep stat missing",
        stat(DIR, "p/q/r/none", true).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep stat in a missing directory",
        stat(DIR, "p/q/none/x", true).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep stat under a file",
        stat(DIR, "p/q/r/file/x", true).map(|_| ()),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "deep unlink of a directory",
        path_unlink_file(DIR, "p/q/r/s"),
        Err(ERRNO_ISDIR),
    );
    c.eq(
        "deep unlink missing",
        path_unlink_file(DIR, "p/q/r/none"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep unlink with a symlink on the way",
        path_unlink_file(DIR, "p/q/r/s/back/file"),
        Ok(()),
    );
    c.eq(
        "deep unlink gone",
        stat(DIR, "p/q/r/file", false).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep rmdir not empty",
        path_remove_directory(DIR, "p/q/r/s"),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq(
        "deep rmdir of a symlink",
        path_remove_directory(DIR, "p/q/r/s/up"),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "deep rmdir missing",
        path_remove_directory(DIR, "p/q/r/none"),
        Err(ERRNO_NOENT),
    );
    c.eq("deep unlink", path_unlink_file(DIR, "p/q/r/s/up"), Ok(()));
    c.eq(
        "deep unlink of a symlink",
        path_unlink_file(DIR, "p/q/r/s/back"),
        Ok(()),
    );
    c.eq("deep rmdir", path_remove_directory(DIR, "p/q/r/s"), Ok(()));
    c.eq(
        "deep rmdir gone",
        stat(DIR, "p/q/r/s", false).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep mkdir again",
        path_create_directory(DIR, "p/q/r/s"),
        Ok(()),
    );
    c.eq(
        "deep listing after",
        open_dir(DIR, "p/q/r").and_then(list),
        Ok(vec![
            "..:DIRECTORY".to_string(),
            ".:DIRECTORY".to_string(),
            "s:DIRECTORY".to_string(),
        ]),
    );
    // Renames where either path has three directories on the way.
    put(DIR, "p/q/r/s/a", b"a").unwrap();
    put(DIR, "p/q/r/s/b", b"b").unwrap();
    c.eq(
        "deep rename",
        path_rename(DIR, "p/q/r/s/a", DIR, "p/q/r/s/a2"),
        Ok(()),
    );
    c.eq(
        "deep rename over a file",
        path_rename(DIR, "p/q/r/s/a2", DIR, "p/q/r/s/b"),
        Ok(()),
    );
    c.eq(
        "deep rename replaced it",
        get(DIR, "p/q/r/s/b"),
        Ok(b"a".to_vec()),
    );
    c.eq(
        "deep rename across directories",
        path_rename(DIR, "p/q/r/s/b", DIR, "p/q/r/moved"),
        Ok(()),
    );
    c.eq(
        "deep rename to a short path",
        path_rename(DIR, "p/q/r/moved", DIR, "top"),
        Ok(()),
    );
    c.eq(
        "deep rename from a short path",
        path_rename(DIR, "top", DIR, "p/q/r/s/back-again"),
        Ok(()),
    );
    c.eq(
        "deep rename missing",
        path_rename(DIR, "p/q/r/s/none", DIR, "p/q/r/s/x"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "deep rename into a missing directory",
        path_rename(DIR, "p/q/r/s/back-again", DIR, "p/q/none/s/x"),
        Err(ERRNO_NOENT),
    );
    path_create_directory(DIR, "p/q/r/s/full").unwrap();
    put(DIR, "p/q/r/s/full/x", b"").unwrap();
    path_create_directory(DIR, "p/q/r/s/empty").unwrap();
    c.eq(
        "deep rename of a directory over a full one",
        path_rename(DIR, "p/q/r/s/empty", DIR, "p/q/r/s/full"),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq(
        "deep rename of a file over a directory",
        path_rename(DIR, "p/q/r/s/back-again", DIR, "p/q/r/s/empty"),
        Err(ERRNO_ISDIR),
    );
    c.eq(
        "deep rename of a directory into itself",
        path_rename(DIR, "p/q/r/s", DIR, "p/q/r/s/full/inside"),
        Err(ERRNO_INVAL),
    );
    path_symlink("s", DIR, "p/q/r/via").unwrap();
    c.eq(
        "deep rename with a symlink on the way",
        path_rename(DIR, "p/q/r/via/back-again", DIR, "p/q/r/via/again"),
        Ok(()),
    );
    c.eq(
        "deep rename through it",
        get(DIR, "p/q/r/s/again"),
        Ok(b"a".to_vec()),
    );
    c.eq(
        "deep rename of a directory over an empty one",
        path_rename(DIR, "p/q/r/s/full", DIR, "p/q/r/s/empty"),
        Ok(()),
    );
    c.eq(
        "deep rename moved the directory",
        open_dir(DIR, "p/q/r/s/empty")
            .and_then(list)
            .map(|l| l.len()),
        Ok(3),
    );
}
