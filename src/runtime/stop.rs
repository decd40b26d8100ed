//! How a run of a guest ends: the first outcome of any of its threads, a
//! time limit, or an embedder's [`StopHandle`].
//!
//! Ending records the outcome once, marks the guest's descriptors dead and
//! wakes its blocking waits ([`GuestLife`]), and moves the engine's epoch
//! so that every store of the guest traps at its next check. This module
//! owns that record and the wake-ups; the threads that act on it are
//! `threads.rs`'s.

use crate::wasi::life::GuestLife;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wasi_common::I32Exit;
use wasmtime::Engine;

/// How a guest ended.
pub(crate) enum Outcome {
    /// `proc_exit(code)`, or 0 when `_start` returned.
    Exit(i32),
    /// A trap in some thread, a time limit, or a stop.
    Trap(wasmtime::Error),
}

/// The error a guest ends with when an embedder stops it with
/// [`StopHandle::stop`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("the guest was stopped by its embedder")]
pub struct Stopped;

/// The end of one run, shared by its threads, the caller waiting in
/// `Guest::run` and any [`StopHandle`].
pub(crate) struct Control {
    engine: Engine,
    pub(crate) life: Arc<GuestLife>,
    over: AtomicBool,
    outcome: Mutex<Option<Outcome>>,
    ended: Condvar,
}

impl Control {
    pub(crate) fn new(engine: Engine, life: Arc<GuestLife>) -> Arc<Control> {
        Arc::new(Control {
            engine,
            life,
            over: AtomicBool::new(false),
            outcome: Mutex::new(None),
            ended: Condvar::new(),
        })
    }

    /// Whether the guest is over.
    pub(crate) fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// Records how the guest ended, unless it already had, and sets every
    /// thread of it stopping.
    pub(crate) fn finish(&self, result: wasmtime::Result<()>) {
        let outcome = match result {
            Ok(()) => Outcome::Exit(0),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => Outcome::Exit(exit.0),
                None => Outcome::Trap(e),
            },
        };
        {
            let mut recorded = self.outcome.lock();
            if recorded.is_some() {
                return;
            }
            *recorded = Some(outcome);
            self.over.store(true, Ordering::Release);
            self.ended.notify_all();
        }
        // From here no call of the guest reaches the tree, and its sleeps
        // and reads of the command's stdin return.
        self.life.end();
        self.engine.increment_epoch();
    }

    /// Waits until the guest is over or `deadline` passes; returns whether
    /// it is over.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut recorded = self.outcome.lock();
        while recorded.is_none() {
            match deadline {
                Some(deadline) => {
                    if self.ended.wait_until(&mut recorded, deadline).timed_out() {
                        return recorded.is_some();
                    }
                }
                None => self.ended.wait(&mut recorded),
            }
        }
        true
    }

    /// Moves the epoch on, so that stores of the guest that missed the
    /// last move still reach their check.
    pub(crate) fn nudge(&self) {
        self.engine.increment_epoch();
    }

    /// The recorded outcome, once.
    pub(crate) fn take_outcome(&self) -> Option<Outcome> {
        self.outcome.lock().take()
    }
}

/// Stops a running guest from any thread: for timeouts and cancellation
/// decided by the embedder. Get one from
/// [`Guest::stop_handle`](super::Guest::stop_handle) before calling
/// [`Guest::run`](super::Guest::run).
///
/// Stopping ends the guest as a trap in one of its threads would: its
/// descriptors of this crate's files stop working at once, its sleeps in
/// [`VfsSched`](super::VfsSched) and reads of [`runtime::stdin`](super::stdin)
/// return, its threads trap at their next epoch check, and `run` returns
/// the [`Stopped`] error (unless the guest had ended already; then its own
/// outcome stands). Stopping a guest that has not started yet makes its
/// run end at once; stopping twice does nothing more.
///
/// ```
/// use std::time::Duration;
/// use wasi_common_vfs::{Vfs, runtime};
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// # fn main() -> wasmtime::Result<()> {
/// # // The guest: sleeps an hour at a time, for ever. Should stopping
/// # // fail, the doctest fails after a minute instead of hanging.
/// # std::thread::spawn(|| {
/// #     std::thread::sleep(Duration::from_secs(60));
/// #     std::process::exit(1);
/// # });
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("server.wasm", r#"(module
/// #   (import "wasi_snapshot_preview1" "poll_oneoff"
/// #     (func $poll (param i32 i32 i32 i32) (result i32)))
/// #   (memory (export "memory") 1)
/// #   (func (export "_start")
/// #     (i32.store (i32.const 16) (i32.const 1))
/// #     (i64.store (i32.const 24) (i64.const 3600000000000))
/// #     (loop $sleep
/// #       (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
/// #       (br $sleep))))"#)?;
/// let engine = Engine::new(&runtime::config())?;
/// let module = Module::from_file(&engine, "server.wasm")?;
/// let ctx = runtime::context(&["server.wasm"])?;
/// Vfs::new().preopen(&ctx, "/", "/")?;
/// let mut store = Store::new(&engine, ctx);
/// let mut linker = Linker::new(&engine);
/// let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx)?;
///
/// let stop = guest.stop_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(500)); // or: the user pressed cancel
///     stop.stop();
/// });
/// let outcome = match guest.run(store, &linker) {
///     Ok(status) => format!("exited with {status}"),
///     Err(e) if e.is::<runtime::Stopped>() => "stopped".to_owned(),
///     Err(e) => return Err(e),
/// };
/// println!("{outcome}");
/// # assert_eq!(outcome, "stopped");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StopHandle {
    control: Arc<Control>,
}

impl StopHandle {
    pub(crate) fn new(control: Arc<Control>) -> StopHandle {
        StopHandle { control }
    }

    /// Ends the guest with [`Stopped`]; returns at once, without waiting
    /// for its threads (`run` does that).
    pub fn stop(&self) {
        self.control.finish(Err(Stopped.into()));
    }

    /// Whether the guest is over, for whatever reason.
    pub fn is_over(&self) -> bool {
        self.control.is_over()
    }
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("over", &self.is_over())
            .finish()
    }
}
