//! The inode table of `MemFs`: inode numbers to inodes.
//!
//! Sharded, so that threads working on different files do not contend on
//! one lock word; hashed with a plain multiplicative hash, since inode
//! numbers are assigned by the store (a guest cannot pick them to collide).
//! Charges the budget for each shard's capacity before it grows, and gives
//! it back as shards shrink; an emptied shard holds nothing.

use crate::error::Result;
use crate::storage::budget::{Budget, grow_table, heap_cost};
use hashbrown::HashMap;
use parking_lot::RwLock;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

const SHARDS: usize = 64;

/// Hashes a `u64` key by one multiplication (Fibonacci hashing).
#[derive(Default)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One shard, alone on its cache lines: consecutive inode numbers live in
/// neighbouring shards, and threads on two new files would otherwise
/// contend on one line through their lock words.
#[repr(align(128))]
struct Shard<T>(RwLock<HashMap<u64, Arc<T>, BuildHasherDefault<IntHasher>>>);

impl<T> std::ops::Deref for Shard<T> {
    type Target = RwLock<HashMap<u64, Arc<T>, BuildHasherDefault<IntHasher>>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A map from inode numbers to shared inodes.
pub(crate) struct Table<T> {
    shards: Box<[Shard<T>]>,
}

impl<T> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            shards: (0..SHARDS)
                .map(|_| Shard(RwLock::new(HashMap::default())))
                .collect(),
        }
    }

    fn shard(&self, ino: u64) -> &Shard<T> {
        // In range: the modulus is the slice's length.
        &self.shards[(ino % SHARDS as u64) as usize]
    }

    pub(crate) fn get(&self, ino: u64) -> Option<Arc<T>> {
        self.shard(ino).read().get(&ino).cloned()
    }

    /// Adds an inode, charging `budget` first for any growth of the
    /// shard; on `ENOSPC` nothing was added.
    pub(crate) fn insert(&self, ino: u64, value: Arc<T>, budget: Option<&Budget>) -> Result<()> {
        let mut map = self.shard(ino).write();
        if map.len() == map.capacity() {
            let held = map.allocation_size();
            grow_table(budget, size_of::<(u64, Arc<T>)>(), held, || {
                map.reserve(1);
                map.allocation_size()
            })?;
        }
        map.insert(ino, value);
        Ok(())
    }

    /// Removes an inode, giving `budget` back what the shard shrank by.
    pub(crate) fn remove(&self, ino: u64, budget: Option<&Budget>) {
        let mut map = self.shard(ino).write();
        if map.remove(&ino).is_none() {
            return;
        }
        let before = map.allocation_size();
        if map.is_empty() {
            *map = HashMap::default();
        } else if map.capacity() > 4 * map.len() + 16 {
            let len = map.len();
            map.shrink_to(len * 2);
        }
        if let Some(b) = budget {
            b.refund_bytes(heap_cost(before) - heap_cost(map.allocation_size()));
        }
    }

    /// Bytes the shards hold.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| heap_cost(s.read().allocation_size()))
            .sum()
    }

    /// Every inode number held, for consistency checks.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<u64> {
        self.shards
            .iter()
            .flat_map(|s| s.read().keys().copied().collect::<Vec<_>>())
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}
