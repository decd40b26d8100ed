//! `VfsFile`: an open regular file of the namespace, as a `WasiFile`.

use super::life::GuestLife;
use super::{filestat, time_set};
use crate::error::Error;
use crate::namespace::{Handle, Namespace};
use crate::storage::{MAX_FILE_SIZE, SetAttr, WritePos};
use parking_lot::Mutex;
use std::any::Any;
use std::io::{IoSlice, IoSliceMut, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use wasi_common::file::{Advice, FdFlags, FileType, Filestat, WasiFile};
use wasi_common::{Error as WasiError, SystemTimeSpec};

/// An open regular file.
///
/// Holds a handle on the inode, so the data stays readable after the file is
/// unlinked or renamed, until the descriptor is closed. The file position is
/// shared by every thread using the descriptor and moves atomically with each
/// read or write.
pub struct VfsFile {
    handle: Handle,
    /// Opened with write access at the OS level, which `ftruncate` needs
    /// (wasi-common tracks the guest's read/write rights itself).
    writable: bool,
    /// `FdFlags` bits; atomic so that threads sharing the descriptor can
    /// change them (see `runtime::shadow`).
    flags: AtomicU32,
    pos: Mutex<u64>,
    /// The guest this descriptor belongs to, if any.
    life: Option<Arc<GuestLife>>,
}

impl VfsFile {
    pub(crate) fn new(handle: Handle, writable: bool, flags: FdFlags) -> Self {
        VfsFile {
            handle,
            writable,
            flags: AtomicU32::new((flags & (FdFlags::APPEND | FdFlags::NONBLOCK)).bits()),
            pos: Mutex::new(0),
            life: None,
        }
    }

    /// This file as a descriptor of the guest whose life `life` is.
    pub(crate) fn of_guest(mut self, life: Option<Arc<GuestLife>>) -> Self {
        self.life = life;
        self
    }

    /// The namespace, while the guest holding this descriptor runs.
    fn ns(&self) -> Result<&Arc<Namespace>, Error> {
        if let Some(life) = &self.life {
            life.check()?;
        }
        Ok(self.handle.ns())
    }

    fn flags(&self) -> FdFlags {
        FdFlags::from_bits_truncate(self.flags.load(Ordering::Acquire))
    }

    /// `fcntl(F_SETFL)`: only APPEND and NONBLOCK can change, and the
    /// synchronous-I/O flags are refused as wasi-common's host files do.
    fn set_flags(&self, flags: FdFlags) -> Result<(), Error> {
        if flags.intersects(FdFlags::DSYNC | FdFlags::SYNC | FdFlags::RSYNC) {
            return Err(Error::Invalid);
        }
        self.flags.store(flags.bits(), Ordering::Release);
        Ok(())
    }

    /// Where a write of `bufs` at `offset` goes. As on Linux, a file
    /// opened with O_APPEND appends even for pwrite, and a range that runs
    /// past the largest `off_t` is `EINVAL`.
    fn write_pos(&self, offset: u64, bufs: &[IoSlice<'_>]) -> Result<WritePos, Error> {
        if self.flags().contains(FdFlags::APPEND) {
            return Ok(WritePos::Append);
        }
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        match offset.checked_add(len) {
            Some(end) if end <= MAX_FILE_SIZE => Ok(WritePos::At(offset)),
            _ => Err(Error::Invalid),
        }
    }
}

/// A byte offset from the guest: `off_t` is signed, so anything past
/// `i64::MAX` is a negative offset to POSIX, which is `EINVAL`.
fn offset(o: u64) -> Result<u64, Error> {
    if o > MAX_FILE_SIZE {
        Err(Error::Invalid)
    } else {
        Ok(o)
    }
}

/// A descriptor that polls ready for reading and writing, always: an
/// eventfd whose count is one. Offered as every virtual file's
/// `pollable()`, so that wasi-common's own schedulers (which poll OS
/// descriptors only) answer `poll_oneoff` on this crate's files as Linux
/// answers it on regular files: ready at once. `None` if the process has
/// no descriptor left for it.
fn always_ready() -> Option<rustix::fd::BorrowedFd<'static>> {
    use rustix::fd::AsFd;
    static READY: std::sync::OnceLock<Option<rustix::fd::OwnedFd>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let flags =
                rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
            rustix::event::eventfd(1, flags).ok()
        })
        .as_ref()
        .map(|fd| fd.as_fd())
}

#[async_trait::async_trait]
impl WasiFile for VfsFile {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn pollable(&self) -> Option<rustix::fd::BorrowedFd<'_>> {
        always_ready()
    }

    async fn get_filetype(&self) -> Result<FileType, WasiError> {
        Ok(FileType::RegularFile)
    }

    async fn get_fdflags(&self) -> Result<FdFlags, WasiError> {
        Ok(self.flags())
    }

    async fn set_fdflags(&mut self, flags: FdFlags) -> Result<(), WasiError> {
        Ok(self.set_flags(flags)?)
    }

    async fn get_filestat(&self) -> Result<Filestat, WasiError> {
        Ok(filestat(self.ns()?.metadata(self.handle.node())?))
    }

    async fn set_filestat_size(&self, size: u64) -> Result<(), WasiError> {
        if !self.writable {
            return Err(Error::Invalid.into());
        }
        let set = SetAttr {
            size: Some(offset(size)?),
            ..SetAttr::default()
        };
        Ok(self.ns()?.setattr(self.handle.node(), &set)?)
    }

    async fn advise(&self, at: u64, len: u64, _advice: Advice) -> Result<(), WasiError> {
        if let Some(bits) = crate::runtime::shadow::take_pending_flags() {
            // Not advice: `fd_fdstat_set_flags` on a descriptor shared
            // between threads (see `runtime::shadow`).
            return Ok(self.set_flags(FdFlags::from_bits_truncate(u32::from(bits)))?);
        }
        // Everything is already in memory; advice changes nothing, but the
        // arguments are checked as posix_fadvise checks them.
        offset(at)?;
        offset(len)?;
        Ok(())
    }

    async fn set_times(
        &self,
        atime: Option<SystemTimeSpec>,
        mtime: Option<SystemTimeSpec>,
    ) -> Result<(), WasiError> {
        let set = SetAttr {
            atime: time_set(atime),
            mtime: time_set(mtime),
            ..SetAttr::default()
        };
        Ok(self.ns()?.setattr(self.handle.node(), &set)?)
    }

    async fn read_vectored<'a>(&self, bufs: &mut [IoSliceMut<'a>]) -> Result<u64, WasiError> {
        let mut pos = self.pos.lock();
        let n = self.ns()?.read(self.handle.node(), *pos, bufs)?;
        *pos += n as u64;
        Ok(n as u64)
    }

    async fn read_vectored_at<'a>(
        &self,
        bufs: &mut [IoSliceMut<'a>],
        at: u64,
    ) -> Result<u64, WasiError> {
        let n = self.ns()?.read(self.handle.node(), offset(at)?, bufs)?;
        Ok(n as u64)
    }

    async fn write_vectored<'a>(&self, bufs: &[IoSlice<'a>]) -> Result<u64, WasiError> {
        let mut pos = self.pos.lock();
        let (n, end) = self
            .ns()?
            .write(self.handle.node(), self.write_pos(*pos, bufs)?, bufs)?;
        *pos = end;
        Ok(n as u64)
    }

    async fn write_vectored_at<'a>(&self, bufs: &[IoSlice<'a>], at: u64) -> Result<u64, WasiError> {
        let pos = self.write_pos(offset(at)?, bufs)?;
        let (n, _) = self.ns()?.write(self.handle.node(), pos, bufs)?;
        Ok(n as u64)
    }

    async fn seek(&self, whence: SeekFrom) -> Result<u64, WasiError> {
        let mut pos = self.pos.lock();
        let new = match whence {
            SeekFrom::Start(to) => Some(to),
            SeekFrom::Current(delta) => pos.checked_add_signed(delta),
            SeekFrom::End(delta) => {
                let size = self.ns()?.metadata(self.handle.node())?.size;
                size.checked_add_signed(delta)
            }
        };
        let new = offset(new.ok_or(Error::Invalid)?)?;
        *pos = new;
        Ok(new)
    }

    async fn peek(&self, buf: &mut [u8]) -> Result<u64, WasiError> {
        let pos = *self.pos.lock();
        let n = self
            .ns()?
            .read(self.handle.node(), pos, &mut [IoSliceMut::new(buf)])?;
        Ok(n as u64)
    }

    fn num_ready_bytes(&self) -> Result<u64, WasiError> {
        let size = self.ns()?.metadata(self.handle.node())?.size;
        Ok(size.saturating_sub(*self.pos.lock()))
    }

    async fn readable(&self) -> Result<(), WasiError> {
        Ok(())
    }

    async fn writable(&self) -> Result<(), WasiError> {
        Ok(())
    }
}
