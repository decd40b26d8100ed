//! `HostDir` through the storage trait: listings continued from the host's
//! own cookies, open directories stat-ed through their handles, and
//! read-only stores that hold only read-only host handles.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use wasi_common_vfs::storage::{FileKind, NewNode};
use wasi_common_vfs::{HostDir, Overlay, Storage, Vfs};

/// The access mode (`O_ACCMODE` bits) of every descriptor of this process
/// open on `path`.
fn access_modes(path: &Path) -> Vec<u32> {
    let want = path.canonicalize().unwrap();
    let mut modes = Vec::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(fd.path()).ok().as_deref() != Some(want.as_path()) {
            continue;
        }
        let info = format!("/proc/self/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info) else {
            continue;
        };
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap();
        modes.push(u32::from_str_radix(flags.trim(), 8).unwrap() & 0o3);
    }
    modes
}

/// Every entry of `dir`, listed `page` entries at a time from the cursor
/// the last page ended with; `between` runs after each page.
fn list_in_pages(
    store: &dyn Storage,
    dir: u64,
    page: usize,
    mut between: impl FnMut(&[String]),
) -> Vec<String> {
    let (mut all, mut cursor) = (Vec::new(), 0);
    loop {
        let entries = store.readdir(dir, cursor, page).unwrap();
        let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        between(&names);
        all.extend(names);
        match entries.last() {
            Some(last) if entries.len() == page => cursor = last.next,
            _ => return all,
        }
    }
}

/// Any number of listings may be in progress at once, and removing
/// what was listed does not make a listing skip what was not: forty
/// directories are listed a page at a time, all interleaved, while the
/// entries already listed are removed.
#[test]
fn interleaved_listings_continue_where_they_were() {
    let tmp = tempfile::tempdir().unwrap();
    for d in 0..40 {
        for f in 0..50 {
            let dir = tmp.path().join(format!("d{d}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("file-{f}")), b"x").unwrap();
        }
    }
    let store = HostDir::open(tmp.path()).unwrap();
    let root = store.root();
    let dirs: Vec<u64> = (0..40)
        .map(|d| store.lookup(root, &format!("d{d}")).unwrap().0)
        .collect();
    let mut cursors = vec![0u64; 40];
    let mut seen = vec![Vec::<String>::new(); 40];
    let mut done = [false; 40];
    while done.iter().any(|d| !d) {
        for (i, &dir) in dirs.iter().enumerate() {
            if done[i] {
                continue;
            }
            let page = store.readdir(dir, cursors[i], 7).unwrap();
            for e in &page {
                std::fs::remove_file(tmp.path().join(format!("d{i}")).join(&e.name)).unwrap();
                seen[i].push(e.name.clone());
            }
            match page.last() {
                Some(last) if page.len() == 7 => cursors[i] = last.next,
                _ => done[i] = true,
            }
        }
    }
    for (i, names) in seen.iter_mut().enumerate() {
        names.sort();
        let mut want: Vec<String> = (0..50).map(|f| format!("file-{f}")).collect();
        want.sort();
        assert_eq!(*names, want, "d{i}: each entry once");
        assert!(
            std::fs::read_dir(tmp.path().join(format!("d{i}")))
                .unwrap()
                .next()
                .is_none()
        );
    }
}

/// A listing paused in one directory keeps its place while a directory of
/// 70,000 entries is listed in full meanwhile, as a recursive removal or
/// copy pauses a directory's listing while it works through each child.
#[test]
fn a_paused_listing_keeps_its_place_through_a_long_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child) = (tmp.path().join("parent"), tmp.path().join("child"));
    std::fs::create_dir(&parent).unwrap();
    std::fs::create_dir(&child).unwrap();
    for i in 0..200 {
        std::fs::File::create(parent.join(format!("p{i}"))).unwrap();
    }
    for i in 0..70_000 {
        std::fs::File::create(child.join(format!("c{i}"))).unwrap();
    }
    let store = HostDir::open(tmp.path()).unwrap();
    let root = store.root();
    let (p, _) = store.lookup(root, "parent").unwrap();
    let (c, _) = store.lookup(root, "child").unwrap();
    store.open(p, false).unwrap();
    store.open(c, false).unwrap();

    let first = store.readdir(p, 0, 50).unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(list_in_pages(&store, c, 64, |_| {}).len(), 70_000);
    let cursor = first.last().unwrap().next;
    let rest = store
        .readdir(p, cursor, 1000)
        .expect("the paused listing goes on");
    let mut names: Vec<String> = first.into_iter().chain(rest).map(|e| e.name).collect();
    names.sort();
    let mut want: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    want.sort();
    assert_eq!(names, want, "each entry once");
    store.release(c);
    store.release(p);
}

/// A listing's cursor carries its place: it goes on in another store
/// opened on the same host directory, after the directory's handles all
/// closed, and after the directory was listed 7,000 times meanwhile (where
/// positions kept in a table of 65,536 would have been given up).
#[test]
fn a_cursor_carries_its_place_and_the_store_keeps_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..10 {
        std::fs::File::create(dir.join(format!("f{i}"))).unwrap();
    }
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
        w.sort();
        w
    };
    let each_once = |first: &[wasi_common_vfs::DirEntry], rest: &[wasi_common_vfs::DirEntry]| {
        let mut names: Vec<String> = first.iter().chain(rest).map(|e| e.name.clone()).collect();
        names.sort();
        assert_eq!(names, want);
    };
    let store = HostDir::open(tmp.path()).unwrap();
    let (d, _) = store.lookup(store.root(), "d").unwrap();
    store.open(d, false).unwrap();
    let first = store.readdir(d, 0, 3).unwrap();
    store.release(d);
    let cursor = first.last().unwrap().next;

    let other = HostDir::open(tmp.path()).unwrap();
    let (d2, _) = other.lookup(other.root(), "d").unwrap();
    each_once(&first, &other.readdir(d2, cursor, 100).unwrap());

    for _ in 0..7_000 {
        assert_eq!(list_in_pages(&store, d, 4, |_| {}).len(), 10);
    }
    each_once(&first, &store.readdir(d, cursor, 100).unwrap());
    assert!(
        store.readdir(d, 998, 100).unwrap().is_empty(),
        "a cursor never handed out ends the listing"
    );
}

/// Host listings page through the mount table and overlays with each
/// entry once: the host's cookies pass through the mount table (then its
/// mountpoints follow) and an overlay's lower layer as they are, and an
/// overlay numbers its host upper layer's cookies itself.
#[test]
fn host_cookies_page_through_mounts_and_overlays() {
    let (lower, upper) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(lower.path().join("low")).unwrap();
    // More than `Vfs::read_dir` takes in one call.
    for i in 0..2_500 {
        std::fs::File::create(lower.path().join(format!("low/l{i}"))).unwrap();
    }
    let expect = |prefix: &str, n: usize| {
        let mut w: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        w.sort();
        w
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    let overlay = Overlay::with_upper(
        HostDir::open(lower.path()).unwrap(),
        HostDir::open(upper.path()).unwrap(),
    );
    let root = overlay.root();
    let (low, _) = overlay.lookup(root, "low").unwrap();
    assert_eq!(
        sorted(list_in_pages(&overlay, low, 16, |_| {})),
        expect("l", 2_500),
        "the lower layer's cookies"
    );
    let high = overlay.create(root, "high", NewNode::Dir).unwrap().ino;
    for i in 0..300 {
        overlay
            .create(high, &format!("u{i}"), NewNode::File)
            .unwrap();
    }
    assert_eq!(
        sorted(list_in_pages(&overlay, high, 16, |_| {})),
        expect("u", 300),
        "the upper layer's cookies"
    );

    let vfs = Vfs::builder()
        .mount("/", HostDir::open(lower.path()).unwrap())
        .mount("/low/m", wasi_common_vfs::MemFs::new())
        .build()
        .unwrap();
    let mut names: Vec<String> = vfs
        .read_dir("/low")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.pop().as_deref(), Some("m"), "mountpoints come last");
    assert_eq!(sorted(names), expect("l", 2_500));
}

/// Entries that stay put are listed once each even when others are added
/// and removed between pages.
#[test]
fn a_listing_neither_skips_nor_repeats_entries_that_stay() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..300 {
        std::fs::write(tmp.path().join(format!("stays-{i}")), b"x").unwrap();
    }
    let store = HostDir::open(tmp.path()).unwrap();
    let mut churn = 0;
    let listed = list_in_pages(&store, store.root(), 16, |_| {
        std::fs::write(tmp.path().join(format!("new-{churn}")), b"y").unwrap();
        let _ = std::fs::remove_file(tmp.path().join(format!("new-{}", churn.max(1) - 1)));
        churn += 1;
    });
    let mut stays: Vec<&String> = listed.iter().filter(|n| n.starts_with("stays-")).collect();
    stays.sort();
    stays.dedup();
    assert_eq!(stays.len(), 300);
    assert_eq!(
        listed.iter().filter(|n| n.starts_with("stays-")).count(),
        300,
        "none repeated"
    );
}

/// An open directory answers `fstat` after its name is gone, as on Linux.
#[test]
fn an_open_directory_is_stat_ed_after_its_removal() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    let store = HostDir::open(tmp.path()).unwrap();
    let (d, kind) = store.lookup(store.root(), "d").unwrap();
    assert_eq!(kind, FileKind::Dir);
    store.open(d, false).unwrap();
    std::fs::remove_dir(tmp.path().join("d")).unwrap();
    let attr = store.getattr(d).unwrap();
    assert_eq!((attr.kind, attr.nlink), (FileKind::Dir, 0));
    store.release(d);
}

/// A read-only `HostDir`, and one under an overlay, hold open files with
/// read-only host descriptors, even for a handle that says it writes; a
/// writable one holds them read-write for such a handle only.
#[test]
fn read_only_stores_open_host_files_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"data").unwrap();
    let held = |store: &dyn Storage, write: bool| {
        let (ino, _) = store.lookup(store.root(), "f").unwrap();
        store.open(ino, write).unwrap();
        let modes = access_modes(&file);
        store.release(ino);
        modes
    };
    const RDONLY: u32 = 0;
    const RDWR: u32 = 2;
    let writable = HostDir::open(tmp.path()).unwrap();
    assert_eq!(held(&writable, true), [RDWR]);
    assert_eq!(held(&writable, false), [RDONLY]);
    let read_only = HostDir::open(tmp.path()).unwrap().read_only();
    assert_eq!(held(&read_only, true), [RDONLY]);
    let overlay = Overlay::new(HostDir::open(tmp.path()).unwrap());
    let (ino, _) = overlay.lookup(overlay.root(), "f").unwrap();
    overlay.open(ino, true).unwrap();
    assert_eq!(access_modes(&file), [RDONLY], "the overlay's lower layer");
    overlay.release(ino);
}

/// A guest's open for writing fails as the host's own open fails, here
/// with `ETXTBSY` (the file is a program running on the host), by a path
/// of plain names or one through `..`, rather than succeeding and failing
/// at the first write; an open that only reads succeeds.
#[test]
fn an_open_for_writing_fails_as_the_hosts_does() {
    use wasi_common::dir::{OpenResult, WasiDir};
    use wasi_common::file::{FdFlags, OFlags};
    use wasi_common::snapshots::preview_1::types::Errno;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    let program = tmp.path().join("program");
    std::fs::copy("/bin/sleep", &program).unwrap();
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _running = Running(
        std::process::Command::new(&program)
            .arg("600")
            .spawn()
            .unwrap(),
    );
    let host_says = std::fs::OpenOptions::new()
        .write(true)
        .open(&program)
        .unwrap_err();
    assert_eq!(host_says.raw_os_error(), Some(26), "ETXTBSY on the host");

    let vfs = Vfs::builder()
        .mount("/", HostDir::open(tmp.path()).unwrap())
        .build()
        .unwrap();
    let dir = vfs.wasi_dir("/").unwrap();
    for path in ["program", "d/../program"] {
        let open = |write| {
            common::now(dir.open_file(false, path, OFlags::empty(), true, write, FdFlags::empty()))
        };
        match open(true) {
            Err(e) => assert_eq!(e.downcast().ok(), Some(Errno::Txtbsy), "{path}"),
            Ok(_) => panic!("{path}: opened for writing"),
        }
        assert!(matches!(open(false), Ok(OpenResult::File(_))), "{path}");
    }
}

/// Runs `f` on a host thread until the returned guard is dropped.
fn meanwhile(mut f: impl FnMut() + Send + 'static) -> impl Drop {
    struct Stop(
        Arc<std::sync::atomic::AtomicBool>,
        Option<std::thread::JoinHandle<()>>,
    );
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(t) = self.1.take() {
                t.join().unwrap();
            }
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f();
            }
        })
    };
    Stop(stop, Some(thread))
}

/// Creates through a directory descriptor act on the directory it holds,
/// however the host renames it meanwhile: a guest creating and removing a
/// file in `a` while a host thread swaps `a` and `b` never fails.
#[test]
fn creates_through_a_descriptor_race_no_host_rename() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("a")).unwrap();
    std::fs::create_dir(tmp.path().join("b")).unwrap();
    let root = tmp.path().to_path_buf();
    let swapping = meanwhile(move || {
        let _ = std::fs::rename(root.join("a"), root.join("t"));
        let _ = std::fs::rename(root.join("b"), root.join("a"));
        let _ = std::fs::rename(root.join("t"), root.join("b"));
    });
    let vfs = Vfs::builder()
        .mount("/h", HostDir::open(tmp.path()).unwrap())
        .build()
        .unwrap();
    let out = common::run_threaded_in("threads", &["race-create", "3000"], &vfs, "/h").unwrap();
    drop(swapping);
    assert_eq!(out.stdout.trim(), "create failures: 0", "{}", out.stderr);
}

/// Opening `x2` (never renamed) while another guest thread stats `x1`,
/// which the host keeps switching between `x2`'s file and another, always
/// opens `x2`'s file: the store checks what it opened.
#[test]
fn an_open_binds_the_file_that_was_looked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("x1"), b"ONE").unwrap();
    std::fs::hard_link(dir.join("x1"), dir.join("x2")).unwrap();
    let switching = meanwhile(move || {
        let _ = std::fs::write(dir.join("t"), b"TWO");
        let _ = std::fs::rename(dir.join("t"), dir.join("x1"));
        let _ = std::fs::remove_file(dir.join("x1"));
        let _ = std::fs::hard_link(dir.join("x2"), dir.join("x1"));
    });
    let vfs = Vfs::builder()
        .mount("/h", HostDir::open(tmp.path()).unwrap())
        .build()
        .unwrap();
    let out = common::run_threaded_in("threads", &["race-open", "3000"], &vfs, "/h").unwrap();
    drop(switching);
    assert_eq!(out.stdout.trim(), "wrong: 0, errors: 0", "{}", out.stderr);
}

/// Two host mounts on one host filesystem exchange files as the host's
/// own directories do: rename and link between them work (wasi-common's
/// host preopens allow it, and `mv` relies on it); a read-only mount or an
/// in-memory one still answers `EXDEV` or `EROFS`.
#[test]
fn rename_and_link_between_host_mounts_of_one_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["a", "b", "ro"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    std::fs::write(tmp.path().join("a/f"), b"moved").unwrap();
    std::fs::write(tmp.path().join("a/g"), b"linked").unwrap();
    let vfs = Vfs::builder()
        .mount("/a", HostDir::open(tmp.path().join("a")).unwrap())
        .mount("/b", HostDir::open(tmp.path().join("b")).unwrap())
        .mount(
            "/ro",
            HostDir::open(tmp.path().join("ro")).unwrap().read_only(),
        )
        .mount("/mem", wasi_common_vfs::MemFs::new())
        .build()
        .unwrap();
    vfs.rename("/a/f", "/b/f").unwrap();
    assert_eq!(std::fs::read(tmp.path().join("b/f")).unwrap(), b"moved");
    assert!(!tmp.path().join("a/f").exists());
    vfs.hard_link("/a/g", "/b/g").unwrap();
    assert_eq!(vfs.read("/b/g").unwrap(), b"linked");
    assert_eq!(vfs.metadata("/a/g").unwrap().nlink, 2);
    let e = vfs.rename("/b/f", "/ro/f").unwrap_err();
    assert!(
        matches!(e.innermost(), wasi_common_vfs::Error::CrossDevice),
        "{e:?}"
    );
    let e = vfs.rename("/b/f", "/mem/f").unwrap_err();
    assert!(
        matches!(e.innermost(), wasi_common_vfs::Error::CrossDevice),
        "{e:?}"
    );
    assert_eq!(vfs.read("/b/f").unwrap(), b"moved", "nothing lost");
}

/// A deep path of plain names is taken in one step, and that step never
/// follows a symlink the host planted on the way: `c`, pointing out of
/// the mount with `../../..` halfway along `a/b/c/x/secret`, is resolved
/// by the tree's own resolver
/// (whose `..` stops at the tree's root), not by the host. A file deeper
/// than the symlink reads as before, and a host rename on the way is seen
/// at once.
#[test]
fn a_deep_path_in_one_step_follows_no_host_symlink() {
    let host = tempfile::tempdir().unwrap();
    let root = host.path().join("root");
    std::fs::create_dir_all(root.join("a/b/real/d")).unwrap();
    std::fs::write(root.join("a/b/real/d/file"), b"inside").unwrap();
    std::fs::create_dir_all(host.path().join("outside/x")).unwrap();
    std::fs::write(host.path().join("outside/x/secret"), b"secret").unwrap();
    std::os::unix::fs::symlink("../../../outside", root.join("a/b/c")).unwrap();
    let vfs = Vfs::builder()
        .mount("/", HostDir::open(&root).unwrap())
        .build()
        .unwrap();
    assert_eq!(vfs.read("/a/b/real/d/file").unwrap(), b"inside");
    // Through the tree: `a/b/../../..` is its root, where `outside` is not.
    assert!(matches!(
        vfs.read("/a/b/c/x/secret")
            .map_err(wasi_common_vfs::Error::into_innermost),
        Err(wasi_common_vfs::Error::NotFound)
    ));
    std::fs::create_dir_all(root.join("outside/x")).unwrap();
    std::fs::write(root.join("outside/x/secret"), b"the tree's own").unwrap();
    assert_eq!(vfs.read("/a/b/c/x/secret").unwrap(), b"the tree's own");
    std::fs::rename(root.join("a/b/real"), root.join("a/b/moved")).unwrap();
    assert!(vfs.read("/a/b/real/d/file").is_err());
    assert_eq!(vfs.read("/a/b/moved/d/file").unwrap(), b"inside");
}

/// Deep `stat`, `mkdir`, `symlink`, `unlink`, `rmdir`, `rename`, `link`,
/// `readlink` and `utimensat`, and `rename`, `link` and `utimensat` of
/// short paths, each taken in one step, never reach through a symlink the
/// host plants on the way, even one it swaps in and out while they run:
/// `a/b/c` and `s`, now directories of the tree and now links out of the
/// mount, leave what lies outside exactly as it was (contents, times and
/// links), and no link target outside is ever read.
#[test]
fn changes_in_one_step_follow_no_host_symlink() {
    let host = tempfile::tempdir().unwrap();
    let root = host.path().join("root");
    std::fs::create_dir_all(root.join("a/b/c/x")).unwrap();
    std::fs::create_dir_all(host.path().join("outside/x/full")).unwrap();
    std::fs::write(host.path().join("outside/x/secret"), b"secret").unwrap();
    std::fs::write(host.path().join("outside/x/full/f"), b"f").unwrap();
    std::os::unix::fs::symlink("outside target", host.path().join("outside/x/olink")).unwrap();
    std::os::unix::fs::symlink("../../../outside", root.join("a/b/link")).unwrap();
    std::fs::create_dir(root.join("s")).unwrap();
    std::os::unix::fs::symlink("../outside/x", root.join("slink")).unwrap();
    let outside = host.path().join("outside");
    let before = common::snapshot(&outside);
    let vfs = Vfs::builder()
        .mount("/", HostDir::open(&root).unwrap())
        .build()
        .unwrap();
    let attempts = |vfs: &Vfs, i: usize| {
        let _ = vfs.metadata("/a/b/c/x/secret");
        let _ = vfs.create_dir(&format!("/a/b/c/x/d{i}"));
        let _ = vfs.symlink("t", &format!("/a/b/c/x/l{i}"));
        let _ = vfs.rename(&format!("/a/b/c/x/l{i}"), &format!("/a/b/c/x/m{i}"));
        let _ = vfs.rename("/a/b/c/x/secret", "/a/b/c/x/taken");
        let _ = vfs.rename("/a/b/c/x/d0", "/a/b/c/x/full");
        let _ = vfs.remove(&format!("/a/b/c/x/m{i}"));
        let _ = vfs.remove(&format!("/a/b/c/x/d{i}"));
        let _ = vfs.remove("/a/b/c/x/secret");
        let _ = vfs.remove("/a/b/c/x/full/f");
        let _ = vfs.remove("/a/b/c/x/full");
        let _ = vfs.rename("/s/secret", "/s/taken");
        let _ = vfs.rename("/s/secret", "/stolen");
        let _ = vfs.rename("/s/full", "/s/d0");
        let _ = vfs.hard_link("/a/b/c/x/secret", &format!("/a/b/c/x/h{i}"));
        let _ = vfs.hard_link("/s/secret", &format!("/s/h{i}"));
        let _ = vfs.hard_link("/s/secret", &format!("/stolen{i}"));
        let epoch = Some(std::time::UNIX_EPOCH);
        let _ = vfs.set_times("/a/b/c/x/secret", epoch, epoch);
        let _ = vfs.set_times("/s/secret", epoch, epoch);
        let _ = vfs.set_times("/s", epoch, epoch);
        for link in ["/a/b/c/x/olink", "/s/olink"] {
            let read = vfs.read_link(link);
            assert!(read.is_err(), "{link} read outside the mount: {read:?}");
        }
    };
    // With the link in `c`'s place for good, then swapped in and out.
    std::fs::rename(root.join("a/b/c"), root.join("a/b/real")).unwrap();
    std::fs::rename(root.join("a/b/link"), root.join("a/b/c")).unwrap();
    std::fs::rename(root.join("s"), root.join("sreal")).unwrap();
    std::fs::rename(root.join("slink"), root.join("s")).unwrap();
    for i in 0..10 {
        attempts(&vfs, i);
    }
    assert!(matches!(
        vfs.metadata("/a/b/c/x/secret")
            .map_err(wasi_common_vfs::Error::into_innermost),
        Err(wasi_common_vfs::Error::NotFound)
    ));
    assert_eq!(common::snapshot(&outside), before);
    std::fs::rename(root.join("a/b/c"), root.join("a/b/link")).unwrap();
    std::fs::rename(root.join("a/b/real"), root.join("a/b/c")).unwrap();
    std::fs::rename(root.join("s"), root.join("slink")).unwrap();
    std::fs::rename(root.join("sreal"), root.join("s")).unwrap();
    let (b, top) = (root.join("a/b"), root.clone());
    let swapping = meanwhile(move || {
        for (at, dir, link) in [(&b, "c", "link"), (&top, "s", "slink")] {
            let _ = std::fs::rename(at.join(dir), at.join("real"));
            let _ = std::fs::rename(at.join(link), at.join(dir));
            let _ = std::fs::rename(at.join(dir), at.join(link));
            let _ = std::fs::rename(at.join("real"), at.join(dir));
        }
    });
    for i in 0..3000 {
        attempts(&vfs, i);
    }
    drop(swapping);
    assert_eq!(common::snapshot(&outside), before);
}

/// A `..` in a symlink's target, met after directories taken in one step,
/// leads to their true parent: `/d0/d1/d2/link` is `../sibling/file`,
/// which is `d0/d1/sibling/file`, not the `/sibling/file` one level up
/// from where the step landed.
#[test]
fn a_dot_dot_after_a_one_step_lookup_goes_to_the_true_parent() {
    let host = tempfile::tempdir().unwrap();
    let root = host.path();
    std::fs::create_dir_all(root.join("d0/d1/d2")).unwrap();
    std::fs::create_dir_all(root.join("d0/d1/sibling")).unwrap();
    std::fs::create_dir_all(root.join("sibling")).unwrap();
    std::fs::write(root.join("d0/d1/sibling/file"), b"right").unwrap();
    std::fs::write(root.join("sibling/file"), b"wrong").unwrap();
    std::os::unix::fs::symlink("../sibling/file", root.join("d0/d1/d2/link")).unwrap();
    let vfs = Vfs::builder()
        .mount("/", HostDir::open(root).unwrap())
        .build()
        .unwrap();
    assert_eq!(vfs.read("/d0/d1/d2/link").unwrap(), b"right");
    // And from a guest's confined view, where one `..` too many escapes.
    let view = vfs.subtree("/d0").unwrap();
    assert_eq!(view.read("d1/d2/link").unwrap(), b"right");
}

/// Mounts of one host filesystem report one device, as rename and link
/// work between them; a mount of another host filesystem, or of another
/// store, reports its own. A guest's file in the second mount of a shared
/// device still reaches its own store (`fd_allocate` finds it by device
/// and inode): the `files` guest gives the same transcript in `/b` as in
/// `/a`.
#[test]
fn mounts_of_one_host_filesystem_share_a_device() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["a", "a/sub2", "b", "b/sub2", "ro"] {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    let shm = Path::new("/dev/shm");
    let other_fs = (shm.is_dir()
        && std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(tmp.path()).unwrap().dev())
    .then(|| tempfile::tempdir_in(shm).unwrap());
    let mut builder = Vfs::builder()
        .mount("/a", HostDir::open(tmp.path().join("a")).unwrap())
        .mount("/mem", wasi_common_vfs::MemFs::new())
        .mount("/b", HostDir::open(tmp.path().join("b")).unwrap())
        .mount(
            "/ro",
            HostDir::open(tmp.path().join("ro")).unwrap().read_only(),
        );
    if let Some(other) = &other_fs {
        builder = builder.mount("/other", HostDir::open(other.path()).unwrap());
    }
    let vfs = builder.build().unwrap();
    let dev = |p: &str| vfs.metadata(p).unwrap().dev;
    assert_eq!(dev("/a"), dev("/b"));
    assert_eq!(dev("/a"), dev("/ro"));
    assert_ne!(dev("/a"), dev("/mem"));
    assert_ne!(dev("/mem"), dev("/"));
    if other_fs.is_some() {
        assert_ne!(dev("/other"), dev("/a"));
    }
    let files = common::guest("files");
    let in_a = common::try_run_in(&files, &[], &vfs, "/a").unwrap();
    let in_b = common::try_run_in(&files, &[], &vfs, "/b").unwrap();
    assert_eq!(in_a.code, 0, "{}", in_a.stderr);
    assert_eq!(in_b.code, 0, "{}", in_b.stderr);
    assert!(
        in_b.stdout.contains("fd_allocate size: Ok(102)"),
        "{}",
        in_b.stdout
    );
    assert_eq!(in_b.stdout, in_a.stdout);
}
