//! `MemFs`: the in-memory backend.
//!
//! Inodes live in one table (`ino -> Arc<Inode>`) that is locked only long
//! enough to clone an `Arc`; each inode has its own lock, so reads and writes
//! of different files never wait for each other. Operations that lock more
//! than one directory (`rmdir`, and `rename` unless it moves a
//! non-directory within one directory) first take the store's `topology`
//! mutex, which keeps directory parent pointers stable while they check for
//! cycles and rules out lock-order deadlocks: every other operation locks at
//! most one directory and then non-directories.
//!
//! This module owns inode lifetime (`nlink`, open handles) and timestamps;
//! file bytes and directory order live in `file` and `dir`.

mod chunk;
mod dir;
mod file;
mod table;

use crate::error::{Error, Result};
use crate::storage::budget::{Budget, heap_cost};
use crate::storage::{
    Attr, DirEntry, FileKind, Ino, MAX_FILE_SIZE, NewNode, SetAttr, Storage, TimeSet, WritePos,
};
use dir::DirData;
use file::FileData;
use parking_lot::{Mutex, RwLock};
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use table::Table;

const ROOT: Ino = 1;

/// Bytes the allocator holds for one inode's record (an `Arc<Inode>`: two
/// counts and the inode).
const INODE_BYTES: u64 = heap_cost(2 * size_of::<usize>() + size_of::<Inode>());

/// Bytes a directory's boxed entry table holds besides its containers.
const DIR_BYTES: u64 = heap_cost(size_of::<DirData>());

/// The size `stat` reports for a directory, as many POSIX filesystems do.
const DIR_SIZE: u64 = 4096;

/// An in-memory filesystem: sparse files, hard links, symlinks, three
/// timestamps, inode numbers that are never reused.
///
/// Everything lives in the host process's memory; nothing touches the host
/// disk.
///
/// ```
/// use wasi_common_vfs::{MemFs, Vfs};
///
/// let vfs = Vfs::builder()
///     .mount("/", MemFs::new())
///     .mount("/tmp", MemFs::new()) // a second tree of its own
///     .build()?;
/// vfs.write("/tmp/scratch", b"gone when the tree is")?;
/// assert_eq!(vfs.read("/tmp/scratch")?, b"gone when the tree is");
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
pub struct MemFs {
    /// The root, which lives as long as the store, apart from the table:
    /// the table then holds only what the budget was charged for.
    root: Arc<Inode>,
    inodes: Table<Inode>,
    /// Set when the store belongs to a tree with limits.
    budget: OnceLock<Arc<Budget>>,
    next_ino: AtomicU64,
    topology: Mutex<()>,
}

struct Inode {
    kind: FileKind,
    state: RwLock<State>,
}

/// Kept small: one of these lives for every file of the tree.
struct State {
    /// Names referring to the inode; 0 once unlinked (or, for a directory,
    /// removed).
    nlink: u32,
    /// Handles from `Storage::open` not yet released.
    open: u32,
    mode: u32,
    atime: Stamp,
    mtime: Stamp,
    ctime: Stamp,
    body: Body,
}

enum Body {
    File(FileData),
    /// Boxed, so that files do not pay for a directory's size.
    Dir(Box<DirData>),
    Symlink(Box<str>),
}

/// A time as nanoseconds since the Unix epoch: WASI's own range (to the
/// year 2554). Earlier times are kept as the epoch.
#[derive(Clone, Copy)]
struct Stamp(u64);

impl Stamp {
    fn now() -> Self {
        Self::from(SystemTime::now())
    }
}

impl From<SystemTime> for Stamp {
    fn from(t: SystemTime) -> Self {
        let nanos = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Stamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl From<Stamp> for SystemTime {
    fn from(s: Stamp) -> Self {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(s.0)
    }
}

impl State {
    fn new(body: Body, nlink: u32) -> Self {
        let now = Stamp::now();
        let mode = match body {
            Body::File(_) => 0o644,
            Body::Dir(_) => 0o755,
            Body::Symlink(_) => 0o777,
        };
        State {
            mode,
            nlink,
            open: 0,
            atime: now,
            mtime: now,
            ctime: now,
            body,
        }
    }

    fn dir(&self) -> Result<&DirData> {
        match &self.body {
            Body::Dir(d) if self.nlink > 0 => Ok(d),
            Body::Dir(_) => Err(Error::NotFound),
            _ => Err(Error::NotDir),
        }
    }

    fn dir_mut(&mut self) -> Result<&mut DirData> {
        match &mut self.body {
            Body::Dir(d) if self.nlink > 0 => Ok(d),
            Body::Dir(_) => Err(Error::NotFound),
            _ => Err(Error::NotDir),
        }
    }

    fn touch_modified(&mut self) {
        let now = Stamp::now();
        self.mtime = now;
        self.ctime = now;
    }

    fn attr(&self, ino: Ino, kind: FileKind) -> Attr {
        let size = match &self.body {
            Body::File(f) => f.size(),
            Body::Dir(_) => DIR_SIZE,
            Body::Symlink(target) => target.len() as u64,
        };
        Attr {
            ino,
            kind,
            size,
            nlink: u64::from(self.nlink),
            atime: self.atime.into(),
            mtime: self.mtime.into(),
            ctime: self.ctime.into(),
            mode: self.mode,
        }
    }
}

impl Default for MemFs {
    fn default() -> Self {
        Self::new()
    }
}

impl MemFs {
    /// An empty filesystem: just the root directory.
    pub fn new() -> Self {
        let root = Arc::new(Inode {
            kind: FileKind::Dir,
            state: RwLock::new(State::new(Body::Dir(Box::new(DirData::new(ROOT))), 2)),
        });
        MemFs {
            root,
            inodes: Table::new(),
            budget: OnceLock::new(),
            next_ino: AtomicU64::new(ROOT + 1),
            topology: Mutex::new(()),
        }
    }

    fn inode(&self, ino: Ino) -> Result<Arc<Inode>> {
        if ino == ROOT {
            return Ok(self.root.clone());
        }
        self.inodes.get(ino).ok_or(Error::NotFound)
    }

    fn budget(&self) -> Option<&Budget> {
        self.budget.get().map(|b| &**b)
    }

    /// Frees an inode that has neither names nor handles left.
    fn forget_if_unused(&self, ino: Ino, state: &State) {
        if state.nlink == 0 && state.open == 0 && ino != ROOT {
            self.inodes.remove(ino, self.budget());
            if let Some(b) = self.budget() {
                let held = match &state.body {
                    Body::File(f) => f.held_bytes(),
                    Body::Symlink(target) => heap_cost(target.len()),
                    Body::Dir(d) => DIR_BYTES + d.held_bytes(),
                };
                b.refund_bytes(held);
                b.refund_inode(INODE_BYTES);
            }
        }
    }

    /// Drops one name of `ino` (already removed from its directory).
    fn drop_name(&self, ino: Ino, kind: FileKind) -> Result<()> {
        let node = self.inode(ino)?;
        let mut st = node.state.write();
        st.nlink = if kind == FileKind::Dir {
            0
        } else {
            st.nlink.saturating_sub(1)
        };
        st.ctime = Stamp::now();
        self.forget_if_unused(ino, &st);
        Ok(())
    }

    /// True when `dir` is `ancestor` or lies below it. Needs the topology
    /// lock, which keeps parent pointers still.
    fn is_within(&self, dir: Ino, ancestor: Ino) -> Result<bool> {
        crate::storage::is_within(dir, ancestor, ROOT, |ino| {
            match &self.inode(ino)?.state.read().body {
                Body::Dir(d) => Ok(d.parent),
                _ => Err(Error::NotDir),
            }
        })
    }
}

/// Points `name` in directory state `st` at `ino`, replacing any entry;
/// the new entry was paid for with `DirData::prepay`.
fn put_entry(
    st: &mut State,
    name: &str,
    ino: Ino,
    kind: FileKind,
    replaces_dir: bool,
    budget: Option<&Budget>,
) -> Result<()> {
    let d = st.dir_mut()?;
    d.remove(name, budget);
    d.insert_paid(name, ino, kind, budget);
    if replaces_dir {
        st.nlink = st.nlink.saturating_sub(1);
    }
    st.touch_modified();
    Ok(())
}

fn resolve_time(t: TimeSet, now: Stamp) -> Stamp {
    match t {
        TimeSet::Now => now,
        TimeSet::At(t) => t.into(),
    }
}

impl Storage for MemFs {
    fn root(&self) -> Ino {
        ROOT
    }

    fn attach_budget(&self, budget: Arc<Budget>) {
        // What the store held before (only its root, for a store mounted
        // fresh) is not counted.
        let _ = self.budget.set(budget);
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        let node = self.inode(dir)?;
        let st = node.state.read();
        let d = st.dir()?;
        if name == ".." {
            return Ok((d.parent, FileKind::Dir));
        }
        d.get(name).ok_or(Error::NotFound)
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        let node = self.inode(ino)?;
        let st = node.state.read();
        Ok(st.attr(ino, node.kind))
    }

    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        let node = self.inode(ino)?;
        let mut st = node.state.write();
        let now = Stamp::now();
        if let Some(size) = set.size {
            if size > MAX_FILE_SIZE {
                return Err(Error::FileTooBig);
            }
            match &mut st.body {
                Body::File(f) => {
                    let freed = f.set_size(size);
                    if let Some(b) = self.budget() {
                        b.refund_bytes(freed);
                    }
                }
                Body::Dir(_) => return Err(Error::IsDir),
                Body::Symlink(_) => return Err(Error::Invalid),
            }
            st.mtime = now;
        }
        if let Some(t) = set.atime {
            st.atime = resolve_time(t, now);
        }
        if let Some(mode) = set.mode {
            st.mode = mode & 0o7777;
        }
        if let Some(t) = set.mtime {
            st.mtime = resolve_time(t, now);
        }
        st.ctime = now;
        Ok(st.attr(ino, node.kind))
    }

    fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        let node = self.inode(ino)?;
        let st = node.state.read();
        match &st.body {
            Body::File(f) => Ok(f.read(offset, bufs)),
            Body::Dir(_) => Err(Error::IsDir),
            Body::Symlink(_) => Err(Error::Invalid),
        }
    }

    fn write(
        &self,
        ino: Ino,
        pos: WritePos,
        bufs: &[IoSlice<'_>],
        max_size: u64,
    ) -> Result<(usize, u64)> {
        let node = self.inode(ino)?;
        let mut st = node.state.write();
        let Body::File(f) = &mut st.body else {
            return Err(match node.kind {
                FileKind::Dir => Error::IsDir,
                _ => Error::Invalid,
            });
        };
        let offset = match pos {
            WritePos::At(offset) => offset,
            WritePos::Append => f.size(),
        };
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if len == 0 {
            return Ok((0, offset));
        }
        match offset.checked_add(len) {
            Some(end) if end <= MAX_FILE_SIZE.min(max_size) => {}
            _ => return Err(Error::FileTooBig),
        }
        if let Some(b) = self.budget.get() {
            // Charged before anything is written: a refused write changes
            // nothing.
            b.charge_bytes(f.growth(offset, len))?;
        }
        let written = f.write(offset, bufs);
        st.touch_modified();
        Ok((written, offset + written as u64))
    }

    fn create(&self, dir: Ino, name: &str, new: NewNode<'_>) -> Result<Attr> {
        let parent = self.inode(dir)?;
        let mut pst = parent.state.write();
        if pst.dir()?.get(name).is_some() {
            return Err(Error::Exists);
        }
        let budget = self.budget();
        pst.dir_mut()?.prepay(name, budget)?;
        // Nothing was added: give the entry's name back (the room made for
        // it stays, held and charged).
        let unpay = || {
            if let Some(b) = budget {
                b.refund_bytes(heap_cost(name.len()));
            }
        };
        // What the new inode's body holds besides its record.
        let body_bytes = match new {
            NewNode::Symlink(t) => heap_cost(t.len()),
            NewNode::Dir => DIR_BYTES,
            NewNode::File => 0,
        };
        if let Some(b) = budget {
            if let Err(e) = b.charge_inode(INODE_BYTES) {
                unpay();
                return Err(e);
            }
            if let Err(e) = b.charge_bytes(body_bytes) {
                b.refund_inode(INODE_BYTES);
                unpay();
                return Err(e);
            }
        }
        let (kind, body, nlink) = match new {
            NewNode::File => (FileKind::File, Body::File(FileData::default()), 1),
            NewNode::Dir => (FileKind::Dir, Body::Dir(Box::new(DirData::new(dir))), 2),
            NewNode::Symlink(target) => (FileKind::Symlink, Body::Symlink(target.into()), 1),
        };
        let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
        let state = State::new(body, nlink);
        let attr = state.attr(ino, kind);
        let node = Arc::new(Inode {
            kind,
            state: RwLock::new(state),
        });
        if let Err(e) = self.inodes.insert(ino, node, budget) {
            if let Some(b) = budget {
                b.refund_bytes(body_bytes);
                b.refund_inode(INODE_BYTES);
            }
            unpay();
            return Err(e);
        }
        pst.dir_mut()?.insert_paid(name, ino, kind, budget);
        if kind == FileKind::Dir {
            pst.nlink = pst.nlink.saturating_add(1);
        }
        pst.touch_modified();
        Ok(attr)
    }

    fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
        let node = self.inode(dir)?;
        let st = node.state.read();
        match &st.body {
            Body::Dir(d) => Ok(d.list(cursor, max)),
            _ => Err(Error::NotDir),
        }
    }

    fn readlink(&self, ino: Ino) -> Result<String> {
        let node = self.inode(ino)?;
        let st = node.state.read();
        match &st.body {
            Body::Symlink(target) => Ok(target.to_string()),
            _ => Err(Error::Invalid),
        }
    }

    fn unlink(&self, dir: Ino, name: &str) -> Result<()> {
        let budget = self.budget();
        let parent = self.inode(dir)?;
        let mut pst = parent.state.write();
        let d = pst.dir_mut()?;
        match d.get(name) {
            None => return Err(Error::NotFound),
            Some((_, FileKind::Dir)) => return Err(Error::IsDir),
            Some(_) => {}
        }
        if let Some((ino, kind)) = d.remove(name, budget) {
            pst.touch_modified();
            self.drop_name(ino, kind)?;
        }
        Ok(())
    }

    fn rmdir(&self, dir: Ino, name: &str) -> Result<()> {
        let _topology = self.topology.lock();
        let parent = self.inode(dir)?;
        let mut pst = parent.state.write();
        let (ino, kind) = pst.dir()?.get(name).ok_or(Error::NotFound)?;
        if kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        let child = self.inode(ino)?;
        let mut cst = child.state.write();
        if !cst.dir()?.is_empty() {
            return Err(Error::NotEmpty);
        }
        pst.dir_mut()?.remove(name, self.budget());
        pst.nlink = pst.nlink.saturating_sub(1);
        pst.touch_modified();
        cst.nlink = 0;
        cst.ctime = Stamp::now();
        self.forget_if_unused(ino, &cst);
        Ok(())
    }

    fn rename(&self, src_dir: Ino, src_name: &str, dst_dir: Ino, dst_name: &str) -> Result<()> {
        // Renaming a non-directory within one directory locks only that
        // directory and leaf inodes, so it needs no store-wide lock; every
        // other rename changes parent pointers or locks a second directory.
        let (src_ino, src_kind) = self.lookup(src_dir, src_name)?;
        let _topology =
            (src_dir != dst_dir || src_kind == FileKind::Dir).then(|| self.topology.lock());
        // The subtree check walks parent pointers, which only change under
        // `topology`; it must run before the parents are locked because the
        // walk may pass through them.
        if src_kind == FileKind::Dir && self.is_within(dst_dir, src_ino)? {
            return Err(Error::Invalid);
        }
        // Onto a directory holding the source (`rename("d/e/f", "d")`): not
        // empty, whatever the kinds, as on Linux; the directory may be the
        // source's parent, which must not be locked twice below. Only a
        // rename under `topology` can make it an ancestor, so looking it up
        // before the locks is sound.
        if src_dir != dst_dir
            && let Ok((dst_ino, FileKind::Dir)) = self.lookup(dst_dir, dst_name)
            && matches!(self.is_within(src_dir, dst_ino), Ok(true))
        {
            return Err(Error::NotEmpty);
        }
        let src_parent = self.inode(src_dir)?;
        let dst_parent = self.inode(dst_dir)?;
        let (mut sst, mut dst_guard);
        if src_dir == dst_dir {
            sst = src_parent.state.write();
            dst_guard = None;
        } else if src_dir < dst_dir {
            sst = src_parent.state.write();
            dst_guard = Some(dst_parent.state.write());
        } else {
            dst_guard = Some(dst_parent.state.write());
            sst = src_parent.state.write();
        }
        // Unlink and create take only the parent's lock, so names are
        // checked again now that we hold it.
        if sst.dir()?.get(src_name) != Some((src_ino, src_kind)) {
            return Err(Error::NotFound);
        }
        let dst_dir_state: &State = dst_guard.as_deref().unwrap_or(&*sst);
        let replaced = dst_dir_state.dir()?.get(dst_name);
        let replaced_dir = match replaced {
            Some((dst_ino, _)) if dst_ino == src_ino => return Ok(()),
            Some((_, FileKind::Dir)) if src_kind != FileKind::Dir => return Err(Error::IsDir),
            Some((_, kind)) if src_kind == FileKind::Dir && kind != FileKind::Dir => {
                return Err(Error::NotDir);
            }
            Some((dst_ino, FileKind::Dir)) => Some(self.inode(dst_ino)?),
            _ => None,
        };
        // Held to the end so that no entry can be created in the replaced
        // directory between this emptiness check and its removal.
        let replaced_dir_guard = match &replaced_dir {
            Some(node) => {
                let guard = node.state.write();
                if !guard.dir()?.is_empty() {
                    return Err(Error::NotEmpty);
                }
                Some(guard)
            }
            None => None,
        };

        // Room for the new entry, and what its name costs beyond the old
        // one's, are charged before anything moves; the old entry and any
        // it replaces are refunded as they go.
        let budget = self.budget();
        let (new_name, old_name) = (dir::name_cost(dst_name), dir::name_cost(src_name));
        if let Some(dst_st) = dst_guard.as_deref_mut() {
            dst_st.dir_mut()?.reserve(budget)?;
        }
        if let Some(b) = budget {
            b.charge_bytes(new_name.saturating_sub(old_name))?;
        }
        let replaces_dir = replaced_dir_guard.is_some();
        match dst_guard.as_deref_mut() {
            None => {
                sst.dir_mut()?.rename_within(src_name, dst_name, budget);
                if replaces_dir {
                    sst.nlink = sst.nlink.saturating_sub(1);
                }
                sst.touch_modified();
            }
            Some(dst_st) => {
                sst.dir_mut()?.remove(src_name, budget);
                if let Some(b) = budget {
                    // The removal refunded the old name; the new one is held.
                    b.force_bytes(new_name.min(old_name));
                }
                put_entry(dst_st, dst_name, src_ino, src_kind, replaces_dir, budget)?;
                if src_kind == FileKind::Dir {
                    dst_st.nlink = dst_st.nlink.saturating_add(1);
                    sst.nlink = sst.nlink.saturating_sub(1);
                    if let Body::Dir(moved) = &mut self.inode(src_ino)?.state.write().body {
                        moved.parent = dst_dir;
                    }
                }
            }
        }
        sst.touch_modified();
        match (replaced, replaced_dir_guard) {
            (Some((ino, _)), Some(mut gone)) => {
                gone.nlink = 0;
                gone.ctime = Stamp::now();
                self.forget_if_unused(ino, &gone);
            }
            (Some((ino, kind)), None) => self.drop_name(ino, kind)?,
            (None, _) => {}
        }
        drop((sst, dst_guard));
        self.touch_ctime(src_ino)
    }

    fn link(&self, ino: Ino, dir: Ino, name: &str) -> Result<Attr> {
        let node = self.inode(ino)?;
        if node.kind == FileKind::Dir {
            return Err(Error::NotPermitted);
        }
        let parent = self.inode(dir)?;
        let mut pst = parent.state.write();
        if pst.dir()?.get(name).is_some() {
            return Err(Error::Exists);
        }
        let mut st = node.state.write();
        if st.nlink == 0 {
            return Err(Error::NotFound);
        }
        pst.dir_mut()?.insert(name, ino, node.kind, self.budget())?;
        st.nlink = st.nlink.saturating_add(1);
        st.ctime = Stamp::now();
        pst.touch_modified();
        Ok(st.attr(ino, node.kind))
    }

    fn allocate(&self, ino: Ino, size: u64) -> Result<()> {
        if size > MAX_FILE_SIZE {
            return Err(Error::FileTooBig);
        }
        let node = self.inode(ino)?;
        let mut st = node.state.write();
        let Body::File(f) = &mut st.body else {
            return Err(Error::BadHandle);
        };
        if f.size() < size {
            f.set_size(size);
            st.touch_modified();
        }
        Ok(())
    }

    fn open(&self, ino: Ino, _write: bool) -> Result<()> {
        let node = self.inode(ino)?;
        let mut st = node.state.write();
        st.open = st.open.saturating_add(1);
        Ok(())
    }

    fn release(&self, ino: Ino) {
        if let Ok(node) = self.inode(ino) {
            let mut st = node.state.write();
            st.open = st.open.saturating_sub(1);
            self.forget_if_unused(ino, &st);
        }
    }

    fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
        let node = self.inode(ino)?;
        let st = node.state.read();
        match &st.body {
            Body::File(f) => Ok(f.next_data(offset)),
            Body::Dir(_) => Err(Error::IsDir),
            Body::Symlink(_) => Err(Error::Invalid),
        }
    }
}

impl MemFs {
    fn touch_ctime(&self, ino: Ino) -> Result<()> {
        self.inode(ino)?.state.write().ctime = Stamp::now();
        Ok(())
    }

    /// What the store holds that a budget attached at its creation was
    /// charged for, counted afresh from its structures: the inode table,
    /// each inode's record and body, and each directory's containers and
    /// names.
    #[cfg(test)]
    fn recount(&self) -> u64 {
        let body = |st: &State| match &st.body {
            Body::File(f) => f.held_bytes(),
            Body::Symlink(target) => heap_cost(target.len()),
            Body::Dir(d) => {
                let names: u64 = d
                    .list(0, usize::MAX)
                    .iter()
                    .map(|e| dir::name_cost(&e.name))
                    .sum();
                DIR_BYTES + d.held_bytes() + names
            }
        };
        let others: u64 = self
            .inodes
            .keys()
            .into_iter()
            .filter_map(|ino| self.inodes.get(ino))
            .map(|node| INODE_BYTES + body(&node.state.read()))
            .sum();
        // The root's record and box were there before any budget.
        let root = body(&self.root.state.read()) - DIR_BYTES;
        self.inodes.held_bytes() + others + root
    }

    /// Number of live inodes (named or held open), for consistency checks.
    #[cfg(test)]
    fn inode_count(&self) -> usize {
        self.inodes.len() + 1
    }
}

#[cfg(test)]
mod tests;
