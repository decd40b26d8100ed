//! `Vfs`: the handle embedders hold. It hands directories of the tree to
//! guests as preopens and gives the host the same tree through a small
//! `std::fs`-like API.
//!
//! Host-side paths are absolute or relative to the root (both mean the
//! same), resolved by the same resolver as guest paths, so the host and the
//! guests can never disagree about what a path names. A view made by
//! [`Vfs::subtree`] resolves them inside one directory, confined exactly
//! as a guest's preopen is. This module owns the public API and must not
//! interpret paths itself.

use crate::error::{Error, Result};
use crate::namespace::ops::{At, OpenOptions};
use crate::namespace::resolve::Scope;
use crate::namespace::{Handle, Metadata, Namespace};
use crate::storage::mem::MemFs;
use crate::storage::{DirEntry, FileKind, SetAttr, Storage, TimeSet, WritePos};
use crate::wasi::VfsDir;
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::time::SystemTime;

/// A virtual filesystem tree, shared by any number of guests and the host.
///
/// Cloning is cheap and every clone sees the same tree. `Vfs` is
/// `Send + Sync`; all operations may run concurrently.
///
/// # Authority
///
/// A `Vfs` from [`Vfs::new`] or [`Vfs::builder`] resolves paths with the
/// whole tree's authority: `..` stops at `/`, and symlinks are followed
/// wherever they lead, absolute targets included, just as the host's own
/// filesystem API follows them. Symlinks in directories a guest can write
/// are the guest's choice, so to read or change what a guest produced, use
/// a view from [`Vfs::subtree`], which resolves every path as the guest's
/// own preopen does, or the no-follow calls ([`Vfs::symlink_metadata`],
/// [`Vfs::read_nofollow`], [`Vfs::write_nofollow`], [`Vfs::read_link`]).
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
    /// For a view from [`Vfs::subtree`]: its directory, held open like a
    /// preopen, in which paths resolve confined.
    view: Option<Arc<Handle>>,
    /// `/` is the empty [`MemFs`] the builder made because nothing was
    /// mounted there: it only holds mountpoints, and
    /// [`Vfs::preopen_mounts`] leaves it out.
    implicit_root: bool,
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
        let implicit_root = !mounts.iter().any(|(p, _)| p == "/");
        if implicit_root {
            mounts.push(("/".to_owned(), Arc::new(MemFs::new())));
        }
        // Parents before children; `/` has no components and comes first.
        mounts.sort_by_key(|(p, _)| p.split('/').filter(|c| !c.is_empty()).count());
        Ok(Vfs {
            ns: Namespace::new(mounts, &self.limits)?,
            view: None,
            implicit_root,
        })
    }
}

impl Vfs {
    /// An empty in-memory tree: a [`MemFs`] at `/`, without
    /// [`Limits`](crate::Limits): it holds whatever it is given, so give a
    /// guest you do not trust a tree from [`Vfs::builder`] with limits.
    pub fn new() -> Self {
        let root: Arc<dyn Storage> = Arc::new(MemFs::new());
        let ns = Namespace::new(vec![("/".to_owned(), root)], &crate::Limits::default());
        Vfs {
            // A single root mount has no mountpoint to fail on.
            ns: ns.unwrap_or_else(|_| unreachable!("a lone root mount always builds")),
            view: None,
            implicit_root: false,
        }
    }

    /// A builder for a tree of several mounted stores.
    pub fn builder() -> VfsBuilder {
        VfsBuilder::default()
    }

    /// What the tree holds now against its limits: bytes and inodes of its
    /// in-memory stores (when limited) and open files, beside the limits.
    /// An embedder can watch a guest's consumption with it, or show it.
    pub fn usage(&self) -> crate::Usage {
        self.ns.usage()
    }

    /// Where `path` starts and how far it may reach. In a view, `/` is the
    /// view's directory, as `/` of a preopen is to wasi-libc.
    pub(crate) fn at<'a>(&self, path: &'a str) -> At<'a> {
        match &self.view {
            None => At {
                dir: self.ns.root(),
                path,
                scope: Scope::Root,
            },
            Some(dir) => {
                let rel = path.trim_start_matches('/');
                At {
                    dir: dir.node(),
                    path: if rel.is_empty() && !path.is_empty() {
                        "."
                    } else {
                        rel
                    },
                    scope: Scope::Confined,
                }
            }
        }
    }

    pub(crate) fn ns(&self) -> &Arc<Namespace> {
        &self.ns
    }

    pub(crate) fn scope(&self) -> Scope {
        if self.view.is_some() {
            Scope::Confined
        } else {
            Scope::Root
        }
    }

    /// A view of the directory `path`, in which every path resolves exactly
    /// as in a guest's preopen of that directory: `..`, absolute symlink
    /// targets and symlinks that lead out of it fail with
    /// [`Error::Escape`], and a symlink to `/` cannot be created. Paths
    /// given to the view are relative to its directory (a leading `/`
    /// means the directory itself). The view offers every call of `Vfs`,
    /// tar archives included, and keeps the directory open, so it follows
    /// the directory through renames as a descriptor would (and counts
    /// against [`Limits::open_files`](crate::Limits::open_files) while any
    /// clone of it lives).
    ///
    /// This is how an embedder reads what a guest produced without
    /// following symlinks the guest planted out of its sandbox:
    ///
    /// ```
    /// use wasi_common_vfs::{Error, Vfs};
    ///
    /// let vfs = Vfs::new();
    /// vfs.create_dir_all("/secret")?;
    /// vfs.write("/secret/key", b"hunter2")?;
    /// vfs.create_dir_all("/sandbox")?;
    /// // What a guest confined to /sandbox could leave behind:
    /// vfs.symlink("../secret/key", "/sandbox/result.txt")?;
    ///
    /// let sandbox = vfs.subtree("/sandbox")?;
    /// assert!(matches!(
    ///     sandbox.read("result.txt").map_err(Error::into_innermost),
    ///     Err(Error::Escape)
    /// ));
    /// assert!(matches!(
    ///     sandbox.write("result.txt", b"x").map_err(Error::into_innermost),
    ///     Err(Error::Escape)
    /// ));
    /// assert_eq!(vfs.read("/secret/key")?, b"hunter2");
    /// # Ok::<(), wasi_common_vfs::Error>(())
    /// ```
    pub fn subtree(&self, path: &str) -> Result<Vfs> {
        naming(path, || {
            let (node, kind) = self.ns.find(self.at(path))?;
            if kind != FileKind::Dir {
                return Err(Error::NotDir);
            }
            Ok(Vfs {
                ns: self.ns.clone(),
                view: Some(Arc::new(self.ns.open_handle(node)?)),
                implicit_root: self.implicit_root,
            })
        })
    }

    /// A read-only view of this tree (or of this view's directory): the
    /// same stores at the same paths, live, where every change fails with
    /// [`Error::ReadOnly`] (`EROFS` for a guest). For one guest that reads
    /// a tree while another, or the host, writes it: what is written
    /// through `self` shows in the view at once. The view shares the
    /// tree's limits and counts its own open files against
    /// [`Limits::open_files`](crate::Limits::open_files).
    ///
    /// Files are opened as the stores open them for their writers (a
    /// host directory mounted read-write keeps read-write host handles);
    /// for a store nobody may change, mount it read-only instead.
    ///
    /// ```
    /// use wasi_common_vfs::{Error, Vfs};
    ///
    /// let vfs = Vfs::new();
    /// vfs.create_dir_all("/shared")?;
    /// vfs.write("/shared/log", b"one")?;
    /// let reader = vfs.read_only()?;
    /// vfs.write("/shared/log", b"two")?;
    /// assert_eq!(reader.read("/shared/log")?, b"two");
    /// assert!(matches!(
    ///     reader.write("/shared/log", b"x").map_err(Error::into_innermost),
    ///     Err(Error::ReadOnly)
    /// ));
    /// let ctx = wasi_common::sync::WasiCtxBuilder::new().build();
    /// reader.preopen(&ctx, "/shared", "/shared")?; // a guest that only reads
    /// # Ok::<(), wasi_common_vfs::Error>(())
    /// ```
    pub fn read_only(&self) -> Result<Vfs> {
        let ns = self.ns.read_only_view();
        let view = match &self.view {
            None => None,
            Some(dir) => Some(Arc::new(ns.open_handle(dir.node())?)),
        };
        Ok(Vfs {
            ns,
            view,
            implicit_root: self.implicit_root,
        })
    }

    /// Gives a guest the directory `vfs_path` of this tree as a preopen
    /// named `guest_name`, pushed onto `ctx`'s descriptor table.
    ///
    /// The guest can reach everything below `vfs_path` and nothing above
    /// it: `..`, absolute paths and symlinks that would leave it fail with
    /// `EPERM`. Once a guest run on `ctx` by [`Guest::run`](crate::runtime::Guest::run)
    /// is over, this descriptor and every one opened through it fail with
    /// `EBADF`, so no thread of the guest left running changes the tree.
    ///
    /// ```
    /// use wasi_common_vfs::Vfs;
    ///
    /// let vfs = Vfs::new();
    /// vfs.create_dir_all("/sandbox/out")?;
    /// let ctx = wasi_common::sync::WasiCtxBuilder::new().build();
    /// vfs.preopen(&ctx, "/sandbox", "/")?; // the guest's `/` is `/sandbox`
    /// # Ok::<(), wasi_common_vfs::Error>(())
    /// ```
    pub fn preopen(
        &self,
        ctx: &wasi_common::WasiCtx,
        vfs_path: &str,
        guest_name: &str,
    ) -> Result<()> {
        naming(vfs_path, || {
            let dir = self
                .dir_at(vfs_path)?
                .of_guest(crate::wasi::life::GuestLife::of(ctx));
            ctx.push_preopened_dir(Box::new(dir), guest_name)
                .map_err(|_| Error::TooManyOpen)
        })
    }

    /// The directory `vfs_path` of this tree as a `WasiDir`, for an
    /// embedder that places it in a context itself. It confines paths
    /// exactly as [`Vfs::preopen`] does, and counts as an open file
    /// against [`Limits::open_files`](crate::Limits::open_files) until it
    /// is dropped.
    pub fn wasi_dir(&self, vfs_path: &str) -> Result<VfsDir> {
        naming(vfs_path, || self.dir_at(vfs_path))
    }

    fn dir_at(&self, vfs_path: &str) -> Result<VfsDir> {
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
    ///
    /// Exactly the mounts given to [`VfsBuilder::mount`] are preopened: the
    /// in-memory `/` a builder makes when nothing was mounted there (it
    /// holds the mountpoints) is not, so a guest given a read-only host
    /// directory and a scratch mount cannot write anywhere else. Mount a
    /// store at `/` to give the guest one.
    ///
    /// ```
    /// use wasi_common_vfs::{MemFs, Storage, Vfs};
    ///
    /// let vfs = Vfs::builder()
    ///     .mount("/data", MemFs::new().read_only())
    ///     .mount("/tmp", MemFs::new())
    ///     .build()?;
    /// let ctx = wasi_common::sync::WasiCtxBuilder::new().build();
    /// vfs.preopen_mounts(&ctx)?; // `/data` and `/tmp`, not `/`
    /// # Ok::<(), wasi_common_vfs::Error>(())
    /// ```
    ///
    /// Fails with [`Error::NotSupported`] on a view from
    /// [`Vfs::subtree`], whose directory is preopened with
    /// [`Vfs::preopen`] instead.
    pub fn preopen_mounts(&self, ctx: &wasi_common::WasiCtx) -> Result<()> {
        if self.view.is_some() {
            return Err(Error::NotSupported);
        }
        for path in self.ns.mount_paths() {
            if path == "/" && self.implicit_root {
                continue;
            }
            self.preopen(ctx, path, path)?;
        }
        Ok(())
    }

    /// The whole contents of the file at `path`, following symlinks (see
    /// [Authority](Vfs#authority)).
    ///
    /// A file too large for this process's memory fails with
    /// [`Error::FileTooBig`] instead of aborting it; a guest can make a
    /// sparse file of any size, so read such files with
    /// [`Vfs::save_tar`] or in parts.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        naming(path, || self.read_with(path, true))
    }

    /// [`Vfs::read`] without following a final symlink: `path` naming one
    /// fails with [`Error::Loop`], as `open(O_NOFOLLOW)` does.
    pub fn read_nofollow(&self, path: &str) -> Result<Vec<u8>> {
        naming(path, || self.read_with(path, false))
    }

    fn read_with(&self, path: &str, follow: bool) -> Result<Vec<u8>> {
        let options = OpenOptions {
            follow,
            ..OpenOptions::default()
        };
        let (node, kind) = self.ns.open(self.at(path), options)?;
        if kind == FileKind::Dir {
            return Err(Error::IsDir);
        }
        let _open = self.ns.open_handle(node)?;
        let size = self.ns.metadata(node)?.size;
        let size = usize::try_from(size).map_err(|_| Error::FileTooBig)?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(size).map_err(|_| Error::FileTooBig)?;
        buf.resize(size, 0);
        let n = self.ns.read(node, 0, &mut [IoSliceMut::new(&mut buf)])?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Creates or replaces the contents of the file at `path`, following
    /// symlinks (see [Authority](Vfs#authority)). The parent directory
    /// must exist.
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        naming(path, || self.write_with(path, true, contents.as_ref()))
    }

    /// [`Vfs::write`] without following a final symlink: `path` naming one
    /// fails with [`Error::Loop`] and nothing is written, as
    /// `open(O_NOFOLLOW)` does.
    pub fn write_nofollow(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        naming(path, || self.write_with(path, false, contents.as_ref()))
    }

    fn write_with(&self, path: &str, follow: bool, contents: &[u8]) -> Result<()> {
        let options = OpenOptions {
            create: true,
            truncate: true,
            follow,
            write: true,
            ..OpenOptions::default()
        };
        let slot = self.ns.reserve_handle()?;
        let (node, _) = self.ns.open(self.at(path), options)?;
        let _open = slot.open(node, true)?;
        self.ns
            .write(node, WritePos::At(0), &[IoSlice::new(contents)])?;
        Ok(())
    }

    /// Creates the directory `path`; its parent must exist.
    pub fn create_dir(&self, path: &str) -> Result<()> {
        naming(path, || self.ns.make_dir(self.at(path)))
    }

    /// Creates `path` and any missing parents. Succeeds if it is already a
    /// directory.
    pub fn create_dir_all(&self, path: &str) -> Result<()> {
        naming(path, || self.create_dir_all_recorded(path).map(drop))
    }

    /// [`Vfs::create_dir_all`], returning the directories it made, parents
    /// first.
    pub(crate) fn create_dir_all_recorded(&self, path: &str) -> Result<Vec<String>> {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut prefix = String::new();
        let mut made = Vec::new();
        for (i, component) in components.iter().enumerate() {
            prefix.push('/');
            prefix.push_str(component);
            let failed = match self.ns.make_dir(self.at(&prefix)) {
                Ok(_) => {
                    made.push(prefix.clone());
                    continue;
                }
                Err(Error::Exists) if self.metadata(&prefix).is_ok_and(|m| m.is_dir()) => continue,
                // A non-directory in the middle of the path.
                Err(Error::Exists) if i + 1 < components.len() => Error::NotDir,
                Err(e) => e,
            };
            for dir in made.iter().rev() {
                let _ = self.ns.rmdir(self.at(dir));
            }
            return Err(failed);
        }
        Ok(made)
    }

    /// The entries of the directory at `path`, without `.` and `..`, in
    /// creation order.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        naming(path, || {
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
                out.extend(batch);
            }
            Ok(out)
        })
    }

    /// Removes a file, a symlink or an empty directory.
    pub fn remove(&self, path: &str) -> Result<()> {
        naming(path, || match self.ns.unlink(self.at(path)) {
            Err(Error::IsDir) => self.ns.rmdir(self.at(path)),
            other => other,
        })
    }

    /// Removes `path` and everything below it, as `rm -r` does: a
    /// symlink (at `path` or below it) is removed, never followed, and a
    /// tree of any depth is walked without recursion. A mount below `path`
    /// stops the removal with [`Error::Busy`] naming it, after what came
    /// before it was removed; `.`, `..` and `/` are refused with
    /// [`Error::Invalid`]. With [`Vfs::load_tar`], this restores a
    /// directory from a snapshot instead of merging into it.
    ///
    /// ```
    /// use wasi_common_vfs::Vfs;
    ///
    /// let vfs = Vfs::new();
    /// vfs.create_dir_all("/work/a/b")?;
    /// vfs.write("/work/a/b/f", b"x")?;
    /// vfs.symlink("/", "/work/root")?;
    /// vfs.remove_dir_all("/work")?;
    /// assert!(vfs.read_dir("/")?.is_empty());
    /// # Ok::<(), wasi_common_vfs::Error>(())
    /// ```
    pub fn remove_dir_all(&self, path: &str) -> Result<()> {
        naming(path, || {
            let (parent, name) = self.ns.entry(self.at(path))?;
            crate::boundary::stage::remove_tree(&self.ns, parent, &name, self.scope())
        })
    }

    /// Metadata of what `path` names, following symlinks.
    pub fn metadata(&self, path: &str) -> Result<Metadata> {
        naming(path, || self.ns.stat(self.at(path), true))
    }

    /// Metadata of `path` itself, not following a final symlink.
    pub fn symlink_metadata(&self, path: &str) -> Result<Metadata> {
        naming(path, || self.ns.stat(self.at(path), false))
    }

    /// Creates a symlink at `path` pointing to `target` (stored verbatim).
    pub fn symlink(&self, target: &str, path: &str) -> Result<()> {
        naming(path, || self.ns.symlink(target, self.at(path)))
    }

    /// The target of the symlink at `path`.
    pub fn read_link(&self, path: &str) -> Result<String> {
        naming(path, || self.ns.read_link(self.at(path)))
    }

    /// Adds the name `to` for the file at `from`.
    pub fn hard_link(&self, from: &str, to: &str) -> Result<()> {
        naming(&format!("{from} -> {to}"), || {
            self.ns.link(self.at(from), self.at(to))
        })
    }

    /// Moves `from` to `to`, replacing `to` as `rename(2)` does.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        naming(&format!("{from} -> {to}"), || {
            self.ns.rename(self.at(from), self.at(to))
        })
    }

    /// Sets the access and modification times of `path` (following
    /// symlinks); `None` leaves a time unchanged.
    pub fn set_times(
        &self,
        path: &str,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        naming(path, || self.set_times_at(path, true, atime, mtime))
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

    /// Sets the permission bits of `path` (following symlinks).
    pub fn set_mode(&self, path: &str, mode: u32) -> Result<()> {
        let set = SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        };
        naming(path, || self.set_attr(path, &set))
    }

    /// Sets the size of the file at `path`, truncating or extending it with
    /// zeros.
    pub fn set_len(&self, path: &str, size: u64) -> Result<()> {
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        naming(path, || self.set_attr(path, &set))
    }

    fn set_attr(&self, path: &str, set: &SetAttr) -> Result<()> {
        let (node, _) = self.ns.find(self.at(path))?;
        self.ns.setattr(node, set)
    }
}

/// Runs a host-API call on `path`, its error naming the path as the
/// caller gave it; the cause stays inside ([`Error::innermost`]).
fn naming<T>(path: &str, call: impl FnOnce() -> Result<T>) -> Result<T> {
    call().map_err(|e| e.at(path))
}
