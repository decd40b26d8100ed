//! Preview 1's four data calls on a shared memory (every threaded guest's),
//! as they behave on a plain memory.
//!
//! wasi-common serves a shared memory through its first iovec alone, and
//! at most 64 KiB of it: a read whose first iovec is empty (wasi-libc's
//! buffered `getc` passes one) returns 0, which the guest takes for the end
//! of the file. Here the call runs as wasi-common's own on a private scratch
//! memory holding one iovec, so the file sees one read or write for the
//! whole request (up to the scratch's size, see below), and the bytes are
//! copied between the scratch and the guest's iovecs (empty ones skipped).
//! The positioned calls take the first non-empty iovec only, as
//! wasi-common's `fd_pread` and `fd_pwrite` do on a plain memory (a short
//! read or write, which POSIX allows), so a program behaves the same built
//! with or without threads.
//!
//! The scratch holds at most [`MAX_BYTES`]: a larger request is served by
//! as many calls on the file as it takes, so the host holds no more than
//! that for any call, however much memory the guest offers; and at most
//! [`MAX_IOVECS`] iovecs of a call are served. A call whose iovecs or
//! result do not lie inside the guest's memory goes to wasi-common
//! unchanged, so its errors stay as they are. This module must not change
//! what a call does otherwise.

use wasi_common::WasiCtx;
use wasi_common::snapshots::preview_1::types;
use wasi_common::snapshots::preview_1::wasi_snapshot_preview1 as abi;
use wiggle::{GuestMemory, GuestPtr};

/// The scratch memory's data size: what one call on the file moves at
/// most (the scratch is allocated lazily, so a large request for a small
/// file costs no more than the file).
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

/// The most iovecs of one call that are served (Linux's `IOV_MAX`): a
/// longer list is served up to there, a short read or write. A guest's list
/// could otherwise hold hundreds of millions of entries, which the host
/// would copy and walk within one call.
pub(crate) const MAX_IOVECS: u32 = 1024;

/// The guest's non-empty iovecs among the first [`MAX_IOVECS`] (address
/// and length), if all of those and the result word lie inside the memory.
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
    let list = GuestPtr::<[types::Iovec]>::new((iovs, len.min(MAX_IOVECS)));
    let mut out = Vec::with_capacity(len.min(MAX_IOVECS) as usize);
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

/// A place in the guest's iovec list: which iovec, and how far into it.
struct Cursor<'a> {
    list: &'a [(u32, u32)],
    index: usize,
    offset: u32,
}

impl Cursor<'_> {
    /// The guest's pieces of memory holding the next `n` bytes of the
    /// request, in order (the cursor stays where it is).
    fn pieces(&self, mut n: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut offset = self.offset;
        for &(buf, len) in self.list.iter().skip(self.index) {
            if n == 0 {
                break;
            }
            let take = (len - offset).min(n);
            out.push((buf + offset, take));
            n -= take;
            offset = 0;
        }
        out
    }

    fn advance(&mut self, mut n: u32) {
        while n > 0 {
            let Some(&(_, len)) = self.list.get(self.index) else {
                return;
            };
            let take = (len - self.offset).min(n);
            self.offset += take;
            n -= take;
            if self.offset == len {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

/// Runs `call` on descriptor `fd` for a guest whose memory is shared;
/// `None` when the request is left to wasi-common.
///
/// A request larger than the scratch memory ([`MAX_BYTES`]) is served as
/// consecutive calls on the file, each of at most that much, until one
/// moves less than it asked for; an error after some bytes moved ends the
/// call with those bytes, as a short read or write.
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
    // The result is a u32; iovecs may overlap, so their sum may be more.
    let total = list
        .iter()
        .map(|&(_, n)| u64::from(n))
        .sum::<u64>()
        .min(u64::from(u32::MAX)) as u32;
    let chunk = total.min(MAX_BYTES);
    let mut scratch = vec![0u8; (DATA_AT + chunk) as usize];
    let mut cursor = Cursor {
        list: &list,
        index: 0,
        offset: 0,
    };
    let mut moved: u32 = 0;
    // At least one call, so that an empty request still checks the
    // descriptor.
    loop {
        let want = (total - moved).min(chunk);
        scratch[..4].copy_from_slice(&DATA_AT.to_le_bytes());
        scratch[4..8].copy_from_slice(&want.to_le_bytes());
        if let Call::Write(_) = call {
            let mut at = DATA_AT as usize;
            for (buf, n) in cursor.pieces(want) {
                let Ok(bytes) = memory.to_vec(GuestPtr::<[u8]>::new((buf, n))) else {
                    // Left to wasi-common only while nothing was written:
                    // it would write the whole request again.
                    return if moved == 0 {
                        None
                    } else {
                        Some(finish(memory, result, moved))
                    };
                };
                scratch[at..at + n as usize].copy_from_slice(&bytes);
                at += n as usize;
            }
        }
        // The file sees the offsets the one call would have covered.
        let here = |at: i64| (at as u64).wrapping_add(u64::from(moved)) as i64;
        let errno = {
            let mut private = GuestMemory::Unshared(&mut scratch);
            let (iov, one, out) = (IOVEC_AT as i32, 1, RESULT_AT as i32);
            let done = match call {
                Call::Read(None) => abi::fd_read(cx, &mut private, fd, iov, one, out).await,
                Call::Read(Some(at)) => {
                    abi::fd_pread(cx, &mut private, fd, iov, one, here(at), out).await
                }
                Call::Write(None) => abi::fd_write(cx, &mut private, fd, iov, one, out).await,
                Call::Write(Some(at)) => {
                    abi::fd_pwrite(cx, &mut private, fd, iov, one, here(at), out).await
                }
            };
            match done {
                Ok(errno) => errno,
                Err(trap) => return Some(Err(trap)),
            }
        };
        if errno != 0 {
            if moved == 0 {
                return Some(Ok(errno));
            }
            break;
        }
        let got = u32::from_le_bytes(scratch[8..12].try_into().unwrap_or_default()).min(want);
        if let Call::Read(_) = call {
            let mut data = &scratch[DATA_AT as usize..(DATA_AT + got) as usize];
            for (buf, n) in cursor.pieces(got) {
                let to = GuestPtr::<[u8]>::new((buf, n));
                if let Err(e) = memory.copy_from_slice(&data[..n as usize], to) {
                    return Some(Err(e.into()));
                }
                data = &data[n as usize..];
            }
        }
        cursor.advance(got);
        moved += got;
        if got < want || moved == total {
            break;
        }
    }
    Some(finish(memory, result, moved))
}

/// Stores the bytes moved in the guest's result word; errno 0.
fn finish(memory: &mut GuestMemory<'_>, result: i32, moved: u32) -> wasmtime::Result<i32> {
    memory
        .write(GuestPtr::<u32>::new(result as u32), moved)
        .map(|()| 0)
        .map_err(Into::into)
}
