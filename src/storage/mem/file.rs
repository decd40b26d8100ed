//! The bytes of one in-memory regular file: sparse, in fixed-size chunks,
//! and what holding them costs.
//!
//! Owns the data layout and its charge to the budget; sizes and offsets
//! arrive already checked against
//! [`MAX_FILE_SIZE`](crate::storage::MAX_FILE_SIZE) by the caller, and
//! timestamps and locking are the inode's business.

use super::chunk::{self, Chunk};
use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};

/// Chunk size: large enough that a sequential read costs one lookup per
/// 64 KiB, small enough that a write far past the end stores little.
const CHUNK: u64 = chunk::SIZE as u64;

/// What a chunk costs beyond its buffer: its slot in the chunk index (at
/// worst an entry of a half-full B-tree node) and the allocator's header.
/// Without it, one byte written every 64 KiB would hold far more host
/// memory than the budget counts.
const CHUNK_COST: u64 = 96;

/// The budget charge of a chunk holding `len` bytes.
fn cost(len: usize) -> u64 {
    chunk::footprint(len) as u64 + CHUNK_COST
}

/// File contents. A chunk holds the bytes of `[i * CHUNK, i * CHUNK + len)`;
/// anything below `size` that no chunk holds reads as zero (a hole).
///
/// A chunk's buffer depends on its length alone (the chunk sees to it), so
/// the charge of the whole file,
/// [`held_bytes`](Self::held_bytes), is a function of the chunk lengths
/// alone and cannot drift from what was charged.
#[derive(Debug, Default)]
pub(crate) struct FileData {
    size: u64,
    /// Chunks `0..dense.len()`, none missing: a file written from its start
    /// (nearly every file) finds a chunk by indexing, in one memory access
    /// however large it is.
    dense: Vec<Chunk>,
    /// Chunks past a hole after the dense run, by index. Boxed, so a file
    /// without any (and every other inode, through `Body`) pays one word
    /// for it rather than three.
    #[expect(clippy::box_collection, reason = "one word per inode, not three")]
    sparse: Option<Box<BTreeMap<u64, Chunk>>>,
}

impl FileData {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The budget charge of everything held: chunk buffers and their
    /// bookkeeping (holes cost nothing).
    pub(crate) fn held_bytes(&self) -> u64 {
        let sparse = self.sparse.iter().flat_map(|s| s.values());
        self.dense.iter().chain(sparse).map(|c| cost(c.len())).sum()
    }

    fn chunk(&self, index: u64) -> Option<&Chunk> {
        match usize::try_from(index).ok().and_then(|i| self.dense.get(i)) {
            Some(chunk) => Some(chunk),
            None => self.sparse.as_ref()?.get(&index),
        }
    }

    fn held_mut(&mut self, index: u64) -> Option<&mut Chunk> {
        let dense = self.dense.len() as u64;
        if index < dense {
            return Some(&mut self.dense[index as usize]);
        }
        self.sparse.as_mut()?.get_mut(&index)
    }

    /// The chunk at `index`, made (empty, without a buffer) if missing. A
    /// chunk made right after the dense run joins it, with any sparse
    /// chunks that then follow on.
    fn chunk_mut(&mut self, index: u64) -> &mut Chunk {
        let dense = self.dense.len() as u64;
        if index < dense {
            return &mut self.dense[index as usize];
        }
        if index == dense {
            self.dense.push(Chunk::empty());
            if let Some(sparse) = &mut self.sparse {
                while let Some(next) = sparse.remove(&(self.dense.len() as u64)) {
                    self.dense.push(next);
                }
                if sparse.is_empty() {
                    self.sparse = None;
                }
            }
            return &mut self.dense[index as usize];
        }
        self.sparse
            .get_or_insert_default()
            .entry(index)
            .or_default()
    }

    /// How much more would be charged after writing `len` bytes at
    /// `offset`, so the caller can charge it before anything changes.
    pub(crate) fn growth(&self, offset: u64, len: u64) -> u64 {
        let mut grow = 0;
        let mut pos = offset;
        let end = offset.saturating_add(len);
        while pos < end {
            let index = pos / CHUNK;
            let chunk_end = ((index + 1) * CHUNK).min(end);
            let needed = (chunk_end - index * CHUNK) as usize;
            grow += match self.chunk(index) {
                Some(held) => cost(held.len().max(needed)) - cost(held.len()),
                None => cost(needed),
            };
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
                .chunk(index)
                .map_or(&[][..], |c| c.bytes().get(within..).unwrap_or(&[]));
            let copied = held.len().min(take);
            head[..copied].copy_from_slice(&held[..copied]);
            head[copied..].fill(0);
            out = rest;
            pos += take as u64;
        }
    }

    /// The first run of held bytes ending after `offset`, clipped to start
    /// there: see [`Storage::next_data`](crate::storage::Storage::next_data).
    /// A run spans consecutive chunks while each one before the last is
    /// full.
    pub(crate) fn next_data(&self, offset: u64) -> Option<(u64, u64)> {
        if offset >= self.size {
            return None;
        }
        let mut index = offset / CHUNK;
        let (first, start) = loop {
            let (i, len) = self.held_from(index)?;
            let end = i * CHUNK + len;
            if end > offset {
                break (i, (i * CHUNK).max(offset));
            }
            index = i + 1;
        };
        let mut last = first;
        let mut end = first * CHUNK + self.chunk(first).map_or(0, |c| c.len() as u64);
        while end == (last + 1) * CHUNK {
            match self.chunk(last + 1) {
                Some(c) if !c.is_empty() => {
                    last += 1;
                    end = last * CHUNK + c.len() as u64;
                }
                _ => break,
            }
        }
        Some((start, end.min(self.size)))
    }

    /// The first chunk at or after `index` holding any bytes: its index
    /// and length.
    fn held_from(&self, index: u64) -> Option<(u64, u64)> {
        let from = usize::try_from(index).unwrap_or(usize::MAX);
        if let Some(pos) = self
            .dense
            .get(from..)
            .and_then(|rest| rest.iter().position(|c| !c.is_empty()))
        {
            let i = index + pos as u64;
            return self.chunk(i).map(|c| (i, c.len() as u64));
        }
        let sparse = self.sparse.as_ref()?;
        sparse
            .range(index..)
            .find(|(_, c)| !c.is_empty())
            .map(|(&i, c)| (i, c.len() as u64))
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
            self.chunk_mut(index).write(within, &data[..take]);
            data = &data[take..];
            pos += take as u64;
        }
    }

    /// Truncates or extends (with a hole) to `size`; returns how much less
    /// is charged.
    pub(crate) fn set_size(&mut self, size: u64) -> u64 {
        let before = self.held_bytes();
        if size < self.size {
            let keep_chunks = size.div_ceil(CHUNK);
            self.dense
                .truncate(usize::try_from(keep_chunks).unwrap_or(usize::MAX));
            if self.dense.capacity() > 2 * self.dense.len() {
                self.dense.shrink_to_fit();
            }
            if let Some(sparse) = &mut self.sparse {
                sparse.split_off(&keep_chunks);
                if sparse.is_empty() {
                    self.sparse = None;
                }
            }
            if let Some(last) = keep_chunks.checked_sub(1)
                && let Some(chunk) = self.held_mut(last)
            {
                chunk.truncate((size - last * CHUNK) as usize);
            }
        }
        self.size = size;
        before - self.held_bytes()
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
        assert_eq!(data.held_bytes(), cost((1 << 40) % CHUNK as usize + 4));
        assert!(data.dense.is_empty(), "a lone far chunk is kept sparse");
        assert_eq!(read_all(&data, (1 << 40) - 2, 6), b"\0\0tail");
    }

    #[test]
    fn data_runs_skip_holes_and_join_full_chunks() {
        let mut data = FileData::default();
        assert_eq!(data.next_data(0), None);
        data.write(10, &[IoSlice::new(&vec![1; CHUNK as usize * 2])]);
        data.write(5 * CHUNK + 3, &[IoSlice::new(b"xyz")]);
        data.set_size(9 * CHUNK);
        // A chunk holds its bytes from its start: the ten zeros before the
        // write are stored, not a hole.
        let first = (0, 2 * CHUNK + 10);
        assert_eq!(data.next_data(0), Some(first));
        assert_eq!(data.next_data(CHUNK), Some((CHUNK, first.1)));
        // The rest of the third chunk is a hole; the fourth and fifth hold nothing.
        assert_eq!(data.next_data(first.1), Some((5 * CHUNK, 5 * CHUNK + 6)));
        assert_eq!(
            data.next_data(5 * CHUNK + 4),
            Some((5 * CHUNK + 4, 5 * CHUNK + 6))
        );
        assert_eq!(data.next_data(5 * CHUNK + 6), None);
        data.set_size(5 * CHUNK + 4);
        assert_eq!(data.next_data(5 * CHUNK), Some((5 * CHUNK, 5 * CHUNK + 4)));
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
        assert_eq!(data.chunks(), 2, "the middle chunk is a hole");
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
        assert_eq!(data.chunks(), 1);
        data.set_size(CHUNK + 10);
        let all = read_all(&data, 0, (CHUNK + 10) as usize);
        assert_eq!(&all[..5], &[7; 5]);
        assert!(all[5..].iter().all(|&b| b == 0));
        data.set_size(0);
        assert_eq!(data.held_bytes(), 0);
    }

    impl FileData {
        fn chunks(&self) -> usize {
            self.dense.len() + self.sparse.as_ref().map_or(0, |s| s.len())
        }

        /// Every buffer is exactly what `held_bytes` charges for it.
        fn assert_buffers_match_charge(&self) {
            let sparse = self.sparse.iter().flat_map(|s| s.values());
            for chunk in self.dense.iter().chain(sparse) {
                assert!(!chunk.is_empty(), "no empty chunk is kept");
                assert_eq!(chunk.capacity(), chunk::capacity_for(chunk.len()));
            }
        }
    }

    #[test]
    fn chunks_from_the_start_are_indexed_densely_and_a_far_one_joins_them() {
        let mut data = FileData::default();
        data.write(CHUNK * 3, &[IoSlice::new(b"far")]);
        data.write(0, &[IoSlice::new(&vec![1u8; CHUNK as usize * 2])]);
        assert_eq!((data.dense.len(), data.chunks()), (2, 3));
        // Filling the hole makes the run reach the far chunk, which joins it.
        data.write(CHUNK * 2, &[IoSlice::new(b"x")]);
        assert_eq!(data.dense.len(), 4);
        assert!(data.sparse.is_none());
        assert_eq!(read_all(&data, CHUNK * 3, 3), b"far");
        assert_eq!(read_all(&data, CHUNK * 2, 2), b"x\0");
        data.set_size(CHUNK + 1);
        assert_eq!(data.dense.len(), 2);
        assert_eq!(read_all(&data, CHUNK, 5), [1]);
    }

    #[test]
    fn the_charge_predicted_is_the_charge_held_and_buffers_never_overshoot() {
        let mut data = FileData::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |bound: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % bound
        };
        let bytes = vec![3u8; 3 * CHUNK as usize];
        for step in 0..2000 {
            // Mostly small appends and overwrites near the start, with some
            // large writes, far writes and truncations.
            let offset = match next(10) {
                0 => next(1 << 40),
                1..=3 => data.size(),
                _ => next(4 * CHUNK),
            };
            let len = if next(8) == 0 {
                next(bytes.len() as u64)
            } else {
                next(200)
            };
            if step % 97 == 0 {
                let before = data.held_bytes();
                let freed = data.set_size(next(5 * CHUNK));
                assert_eq!(before - freed, data.held_bytes());
            } else {
                let predicted = data.growth(offset, len);
                let before = data.held_bytes();
                data.write(offset, &[IoSlice::new(&bytes[..len as usize])]);
                assert_eq!(data.held_bytes() - before, predicted, "step {step}");
            }
            data.assert_buffers_match_charge();
        }
    }
}
