//! The OS threads of one run of a guest: the one its `_start` runs on and
//! those its `wasi::thread-spawn` starts.
//!
//! A threaded guest (built for `wasm32-wasip1-threads`) imports a shared
//! memory and `wasi::thread-spawn`. Every thread of a guest, the first
//! included, runs on an OS thread of its own: the first in the caller's
//! `Store`, each spawned one in a new `Store` with a clone of the
//! spawner's data (so the same `WasiCtx`, descriptor table and
//! filesystem), all with the same shared memory. The caller of `Guest::run`
//! runs no guest code: it waits for the end (see `stop.rs`), stops every
//! thread, and returns, even when a thread is stuck where nothing can
//! reach it. Nothing here ever exits the process.

use super::stop::{Control, Outcome};
use crate::wasi::life;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Linker, Module, SharedMemory, Store, UpdateDeadline, Val};

/// Threads one guest may have alive at once, its first included;
/// `thread-spawn` fails (with `-EAGAIN`) beyond it.
pub const MAX_GUEST_THREADS: usize = 256;

/// How long the run call waits for a guest's threads to stop once the
/// guest is over, before leaving the stragglers behind.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a guest that is over has its epoch moved and, with a shared
/// memory, its threads parked in `memory.atomic.wait` woken.
const WAKE_INTERVAL: Duration = Duration::from_millis(20);

/// Highest thread id wasi-threads allows.
const MAX_TID: i32 = 0x1FFF_FFFF;

/// `EAGAIN` in WASI, returned negated by a failed `thread-spawn`.
const EAGAIN: i32 = 6;

/// The threads of one run of one guest.
pub(crate) struct Threads<T: 'static> {
    engine: Engine,
    pub(crate) module: Module,
    /// The shared memory of a threaded guest.
    memory: Option<SharedMemory>,
    /// The linker threads instantiate with (set when the run starts).
    linker: Mutex<Option<Linker<T>>>,
    pub(crate) control: Arc<Control>,
    started: AtomicBool,
    state: Mutex<State>,
    left_behind: AtomicUsize,
    /// Applied to each thread's store as it is made (its limiter).
    setup: Option<super::StoreSetup<T>>,
}

struct State {
    next_tid: i32,
    running: Vec<JoinHandle<()>>,
}

/// Ends the guest if the host code of one of its threads panics, so that
/// the caller of `run` is not left waiting for an outcome nobody records.
struct EndOnPanic<'a>(&'a Control);

impl Drop for EndOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.finish(Err(wasmtime::Error::msg(
                "a thread of the guest panicked in the host",
            )));
        }
    }
}

/// What the guest's first thread calls.
pub(crate) enum Main {
    /// `_start`.
    Start,
    /// The exported function `name` with `params`, after `_initialize` if
    /// the module has one; its results go to `results` when it returns.
    Export {
        name: String,
        params: Vec<Val>,
        results: Arc<Mutex<Option<Vec<Val>>>>,
    },
}

/// Where a thread of the guest starts.
enum Entry<T: 'static> {
    /// The guest's first thread, in the caller's store.
    Start(Store<T>, Main),
    /// `wasi_thread_start`, in a new store with a clone of the spawner's
    /// data.
    Spawned { data: T, tid: i32, start_arg: i32 },
}

impl<T: Clone + Send + 'static> Threads<T> {
    pub(crate) fn new(
        module: &Module,
        memory: Option<SharedMemory>,
        control: Arc<Control>,
        setup: Option<super::StoreSetup<T>>,
    ) -> Arc<Self> {
        Arc::new(Threads {
            engine: module.engine().clone(),
            module: module.clone(),
            memory,
            linker: Mutex::new(None),
            control,
            started: AtomicBool::new(false),
            left_behind: AtomicUsize::new(0),
            setup,
            state: Mutex::new(State {
                next_tid: 1,
                running: Vec::new(),
            }),
        })
    }

    /// Runs the guest: `main` on a thread of its own in `store`, until
    /// the guest is over or `deadline` passes (which ends it with `late`);
    /// then stops every thread and returns the outcome.
    pub(crate) fn run(
        self: &Arc<Self>,
        linker: &Linker<T>,
        store: Store<T>,
        main: Main,
        deadline: Option<Instant>,
        late: impl FnOnce() -> wasmtime::Error,
    ) -> wasmtime::Result<Outcome> {
        if self.started.swap(true, Ordering::AcqRel) {
            wasmtime::bail!("this guest has run already: link it again, with a fresh context");
        }
        *self.linker.lock() = Some(linker.clone());
        if !self.control.is_over() {
            let mut state = self.state.lock();
            let threads = self.clone();
            let linker = linker.clone();
            let main = std::thread::Builder::new()
                .name("wasi-main".into())
                .spawn(move || threads.thread_main(linker, Entry::Start(store, main)))
                .map_err(|e| {
                    wasmtime::Error::msg(format!("cannot start the guest's thread: {e}"))
                })?;
            state.running.push(main);
        }
        if !self.control.wait(deadline) {
            self.control.finish(Err(late()));
        }
        self.stop();
        Ok(self.control.take_outcome().unwrap_or(Outcome::Exit(0)))
    }

    /// Makes `store` trap at its next epoch check once the guest is over.
    /// The engine needs `Config::epoch_interruption(true)`.
    fn watch(&self, store: &mut Store<T>) {
        let control = self.control.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if control.is_over() {
                return Err(wasmtime::Error::msg("the guest has exited"));
            }
            Ok(UpdateDeadline::Continue(1))
        });
    }

    /// The body of `wasi::thread-spawn`: a new thread id, or a negative
    /// errno.
    pub(crate) fn spawn(self: &Arc<Self>, data: T, start_arg: i32) -> i32 {
        if self.control.is_over() {
            return -EAGAIN;
        }
        let Some(linker) = self.linker.lock().clone() else {
            return -EAGAIN;
        };
        let mut state = self.state.lock();
        state.running.retain(|h| !h.is_finished());
        if state.running.len() >= MAX_GUEST_THREADS || state.next_tid > MAX_TID {
            return -EAGAIN;
        }
        let tid = state.next_tid;
        let threads = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("wasi-thread-{tid}"))
            .spawn(move || {
                threads.thread_main(
                    linker,
                    Entry::Spawned {
                        data,
                        tid,
                        start_arg,
                    },
                )
            });
        match spawned {
            Ok(handle) => {
                state.next_tid += 1;
                state.running.push(handle);
                tid
            }
            Err(_) => -EAGAIN,
        }
    }

    fn thread_main(self: Arc<Self>, linker: Linker<T>, entry: Entry<T>) {
        let _guest = life::enter(self.control.life.clone());
        let _panic = EndOnPanic(&self.control);
        let (mut store, main, spawned) = match entry {
            Entry::Start(store, main) => (store, Some(main), None),
            Entry::Spawned {
                data,
                tid,
                start_arg,
            } => {
                let mut store = Store::new(&self.engine, data);
                if let Some(setup) = &self.setup {
                    setup(&mut store);
                }
                (store, None, Some((tid, start_arg)))
            }
        };
        self.watch(&mut store);
        let run = || -> wasmtime::Result<()> {
            let instance = linker.instantiate(&mut store, &self.module)?;
            if let Some((tid, start_arg)) = spawned {
                return instance
                    .get_typed_func::<(i32, i32), ()>(&mut store, "wasi_thread_start")?
                    .call(&mut store, (tid, start_arg));
            }
            match main {
                Some(Main::Export {
                    name,
                    params,
                    results,
                }) => {
                    // A reactor is initialised before any of its exports
                    // is called, as `wasmtime run --invoke` does.
                    if let Some(init) = instance.get_func(&mut store, "_initialize") {
                        init.typed::<(), ()>(&store)?.call(&mut store, ())?;
                    }
                    let func = instance.get_func(&mut store, &name).ok_or_else(|| {
                        wasmtime::Error::msg(format!("the module exports no function `{name}`"))
                    })?;
                    let mut out = vec![Val::I32(0); func.ty(&store).results().len()];
                    func.call(&mut store, &params, &mut out)?;
                    *results.lock() = Some(out);
                    Ok(())
                }
                _ => instance
                    .get_typed_func::<(), ()>(&mut store, "_start")?
                    .call(&mut store, ()),
            }
        };
        let result = run();
        // A spawned thread that returns ends only itself; the first
        // thread's function returning, `proc_exit` and a trap anywhere end
        // the guest.
        if spawned.is_none() || result.is_err() {
            self.control.finish(result);
        }
    }

    /// Waits for the guest's threads to stop, moving the epoch and waking
    /// those parked in `memory.atomic.wait` meanwhile. Threads still
    /// running after [`STOP_TIMEOUT`] (blocked in a host call nothing can
    /// interrupt) are left behind.
    fn stop(&self) {
        let started = Instant::now();
        let deadline = started + STOP_TIMEOUT;
        // Most threads end at once (at their epoch check, or from a wait
        // the end interrupted); the sweep for parked ones comes after.
        let mut next_wake = started + WAKE_INTERVAL;
        loop {
            let running = {
                let mut state = self.state.lock();
                let (done, running): (Vec<_>, Vec<_>) =
                    state.running.drain(..).partition(|h| h.is_finished());
                state.running = running;
                for handle in done {
                    // The thread has returned; joining releases it. A panic
                    // in it was already recorded as its outcome.
                    let _ = handle.join();
                }
                state.running.len()
            };
            if running == 0 {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    running,
                    "guest threads still running after the guest ended; left behind"
                );
                self.left_behind.store(running, Ordering::Relaxed);
                self.state.lock().running.clear();
                break;
            }
            if Instant::now() >= next_wake {
                self.control.nudge();
                let took = self.wake_waiters(deadline);
                next_wake = Instant::now() + took.max(WAKE_INTERVAL);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Threads the last run left running.
    pub(crate) fn left_behind(&self) -> usize {
        self.left_behind.load(Ordering::Relaxed)
    }

    /// Wakes every thread waiting on any address of the shared memory, so
    /// that it runs into its epoch check and stops; returns how long that
    /// took. Nothing tells which addresses have waiters, so every aligned
    /// word is notified: about 3 ms per MiB of guest memory, cut short at
    /// `deadline`. Callers pause at least as long between sweeps.
    fn wake_waiters(&self, deadline: Instant) -> Duration {
        let started = Instant::now();
        let Some(memory) = &self.memory else {
            return Duration::ZERO;
        };
        let size = memory.data_size() as u64;
        let mut addr = 0;
        while addr < size {
            let _ = memory.atomic_notify(addr, u32::MAX);
            addr += 4;
            if addr % (1 << 20) == 0 && Instant::now() >= deadline {
                break;
            }
        }
        started.elapsed()
    }
}
