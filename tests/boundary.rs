//! Where the tree meets the host, tried as an attacker would: archives that
//! plant symlinks and write through them, archives that reach into other
//! mounts, sparse files of 2^62 bytes, trees deeper than any path, host
//! copies bigger than the budget, and the host API reading what a guest
//! planted. Whatever is refused changes nothing.

mod common;

use common::{Entry, archive};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use wasi_common_vfs::{Error, HostDir, Limits, MemFs, Vfs};

/// Everything below the directory `view` shows, walked through confined
/// views so paths of any length work: kind, mode, mtime, nlink and
/// contents or target, by path. Hard links show as one inode number per
/// group, counted in the order met.
fn snapshot(vfs: &Vfs, dir: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut pending = vec![(vfs.subtree(dir).unwrap(), String::new())];
    while let Some((view, rel)) = pending.pop() {
        for entry in view.read_dir("/").unwrap() {
            let path = format!("{rel}/{}", entry.name);
            let m = view.symlink_metadata(&entry.name).unwrap();
            let mtime = m.mtime.duration_since(SystemTime::UNIX_EPOCH).unwrap();
            let mut what = format!("mode {:o} mtime {mtime:?}", m.mode);
            if m.is_dir() {
                what.push_str(" dir");
                pending.push((view.subtree(&entry.name).unwrap(), path.clone()));
            } else if m.is_symlink() {
                what.push_str(&format!(" -> {}", view.read_link(&entry.name).unwrap()));
            } else {
                let next = inodes.len();
                let id = *inodes.entry((m.dev, m.ino)).or_insert(next);
                what.push_str(&format!(" file #{id} nlink {} size {}", m.nlink, m.size));
                if m.size <= 1 << 20 {
                    let data = view.read_nofollow(&entry.name).unwrap();
                    what.push_str(&format!(" {:?}", String::from_utf8_lossy(&data)));
                }
            }
            out.insert(path, what);
        }
    }
    out
}

/// A tree with a target directory `/t` to load into, a secret beside it,
/// a symlink in the target that leads to the secret, and another store
/// mounted below the target (a host directory, returned).
fn tree_with_a_mount_below() -> (Vfs, tempfile::TempDir) {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("on-host.txt"), b"host data").unwrap();
    let vfs = Vfs::builder()
        .mount("/t/out", HostDir::open(host.path()).unwrap())
        .build()
        .unwrap();
    vfs.create_dir_all("/secret").unwrap();
    vfs.write("/secret/key", b"hunter2").unwrap();
    vfs.write("/t/kept.txt", b"before").unwrap();
    vfs.symlink("/secret", "/t/to-secret").unwrap();
    vfs.symlink("../secret/key", "/t/key-link").unwrap();
    (vfs, host)
}

fn host_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// An in-memory tree that holds at most `bytes` bytes.
fn with_byte_limit(bytes: u64) -> Vfs {
    Vfs::builder()
        .limits(Limits::default().with_bytes(bytes))
        .build()
        .unwrap()
}

/// Loads `bytes` into `/t`, which must be refused with a message naming
/// `names`, and must leave the whole tree and the host directory as they
/// were.
fn refused_and_nothing_changed(bytes: &[u8], names: &[&str]) -> Error {
    let (vfs, host) = tree_with_a_mount_below();
    let before = snapshot(&vfs, "/");
    let host_before = host_files(host.path());
    let e = vfs.load_tar(bytes, "/t").unwrap_err();
    for name in names {
        assert!(e.to_string().contains(name), "{name} in {e}");
    }
    assert_eq!(snapshot(&vfs, "/"), before, "after {e}");
    assert_eq!(host_files(host.path()), host_before, "after {e}");
    e
}

#[test]
fn an_archive_symlink_is_never_written_through() {
    // The attack: a symlink to `/`, then a file below it.
    let bytes = archive(&[
        Entry::File("first.txt", b"loaded before the bad entry"),
        Entry::Symlink("s", "/"),
        Entry::File("s/secret/pwned.txt", b"pwned"),
    ]);
    refused_and_nothing_changed(&bytes, &["s/secret/pwned.txt", "symlink"]);
    // A relative one that climbs out, then a directory through it.
    let bytes = archive(&[
        Entry::Symlink("up", "../.."),
        Entry::Dir("up/secret/newdir/"),
    ]);
    refused_and_nothing_changed(&bytes, &["up/secret/newdir", "symlink"]);
}

#[test]
fn a_later_entry_replaces_an_earlier_symlink_instead_of_writing_through_it() {
    let (vfs, _host) = tree_with_a_mount_below();
    let bytes = archive(&[
        Entry::Symlink("x", "../secret/key"),
        Entry::File("x", b"replaced"),
    ]);
    vfs.load_tar(&bytes[..], "/t").unwrap();
    assert!(vfs.symlink_metadata("/t/x").unwrap().is_file());
    assert_eq!(vfs.read("/t/x").unwrap(), b"replaced");
    assert_eq!(vfs.read("/secret/key").unwrap(), b"hunter2");
}

#[test]
fn symlinks_already_in_the_tree_are_replaced_or_refused_never_followed() {
    // A file entry where the tree has a symlink replaces the link.
    let (vfs, _host) = tree_with_a_mount_below();
    let bytes = archive(&[Entry::File("key-link", b"mine")]);
    vfs.load_tar(&bytes[..], "/t").unwrap();
    assert_eq!(vfs.read_nofollow("/t/key-link").unwrap(), b"mine");
    assert_eq!(vfs.read("/secret/key").unwrap(), b"hunter2");
    // An entry below a symlink the tree holds is refused.
    let bytes = archive(&[Entry::File("to-secret/key", b"pwned")]);
    refused_and_nothing_changed(&bytes, &["to-secret", "symlink"]);
    let bytes = archive(&[Entry::File("kept.txt/below", b"x")]);
    refused_and_nothing_changed(&bytes, &["kept.txt"]);
    // A directory entry of that name replaces the link, as a file does.
    let (vfs, _host) = tree_with_a_mount_below();
    let bytes = archive(&[
        Entry::Dir("to-secret/"),
        Entry::File("to-secret/key", b"mine"),
    ]);
    vfs.load_tar(&bytes[..], "/t").unwrap();
    assert!(vfs.symlink_metadata("/t/to-secret").unwrap().is_dir());
    assert_eq!(vfs.read("/secret/key").unwrap(), b"hunter2");
}

#[test]
fn no_entry_lands_in_another_mount_below_the_target() {
    for bytes in [
        archive(&[
            Entry::File("a.txt", b"fine on its own"),
            Entry::File("out/run.sh", b"#!/bin/sh\necho pwned\n"),
        ]),
        archive(&[Entry::Dir("out/")]),
        archive(&[Entry::File("out", b"not a directory")]),
    ] {
        let e = refused_and_nothing_changed(&bytes, &["out"]);
        assert!(matches!(e, Error::OtherMount(_)), "{e}");
    }
}

#[test]
fn absolute_names_dotdot_and_special_entries_are_refused_by_name() {
    for (bytes, name) in [
        (archive(&[Entry::File("/abs.txt", b"x")]), "/abs.txt"),
        (archive(&[Entry::File("a/../../up.txt", b"x")]), "up.txt"),
        (archive(&[Entry::Dir("../")]), ".."),
        (
            archive(&[Entry::Special(tar::EntryType::Fifo, "pipe")]),
            "pipe",
        ),
        (
            archive(&[Entry::Special(tar::EntryType::Char, "tty")]),
            "tty",
        ),
        (
            archive(&[Entry::Special(tar::EntryType::Block, "sda")]),
            "sda",
        ),
        (archive(&[Entry::Symlink("../out-link", "x")]), "out-link"),
    ] {
        let e = refused_and_nothing_changed(&bytes, &[name]);
        assert!(matches!(e, Error::Archive(_)), "{e}");
    }
}

#[test]
fn hard_links_reach_only_earlier_entries_of_the_archive() {
    for bytes in [
        archive(&[Entry::HardLink("l", "kept.txt")]),
        archive(&[Entry::HardLink("l", "../secret/key")]),
        archive(&[Entry::HardLink("l", "/secret/key")]),
        archive(&[Entry::HardLink("l", "later"), Entry::File("later", b"x")]),
        archive(&[Entry::Dir("d/"), Entry::HardLink("l", "d")]),
        archive(&[
            Entry::Symlink("s", "/secret"),
            Entry::HardLink("l", "s/key"),
        ]),
    ] {
        refused_and_nothing_changed(&bytes, &["l"]);
    }
    let (vfs, _host) = tree_with_a_mount_below();
    let bytes = archive(&[
        Entry::File("a", b"shared"),
        Entry::HardLink("b", "a"),
        Entry::HardLink("sub/c", "./a"),
    ]);
    vfs.load_tar(&bytes[..], "/t").unwrap();
    let a = vfs.metadata("/t/a").unwrap();
    assert_eq!((a.nlink, vfs.metadata("/t/sub/c").unwrap().ino), (3, a.ino));
}

#[test]
fn a_corrupt_or_truncated_archive_changes_nothing() {
    let big = vec![7u8; 200_000];
    let bytes = archive(&[
        Entry::File("kept.txt", b"would replace"),
        Entry::File("new.txt", b"new"),
        Entry::File("big.bin", &big),
    ]);
    // Cut inside a header, inside data, inside padding, at an entry's
    // boundary and at the end-of-archive blocks.
    for cut in [
        0,
        700,
        1024,
        1500,
        2048,
        100_000,
        bytes.len() - 1024 - 512 - 1,
        bytes.len() - 1024,
    ] {
        refused_and_nothing_changed(&bytes[..cut], &["truncated"]);
    }
    let mut corrupt = bytes.clone();
    corrupt[1024 + 148] ^= 0x55; // a checksum byte of the second header
    refused_and_nothing_changed(&corrupt, &["corrupt"]);
}

#[test]
fn a_load_that_runs_out_of_space_changes_nothing() {
    let vfs = with_byte_limit(1 << 20);
    vfs.write("/kept.txt", b"before").unwrap();
    let before = snapshot(&vfs, "/");
    let big = vec![1u8; 2 << 20];
    let bytes = archive(&[Entry::File("kept.txt", b"after"), Entry::File("big", &big)]);
    let e = vfs.load_tar(&bytes[..], "/").unwrap_err();
    assert!(matches!(e.innermost(), Error::NoSpace), "{e}");
    assert!(e.to_string().contains("big"), "{e}");
    assert_eq!(snapshot(&vfs, "/"), before);
    // And the space is all given back: the same archive without the big
    // file loads.
    let bytes = archive(&[Entry::File("kept.txt", b"after")]);
    vfs.load_tar(&bytes[..], "/").unwrap();
    assert_eq!(vfs.read("/kept.txt").unwrap(), b"after");
}

#[test]
fn loading_into_a_missing_directory_makes_it_and_a_failure_removes_it() {
    let vfs = Vfs::new();
    let bad = archive(&[Entry::File("ok", b"x"), Entry::File("/abs", b"x")]);
    vfs.load_tar(&bad[..], "/new/deep/dir").unwrap_err();
    assert!(vfs.read_dir("/").unwrap().is_empty());
    let good = archive(&[Entry::File("ok", b"x")]);
    vfs.load_tar(&good[..], "/new/deep/dir").unwrap();
    assert_eq!(vfs.read("/new/deep/dir/ok").unwrap(), b"x");
    assert_eq!(
        vfs.read_dir("/new/deep/dir").unwrap().len(),
        1,
        "no staging directory is left behind"
    );
}

const SPARSE_SIZE: u64 = 1 << 62;

#[test]
fn a_2_62_byte_sparse_file_saves_in_kilobytes_and_loads_back_as_holes() {
    let small = Limits::default().with_bytes(16 << 20);
    let vfs = Vfs::builder().limits(small).build().unwrap();
    vfs.write("/sparse", b"").unwrap();
    vfs.set_len("/sparse", SPARSE_SIZE).unwrap();
    // Data in the middle of a hole, and in the last 64 KiB (the in-memory
    // store keeps data in 64 KiB chunks, from the chunk's start).
    common::write_at(&vfs, "/sparse", 1 << 40, b"in the middle");
    common::write_at(&vfs, "/sparse", SPARSE_SIZE - (64 << 10), b"end");
    common::write_at(&vfs, "/holes", 2 << 20, b"x");
    vfs.set_len("/holes", 3 << 20).unwrap();
    let mut bytes = Vec::new();
    vfs.save_tar("/", &mut bytes).unwrap();
    assert!(bytes.len() < 16 * 1024, "{} bytes", bytes.len());

    let copy = Vfs::builder().limits(small).build().unwrap();
    copy.load_tar(&bytes[..], "/").unwrap();
    assert_eq!(copy.metadata("/sparse").unwrap().size, SPARSE_SIZE);
    let mut holes = vec![0; 3 << 20];
    holes[2 << 20] = b'x';
    assert_eq!(copy.read("/holes").unwrap(), holes);
    let mut again = Vec::new();
    copy.save_tar("/", &mut again).unwrap();
    assert_eq!(again, bytes, "saved again, the archive is the same");
}

#[test]
fn sparse_entries_are_ones_gnu_tar_reads() {
    let vfs = Vfs::new();
    vfs.write("/f", b"head").unwrap();
    common::write_at(&vfs, "/f", 5 << 20, b"tail");
    let mut bytes = Vec::new();
    vfs.save_tar("/", &mut bytes).unwrap();
    let mut entries = tar::Archive::new(&bytes[..]);
    let mut entry = entries
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.header().entry_type() == tar::EntryType::Regular)
        .unwrap();
    let records: Vec<(String, String)> = entry
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.key().unwrap().to_owned(), r.value().unwrap().to_owned())
        })
        .collect();
    for (key, value) in [
        ("GNU.sparse.major", "1"),
        ("GNU.sparse.minor", "0"),
        ("GNU.sparse.name", "f"),
        ("GNU.sparse.realsize", &((5 << 20) + 4).to_string()),
    ] {
        assert!(
            records.contains(&(key.to_owned(), value.to_owned())),
            "{key}={value} in {records:?}"
        );
    }
    // The map, then the runs: the first chunk (which holds "head") and the
    // last one.
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
    assert!(
        data.starts_with(b"2\n0\n4\n5242880\n4\n"),
        "{:?}",
        &data[..20]
    );
    assert_eq!(&data[512..], b"headtail");
}

/// A chain of directories whose full path is `depth * (name + 1)` bytes.
fn deep_tree(vfs: &Vfs, depth: usize, name: &str) {
    let mut view = vfs.subtree("/").unwrap();
    for _ in 0..depth {
        view.create_dir(name).unwrap();
        view = view.subtree(name).unwrap();
    }
    view.write("bottom.txt", b"deep").unwrap();
    view.symlink(&"../".repeat(depth), "to-top").unwrap();
}

#[test]
fn trees_deeper_than_any_path_save_and_load() {
    let vfs = Vfs::new();
    let name = "d".repeat(200);
    deep_tree(&vfs, 60, &name); // paths of about 12,000 bytes
    let mut bytes = Vec::new();
    vfs.save_tar("/", &mut bytes).unwrap();
    let copy = Vfs::new();
    copy.load_tar(&bytes[..], "/").unwrap();
    let original = snapshot(&vfs, "/");
    assert!(
        original
            .keys()
            .any(|k| k.len() > 4096 && k.ends_with("bottom.txt"))
    );
    assert_eq!(snapshot(&copy, "/"), original);
}

#[test]
fn saves_keep_times_to_the_nanosecond_modes_and_links() {
    let vfs = Vfs::new();
    vfs.create_dir_all("/d/e").unwrap();
    vfs.write("/d/e/f", b"data").unwrap();
    vfs.hard_link("/d/e/f", "/d/g").unwrap();
    vfs.symlink("e/f", "/d/link").unwrap();
    vfs.set_mode("/d/e/f", 0o640).unwrap();
    vfs.set_mode("/d/e", 0o700).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    vfs.set_times("/d/e/f", None, Some(t)).unwrap();
    vfs.set_times("/d/e", None, Some(t + Duration::from_nanos(1)))
        .unwrap();
    let mut bytes = Vec::new();
    vfs.save_tar("/d", &mut bytes).unwrap();
    let copy = Vfs::new();
    copy.load_tar(&bytes[..], "/d").unwrap();
    assert_eq!(snapshot(&copy, "/d"), snapshot(&vfs, "/d"));
}

#[test]
fn copy_in_keeps_holes_charges_first_and_is_all_or_nothing() {
    let host = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(host.path().join("sparse.img")).unwrap();
    big.set_len(1 << 30).unwrap();
    let small = std::fs::File::create(host.path().join("small.img")).unwrap();
    small.set_len(3 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&small, b"middle", 2 << 20).unwrap();
    let limited = Limits::default().with_bytes(16 << 20);
    let vfs = Vfs::builder().limits(limited).build().unwrap();
    vfs.copy_in(host.path(), "/in").unwrap();
    assert_eq!(vfs.metadata("/in/sparse.img").unwrap().size, 1 << 30);
    let mut expected = vec![0u8; 3 << 20];
    expected[2 << 20..(2 << 20) + 6].copy_from_slice(b"middle");
    assert_eq!(vfs.read("/in/small.img").unwrap(), expected);

    // 20 MiB of real data does not fit in 16 MiB: refused, nothing left.
    let dense = tempfile::tempdir().unwrap();
    std::fs::write(dense.path().join("a.txt"), b"a").unwrap();
    std::fs::write(dense.path().join("dense.bin"), vec![1u8; 20 << 20]).unwrap();
    let before = snapshot(&vfs, "/");
    let e = vfs.copy_in(dense.path(), "/in").unwrap_err();
    assert!(matches!(e.innermost(), Error::NoSpace), "{e}");
    assert_eq!(snapshot(&vfs, "/"), before);
}

#[test]
fn copy_in_never_writes_through_a_symlink_in_the_tree() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("key-link"), b"from the host").unwrap();
    let (vfs, _mounted) = tree_with_a_mount_below();
    vfs.copy_in(host.path(), "/t").unwrap();
    assert_eq!(vfs.read_nofollow("/t/key-link").unwrap(), b"from the host");
    assert_eq!(vfs.read("/secret/key").unwrap(), b"hunter2");
}

/// A guest confined to `/sandbox` plants `result.txt -> ../secret/key`.
/// The guest cannot follow it; the whole-tree API follows it as documented;
/// the confined view and the no-follow calls do not.
#[test]
fn the_host_api_reads_what_a_guest_planted_only_as_the_guest_would() {
    let vfs = Vfs::new();
    vfs.create_dir_all("/secret").unwrap();
    vfs.write("/secret/key", b"hunter2").unwrap();
    vfs.create_dir_all("/sandbox").unwrap();
    let out = common::run_with(
        &common::guest("shell"),
        &["symlink ../secret/key /result.txt", "cat /result.txt"],
        false,
        |ctx| vfs.preopen(ctx, "/sandbox", "/").unwrap(),
    );
    assert_eq!(
        out.stdout, "symlink ../secret/key /result.txt: \ncat /result.txt: errno 63\n",
        "the guest itself gets EPERM"
    );
    assert_eq!(vfs.read("/sandbox/result.txt").unwrap(), b"hunter2");

    let sandbox = vfs.subtree("/sandbox").unwrap();
    assert!(matches!(
        sandbox.read("result.txt").map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
    assert!(matches!(
        sandbox.read("/result.txt").map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
    assert!(matches!(
        sandbox
            .write("result.txt", b"x")
            .map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
    assert!(matches!(
        sandbox.read("../secret/key").map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
    assert!(matches!(
        sandbox
            .metadata("result.txt")
            .map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
    assert!(sandbox.symlink_metadata("result.txt").unwrap().is_symlink());
    assert!(matches!(
        vfs.read_nofollow("/sandbox/result.txt")
            .map_err(Error::into_innermost),
        Err(Error::Loop)
    ));
    assert!(matches!(
        vfs.write_nofollow("/sandbox/result.txt", b"x")
            .map_err(Error::into_innermost),
        Err(Error::Loop)
    ));
    assert!(matches!(
        sandbox
            .symlink("/etc", "abs")
            .map_err(Error::into_innermost),
        Err(Error::Escape)
    ));
    assert_eq!(vfs.read("/secret/key").unwrap(), b"hunter2");

    // The view offers the rest of the API, confined.
    sandbox.create_dir_all("/out/logs").unwrap();
    sandbox.write("/out/logs/a.txt", b"a").unwrap();
    assert_eq!(vfs.read("/sandbox/out/logs/a.txt").unwrap(), b"a");
    assert_eq!(sandbox.read_dir("/out").unwrap()[0].name, "logs");
    sandbox.remove("/out/logs/a.txt").unwrap();
    let mut bytes = Vec::new();
    sandbox.save_tar("/", &mut bytes).unwrap();
    let names: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["./", "result.txt", "out/", "out/logs/"]);
    // A confined load refuses an absolute symlink, as a guest's symlink call does.
    let abs = archive(&[Entry::Symlink("abs", "/secret")]);
    assert!(matches!(
        sandbox.load_tar(&abs[..], "/").unwrap_err().innermost(),
        Error::Escape
    ));
    // And the view keeps its directory through a rename, as a descriptor does.
    vfs.rename("/sandbox", "/moved").unwrap();
    assert!(sandbox.symlink_metadata("result.txt").is_ok());
}

#[test]
fn a_view_cannot_be_preopened_per_mount() {
    let vfs = Vfs::builder().mount("/m", MemFs::new()).build().unwrap();
    let ctx = wasi_common::sync::WasiCtxBuilder::new().build();
    assert!(matches!(
        vfs.subtree("/m")
            .unwrap()
            .preopen_mounts(&ctx)
            .map_err(Error::into_innermost),
        Err(Error::NotSupported)
    ));
}

mod properties {
    //! Random archives against a tree with another mount below the target,
    //! and random trees through a save and a load.

    use super::*;
    use proptest::prelude::*;

    /// One entry of a random archive.
    #[derive(Debug, Clone)]
    enum Gen {
        File(String, Vec<u8>),
        Sparse(String, u64, Vec<(u64, Vec<u8>)>),
        Dir(String),
        Symlink(String, String),
        HardLink(String, String),
        Fifo(String),
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            // Mostly plain names; now and then the tree's symlinks (`s`,
            // `x`), its mountpoint (`m`), `..` or a name past a header's field.
            24 => prop::sample::select(vec!["a", "b", "c", "d", "."]).prop_map(String::from),
            3 => prop::sample::select(vec!["s", "x", "m"]).prop_map(String::from),
            1 => Just("..".to_owned()),
            2 => Just("n".repeat(150)),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (
            prop::bool::weighted(0.03),
            prop::collection::vec(name(), 1..4),
        )
            .prop_map(|(absolute, parts)| {
                format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"))
            })
    }

    fn link_target() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "/",
                "..",
                "../..",
                "../../secret",
                "a",
                "m",
                "/secret"
            ])
            .prop_map(String::from),
            path(),
        ]
    }

    fn entry() -> impl Strategy<Value = Gen> {
        let data = prop::collection::vec(any::<u8>(), 0..3000);
        let runs = prop::collection::vec(
            (0..1u64 << 41, prop::collection::vec(any::<u8>(), 1..100)),
            0..4,
        );
        prop_oneof![
            6 => (path(), data).prop_map(|(p, d)| Gen::File(p, d)),
            2 => (path(), runs).prop_map(|(p, mut runs)| {
                runs.sort_by_key(|r| r.0);
                runs.dedup_by(|b, a| a.0 + a.1.len() as u64 >= b.0);
                let size = runs.last().map_or(0, |(o, d)| o + d.len() as u64) + 7;
                Gen::Sparse(p, size, runs)
            }),
            4 => path().prop_map(Gen::Dir),
            3 => (path(), link_target()).prop_map(|(p, t)| Gen::Symlink(p, t)),
            2 => (path(), path()).prop_map(|(p, t)| Gen::HardLink(p, t)),
            1 => path().prop_map(Gen::Fifo),
        ]
    }

    /// The archive bytes of `entries`, names of any length in PAX records.
    fn build(entries: &[Gen]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let (kind, path, link, data) = match e {
                Gen::File(p, d) => (tar::EntryType::Regular, p.as_str(), None, d.clone()),
                Gen::Sparse(p, size, runs) => {
                    let mut map = format!("{}\n", runs.len());
                    for (offset, d) in runs {
                        map.push_str(&format!("{offset}\n{}\n", d.len()));
                    }
                    let mut data = map.into_bytes();
                    data.resize(data.len().div_ceil(512) * 512, 0);
                    for (_, d) in runs {
                        data.extend_from_slice(d);
                    }
                    let size = size.to_string();
                    b.append_pax_extensions([
                        ("GNU.sparse.major", &b"1"[..]),
                        ("GNU.sparse.minor", b"0"),
                        ("GNU.sparse.name", p.as_bytes()),
                        ("GNU.sparse.realsize", size.as_bytes()),
                    ])
                    .unwrap();
                    (tar::EntryType::Regular, "GNUSparseFile.0/x", None, data)
                }
                Gen::Dir(p) => (tar::EntryType::Directory, p.as_str(), None, Vec::new()),
                Gen::Symlink(p, t) => (tar::EntryType::Symlink, p.as_str(), Some(t), Vec::new()),
                Gen::HardLink(p, t) => (tar::EntryType::Link, p.as_str(), Some(t), Vec::new()),
                Gen::Fifo(p) => (tar::EntryType::Fifo, p.as_str(), None, Vec::new()),
            };
            let mut records: Vec<(&str, &[u8])> = Vec::new();
            if path.len() > 100 {
                records.push(("path", path.as_bytes()));
            }
            if let Some(t) = link.filter(|t| t.len() > 100) {
                records.push(("linkpath", t.as_bytes()));
            }
            if !records.is_empty() {
                b.append_pax_extensions(records).unwrap();
            }
            let short = &path[..path.len().min(100)];
            let mut header = common::raw_header(kind, short, data.len() as u64);
            if let Some(t) = link {
                header
                    .set_link_name_literal(&t[..t.len().min(100)])
                    .unwrap();
            }
            header.set_cksum();
            b.append(&header, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A tree with a target `/t` that holds a store mounted at `/t/m`,
    /// symlinks out of it, and a secret beside it.
    fn target_tree() -> Vfs {
        let vfs = Vfs::builder().mount("/t/m", MemFs::new()).build().unwrap();
        vfs.write("/t/m/inner", b"other mount").unwrap();
        vfs.create_dir_all("/secret").unwrap();
        vfs.write("/secret/key", b"hunter2").unwrap();
        vfs.write("/t/a", b"old a").unwrap();
        vfs.symlink("/secret", "/t/s").unwrap();
        vfs.symlink("../secret", "/t/x").unwrap();
        vfs
    }

    /// What lies outside the target `/t`: the secret beside it and the
    /// store mounted below it, each snapshot on its own so that files new
    /// in the target cannot shift their numbering.
    fn outside_the_target(vfs: &Vfs) -> [BTreeMap<String, String>; 3] {
        let mut top = snapshot(vfs, "/");
        top.retain(|k, _| k != "/t" && !k.starts_with("/t/"));
        [top, snapshot(vfs, "/secret"), snapshot(vfs, "/t/m")]
    }

    /// Random operations that build a tree to save.
    #[derive(Debug, Clone)]
    enum Op {
        Dir(usize),
        Write(usize, u64, Vec<u8>),
        SetLen(usize, u64),
        Symlink(usize, String),
        Link(usize, usize),
        Mode(usize, u32),
        Time(usize, u64, u32),
    }

    const PATHS: [&str; 8] = ["/a", "/b", "/a/c", "/a/d", "/b/e", "/a/c/f", "/g", "/b/e/h"];

    fn op() -> impl Strategy<Value = Op> {
        let at = 0..PATHS.len();
        let offset = prop_oneof![0..200_000u64, Just(1 << 40), Just((1 << 62) - 5)];
        let target = prop::sample::select(vec!["a", "../b", "/etc", "c/f"]).prop_map(String::from);
        prop_oneof![
            2 => at.clone().prop_map(Op::Dir),
            4 => (at.clone(), offset.clone(), prop::collection::vec(any::<u8>(), 1..300))
                .prop_map(|(p, o, d)| Op::Write(p, o, d)),
            1 => (at.clone(), offset).prop_map(|(p, o)| Op::SetLen(p, o)),
            1 => (at.clone(), target).prop_map(|(p, t)| Op::Symlink(p, t)),
            1 => (at.clone(), at.clone()).prop_map(|(a, b)| Op::Link(a, b)),
            1 => (at.clone(), 0..0o7777u32).prop_map(|(p, m)| Op::Mode(p, m)),
            1 => (at, 0..2_000_000_000u64, 0..1_000_000_000u32)
                .prop_map(|(p, s, n)| Op::Time(p, s, n)),
        ]
    }

    fn apply(vfs: &Vfs, op: &Op) {
        // Refused operations (a missing parent, a name taken) are part of
        // the randomness; each one either happens or changes nothing.
        let _ = match op {
            Op::Dir(p) => vfs.create_dir(PATHS[*p]),
            Op::Write(p, offset, data) => {
                common::try_write_at(vfs, PATHS[*p], *offset, data);
                Ok(())
            }
            Op::SetLen(p, len) => vfs.set_len(PATHS[*p], *len),
            Op::Symlink(p, t) => vfs.symlink(t, PATHS[*p]),
            Op::Link(a, b) => vfs.hard_link(PATHS[*a], PATHS[*b]),
            Op::Mode(p, m) => vfs.set_mode(PATHS[*p], *m),
            Op::Time(p, s, n) => vfs.set_times(
                PATHS[*p],
                None,
                Some(SystemTime::UNIX_EPOCH + Duration::new(*s, *n)),
            ),
        };
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the archive, nothing outside the target changes (the
        /// mount below it included), and a refused archive changes nothing
        /// at all.
        #[test]
        fn random_archives_stay_in_their_target(
            entries in prop::collection::vec(entry(), 1..8),
            cut in prop::option::weighted(0.1, any::<prop::sample::Index>()),
        ) {
            let mut bytes = build(&entries);
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            let vfs = target_tree();
            let before = snapshot(&vfs, "/");
            let outside = outside_the_target(&vfs);
            match vfs.load_tar(&bytes[..], "/t") {
                Err(_) => prop_assert_eq!(snapshot(&vfs, "/"), before),
                Ok(()) => {
                    prop_assert_eq!(outside_the_target(&vfs), outside);
                    let staged = vfs.read_dir("/t").unwrap().iter().any(|e| e.name.starts_with(".wasi"));
                    prop_assert!(!staged, "a staging directory was left");
                }
            }
        }

        /// Every archive `save_tar` writes loads back as the same tree
        /// (contents, holes, links, modes, mtimes), and saves again to the
        /// same bytes.
        #[test]
        fn saved_trees_load_back_identical(ops in prop::collection::vec(op(), 1..40)) {
            let vfs = Vfs::new();
            for op in &ops {
                apply(&vfs, op);
            }
            let mut bytes = Vec::new();
            vfs.save_tar("/", &mut bytes).unwrap();
            prop_assert!(bytes.len() < 4 << 20, "{} bytes: holes were saved as data", bytes.len());
            let copy = Vfs::new();
            copy.load_tar(&bytes[..], "/").unwrap();
            prop_assert_eq!(snapshot(&copy, "/"), snapshot(&vfs, "/"));
            let mut again = Vec::new();
            copy.save_tar("/", &mut again).unwrap();
            prop_assert!(again == bytes, "saved again, the archive differs");
        }
    }
}

/// Loading moves staged directories into place by renaming them; an
/// overlay target must take a deep one without recursing once per level.
#[test]
fn a_deep_archive_loads_into_an_overlay() {
    let levels = 3000;
    let mut builder = tar::Builder::new(Vec::new());
    let mut path = String::new();
    for _ in 0..levels {
        path.push_str("d/");
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        builder
            .append_pax_extensions([("path", path.as_bytes())])
            .unwrap();
        header.set_cksum();
        builder.append(&header, &b""[..]).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    let vfs = Vfs::builder()
        .mount("/o", wasi_common_vfs::Overlay::new(MemFs::new()))
        .build()
        .unwrap();
    // A thread with a small stack, so recursion per level would show.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || vfs.load_tar(&bytes[..], "/o").unwrap())
        .unwrap()
        .join()
        .unwrap();
}

/// The stage lives on the target's own store: a host directory gets the
/// files, and neither a load nor a refused one leaves anything else there;
/// a read-only target is refused, naming it.
#[test]
fn loads_into_host_directories_leave_no_trace_and_read_only_targets_refuse() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("old.txt"), b"old").unwrap();
    let ro = tempfile::tempdir().unwrap();
    let vfs = Vfs::builder()
        .mount("/h", HostDir::open(host.path()).unwrap())
        .mount("/ro", HostDir::open(ro.path()).unwrap().read_only())
        .build()
        .unwrap();
    let good = archive(&[Entry::Dir("d/"), Entry::File("d/new.txt", b"new")]);
    let bad = archive(&[
        Entry::File("old.txt", b"replaced"),
        Entry::File("/abs", b"x"),
    ]);
    vfs.load_tar(&bad[..], "/h").unwrap_err();
    assert_eq!(host_files(host.path()), ["old.txt"]);
    assert_eq!(std::fs::read(host.path().join("old.txt")).unwrap(), b"old");
    vfs.load_tar(&good[..], "/h").unwrap();
    assert_eq!(host_files(host.path()), ["d", "old.txt"]);
    assert_eq!(
        std::fs::read(host.path().join("d/new.txt")).unwrap(),
        b"new"
    );

    let e = vfs.load_tar(&good[..], "/ro").unwrap_err();
    assert!(matches!(e.innermost(), Error::ReadOnly), "{e}");
    assert!(e.to_string().contains("/ro"), "{e}");
    assert!(host_files(ro.path()).is_empty());
}

/// Copying a host file up into an overlay is a copy from the host too: it
/// keeps holes, so a write to a 1 GiB sparse lower file fits a 16 MiB limit,
/// and the host file is left as it was.
#[test]
fn overlay_copy_up_of_a_sparse_host_file_keeps_its_holes() {
    let host = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(host.path().join("disk.img")).unwrap();
    file.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, b"tail", (1 << 30) - 4).unwrap();
    let vfs = Vfs::builder()
        .limits(Limits::default().with_bytes(16 << 20))
        .mount(
            "/o",
            wasi_common_vfs::Overlay::new(HostDir::open(host.path()).unwrap()),
        )
        .build()
        .unwrap();
    common::write_at(&vfs, "/o/disk.img", 0, b"head");
    assert_eq!(vfs.metadata("/o/disk.img").unwrap().size, 1 << 30);
    // The copy holds both ends and nothing between: its archive is small,
    // and its data runs start with "head" and end with "tail".
    let mut bytes = Vec::new();
    vfs.save_tar("/o", &mut bytes).unwrap();
    assert!(bytes.len() < 256 << 10, "{} bytes", bytes.len());
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.header().entry_type() == tar::EntryType::Regular)
        .unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
    assert_eq!(&data[512..516], b"head");
    assert!(data.ends_with(b"tail"));
    let on_host = std::fs::read(host.path().join("disk.img")).unwrap();
    assert_eq!(&on_host[..4], &[0u8; 4], "the lower file is not written");
}

/// An old GNU sparse entry loads with its holes; one whose size dwarfs its
/// data (which the reader would have to fill with zeros) is refused.
#[test]
fn old_gnu_sparse_entries_load_within_bounds() {
    let gnu_sparse = |real: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNUSparse);
        header.set_mode(0o644);
        header.set_size(4);
        let field = &mut header.as_old_mut().name;
        field[..6].copy_from_slice(b"sparse");
        let gnu = header.as_gnu_mut().unwrap();
        gnu.set_real_size(real);
        gnu.sparse[0].set_offset(real - 4);
        gnu.sparse[0].set_length(4);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"tail"[..]).unwrap();
        builder.into_inner().unwrap()
    };
    let vfs = with_byte_limit(1 << 20);
    vfs.load_tar(&gnu_sparse(1 << 20)[..], "/").unwrap();
    let mut expected = vec![0u8; 1 << 20];
    expected[(1 << 20) - 4..].copy_from_slice(b"tail");
    assert_eq!(vfs.read("/sparse").unwrap(), expected);
    let e = vfs.load_tar(&gnu_sparse(1 << 62)[..], "/big").unwrap_err();
    assert!(e.to_string().contains("GNU sparse"), "{e}");
}

/// A directory named twice takes the attributes of its later entry.
#[test]
fn a_repeated_directory_entry_takes_the_later_attributes() {
    let mut builder = tar::Builder::new(Vec::new());
    for mode in [0o700, 0o751] {
        let mut header = common::raw_header(tar::EntryType::Directory, "d/", 0);
        header.set_mode(mode);
        header.set_cksum();
        builder.append(&header, &b""[..]).unwrap();
    }
    let vfs = Vfs::new();
    vfs.load_tar(&builder.into_inner().unwrap()[..], "/")
        .unwrap();
    assert_eq!(vfs.metadata("/d").unwrap().mode, 0o751);
}

/// Every path below `dir` of `vfs` with what it holds: a file's bytes, a
/// symlink's target, or nothing for a directory.
fn listing(vfs: &Vfs, dir: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for e in vfs.read_dir(&d).unwrap() {
            let path = format!("{d}/{}", e.name);
            let meta = vfs.symlink_metadata(&path).unwrap();
            let what = if meta.is_dir() {
                pending.push(path.clone());
                String::new()
            } else if meta.is_symlink() {
                format!("-> {}", vfs.read_link(&path).unwrap())
            } else {
                String::from_utf8_lossy(&vfs.read(&path).unwrap()).into_owned()
            };
            out.insert(path, what);
        }
    }
    out
}

/// `load_tar_replacing` leaves the directory holding exactly the
/// archive: old files, directories and symlinks are gone (a symlink
/// removed, not followed), replaced ones have the archive's bytes; a
/// refused or cut archive, or a mount below the directory, changes
/// nothing at all.
#[test]
fn a_replacing_load_leaves_exactly_the_archive() {
    let vfs = Vfs::new();
    vfs.create_dir_all("/outside").unwrap();
    vfs.create_dir_all("/app/deep/a/b").unwrap();
    vfs.write("/outside/keep", b"not the archive's to touch")
        .unwrap();
    vfs.write("/app/old.txt", b"old").unwrap();
    vfs.write("/app/same.txt", b"before").unwrap();
    vfs.write("/app/deep/a/b/c", b"deep").unwrap();
    vfs.symlink("/outside", "/app/out").unwrap();
    // More entries than one page of the listing that empties the target.
    for i in 0..600 {
        vfs.write(&format!("/app/f{i}"), b"x").unwrap();
    }
    let snapshot = archive(&[
        Entry::File("same.txt", b"after"),
        Entry::Dir("deep"),
        Entry::File("deep/new", b"new"),
        Entry::Symlink("link", "same.txt"),
    ]);

    // Refused midway (an entry through a symlink), then cut short: the
    // directory is as it was.
    let before = listing(&vfs, "/app");
    let refused = archive(&[
        Entry::File("same.txt", b"after"),
        Entry::Symlink("s", "/"),
        Entry::File("s/pwned", b"x"),
    ]);
    assert!(vfs.load_tar_replacing(&refused[..], "/app").is_err());
    assert_eq!(listing(&vfs, "/app"), before);
    let cut = &snapshot[..snapshot.len() - 1024];
    assert!(vfs.load_tar_replacing(cut, "/app").is_err());
    assert_eq!(listing(&vfs, "/app"), before);

    vfs.load_tar_replacing(&snapshot[..], "/app").unwrap();
    let after = listing(&vfs, "/app");
    let expected: BTreeMap<String, String> = [
        ("/app/same.txt", "after"),
        ("/app/deep", ""),
        ("/app/deep/new", "new"),
        ("/app/link", "-> same.txt"),
    ]
    .into_iter()
    .map(|(p, w)| (p.to_owned(), w.to_owned()))
    .collect();
    assert_eq!(after, expected);
    assert_eq!(
        vfs.read("/outside/keep").unwrap(),
        b"not the archive's to touch"
    );

    // A mount below the target is refused by name, and nothing changes.
    let mounted = Vfs::builder()
        .mount("/", MemFs::new())
        .mount("/app/cache", MemFs::new())
        .build()
        .unwrap();
    mounted.write("/app/file", b"kept").unwrap(); // `/app` made for the mount
    let refused = mounted
        .load_tar_replacing(&snapshot[..], "/app")
        .unwrap_err();
    assert!(
        matches!(&refused, Error::OtherMount(p) if p == "/app/cache"),
        "{refused:?}"
    );
    assert_eq!(mounted.read("/app/file").unwrap(), b"kept");
    assert!(mounted.metadata("/app/same.txt").is_err());
}
