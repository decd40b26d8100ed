//! What a merged directory keeps so that each listing call costs what it
//! costs on a memory mount, O(log n + entries returned), however many of
//! its entries were copied up or deleted.
//!
//! A merged listing shows first the names only the upper layer has, then
//! the lower entries in the lower store's order (as the merged nodes they
//! are now). [`UpperOnly`] keeps the first set in the order the names were
//! added, so that phase never passes over a copied-up entry; [`LowerView`]
//! is a snapshot of the lower listing with the deleted entries marked, so
//! the second phase never passes over a whiteout. Both are overlay records
//! charged to the upper layer's budget. This module holds names and
//! positions only: it never reads either layer, and whether a name is
//! upper-only or hidden is the overlay's to say.

use super::Reserved;
use crate::error::Result;
use crate::storage::budget::heap_cost;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What one entry of a `BTreeMap` or `BTreeSet` holds, with its node's
/// bookkeeping and nodes two thirds full.
const TREE_SLOT: u64 = 16;

/// The names of a merged directory that only its upper layer has (created
/// through the overlay, or standing where the lower entry is deleted), in
/// the order they became so. Positions are never reused, so a cursor stays
/// valid while names come and go.
#[derive(Default)]
pub(super) struct UpperOnly {
    next: u64,
    by_position: BTreeMap<u64, Arc<str>>,
    by_name: HashMap<Arc<str>, u64>,
    /// What the names hold on the heap.
    name_bytes: u64,
}

impl UpperOnly {
    /// Records whether `name` is upper-only now: a name that becomes so
    /// goes to the end of the order, one that stops being so leaves it.
    pub(super) fn set(&mut self, name: &str, upper_only: bool) {
        match (self.by_name.get(name).copied(), upper_only) {
            (None, true) => {
                let shared: Arc<str> = Arc::from(name);
                self.by_position.insert(self.next, shared.clone());
                self.by_name.insert(shared, self.next);
                self.next += 1;
                self.name_bytes += name_cost(name);
            }
            (Some(position), false) => {
                self.by_position.remove(&position);
                self.by_name.remove(name);
                self.name_bytes -= name_cost(name);
            }
            _ => {}
        }
    }

    /// Up to `max` names at `from` or later, each with its position.
    pub(super) fn from(&self, from: u64, max: usize) -> Vec<(u64, String)> {
        self.by_position
            .range(from..)
            .take(max)
            .map(|(&position, name)| (position, name.to_string()))
            .collect()
    }

    /// Bytes the host's allocator holds for this record.
    pub(super) fn cost(&self) -> u64 {
        let slot = size_of::<(Arc<str>, u64)>() + 1;
        self.name_bytes
            + heap_cost(self.by_name.capacity() * slot)
            + self.by_position.len() as u64 * TREE_SLOT
    }
}

/// A snapshot of a lower directory's listing, entry by entry in the lower
/// store's order, with the entries deleted through the overlay hidden. A
/// position is the entry's number in that order, so skipping any number of
/// hidden entries is one ordered-set lookup. The lower layer is read-only
/// through the overlay; changes made to it behind the overlay's back (as
/// with Linux overlayfs, whose behaviour is then undefined) are not seen.
pub(super) struct LowerView {
    names: Vec<Arc<str>>,
    position: HashMap<Arc<str>, u32>,
    shown: BTreeSet<u32>,
    /// What the snapshot holds of the budget, given back when it goes.
    _charge: Reserved,
}

impl LowerView {
    /// What one entry named `name` costs in a snapshot: charged for each
    /// entry before it is taken in.
    pub(super) fn entry_cost(name: &str) -> u64 {
        let slot = (size_of::<(Arc<str>, u32)>() + 1) * 2;
        name_cost(name) + (size_of::<Arc<str>>() + slot) as u64 + TREE_SLOT
    }

    /// The snapshot of the lower listing `names` (every entry, in order),
    /// with the entries `hidden` says hidden, holding `charge` (what
    /// [`entry_cost`](Self::entry_cost) gave for each). `None` for a
    /// directory too large to number its entries with 32 bits.
    pub(super) fn new(
        names: Vec<String>,
        hidden: impl Fn(&str) -> bool,
        charge: Reserved,
    ) -> Option<Self> {
        let count = u32::try_from(names.len()).ok()?;
        let names: Vec<Arc<str>> = names.into_iter().map(Arc::from).collect();
        let position: HashMap<Arc<str>, u32> = names.iter().cloned().zip(0..count).collect();
        let shown = (0..count)
            .zip(&names)
            .filter(|(_, name)| !hidden(name))
            .map(|(at, _)| at)
            .collect();
        Some(LowerView {
            names,
            position,
            shown,
            _charge: charge,
        })
    }

    /// Hides or shows the lower entry `name` (nothing if the snapshot does
    /// not have it).
    pub(super) fn set_hidden(&mut self, name: &str, hidden: bool) {
        if let Some(&at) = self.position.get(name) {
            if hidden {
                self.shown.remove(&at);
            } else {
                self.shown.insert(at);
            }
        }
    }

    /// Up to `max` shown entries at position `from` or later, each with
    /// its position.
    pub(super) fn from(&self, from: u64, max: usize) -> Vec<(u64, String)> {
        let from = u32::try_from(from).unwrap_or(u32::MAX);
        self.shown
            .range(from..)
            .take(max)
            .filter_map(|&at| {
                let name = self.names.get(at as usize)?;
                Some((u64::from(at), name.to_string()))
            })
            .collect()
    }
}

/// What a shared name costs: its allocation behind the reference counts.
fn name_cost(name: &str) -> u64 {
    heap_cost(name.len() + 16)
}

/// Takes what a snapshot of the names `batch` costs from `charge`; fails
/// with `ENOSPC`, taking nothing more, when the budget cannot hold it.
pub(super) fn charge_entries(charge: &mut Reserved, batch: &[String]) -> Result<()> {
    charge.grow(batch.iter().map(|n| LowerView::entry_cost(n)).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_only_names_keep_their_positions() {
        let mut names = UpperOnly::default();
        for n in ["a", "b", "c"] {
            names.set(n, true);
        }
        names.set("b", false);
        names.set("a", true); // already there: keeps its place
        names.set("d", true);
        let all = names.from(0, 10);
        assert_eq!(all, vec![(0, "a".into()), (2, "c".into()), (3, "d".into())]);
        // A cursor past "a" continues with "c", whatever was removed.
        assert_eq!(names.from(1, 1), vec![(2, "c".to_string())]);
        names.set("b", true);
        assert_eq!(names.from(4, 10), vec![(4, "b".to_string())]);
    }

    #[test]
    fn upper_only_cost_follows_its_names() {
        let mut names = UpperOnly::default();
        let empty = names.cost();
        for i in 0..100 {
            names.set(&format!("{i:0>200}"), true);
        }
        assert!(names.cost() >= empty + 100 * 200);
        for i in 0..100 {
            names.set(&format!("{i:0>200}"), false);
        }
        assert_eq!(names.name_bytes, 0);
    }

    #[test]
    fn a_view_skips_hidden_entries_in_one_step() {
        let names: Vec<String> = (0..1000).map(|i| format!("f{i}")).collect();
        let charge = Reserved::take(None, 0).unwrap();
        let mut view = LowerView::new(names, |n| n != "f999" && n != "f0", charge).unwrap();
        assert_eq!(
            view.from(0, 5),
            vec![(0, "f0".into()), (999, "f999".into())]
        );
        assert_eq!(view.from(1, 5), vec![(999, "f999".to_string())]);
        view.set_hidden("f500", false);
        view.set_hidden("f0", true);
        view.set_hidden("nonexistent", false);
        assert_eq!(view.from(0, 1), vec![(500, "f500".to_string())]);
        assert!(view.from(1000, 5).is_empty());
        assert!(view.from(u64::MAX, 5).is_empty());
    }
}
