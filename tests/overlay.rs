//! `Overlay` through the storage trait and the host API: copy-up that is
//! all or nothing, truncation that copies nothing it discards, trees of
//! any depth, and listings that survive copy-up.

use std::sync::Arc;
use wasi_common_vfs::storage::budget::Budget;
use wasi_common_vfs::storage::{FileKind, NewNode, SetAttr, WritePos};
use wasi_common_vfs::{Error, MemFs, Overlay, Storage};

/// A lower store holding `big` (3 MiB of a repeating pattern).
fn lower_with_big_file() -> MemFs {
    let lower = MemFs::new();
    let big = lower.create(lower.root(), "big", NewNode::File).unwrap();
    let data: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    put(&lower, big.ino, &data);
    lower
}

/// Writes `data` at the start of `ino`.
fn put(store: &dyn Storage, ino: u64, data: &[u8]) {
    store
        .write(
            ino,
            WritePos::At(0),
            &[std::io::IoSlice::new(data)],
            u64::MAX,
        )
        .unwrap();
}

fn read_all(store: &dyn Storage, ino: u64) -> Vec<u8> {
    let size = store.getattr(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let n = store
        .read(ino, 0, &mut [std::io::IoSliceMut::new(&mut buf)])
        .unwrap();
    buf.truncate(n);
    buf
}

/// Under a budget too small for the copy, a one-byte write to a large
/// lower file fails with `ENOSPC` and leaves the file exactly as it was,
/// read after read and write after write; nothing stays charged.
#[test]
fn a_copy_up_that_does_not_fit_changes_nothing() {
    let upper = MemFs::new();
    let budget = Arc::new(Budget::new(1 << 20, 1000));
    upper.attach_budget(budget.clone());
    let overlay = Overlay::with_upper(lower_with_big_file(), upper);
    let (big, _) = overlay.lookup(overlay.root(), "big").unwrap();
    let before = read_all(&overlay, big);
    for _ in 0..2 {
        let w = overlay.write(
            big,
            WritePos::At(0),
            &[std::io::IoSlice::new(b"x")],
            u64::MAX,
        );
        assert!(matches!(w, Err(Error::NoSpace)), "{w:?}");
        assert_eq!(read_all(&overlay, big), before, "the file reads as before");
    }
    assert_eq!(budget.bytes_used(), 0, "the partial copy was given back");
    let names: Vec<String> = overlay
        .readdir(overlay.root(), 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["big"], "no work file shows");
    assert!(overlay.changes().unwrap().modified.is_empty());
}

/// Truncating a large lower file copies none of its data, so it succeeds
/// under a budget far smaller than the file.
#[test]
fn truncating_a_large_lower_file_copies_nothing() {
    let upper = MemFs::new();
    let budget = Arc::new(Budget::new(64 << 10, 1000));
    upper.attach_budget(budget.clone());
    let overlay = Overlay::with_upper(lower_with_big_file(), upper);
    let (big, _) = overlay.lookup(overlay.root(), "big").unwrap();
    let truncate = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    overlay.setattr(big, &truncate).unwrap();
    assert_eq!(overlay.getattr(big).unwrap().size, 0);
    put(&overlay, big, b"new");
    assert_eq!(read_all(&overlay, big), b"new");
    assert!(budget.bytes_used() < 16 << 10, "{}", budget.bytes_used());
    assert_eq!(overlay.changes().unwrap().modified, ["big"]);
}

/// A write at the bottom of a lower chain of directories deeper than any
/// stack could recurse copies the whole chain up, and `changes()` walks
/// it, on a thread with the default 2 MiB stack.
#[test]
fn copy_up_and_changes_handle_any_depth() {
    const DEPTH: usize = 50_000;
    let lower = MemFs::new();
    let mut dir = lower.root();
    for _ in 0..DEPTH {
        dir = lower.create(dir, "d", NewNode::Dir).unwrap().ino;
    }
    lower.create(dir, "bottom", NewNode::File).unwrap();
    let worker = std::thread::spawn(move || {
        let overlay = Overlay::new(lower);
        let mut dir = overlay.root();
        for _ in 0..DEPTH {
            dir = overlay.lookup(dir, "d").unwrap().0;
        }
        let (bottom, kind) = overlay.lookup(dir, "bottom").unwrap();
        assert_eq!(kind, FileKind::File);
        put(&overlay, bottom, b"deep");
        let changes = overlay.changes().unwrap();
        assert_eq!(changes.modified.len(), 1);
        assert_eq!(changes.modified[0].len(), DEPTH * 2 + "bottom".len());
        assert!(changes.added.is_empty() && changes.deleted.is_empty());
    });
    worker.join().expect("no stack overflow");
}

/// A lower file written (so copied up) while its directory is being listed
/// is listed once: 301 entries, each exactly once.
#[test]
fn a_listing_lists_a_file_copied_up_meanwhile_once() {
    let lower = MemFs::new();
    for i in 0..300 {
        lower
            .create(lower.root(), &format!("entry-{i:03}"), NewNode::File)
            .unwrap();
    }
    lower
        .create(lower.root(), "log.txt", NewNode::File)
        .unwrap();
    let overlay = Overlay::new(lower);
    let root = overlay.root();
    let (log, _) = overlay.lookup(root, "log.txt").unwrap();
    let (mut names, mut cursor) = (Vec::new(), 0);
    loop {
        let page = overlay.readdir(root, cursor, 16).unwrap();
        overlay
            .write(
                log,
                WritePos::Append,
                &[std::io::IoSlice::new(b"line\n")],
                u64::MAX,
            )
            .unwrap();
        names.extend(page.iter().map(|e| e.name.clone()));
        match page.last() {
            Some(last) if page.len() == 16 => cursor = last.next,
            _ => break,
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((names.len(), unique.len()), (301, 301));
    assert!(names.contains(&"log.txt".to_owned()));
}

/// A lower file unlinked while open stays nameless: writing and
/// truncating through the open handle work and bring no name back, and a
/// new file that took the name is left alone.
#[test]
fn an_unlinked_open_lower_file_stays_nameless() {
    let lower = MemFs::new();
    let f = lower.create(lower.root(), "f", NewNode::File).unwrap();
    put(&lower, f.ino, b"ONE");
    lower.create(lower.root(), "g", NewNode::File).unwrap();
    let overlay = Overlay::new(lower);
    let root = overlay.root();

    let (f, _) = overlay.lookup(root, "f").unwrap();
    overlay.open(f).unwrap();
    overlay.unlink(root, "f").unwrap();
    put(&overlay, f, b"TWO");
    assert_eq!(read_all(&overlay, f), b"TWO");
    assert!(
        matches!(overlay.lookup(root, "f"), Err(Error::NotFound)),
        "no name came back"
    );
    overlay.release(f);

    // A new file takes the name while the old one is open.
    let (g, _) = overlay.lookup(root, "g").unwrap();
    overlay.open(g).unwrap();
    overlay.unlink(root, "g").unwrap();
    let new = overlay.create(root, "g", NewNode::File).unwrap().ino;
    put(&overlay, g, b"old handle");
    let truncate = SetAttr {
        size: Some(3),
        ..SetAttr::default()
    };
    overlay.setattr(g, &truncate).unwrap();
    assert_eq!(read_all(&overlay, g), b"old");
    assert_eq!(read_all(&overlay, new), b"", "the new file is untouched");
    overlay.release(g);
    let changes = overlay.changes().unwrap();
    assert_eq!(changes.deleted, ["f"]);
    assert_eq!(changes.added, Vec::<String>::new());
    assert_eq!(
        changes.modified,
        ["g"],
        "g is a new file where a lower one was"
    );
}

/// A lower store with `names` all hard links of one file holding `ONE`.
fn lower_with_links(names: &[&str]) -> MemFs {
    let lower = MemFs::new();
    let f = lower.create(lower.root(), names[0], NewNode::File).unwrap();
    put(&lower, f.ino, b"ONE");
    for name in &names[1..] {
        lower.link(f.ino, lower.root(), name).unwrap();
    }
    lower
}

/// Lower hard links stay one file: a write through one name is seen
/// through the other, `nlink` stays exact, an unlinked name does not come
/// back when another is written, and replacing one name does not make a
/// write through another fail.
#[test]
fn lower_hard_links_stay_one_file() {
    let overlay = Overlay::new(lower_with_links(&["p", "q"]));
    let root = overlay.root();
    let (p, _) = overlay.lookup(root, "p").unwrap();
    let (q, _) = overlay.lookup(root, "q").unwrap();
    assert_eq!(p, q, "one inode");
    put(&overlay, p, b"TWO");
    let (q, _) = overlay.lookup(root, "q").unwrap();
    assert_eq!(read_all(&overlay, q), b"TWO", "q sees the write through p");
    assert_eq!(overlay.getattr(p).unwrap().nlink, 2);

    // Unlink a, write b: a stays gone.
    let overlay = Overlay::new(lower_with_links(&["a", "b"]));
    let (_, _) = overlay.lookup(root, "a").unwrap();
    let (b, _) = overlay.lookup(root, "b").unwrap();
    overlay.unlink(root, "a").unwrap();
    put(&overlay, b, b"TWO");
    assert!(
        matches!(overlay.lookup(root, "a"), Err(Error::NotFound)),
        "a came back"
    );
    assert_eq!(read_all(&overlay, b), b"TWO");
    assert_eq!(overlay.getattr(b).unwrap().nlink, 1);

    // Replace c, write d: no EEXIST, and c is the file that replaced it.
    let overlay = Overlay::new(lower_with_links(&["c", "d"]));
    let (_, _) = overlay.lookup(root, "c").unwrap();
    let (d, _) = overlay.lookup(root, "d").unwrap();
    let x = overlay.create(root, "x", NewNode::File).unwrap().ino;
    put(&overlay, x, b"NEW");
    overlay.rename(root, "x", root, "c").unwrap();
    put(&overlay, d, b"TWO");
    let (c, _) = overlay.lookup(root, "c").unwrap();
    assert_eq!(read_all(&overlay, c), b"NEW");
    assert_eq!(read_all(&overlay, d), b"TWO");
}

/// Copy-up keeps a lower symlink's modification time, as it does a file's
/// and a directory's.
#[test]
fn copy_up_keeps_a_symlinks_times() {
    let lower = MemFs::new();
    let link = lower
        .create(lower.root(), "l", NewNode::Symlink("target"))
        .unwrap();
    let then = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let set = SetAttr {
        mtime: Some(wasi_common_vfs::storage::TimeSet::At(then)),
        ..SetAttr::default()
    };
    lower.setattr(link.ino, &set).unwrap();
    let overlay = Overlay::new(lower);
    let root = overlay.root();
    overlay.rename(root, "l", root, "moved").unwrap();
    let (moved, _) = overlay.lookup(root, "moved").unwrap();
    assert_eq!(overlay.getattr(moved).unwrap().mtime, then);
    assert_eq!(overlay.readlink(moved).unwrap(), "target");
}
