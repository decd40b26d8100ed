//! `GuestLife`: whether the guest that holds a descriptor is still running,
//! and the signal that cuts its blocking waits short once it is not.
//!
//! The descriptors a guest reaches this crate's files through share one
//! `GuestLife`, kept in the guest's `WasiCtx` table at a reserved
//! descriptor number, so that preopens (pushed before the guest is linked)
//! and the runtime (which ends the guest) find the same one. Once the
//! guest is over, every call on those descriptors fails with `EBADF`: a
//! thread of the guest still running afterwards changes nothing.
//!
//! The runtime marks each OS thread it runs a guest on with that guest's
//! `GuestLife` ([`enter`]); a blocking wait of this crate (a scheduler
//! sleep, a read of the command's stdin) asks [`current`] and also waits
//! on [`GuestLife::stop_fd`], which becomes readable when the guest ends.
//! Owns the flag and the signal; it does not run or stop threads.

use crate::error::Error;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasi_common::WasiCtx;

/// The table slot of a context's `GuestLife`: far past any descriptor a
/// guest is given, and not a file or directory, so `fd_close` and the
/// preopen scan of wasi-libc never touch it.
const SLOT: u32 = u32::MAX - 1;

/// Whether one guest is running, shared by its descriptors.
#[derive(Debug)]
pub(crate) struct GuestLife {
    over: AtomicBool,
    /// A pipe that nothing reads: one byte is written to it when the
    /// guest ends, which leaves its read end readable for good. `None`
    /// when the process had no descriptors left to make it; waits are
    /// then not cut short.
    stop: Option<(OwnedFd, OwnedFd)>,
}

impl GuestLife {
    fn new() -> GuestLife {
        let stop = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )
        .ok();
        GuestLife {
            over: AtomicBool::new(false),
            stop,
        }
    }

    /// The `GuestLife` of the guest that `ctx` belongs to, made on first
    /// use.
    pub(crate) fn of(ctx: &WasiCtx) -> Arc<GuestLife> {
        if let Ok(life) = ctx.table().get::<GuestLife>(SLOT) {
            return life;
        }
        let life = Arc::new(GuestLife::new());
        ctx.table().insert_at(SLOT, life.clone());
        life
    }

    /// Marks the guest as over: its descriptors stop working and its
    /// blocking waits return.
    pub(crate) fn end(&self) {
        if self.over.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some((_, write)) = &self.stop {
            // A full pipe is readable already; nothing else can fail here
            // that a caller could act on.
            let _ = rustix::io::write(write, &[1]);
        }
    }

    /// Whether the guest is over.
    pub(crate) fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// `EBADF` once the guest is over.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.is_over() {
            return Err(Error::BadHandle);
        }
        Ok(())
    }

    /// A descriptor that polls readable once the guest is over.
    pub(crate) fn stop_fd(&self) -> Option<BorrowedFd<'_>> {
        self.stop.as_ref().map(|(read, _)| read.as_fd())
    }

    /// Sleeps for `duration`, or less if the guest ends first; returns
    /// whether it ended.
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        let Some(stop) = self.stop_fd() else {
            std::thread::sleep(duration);
            return self.is_over();
        };
        let until = Instant::now().checked_add(duration);
        loop {
            if self.is_over() {
                return true;
            }
            let left = match until {
                Some(until) => until.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(u32::MAX.into()),
            };
            if left.is_zero() {
                return false;
            }
            let timeout = timespec(left);
            let mut fds = [PollFd::from_borrowed_fd(stop, PollFlags::IN)];
            // EINTR and a timeout alike go round again: the loop's checks
            // tell which it was.
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
        }
    }
}

/// The trap a thread of a guest that is over gets from a wait it was in.
pub(crate) fn over_trap() -> wasi_common::Error {
    wasi_common::Error::trap(wasmtime::Error::msg("the guest has exited"))
}

/// `d` as a timeout for `poll(2)`.
pub(crate) fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<GuestLife>>> = const { RefCell::new(None) };
}

/// Marks the calling thread as running the guest of `life` until the
/// returned guard goes.
pub(crate) fn enter(life: Arc<GuestLife>) -> Entered {
    CURRENT.with(|c| *c.borrow_mut() = Some(life));
    Entered(())
}

/// Unmarks the thread when dropped.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// The life of the guest the calling thread runs, if the runtime started
/// it for one.
pub(crate) fn current() -> Option<Arc<GuestLife>> {
    CURRENT.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_cuts_a_sleep_short_and_leaves_the_stop_fd_readable() {
        let life = Arc::new(GuestLife::new());
        assert!(!life.sleep(Duration::from_millis(1)), "not over yet");
        let ender = {
            let life = life.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                life.end();
            })
        };
        assert!(life.sleep(Duration::from_secs(3600)), "woken by the end");
        ender.join().unwrap();
        let mut fds = [PollFd::from_borrowed_fd(
            life.stop_fd().unwrap(),
            PollFlags::IN,
        )];
        let zero = rustix::time::Timespec::default();
        assert_eq!(rustix::event::poll(&mut fds, Some(&zero)).unwrap(), 1);
        assert!(life.check().is_err());
    }

    #[test]
    fn a_thread_knows_its_guest_only_while_entered() {
        assert!(current().is_none());
        let life = Arc::new(GuestLife::new());
        {
            let _entered = enter(life.clone());
            assert!(current().is_some_and(|c| Arc::ptr_eq(&c, &life)));
        }
        assert!(current().is_none());
    }
}
