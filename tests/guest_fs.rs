//! The differential guest suite: every preview-1 filesystem function, run
//! by real `wasm32-wasip1` guests on a `Vfs` and on wasi-common's own host
//! directory, with identical transcripts required.

mod common;
use common::{differential, differential_seeded};

#[test]
fn files() {
    let out = differential(
        "files",
        &[],
        &[(
            "fd_allocate",
            "wasi-common's host files answer fd_allocate with ENOTSUP; the Vfs grows the file",
        )],
    );
    assert!(out.contains("fd_allocate size: Ok(102)"));
}

/// The `files` guest built for `wasm32-wasip1-threads` runs on a shared
/// memory, where every vectored read and write (several buffers, empty
/// ones among them) takes this crate's shared-memory path: on each store
/// its transcript is the plain build's, line for line.
#[test]
fn files_threaded() {
    let plain = common::guest("files");
    for backend in common::BACKENDS {
        let (vfs, sandbox, _host) = common::seeded_tree(backend, &[]);
        let want = common::try_run_in(&plain, &[], &vfs, sandbox).unwrap();
        let (vfs, sandbox, _host) = common::seeded_tree(backend, &[]);
        let got = common::try_run_threaded_in("files", &[], &vfs, sandbox).unwrap();
        assert_eq!(want.code, 0, "{backend:?}: {}", want.stderr);
        assert_eq!(got.code, 0, "{backend:?} threaded: {}", got.stderr);
        assert_eq!(
            got.stdout, want.stdout,
            "{backend:?}: threaded and plain differ"
        );
    }
}

#[test]
fn dirs() {
    let out = differential(
        "dirs",
        &[],
        &[
            (
                "cookies",
                "the host directory's cookies are scan positions, which skip entries once earlier ones are removed",
            ),
            (
                "rmdir trailing slash",
                "cap-std answers EINVAL for a trailing slash that Linux rmdir(2) accepts",
            ),
        ],
    );
    assert!(out.contains("cookies: every surviving entry listed: 41"));
    assert!(out.contains("rmdir trailing slash: Ok(())"));
}

#[test]
fn links() {
    let out = differential(
        "links",
        &[],
        &[(
            "trailing slash",
            "cap-std's lstat ignores a trailing slash; Linux follows the link and requires a directory",
        )],
    );
    assert!(out.contains("trailing slash: lstat follows: Ok(\"DIRECTORY\")"));
}

#[test]
fn rename() {
    let out = differential(
        "rename",
        &[],
        &[(
            "trailing slash",
            "cap-std drops a trailing slash on the new name that Linux rename(2) refuses for a file",
        )],
    );
    assert!(out.contains("trailing slash: file to name/: ENOTDIR"));
}

#[test]
fn confine() {
    let out = differential_seeded(
        "confine",
        &[],
        &[("/", "root"), ("/etc/passwd", "pw")],
        &[(
            "readlink of absolute link",
            "cap-std refuses to read an absolute link's text; POSIX readlink returns it",
        )],
    );
    assert!(out.contains("readlink of absolute link: Ok(1)"));
}

#[test]
fn bad_input() {
    let out = differential(
        "badinput",
        &[],
        &[(
            "max size",
            "the largest file size is the host filesystem's (16 TiB on ext4); the Vfs allows i64::MAX like tmpfs",
        )],
    );
    assert!(out.contains("max size: write at i64::MAX: EINVAL"));
}

/// Out-of-bounds pointers trap the guest (the witx rule wasi-common follows)
/// on both backends; the host process carries on, the tree is unchanged,
/// and the next guest runs normally.
#[test]
fn bad_pointers_trap_the_guest_only() {
    let module = common::guest("badinput");
    let listing = common::run_on_vfs(&module, &["cases"], &common::tree(common::Backend::Mem).0);
    let cases: Vec<&str> = listing.stdout.lines().collect();
    assert!(cases.len() >= 10, "{cases:?}");
    for case in cases {
        let (vfs, _, _) = common::tree(common::Backend::Mem);
        let trap = common::try_run_on_vfs(&module, &[case], &vfs).expect_err(case);
        let message = format!("{trap:?}");
        assert!(
            message.contains("out of bounds") || message.contains("overflow"),
            "{case}: {message}"
        );
        assert_eq!(vfs.read("/f").unwrap(), b"data", "{case}");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub2")).unwrap();
        common::try_run_on_host(&module, &[case], tmp.path()).expect_err(case);
    }
    let (vfs, _, _) = common::tree(common::Backend::Mem);
    assert_eq!(common::run_on_vfs(&module, &[], &vfs).code, 0);
}

#[test]
fn preview0() {
    let out = differential(
        "preview0",
        &[],
        &[(
            "fd_allocate",
            "wasi-common's host files answer fd_allocate with ENOTSUP; the Vfs grows the file",
        )],
    );
    assert!(out.contains("fd_allocate: Ok(64)"));
}

/// Extreme values for every preview-1 filesystem function, on every
/// backend: each call returns (an errno or success), nothing traps, and the
/// tree and the descriptor table keep working.
#[test]
fn extreme_values_for_every_function() {
    let module = common::guest("extremes");
    for backend in common::BACKENDS {
        let (vfs, sandbox, _host) = common::tree(backend);
        let out = common::try_run_in(&module, &[], &vfs, sandbox)
            .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
        assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
        assert_eq!(
            out.stdout.lines().filter(|l| l.contains(" on ")).count(),
            4 * 35,
            "{backend:?}"
        );
        assert!(
            out.stdout.contains("fd_allocate 2^62 on 3: EBADF"),
            "{backend:?}"
        );
    }
}
