//! The entries of one in-memory directory, with listing cursors that survive
//! changes.
//!
//! Every entry gets a sequence number when it is inserted; a cursor is "the
//! next sequence number to return", so a listing continued from a cursor
//! starts with an O(log n) seek and never repeats or skips entries that stay
//! put. Owns names and order only: inode bookkeeping (`nlink`, times) is the
//! caller's. Laid out for memory, since a directory may hold millions of
//! entries: a name is stored once, and an entry costs about 60 bytes plus
//! its name.

use crate::storage::{DirEntry, FileKind, Ino};
use foldhash::quality::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// One entry, or the tombstone of a removed one until the next compaction.
#[derive(Debug)]
struct Slot {
    seq: u64,
    entry: Option<(Box<str>, Ino, FileKind)>,
}

/// Entries in insertion order (a `Vec` sorted by sequence number, so a
/// cursor is found by binary search) and a hash index of names holding
/// sequence numbers. Names are stored once, in the slots. The hasher is
/// seeded at random per directory, so a guest cannot pick names that
/// collide; it is foldhash rather than SipHash because hashing a name is on
/// every path component's lookup.
#[derive(Debug)]
pub(crate) struct DirData {
    /// The parent directory (the root is its own parent).
    pub(crate) parent: Ino,
    next_seq: u64,
    slots: Vec<Slot>,
    live: usize,
    by_name: HashTable<u64>,
    hasher: RandomState,
}

/// The hash of the name an index entry (a sequence number) stands for,
/// which the index needs when it moves entries to grow or shrink.
fn rehasher<'a>(slots: &'a [Slot], hasher: &'a RandomState) -> impl Fn(&u64) -> u64 + 'a {
    move |&seq| {
        let i = slots
            .binary_search_by_key(&seq, |slot| slot.seq)
            .unwrap_or(0);
        let name = slots
            .get(i)
            .and_then(|slot| slot.entry.as_ref())
            .map_or("", |(n, _, _)| n);
        hasher.hash_one(name)
    }
}

impl DirData {
    pub(crate) fn new(parent: Ino) -> Self {
        DirData {
            parent,
            next_seq: 0,
            slots: Vec::new(),
            live: 0,
            by_name: HashTable::new(),
            hasher: RandomState::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let i = self.slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
        self.slots.get(i)
    }

    fn name_of(&self, seq: u64) -> Option<&str> {
        self.slot(seq)?.entry.as_ref().map(|(n, _, _)| &**n)
    }

    fn seq_of(&self, name: &str) -> Option<u64> {
        let hash = self.hasher.hash_one(name);
        self.by_name
            .find(hash, |&seq| self.name_of(seq) == Some(name))
            .copied()
    }

    pub(crate) fn get(&self, name: &str) -> Option<(Ino, FileKind)> {
        let seq = self.seq_of(name)?;
        self.slot(seq)?
            .entry
            .as_ref()
            .map(|&(_, ino, kind)| (ino, kind))
    }

    /// Adds an entry; the caller has checked that `name` is free.
    pub(crate) fn insert(&mut self, name: &str, ino: Ino, kind: FileKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slots.push(Slot {
            seq,
            entry: Some((name.into(), ino, kind)),
        });
        self.live += 1;
        let hash = self.hasher.hash_one(name);
        self.by_name
            .insert_unique(hash, seq, rehasher(&self.slots, &self.hasher));
    }

    /// Removes an entry, returning what it named.
    pub(crate) fn remove(&mut self, name: &str) -> Option<(Ino, FileKind)> {
        let hash = self.hasher.hash_one(name);
        let (slots, by_name) = (&self.slots, &mut self.by_name);
        let name_of = |seq: u64| {
            let i = slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
            slots.get(i)?.entry.as_ref().map(|(n, _, _)| &**n)
        };
        let (seq, _) = by_name
            .find_entry(hash, |&seq| name_of(seq) == Some(name))
            .ok()?
            .remove();
        let i = self.slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
        let (_, ino, kind) = self.slots.get_mut(i)?.entry.take()?;
        self.live -= 1;
        // Compact once tombstones outnumber entries: amortised O(1) per
        // removal, and cursors (sequence numbers) survive it.
        if self.slots.len() > 2 * self.live + 16 {
            self.slots.retain(|s| s.entry.is_some());
            self.slots.shrink_to(self.slots.len() * 2);
        }
        // The name index never shrinks by itself: a directory filled with a
        // million names and emptied would keep their buckets for good.
        if self.by_name.capacity() > 4 * self.by_name.len() + 64 {
            self.by_name
                .shrink_to(self.by_name.len() * 2, rehasher(&self.slots, &self.hasher));
        }
        Some((ino, kind))
    }

    /// Up to `max` entries whose sequence number is at least `cursor`.
    pub(crate) fn list(&self, cursor: u64, max: usize) -> Vec<DirEntry> {
        let start = self.slots.partition_point(|s| s.seq < cursor);
        self.slots[start..]
            .iter()
            .filter_map(|s| {
                s.entry.as_ref().map(|(name, ino, kind)| DirEntry {
                    name: name.to_string(),
                    ino: *ino,
                    kind: *kind,
                    next: s.seq + 1,
                })
            })
            .take(max)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[DirEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn cursor_survives_removal_and_insertion() {
        let mut dir = DirData::new(1);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            dir.insert(name, 10 + i as u64, FileKind::File);
        }
        let first = dir.list(0, 2);
        assert_eq!(names(&first), ["a", "b"]);
        let cursor = first[1].next;
        dir.remove("a");
        dir.remove("c");
        dir.insert("e", 20, FileKind::Dir);
        let rest = dir.list(cursor, 10);
        assert_eq!(names(&rest), ["d", "e"]);
        assert_eq!(rest[1].kind, FileKind::Dir);
        assert!(dir.list(rest[1].next, 10).is_empty());
    }

    #[test]
    fn compaction_keeps_cursors_and_names() {
        let mut dir = DirData::new(1);
        for i in 0..1000u64 {
            dir.insert(&format!("e{i}"), i + 10, FileKind::File);
        }
        let page = dir.list(0, 500);
        for i in 0..990u64 {
            assert_eq!(dir.remove(&format!("e{i}")), Some((i + 10, FileKind::File)));
        }
        assert!(dir.slots.len() < 100, "tombstones were compacted");
        let rest = dir.list(page[499].next, 100);
        assert_eq!(
            names(&rest),
            (990..1000).map(|i| format!("e{i}")).collect::<Vec<_>>()
        );
        assert_eq!(dir.get("e995"), Some((1005, FileKind::File)));
        assert_eq!(dir.get("e5"), None);
        assert!(!dir.is_empty());
    }

    #[test]
    fn emptied_directories_give_their_index_back() {
        let mut dir = DirData::new(1);
        for round in 0..3 {
            for i in 0..100_000u64 {
                dir.insert(&format!("n{i}"), i + 10, FileKind::File);
            }
            assert!(dir.by_name.capacity() >= 100_000, "round {round}");
            for i in 0..100_000u64 {
                assert!(dir.remove(&format!("n{i}")).is_some());
            }
            assert!(dir.is_empty());
            assert!(dir.by_name.capacity() < 256, "{}", dir.by_name.capacity());
            assert!(dir.slots.capacity() < 256, "{}", dir.slots.capacity());
        }
        // Half emptied, the rest is still found.
        for i in 0..1000u64 {
            dir.insert(&format!("m{i}"), i, FileKind::File);
        }
        for i in 0..900u64 {
            dir.remove(&format!("m{i}"));
        }
        assert!(dir.by_name.capacity() < 1000);
        assert!((900..1000).all(|i| dir.get(&format!("m{i}")) == Some((i, FileKind::File))));
    }

    #[test]
    fn reinserted_name_moves_to_the_end() {
        let mut dir = DirData::new(1);
        dir.insert("x", 2, FileKind::File);
        dir.insert("y", 3, FileKind::File);
        assert_eq!(dir.remove("x"), Some((2, FileKind::File)));
        dir.insert("x", 4, FileKind::File);
        assert_eq!(names(&dir.list(0, 10)), ["y", "x"]);
        assert_eq!(dir.get("x"), Some((4, FileKind::File)));
    }
}
