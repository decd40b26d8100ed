//! Definitions placed in front of two of wasi-common's preview-1 functions.
//!
//! wasi-common answers `fd_allocate` with `ENOTSUP` for every file without
//! asking the file, and `fd_fdstat_set_flags` with `ENOTSUP` whenever the
//! context is shared between threads (it needs `&mut` access to the file).
//! Both shadows serve this crate's files and leave every other descriptor
//! to wasi-common's own answer. They reach a file only through calls
//! wasi-common makes on it, never through its private descriptor table.

use crate::namespace::{Namespace, Node};
use std::cell::Cell;
use wasi_common::WasiCtx;
use wasi_common::snapshots::preview_1::types::{self, Errno};
use wasi_common::snapshots::preview_1::wasi_snapshot_preview1::WasiSnapshotPreview1 as Preview1;
use wiggle::GuestMemory;

thread_local! {
    /// Descriptor flags handed from [`fd_fdstat_set_flags`] to the file
    /// through wasi-common's `fd_advise`, which reaches a shared file by
    /// `&self`. Only host code on this thread sets it; a guest cannot.
    static PENDING_FLAGS: Cell<Option<u16>> = const { Cell::new(None) };
}

/// Takes the flags that [`fd_fdstat_set_flags`] is handing to the file
/// whose `advise` is being called, if any.
pub(crate) fn take_pending_flags() -> Option<u16> {
    PENDING_FLAGS.with(Cell::take)
}

fn errno_code(result: Result<(), wasi_common::Error>) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(0),
        // A trap (not an errno) goes on up as a trap.
        Err(e) => Ok(i32::from(e.downcast()? as u16)),
    }
}

/// Runs `f` with wasi-common's preview-1 implementation; the calls made
/// read no guest memory, so none is lent.
fn with_preview1<R>(f: impl AsyncFnOnce(&mut GuestMemory<'_>) -> R) -> wasmtime::Result<R> {
    let mut no_memory: [u8; 0] = [];
    let mut memory = GuestMemory::Unshared(&mut no_memory);
    wiggle::run_in_dummy_executor(f(&mut memory))
}

/// The namespace nodes that may be behind `fd`, if it is a file of a live
/// `Vfs`: one, or one per mount of the host filesystem it is on (the same
/// host inode, reached through each).
async fn vfs_nodes(
    cx: &mut WasiCtx,
    memory: &mut GuestMemory<'_>,
    fd: types::Fd,
) -> Result<Option<(std::sync::Arc<Namespace>, Vec<Node>)>, wasi_common::Error> {
    let stat = Preview1::fd_filestat_get(cx, memory, fd).await?;
    Ok(Namespace::by_device(stat.dev).map(|(ns, mounts)| {
        let nodes = mounts
            .into_iter()
            .map(|mount| Node {
                mount,
                ino: stat.ino,
            })
            .collect();
        (ns, nodes)
    }))
}

pub(crate) fn fd_allocate(
    cx: &mut WasiCtx,
    fd: u32,
    offset: u64,
    len: u64,
) -> wasmtime::Result<i32> {
    errno_code(with_preview1(async |memory: &mut GuestMemory<'_>| {
        let fd = types::Fd::from(fd);
        let fdstat = Preview1::fd_fdstat_get(cx, memory, fd).await?;
        if fdstat.fs_filetype == types::Filetype::Directory {
            return Err(Errno::Badf.into());
        }
        let Some((ns, nodes)) = vfs_nodes(cx, memory, fd).await? else {
            return Preview1::fd_allocate(cx, memory, fd, offset, len).await;
        };
        if !fdstat.fs_rights_base.contains(types::Rights::FD_WRITE) {
            return Err(Errno::Badf.into());
        }
        // A mount that does not know the inode, or may not write, passes
        // it on to the next of its host filesystem.
        let mut last = crate::Error::NotFound;
        for node in nodes {
            match ns.allocate(node, offset, len) {
                Err(e @ (crate::Error::NotFound | crate::Error::ReadOnly)) => last = e,
                done => return Ok(done?),
            }
        }
        Err(last.into())
    })?)
}

pub(crate) fn fd_fdstat_set_flags(cx: &mut WasiCtx, fd: u32, flags: u16) -> wasmtime::Result<i32> {
    errno_code(with_preview1(async |memory: &mut GuestMemory<'_>| {
        let fd = types::Fd::from(fd);
        let wasi_flags = types::Fdflags::try_from(flags).map_err(|_| Errno::Inval)?;
        let own = Preview1::fd_fdstat_set_flags(cx, memory, fd, wasi_flags).await;
        let shared_refusal = matches!(&own, Err(e) if e.downcast_ref() == Some(&Errno::Notsup));
        if !shared_refusal {
            return own;
        }
        if vfs_nodes(cx, memory, fd).await?.is_none() {
            return own;
        }
        // The context is shared between threads: hand the flags to the file
        // through `fd_advise`, which wasi-common calls through `&self`.
        PENDING_FLAGS.with(|p| p.set(Some(flags)));
        let handed = Preview1::fd_advise(cx, memory, fd, 0, 0, types::Advice::Normal).await;
        let unclaimed = PENDING_FLAGS.with(Cell::take).is_some();
        handed?;
        if unclaimed { own } else { Ok(()) }
    })?)
}
