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
use crate::storage::{Attr, DirEntry, FileKind, Ino, SetAttr, Storage, WIDE_CURSORS, WritePos};
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

/// The device id of a mount of `store` placed after `mounts`: that of an
/// earlier mount of the same host filesystem, so that guests see one
/// device where rename and link work, or else a new one.
fn device_for(mounts: &[Mount], store: &dyn Storage) -> u64 {
    store
        .host_device()
        .and_then(|host| {
            mounts
                .iter()
                .find(|m| m.store.host_device() == Some(host))
                .map(|m| m.dev)
        })
        .unwrap_or_else(|| NEXT_DEV.fetch_add(1, Ordering::Relaxed))
}

/// Index of a mount in its namespace's table.
pub(crate) type MountId = usize;

/// One inode of one mounted store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub(crate) mount: MountId,
    pub(crate) ino: Ino,
}

/// Listing cookies from this value up to [`WIDE_CURSORS`] list
/// mountpoints that the directory's own store does not hold.
const MOUNT_COOKIES: u64 = 1 << 62;

struct Mount {
    dev: u64,
    store: Arc<dyn Storage>,
    /// Where it is mounted, as an absolute normalised path.
    path: String,
    /// The directory and name it is mounted on; `None` for the root.
    covers: Option<(Node, String)>,
    /// Its store takes runs of directory names in one step, and no other
    /// mount lies on one of its directories (which a run would skip).
    one_step: bool,
}

/// A tree of mounted stores.
pub(crate) struct Namespace {
    /// The limits the tree was built with.
    limits: crate::Limits,
    /// The budget of the in-memory stores, when bytes or inodes are
    /// limited.
    budget: Option<Arc<crate::storage::budget::Budget>>,
    /// The largest file size allowed.
    max_file_size: u64,
    /// Handles open, and how many may be.
    open_handles: AtomicU64,
    max_open_handles: u64,
    mounts: Vec<Mount>,
    /// Mountpoints by the directory holding them: `(name, mount)`.
    mountpoints: HashMap<Node, Vec<(String, MountId)>>,
}

/// What `stat` says about a node: the store's attributes plus the device id
/// of the mount it lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// Device id of the mount holding the node: one per mount, except
    /// that mounts of one host filesystem share theirs (rename and link
    /// work between them).
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
    /// Permission bits.
    pub mode: u32,
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
            mode: a.mode,
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
    /// A namespace of `mounts`: absolute, normalised, distinct paths, the
    /// first being `/`, each after the mounts that hold it. Directories
    /// missing on the way to a mountpoint are created in the store that
    /// holds them, as `mkdir -p` would.
    pub(crate) fn new(
        mounts: Vec<(String, Arc<dyn Storage>)>,
        limits: &crate::Limits,
    ) -> Result<Arc<Self>> {
        let budget = (limits.bytes.is_some() || limits.inodes.is_some()).then(|| {
            Arc::new(crate::storage::budget::Budget::new(
                limits.bytes.unwrap_or(u64::MAX),
                limits.inodes.unwrap_or(u64::MAX),
            ))
        });
        if let Some(budget) = &budget {
            for (_, store) in &mounts {
                store.attach_budget(budget.clone());
            }
        }
        let mut ns = Namespace {
            limits: *limits,
            budget,
            max_file_size: limits
                .file_size
                .unwrap_or(u64::MAX)
                .min(crate::storage::MAX_FILE_SIZE),
            open_handles: AtomicU64::new(0),
            max_open_handles: limits.open_files.unwrap_or(u64::MAX),
            mounts: Vec::with_capacity(mounts.len()),
            mountpoints: HashMap::new(),
        };
        for (path, store) in mounts {
            let covers = if ns.mounts.is_empty() {
                None
            } else {
                Some(ns.mountpoint_for(&path)?)
            };
            let id = ns.mounts.len();
            if let Some((dir, name)) = &covers {
                ns.mountpoints
                    .entry(*dir)
                    .or_default()
                    .push((name.clone(), id));
            }
            ns.mounts.push(Mount {
                dev: device_for(&ns.mounts, &*store),
                store,
                path,
                covers,
                one_step: false,
            });
        }
        for (id, mount) in ns.mounts.iter_mut().enumerate() {
            let root = mount.store.root();
            mount.one_step = mount.store.lookup_dirs(root, &[]).is_some()
                && !ns.mountpoints.keys().any(|dir| dir.mount == id);
        }
        let ns = Arc::new(ns);
        Self::register(&ns);
        Ok(ns)
    }

    /// A read-only view of this namespace: the same stores at the same
    /// paths, each behind a [`ReadOnly`](crate::ReadOnly) that refuses
    /// every change, with this namespace's limits and budget (the view
    /// allocates nothing) and its own count of open files. What is written
    /// through this namespace shows in the view at once.
    pub(crate) fn read_only_view(&self) -> Arc<Self> {
        let mut mounts: Vec<Mount> = Vec::with_capacity(self.mounts.len());
        for m in &self.mounts {
            let store: Arc<dyn Storage> = Arc::new(crate::storage::read_only::ReadOnly::viewing(
                m.store.clone(),
            ));
            mounts.push(Mount {
                dev: device_for(&mounts, &*store),
                store,
                path: m.path.clone(),
                covers: m.covers.clone(),
                one_step: m.one_step,
            });
        }
        let ns = Arc::new(Namespace {
            limits: self.limits,
            budget: self.budget.clone(),
            max_file_size: self.max_file_size,
            open_handles: AtomicU64::new(0),
            max_open_handles: self.max_open_handles,
            mounts,
            mountpoints: self.mountpoints.clone(),
        });
        Self::register(&ns);
        ns
    }

    /// Makes the devices of `ns` findable by [`by_device`](Self::by_device).
    fn register(ns: &Arc<Self>) {
        let mut registry = BY_DEVICE.lock();
        registry.retain(|_, ns| ns.strong_count() > 0);
        for m in &ns.mounts {
            registry.insert(m.dev, Arc::downgrade(ns));
        }
    }

    /// The path of a mount whose mountpoint is `dir` or lies below it, if
    /// any: found by walking up from each mountpoint (mounts are few, and
    /// a walk is as long as the tree is deep).
    pub(crate) fn mount_below(&self, dir: Node) -> Result<Option<String>> {
        for mount in &self.mounts {
            let Some((mut cur, _)) = mount.covers.clone() else {
                continue;
            };
            loop {
                if cur == dir {
                    return Ok(Some(mount.path.clone()));
                }
                if cur == self.root() {
                    break;
                }
                let (parent, _) = self.lookup(cur, "..")?;
                if parent == cur {
                    break;
                }
                cur = parent;
            }
        }
        Ok(None)
    }

    /// The directory and name a new mount at `path` covers, creating
    /// missing parent directories.
    fn mountpoint_for(&self, path: &str) -> Result<(Node, String)> {
        let bad = |reason| Error::Mount {
            path: path.to_owned(),
            reason,
        };
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((name, parents)) = components.split_last() else {
            return Err(bad("the root is mounted twice"));
        };
        let mut dir = self.root();
        for component in parents {
            dir = match self.lookup(dir, component) {
                Ok((node, FileKind::Dir)) => node,
                Ok(_) => return Err(bad("a parent on the path is not a directory")),
                Err(Error::NotFound) => {
                    let made = self
                        .store(dir.mount)
                        .create(dir.ino, component, crate::storage::NewNode::Dir)
                        .map_err(|_| bad("a missing parent directory cannot be created"))?;
                    Node {
                        mount: dir.mount,
                        ino: made.ino,
                    }
                }
                Err(e) => return Err(e),
            };
        }
        Ok((dir, (*name).to_owned()))
    }

    /// Mount paths, in the order they were mounted (parents first).
    /// What the tree holds against its limits.
    pub(crate) fn usage(&self) -> crate::Usage {
        crate::Usage {
            bytes: self.budget.as_ref().map(|b| b.bytes_used()),
            inodes: self.budget.as_ref().map(|b| b.inodes_used()),
            open_files: self.open_handles.load(Ordering::Acquire),
            limits: self.limits,
        }
    }

    pub(crate) fn mount_paths(&self) -> impl Iterator<Item = &str> {
        self.mounts.iter().map(|m| m.path.as_str())
    }

    /// The mount whose mountpoint is `name` in directory `dir`.
    pub(crate) fn mount_at(&self, dir: Node, name: &str) -> Option<MountId> {
        if self.mountpoints.is_empty() {
            return None; // the common single-store tree, on every lookup
        }
        let points = self.mountpoints.get(&dir)?;
        points.iter().find(|(n, _)| n == name).map(|&(_, m)| m)
    }

    /// True when any store is mounted below the root.
    pub(crate) fn has_mountpoints(&self) -> bool {
        !self.mountpoints.is_empty()
    }

    /// True when `dir` holds a mountpoint, so it must not be removed.
    pub(crate) fn holds_mountpoints(&self, dir: Node) -> bool {
        self.mountpoints.contains_key(&dir)
    }

    fn mount_root(&self, mount: MountId) -> Node {
        Node {
            mount,
            ino: self.store(mount).root(),
        }
    }

    /// True when `store(mount)` refuses every change.
    pub(crate) fn is_read_only(&self, mount: MountId) -> bool {
        self.store(mount).is_read_only()
    }

    /// The namespace owning device id `dev`, if one is alive, and its
    /// mounts with that device: several where they share a host
    /// filesystem.
    pub(crate) fn by_device(dev: u64) -> Option<(Arc<Namespace>, Vec<MountId>)> {
        let ns = BY_DEVICE.lock().get(&dev)?.upgrade()?;
        let mounts: Vec<MountId> = (0..ns.mounts.len())
            .filter(|&id| ns.mounts[id].dev == dev)
            .collect();
        (!mounts.is_empty()).then_some((ns, mounts))
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

    /// The child `name` of directory `dir`, crossing into a mount at its
    /// mountpoint; `..` gives the parent, crossing out of a mount at its root.
    pub(crate) fn lookup(&self, dir: Node, name: &str) -> Result<(Node, FileKind)> {
        let (node, kind, _) = self.lookup_attr(dir, name, false)?;
        Ok((node, kind))
    }

    /// [`lookup`](Self::lookup), with the child's metadata when its store
    /// learned it on the way; with `peek`, for that metadata alone
    /// ([`Storage::peek_attr`]).
    pub(crate) fn lookup_attr(
        &self,
        dir: Node,
        name: &str,
        peek: bool,
    ) -> Result<(Node, FileKind, Option<Metadata>)> {
        if let Some(mount) = self.mount_at(dir, name) {
            return Ok((self.mount_root(mount), FileKind::Dir, None));
        }
        if name == ".."
            && dir == self.mount_root(dir.mount)
            && let Some((parent, _)) = &self.mounts[dir.mount].covers
        {
            return Ok((*parent, FileKind::Dir, None));
        }
        let store = self.store(dir.mount);
        let (ino, kind, attr) = if peek {
            store.peek_attr(dir.ino, name)?
        } else {
            store.lookup_attr(dir.ino, name)?
        };
        let meta = attr.map(|a| Metadata::new(self.dev(dir.mount), a));
        Ok((
            Node {
                mount: dir.mount,
                ino,
            },
            kind,
            meta,
        ))
    }

    /// Whether paths through the mount of `dir` may take runs of names in
    /// one step ([`lookup_dirs`](Self::lookup_dirs)).
    pub(crate) fn one_step(&self, dir: Node) -> bool {
        self.mounts.get(dir.mount).is_some_and(|m| m.one_step)
    }

    /// The directory reached from `dir` through the directories `names`
    /// in one step ([`Storage::lookup_dirs`]), when no mount lies in the
    /// way; `None` otherwise, for a lookup per name.
    pub(crate) fn lookup_dirs(&self, dir: Node, names: &[&str]) -> Option<Node> {
        let mount = self.mounts.get(dir.mount)?;
        if !mount.one_step {
            return None;
        }
        let ino = mount.store.lookup_dirs(dir.ino, names)?;
        Some(Node {
            mount: dir.mount,
            ino,
        })
    }

    pub(crate) fn metadata(&self, node: Node) -> Result<Metadata> {
        let attr = self.store(node.mount).getattr(node.ino)?;
        Ok(Metadata::new(self.dev(node.mount), attr))
    }

    pub(crate) fn setattr(&self, node: Node, set: &SetAttr) -> Result<()> {
        if set.size.is_some_and(|s| s > self.max_file_size) {
            return Err(Error::FileTooBig);
        }
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

    /// Writes at `pos`; past the tree's file-size limit, `EFBIG`, checked
    /// by the store atomically with the write.
    pub(crate) fn write(
        &self,
        node: Node,
        pos: WritePos,
        bufs: &[IoSlice<'_>],
    ) -> Result<(usize, u64)> {
        self.store(node.mount)
            .write(node.ino, pos, bufs, self.max_file_size)
    }

    /// `posix_fallocate(offset, len)`: the file is at least `offset + len`
    /// bytes afterwards.
    pub(crate) fn allocate(&self, node: Node, offset: u64, len: u64) -> Result<()> {
        if len == 0 || offset > crate::storage::MAX_FILE_SIZE {
            return Err(Error::Invalid);
        }
        let end = offset.checked_add(len).ok_or(Error::FileTooBig)?;
        if end > self.max_file_size {
            return Err(Error::FileTooBig);
        }
        self.store(node.mount).allocate(node.ino, end)
    }

    /// The next run of stored bytes of a file: see
    /// [`Storage::next_data`].
    pub(crate) fn next_data(&self, node: Node, offset: u64) -> Result<Option<(u64, u64)>> {
        self.store(node.mount).next_data(node.ino, offset)
    }

    pub(crate) fn readlink(&self, node: Node) -> Result<String> {
        self.store(node.mount).readlink(node.ino)
    }

    /// Up to `max` entries of a directory from `cookie`, `.` and `..`
    /// first: cookie 0 starts at `.`, 1 at `..`, `c >= 2` continues the
    /// store's listing at its cursor `c - 2`, cookies from `MOUNT_COOKIES`
    /// list mountpoints the store does not hold, and cookies from
    /// [`WIDE_CURSORS`] are the store's wide cursors as they are. A
    /// mountpoint is listed as the root of its mount.
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
        let points = self.mountpoints.get(&dir).map_or(&[][..], Vec::as_slice);
        let store = self.store(dir.mount);
        let in_store = match cookie {
            0..MOUNT_COOKIES => Some(cookie.saturating_sub(2)),
            WIDE_CURSORS.. => Some(cookie),
            _ => None,
        };
        if let Some(cursor) = in_store {
            let want = max - out.len();
            if want == 0 {
                return Ok(out);
            }
            let entries = store.readdir(dir.ino, cursor, want)?;
            let exhausted = entries.len() < want;
            for mut e in entries {
                e.next = match e.next {
                    n if n < MOUNT_COOKIES - 2 => n + 2,
                    n if n >= WIDE_CURSORS => n,
                    _ => return Err(Error::Invalid),
                };
                if let Some(mount) = self.mount_at(dir, &e.name) {
                    e.ino = self.mount_root(mount).ino;
                    e.kind = FileKind::Dir;
                }
                out.push(e);
            }
            if !exhausted {
                return Ok(out);
            }
        }
        let first = match cookie {
            MOUNT_COOKIES..WIDE_CURSORS => {
                usize::try_from(cookie - MOUNT_COOKIES).unwrap_or(usize::MAX)
            }
            _ => 0,
        };
        for (i, (name, mount)) in points.iter().enumerate().skip(first) {
            if out.len() >= max {
                break;
            }
            if store.lookup(dir.ino, name).is_ok() {
                continue; // listed with the store's entries
            }
            out.push(dot(
                name,
                self.mount_root(*mount).ino,
                MOUNT_COOKIES + i as u64 + 1,
            ));
        }
        Ok(out)
    }

    /// Takes a handle that keeps `node` alive until the guard is dropped,
    /// to read through.
    pub(crate) fn open_handle(self: &Arc<Self>, node: Node) -> Result<Handle> {
        self.reserve_handle()?.open(node, false)
    }

    /// Takes one of the open handles the limit allows, before an open
    /// creates or truncates anything: an open refused for the limit then
    /// changes nothing. The slot is given back if it is dropped unused.
    pub(crate) fn reserve_handle(self: &Arc<Self>) -> Result<HandleSlot> {
        let max = self.max_open_handles;
        self.open_handles
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Error::TooManyOpen)?;
        Ok(HandleSlot {
            ns: Some(self.clone()),
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

/// A reserved place among the open handles (see
/// [`Namespace::reserve_handle`]).
pub(crate) struct HandleSlot {
    /// `None` once the slot became a handle.
    ns: Option<Arc<Namespace>>,
}

impl HandleSlot {
    /// The handle on `node`, in this slot; `write` if it may write the
    /// file (see [`Storage::open`]).
    pub(crate) fn open(mut self, node: Node, write: bool) -> Result<Handle> {
        let Some(ns) = self.ns.take() else {
            return Err(Error::BadHandle);
        };
        if let Err(e) = ns.store(node.mount).open(node.ino, write) {
            ns.open_handles.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        Ok(Handle { ns, node })
    }
}

impl Drop for HandleSlot {
    fn drop(&mut self) {
        if let Some(ns) = &self.ns {
            ns.open_handles.fetch_sub(1, Ordering::AcqRel);
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
        self.ns.open_handles.fetch_sub(1, Ordering::AcqRel);
    }
}
