//! `VfsDir`: a directory of the namespace, as a `WasiDir`.
//!
//! Every path argument is handed, unparsed, to the namespace with
//! [`Scope::Confined`], so the resolver's confinement applies to every call.

use super::life::GuestLife;
use super::{VfsFile, file_type, filestat, time_set};
use crate::error::Error;
use crate::namespace::ops::{At, OpenOptions};
use crate::namespace::resolve::Scope;
use crate::namespace::{Handle, Namespace, Node};
use crate::storage::{DirEntry, FileKind};
use std::any::Any;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use wasi_common::dir::{OpenResult, ReaddirCursor, ReaddirEntity, WasiDir};
use wasi_common::file::{FdFlags, Filestat, OFlags};
use wasi_common::{Error as WasiError, SystemTimeSpec};

/// How many entries one step of a directory listing fetches from the store:
/// a listing call costs O(log n) to find its cursor plus this many entries at
/// a time, never a rescan from the start.
const READDIR_BATCH: usize = 64;

/// An open directory. Guests can reach everything below it and nothing
/// above it.
///
/// One type serves every store, so `path_rename` and `path_link` work between
/// two preopens of the same [`Vfs`](crate::Vfs); between different `Vfs`
/// trees they fail with `EXDEV`.
///
/// [`Vfs::preopen`](crate::Vfs::preopen) places one in a context; an
/// embedder that builds its own gets one from
/// [`Vfs::wasi_dir`](crate::Vfs::wasi_dir):
///
/// ```
/// use wasi_common::sync::WasiCtxBuilder;
/// use wasi_common_vfs::{Vfs, runtime};
/// use wasmtime::{Engine, Linker, Module, Store};
///
/// # fn main() -> wasmtime::Result<()> {
/// # // The guest: creates `note.txt` in its first preopen.
/// # let here = tempfile::tempdir()?;
/// # std::env::set_current_dir(here.path())?;
/// # std::fs::write("guest.wasm", r#"(module
/// #   (import "wasi_snapshot_preview1" "path_open"
/// #     (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
/// #   (memory (export "memory") 1)
/// #   (data (i32.const 0) "note.txt")
/// #   (func (export "_start")
/// #     (if (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 8)
/// #           (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 100))
/// #       (then unreachable))))"#)?;
/// let vfs = Vfs::new();
/// vfs.create_dir_all("/srv/data")?;
/// let ctx = WasiCtxBuilder::new().build();
/// ctx.push_preopened_dir(Box::new(vfs.wasi_dir("/srv/data")?), "/data")?;
///
/// let engine = Engine::default();
/// let mut linker = Linker::new(&engine);
/// runtime::add_to_linker(&mut linker, |cx| cx)?;
/// let mut store = Store::new(&engine, ctx);
/// let module = Module::from_file(&engine, "guest.wasm")?;
/// runtime::run_command(&mut store, &linker, &module)?;
/// assert!(vfs.metadata("/srv/data/note.txt")?.is_file());
/// # Ok(())
/// # }
/// ```
pub struct VfsDir {
    handle: Handle,
    /// The guest this descriptor belongs to, if it was preopened for one.
    life: Option<Arc<GuestLife>>,
}

impl VfsDir {
    pub(crate) fn new(handle: Handle) -> Self {
        VfsDir { handle, life: None }
    }

    /// This directory as a descriptor of the guest whose life `life` is:
    /// it and everything opened through it stop working when the guest is
    /// over.
    pub(crate) fn of_guest(mut self, life: Arc<GuestLife>) -> Self {
        self.life = Some(life);
        self
    }

    /// The namespace, while the guest holding this descriptor runs.
    fn ns(&self) -> Result<&Arc<Namespace>, Error> {
        if let Some(life) = &self.life {
            life.check()?;
        }
        Ok(self.handle.ns())
    }

    fn at<'a>(&self, path: &'a str) -> At<'a> {
        At {
            dir: self.handle.node(),
            path,
            scope: Scope::Confined,
        }
    }

    /// The other directory of a two-directory call, when it is one of ours
    /// on the same tree.
    fn same_tree<'a>(&self, other: &'a dyn WasiDir) -> Result<&'a VfsDir, Error> {
        match other.as_any().downcast_ref::<VfsDir>() {
            Some(d) if Arc::ptr_eq(d.handle.ns(), self.handle.ns()) => Ok(d),
            _ => Err(Error::CrossDevice),
        }
    }
}

/// A listing that fetches entries from the store in batches as the guest's
/// buffer consumes them.
struct Listing {
    ns: Arc<Namespace>,
    dir: Node,
    cookie: u64,
    batch: VecDeque<DirEntry>,
    done: bool,
}

impl Iterator for Listing {
    type Item = Result<ReaddirEntity, WasiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.batch.is_empty() && !self.done {
            match self.ns.readdir(self.dir, self.cookie, READDIR_BATCH) {
                Ok(entries) => {
                    self.done = entries.len() < READDIR_BATCH;
                    self.batch = entries.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
        let e = self.batch.pop_front()?;
        self.cookie = e.next;
        Some(Ok(ReaddirEntity {
            next: ReaddirCursor::from(e.next),
            inode: e.ino,
            name: e.name,
            filetype: file_type(e.kind),
        }))
    }
}

#[async_trait::async_trait]
impl WasiDir for VfsDir {
    fn as_any(&self) -> &dyn Any {
        self
    }

    async fn open_file(
        &self,
        symlink_follow: bool,
        path: &str,
        oflags: OFlags,
        _read: bool,
        write: bool,
        fdflags: FdFlags,
    ) -> Result<OpenResult, WasiError> {
        // Synchronous I/O is refused before anything is created, as
        // wasi-common's host directory refuses it (and as
        // `fd_fdstat_set_flags` refuses it on this crate's files).
        if fdflags.intersects(FdFlags::DSYNC | FdFlags::SYNC | FdFlags::RSYNC) {
            return Err(Error::NotSupported.into());
        }
        // As for wasi-common's host files, O_CREAT implies opening for write
        // (the guest's rights still decide whether fd_write is allowed).
        let writable = write || oflags.contains(OFlags::CREATE);
        let options = OpenOptions {
            create: oflags.contains(OFlags::CREATE),
            exclusive: oflags.contains(OFlags::EXCLUSIVE),
            truncate: oflags.contains(OFlags::TRUNCATE),
            directory: oflags.contains(OFlags::DIRECTORY),
            follow: symlink_follow,
            write: writable,
        };
        tracing::trace!(path, ?oflags, ?fdflags, write, "path_open");
        // The descriptor first: an open refused for the limit must not have
        // created or truncated the file.
        let slot = self.ns()?.reserve_handle()?;
        let (node, kind) = self.ns()?.open(self.at(path), options)?;
        let handle = slot.open(node, writable)?;
        Ok(match kind {
            FileKind::Dir => OpenResult::Dir(Box::new(VfsDir {
                handle,
                life: self.life.clone(),
            })),
            _ => OpenResult::File(Box::new(
                VfsFile::new(handle, writable, fdflags).of_guest(self.life.clone()),
            )),
        })
    }

    async fn create_dir(&self, path: &str) -> Result<(), WasiError> {
        self.ns()?.make_dir(self.at(path))?;
        Ok(())
    }

    async fn readdir(
        &self,
        cursor: ReaddirCursor,
    ) -> Result<Box<dyn Iterator<Item = Result<ReaddirEntity, WasiError>> + Send>, WasiError> {
        Ok(Box::new(Listing {
            ns: self.ns()?.clone(),
            dir: self.handle.node(),
            cookie: cursor.into(),
            batch: VecDeque::new(),
            done: false,
        }))
    }

    async fn symlink(&self, old_path: &str, new_path: &str) -> Result<(), WasiError> {
        Ok(self.ns()?.symlink(old_path, self.at(new_path))?)
    }

    async fn remove_dir(&self, path: &str) -> Result<(), WasiError> {
        Ok(self.ns()?.rmdir(self.at(path))?)
    }

    async fn unlink_file(&self, path: &str) -> Result<(), WasiError> {
        Ok(self.ns()?.unlink(self.at(path))?)
    }

    async fn read_link(&self, path: &str) -> Result<PathBuf, WasiError> {
        Ok(self.ns()?.read_link(self.at(path))?.into())
    }

    async fn get_filestat(&self) -> Result<Filestat, WasiError> {
        Ok(filestat(self.ns()?.metadata(self.handle.node())?))
    }

    async fn get_path_filestat(&self, path: &str, follow: bool) -> Result<Filestat, WasiError> {
        Ok(filestat(self.ns()?.stat(self.at(path), follow)?))
    }

    async fn rename(
        &self,
        path: &str,
        dest_dir: &dyn WasiDir,
        dest_path: &str,
    ) -> Result<(), WasiError> {
        let dest = self.same_tree(dest_dir)?;
        Ok(self.ns()?.rename(self.at(path), dest.at(dest_path))?)
    }

    async fn hard_link(
        &self,
        path: &str,
        target_dir: &dyn WasiDir,
        target_path: &str,
    ) -> Result<(), WasiError> {
        let target = self.same_tree(target_dir)?;
        Ok(self.ns()?.link(self.at(path), target.at(target_path))?)
    }

    async fn set_times(
        &self,
        path: &str,
        atime: Option<SystemTimeSpec>,
        mtime: Option<SystemTimeSpec>,
        follow: bool,
    ) -> Result<(), WasiError> {
        Ok(self
            .ns()?
            .set_times(self.at(path), follow, time_set(atime), time_set(mtime))?)
    }
}
