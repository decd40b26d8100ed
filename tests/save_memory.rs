//! What a save holds in memory, measured by a counting allocator (this
//! test binary's only test, so nothing else allocates meanwhile): it must
//! not grow with the sum of path lengths, which a guest makes quadratic for
//! free with a deep chain of directories and many entries at its bottom.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use wasi_common_vfs::Vfs;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_save_holds_memory_in_neither_path_lengths_nor_file_sizes() {
    const DEPTH: usize = 10_000;
    const WIDE: usize = 2_000;
    let vfs = Vfs::new();
    let mut view = vfs.subtree("/").unwrap();
    for _ in 0..DEPTH {
        view.create_dir("d").unwrap();
        view = view.subtree("d").unwrap();
    }
    // At the bottom, 20 KB below the root: many directories waiting to be
    // walked, and many files with a second name.
    for i in 0..WIDE {
        view.create_dir(&format!("s{i}")).unwrap();
        view.write(&format!("f{i}"), b"x").unwrap();
        view.hard_link(&format!("f{i}"), &format!("g{i}")).unwrap();
    }
    drop(view);
    // And one large file, which a save must stream rather than read whole.
    vfs.write("/large.bin", vec![7u8; 32 << 20]).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    vfs.save_tar("/", std::io::sink()).unwrap();
    let held = PEAK.load(Ordering::Relaxed) - before;
    // Full paths for each waiting directory and each first name would be
    // WIDE * 2 * 20 KB = 80 MB; the large file read whole, 32 MiB.
    assert!(held < 8 << 20, "the save held {held} bytes at its peak");
}
