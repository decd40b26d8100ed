//! `HostDir`: a directory of the host as a backend.
//!
//! Every host access goes through one `cap_std::fs::Dir` opened on the
//! directory, with paths made only of names the namespace looked up, so no
//! `..` or symlink, including one planted on the host afterwards, reaches
//! outside it: cap-std refuses to resolve beyond its directory.
//!
//! Inode numbers are the host's; the store remembers one path per inode it
//! has seen, and checks on every use that the path still leads to that inode,
//! so changes made on the host by other processes are seen (a stale entry
//! answers `ENOENT` until the name is looked up again). Open files are held
//! as host file handles, so unlink and rename of an open file behave as on
//! the host. This module must not interpret symlinks: it reports them.

use crate::error::{Error, Result};
use crate::storage::read_only::ReadOnly;
use crate::storage::{Attr, DirEntry, FileKind, Ino, NewNode, SetAttr, Storage, TimeSet, WritePos};
use cap_fs_ext::{DirExt, SystemTimeSpec};
use cap_std::fs::{Dir, File, FileExt, Metadata, MetadataExt, OpenOptions, PermissionsExt};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Directory listings kept for continuing a paged `readdir`, at most.
const LISTINGS_KEPT: usize = 32;

/// A host directory, confined with cap-std.
///
/// ```no_run
/// use wasi_common_vfs::{HostDir, Vfs};
///
/// let vfs = Vfs::builder()
///     .mount("/mnt/data", HostDir::open("/srv/data")?.read_only())
///     .build()?;
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
pub struct HostDir {
    dir: Dir,
    root: Ino,
    root_dev: u64,
    /// A path (relative to `dir`) for every inode seen.
    paths: Mutex<HashMap<Ino, PathBuf>>,
    /// Host handles of open inodes, with their open counts.
    open: Mutex<HashMap<Ino, (Held, u64)>>,
    /// Serialises appends, which need the size and the write to be atomic.
    append: Mutex<()>,
    /// Listings in progress, by directory.
    listings: Mutex<HashMap<Ino, Arc<Vec<DirEntry>>>>,
}

/// What an open inode holds on the host.
#[derive(Clone)]
enum Held {
    /// A file handle: the data stays reachable after unlink or rename.
    File(Arc<File>),
    /// A directory handle: a removed directory still lists (as empty).
    Dir(Arc<Dir>),
    /// Symlinks are only ever reached by path.
    Nothing,
}

fn host(e: std::io::Error) -> Error {
    Error::from_host(e)
}

fn kind_of(meta: &Metadata) -> FileKind {
    let t = meta.file_type();
    if t.is_dir() {
        FileKind::Dir
    } else if t.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::File
    }
}

fn ctime(meta: &Metadata) -> SystemTime {
    let secs = meta.ctime();
    let nanos = Duration::from_nanos(u64::try_from(meta.ctime_nsec()).unwrap_or(0));
    match u64::try_from(secs) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s) + nanos,
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

fn time_spec(t: Option<TimeSet>) -> Option<SystemTimeSpec> {
    t.map(|t| match t {
        TimeSet::Now => SystemTimeSpec::SymbolicNow,
        TimeSet::At(t) => SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(t)),
    })
}

impl HostDir {
    /// Opens the host directory `path`; fails, naming the path, if it does
    /// not exist or is not a directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let named = |source| Error::HostDir {
            path: path.to_path_buf(),
            source,
        };
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(named)?;
        let meta = dir.dir_metadata().map_err(named)?;
        let root = meta.ino();
        Ok(HostDir {
            dir,
            root,
            root_dev: meta.dev(),
            paths: Mutex::new(HashMap::from([(root, PathBuf::from("."))])),
            open: Mutex::new(HashMap::new()),
            append: Mutex::new(()),
            listings: Mutex::new(HashMap::new()),
        })
    }

    /// This directory behind a [`ReadOnly`] wrapper: guests and the host API
    /// can read it, and every change fails with `EROFS`.
    pub fn read_only(self) -> ReadOnly<Self> {
        ReadOnly::new(self)
    }

    /// The store's inode number for host metadata: the host's, mixed with
    /// the device for anything on another host filesystem below the root.
    fn ino_of(&self, meta: &Metadata) -> Ino {
        if meta.dev() == self.root_dev {
            meta.ino()
        } else {
            meta.ino() ^ meta.dev().rotate_left(40)
        }
    }

    fn path(&self, ino: Ino) -> Result<PathBuf> {
        self.paths.lock().get(&ino).cloned().ok_or(Error::NotFound)
    }

    fn child(&self, dir: Ino, name: &str) -> Result<PathBuf> {
        Ok(self.path(dir)?.join(name))
    }

    fn open_file(&self, ino: Ino) -> Option<Arc<File>> {
        match self.open.lock().get(&ino) {
            Some((Held::File(f), _)) => Some(f.clone()),
            _ => None,
        }
    }

    fn open_dir(&self, ino: Ino) -> Option<Arc<Dir>> {
        match self.open.lock().get(&ino) {
            Some((Held::Dir(d), _)) => Some(d.clone()),
            _ => None,
        }
    }

    /// Reads the listing of `dir` from the host.
    fn read_listing(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        let entries = match self.open_dir(dir) {
            Some(d) => d.entries(),
            None => self.dir.read_dir(self.path(dir)?),
        };
        let mut out = Vec::new();
        for entry in entries.map_err(host)? {
            let entry = entry.map_err(host)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // a guest could not name it anyway
            };
            let meta = entry.metadata().map_err(host)?;
            let index = out.len() as u64;
            out.push(DirEntry {
                name,
                ino: self.ino_of(&meta),
                kind: kind_of(&meta),
                next: index + 1,
            });
        }
        Ok(out)
    }

    /// Whether `entry` of directory `dir` is still there, as listed.
    fn still_there(&self, dir: Ino, entry: &DirEntry) -> bool {
        let meta = match self.open_dir(dir) {
            Some(d) => d.symlink_metadata(&entry.name),
            None => match self.path(dir) {
                Ok(p) => self.dir.symlink_metadata(p.join(&entry.name)),
                Err(_) => return false,
            },
        };
        meta.is_ok_and(|m| self.ino_of(&m) == entry.ino)
    }

    /// Metadata of `ino`, from its open handle or its remembered path; a
    /// path that now leads elsewhere is a stale entry, forgotten.
    fn meta(&self, ino: Ino) -> Result<Metadata> {
        if let Some(f) = self.open_file(ino) {
            return f.metadata().map_err(host);
        }
        let path = self.path(ino)?;
        let meta = self.dir.symlink_metadata(&path).map_err(host)?;
        if self.ino_of(&meta) != ino {
            self.paths.lock().remove(&ino);
            return Err(Error::NotFound);
        }
        Ok(meta)
    }

    fn attr(&self, ino: Ino, meta: &Metadata) -> Attr {
        let time = |t: std::io::Result<cap_std::time::SystemTime>| {
            t.map(|t| t.into_std()).unwrap_or(SystemTime::UNIX_EPOCH)
        };
        Attr {
            ino,
            kind: kind_of(meta),
            size: meta.len(),
            nlink: meta.nlink(),
            atime: time(meta.accessed()),
            mtime: time(meta.modified()),
            ctime: ctime(meta),
            mode: meta.permissions().mode() & 0o7777,
        }
    }

    /// A host handle on the file `ino`: the open one, or a fresh one.
    fn file(&self, ino: Ino, write: bool) -> Result<Arc<File>> {
        if let Some(f) = self.open_file(ino) {
            return Ok(f);
        }
        let path = self.path(ino)?;
        let file = self
            .dir
            .open_with(&path, OpenOptions::new().read(!write).write(write))
            .map_err(host)?;
        Ok(Arc::new(file))
    }

    fn remember(&self, path: PathBuf, meta: &Metadata) -> Ino {
        let ino = self.ino_of(meta);
        self.paths.lock().insert(ino, path);
        ino
    }

    /// After a rename, every remembered path under `from` moves to `to`.
    fn moved(&self, from: &Path, to: &Path) {
        for path in self.paths.lock().values_mut() {
            if let Ok(rest) = path.strip_prefix(from) {
                *path = to.join(rest);
            }
        }
    }
}

impl Storage for HostDir {
    fn root(&self) -> Ino {
        self.root
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        let path = if name == ".." {
            let dir_path = self.path(dir)?;
            match dir_path.parent() {
                Some(p) if dir != self.root && !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        } else {
            self.child(dir, name)?
        };
        let meta = self.dir.symlink_metadata(&path).map_err(host)?;
        Ok((self.remember(path, &meta), kind_of(&meta)))
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        let meta = self.meta(ino)?;
        Ok(self.attr(ino, &meta))
    }

    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        if let Some(size) = set.size {
            self.file(ino, true)?.set_len(size).map_err(host)?;
        }
        if let Some(mode) = set.mode {
            let path = self.path(ino)?;
            let perms = cap_std::fs::Permissions::from_mode(mode & 0o7777);
            self.dir.set_permissions(&path, perms).map_err(host)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let path = self.path(ino)?;
            self.dir
                .set_symlink_times(&path, time_spec(set.atime), time_spec(set.mtime))
                .map_err(host)?;
        }
        self.getattr(ino)
    }

    fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        let file = self.file(ino, false)?;
        let mut total = 0;
        let mut at = offset;
        for buf in bufs.iter_mut() {
            let n = file.read_at(buf, at).map_err(host)?;
            total += n;
            at += n as u64;
            if n < buf.len() {
                break;
            }
        }
        Ok(total)
    }

    fn write(
        &self,
        ino: Ino,
        pos: WritePos,
        bufs: &[IoSlice<'_>],
        max_size: u64,
    ) -> Result<(usize, u64)> {
        let file = self.file(ino, true)?;
        let _append = matches!(pos, WritePos::Append).then(|| self.append.lock());
        let mut at = match pos {
            WritePos::At(offset) => offset,
            WritePos::Append => file.metadata().map_err(host)?.len(),
        };
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if len > 0 && at.checked_add(len).is_none_or(|end| end > max_size) {
            return Err(Error::FileTooBig);
        }
        let mut total = 0;
        for buf in bufs {
            file.write_all_at(buf, at).map_err(host)?;
            total += buf.len();
            at += buf.len() as u64;
        }
        Ok((total, at))
    }

    fn create(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<Attr> {
        let path = self.child(dir, name)?;
        match node {
            NewNode::File => {
                self.dir
                    .open_with(&path, OpenOptions::new().write(true).create_new(true))
                    .map_err(host)?;
            }
            NewNode::Dir => self.dir.create_dir(&path).map_err(host)?,
            NewNode::Symlink(target) => self.dir.symlink(target, &path).map_err(host)?,
        }
        let meta = self.dir.symlink_metadata(&path).map_err(host)?;
        let ino = self.remember(path, &meta);
        Ok(self.attr(ino, &meta))
    }

    fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
        // A listing is read from the host when it starts (cursor 0) and kept
        // until the next one starts, so that each call costs only the entries
        // it returns and a cursor stays valid while the directory changes:
        // entries gone since are skipped; entries added since may not show.
        let kept = if cursor == 0 {
            None
        } else {
            self.listings.lock().get(&dir).cloned()
        };
        let listing = match kept {
            Some(l) => l,
            None => {
                let listing = Arc::new(self.read_listing(dir)?);
                let mut listings = self.listings.lock();
                if listings.len() >= LISTINGS_KEPT {
                    listings.clear();
                }
                listings.insert(dir, listing.clone());
                listing
            }
        };
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(listing.len());
        Ok(listing[start..]
            .iter()
            .filter(|e| cursor == 0 || self.still_there(dir, e))
            .take(max)
            .cloned()
            .collect())
    }

    fn readlink(&self, ino: Ino) -> Result<String> {
        let path = self.path(ino)?;
        let target = self.dir.read_link_contents(&path).map_err(host)?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| Error::Invalid)
    }

    fn unlink(&self, dir: Ino, name: &str) -> Result<()> {
        let path = self.child(dir, name)?;
        let meta = self.dir.symlink_metadata(&path).map_err(host)?;
        if meta.is_dir() {
            return Err(Error::IsDir);
        }
        self.dir.remove_file(&path).map_err(host)?;
        self.forget_path(&path, self.ino_of(&meta));
        Ok(())
    }

    fn rmdir(&self, dir: Ino, name: &str) -> Result<()> {
        let path = self.child(dir, name)?;
        let meta = self.dir.symlink_metadata(&path).map_err(host)?;
        self.dir.remove_dir(&path).map_err(host)?;
        self.forget_path(&path, self.ino_of(&meta));
        Ok(())
    }

    fn rename(&self, src_dir: Ino, src_name: &str, dst_dir: Ino, dst_name: &str) -> Result<()> {
        let from = self.child(src_dir, src_name)?;
        let to = self.child(dst_dir, dst_name)?;
        let replaced = self.dir.symlink_metadata(&to).ok();
        self.dir.rename(&from, &self.dir, &to).map_err(host)?;
        if let Some(meta) = replaced {
            self.forget_path(&to, self.ino_of(&meta));
        }
        self.moved(&from, &to);
        Ok(())
    }

    fn link(&self, ino: Ino, dir: Ino, name: &str) -> Result<Attr> {
        let from = self.path(ino)?;
        let to = self.child(dir, name)?;
        if self.meta(ino)?.is_dir() {
            return Err(Error::NotPermitted);
        }
        self.dir.hard_link(&from, &self.dir, &to).map_err(host)?;
        self.getattr(ino)
    }

    fn allocate(&self, ino: Ino, size: u64) -> Result<()> {
        let file = self.file(ino, true)?;
        let _append = self.append.lock();
        if file.metadata().map_err(host)?.len() < size {
            file.set_len(size).map_err(host)?;
        }
        Ok(())
    }

    fn open(&self, ino: Ino) -> Result<()> {
        let mut open = self.open.lock();
        if let Some((_, count)) = open.get_mut(&ino) {
            *count += 1;
            return Ok(());
        }
        drop(open);
        let meta = self.meta(ino)?;
        let path = self.path(ino)?;
        let held = if meta.is_file() {
            let file = self
                .dir
                .open_with(&path, OpenOptions::new().read(true).write(true))
                .or_else(|_| self.dir.open_with(&path, OpenOptions::new().read(true)))
                .map_err(host)?;
            Held::File(Arc::new(file))
        } else if meta.is_dir() {
            Held::Dir(Arc::new(self.dir.open_dir_nofollow(&path).map_err(host)?))
        } else {
            Held::Nothing
        };
        let mut open = self.open.lock();
        open.entry(ino).or_insert((held, 0)).1 += 1;
        Ok(())
    }

    fn release(&self, ino: Ino) {
        let mut open = self.open.lock();
        if let Some((_, count)) = open.get_mut(&ino) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ino);
            }
        }
    }

    fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
        use rustix::fs::SeekFrom;
        use rustix::io::Errno;
        let file = self.file(ino, false)?;
        let size = file.metadata().map_err(host)?.len();
        if offset >= size {
            return Ok(None);
        }
        // Reads go through `pread`, so moving the shared offset is harmless.
        let start = match rustix::fs::seek(&*file, SeekFrom::Data(offset)) {
            Ok(start) => start,
            Err(Errno::NXIO) => return Ok(None),
            // A filesystem without hole reporting: all of it is data.
            Err(_) => return Ok(Some((offset, size))),
        };
        let end = rustix::fs::seek(&*file, SeekFrom::Hole(start)).unwrap_or(size);
        Ok((start < size).then_some((start, end.min(size))))
    }
}

impl HostDir {
    /// Forgets `path` as the way to `ino` once that name is gone.
    fn forget_path(&self, path: &Path, ino: Ino) {
        let mut paths = self.paths.lock();
        if paths.get(&ino).is_some_and(|p| p == path) {
            paths.remove(&ino);
        }
    }
}
