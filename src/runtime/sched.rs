//! `VfsSched`: `poll_oneoff` that understands files without an OS
//! descriptor.
//!
//! wasi-common's sync scheduler polls OS descriptors only and rejects any
//! other file ("file is not pollable"). Reading or writing a virtual file
//! never blocks, so such a subscription is ready at once; everything else
//! goes to wasi-common's scheduler, or, when a virtual file is already
//! ready, is checked without waiting.

use rustix::event::{PollFd, PollFlags};
use wasi_common::sched::subscription::{RwEventFlags, Subscription};
use wasi_common::sched::{Duration, Poll, WasiSched};
use wasi_common::sync::sched::SyncSched;
use wasi_common::{Error, WasiFile};

/// A scheduler for contexts that hold virtual files: it reports them ready
/// at once and delegates OS descriptors (stdin, pipes, sockets), clocks,
/// `sched_yield` and sleeps to wasi-common's own sync scheduler.
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
            return self.os.poll_oneoff(poll).await;
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
        self.os.sleep(duration).await
    }
}

fn set_error(sub: &mut Subscription<'_>, e: Error) {
    match sub {
        Subscription::Read(s) | Subscription::Write(s) => s.error(e),
        Subscription::MonotonicClock(_) => {}
    }
}
