//! The namespace layer: the mount table, nodes, and every operation that
//! takes a path.
//!
//! A node is `(mount, inode)`. Paths are turned into nodes by the one
//! resolver in [`resolve`]; the POSIX rules of path operations live in
//! [`ops`]. This layer calls only the storage trait and must not know about
//! WASI types: both the wasi adapter and the host API call it, so the guest
//! and the host can never see different trees.

pub(crate) mod ops;
pub(crate) mod resolve;

use crate::error::{Error, Result};
use crate::storage::{Attr, DirEntry, FileKind, Ino, SetAttr, Storage, WritePos};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::SystemTime;

/// Device ids handed to mounts start here, far from the small numbers the
/// host kernel uses, so a guest never sees one of ours equal to a host
/// device's.
const DEV_BASE: u64 = 0x5646_5300_0000_0000;
static NEXT_DEV: AtomicU64 = AtomicU64::new(DEV_BASE);

/// Every live namespace by the device ids of its mounts, so that a call
/// which only has a guest's `(device, inode)` pair (`fd_allocate`, see
/// `runtime`) can reach the store behind it.
static BY_DEVICE: LazyLock<Mutex<HashMap<u64, Weak<Namespace>>>> = LazyLock::new(Default::default);

/// Index of a mount in its namespace's table.
pub(crate) type MountId = usize;

/// One inode of one mounted store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub(crate) mount: MountId,
    pub(crate) ino: Ino,
}

struct Mount {
    dev: u64,
    store: Arc<dyn Storage>,
}

/// A tree of mounted stores.
pub(crate) struct Namespace {
    mounts: Vec<Mount>,
}

/// What `stat` says about a node: the store's attributes plus the device id
/// of the mount it lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Device id of the mount holding the node; unique per mount.
    pub dev: u64,
    /// Inode number, unique within the mount.
    pub ino: Ino,
    /// File, directory or symlink.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Last access time.
    pub atime: SystemTime,
    /// Last modification time.
    pub mtime: SystemTime,
    /// Last status change time.
    pub ctime: SystemTime,
}

impl Metadata {
    fn new(dev: u64, a: Attr) -> Self {
        Metadata {
            dev,
            ino: a.ino,
            kind: a.kind,
            size: a.size,
            nlink: a.nlink,
            atime: a.atime,
            mtime: a.mtime,
            ctime: a.ctime,
        }
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// True for a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind == FileKind::Symlink
    }
}

impl Namespace {
    /// A namespace whose root is the root of `store`.
    pub(crate) fn new(store: Arc<dyn Storage>) -> Arc<Self> {
        let dev = NEXT_DEV.fetch_add(1, Ordering::Relaxed);
        let ns = Arc::new(Namespace {
            mounts: vec![Mount { dev, store }],
        });
        let mut registry = BY_DEVICE.lock();
        registry.retain(|_, ns| ns.strong_count() > 0);
        for m in &ns.mounts {
            registry.insert(m.dev, Arc::downgrade(&ns));
        }
        ns
    }

    /// The namespace and mount owning device id `dev`, if one is alive.
    pub(crate) fn by_device(dev: u64) -> Option<(Arc<Namespace>, MountId)> {
        let ns = BY_DEVICE.lock().get(&dev)?.upgrade()?;
        let mount = ns.mounts.iter().position(|m| m.dev == dev)?;
        Some((ns, mount))
    }

    pub(crate) fn root(&self) -> Node {
        Node {
            mount: 0,
            ino: self.store(0).root(),
        }
    }

    fn store(&self, mount: MountId) -> &dyn Storage {
        // Mount ids come only from this table, so the index is in range.
        &*self.mounts[mount].store
    }

    fn dev(&self, mount: MountId) -> u64 {
        self.mounts[mount].dev
    }

    /// The child `name` of directory `dir`; `..` gives the parent.
    pub(crate) fn lookup(&self, dir: Node, name: &str) -> Result<(Node, FileKind)> {
        let (ino, kind) = self.store(dir.mount).lookup(dir.ino, name)?;
        Ok((
            Node {
                mount: dir.mount,
                ino,
            },
            kind,
        ))
    }

    pub(crate) fn metadata(&self, node: Node) -> Result<Metadata> {
        let attr = self.store(node.mount).getattr(node.ino)?;
        Ok(Metadata::new(self.dev(node.mount), attr))
    }

    pub(crate) fn setattr(&self, node: Node, set: &SetAttr) -> Result<()> {
        self.store(node.mount).setattr(node.ino, set).map(drop)
    }

    pub(crate) fn read(
        &self,
        node: Node,
        offset: u64,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Result<usize> {
        self.store(node.mount).read(node.ino, offset, bufs)
    }

    pub(crate) fn write(
        &self,
        node: Node,
        pos: WritePos,
        bufs: &[IoSlice<'_>],
    ) -> Result<(usize, u64)> {
        self.store(node.mount).write(node.ino, pos, bufs)
    }

    /// `posix_fallocate(offset, len)`: the file is at least `offset + len`
    /// bytes afterwards.
    pub(crate) fn allocate(&self, node: Node, offset: u64, len: u64) -> Result<()> {
        if len == 0 || offset > crate::storage::MAX_FILE_SIZE {
            return Err(Error::Invalid);
        }
        let end = offset.checked_add(len).ok_or(Error::FileTooBig)?;
        self.store(node.mount).allocate(node.ino, end)
    }

    pub(crate) fn readlink(&self, node: Node) -> Result<String> {
        self.store(node.mount).readlink(node.ino)
    }

    /// Up to `max` entries of a directory from `cookie`, `.` and `..`
    /// first: cookie 0 starts at `.`, 1 at `..`, and `c >= 2` continues the
    /// store's listing at its cursor `c - 2`.
    pub(crate) fn readdir(&self, dir: Node, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let dot = |name: &str, ino, next| DirEntry {
            name: name.to_owned(),
            ino,
            kind: FileKind::Dir,
            next,
        };
        if cookie == 0 && out.len() < max {
            out.push(dot(".", dir.ino, 1));
        }
        if cookie <= 1 && out.len() < max {
            let parent = self.lookup(dir, "..").map_or(dir.ino, |(p, _)| p.ino);
            out.push(dot("..", parent, 2));
        }
        let cursor = cookie.saturating_sub(2);
        let rest = max - out.len();
        if rest > 0 {
            for mut e in self.store(dir.mount).readdir(dir.ino, cursor, rest)? {
                e.next = e.next.checked_add(2).ok_or(Error::Invalid)?;
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Takes a handle that keeps `node` alive until the guard is dropped.
    pub(crate) fn open_handle(self: &Arc<Self>, node: Node) -> Result<Handle> {
        self.store(node.mount).open(node.ino)?;
        Ok(Handle {
            ns: self.clone(),
            node,
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let mut registry = BY_DEVICE.lock();
        for m in &self.mounts {
            registry.remove(&m.dev);
        }
    }
}

/// An open node: its inode stays alive, even once unlinked, while a
/// `Handle` exists.
pub(crate) struct Handle {
    ns: Arc<Namespace>,
    node: Node,
}

impl Handle {
    pub(crate) fn ns(&self) -> &Arc<Namespace> {
        &self.ns
    }

    pub(crate) fn node(&self) -> Node {
        self.node
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.ns.store(self.node.mount).release(self.node.ino);
    }
}
