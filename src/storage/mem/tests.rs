//! `MemFs` against the storage trait's contract: link counts, inode
//! lifetime, rename rules, cursors, and concurrent use.

use super::*;
use crate::storage::budget::Budget;
use std::collections::HashMap;

fn fs() -> MemFs {
    MemFs::new()
}

fn file(fs: &MemFs, dir: Ino, name: &str, data: &[u8]) -> Ino {
    let ino = fs.create(dir, name, NewNode::File).unwrap().ino;
    fs.write(ino, WritePos::At(0), &[IoSlice::new(data)], u64::MAX)
        .unwrap();
    ino
}

fn contents(fs: &MemFs, ino: Ino) -> Vec<u8> {
    let mut buf = vec![0; 1024];
    let n = fs.read(ino, 0, &mut [IoSliceMut::new(&mut buf)]).unwrap();
    buf.truncate(n);
    buf
}

fn names(fs: &MemFs, dir: Ino) -> Vec<String> {
    fs.readdir(dir, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[test]
fn inode_numbers_are_unique_and_never_reused() {
    let fs = fs();
    let a = file(&fs, ROOT, "a", b"");
    fs.unlink(ROOT, "a").unwrap();
    let b = file(&fs, ROOT, "b", b"");
    assert_ne!(a, b);
    assert!(matches!(fs.getattr(a), Err(Error::NotFound)));
}

#[test]
fn nlink_counts_names_and_subdirectories() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"x");
    fs.link(f, ROOT, "g").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    let d = fs.create(ROOT, "d", NewNode::Dir).unwrap().ino;
    fs.link(f, d, "h").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 3);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    fs.create(d, "sub", NewNode::Dir).unwrap();
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);
    fs.unlink(ROOT, "f").unwrap();
    fs.unlink(d, "h").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    assert_eq!(contents(&fs, f), b"x");
    assert!(matches!(fs.link(d, ROOT, "dd"), Err(Error::NotPermitted)));
}

#[test]
fn unlinked_open_file_lives_until_released() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"kept");
    fs.open(f, false).unwrap();
    fs.open(f, false).unwrap();
    fs.unlink(ROOT, "f").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 0);
    fs.release(f);
    assert_eq!(contents(&fs, f), b"kept");
    fs.release(f);
    assert!(matches!(fs.getattr(f), Err(Error::NotFound)));
    assert_eq!(fs.inode_count(), 1, "only the root is left");
}

#[test]
fn unlinked_file_cannot_get_a_new_name() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"");
    fs.open(f, false).unwrap();
    fs.unlink(ROOT, "f").unwrap();
    assert!(matches!(fs.link(f, ROOT, "again"), Err(Error::NotFound)));
}

#[test]
fn rename_replaces_atomically_and_frees_the_old_inode() {
    let fs = fs();
    let a = file(&fs, ROOT, "a", b"new");
    let b = file(&fs, ROOT, "b", b"old");
    fs.rename(ROOT, "a", ROOT, "b").unwrap();
    assert_eq!(names(&fs, ROOT), ["b"]);
    assert_eq!(fs.lookup(ROOT, "b").unwrap().0, a);
    assert!(matches!(fs.getattr(b), Err(Error::NotFound)));
}

#[test]
fn rename_follows_posix_rules() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"");
    let d = fs.create(ROOT, "d", NewNode::Dir).unwrap().ino;
    let e = fs.create(ROOT, "e", NewNode::Dir).unwrap().ino;
    let inner = fs.create(d, "inner", NewNode::Dir).unwrap().ino;
    file(&fs, e, "x", b"");
    assert!(matches!(fs.rename(ROOT, "f", ROOT, "d"), Err(Error::IsDir)));
    assert!(matches!(
        fs.rename(ROOT, "d", ROOT, "f"),
        Err(Error::NotDir)
    ));
    assert!(matches!(
        fs.rename(ROOT, "d", ROOT, "e"),
        Err(Error::NotEmpty)
    ));
    assert!(matches!(
        fs.rename(ROOT, "d", inner, "d"),
        Err(Error::Invalid)
    ));
    assert!(matches!(
        fs.rename(ROOT, "d", d, "self"),
        Err(Error::Invalid)
    ));
    // Onto its own parent: the parent is locked as the source directory,
    // and must not be locked again as the replaced one.
    assert!(matches!(
        fs.rename(d, "inner", ROOT, "d"),
        Err(Error::NotEmpty)
    ));
    assert!(matches!(
        fs.rename(ROOT, "zz", ROOT, "y"),
        Err(Error::NotFound)
    ));
    // A directory moved elsewhere gets a new parent for `..`.
    fs.rename(d, "inner", e, "moved").unwrap();
    assert_eq!(fs.lookup(inner, "..").unwrap().0, e);
    assert_eq!(fs.getattr(d).unwrap().nlink, 2);
    assert_eq!(fs.getattr(e).unwrap().nlink, 3);
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
}

#[test]
fn rename_over_empty_directory_removes_it() {
    let fs = fs();
    let d = fs.create(ROOT, "d", NewNode::Dir).unwrap().ino;
    let e = fs.create(ROOT, "e", NewNode::Dir).unwrap().ino;
    fs.open(e, false).unwrap();
    fs.rename(ROOT, "d", ROOT, "e").unwrap();
    assert_eq!(fs.lookup(ROOT, "e").unwrap().0, d);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert_eq!(fs.getattr(e).unwrap().nlink, 0);
    assert!(matches!(
        fs.create(e, "x", NewNode::File),
        Err(Error::NotFound)
    ));
}

#[test]
fn rmdir_refuses_non_empty_and_non_directories() {
    let fs = fs();
    let d = fs.create(ROOT, "d", NewNode::Dir).unwrap().ino;
    file(&fs, d, "f", b"");
    assert!(matches!(fs.rmdir(ROOT, "d"), Err(Error::NotEmpty)));
    assert!(matches!(fs.rmdir(d, "f"), Err(Error::NotDir)));
    assert!(matches!(fs.unlink(ROOT, "d"), Err(Error::IsDir)));
    fs.unlink(d, "f").unwrap();
    fs.rmdir(ROOT, "d").unwrap();
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 2);
    assert_eq!(fs.inode_count(), 1);
}

#[test]
fn symlinks_hold_their_target() {
    let fs = fs();
    let l = fs
        .create(ROOT, "l", NewNode::Symlink("some/where"))
        .unwrap();
    assert_eq!((l.kind, l.size), (FileKind::Symlink, 10));
    assert_eq!(fs.readlink(l.ino).unwrap(), "some/where");
    assert!(matches!(fs.readlink(ROOT), Err(Error::Invalid)));
    assert!(matches!(fs.read(l.ino, 0, &mut []), Err(Error::Invalid)));
}

#[test]
fn append_writes_at_the_end_and_reports_it() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"abc");
    assert_eq!(
        fs.write(f, WritePos::Append, &[IoSlice::new(b"de")], u64::MAX)
            .unwrap(),
        (2, 5)
    );
    assert_eq!(contents(&fs, f), b"abcde");
}

#[test]
fn sizes_beyond_the_limit_are_efbig() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"");
    let at_max = WritePos::At(MAX_FILE_SIZE);
    assert!(matches!(
        fs.write(f, at_max, &[IoSlice::new(b"x")], u64::MAX),
        Err(Error::FileTooBig)
    ));
    let too_big = SetAttr {
        size: Some(MAX_FILE_SIZE + 1),
        ..SetAttr::default()
    };
    assert!(matches!(fs.setattr(f, &too_big), Err(Error::FileTooBig)));
    assert!(matches!(fs.allocate(f, u64::MAX), Err(Error::FileTooBig)));
    fs.allocate(f, 10).unwrap();
    fs.allocate(f, 5).unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 10);
}

#[test]
fn times_change_with_data_and_with_setattr() {
    let fs = fs();
    let f = file(&fs, ROOT, "f", b"");
    let epoch = SystemTime::UNIX_EPOCH;
    let set = SetAttr {
        atime: Some(TimeSet::At(epoch)),
        mtime: Some(TimeSet::At(epoch)),
        size: None,
        mode: Some(0o100_640),
    };
    let a = fs.setattr(f, &set).unwrap();
    assert_eq!((a.atime, a.mtime), (epoch, epoch));
    assert_eq!(a.mode, 0o640, "only permission bits are kept");
    assert!(a.ctime > epoch);
    fs.write(f, WritePos::At(0), &[IoSlice::new(b"x")], u64::MAX)
        .unwrap();
    let a = fs.getattr(f).unwrap();
    assert!(a.mtime > epoch);
    assert_eq!(a.atime, epoch);
}

#[test]
fn readdir_pages_through_a_changing_directory() {
    let fs = fs();
    for i in 0..10 {
        file(&fs, ROOT, &format!("f{i}"), b"");
    }
    let page = fs.readdir(ROOT, 0, 4).unwrap();
    assert_eq!(page.len(), 4);
    fs.unlink(ROOT, "f2").unwrap();
    fs.unlink(ROOT, "f7").unwrap();
    let rest: Vec<String> = fs
        .readdir(ROOT, page[3].next, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(rest, ["f4", "f5", "f6", "f8", "f9"]);
}

/// Many threads create, rename, link and unlink in shared directories;
/// afterwards every link count equals the number of names and every inode
/// is reachable.
#[test]
fn concurrent_namespace_changes_stay_consistent() {
    let fs = Arc::new(fs());
    let d1 = fs.create(ROOT, "d1", NewNode::Dir).unwrap().ino;
    let d2 = fs.create(ROOT, "d2", NewNode::Dir).unwrap().ino;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let fs = fs.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let name = format!("t{t}-{}", i % 16);
                    let (from, to) = if i % 2 == 0 { (d1, d2) } else { (d2, d1) };
                    let _ = fs.create(from, &name, NewNode::File);
                    let _ = fs.rename(from, &name, to, &format!("r{}", i % 8));
                    if let Ok((ino, _)) = fs.lookup(to, &format!("r{}", (i + 3) % 8)) {
                        let _ = fs.link(ino, from, &format!("l{t}-{}", i % 5));
                    }
                    let _ = fs.unlink(to, &format!("l{}-{}", (t + 1) % 4, i % 5));
                    let _ = fs.rename(ROOT, "d1", ROOT, "d1");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut names_per_inode: HashMap<Ino, u64> = HashMap::new();
    for dir in [d1, d2] {
        let entries = fs.readdir(dir, 0, usize::MAX).unwrap();
        let mut seen = std::collections::HashSet::new();
        for e in entries {
            assert!(seen.insert(e.name.clone()), "{} listed twice", e.name);
            *names_per_inode.entry(e.ino).or_default() += 1;
        }
    }
    for (ino, names) in &names_per_inode {
        assert_eq!(fs.getattr(*ino).unwrap().nlink, *names, "inode {ino}");
    }
    assert_eq!(
        fs.inode_count(),
        3 + names_per_inode.len(),
        "no unreachable inode is kept"
    );
}

/// A small deterministic generator, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every invariant of a quiescent store: each directory lists each name
/// once; every inode's `nlink` is its number of names (2 plus
/// subdirectories for a directory); every live inode is reachable from the
/// root or held open; nothing unreachable and unopened is kept.
fn check_consistency(fs: &MemFs, open: &HashMap<Ino, u64>) {
    let mut names: HashMap<Ino, u64> = HashMap::new();
    let mut subdirs: HashMap<Ino, u64> = HashMap::new();
    let mut pending = vec![ROOT];
    let mut seen_dirs = std::collections::HashSet::new();
    while let Some(dir) = pending.pop() {
        assert!(seen_dirs.insert(dir), "directory {dir} reached twice");
        let entries = fs.readdir(dir, 0, usize::MAX).unwrap();
        let mut unique = std::collections::HashSet::new();
        for e in entries {
            assert!(
                unique.insert(e.name.clone()),
                "{} listed twice in {dir}",
                e.name
            );
            assert_eq!(fs.lookup(dir, &e.name).unwrap(), (e.ino, e.kind));
            *names.entry(e.ino).or_default() += 1;
            if e.kind == FileKind::Dir {
                *subdirs.entry(dir).or_default() += 1;
                assert_eq!(
                    fs.lookup(e.ino, "..").unwrap().0,
                    dir,
                    "parent of {}",
                    e.name
                );
                pending.push(e.ino);
            }
        }
    }
    let live: Vec<Ino> = fs.inodes.keys();
    for ino in live {
        let attr = fs.getattr(ino).unwrap();
        let expected = match attr.kind {
            FileKind::Dir if ino == ROOT || names.contains_key(&ino) => {
                2 + subdirs.get(&ino).copied().unwrap_or(0)
            }
            _ => names.get(&ino).copied().unwrap_or(0),
        };
        assert_eq!(attr.nlink, expected, "nlink of {ino} ({:?})", attr.kind);
        let reachable = ino == ROOT || names.contains_key(&ino);
        assert!(
            reachable || open.get(&ino).is_some_and(|&n| n > 0),
            "inode {ino} kept but unreachable and closed"
        );
    }
}

/// Many OS threads drive the storage API with random operations on a
/// shared tree for a bounded number of steps, holding and releasing
/// handles as they go; the tree is then checked whole.
#[test]
fn random_concurrent_operations_leave_a_consistent_tree() {
    const THREADS: u64 = 6;
    const STEPS: usize = 3000;
    let fs = Arc::new(fs());
    let dirs: Vec<Ino> = (0..4)
        .map(|i| fs.create(ROOT, &format!("d{i}"), NewNode::Dir).unwrap().ino)
        .collect();
    let dirs = Arc::new(dirs);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (fs, dirs) = (fs.clone(), dirs.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 0x1000_0001));
                let mut held: Vec<Ino> = Vec::new();
                for _ in 0..STEPS {
                    let d = dirs[rng.below(dirs.len() as u64) as usize];
                    let e = dirs[rng.below(dirs.len() as u64) as usize];
                    let name = format!("n{}", rng.below(12));
                    let other = format!("n{}", rng.below(12));
                    let _ = match rng.below(10) {
                        0 => fs.create(d, &name, NewNode::File).map(drop),
                        1 => fs.create(d, &name, NewNode::Dir).map(drop),
                        2 => fs.unlink(d, &name),
                        3 => fs.rmdir(d, &name),
                        4 => fs.rename(d, &name, e, &other),
                        5 => fs
                            .lookup(d, &name)
                            .and_then(|(i, _)| fs.link(i, e, &other))
                            .map(drop),
                        6 => fs
                            .lookup(d, &name)
                            .and_then(|(i, _)| {
                                fs.write(i, WritePos::Append, &[IoSlice::new(b"data")], u64::MAX)
                            })
                            .map(drop),
                        7 => fs
                            .lookup(d, &name)
                            .and_then(|(i, _)| fs.open(i, false).map(|()| held.push(i))),
                        8 => {
                            if let Some(i) = held.pop() {
                                fs.release(i);
                            }
                            Ok(())
                        }
                        _ => fs.readdir(d, rng.below(8), 4).map(drop),
                    };
                }
                held
            })
        })
        .collect();
    let mut open: HashMap<Ino, u64> = HashMap::new();
    for w in workers {
        for ino in w.join().unwrap() {
            *open.entry(ino).or_default() += 1;
        }
    }
    check_consistency(&fs, &open);
    for (&ino, &n) in &open {
        for _ in 0..n {
            fs.release(ino);
        }
    }
    check_consistency(&fs, &HashMap::new());
}

fn budgeted(max_bytes: u64, max_inodes: u64) -> (MemFs, Arc<Budget>) {
    let fs = fs();
    let budget = Arc::new(Budget::new(max_bytes, max_inodes));
    fs.attach_budget(budget.clone());
    (fs, budget)
}

#[test]
fn a_refused_write_changes_nothing_and_freeing_makes_room() {
    let (fs, budget) = budgeted(200_000, 100);
    let f = fs.create(ROOT, "f", NewNode::File).unwrap().ino;
    let block = vec![1u8; 100_000];
    fs.write(f, WritePos::At(0), &[IoSlice::new(&block)], u64::MAX)
        .unwrap();
    let used = budget.bytes_used();
    let too_much = fs.write(f, WritePos::Append, &[IoSlice::new(&block)], u64::MAX);
    assert!(matches!(too_much, Err(Error::NoSpace)));
    assert_eq!(fs.getattr(f).unwrap().size, 100_000, "no partial write");
    assert_eq!(budget.bytes_used(), used);
    // A hole costs nothing.
    fs.allocate(f, 1 << 30).unwrap();
    assert_eq!(budget.bytes_used(), used);
    // Truncating gives bytes back.
    fs.setattr(
        f,
        &SetAttr {
            size: Some(10),
            ..SetAttr::default()
        },
    )
    .unwrap();
    fs.write(f, WritePos::Append, &[IoSlice::new(&block)], u64::MAX)
        .unwrap();
    // Unlinking gives everything back.
    fs.unlink(ROOT, "f").unwrap();
    assert_eq!((budget.bytes_used(), budget.inodes_used()), (0, 0));
}

#[test]
fn scattered_one_byte_writes_are_charged_for_their_bookkeeping() {
    // Each write lands in its own chunk past a hole; the host holds an index
    // entry and a buffer for it, not one byte.
    let limit = 1 << 20;
    let (fs, budget) = budgeted(limit, 10);
    let f = fs.create(ROOT, "f", NewNode::File).unwrap().ino;
    let mut writes = 0u64;
    while fs
        .write(
            f,
            WritePos::At(writes * 3 * 65536),
            &[IoSlice::new(b"x")],
            u64::MAX,
        )
        .is_ok()
    {
        writes += 1;
    }
    assert!(
        (limit / 256..limit / 100).contains(&writes),
        "{writes} scattered bytes in 1 MiB"
    );
    fs.unlink(ROOT, "f").unwrap();
    assert_eq!(budget.bytes_used(), 0);
}

#[test]
fn inodes_names_and_links_count() {
    let (fs, budget) = budgeted(u64::MAX, 3);
    for name in ["a", "b", "c"] {
        fs.create(ROOT, name, NewNode::File).unwrap();
    }
    assert!(matches!(
        fs.create(ROOT, "d", NewNode::Dir),
        Err(Error::NoSpace)
    ));
    assert_eq!(budget.inodes_used(), 3);
    fs.unlink(ROOT, "c").unwrap();
    fs.create(ROOT, "d", NewNode::Dir).unwrap();

    // Long names and many links run into the byte limit.
    let (fs, budget) = budgeted(4096, u64::MAX);
    let f = fs.create(ROOT, "f", NewNode::File).unwrap().ino;
    let mut links = 0;
    while fs
        .link(f, ROOT, &format!("{}{links}", "n".repeat(200)))
        .is_ok()
    {
        links += 1;
    }
    assert!(
        (5..20).contains(&links),
        "{links} links of 200-byte names in 4 KiB"
    );
    let before = budget.bytes_used();
    fs.rename(ROOT, &format!("{}0", "n".repeat(200)), ROOT, "short")
        .unwrap();
    assert!(
        budget.bytes_used() < before,
        "a shorter name gives bytes back"
    );
    assert!(matches!(
        fs.create(ROOT, "l", NewNode::Symlink(&"t".repeat(4000))),
        Err(Error::NoSpace)
    ));
}

/// The budget holds exactly what the store's structures hold, counted
/// afresh, through creates, links, renames within and across directories,
/// replacements, symlinks, writes and removals.
#[test]
fn what_is_charged_is_what_is_held() {
    let (fs, budget) = budgeted(u64::MAX, u64::MAX);
    let check = |when: &str| assert_eq!(budget.bytes_used(), fs.recount(), "{when}");
    let d = fs.create(ROOT, "d", NewNode::Dir).unwrap().ino;
    let e = fs.create(ROOT, "e", NewNode::Dir).unwrap().ino;
    for i in 0..2000 {
        let f = file(&fs, d, &format!("file-{i}"), &[7; 100]);
        fs.link(f, e, &format!("link-with-a-longer-name-{i}"))
            .unwrap();
    }
    fs.create(ROOT, "s", NewNode::Symlink(&"t".repeat(300)))
        .unwrap();
    check("filled");
    for i in 0..2000 {
        match i % 4 {
            0 => fs
                .rename(d, &format!("file-{i}"), d, &format!("f{i}"))
                .unwrap(),
            1 => fs
                .rename(d, &format!("file-{i}"), e, &format!("moved-{i}"))
                .unwrap(),
            2 => fs
                .rename(
                    e,
                    &format!("link-with-a-longer-name-{i}"),
                    d,
                    &format!("file-{}", i + 1),
                )
                .unwrap(),
            _ => fs
                .unlink(e, &format!("link-with-a-longer-name-{i}"))
                .unwrap(),
        }
    }
    check("renamed and replaced");
    for dir in [d, e] {
        for entry in fs.readdir(dir, 0, usize::MAX).unwrap() {
            fs.unlink(dir, &entry.name).unwrap();
        }
    }
    check("emptied");
    fs.rmdir(ROOT, "d").unwrap();
    fs.rmdir(ROOT, "e").unwrap();
    fs.unlink(ROOT, "s").unwrap();
    assert_eq!((budget.bytes_used(), budget.inodes_used()), (0, 0));
}

/// A directory filled with many names and emptied gives back all it took,
/// its index and the inode table included, cycle after cycle.
#[test]
fn a_directory_filled_with_links_and_emptied_gives_everything_back() {
    let (fs, budget) = budgeted(u64::MAX, u64::MAX);
    let d = fs.create(ROOT, "d", NewNode::Dir).unwrap().ino;
    let f = file(&fs, ROOT, "f", b"x");
    let baseline = budget.bytes_used();
    for cycle in 0..3 {
        for i in 0..50_000 {
            fs.link(f, d, &format!("l{i}")).unwrap();
        }
        let full = budget.bytes_used() - baseline;
        // Slot, index entry and the smallest name allocation, at least.
        assert!(full > 50_000 * (40 + 8 + 32), "cycle {cycle}: {full}");
        assert_eq!(budget.bytes_used(), fs.recount(), "cycle {cycle}");
        for i in 0..50_000 {
            fs.unlink(d, &format!("l{i}")).unwrap();
        }
        assert_eq!(budget.bytes_used(), baseline, "cycle {cycle}");
    }
    for i in 0..50_000 {
        fs.create(d, &format!("n{i}"), NewNode::File).unwrap();
    }
    assert!(fs.inodes.held_bytes() > 50_000 * 16, "the table is charged");
    assert_eq!(budget.bytes_used(), fs.recount());
    for i in 0..50_000 {
        fs.unlink(d, &format!("n{i}")).unwrap();
    }
    // Shards that still hold an inode keep a little room, charged.
    assert_eq!(budget.bytes_used(), fs.recount());
    let left = budget.bytes_used() - baseline;
    assert!(
        left < 1024,
        "the table shrank back: {left} bytes above the start"
    );
}
