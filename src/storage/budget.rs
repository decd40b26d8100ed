//! `Budget`: the byte and inode limits shared by the in-memory stores of one
//! tree, charged where memory is allocated.
//!
//! A store charges before it allocates and refunds when it frees, so a
//! refused operation has allocated nothing. Bytes count file data actually
//! held (holes excluded), symlink targets, names, and a fixed cost per inode
//! and per directory entry, so that creating millions of empty files or very
//! long names runs into the limit too.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes charged for every inode, whatever it holds (its metadata).
pub const INODE_COST: u64 = 128;

/// Bytes charged for every directory entry, besides its name.
pub const ENTRY_COST: u64 = 64;

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

    /// Takes one inode and its `INODE_COST` bytes, or fails with `ENOSPC`
    /// taking nothing.
    pub fn charge_inode(&self) -> Result<()> {
        charge(&self.inodes, self.max_inodes, 1)?;
        self.charge_bytes(INODE_COST)
            .inspect_err(|_| refund(&self.inodes, 1))
    }

    /// Gives back one inode and its bytes.
    pub fn refund_inode(&self) {
        refund(&self.inodes, 1);
        self.refund_bytes(INODE_COST);
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
            matches!(b.charge_inode(), Err(Error::NoSpace)),
            "the inode's bytes do not fit"
        );
        assert_eq!(b.inodes_used(), 0);
        b.refund_bytes(900);
        b.charge_inode().unwrap();
        b.charge_inode().unwrap();
        assert!(matches!(b.charge_inode(), Err(Error::NoSpace)));
        b.refund_inode();
        b.charge_inode().unwrap();
        assert!(matches!(b.charge_bytes(u64::MAX), Err(Error::NoSpace)));
    }
}
