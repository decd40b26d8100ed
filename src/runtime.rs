//! Runtime glue: WASI in a `wasmtime::Linker`, and running a command
//! module.
//!
//! wasi-common answers `fd_allocate` with `ENOTSUP` for every file without
//! asking the file, so [`add_to_linker`] puts a definition in front of it
//! that serves this crate's files and leaves every other descriptor to
//! wasi-common. This module must not touch the store directly: it reaches
//! files only through the namespace.

use crate::namespace::{Namespace, Node};
use wasi_common::snapshots::preview_1::types::{self, Errno};
use wasi_common::snapshots::preview_1::wasi_snapshot_preview1::WasiSnapshotPreview1 as Preview1;
use wasi_common::{I32Exit, WasiCtx};
use wasmtime::{Caller, Linker, Module, Store};
use wiggle::GuestMemory;

/// Defines WASI preview 1 (`wasi_snapshot_preview1`) and preview 0
/// (`wasi_unstable`) in `linker`, for a store whose data gives a
/// [`WasiCtx`] through `get_cx`.
///
/// This is wasi-common's own `add_to_linker` plus a working `fd_allocate`
/// for files of a [`Vfs`](crate::Vfs). Use it instead of
/// `wasi_common::sync::add_to_linker`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> wasmtime::Result<()> {
    wasi_common::sync::add_to_linker(linker, get_cx)?;
    linker.allow_shadowing(true);
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        linker.func_wrap(
            module,
            "fd_allocate",
            move |mut caller: Caller<'_, T>,
                  fd: i32,
                  offset: i64,
                  len: i64|
                  -> wasmtime::Result<i32> {
                // The guest's i32/i64 bits are the unsigned WASI values.
                let cx = get_cx(caller.data_mut());
                fd_allocate(cx, fd as u32, offset as u64, len as u64)
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

fn fd_allocate(cx: &mut WasiCtx, fd: u32, offset: u64, len: u64) -> wasmtime::Result<i32> {
    // The calls below read no guest memory, so none is lent to them.
    let mut no_memory: [u8; 0] = [];
    let mut memory = GuestMemory::Unshared(&mut no_memory);
    let result = wiggle::run_in_dummy_executor(async {
        let fd = types::Fd::from(fd);
        let fdstat = Preview1::fd_fdstat_get(cx, &mut memory, fd).await?;
        if fdstat.fs_filetype == types::Filetype::Directory {
            return Err(Errno::Badf.into());
        }
        let stat = Preview1::fd_filestat_get(cx, &mut memory, fd).await?;
        let Some((ns, mount)) = Namespace::by_device(stat.dev) else {
            return Preview1::fd_allocate(cx, &mut memory, fd, offset, len).await;
        };
        if !fdstat.fs_rights_base.contains(types::Rights::FD_WRITE) {
            return Err(Errno::Badf.into());
        }
        let node = Node {
            mount,
            ino: stat.ino,
        };
        ns.allocate(node, offset, len)?;
        Ok(())
    })?;
    match result {
        Ok(()) => Ok(0),
        Err(e) => Ok(i32::from(e.downcast()? as u16)),
    }
}

/// Instantiates `module` and runs its `_start`; returns the exit code
/// (`proc_exit`'s argument, or 0 when `_start` returns) or, for a trap, the
/// error.
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
            None => Err(e),
        },
    }
}
