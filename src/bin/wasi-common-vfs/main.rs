//! `wasi-common-vfs run`: a module on a virtual tree, from the shell.
//!
//! This file only turns outcomes into exit statuses: parsing lives in
//! `args`, trees and preopens in `setup`, everything else in the library.

mod args;
mod progress;
mod setup;

use args::{Cli, Command, RunArgs};
use clap::Parser;
use wasi_common::WasiCtx;
use wasi_common_vfs::runtime::{self, GuestLimiter, RunLimits, TimeLimitExceeded};
use wasmtime::{Engine, Linker, Module, Store, Val, ValType};

/// What each store of the guest holds: its WASI context, and its share of
/// the memory limit.
#[derive(Clone)]
struct GuestData {
    ctx: WasiCtx,
    limiter: GuestLimiter,
}

/// Exit status for a guest that trapped, as wasmtime uses.
const TRAPPED: i32 = 134;

/// A failure before or around the guest's run: one line for the user and
/// the status to exit with.
pub struct Failure {
    status: i32,
    message: String,
}

impl Failure {
    /// A bad argument (status 2).
    pub fn usage(message: String) -> Self {
        Failure { status: 2, message }
    }

    /// Something the arguments named could not be used (status 1).
    pub fn runtime(message: String) -> Self {
        Failure { status: 1, message }
    }
}

/// `WASMTIME_LOG` or `RUST_LOG` (a `tracing` filter, such as `trace` or
/// `wasi_common=trace`) logs each WASI call and its result on stderr.
fn start_logging() {
    let filter = std::env::var("WASMTIME_LOG").or_else(|_| std::env::var("RUST_LOG"));
    if let Ok(filter) = filter {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn main() {
    start_logging();
    let cli = match Cli::try_parse_from(args::with_implicit_run(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e));
            std::process::exit(2);
        }
    };
    let status = match cli.command {
        Command::Run(args) => run(&args).unwrap_or_else(|f| {
            eprintln!("error: {}", f.message);
            f.status
        }),
    };
    std::process::exit(status);
}

/// Options of `wasmtime run` this command does not have.
const WASMTIME_ONLY: &[&str] = &[
    "-O",
    "--optimize",
    "-D",
    "--debug",
    "--preload",
    "--profile",
    "--fuel",
    "--target",
    "--config",
    "--tcplisten",
    "--listenaddr",
    "--unpin",
];

/// A bad command line as one line: a wasmtime option this command lacks
/// said so, anything else as clap says it.
fn usage_error(e: &clap::Error) -> String {
    // No arguments at all: the help, as wasmtime gives it.
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return e.render().to_string().trim_end().to_owned();
    }
    if e.kind() == clap::error::ErrorKind::UnknownArgument
        && let Some(clap::error::ContextValue::String(arg)) =
            e.get(clap::error::ContextKind::InvalidArg)
        && let Some(message) = wasmtime_only(arg)
    {
        return format!("error: {message}");
    }
    usage_line(&e.render().to_string())
}

/// The refusal of `arg` when it is an option of `wasmtime run` this
/// command does not have.
fn wasmtime_only(arg: &str) -> Option<String> {
    let flag = arg.split('=').next().unwrap_or(arg);
    WASMTIME_ONLY
        .contains(&flag)
        .then(|| format!("not supported by wasi-common-vfs: {arg} (a wasmtime option)"))
}

/// clap's report of a bad command line as one line: the error, what it
/// lists (the missing arguments), and its tip, without the usage block.
fn usage_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("error: bad arguments").to_owned();
    let mut listed = Vec::new();
    for line in lines {
        if line.starts_with("Usage:") {
            continue;
        } else if let Some(tip) = line.strip_prefix("tip:") {
            parts.push(format!("tip:{tip}"));
        } else if line.starts_with("For more information") {
            parts.push(line.trim_end_matches('.').to_lowercase());
        } else {
            listed.push(line.to_owned());
        }
    }
    let mut out = first;
    if !listed.is_empty() {
        out = format!("{out} {}", listed.join(", "));
    }
    if !parts.is_empty() {
        out = format!("{out} ({})", parts.join("; "));
    }
    out
}

/// An error's message as one line that carries its cause: the outermost
/// message, and the innermost one when it says something more. Each is
/// flattened to one line (a `.wat` error's position and caret included).
fn error_line(e: &wasmtime::Error) -> String {
    let flat = |m: String| {
        m.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = flat(e.to_string());
    let last = e
        .chain()
        .last()
        .map(|c| flat(c.to_string()))
        .unwrap_or_default();
    if last.is_empty() || first.contains(&last) {
        first
    } else {
        format!("{first}: {last}")
    }
}

/// The version of the binary format a component has in its preamble (a
/// module has version 1, layer 0).
const COMPONENT_PREAMBLE: [u8; 8] = *b"\0asm\x0d\x00\x01\x00";

/// Reads the module `name` (`-` for stdin) and compiles it, or loads it
/// precompiled when that was allowed.
fn load_module(engine: &Engine, name: &str, args: &RunArgs) -> Result<Module, Failure> {
    let bytes = if name == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| Failure::runtime(format!("reading the module from stdin: {e}")))?;
        bytes
    } else {
        std::fs::read(name).map_err(|e| {
            Failure::runtime(match e.kind() {
                std::io::ErrorKind::NotFound => format!("{name}: no such file"),
                _ => format!("{name}: {e}"),
            })
        })?
    };
    if bytes.starts_with(&COMPONENT_PREAMBLE) {
        return Err(Failure::runtime(format!(
            "{name}: this is a component, not a module (preview 2); this runner takes preview-1 modules"
        )));
    }
    if Engine::detect_precompiled(&bytes).is_some() {
        if !args.allow_precompiled {
            return Err(Failure::runtime(format!(
                "{name}: a precompiled module; run it with --allow-precompiled if you trust it"
            )));
        }
        // SAFETY: the user vouched for the file with --allow-precompiled,
        // and wasmtime checks it was made by this version with this
        // configuration.
        return unsafe { Module::deserialize(engine, &bytes) }
            .map_err(|e| Failure::runtime(format!("{name}: {}", error_line(&e))));
    }
    Module::new(engine, &bytes).map_err(|e| {
        Failure::runtime(format!(
            "{name}: not a loadable WebAssembly module: {}",
            error_line(&e)
        ))
    })
}

/// The engine: the runtime's configuration, with Wasmtime's compilation
/// cache unless turned off.
fn engine(args: &RunArgs) -> Result<Engine, Failure> {
    let mut config = runtime::config();
    let (cache, file) = args.cache();
    if cache {
        let made = match file {
            Some(file) => wasmtime::Cache::from_file(Some(file)),
            None => wasmtime::Cache::from_file(None),
        };
        match made {
            Ok(c) => {
                config.cache(Some(c));
            }
            // A named configuration that does not load is the user's
            // mistake; a default cache that cannot be made (no home
            // directory) only costs time.
            Err(e) if file.is_some() => {
                return Err(Failure::usage(format!(
                    "-C cache-config: {}",
                    error_line(&e)
                )));
            }
            Err(_) => {}
        }
    }
    Engine::new(&config).map_err(|e| Failure::runtime(error_line(&e)))
}

fn run(args: &RunArgs) -> Result<i32, Failure> {
    let module = args.module();
    if module.starts_with('-') && module != "-" {
        // An option clap took for the module: everything after the module
        // is the guest's, so an unknown one can only stand before it.
        let message = wasmtime_only(module).unwrap_or_else(|| {
            format!("unexpected argument '{module}' found (for more information, try '--help')")
        });
        return Err(Failure::usage(message));
    }
    let trees = setup::Trees::build(args)?;
    let saves = trees.check_saves(args)?;
    let module_name = args.module().to_owned();
    let engine = engine(args)?;
    let module = load_module(&engine, &module_name, args)?;
    if args.invoke.is_none() && module.get_export("_start").is_none() {
        return Err(Failure::usage(format!(
            "{module_name}: the module has no `_start` (a library or reactor); call one of its functions with --invoke FUNC"
        )));
    }

    let argv0 = args.argv0.clone().unwrap_or_else(|| {
        std::path::Path::new(&module_name)
            .file_name()
            .map_or_else(|| module_name.clone(), |n| n.to_string_lossy().into_owned())
    });
    let mut argv: Vec<&str> = vec![&argv0];
    argv.extend(args.guest_args().iter().map(String::as_str));
    let mut ctx = runtime::context(&argv)
        .map_err(|e| Failure::usage(format!("arguments: {}", error_line(&e))))?;
    let mut envs: Vec<(String, String)> = if args.inherits_env() {
        std::env::vars().collect()
    } else {
        Vec::new()
    };
    for (name, value) in &args.envs {
        // `--env NAME` passes the host's value, if it has one.
        if let Some(v) = value.clone().or_else(|| std::env::var(name).ok()) {
            envs.push((name.clone(), v));
        }
    }
    for (name, value) in &envs {
        ctx.push_env(name, value)
            .map_err(|e| Failure::usage(format!("--env {name}: {e}")))?;
    }
    ctx.set_stdin(Box::new(runtime::stdin()));
    ctx.set_stdout(Box::new(wasi_common::sync::stdio::stdout()));
    ctx.set_stderr(Box::new(wasi_common::sync::stdio::stderr()));
    trees.preopen(&ctx)?;

    let mut limits = RunLimits::default();
    if let Some(bytes) = args.memory_limit() {
        limits = limits.memory(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
    if let Some(time) = args.time_limit() {
        limits = limits.timeout(time);
    }
    let data = GuestData {
        limiter: limits.limiter(),
        ctx,
    };
    let mut store = Store::new(&engine, data);
    let mut linker = Linker::new(&engine);
    let guest = runtime::link_with_limits(
        &mut linker,
        &mut store,
        &module,
        |d| &mut d.ctx,
        &limits,
        |d| &mut d.limiter,
    )
    .map_err(|e| Failure::runtime(format!("{module_name}: {}", error_line(&e))))?;
    let outcome = match &args.invoke {
        None => guest.run(store, &linker),
        Some(name) => {
            let params = invoke_params(&module, name, args.guest_args())?;
            guest.invoke(store, &linker, name, &params).map(|results| {
                for value in results {
                    println!("{}", shown(&value));
                }
                0
            })
        }
    };
    // Saved whatever the guest's status; one failed save skips no other.
    let mut failed = trees.save(&saves);
    if let Some(last) = failed.pop() {
        for f in failed {
            eprintln!("error: {}", f.message);
        }
        return Err(last);
    }
    match outcome {
        Ok(status) => Ok(status),
        Err(e) if e.downcast_ref::<wasi_common::I32Exit>().is_some() => Ok(e
            .downcast_ref::<wasi_common::I32Exit>()
            .map_or(1, |exit| exit.0)),
        Err(e)
            if e.downcast_ref::<wasmtime::WasmBacktrace>().is_some()
                || e.downcast_ref::<wasmtime::Trap>().is_some()
                || e.downcast_ref::<TimeLimitExceeded>().is_some() =>
        {
            // The error's causes carry the trap and the wasm backtrace; the
            // host's own backtrace is of no use to the user.
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!(
                "error: {module_name} trapped: {}",
                causes.join("\ncaused by: ")
            );
            Ok(TRAPPED)
        }
        Err(e) => Err(Failure::runtime(format!(
            "{module_name}: {}",
            error_line(&e)
        ))),
    }
}

/// The parameters of `--invoke FUNC` from the guest's arguments, read as
/// the types the module's export `name` takes.
fn invoke_params(module: &Module, name: &str, args: &[String]) -> Result<Vec<Val>, Failure> {
    let ty = module
        .get_export(name)
        .and_then(|e| e.func().cloned())
        .ok_or_else(|| {
            Failure::usage(format!(
                "--invoke {name}: the module exports no function `{name}`"
            ))
        })?;
    let types: Vec<ValType> = ty.params().collect();
    if types.len() != args.len() {
        return Err(Failure::usage(format!(
            "--invoke {name}: `{name}` takes {} argument(s), {} given",
            types.len(),
            args.len()
        )));
    }
    types
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (ty, arg))| {
            let value = match ty {
                ValType::I32 => arg
                    .parse::<i32>()
                    .or_else(|_| arg.parse::<u32>().map(|u| u as i32))
                    .ok()
                    .map(Val::I32),
                ValType::I64 => arg
                    .parse::<i64>()
                    .or_else(|_| arg.parse::<u64>().map(|u| u as i64))
                    .ok()
                    .map(Val::I64),
                ValType::F32 => arg.parse::<f32>().ok().map(Val::from),
                ValType::F64 => arg.parse::<f64>().ok().map(Val::from),
                _ => None,
            };
            value.ok_or_else(|| {
                Failure::usage(format!(
                    "--invoke {name}: argument {} (`{arg}`) is not a valid {ty}",
                    i + 1
                ))
            })
        })
        .collect()
}

/// A result of `--invoke` as wasmtime prints it.
fn shown(value: &Val) -> String {
    match value {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::V128(v) => format!("{:#034x}", v.as_u128()),
        _ => "<reference>".to_owned(),
    }
}
