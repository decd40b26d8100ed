//! The command line: flags and their values, parsed and checked for
//! syntax. Nothing here touches the host or builds a tree.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Run WASI preview 1 (and 0) modules on a virtual filesystem.
#[derive(Parser, Debug)]
#[command(name = "wasi-common-vfs", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a WebAssembly module (threaded or not) as a command. `run` may
    /// be left out: `wasi-common-vfs app.wasm ARGS` runs it too.
    #[command(version, max_term_width = 100)]
    Run(RunArgs),
}

/// The subcommands and the flags that stand before one; any other first
/// argument is a module to run.
const NOT_A_MODULE: &[&str] = &["run", "help", "-h", "--help", "-V", "--version"];

/// The command line with `run` put in where it was left out, as
/// `wasmtime app.wasm` means `wasmtime run app.wasm`.
pub fn with_implicit_run(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let implicit = args
        .get(1)
        .is_some_and(|first| !NOT_A_MODULE.iter().any(|known| first == known));
    if implicit {
        args.insert(1, "run".into());
    }
    args
}

const EXAMPLES: &str = "\
Examples:
  # The embedded default: an in-memory / with an empty /tmp
  wasi-common-vfs run app.wasm

  # An in-memory root, a host directory at /mnt/session, a read-only dataset
  wasi-common-vfs run --mount /=mem --mount /mnt/session=host:./session \\
      --mount /data=host:/srv/data:ro app.wasm arg1 arg2

  # Work on a copy of ./project, then keep the result as a tar archive
  wasi-common-vfs run --mount /work=overlay:./project --save /work=out.tar app.wasm

  # Exactly like wasmtime's --dir; everything after the module is the guest's
  wasi-common-vfs run --dir . --dir /tmp/data::/data app.wasm --guest-flag -- x";

/// Store specs a `--mount` takes.
pub const SPECS: &str = "mem, mem:HOSTDIR, host:DIR, host:DIR:ro, overlay:DIR or tar:FILE";

#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    /// Preopen the host directory HOST under the guest name GUEST (default:
    /// HOST), as wasmtime's --dir does. GUEST is an absolute path (joins the
    /// mount table) or a plain name such as `.`.
    /// Example: --dir ./data::/data
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs: Vec<Preopen>,

    /// Mount a store at GUEST and preopen it. SPEC is `mem` (empty, in
    /// memory), `mem:HOSTDIR` (in-memory copy of a host directory),
    /// `host:DIR` or `host:DIR:ro` (a host directory, read-only with `:ro`),
    /// `overlay:DIR` (in-memory writes over a read-only host directory) or
    /// `tar:FILE` (in memory, loaded from a tar archive).
    /// Example: --mount /mnt/session=host:./session
    #[arg(long = "mount", value_name = "GUEST=SPEC", value_parser = parse_mount)]
    pub mounts: Vec<Preopen>,

    /// Set an environment variable for the guest, or pass one of the host's
    /// with NAME alone. Repeatable.
    /// Example: --env RUST_LOG=debug --env HOME
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub envs: Vec<(String, Option<String>)>,

    /// Pass every environment variable of the host to the guest. Also
    /// spelled `-S inherit-env`.
    /// Example: --inherit-env
    #[arg(long)]
    pub inherit_env: bool,

    /// A wasmtime `-S` option: `inherit-env` (the others are not supported
    /// by wasi-common-vfs).
    /// Example: -S inherit-env
    #[arg(short = 'S', long = "wasi", value_name = "OPTION", value_parser = parse_wasi_option)]
    pub wasi_options: Vec<WasiOption>,

    /// Run a module compiled ahead of time (`wasmtime compile`, a `.cwasm`
    /// file made by this same version of Wasmtime). Only for files you
    /// trust: such a file is machine code, loaded as it is.
    /// Example: --allow-precompiled
    #[arg(long)]
    pub allow_precompiled: bool,

    /// Do not cache compiled code. By default a module's compiled code is
    /// kept in Wasmtime's cache (in the user's cache directory), so that the
    /// next run of the same module starts at once. Also spelled
    /// `-C cache=n`.
    /// Example: --no-cache
    #[arg(long)]
    pub no_cache: bool,

    /// A wasmtime `-C` option: `cache=y|n`, or `cache-config=FILE` (a
    /// Wasmtime cache configuration in TOML, as `wasmtime` takes).
    /// Example: -C cache-config=cache.toml
    #[arg(short = 'C', long = "codegen", value_name = "OPTION=VALUE", value_parser = parse_codegen_option)]
    pub codegen_options: Vec<CodegenOption>,

    /// The guest's argv[0] (default: the module's file name).
    /// Example: --argv0 python3
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<String>,

    /// Call the exported function FUNC instead of `_start` (after
    /// `_initialize`, if the module has one), with the arguments after the
    /// module as its parameters, and print its results, one a line.
    /// Example: --invoke add lib.wasm 2 40
    #[arg(long, value_name = "FUNC")]
    pub invoke: Option<String>,

    /// After the guest exits (whatever its status), write the subtree at
    /// GUEST to a tar archive, atomically. Repeatable.
    /// Example: --save /work=result.tar
    #[arg(long = "save", value_name = "GUEST=FILE.tar", value_parser = parse_save)]
    pub saves: Vec<(String, PathBuf)>,

    /// Most bytes the in-memory stores of each tree may hold (data, names,
    /// and a fixed cost per file and entry); beyond it the guest gets
    /// ENOSPC. Each `--mount` tree and the default tree has a budget of its
    /// own. Sizes take K/KiB, M/MiB, G/GiB (powers of 1024), KB, MB, GB
    /// (powers of 1000), or `unlimited`.
    /// Example: --limit-bytes 256MiB
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_limit)]
    pub limit_bytes: Limit,

    /// Most files, directories and symlinks in the in-memory stores of each
    /// tree; beyond it the guest gets ENOSPC.
    /// Example: --limit-inodes 100000
    #[arg(long, value_name = "COUNT", default_value = "1000000", value_parser = parse_limit)]
    pub limit_inodes: Limit,

    /// Largest size of any file, in any store; beyond it the guest gets
    /// EFBIG. Unlimited by default (the byte limit bounds memory).
    /// Example: --limit-file-size 64M
    #[arg(long, value_name = "SIZE", default_value = "unlimited", value_parser = parse_limit)]
    pub limit_file_size: Limit,

    /// Most files and directories open at once, preopens included; beyond
    /// it the guest gets EMFILE.
    /// Example: --limit-open-files 256
    #[arg(long, value_name = "COUNT", default_value = "1024", value_parser = parse_limit)]
    pub limit_open_files: Limit,

    /// Most bytes of linear memory the guest may hold, over all its
    /// memories and threads (a shared memory counts at its maximum); past
    /// it, `memory.grow` fails. `unlimited` turns it off. Also spelled
    /// `-W max-memory-size=SIZE` (there, as here, a total).
    /// Example: --limit-memory 512M
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = parse_limit)]
    pub limit_memory: Limit,

    /// Wall-clock time the guest may run, as `500ms`, `30s`, `5m`, `1h` or
    /// seconds; past it, the guest traps (status 134). Also spelled
    /// `-W timeout=TIME`.
    /// Example: --timeout 30s
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// A wasmtime `-W` option: `max-memory-size=SIZE` or `timeout=TIME`
    /// (the others are not supported by wasi-common-vfs).
    /// Example: -W timeout=10s
    #[arg(short = 'W', long = "wasm", value_name = "OPTION=VALUE", value_parser = parse_wasm_option)]
    pub wasm_options: Vec<WasmOption>,

    /// The module to run (`.wasm`, `.wat` text, or `-` for stdin), then
    /// the guest's arguments: everything after the module is passed to the
    /// guest as it is, `--` and flags included.
    #[arg(
        value_name = "MODULE [ARGS]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The module's path (`-` for stdin).
    pub fn module(&self) -> &str {
        self.command.first().map_or("-", String::as_str)
    }

    /// The guest's arguments, after `argv[0]`.
    pub fn guest_args(&self) -> &[String] {
        self.command.get(1..).unwrap_or_default()
    }

    /// Whether the guest gets the host's whole environment.
    pub fn inherits_env(&self) -> bool {
        self.inherit_env || self.wasi_options.contains(&WasiOption::InheritEnv)
    }

    /// Whether compiled code is cached, and the cache configuration file if
    /// one was named.
    pub fn cache(&self) -> (bool, Option<&std::path::Path>) {
        let mut on = !self.no_cache;
        let mut file = None;
        for option in &self.codegen_options {
            match option {
                CodegenOption::Cache(yes) => on = *yes && !self.no_cache,
                CodegenOption::CacheConfig(path) => file = Some(path.as_path()),
            }
        }
        (on, file)
    }

    /// The memory limit: the last of `--limit-memory` and
    /// `-W max-memory-size`.
    pub fn memory_limit(&self) -> Option<u64> {
        let from_w = self.wasm_options.iter().rev().find_map(|o| match o {
            WasmOption::MaxMemorySize(limit) => Some(*limit),
            WasmOption::Timeout(_) => None,
        });
        from_w.unwrap_or(self.limit_memory).0
    }

    /// The time limit: `--timeout` or `-W timeout`.
    pub fn time_limit(&self) -> Option<Duration> {
        let from_w = self.wasm_options.iter().rev().find_map(|o| match o {
            WasmOption::Timeout(t) => Some(*t),
            WasmOption::MaxMemorySize(_) => None,
        });
        from_w.or(self.timeout)
    }
}

/// One `-S` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasiOption {
    InheritEnv,
}

fn parse_wasi_option(value: &str) -> Result<WasiOption, String> {
    match value {
        "inherit-env" | "inherit-env=y" => Ok(WasiOption::InheritEnv),
        _ => Err(format!(
            "not supported by wasi-common-vfs: -S {value} (supported: inherit-env; \
             directories and the environment have flags of their own)"
        )),
    }
}

/// One `-C` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodegenOption {
    Cache(bool),
    CacheConfig(PathBuf),
}

fn parse_codegen_option(value: &str) -> Result<CodegenOption, String> {
    match value.split_once('=') {
        Some(("cache", "y" | "yes" | "true")) => Ok(CodegenOption::Cache(true)),
        Some(("cache", "n" | "no" | "false")) => Ok(CodegenOption::Cache(false)),
        Some(("cache-config", file)) if !file.is_empty() => {
            Ok(CodegenOption::CacheConfig(PathBuf::from(file)))
        }
        _ => Err(format!(
            "not supported by wasi-common-vfs: -C {value} (supported: cache=y|n, cache-config=FILE)"
        )),
    }
}

/// One `-W` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmOption {
    MaxMemorySize(Limit),
    Timeout(Duration),
}

fn parse_wasm_option(value: &str) -> Result<WasmOption, String> {
    match value.split_once('=') {
        Some(("max-memory-size", size)) => parse_limit(size).map(WasmOption::MaxMemorySize),
        Some(("timeout", time)) => parse_duration(time).map(WasmOption::Timeout),
        _ => Err(format!(
            "not supported by wasi-common-vfs: -W {value} (supported: max-memory-size=SIZE, timeout=TIME)"
        )),
    }
}

/// `500ms`, `30s`, `5m`, `1h`, or a number of seconds.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("expected a time such as 500ms, 30s, 5m or 1h, not `{value}`"))
}

/// A store to preopen under a guest name.
#[derive(Debug, Clone)]
pub struct Preopen {
    pub guest: String,
    pub store: Store,
}

/// Where a preopen's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Mem,
    MemCopy(PathBuf),
    Host(PathBuf),
    HostReadOnly(PathBuf),
    Overlay(PathBuf),
    Tar(PathBuf),
}

fn guest_name(guest: &str) -> Result<String, String> {
    if guest.is_empty() {
        return Err("the guest name is empty".into());
    }
    if guest.starts_with('/') && guest.split('/').any(|c| c == "." || c == "..") {
        return Err(format!(
            "the guest path {guest} has a `.` or `..` component"
        ));
    }
    Ok(guest.to_owned())
}

fn parse_dir(value: &str) -> Result<Preopen, String> {
    let (host, guest) = value.split_once("::").unwrap_or((value, value));
    if host.is_empty() {
        return Err("the host directory is empty".into());
    }
    Ok(Preopen {
        guest: guest_name(guest)?,
        store: Store::Host(PathBuf::from(host)),
    })
}

fn parse_mount(value: &str) -> Result<Preopen, String> {
    let (guest, spec) = value
        .split_once('=')
        .ok_or_else(|| format!("expected GUEST=SPEC, with SPEC one of {SPECS}"))?;
    let path = |p: &str| -> Result<PathBuf, String> {
        if p.is_empty() {
            Err(format!("`{spec}` names no path"))
        } else {
            Ok(PathBuf::from(p))
        }
    };
    let store = match spec.split_once(':') {
        None if spec == "mem" => Store::Mem,
        Some(("mem", dir)) => Store::MemCopy(path(dir)?),
        Some(("host", rest)) => match rest.strip_suffix(":ro") {
            Some(dir) => Store::HostReadOnly(path(dir)?),
            None => Store::Host(path(rest)?),
        },
        Some(("overlay", dir)) => Store::Overlay(path(dir)?),
        Some(("tar", file)) => Store::Tar(path(file)?),
        _ => return Err(format!("unknown store `{spec}`; expected {SPECS}")),
    };
    Ok(Preopen {
        guest: guest_name(guest)?,
        store,
    })
}

fn parse_env(value: &str) -> Result<(String, Option<String>), String> {
    let (name, val) = match value.split_once('=') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (value, None),
    };
    if name.is_empty() {
        return Err("the variable name is empty".into());
    }
    Ok((name.to_owned(), val))
}

/// A limit's value; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

/// A count or size with an optional K, M or G suffix; `unlimited` is none.
fn parse_limit(value: &str) -> Result<Limit, String> {
    if value == "unlimited" {
        return Ok(Limit(None));
    }
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, suffix) = value.split_at(split);
    let unit: Option<u64> = match suffix.to_ascii_lowercase().as_str() {
        "" => Some(1),
        "k" | "kib" => Some(1 << 10),
        "m" | "mib" => Some(1 << 20),
        "g" | "gib" => Some(1 << 30),
        "kb" => Some(1_000),
        "mb" => Some(1_000_000),
        "gb" => Some(1_000_000_000),
        _ => None,
    };
    unit.zip(digits.parse::<u64>().ok())
        .and_then(|(unit, n)| n.checked_mul(unit))
        .map(|n| Limit(Some(n)))
        .ok_or_else(|| {
            format!(
                "expected a number with an optional suffix (K, KiB, KB, M, MiB, MB, G, GiB, GB), \
                 or `unlimited`, not `{value}`"
            )
        })
}

fn parse_save(value: &str) -> Result<(String, PathBuf), String> {
    let (guest, file) = value.split_once('=').ok_or("expected GUEST=FILE.tar")?;
    if file.is_empty() {
        return Err("the archive file name is empty".into());
    }
    Ok((guest_name(guest)?, PathBuf::from(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_wasm_options() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_wasm_option("max-memory-size=64M"),
            Ok(WasmOption::MaxMemorySize(Limit(Some(64 << 20))))
        );
        assert_eq!(
            parse_wasm_option("timeout=10s"),
            Ok(WasmOption::Timeout(Duration::from_secs(10)))
        );
        let e = parse_wasm_option("relaxed-simd-deterministic").unwrap_err();
        assert!(e.starts_with("not supported by wasi-common-vfs"), "{e}");
        assert_eq!(parse_wasi_option("inherit-env"), Ok(WasiOption::InheritEnv));
        assert!(parse_wasi_option("tcp").unwrap_err().contains("-S tcp"));
        assert_eq!(
            parse_codegen_option("cache=n"),
            Ok(CodegenOption::Cache(false))
        );
        assert!(parse_codegen_option("opt-level=2").is_err());
    }

    #[test]
    fn mount_specs() {
        let m = |v: &str| parse_mount(v).map(|p| (p.guest, p.store));
        assert_eq!(m("/=mem"), Ok(("/".into(), Store::Mem)));
        assert_eq!(m("/a=mem:x"), Ok(("/a".into(), Store::MemCopy("x".into()))));
        assert_eq!(m("/a=host:x"), Ok(("/a".into(), Store::Host("x".into()))));
        assert_eq!(
            m("/a=host:x:ro"),
            Ok(("/a".into(), Store::HostReadOnly("x".into())))
        );
        assert_eq!(
            m(".=overlay:x"),
            Ok((".".into(), Store::Overlay("x".into())))
        );
        assert_eq!(
            m("/a=tar:a.tar"),
            Ok(("/a".into(), Store::Tar("a.tar".into())))
        );
        assert!(m("/a=nfs:x").unwrap_err().contains("unknown store `nfs:x`"));
        assert!(m("/a=host:").is_err());
        assert!(m("/a").is_err());
        assert!(m("/a/../b=mem").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("1G"), Ok(Limit(Some(1 << 30))));
        assert_eq!(parse_limit("64k"), Ok(Limit(Some(64 << 10))));
        assert_eq!(parse_limit("12"), Ok(Limit(Some(12))));
        assert_eq!(parse_limit("unlimited"), Ok(Limit(None)));
        assert_eq!(parse_limit("10MB"), Ok(Limit(Some(10_000_000))));
        assert_eq!(parse_limit("10MiB"), Ok(Limit(Some(10 << 20))));
        assert_eq!(parse_limit("2gb"), Ok(Limit(Some(2_000_000_000))));
        assert!(parse_limit("10 MB").is_err());
        assert!(parse_limit("10XB").is_err());
        assert!(parse_limit("lots").is_err());
        assert!(parse_limit("99999999999G").is_err());
    }

    #[test]
    fn dirs_like_wasmtime() {
        let d = |v: &str| parse_dir(v).map(|p| (p.guest, p.store));
        assert_eq!(d("."), Ok((".".into(), Store::Host(".".into()))));
        assert_eq!(
            d("/tmp/x::/data"),
            Ok(("/data".into(), Store::Host("/tmp/x".into())))
        );
        assert_eq!(
            d("x::fs-tests.dir"),
            Ok(("fs-tests.dir".into(), Store::Host("x".into())))
        );
    }
}
