//! `Overlay`: a writable upper store over a read-only lower one.
//!
//! Reads fall through to the lower store until something is written; the
//! first change to a lower file, symlink or directory copies it up (with its
//! parents) into the upper store. A file is copied under a work name and
//! renamed into place once complete, so a copy-up that fails leaves the
//! file as it was; a truncation copies only the bytes it keeps. Deleting a lower name leaves a whiteout so
//! it stays deleted; a directory created or moved over a deleted lower
//! directory is opaque, so nothing of the lower one shows through. Listings
//! merge both layers without duplicates.
//!
//! The overlay keeps its own inode numbers, stable across copy-up, and owns
//! whiteouts and opacity. Its records live as long as a name or an open
//! handle reaches them and are charged to the upper layer's budget. A lower
//! file with several names stays one file: copy-up links every name seen
//! so far, and while names not yet looked up remain, the copy is also kept
//! under a hidden park name in the upper root. A merged directory's
//! subdirectories are counted once and kept exact, so `stat` never lists,
//! and its listing passes over neither copied-up nor deleted entries
//! (`listing`), so each call costs O(log n + entries returned). The
//! lower layer's wide listing cursors pass through as they are; the upper
//! layer's get numbers of the overlay's own (`upper_cursors`).
//!
//! The lower store is wrapped read-only, so nothing done through the
//! overlay can change it. Changes to the merged namespace (copy-up, create,
//! remove, rename) are serialised by one mutex; reads and writes of files
//! already copied up go straight to the stores. Every walk (copy-up of a
//! chain, a directory's rename, `changes`, `reset`) uses a work list, never
//! recursion. `Overlay::export_changes` lives with the other archive code in
//! `boundary`.

use crate::error::{Error, Result};
use crate::storage::budget::{Budget, heap_cost};
use crate::storage::mem::MemFs;
use crate::storage::read_only::ReadOnly;
use crate::storage::{
    Attr, DirEntry, FileKind, Ino, MAX_FILE_SIZE, NewNode, SetAttr, Storage, TimeSet, WIDE_CURSORS,
    WritePos, join_path,
};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod listing;
mod upper_cursors;

use listing::{LowerView, UpperOnly, charge_entries};
use upper_cursors::UpperCursors;

const ROOT: Ino = 1;

/// Listing cursors from this value up to [`LOWER_CURSORS`] continue in
/// the upper layer from one of its wide cursors, by the number
/// [`UpperCursors`] gave it plus this; below, from its own cursor.
const UPPER_WIDE_CURSORS: u64 = 1 << 59;

/// Listing cursors at or above this value continue in the lower layer, as
/// the lower store's own cursor plus this (its wide cursors, from
/// [`WIDE_CURSORS`], pass as they are).
const LOWER_CURSORS: u64 = 1 << 60;

/// Listing cursors at or above this value continue in the lower layer, as
/// an entry's number in the lower listing plus this (a [`LowerView`]).
const VIEW_CURSORS: u64 = 1 << 61;

/// Whiteouts in a merged directory from which its listing takes a
/// [`LowerView`] rather than pass over them: below it, a listing call
/// skips a few hidden entries at most, and the snapshot (as large as the
/// lower directory) would not pay.
const VIEW_AFTER_HIDDEN: usize = 32;

/// Bytes copied at a time during copy-up.
const COPY_CHUNK: usize = 1 << 20;

/// Names in the upper layer that start with this are the overlay's own: a
/// file being copied up is built under such a name and renamed into place
/// when complete. They are never listed or looked up, and guests cannot
/// make them.
const WORK_PREFIX: &str = ".wasi-common-vfs-copy-up.";

/// Whether `name` is reserved for the overlay's own work.
fn is_work_name(name: &str) -> bool {
    name.starts_with(WORK_PREFIX)
}

/// A copy-on-write overlay: reads from `lower` until written, writes to the
/// upper store (an in-memory [`MemFs`] unless given). Cloning gives another
/// handle on the same overlay, so the embedder can keep one to ask for
/// [`Overlay::changes`] after mounting the other.
///
/// ```
/// use std::io::IoSlice;
/// use wasi_common_vfs::storage::{NewNode, WritePos};
/// use wasi_common_vfs::{MemFs, Overlay, Storage, Vfs};
///
/// let lower = MemFs::new(); // any store: a host directory, say
/// let file = lower.create(lower.root(), "config", NewNode::File)?;
/// lower.write(file.ino, WritePos::At(0), &[IoSlice::new(b"original")], u64::MAX)?;
/// let overlay = Overlay::new(lower);
/// let vfs = Vfs::builder().mount("/app", overlay.clone()).build()?;
/// vfs.write("/app/config", b"changed")?; // copied up; the lower store is untouched
/// vfs.write("/app/new", b"added")?;
/// let changes = overlay.changes()?;
/// assert_eq!((changes.modified, changes.added), (vec!["config".to_owned()], vec!["new".to_owned()]));
/// overlay.reset()?; // back to the lower layer
/// assert_eq!(vfs.read("/app/config")?, b"original");
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
#[derive(Clone)]
pub struct Overlay {
    inner: Arc<Inner>,
}

struct Inner {
    upper: Arc<dyn Storage>,
    lower: Arc<dyn Storage>,
    nodes: RwLock<HashMap<Ino, Arc<Node>>>,
    by_upper: Mutex<HashMap<Ino, Ino>>,
    by_lower: Mutex<HashMap<Ino, Ino>>,
    next_ino: AtomicU64,
    change: Mutex<()>,
    /// Where the overlay's own records are charged: the upper layer's
    /// budget.
    budget: RwLock<Option<Arc<Budget>>>,
    /// The upper layer's wide listing cursors handed out, by number.
    upper_cursors: Mutex<UpperCursors>,
}

struct Node {
    kind: FileKind,
    st: Mutex<NodeState>,
}

#[derive(Default)]
struct NodeState {
    upper: Option<Ino>,
    lower: Option<Ino>,
    parent: Ino,
    name: String,
    /// Lower entries hidden below this directory.
    whiteouts: Whiteouts,
    /// Nothing of the lower layer shows through this directory.
    opaque: bool,
    opens_upper: u64,
    opens_lower: u64,
    /// The node has no name in the merged tree any more (it was unlinked
    /// or replaced); only open handles still reach it.
    detached: bool,
    /// A file's other names seen in the merged tree (hard links), besides
    /// `parent` and `name`.
    more_names: Vec<(Ino, String)>,
    /// A lower-only file: how many of its lower names were removed through
    /// the overlay.
    names_gone: u64,
    /// A copied-up file: how many of its lower names (hard links not yet
    /// looked up when it was copied) are not linked in the upper store.
    unseen: u64,
    /// The copied-up file is also linked under its park name in the upper
    /// root, so that it outlives its other names while `unseen` ones
    /// remain.
    parked: bool,
    /// A merged directory's subdirectories, once counted; every change
    /// through the overlay keeps it exact, so `stat` never lists.
    subdirs: Option<u64>,
    /// A merged directory's upper-only names, in listing order, once
    /// known: from its copy-up on, or from its first listing for an
    /// upper directory that held entries before the overlay was made.
    upper_only: Option<UpperOnly>,
    /// Changes to this directory's upper entries so far, so that a
    /// listing building `upper_only` can tell whether one raced with it.
    upper_changes: u64,
    /// Bytes of this record charged to the budget.
    charged: u64,
}

/// The names of lower entries deleted below one directory, and what their
/// strings hold on the heap (kept as they change, so that charging for them
/// never walks the set).
#[derive(Default)]
struct Whiteouts {
    names: HashSet<String>,
    bytes: u64,
    /// How many whiteouts there were when the budget could not hold a
    /// view; none is tried again before there are twice as many.
    view_refused: usize,
    /// The lower listing with these names hidden, once there are enough
    /// of them that a listing should not pass over them one by one.
    view: Option<LowerView>,
}

impl Whiteouts {
    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn insert(&mut self, name: &str) {
        if !self.names.contains(name) {
            self.bytes += heap_cost(name.len());
            self.names.insert(name.to_owned());
        }
        if let Some(view) = &mut self.view {
            view.set_hidden(name, true);
        }
    }

    fn remove(&mut self, name: &str) -> bool {
        let removed = self.names.remove(name);
        if removed {
            self.bytes -= heap_cost(name.len());
            if let Some(view) = &mut self.view {
                view.set_hidden(name, false);
            }
        }
        removed
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    fn clear(&mut self) {
        *self = Whiteouts::default();
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// What the set costs; a view holds its own charge.
    fn cost(&self) -> u64 {
        heap_cost(self.names.capacity() * (size_of::<String>() + 1)) + self.bytes
    }
}

/// What one node costs besides its names: the record (behind an `Arc`) and
/// its slots in the overlay's three maps (an entry and a control byte each,
/// with maps up to half empty).
const NODE_COST: u64 = heap_cost(size_of::<Node>() + 16) + 3 * 2 * (16 + 1);

impl NodeState {
    /// Bytes the host's allocator holds for this record.
    fn cost(&self) -> u64 {
        let names: u64 = self
            .more_names
            .iter()
            .map(|(_, n)| heap_cost(n.len()))
            .sum();
        NODE_COST
            + heap_cost(self.name.len())
            + heap_cost(self.more_names.capacity() * size_of::<(Ino, String)>())
            + names
            + self.whiteouts.cost()
            + self.upper_only.as_ref().map_or(0, UpperOnly::cost)
    }

    /// Whether listing this directory merges both layers.
    fn merged(&self) -> bool {
        self.upper.is_some() && self.lower.is_some() && !self.opaque
    }

    /// Records that a file is also named `name` in `dir`; a detached one
    /// found again by a name (a lower hard link not seen before) takes it.
    fn add_name(&mut self, dir: Ino, name: &str) {
        if self.detached {
            (self.parent, self.name, self.detached) = (dir, name.to_owned(), false);
            return;
        }
        let known = (self.parent == dir && self.name == name)
            || self.more_names.iter().any(|(p, n)| *p == dir && n == name);
        if !known {
            self.more_names.push((dir, name.to_owned()));
        }
    }

    /// Forgets the name `name` in `dir`; returns whether the node has a
    /// known name left.
    fn remove_name(&mut self, dir: Ino, name: &str) -> bool {
        if self.parent == dir && self.name == name {
            match self.more_names.pop() {
                Some((p, n)) => (self.parent, self.name) = (p, n),
                None => return false,
            }
        } else {
            self.more_names.retain(|(p, n)| *p != dir || n != name);
        }
        true
    }

    /// Renames the name `from_name` in `from` to `to_name` in `to`.
    fn move_name(&mut self, from: Ino, from_name: &str, to: Ino, to_name: &str) {
        if let Some(other) = self
            .more_names
            .iter_mut()
            .find(|(p, n)| *p == from && n == from_name)
        {
            *other = (to, to_name.to_owned());
            return;
        }
        (self.parent, self.name) = (to, to_name.to_owned());
    }
}

/// What an overlay's upper layer changed, as paths relative to the
/// overlay's root (`/` separated, without a leading slash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Changes {
    /// Paths that exist only in the upper layer.
    pub added: Vec<String>,
    /// Lower files and symlinks that were copied up and changed.
    pub modified: Vec<String>,
    /// Lower paths deleted (or moved away) through the overlay; a lower
    /// entry replaced by a new one of another kind, or a lower directory
    /// replaced by a new one, is both deleted and added.
    pub deleted: Vec<String>,
}

impl Overlay {
    /// An overlay of an in-memory upper layer over `lower`.
    pub fn new(lower: impl Storage) -> Self {
        Self::with_upper(lower, MemFs::new())
    }

    /// An overlay of `upper` over `lower`.
    pub fn with_upper(lower: impl Storage, upper: impl Storage) -> Self {
        let upper: Arc<dyn Storage> = Arc::new(upper);
        let lower: Arc<dyn Storage> = Arc::new(ReadOnly::new(lower));
        // Over an empty upper layer, the root's subdirectories are the
        // lower root's.
        let upper_empty = matches!(upper.readdir(upper.root(), 0, 1), Ok(e) if e.is_empty());
        let subdirs = match lower.getattr(lower.root()) {
            Ok(a) if upper_empty => a.nlink.checked_sub(2),
            _ => None,
        };
        let root = Node {
            kind: FileKind::Dir,
            st: Mutex::new(NodeState {
                upper: Some(upper.root()),
                lower: Some(lower.root()),
                parent: ROOT,
                subdirs,
                upper_only: upper_empty.then(UpperOnly::default),
                ..NodeState::default()
            }),
        };
        let inner = Inner {
            by_upper: Mutex::new(HashMap::from([(upper.root(), ROOT)])),
            by_lower: Mutex::new(HashMap::from([(lower.root(), ROOT)])),
            upper,
            lower,
            nodes: RwLock::new(HashMap::from([(ROOT, Arc::new(root))])),
            next_ino: AtomicU64::new(ROOT + 1),
            change: Mutex::new(()),
            budget: RwLock::new(None),
            upper_cursors: Mutex::default(),
        };
        Overlay {
            inner: Arc::new(inner),
        }
    }

    /// Discards every change made through the overlay: it shows its lower
    /// layer again, as when it was made, its upper layer is emptied and
    /// everything it charged to a budget is given back.
    ///
    /// Refused with [`Error::Busy`], changing nothing, while a file of the
    /// overlay is open (a guest still running on it), since its handles
    /// would lose what they refer to.
    pub fn reset(&self) -> Result<()> {
        let i = &self.inner;
        let _change = i.change.lock();
        let nodes: Vec<Arc<Node>> = i.nodes.read().values().cloned().collect();
        let busy = nodes.iter().any(|n| {
            let st = n.st.lock();
            st.opens_upper + st.opens_lower > 0
        });
        if busy {
            return Err(Error::Busy);
        }
        empty_dir(&*i.upper, i.upper.root())?;
        let root = i.node(ROOT)?;
        i.nodes.write().retain(|ino, _| *ino == ROOT);
        i.by_upper.lock().retain(|_, ino| *ino == ROOT);
        i.by_lower.lock().retain(|_, ino| *ino == ROOT);
        *i.upper_cursors.lock() = UpperCursors::default();
        for node in &nodes {
            i.refund(&mut node.st.lock());
        }
        let mut st = root.st.lock();
        st.whiteouts.clear();
        st.opaque = false;
        st.upper_only = Some(UpperOnly::default());
        st.upper_changes += 1;
        st.subdirs = i.lower.getattr(i.lower.root())?.nlink.checked_sub(2);
        i.account(&mut st);
        Ok(())
    }

    /// The paths added, modified and deleted through the overlay, each list
    /// sorted.
    ///
    /// Fails with [`Error::NoSpace`] rather than hold more than
    /// [`CHANGES_MAX_BYTES`] of paths: a guest's deep tree has paths whose
    /// lengths add up with the square of its depth (100,000 nested
    /// directories would take 10 GB). Such a tree is still kept or
    /// discarded whole with `Vfs::save_tar` or [`Overlay::reset`].
    pub fn changes(&self) -> Result<Changes> {
        let _change = self.inner.change.lock();
        let mut changes = Changes::default();
        let mut room = PathRoom(CHANGES_MAX_BYTES);
        let (up, low) = self.inner.layers(ROOT)?;
        if let Some(up) = up {
            self.inner.walk_upper(up, low, &mut changes, &mut room)?;
        }
        let nodes: Vec<(Ino, Arc<Node>)> = self
            .inner
            .nodes
            .read()
            .iter()
            .map(|(ino, node)| (*ino, node.clone()))
            .collect();
        let mut unseen = HashSet::new();
        for (ino, node) in nodes {
            let (parent, name, whiteouts) = {
                let st = node.st.lock();
                if st.unseen > 0 {
                    unseen.insert(ino);
                }
                let whiteouts: Vec<String> = st.whiteouts.names.iter().cloned().collect();
                (st.parent, st.name.clone(), whiteouts)
            };
            if whiteouts.is_empty() {
                continue;
            }
            let dir = self.inner.path_of(parent, &name)?;
            for gone in whiteouts {
                let path = join_path(&dir, &gone);
                room.take(&path)?;
                changes.deleted.push(path);
            }
        }
        if !unseen.is_empty() {
            self.inner
                .unseen_paths(&unseen, &mut changes.modified, &mut room)?;
        }
        for list in [
            &mut changes.added,
            &mut changes.modified,
            &mut changes.deleted,
        ] {
            list.sort();
            list.dedup();
        }
        Ok(changes)
    }
}

/// Bytes of paths [`Overlay::changes`] gathers at most.
pub const CHANGES_MAX_BYTES: u64 = 256 << 20;

/// What is left of [`CHANGES_MAX_BYTES`] for the paths still to gather.
struct PathRoom(u64);

impl PathRoom {
    /// Takes room for `path`, or fails with `ENOSPC` when there is none.
    fn take(&mut self, path: &str) -> Result<()> {
        self.0 = self
            .0
            .checked_sub(heap_cost(path.len()))
            .ok_or(Error::NoSpace)?;
        Ok(())
    }
}

/// Bytes taken from the budget ahead of a copy, handed back a chunk at a
/// time as the copy's own writes charge for them, and all at once if the
/// copy stops.
struct Reserved {
    budget: Option<Arc<Budget>>,
    left: u64,
}

impl Reserved {
    /// Takes `bytes`, or fails with `ENOSPC` taking nothing.
    fn take(budget: Option<Arc<Budget>>, bytes: u64) -> Result<Self> {
        if let Some(b) = &budget {
            b.charge_bytes(bytes)?;
        }
        Ok(Reserved {
            budget,
            left: bytes,
        })
    }

    /// Takes `bytes` more, or fails with `ENOSPC` taking nothing more.
    fn grow(&mut self, bytes: u64) -> Result<()> {
        if let Some(b) = &self.budget {
            b.charge_bytes(bytes)?;
        }
        self.left += bytes;
        Ok(())
    }

    fn release(&mut self, bytes: u64) {
        let n = bytes.min(self.left);
        if let Some(b) = &self.budget {
            b.refund_bytes(n);
        }
        self.left -= n;
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.release(self.left);
    }
}

/// The upper-root name that keeps a copied-up file `ino` alive while lower
/// names of it not yet linked above may still be found.
fn park_name(ino: Ino) -> String {
    format!("{WORK_PREFIX}{ino}.links")
}

/// Removes everything below directory `dir` of `store`, deepest first,
/// with a work list rather than recursion, so no depth can exhaust the
/// stack.
fn empty_dir(store: &dyn Storage, dir: Ino) -> Result<()> {
    // Each directory still being emptied, with where it is named.
    let mut stack: Vec<(Ino, Option<(Ino, String)>)> = vec![(dir, None)];
    while let Some((cur, _)) = stack.last() {
        let cur = *cur;
        match store.readdir(cur, 0, 1)?.pop() {
            Some(e) if e.kind == FileKind::Dir => stack.push((e.ino, Some((cur, e.name)))),
            Some(e) => store.unlink(cur, &e.name)?,
            None => {
                if let Some((_, Some((parent, name)))) = stack.pop() {
                    store.rmdir(parent, &name)?;
                }
            }
        }
    }
    Ok(())
}

/// What copy-up carries over from a lower node besides its contents.
fn times_of(attr: &Attr) -> SetAttr {
    SetAttr {
        size: None,
        atime: Some(TimeSet::At(attr.atime)),
        mtime: Some(TimeSet::At(attr.mtime)),
        mode: Some(attr.mode),
    }
}

fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Inner {
    fn node(&self, ino: Ino) -> Result<Arc<Node>> {
        self.nodes.read().get(&ino).cloned().ok_or(Error::NotFound)
    }

    fn layers(&self, ino: Ino) -> Result<(Option<Ino>, Option<Ino>)> {
        let node = self.node(ino)?;
        let st = node.st.lock();
        Ok((st.upper, st.lower))
    }

    /// The overlay inode for a pair of layer inodes, made on first sight.
    fn intern(
        &self,
        upper: Option<Ino>,
        lower: Option<Ino>,
        kind: FileKind,
        parent: Ino,
        name: &str,
    ) -> Ino {
        let known = upper
            .and_then(|u| self.by_upper.lock().get(&u).copied())
            .or_else(|| lower.and_then(|l| self.by_lower.lock().get(&l).copied()));
        if let Some(ino) = known
            && let Ok(node) = self.node(ino)
        {
            let mut st = node.st.lock();
            if st.upper.is_none() && upper.is_some() {
                st.upper = upper;
            }
            if st.lower.is_none() && lower.is_some() {
                st.lower = lower;
            }
            // Names matter only until copy-up (the upper store keeps its own
            // links after it), and a lower file has as many as the lower
            // store gave it: a guest cannot grow this list.
            if node.kind != FileKind::Dir && name != ".." {
                if st.upper.is_none() {
                    st.add_name(parent, name);
                } else if upper.is_none() && st.detached {
                    // A copied-up file whose other names are all gone,
                    // found again by a lower name not linked above yet.
                    (st.parent, st.name, st.detached) = (parent, name.to_owned(), false);
                }
            }
            self.account(&mut st);
            drop(st);
            self.index(ino, upper, lower);
            return ino;
        }
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let mut st = NodeState {
            upper,
            lower,
            parent,
            name: name.to_owned(),
            ..NodeState::default()
        };
        self.account(&mut st);
        let node = Node {
            kind,
            st: Mutex::new(st),
        };
        self.nodes.write().insert(ino, Arc::new(node));
        self.index(ino, upper, lower);
        ino
    }

    /// Charges (or refunds) what `st` costs now against what was charged
    /// for it. Never refused: the overlay's records are bounded by the
    /// entries of its two layers and the handles open on them, so they are
    /// counted, and the upper layer's next allocation meets the limit.
    fn account(&self, st: &mut NodeState) {
        let Some(budget) = self.budget.read().clone() else {
            return;
        };
        let want = st.cost();
        if want > st.charged {
            budget.force_bytes(want - st.charged);
        } else {
            budget.refund_bytes(st.charged - want);
        }
        st.charged = want;
    }

    /// Gives back everything charged for `st`.
    fn refund(&self, st: &mut NodeState) {
        if let Some(budget) = self.budget.read().as_ref() {
            budget.refund_bytes(st.charged);
        }
        st.charged = 0;
    }

    fn index(&self, ino: Ino, upper: Option<Ino>, lower: Option<Ino>) {
        if let Some(u) = upper {
            self.by_upper.lock().insert(u, ino);
        }
        if let Some(l) = lower {
            self.by_lower.lock().insert(l, ino);
        }
    }

    /// The lower entry `name` of directory `dir`, unless hidden.
    fn lower_child(&self, dir: &NodeState, name: &str) -> Result<Option<(Ino, FileKind)>> {
        match dir.lower {
            Some(l) if !dir.opaque && !dir.whiteouts.contains(name) => {
                found(self.lower.lookup(l, name))
            }
            _ => Ok(None),
        }
    }

    fn lookup_in(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        let node = self.node(dir)?;
        let (upper, lower) = {
            let st = node.st.lock();
            if node.kind != FileKind::Dir {
                return Err(Error::NotDir);
            }
            if name == ".." {
                return Ok((st.parent, FileKind::Dir));
            }
            if is_work_name(name) {
                return Err(Error::NotFound);
            }
            let upper = match st.upper {
                Some(u) => found(self.upper.lookup(u, name))?,
                None => None,
            };
            (upper, self.lower_child(&st, name)?)
        };
        let (upper, lower, kind) = match (upper, lower) {
            (Some((u, FileKind::Dir)), Some((l, FileKind::Dir))) => {
                (Some(u), Some(l), FileKind::Dir)
            }
            (Some((u, kind)), _) => (Some(u), None, kind),
            (None, Some((l, kind))) => (None, Some(l), kind),
            (None, None) => return Err(Error::NotFound),
        };
        Ok((self.intern(upper, lower, kind, dir, name), kind))
    }

    /// The upper inode of `ino`, copying it (and its parents) up first if
    /// it lives only in the lower layer. Needs the change lock.
    fn copy_up(&self, ino: Ino) -> Result<Ino> {
        self.copy_up_keeping(ino, u64::MAX)
    }

    /// [`copy_up`](Self::copy_up), copying at most the first `keep` bytes
    /// of a file's data: what a truncation to `keep` bytes would leave.
    /// Parents that live only in the lower layer are copied first, found
    /// with a loop rather than recursion, so no depth can exhaust the
    /// stack. Each copy is all or nothing.
    fn copy_up_keeping(&self, ino: Ino, keep: u64) -> Result<Ino> {
        let detached = {
            let node = self.node(ino)?;
            let st = node.st.lock();
            match st.upper {
                Some(u) => return Ok(u),
                None => st.detached,
            }
        };
        if detached {
            return self.copy_up_nameless(ino, keep);
        }
        let mut chain = Vec::new();
        let mut cur = ino;
        let mut parent_up = loop {
            let node = self.node(cur)?;
            let st = node.st.lock();
            if let Some(u) = st.upper {
                break u;
            }
            chain.push(cur);
            cur = st.parent;
        };
        while let Some(next) = chain.pop() {
            let keep = if next == ino { keep } else { u64::MAX };
            parent_up = self.copy_one_up(next, parent_up, keep)?;
        }
        Ok(parent_up)
    }

    /// Copies the lower-only node `ino` into upper directory `parent_up`.
    /// A file is built under a work name and renamed into place once
    /// complete, so a copy that fails (`ENOSPC`, say) leaves nothing and
    /// the file reads as it did.
    fn copy_one_up(&self, ino: Ino, parent_up: Ino, keep: u64) -> Result<Ino> {
        let node = self.node(ino)?;
        let (lower, name) = {
            let st = node.st.lock();
            if let Some(u) = st.upper {
                return Ok(u);
            }
            (st.lower.ok_or(Error::NotFound)?, st.name.clone())
        };
        let attr = self.lower.getattr(lower)?;
        if node.kind == FileKind::Dir {
            self.count_while_plain(&mut node.st.lock());
        }
        let made = self.keeping_times(parent_up, || {
            if node.kind == FileKind::Dir {
                let made = self.upper.create(parent_up, &name, NewNode::Dir)?;
                if let Err(e) = self.upper.setattr(made.ino, &times_of(&attr)) {
                    let _ = self.upper.rmdir(parent_up, &name);
                    return Err(e);
                }
                return Ok(made);
            }
            let (work, made) = self.build_copy(ino, parent_up, lower, &attr, keep)?;
            if let Err(e) = self.upper.rename(parent_up, &work, parent_up, &name) {
                let _ = self.upper.unlink(parent_up, &work);
                return Err(e);
            }
            Ok(made)
        })?;
        // The file's other names (lower hard links) name the copy too, so
        // each of them sees what is written through any other.
        let (others, gone) = {
            let mut st = node.st.lock();
            (std::mem::take(&mut st.more_names), st.names_gone)
        };
        self.adopt(ino, &node, lower, made.ino)?;
        if node.kind == FileKind::Dir {
            // Made empty just now: every upper-only name is added later,
            // through the index.
            let mut st = node.st.lock();
            st.upper_only = Some(UpperOnly::default());
            self.account(&mut st);
            return Ok(made.ino);
        }
        let mut linked = 1;
        let mut failed = Ok(());
        for (dir, other) in others {
            let done = self.copy_up(dir).and_then(|dir_up| {
                self.keeping_times(dir_up, || match self.upper.link(made.ino, dir_up, &other) {
                    Ok(_) | Err(Error::Exists) => Ok(()),
                    Err(e) => Err(e),
                })
            });
            match done {
                Ok(()) => linked += 1,
                Err(e) => failed = Err(e),
            }
        }
        // Names the lower store gives the file that were not looked up yet
        // (or could not be linked) still reach it through the lower layer.
        let unseen = attr.nlink.saturating_sub(gone + linked);
        self.keep_for_unseen(ino, &node, made.ino, unseen)?;
        failed.map(|()| made.ino)
    }

    /// Records that `unseen` lower names of the copied-up file `ino` are
    /// not linked in the upper store, and links the copy under its park
    /// name, so that it lives as long as one of them may still be found.
    fn keep_for_unseen(&self, ino: Ino, node: &Node, up: Ino, unseen: u64) -> Result<()> {
        if unseen == 0 {
            return Ok(());
        }
        node.st.lock().unseen = unseen;
        let root = self.upper.root();
        self.keeping_times(root, || self.upper.link(up, root, &park_name(ino)))?;
        node.st.lock().parked = true;
        Ok(())
    }

    /// Runs `f`, which adds or removes an entry of the upper directory
    /// `dir_up` for the overlay's own sake (a copy-up, a park name), then
    /// puts the directory's times back: nothing the guest sees of it
    /// changed.
    fn keeping_times<T>(&self, dir_up: Ino, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let before = self.upper.getattr(dir_up)?;
        let out = f();
        let _ = self.upper.setattr(dir_up, &times_of(&before));
        out
    }

    /// One of the unseen lower names of `ino` was linked above or removed.
    fn unseen_gone(&self, ino: Ino, st: &mut NodeState) {
        st.unseen = st.unseen.saturating_sub(1);
        if st.unseen == 0 && st.parked {
            let root = self.upper.root();
            let _ = self.keeping_times(root, || self.upper.unlink(root, &park_name(ino)));
            st.parked = false;
        }
    }

    /// Links the copied-up file `ino` as `name` in upper directory
    /// `dir_up` when that is one of its lower names not linked above yet,
    /// so that the name can be renamed or replaced in the upper store.
    fn link_unseen(&self, ino: Ino, dir_up: Ino, name: &str) -> Result<()> {
        let node = self.node(ino)?;
        let up = {
            let st = node.st.lock();
            st.upper.filter(|_| st.unseen > 0)
        };
        let Some(up) = up else {
            return Ok(());
        };
        if found(self.upper.lookup(dir_up, name))?.is_some() {
            return Ok(());
        }
        // The name was there all along: the directory did not change.
        self.keeping_times(dir_up, || self.upper.link(up, dir_up, name))?;
        self.unseen_gone(ino, &mut node.st.lock());
        Ok(())
    }

    /// Copies the lower file or symlink `lower` of node `ino`, whose
    /// attributes are `attr` (a file's first `keep` bytes, times and mode),
    /// into a new upper one named with a work name in `parent_up`; returns
    /// the name and the copy. On failure nothing is left.
    fn build_copy(
        &self,
        ino: Ino,
        parent_up: Ino,
        lower: Ino,
        attr: &Attr,
        keep: u64,
    ) -> Result<(String, Attr)> {
        let work = format!("{WORK_PREFIX}{ino}");
        // What an earlier copy that could not even be removed left.
        let _ = self.upper.unlink(parent_up, &work);
        if attr.kind == FileKind::Symlink {
            let target = self.lower.readlink(lower)?;
            let made = self
                .upper
                .create(parent_up, &work, NewNode::Symlink(&target))?;
            if let Err(e) = self.upper.setattr(made.ino, &times_of(attr)) {
                let _ = self.upper.unlink(parent_up, &work);
                return Err(e);
            }
            return Ok((work, made));
        }
        let size = attr.size.min(keep);
        // The data is charged before anything is made, so a copy that
        // cannot fit fails at once.
        let budget = self.budget.read().clone();
        let mut reserved = Reserved::take(budget, self.data_below(lower, size)?)?;
        let made = self.upper.create(parent_up, &work, NewNode::File)?;
        let built = self
            .copy_data(lower, made.ino, size, &mut reserved)
            .and_then(|()| self.upper.setattr(made.ino, &times_of(attr)));
        if let Err(e) = built {
            let _ = self.upper.unlink(parent_up, &work);
            return Err(e);
        }
        Ok((work, made))
    }

    /// Makes upper inode `upper` node `ino`'s, moving the handles opened on
    /// its lower file over to it.
    fn adopt(&self, ino: Ino, node: &Node, lower: Ino, upper: Ino) -> Result<()> {
        let mut st = node.st.lock();
        // A write is why the file is copied up: its handles may write.
        for _ in 0..st.opens_lower {
            self.upper.open(upper, true)?;
            self.lower.release(lower);
        }
        st.opens_upper += std::mem::take(&mut st.opens_lower);
        st.upper = Some(upper);
        st.more_names = Vec::new();
        self.account(&mut st);
        drop(st);
        self.by_upper.lock().insert(upper, ino);
        Ok(())
    }

    /// Copies up a lower file that no name reaches any more, for the
    /// handles still open on it: the copy is made under a work name and
    /// unlinked again, so it stays as nameless as the file was, and no
    /// name comes back.
    fn copy_up_nameless(&self, ino: Ino, keep: u64) -> Result<Ino> {
        let node = self.node(ino)?;
        let (lower, open) = {
            let st = node.st.lock();
            (st.lower.ok_or(Error::NotFound)?, st.opens_lower)
        };
        if open == 0 {
            return Err(Error::NotFound);
        }
        let root_up = self.upper.root();
        let attr = self.lower.getattr(lower)?;
        let unseen = attr.nlink.saturating_sub(node.st.lock().names_gone);
        self.keeping_times(root_up, || {
            let (work, made) = self.build_copy(ino, root_up, lower, &attr, keep)?;
            let adopted = self.adopt(ino, &node, lower, made.ino);
            // Kept under the park name while lower names of it may be found.
            if adopted.is_ok()
                && unseen > 0
                && self
                    .upper
                    .rename(root_up, &work, root_up, &park_name(ino))
                    .is_ok()
            {
                let mut st = node.st.lock();
                (st.unseen, st.parked) = (unseen, true);
            } else {
                let _ = self.upper.unlink(root_up, &work);
            }
            adopted.map(|()| made.ino)
        })
    }

    /// The bytes of data (holes excluded) of the lower file `lower` below
    /// `end`: what a copy of that much of it takes.
    fn data_below(&self, lower: Ino, end: u64) -> Result<u64> {
        let mut total = 0;
        let mut pos = 0;
        while pos < end {
            let Some((start, stop)) = self.lower.next_data(lower, pos)? else {
                break;
            };
            let (start, stop) = (start.max(pos), stop.min(end));
            if start >= stop {
                break;
            }
            total += stop - start;
            pos = stop;
        }
        Ok(total)
    }

    /// Copies the lower file's data runs in bounded chunks, leaving its
    /// holes as holes, and gives the copy the lower file's size. Each chunk
    /// is handed back from `reserved` just before its write charges for it.
    fn copy_data(&self, lower: Ino, upper: Ino, size: u64, reserved: &mut Reserved) -> Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut pos = 0u64;
        while let Some((start, end)) = self.lower.next_data(lower, pos)? {
            let mut at = start.max(pos);
            while at < end.min(size) {
                let want =
                    usize::try_from(end.min(size) - at).map_or(COPY_CHUNK, |n| n.min(COPY_CHUNK));
                let n = self
                    .lower
                    .read(lower, at, &mut [IoSliceMut::new(&mut buf[..want])])?;
                if n == 0 {
                    break;
                }
                reserved.release(n as u64);
                self.upper
                    .write(upper, WritePos::At(at), &[IoSlice::new(&buf[..n])], size)?;
                at += n as u64;
            }
            if end <= pos || end >= size {
                break;
            }
            pos = end;
        }
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        self.upper.setattr(upper, &set).map(drop)
    }

    /// Copies up `ino` and everything visible below it, before it moves to
    /// where the lower layer has nothing of it; returns its directories,
    /// for [`cut_loose`](Self::cut_loose) once the move is done. Walks the
    /// subtree with a work list, not recursion, so no depth can exhaust the
    /// stack.
    fn copy_tree_up(&self, ino: Ino) -> Result<Vec<Arc<Node>>> {
        let mut pending = vec![(ino, None)];
        let mut dirs = Vec::new();
        while let Some((ino, named)) = pending.pop() {
            let up = self.copy_up(ino)?;
            let node = self.node(ino)?;
            if node.kind == FileKind::Dir {
                let entries = self.list_all(ino)?.into_iter();
                pending.extend(entries.map(|e| (e.ino, Some((up, e.name)))));
                dirs.push(node);
            } else if let Some((dir_up, name)) = named {
                // A lower name of a file copied up through another one:
                // linked above before the lower layer stops showing.
                self.link_unseen(ino, dir_up, &name)?;
            }
        }
        Ok(dirs)
    }

    /// Marks the copied-up directories `dirs` opaque: nothing of the lower
    /// layer shows through them any more. Done only once the move that
    /// needed it succeeded, so a copy or move that fails midway hides
    /// nothing and leaves merged directories merged.
    fn cut_loose(&self, dirs: Vec<Arc<Node>>) {
        for node in dirs {
            let mut st = node.st.lock();
            st.opaque = true;
            st.whiteouts.clear();
            st.upper_only = None;
            self.account(&mut st);
        }
    }

    fn list_all(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        self.list(dir, 0, usize::MAX)
    }

    /// Lists `dir` from `cursor`: first the entries only the upper layer
    /// has, then every visible lower entry (as the merged node it now is).
    /// An entry is listed in one phase for good, so a lower file copied up
    /// while a listing is in progress is listed once, not skipped. Neither
    /// phase passes over entries it does not list, once a merged directory
    /// has its [`UpperOnly`] names and (past [`VIEW_AFTER_HIDDEN`]
    /// whiteouts) its [`LowerView`].
    fn list(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
        let node = self.node(dir)?;
        if node.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        let (upper, lower, opaque) = {
            let st = node.st.lock();
            (st.upper, st.lower, st.opaque)
        };
        let mut out = Vec::new();
        if cursor < LOWER_CURSORS
            && let Some(u) = upper
        {
            if lower.is_some() && !opaque && self.index_upper_only(&node, u)? {
                self.list_indexed(dir, cursor, 0, max, &mut out, |at, n| {
                    Some(node.st.lock().upper_only.as_ref()?.from(at, n))
                })?;
            } else {
                let Some(at) = self.upper_cursor(dir, cursor)? else {
                    return Ok(out); // never handed out
                };
                self.list_upper(&node, dir, u, at, max, &mut out)?;
            }
            if out.len() >= max {
                return Ok(out);
            }
        }
        let Some(l) = lower.filter(|_| !opaque) else {
            return Ok(out);
        };
        if cursor >= WIDE_CURSORS {
            self.list_lower(&node, dir, l, cursor, max, &mut out)?;
        } else if cursor >= VIEW_CURSORS {
            let from = cursor - VIEW_CURSORS;
            if node.st.lock().whiteouts.view.is_some() {
                self.list_view(&node, dir, from, max, &mut out)?;
            } else if let Some(at) = self.lower_cursor_at(l, from)? {
                // The view was dropped (its budget changed): the lower
                // store's own cursors from here on.
                self.list_lower(&node, dir, l, at, max, &mut out)?;
            }
        } else if cursor > LOWER_CURSORS {
            self.list_lower(&node, dir, l, cursor - LOWER_CURSORS, max, &mut out)?;
        } else if self.viewed(&node, l)? {
            self.list_view(&node, dir, 0, max, &mut out)?;
        } else {
            self.list_lower(&node, dir, l, 0, max, &mut out)?;
        }
        Ok(out)
    }

    /// The upper entries of `dir` (upper directory `up`) from `cursor`,
    /// leaving out those listed with the lower entries: a directory that
    /// is not merged, or whose upper-only names are not indexed.
    fn list_upper(
        &self,
        node: &Node,
        dir: Ino,
        up: Ino,
        cursor: u64,
        max: usize,
        out: &mut Vec<DirEntry>,
    ) -> Result<()> {
        let mut at = cursor;
        while out.len() < max {
            let want = (max - out.len()).min(256);
            let batch = self.upper.readdir(up, at, want)?;
            let done = batch.len() < want;
            for e in batch {
                at = e.next;
                if is_work_name(&e.name) {
                    continue;
                }
                if self.lower_child(&node.st.lock(), &e.name)?.is_some() {
                    continue; // listed with the lower entries
                }
                if let Some((ino, kind)) = found(self.lookup_in(dir, &e.name))? {
                    let next = match e.next {
                        n if n < UPPER_WIDE_CURSORS => n,
                        n if n >= WIDE_CURSORS => {
                            UPPER_WIDE_CURSORS + self.upper_cursors.lock().number(dir, n)
                        }
                        _ => return Err(Error::Invalid),
                    };
                    out.push(DirEntry {
                        ino,
                        kind,
                        next,
                        ..e
                    });
                }
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    /// The visible lower entries of `dir` (lower directory `low`) from the
    /// lower store's cursor `at`, passing over whiteouts one by one.
    fn list_lower(
        &self,
        node: &Node,
        dir: Ino,
        low: Ino,
        mut at: u64,
        max: usize,
        out: &mut Vec<DirEntry>,
    ) -> Result<()> {
        while out.len() < max {
            let want = (max - out.len()).min(256);
            let batch = self.lower.readdir(low, at, want)?;
            let done = batch.len() < want;
            for e in batch {
                at = e.next;
                if node.st.lock().whiteouts.contains(&e.name) {
                    continue;
                }
                if let Some((ino, kind)) = found(self.lookup_in(dir, &e.name))? {
                    let next = match e.next {
                        n if n >= WIDE_CURSORS => n,
                        n if n < VIEW_CURSORS - LOWER_CURSORS => LOWER_CURSORS + n,
                        _ => return Err(Error::Invalid),
                    };
                    out.push(DirEntry {
                        ino,
                        kind,
                        name: e.name,
                        next,
                    });
                }
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    /// The upper store's cursor that the overlay's upper-phase cursor
    /// `cursor` of `dir` stands for; `None` for a number never handed out.
    fn upper_cursor(&self, dir: Ino, cursor: u64) -> Result<Option<u64>> {
        if cursor < UPPER_WIDE_CURSORS {
            return Ok(Some(cursor));
        }
        let number = cursor - UPPER_WIDE_CURSORS;
        self.upper_cursors.lock().cursor(dir, number)
    }

    /// The entries of `dir` that `batch` gives from position `from` on
    /// (up to a number of names at or after a position, with theirs;
    /// `None` once its index is gone), each listed with the cursor
    /// `cursors` plus the position after it. Shared by the two phases a
    /// merged directory keeps an index for ([`UpperOnly`], [`LowerView`]).
    fn list_indexed(
        &self,
        dir: Ino,
        from: u64,
        cursors: u64,
        max: usize,
        out: &mut Vec<DirEntry>,
        batch: impl Fn(u64, usize) -> Option<Vec<(u64, String)>>,
    ) -> Result<()> {
        let mut at = from;
        while out.len() < max {
            let want = (max - out.len()).min(256);
            // No index any more: the directory went opaque or away.
            let Some(batch) = batch(at, want) else { break };
            let done = batch.len() < want;
            for (position, name) in batch {
                at = position + 1;
                // A name removed since it was read is not listed.
                if let Some((ino, kind)) = found(self.lookup_in(dir, &name))? {
                    out.push(DirEntry {
                        name,
                        ino,
                        kind,
                        next: cursors + position + 1,
                    });
                }
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    /// The visible lower entries of `dir` from entry number `from` of the
    /// lower listing, through its [`LowerView`].
    fn list_view(
        &self,
        node: &Node,
        dir: Ino,
        from: u64,
        max: usize,
        out: &mut Vec<DirEntry>,
    ) -> Result<()> {
        self.list_indexed(dir, from, VIEW_CURSORS, max, out, |at, n| {
            Some(node.st.lock().whiteouts.view.as_ref()?.from(at, n))
        })
    }

    /// The lower store's cursor after the first `n` entries of the lower
    /// directory `low`, found by reading them; `None` past its end.
    fn lower_cursor_at(&self, low: Ino, n: u64) -> Result<Option<u64>> {
        let (mut at, mut left) = (0, n);
        while left > 0 {
            let want = usize::try_from(left).map_or(1024, |l| l.min(1024));
            let batch = self.lower.readdir(low, at, want)?;
            let Some(last) = batch.last() else {
                return Ok(None);
            };
            at = last.next;
            left -= batch.len() as u64;
        }
        Ok(Some(at))
    }

    /// Whether the merged directory `node` (lower directory `low`) has a
    /// [`LowerView`], taking one when it hides enough lower entries and the
    /// budget can hold it. A refusal stands until the whiteouts double.
    fn viewed(&self, node: &Node, low: Ino) -> Result<bool> {
        {
            let st = node.st.lock();
            let hidden = st.whiteouts.len();
            if st.whiteouts.view.is_some() {
                return Ok(true);
            }
            if hidden < VIEW_AFTER_HIDDEN || hidden < 2 * st.whiteouts.view_refused {
                return Ok(false);
            }
        }
        let mut charge = Reserved::take(self.budget.read().clone(), 0)?;
        let mut names = Vec::new();
        let mut at = 0;
        loop {
            let batch = self.lower.readdir(low, at, 1024)?;
            let done = batch.len() < 1024;
            let batch: Vec<String> = batch
                .into_iter()
                .map(|e| {
                    at = e.next;
                    e.name
                })
                .collect();
            if charge_entries(&mut charge, &batch).is_err() {
                let mut st = node.st.lock();
                st.whiteouts.view_refused = st.whiteouts.len().max(1);
                return Ok(false);
            }
            names.extend(batch);
            if done {
                break;
            }
        }
        let mut st = node.st.lock();
        if st.whiteouts.view.is_none() && st.merged() {
            let whiteouts = &st.whiteouts;
            let view = LowerView::new(names, |n| whiteouts.contains(n), charge);
            st.whiteouts.view = view;
        }
        Ok(st.whiteouts.view.is_some())
    }

    /// Whether the upper-only names of the merged directory `node` (upper
    /// directory `up`) are indexed, indexing them (once) if not. A change
    /// to the directory while its upper layer is read leaves them
    /// unindexed for now.
    fn index_upper_only(&self, node: &Node, up: Ino) -> Result<bool> {
        let since = {
            let st = node.st.lock();
            if st.upper_only.is_some() {
                return Ok(true);
            }
            st.upper_changes
        };
        let mut index = UpperOnly::default();
        let mut at = 0;
        loop {
            let batch = self.upper.readdir(up, at, 1024)?;
            let done = batch.len() < 1024;
            for e in batch {
                at = e.next;
                if !is_work_name(&e.name) && self.lower_child(&node.st.lock(), &e.name)?.is_none() {
                    index.set(&e.name, true);
                }
            }
            if done {
                break;
            }
        }
        let mut st = node.st.lock();
        if st.upper_changes != since || !st.merged() {
            return Ok(false);
        }
        st.upper_only = Some(index);
        self.account(&mut st);
        Ok(true)
    }

    /// Keeps what the merged directory `dir` knows of its upper-only names
    /// right about `name`, after a change to the entry `name` in either
    /// layer. Every change to a directory's entries goes through here.
    fn entry_changed(&self, dir: Ino, name: &str) -> Result<()> {
        let node = self.node(dir)?;
        let mut st = node.st.lock();
        st.upper_changes += 1;
        if st.upper_only.is_none() {
            return Ok(());
        }
        let upper_only = match st.upper {
            Some(u) => found(self.upper.lookup(u, name)).and_then(|in_upper| {
                Ok(in_upper.is_some() && self.lower_child(&st, name)?.is_none())
            }),
            None => Ok(false),
        };
        match upper_only {
            Ok(only) => {
                if let Some(index) = st.upper_only.as_mut() {
                    index.set(name, only);
                }
            }
            // Not known now: indexed again at the next listing.
            Err(_) => st.upper_only = None,
        }
        self.account(&mut st);
        Ok(())
    }

    /// True when `dir` is `ancestor` or below it.
    fn is_within(&self, dir: Ino, ancestor: Ino) -> Result<bool> {
        crate::storage::is_within(dir, ancestor, ROOT, |ino| {
            Ok(self.node(ino)?.st.lock().parent)
        })
    }

    fn path_of(&self, ino: Ino, name: &str) -> Result<String> {
        let mut parts = vec![name.to_owned()];
        let mut cur = ino;
        while cur != ROOT {
            let node = self.node(cur)?;
            let st = node.st.lock();
            parts.push(st.name.clone());
            cur = st.parent;
        }
        parts.reverse();
        Ok(parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/"))
    }

    /// Adds what the upper directory `up` (over lower directory `low`)
    /// and everything below it changed. Walks with a work list, not
    /// recursion, so no depth can exhaust the stack.
    fn walk_upper(
        &self,
        up: Ino,
        low: Option<Ino>,
        changes: &mut Changes,
        room: &mut PathRoom,
    ) -> Result<()> {
        let mut pending = vec![(up, low, String::new())];
        while let Some((up, low, path)) = pending.pop() {
            for e in self.upper.readdir(up, 0, usize::MAX)? {
                if is_work_name(&e.name) {
                    continue;
                }
                let child_path = join_path(&path, &e.name);
                let below = match low {
                    Some(l) => found(self.lower.lookup(l, &e.name))?,
                    None => None,
                };
                // A directory the overlay made opaque shows nothing of the
                // lower one, so everything in it counts as added.
                let opaque = e.kind == FileKind::Dir
                    && self
                        .by_upper
                        .lock()
                        .get(&e.ino)
                        .and_then(|o| self.node(*o).ok())
                        .is_some_and(|n| n.st.lock().opaque);
                match below {
                    Some((l, FileKind::Dir)) if e.kind == FileKind::Dir && !opaque => {
                        pending.push((e.ino, Some(l), child_path));
                    }
                    Some((_, lower_kind))
                        if e.kind != FileKind::Dir && lower_kind != FileKind::Dir =>
                    {
                        room.take(&child_path)?;
                        changes.modified.push(child_path)
                    }
                    // Something new stands where a lower entry of another
                    // kind (or a directory now opaque) was: a replacement.
                    replaced => {
                        if replaced.is_some() {
                            room.take(&child_path)?;
                            changes.deleted.push(child_path.clone());
                        }
                        room.take(&child_path)?;
                        changes.added.push(child_path.clone());
                        if e.kind == FileKind::Dir {
                            pending.push((e.ino, None, child_path));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the path of every visible lower name of the copied-up files
    /// `files` that the upper store does not link (hard links not looked
    /// up before the copy): each reaches the changed file. Walks only where
    /// the lower layer shows through, with a work list.
    fn unseen_paths(
        &self,
        files: &HashSet<Ino>,
        out: &mut Vec<String>,
        room: &mut PathRoom,
    ) -> Result<()> {
        let mut pending = vec![(ROOT, String::new())];
        while let Some((dir, path)) = pending.pop() {
            let (upper, shows_lower) = {
                let node = self.node(dir)?;
                let st = node.st.lock();
                (st.upper, st.lower.is_some() && !st.opaque)
            };
            if !shows_lower {
                continue;
            }
            for e in self.list_all(dir)? {
                let child = join_path(&path, &e.name);
                if e.kind == FileKind::Dir {
                    pending.push((e.ino, child));
                    continue;
                }
                let linked_above = match upper {
                    Some(u) => found(self.upper.lookup(u, &e.name))?.is_some(),
                    None => false,
                };
                if files.contains(&e.ino) && !linked_above {
                    room.take(&child)?;
                    out.push(child);
                }
            }
        }
        Ok(())
    }

    /// Whether the lower layer still has `name` visible under `dir`.
    fn lower_has(&self, dir: Ino, name: &str) -> Result<bool> {
        let node = self.node(dir)?;
        let st = node.st.lock();
        Ok(self.lower_child(&st, name)?.is_some())
    }

    fn hide(&self, dir: Ino, name: &str) -> Result<()> {
        if self.lower_has(dir, name)? {
            let node = self.node(dir)?;
            let mut st = node.st.lock();
            self.count_while_plain(&mut st);
            st.whiteouts.insert(name);
            self.account(&mut st);
        }
        Ok(())
    }

    /// Shows the lower entry `name` of `dir` again (an upper entry now
    /// stands over it); returns whether it was hidden.
    fn unhide(&self, dir: Ino, name: &str) -> Result<bool> {
        let node = self.node(dir)?;
        let mut st = node.st.lock();
        let was = st.whiteouts.remove(name);
        self.account(&mut st);
        Ok(was)
    }

    /// Counts the subdirectories of a lower directory nothing was added to
    /// or hidden in yet, from the lower store's link count, before that
    /// changes: from then on the count is kept, and no `stat` lists.
    fn count_while_plain(&self, st: &mut NodeState) {
        if st.subdirs.is_none()
            && st.upper.is_none()
            && st.whiteouts.is_empty()
            && let Some(l) = st.lower
        {
            st.subdirs = self
                .lower
                .getattr(l)
                .ok()
                .and_then(|a| a.nlink.checked_sub(2));
        }
    }

    /// Keeps the subdirectory count of `dir`, if counted, exact after a
    /// subdirectory was added to it or removed.
    fn subdir_added(&self, dir: Ino, added: bool) -> Result<()> {
        let node = self.node(dir)?;
        let mut st = node.st.lock();
        if let Some(n) = st.subdirs.as_mut() {
            *n = if added { *n + 1 } else { n.saturating_sub(1) };
        }
        Ok(())
    }

    /// The subdirectories of the merged directory `ino`: counted once
    /// (from the lower store's link count when nothing of it is hidden or
    /// added, by a listing otherwise) and kept exact from then on.
    fn subdirs(&self, ino: Ino, node: &Node) -> Result<u64> {
        let _change = self.change.lock();
        let (upper, lower, plain) = {
            let st = node.st.lock();
            if let Some(n) = st.subdirs {
                return Ok(n);
            }
            (st.upper, st.lower, st.whiteouts.is_empty())
        };
        let from_lower = match (upper, lower) {
            (None, Some(l)) if plain => self.lower.getattr(l)?.nlink.checked_sub(2),
            _ => None,
        };
        let n = match from_lower {
            Some(n) => n,
            None => self
                .list_all(ino)?
                .iter()
                .filter(|e| e.kind == FileKind::Dir)
                .count() as u64,
        };
        node.st.lock().subdirs = Some(n);
        Ok(n)
    }

    /// After the name `name` in `dir` of node `ino` was removed (unlinked,
    /// or replaced by a rename): once no known name reaches the node, it is
    /// detached, so that a handle still open on it never brings the name
    /// back, and forgotten when no handle is open either, so that
    /// bookkeeping does not grow with every file ever made. A lower file
    /// with names not seen yet keeps its node, detached until one of them
    /// is looked up.
    ///
    /// `in_upper` says whether the upper store linked the name; a lower
    /// name it did not link was one of a copied-up file's unseen names.
    fn name_removed(&self, ino: Ino, dir: Ino, name: &str, in_upper: bool) -> Result<()> {
        let node = self.node(ino)?;
        let file = node.kind != FileKind::Dir;
        let (upper, lower, gone, parked, unseen) = {
            let mut st = node.st.lock();
            if file && st.upper.is_none() {
                st.names_gone += 1;
            } else if file && !in_upper {
                self.unseen_gone(ino, &mut st);
            }
            let known = st.remove_name(dir, name);
            self.account(&mut st);
            if known && file && st.upper.is_none() {
                return Ok(());
            }
            (st.upper, st.lower, st.names_gone, st.parked, st.unseen)
        };
        let (named, unseen_names) = match (upper, lower) {
            (Some(u), _) => (
                found(self.upper.getattr(u))?.is_some_and(|a| a.nlink > u64::from(parked)),
                unseen > 0,
            ),
            (None, Some(l)) if file => (false, self.lower.getattr(l)?.nlink > gone),
            _ => (false, false),
        };
        if named {
            return Ok(());
        }
        let mut st = node.st.lock();
        st.detached = true;
        if !unseen_names && st.opens_upper == 0 && st.opens_lower == 0 {
            drop(st);
            self.forget(ino, upper, lower);
        }
        Ok(())
    }

    /// Drops the bookkeeping of a node nothing reaches.
    fn forget(&self, ino: Ino, upper: Option<Ino>, lower: Option<Ino>) {
        let node = self.nodes.write().remove(&ino);
        if let Some(node) = node {
            self.refund(&mut node.st.lock());
            if node.kind == FileKind::Dir {
                self.upper_cursors.lock().forget(ino);
            }
        }
        if let Some(u) = upper {
            let mut by_upper = self.by_upper.lock();
            if by_upper.get(&u) == Some(&ino) {
                by_upper.remove(&u);
            }
        }
        if let Some(l) = lower {
            let mut by_lower = self.by_lower.lock();
            if by_lower.get(&l) == Some(&ino) {
                by_lower.remove(&l);
            }
        }
    }

    fn with_ino(attr: Attr, ino: Ino) -> Attr {
        Attr { ino, ..attr }
    }
}

impl Storage for Overlay {
    fn root(&self) -> Ino {
        ROOT
    }

    fn attach_budget(&self, budget: Arc<Budget>) {
        // The upper layer holds what guests write, and the overlay's own
        // records are charged where it is.
        let i = &self.inner;
        let nodes: Vec<Arc<Node>> = i.nodes.read().values().cloned().collect();
        for node in &nodes {
            let mut st = node.st.lock();
            i.refund(&mut st);
            // A view holds a charge of the budget it was taken under.
            st.whiteouts.view = None;
        }
        *i.budget.write() = Some(budget.clone());
        for node in &nodes {
            i.account(&mut node.st.lock());
        }
        i.upper.attach_budget(budget)
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        self.inner.lookup_in(dir, name)
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        let i = &self.inner;
        let node = i.node(ino)?;
        let (upper, lower, opaque, detached, links) = {
            let st = node.st.lock();
            // A file's names: what the store holding it counts, less its
            // park name and the lower names removed, plus lower names not
            // linked above.
            let links = match st.upper {
                Some(_) => st.unseen as i128 - i128::from(st.parked),
                None => -i128::from(st.names_gone),
            };
            (st.upper, st.lower, st.opaque, st.detached, links)
        };
        let attr = match (upper, lower) {
            (Some(u), _) => i.upper.getattr(u)?,
            (None, Some(l)) => i.lower.getattr(l)?,
            (None, None) => return Err(Error::NotFound),
        };
        let mut attr = Inner::with_ino(attr, ino);
        if node.kind != FileKind::Dir {
            attr.nlink = u64::try_from((i128::from(attr.nlink) + links).max(0)).unwrap_or(0);
        } else if detached && upper.is_none() {
            attr.nlink = 0; // a lower directory removed through the overlay
        } else if lower.is_some() && !opaque && attr.nlink > 0 {
            // Both layers contribute subdirectories.
            attr.nlink = 2 + i.subdirs(ino, &node)?;
        }
        Ok(attr)
    }

    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        // Refused before copy-up, so a refusal copies nothing.
        if set.size.is_some_and(|s| s > MAX_FILE_SIZE) {
            return Err(Error::FileTooBig);
        }
        let up = {
            let _change = self.inner.change.lock();
            // A truncation copies up only what it keeps: `O_TRUNC` of a
            // large lower file copies no data at all.
            self.inner
                .copy_up_keeping(ino, set.size.unwrap_or(u64::MAX))?
        };
        self.inner.upper.setattr(up, set)?;
        self.getattr(ino)
    }

    fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        match self.inner.layers(ino)? {
            (Some(u), _) => self.inner.upper.read(u, offset, bufs),
            (None, Some(l)) => self.inner.lower.read(l, offset, bufs),
            (None, None) => Err(Error::NotFound),
        }
    }

    fn write(
        &self,
        ino: Ino,
        pos: WritePos,
        bufs: &[IoSlice<'_>],
        max_size: u64,
    ) -> Result<(usize, u64)> {
        let up = match self.inner.layers(ino)? {
            (Some(u), _) => u,
            (None, Some(l)) => {
                // A write that would change nothing, or be refused, does
                // not copy up.
                let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
                let at = match pos {
                    WritePos::At(at) => at,
                    WritePos::Append => self.inner.lower.getattr(l)?.size,
                };
                if len == 0 {
                    return Ok((0, at));
                }
                if at
                    .checked_add(len)
                    .is_none_or(|end| end > max_size.min(MAX_FILE_SIZE))
                {
                    return Err(Error::FileTooBig);
                }
                let _change = self.inner.change.lock();
                self.inner.copy_up(ino)?
            }
            (None, None) => return Err(Error::NotFound),
        };
        self.inner.upper.write(up, pos, bufs, max_size)
    }

    fn create(&self, dir: Ino, name: &str, new: NewNode<'_>) -> Result<Attr> {
        let i = &self.inner;
        if is_work_name(name) {
            return Err(Error::NotPermitted);
        }
        let _change = i.change.lock();
        if found(i.lookup_in(dir, name))?.is_some() {
            return Err(Error::Exists);
        }
        let dir_up = i.copy_up(dir)?;
        let attr = i.upper.create(dir_up, name, new)?;
        let was_deleted = i.unhide(dir, name)?;
        i.entry_changed(dir, name)?;
        let ino = i.intern(Some(attr.ino), None, attr.kind, dir, name);
        if attr.kind == FileKind::Dir {
            i.subdir_added(dir, true)?;
            if was_deleted {
                i.node(ino)?.st.lock().opaque = true;
            }
        }
        Ok(Inner::with_ino(attr, ino))
    }

    fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.inner.list(dir, cursor, max)
    }

    fn readlink(&self, ino: Ino) -> Result<String> {
        match self.inner.layers(ino)? {
            (Some(u), _) => self.inner.upper.readlink(u),
            (None, Some(l)) => self.inner.lower.readlink(l),
            (None, None) => Err(Error::NotFound),
        }
    }

    fn unlink(&self, dir: Ino, name: &str) -> Result<()> {
        let i = &self.inner;
        let _change = i.change.lock();
        let (child, kind) = i.lookup_in(dir, name)?;
        if kind == FileKind::Dir {
            return Err(Error::IsDir);
        }
        let in_upper = match i.layers(dir)?.0 {
            Some(dir_up) if found(i.upper.lookup(dir_up, name))?.is_some() => {
                i.upper.unlink(dir_up, name)?;
                true
            }
            _ => false,
        };
        i.hide(dir, name)?;
        i.entry_changed(dir, name)?;
        i.name_removed(child, dir, name, in_upper)
    }

    fn rmdir(&self, dir: Ino, name: &str) -> Result<()> {
        let i = &self.inner;
        let _change = i.change.lock();
        let (child, kind) = i.lookup_in(dir, name)?;
        if kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        if !i.list(child, 0, 1)?.is_empty() {
            return Err(Error::NotEmpty);
        }
        if let Some(dir_up) = i.layers(dir)?.0
            && found(i.upper.lookup(dir_up, name))?.is_some()
        {
            i.upper.rmdir(dir_up, name)?;
        }
        i.hide(dir, name)?;
        i.entry_changed(dir, name)?;
        {
            let node = i.node(child)?;
            let mut st = node.st.lock();
            st.whiteouts.clear();
            st.upper_only = None;
            i.account(&mut st);
        }
        i.subdir_added(dir, false)?;
        i.name_removed(child, dir, name, true)
    }

    fn rename(&self, src_dir: Ino, src_name: &str, dst_dir: Ino, dst_name: &str) -> Result<()> {
        let i = &self.inner;
        if is_work_name(dst_name) {
            return Err(Error::NotPermitted);
        }
        let _change = i.change.lock();
        let (src, src_kind) = i.lookup_in(src_dir, src_name)?;
        let dst = found(i.lookup_in(dst_dir, dst_name))?;
        if src_kind == FileKind::Dir && i.is_within(dst_dir, src)? {
            return Err(Error::Invalid);
        }
        if let Some((dst_ino, dst_kind)) = dst {
            if dst_ino == src {
                return Ok(());
            }
            // A directory holding the source: not empty, whatever the kinds.
            if dst_kind == FileKind::Dir && matches!(i.is_within(src_dir, dst_ino), Ok(true)) {
                return Err(Error::NotEmpty);
            }
            match (src_kind == FileKind::Dir, dst_kind == FileKind::Dir) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if !i.list(dst_ino, 0, 1)?.is_empty() => return Err(Error::NotEmpty),
                _ => {}
            }
        }
        let moved_dirs = if src_kind == FileKind::Dir {
            i.copy_tree_up(src)?
        } else {
            i.copy_up(src)?;
            Vec::new()
        };
        let src_dir_up = i.copy_up(src_dir)?;
        let dst_dir_up = i.copy_up(dst_dir)?;
        i.link_unseen(src, src_dir_up, src_name)?;
        let dst_in_upper = found(i.upper.lookup(dst_dir_up, dst_name))?.is_some();
        i.upper.rename(src_dir_up, src_name, dst_dir_up, dst_name)?;
        i.cut_loose(moved_dirs);
        i.hide(src_dir, src_name)?;
        i.unhide(dst_dir, dst_name)?;
        i.entry_changed(src_dir, src_name)?;
        i.entry_changed(dst_dir, dst_name)?;
        {
            let node = i.node(src)?;
            let mut st = node.st.lock();
            st.move_name(src_dir, src_name, dst_dir, dst_name);
            i.account(&mut st);
        }
        if src_kind == FileKind::Dir {
            i.subdir_added(src_dir, false)?;
            i.subdir_added(dst_dir, true)?;
        }
        match dst {
            Some((replaced, kind)) => {
                if kind == FileKind::Dir {
                    i.subdir_added(dst_dir, false)?;
                }
                i.name_removed(replaced, dst_dir, dst_name, dst_in_upper)
            }
            None => Ok(()),
        }
    }

    fn link(&self, ino: Ino, dir: Ino, name: &str) -> Result<Attr> {
        let i = &self.inner;
        let _change = i.change.lock();
        if i.node(ino)?.kind == FileKind::Dir || is_work_name(name) {
            return Err(Error::NotPermitted);
        }
        if found(i.lookup_in(dir, name))?.is_some() {
            return Err(Error::Exists);
        }
        let up = i.copy_up(ino)?;
        let dir_up = i.copy_up(dir)?;
        i.upper.link(up, dir_up, name)?;
        i.unhide(dir, name)?;
        i.entry_changed(dir, name)?;
        self.getattr(ino)
    }

    fn allocate(&self, ino: Ino, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(Error::FileTooBig);
        }
        let up = {
            let _change = self.inner.change.lock();
            self.inner.copy_up(ino)?
        };
        self.inner.upper.allocate(up, size)
    }

    fn open(&self, ino: Ino, write: bool) -> Result<()> {
        let node = self.inner.node(ino)?;
        let mut st = node.st.lock();
        match (st.upper, st.lower) {
            (Some(u), _) => {
                self.inner.upper.open(u, write)?;
                st.opens_upper += 1;
            }
            // Only read: the first write copies the file up.
            (None, Some(l)) => {
                self.inner.lower.open(l, false)?;
                st.opens_lower += 1;
            }
            (None, None) => return Err(Error::NotFound),
        }
        Ok(())
    }

    fn release(&self, ino: Ino) {
        let Ok(node) = self.inner.node(ino) else {
            return;
        };
        let mut st = node.st.lock();
        if st.opens_upper > 0 {
            st.opens_upper -= 1;
            if let Some(u) = st.upper {
                self.inner.upper.release(u);
            }
        } else if st.opens_lower > 0 {
            st.opens_lower -= 1;
            if let Some(l) = st.lower {
                self.inner.lower.release(l);
            }
        }
        if st.detached && st.opens_upper == 0 && st.opens_lower == 0 {
            let (upper, lower) = (st.upper, st.lower);
            drop(st);
            self.inner.forget(ino, upper, lower);
        }
    }

    fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
        match self.inner.layers(ino)? {
            (Some(u), _) => self.inner.upper.next_data(u, offset),
            (None, Some(l)) => self.inner.lower.next_data(l, offset),
            (None, None) => Err(Error::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creating and removing files, directories and links over and over
    /// leaves the overlay's bookkeeping where it started.
    /// `stat` of a merged directory counts its subdirectories without
    /// listing it (a listing makes a node for every entry), and the count
    /// stays exact through creation, removal and renames.
    #[test]
    fn stat_of_a_merged_directory_does_not_list_it() {
        let lower = MemFs::new();
        let lower_d = lower.create(lower.root(), "d", NewNode::Dir).unwrap().ino;
        for dir in [lower.root(), lower_d] {
            for i in 0..1000 {
                lower.create(dir, &format!("f{i}"), NewNode::File).unwrap();
            }
            for i in 0..10 {
                lower.create(dir, &format!("s{i}"), NewNode::Dir).unwrap();
            }
        }
        let overlay = Overlay::new(lower);
        let root = overlay.root();
        let (d, _) = overlay.lookup(root, "d").unwrap();
        for dir in [root, d] {
            overlay.create(dir, "new", NewNode::Dir).unwrap();
            overlay.rmdir(dir, "s0").unwrap();
            overlay.unlink(dir, "f0").unwrap();
        }
        overlay.rename(root, "s1", d, "moved").unwrap();
        overlay.rename(d, "s2", d, "s2-renamed").unwrap();
        let nodes = overlay.inner.nodes.read().len();
        // root: d and s0..s9, plus new, less s0 and s1.
        assert_eq!(overlay.getattr(root).unwrap().nlink, 2 + 10);
        // d: s0..s9, plus new and moved, less s0.
        assert_eq!(overlay.getattr(d).unwrap().nlink, 2 + 11);
        assert_eq!(overlay.inner.nodes.read().len(), nodes, "stat listed");
        for dir in [root, d] {
            let listed = overlay.inner.list_all(dir).unwrap();
            let subdirs = listed.iter().filter(|e| e.kind == FileKind::Dir).count();
            assert_eq!(overlay.getattr(dir).unwrap().nlink, 2 + subdirs as u64);
        }
    }

    #[test]
    fn bookkeeping_does_not_grow_with_create_and_unlink() {
        let lower = MemFs::new();
        lower.create(lower.root(), "keep", NewNode::File).unwrap();
        let overlay = Overlay::new(lower);
        let root = overlay.root();
        let _ = overlay.lookup(root, "keep").unwrap();
        let sizes = |o: &Overlay| {
            (
                o.inner.nodes.read().len(),
                o.inner.by_upper.lock().len(),
                o.inner.by_lower.lock().len(),
            )
        };
        let start = sizes(&overlay);
        for i in 0..10_000 {
            let name = format!("n{i}");
            let f = overlay.create(root, &name, NewNode::File).unwrap().ino;
            overlay.open(f, true).unwrap();
            overlay.unlink(root, &name).unwrap();
            overlay.release(f);
            overlay.create(root, &name, NewNode::Dir).unwrap();
            overlay.rmdir(root, &name).unwrap();
            overlay.create(root, "a", NewNode::File).unwrap();
            overlay.create(root, "b", NewNode::File).unwrap();
            overlay.rename(root, "a", root, "b").unwrap();
            overlay.unlink(root, "b").unwrap();
        }
        assert_eq!(sizes(&overlay), start);

        // Links the guest makes live in the upper store alone.
        let f = overlay.create(root, "many", NewNode::File).unwrap().ino;
        for i in 0..5_000 {
            overlay.link(f, root, &format!("l{i}")).unwrap();
            let _ = overlay.lookup(root, &format!("l{i}")).unwrap();
        }
        assert!(
            overlay
                .inner
                .node(f)
                .unwrap()
                .st
                .lock()
                .more_names
                .is_empty()
        );
        for i in 0..5_000 {
            overlay.unlink(root, &format!("l{i}")).unwrap();
        }
        assert_eq!(overlay.getattr(f).unwrap().nlink, 1);
    }
}
