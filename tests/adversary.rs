//! The adversarial guest (`tests/guests/src/bin/adversary.rs`) on every
//! backend, alone and as four concurrent threads: every attempt to escape,
//! to break the tree or to exhaust the host gets its exact errno (the guest
//! checks each one), and afterwards the host process still runs guests and
//! the tree is whole: nothing written outside the jail, the file beside the
//! jail untouched, every directory's link count right.

mod common;

use common::{BACKENDS, Backend};
use wasi_common_vfs::storage::FileKind;
use wasi_common_vfs::{Limits, Vfs};

/// The file beside the jail, which no guest may reach.
const SECRET: &[u8] = b"host secret";

fn limits() -> Limits {
    Limits::default()
        .with_bytes(16 << 20)
        .with_file_size(64 << 20)
        .with_open_files(200)
}

/// A tree whose `jail` holds the host-planted `root -> /` and
/// `abs -> /etc/passwd`, beside `secret`; returns it and the jail's path.
fn jailed(backend: Backend) -> (Vfs, String, Option<tempfile::TempDir>) {
    let (vfs, sandbox, host) = common::seeded_tree_with(backend, &[], limits());
    let jail = format!("{sandbox}/jail");
    vfs.write(&format!("{sandbox}/secret"), SECRET).unwrap();
    let links = [("/", "root"), ("/etc/passwd", "abs")];
    match &host {
        // cap-std will not create an absolute symlink; plant it on disk.
        Some(dir) => {
            let on_disk = dir.path().join("jail");
            std::fs::create_dir(&on_disk).unwrap();
            for (target, name) in links {
                std::os::unix::fs::symlink(target, on_disk.join(name)).unwrap();
            }
        }
        None => {
            vfs.create_dir(&jail).unwrap();
            for (target, name) in links {
                vfs.symlink(target, &format!("{jail}/{name}")).unwrap();
            }
        }
    }
    (vfs, jail, host)
}

/// The guest's arguments on `backend`: in-memory stores are also filled.
fn args(backend: Backend, threads: bool) -> Vec<&'static str> {
    let mut args = if threads {
        vec!["threads", "4"]
    } else {
        vec![]
    };
    if !matches!(backend, Backend::Host) {
        args.push("memory");
    }
    args
}

/// Labels the guest must print, one per kind of attack the suite covers,
/// so that a case cannot silently drop out.
const ATTACKS: &[&str] = &[
    "dot-dot chain",
    "absolute",
    "symlink chain to ..",
    "symlink chain to /",
    "symlink loop open",
    "chain of 41 links",
    "4096 components",
    "1 MiB path stat",
    "NUL in a name",
    "invalid UTF-8",
    "rename into its own subtree",
    "rename onto its own parent",
    "hard-link a directory",
    "open until refused",
    "write at 2^63",
    "fd_allocate 2^62",
    "readdir 0-byte buffer",
    "readdir 1-byte buffer",
    "closed fd",
    "u32::MAX fd",
];

fn check_transcript(backend: Backend, stdout: &str, copies: usize) {
    for attack in ATTACKS {
        let lines = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{attack}: ")))
            .count();
        assert_eq!(lines, copies, "{backend:?}: {attack:?} in\n{stdout}");
    }
    if !matches!(backend, Backend::Host) {
        assert!(stdout.contains("fill memory: ENOSPC"), "{backend:?}");
    }
}

/// The tree after the attack: only the jail and the secret beside it,
/// the secret intact, consistent link counts throughout.
fn check_tree(backend: Backend, vfs: &Vfs, jail: &str) {
    let sandbox = jail.strip_suffix("/jail").unwrap();
    let mut names: Vec<String> = vfs
        .read_dir(if sandbox.is_empty() { "/" } else { sandbox })
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, ["jail", "secret", "sub2"], "{backend:?}");
    assert_eq!(vfs.read(&format!("{sandbox}/secret")).unwrap(), SECRET);
    assert!(!std::path::Path::new("/escaped").exists());
    check_links(vfs, jail);
}

/// Every entry below `dir` can be stat-ed, and each directory's `nlink` is
/// 2 plus its subdirectories.
fn check_links(vfs: &Vfs, dir: &str) {
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let mut subdirs = 0;
        for entry in vfs.read_dir(&dir).unwrap() {
            let path = format!("{dir}/{}", entry.name);
            let meta = vfs.symlink_metadata(&path).unwrap();
            assert_eq!(meta.kind, entry.kind, "{path}");
            if entry.kind == FileKind::Dir {
                subdirs += 1;
                pending.push(path);
            } else {
                assert!(meta.nlink >= 1, "{path}");
            }
        }
        assert_eq!(vfs.metadata(&dir).unwrap().nlink, 2 + subdirs, "{dir}");
    }
}

/// The process still runs guests after an attack.
fn still_runs(vfs: &Vfs) {
    let out = common::run_with(&common::guest("shell"), &["ls /"], false, |ctx| {
        vfs.preopen(ctx, "/", "/").unwrap()
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn one_guest_on_every_backend() {
    let module = common::guest("adversary");
    for backend in BACKENDS {
        let (vfs, jail, _host) = jailed(backend);
        let out = common::run_with(&module, &args(backend, false), false, |ctx| {
            vfs.preopen(ctx, &jail, "/sandbox").unwrap()
        });
        assert_eq!(out.code, 0, "{backend:?}:\n{}", out.stderr);
        check_transcript(backend, &out.stdout, 1);
        check_tree(backend, &vfs, &jail);
        still_runs(&vfs);
    }
}

#[test]
fn four_threads_at_once_on_every_backend() {
    for backend in BACKENDS {
        let (vfs, jail, _host) = jailed(backend);
        let out = common::run_threaded_in("adversary", &args(backend, true), &vfs, &jail)
            .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
        assert_eq!(out.code, 0, "{backend:?}:\n{}", out.stderr);
        assert_eq!(out.left_behind, 0);
        check_transcript(backend, &out.stdout, 4);
        check_tree(backend, &vfs, &jail);
        still_runs(&vfs);
    }
}
