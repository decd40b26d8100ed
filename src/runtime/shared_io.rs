//! Preview 1's four data calls on a shared memory (every threaded guest's),
//! as they behave on a plain memory.
//!
//! wasi-common serves a shared memory through its first iovec alone, and
//! at most 64 KiB of it: a read whose first iovec is empty (wasi-libc's
//! buffered `getc` passes one) returns 0, which the guest takes for the end
//! of the file. Here the call runs as wasi-common's own on a private scratch
//! memory holding one iovec, so the file sees exactly one read or write of
//! the whole request, and the bytes are copied between the scratch and the
//! guest's iovecs (empty ones skipped). The positioned calls take the
//! first non-empty iovec only, as wasi-common's `fd_pread` and `fd_pwrite`
//! do on a plain memory (a short read or write, which POSIX allows), so a
//! program behaves the same built with or without threads. A request larger than
//! [`MAX_BYTES`] is served in part, as a short read or write the guest
//! continues. A call whose iovecs or result do not lie inside the guest's
//! memory goes to wasi-common unchanged, so its errors stay as they are.
//! This module must not change what a call does otherwise.

use wasi_common::WasiCtx;
use wasi_common::snapshots::preview_1::types;
use wasi_common::snapshots::preview_1::wasi_snapshot_preview1 as abi;
use wiggle::{GuestMemory, GuestPtr};

/// Bytes one call moves at most (the scratch memory is allocated lazily,
/// so a large request for a small file costs no more than the file).
pub(crate) const MAX_BYTES: u32 = 16 << 20;

/// Where the scratch memory keeps the one iovec, the result, and the data.
const IOVEC_AT: u32 = 0;
const RESULT_AT: u32 = 8;
const DATA_AT: u32 = 16;

/// Which call, and at which offset for the positioned ones.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    Read(Option<i64>),
    Write(Option<i64>),
}

/// The guest's iovecs (address and length), if all of them and the result
/// word lie inside the memory.
fn iovecs(memory: &GuestMemory<'_>, iovs: i32, len: i32, result: i32) -> Option<Vec<(u32, u32)>> {
    let size = match memory {
        GuestMemory::Shared(cells) => cells.len(),
        GuestMemory::Unshared(bytes) => bytes.len(),
    } as u64;
    let inside = |at: u32, n: u64| u64::from(at) + n <= size;
    let (iovs, len, result) = (iovs as u32, len as u32, result as u32);
    if !inside(result, 4) || !inside(iovs, u64::from(len) * 8) {
        return None;
    }
    let list = GuestPtr::<[types::Iovec]>::new((iovs, len));
    let mut out = Vec::with_capacity(len.min(1024) as usize);
    for iov in list.iter() {
        let iov = memory.read(iov.ok()?).ok()?;
        let at = iov.buf.offset();
        if !inside(at, u64::from(iov.buf_len)) {
            return None;
        }
        if iov.buf_len > 0 {
            out.push((at, iov.buf_len));
        }
    }
    Some(out)
}

/// Runs `call` on descriptor `fd` for a guest whose memory is shared;
/// `None` when the request is left to wasi-common.
pub(crate) async fn serve(
    cx: &mut WasiCtx,
    memory: &mut GuestMemory<'_>,
    call: Call,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    result: i32,
) -> Option<wasmtime::Result<i32>> {
    let mut list = iovecs(memory, iovs, iovs_len, result)?;
    if let Call::Read(Some(_)) | Call::Write(Some(_)) = call {
        list.truncate(1);
    }
    let total = list
        .iter()
        .map(|&(_, n)| u64::from(n))
        .sum::<u64>()
        .min(u64::from(MAX_BYTES)) as u32;
    let mut scratch = vec![0u8; (DATA_AT + total) as usize];
    scratch[..4].copy_from_slice(&DATA_AT.to_le_bytes());
    scratch[4..8].copy_from_slice(&total.to_le_bytes());
    if let Call::Write(_) = call {
        let mut at = DATA_AT as usize;
        for &(buf, n) in &list {
            let end = (DATA_AT + total) as usize;
            if at == end {
                break;
            }
            let take = (n as usize).min(end - at);
            let bytes = memory
                .to_vec(GuestPtr::<[u8]>::new((buf, take as u32)))
                .ok()?;
            scratch[at..at + take].copy_from_slice(&bytes);
            at += take;
        }
    }
    let errno = {
        let mut private = GuestMemory::Unshared(&mut scratch);
        let (iov, one, out) = (IOVEC_AT as i32, 1, RESULT_AT as i32);
        let done = match call {
            Call::Read(None) => abi::fd_read(cx, &mut private, fd, iov, one, out).await,
            Call::Read(Some(at)) => abi::fd_pread(cx, &mut private, fd, iov, one, at, out).await,
            Call::Write(None) => abi::fd_write(cx, &mut private, fd, iov, one, out).await,
            Call::Write(Some(at)) => abi::fd_pwrite(cx, &mut private, fd, iov, one, at, out).await,
        };
        match done {
            Ok(errno) => errno,
            Err(trap) => return Some(Err(trap)),
        }
    };
    if errno != 0 {
        return Some(Ok(errno));
    }
    let moved = u32::from_le_bytes(scratch[8..12].try_into().unwrap_or_default()).min(total);
    if let Call::Read(_) = call {
        let mut data = &scratch[DATA_AT as usize..(DATA_AT + moved) as usize];
        for &(buf, n) in &list {
            if data.is_empty() {
                break;
            }
            let take = (n as usize).min(data.len());
            let to = GuestPtr::<[u8]>::new((buf, take as u32));
            if let Err(e) = memory.copy_from_slice(&data[..take], to) {
                return Some(Err(e.into()));
            }
            data = &data[take..];
        }
    }
    Some(
        memory
            .write(GuestPtr::<u32>::new(result as u32), moved)
            .map(|()| 0)
            .map_err(Into::into),
    )
}
