//! The entries of one in-memory directory, with listing cursors that survive
//! changes.
//!
//! Every entry gets a sequence number when it is inserted; a cursor is "the
//! next sequence number to return", so a listing continued from a cursor
//! starts with an O(log n) seek and never repeats or skips entries that stay
//! put. Owns names and order only: inode bookkeeping (`nlink`, times) is the
//! caller's.

use crate::storage::{DirEntry, FileKind, Ino};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    ino: Ino,
    kind: FileKind,
}

#[derive(Debug)]
pub(crate) struct DirData {
    /// The parent directory (the root is its own parent).
    pub(crate) parent: Ino,
    next_seq: u64,
    by_seq: BTreeMap<u64, Slot>,
    by_name: HashMap<Arc<str>, u64>,
}

impl DirData {
    pub(crate) fn new(parent: Ino) -> Self {
        DirData {
            parent,
            next_seq: 0,
            by_seq: BTreeMap::new(),
            by_name: HashMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub(crate) fn get(&self, name: &str) -> Option<(Ino, FileKind)> {
        let seq = self.by_name.get(name)?;
        self.by_seq.get(seq).map(|s| (s.ino, s.kind))
    }

    /// Adds an entry; the caller has checked that `name` is free.
    pub(crate) fn insert(&mut self, name: &str, ino: Ino, kind: FileKind) {
        let name: Arc<str> = Arc::from(name);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_name.insert(name.clone(), seq);
        self.by_seq.insert(seq, Slot { name, ino, kind });
    }

    /// Removes an entry, returning what it named.
    pub(crate) fn remove(&mut self, name: &str) -> Option<(Ino, FileKind)> {
        let seq = self.by_name.remove(name)?;
        self.by_seq.remove(&seq).map(|s| (s.ino, s.kind))
    }

    /// Up to `max` entries whose sequence number is at least `cursor`.
    pub(crate) fn list(&self, cursor: u64, max: usize) -> Vec<DirEntry> {
        self.by_seq
            .range(cursor..)
            .take(max)
            .map(|(&seq, slot)| DirEntry {
                name: slot.name.to_string(),
                ino: slot.ino,
                kind: slot.kind,
                next: seq + 1,
            })
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
