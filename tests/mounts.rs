//! The mount table: host directories, read-only mounts and overlays that
//! guests (through `std::fs` and wasi-libc's preopen lookup) and the host API
//! see as one tree.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use wasi_common_vfs::{Changes, Error, HostDir, MemFs, Overlay, Storage, Vfs};

/// Runs the shell guest with `commands`, the tree preopened either as one
/// `/` or as one preopen per mount; returns its output lines.
fn shell(vfs: &Vfs, per_mount: bool, commands: &[&str]) -> Vec<String> {
    let out = common::run_with(&common::guest("shell"), commands, false, |ctx| {
        if per_mount {
            vfs.preopen_mounts(ctx).unwrap();
        } else {
            vfs.preopen(ctx, "/", "/").unwrap();
        }
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.lines().map(String::from).collect()
}

/// Everything under a host directory: kind, bytes or link target, mtime.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let what = if meta.is_dir() {
                pending.push(path.clone());
                "dir".to_owned()
            } else if meta.is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else {
                format!("file {:?}", std::fs::read(&path).unwrap())
            };
            out.insert(rel, format!("{what} mtime {:?}", meta.modified().unwrap()));
        }
    }
    out
}

/// The scenario of the issue: the host API writes into a mounted store, a
/// guest reads it with `cat` and `ls` and writes with `echo > file`, through
/// a single `/` preopen and through one preopen per mount.
fn session_scenario(store_kind: &str) {
    let host = tempfile::tempdir().unwrap();
    for per_mount in [false, true] {
        std::fs::remove_dir_all(host.path()).ok();
        std::fs::create_dir_all(host.path()).unwrap();
        let builder = Vfs::builder().mount("/", MemFs::new());
        let vfs = match store_kind {
            "host" => builder.mount("/mnt/session", HostDir::open(host.path()).unwrap()),
            "mem" => builder.mount("/mnt/session", MemFs::new()),
            _ => builder.mount(
                "/mnt/session",
                Overlay::new(HostDir::open(host.path()).unwrap()),
            ),
        }
        .build()
        .unwrap();
        vfs.create_dir_all("/mnt/session/workspace").unwrap();
        vfs.write("/mnt/session/workspace/hello.txt", b"hello from the host\n")
            .unwrap();

        let out = shell(
            &vfs,
            per_mount,
            &[
                "cat /mnt/session/workspace/hello.txt",
                "ls /mnt/session/workspace",
                "ls /mnt",
                "write /mnt/session/workspace/out.txt written by the guest",
                "ls /mnt/session/workspace",
            ],
        );
        let context = format!("{store_kind}, per_mount={per_mount}");
        assert_eq!(
            out,
            [
                "cat /mnt/session/workspace/hello.txt: hello from the host",
                "ls /mnt/session/workspace: hello.txt",
                "ls /mnt: session",
                "write /mnt/session/workspace/out.txt written by the guest: ",
                "ls /mnt/session/workspace: hello.txt out.txt",
            ],
            "{context}"
        );
        assert_eq!(
            vfs.read("/mnt/session/workspace/out.txt").unwrap(),
            b"written by the guest\n"
        );
        let on_disk = std::fs::read(host.path().join("workspace/out.txt"));
        match store_kind {
            "host" => assert_eq!(on_disk.unwrap(), b"written by the guest\n", "{context}"),
            // The overlay's writes stay in memory; its host directory (here
            // empty) is never touched.
            _ => assert!(on_disk.is_err(), "{context}"),
        }
    }
}

#[test]
fn guest_sees_host_writes_in_a_host_dir_mount_and_writes_to_disk() {
    session_scenario("host");
}

#[test]
fn same_scenario_under_an_in_memory_mount() {
    session_scenario("mem");
}

#[test]
fn same_scenario_under_an_overlay() {
    session_scenario("overlay");
}

#[test]
fn nested_mounts_cross_in_and_out() {
    let outer = tempfile::tempdir().unwrap();
    let vfs = Vfs::builder()
        .mount("/", MemFs::new())
        .mount("/mnt/session", HostDir::open(outer.path()).unwrap())
        .mount("/mnt/session/cache", MemFs::new())
        .build()
        .unwrap();
    vfs.write("/mnt/session/cache/c.txt", b"cached").unwrap();
    vfs.write("/top.txt", b"top").unwrap();
    assert!(
        !outer.path().join("cache/c.txt").exists(),
        "the cache mount is its own store"
    );
    let devs: Vec<u64> = ["/", "/mnt", "/mnt/session", "/mnt/session/cache"]
        .iter()
        .map(|p| vfs.metadata(p).unwrap().dev)
        .collect();
    assert_eq!(devs[0], devs[1]);
    assert_ne!(devs[1], devs[2]);
    assert_ne!(devs[2], devs[3]);
    assert_ne!(devs[0], devs[3]);
    // `..` leaves each mount into the one that holds it.
    assert_eq!(
        vfs.read("/mnt/session/cache/../cache/c.txt").unwrap(),
        b"cached"
    );
    assert_eq!(
        vfs.read("/mnt/session/cache/../../../top.txt").unwrap(),
        b"top"
    );
    let names: Vec<String> = vfs
        .read_dir("/mnt/session")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        ["cache"],
        "the mountpoint is listed though the host dir has no `cache`"
    );

    for per_mount in [false, true] {
        let out = shell(
            &vfs,
            per_mount,
            &[
                "cat /mnt/session/cache/c.txt",
                "ls /mnt/session",
                "cat /mnt/session/cache/../../../top.txt",
            ],
        );
        assert_eq!(out[0], "cat /mnt/session/cache/c.txt: cached");
        assert_eq!(out[1], "ls /mnt/session: cache");
        if per_mount {
            // Through the cache's own preopen, `..` cannot leave it (EPERM).
            assert_eq!(out[2], "cat /mnt/session/cache/../../../top.txt: errno 63");
        } else {
            assert_eq!(out[2], "cat /mnt/session/cache/../../../top.txt: top");
        }
    }
}

#[test]
fn mountpoints_are_busy_and_mounts_are_separate_devices() {
    let vfs = Vfs::builder()
        .mount("/data", MemFs::new())
        .mount("/data/inner", MemFs::new())
        .build()
        .unwrap();
    vfs.write("/data/f", b"x").unwrap();
    vfs.write("/g", b"y").unwrap();
    let out = shell(
        &vfs,
        false,
        &[
            "rmdir /data",
            "mv /data /moved",
            "mv /data/f /f2",
            "mv /g /data/g",
            "rmdir /data/inner",
            "mkdir /data/new",
        ],
    );
    // EBUSY is 10 and EXDEV 75 in WASI.
    assert_eq!(
        out,
        [
            "rmdir /data: errno 10",
            "mv /data /moved: errno 10",
            "mv /data/f /f2: errno 75",
            "mv /g /data/g: errno 75",
            "rmdir /data/inner: errno 10",
            "mkdir /data/new: ",
        ]
    );
    assert!(matches!(
        vfs.remove("/data").map_err(Error::into_innermost),
        Err(Error::Busy)
    ));
    assert!(matches!(
        vfs.rename("/data/inner", "/data/x")
            .map_err(Error::into_innermost),
        Err(Error::Busy)
    ));
    assert!(matches!(
        vfs.hard_link("/g", "/data/g")
            .map_err(Error::into_innermost),
        Err(Error::CrossDevice)
    ));
    assert!(vfs.read_dir("/").unwrap().iter().any(|e| e.name == "data"));
}

#[test]
fn listing_pages_through_store_entries_then_mountpoints() {
    let mut builder = Vfs::builder();
    for i in 0..5 {
        builder = builder.mount(&format!("/m{i}"), MemFs::new());
    }
    let vfs = builder.build().unwrap();
    for i in 0..200 {
        vfs.write(&format!("/f{i}"), b"").unwrap();
    }
    let entries = vfs.read_dir("/").unwrap();
    assert_eq!(entries.len(), 205);
    let mounts: Vec<&str> = entries
        .iter()
        .filter(|e| e.name.starts_with('m'))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(mounts, ["m0", "m1", "m2", "m3", "m4"]);
    // Small guest buffers see the same entries.
    let out = shell(&vfs, false, &["ls /"]);
    assert_eq!(out[0].split(' ').count(), 2 + 205, "{}", &out[0][..60]);
}

/// A host directory holding what the `readonly` guest tries to change:
/// a file, a directory with a file in it, an empty directory, a symlink.
fn readonly_guest_tree() -> tempfile::TempDir {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file"), b"ro").unwrap();
    std::fs::create_dir_all(host.path().join("dir")).unwrap();
    std::fs::create_dir_all(host.path().join("empty")).unwrap();
    std::fs::write(host.path().join("dir/inner"), b"i").unwrap();
    std::os::unix::fs::symlink("file", host.path().join("link")).unwrap();
    host
}

#[test]
fn read_only_mount_refuses_every_change_and_leaves_the_host_alone() {
    let host = readonly_guest_tree();
    let before = snapshot(host.path());

    let vfs = Vfs::builder()
        .mount("/ro", HostDir::open(host.path()).unwrap().read_only())
        .build()
        .unwrap();
    let out = common::run_with(&common::guest("readonly"), &[], false, |ctx| {
        vfs.preopen(ctx, "/ro", "/ro").unwrap();
    });
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("create: EROFS"));

    assert!(matches!(
        vfs.write("/ro/file", b"x").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        vfs.write("/ro/new", b"x").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        vfs.remove("/ro/file").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        vfs.set_len("/ro/file", 0).map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        vfs.create_dir("/ro/d").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert_eq!(vfs.read("/ro/file").unwrap(), b"ro");
    assert_eq!(snapshot(host.path()), before, "the host directory changed");
}

#[test]
fn no_path_reaches_outside_a_host_mount() {
    let root = tempfile::tempdir().unwrap();
    let mounted = root.path().join("mounted");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(mounted.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"SECRET").unwrap();
    // Planted on the host: one relative and one absolute way out.
    std::os::unix::fs::symlink("../outside/secret", mounted.join("rel")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), mounted.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../..", mounted.join("sub/up")).unwrap();

    let vfs = Vfs::builder()
        .mount("/", MemFs::new())
        .mount("/mnt/data", HostDir::open(&mounted).unwrap())
        .build()
        .unwrap();
    for per_mount in [false, true] {
        let out = shell(
            &vfs,
            per_mount,
            &[
                "cat /mnt/data/rel",
                "cat /mnt/data/abs",
                "cat /mnt/data/../../outside/secret",
                "cat /mnt/data/sub/up/outside/secret",
                "ls /mnt/data/sub/up",
                "write /mnt/data/rel overwritten",
                "write /mnt/data/abs overwritten",
            ],
        );
        let joined = out.join("\n");
        assert!(!joined.contains("SECRET"), "{joined}");
        assert!(
            out.iter()
                .all(|l| l.contains("errno") || l.starts_with("ls ")),
            "{joined}"
        );
    }
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"SECRET");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing was written outside"
    );

    // Replace a directory with a symlink to the outside after it was looked
    // up: the store's remembered path must not follow it out.
    let store = HostDir::open(&mounted).unwrap();
    let (sub, _) = store.lookup(store.root(), "sub").unwrap();
    std::fs::write(mounted.join("sub/f"), b"inside").unwrap();
    let (f, _) = store.lookup(sub, "f").unwrap();
    std::fs::remove_file(mounted.join("sub/up")).unwrap();
    std::fs::remove_file(mounted.join("sub/f")).unwrap();
    std::fs::remove_dir(mounted.join("sub")).unwrap();
    std::os::unix::fs::symlink(&outside, mounted.join("sub")).unwrap();
    std::fs::write(outside.join("f"), b"OUTSIDE").unwrap();
    let mut buf = [0u8; 16];
    let read = store.read(f, 0, &mut [std::io::IoSliceMut::new(&mut buf)]);
    assert!(read.is_err(), "read through a swapped-in symlink: {read:?}");
    assert!(store.getattr(f).is_err());
}

#[test]
fn host_changes_by_other_processes_are_seen() {
    let host = tempfile::tempdir().unwrap();
    let vfs = Vfs::builder()
        .mount("/h", HostDir::open(host.path()).unwrap())
        .build()
        .unwrap();
    assert!(vfs.read_dir("/h").unwrap().is_empty());
    std::fs::write(host.path().join("later"), b"v1").unwrap();
    assert_eq!(vfs.read("/h/later").unwrap(), b"v1");
    std::fs::write(host.path().join("later"), b"version 2").unwrap();
    assert_eq!(vfs.read("/h/later").unwrap(), b"version 2");
    std::fs::rename(host.path().join("later"), host.path().join("renamed")).unwrap();
    assert!(matches!(
        vfs.read("/h/later").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert_eq!(vfs.read("/h/renamed").unwrap(), b"version 2");
    let out = shell(&vfs, false, &["ls /h", "cat /h/renamed"]);
    assert_eq!(out, ["ls /h: renamed", "cat /h/renamed: version 2"]);
}

#[test]
fn host_dir_links_times_and_renames_work_as_on_the_host() {
    let host = tempfile::tempdir().unwrap();
    let vfs = Vfs::builder()
        .mount("/", HostDir::open(host.path()).unwrap())
        .build()
        .unwrap();
    vfs.write("/a", b"data").unwrap();
    vfs.hard_link("/a", "/b").unwrap();
    vfs.symlink("a", "/l").unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    vfs.set_times("/a", Some(t), Some(t)).unwrap();
    vfs.create_dir("/d").unwrap();
    vfs.rename("/b", "/d/b").unwrap();
    let meta = std::fs::metadata(host.path().join("d/b")).unwrap();
    assert_eq!(meta.modified().unwrap(), t);
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 2);
    assert_eq!(
        std::fs::read_link(host.path().join("l")).unwrap(),
        Path::new("a")
    );
    assert_eq!(vfs.metadata("/d/b").unwrap().nlink, 2);
    assert_eq!(
        vfs.metadata("/a").unwrap().ino,
        vfs.metadata("/d/b").unwrap().ino
    );
}

fn lower_tree() -> tempfile::TempDir {
    let lower = tempfile::tempdir().unwrap();
    let p = lower.path();
    std::fs::create_dir_all(p.join("docs/deep")).unwrap();
    std::fs::create_dir_all(p.join("empty")).unwrap();
    std::fs::write(p.join("docs/a.txt"), b"alpha").unwrap();
    std::fs::write(p.join("docs/deep/b.txt"), b"beta").unwrap();
    std::fs::write(p.join("keep.txt"), b"keep").unwrap();
    for name in ["w.txt", "t.txt", "s.txt", "ap.txt", "gone.txt", "mv.txt"] {
        std::fs::write(p.join(name), name.as_bytes()).unwrap();
    }
    std::os::unix::fs::symlink("keep.txt", p.join("link")).unwrap();
    lower
}

#[test]
fn overlay_copies_up_whites_out_and_never_touches_the_lower_dir() {
    let lower = lower_tree();
    let before = snapshot(lower.path());
    let overlay = Overlay::new(HostDir::open(lower.path()).unwrap());
    let vfs = Vfs::builder().mount("/", overlay.clone()).build().unwrap();
    assert_eq!(overlay.changes().unwrap(), Changes::default());

    // Reads fall through.
    assert_eq!(vfs.read("/docs/deep/b.txt").unwrap(), b"beta");
    assert_eq!(vfs.read("/link").unwrap(), b"keep");
    let ino = vfs.metadata("/w.txt").unwrap().ino;

    // Copy-up on write, truncate, set_times and append (by the guest).
    vfs.write("/w.txt", b"rewritten").unwrap();
    vfs.set_len("/t.txt", 2).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(42);
    vfs.set_times("/s.txt", Some(t), Some(t)).unwrap();
    let out = shell(
        &vfs,
        false,
        &[
            "write /new.txt fresh",
            "cat /ap.txt",
            "append /ap.txt +tail",
        ],
    );
    assert_eq!(out[1], "cat /ap.txt: ap.txt");
    assert_eq!(vfs.read("/ap.txt").unwrap(), b"ap.txt+tail");
    assert_eq!(
        vfs.metadata("/w.txt").unwrap().ino,
        ino,
        "copy-up keeps the inode number"
    );
    assert_eq!(vfs.read("/w.txt").unwrap(), b"rewritten");
    assert_eq!(vfs.read("/t.txt").unwrap(), b"t.");
    assert_eq!(vfs.metadata("/s.txt").unwrap().mtime, t);
    assert_eq!(
        vfs.read("/s.txt").unwrap(),
        b"s.txt",
        "set_times copies the data up too"
    );

    // Whiteouts: deleted lower entries stay deleted and are not listed.
    vfs.remove("/gone.txt").unwrap();
    vfs.remove("/empty").unwrap();
    assert!(matches!(
        vfs.metadata("/gone.txt").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        vfs.remove("/docs").map_err(Error::into_innermost),
        Err(Error::NotEmpty)
    ));
    let names: Vec<String> = vfs
        .read_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(!names.contains(&"gone.txt".to_string()) && !names.contains(&"empty".to_string()));
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        names.len(),
        "no entry listed twice: {names:?}"
    );
    // A new directory where a lower one was deleted shows nothing of it.
    vfs.create_dir("/empty").unwrap();
    assert!(vfs.read_dir("/empty").unwrap().is_empty());

    // Rename of a lower file and of a lower directory.
    vfs.rename("/mv.txt", "/docs/moved.txt").unwrap();
    vfs.rename("/docs", "/papers").unwrap();
    assert!(matches!(
        vfs.metadata("/docs").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert_eq!(vfs.read("/papers/a.txt").unwrap(), b"alpha");
    assert_eq!(vfs.read("/papers/deep/b.txt").unwrap(), b"beta");
    assert_eq!(vfs.read("/papers/moved.txt").unwrap(), b"mv.txt");
    assert!(matches!(
        vfs.metadata("/mv.txt").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));

    let changes = overlay.changes().unwrap();
    assert_eq!(
        changes.modified,
        ["ap.txt", "s.txt", "t.txt", "w.txt"],
        "{changes:?}"
    );
    assert_eq!(
        changes.deleted,
        ["docs", "empty", "gone.txt", "mv.txt"],
        "{changes:?}"
    );
    for added in [
        "new.txt",
        "papers",
        "papers/a.txt",
        "papers/deep/b.txt",
        "papers/moved.txt",
        "empty",
    ] {
        assert!(
            changes.added.iter().any(|a| a == added),
            "{added} in {changes:?}"
        );
    }

    assert_eq!(
        snapshot(lower.path()),
        before,
        "the lower host directory changed"
    );
}

#[test]
fn overlay_whiteouts_made_by_a_guest() {
    let lower = lower_tree();
    let before = snapshot(lower.path());
    let overlay = Overlay::new(HostDir::open(lower.path()).unwrap());
    let vfs = Vfs::builder().mount("/", overlay.clone()).build().unwrap();
    let out = shell(
        &vfs,
        false,
        &[
            "rmdir /empty",
            "rm /keep.txt",
            "cat /link",
            "ls /docs/deep",
            "rm /docs/deep/b.txt",
            "ls /docs/deep",
        ],
    );
    assert_eq!(
        out,
        [
            "rmdir /empty: ",
            "rm /keep.txt: ",
            "cat /link: errno 44",
            "ls /docs/deep: b.txt",
            "rm /docs/deep/b.txt: ",
            "ls /docs/deep: ",
        ]
    );
    assert!(matches!(
        vfs.read("/keep.txt").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    let changes = overlay.changes().unwrap();
    assert_eq!(
        changes.deleted,
        ["docs/deep/b.txt", "empty", "keep.txt"],
        "{changes:?}"
    );
    assert!(
        changes.added.is_empty() && changes.modified.is_empty(),
        "{changes:?}"
    );
    assert_eq!(snapshot(lower.path()), before);
}

#[test]
fn bad_mount_tables_are_refused_naming_the_path() {
    let relative = Vfs::builder()
        .mount("mnt", MemFs::new())
        .build()
        .unwrap_err();
    assert!(
        relative.to_string().contains("\"mnt\"") && relative.to_string().contains("not absolute"),
        "{relative}"
    );
    let twice = Vfs::builder()
        .mount("/a", MemFs::new())
        .mount("/a/", MemFs::new())
        .build()
        .unwrap_err();
    assert!(
        twice.to_string().contains("\"/a/\"") && twice.to_string().contains("twice"),
        "{twice}"
    );
    let dots = Vfs::builder()
        .mount("/a/../b", MemFs::new())
        .build()
        .unwrap_err();
    assert!(dots.to_string().contains("/a/../b"), "{dots}");
    let missing = HostDir::open("/no/such/dir/anywhere").err().unwrap();
    assert!(
        missing.to_string().contains("/no/such/dir/anywhere"),
        "{missing}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(HostDir::open(file.path()).is_err());
    let ro_parent = Vfs::builder()
        .mount("/", MemFs::new().read_only())
        .mount("/x/y", MemFs::new())
        .build()
        .unwrap_err();
    assert!(ro_parent.to_string().contains("/x/y"), "{ro_parent}");
}

/// `preopen_mounts` preopens the mounts the embedder made and nothing
/// else: the in-memory `/` a builder makes to hold mountpoints is not
/// given to the guest, so it cannot write there; a `/` mounted on purpose
/// is preopened.
#[test]
fn preopen_mounts_gives_exactly_the_mounts_made() {
    let vfs = Vfs::builder()
        .mount("/data", MemFs::new().read_only())
        .mount("/tmp", MemFs::new())
        .build()
        .unwrap();
    let out = shell(
        &vfs,
        true,
        &[
            "write /surprise.txt x",
            "write /tmp/ok x",
            "write /data/no x",
        ],
    );
    assert!(
        out[0].starts_with("write /surprise.txt x: errno"),
        "no preopen holds /: {out:?}"
    );
    assert_eq!(out[1], "write /tmp/ok x: ");
    assert!(out[2].starts_with("write /data/no x: errno"), "{out:?}");
    assert!(matches!(
        vfs.metadata("/surprise.txt").map_err(Error::into_innermost),
        Err(Error::NotFound)
    ));
    assert_eq!(vfs.read("/tmp/ok").unwrap(), b"x\n");

    let vfs = Vfs::builder()
        .mount("/", MemFs::new())
        .mount("/tmp", MemFs::new())
        .build()
        .unwrap();
    let out = shell(&vfs, true, &["write /mine.txt x"]);
    assert_eq!(out[0], "write /mine.txt x: ");
    assert_eq!(vfs.read("/mine.txt").unwrap(), b"x\n");
}

/// A read-only view of a tree one guest writes: another guest given the
/// view gets `EROFS` for every change (the same checks as a read-only
/// mount), the host API on the view too, and both see each other's tree
/// live; the writable tree stays writable, its host directory unsealed.
#[test]
fn a_read_only_view_of_a_shared_tree() {
    let host = readonly_guest_tree();
    let before = snapshot(host.path());

    let vfs = Vfs::builder()
        .mount("/", MemFs::new())
        .mount("/ro", HostDir::open(host.path()).unwrap())
        .build()
        .unwrap();
    let view = vfs.read_only().unwrap();
    let out = common::run_with(&common::guest("readonly"), &[], false, |ctx| {
        view.preopen(ctx, "/ro", "/ro").unwrap();
    });
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("create: EROFS"));
    assert_eq!(
        snapshot(host.path()),
        before,
        "the guest of the view changed the host"
    );

    assert!(matches!(
        view.write("/ro/file", b"x").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        view.write("/scratch", b"x").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        view.remove("/ro/file").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        view.create_dir("/d").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        view.rename("/ro/file", "/ro/moved")
            .map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));

    // The writer's changes show in the view at once, in both stores.
    vfs.write("/ro/file", b"changed").unwrap();
    vfs.write("/scratch", b"memory").unwrap();
    assert_eq!(view.read("/ro/file").unwrap(), b"changed");
    assert_eq!(view.read("/scratch").unwrap(), b"memory");
    assert_eq!(std::fs::read(host.path().join("file")).unwrap(), b"changed");

    // A view of a subtree is confined and read-only alike.
    let sub = vfs.subtree("/ro/dir").unwrap().read_only().unwrap();
    assert_eq!(sub.read("inner").unwrap(), b"i");
    assert!(matches!(
        sub.write("inner", b"x").map_err(Error::into_innermost),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        sub.read("../file").map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
}
