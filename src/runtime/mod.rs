//! Runtime glue: WASI (and wasi-threads) in a `wasmtime::Linker`, running a
//! command module, and the scheduler for contexts with virtual files.
//!
//! Nothing here exits the process: `proc_exit` or a trap in any thread of
//! a guest ends that guest, and [`Guest::run`] returns the exit status or
//! the trap to the caller. This layer reaches files only through
//! wasi-common's calls and the namespace, never the store.
//!
//! ```
//! use wasi_common_vfs::{Vfs, runtime};
//! use wasmtime::{Engine, Linker, Module, Store};
//!
//! # fn main() -> wasmtime::Result<()> {
//! # // The guest: on a shared memory, spawns a thread that creates
//! # // `from-a-thread` in its first preopen, and waits for it.
//! # let here = tempfile::tempdir()?;
//! # std::env::set_current_dir(here.path())?;
//! # std::fs::write("threaded.wasm", r#"(module
//! #   (import "env" "memory" (memory 1 1 shared))
//! #   (export "memory" (memory 0))
//! #   (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
//! #   (import "wasi_snapshot_preview1" "path_open"
//! #     (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
//! #   (data (i32.const 0) "from-a-thread")
//! #   (func (export "wasi_thread_start") (param i32 i32)
//! #     (if (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 13)
//! #           (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 100))
//! #       (then unreachable))
//! #     (i32.atomic.store (i32.const 64) (i32.const 1))
//! #     (drop (memory.atomic.notify (i32.const 64) (i32.const 1))))
//! #   (func (export "_start")
//! #     (if (i32.lt_s (call $spawn (i32.const 0)) (i32.const 0)) (then unreachable))
//! #     (block $done (loop $wait
//! #       (br_if $done (i32.atomic.load (i32.const 64)))
//! #       (drop (memory.atomic.wait32 (i32.const 64) (i32.const 0) (i64.const -1)))
//! #       (br $wait)))))"#)?;
//! let engine = Engine::new(&runtime::config())?;
//! let module = Module::from_file(&engine, "threaded.wasm")?;
//! let vfs = Vfs::new();
//! let ctx = runtime::context(&["threaded.wasm"])?;
//! vfs.preopen(&ctx, "/", "/")?;
//! let mut store = Store::new(&engine, ctx);
//! let mut linker = Linker::new(&engine);
//! let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx)?;
//! let status = guest.run(store, &linker)?;
//! # assert_eq!(status, 0);
//! # assert!(vfs.metadata("/from-a-thread").is_ok());
//! # Ok(())
//! # }
//! ```

mod data_calls;
mod limits;
mod sched;
pub(crate) mod shadow;
mod shared_io;
mod stdin;
mod stop;
mod strings;
mod threads;

pub use limits::{GuestLimiter, RunLimits, TimeLimitExceeded};
pub use sched::VfsSched;
pub use stdin::{Stdin, stdin};
pub use stop::{StopHandle, Stopped};
pub use threads::{MAX_GUEST_THREADS, STOP_TIMEOUT};

use crate::wasi::life::GuestLife;
use std::sync::Arc;
use std::time::Instant;
use stop::{Control, Outcome};
use threads::{Main, Threads};
use wasi_common::{I32Exit, WasiCtx};
use wasmtime::{
    AsContext, Caller, Config, ExternType, Linker, MemoryType, Module, SharedMemory, Store, Val,
    ValType,
};

/// A `wasmtime::Config` for the guests of this crate: WebAssembly threads,
/// shared memory, and epoch interruption, which is how the other threads
/// of a guest are stopped when one of them exits.
pub fn config() -> Config {
    let mut config = Config::new();
    config
        .wasm_threads(true)
        .shared_memory(true)
        .epoch_interruption(true);
    config
}

/// A `WasiCtx` with [`VfsSched`] as its scheduler and `args` as its
/// arguments; stdio starts empty (use `set_stdin` and friends), and
/// preopens come from [`Vfs::preopen`](crate::Vfs::preopen).
///
/// ```
/// use wasi_common_vfs::{Vfs, runtime};
///
/// let ctx = runtime::context(&["guest.wasm", "--verbose"])?;
/// ctx.set_stdout(Box::new(wasi_common::sync::stdio::stdout())); // show its output
/// Vfs::new().preopen(&ctx, "/", "/")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn context(args: &[&str]) -> wasmtime::Result<WasiCtx> {
    let mut ctx = WasiCtx::new(
        wasi_common::sync::random_ctx(),
        wasi_common::sync::clocks_ctx(),
        Box::new(VfsSched::new()),
        wasi_common::Table::new(),
    );
    for arg in args {
        ctx.push_arg(arg)?;
    }
    Ok(ctx)
}

/// Defines WASI preview 1 (`wasi_snapshot_preview1`) and preview 0
/// (`wasi_unstable`) in `linker`, for a store whose data gives a
/// [`WasiCtx`] through `get_cx`.
///
/// This is wasi-common's own `add_to_linker` with two functions made to
/// work on this crate's files: `fd_allocate` (wasi-common always answers
/// `ENOTSUP`) and `fd_fdstat_set_flags` under threads (wasi-common answers
/// `ENOTSUP` once the context is shared); and the argument and environment
/// calls served from a copy made once per guest, since wasi-common's build
/// an error value for every string, a backtrace each under
/// `RUST_BACKTRACE=1`.
///
/// It defines every WASI name, so it replaces wasi-common's
/// `add_to_linker` rather than joining it: a linker given both refuses
/// the second with "defined twice".
///
/// ```
/// use wasi_common::pipe::WritePipe;
/// use wasi_common::sync::WasiCtxBuilder;
/// use wasi_common_vfs::runtime;
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// # fn main() -> wasmtime::Result<()> {
/// # // The guest: writes "hi" and a newline to its standard output.
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("hello.wasm", r#"(module
/// #   (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
/// #   (memory (export "memory") 1)
/// #   (data (i32.const 16) "hi\n")
/// #   (func (export "_start")
/// #     (i32.store (i32.const 0) (i32.const 16))
/// #     (i32.store (i32.const 4) (i32.const 3))
/// #     (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#)?;
/// let engine = Engine::default();
/// let mut linker = Linker::new(&engine);
/// runtime::add_to_linker(&mut linker, |cx| cx)?;
///
/// let stdout = WritePipe::new_in_memory();
/// let ctx = WasiCtxBuilder::new().stdout(Box::new(stdout.clone())).build();
/// let mut store = Store::new(&engine, ctx);
/// let module = Module::from_file(&engine, "hello.wasm")?;
/// let status = runtime::run_command(&mut store, &linker, &module)?;
/// drop(store); // the context holds the pipe's other end
/// let printed = stdout.try_into_inner().expect("no other end").into_inner();
/// assert_eq!((status, printed), (0, b"hi\n".to_vec()));
/// # Ok(())
/// # }
/// ```
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> wasmtime::Result<()> {
    wasi_common::sync::add_to_linker(linker, get_cx)?;
    linker.allow_shadowing(true);
    strings::link(linker, get_cx)?;
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        // The guest's i32/i64 bits are the unsigned WASI values.
        linker.func_wrap(
            module,
            "fd_allocate",
            move |mut caller: Caller<'_, T>, fd: i32, offset: i64, len: i64| {
                shadow::fd_allocate(
                    get_cx(caller.data_mut()),
                    fd as u32,
                    offset as u64,
                    len as u64,
                )
            },
        )?;
        linker.func_wrap(
            module,
            "fd_fdstat_set_flags",
            move |mut caller: Caller<'_, T>, fd: i32, flags: i32| {
                // Flags are a u16; higher bits are invalid and refused.
                let Ok(flags) = u16::try_from(flags) else {
                    return Ok(i32::from(
                        wasi_common::snapshots::preview_1::types::Errno::Inval as u16,
                    ));
                };
                shadow::fd_fdstat_set_flags(get_cx(caller.data_mut()), fd as u32, flags)
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// A guest linked by [`link`], ready to [`run`](Guest::run).
///
/// A trap in the guest ends its run with an error, never the host
/// process:
///
/// ```
/// use wasi_common_vfs::runtime;
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// # fn main() -> wasmtime::Result<()> {
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("crashes.wasm", r#"(module
/// #   (memory (export "memory") 1)
/// #   (func (export "_start") unreachable))"#)?;
/// let engine = Engine::new(&runtime::config())?;
/// let module = Module::from_file(&engine, "crashes.wasm")?;
/// let mut store = Store::new(&engine, runtime::context(&["crashes.wasm"])?);
/// let mut linker = Linker::new(&engine);
/// let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx)?;
/// let trap = guest.run(store, &linker).expect_err("the guest traps");
/// assert_eq!(trap.downcast_ref(), Some(&wasmtime::Trap::UnreachableCodeReached));
/// assert_eq!(guest.left_behind(), 0);
/// # Ok(())
/// # }
/// ```
pub struct Guest<T: 'static> {
    threads: Arc<Threads<T>>,
    timeout: Option<std::time::Duration>,
}

/// Sets up each store of a guest (the limiter, for now) as it is made.
pub(crate) type StoreSetup<T> = Arc<dyn Fn(&mut Store<T>) + Send + Sync>;

/// Whether `module` uses wasi-threads (imports `wasi::thread-spawn`).
pub fn is_threaded(module: &Module) -> bool {
    module
        .imports()
        .any(|i| i.module() == "wasi" && i.name() == "thread-spawn")
}

/// Links WASI into `linker` for one run of `module` in `store`: preview 0
/// and 1 as [`add_to_linker`] does, a fresh shared memory for any shared
/// memory the module imports (with the limits the import declares), and,
/// when the module imports `wasi::thread-spawn`, thread spawning.
/// `fd_read`, `fd_write`, `fd_pread` and `fd_pwrite` find this module's
/// memory by its export index rather than by name, which
/// makes small reads and writes cheaper; the linker still serves other
/// modules. Each spawned thread gets a clone of the store's data,
/// so `T` is typically a `WasiCtx` or a struct holding one (clones share
/// the descriptor table).
///
/// A threaded guest needs an engine with [`config`]'s settings.
///
/// ```
/// use wasi_common_vfs::{Vfs, runtime};
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// # fn main() -> wasmtime::Result<()> {
/// # // The guest: exits with 7.
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("guest.wasm", r#"(module
/// #   (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "_start") (call $exit (i32.const 7))))"#)?;
/// let engine = Engine::new(&runtime::config())?;
/// let module = Module::from_file(&engine, "guest.wasm")?;
/// let ctx = runtime::context(&["guest.wasm"])?;
/// Vfs::new().preopen(&ctx, "/", "/")?;
/// let mut store = Store::new(&engine, ctx);
/// let mut linker = Linker::new(&engine);
/// let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx)?;
/// assert!(!runtime::is_threaded(&module)); // both kinds run the same way
/// assert_eq!(guest.run(store, &linker)?, 7);
/// # Ok(())
/// # }
/// ```
pub fn link<T: Clone + Send + 'static>(
    linker: &mut Linker<T>,
    store: &mut Store<T>,
    module: &Module,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> wasmtime::Result<Guest<T>> {
    link_inner(linker, store, module, get_cx, None)
}

/// [`link`], with `limits` on the run: every store of the guest (`store`
/// and each thread's) gets the [`GuestLimiter`] that `get_limiter` finds
/// in its data (make it with [`RunLimits::limiter`]; the clones a thread's
/// data starts as share its account), a shared memory is created with a
/// maximum that fits the memory limit, and [`Guest::run`] ends the guest
/// once its time is up.
///
/// ```
/// use std::time::Duration;
/// use wasi_common::WasiCtx;
/// use wasi_common_vfs::runtime::{self, GuestLimiter, RunLimits};
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// #[derive(Clone)]
/// struct Data {
///     ctx: WasiCtx,
///     limiter: GuestLimiter,
/// }
///
/// # fn main() -> wasmtime::Result<()> {
/// # // The guest: grows its memory by 64 KiB pages until one is refused,
/// # // and exits with 1 if that was within 512 MiB (else 2).
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("guest.wasm", r#"(module
/// #   (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "_start")
/// #     (loop $grow
/// #       (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
/// #     (call $exit (select (i32.const 1) (i32.const 2)
/// #       (i32.le_u (memory.size) (i32.const 8192))))))"#)?;
/// let limits = RunLimits::default()
///     .memory(512 << 20)
///     .timeout(Duration::from_secs(60));
/// let engine = Engine::new(&runtime::config())?;
/// let module = Module::from_file(&engine, "guest.wasm")?;
/// let data = Data { ctx: runtime::context(&["guest.wasm"])?, limiter: limits.limiter() };
/// let mut store = Store::new(&engine, data);
/// let mut linker = Linker::new(&engine);
/// let guest = runtime::link_with_limits(
///     &mut linker, &mut store, &module, |d| &mut d.ctx, &limits, |d| &mut d.limiter,
/// )?;
/// let status = guest.run(store, &linker)?; // a timeout is an error
/// # assert_eq!(status, 1);
/// # Ok(())
/// # }
/// ```
pub fn link_with_limits<T: Clone + Send + 'static>(
    linker: &mut Linker<T>,
    store: &mut Store<T>,
    module: &Module,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
    limits: &RunLimits,
    get_limiter: impl Fn(&mut T) -> &mut GuestLimiter + Send + Sync + Copy + 'static,
) -> wasmtime::Result<Guest<T>> {
    let setup: StoreSetup<T> = Arc::new(move |store: &mut Store<T>| {
        store.limiter(move |data| get_limiter(data) as &mut dyn wasmtime::ResourceLimiter);
    });
    setup(store);
    let account = get_limiter(store.data_mut()).clone();
    let mut guest = link_inner(linker, store, module, get_cx, Some((setup, account)))?;
    guest.timeout = limits.timeout;
    Ok(guest)
}

fn link_inner<T: Clone + Send + 'static>(
    linker: &mut Linker<T>,
    store: &mut Store<T>,
    module: &Module,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
    limited: Option<(StoreSetup<T>, GuestLimiter)>,
) -> wasmtime::Result<Guest<T>> {
    add_to_linker(linker, get_cx)?;
    let life = GuestLife::of(get_cx(store.data_mut()));
    let control = Control::new(module.engine().clone(), life);
    if let Some(memory) = module.get_export_index("memory") {
        data_calls::link(linker, get_cx, memory)?;
    }
    let setup = limited.as_ref().map(|(setup, _)| setup.clone());
    // Any imported shared memory is defined, as wasmtime defines it; a
    // module without `thread-spawn` then runs single-threaded on it.
    let mut memory = None;
    for import in module.imports() {
        if let ExternType::Memory(ty) = import.ty()
            && ty.is_shared()
        {
            let ty = match &limited {
                Some((_, account)) => fit_shared_memory(ty, account)?,
                None => ty,
            };
            let shared = SharedMemory::new(module.engine(), ty).map_err(|e| {
                e.context("a threaded guest needs an engine with shared memory enabled (see runtime::config)")
            })?;
            linker.allow_shadowing(true);
            linker.define(&mut *store, import.module(), import.name(), shared.clone())?;
            linker.allow_shadowing(false);
            memory = Some(shared);
        }
    }
    if !is_threaded(module) {
        return Ok(Guest {
            threads: Threads::new(module, memory, control, setup),
            timeout: None,
        });
    }
    let Some(memory) = memory else {
        wasmtime::bail!("the module imports wasi::thread-spawn but no shared memory");
    };
    let threads = Threads::new(module, Some(memory), control, setup);
    let spawner = Arc::downgrade(&threads);
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi",
        "thread-spawn",
        move |caller: Caller<'_, T>, start_arg: i32| match spawner.upgrade() {
            Some(threads) => threads.spawn(caller.data().clone(), start_arg),
            None => -6,
        },
    )?;
    linker.allow_shadowing(false);
    Ok(Guest {
        threads,
        timeout: None,
    })
}

/// The type of a shared memory `ty` made to fit what `account` has left:
/// its maximum lowered to it, and taken from the account at once, since
/// growing a shared memory consults no store's limiter.
fn fit_shared_memory(ty: MemoryType, account: &GuestLimiter) -> wasmtime::Result<MemoryType> {
    const PAGE: u64 = 1 << 16;
    let fits = account.left() as u64 / PAGE;
    let minimum = ty.minimum();
    if minimum > fits {
        wasmtime::bail!(
            "the module's shared memory starts at {} bytes, more than the memory limit allows",
            minimum * PAGE
        );
    }
    let maximum = ty.maximum().unwrap_or(fits).min(fits);
    if !account.take((maximum * PAGE) as usize) {
        wasmtime::bail!("the module's shared memory does not fit the memory limit");
    }
    let ty = u32::try_from(minimum)
        .ok()
        .zip(u32::try_from(maximum).ok())
        .map(|(min, max)| MemoryType::shared(min, max));
    ty.ok_or_else(|| wasmtime::Error::msg("a 64-bit shared memory is not supported"))
}

impl<T: Clone + Send + 'static> Guest<T> {
    /// Threads of the run that were still running when [`run`](Self::run)
    /// gave up waiting for them and returned: those blocked in a host call
    /// nothing can interrupt (a read of an OS descriptor the embedder gave
    /// the guest, say). Every other thread of the guest has ended by then.
    pub fn left_behind(&self) -> usize {
        self.threads.left_behind()
    }

    /// A handle that stops this guest's run from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(self.threads.control.clone())
    }

    /// Instantiates the module and runs `_start`, on a thread of the
    /// guest's own, and returns when the guest is over.
    ///
    /// Returns the exit status: `proc_exit`'s argument from any thread, or
    /// 0 when `_start` returns; a trap in any thread, the time limit of
    /// [`link_with_limits`] ([`TimeLimitExceeded`]) and a
    /// [`StopHandle::stop`] ([`Stopped`]) are the error. Whichever comes
    /// first ends the guest:
    ///
    /// - its descriptors of this crate's files (its preopens from
    ///   [`Vfs::preopen`](crate::Vfs::preopen) and what it opened through
    ///   them) fail with `EBADF` at once, so nothing of it reaches the
    ///   tree any more;
    /// - its sleeps in [`VfsSched`] (`poll_oneoff`, `sched_yield` aside)
    ///   and its reads of [`stdin()`] return, and the thread traps there;
    /// - every thread traps at its next epoch check, and threads parked in
    ///   `memory.atomic.wait` are woken to get there.
    ///
    /// `run` waits up to [`STOP_TIMEOUT`] for the threads to end; one
    /// blocked in a host call nothing can interrupt is left running
    /// detached, counted by [`left_behind`](Self::left_behind), and `run`
    /// returns anyway.
    ///
    /// `_start` runs in `store`, which `run` takes, since the thread it
    /// runs on may outlive the call; keep clones of what you need from its
    /// data (a `WritePipe`, the [`Vfs`](crate::Vfs)). Each spawned thread
    /// runs in a store of its own on the same engine, with a clone of its
    /// spawner's data (which for a `WasiCtx` shares the descriptor table)
    /// and the limiter of [`link_with_limits`]. Every store gets an epoch
    /// deadline callback of this crate's, which is how threads are
    /// stopped. A guest runs once: link again, with a fresh context, to run
    /// it again.
    pub fn run(&self, store: Store<T>, linker: &Linker<T>) -> wasmtime::Result<i32> {
        match self.run_main(store, linker, Main::Start)? {
            Outcome::Exit(code) => Ok(code),
            Outcome::Trap(e) => Err(e),
        }
    }

    /// Instantiates the module and calls its exported function `name`
    /// with `params`, as [`run`](Self::run) runs `_start` (on a thread of
    /// the guest's own, ending the same ways, with the same limits and
    /// threads); returns the function's results. For modules without
    /// `_start` (libraries, reactors), as `wasmtime run --invoke` calls
    /// them: the module's `_initialize`, if it exports one, is called
    /// first.
    ///
    /// `proc_exit(n)` in any thread ends the call with an
    /// [`I32Exit`] error of `n`, as a call of a
    /// wasmtime function does; a missing export, or `params` that do not
    /// match its type, is an error before anything runs.
    ///
    /// ```
    /// use wasi_common_vfs::runtime;
    /// use wasmtime::{Engine, Linker, Module, Store, Val};
    ///
    /// # fn main() -> wasmtime::Result<()> {
    /// # let here = tempfile::tempdir()?;
    /// # std::env::set_current_dir(here.path())?;
    /// # std::fs::write("library.wasm", r#"(module
    /// #   (func (export "add") (param i32 i32) (result i32)
    /// #     (i32.add (local.get 0) (local.get 1))))"#)?;
    /// let engine = Engine::new(&runtime::config())?;
    /// let module = Module::from_file(&engine, "library.wasm")?;
    /// let mut store = Store::new(&engine, runtime::context(&["library.wasm"])?);
    /// let mut linker = Linker::new(&engine);
    /// let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx)?;
    /// let sum = guest.invoke(store, &linker, "add", &[Val::I32(2), Val::I32(40)])?;
    /// assert_eq!(sum[0].i32(), Some(42));
    /// # Ok(())
    /// # }
    /// ```
    pub fn invoke(
        &self,
        store: Store<T>,
        linker: &Linker<T>,
        name: &str,
        params: &[Val],
    ) -> wasmtime::Result<Vec<Val>> {
        let ty = self
            .threads
            .module
            .get_export(name)
            .and_then(|e| e.func().cloned())
            .ok_or_else(|| {
                wasmtime::Error::msg(format!("the module exports no function `{name}`"))
            })?;
        let want: Vec<_> = ty.params().collect();
        let fits = want.len() == params.len()
            && want
                .iter()
                .zip(params)
                .all(|(t, v)| v.matches_ty(store.as_context(), t).unwrap_or(false));
        if !fits {
            wasmtime::bail!(
                "`{name}` takes ({}): the arguments do not match",
                types(&want)
            );
        }
        let results = Arc::new(parking_lot::Mutex::new(None));
        let main = Main::Export {
            name: name.to_owned(),
            params: params.to_vec(),
            results: results.clone(),
        };
        match self.run_main(store, linker, main)? {
            Outcome::Exit(0) => results.lock().take().ok_or_else(|| I32Exit(0).into()),
            Outcome::Exit(code) => Err(I32Exit(code).into()),
            Outcome::Trap(e) => Err(e),
        }
    }

    fn run_main(
        &self,
        store: Store<T>,
        linker: &Linker<T>,
        main: Main,
    ) -> wasmtime::Result<Outcome> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let timeout = self.timeout.unwrap_or_default();
        let late = move || TimeLimitExceeded(timeout).into();
        self.threads.run(linker, store, main, deadline, late)
    }
}

/// Value types as a parameter list is written: `i32, i64`.
fn types(list: &[ValType]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Instantiates `module` and runs its `_start`; returns the exit code
/// (`proc_exit`'s argument, or 0 when `_start` returns) or, for a trap, the
/// error. For modules without threads; [`link`] and [`Guest::run`] handle
/// both kinds.
///
/// On an engine with epoch interruption (as [`config`] makes), give the
/// store an epoch deadline first, `store.set_epoch_deadline(u64::MAX)` for
/// none: a store starts at deadline 0, so the guest's first epoch check
/// would interrupt it. [`Guest::run`] sets its own. An interrupt is
/// reported with that advice, its trap as the cause.
///
/// ```
/// use wasi_common_vfs::{Vfs, runtime};
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// # fn main() -> wasmtime::Result<()> {
/// # // The guest: exits with 3.
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("guest.wasm", r#"(module
/// #   (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "_start") (call $exit (i32.const 3))))"#)?;
/// let engine = Engine::new(&runtime::config())?; // epoch interruption on
/// let mut linker = Linker::new(&engine);
/// runtime::add_to_linker(&mut linker, |cx| cx)?;
/// let ctx = runtime::context(&["guest.wasm"])?;
/// Vfs::new().preopen(&ctx, "/", "/")?;
/// let mut store = Store::new(&engine, ctx);
/// store.set_epoch_deadline(u64::MAX);
/// let module = Module::from_file(&engine, "guest.wasm")?;
/// assert_eq!(runtime::run_command(&mut store, &linker, &module)?, 3);
/// # Ok(())
/// # }
/// ```
pub fn run_command<T: 'static>(
    store: &mut Store<T>,
    linker: &Linker<T>,
    module: &Module,
) -> wasmtime::Result<i32> {
    let instance = linker.instantiate(&mut *store, module)?;
    let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
    match start.call(&mut *store, ()) {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                Err(e.context(
                    "the guest was interrupted at the store's epoch deadline: on an engine with \
                     epoch interruption (runtime::config() turns it on), call \
                     store.set_epoch_deadline(u64::MAX) before run_command, or run the guest \
                     with runtime::link and Guest::run",
                ))
            }
            None => Err(e),
        },
    }
}
