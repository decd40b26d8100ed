//! One chunk's buffer: its first `len` bytes hold data, in an allocation
//! whose size is a function of `len` and which starts on a page when it is
//! a whole chunk.
//!
//! Owns the allocation (size, alignment, prefaulting, the host memory it
//! occupies) and nothing else: where a chunk sits in a file and what it is
//! charged are `file.rs`'s business.
//!
//! The alignment is why this is not a `Vec<u8>`: the allocator puts a
//! 64 KiB buffer a few bytes past a page boundary, so a 4 KiB read at a
//! page-aligned file offset touched two host pages. When the data is in no
//! cache, the second page's translation and lines made such a read about a
//! fifth slower. Only whole chunks are aligned: the allocator may leave up
//! to a page unused before an aligned buffer, which is little beside 64 KiB
//! but would double a small file.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::{self, NonNull};

/// The largest buffer, and the span of file offsets one chunk covers.
pub(crate) const SIZE: usize = 64 * 1024;

/// The smallest buffer a chunk holding data is given.
const MIN_CAPACITY: usize = 16;

const PAGE: usize = 4096;

/// The buffer size of a chunk holding `len` bytes: a power of two, so a
/// chunk grown by small appends copies each byte a bounded number of
/// times, and never more than [`SIZE`].
pub(crate) fn capacity_for(len: usize) -> usize {
    len.next_power_of_two().clamp(MIN_CAPACITY, SIZE)
}

/// Bytes `[0, len)` of a chunk, in a buffer of exactly
/// [`capacity_for`]`(len)` bytes (none for an empty chunk).
pub(crate) struct Chunk {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: a chunk owns its buffer alone, as a `Vec<u8>` does; shared
// references only read it.
unsafe impl Send for Chunk {}
// SAFETY: as above.
unsafe impl Sync for Chunk {}

/// The host memory a chunk holding `len` bytes occupies: its buffer, and
/// for a whole chunk the page the allocator may leave unused to align it.
pub(crate) fn footprint(len: usize) -> usize {
    let capacity = capacity_for(len);
    if capacity == SIZE {
        capacity + PAGE
    } else {
        capacity
    }
}

/// The layout of a buffer of `capacity` bytes (at most [`SIZE`]).
fn layout(capacity: usize) -> Layout {
    let align = if capacity == SIZE { PAGE } else { MIN_CAPACITY };
    // SAFETY: both alignments are powers of two, and a size of at most
    // `SIZE` cannot overflow `isize` when rounded up to them.
    unsafe { Layout::from_size_align_unchecked(capacity.min(SIZE), align) }
}

impl Chunk {
    /// A chunk with no bytes and no buffer.
    pub(crate) const fn empty() -> Self {
        Chunk {
            ptr: NonNull::dangling(),
            len: 0,
            capacity: 0,
        }
    }

    /// A chunk with no bytes yet and a buffer of `capacity` bytes (at most
    /// [`SIZE`]). A whole-size buffer's pages are populated with one
    /// `madvise` rather than a fault per page, which dominates writing
    /// large files otherwise.
    fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(SIZE);
        if capacity == 0 {
            return Chunk::empty();
        }
        let layout = layout(capacity);
        // SAFETY: the layout's size is not zero.
        let Some(ptr) = NonNull::new(unsafe { alloc::alloc(layout) }) else {
            alloc::handle_alloc_error(layout)
        };
        if capacity == SIZE {
            prefault(ptr, capacity);
        }
        Chunk {
            ptr,
            len: 0,
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the buffer are initialised (or
        // `len` is 0 and the pointer is dangling but aligned).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Writes `data` at `at`, zero-filling any gap after the held bytes;
    /// the buffer grows to fit. The caller keeps `at + data.len()` within
    /// [`SIZE`]; anything past it is not written.
    pub(crate) fn write(&mut self, at: usize, data: &[u8]) {
        debug_assert!(at + data.len() <= SIZE, "a write past the chunk");
        let data = data
            .get(..SIZE.saturating_sub(at).min(data.len()))
            .unwrap_or_default();
        if data.is_empty() {
            return;
        }
        let end = at + data.len();
        if end > self.capacity {
            self.reallocate(capacity_for(end));
        }
        // SAFETY: `end <= capacity`, so the gap `[len, at)` and the target
        // `[at, end)` lie inside the buffer, which `data` (borrowed
        // elsewhere) cannot overlap; the gap is zeroed before `len` covers
        // it.
        unsafe {
            let base = self.ptr.as_ptr();
            if at > self.len {
                ptr::write_bytes(base.add(self.len), 0, at - self.len);
            }
            ptr::copy_nonoverlapping(data.as_ptr(), base.add(at), data.len());
        }
        self.len = self.len.max(end);
    }

    /// Keeps only the first `len` bytes, in a buffer sized for them.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            let capacity = if len == 0 { 0 } else { capacity_for(len) };
            if capacity < self.capacity {
                self.reallocate(capacity);
            }
        }
    }

    /// Moves the bytes into a new buffer of `capacity` bytes.
    fn reallocate(&mut self, capacity: usize) {
        let mut moved = Chunk::with_capacity(capacity);
        let keep = self.len.min(moved.capacity);
        // SAFETY: `keep` bytes are initialised in this buffer and fit in the
        // new one; the two allocations are distinct.
        unsafe { ptr::copy_nonoverlapping(self.ptr.as_ptr(), moved.ptr.as_ptr(), keep) };
        moved.len = keep;
        *self = moved;
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if self.capacity > 0 {
            // SAFETY: the buffer was allocated with this layout and is
            // freed once.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout(self.capacity)) }
        }
    }
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk::empty()
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

// Not under Miri, which cannot run `madvise` (and needs no prefaulting).
#[cfg(all(target_os = "linux", not(miri)))]
fn prefault(start: NonNull<u8>, len: usize) {
    // SAFETY: the range is a buffer just allocated and not yet read, and
    // populating its pages changes none of its bytes that count (there are
    // none yet). Failure (an older kernel) only means the faults come
    // later, one page at a time.
    let _ = unsafe {
        rustix::mm::madvise(
            start.as_ptr().cast(),
            len,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn prefault(_start: NonNull<u8>, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_chunks_start_on_a_page() {
        for len in [SIZE / 2 + 1, SIZE - 1, SIZE] {
            let mut chunks: Vec<Chunk> = (0..8).map(|_| Chunk::empty()).collect();
            for chunk in &mut chunks {
                chunk.write(0, &vec![1; len]);
                assert_eq!(chunk.capacity(), SIZE);
                assert_eq!(chunk.bytes().as_ptr() as usize % PAGE, 0, "{len}");
            }
        }
        assert_eq!(footprint(SIZE), SIZE + PAGE);
        assert_eq!(footprint(100), 128);
    }

    #[test]
    fn writes_fill_gaps_with_zeros_and_growth_keeps_the_bytes() {
        let mut chunk = Chunk::empty();
        chunk.write(0, b"abc");
        assert_eq!(chunk.capacity(), MIN_CAPACITY);
        chunk.write(10, b"xyz");
        assert_eq!(chunk.bytes(), b"abc\0\0\0\0\0\0\0xyz");
        chunk.write(1, b"B");
        chunk.write(SIZE - 2, b"en");
        assert_eq!((chunk.len(), chunk.capacity()), (SIZE, SIZE));
        assert_eq!(&chunk.bytes()[..4], b"aBc\0");
        assert_eq!(&chunk.bytes()[10..13], b"xyz");
        assert!(chunk.bytes()[13..SIZE - 2].iter().all(|&b| b == 0));
        assert_eq!(&chunk.bytes()[SIZE - 2..], b"en");
    }

    #[test]
    fn truncating_shrinks_the_buffer() {
        let mut chunk = Chunk::empty();
        chunk.write(0, &[7; SIZE]);
        chunk.truncate(100);
        assert_eq!((chunk.len(), chunk.capacity()), (100, 128));
        assert_eq!(chunk.bytes(), &[7; 100][..]);
        chunk.truncate(0);
        assert_eq!((chunk.len(), chunk.capacity()), (0, 0));
        chunk.truncate(5);
        assert!(chunk.is_empty());
    }
}
