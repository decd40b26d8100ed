//! The host-side API of `Vfs`, and that host and guests see one tree.

mod common;

use std::time::{Duration, SystemTime};
use wasi_common_vfs::storage::FileKind;
use wasi_common_vfs::{Error, Vfs};

#[test]
fn write_read_and_metadata() {
    let vfs = Vfs::new();
    vfs.write("/a.txt", b"hello").unwrap();
    assert_eq!(vfs.read("/a.txt").unwrap(), b"hello");
    assert_eq!(
        vfs.read("a.txt").unwrap(),
        b"hello",
        "relative paths start at the root"
    );
    vfs.write("/a.txt", b"hi").unwrap();
    assert_eq!(vfs.read("/a.txt").unwrap(), b"hi", "write replaces");
    let m = vfs.metadata("/a.txt").unwrap();
    assert!(m.is_file());
    assert_eq!((m.size, m.nlink), (2, 1));
    assert!(matches!(
        vfs.read("/missing").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        vfs.read("/").map_err(Error::into_innermost),
        Err(Error::IsDir)
    ));
    assert!(matches!(
        vfs.write("/no/such/dir/f", b"")
            .map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert_eq!(
        vfs.read("/../../a.txt").unwrap(),
        b"hi",
        "`..` at the root stays there"
    );
}

#[test]
fn directories() {
    let vfs = Vfs::new();
    vfs.create_dir_all("/x/y/z").unwrap();
    vfs.create_dir_all("/x/y/z/").unwrap();
    vfs.write("/x/f", b"").unwrap();
    assert!(matches!(
        vfs.create_dir_all("/x/f/g").map_err(Error::into_innermost),
        Err(Error::NotDir)
    ));
    assert!(matches!(
        vfs.create_dir_all("/x/f").map_err(Error::into_innermost),
        Err(Error::Exists)
    ));
    assert!(matches!(
        vfs.create_dir("/x").map_err(Error::into_innermost),
        Err(Error::Exists)
    ));
    let names: Vec<_> = vfs
        .read_dir("/x")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("y".to_string(), FileKind::Dir),
            ("f".to_string(), FileKind::File)
        ]
    );
    assert!(matches!(
        vfs.read_dir("/x/f").map_err(Error::into_innermost),
        Err(Error::NotDir)
    ));
    assert!(matches!(
        vfs.remove("/x/y").map_err(Error::into_innermost),
        Err(Error::NotEmpty)
    ));
    vfs.remove("/x/y/z").unwrap();
    vfs.remove("/x/f").unwrap();
    assert_eq!(vfs.read_dir("/x").unwrap().len(), 1);
    assert!(matches!(
        vfs.remove("/x/f").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
}

#[test]
fn large_directory_listing_is_complete() {
    let vfs = Vfs::new();
    for i in 0..3000 {
        vfs.write(&format!("/f{i}"), b"").unwrap();
    }
    let entries = vfs.read_dir("/").unwrap();
    assert_eq!(entries.len(), 3000);
    assert_eq!(entries[2999].name, "f2999");
}

#[test]
fn links_rename_and_times() {
    let vfs = Vfs::new();
    vfs.write("/f", b"data").unwrap();
    vfs.symlink("f", "/l").unwrap();
    vfs.symlink("/f", "/abs").unwrap();
    assert_eq!(vfs.read("/l").unwrap(), b"data");
    assert_eq!(
        vfs.read("/abs").unwrap(),
        b"data",
        "the host may follow absolute links"
    );
    assert_eq!(vfs.read_link("/l").unwrap(), "f");
    assert!(vfs.symlink_metadata("/l").unwrap().is_symlink());
    vfs.hard_link("/f", "/h").unwrap();
    assert_eq!(vfs.metadata("/f").unwrap().nlink, 2);
    vfs.rename("/h", "/h2").unwrap();
    assert_eq!(vfs.read("/h2").unwrap(), b"data");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    vfs.set_times("/f", Some(t), Some(t)).unwrap();
    let m = vfs.metadata("/h2").unwrap();
    assert_eq!((m.atime, m.mtime), (t, t));
    vfs.set_len("/f", 10).unwrap();
    assert_eq!(vfs.read("/f").unwrap(), b"data\0\0\0\0\0\0");
}

#[test]
fn copy_in_brings_a_host_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("src/deep")).unwrap();
    std::fs::write(root.join("src/deep/file.txt"), b"contents").unwrap();
    std::fs::write(root.join("top"), b"t").unwrap();
    std::os::unix::fs::symlink("src/deep/file.txt", root.join("link")).unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 365);
    std::fs::File::options()
        .write(true)
        .open(root.join("top"))
        .unwrap()
        .set_modified(old)
        .unwrap();

    let vfs = Vfs::new();
    vfs.copy_in(root, "/imported").unwrap();
    assert_eq!(
        vfs.read("/imported/src/deep/file.txt").unwrap(),
        b"contents"
    );
    assert_eq!(
        vfs.read_link("/imported/link").unwrap(),
        "src/deep/file.txt"
    );
    assert_eq!(vfs.read("/imported/link").unwrap(), b"contents");
    assert_eq!(vfs.metadata("/imported/top").unwrap().mtime, old);
    let host_dir_mtime = std::fs::metadata(root.join("src"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(vfs.metadata("/imported/src").unwrap().mtime, host_dir_mtime);
    assert!(matches!(
        vfs.copy_in(root.join("missing"), "/x"),
        Err(Error::HostDir { .. })
    ));
    assert!(vfs.symlink_metadata("/x").is_err(), "a failed copy made /x");
}

#[test]
fn preopen_needs_an_existing_directory() {
    let vfs = Vfs::new();
    vfs.write("/f", b"").unwrap();
    let ctx = wasi_common::sync::WasiCtxBuilder::new().build();
    assert!(matches!(
        vfs.preopen(&ctx, "/missing", "/m")
            .map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        vfs.preopen(&ctx, "/f", "/f").map_err(Error::into_innermost),
        Err(Error::NotDir)
    ));
    vfs.preopen(&ctx, "/", "/").unwrap();
}

/// The guest writes and the host reads the same bytes, and the other way.
#[test]
fn host_and_guest_share_one_tree() {
    let vfs = Vfs::new();
    vfs.create_dir("/sub2").unwrap();
    vfs.write("/sub2/from-host", b"host bytes").unwrap();
    let out = common::run_on_vfs(&common::guest("files"), &[], &vfs);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(vfs.read("/after").unwrap(), b"data+more");
    assert!(matches!(
        vfs.metadata("/gone").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));

    let clone = vfs.clone();
    assert_eq!(clone.read("/sub2/from-host").unwrap(), b"host bytes");
}

/// Two different trees are two devices: rename and link between them fail
/// with EXDEV and change nothing.
#[test]
fn rename_between_two_trees_is_exdev() {
    let (a, b) = (Vfs::new(), Vfs::new());
    let out = common::run_with(&common::guest("rename"), &["xdev"], false, |ctx| {
        a.preopen(ctx, "/", "/a").unwrap();
        b.preopen(ctx, "/", "/b").unwrap();
    });
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(a.read("/x").unwrap(), b"x");
    assert!(b.read_dir("/").unwrap().is_empty());
    assert_ne!(a.metadata("/").unwrap().dev, b.metadata("/").unwrap().dev);
}

/// `remove_dir_all` removes a tree of any depth, removes symlinks without
/// following them, refuses `/`, and stops at a mount with `EBUSY`.
#[test]
fn remove_dir_all_removes_a_tree_and_nothing_else() {
    let vfs = Vfs::builder()
        .mount("/", wasi_common_vfs::MemFs::new())
        .mount("/work/keep/m", wasi_common_vfs::MemFs::new())
        .build()
        .unwrap();
    vfs.write("/outside", b"stays").unwrap();
    // 4,000 levels, deeper than any path: made 1,000 at a time through
    // views.
    vfs.create_dir("/deep").unwrap();
    let step = vec!["d"; 1000].join("/");
    let mut view = vfs.subtree("/deep").unwrap();
    for _ in 0..4 {
        view.create_dir_all(&step).unwrap();
        view = view.subtree(&step).unwrap();
    }
    view.write("/f", b"x").unwrap();
    drop(view);
    vfs.symlink("/outside", "/deep/d/link-to-file").unwrap();
    vfs.symlink("/", "/deep/d/link-to-root").unwrap();
    std::thread::spawn(move || {
        vfs.remove_dir_all("/deep").unwrap();
        assert!(matches!(
            vfs.metadata("/deep").map_err(Error::into_innermost),
            Err(Error::NotFound)
        ));
        assert_eq!(vfs.read("/outside").unwrap(), b"stays");

        assert!(matches!(
            vfs.remove_dir_all("/").map_err(|e| e.innermost().to_string()),
            Err(e) if e == Error::Invalid.to_string()
        ));
        vfs.write("/work/a", b"1").unwrap();
        let busy = vfs.remove_dir_all("/work").unwrap_err();
        assert!(matches!(busy.innermost(), Error::Busy), "{busy}");
        assert!(busy.to_string().contains('m'), "{busy}");
        assert!(vfs.metadata("/work/keep/m").unwrap().is_dir());
        // A file is removed too, and a missing path is ENOENT.
        vfs.remove_dir_all("/outside").unwrap();
        assert!(matches!(
            vfs.remove_dir_all("/outside")
                .map_err(Error::into_innermost),
            Err(Error::NotFound)
        ));
    })
    .join()
    .expect("no stack overflow on a 2 MiB thread");
}

/// The crate's errors become `std::io::Error`s of the matching kind, with
/// the message (and the path) kept.
#[test]
fn errors_convert_to_io_errors_of_the_right_kind() {
    let vfs = Vfs::new();
    let e: std::io::Error = vfs.read("/missing").unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    vfs.write("/f", b"").unwrap();
    let e: std::io::Error = vfs.create_dir("/f").unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    let e: std::io::Error = vfs.read_dir("/f").unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::NotADirectory);
    let kind: wasi_common_vfs::FileKind = vfs.symlink_metadata("/f").unwrap().kind;
    assert_eq!(kind, wasi_common_vfs::FileKind::File);
}
