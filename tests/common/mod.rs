//! Test harness: builds the guest programs in `tests/guests` for
//! `wasm32-wasip1`, and runs them on a `Vfs` and on wasi-common's own cap-std
//! host directory.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, Mutex, OnceLock};
use wasi_common::WasiCtx;
use wasi_common::pipe::WritePipe;
use wasi_common::sync::WasiCtxBuilder;
use wasi_common_vfs::{HostDir, Limits, MemFs, Overlay, Vfs};
use wasmtime::{Engine, Linker, Module, Store};

const GUESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/guests");

fn guest_target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guests")
}

/// A nested `cargo`, without the settings of the one running the tests
/// that would aim its build at this build's target directory or flags.
pub fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    command
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    command
}

/// Builds every guest once per test process (cargo's own lock serialises
/// concurrent test processes).
fn build_guests() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target_dir = guest_target_dir();
        let status = cargo()
            .args([
                "build",
                "--release",
                "--quiet",
                "--target",
                "wasm32-wasip1",
                "--target",
                "wasm32-wasip1-threads",
                "--manifest-path",
            ])
            .arg(format!("{GUESTS}/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the test guests failed");
        target_dir
    })
}

/// Path of the guest `name` built for `wasm32-wasip1`.
pub fn guest_path(name: &str) -> PathBuf {
    build_guests().join(format!("wasm32-wasip1/release/{name}.wasm"))
}

/// Path of the guest `name` built for `wasm32-wasip1-threads`.
pub fn threaded_guest_path(name: &str) -> PathBuf {
    build_guests().join(format!("wasm32-wasip1-threads/release/{name}.wasm"))
}

/// An engine configured for threaded guests (`runtime::config`).
pub fn threads_engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> =
        LazyLock::new(|| Engine::new(&wasi_common_vfs::runtime::config()).unwrap());
    &ENGINE
}

/// The compiled threaded guest `name`.
pub fn threaded_guest(name: &str) -> Module {
    compiled(threads_engine(), threaded_guest_path(name))
}

/// The module at `path` compiled by `engine`, once per test process (each
/// path is only ever compiled by one engine).
fn compiled(engine: &Engine, path: PathBuf) -> Module {
    static MODULES: LazyLock<Mutex<HashMap<PathBuf, Module>>> = LazyLock::new(Default::default);
    let mut modules = MODULES.lock().unwrap();
    modules
        .entry(path)
        .or_insert_with_key(|path| Module::from_file(engine, path).expect("guest compiles"))
        .clone()
}

/// Runs a threaded guest with `args` on `vfs` (its `/` preopened as fd 3)
/// through `runtime::link` and `Guest::run`.
pub fn run_threaded(name: &str, args: &[&str], vfs: &Vfs) -> wasmtime::Result<Outcome> {
    run_threaded_in(name, args, vfs, "/")
}

/// [`run_threaded`] with the tree's directory `dir` preopened as fd 3.
pub fn run_threaded_in(
    name: &str,
    args: &[&str],
    vfs: &Vfs,
    dir: &str,
) -> wasmtime::Result<Outcome> {
    run_threaded_with(name, name, args, |ctx| {
        vfs.preopen(ctx, dir, "/sandbox").unwrap()
    })
}

/// [`try_run_in`] for guest `name` built for `wasm32-wasip1-threads`, so
/// that it runs on a shared memory: the tree's `sandbox` preopened as fd 3
/// and its `sub2` as fd 4.
pub fn try_run_threaded_in(
    name: &str,
    args: &[&str],
    vfs: &Vfs,
    sandbox: &str,
) -> wasmtime::Result<Outcome> {
    run_threaded_with(name, "guest", args, |ctx| {
        let dir = if sandbox.is_empty() { "/" } else { sandbox };
        vfs.preopen(ctx, dir, "/sandbox").unwrap();
        vfs.preopen(ctx, &format!("{sandbox}/sub2"), "/sandbox/sub2")
            .unwrap();
    })
}

/// Runs the threaded build of guest `name` as `argv0` with `args`, its
/// output captured, after `preopen` gave it its directories.
fn run_threaded_with(
    name: &str,
    argv0: &str,
    args: &[&str],
    preopen: impl FnOnce(&WasiCtx),
) -> wasmtime::Result<Outcome> {
    let module = threaded_guest(name);
    let stdout = WritePipe::new_in_memory();
    let stderr = WritePipe::new_in_memory();
    let mut argv = vec![argv0];
    argv.extend_from_slice(args);
    let ctx = wasi_common_vfs::runtime::context(&argv)?;
    ctx.set_stdout(Box::new(stdout.clone()));
    ctx.set_stderr(Box::new(stderr.clone()));
    preopen(&ctx);
    let (code, left_behind) = link_and_run(threads_engine(), &module, ctx)?;
    outcome(code, stdout, stderr, left_behind)
}

/// Operations per second of the bench guest's `threads` workload with
/// `threads` threads on a fresh `Vfs`, best of `rounds` runs.
pub fn threaded_rate(threads: usize, ops: u64, rounds: usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let out = run_threaded(
                "bench",
                &["threads", &threads.to_string(), &ops.to_string()],
                &Vfs::new(),
            )
            .expect("the benchmark guest runs");
            let line = out.stdout.lines().next().expect("the guest reports");
            let fields: Vec<&str> = line.split(' ').collect();
            let (done, seconds): (f64, f64) =
                (fields[1].parse().unwrap(), fields[2].parse().unwrap());
            done / seconds
        })
        .fold(0.0, f64::max)
}

/// Links `module` for `ctx` with `runtime::link` and runs it with
/// `Guest::run`: the exit status or trap, and the threads left behind. The
/// store is gone on return, so the context's pipes can be read.
fn link_and_run(
    engine: &Engine,
    module: &Module,
    ctx: WasiCtx,
) -> wasmtime::Result<(wasmtime::Result<i32>, usize)> {
    let mut store = Store::new(engine, ctx);
    let mut linker = Linker::new(engine);
    let guest = wasi_common_vfs::runtime::link(&mut linker, &mut store, module, |cx| cx)?;
    let code = guest.run(store, &linker);
    Ok((code, guest.left_behind()))
}

pub fn engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::default);
    &ENGINE
}

/// The compiled guest `name`.
pub fn guest(name: &str) -> Module {
    compiled(engine(), guest_path(name))
}

/// What a guest run left behind.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Guest threads still running when the run call returned.
    pub left_behind: usize,
}

/// Runs `module` with `args` on a context whose preopens were added by
/// `preopen`. `reference` sets `VFS_REFERENCE` for the guest. A trap is the
/// error.
pub fn try_run_with(
    module: &Module,
    args: &[&str],
    reference: bool,
    preopen: impl FnOnce(&WasiCtx),
) -> wasmtime::Result<Outcome> {
    let stdout = WritePipe::new_in_memory();
    let stderr = WritePipe::new_in_memory();
    let mut argv = vec!["guest".to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&argv)
        .unwrap()
        .stdout(Box::new(stdout.clone()))
        .stderr(Box::new(stderr.clone()));
    if reference {
        builder.env("VFS_REFERENCE", "1").unwrap();
    }
    let ctx = builder.build();
    preopen(&ctx);
    let (code, left_behind) = link_and_run(engine(), module, ctx)?;
    outcome(code, stdout, stderr, left_behind)
}

type Pipe = WritePipe<std::io::Cursor<Vec<u8>>>;

/// What a run left behind, once its store is gone; a trap carries the
/// guest's output as context.
fn outcome(
    code: wasmtime::Result<i32>,
    stdout: Pipe,
    stderr: Pipe,
    left_behind: usize,
) -> wasmtime::Result<Outcome> {
    let text = |p: Pipe| match p.try_into_inner() {
        Ok(cursor) => String::from_utf8_lossy(&cursor.into_inner()).into_owned(),
        // A thread left behind still holds the pipe.
        Err(_) => String::new(),
    };
    let (stdout, stderr) = (text(stdout), text(stderr));
    match code {
        Ok(code) => Ok(Outcome {
            code,
            stdout,
            stderr,
            left_behind,
        }),
        Err(e) => Err(e.context(format!("guest stdout:\n{stdout}\nguest stderr:\n{stderr}"))),
    }
}

/// [`try_run_with`] for a guest that must not trap.
pub fn run_with(
    module: &Module,
    args: &[&str],
    reference: bool,
    preopen: impl FnOnce(&WasiCtx),
) -> Outcome {
    match try_run_with(module, args, reference, preopen) {
        Ok(outcome) => outcome,
        Err(e) => panic!("guest trapped: {e:?}"),
    }
}

/// Runs a guest on `vfs`, with `/` preopened as fd 3 and `/sub2` as fd 4.
pub fn try_run_on_vfs(module: &Module, args: &[&str], vfs: &Vfs) -> wasmtime::Result<Outcome> {
    try_run_in(module, args, vfs, "")
}

/// Runs a guest on `vfs`, with `sandbox` (`""` for the root) preopened as
/// fd 3 and its `sub2` as fd 4.
pub fn try_run_in(
    module: &Module,
    args: &[&str],
    vfs: &Vfs,
    sandbox: &str,
) -> wasmtime::Result<Outcome> {
    try_run_with(module, args, false, |ctx| {
        vfs.preopen(
            ctx,
            if sandbox.is_empty() { "/" } else { sandbox },
            "/sandbox",
        )
        .unwrap();
        vfs.preopen(ctx, &format!("{sandbox}/sub2"), "/sandbox/sub2")
            .unwrap();
    })
}

pub fn run_on_vfs(module: &Module, args: &[&str], vfs: &Vfs) -> Outcome {
    run_with_handler(try_run_on_vfs(module, args, vfs))
}

/// The stores the differential suite runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// An in-memory tree.
    Mem,
    /// A host temp dir mounted at `/`.
    Host,
    /// An in-memory overlay over a host temp dir, at `/`.
    OverlayOnHost,
    /// An in-memory store mounted at `/nested/box` inside another one.
    Nested,
}

pub const BACKENDS: [Backend; 4] = [
    Backend::Mem,
    Backend::Host,
    Backend::OverlayOnHost,
    Backend::Nested,
];

/// A tree for `backend` with an empty `sub2` in the sandbox, the sandbox
/// path (`""` for the root), and the host dir behind it (kept alive with
/// the tree).
pub fn tree(backend: Backend) -> (Vfs, &'static str, Option<tempfile::TempDir>) {
    seeded_tree(backend, &[])
}

/// [`tree`], with symlinks `(target, name)` planted in the sandbox by the
/// host: on the host disk for host-backed trees (cap-std will not create an
/// absolute symlink), through the host API otherwise.
pub fn seeded_tree(
    backend: Backend,
    symlinks: &[(&str, &str)],
) -> (Vfs, &'static str, Option<tempfile::TempDir>) {
    seeded_tree_with(backend, symlinks, Limits::default())
}

/// [`seeded_tree`] with `limits` on the tree.
pub fn seeded_tree_with(
    backend: Backend,
    symlinks: &[(&str, &str)],
    limits: Limits,
) -> (Vfs, &'static str, Option<tempfile::TempDir>) {
    let tmp = tempfile::tempdir().unwrap();
    if matches!(backend, Backend::Host | Backend::OverlayOnHost) {
        for (target, link) in symlinks {
            std::os::unix::fs::symlink(target, tmp.path().join(link)).unwrap();
        }
    }
    let (vfs, sandbox, tmp) = match backend {
        Backend::Mem => (Vfs::builder().limits(limits).build().unwrap(), "", None),
        Backend::Host => {
            let vfs = Vfs::builder()
                .limits(limits)
                .mount("/", HostDir::open(tmp.path()).unwrap())
                .build()
                .unwrap();
            (vfs, "", Some(tmp))
        }
        Backend::OverlayOnHost => {
            // `sub2` lives in the lower layer, so guests work across both.
            std::fs::create_dir(tmp.path().join("sub2")).unwrap();
            let overlay = Overlay::new(HostDir::open(tmp.path()).unwrap());
            let vfs = Vfs::builder()
                .limits(limits)
                .mount("/", overlay)
                .build()
                .unwrap();
            return (vfs, "", Some(tmp));
        }
        Backend::Nested => {
            let vfs = Vfs::builder()
                .limits(limits)
                .mount("/nested/box", MemFs::new())
                .build()
                .unwrap();
            (vfs, "/nested/box", None)
        }
    };
    if tmp.is_none() {
        for (target, link) in symlinks {
            vfs.symlink(target, &format!("{sandbox}/{link}")).unwrap();
        }
    }
    vfs.create_dir(&format!("{sandbox}/sub2")).unwrap();
    (vfs, sandbox, tmp)
}

/// Runs a guest on wasi-common's host directory `dir`, with `dir` preopened
/// as fd 3 and `dir/sub2` as fd 4.
pub fn try_run_on_host(module: &Module, args: &[&str], dir: &Path) -> wasmtime::Result<Outcome> {
    try_run_with(module, args, true, |ctx| {
        for (path, name) in [
            (dir.to_path_buf(), "/sandbox"),
            (dir.join("sub2"), "/sandbox/sub2"),
        ] {
            let d =
                cap_std::fs::Dir::open_ambient_dir(&path, cap_std::ambient_authority()).unwrap();
            ctx.push_preopened_dir(Box::new(wasi_common::sync::dir::Dir::from_cap_std(d)), name)
                .unwrap();
        }
    })
}

pub fn run_on_host(module: &Module, args: &[&str], dir: &Path) -> Outcome {
    run_with_handler(try_run_on_host(module, args, dir))
}

fn run_with_handler(r: wasmtime::Result<Outcome>) -> Outcome {
    r.unwrap_or_else(|e| panic!("guest trapped: {e:?}"))
}

/// Lines of a transcript whose label does not start with a listed
/// difference.
fn comparable<'a>(transcript: &'a str, differences: &[(&str, &str)]) -> Vec<&'a str> {
    transcript
        .lines()
        .filter(|line| !differences.iter().any(|(label, _)| line.starts_with(label)))
        .collect()
}

/// Runs guest `name` on a fresh `Vfs` and on a fresh host temp dir (each
/// holding an empty `sub2`), requires both to pass their own checks, and
/// requires identical transcripts except for lines whose label starts with
/// one in `differences`
/// (each with the one-line reason the two cannot agree). Returns the
/// transcript of the `Vfs` run.
pub fn differential(name: &str, args: &[&str], differences: &[(&str, &str)]) -> String {
    differential_seeded(name, args, &[], differences)
}

/// [`differential`], with symlinks `(target, name)` planted in both trees by
/// the host before the guest runs (targets a guest may not create itself).
pub fn differential_seeded(
    name: &str,
    args: &[&str],
    symlinks: &[(&str, &str)],
    differences: &[(&str, &str)],
) -> String {
    let module = guest(name);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub2")).unwrap();
    for (target, link) in symlinks {
        std::os::unix::fs::symlink(target, tmp.path().join(link)).unwrap();
    }
    let reference = run_on_host(&module, args, tmp.path());
    assert_eq!(
        reference.code, 0,
        "{name} failed its checks on wasi-common's host directory:\n{}",
        reference.stderr
    );
    let expected = comparable(&reference.stdout, differences);
    assert!(!expected.is_empty(), "{name} printed nothing");
    let mut first = None;
    for backend in BACKENDS {
        let (vfs, sandbox, _host) = seeded_tree(backend, symlinks);
        let ours = run_with_handler(try_run_in(&module, args, &vfs, sandbox));
        assert_eq!(
            ours.code, 0,
            "{name} failed its checks on {backend:?}:\n{}",
            ours.stderr
        );
        let got = comparable(&ours.stdout, differences);
        for (x, y) in got.iter().zip(&expected) {
            assert_eq!(x, y, "{name}: {backend:?} and the host directory disagree");
        }
        assert_eq!(
            got.len(),
            expected.len(),
            "{name}: transcripts differ in length on {backend:?}"
        );
        first.get_or_insert(ours.stdout);
    }
    first.unwrap_or_default()
}

/// The value of a future that is ready at once, as every `WasiDir` and
/// `WasiFile` call of this crate is.
pub fn now<T>(f: impl std::future::Future<Output = T>) -> T {
    use std::task::{Context, Poll, Waker};
    match std::pin::pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a synchronous WasiDir call was pending"),
    }
}

/// Writes `data` at `offset` of the file `path` (created if missing), as a
/// guest's `pwrite` does: the host API only writes whole files.
pub fn write_at(vfs: &Vfs, path: &str, offset: u64, data: &[u8]) {
    assert!(
        try_write_at(vfs, path, offset, data),
        "writing {path} failed"
    );
}

/// [`write_at`], false if the file cannot be opened or written.
pub fn try_write_at(vfs: &Vfs, path: &str, offset: u64, data: &[u8]) -> bool {
    use wasi_common::WasiDir;
    use wasi_common::dir::OpenResult;
    use wasi_common::file::{FdFlags, OFlags};
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let Ok(dir) = vfs.wasi_dir(if dir.is_empty() { "/" } else { dir }) else {
        return false;
    };
    let opened = now(dir.open_file(false, name, OFlags::CREATE, false, true, FdFlags::empty()));
    let Ok(OpenResult::File(file)) = opened else {
        return false;
    };
    now(file.write_vectored_at(&[std::io::IoSlice::new(data)], offset)).is_ok()
}

/// A ustar header for `path`, written into the field directly so that
/// hostile names get through the tar crate's own checks.
pub fn raw_header(kind: tar::EntryType, path: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(1_600_000_000);
    let field = &mut header.as_old_mut().name;
    field[..path.len()].copy_from_slice(path.as_bytes());
    header
}

/// Entries of a hand-made archive, in order.
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Special(tar::EntryType, &'a str),
}

/// A tar archive of `entries`, hostile ones included.
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let (mut header, data): (tar::Header, &[u8]) = match entry {
            Entry::File(path, data) => (
                raw_header(tar::EntryType::Regular, path, data.len() as u64),
                data,
            ),
            Entry::Dir(path) => (raw_header(tar::EntryType::Directory, path, 0), b""),
            Entry::Symlink(path, target) | Entry::HardLink(path, target) => {
                let kind = match entry {
                    Entry::Symlink(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                let mut header = raw_header(kind, path, 0);
                header.set_link_name_literal(target).unwrap();
                (header, b"")
            }
            Entry::Special(kind, path) => (raw_header(*kind, path, 0), b""),
        };
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Runs `f` on a thread of its own and returns what it returns, or panics
/// once `limit` has passed: a test of something that must end fails
/// instead of hanging. The bound is generous; it is not a timing.
pub fn within<R: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match result.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("{what} did not return within {limit:?}"),
    }
}

/// One entry of a [`snapshot`]: its path, what it holds (a symlink its
/// target), its modification time (seconds, nanoseconds) and its number of
/// names.
pub type Snapped = (PathBuf, Vec<u8>, (i64, i64, u64));

/// Each entry under `dir`, in order: what a tree a run must not change
/// held, to compare after it.
pub fn snapshot(dir: &Path) -> Vec<Snapped> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let holds = if meta.is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                pending.push(path.clone());
                b"a directory".to_vec()
            } else {
                std::fs::read(&path).unwrap()
            };
            let stamp = (meta.mtime(), meta.mtime_nsec(), meta.nlink());
            found.push((path, holds, stamp));
        }
    }
    found.sort();
    found
}
