//! `ReadOnly`: any backend with every change refused.
//!
//! Reads pass through; every call that would change the store answers
//! `EROFS` before reaching it, so the wrapped store (a host directory, say)
//! is never modified through this wrapper.

use crate::error::{Error, Result};
use crate::storage::{
    Attr, DirEntry, FileKind, Ino, NewNode, PathChange, PathOpen, PlainPath, SetAttr, Storage,
    TimeSet, WritePos,
};
use std::io::{IoSlice, IoSliceMut};

/// A read-only view of another store: creating, writing, truncating,
/// setting times, renaming, linking and removing all fail with `EROFS`.
///
/// ```
/// use wasi_common_vfs::{Error, MemFs, Storage, Vfs};
///
/// let vfs = Vfs::builder().mount("/data", MemFs::new().read_only()).build()?;
/// assert!(matches!(
///     vfs.write("/data/x", b"no").map_err(Error::into_innermost),
///     Err(Error::ReadOnly)
/// ));
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
pub struct ReadOnly<S> {
    inner: S,
}

impl<S: Storage> ReadOnly<S> {
    /// Wraps `inner`, which from then on opens its files read-only (a
    /// host directory holds only read-only host handles).
    pub fn new(inner: S) -> Self {
        inner.seal();
        ReadOnly { inner }
    }

    /// Wraps `inner` without sealing it: a read-only view of a store that
    /// is still written through elsewhere (see
    /// [`Vfs::read_only`](crate::Vfs::read_only)). Every change through
    /// the view is refused as through [`new`](Self::new)'s, and the view
    /// asks the store for its files only to read them.
    pub(crate) fn viewing(inner: S) -> Self {
        ReadOnly { inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Storage> Storage for ReadOnly<S> {
    fn root(&self) -> Ino {
        self.inner.root()
    }

    fn host_device(&self) -> Option<u64> {
        self.inner.host_device()
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn attach_budget(&self, budget: std::sync::Arc<crate::storage::budget::Budget>) {
        self.inner.attach_budget(budget)
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        self.inner.lookup(dir, name)
    }

    fn lookup_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
        self.inner.lookup_attr(dir, name)
    }

    fn peek_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
        self.inner.peek_attr(dir, name)
    }

    fn lookup_dirs(&self, dir: Ino, names: &[&str]) -> Option<Ino> {
        self.inner.lookup_dirs(dir, names)
    }

    fn open_path(&self, dir: Ino, path: PlainPath<'_>, how: PathOpen) -> Result<Option<Attr>> {
        // A create is a change: left to `create`, which refuses it. Nothing
        // is written through this view, so what it readies is read-only
        // whatever the caller means to do.
        if how.create {
            return Ok(None);
        }
        let how = PathOpen {
            write: false,
            ..how
        };
        self.inner.open_path(dir, path, how)
    }

    fn peek_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<Attr>> {
        self.inner.peek_path(dir, path)
    }

    fn change_path(&self, _dir: Ino, _path: PlainPath<'_>, _: PathChange<'_>) -> Result<bool> {
        // Left to the walk, whose calls on this view refuse the change.
        Ok(false)
    }

    fn rename_path(&self, _: Ino, _: PlainPath<'_>, _: Ino, _: PlainPath<'_>) -> Result<bool> {
        Ok(false)
    }

    fn link_path(&self, _: Ino, _: PlainPath<'_>, _: Ino, _: PlainPath<'_>) -> Result<bool> {
        Ok(false)
    }

    fn set_times_path(
        &self,
        _: Ino,
        _: PlainPath<'_>,
        _: bool,
        _: Option<TimeSet>,
        _: Option<TimeSet>,
    ) -> Result<bool> {
        Ok(false)
    }

    fn readlink_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<String>> {
        self.inner.readlink_path(dir, path)
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.inner.getattr(ino)
    }

    fn setattr(&self, _ino: Ino, _set: &SetAttr) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        self.inner.read(ino, offset, bufs)
    }

    fn write(
        &self,
        _ino: Ino,
        _pos: WritePos,
        _bufs: &[IoSlice<'_>],
        _max_size: u64,
    ) -> Result<(usize, u64)> {
        Err(Error::ReadOnly)
    }

    fn create(&self, dir: Ino, name: &str, _node: NewNode<'_>) -> Result<Attr> {
        // As on a read-only mount, a name that is taken is EEXIST first.
        match self.inner.lookup(dir, name) {
            Ok(_) => Err(Error::Exists),
            Err(_) => Err(Error::ReadOnly),
        }
    }

    fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.inner.readdir(dir, cursor, max)
    }

    fn readlink(&self, ino: Ino) -> Result<String> {
        self.inner.readlink(ino)
    }

    fn readlink_at(&self, dir: Ino, name: &str) -> Result<String> {
        self.inner.readlink_at(dir, name)
    }

    fn unlink(&self, _dir: Ino, _name: &str) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn rmdir(&self, _dir: Ino, _name: &str) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn rename(&self, _src_dir: Ino, _src_name: &str, _dst_dir: Ino, _dst_name: &str) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn link(&self, _ino: Ino, _dir: Ino, _name: &str) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    fn allocate(&self, _ino: Ino, _size: u64) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn open(&self, ino: Ino, _write: bool) -> Result<()> {
        // As in `open_path`: nothing is written through this view.
        self.inner.open(ino, false)
    }

    fn release(&self, ino: Ino) {
        self.inner.release(ino)
    }

    fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
        self.inner.next_data(ino, offset)
    }
}
