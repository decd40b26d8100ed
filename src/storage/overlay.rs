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
//! whiteouts and opacity. The lower store is wrapped read-only, so nothing
//! done through the overlay can change it. Changes to the merged namespace
//! (copy-up, create, remove, rename) are serialised by one mutex; reads and
//! writes of files already copied up go straight to the stores.

use crate::error::{Error, Result};
use crate::storage::mem::MemFs;
use crate::storage::read_only::ReadOnly;
use crate::storage::{Attr, DirEntry, FileKind, Ino, NewNode, SetAttr, Storage, TimeSet, WritePos};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const ROOT: Ino = 1;

/// Listing cursors at or above this value continue in the lower layer.
const LOWER_CURSORS: u64 = 1 << 60;

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
    whiteouts: HashSet<String>,
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
}

impl NodeState {
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
        let root = Node {
            kind: FileKind::Dir,
            st: Mutex::new(NodeState {
                upper: Some(upper.root()),
                lower: Some(lower.root()),
                parent: ROOT,
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
        };
        Overlay {
            inner: Arc::new(inner),
        }
    }

    /// The paths added, modified and deleted through the overlay, each list
    /// sorted.
    pub fn changes(&self) -> Result<Changes> {
        let _change = self.inner.change.lock();
        let mut changes = Changes::default();
        let (up, low) = self.inner.layers(ROOT)?;
        if let Some(up) = up {
            self.inner.walk_upper(up, low, &mut changes)?;
        }
        let nodes: Vec<Arc<Node>> = self.inner.nodes.read().values().cloned().collect();
        for node in nodes {
            let (parent, name, whiteouts) = {
                let st = node.st.lock();
                (st.parent, st.name.clone(), st.whiteouts.clone())
            };
            if whiteouts.is_empty() {
                continue;
            }
            let dir = self.inner.path_of(parent, &name)?;
            for gone in whiteouts {
                changes.deleted.push(join(&dir, &gone));
            }
        }
        changes.added.sort();
        changes.modified.sort();
        changes.deleted.sort();
        Ok(changes)
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
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
            if node.kind != FileKind::Dir && name != ".." && st.upper.is_none() {
                st.add_name(parent, name);
            }
            drop(st);
            self.index(ino, upper, lower);
            return ino;
        }
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = Node {
            kind,
            st: Mutex::new(NodeState {
                upper,
                lower,
                parent,
                name: name.to_owned(),
                ..NodeState::default()
            }),
        };
        self.nodes.write().insert(ino, Arc::new(node));
        self.index(ino, upper, lower);
        ino
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
        let made = match node.kind {
            FileKind::Dir => {
                let made = self.upper.create(parent_up, &name, NewNode::Dir)?;
                self.upper.setattr(made.ino, &times_of(&attr))?;
                made
            }
            FileKind::Symlink => {
                let target = self.lower.readlink(lower)?;
                let made = self
                    .upper
                    .create(parent_up, &name, NewNode::Symlink(&target))?;
                self.upper.setattr(made.ino, &times_of(&attr))?;
                made
            }
            FileKind::File => {
                let (work, made) = self.build_copy(ino, parent_up, lower, &attr, keep)?;
                if let Err(e) = self.upper.rename(parent_up, &work, parent_up, &name) {
                    let _ = self.upper.unlink(parent_up, &work);
                    return Err(e);
                }
                made
            }
        };
        // The file's other names (lower hard links) name the copy too, so
        // each of them sees what is written through any other.
        let others = std::mem::take(&mut node.st.lock().more_names);
        self.adopt(ino, &node, lower, made.ino)?;
        for (dir, other) in others {
            let dir_up = self.copy_up(dir)?;
            match self.upper.link(made.ino, dir_up, &other) {
                Ok(_) | Err(Error::Exists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(made.ino)
    }

    /// Copies the lower file `lower` of node `ino`, whose attributes are
    /// `attr` (its first `keep` bytes, times and mode), into a new upper
    /// file named with a work name in `parent_up`; returns the name and the
    /// file. On failure nothing is left.
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
        let made = self.upper.create(parent_up, &work, NewNode::File)?;
        let built = self
            .copy_data(lower, made.ino, attr.size.min(keep))
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
        for _ in 0..st.opens_lower {
            self.upper.open(upper)?;
            self.lower.release(lower);
        }
        st.opens_upper += std::mem::take(&mut st.opens_lower);
        st.upper = Some(upper);
        st.more_names = Vec::new();
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
        let (work, made) = self.build_copy(ino, root_up, lower, &attr, keep)?;
        let adopted = self.adopt(ino, &node, lower, made.ino);
        let _ = self.upper.unlink(root_up, &work);
        adopted?;
        Ok(made.ino)
    }

    /// Copies the lower file's data runs in bounded chunks, leaving its
    /// holes as holes, and gives the copy the lower file's size.
    fn copy_data(&self, lower: Ino, upper: Ino, size: u64) -> Result<()> {
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

    /// Copies up `ino` and everything visible below it and cuts the subtree
    /// loose from the lower layer, before it moves to where the lower layer
    /// has nothing of it.
    /// Walks the subtree with a work list, not recursion, so no depth can
    /// exhaust the stack.
    fn detach_tree(&self, ino: Ino) -> Result<()> {
        let mut pending = vec![ino];
        while let Some(ino) = pending.pop() {
            self.copy_up(ino)?;
            let node = self.node(ino)?;
            if node.kind == FileKind::Dir {
                pending.extend(self.list_all(ino)?.into_iter().map(|e| e.ino));
                let mut st = node.st.lock();
                st.opaque = true;
                st.whiteouts.clear();
            }
        }
        Ok(())
    }

    fn list_all(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        self.list(dir, 0, usize::MAX)
    }

    /// Lists `dir` from `cursor`: first the entries only the upper layer
    /// has, then every visible lower entry (as the merged node it now is).
    /// An entry is listed in one phase for good, so a lower file copied up
    /// while a listing is in progress is listed once, not skipped.
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
            let mut upper_cursor = cursor;
            loop {
                let want = (max - out.len()).min(256);
                if want == 0 {
                    return Ok(out);
                }
                let batch = self.upper.readdir(u, upper_cursor, want)?;
                let done = batch.len() < want;
                for e in batch {
                    upper_cursor = e.next;
                    if is_work_name(&e.name) {
                        continue;
                    }
                    let in_lower = self.lower_child(&node.st.lock(), &e.name)?.is_some();
                    if in_lower {
                        continue; // listed with the lower entries
                    }
                    let (ino, kind) = self.lookup_in(dir, &e.name)?;
                    out.push(DirEntry { ino, kind, ..e });
                }
                if done {
                    break;
                }
            }
        }
        let Some(l) = lower.filter(|_| !opaque) else {
            return Ok(out);
        };
        let mut lower_cursor = cursor.saturating_sub(LOWER_CURSORS);
        while out.len() < max {
            let want = (max - out.len()).min(256);
            let batch = self.lower.readdir(l, lower_cursor, want)?;
            let done = batch.len() < want;
            for e in batch {
                lower_cursor = e.next;
                if node.st.lock().whiteouts.contains(&e.name) {
                    continue;
                }
                let (ino, kind) = self.lookup_in(dir, &e.name)?;
                out.push(DirEntry {
                    ino,
                    kind,
                    name: e.name,
                    next: LOWER_CURSORS + e.next,
                });
            }
            if done {
                break;
            }
        }
        Ok(out)
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
    fn walk_upper(&self, up: Ino, low: Option<Ino>, changes: &mut Changes) -> Result<()> {
        let mut pending = vec![(up, low, String::new())];
        while let Some((up, low, path)) = pending.pop() {
            for e in self.upper.readdir(up, 0, usize::MAX)? {
                if is_work_name(&e.name) {
                    continue;
                }
                let child_path = join(&path, &e.name);
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
                        changes.modified.push(child_path)
                    }
                    // Something new stands where a lower entry of another
                    // kind (or a directory now opaque) was: a replacement.
                    replaced => {
                        if replaced.is_some() {
                            changes.deleted.push(child_path.clone());
                        }
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

    /// Whether the lower layer still has `name` visible under `dir`.
    fn lower_has(&self, dir: Ino, name: &str) -> Result<bool> {
        let node = self.node(dir)?;
        let st = node.st.lock();
        Ok(self.lower_child(&st, name)?.is_some())
    }

    fn hide(&self, dir: Ino, name: &str) -> Result<()> {
        if self.lower_has(dir, name)? {
            self.node(dir)?.st.lock().whiteouts.insert(name.to_owned());
        }
        Ok(())
    }

    /// After the name `name` in `dir` of node `ino` was removed (unlinked,
    /// or replaced by a rename): once no known name reaches the node, it is
    /// detached, so that a handle still open on it never brings the name
    /// back, and forgotten when no handle is open either, so that
    /// bookkeeping does not grow with every file ever made. A lower file
    /// with names not seen yet keeps its node, detached until one of them
    /// is looked up.
    fn name_removed(&self, ino: Ino, dir: Ino, name: &str) -> Result<()> {
        let node = self.node(ino)?;
        let (upper, lower) = {
            let mut st = node.st.lock();
            let lower_file = st.upper.is_none() && node.kind != FileKind::Dir;
            if st.remove_name(dir, name) && lower_file {
                return Ok(());
            }
            (st.upper, st.lower)
        };
        let (named, unseen_names) = match (upper, lower) {
            (Some(u), _) => (
                found(self.upper.getattr(u))?.is_some_and(|a| a.nlink > 0),
                false,
            ),
            (None, Some(l)) if node.kind != FileKind::Dir => {
                (false, self.lower.getattr(l)?.nlink > 1)
            }
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
        self.nodes.write().remove(&ino);
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

    fn attach_budget(&self, budget: std::sync::Arc<crate::storage::budget::Budget>) {
        // Only the upper layer holds what guests write.
        self.inner.upper.attach_budget(budget)
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        self.inner.lookup_in(dir, name)
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        let i = &self.inner;
        let node = i.node(ino)?;
        let (upper, lower) = i.layers(ino)?;
        let attr = match (upper, lower) {
            (Some(u), _) => i.upper.getattr(u)?,
            (None, Some(l)) => i.lower.getattr(l)?,
            (None, None) => return Err(Error::NotFound),
        };
        let mut attr = Inner::with_ino(attr, ino);
        if node.kind == FileKind::Dir && lower.is_some() && attr.nlink > 0 {
            // Both layers contribute subdirectories.
            let subdirs = i
                .list_all(ino)?
                .iter()
                .filter(|e| e.kind == FileKind::Dir)
                .count();
            attr.nlink = 2 + subdirs as u64;
        }
        Ok(attr)
    }

    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
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
        let up = match self.inner.layers(ino)?.0 {
            Some(u) => u,
            None => {
                let _change = self.inner.change.lock();
                self.inner.copy_up(ino)?
            }
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
        let dir_node = i.node(dir)?;
        let was_deleted = dir_node.st.lock().whiteouts.remove(name);
        let ino = i.intern(Some(attr.ino), None, attr.kind, dir, name);
        if attr.kind == FileKind::Dir && was_deleted {
            i.node(ino)?.st.lock().opaque = true;
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
        if let Some(dir_up) = i.layers(dir)?.0
            && found(i.upper.lookup(dir_up, name))?.is_some()
        {
            i.upper.unlink(dir_up, name)?;
        }
        i.hide(dir, name)?;
        i.name_removed(child, dir, name)
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
        i.node(child)?.st.lock().whiteouts.clear();
        i.name_removed(child, dir, name)
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
        if src_kind == FileKind::Dir {
            i.detach_tree(src)?;
        } else {
            i.copy_up(src)?;
        }
        let src_dir_up = i.copy_up(src_dir)?;
        let dst_dir_up = i.copy_up(dst_dir)?;
        i.upper.rename(src_dir_up, src_name, dst_dir_up, dst_name)?;
        i.hide(src_dir, src_name)?;
        i.node(dst_dir)?.st.lock().whiteouts.remove(dst_name);
        {
            let node = i.node(src)?;
            node.st
                .lock()
                .move_name(src_dir, src_name, dst_dir, dst_name);
        }
        match dst {
            Some((replaced, _)) => i.name_removed(replaced, dst_dir, dst_name),
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
        let attr = i.upper.link(up, dir_up, name)?;
        i.node(dir)?.st.lock().whiteouts.remove(name);
        Ok(Inner::with_ino(attr, ino))
    }

    fn allocate(&self, ino: Ino, size: u64) -> Result<()> {
        let up = {
            let _change = self.inner.change.lock();
            self.inner.copy_up(ino)?
        };
        self.inner.upper.allocate(up, size)
    }

    fn open(&self, ino: Ino) -> Result<()> {
        let node = self.inner.node(ino)?;
        let mut st = node.st.lock();
        match (st.upper, st.lower) {
            (Some(u), _) => {
                self.inner.upper.open(u)?;
                st.opens_upper += 1;
            }
            (None, Some(l)) => {
                self.inner.lower.open(l)?;
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
            overlay.open(f).unwrap();
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
