//! Confinement and limits: no `..`, absolute path or symlink reaches outside
//! a preopened directory, through any path function; name and path length
//! limits; empty paths.

use vfs_test_guests::*;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    put(DIR, "f", b"inside").unwrap();
    path_create_directory(DIR, "a").unwrap();
    put(DIR2, "s", b"sub").unwrap();

    // `..` and absolute paths
    c.eq(
        "dot-dot",
        stat(DIR, "..", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "dot-dot file",
        stat(DIR, "../f", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "dot-dot chain",
        stat(DIR, "a/../../../../etc/passwd", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "down and back",
        stat(DIR, "a/../f", true).map(|s| s.size),
        Ok(6),
    );
    c.eq(
        "out and back in",
        stat(DIR2, "../sub2/s", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "absolute",
        stat(DIR, "/etc/passwd", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "absolute root",
        stat(DIR, "/", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "second preopen cannot see its parent",
        get(DIR2, "../f").map(|_| ()),
        Err(ERRNO_PERM),
    );

    // symlinks that point out
    c.eq("symlink to dot-dot", path_symlink("..", DIR, "up"), Ok(()));
    // "root" (to "/") and "pw" (to "/etc/passwd") were planted by the host.
    c.eq(
        "symlink to root",
        path_symlink("/", DIR, "root2"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "symlink to abs file",
        path_symlink("/etc/passwd", DIR, "pw2"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "symlink up two",
        path_symlink("../..", DIR, "a/upup"),
        Ok(()),
    );
    c.eq(
        "follow dot-dot link",
        stat(DIR, "up", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "through dot-dot link",
        get(DIR, "up/f").map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "follow root link",
        stat(DIR, "root", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "through root link",
        get(DIR, "root/etc/passwd").map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq("open abs link", get(DIR, "pw").map(|_| ()), Err(ERRNO_PERM));
    c.eq(
        "two levels up",
        stat(DIR, "a/upup", true).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "lstat of escaping link is fine",
        stat(DIR, "root", false).map(|s| kind(s.filetype)),
        Ok("SYMBOLIC_LINK"),
    );
    // Reading a link's text is not an escape; cap-std still refuses it.
    let expected = if on_reference() {
        Err(ERRNO_PERM)
    } else {
        Ok(1)
    };
    c.eq(
        "readlink of absolute link",
        {
            let mut buf = [0u8; 16];
            path_readlink(DIR, "root", buf.as_mut_ptr(), 16)
        },
        expected,
    );
    c.eq(
        "create through escaping link",
        open(DIR, "up/new", OFLAGS_CREAT, RW, 0).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq(
        "creat on abs dangling link",
        open(DIR, "pw", OFLAGS_CREAT, RW, 0).map(|_| ()),
        Err(ERRNO_PERM),
    );

    // every path function refuses to leave
    c.eq(
        "open",
        open(DIR, "../x", OFLAGS_CREAT, RW, 0).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq("mkdir", path_create_directory(DIR, "../x"), Err(ERRNO_PERM));
    c.eq("rmdir", path_remove_directory(DIR, "../x"), Err(ERRNO_PERM));
    c.eq("unlink", path_unlink_file(DIR, "../x"), Err(ERRNO_PERM));
    c.eq(
        "symlink at",
        path_symlink("f", DIR, "../x"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "readlink",
        path_readlink(DIR, "../x", [0u8; 4].as_mut_ptr(), 4),
        Err(ERRNO_PERM),
    );
    c.eq(
        "rename from",
        path_rename(DIR, "../x", DIR, "y"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "rename to",
        path_rename(DIR, "f", DIR, "../f"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "link from",
        path_link(DIR, 0, "../x", DIR, "y"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "link to",
        path_link(DIR, 0, "f", DIR, "/tmp/f"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "set times",
        path_filestat_set_times(DIR, 0, "../x", 0, 0, FSTFLAGS_MTIM_NOW),
        Err(ERRNO_PERM),
    );
    c.eq(
        "stat nofollow",
        stat(DIR, "../x", false).map(|_| ()),
        Err(ERRNO_PERM),
    );
    c.eq("file untouched", get(DIR, "f"), Ok(b"inside".to_vec()));

    // names and paths
    let long = "n".repeat(255);
    c.eq("255-byte name", put(DIR, &long, b"x"), Ok(()));
    c.eq(
        "256-byte name",
        put(DIR, &"n".repeat(256), b"x"),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "256-byte mkdir",
        path_create_directory(DIR, &"m".repeat(256)),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "256-byte intermediate",
        stat(DIR, &format!("{}/x", "m".repeat(256)), true).map(|_| ()),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "long path",
        stat(DIR, &"a/".repeat(2100), true).map(|_| ()),
        Err(ERRNO_NAMETOOLONG),
    );
    c.eq(
        "empty path",
        stat(DIR, "", true).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "empty open",
        open(DIR, "", 0, RIGHTS_FD_READ, 0).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "empty symlink target",
        path_symlink("", DIR, "e"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "missing intermediate",
        stat(DIR, "nope/x", true).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "file as intermediate",
        stat(DIR, "f/x", true).map(|_| ()),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "dots only",
        stat(DIR, "./././a/./.", true).map(|s| kind(s.filetype)),
        Ok("DIRECTORY"),
    );
}
