//! The storage layer: an inode-level filesystem trait and its backends.
//!
//! A backend knows inodes and names inside one directory, never paths: path
//! resolution, symlink following and confinement belong to the namespace
//! layer above. Operations are synchronous and must be safe to call from many
//! threads at once. An open file is a handle on an inode (see
//! [`Storage::open`]), so rename or unlink of an open file behaves as on
//! POSIX.
//!
//! Backends report failures with the crate's [`Error`] and
//! enforce the POSIX rules that concern one store: `ENOTEMPTY`, `EISDIR`,
//! `ENOTDIR`, `EINVAL` for a rename into its own subtree, `EPERM` for a hard
//! link to a directory, exact `nlink` counts.

pub mod budget;
pub mod host;
mod host_names;
pub mod mem;
pub mod overlay;
mod plain_path;
pub mod read_only;

pub use plain_path::PlainPath;
pub(crate) use plain_path::plain_name;

use crate::error::{Error, Result};
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::time::SystemTime;

/// An inode number, unique within one store for the store's lifetime.
pub type Ino = u64;

/// The largest file size any backend accepts (POSIX `off_t` is signed).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The longest name of one directory entry, in bytes.
pub const NAME_MAX: usize = 255;

/// Listing cursors from this value up are *wide*: a position that needs
/// 63 bits, such as a host directory's own cookie (a hash, on ext4), kept
/// in the cursor itself so the store remembers nothing between calls.
/// Whatever lists a store's entries among others of its own (the mount
/// table's mountpoints, an overlay's other layer) passes a wide cursor on
/// unchanged and numbers its own positions below this; an overlay gives
/// its upper layer's wide cursors numbers of its own.
pub const WIDE_CURSORS: u64 = 1 << 63;

/// `name` in the directory whose path is `dir` (`""` for the root): the
/// relative paths an overlay's changes and the savers report.
pub(crate) fn join_path(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// An inode's attributes, as `stat` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// The inode number.
    pub ino: Ino,
    /// What the inode is.
    pub kind: FileKind,
    /// Size in bytes: file length, symlink target length, or a nominal size
    /// for directories.
    pub size: u64,
    /// Number of names (hard links) referring to the inode; for a directory,
    /// 2 plus its number of subdirectories.
    pub nlink: u64,
    /// Last access time.
    pub atime: SystemTime,
    /// Last data modification time.
    pub mtime: SystemTime,
    /// Last status change time.
    pub ctime: SystemTime,
    /// Permission bits (`0o7777` at most). WASI does not show them to
    /// guests; archives and host directories keep them.
    pub mode: u32,
}

/// A timestamp to set: an explicit value or the current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// The time of the call.
    Now,
    /// This exact time.
    At(SystemTime),
}

/// Attribute changes for [`Storage::setattr`]; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New file size (truncate or extend with a hole). Files only.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSet>,
    /// New modification time.
    pub mtime: Option<TimeSet>,
    /// New permission bits.
    pub mode: Option<u32>,
}

/// What [`Storage::create`] makes.
#[derive(Debug, Clone, Copy)]
pub enum NewNode<'a> {
    /// An empty regular file.
    File,
    /// An empty directory.
    Dir,
    /// A symbolic link holding this target.
    Symlink(&'a str),
}

/// Where [`Storage::write`] puts the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePos {
    /// At this byte offset.
    At(u64),
    /// At the end of the file, atomically with respect to other writers.
    Append,
}

/// What a one-step open ([`Storage::open_path`]) asks of the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOpen {
    /// A missing last name is created as an empty file.
    pub create: bool,
    /// With `create`: an existing file is not opened.
    pub exclusive: bool,
    /// The descriptor will write. Without it (or `create`), a store that
    /// opens host files opens this one read-only, so a read takes no write
    /// access on the host (which would need the host's permission to
    /// write and keep the host from running the file while it is open).
    pub write: bool,
}

/// What a one-step change ([`Storage::change_path`]) does to the path's
/// last name.
#[derive(Debug, Clone, Copy)]
pub enum PathChange<'a> {
    /// Removes it, as [`Storage::unlink`] does.
    Unlink,
    /// Removes it, as [`Storage::rmdir`] does.
    Rmdir,
    /// Makes it, as [`Storage::make`] does.
    Make(NewNode<'a>),
}

/// One entry of a directory listing: of a store's
/// ([`Storage::readdir`]) or of a tree's ([`Vfs::read_dir`](crate::Vfs::read_dir)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// The inode it names.
    pub ino: Ino,
    /// What that inode is (a symlink is not followed).
    pub kind: FileKind,
    /// The cursor that continues the listing after this entry, for the
    /// store (or tree) that listed it.
    pub next: u64,
}

/// An inode-level filesystem.
///
/// Names passed in are single path components: never empty, never `.` or
/// `..` (except for [`Storage::lookup`], which answers `..` with the parent
/// directory), without `/` or NUL, and at most [`NAME_MAX`] bytes; the
/// namespace layer checks that before calling.
pub trait Storage: Send + Sync + 'static {
    /// The root directory's inode.
    fn root(&self) -> Ino;

    /// This store behind a [`ReadOnly`](read_only::ReadOnly) wrapper, which
    /// refuses every change with `EROFS`.
    fn read_only(self) -> read_only::ReadOnly<Self>
    where
        Self: Sized,
    {
        read_only::ReadOnly::new(self)
    }

    /// Makes the store charge the memory it allocates to `budget` (a
    /// store that holds nothing in memory ignores it). Called once, when a
    /// tree with limits is built.
    fn attach_budget(&self, _budget: std::sync::Arc<budget::Budget>) {}

    /// Tells the store that from now on it is only read, because it sits
    /// behind [`ReadOnly`](read_only::ReadOnly) (which calls this once): a
    /// store of host files then opens them read-only, so not even a bug
    /// above it could write through its handles.
    fn seal(&self) {}

    /// Renames `name` in `dir` of this store to `dst_name` in `dst_dir` of
    /// another store, `dst`, as one host `renameat` when both are host
    /// directories on one host filesystem (as between two of wasi-common's
    /// host preopens); `EXDEV` otherwise, which is the default.
    fn rename_to(
        &self,
        _dir: Ino,
        _name: &str,
        _dst: &dyn Storage,
        _dst_dir: Ino,
        _dst_name: &str,
    ) -> Result<()> {
        Err(Error::CrossDevice)
    }

    /// Links `ino` of this store as `dst_name` in `dst_dir` of another
    /// store, `dst`, as [`rename_to`](Self::rename_to) renames; `EXDEV`
    /// by default.
    fn link_to(&self, _ino: Ino, _dst: &dyn Storage, _dst_dir: Ino, _dst_name: &str) -> Result<()> {
        Err(Error::CrossDevice)
    }

    /// The open host directory behind `dir`, for a store of host
    /// directories that lets [`rename_to`](Self::rename_to) and
    /// [`link_to`](Self::link_to) of another store write into it; `None`
    /// (the default) for every other store, and for a read-only one.
    fn host_dir(&self, _dir: Ino) -> Option<std::sync::Arc<std::os::fd::OwnedFd>> {
        None
    }

    /// The host filesystem (its device number) this store is a window
    /// onto, for a host directory; `None` (the default) for every other
    /// store. Mounts of one host filesystem report one device to guests,
    /// as rename and link work between them.
    fn host_device(&self) -> Option<u64> {
        None
    }

    /// True when every change is refused with `EROFS`; the namespace then
    /// refuses to open files for writing, as a read-only mount does.
    fn is_read_only(&self) -> bool {
        false
    }

    /// The inode named `name` in directory `dir`, and its kind. `..` gives
    /// the parent (the root's parent is the root).
    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)>;

    /// [`lookup`](Storage::lookup), with the entry's attributes when the
    /// store learned them on the way (a host directory's `fstatat` does),
    /// so that a `stat` of a path asks the store once. `None` by default.
    fn lookup_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
        let (ino, kind) = self.lookup(dir, name)?;
        Ok((ino, kind, None))
    }

    /// [`lookup_attr`](Storage::lookup_attr) for a caller that wants the
    /// entry's attributes and nothing more (a `stat`): no call on the
    /// inode follows, unless it is a symlink the caller reads, so a store
    /// that keeps a record of how to reach each inode it was asked about
    /// may keep none of a file. Never `..`. The default is `lookup_attr`.
    fn peek_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
        self.lookup_attr(dir, name)
    }

    /// The directory reached from `dir` through the directories `names`
    /// (plain names, each a directory of this store, none a symlink), in
    /// one step, for a store where that is cheaper than one lookup per
    /// name (a host directory's `openat2`). `None` when the store cannot,
    /// or anything on the way is not such a directory: the caller then
    /// looks the names up one by one, which gives the exact answer. A
    /// store that always says `None` (the default) loses only speed; one
    /// that can take names so answers `Some(dir)` for no names, so that a
    /// caller can ask once whether to try.
    fn lookup_dirs(&self, dir: Ino, names: &[&str]) -> Option<Ino> {
        let _ = (dir, names);
        None
    }

    /// Looks up `path` (plain names: directories of this store, none a
    /// symlink, then a regular file) from `dir` in one step, and
    /// readies that file for the [`open`](Self::open) of it that follows,
    /// for a store where that is cheaper than a lookup per name and an open
    /// (a host directory's one `openat2`), as `how` asks ([`PathOpen`]).
    ///
    /// `Ok(None)` when the store cannot, or the path is anything else (a
    /// symlink on the way, a missing directory, a directory at the end): it
    /// has then changed nothing, and the caller resolves the path name by
    /// name, which gives the exact answer. `Err` only for a failure after
    /// the file was made. The default is `Ok(None)`.
    fn open_path(&self, dir: Ino, path: PlainPath<'_>, how: PathOpen) -> Result<Option<Attr>> {
        let _ = (dir, path, how);
        Ok(None)
    }

    /// Makes `change` to the last name of `path` (plain names: directories
    /// of this store, none a symlink, then that name) from `dir`, reaching
    /// its directory in one step, where that is cheaper than a lookup per
    /// name (a host directory's `openat2`, then the change on the handle it
    /// gives). Nothing is kept of the directory reached.
    ///
    /// `Ok(true)` once made; `Err` is the change's own answer, as the
    /// directory's [`unlink`](Self::unlink), [`rmdir`](Self::rmdir) or
    /// [`make`](Self::make) gives it, or `ENOENT` for a directory on the
    /// way that is missing (the answer a lookup per name would give too).
    /// `Ok(false)` when the store cannot, or the way is anything else (a
    /// symlink or a file on it, another filesystem): nothing changed, and
    /// the caller resolves the path name by name, which gives the exact
    /// answer. The default is `Ok(false)`, as a read-only view must answer.
    fn change_path(&self, dir: Ino, path: PlainPath<'_>, change: PathChange<'_>) -> Result<bool> {
        let _ = (dir, path, change);
        Ok(false)
    }

    /// Moves the last name of `from` (plain names from `src_dir`:
    /// directories of this store, none a symlink, then that name) to the
    /// last name of `to` (likewise from `dst_dir`), with POSIX `rename(2)`
    /// rules, reaching both directories in one step, where that is cheaper
    /// than a lookup per name (a host directory's `openat2` of each way,
    /// one when they are the same and none for a name in `src_dir` or
    /// `dst_dir` itself, then `renameat`).
    ///
    /// `Ok(true)` once moved; `Err` is [`rename`](Self::rename)'s own
    /// answer, or `ENOENT` for a directory on either way that is missing.
    /// `Ok(false)` when the store cannot, or either way is anything else:
    /// nothing changed, and the caller resolves both paths name by name.
    /// The default is `Ok(false)`, as a read-only view must answer.
    fn rename_path(
        &self,
        src_dir: Ino,
        from: PlainPath<'_>,
        dst_dir: Ino,
        to: PlainPath<'_>,
    ) -> Result<bool> {
        let _ = (src_dir, from, dst_dir, to);
        Ok(false)
    }

    /// Adds the last name of `to` (plain names from `dst_dir`:
    /// directories of this store, none a symlink, then that name) for what
    /// the last name of `from` (likewise from `src_dir`) names, a symlink
    /// not followed, with POSIX `link(2)` rules, reaching both directories
    /// in one step as [`rename_path`](Self::rename_path) does.
    ///
    /// `Ok(true)` once linked; `Err` is the answer a lookup of `from` and
    /// [`link`](Self::link) would give (`ENOENT`, `EEXIST`, `EPERM` for a
    /// directory), or `ENOENT` for a directory on either way that is
    /// missing. `Ok(false)` when the store cannot, or either way is
    /// anything else: nothing changed, and the caller resolves both paths
    /// name by name. The default is `Ok(false)`, as a read-only view must
    /// answer.
    fn link_path(
        &self,
        src_dir: Ino,
        from: PlainPath<'_>,
        dst_dir: Ino,
        to: PlainPath<'_>,
    ) -> Result<bool> {
        let _ = (src_dir, from, dst_dir, to);
        Ok(false)
    }

    /// Sets the access and modification times (`None` leaves one as it is)
    /// of what `path` (plain names: directories of this store, none a
    /// symlink, then any name) names from `dir`: of a symlink there itself,
    /// or with `follow` of what it points to. The path is taken in one
    /// step, where that is cheaper than a lookup per name and a call on the
    /// inode (a host directory's one `openat2` and `utimensat`).
    ///
    /// `Ok(true)` once set; `Err` is [`setattr`](Self::setattr)'s own
    /// answer, or `ENOENT` for a missing name. `Ok(false)` when the store
    /// cannot, or the path is anything else (a symlink or a file on the
    /// way, a symlink to follow at the end): nothing changed, and the
    /// caller resolves the path name by name. The default is `Ok(false)`,
    /// as a read-only view must answer.
    fn set_times_path(
        &self,
        dir: Ino,
        path: PlainPath<'_>,
        follow: bool,
        atime: Option<TimeSet>,
        mtime: Option<TimeSet>,
    ) -> Result<bool> {
        let _ = (dir, path, follow, atime, mtime);
        Ok(false)
    }

    /// The target of the symlink `path` (plain names: directories of this
    /// store, none a symlink, then the link's name) names from `dir`,
    /// reaching its directory in one step, where that is cheaper than a
    /// lookup per name (a host directory's `openat2`, then `readlinkat`).
    ///
    /// `Err` is [`readlink_at`](Self::readlink_at)'s own answer (`ENOENT`,
    /// `EINVAL` for anything but a symlink), or `ENOENT` for a directory
    /// on the way that is missing. `Ok(None)` when the store cannot, or the
    /// way is anything else: the caller resolves the path name by name.
    /// The default is `Ok(None)`.
    fn readlink_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<String>> {
        let _ = (dir, path);
        Ok(None)
    }

    /// The attributes of what `path` (plain names: directories of this
    /// store, none a symlink, then any name, a symlink not followed) names
    /// from `dir`, looked up in one step, for a `stat` and nothing more,
    /// where that is cheaper than a lookup per name (a host directory's
    /// one `openat2`). Nothing is kept of the inode found.
    ///
    /// `Err(NotFound)` when a name is missing (the answer a lookup per name
    /// would give too); `Ok(None)` when the store cannot, or the path is
    /// anything else (a symlink or a file on the way, another filesystem):
    /// the caller then resolves it name by name, which gives the exact
    /// answer. The default is `Ok(None)`.
    fn peek_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<Attr>> {
        let _ = (dir, path);
        Ok(None)
    }

    /// The inode's attributes.
    fn getattr(&self, ino: Ino) -> Result<Attr>;

    /// Changes size and times; returns the new attributes.
    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr>;

    /// Reads from `offset` into `bufs` in order; returns the bytes read
    /// (0 at or past end of file). Holes read as zeros.
    fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize>;

    /// Writes `bufs` in order at `pos`; returns the bytes written and the
    /// offset just past them. Writing past the end leaves a hole.
    ///
    /// A write that would end past `max_size` (the tree's file-size limit)
    /// fails with `EFBIG` and changes nothing; for an append, the check is
    /// made atomically with the write, so writers on separate descriptors
    /// cannot overshoot the limit together.
    fn write(
        &self,
        ino: Ino,
        pos: WritePos,
        bufs: &[IoSlice<'_>],
        max_size: u64,
    ) -> Result<(usize, u64)>;

    /// Creates `name` in `dir`; `EEXIST` if the name is taken.
    fn create(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<Attr>;

    /// [`create`](Self::create), for a caller that wants nothing back (a
    /// guest's `mkdir` or `symlink`): a store that would have to ask again
    /// for what it made (a host directory's `fstatat` after `mkdirat`)
    /// need not. The default is `create`.
    fn make(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<()> {
        self.create(dir, name, node).map(drop)
    }

    /// Up to `max` entries of `dir` from `cursor` (0 is the start), without
    /// `.` and `..`. A cursor stays valid while entries are added or removed:
    /// a listing continued from it neither repeats nor skips entries that
    /// were present throughout. Fewer than `max` entries means the end.
    ///
    /// Cursors are the store's own numbers: small ones, below 2^59, or
    /// wide ones, from [`WIDE_CURSORS`] up, which whatever lists this
    /// store's entries among others passes on unchanged. The numbers
    /// between are theirs: the mount table lists its mountpoints from
    /// 2^62, and an overlay, which takes its layers' small cursors below
    /// 2^59 (upper) and 2^60 (lower), numbers its own up to 2^62, so it
    /// can be mounted but is no layer of another overlay. A cursor the
    /// store never handed out may end the listing or fail with `EINVAL`,
    /// but reaches nothing outside `dir`.
    fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>>;

    /// The target of a symlink; `EINVAL` for any other kind.
    fn readlink(&self, ino: Ino) -> Result<String>;

    /// [`readlink`](Self::readlink) of the name `name` in `dir`: `ENOENT`
    /// when there is no such name and `EINVAL` for anything but a symlink,
    /// since the namespace may call it without looking the name up first.
    /// The default looks it up and reads it.
    fn readlink_at(&self, dir: Ino, name: &str) -> Result<String> {
        match self.lookup(dir, name)? {
            (ino, FileKind::Symlink) => self.readlink(ino),
            _ => Err(Error::Invalid),
        }
    }

    /// Removes the non-directory `name` from `dir`: `ENOENT` when there is
    /// no such name and `EISDIR` for a directory, since the namespace may
    /// call it without looking the name up first.
    fn unlink(&self, dir: Ino, name: &str) -> Result<()>;

    /// Removes the empty directory `name` from `dir`: `ENOENT` when there
    /// is no such name and `ENOTDIR` for anything but a directory, since
    /// the namespace may call it without looking the name up first.
    fn rmdir(&self, dir: Ino, name: &str) -> Result<()>;

    /// Moves `src_dir/src_name` to `dst_dir/dst_name`, atomically replacing
    /// a compatible destination, with POSIX `rename(2)` rules.
    fn rename(&self, src_dir: Ino, src_name: &str, dst_dir: Ino, dst_name: &str) -> Result<()>;

    /// Adds the name `dir/name` for the existing non-directory `ino`.
    fn link(&self, ino: Ino, dir: Ino, name: &str) -> Result<Attr>;

    /// Grows the file to at least `size` bytes (a hole), atomically with
    /// respect to concurrent writes; never shrinks it. This is
    /// `posix_fallocate` for a store that allocates lazily.
    fn allocate(&self, ino: Ino, size: u64) -> Result<()>;

    /// Takes a handle on `ino`: the inode and its data stay alive, even
    /// once unlinked, until the matching [`Storage::release`]. `write`
    /// says that the handle's owner may write the file: a store of host
    /// files then opens it for writing and fails as the host's open fails
    /// (`EACCES`, `ETXTBSY`), where a handle only read through opens it
    /// read-only.
    fn open(&self, ino: Ino, write: bool) -> Result<()>;

    /// Gives back a handle taken by [`Storage::open`].
    fn release(&self, ino: Ino);

    /// The first run of stored bytes of the regular file `ino` that ends
    /// after `offset`, as `(start, end)` with `offset <= start < end`, the
    /// way `SEEK_DATA` and then `SEEK_HOLE` find it; `None` when only a
    /// hole (or nothing) lies past `offset`. Bytes outside every run read
    /// as zeros. Saves and copies use it to keep holes as holes, so a
    /// sparse file costs them its data, not its size.
    ///
    /// The default, for a store that keeps no holes, reports the rest of
    /// the file as one run.
    fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
        let size = self.getattr(ino)?.size;
        Ok((offset < size).then_some((offset, size)))
    }
}

/// True when directory `dir` is `ancestor` or lies below it, walking up
/// with `parent_of` to `root`. Renames need it both ways: a directory may
/// not move into its own subtree (`EINVAL`), and a directory holding the
/// source may not be replaced by it (`ENOTEMPTY`). The caller keeps parent
/// pointers still while it runs.
pub(crate) fn is_within(
    dir: Ino,
    ancestor: Ino,
    root: Ino,
    parent_of: impl Fn(Ino) -> Result<Ino>,
) -> Result<bool> {
    let mut cur = dir;
    while cur != ancestor {
        if cur == root {
            return Ok(false);
        }
        cur = parent_of(cur)?;
    }
    Ok(true)
}

/// Implements [`Storage`] for a smart pointer to a store by forwarding
/// every call to the store it points to.
macro_rules! forward_storage {
    ($pointer:ty) => {
        impl Storage for $pointer {
            fn root(&self) -> Ino {
                (**self).root()
            }
            fn is_read_only(&self) -> bool {
                (**self).is_read_only()
            }
            fn seal(&self) {
                (**self).seal()
            }
            fn rename_to(
                &self,
                dir: Ino,
                name: &str,
                dst: &dyn Storage,
                dst_dir: Ino,
                dst_name: &str,
            ) -> Result<()> {
                (**self).rename_to(dir, name, dst, dst_dir, dst_name)
            }
            fn link_to(
                &self,
                ino: Ino,
                dst: &dyn Storage,
                dst_dir: Ino,
                dst_name: &str,
            ) -> Result<()> {
                (**self).link_to(ino, dst, dst_dir, dst_name)
            }
            fn host_device(&self) -> Option<u64> {
                (**self).host_device()
            }
            fn host_dir(&self, dir: Ino) -> Option<std::sync::Arc<std::os::fd::OwnedFd>> {
                (**self).host_dir(dir)
            }
            fn attach_budget(&self, budget: std::sync::Arc<budget::Budget>) {
                (**self).attach_budget(budget)
            }
            fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
                (**self).lookup(dir, name)
            }
            fn lookup_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
                (**self).lookup_attr(dir, name)
            }
            fn peek_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
                (**self).peek_attr(dir, name)
            }
            fn lookup_dirs(&self, dir: Ino, names: &[&str]) -> Option<Ino> {
                (**self).lookup_dirs(dir, names)
            }
            fn open_path(
                &self,
                dir: Ino,
                path: PlainPath<'_>,
                how: PathOpen,
            ) -> Result<Option<Attr>> {
                (**self).open_path(dir, path, how)
            }
            fn peek_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<Attr>> {
                (**self).peek_path(dir, path)
            }
            fn change_path(
                &self,
                dir: Ino,
                path: PlainPath<'_>,
                change: PathChange<'_>,
            ) -> Result<bool> {
                (**self).change_path(dir, path, change)
            }
            fn rename_path(
                &self,
                src_dir: Ino,
                from: PlainPath<'_>,
                dst_dir: Ino,
                to: PlainPath<'_>,
            ) -> Result<bool> {
                (**self).rename_path(src_dir, from, dst_dir, to)
            }
            fn link_path(
                &self,
                src_dir: Ino,
                from: PlainPath<'_>,
                dst_dir: Ino,
                to: PlainPath<'_>,
            ) -> Result<bool> {
                (**self).link_path(src_dir, from, dst_dir, to)
            }
            fn set_times_path(
                &self,
                dir: Ino,
                path: PlainPath<'_>,
                follow: bool,
                atime: Option<TimeSet>,
                mtime: Option<TimeSet>,
            ) -> Result<bool> {
                (**self).set_times_path(dir, path, follow, atime, mtime)
            }
            fn readlink_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<String>> {
                (**self).readlink_path(dir, path)
            }
            fn getattr(&self, ino: Ino) -> Result<Attr> {
                (**self).getattr(ino)
            }
            fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
                (**self).setattr(ino, set)
            }
            fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
                (**self).read(ino, offset, bufs)
            }
            fn write(
                &self,
                ino: Ino,
                pos: WritePos,
                bufs: &[IoSlice<'_>],
                max_size: u64,
            ) -> Result<(usize, u64)> {
                (**self).write(ino, pos, bufs, max_size)
            }
            fn create(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<Attr> {
                (**self).create(dir, name, node)
            }
            fn make(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<()> {
                (**self).make(dir, name, node)
            }
            fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
                (**self).readdir(dir, cursor, max)
            }
            fn readlink(&self, ino: Ino) -> Result<String> {
                (**self).readlink(ino)
            }
            fn readlink_at(&self, dir: Ino, name: &str) -> Result<String> {
                (**self).readlink_at(dir, name)
            }
            fn unlink(&self, dir: Ino, name: &str) -> Result<()> {
                (**self).unlink(dir, name)
            }
            fn rmdir(&self, dir: Ino, name: &str) -> Result<()> {
                (**self).rmdir(dir, name)
            }
            fn rename(
                &self,
                src_dir: Ino,
                src_name: &str,
                dst_dir: Ino,
                dst_name: &str,
            ) -> Result<()> {
                (**self).rename(src_dir, src_name, dst_dir, dst_name)
            }
            fn link(&self, ino: Ino, dir: Ino, name: &str) -> Result<Attr> {
                (**self).link(ino, dir, name)
            }
            fn allocate(&self, ino: Ino, size: u64) -> Result<()> {
                (**self).allocate(ino, size)
            }
            fn open(&self, ino: Ino, write: bool) -> Result<()> {
                (**self).open(ino, write)
            }
            fn release(&self, ino: Ino) {
                (**self).release(ino)
            }
            fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
                (**self).next_data(ino, offset)
            }
        }
    };
}

// A boxed store is a store, so one can be chosen at run time; a shared one
// too, so that one store can sit in two trees (a read-only view).
forward_storage!(Box<dyn Storage>);
forward_storage!(Arc<dyn Storage>);
