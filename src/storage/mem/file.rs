//! The bytes of one in-memory regular file: sparse, in fixed-size chunks.
//!
//! Owns the data layout only; sizes and offsets arrive already checked
//! against [`MAX_FILE_SIZE`](crate::storage::MAX_FILE_SIZE) by the caller,
//! and timestamps and locking are the inode's business.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};

/// Chunk size: large enough that a sequential read costs one map lookup per
/// 64 KiB, small enough that a write far past the end stores little.
const CHUNK: u64 = 64 * 1024;

/// File contents. A chunk holds the bytes of `[i * CHUNK, i * CHUNK + len)`;
/// anything below `size` that no chunk holds reads as zero (a hole).
#[derive(Debug, Default)]
pub(crate) struct FileData {
    size: u64,
    chunks: BTreeMap<u64, Vec<u8>>,
}

/// A chunk buffer with room for `len` bytes. A whole chunk's fresh memory
/// is populated with one `madvise` rather than a page fault per page, which
/// dominates writing large files otherwise.
fn new_chunk(len: usize) -> Vec<u8> {
    let chunk = Vec::with_capacity(len);
    if len == CHUNK as usize {
        prefault(chunk.as_ptr(), len);
    }
    chunk
}

#[cfg(target_os = "linux")]
fn prefault(start: *const u8, len: usize) {
    const PAGE: usize = 4096;
    let first = (start as usize).next_multiple_of(PAGE);
    let last = (start as usize + len) / PAGE * PAGE;
    if last > first {
        // SAFETY: the range lies inside an allocation this function's caller
        // owns, and populating pages changes no byte of it (they are not yet
        // initialised, and the kernel zero-fills them as a fault would).
        // Failure (an older kernel) only means the faults happen later.
        let _ = unsafe {
            rustix::mm::madvise(
                first as *mut core::ffi::c_void,
                last - first,
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
    }
}

#[cfg(not(target_os = "linux"))]
fn prefault(_start: *const u8, _len: usize) {}

impl FileData {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of data actually held in memory (holes excluded).
    pub(crate) fn stored_bytes(&self) -> usize {
        self.chunks.values().map(Vec::len).sum()
    }

    /// How many more bytes would be held after writing `len` bytes at
    /// `offset`, so the caller can charge them before anything changes.
    pub(crate) fn growth(&self, offset: u64, len: u64) -> u64 {
        let mut grow = 0;
        let mut pos = offset;
        let end = offset.saturating_add(len);
        while pos < end {
            let index = pos / CHUNK;
            let chunk_end = ((index + 1) * CHUNK).min(end);
            let held = self.chunks.get(&index).map_or(0, |c| c.len() as u64);
            let needed = chunk_end - index * CHUNK;
            grow += needed.saturating_sub(held);
            pos = chunk_end;
        }
        grow
    }

    /// Fills `bufs` from `offset`; returns the number of bytes read.
    pub(crate) fn read(&self, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> usize {
        let mut pos = offset;
        let mut total = 0;
        for buf in bufs.iter_mut() {
            if pos >= self.size {
                break;
            }
            let want = (buf.len() as u64).min(self.size - pos) as usize;
            self.read_into(pos, &mut buf[..want]);
            pos += want as u64;
            total += want;
        }
        total
    }

    fn read_into(&self, mut pos: u64, mut out: &mut [u8]) {
        while !out.is_empty() {
            let index = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let take = out.len().min(CHUNK as usize - within);
            let (head, rest) = std::mem::take(&mut out).split_at_mut(take);
            let held = self
                .chunks
                .get(&index)
                .map_or(&[][..], |c| c.get(within..).unwrap_or(&[]));
            let copied = held.len().min(take);
            head[..copied].copy_from_slice(&held[..copied]);
            head[copied..].fill(0);
            out = rest;
            pos += take as u64;
        }
    }

    /// Writes `bufs` at `offset`, growing the file; the caller has checked
    /// that `offset + total length` does not exceed the size limit.
    pub(crate) fn write(&mut self, offset: u64, bufs: &[IoSlice<'_>]) -> usize {
        let mut pos = offset;
        for buf in bufs {
            self.write_one(pos, buf);
            pos += buf.len() as u64;
        }
        self.size = self.size.max(pos);
        (pos - offset) as usize
    }

    fn write_one(&mut self, mut pos: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let index = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let take = data.len().min(CHUNK as usize - within);
            let chunk = self
                .chunks
                .entry(index)
                .or_insert_with(|| new_chunk(within + take));
            let (part, end) = (&data[..take], within + take);
            if within >= chunk.len() {
                // Past the held bytes: zero only the gap, then append (no
                // zero-fill of what is about to be overwritten).
                chunk.resize(within, 0);
                chunk.extend_from_slice(part);
            } else if end <= chunk.len() {
                chunk[within..end].copy_from_slice(part);
            } else {
                let (over, tail) = part.split_at(chunk.len() - within);
                chunk[within..].copy_from_slice(over);
                chunk.extend_from_slice(tail);
            }
            data = &data[take..];
            pos += take as u64;
        }
    }

    /// Truncates or extends (with a hole) to `size`; returns the bytes of
    /// data no longer held.
    pub(crate) fn set_size(&mut self, size: u64) -> usize {
        let before = self.stored_bytes();
        if size < self.size {
            let keep_chunks = size.div_ceil(CHUNK);
            self.chunks.split_off(&keep_chunks);
            if let Some(last) = keep_chunks.checked_sub(1) {
                let keep = (size - last * CHUNK) as usize;
                if let Some(chunk) = self.chunks.get_mut(&last) {
                    chunk.truncate(keep);
                }
            }
        }
        self.size = size;
        before - self.stored_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &FileData, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0xAA; len];
        let n = data.read(offset, &mut [IoSliceMut::new(&mut out)]);
        out.truncate(n);
        out
    }

    #[test]
    fn write_far_past_end_stores_only_the_written_bytes() {
        let mut data = FileData::default();
        data.write(1 << 40, &[IoSlice::new(b"tail")]);
        assert_eq!(data.size(), (1 << 40) + 4);
        assert_eq!(data.stored_bytes(), (1 << 40) % CHUNK as usize + 4);
        assert_eq!(read_all(&data, (1 << 40) - 2, 6), b"\0\0tail");
    }

    #[test]
    fn hole_between_writes_reads_as_zeros() {
        let mut data = FileData::default();
        data.write(0, &[IoSlice::new(b"ab")]);
        data.write(CHUNK * 2 + 1, &[IoSlice::new(b"cd")]);
        let all = read_all(&data, 0, (CHUNK * 3) as usize);
        assert_eq!(all.len() as u64, CHUNK * 2 + 3);
        assert_eq!(&all[..2], b"ab");
        assert!(all[2..(CHUNK * 2 + 1) as usize].iter().all(|&b| b == 0));
        assert_eq!(&all[(CHUNK * 2 + 1) as usize..], b"cd");
        assert_eq!(data.chunks.len(), 2, "the middle chunk is a hole");
    }

    #[test]
    fn writes_spanning_chunks_and_vectored_buffers_round_trip() {
        let mut data = FileData::default();
        let a = vec![1u8; CHUNK as usize - 3];
        let b = vec![2u8; 10];
        assert_eq!(
            data.write(0, &[IoSlice::new(&a), IoSlice::new(&b)]),
            a.len() + b.len()
        );
        let mut x = vec![0u8; CHUNK as usize - 5];
        let mut y = vec![0u8; 100];
        let n = data.read(0, &mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)]);
        assert_eq!(n, a.len() + b.len());
        assert!(x.iter().all(|&v| v == 1));
        assert_eq!(&y[..2], &[1, 1]);
        assert!(y[2..12].iter().all(|&v| v == 2));
    }

    #[test]
    fn shrink_then_grow_exposes_zeros_not_old_bytes() {
        let mut data = FileData::default();
        data.write(0, &[IoSlice::new(&vec![7u8; CHUNK as usize + 10])]);
        data.set_size(5);
        assert_eq!(data.chunks.len(), 1);
        data.set_size(CHUNK + 10);
        let all = read_all(&data, 0, (CHUNK + 10) as usize);
        assert_eq!(&all[..5], &[7; 5]);
        assert!(all[5..].iter().all(|&b| b == 0));
        data.set_size(0);
        assert_eq!(data.stored_bytes(), 0);
    }
}
