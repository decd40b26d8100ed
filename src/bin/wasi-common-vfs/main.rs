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
use wasmtime::{Engine, Linker, Module, Store};

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

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("error: bad arguments");
            eprintln!("{line}");
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

/// The first line of an error's message, for a one-line report.
fn first_line(e: &wasmtime::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

fn run(args: &RunArgs) -> Result<i32, Failure> {
    let trees = setup::Trees::build(args)?;
    let saves = trees.check_saves(args)?;
    let module_name = args.module.display().to_string();
    let engine = Engine::new(&runtime::config()).map_err(|e| Failure::runtime(first_line(&e)))?;
    let module = Module::from_file(&engine, &args.module).map_err(|e| {
        Failure::runtime(format!(
            "{module_name}: not a loadable WebAssembly module: {}",
            first_line(&e)
        ))
    })?;

    let argv0 = args.argv0.clone().unwrap_or_else(|| {
        args.module
            .file_name()
            .map_or_else(|| module_name.clone(), |n| n.to_string_lossy().into_owned())
    });
    let mut argv: Vec<&str> = vec![&argv0];
    argv.extend(args.args.iter().map(String::as_str));
    let mut ctx = runtime::context(&argv)
        .map_err(|e| Failure::usage(format!("arguments: {}", first_line(&e))))?;
    let mut envs: Vec<(String, String)> = if args.inherit_env {
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
    .map_err(|e| Failure::runtime(format!("{module_name}: {}", first_line(&e))))?;
    let outcome = guest.run(store, &linker);
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
            first_line(&e)
        ))),
    }
}
