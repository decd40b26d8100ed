//! `path_rename`: atomic replacement and every POSIX refusal.

use vfs_test_guests::*;
use wasi::*;

fn main() {
    let mut c = Checks::new();
    unsafe { run(&mut c) };
    c.finish();
}

unsafe fn run(c: &mut Checks) {
    if std::env::args().nth(1).as_deref() == Some("xdev") {
        // DIR and DIR2 belong to two different trees.
        put(DIR, "x", b"x").unwrap();
        c.eq(
            "rename across trees",
            path_rename(DIR, "x", DIR2, "x"),
            Err(ERRNO_XDEV),
        );
        c.eq(
            "link across trees",
            path_link(DIR, 0, "x", DIR2, "x"),
            Err(ERRNO_XDEV),
        );
        c.eq("source kept", get(DIR, "x"), Ok(b"x".to_vec()));
        return;
    }
    put(DIR, "a", b"A").unwrap();
    put(DIR, "b", b"B").unwrap();
    path_create_directory(DIR, "d1").unwrap();
    path_create_directory(DIR, "d2").unwrap();
    path_create_directory(DIR, "full").unwrap();
    put(DIR, "full/x", b"").unwrap();
    path_create_directory(DIR, "d1/sub").unwrap();

    c.eq("rename file", path_rename(DIR, "a", DIR, "a2"), Ok(()));
    c.eq(
        "old name gone",
        stat(DIR, "a", false).map(|_| ()),
        Err(ERRNO_NOENT),
    );
    c.eq("new name", get(DIR, "a2"), Ok(b"A".to_vec()));
    let b_ino = stat(DIR, "b", false).unwrap().ino;
    let holder = open(DIR, "b", 0, RIGHTS_FD_READ, 0).unwrap();
    c.eq("replace file", path_rename(DIR, "a2", DIR, "b"), Ok(()));
    c.eq("replaced contents", get(DIR, "b"), Ok(b"A".to_vec()));
    c.eq(
        "replaced file still open",
        read(holder, 10),
        Ok(b"B".to_vec()),
    );
    c.eq(
        "replaced file unlinked",
        fd_filestat_get(holder).map(|s| (s.ino == b_ino, s.nlink)),
        Ok((true, 0)),
    );
    close(holder);
    c.eq("rename to itself", path_rename(DIR, "b", DIR, "b"), Ok(()));
    path_link(DIR, 0, "b", DIR, "b_link").unwrap();
    c.eq(
        "rename onto own hard link",
        path_rename(DIR, "b", DIR, "b_link"),
        Ok(()),
    );
    c.eq(
        "both names remain",
        stat(DIR, "b", false).map(|s| s.nlink),
        Ok(2),
    );
    c.eq(
        "rename missing",
        path_rename(DIR, "zz", DIR, "y"),
        Err(ERRNO_NOENT),
    );
    c.eq(
        "rename into missing dir",
        path_rename(DIR, "b", DIR, "none/y"),
        Err(ERRNO_NOENT),
    );

    c.eq(
        "file over dir",
        path_rename(DIR, "b", DIR, "d2"),
        Err(ERRNO_ISDIR),
    );
    c.eq(
        "dir over file",
        path_rename(DIR, "d2", DIR, "b"),
        Err(ERRNO_NOTDIR),
    );
    c.eq(
        "dir over non-empty dir",
        path_rename(DIR, "d2", DIR, "full"),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq(
        "dir into itself",
        path_rename(DIR, "d1", DIR, "d1/sub/inside"),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "dir onto its child",
        path_rename(DIR, "d1", DIR, "d1/sub"),
        Err(ERRNO_INVAL),
    );
    c.eq(
        "file with trailing slash",
        path_rename(DIR, "b/", DIR, "c"),
        Err(ERRNO_NOTDIR),
    );

    let d2_ino = stat(DIR, "d2", false).unwrap().ino;
    c.eq(
        "dir over empty dir",
        path_rename(DIR, "d2", DIR, "d1/sub"),
        Ok(()),
    );
    c.eq(
        "moved dir",
        stat(DIR, "d1/sub", false).map(|s| s.ino == d2_ino),
        Ok(true),
    );
    c.eq(
        "source parent nlink",
        stat(DIR, ".", false).map(|s| s.nlink),
        Ok(5),
    );
    c.eq(
        "dest parent nlink",
        stat(DIR, "d1", false).map(|s| s.nlink),
        Ok(3),
    );
    put(DIR, "d1/sub/f", b"deep").unwrap();
    c.eq(
        "move dir up",
        path_rename(DIR, "d1/sub", DIR, "top"),
        Ok(()),
    );
    c.eq("moved subtree", get(DIR, "top/f"), Ok(b"deep".to_vec()));
    c.eq(
        "dot-dot follows the move",
        stat(DIR, "top/..", false).map(|s| s.nlink),
        Ok(6),
    );
    c.eq(
        "dir with trailing slashes",
        path_rename(DIR, "top/", DIR, "top2/"),
        Ok(()),
    );

    c.eq(
        "rename across preopens",
        path_rename(DIR, "b", DIR2, "moved"),
        Ok(()),
    );
    c.eq("arrived", get(DIR2, "moved"), Ok(b"A".to_vec()));
    c.eq(
        "dir across preopens",
        path_rename(DIR, "top2", DIR2, "tree"),
        Ok(()),
    );
    c.eq(
        "subtree arrived",
        get(DIR, "sub2/tree/f"),
        Ok(b"deep".to_vec()),
    );
    c.eq(
        "symlink renamed, not its target",
        {
            path_symlink("sub2/moved", DIR, "sl").unwrap();
            path_rename(DIR, "sl", DIR, "sl2")
                .and_then(|_| stat(DIR, "sl2", false))
                .map(|s| kind(s.filetype))
        },
        Ok("SYMBOLIC_LINK"),
    );
    let listing = open_dir(DIR, ".").and_then(list);
    c.eq(
        "final tree",
        listing,
        Ok([
            "..:DIRECTORY",
            ".:DIRECTORY",
            "b_link:REGULAR_FILE",
            "d1:DIRECTORY",
            "full:DIRECTORY",
            "sl2:SYMBOLIC_LINK",
            "sub2:DIRECTORY",
        ]
        .into_iter()
        .map(String::from)
        .collect()),
    );

    // Linux rename(2) refuses a trailing slash on a file's new name; cap-std's
    // host directory drops the slash and renames.
    let expected = if on_reference() {
        Ok(())
    } else {
        Err(ERRNO_NOTDIR)
    };
    c.eq(
        "trailing slash: file to name/",
        path_rename(DIR, "b_link", DIR, "c/"),
        expected,
    );

    // Which error wins when two apply, as Linux orders them: both paths
    // are resolved first, then `.`/`..` as a last component, then the
    // source's absence; a directory holding the source beats a kind
    // mismatch.
    c.eq(
        "two errors: missing source onto .",
        path_rename(DIR, "missing", DIR, "."),
        Err(ERRNO_BUSY),
    );
    c.eq(
        "two errors: . into a missing directory",
        path_rename(DIR, ".", DIR, "missing/x"),
        Err(ERRNO_NOENT),
    );
    path_create_directory(DIR, "holder").unwrap();
    path_symlink("x", DIR, "holder/s").unwrap();
    c.eq(
        "two errors: symlink onto the directory holding it",
        path_rename(DIR, "holder/s", DIR, "holder"),
        Err(ERRNO_NOTEMPTY),
    );
    c.eq(
        "two errors: link a missing file to ..",
        path_link(DIR, 0, "missing", DIR, ".."),
        Err(ERRNO_PERM),
    );
}
