//! Numbers of the overlay's own for its upper layer's wide listing
//! cursors ([`WIDE_CURSORS`]), such as a host directory's cookies.
//!
//! The lower layer's wide cursors pass through the overlay unchanged, so
//! an upper layer's cannot: each one handed out gets a small number,
//! remembered for the directory it was taken in. The table is bounded; an
//! upper layer with small cursors of its own never fills it. This module
//! holds numbers only: it never reads either layer.
//!
//! [`WIDE_CURSORS`]: crate::storage::WIDE_CURSORS

use crate::error::{Error, Result};
use crate::storage::Ino;
use std::collections::{HashMap, VecDeque};

/// Wide cursors remembered, at most; one costs about 40 bytes. Past this,
/// the directory holding the most gives up its older half, so a listing
/// paused in one directory keeps its place however long another runs.
pub(super) const KEPT: usize = 1 << 16;

/// Numbers are handed out below this, and wrap round to 1.
const NUMBERS: u64 = 1 << 59;

/// The wide cursors behind the numbers handed out, by directory.
#[derive(Default)]
pub(super) struct UpperCursors {
    /// Numbers handed out so far.
    issued: u64,
    /// The directory and wide cursor behind each number.
    by_number: HashMap<u64, (Ino, u64)>,
    /// Each directory's numbers, oldest first.
    by_dir: HashMap<Ino, VecDeque<u64>>,
}

impl UpperCursors {
    /// A new number, below 2^59 and never 0, for the wide cursor `wide`
    /// of directory `dir`.
    pub(super) fn number(&mut self, dir: Ino, wide: u64) -> u64 {
        self.issued += 1;
        let number = 1 + (self.issued - 1) % (NUMBERS - 1);
        self.by_number.insert(number, (dir, wide));
        self.by_dir.entry(dir).or_default().push_back(number);
        if self.by_number.len() > KEPT {
            self.trim();
        }
        number
    }

    /// The wide cursor behind `number` in `dir`: `None` for one never
    /// handed out (past the end), `EINVAL` for another directory's or one
    /// given up to make room.
    pub(super) fn cursor(&self, dir: Ino, number: u64) -> Result<Option<u64>> {
        match self.by_number.get(&number) {
            Some(&(of, wide)) if of == dir => Ok(Some(wide)),
            Some(_) => Err(Error::Invalid),
            None if self.issued < NUMBERS - 1 && number > self.issued => Ok(None),
            None => Err(Error::Invalid),
        }
    }

    /// Drops the numbers of `dir`, which is gone.
    pub(super) fn forget(&mut self, dir: Ino) {
        for number in self.by_dir.remove(&dir).unwrap_or_default() {
            self.by_number.remove(&number);
        }
    }

    /// Makes room: the directories holding the most numbers, the largest
    /// first, give up their older half. A listing goes on from its newest
    /// numbers, so neither the longest listing nor one paused beside it
    /// loses its place. Each call frees at least an eighth of what is
    /// kept, so its scan of the directories is paid for by the numbers
    /// handed out since the last, however many directories hold a few.
    fn trim(&mut self) {
        let UpperCursors {
            by_number, by_dir, ..
        } = self;
        let mut largest: Vec<(usize, Ino)> = by_dir.iter().map(|(d, q)| (q.len(), *d)).collect();
        largest.sort_unstable_by(|a, b| b.cmp(a));
        let mut freed = 0;
        for (len, dir) in largest {
            if freed >= KEPT / 8 {
                break;
            }
            let older = (len / 2).max(1);
            if let Some(queue) = by_dir.get_mut(&dir) {
                for number in queue.drain(..older) {
                    by_number.remove(&number);
                }
                if queue.is_empty() {
                    by_dir.remove(&dir);
                }
            }
            freed += older;
        }
    }

    /// How many wide cursors are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_number.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::WIDE_CURSORS;

    #[test]
    fn numbers_stand_for_wide_cursors_and_unknown_ones_end_the_listing() {
        let (d, e) = (10, 20);
        let mut table = UpperCursors::default();
        let (far, near) = (u64::MAX - 5, WIDE_CURSORS | 3);
        let a = table.number(d, far);
        let b = table.number(d, near);
        assert!(a < NUMBERS && b < NUMBERS && a != 0 && b != 0);
        assert_eq!(table.cursor(d, a).unwrap(), Some(far));
        assert_eq!(table.cursor(d, b).unwrap(), Some(near));
        assert!(
            matches!(table.cursor(e, b), Err(Error::Invalid)),
            "another directory's"
        );
        assert_eq!(table.cursor(d, 1000).unwrap(), None, "never handed out");
        for i in 0..KEPT as u64 {
            table.number(e, WIDE_CURSORS | i);
        }
        assert_eq!(
            table.cursor(d, b).unwrap(),
            Some(near),
            "not pushed out by another directory's long listing"
        );
        assert!(
            matches!(table.cursor(e, b + 1), Err(Error::Invalid)),
            "given up: an error, not a silent end"
        );
        assert!(table.len() <= KEPT, "bounded");
        table.forget(d);
        assert!(matches!(table.cursor(d, b), Err(Error::Invalid)));
        assert!(!table.by_dir.contains_key(&d));
    }

    /// Room made among many directories holding one number each is made
    /// in bulk: one pass over the directories frees an eighth of what is
    /// kept, rather than one number for every number handed out.
    #[test]
    fn room_is_made_in_bulk_among_many_small_listings() {
        let mut table = UpperCursors::default();
        for dir in 0..=KEPT as Ino {
            table.number(dir, WIDE_CURSORS | 7);
        }
        assert!(table.len() <= KEPT - KEPT / 8 + 1);
        assert_eq!(
            table.len(),
            table.by_dir.values().map(VecDeque::len).sum::<usize>(),
            "every number kept is in its directory's queue"
        );
    }
}
