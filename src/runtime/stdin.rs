//! [`Stdin`]: the process's standard input as a guest's stdin, read so
//! that the guest's end interrupts it.
//!
//! wasi-common's own stdin blocks in `read(2)` until input arrives: a
//! guest thread reading an open, silent pipe can never be stopped, and a
//! command whose worker called `proc_exit` would wait for input before it
//! could exit. This one waits in `poll(2)` on stdin and on the guest's
//! stop signal, and reads only once stdin is readable. Owns reading
//! descriptor 0; what a guest's end is belongs to `stop.rs`.

use crate::wasi::life::{self, over_trap as over};
use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd};
use std::any::Any;
use std::io::{IoSliceMut, IsTerminal};
use std::time::Duration;
use wasi_common::file::{FileType, WasiFile};
use wasi_common::{Error, ErrorExt};

/// How long a reader waits for another reader of stdin before looking
/// again at whether its guest is over.
const TURN: Duration = Duration::from_millis(50);

/// Readers of stdin take turns, so that a reader that found input
/// readable is the one that reads it (and does not block because another
/// thread took it first).
static TURNS: Mutex<()> = Mutex::new(());

/// The process's standard input for a guest, whose reads return once the
/// guest is over (see [`Guest::run`](super::Guest::run)); otherwise like
/// wasi-common's `stdin()`. Reads outside a guest run by this crate's
/// runtime block as plain reads do.
///
/// ```
/// # fn main() -> wasmtime::Result<()> {
/// let ctx = wasi_common_vfs::runtime::context(&["app.wasm"])?;
/// ctx.set_stdin(Box::new(wasi_common_vfs::runtime::stdin()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Stdin(std::io::Stdin);

/// The process's standard input, for [`WasiCtx::set_stdin`](wasi_common::WasiCtx::set_stdin).
pub fn stdin() -> Stdin {
    Stdin(std::io::stdin())
}

impl Stdin {
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Waits until stdin is readable, holding the readers' turn; `Err`
    /// once the guest of the calling thread is over.
    fn wait_readable(&self) -> Result<parking_lot::MutexGuard<'static, ()>, Error> {
        let Some(life) = life::current() else {
            return Ok(TURNS.lock());
        };
        loop {
            if life.is_over() {
                return Err(over());
            }
            let Some(turn) = TURNS.try_lock_for(TURN) else {
                continue;
            };
            let Some(stop) = life.stop_fd() else {
                return Ok(turn);
            };
            let mut fds = [
                PollFd::from_borrowed_fd(self.fd(), PollFlags::IN),
                PollFd::from_borrowed_fd(stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) if !fds[1].revents().is_empty() => return Err(over()),
                Ok(_) if !fds[0].revents().is_empty() => return Ok(turn),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
    }
}

#[async_trait::async_trait]
impl WasiFile for Stdin {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn pollable(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd())
    }

    async fn get_filetype(&self) -> Result<FileType, Error> {
        Ok(if self.isatty() {
            FileType::CharacterDevice
        } else {
            FileType::Unknown
        })
    }

    fn isatty(&self) -> bool {
        self.0.is_terminal()
    }

    async fn read_vectored<'a>(&self, bufs: &mut [IoSliceMut<'a>]) -> Result<u64, Error> {
        loop {
            let _turn = self.wait_readable()?;
            match rustix::io::readv(self.fd(), bufs) {
                Ok(n) => return Ok(n as u64),
                // Readable was a moment ago (or stdin was left non-blocking
                // by whoever shares it): wait again.
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
    }

    async fn read_vectored_at<'a>(
        &self,
        _bufs: &mut [IoSliceMut<'a>],
        _offset: u64,
    ) -> Result<u64, Error> {
        Err(Error::seek_pipe())
    }

    async fn seek(&self, _pos: std::io::SeekFrom) -> Result<u64, Error> {
        Err(Error::seek_pipe())
    }

    async fn peek(&self, _buf: &mut [u8]) -> Result<u64, Error> {
        Err(Error::seek_pipe())
    }

    fn num_ready_bytes(&self) -> Result<u64, Error> {
        Ok(rustix::io::ioctl_fionread(self.fd()).unwrap_or(0))
    }
}
