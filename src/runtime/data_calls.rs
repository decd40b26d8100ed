//! Preview 1's four data calls (`fd_read`, `fd_write`, `fd_pread`,
//! `fd_pwrite`) linked for one module, finding the guest's memory by its
//! export index instead of by name.
//!
//! wiggle's glue looks the `memory` export up by name on every call: a
//! string-pool search and a hash-map lookup that cost about a sixth of the
//! host's time for a small read. Each definition here runs the same
//! wiggle-generated function as wasi-common's own, so what a call does
//! (its errors, traps and trace spans) is unchanged; only the lookup is
//! not. On a shared memory, `shared_io` serves every iovec, where
//! wasi-common serves the first alone. This module must not change any
//! call's behaviour otherwise.

use super::shared_io::{self, Call};
use wasi_common::WasiCtx;
use wasi_common::snapshots::preview_1::wasi_snapshot_preview1 as abi;
use wasmtime::{Caller, Extern, Linker, ModuleExport};
use wiggle::GuestMemory;

/// Defines the four calls in `linker` in front of wasi-common's, for
/// instances of the module whose `memory` export is `memory`. An instance
/// of any other module (a linker may serve several) falls back to the
/// lookup by name.
pub(crate) fn link<T: 'static>(
    linker: &mut Linker<T>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
    memory: ModuleExport,
) -> wasmtime::Result<()> {
    const MODULE: &str = "wasi_snapshot_preview1";
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "fd_read",
        move |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nread: i32| {
            let request = (Call::Read(None), fd, iovs, iovs_len, nread);
            call(&mut caller, &memory, get_cx, request, async |cx, mem| {
                abi::fd_read(cx, mem, fd, iovs, iovs_len, nread).await
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_write",
        move |mut caller: Caller<'_, T>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| {
            let request = (Call::Write(None), fd, iovs, iovs_len, nwritten);
            call(&mut caller, &memory, get_cx, request, async |cx, mem| {
                abi::fd_write(cx, mem, fd, iovs, iovs_len, nwritten).await
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pread",
        move |mut caller: Caller<'_, T>,
              fd: i32,
              iovs: i32,
              iovs_len: i32,
              offset: i64,
              nread: i32| {
            let request = (Call::Read(Some(offset)), fd, iovs, iovs_len, nread);
            call(&mut caller, &memory, get_cx, request, async |cx, mem| {
                abi::fd_pread(cx, mem, fd, iovs, iovs_len, offset, nread).await
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pwrite",
        move |mut caller: Caller<'_, T>,
              fd: i32,
              iovs: i32,
              iovs_len: i32,
              offset: i64,
              nwritten: i32| {
            let request = (Call::Write(Some(offset)), fd, iovs, iovs_len, nwritten);
            call(&mut caller, &memory, get_cx, request, async |cx, mem| {
                abi::fd_pwrite(cx, mem, fd, iovs, iovs_len, offset, nwritten).await
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A data call's kind and arguments: descriptor, iovec list and its
/// length, and where the result goes.
type Request = (Call, i32, i32, i32, i32);

/// Runs `f` with the caller's context and memory, as wiggle's glue does;
/// on a shared memory, `shared_io` serves `request` instead.
fn call<T>(
    caller: &mut Caller<'_, T>,
    memory: &ModuleExport,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx,
    request: Request,
    f: impl AsyncFnOnce(&mut WasiCtx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    with_memory(caller, Some(memory), get_cx, |cx, memory| {
        if memory.is_shared_memory() {
            let (kind, fd, iovs, len, result) = request;
            return wiggle::run_in_dummy_executor(async {
                match shared_io::serve(cx, memory, kind, fd, iovs, len, result).await {
                    Some(done) => done,
                    None => f(cx, memory).await,
                }
            })?;
        }
        wiggle::run_in_dummy_executor(f(cx, memory))?
    })
}

/// Runs `f` with the caller's context and its memory, the export
/// `memory` (found by its index when given, else by name), as wiggle's
/// glue finds it.
pub(super) fn with_memory<T, R>(
    caller: &mut Caller<'_, T>,
    memory: Option<&ModuleExport>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx,
    f: impl FnOnce(&mut WasiCtx, &mut GuestMemory<'_>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let export = memory
        .and_then(|m| caller.get_module_export(m))
        .or_else(|| caller.get_export("memory"));
    let (mut memory, cx) = match &export {
        Some(Extern::Memory(m)) => {
            let (data, store) = m.data_and_store_mut(&mut *caller);
            (GuestMemory::Unshared(data), get_cx(store))
        }
        Some(Extern::SharedMemory(m)) => (GuestMemory::Shared(m.data()), get_cx(caller.data_mut())),
        _ => wasmtime::bail!("missing required memory export"),
    };
    f(cx, &mut memory)
}
