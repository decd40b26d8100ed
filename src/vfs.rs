//! `Vfs`: the handle embedders hold. It hands directories of the tree to
//! guests as preopens and gives the host the same tree through a small
//! `std::fs`-like API.
//!
//! Host-side paths are absolute or relative to the root (both mean the
//! same), resolved by the same resolver as guest paths, so the host and the
//! guests can never disagree about what a path names. This module owns the
//! public API and must not interpret paths itself.

use crate::error::{Error, Result};
use crate::namespace::ops::{At, OpenOptions};
use crate::namespace::resolve::Scope;
use crate::namespace::{Metadata, Namespace};
use crate::storage::mem::MemFs;
use crate::storage::{FileKind, SetAttr, Storage, TimeSet, WritePos};
use crate::wasi::VfsDir;
use std::io::{IoSlice, IoSliceMut};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// A virtual filesystem tree, shared by any number of guests and the host.
///
/// Cloning is cheap and every clone sees the same tree. `Vfs` is
/// `Send + Sync`; all operations may run concurrently.
///
/// ```
/// use wasi_common_vfs::Vfs;
///
/// let vfs = Vfs::new();
/// vfs.create_dir_all("/data/in")?;
/// vfs.write("/data/in/hello.txt", b"hi")?;
/// assert_eq!(vfs.read("/data/in/hello.txt")?, b"hi");
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
#[derive(Clone)]
pub struct Vfs {
    ns: Arc<Namespace>,
}

/// One entry of [`Vfs::read_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// What it is (symlinks are not followed).
    pub kind: FileKind,
    /// Its inode number.
    pub ino: u64,
}

impl Default for Vfs {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs").finish_non_exhaustive()
    }
}

/// Assembles a [`Vfs`] from stores mounted at absolute paths.
///
/// ```
/// use wasi_common_vfs::{MemFs, Storage, Vfs};
///
/// let vfs = Vfs::builder()
///     .mount("/", MemFs::new())
///     .mount("/data", MemFs::new().read_only())
///     .build()?;
/// assert!(vfs.metadata("/data")?.is_dir());
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
#[derive(Default)]
pub struct VfsBuilder {
    mounts: Vec<(String, Arc<dyn Storage>)>,
    limits: crate::Limits,
}

impl VfsBuilder {
    /// Mounts `store` at the absolute path `path`. Mounts may nest; without
    /// a mount at `/`, the root is an empty [`MemFs`].
    pub fn mount(mut self, path: &str, store: impl Storage) -> Self {
        self.mounts.push((path.to_owned(), Arc::new(store)));
        self
    }

    /// Sets the tree's [`Limits`](crate::Limits) (none by default).
    pub fn limits(mut self, limits: crate::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Builds the tree. Fails, naming the path, for a relative path, a path
    /// with `.` or `..`, a path mounted twice, or a mountpoint whose parent
    /// cannot be made a directory.
    pub fn build(self) -> Result<Vfs> {
        let mut mounts: Vec<(String, Arc<dyn Storage>)> = Vec::with_capacity(self.mounts.len() + 1);
        for (path, store) in self.mounts {
            let bad = |reason| Error::Mount {
                path: path.clone(),
                reason,
            };
            if !path.starts_with('/') {
                return Err(bad("the path is not absolute"));
            }
            let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            if components
                .iter()
                .any(|c| *c == "." || *c == ".." || c.contains('\0'))
            {
                return Err(bad("the path has a `.`, `..` or NUL component"));
            }
            let normal = format!("/{}", components.join("/"));
            if mounts.iter().any(|(p, _)| *p == normal) {
                return Err(bad("the path is mounted twice"));
            }
            mounts.push((normal, store));
        }
        if !mounts.iter().any(|(p, _)| p == "/") {
            mounts.push(("/".to_owned(), Arc::new(MemFs::new())));
        }
        // Parents before children; `/` has no components and comes first.
        mounts.sort_by_key(|(p, _)| p.split('/').filter(|c| !c.is_empty()).count());
        Ok(Vfs {
            ns: Namespace::new(mounts, &self.limits)?,
        })
    }
}

impl Vfs {
    /// An empty in-memory tree: a [`MemFs`] at `/`.
    pub fn new() -> Self {
        let root: Arc<dyn Storage> = Arc::new(MemFs::new());
        let ns = Namespace::new(vec![("/".to_owned(), root)], &crate::Limits::default());
        Vfs {
            // A single root mount has no mountpoint to fail on.
            ns: ns.unwrap_or_else(|_| unreachable!("a lone root mount always builds")),
        }
    }

    /// A builder for a tree of several mounted stores.
    pub fn builder() -> VfsBuilder {
        VfsBuilder::default()
    }

    fn at<'a>(&self, path: &'a str) -> At<'a> {
        At {
            dir: self.ns.root(),
            path,
            scope: Scope::Root,
        }
    }

    /// Gives a guest the directory `vfs_path` of this tree as a preopen
    /// named `guest_name`, pushed onto `ctx`'s descriptor table.
    ///
    /// The guest can reach everything below `vfs_path` and nothing above
    /// it: `..`, absolute paths and symlinks that would leave it fail with
    /// `EPERM`.
    pub fn preopen(
        &self,
        ctx: &wasi_common::WasiCtx,
        vfs_path: &str,
        guest_name: &str,
    ) -> Result<()> {
        ctx.push_preopened_dir(Box::new(self.wasi_dir(vfs_path)?), guest_name)
            .map_err(|_| Error::TooManyOpen)
    }

    /// The directory `vfs_path` of this tree as a `WasiDir`, for an
    /// embedder that places it in a context itself. It confines paths
    /// exactly as [`Vfs::preopen`] does, and counts as an open file
    /// against [`Limits::open_files`](crate::Limits::open_files) until it
    /// is dropped.
    pub fn wasi_dir(&self, vfs_path: &str) -> Result<VfsDir> {
        let (node, kind) = self.ns.find(self.at(vfs_path))?;
        if kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        Ok(VfsDir::new(self.ns.open_handle(node)?))
    }

    /// Adds one preopen per mount, named by its path (`/`, `/mnt/session`,
    /// ...), parents first, for guests whose libc picks the longest
    /// preopen matching a path. The guest sees the same tree as through
    /// a single preopen of `/`, except that `..` cannot climb out of a
    /// mount's own preopen.
    pub fn preopen_mounts(&self, ctx: &wasi_common::WasiCtx) -> Result<()> {
        for path in self.ns.mount_paths() {
            self.preopen(ctx, path, path)?;
        }
        Ok(())
    }

    /// The whole contents of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        let (node, kind) = self.ns.find(self.at(path))?;
        match kind {
            FileKind::Dir => return Err(Error::IsDir),
            FileKind::Symlink => return Err(Error::Loop),
            FileKind::File => {}
        }
        let _open = self.ns.open_handle(node)?;
        let size = self.ns.metadata(node)?.size;
        let mut buf = vec![0; usize::try_from(size).map_err(|_| Error::FileTooBig)?];
        let n = self.ns.read(node, 0, &mut [IoSliceMut::new(&mut buf)])?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Creates or replaces the contents of the file at `path`. The parent
    /// directory must exist.
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        let options = OpenOptions {
            create: true,
            truncate: true,
            follow: true,
            write: true,
            ..OpenOptions::default()
        };
        let (node, _) = self.ns.open(self.at(path), options)?;
        let _open = self.ns.open_handle(node)?;
        self.ns
            .write(node, WritePos::At(0), &[IoSlice::new(contents.as_ref())])?;
        Ok(())
    }

    /// Creates the directory `path`; its parent must exist.
    pub fn create_dir(&self, path: &str) -> Result<()> {
        self.ns.mkdir(self.at(path)).map(drop)
    }

    /// Creates `path` and any missing parents. Succeeds if it is already a
    /// directory.
    pub fn create_dir_all(&self, path: &str) -> Result<()> {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut prefix = String::new();
        for (i, component) in components.iter().enumerate() {
            prefix.push('/');
            prefix.push_str(component);
            match self.ns.mkdir(self.at(&prefix)) {
                Ok(_) => {}
                Err(Error::Exists) if self.metadata(&prefix)?.is_dir() => {}
                // A non-directory in the middle of the path.
                Err(Error::Exists) if i + 1 < components.len() => return Err(Error::NotDir),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The entries of the directory at `path`, without `.` and `..`, in
    /// creation order.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let (node, kind) = self.ns.find(self.at(path))?;
        if kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        let mut out = Vec::new();
        let mut cookie = 2;
        loop {
            let batch = self.ns.readdir(node, cookie, 1024)?;
            let Some(last) = batch.last() else { break };
            cookie = last.next;
            out.extend(batch.into_iter().map(|e| DirEntry {
                name: e.name,
                kind: e.kind,
                ino: e.ino,
            }));
        }
        Ok(out)
    }

    /// Removes a file, a symlink or an empty directory.
    pub fn remove(&self, path: &str) -> Result<()> {
        match self.ns.unlink(self.at(path)) {
            Err(Error::IsDir) => self.ns.rmdir(self.at(path)),
            other => other,
        }
    }

    /// Metadata of what `path` names, following symlinks.
    pub fn metadata(&self, path: &str) -> Result<Metadata> {
        self.ns.stat(self.at(path), true)
    }

    /// Metadata of `path` itself, not following a final symlink.
    pub fn symlink_metadata(&self, path: &str) -> Result<Metadata> {
        self.ns.stat(self.at(path), false)
    }

    /// Creates a symlink at `path` pointing to `target` (stored verbatim).
    pub fn symlink(&self, target: &str, path: &str) -> Result<()> {
        self.ns.symlink(target, self.at(path))
    }

    /// The target of the symlink at `path`.
    pub fn read_link(&self, path: &str) -> Result<String> {
        self.ns.read_link(self.at(path))
    }

    /// Adds the name `to` for the file at `from`.
    pub fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        self.ns.link(self.at(from), self.at(to))
    }

    /// Moves `from` to `to`, replacing `to` as `rename(2)` does.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.ns.rename(self.at(from), self.at(to))
    }

    /// Sets the access and modification times of `path` (following
    /// symlinks); `None` leaves a time unchanged.
    pub fn set_times(
        &self,
        path: &str,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        self.set_times_at(path, true, atime, mtime)
    }

    /// [`Vfs::set_times`], following a final symlink or not.
    pub(crate) fn set_times_at(
        &self,
        path: &str,
        follow: bool,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        self.ns.set_times(
            self.at(path),
            follow,
            atime.map(TimeSet::At),
            mtime.map(TimeSet::At),
        )
    }

    /// Copies the host directory `host_dir` (files, directories, symlinks,
    /// their times and permission bits) into the tree at `vfs_path`,
    /// creating it if needed.
    ///
    /// Symlinks are copied as symlinks, never followed, so a link in the
    /// host tree cannot pull in anything outside it.
    pub fn copy_in(&self, host_dir: impl AsRef<Path>, vfs_path: &str) -> Result<()> {
        self.create_dir_all(vfs_path)?;
        let mut pending = vec![(
            host_dir.as_ref().to_path_buf(),
            vfs_path.trim_end_matches('/').to_owned(),
        )];
        let mut dir_times = Vec::new();
        while let Some((host, vfs)) = pending.pop() {
            for entry in std::fs::read_dir(&host)? {
                let entry = entry?;
                let name = entry
                    .file_name()
                    .into_string()
                    .map_err(|_| Error::Invalid)?;
                let target = format!("{vfs}/{name}");
                let meta = entry.metadata()?;
                let file_type = meta.file_type();
                if file_type.is_dir() {
                    self.create_dir(&target)?;
                    pending.push((entry.path(), target.clone()));
                    dir_times.push((target, meta));
                    continue;
                } else if file_type.is_symlink() {
                    let link = std::fs::read_link(entry.path())?;
                    let link = link
                        .into_os_string()
                        .into_string()
                        .map_err(|_| Error::Invalid)?;
                    self.symlink(&link, &target)?;
                    self.set_node_times(&target, false, &meta)?;
                    continue;
                } else if file_type.is_file() {
                    self.write(&target, std::fs::read(entry.path())?)?;
                    self.set_node_times(&target, false, &meta)?;
                }
            }
        }
        // Directory times last: filling a directory changes its mtime.
        for (path, meta) in dir_times {
            self.set_node_times(&path, false, &meta)?;
        }
        Ok(())
    }

    fn set_node_times(&self, path: &str, follow: bool, meta: &std::fs::Metadata) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let atime = meta.accessed().ok().map(TimeSet::At);
        let mtime = meta.modified().ok().map(TimeSet::At);
        if !meta.is_symlink() {
            self.set_mode(path, meta.permissions().mode())?;
        }
        self.ns.set_times(self.at(path), follow, atime, mtime)
    }

    /// Sets the permission bits of `path` (following symlinks).
    pub fn set_mode(&self, path: &str, mode: u32) -> Result<()> {
        let (node, _) = self.ns.find(self.at(path))?;
        let set = SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        };
        self.ns.setattr(node, &set)
    }

    /// Sets the size of the file at `path`, truncating or extending it with
    /// zeros.
    pub fn set_len(&self, path: &str, size: u64) -> Result<()> {
        let (node, _) = self.ns.find(self.at(path))?;
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        self.ns.setattr(node, &set)
    }
}
