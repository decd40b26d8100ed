//! The entries of one in-memory directory, with listing cursors that survive
//! changes.
//!
//! Every entry gets a sequence number when it is inserted; a cursor is "the
//! next sequence number to return", so a listing continued from a cursor
//! starts with an O(log n) seek and never repeats or skips entries that stay
//! put. Owns names and order only: inode bookkeeping (`nlink`, times) is the
//! caller's. Laid out for memory, since a directory may hold millions of
//! entries: a name is stored once, and an entry costs about 60 bytes plus
//! its name. Charges the budget for what it allocates (names, and its two
//! containers by capacity) and gives it back as they shrink; an emptied
//! directory holds nothing.

use crate::error::Result;
use crate::storage::budget::{
    Budget, charge_to as charge, grow_table, heap_cost, refund_to as refund, settle,
};
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

/// Bytes a new entry named `name` holds besides its share of the
/// containers: its name.
pub(crate) fn name_cost(name: &str) -> u64 {
    heap_cost(name.len())
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

    /// Bytes the two containers hold (names are charged apart).
    pub(crate) fn held_bytes(&self) -> u64 {
        heap_cost(self.slots.capacity() * size_of::<Slot>())
            + heap_cost(self.by_name.allocation_size())
    }

    /// Makes room for one more entry, charging `budget` for what that
    /// allocates before allocating it; on `ENOSPC` nothing changed that
    /// is not charged.
    pub(crate) fn reserve(&mut self, budget: Option<&Budget>) -> Result<()> {
        if self.slots.len() == self.slots.capacity() {
            let cap = self.slots.capacity();
            let grown = (cap * 2).max(4);
            let slot = size_of::<Slot>();
            let estimate = heap_cost(grown * slot) - heap_cost(cap * slot);
            charge(budget, estimate)?;
            self.slots.reserve_exact(grown - self.slots.len());
            let actual = heap_cost(self.slots.capacity() * slot) - heap_cost(cap * slot);
            settle(budget, estimate, actual);
        }
        if self.by_name.len() == self.by_name.capacity() {
            let held = self.by_name.allocation_size();
            grow_table(budget, size_of::<u64>(), held, || {
                self.by_name.reserve(1, rehasher(&self.slots, &self.hasher));
                self.by_name.allocation_size()
            })?;
        }
        Ok(())
    }

    /// Adds an entry, charging `budget` for it first; the caller has
    /// checked that `name` is free. On `ENOSPC` the entry is not there.
    pub(crate) fn insert(
        &mut self,
        name: &str,
        ino: Ino,
        kind: FileKind,
        budget: Option<&Budget>,
    ) -> Result<()> {
        self.reserve(budget)?;
        charge(budget, name_cost(name))?;
        self.insert_paid(name, ino, kind, budget);
        Ok(())
    }

    /// Charges `budget` for an entry named `name` to be added later with
    /// [`insert_paid`](Self::insert_paid), and makes room for it, so that
    /// a change of several steps can fail before its first.
    pub(crate) fn prepay(&mut self, name: &str, budget: Option<&Budget>) -> Result<()> {
        self.reserve(budget)?;
        charge(budget, name_cost(name))
    }

    /// Adds an entry paid for with [`prepay`](Self::prepay). Room taken
    /// away meanwhile (by a removal that shrank the containers) is charged
    /// as it is allocated.
    pub(crate) fn insert_paid(
        &mut self,
        name: &str,
        ino: Ino,
        kind: FileKind,
        budget: Option<&Budget>,
    ) {
        let before = self.held_bytes();
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
        let grew = self.held_bytes().saturating_sub(before);
        if let (Some(b), true) = (budget, grew > 0) {
            b.force_bytes(grew);
        }
    }

    /// Removes an entry, returning what it named, and gives `budget` back
    /// its name and what the containers shrank by.
    pub(crate) fn remove(
        &mut self,
        name: &str,
        budget: Option<&Budget>,
    ) -> Option<(Ino, FileKind)> {
        let before = self.held_bytes();
        let removed = self.remove_entry(name)?;
        refund(
            budget,
            name_cost(name) + before.saturating_sub(self.held_bytes()),
        );
        Some(removed)
    }

    fn remove_entry(&mut self, name: &str) -> Option<(Ino, FileKind)> {
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
        if self.live == 0 {
            // Emptied: hold nothing. Cursors live on in `next_seq`.
            self.slots = Vec::new();
            self.by_name = HashTable::new();
            return Some((ino, kind));
        }
        // Compact once tombstones outnumber entries: amortised O(1) per
        // removal, and cursors (sequence numbers) survive it.
        if self.slots.len() > 2 * self.live + 16 {
            self.slots.retain(|s| s.entry.is_some());
            self.slots.shrink_to(self.slots.len() * 2);
        }
        // The name index never shrinks by itself: a directory filled with a
        // million names and mostly emptied would keep their buckets.
        if self.by_name.capacity() > 4 * self.by_name.len() + 64 {
            self.by_name
                .shrink_to(self.by_name.len() * 2, rehasher(&self.slots, &self.hasher));
        }
        Some((ino, kind))
    }

    /// Renames entry `from` to `to` in place, replacing any entry `to`: the
    /// entry keeps its place in listings, and no slot is added, so a full
    /// budget never refuses it. The caller has checked both names, and has
    /// charged what `to` costs beyond `from`; the rest is settled here.
    pub(crate) fn rename_within(&mut self, from: &str, to: &str, budget: Option<&Budget>) {
        if self.get(to).is_some() {
            self.remove(to, budget);
        }
        let Some(seq) = self.seq_of(from) else {
            return;
        };
        let before = self.held_bytes();
        let hash = self.hasher.hash_one(from);
        let (slots, by_name) = (&self.slots, &mut self.by_name);
        let found = by_name.find_entry(hash, |&s| {
            let i = slots.binary_search_by_key(&s, |slot| slot.seq).ok();
            let slot = i.and_then(|i| slots.get(i));
            slot.and_then(|slot| slot.entry.as_ref())
                .is_some_and(|(n, _, _)| &**n == from)
        });
        if let Ok(entry) = found {
            entry.remove();
        }
        if let Ok(i) = self.slots.binary_search_by_key(&seq, |s| s.seq)
            && let Some((name, _, _)) = self.slots.get_mut(i).and_then(|s| s.entry.as_mut())
        {
            *name = to.into();
        }
        let hash = self.hasher.hash_one(to);
        self.by_name
            .insert_unique(hash, seq, rehasher(&self.slots, &self.hasher));
        if let Some(b) = budget {
            let (new_name, old_name) = (name_cost(to), name_cost(from));
            b.refund_bytes(old_name.saturating_sub(new_name));
            // Reinserting after a removal may rehash the index; rare, and
            // what it allocates is held, so it is counted.
            b.force_bytes(self.held_bytes().saturating_sub(before));
        }
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
            dir.insert(name, 10 + i as u64, FileKind::File, None)
                .unwrap();
        }
        let first = dir.list(0, 2);
        assert_eq!(names(&first), ["a", "b"]);
        let cursor = first[1].next;
        dir.remove("a", None);
        dir.remove("c", None);
        dir.insert("e", 20, FileKind::Dir, None).unwrap();
        let rest = dir.list(cursor, 10);
        assert_eq!(names(&rest), ["d", "e"]);
        assert_eq!(rest[1].kind, FileKind::Dir);
        assert!(dir.list(rest[1].next, 10).is_empty());
    }

    #[test]
    fn compaction_keeps_cursors_and_names() {
        let mut dir = DirData::new(1);
        for i in 0..1000u64 {
            dir.insert(&format!("e{i}"), i + 10, FileKind::File, None)
                .unwrap();
        }
        let page = dir.list(0, 500);
        for i in 0..990u64 {
            assert_eq!(
                dir.remove(&format!("e{i}"), None),
                Some((i + 10, FileKind::File))
            );
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
                dir.insert(&format!("n{i}"), i + 10, FileKind::File, None)
                    .unwrap();
            }
            assert!(dir.by_name.capacity() >= 100_000, "round {round}");
            for i in 0..100_000u64 {
                assert!(dir.remove(&format!("n{i}"), None).is_some());
            }
            assert!(dir.is_empty());
            assert!(dir.by_name.capacity() < 256, "{}", dir.by_name.capacity());
            assert!(dir.slots.capacity() < 256, "{}", dir.slots.capacity());
        }
        // Half emptied, the rest is still found.
        for i in 0..1000u64 {
            dir.insert(&format!("m{i}"), i, FileKind::File, None)
                .unwrap();
        }
        for i in 0..900u64 {
            dir.remove(&format!("m{i}"), None);
        }
        assert!(dir.by_name.capacity() < 1000);
        assert!((900..1000).all(|i| dir.get(&format!("m{i}")) == Some((i, FileKind::File))));
    }

    /// What a directory holds is what it charged: names and container
    /// capacity, given back as it shrinks and all of it once emptied.
    #[test]
    fn charges_follow_names_and_capacity() {
        let budget = Budget::new(u64::MAX, u64::MAX);
        let mut dir = DirData::new(1);
        let names: u64 = (0..50_000u64)
            .map(|i| heap_cost(format!("n{i}").len()))
            .sum();
        for i in 0..50_000u64 {
            dir.insert(&format!("n{i}"), i, FileKind::File, Some(&budget))
                .unwrap();
        }
        assert!(dir.held_bytes() > 50_000 * 40, "{}", dir.held_bytes());
        assert_eq!(budget.bytes_used(), names + dir.held_bytes());
        for i in 0..49_000u64 {
            dir.remove(&format!("n{i}"), Some(&budget)).unwrap();
        }
        assert!(
            dir.held_bytes() < 50_000 * 10,
            "shrank: {}",
            dir.held_bytes()
        );
        let left: u64 = (49_000..50_000u64)
            .map(|i| heap_cost(format!("n{i}").len()))
            .sum();
        assert_eq!(budget.bytes_used(), left + dir.held_bytes());
        for i in 49_000..50_000u64 {
            dir.remove(&format!("n{i}"), Some(&budget)).unwrap();
        }
        assert_eq!((dir.held_bytes(), budget.bytes_used()), (0, 0));
    }

    /// A refused insert adds no entry; what it reserved is held and
    /// charged.
    #[test]
    fn a_refused_insert_adds_nothing() {
        let budget = Budget::new(2048, u64::MAX);
        let mut dir = DirData::new(1);
        let mut i = 0u64;
        while dir
            .insert(&format!("{i:0>100}"), i, FileKind::File, Some(&budget))
            .is_ok()
        {
            i += 1;
        }
        assert!(dir.get(&format!("{i:0>100}")).is_none());
        assert_eq!(dir.list(0, 1000).len() as u64, i);
        let names = i * heap_cost(100);
        assert_eq!(budget.bytes_used(), names + dir.held_bytes());
    }

    #[test]
    fn reinserted_name_moves_to_the_end() {
        let mut dir = DirData::new(1);
        dir.insert("x", 2, FileKind::File, None).unwrap();
        dir.insert("y", 3, FileKind::File, None).unwrap();
        assert_eq!(dir.remove("x", None), Some((2, FileKind::File)));
        dir.insert("x", 4, FileKind::File, None).unwrap();
        assert_eq!(names(&dir.list(0, 10)), ["y", "x"]);
        assert_eq!(dir.get("x"), Some((4, FileKind::File)));
    }
}
