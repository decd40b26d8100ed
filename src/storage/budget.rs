//! `Budget`: the byte and inode limits shared by the in-memory stores of one
//! tree, charged where memory is allocated.
//!
//! A store charges before it allocates and refunds when it frees, so a
//! refused operation has allocated nothing. Bytes count what the host's
//! allocator holds for the store: file data (holes excluded), symlink
//! targets, names, each inode's record, and the capacity of every index
//! (directories' and the inode table's), so that millions of empty files,
//! very long names or a directory filled and emptied run into the limit
//! or give their memory back.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes the host's allocator holds for one allocation of `bytes`: the
/// request and a word of bookkeeping, in 16-byte steps, 32 at least (as
/// glibc's `malloc` does; other allocators are close to it). A store charges
/// this rather than the bare size, so that small allocations, which are
/// most of a tree of empty files, are not undercounted.
pub const fn heap_cost(bytes: usize) -> u64 {
    if bytes == 0 {
        return 0;
    }
    let held = bytes.saturating_add(8 + 15) & !15;
    if held < 32 { 32 } else { held as u64 }
}

/// Takes `n` bytes from `budget`, if there is one.
pub(crate) fn charge_to(budget: Option<&Budget>, n: u64) -> Result<()> {
    budget.map_or(Ok(()), |b| b.charge_bytes(n))
}

/// Gives `n` bytes back to `budget`, if there is one.
pub(crate) fn refund_to(budget: Option<&Budget>, n: u64) {
    if let Some(b) = budget {
        b.refund_bytes(n);
    }
}

/// Settles a charge of `estimate` for a growth that turned out to take
/// `actual`.
pub(crate) fn settle(budget: Option<&Budget>, estimate: u64, actual: u64) {
    if let Some(b) = budget {
        if actual > estimate {
            b.force_bytes(actual - estimate);
        } else {
            b.refund_bytes(estimate - actual);
        }
    }
}

/// Grows a hash table holding `held` bytes (its allocation size) by room
/// for one more entry of `entry` bytes, with `grow`, which returns the new
/// allocation size. Growing at most doubles the buckets; from nothing it
/// makes four buckets of an entry and a control byte each, and a group of
/// control bytes. That much is charged before `grow` allocates, and the
/// difference to what it took is settled after.
pub(crate) fn grow_table(
    budget: Option<&Budget>,
    entry: usize,
    held: usize,
    grow: impl FnOnce() -> usize,
) -> Result<()> {
    let bound = if held == 0 {
        4 * (entry + 1) + 16
    } else {
        2 * held
    };
    let estimate = heap_cost(bound) - heap_cost(held);
    charge_to(budget, estimate)?;
    let actual = heap_cost(grow()) - heap_cost(held);
    settle(budget, estimate, actual);
    Ok(())
}

/// Usage and limits of one tree's in-memory stores.
#[derive(Debug)]
pub struct Budget {
    bytes: AtomicU64,
    inodes: AtomicU64,
    max_bytes: u64,
    max_inodes: u64,
}

fn charge(counter: &AtomicU64, max: u64, n: u64) -> Result<()> {
    // Nothing to take (an overwrite in place): no write to the counter's
    // cache line, which every thread of every guest shares.
    if n == 0 {
        return Ok(());
    }
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(n).filter(|&total| total <= max)
        })
        .map(drop)
        .map_err(|_| Error::NoSpace)
}

fn refund(counter: &AtomicU64, n: u64) {
    if n == 0 {
        return;
    }
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
        Some(used.saturating_sub(n))
    });
}

impl Budget {
    /// A budget of at most `max_bytes` bytes and `max_inodes` inodes.
    pub fn new(max_bytes: u64, max_inodes: u64) -> Self {
        Budget {
            bytes: AtomicU64::new(0),
            inodes: AtomicU64::new(0),
            max_bytes,
            max_inodes,
        }
    }

    /// Takes `n` bytes, or fails with `ENOSPC` taking nothing.
    pub fn charge_bytes(&self, n: u64) -> Result<()> {
        charge(&self.bytes, self.max_bytes, n)
    }

    /// Gives back `n` bytes.
    pub fn refund_bytes(&self, n: u64) {
        refund(&self.bytes, n)
    }

    /// Takes bytes that were allocated without asking first: what an index
    /// allocated beyond the estimate charged for it. May pass the limit.
    pub(crate) fn force_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::AcqRel);
    }

    /// Takes one inode and the `bytes` its record holds, or fails with
    /// `ENOSPC` taking nothing.
    pub fn charge_inode(&self, bytes: u64) -> Result<()> {
        charge(&self.inodes, self.max_inodes, 1)?;
        self.charge_bytes(bytes)
            .inspect_err(|_| refund(&self.inodes, 1))
    }

    /// Gives back one inode and the `bytes` its record held.
    pub fn refund_inode(&self, bytes: u64) {
        refund(&self.inodes, 1);
        self.refund_bytes(bytes);
    }

    /// Bytes in use.
    pub fn bytes_used(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Inodes in use.
    pub fn inodes_used(&self) -> u64 {
        self.inodes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_takes_nothing_and_refunds_make_room() {
        let b = Budget::new(1000, 2);
        b.charge_bytes(900).unwrap();
        assert!(matches!(b.charge_bytes(101), Err(Error::NoSpace)));
        assert_eq!(b.bytes_used(), 900);
        assert!(
            matches!(b.charge_inode(128), Err(Error::NoSpace)),
            "the inode's bytes do not fit"
        );
        assert_eq!(b.inodes_used(), 0);
        b.refund_bytes(900);
        b.charge_inode(128).unwrap();
        b.charge_inode(128).unwrap();
        assert!(matches!(b.charge_inode(128), Err(Error::NoSpace)));
        b.refund_inode(128);
        b.charge_inode(128).unwrap();
        assert!(matches!(b.charge_bytes(u64::MAX), Err(Error::NoSpace)));
    }

    #[test]
    fn heap_cost_rounds_like_the_allocator() {
        assert_eq!(heap_cost(0), 0);
        assert_eq!(heap_cost(1), 32);
        assert_eq!(heap_cost(24), 32);
        assert_eq!(heap_cost(25), 48);
        assert_eq!(heap_cost(4096), 4112);
        assert!(heap_cost(usize::MAX) > 1 << 60, "no overflow");
    }
}
