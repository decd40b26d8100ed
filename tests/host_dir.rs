//! `HostDir` through the storage trait: listings continued from the host's
//! own cookies, open directories stat-ed through their handles, and
//! read-only stores that hold only read-only host handles.

use std::path::Path;
use wasi_common_vfs::storage::FileKind;
use wasi_common_vfs::{HostDir, Overlay, Storage};

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
    store.open(d).unwrap();
    std::fs::remove_dir(tmp.path().join("d")).unwrap();
    let attr = store.getattr(d).unwrap();
    assert_eq!((attr.kind, attr.nlink), (FileKind::Dir, 0));
    store.release(d);
}

/// A read-only `HostDir`, and one under an overlay, hold open files with
/// read-only host descriptors; a writable one holds them read-write.
#[test]
fn read_only_stores_open_host_files_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"data").unwrap();
    let held = |store: &dyn Storage| {
        let (ino, _) = store.lookup(store.root(), "f").unwrap();
        store.open(ino).unwrap();
        let modes = access_modes(&file);
        store.release(ino);
        modes
    };
    const RDONLY: u32 = 0;
    const RDWR: u32 = 2;
    assert_eq!(held(&HostDir::open(tmp.path()).unwrap()), [RDWR]);
    assert_eq!(
        held(&HostDir::open(tmp.path()).unwrap().read_only()),
        [RDONLY]
    );
    let overlay = Overlay::new(HostDir::open(tmp.path()).unwrap());
    let (ino, _) = overlay.lookup(overlay.root(), "f").unwrap();
    overlay.open(ino).unwrap();
    assert_eq!(access_modes(&file), [RDONLY], "the overlay's lower layer");
    overlay.release(ino);
}
