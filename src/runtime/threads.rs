//! wasi-threads that end a guest, not the host process.
//!
//! A threaded guest (built for `wasm32-wasip1-threads`) imports a shared
//! memory and `wasi::thread-spawn`. Each spawned thread runs on its own OS
//! thread with its own `Store`, a clone of the spawning store's data (so the
//! same `WasiCtx`, descriptor table and filesystem), and the same shared
//! memory. When any thread calls `proc_exit` or traps, or the main thread
//! returns, the guest is over: the first such outcome is recorded, every
//! other thread of the guest traps at its next epoch check, and the run call
//! returns the outcome to its caller. Nothing here ever exits the process.

use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasi_common::I32Exit;
use wasmtime::{Engine, Linker, Module, SharedMemory, Store, UpdateDeadline};

/// Threads one guest may have alive at once; `thread-spawn` fails (with
/// `-EAGAIN`) beyond it.
pub const MAX_GUEST_THREADS: usize = 256;

/// How long the run call waits for a guest's other threads to stop once
/// the guest is over, before leaving the stragglers behind.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often threads parked in `memory.atomic.wait` are woken while a
/// guest that is over still has threads.
const WAKE_INTERVAL: Duration = Duration::from_millis(20);

/// Highest thread id wasi-threads allows.
const MAX_TID: i32 = 0x1FFF_FFFF;

/// `EAGAIN` in WASI, returned negated by a failed `thread-spawn`.
const EAGAIN: i32 = 6;

/// How a guest ended.
pub(crate) enum Outcome {
    /// `proc_exit(code)`, or 0 when `_start` returned.
    Exit(i32),
    /// A trap in some thread.
    Trap(wasmtime::Error),
}

/// The threads of one run of one guest.
pub(crate) struct Threads<T: 'static> {
    engine: Engine,
    module: Module,
    pub(crate) memory: SharedMemory,
    /// The linker threads instantiate with (set when the run starts).
    linker: Mutex<Option<Linker<T>>>,
    over: AtomicBool,
    /// The main thread's `_start` has returned (or trapped).
    main_done: AtomicBool,
    /// A spawned thread is busy stopping the rest.
    reaping: AtomicBool,
    state: Mutex<State>,
    left_behind: AtomicUsize,
    /// Applied to each thread's store as it is made (its limiter).
    setup: Option<super::StoreSetup<T>>,
}

struct State {
    outcome: Option<Outcome>,
    next_tid: i32,
    running: Vec<JoinHandle<()>>,
}

impl<T: Clone + Send + 'static> Threads<T> {
    pub(crate) fn new(
        module: &Module,
        memory: SharedMemory,
        setup: Option<super::StoreSetup<T>>,
    ) -> Arc<Self> {
        Arc::new(Threads {
            engine: module.engine().clone(),
            module: module.clone(),
            memory,
            linker: Mutex::new(None),
            over: AtomicBool::new(false),
            main_done: AtomicBool::new(false),
            reaping: AtomicBool::new(false),
            left_behind: AtomicUsize::new(0),
            setup,
            state: Mutex::new(State {
                outcome: None,
                next_tid: 1,
                running: Vec::new(),
            }),
        })
    }

    pub(crate) fn set_linker(&self, linker: &Linker<T>) {
        *self.linker.lock() = Some(linker.clone());
    }

    /// Makes `store` trap at its next epoch check once the guest is over.
    /// The engine needs `Config::epoch_interruption(true)`.
    pub(crate) fn watch(self: &Arc<Self>, store: &mut Store<T>) {
        let threads = Arc::downgrade(self);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| match threads.upgrade() {
            Some(t) if t.over.load(Ordering::Acquire) => {
                Err(wasmtime::Error::msg("the guest has exited"))
            }
            _ => Ok(UpdateDeadline::Continue(1)),
        });
    }

    /// The body of `wasi::thread-spawn`: a new thread id, or a negative
    /// errno.
    pub(crate) fn spawn(self: &Arc<Self>, data: T, start_arg: i32) -> i32 {
        if self.over.load(Ordering::Acquire) {
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
            .spawn(move || threads.thread_main(linker, data, tid, start_arg));
        match spawned {
            Ok(handle) => {
                state.next_tid += 1;
                state.running.push(handle);
                tid
            }
            Err(_) => -EAGAIN,
        }
    }

    fn thread_main(self: Arc<Self>, linker: Linker<T>, data: T, tid: i32, start_arg: i32) {
        let mut store = Store::new(&self.engine, data);
        if let Some(setup) = &self.setup {
            setup(&mut store);
        }
        self.watch(&mut store);
        let mut run = || -> wasmtime::Result<()> {
            let instance = linker.instantiate(&mut store, &self.module)?;
            let start =
                instance.get_typed_func::<(i32, i32), ()>(&mut store, "wasi_thread_start")?;
            start.call(&mut store, (tid, start_arg))
        };
        if let Err(e) = run() {
            self.finish(Err(e));
            self.reap();
        }
    }

    /// Run by a spawned thread whose guest is over: until the main thread's
    /// `_start` returns, keep waking and interrupting, since the main
    /// thread may be parked in `memory.atomic.wait` inside the caller's
    /// run call, where nothing else would wake it.
    pub(crate) fn reap(&self) {
        if self.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !self.main_done.load(Ordering::Acquire) && Instant::now() < deadline {
            self.engine.increment_epoch();
            let took = self.wake_waiters(deadline);
            std::thread::sleep(took.max(WAKE_INTERVAL));
        }
    }

    /// Marks the main thread's `_start` as returned.
    pub(crate) fn main_returned(&self) {
        self.main_done.store(true, Ordering::Release);
    }

    /// Records how the guest ended, unless it already had, and stops every
    /// thread.
    pub(crate) fn finish(&self, result: wasmtime::Result<()>) {
        let outcome = match result {
            Ok(()) => Outcome::Exit(0),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => Outcome::Exit(exit.0),
                None => Outcome::Trap(e),
            },
        };
        {
            let mut state = self.state.lock();
            if state.outcome.is_none() {
                state.outcome = Some(outcome);
            }
        }
        self.over.store(true, Ordering::Release);
        self.engine.increment_epoch();
    }

    /// Waits for the other threads to stop, wakes those parked in
    /// `memory.atomic.wait`, and returns the outcome. Threads still running
    /// after [`STOP_TIMEOUT`] (blocked in a host call) are left behind.
    pub(crate) fn join(&self) -> Outcome {
        let started = Instant::now();
        let deadline = started + STOP_TIMEOUT;
        let mut next_wake = started;
        loop {
            let running = {
                let mut state = self.state.lock();
                state.running.retain(|h| !h.is_finished());
                state.running.len()
            };
            if running == 0 {
                break;
            }
            if started.elapsed() > STOP_TIMEOUT {
                tracing::warn!(
                    running,
                    "guest threads still running after the guest exited; left behind"
                );
                self.left_behind.store(running, Ordering::Relaxed);
                self.state.lock().running.clear();
                break;
            }
            if Instant::now() >= next_wake {
                let took = self.wake_waiters(deadline);
                next_wake = Instant::now() + took.max(WAKE_INTERVAL);
            }
            self.engine.increment_epoch();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.state.lock().outcome.take().unwrap_or(Outcome::Exit(0))
    }

    /// Threads the last [`join`](Self::join) left running.
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
        let size = self.memory.data_size() as u64;
        let mut addr = 0;
        while addr < size {
            let _ = self.memory.atomic_notify(addr, u32::MAX);
            addr += 4;
            if addr % (1 << 20) == 0 && Instant::now() >= deadline {
                break;
            }
        }
        started.elapsed()
    }
}
