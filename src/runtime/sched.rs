//! `VfsSched`: `poll_oneoff` that understands files without an OS
//! descriptor.
//!
//! wasi-common's sync scheduler polls OS descriptors only and rejects any
//! other file ("file is not pollable"). Reading or writing a virtual file
//! never blocks, so such a subscription is ready at once; everything else
//! goes to wasi-common's scheduler, or, when a virtual file is already
//! ready, is checked without waiting.

use crate::wasi::life::{self, GuestLife, over_trap as over};
use rustix::event::{PollFd, PollFlags};
use wasi_common::sched::subscription::{RwEventFlags, Subscription};
use wasi_common::sched::{Duration, Poll, WasiSched};
use wasi_common::sync::sched::SyncSched;
use wasi_common::{Error, ErrorExt, WasiFile};

/// A scheduler for contexts that hold virtual files: it reports them ready
/// at once, and waits for OS descriptors (stdin, pipes, sockets) and clocks
/// in a way that the end of the guest (see
/// [`Guest::run`](super::Guest::run)) interrupts.
pub struct VfsSched {
    os: SyncSched,
}

impl Default for VfsSched {
    fn default() -> Self {
        Self::new()
    }
}

impl VfsSched {
    /// A new scheduler.
    pub fn new() -> Self {
        VfsSched {
            os: SyncSched::new(),
        }
    }
}

/// Completes a subscription on a file that is ready.
fn ready(sub: &mut Subscription<'_>, flags: RwEventFlags) {
    match sub {
        Subscription::Read(s) => {
            let bytes = s.file.num_ready_bytes();
            match bytes {
                Ok(n) => s.complete(n.max(1), flags),
                Err(e) => s.error(e),
            }
        }
        Subscription::Write(s) => s.complete(0, flags),
        Subscription::MonotonicClock(_) => {}
    }
}

fn file_of<'a>(sub: &Subscription<'a>) -> Option<&'a dyn WasiFile> {
    match sub {
        Subscription::Read(s) | Subscription::Write(s) => Some(s.file),
        Subscription::MonotonicClock(_) => None,
    }
}

#[async_trait::async_trait]
impl WasiSched for VfsSched {
    async fn poll_oneoff<'a>(&self, poll: &mut Poll<'a>) -> Result<(), Error> {
        let any_virtual = poll
            .rw_subscriptions()
            .any(|s| file_of(s).is_some_and(|f| f.pollable().is_none()));
        if !any_virtual {
            return match life::current() {
                Some(life) if life.stop_fd().is_some() => wait(poll, &life),
                _ => self.os.poll_oneoff(poll).await,
            };
        }
        // Something is ready now, so nothing waits: virtual files are
        // ready, OS descriptors are asked with a zero timeout, and clocks
        // report themselves when the results are read.
        for sub in poll.rw_subscriptions() {
            let Some(file) = file_of(sub) else { continue };
            let Some(fd) = file.pollable() else {
                ready(sub, RwEventFlags::empty());
                continue;
            };
            let interest = match sub {
                Subscription::Read(_) => PollFlags::IN,
                _ => PollFlags::OUT,
            };
            let mut fds = [PollFd::from_borrowed_fd(fd, interest)];
            match rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => {
                    let revents = fds[0].revents();
                    if revents.contains(PollFlags::NVAL) {
                        set_error(sub, std::io::Error::from(rustix::io::Errno::BADF).into());
                    } else if revents.contains(PollFlags::HUP) {
                        ready(sub, RwEventFlags::HANGUP);
                    } else {
                        ready(sub, RwEventFlags::empty());
                    }
                }
                Err(e) => set_error(sub, std::io::Error::from(e).into()),
            }
        }
        Ok(())
    }

    async fn sched_yield(&self) -> Result<(), Error> {
        self.os.sched_yield().await
    }

    async fn sleep(&self, duration: Duration) -> Result<(), Error> {
        match life::current() {
            Some(life) if life.sleep(duration) => Err(over()),
            Some(_) => Ok(()),
            None => self.os.sleep(duration).await,
        }
    }
}

/// Waits for OS descriptors and clocks, or for the end of the guest of
/// `life`, which traps.
fn wait(poll: &mut Poll<'_>, life: &GuestLife) -> Result<(), Error> {
    let Some(stop) = life.stop_fd() else {
        return Err(Error::invalid_argument().context("no stop signal"));
    };
    if poll.is_empty() {
        return Ok(());
    }
    let mut fds = Vec::new();
    for sub in poll.rw_subscriptions() {
        let (file, interest) = match sub {
            Subscription::Read(s) => (s.file, PollFlags::IN),
            Subscription::Write(s) => (s.file, PollFlags::OUT),
            Subscription::MonotonicClock(_) => continue,
        };
        let fd = file
            .pollable()
            .ok_or_else(|| Error::invalid_argument().context("file is not pollable"))?;
        fds.push(PollFd::from_borrowed_fd(fd, interest));
    }
    let watched = fds.len();
    fds.push(PollFd::from_borrowed_fd(stop, PollFlags::IN));
    loop {
        if life.is_over() {
            return Err(over());
        }
        let timeout = match poll.earliest_clock_deadline() {
            Some(clock) => {
                let left = clock.duration_until().unwrap_or_default();
                if left.is_zero() && watched == 0 {
                    // The clock is due; `results` reports it.
                    return Ok(());
                }
                Some(life::timespec(left))
            }
            None => None,
        };
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
        if !fds[watched].revents().is_empty() {
            return Err(over());
        }
        if fds[..watched].iter().any(|fd| !fd.revents().is_empty()) {
            break;
        }
        if timeout.is_some()
            && poll
                .earliest_clock_deadline()
                .is_some_and(|c| c.duration_until().unwrap_or_default().is_zero())
        {
            return Ok(());
        }
    }
    let revents: Vec<PollFlags> = fds[..watched].iter().map(|fd| fd.revents()).collect();
    let subs = poll
        .rw_subscriptions()
        .filter(|s| !matches!(s, Subscription::MonotonicClock(_)));
    for (sub, revents) in subs.zip(revents) {
        if revents.is_empty() {
            continue;
        }
        if revents.contains(PollFlags::NVAL) {
            set_error(sub, Error::badf());
        } else if revents.contains(PollFlags::ERR) {
            set_error(sub, Error::io());
        } else if revents.contains(PollFlags::HUP) {
            ready(sub, RwEventFlags::HANGUP);
        } else {
            ready(sub, RwEventFlags::empty());
        }
    }
    Ok(())
}

fn set_error(sub: &mut Subscription<'_>, e: Error) {
    match sub {
        Subscription::Read(s) | Subscription::Write(s) => s.error(e),
        Subscription::MonotonicClock(_) => {}
    }
}
