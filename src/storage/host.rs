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
//! answers `ENOENT` until the name is looked up again). Listings are read
//! from the host on every call, continuing from the host's own cookie. Open files are held
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Host cookies kept for listing cursors, at most: the newest, so a listing
/// in progress keeps its place unless this many entries were listed (in
/// any directory of the store) since its last page. One is about 40 bytes.
const COOKIES_KEPT: usize = 1 << 16;

/// Cursors are numbered below this, and wrap round to 1; the namespace
/// keeps cursors from 2^62 up for its own use.
const CURSORS: u64 = 1 << 61;

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
    /// Host cookies behind the listing cursors handed out.
    cookies: Mutex<Cookies>,
    /// Cleared by [`Storage::seal`]: files are then opened read-only.
    writable: AtomicBool,
}

/// The host cookies (`d_off`, for `seekdir`) behind the listing cursors
/// handed out, oldest first. Cursors are the store's own numbers rather
/// than the host's cookies, which on ext4 are 63-bit hashes (too large for
/// a cursor) and which a guest could otherwise forge.
#[derive(Default)]
struct Cookies {
    /// Cursors handed out so far.
    issued: u64,
    by_cursor: HashMap<u64, i64>,
    order: std::collections::VecDeque<u64>,
}

/// Where a cursor leads.
enum Resume {
    At(i64),
    /// Past the end: a cursor this store never handed out.
    End,
}

impl Cookies {
    /// A new cursor for host cookie `cookie`.
    fn cursor(&mut self, cookie: i64) -> u64 {
        self.issued += 1;
        let cursor = 1 + (self.issued - 1) % (CURSORS - 1);
        self.by_cursor.insert(cursor, cookie);
        self.order.push_back(cursor);
        if self.order.len() > COOKIES_KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.by_cursor.remove(&old);
        }
        cursor
    }

    /// Where `cursor` resumes a listing; `EINVAL` for a cursor handed out
    /// so long ago that its cookie was dropped.
    fn resume(&self, cursor: u64) -> Result<Resume> {
        if let Some(&cookie) = self.by_cursor.get(&cursor) {
            return Ok(Resume::At(cookie));
        }
        if self.issued < CURSORS - 1 && cursor > self.issued {
            return Ok(Resume::End);
        }
        Err(Error::Invalid)
    }
}

/// What an open inode holds on the host.
#[derive(Clone)]
enum Held {
    /// A file handle: the data stays reachable after unlink or rename.
    File(Arc<File>),
    /// A directory handle: a removed directory still lists (as empty) and
    /// answers `fstat`.
    Dir(Arc<Dir>),
    /// Symlinks are only ever reached by path.
    Nothing,
}

fn host(e: std::io::Error) -> Error {
    Error::from_host(e)
}

fn io(e: rustix::io::Errno) -> Error {
    host(e.into())
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
            cookies: Mutex::new(Cookies::default()),
            writable: AtomicBool::new(true),
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
        self.ino_at(meta.dev(), meta.ino())
    }

    /// The store's inode number for host inode `ino` of device `dev`.
    fn ino_at(&self, dev: u64, ino: u64) -> Ino {
        if dev == self.root_dev {
            ino
        } else {
            ino ^ dev.rotate_left(40)
        }
    }

    /// A handle on the directory `dir`: the open one, or a fresh one.
    fn dir_handle(&self, dir: Ino) -> Result<Arc<Dir>> {
        if let Some(d) = self.open_dir(dir) {
            return Ok(d);
        }
        let path = self.path(dir)?;
        Ok(Arc::new(self.dir.open_dir_nofollow(&path).map_err(host)?))
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

    /// Metadata of `ino`, from its open handle or its remembered path; a
    /// path that now leads elsewhere is a stale entry, forgotten.
    fn meta(&self, ino: Ino) -> Result<Metadata> {
        if let Some(f) = self.open_file(ino) {
            return f.metadata().map_err(host);
        }
        // An open directory is stat-ed through its handle, so it answers
        // even once its name is gone, as on Linux.
        if let Some(d) = self.open_dir(ino) {
            return d.dir_metadata().map_err(host);
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
        if write && !self.writable.load(Ordering::Acquire) {
            return Err(Error::ReadOnly);
        }
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

    fn seal(&self) {
        self.writable.store(false, Ordering::Release);
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
        // Each call reads the host directory afresh from the host's own
        // cookie (`seekdir`), so any number of listings can be in progress,
        // and an entry present throughout is neither skipped nor repeated.
        use rustix::fs::{AtFlags, FileType};
        let handle = self.dir_handle(dir)?;
        let dev = rustix::fs::fstat(&*handle).map_err(io)?.st_dev;
        // A position of its own: cap-std's handle may be a path-only one.
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::CLOEXEC;
        let own =
            rustix::fs::openat(&*handle, ".", flags, rustix::fs::Mode::empty()).map_err(io)?;
        let mut listing = rustix::fs::Dir::new(own).map_err(io)?;
        if cursor != 0 {
            match self.cookies.lock().resume(cursor)? {
                Resume::At(cookie) => listing.seek(cookie).map_err(io)?,
                Resume::End => return Ok(Vec::new()),
            }
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(entry) = listing.read() else { break };
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(name) else {
                continue; // a guest could not name it anyway
            };
            let (ino, kind) = match entry.file_type() {
                FileType::Symlink => (self.ino_at(dev, entry.ino()), FileKind::Symlink),
                FileType::Directory | FileType::Unknown => {
                    // A directory may be another host filesystem's root,
                    // whose number its entry does not show.
                    let Ok(st) = rustix::fs::statat(&*handle, name, AtFlags::SYMLINK_NOFOLLOW)
                    else {
                        continue; // gone since it was listed
                    };
                    let kind = match FileType::from_raw_mode(st.st_mode) {
                        FileType::Directory => FileKind::Dir,
                        FileType::Symlink => FileKind::Symlink,
                        _ => FileKind::File,
                    };
                    (self.ino_at(st.st_dev, st.st_ino), kind)
                }
                _ => (self.ino_at(dev, entry.ino()), FileKind::File),
            };
            out.push(DirEntry {
                name: name.to_owned(),
                ino,
                kind,
                next: self.cookies.lock().cursor(entry.offset()),
            });
        }
        Ok(out)
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
            let mut read_only = OpenOptions::new();
            read_only.read(true);
            let file = if self.writable.load(Ordering::Acquire) {
                self.dir
                    .open_with(&path, OpenOptions::new().read(true).write(true))
                    .or_else(|_| self.dir.open_with(&path, &read_only))
            } else {
                self.dir.open_with(&path, &read_only)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_stand_for_cookies_and_forged_ones_end_the_listing() {
        let mut cookies = Cookies::default();
        let big = cookies.cursor(i64::MAX - 5);
        let small = cookies.cursor(3);
        assert!(matches!(cookies.resume(big), Ok(Resume::At(c)) if c == i64::MAX - 5));
        assert!(matches!(cookies.resume(small), Ok(Resume::At(3))));
        assert!(
            matches!(cookies.resume(1000), Ok(Resume::End)),
            "never handed out"
        );
        for i in 0..COOKIES_KEPT as i64 {
            cookies.cursor(i);
        }
        assert!(
            matches!(cookies.resume(big), Err(Error::Invalid)),
            "dropped long ago: an error, not a silent end"
        );
        assert_eq!(cookies.by_cursor.len(), COOKIES_KEPT, "bounded");
    }
}
