//! Symbolic and hard links: creation, reading, following (or not), loops,
//! link counts, and links between two preopened directories.

use vfs_test_guests::*;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

fn readlink(dir: Fd, path: &str, len: usize) -> Result<String, Errno> {
    let mut buf = vec![0u8; len];
    let n = unsafe { path_readlink(dir, path, buf.as_mut_ptr(), len)? };
    buf.truncate(n);
    Ok(String::from_utf8(buf).unwrap())
}

unsafe fn run(c: &mut Checks) {
    put(DIR, "target", b"payload").unwrap();
    path_create_directory(DIR, "d").unwrap();

    // symlinks
    c.eq("symlink", path_symlink("target", DIR, "ln"), Ok(()));
    c.eq(
        "symlink existing",
        path_symlink("x", DIR, "ln"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "symlink over file",
        path_symlink("x", DIR, "target"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "symlink in missing dir",
        path_symlink("x", DIR, "none/ln"),
        Err(ERRNO_NOENT),
    );
    c.eq("readlink", readlink(DIR, "ln", 64), Ok("target".into()));
    c.eq(
        "readlink truncates",
        readlink(DIR, "ln", 3),
        Ok("tar".into()),
    );
    c.eq(
        "readlink on file",
        readlink(DIR, "target", 64),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "readlink missing",
        readlink(DIR, "zz", 64),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "read through symlink",
        get(DIR, "ln"),
        Ok(b"payload".to_vec()),
    );
    c.eq(
        "stat follows",
        stat(DIR, "ln", true).map(|s| (kind(s.filetype), s.size)),
        Ok(("REGULAR_FILE", 7)),
    );
    c.eq(
        "lstat",
        stat(DIR, "ln", false).map(|s| (kind(s.filetype), s.size)),
        Ok(("SYMBOLIC_LINK", 6)),
    );
    let nofollow = path_open(DIR, 0, "ln", 0, RIGHTS_FD_READ, ALL, 0);
    c.eq(
        "open nofollow on symlink",
        nofollow.map(|_| ()),
        Err(ERRNO_LOOP),
    );
    c.eq(
        "creat|excl on symlink",
        open(DIR, "ln", OFLAGS_CREAT | OFLAGS_EXCL, RW, 0).map(|_| ()),
        Err(ERRNO_EXIST),
    );

    // symlinks to directories and in the middle of paths
    put(DIR, "d/inner", b"in").unwrap();
    path_symlink("d", DIR, "dl").unwrap();
    path_symlink("../target", DIR, "d/up").unwrap();
    c.eq(
        "symlink dir in path",
        get(DIR, "dl/inner"),
        Ok(b"in".to_vec()),
    );
    c.eq(
        "relative symlink with dot-dot",
        get(DIR, "d/up"),
        Ok(b"payload".to_vec()),
    );
    // Linux lstat(2) follows a symlink named with a trailing slash and then
    // needs a directory; cap-std's host directory ignores the slash.
    let (dir_kind, file_link) = if on_reference() {
        ("SYMBOLIC_LINK", Ok(()))
    } else {
        ("DIRECTORY", Err(ERRNO_NOTDIR))
    };
    c.eq(
        "trailing slash: lstat follows",
        stat(DIR, "dl/", false).map(|s| kind(s.filetype)),
        Ok(dir_kind),
    );
    c.eq(
        "trailing slash: lstat of file symlink",
        stat(DIR, "ln/", false).map(|_| ()),
        file_link,
    );
    c.eq("unlink symlink to dir", path_unlink_file(DIR, "dl"), Ok(()));
    c.eq(
        "target dir kept",
        stat(DIR, "d/inner", true).map(|s| s.size),
        Ok(2),
    );

    // dangling symlinks and creation through them
    path_symlink("missing", DIR, "dang").unwrap();
    c.eq(
        "stat dangling",
        stat(DIR, "dang", true).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "lstat dangling",
        stat(DIR, "dang", false).map(|s| kind(s.filetype)),
        Ok("SYMBOLIC_LINK"),
    );
    c.eq(
        "creat through dangling",
        open(DIR, "dang", OFLAGS_CREAT, RW, 0).map(close),
        Ok(()),
    );
    c.eq(
        "created target",
        stat(DIR, "missing", false).map(|s| kind(s.filetype)),
        Ok("REGULAR_FILE"),
    );
    c.eq(
        "mkdir over dangling",
        path_create_directory(DIR, "dang"),
        Err(ERRNO_EXIST),
    );

    // loops and hop limits
    path_symlink("loop2", DIR, "loop1").unwrap();
    path_symlink("loop1", DIR, "loop2").unwrap();
    c.eq(
        "loop",
        stat(DIR, "loop1", true).map(|_| ()),
        Err(ERRNO_LOOP),
    );
    c.eq(
        "open loop",
        open(DIR, "loop1", 0, RIGHTS_FD_READ, 0).map(|_| ()),
        Err(ERRNO_LOOP),
    );
    c.eq(
        "lstat loop",
        stat(DIR, "loop1", false).map(|s| kind(s.filetype)),
        Ok("SYMBOLIC_LINK"),
    );
    path_create_directory(DIR, "chain").unwrap();
    put(DIR, "chain/end", b"end").unwrap();
    path_symlink("end", DIR, "chain/c0").unwrap();
    for i in 1..=40 {
        path_symlink(&format!("c{}", i - 1), DIR, &format!("chain/c{i}")).unwrap();
    }
    c.eq("40 hops", get(DIR, "chain/c39"), Ok(b"end".to_vec()));
    c.eq(
        "41 hops",
        get(DIR, "chain/c40").map(|_| ()),
        Err(ERRNO_LOOP),
    );

    // hard links
    c.eq("link", path_link(DIR, 0, "target", DIR, "hard"), Ok(()));
    let (a, b) = (
        stat(DIR, "target", false).unwrap(),
        stat(DIR, "hard", false).unwrap(),
    );
    c.eq("same inode", Ok::<_, Errno>(a.ino == b.ino), Ok(true));
    c.eq("nlink 2", Ok::<_, Errno>(a.nlink), Ok(2));
    put(DIR, "hard", b"changed").unwrap();
    c.eq("shared data", get(DIR, "target"), Ok(b"changed".to_vec()));
    c.eq(
        "link existing",
        path_link(DIR, 0, "target", DIR, "hard"),
        Err(ERRNO_EXIST),
    );
    c.eq(
        "link missing",
        path_link(DIR, 0, "zz", DIR, "h2"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "link dir",
        path_link(DIR, 0, "d", DIR, "dhard"),
        Err(ERRNO_PERM),
    );
    c.eq(
        "link follow flag",
        path_link(DIR, LOOKUPFLAGS_SYMLINK_FOLLOW, "ln", DIR, "h3"),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "link symlink itself",
        path_link(DIR, 0, "ln", DIR, "lnhard"),
        Ok(()),
    );
    c.eq(
        "hard-linked symlink",
        stat(DIR, "lnhard", false).map(|s| (kind(s.filetype), s.nlink)),
        Ok(("SYMBOLIC_LINK", 2)),
    );
    c.eq(
        "link across preopens",
        path_link(DIR, 0, "target", DIR2, "far"),
        Ok(()),
    );
    c.eq(
        "nlink 3",
        stat(DIR, "target", false).map(|s| s.nlink),
        Ok(3),
    );
    c.eq("far name", get(DIR, "sub2/far"), Ok(b"changed".to_vec()));
    c.eq("unlink one name", path_unlink_file(DIR, "hard"), Ok(()));
    c.eq(
        "nlink after unlink",
        stat(DIR2, "far", false).map(|s| s.nlink),
        Ok(2),
    );
    c.eq("data kept", get(DIR2, "far"), Ok(b"changed".to_vec()));
}
