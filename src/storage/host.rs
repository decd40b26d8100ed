//! `HostDir`: a directory of the host as a backend, reached through open
//! directory handles.
//!
//! Every directory the store knows is held (or reopened when needed) as an
//! open host directory handle, and every operation is one `*at` system call
//! on the handle of its parent and one name the namespace looked up, with
//! symlinks never followed. A run of plain names (`lookup_dirs`,
//! `open_path`, the `stat`s, changes and `readlink`s of deep paths,
//! `peek_path`, `change_path` and `readlink_path`, and the renames, links
//! and time changes of plain paths, `rename_path`, `link_path` and
//! `set_times_path`) is one `openat2` beneath a handle that follows no
//! symlink, `..` or magic link and crosses into no other filesystem, so it
//! reaches exactly what the names one by one would. No path is ever
//! resolved from the mount's root, so no `..` or symlink, including one
//! another host process swaps in at any moment, takes an operation outside
//! the mount, and a rename on the host between a lookup and its use cannot
//! make an operation act on some other file. What was opened is checked
//! to be what was looked up (device and inode number); a name that now
//! leads elsewhere answers `ENOENT` until it is looked up again.
//!
//! On a local filesystem, which reports every change made to it (tmpfs,
//! ext4, XFS, Btrfs, F2FS), the names of the directories looked up are
//! kept, each true until the host's notice of a change to it is read
//! (`storage/host_names.rs`, on inotify). A walk through directories the
//! store knows then asks the host only whether anything changed (one
//! `epoll_wait`), and a `stat`, change, `readlink`, rename, link or time
//! change of a path whose way it knows is one `*at` call on that way's
//! handle. So is an open of a path whose way of four directories or more
//! it knows; a shorter way stays one `openat2`, which costs the host less
//! than the check. Everything else is as above.
//!
//! Inode numbers are the host's, with a range of their own for each other
//! host filesystem mounted below the root. The store remembers, for each
//! inode a later call may name by number, its parent and name (not a
//! path), so a rename costs O(1); a file that was only `stat`-ed, or opened
//! in one step and then through the handle that step made, needs no such
//! record. It keeps at most a bounded number of records, dropping the
//! least recently used, and of directory handles, closing the oldest (an
//! open file or directory is never dropped). Removing or replacing a
//! directory drops nothing: a kept handle holds its host inode, so no
//! directory made later gets that number while the handle could serve it.
//! Open files are held as host file handles, so unlink and rename of an
//! open file behave as on the host. Listings are read from the host on
//! every call, continuing from the host's own cookie, which the cursor
//! carries ([`WIDE_CURSORS`]): the store keeps nothing for them. This
//! module must not interpret symlinks: it reports them.

#![allow(
    clippy::unnecessary_cast,
    reason = "rustix's `Stat` fields have a different type on each architecture"
)]

use crate::error::{Error, Result};
use crate::storage::host_names::{Known, NameCache};
use crate::storage::read_only::ReadOnly;
use crate::storage::{
    Attr, DirEntry, FileKind, Ino, NewNode, PathChange, PathOpen, PlainPath, SetAttr, Storage,
    TimeSet, WIDE_CURSORS, WritePos,
};
use parking_lot::Mutex;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use std::collections::HashMap as StdHashMap;
use std::collections::hash_map::Entry;
use std::io::{IoSlice, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// The store's maps are keyed by host inode numbers, which no guest
/// chooses; foldhash (randomly seeded) costs a fraction of SipHash on
/// every lookup, and a path's `stat` makes one per directory on the way.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// Directory handles a store keeps open by default (see
/// [`HostDir::max_open_dirs`]).
pub const DEFAULT_OPEN_DIRS: usize = 256;

/// Inodes a store remembers the parent and name of, at most, besides the
/// open ones; about 100 bytes each.
const NODES_KEPT: usize = 1 << 16;

/// Files opened by `create` or `open_path` kept waiting for their `open`,
/// at most: one per thread opening a file of the store at the same moment.
const READY_KEPT: usize = 16;

/// Names remembered for one inode with hard links, at most.
const NAMES_KEPT: usize = 4;

/// The longest run of names (joined by `/`) taken in one step: the store
/// remembers the run as the node's name, so a record holds no more than a
/// single name may, however deep the paths a guest makes. A longer run is
/// looked up name by name.
const RUN_MAX: usize = crate::storage::NAME_MAX;

/// A host directory, reached only through handles below it.
///
/// ```
/// use wasi_common_vfs::{Error, HostDir, Vfs};
///
/// // The host's temporary directory, for guests to read and not change.
/// let vfs = Vfs::builder()
///     .mount("/mnt/data", HostDir::open(std::env::temp_dir())?.read_only())
///     .build()?;
/// let refused = vfs.write("/mnt/data/note.txt", b"hi").map_err(Error::into_innermost);
/// assert!(matches!(refused, Err(Error::ReadOnly)));
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
pub struct HostDir {
    root: Ino,
    root_dev: u64,
    root_fd: Arc<OwnedFd>,
    /// What the store knows of each inode it has seen.
    nodes: Mutex<Nodes>,
    /// Host handles of open inodes, with their open counts.
    open: Mutex<HashMap<Ino, (Held, u64)>>,
    /// Serialises appends, which need the size and the write to be atomic.
    append: Mutex<()>,
    /// Cleared by [`Storage::seal`]: files are then opened read-only.
    writable: AtomicBool,
    /// Directory handles kept open, at most.
    max_open_dirs: usize,
    /// Files `create` or `open_path` opened, for the `open` that nearly
    /// always follows, the newest last. Each waits there, whatever other
    /// threads do meanwhile, so its `open` gets the file that was looked
    /// up even if its name is gone by then; one whose `open` never came
    /// is closed once [`READY_KEPT`] newer ones wait.
    ready: Mutex<Vec<Ready>>,
    /// The directory names looked up, where the host reports every change
    /// to them.
    names: Option<NameCache>,
}

/// A file opened by `create` or `open_path`, waiting for its `open`.
struct Ready {
    ino: Ino,
    file: Arc<std::fs::File>,
    /// Opened for writing.
    write: bool,
    /// The name it was opened by, not recorded yet: `open_path` leaves the
    /// record to whatever takes the file's place before its `open` does,
    /// so the usual open-then-close of a file records nothing.
    unrecorded: Option<(Ino, Box<str>)>,
}

/// The two directories and last names of a change between two plain
/// paths ([`HostDir::both_ways`]).
struct BothWays<'p> {
    from_at: Arc<OwnedFd>,
    from_name: &'p str,
    to_at: Arc<OwnedFd>,
    to_name: &'p str,
}

/// The names an inode was last seen under, and its directory handle if one
/// is kept.
struct Node {
    /// Parent and name, the latest first: one for a directory, a few for
    /// a file with hard links.
    names: Vec<(Ino, Box<str>)>,
    kind: FileKind,
    dir: Option<Arc<OwnedFd>>,
    /// When it was last used, for dropping the least recently used.
    used: u64,
}

#[derive(Default)]
struct Nodes {
    map: HashMap<Ino, Node>,
    tick: u64,
    /// Nodes holding a directory handle.
    dirs: usize,
    /// Nodes given a handle, oldest first (some may have lost it since):
    /// the order handles are closed in, found in O(1).
    kept: std::collections::VecDeque<Ino>,
}

impl Nodes {
    /// Drops the record of `ino`, and its handle if one is kept.
    fn remove(&mut self, ino: Ino) {
        if let Some(node) = self.map.remove(&ino)
            && node.dir.is_some()
        {
            self.dirs -= 1;
        }
    }

    fn touch(&mut self, ino: Ino) -> Option<&mut Node> {
        self.tick += 1;
        let tick = self.tick;
        let node = self.map.get_mut(&ino)?;
        node.used = tick;
        Some(node)
    }
}

/// What an open inode holds on the host.
#[derive(Clone)]
enum Held {
    /// A file handle: the data stays reachable after unlink or rename.
    /// Read-only (`write` false) while every descriptor of it only reads.
    File {
        file: Arc<std::fs::File>,
        write: bool,
    },
    /// A directory handle: a removed directory still lists (as empty) and
    /// answers `fstat`.
    Dir(Arc<OwnedFd>),
    /// Symlinks are only ever reached by name.
    Nothing,
}

impl Held {
    fn is_read_only_file(&self) -> bool {
        matches!(self, Held::File { write: false, .. })
    }
}

/// tmpfs's cookies are at most this. It lists newest first and starts over
/// from any position past its last, so a larger cookie, which it never
/// gave, would list the directory again where other filesystems end it.
const TMPFS_COOKIES: u64 = u32::MAX as u64;

/// Whether the directory `fd` is on tmpfs.
fn on_tmpfs(fd: &OwnedFd) -> Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    Ok(rustix::fs::fstatfs(fd).map_err(io)?.f_type as i64 == TMPFS_MAGIC)
}

/// Device `dev`'s place among the host devices this process has met below
/// a store's root, below 2^22; `None` past that many. Kept for the
/// process's life: a host has a few mounts, and a guest makes none.
fn device_place(dev: u64) -> Option<u64> {
    static PLACES: std::sync::LazyLock<Mutex<HashMap<u64, u64>>> =
        std::sync::LazyLock::new(Default::default);
    let mut places = PLACES.lock();
    let next = places.len() as u64;
    match places.entry(dev) {
        Entry::Occupied(known) => Some(*known.get()),
        Entry::Vacant(new) if next < 1 << 22 => Some(*new.insert(next)),
        Entry::Vacant(_) => None,
    }
}

fn io(e: rustix::io::Errno) -> Error {
    Error::from_host(e.into())
}

fn kind_of(mode: u32) -> FileKind {
    match FileType::from_raw_mode(mode) {
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::File,
    }
}

fn time(secs: i64, nanos: u64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_nanos(nanos),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

fn timespec(t: Option<TimeSet>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(TimeSet::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(TimeSet::At(t)) => {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            Timespec {
                tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: d.subsec_nanos().into(),
            }
        }
    }
}

/// A single name below a directory: never `.`, `..` or anything with a
/// slash, so an `*at` call on it stays in that directory.
fn plain(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Invalid);
    }
    Ok(name)
}

/// Flags every open of this module adds: no symlink followed, no
/// descriptor leaked to children, and no wait on a FIFO's other end.
fn base_flags() -> OFlags {
    OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK
}

/// The directories on the way of `path` (`None` for a single name), and
/// its last name.
fn way_and_name(path: PlainPath<'_>) -> (Option<&str>, &str) {
    match path.as_str().rsplit_once('/') {
        Some((way, name)) => (Some(way), name),
        None => (None, path.as_str()),
    }
}

/// Whether the store's inode `ino` is on the root's own filesystem
/// ([`HostDir::ino_at`] gives those the host's number, below 2^63), where
/// the name cache keeps entries.
fn on_root_fs(ino: Ino) -> bool {
    ino < 1 << 63
}

/// [`open_below`] of a run of plain names taken in one step in place of
/// a walk name by name: `Ok(None)` where the host refuses the step (a
/// symlink or a file on the way, another filesystem), which the caller
/// leaves to that walk, and `ENOENT` for a missing name, which the walk
/// would answer too.
fn in_one_step(base: &OwnedFd, path: &str, flags: OFlags) -> Result<Option<OwnedFd>> {
    match open_below(base, path, flags) {
        Ok(fd) => Ok(Some(fd)),
        Err(Error::NotFound) => Err(Error::NotFound),
        Err(_) => Ok(None),
    }
}

/// The directory the plain names `way` lead to below `base`, for a change
/// made on it ([`in_one_step`]).
fn way_below(base: &OwnedFd, way: &str) -> Result<Option<OwnedFd>> {
    in_one_step(base, way, OFlags::PATH | OFlags::DIRECTORY)
}

/// Makes the directory or symlink `node` as the plain name `name` in the
/// host directory `at`; `false` for a file, which is made by an open.
fn make_below(at: &OwnedFd, name: &str, node: NewNode<'_>) -> Result<bool> {
    match node {
        NewNode::Dir => rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o777)).map_err(io)?,
        NewNode::Symlink(target) => rustix::fs::symlinkat(target, at, name).map_err(io)?,
        NewNode::File => return Ok(false),
    }
    Ok(true)
}

/// Opens `name` below the directory `dir` with `flags` (plus
/// [`base_flags`]). `name` is a plain name, or plain names joined by `/`
/// (a directory reached in one step by [`Storage::lookup_dirs`]): those
/// are opened with `openat2`, kept beneath `dir`, following no symlink and
/// crossing into no other filesystem on the way, as the one-name `openat`
/// follows none either.
fn open_below(dir: &OwnedFd, name: &str, flags: OFlags) -> Result<OwnedFd> {
    open_below_as(dir, name, flags, Mode::empty())
}

/// [`open_below`], with the permissions a created file gets.
fn open_below_as(dir: &OwnedFd, name: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd> {
    if !name.contains('/') {
        return rustix::fs::openat(dir, name, flags | base_flags(), mode).map_err(io);
    }
    // `openat2` refuses `O_PATH` with any flag but these three.
    let flags = if flags.contains(OFlags::PATH) {
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC
    } else {
        flags | base_flags()
    };
    rustix::fs::openat2(dir, name, flags, mode, BENEATH).map_err(io)
}

/// The fewest directories on the way of a path that an open takes through
/// the name cache; below it, the host walks the way for less than the
/// cache's check costs.
const OPEN_WAY_MIN: usize = 4;

/// How every run of names is resolved: kept beneath its directory,
/// following no symlink, `..` or magic link, and crossing into no other
/// filesystem.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// An `O_PATH` handle on what the plain names `path` name below `base`,
/// taken in one step ([`in_one_step`]): a symlink at the end itself, or,
/// with `follow_last`, nothing, since following it is the walk's to do
/// (`openat2` refuses it as it refuses one on the way).
fn object_below(base: &OwnedFd, path: &str, follow_last: bool) -> Result<Option<OwnedFd>> {
    if !follow_last {
        return in_one_step(base, path, OFlags::PATH);
    }
    // Even a single name goes through `openat2`: a plain `openat` without
    // `O_NOFOLLOW` would follow a symlink anywhere.
    match rustix::fs::openat2(
        base,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Err(Error::NotFound),
        Err(_) => Ok(None),
    }
}

/// The target of the symlink `name` in the host directory `at`: Linux
/// answers `EINVAL` for anything else.
fn read_link_below(at: &OwnedFd, name: &str) -> Result<String> {
    let target = rustix::fs::readlinkat(at, plain(name)?, Vec::new()).map_err(io)?;
    target.into_string().map_err(|_| Error::Invalid)
}

impl HostDir {
    /// Opens the host directory `path`; fails, naming the path, if it does
    /// not exist or is not a directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let named = |e: rustix::io::Errno| Error::HostDir {
            path: path.to_path_buf(),
            source: e.into(),
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd = rustix::fs::open(path, flags, Mode::empty()).map_err(named)?;
        let st = rustix::fs::fstat(&root_fd).map_err(named)?;
        let root = st.st_ino;
        let nodes = Nodes {
            map: HashMap::from_iter([(
                root,
                Node {
                    names: vec![(root, "".into())],
                    kind: FileKind::Dir,
                    dir: None,
                    used: 0,
                },
            )]),
            ..Nodes::default()
        };
        Ok(HostDir {
            root,
            root_dev: st.st_dev,
            names: NameCache::new(&root_fd, DEFAULT_OPEN_DIRS),
            root_fd: Arc::new(root_fd),
            nodes: Mutex::new(nodes),
            open: Mutex::new(HashMap::default()),
            append: Mutex::new(()),
            writable: AtomicBool::new(true),
            max_open_dirs: DEFAULT_OPEN_DIRS,
            ready: Mutex::new(Vec::new()),
        })
    }

    /// This store, keeping at most `n` directory handles open (at least
    /// one; [`DEFAULT_OPEN_DIRS`] unless set). Directories held open by
    /// guests do not count against it; the oldest of the others are
    /// closed, and opened again from their parent when needed. It also
    /// bounds the host directories the store watches for changes (see the
    /// module docs): a watch holds its directory's inode as a handle does,
    /// and counts against the host's limit of watches for each user.
    pub fn max_open_dirs(mut self, n: usize) -> Self {
        self.max_open_dirs = n.max(1);
        if let Some(names) = &mut self.names {
            names.max_watched = self.max_open_dirs;
        }
        self
    }

    /// This store without its name cache, as on a filesystem that does
    /// not report its changes: for tests of the steps the cache saves.
    #[cfg(test)]
    fn without_name_cache(mut self) -> Self {
        self.names = None;
        self
    }

    /// This directory behind a [`ReadOnly`] wrapper: guests and the host API
    /// can read it, and every change fails with `EROFS`.
    pub fn read_only(self) -> ReadOnly<Self> {
        ReadOnly::new(self)
    }

    /// The store's inode number for host inode `ino` of device `dev`.
    ///
    /// On the root's filesystem it is the host's. A filesystem mounted
    /// below the root has a range of its own: the top bit set, the
    /// device's place among those this process has met in bits 40 to 61,
    /// and the host's number below (ext4's are 32-bit, tmpfs and btrfs
    /// count from 1, XFS passes 2^40 only on the largest disks), so no two
    /// files share a number, whatever their devices' numbers are, and
    /// each mount of one host filesystem gives a file the same one. Only a
    /// number that fits none of that (from 2^63 on the root's filesystem,
    /// from 2^40 on another, or on a device past the 2^22nd) is mixed from
    /// the two, into the top quarter, where it can meet no other kind.
    fn ino_at(&self, dev: u64, ino: u64) -> Ino {
        const OTHER: u64 = 1 << 63;
        if dev == self.root_dev && ino < OTHER {
            return ino;
        }
        if ino < 1 << 40
            && let Some(place) = device_place(dev)
        {
            return OTHER | (place << 40) | ino;
        }
        (3 << 62) | ((ino ^ dev.rotate_left(40)) & ((1 << 62) - 1))
    }

    fn ino_of(&self, st: &Stat) -> Ino {
        self.ino_at(st.st_dev as u64, st.st_ino as u64)
    }

    fn attr(&self, ino: Ino, st: &Stat) -> Attr {
        Attr {
            ino,
            kind: kind_of(st.st_mode as u32),
            size: u64::try_from(st.st_size).unwrap_or(0),
            nlink: st.st_nlink as u64,
            atime: time(st.st_atime as i64, st.st_atime_nsec as u64),
            mtime: time(st.st_mtime as i64, st.st_mtime_nsec as u64),
            ctime: time(st.st_ctime as i64, st.st_ctime_nsec as u64),
            mode: st.st_mode as u32 & 0o7777,
        }
    }

    /// Adds `ready` to the files waiting for their `open`s, closing the
    /// oldest beyond [`READY_KEPT`].
    fn set_ready(&self, ready: Ready) {
        let gone = {
            let mut waiting = self.ready.lock();
            waiting.push(ready);
            (waiting.len() > READY_KEPT).then(|| waiting.remove(0))
        };
        self.unready(gone);
    }

    /// Takes the newest file waiting for `ino`'s `open` that serves it: one
    /// opened for writing if `write`.
    fn take_ready(&self, ino: Ino, write: bool) -> Option<Ready> {
        let mut waiting = self.ready.lock();
        let at = waiting
            .iter()
            .rposition(|r| r.ino == ino && (r.write || !write))?;
        Some(waiting.remove(at))
    }

    /// Closes a ready file that its `open` did not take, recording the
    /// name it was opened by: that `open` may still come (after more
    /// than [`READY_KEPT`] other files were readied), and then reopens it
    /// by that name.
    fn unready(&self, gone: Option<Ready>) {
        if let Some(Ready {
            ino,
            unrecorded: Some((dir, name)),
            ..
        }) = gone
        {
            self.remember(ino, dir, &name, FileKind::File);
        }
    }

    /// A file waiting for `ino`'s `open`, if there is one.
    fn ready_file(&self, ino: Ino) -> Option<Held> {
        let waiting = self.ready.lock();
        waiting
            .iter()
            .rev()
            .find(|r| r.ino == ino)
            .map(|r| Held::File {
                file: r.file.clone(),
                write: r.write,
            })
    }

    /// What serves `ino` without a name: its open handle, or its ready file.
    fn handle(&self, ino: Ino) -> Option<Held> {
        self.held(ino).or_else(|| self.ready_file(ino))
    }

    fn held(&self, ino: Ino) -> Option<Held> {
        self.open.lock().get(&ino).map(|(h, _)| h.clone())
    }

    /// Records that `ino` (of kind `kind`) is named `name` in `parent`.
    fn remember(&self, ino: Ino, parent: Ino, name: &str, kind: FileKind) {
        if ino == self.root {
            return;
        }
        let mut nodes = self.nodes.lock();
        nodes.tick += 1;
        let used = nodes.tick;
        let Some(node) = nodes.map.get_mut(&ino) else {
            let node = Node {
                names: vec![(parent, name.into())],
                kind,
                dir: None,
                used,
            };
            nodes.map.insert(ino, node);
            if nodes.map.len() > NODES_KEPT + 1 {
                self.shed(&mut nodes);
            }
            return;
        };
        node.used = used;
        if node.kind == kind
            && node
                .names
                .first()
                .is_some_and(|(p, n)| *p == parent && **n == *name)
        {
            return;
        }
        // Seen somewhere new: the host may have removed what the store knew
        // and reused its inode number, so the old kind, names and a kept
        // handle on a removed directory go.
        let removed_dir = node
            .dir
            .as_ref()
            .is_some_and(|d| rustix::fs::fstat(&**d).is_ok_and(|st| st.st_nlink == 0));
        let mut dropped_handle = false;
        if node.kind != kind || removed_dir {
            node.kind = kind;
            node.names.clear();
            dropped_handle = node.dir.take().is_some();
        }
        // A run taken in one step (`m/f`) that ends in this name is, all
        // but surely, the same link now seen from its own directory: the
        // shorter way replaces it rather than joining it.
        let same_link = |n: &str| {
            !name.contains('/') && n.strip_suffix(name).is_some_and(|head| head.ends_with('/'))
        };
        node.names
            .retain(|(p, n)| (*p != parent || **n != *name) && !same_link(n));
        node.names.insert(0, (parent, name.into()));
        // A directory has one name; a file keeps a few.
        let keep = if node.kind == FileKind::Dir {
            1
        } else {
            NAMES_KEPT
        };
        node.names.truncate(keep);
        if dropped_handle {
            nodes.dirs -= 1;
        }
    }

    /// Drops the least recently used eighth of what is kept (never the
    /// root, an open inode, or what was just used).
    fn shed(&self, nodes: &mut Nodes) {
        let open = self.open.lock();
        let mut ages: Vec<u64> = nodes
            .map
            .iter()
            .filter(|(ino, _)| **ino != self.root && !open.contains_key(ino))
            .map(|(_, n)| n.used)
            .collect();
        if ages.is_empty() {
            return;
        }
        let cut = ages.len() / 8;
        let (_, &mut oldest_kept, _) = ages.select_nth_unstable(cut);
        let root = self.root;
        let mut dropped_dirs = 0;
        nodes.map.retain(|ino, n| {
            let keep = *ino == root || open.contains_key(ino) || n.used >= oldest_kept;
            if !keep && n.dir.is_some() {
                dropped_dirs += 1;
            }
            keep
        });
        nodes.dirs -= dropped_dirs;
    }

    /// Closes the oldest kept directory handles until at most
    /// `max_open_dirs` remain, each in O(1): walking a tree of a million
    /// directories never scans what is kept.
    fn shed_dirs(&self, nodes: &mut Nodes) {
        while nodes.dirs > self.max_open_dirs {
            let Some(ino) = nodes.kept.pop_front() else {
                break;
            };
            if let Some(n) = nodes.map.get_mut(&ino)
                && n.dir.take().is_some()
            {
                nodes.dirs -= 1;
            }
        }
        // Entries of nodes that lost their handle otherwise are dropped
        // once they outnumber the handles, so the queue stays bounded.
        if nodes.kept.len() > 2 * self.max_open_dirs + 16 {
            let map = &nodes.map;
            nodes
                .kept
                .retain(|ino| map.get(ino).is_some_and(|n| n.dir.is_some()));
        }
    }

    /// A handle on the directory `dir`: the root's, an open one, a kept
    /// one, or one opened again name by name from the nearest directory
    /// with a handle (with a loop, not recursion), each checked to be the
    /// directory it should be.
    fn dir_fd(&self, dir: Ino) -> Result<Arc<OwnedFd>> {
        if dir == self.root {
            return Ok(self.root_fd.clone());
        }
        if let Some(Held::Dir(fd)) = self.held(dir) {
            return Ok(fd);
        }
        let mut chain: Vec<(Ino, Box<str>)> = Vec::new();
        let mut fd = {
            let mut nodes = self.nodes.lock();
            let mut cur = dir;
            loop {
                if cur == self.root {
                    break self.root_fd.clone();
                }
                // A directory held open serves even once its kept handle
                // and the records above it were dropped.
                if cur != dir
                    && let Some((Held::Dir(fd), _)) = self.open.lock().get(&cur)
                {
                    break fd.clone();
                }
                let node = nodes.touch(cur).ok_or(Error::NotFound)?;
                if node.kind != FileKind::Dir {
                    return Err(Error::NotDir);
                }
                if let Some(fd) = &node.dir {
                    break fd.clone();
                }
                let (parent, name) = node.names.first().ok_or(Error::NotFound)?.clone();
                // Records made from lookups that raced renames can form a
                // loop (each directory recorded inside the other); a way up
                // longer than the records are many has met one, and walking
                // on would never end.
                if chain.len() >= nodes.map.len() {
                    return Err(Error::NotFound);
                }
                chain.push((cur, name));
                cur = parent;
            }
        };
        while let Some((ino, name)) = chain.pop() {
            let child = open_below(&fd, &name, OFlags::PATH | OFlags::DIRECTORY)?;
            let st = rustix::fs::fstat(&child).map_err(io)?;
            if self.ino_of(&st) != ino {
                return Err(Error::NotFound);
            }
            fd = Arc::new(child);
            self.keep_dir(ino, &fd);
        }
        Ok(fd)
    }

    /// Keeps `fd` as the handle of the directory `ino`, if the store
    /// remembers it and keeps none yet, closing the oldest kept handles
    /// past [`max_open_dirs`](Self::max_open_dirs).
    fn keep_dir(&self, ino: Ino, fd: &Arc<OwnedFd>) {
        let mut nodes = self.nodes.lock();
        if let Some(node) = nodes.map.get_mut(&ino)
            && node.dir.is_none()
        {
            node.dir = Some(fd.clone());
            nodes.dirs += 1;
            nodes.kept.push_back(ino);
            self.shed_dirs(&mut nodes);
        }
    }

    /// The names `ino` was last seen under, the latest first.
    fn names(&self, ino: Ino) -> Result<Vec<(Ino, Box<str>)>> {
        let mut nodes = self.nodes.lock();
        let node = nodes.touch(ino).ok_or(Error::NotFound)?;
        Ok(node.names.clone())
    }

    /// Tries `act` on each name of `ino` (the handle of its directory, and
    /// the name) until one gives a result for that very inode: a name that
    /// now leads elsewhere is passed over. `ENOENT` when none does.
    fn by_name<T>(
        &self,
        ino: Ino,
        mut act: impl FnMut(&OwnedFd, &str) -> Result<(T, Stat)>,
    ) -> Result<T> {
        let mut last = Error::NotFound;
        for (parent, name) in self.names(ino)? {
            let found = self
                .dir_fd(parent)
                .and_then(|dir| match name.rsplit_once('/') {
                    None => act(&dir, &name),
                    // A name of several components: the `*at` call acts in the
                    // directory of the last, opened beneath `parent`.
                    Some((path, last)) => {
                        let sub = open_below(&dir, path, OFlags::PATH | OFlags::DIRECTORY)?;
                        act(&sub, last)
                    }
                });
            match found {
                Ok((t, st)) if self.ino_of(&st) == ino => return Ok(t),
                Ok(_) => last = Error::NotFound,
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The host's metadata of `ino`: through its open handle if it has
    /// one (so it answers once its name is gone), else through a name
    /// checked to still lead to it.
    fn stat(&self, ino: Ino) -> Result<Stat> {
        match self.handle(ino) {
            Some(Held::File { file, .. }) => return rustix::fs::fstat(&*file).map_err(io),
            Some(Held::Dir(d)) => return rustix::fs::fstat(&*d).map_err(io),
            _ => {}
        }
        if ino == self.root {
            return rustix::fs::fstat(&*self.root_fd).map_err(io);
        }
        self.by_name(ino, |dir, name| {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
            Ok((st, st))
        })
    }

    /// The directories the ways of `from` and `to` lead to (reached in
    /// one step, once when they are the same), with the two last names, for
    /// a change between them; `None` where a way is refused
    /// ([`in_one_step`]) or the store only reads. Both are reached before
    /// anything changes, so that a refusal on either leaves the tree as it
    /// was.
    fn both_ways<'p>(
        &self,
        src_dir: Ino,
        from: PlainPath<'p>,
        dst_dir: Ino,
        to: PlainPath<'p>,
    ) -> Result<Option<BothWays<'p>>> {
        if !self.writable.load(Ordering::Acquire) {
            return Ok(None);
        }
        let Ok(src_base) = self.dir_fd(src_dir) else {
            return Ok(None);
        };
        let ((from_way, from_name), (to_way, to_name)) = (way_and_name(from), way_and_name(to));
        let reach = |dir: Ino, base: &Arc<OwnedFd>, way: Option<&str>| match way {
            None => Ok(Some(base.clone())),
            Some(way) => self.way_fd(dir, base, way),
        };
        let Some(from_at) = reach(src_dir, &src_base, from_way)? else {
            return Ok(None);
        };
        let to_at = if src_dir == dst_dir && from_way == to_way {
            from_at.clone()
        } else {
            let Ok(dst_base) = self.dir_fd(dst_dir) else {
                return Ok(None);
            };
            match reach(dst_dir, &dst_base, to_way)? {
                Some(fd) => fd,
                None => return Ok(None),
            }
        };
        Ok(Some(BothWays {
            from_at,
            from_name,
            to_at,
            to_name,
        }))
    }

    /// Opens `ino` with `flags` (plus [`base_flags`]) through a name,
    /// checked to be that inode.
    fn open_node(&self, ino: Ino, flags: OFlags) -> Result<OwnedFd> {
        if ino == self.root {
            let flags = flags | OFlags::DIRECTORY | OFlags::CLOEXEC;
            return rustix::fs::openat(&*self.root_fd, ".", flags, Mode::empty()).map_err(io);
        }
        self.by_name(ino, |dir, name| {
            let fd =
                rustix::fs::openat(dir, name, flags | base_flags(), Mode::empty()).map_err(io)?;
            let st = rustix::fs::fstat(&fd).map_err(io)?;
            Ok((fd, st))
        })
    }

    /// Opens the file `ino` with `flags`.
    fn open_file(&self, ino: Ino, flags: OFlags) -> Result<std::fs::File> {
        self.open_node(ino, flags).map(std::fs::File::from)
    }

    /// Opens the regular file `ino` with `flags` through a name checked to
    /// lead to it; `ENOENT` when none leads to a regular file (its number
    /// now names something else).
    fn open_regular(&self, ino: Ino, flags: OFlags) -> Result<std::fs::File> {
        self.by_name(ino, |dir, name| {
            let fd =
                rustix::fs::openat(dir, name, flags | base_flags(), Mode::empty()).map_err(io)?;
            let st = rustix::fs::fstat(&fd).map_err(io)?;
            if kind_of(st.st_mode as u32) != FileKind::File {
                return Err(Error::NotFound);
            }
            Ok((std::fs::File::from(fd), st))
        })
    }

    /// A new host handle for `ino`, to hold while it is open: read-write
    /// for a descriptor that writes, failing as the host's open fails
    /// (`EACCES`, `ETXTBSY`), else read-only.
    fn hold(&self, ino: Ino, write: bool) -> Result<Held> {
        // The kind the lookup just saw. A regular file is checked to be one
        // when opened; a directory by its handle, kept (which holds the
        // inode) or opened with `O_DIRECTORY` and checked by number; a
        // symlink is asked of the host again.
        let known = self.nodes.lock().map.get(&ino).map(|n| n.kind);
        let kind = match known {
            Some(kind @ (FileKind::File | FileKind::Dir)) => kind,
            _ => kind_of(self.stat(ino)?.st_mode as u32),
        };
        Ok(match kind {
            FileKind::File => {
                let flags = if write { OFlags::RDWR } else { OFlags::RDONLY };
                Held::File {
                    file: Arc::new(self.open_regular(ino, flags)?),
                    write,
                }
            }
            FileKind::Dir => Held::Dir(self.dir_fd(ino)?),
            FileKind::Symlink => Held::Nothing,
        })
    }

    /// A host handle on the file `ino`: the open one, or a fresh one.
    fn file(&self, ino: Ino, write: bool) -> Result<Arc<std::fs::File>> {
        if write && !self.writable.load(Ordering::Acquire) {
            return Err(Error::ReadOnly);
        }
        // A read-only handle does not serve a write: the file is opened
        // again by name for it.
        if let Some(Held::File { file, write: can }) = self.handle(ino)
            && (can || !write)
        {
            return Ok(file);
        }
        let flags = if write { OFlags::RDWR } else { OFlags::RDONLY };
        Ok(Arc::new(self.open_file(ino, flags)?))
    }

    /// Forgets the name `name` in `dir` as the way to `ino`, once that
    /// name is gone; an open inode keeps its record (its handle serves).
    fn name_gone(&self, ino: Ino, dir: Ino, name: &str) {
        if self.open.lock().contains_key(&ino) {
            return;
        }
        let mut nodes = self.nodes.lock();
        let Some(node) = nodes.map.get_mut(&ino) else {
            return;
        };
        node.names.retain(|(p, n)| *p != dir || **n != *name);
        if node.names.is_empty() {
            nodes.remove(ino);
        }
    }

    /// Removes the empty directory `name` from the host directory `at`,
    /// in one system call, as `rmdir` does.
    ///
    /// No step asks which directory that was, and its record stays until
    /// the oldest records are dropped. A handle the store keeps on it holds
    /// the inode on the host, so no directory made later gets its number
    /// while the handle is kept (ext4, which hands a freed number out again
    /// at once, does not hand out one still held); without a handle, the
    /// record is checked by number when its name is next opened, like
    /// every record.
    fn remove_dir(at: &OwnedFd, name: &str) -> Result<()> {
        rustix::fs::unlinkat(at, plain(name)?, AtFlags::REMOVEDIR).map_err(io)
    }

    /// Links the file `ino` as `name` in the host directory `to` (of this
    /// store or another on the same host filesystem); the new name's
    /// metadata.
    fn link_into(&self, ino: Ino, to: &OwnedFd, name: &str) -> Result<Stat> {
        let name = plain(name)?;
        if kind_of(self.stat(ino)?.st_mode as u32) == FileKind::Dir {
            return Err(Error::NotPermitted);
        }
        self.by_name(ino, |from, from_name| {
            rustix::fs::linkat(from, from_name, to, name, AtFlags::empty()).map_err(io)?;
            let made = self.stat_at(to, name)?;
            // The source name was swapped for another file between the
            // check and the link: the new name is taken back.
            if self.ino_of(&made) != ino {
                let _ = rustix::fs::unlinkat(to, name, AtFlags::empty());
            }
            Ok((made, made))
        })
    }

    /// [`Storage::peek_attr`] of `name` in `dir`, whose handle is `fd`.
    fn peek_attr_in(
        &self,
        dir: Ino,
        fd: &OwnedFd,
        name: &str,
    ) -> Result<(Ino, FileKind, Option<Attr>)> {
        let st = self.stat_at(fd, name)?;
        let (ino, kind) = (self.ino_of(&st), kind_of(st.st_mode as u32));
        // A symlink is read next, and a directory may be walked into; a
        // file is remembered only by a lookup made to act on it.
        if kind != FileKind::File {
            self.remember(ino, dir, name, kind);
        }
        Ok((ino, kind, Some(self.attr(ino, &st))))
    }

    /// The directory the plain names joined in `way` lead to from `dir`,
    /// and its handle, through the name cache: as far as its entries say,
    /// then a lookup of each name left, kept as an entry in turn, so that
    /// the next walk there asks the host nothing. `None` where the cache
    /// is off or a name is missing or not a directory, for the caller to
    /// ask as it would without the cache (and give the exact answer).
    fn way_by_names(&self, dir: Ino, way: &str) -> Option<(Ino, Arc<OwnedFd>)> {
        let (mut at, last, rest) = self.names.as_ref()?.follow_way(dir, way);
        if let Some((parent, name)) = last {
            self.remember(at, parent, name, FileKind::Dir);
        }
        for name in rest.into_iter().flatten() {
            let (child, kind, _) = self.lookup_attr(at, plain(name).ok()?).ok()?;
            if kind != FileKind::Dir {
                return None;
            }
            at = child;
        }
        Some((at, self.dir_fd(at).ok()?))
    }

    /// The directory and last name of the plain path `path` below `dir`,
    /// when the name cache reaches its way ([`way_by_names`](Self::way_by_names)).
    fn last_by_names<'p>(
        &self,
        dir: Ino,
        path: PlainPath<'p>,
    ) -> Option<(Ino, Arc<OwnedFd>, &'p str)> {
        let (Some(way), name) = way_and_name(path) else {
            return None;
        };
        let (at, fd) = self.way_by_names(dir, way)?;
        Some((at, fd, name))
    }

    /// A handle on the directory the plain names `way` lead to below
    /// `base`, the handle of `dir`: through the name cache, else in one
    /// step ([`way_below`]).
    fn way_fd(&self, dir: Ino, base: &OwnedFd, way: &str) -> Result<Option<Arc<OwnedFd>>> {
        if let Some((_, at)) = self.way_by_names(dir, way) {
            return Ok(Some(at));
        }
        Ok(way_below(base, way)?.map(Arc::new))
    }

    /// The metadata of `name` in `dir`, without following a symlink.
    fn stat_at(&self, dir: &OwnedFd, name: &str) -> Result<Stat> {
        rustix::fs::statat(dir, plain(name)?, AtFlags::SYMLINK_NOFOLLOW).map_err(io)
    }
}

impl Storage for HostDir {
    fn root(&self) -> Ino {
        self.root
    }

    fn seal(&self) {
        self.writable.store(false, Ordering::Release);
        // No read-write handle made before is held after.
        let waiting = std::mem::take(&mut *self.ready.lock());
        for ready in waiting {
            self.unready(Some(ready));
        }
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind)> {
        if name == ".." {
            let (parent, in_one_step) = {
                let mut nodes = self.nodes.lock();
                let node = nodes.touch(dir).ok_or(Error::NotFound)?;
                node.names
                    .first()
                    .map_or((self.root, false), |(p, n)| (*p, n.contains('/')))
            };
            if !in_one_step {
                return Ok((parent, FileKind::Dir));
            }
            // Remembered below a directory further up: the host says
            // which directory holds it (a stat, opening nothing).
            let fd = self.dir_fd(dir)?;
            let st = rustix::fs::statat(&*fd, "..", AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
            return Ok((self.ino_of(&st), FileKind::Dir));
        }
        let (ino, kind, _) = self.lookup_attr(dir, name)?;
        Ok((ino, kind))
    }

    fn lookup_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
        if name == ".." {
            let (ino, kind) = self.lookup(dir, name)?;
            return Ok((ino, kind, None));
        }
        let found = match &self.names {
            Some(names) => {
                let watch = match names.get(dir, name) {
                    Known::Dir(child) => {
                        // The record is what reaches its handle: one left
                        // wrong by a lookup that raced a rename, or
                        // dropped, is set to what the entry says, which
                        // is true.
                        self.remember(child, dir, name, FileKind::Dir);
                        return Ok((child, FileKind::Dir, None));
                    }
                    Known::Unknown(watch) => watch,
                };
                // Watched before the lookup, so that any change after it
                // is noticed.
                let fd = self.dir_fd(dir)?;
                let watch =
                    watch.or_else(|| on_root_fs(dir).then(|| names.watch(dir, &fd)).flatten());
                let found = self.peek_attr_in(dir, &fd, name)?;
                if let Some(watch) = watch
                    && found.1 == FileKind::Dir
                    && on_root_fs(found.0)
                {
                    names.insert(watch, name, found.0);
                }
                found
            }
            None => self.peek_attr(dir, name)?,
        };
        if found.1 == FileKind::File {
            self.remember(found.0, dir, name, FileKind::File);
        }
        Ok(found)
    }

    fn peek_attr(&self, dir: Ino, name: &str) -> Result<(Ino, FileKind, Option<Attr>)> {
        let fd = self.dir_fd(dir)?;
        self.peek_attr_in(dir, &fd, name)
    }

    fn lookup_dirs(&self, dir: Ino, names: &[&str]) -> Option<Ino> {
        if names.is_empty() {
            return Some(dir);
        }
        if names.len() < 2 || names.iter().any(|n| plain(n).is_err()) {
            return None;
        }
        let path = names.join("/");
        if let Some((at, _)) = self.way_by_names(dir, &path) {
            return Some(at);
        }
        // One `openat2` for the whole run, where a lookup per name costs a
        // `statat` each; any refusal (a symlink on the way, another
        // filesystem, a missing name) leaves it to those lookups.
        if path.len() > RUN_MAX {
            return None;
        }
        let base = self.dir_fd(dir).ok()?;
        let fd = open_below(&base, &path, OFlags::PATH | OFlags::DIRECTORY).ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let ino = self.ino_of(&st);
        if ino == self.root || kind_of(st.st_mode as u32) != FileKind::Dir {
            return None;
        }
        self.remember(ino, dir, &path, FileKind::Dir);
        self.keep_dir(ino, &Arc::new(fd));
        Some(ino)
    }

    fn open_path(&self, dir: Ino, path: PlainPath<'_>, how: PathOpen) -> Result<Option<Attr>> {
        let writable = self.writable.load(Ordering::Acquire);
        if how.create && !writable {
            return Ok(None);
        }
        // Read-write only for a descriptor that writes: `open` keeps one
        // handle for every descriptor of the file, and one opened for
        // writing later takes the place of a read-only one.
        let write = writable && (how.write || how.create);
        let mut flags = if write { OFlags::RDWR } else { OFlags::RDONLY };
        // `openat2` refuses permissions without `O_CREAT`.
        let mut mode = Mode::empty();
        if how.create {
            mode = Mode::from_raw_mode(0o666);
            flags |= OFlags::CREATE;
            if how.exclusive {
                flags |= OFlags::EXCL;
            }
        }
        // Where the name cache knows a way of several names, one `openat`
        // of the last name in its directory; else one `openat2` of the
        // whole path. The host walks a name in about a tenth of a
        // microsecond, so a shorter way costs it less than the cache's
        // check (`epoll_wait`) does.
        let known = if path.len() > OPEN_WAY_MIN {
            self.last_by_names(dir, path)
        } else {
            None
        };
        let (at, base, name) = match known {
            Some(known) => known,
            // Left to a walk: the run would be the file's record's name.
            None if path.as_str().len() > RUN_MAX => return Ok(None),
            None => match self.dir_fd(dir) {
                Ok(base) => (dir, base, path.as_str()),
                Err(_) => return Ok(None),
            },
        };
        // The open is the lookup, so what is opened is what was looked up.
        // A refusal (a symlink, another filesystem, a missing directory, no
        // permission to write) happens before anything is made.
        let Ok(fd) = open_below_as(&base, name, flags, mode) else {
            return Ok(None);
        };
        let st = rustix::fs::fstat(&fd).map_err(io)?;
        if kind_of(st.st_mode as u32) != FileKind::File {
            return Ok(None);
        }
        let ino = self.ino_of(&st);
        self.set_ready(Ready {
            ino,
            file: Arc::new(std::fs::File::from(fd)),
            write,
            unrecorded: Some((at, name.into())),
        });
        Ok(Some(self.attr(ino, &st)))
    }

    fn change_path(&self, dir: Ino, path: PlainPath<'_>, change: PathChange<'_>) -> Result<bool> {
        let (Some(way), name) = way_and_name(path) else {
            return Ok(false);
        };
        let Ok(base) = self.dir_fd(dir) else {
            return Ok(false);
        };
        // The directory is what the names lead to now, as for wasi-common's
        // own `openat2`, the change, and `close`: no step asks which
        // directory that is, and no record or handle of it is kept.
        let Some(at) = self.way_fd(dir, &base, way)? else {
            return Ok(false);
        };
        match change {
            PathChange::Unlink => {
                rustix::fs::unlinkat(&at, name, AtFlags::empty()).map_err(io)?;
            }
            PathChange::Rmdir => Self::remove_dir(&at, name)?,
            // A file is made by an open, in one step of its own.
            PathChange::Make(node) => return make_below(&at, name, node),
        }
        Ok(true)
    }

    fn rename_path(
        &self,
        src_dir: Ino,
        from: PlainPath<'_>,
        dst_dir: Ino,
        to: PlainPath<'_>,
    ) -> Result<bool> {
        let Some(w) = self.both_ways(src_dir, from, dst_dir, to)? else {
            return Ok(false);
        };
        // Records are left as they are, as by `remove_dir`: what moved
        // serves through a handle, which followed it, until a lookup of its
        // new name updates its record, and what was replaced is gone.
        rustix::fs::renameat(&*w.from_at, w.from_name, &*w.to_at, w.to_name).map_err(io)?;
        Ok(true)
    }

    fn link_path(
        &self,
        src_dir: Ino,
        from: PlainPath<'_>,
        dst_dir: Ino,
        to: PlainPath<'_>,
    ) -> Result<bool> {
        let Some(w) = self.both_ways(src_dir, from, dst_dir, to)? else {
            return Ok(false);
        };
        // No `AT_SYMLINK_FOLLOW`: a symlink is linked itself, as `link`
        // links what the lookup of its name found. Linux refuses a
        // directory with `EPERM`, and a taken name with `EEXIST`.
        rustix::fs::linkat(
            &*w.from_at,
            w.from_name,
            &*w.to_at,
            w.to_name,
            AtFlags::empty(),
        )
        .map_err(io)?;
        Ok(true)
    }

    fn set_times_path(
        &self,
        dir: Ino,
        path: PlainPath<'_>,
        follow: bool,
        atime: Option<TimeSet>,
        mtime: Option<TimeSet>,
    ) -> Result<bool> {
        if !self.writable.load(Ordering::Acquire) {
            return Ok(false);
        }
        let Ok(base) = self.dir_fd(dir) else {
            return Ok(false);
        };
        let times = Timestamps {
            last_access: timespec(atime),
            last_modification: timespec(mtime),
        };
        let last = match way_and_name(path) {
            (None, name) => Some((base.clone(), name)),
            (Some(_), _) => self
                .last_by_names(dir, path)
                .map(|(_, at, name)| (at, name)),
        };
        let set = match last {
            Some((at, name)) => {
                // The last name in the directory it is in, by name: nothing
                // is opened, and a symlink to follow is left to the walk.
                // Should another process put a symlink in the name's place
                // between the two calls, `SYMLINK_NOFOLLOW` sets that
                // symlink's own times, in this directory.
                if follow && kind_of(self.stat_at(&at, name)?.st_mode as u32) == FileKind::Symlink {
                    return Ok(false);
                }
                let flags = AtFlags::SYMLINK_NOFOLLOW;
                rustix::fs::utimensat(&*at, plain(name)?, &times, flags)
            }
            None => {
                let Some(fd) = object_below(&base, path.as_str(), follow)? else {
                    return Ok(false);
                };
                // The empty name is the handle's own inode: what the step
                // found, however the names change meanwhile, and a symlink
                // itself. The host checks ownership or write access on
                // that inode, as `futimens` would, without opening it for
                // reading.
                let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
                rustix::fs::utimensat(&fd, "", &times, flags)
            }
        };
        match set {
            Ok(()) => Ok(true),
            // Bad times, or a kernel that does not take `AT_EMPTY_PATH`
            // here: the walk takes the path, and gives the same answer for
            // bad times.
            Err(rustix::io::Errno::INVAL) => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    fn readlink_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<String>> {
        let (Some(way), name) = way_and_name(path) else {
            return Ok(None);
        };
        let Ok(base) = self.dir_fd(dir) else {
            return Ok(None);
        };
        let Some(at) = self.way_fd(dir, &base, way)? else {
            return Ok(None);
        };
        read_link_below(&at, name).map(Some)
    }

    fn peek_path(&self, dir: Ino, path: PlainPath<'_>) -> Result<Option<Attr>> {
        // One `fstatat` where the way is known.
        if let Some((_, at, name)) = self.last_by_names(dir, path) {
            let st = self.stat_at(&at, name)?;
            return Ok(Some(self.attr(self.ino_of(&st), &st)));
        }
        let Ok(base) = self.dir_fd(dir) else {
            return Ok(None);
        };
        // `O_PATH` with no symlink followed takes the last name whatever
        // it is, a symlink included, and opens nothing for reading: the
        // same calls as wasi-common's `stat` of a path (`openat2`,
        // `statx`, `close`), where a walk name by name costs an `fstatat`
        // for each name and a run of directories an `openat2` and an
        // `fstat` of its own.
        let Some(fd) = in_one_step(&base, path.as_str(), OFlags::PATH)? else {
            return Ok(None);
        };
        let st = rustix::fs::fstat(&fd).map_err(io)?;
        Ok(Some(self.attr(self.ino_of(&st), &st)))
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        let st = self.stat(ino)?;
        Ok(self.attr(ino, &st))
    }

    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        if let Some(size) = set.size {
            let file = self.file(ino, true)?;
            rustix::fs::ftruncate(&*file, size).map_err(io)?;
        }
        if set.mode.is_none() && set.atime.is_none() && set.mtime.is_none() {
            return self.getattr(ino);
        }
        // Through a descriptor of the inode itself, opened by a checked
        // name. A symlink cannot be opened: it has no permissions of its
        // own on Linux, and its times are set by name, never following it.
        let times = Timestamps {
            last_access: timespec(set.atime),
            last_modification: timespec(set.mtime),
        };
        let fd = match self.handle(ino) {
            Some(Held::File { file, .. }) => {
                Some(OwnedFd::from(file.try_clone().map_err(Error::from_host)?))
            }
            _ => match self.open_node(ino, OFlags::RDONLY) {
                Ok(fd) => Some(fd),
                Err(Error::Loop) => None,
                Err(e) => return Err(e),
            },
        };
        match fd {
            Some(fd) => {
                if let Some(mode) = set.mode {
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777)).map_err(io)?;
                }
                if set.atime.is_some() || set.mtime.is_some() {
                    rustix::fs::futimens(&fd, &times).map_err(io)?;
                }
            }
            None if set.atime.is_some() || set.mtime.is_some() => {
                self.by_name(ino, |dir, name| {
                    let st =
                        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
                    if self.ino_of(&st) == ino {
                        rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(io)?;
                    }
                    Ok(((), st))
                })?;
            }
            None => {}
        }
        self.getattr(ino)
    }

    fn read(&self, ino: Ino, offset: u64, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        let file = self.file(ino, false)?;
        let mut total = 0;
        let mut at = offset;
        for buf in bufs.iter_mut() {
            let n = file.read_at(buf, at).map_err(Error::from_host)?;
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
            WritePos::Append => file.metadata().map_err(Error::from_host)?.len(),
        };
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if len > 0 && at.checked_add(len).is_none_or(|end| end > max_size) {
            return Err(Error::FileTooBig);
        }
        let mut total = 0;
        for buf in bufs {
            file.write_all_at(buf, at).map_err(Error::from_host)?;
            total += buf.len();
            at += buf.len() as u64;
        }
        Ok((total, at))
    }

    fn create(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<Attr> {
        let fd = self.dir_fd(dir)?;
        let name = plain(name)?;
        let mut made = None;
        let st = match node {
            NewNode::File => {
                let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | base_flags();
                let file = rustix::fs::openat(&*fd, name, flags, Mode::from_raw_mode(0o666))
                    .map_err(io)?;
                let st = rustix::fs::fstat(&file).map_err(io)?;
                made = Some(file);
                st
            }
            NewNode::Dir | NewNode::Symlink(_) => {
                make_below(&fd, name, node)?;
                self.stat_at(&fd, name)?
            }
        };
        let ino = self.ino_of(&st);
        let attr = self.attr(ino, &st);
        self.remember(ino, dir, name, attr.kind);
        if let Some(file) = made {
            self.set_ready(Ready {
                ino,
                file: Arc::new(std::fs::File::from(file)),
                write: true,
                unrecorded: None,
            });
        }
        Ok(attr)
    }

    fn make(&self, dir: Ino, name: &str, node: NewNode<'_>) -> Result<()> {
        // A directory or symlink nobody asked about is kept no record of,
        // so nothing is asked of the host after it is made: a later
        // lookup finds it, as it finds what the host made.
        if let NewNode::File = node {
            return self.create(dir, name, node).map(drop);
        }
        make_below(&*self.dir_fd(dir)?, plain(name)?, node).map(drop)
    }

    fn readdir(&self, dir: Ino, cursor: u64, max: usize) -> Result<Vec<DirEntry>> {
        // Each call reads the host directory afresh from the host's own
        // cookie (`seekdir`), which the cursor carries: any number of
        // listings can be in progress, an entry present throughout is
        // neither skipped nor repeated, and the store keeps nothing.
        let from = match cursor {
            0 => None,
            c if c >= WIDE_CURSORS => Some(c - WIDE_CURSORS),
            _ => return Ok(Vec::new()), // never handed out
        };
        let handle = self.dir_fd(dir)?;
        let dev = rustix::fs::fstat(&*handle).map_err(io)?.st_dev as u64;
        // A position of its own: the kept handle is a path-only one.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let own = rustix::fs::openat(&*handle, ".", flags, Mode::empty()).map_err(io)?;
        if from.is_some_and(|cookie| cookie > TMPFS_COOKIES) && on_tmpfs(&own)? {
            return Ok(Vec::new()); // never handed out
        }
        let mut listing = rustix::fs::Dir::new(own).map_err(io)?;
        if let Some(cookie) = from {
            listing.seek(cookie as i64).map_err(io)?;
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
            // Linux's own filesystems keep cookies below 2^63; one past
            // that could not be sought back to.
            let next = u64::try_from(entry.offset())
                .map(|cookie| WIDE_CURSORS | cookie)
                .map_err(|_| io(rustix::io::Errno::OVERFLOW))?;
            let (ino, kind) = match entry.file_type() {
                FileType::Symlink => (self.ino_at(dev, entry.ino()), FileKind::Symlink),
                FileType::Directory | FileType::Unknown => {
                    // A directory may be another host filesystem's root,
                    // whose number its entry does not show.
                    let Ok(st) = self.stat_at(&handle, name) else {
                        continue; // gone since it was listed
                    };
                    (self.ino_of(&st), kind_of(st.st_mode as u32))
                }
                _ => (self.ino_at(dev, entry.ino()), FileKind::File),
            };
            out.push(DirEntry {
                name: name.to_owned(),
                ino,
                kind,
                next,
            });
        }
        Ok(out)
    }

    fn readlink(&self, ino: Ino) -> Result<String> {
        let target = self.by_name(ino, |dir, name| {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
            if self.ino_of(&st) != ino {
                return Ok((Default::default(), st));
            }
            let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(io)?;
            Ok((target, st))
        })?;
        target.into_string().map_err(|_| Error::Invalid)
    }

    fn readlink_at(&self, dir: Ino, name: &str) -> Result<String> {
        // One system call on the directory's handle.
        read_link_below(&*self.dir_fd(dir)?, name)
    }

    fn unlink(&self, dir: Ino, name: &str) -> Result<()> {
        let fd = self.dir_fd(dir)?;
        // One system call: Linux refuses a directory with `EISDIR`. The
        // record of what the name led to is not looked for; it is checked
        // on every use, and the oldest records are dropped.
        rustix::fs::unlinkat(&*fd, plain(name)?, AtFlags::empty()).map_err(io)
    }

    fn rmdir(&self, dir: Ino, name: &str) -> Result<()> {
        Self::remove_dir(&*self.dir_fd(dir)?, name)
    }

    fn rename(&self, src_dir: Ino, src_name: &str, dst_dir: Ino, dst_name: &str) -> Result<()> {
        let from = self.dir_fd(src_dir)?;
        let to = self.dir_fd(dst_dir)?;
        let moved = self.stat_at(&from, src_name)?;
        // What the new name replaces is not asked for: its record keeps a
        // name that now leads elsewhere, passed over on use (`by_name`).
        rustix::fs::renameat(&*from, plain(src_name)?, &*to, plain(dst_name)?).map_err(io)?;
        let ino = self.ino_of(&moved);
        if let Some(node) = self.nodes.lock().map.get_mut(&ino) {
            node.names
                .retain(|(p, n)| *p != src_dir || **n != *src_name);
        }
        self.remember(ino, dst_dir, dst_name, kind_of(moved.st_mode as u32));
        Ok(())
    }

    fn link(&self, ino: Ino, dir: Ino, name: &str) -> Result<Attr> {
        let made = self.link_into(ino, &*self.dir_fd(dir)?, name)?;
        self.remember(ino, dir, name, FileKind::File);
        Ok(self.attr(ino, &made))
    }

    fn allocate(&self, ino: Ino, size: u64) -> Result<()> {
        let file = self.file(ino, true)?;
        let _append = self.append.lock();
        if file.metadata().map_err(Error::from_host)?.len() < size {
            file.set_len(size).map_err(Error::from_host)?;
        }
        Ok(())
    }

    fn open(&self, ino: Ino, write: bool) -> Result<()> {
        if write && !self.writable.load(Ordering::Acquire) {
            return Err(Error::ReadOnly);
        }
        let held = match self.take_ready(ino, write) {
            // The file a one-step open just made.
            Some(r) => Held::File {
                file: r.file,
                write: r.write,
            },
            None => {
                // A file held read-only is opened again, by name, for a
                // descriptor that writes.
                if let Some((held, count)) = self.open.lock().get_mut(&ino)
                    && !(write && held.is_read_only_file())
                {
                    *count += 1;
                    return Ok(());
                }
                self.hold(ino, write)?
            }
        };
        match self.open.lock().entry(ino) {
            Entry::Vacant(place) => {
                place.insert((held, 1));
            }
            Entry::Occupied(mut place) => {
                let (current, count) = place.get_mut();
                // A handle that writes takes the place of a read-only one,
                // so every descriptor of the file can write through it.
                if current.is_read_only_file() && matches!(held, Held::File { write: true, .. }) {
                    *current = held;
                }
                *count += 1;
            }
        }
        Ok(())
    }

    fn release(&self, ino: Ino) {
        let closed = {
            let mut open = self.open.lock();
            match open.get_mut(&ino) {
                Some((_, count)) if *count > 1 => {
                    *count -= 1;
                    None
                }
                Some(_) => open.remove(&ino),
                None => None,
            }
        };
        // Closed once the lock is let go.
        drop(closed);
    }

    fn host_device(&self) -> Option<u64> {
        Some(self.root_dev)
    }

    fn host_dir(&self, dir: Ino) -> Option<Arc<OwnedFd>> {
        if !self.writable.load(Ordering::Acquire) {
            return None;
        }
        self.dir_fd(dir).ok()
    }

    fn rename_to(
        &self,
        dir: Ino,
        name: &str,
        dst: &dyn Storage,
        dst_dir: Ino,
        dst_name: &str,
    ) -> Result<()> {
        let (Some(to), true) = (dst.host_dir(dst_dir), self.writable.load(Ordering::Acquire))
        else {
            return Err(Error::CrossDevice);
        };
        let from = self.dir_fd(dir)?;
        let moved = self.stat_at(&from, name)?;
        // The host answers `EXDEV` itself between two filesystems.
        rustix::fs::renameat(&*from, plain(name)?, &*to, plain(dst_name)?).map_err(io)?;
        self.name_gone(self.ino_of(&moved), dir, name);
        Ok(())
    }

    fn link_to(&self, ino: Ino, dst: &dyn Storage, dst_dir: Ino, dst_name: &str) -> Result<()> {
        let Some(to) = dst.host_dir(dst_dir) else {
            return Err(Error::CrossDevice);
        };
        self.link_into(ino, &to, dst_name).map(drop)
    }

    fn next_data(&self, ino: Ino, offset: u64) -> Result<Option<(u64, u64)>> {
        use rustix::fs::SeekFrom;
        use rustix::io::Errno;
        let file = self.file(ino, false)?;
        let size = file.metadata().map_err(Error::from_host)?.len();
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

impl std::fmt::Debug for HostDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostDir")
            .field("root", &self.root)
            .field("max_open_dirs", &self.max_open_dirs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::host_names;

    /// A temporary host directory holding `files` (path, content), with
    /// the directories on their way.
    fn host_tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let path = tmp.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        tmp
    }

    /// The inode of the regular file `path` opened in one step from the
    /// root (readied, not yet `open`).
    fn one_step(store: &HostDir, path: &str) -> Ino {
        let path = PlainPath::new(path).unwrap();
        let attr = store
            .open_path(store.root(), path, PathOpen::default())
            .unwrap();
        attr.expect("a regular file, taken in one step").ino
    }

    /// Cursors the store never handed out end the listing: small ones,
    /// and on tmpfs (`/dev/shm`, where the machine has one) wide ones past
    /// its positions, which tmpfs itself would answer from the start.
    #[test]
    fn cursors_never_handed_out_end_the_listing() {
        let shm = Path::new("/dev/shm");
        let tmpfs = std::fs::File::open(shm)
            .ok()
            .is_some_and(|f| on_tmpfs(&OwnedFd::from(f)).unwrap());
        if !tmpfs {
            eprintln!("no tmpfs at /dev/shm: its part of this test is left out");
        }
        let tmp = if tmpfs {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        for name in ["a", "b", "c"] {
            std::fs::write(tmp.path().join(name), b"").unwrap();
        }
        let store = HostDir::open(tmp.path()).unwrap();
        let root = store.root();
        let all = store.readdir(root, 0, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|e| e.next >= WIDE_CURSORS));
        assert_eq!(store.readdir(root, all[0].next, 10).unwrap(), all[1..]);
        let mut forged = vec![1, 2, 998, WIDE_CURSORS - 1, u64::MAX];
        if tmpfs {
            forged.extend([WIDE_CURSORS | (1 << 32), WIDE_CURSORS | (1 << 40)]);
        }
        for cursor in forged {
            assert_eq!(store.readdir(root, cursor, 10).unwrap(), [], "{cursor:#x}");
        }
    }

    /// Files on filesystems mounted below the root never share an inode
    /// number with each other or with the root's, whatever the devices'
    /// numbers, and every store numbers a file alike.
    #[test]
    fn files_of_other_host_filesystems_have_numbers_of_their_own() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = HostDir::open(a.path()).unwrap();
        let other = HostDir::open(b.path()).unwrap();
        let root_dev = store.root_dev;
        // Anonymous devices (tmpfs, overlayfs) reach 2^24 from minor 4096
        // on; these pairs share a number when the device is mixed in.
        let (d1, d2) = (1 << 24, 1 << 25);
        assert!(root_dev != d1 && root_dev != d2);
        let numbers = [
            store.ino_at(root_dev, 5),
            store.ino_at(d1, 4),
            store.ino_at(d1, 1),
            store.ino_at(d2, 2),
            store.ino_at(d2, 1 << 41),
            store.ino_at(root_dev, 1 << 63 | 5),
        ];
        let distinct: std::collections::BTreeSet<Ino> = numbers.iter().copied().collect();
        assert_eq!(distinct.len(), numbers.len(), "{numbers:x?}");
        assert_eq!(numbers[0], 5, "the root's filesystem keeps the host's");
        assert_eq!(other.ino_at(d1, 4), numbers[1]);
        assert_eq!(other.ino_at(d2, 1 << 41), numbers[4]);
        for mixed in &numbers[4..] {
            assert_eq!(mixed >> 62, 3, "only numbers that fit nowhere are mixed");
        }
    }

    /// Directories deeper than the handle limit are reached by reopening
    /// from their parents; the store never keeps more handles than allowed.
    #[test]
    fn directory_handles_stay_within_their_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let store = HostDir::open(tmp.path()).unwrap().max_open_dirs(4);
        let mut dir = store.root();
        for i in 0..40 {
            dir = store
                .create(dir, &format!("d{i}"), NewNode::Dir)
                .unwrap()
                .ino;
        }
        let file = store.create(dir, "f", NewNode::File).unwrap().ino;
        store
            .write(file, WritePos::At(0), &[IoSlice::new(b"deep")], u64::MAX)
            .unwrap();
        assert!(store.nodes.lock().dirs <= 4);
        // Everything kept dropped: reached again from the root by name.
        {
            let mut nodes = store.nodes.lock();
            nodes.map.values_mut().for_each(|n| n.dir = None);
            nodes.dirs = 0;
        }
        assert_eq!(store.getattr(file).unwrap().size, 4);
        assert!(store.nodes.lock().dirs <= 4);
    }

    /// Removing a directory drops neither its record nor its handle, so a
    /// guest that makes, enters and removes directories without end must
    /// still leave the store within its bounds: no more records than
    /// [`NODES_KEPT`], no more handles than `max_open_dirs` (each holding
    /// a removed directory's inode on the host), and a bounded queue. On
    /// tmpfs (`/dev/shm`, where the machine has one) every directory gets
    /// a number of its own, so the records reach their bound; ext4 hands
    /// the numbers out again, which keeps them few.
    #[test]
    fn directories_made_and_removed_without_end_stay_within_the_bounds() {
        let tmp = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let store = HostDir::open(tmp.path()).unwrap().max_open_dirs(8);
        let root = store.root();
        let mut most = (0, 0, 0);
        for i in 0..NODES_KEPT + NODES_KEPT / 4 {
            let name = format!("d{i}");
            let dir = store.create(root, &name, NewNode::Dir).unwrap().ino;
            store.dir_fd(dir).unwrap();
            store.rmdir(root, &name).unwrap();
            let nodes = store.nodes.lock();
            most = (
                most.0.max(nodes.map.len()),
                most.1.max(nodes.dirs),
                most.2.max(nodes.kept.len()),
            );
        }
        assert!(most.0 <= NODES_KEPT + 1, "records: {}", most.0);
        assert!(most.1 <= 8, "handles: {}", most.1);
        assert!(most.2 <= 2 * 8 + 16 + 1, "queue: {}", most.2);
        let nodes = store.nodes.lock();
        let held = nodes.map.values().filter(|n| n.dir.is_some()).count();
        assert_eq!(held, nodes.dirs, "the count of handles is true");
    }

    /// Asserts that no record of `store` holds a name longer than a name
    /// may be.
    fn assert_records_are_names(store: &HostDir) {
        let nodes = store.nodes.lock();
        let longest = nodes
            .map
            .values()
            .flat_map(|n| n.names.iter().map(|(_, name)| name.len()))
            .max();
        assert!(
            longest.is_some_and(|l| l <= crate::storage::NAME_MAX),
            "{longest:?}"
        );
    }

    /// A guest can make paths of 4,000 bytes; the store remembers what it
    /// took in one step under the run of names it took, so a run longer
    /// than one name may be is taken name by name instead, and no record
    /// holds more than a name's worth, however many such paths are opened.
    #[test]
    fn runs_taken_in_one_step_are_no_longer_than_a_name() {
        let tmp = tempfile::tempdir().unwrap();
        let long: Vec<String> = (0..16)
            .map(|i| format!("{i:02}{}", "d".repeat(240)))
            .collect();
        let names: Vec<&str> = long.iter().map(String::as_str).collect();
        std::fs::create_dir_all(tmp.path().join(long.join("/"))).unwrap();
        let file = format!("{}/f", long.join("/"));
        std::fs::write(tmp.path().join(&file), b"deep").unwrap();
        let short = ["a", "b", "c"];
        std::fs::create_dir_all(tmp.path().join("a/b/c")).unwrap();
        std::fs::write(tmp.path().join("a/b/c/f"), b"near").unwrap();
        let store = HostDir::open(tmp.path()).unwrap().without_name_cache();
        let root = store.root();

        let with_leaf = PlainPath::new(&file).unwrap();
        assert!(store.lookup_dirs(root, &names).is_none());
        assert!(
            store
                .open_path(root, with_leaf, PathOpen::default())
                .unwrap()
                .is_none()
        );
        // The short run still goes in one step.
        assert!(store.lookup_dirs(root, &short).is_some());
        let near = store
            .open_path(
                root,
                PlainPath::new("a/b/c/f").unwrap(),
                PathOpen::default(),
            )
            .unwrap();
        assert_eq!(near.map(|a| a.size), Some(4));
        // Name by name, the long path is reached all the same.
        let mut dir = root;
        for name in &names {
            dir = store.lookup(dir, name).unwrap().0;
        }
        let (f, _) = store.lookup(dir, "f").unwrap();
        assert_eq!(store.getattr(f).unwrap().size, 4);
        assert_records_are_names(&store);
    }

    /// Below a directory held open, what the store reaches does not depend
    /// on the records of the directories above it, which are dropped when
    /// many other inodes are seen.
    #[test]
    fn a_directory_held_open_reaches_below_it_without_the_records_above() {
        let tmp = host_tree(&[("a/b/c/x/f", b"below")]);
        let store = HostDir::open(tmp.path()).unwrap().max_open_dirs(1);
        let mut c = store.root();
        for name in ["a", "b", "c"] {
            c = store.lookup(c, name).unwrap().0;
        }
        store.open(c, false).unwrap();
        let (x, _) = store.lookup(c, "x").unwrap();
        // What shedding does after many other inodes: the kept handles
        // closed and the records of `a` and `b` dropped.
        {
            let mut nodes = store.nodes.lock();
            nodes.map.values_mut().for_each(|n| n.dir = None);
            nodes.dirs = 0;
            nodes.map.retain(|_, n| {
                !n.names
                    .iter()
                    .any(|(_, name)| &**name == "a" || &**name == "b")
            });
        }
        let (f, _) = store.lookup(x, "f").unwrap();
        assert_eq!(store.getattr(f).unwrap().size, 5);
        store
            .create(x, "g", NewNode::File)
            .expect("created below the open directory");
        assert!(tmp.path().join("a/b/c/x/g").exists());
        store.release(c);
    }

    /// A `stat` through the tree asks the store for the file's attributes
    /// alone, and an open and close of the file go through the handle the
    /// one-step open made: neither leaves a record of the file behind. A
    /// lookup made to act on the file keeps one.
    #[test]
    fn stat_and_open_leave_no_record_of_a_file() {
        let tmp = host_tree(&[("m/f", b"body")]);
        let store = Arc::new(HostDir::open(tmp.path()).unwrap());
        let shared: Arc<dyn Storage> = store.clone();
        let vfs = crate::Vfs::builder().mount("/", shared).build().unwrap();
        let recorded = |ino| store.nodes.lock().map.contains_key(&ino);
        let meta = vfs.metadata("/m/f").unwrap();
        assert_eq!(meta.size, 4);
        assert!(!recorded(meta.ino), "a stat keeps no record");
        assert_eq!(vfs.read("/m/f").unwrap(), b"body");
        assert!(!recorded(meta.ino), "an open and close keep no record");
        let (m, _) = store.lookup(store.root(), "m").unwrap();
        assert!(recorded(m), "a directory on the way is remembered");
        assert_eq!(store.lookup(m, "f").unwrap().0, meta.ino);
        assert!(recorded(meta.ino));
    }

    /// A `stat`, `mkdir`, `symlink`, `unlink`, `rmdir` or `rename` of a path
    /// with three directories on the way reaches the last of them in one step
    /// (as wasi-common's own host directory does), so the store looks none
    /// of them up and keeps no record or handle of any; with two on the
    /// way, they are looked up name by name, which costs no more.
    #[test]
    fn deep_stats_and_changes_take_one_step() {
        let tmp = host_tree(&[
            ("a/b/c/f", b"body"),
            ("a/b/c/g", b""),
            ("a/b/c/m", b"moved"),
            ("a/b/h", b""),
        ]);
        let store = Arc::new(HostDir::open(tmp.path()).unwrap().without_name_cache());
        let shared: Arc<dyn Storage> = store.clone();
        let vfs = crate::Vfs::builder().mount("/", shared).build().unwrap();
        let kept = || {
            let nodes = store.nodes.lock();
            (nodes.map.len(), nodes.dirs)
        };
        // Whatever mounting the store asked of it.
        let before = kept();
        assert_eq!(vfs.metadata("/a/b/c/f").unwrap().size, 4);
        assert_eq!(
            vfs.symlink_metadata("/a/b/c/f").unwrap().ino,
            rustix::fs::stat(tmp.path().join("a/b/c/f")).unwrap().st_ino as u64
        );
        vfs.create_dir("/a/b/c/d").unwrap();
        vfs.create_dir("/a/b/c/e").unwrap();
        vfs.symlink("f", "/a/b/c/l").unwrap();
        vfs.remove("/a/b/c/g").unwrap();
        vfs.remove("/a/b/c/e").unwrap();
        vfs.rename("/a/b/c/m", "/a/b/c/d/m").unwrap();
        assert_eq!(kept(), before, "no directory on the way was looked up");
        let host = |p: &str| std::fs::symlink_metadata(tmp.path().join(p));
        assert!(host("a/b/c/d").unwrap().is_dir());
        assert!(host("a/b/c/l").unwrap().file_type().is_symlink());
        assert!(host("a/b/c/g").is_err() && host("a/b/c/e").is_err());
        assert_eq!(
            std::fs::read(tmp.path().join("a/b/c/d/m")).unwrap(),
            b"moved"
        );
        // Answers are the host's, as name by name.
        let fails = |r: Result<()>| r.map_err(Error::into_innermost).unwrap_err();
        assert!(matches!(fails(vfs.create_dir("/a/b/c/d")), Error::Exists));
        assert!(matches!(fails(vfs.create_dir("/a/b/x/d")), Error::NotFound));
        assert!(matches!(fails(vfs.remove("/a/b/c/none")), Error::NotFound));
        assert!(matches!(
            fails(vfs.rename("/a/b/c/none", "/a/b/c/d/x")),
            Error::NotFound
        ));
        assert!(matches!(
            vfs.metadata("/a/b/x/f").map_err(Error::into_innermost),
            Err(Error::NotFound)
        ));
        assert_eq!(kept(), before);
        assert!(vfs.metadata("/a/b/h").is_ok());
        assert_eq!(
            kept().0,
            before.0 + 2,
            "two directories on the way are looked up"
        );
        // A file on the way is left to the walk, which says what it is.
        assert!(matches!(
            fails(vfs.rename("/a/b/c/d", "/a/b/c/d/m/x")),
            Error::NotDir
        ));
    }

    /// A `rename` of plain paths takes one step whatever their depth: no
    /// directory on either way, and neither last name, is looked up, where
    /// a walk would look up both last names and the store would ask which
    /// file moved. The host answers as it does for a walk.
    #[test]
    fn renames_take_one_step_however_short() {
        let tmp = host_tree(&[
            ("top", b"1"),
            ("a/x", b"2"),
            ("a/b/y", b"3"),
            ("a/b/full/f", b""),
        ]);
        std::fs::create_dir(tmp.path().join("a/b/empty")).unwrap();
        let store = Arc::new(HostDir::open(tmp.path()).unwrap().without_name_cache());
        let shared: Arc<dyn Storage> = store.clone();
        let vfs = crate::Vfs::builder().mount("/", shared).build().unwrap();
        let kept = || store.nodes.lock().map.len();
        let before = kept();
        vfs.rename("/top", "/top2").unwrap();
        vfs.rename("/a/x", "/a/b/x").unwrap();
        vfs.rename("/a/b/y", "/a/b/y2").unwrap();
        assert_eq!(kept(), before, "nothing was looked up");
        let read = |p: &str| std::fs::read(tmp.path().join(p)).unwrap();
        assert_eq!(
            (read("top2"), read("a/b/x"), read("a/b/y2")),
            (b"1".to_vec(), b"2".to_vec(), b"3".to_vec())
        );
        let fails = |from: &str, to: &str| {
            vfs.rename(from, to)
                .map_err(Error::into_innermost)
                .unwrap_err()
        };
        assert!(matches!(fails("/none", "/a/n"), Error::NotFound));
        assert!(matches!(fails("/a/b", "/a/b/empty/b"), Error::Invalid));
        assert!(matches!(fails("/top2", "/a/b/empty"), Error::IsDir));
        assert!(matches!(fails("/a/b/empty", "/top2"), Error::NotDir));
        assert!(matches!(fails("/a/b/empty", "/a/b/full"), Error::NotEmpty));
        assert!(matches!(fails("/top2", "/none/x"), Error::NotFound));
        assert_eq!(kept(), before);
    }

    /// `link` and `utimensat` of plain paths, however short, and
    /// `readlink` and `O_DIRECTORY` opens of deep ones, take one step:
    /// nothing is looked up name by name (no record made), what the host
    /// shows after is what each call asked, and the host's answers come
    /// through; a read-only view of the tree still refuses the changes. A
    /// symlink is linked and timed itself; one to follow, at the end of a
    /// path, is left to the walk, which never follows it on the host: its
    /// target out of the mount keeps its times.
    #[test]
    fn links_times_targets_and_directories_take_one_step() {
        use std::os::unix::fs::MetadataExt;
        let tmp = host_tree(&[("root/top", b"1"), ("root/a/b/c/d/f", b"2"), ("out", b"")]);
        let host = |p: &str| tmp.path().join("root").join(p);
        std::os::unix::fs::symlink("f", host("a/b/c/d/l")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("out"), host("away")).unwrap();
        let store = Arc::new(
            HostDir::open(tmp.path().join("root"))
                .unwrap()
                .without_name_cache(),
        );
        let shared: Arc<dyn Storage> = store.clone();
        let vfs = crate::Vfs::builder().mount("/", shared).build().unwrap();
        let kept = || store.nodes.lock().map.len();
        let before = kept();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let times = |p: &str| {
            let m = std::fs::symlink_metadata(host(p)).unwrap();
            (m.atime(), m.mtime())
        };

        // Read first: reading a symlink sets its access time.
        assert_eq!(vfs.read_link("/a/b/c/d/l").unwrap(), "f");
        vfs.hard_link("/top", "/top2").unwrap();
        vfs.hard_link("/a/b/c/d/f", "/a/f2").unwrap();
        vfs.hard_link("/a/b/c/d/l", "/a/b/c/d/l2").unwrap();
        vfs.set_times("/a/b/c/d/f", Some(at(5)), Some(at(6)))
            .unwrap();
        vfs.set_times("/top", None, Some(at(7))).unwrap();
        vfs.set_times_at("/a/b/c/d/l", false, Some(at(8)), Some(at(9)))
            .unwrap();
        let opened = vfs.ns().open(
            vfs.at("/a/b/c/d"),
            crate::namespace::ops::OpenOptions {
                directory: true,
                ..Default::default()
            },
        );
        assert!(matches!(opened, Ok((_, FileKind::Dir))));
        let deep = store.stat(opened.unwrap().0.ino).unwrap();
        assert_eq!(
            deep.st_ino,
            std::fs::metadata(host("a/b/c/d")).unwrap().ino()
        );
        // The opened directory is recorded by the step that reached it.
        assert_eq!(kept(), before + 1, "nothing was looked up name by name");

        let ino = |p: &str| std::fs::symlink_metadata(host(p)).unwrap().ino();
        assert_eq!((ino("top2"), ino("a/f2")), (ino("top"), ino("a/b/c/d/f")));
        assert_eq!(ino("a/b/c/d/l2"), ino("a/b/c/d/l"), "the link itself");
        assert_eq!(times("a/b/c/d/f"), (5, 6));
        assert_eq!(times("top").1, 7);
        assert_eq!(times("a/b/c/d/l"), (8, 9), "the link's own times");
        assert_eq!(times("a/b/c/d/f"), (5, 6), "not its target's");

        let fails = |r: Result<()>| r.map_err(Error::into_innermost).unwrap_err();
        assert!(matches!(
            fails(vfs.hard_link("/none", "/n")),
            Error::NotFound
        ));
        assert!(matches!(
            fails(vfs.hard_link("/top", "/top2")),
            Error::Exists
        ));
        assert!(matches!(
            fails(vfs.hard_link("/a/b", "/a/b2")),
            Error::NotPermitted
        ));
        assert!(matches!(
            fails(vfs.hard_link("/top", "/none/x")),
            Error::NotFound
        ));
        assert!(matches!(
            fails(vfs.set_times("/a/b/c/d/none", None, None)),
            Error::NotFound
        ));
        let link = |p: &str| vfs.read_link(p).map_err(Error::into_innermost);
        assert!(matches!(link("/a/b/c/d/f"), Err(Error::Invalid)));
        assert!(matches!(link("/a/b/c/d/none"), Err(Error::NotFound)));
        assert!(matches!(link("/a/b/none/d/l"), Err(Error::NotFound)));
        assert_eq!(kept(), before + 1);
        // A read-only view takes no step that changes anything.
        let reader = vfs.read_only().unwrap();
        let refused = fails(reader.hard_link("/top", "/top3"));
        assert!(matches!(refused, Error::ReadOnly), "{refused:?}");
        let refused = fails(reader.set_times("/top", None, Some(at(1))));
        assert!(matches!(refused, Error::ReadOnly), "{refused:?}");
        assert!(!host("top3").exists());
        assert_eq!(times("top").1, 7);
        assert_eq!(reader.read_link("/a/b/c/d/l").unwrap(), "f");

        // Followed: by the walk, to the target in the tree.
        vfs.set_times("/a/b/c/d/l", Some(at(10)), Some(at(11)))
            .unwrap();
        assert_eq!(times("a/b/c/d/f"), (10, 11));
        assert_eq!(times("a/b/c/d/l").1, 9, "the walk read the link");
        let out = times("../out");
        let refused = vfs.set_times("/away", Some(at(12)), Some(at(13)));
        assert!(matches!(
            refused.map_err(Error::into_innermost),
            Err(Error::NotFound)
        ));
        assert_eq!(times("../out"), out, "nothing outside the mount is touched");
    }

    /// A `touch` of a FIFO in a host mount (the host API's here, on the
    /// guest's path) sets its times without opening it: an open for
    /// reading or writing would wait for the other end, which nobody
    /// holds, and the call would never return.
    #[test]
    fn touching_a_fifo_opens_nothing() {
        use std::os::unix::fs::MetadataExt;
        let tmp = host_tree(&[("root/a/b/c/d/f", b"")]);
        let host = |p: &str| tmp.path().join("root").join(p);
        for fifo in ["p", "a/b/c/d/p"] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                host(fifo),
                rustix::fs::FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
        }
        std::os::unix::fs::symlink("p", host("a/b/c/d/to-p")).unwrap();
        let store: Arc<dyn Storage> = Arc::new(HostDir::open(tmp.path().join("root")).unwrap());
        let vfs = crate::Vfs::builder().mount("/", store).build().unwrap();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);

        let (done, finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            for (path, secs) in [("/p", 5), ("/a/b/c/d/p", 6), ("/a/b/c/d/to-p", 7)] {
                let set = vfs.set_times(path, Some(at(secs)), Some(at(secs)));
                done.send((path, set.map_err(|e| e.to_string()))).unwrap();
            }
        });
        for _ in 0..3 {
            // Only a hang guard: a `touch` that opened the FIFO waits until
            // someone opens the other end, which this does, then fails.
            match finished.recv_timeout(Duration::from_secs(60)) {
                Ok((path, set)) => assert_eq!(set, Ok(()), "{path}"),
                Err(_) => {
                    for fifo in ["p", "a/b/c/d/p"] {
                        let flags = OFlags::RDWR | OFlags::NONBLOCK;
                        let _ = rustix::fs::open(host(fifo), flags, Mode::empty());
                    }
                    panic!("a touch of a FIFO waited for its other end");
                }
            }
        }
        worker.join().unwrap();
        let mtime = |p: &str| std::fs::symlink_metadata(host(p)).unwrap().mtime();
        assert_eq!(
            (mtime("p"), mtime("a/b/c/d/p")),
            (5, 7),
            "7 through the link"
        );
    }

    /// A directory made where one was removed (by the store, in one step
    /// or not, by a rename over it, or by another host process) is the new
    /// one: what is made in it lands in it, never in the removed one, whose
    /// handle the store kept. How real the danger is depends on the test's
    /// host directory: ext4 hands a freed inode number out again at once.
    #[test]
    fn a_directory_made_where_one_was_removed_is_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let host = |path: &str| tmp.path().join(path);
        std::fs::create_dir_all(host("a/b/c")).unwrap();
        let store = Arc::new(HostDir::open(tmp.path()).unwrap());
        let shared: Arc<dyn Storage> = store.clone();
        let vfs = crate::Vfs::builder().mount("/", shared).build().unwrap();
        let root = store.root();
        let c = ["a", "b", "c"]
            .into_iter()
            .fold(root, |dir, name| store.lookup(dir, name).unwrap().0);
        // Each replaces `d` in `dir` (at `at` on the host) by a new one.
        let by_the_store = |dir: Ino| {
            store.rmdir(dir, "d").unwrap();
            store.create(dir, "d", NewNode::Dir).unwrap();
        };
        let by_the_host = |at: &str| {
            std::fs::remove_dir(host(at).join("d")).unwrap();
            std::fs::create_dir(host(at).join("d")).unwrap();
        };
        let cases: [(&str, Ino, &str, &dyn Fn()); 5] = [
            ("the store's rmdir", root, "", &|| by_the_store(root)),
            ("the store's rmdir, below", c, "a/b/c", &|| by_the_store(c)),
            ("an rmdir in one step", c, "a/b/c", &|| {
                vfs.remove("/a/b/c/d").unwrap();
                vfs.create_dir("/a/b/c/d").unwrap();
            }),
            ("a rename over it in one step", c, "a/b/c", &|| {
                vfs.create_dir("/a/b/c/e").unwrap();
                vfs.rename("/a/b/c/e", "/a/b/c/d").unwrap();
            }),
            ("another process", root, "", &|| by_the_host("")),
        ];
        for (how, dir, at, replace) in cases {
            store.create(dir, "d", NewNode::Dir).unwrap();
            let old = store.lookup(dir, "d").unwrap().0;
            store.dir_fd(old).unwrap();
            let kept = store
                .nodes
                .lock()
                .map
                .get(&old)
                .is_some_and(|n| n.dir.is_some());
            assert!(kept, "{how}: a handle is kept on the first directory");
            replace();
            let new = store.lookup(dir, "d").unwrap().0;
            store
                .create(new, "f", NewNode::File)
                .unwrap_or_else(|e| panic!("{how}: nothing made in the new directory: {e}"));
            assert!(
                host(at).join("d/f").exists(),
                "{how}: not in the new directory"
            );
            std::fs::remove_dir_all(host(at).join("d")).unwrap();
        }
    }

    /// A descriptor that only reads holds the file read-only on the host,
    /// whichever way it was opened. One that writes puts a read-write
    /// handle in its place, so that every descriptor of the file can write
    /// through the one.
    #[test]
    fn reads_hold_the_host_file_read_only_until_a_descriptor_may_write() {
        let tmp = host_tree(&[("m/f", b"body")]);
        let store = HostDir::open(tmp.path()).unwrap();
        let access = |ino| match store.held(ino) {
            Some(Held::File { file, write }) => {
                let flags = rustix::fs::fcntl_getfl(&*file).unwrap();
                (write, flags & OFlags::RWMODE)
            }
            _ => panic!("no file held"),
        };
        let write =
            |ino, body: &[u8]| store.write(ino, WritePos::At(0), &[IoSlice::new(body)], u64::MAX);
        let on_host = || std::fs::read(tmp.path().join("m/f")).unwrap();

        let f = one_step(&store, "m/f");
        store.open(f, false).unwrap();
        assert_eq!(access(f), (false, OFlags::RDONLY));
        let writes = PathOpen {
            write: true,
            ..PathOpen::default()
        };
        let path = PlainPath::new("m/f").unwrap();
        store.open_path(store.root(), path, writes).unwrap();
        store.open(f, true).unwrap();
        assert_eq!(access(f), (true, OFlags::RDWR));
        write(f, b"BODY").unwrap();
        assert_eq!(on_host(), b"BODY");
        store.release(f);
        store.release(f);
        assert!(store.held(f).is_none());

        // The name looked up and opened, as a path with a symlink or `..`
        // on the way is: read-only to read, read-write to write.
        let (m, _) = store.lookup(store.root(), "m").unwrap();
        assert_eq!(store.lookup(m, "f").unwrap().0, f);
        store.open(f, false).unwrap();
        assert_eq!(access(f), (false, OFlags::RDONLY));
        let f2 = one_step(&store, "m/f");
        store.open(f2, false).unwrap();
        assert_eq!(access(f), (false, OFlags::RDONLY));
        store.open(f, true).unwrap();
        assert_eq!(access(f), (true, OFlags::RDWR));
        write(f, b"more").unwrap();
        assert_eq!(on_host(), b"more");
        for _ in 0..3 {
            store.release(f);
        }
        assert!(store.held(f).is_none());

        // A reader's one-step open waits for its `open` while a writer
        // opens the file by name: the writer leaves the read-only file to
        // the reader.
        let f = one_step(&store, "m/f");
        store.open(f, true).unwrap();
        assert_eq!(access(f), (true, OFlags::RDWR));
        assert!(store.ready_file(f).is_some());
        store.open(f, false).unwrap();
        assert!(store.ready_file(f).is_none());
        assert_eq!(access(f), (true, OFlags::RDWR));
    }

    /// A read-only view of a store written elsewhere readies its files
    /// read-only, even for a caller that says it will write.
    #[test]
    fn a_read_only_view_readies_files_read_only() {
        let tmp = host_tree(&[("m/f", b"body")]);
        let store = Arc::new(HostDir::open(tmp.path()).unwrap());
        let shared: Arc<dyn Storage> = store.clone();
        let view = crate::storage::read_only::ReadOnly::viewing(shared);
        let writes = PathOpen {
            write: true,
            ..PathOpen::default()
        };
        let path = PlainPath::new("m/f").unwrap();
        let f = view
            .open_path(view.root(), path, writes)
            .unwrap()
            .unwrap()
            .ino;
        view.open(f, true).unwrap();
        match store.held(f) {
            Some(Held::File { file, write }) => {
                assert!(!write);
                let flags = rustix::fs::fcntl_getfl(&*file).unwrap();
                assert_eq!(flags & OFlags::RWMODE, OFlags::RDONLY);
            }
            _ => panic!("no file held"),
        }
        view.release(f);
    }

    /// A lookup that read the host before two renames and records what it
    /// found after them can leave each of two directories recorded inside
    /// the other. A walk up those records, with no handle kept on the way,
    /// ends with `ENOENT` rather than going round for ever, and looking the
    /// names up again from the root mends the records.
    #[test]
    fn a_loop_in_the_records_ends_the_walk_up() {
        let tmp = host_tree(&[("x/y/f", b""), ("x/g", b"g"), ("z/w/f", b"")]);
        let store = Arc::new(HostDir::open(tmp.path()).unwrap().max_open_dirs(1));
        let root = store.root();
        let (x, _) = store.lookup(root, "x").unwrap();
        let (y, _) = store.lookup(x, "y").unwrap();
        // On the host, `y` moves up and `x` into it.
        std::fs::rename(tmp.path().join("x/y"), tmp.path().join("y")).unwrap();
        std::fs::rename(tmp.path().join("x"), tmp.path().join("y/x")).unwrap();
        assert_eq!(store.lookup(root, "y").unwrap().0, y);
        assert_eq!(store.lookup(y, "x").unwrap().0, x);
        // The late lookup of `y` in `x`.
        store.remember(y, x, "y", FileKind::Dir);
        // Another directory's handle takes the place of theirs.
        let (z, _) = store.lookup(root, "z").unwrap();
        store.lookup(z, "w").unwrap();

        let (done, walked) = std::sync::mpsc::channel();
        let walker = Arc::clone(&store);
        std::thread::spawn(move || {
            let _ = done.send(walker.lookup(x, "g").map(|(ino, _)| ino));
        });
        // A generous bound: without the guard the walk never ends.
        let found = walked
            .recv_timeout(Duration::from_secs(10))
            .expect("the walk up ended");
        assert!(matches!(found, Err(Error::NotFound)), "{found:?}");

        assert_eq!(store.lookup(root, "y").unwrap().0, y);
        assert_eq!(store.lookup(y, "x").unwrap().0, x);
        let (g, _) = store.lookup(x, "g").unwrap();
        assert_eq!(content(&store, g).unwrap(), b"g");
    }

    /// Fills the files waiting for their `open`s with one-step opens of
    /// `path`, so that any readied before make way.
    fn crowd_out(store: &HostDir, path: &str) {
        for _ in 0..READY_KEPT {
            one_step(store, path);
        }
    }

    /// The whole content of the file `ino`, through a handle on it.
    fn content(store: &HostDir, ino: Ino) -> Result<Vec<u8>> {
        store.open(ino, false)?;
        let mut buf = [0u8; 64];
        let n = store.read(ino, 0, &mut [IoSliceMut::new(&mut buf)]);
        store.release(ino);
        Ok(buf[..n?].to_vec())
    }

    /// A one-step open's `open` gets the file that step found, whatever
    /// other threads did in between: another file readied, the file
    /// renamed on the host, a readied file unlinked through the store.
    #[test]
    fn an_open_gets_the_file_its_step_found_whatever_happened_since() {
        let tmp = host_tree(&[("m/f", b"body"), ("g", b"other")]);
        let store = HostDir::open(tmp.path()).unwrap();
        let f = one_step(&store, "m/f");
        let g = one_step(&store, "g");
        std::fs::rename(tmp.path().join("m/f"), tmp.path().join("m/h")).unwrap();
        store.unlink(store.root(), "g").unwrap();
        assert_eq!(content(&store, f).unwrap(), b"body");
        assert_eq!(content(&store, g).unwrap(), b"other");
    }

    /// When more files than are kept wait for their `open`s, the oldest
    /// makes way, and its `open` reopens it by the name it was found
    /// under.
    #[test]
    fn an_open_whose_ready_file_made_way_reopens_it_by_name() {
        let tmp = host_tree(&[("m/f", b"body"), ("g", b"other")]);
        let store = HostDir::open(tmp.path()).unwrap();
        let f = one_step(&store, "m/f");
        crowd_out(&store, "g");
        assert_eq!(store.ready.lock().len(), READY_KEPT);
        assert!(store.ready_file(f).is_none());
        assert_eq!(content(&store, f).unwrap(), b"body");
        // Reopened by name: a name that now leads elsewhere is refused.
        let f = one_step(&store, "m/f");
        crowd_out(&store, "g");
        std::fs::rename(tmp.path().join("g"), tmp.path().join("m/f")).unwrap();
        assert!(matches!(content(&store, f), Err(Error::NotFound)));
    }

    /// A write wanted of a file whose only handle is read-only (a one-step
    /// open that reads) opens it again, read-write, by name.
    #[test]
    fn a_write_is_not_served_by_a_read_only_handle() {
        let tmp = host_tree(&[("m/f", b"body")]);
        let store = HostDir::open(tmp.path()).unwrap();
        let f = one_step(&store, "m/f");
        let (m, _) = store.lookup(store.root(), "m").unwrap();
        store.lookup(m, "f").unwrap();
        let shorter = SetAttr {
            size: Some(2),
            ..SetAttr::default()
        };
        assert_eq!(store.setattr(f, &shorter).unwrap().size, 2);
        assert_eq!(std::fs::read(tmp.path().join("m/f")).unwrap(), b"bo");
    }

    /// A file opened in one step (`m/f`) and then looked up from its own
    /// directory keeps one name, the shorter; a second hard link is kept
    /// beside it.
    #[test]
    fn a_file_seen_from_its_own_directory_keeps_one_name_for_each_link() {
        let tmp = host_tree(&[("m/f", b"x"), ("other", b"")]);
        std::fs::hard_link(tmp.path().join("m/f"), tmp.path().join("g")).unwrap();
        let store = HostDir::open(tmp.path()).unwrap().without_name_cache();
        let root = store.root();
        let ino = one_step(&store, "m/f");
        // Not opened after all: its name is recorded as the file makes way.
        crowd_out(&store, "other");
        assert_eq!(store.names(ino).unwrap(), vec![(root, "m/f".into())]);
        let (m, _) = store.lookup(root, "m").unwrap();
        assert_eq!(store.lookup(m, "f").unwrap().0, ino);
        let names = |store: &HostDir| store.names(ino).unwrap();
        assert_eq!(names(&store), vec![(m, "f".into())]);
        assert_eq!(store.lookup(root, "g").unwrap().0, ino);
        assert_eq!(names(&store), vec![(root, "g".into()), (m, "f".into())]);
        // Either name reaches the file once the other is gone.
        std::fs::remove_file(tmp.path().join("g")).unwrap();
        assert_eq!(store.getattr(ino).unwrap().size, 1);
    }

    /// A store whose name cache is on, over a tree in the temporary
    /// directory (ext4 or tmpfs on the machines this runs on).
    fn cached(root: &Path) -> HostDir {
        let store = HostDir::open(root).unwrap();
        assert!(
            store.names.is_some(),
            "no name cache on {}: the temporary directory is not a local filesystem",
            root.display()
        );
        store
    }

    /// What the plain path `path` names, stat-ed from the root through the
    /// way the name cache knows.
    fn peek(store: &HostDir, path: &str) -> Result<Option<Ino>> {
        let path = PlainPath::new(path).unwrap();
        Ok(store.peek_path(store.root(), path)?.map(|a| a.ino))
    }

    /// What the plain path `path` holds, opened from the root in one step
    /// (through the way the name cache knows, for a way that long); `None`
    /// where the open is left to a walk name by name.
    fn read_at(store: &HostDir, path: &str) -> Option<Vec<u8>> {
        let path = PlainPath::new(path).unwrap();
        let how = PathOpen {
            create: false,
            exclusive: false,
            write: false,
        };
        let attr = store.open_path(store.root(), path, how).unwrap()?;
        Some(content(store, attr.ino).unwrap())
    }

    /// An open through a way the name cache keeps whole gets what the host
    /// holds at that moment: a directory on the way replaced, or a
    /// symlink out of the mount put in its place, is seen at once.
    #[test]
    fn an_open_through_a_known_way_sees_the_host_change_it() {
        let tmp = host_tree(&[("t/a/b/c/d/f", b"old"), ("out/c/d/f", b"secret")]);
        let top = tmp.path().join("t");
        let store = cached(&top);
        let deep = "a/b/c/d/f";
        assert!(deep.matches('/').count() >= OPEN_WAY_MIN);
        for _ in 0..2 {
            assert_eq!(read_at(&store, deep).unwrap(), b"old");
        }
        std::fs::rename(top.join("a/b"), top.join("a/b1")).unwrap();
        std::fs::create_dir_all(top.join("a/b/c/d")).unwrap();
        std::fs::write(top.join(deep), b"new").unwrap();
        assert_eq!(read_at(&store, deep).unwrap(), b"new");
        assert_eq!(read_at(&store, deep).unwrap(), b"new");
        std::fs::rename(top.join("a/b/c"), top.join("a/b/c1")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("out/c"), top.join("a/b/c")).unwrap();
        assert_eq!(read_at(&store, deep), None, "left to the walk");
    }

    /// A path longer than a run taken in one step may be (a name) opens in
    /// one `openat` through the way the name cache knows, and the file's
    /// record, if made, is one name.
    #[test]
    fn a_long_path_opens_through_the_way_the_name_cache_knows() {
        let long: Vec<String> = (0..16)
            .map(|i| format!("{i:02}{}", "d".repeat(240)))
            .collect();
        let file = format!("{}/f", long.join("/"));
        let tmp = host_tree(&[(file.as_str(), b"deep")]);
        let store = cached(tmp.path());
        assert!(file.len() > RUN_MAX);
        assert_eq!(read_at(&store, &file).unwrap(), b"deep");
        // Opened and never `open`ed, more files than are kept ready: each
        // is recorded by the name it was opened by.
        let path = PlainPath::new(&file).unwrap();
        for _ in 0..=READY_KEPT {
            store
                .open_path(store.root(), path, PathOpen::default())
                .unwrap()
                .unwrap();
        }
        assert_records_are_names(&store);
    }

    /// A guest's path within `PATH_MAX`, through a symlink to a long way,
    /// becomes a run of names longer than any path once the symlink's
    /// target joins it; the name cache follows such a run but keeps only
    /// ways a path could be.
    #[test]
    fn a_run_lengthened_by_a_symlink_is_not_kept_whole() {
        let names: Vec<String> = (0..20)
            .map(|i| format!("{i:02}{}", "d".repeat(248)))
            .collect();
        // Made a directory at a time: the whole path is longer than the
        // host takes in one call.
        let tmp = tempfile::tempdir().unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut at = rustix::fs::open(tmp.path(), flags, Mode::empty()).unwrap();
        for name in &names {
            rustix::fs::mkdirat(&at, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            at = rustix::fs::openat(&at, name.as_str(), flags, Mode::empty()).unwrap();
        }
        let file_flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
        let f = rustix::fs::openat(&at, "f", file_flags, Mode::from_raw_mode(0o644)).unwrap();
        rustix::io::write(&f, b"deep").unwrap();
        std::os::unix::fs::symlink(names[..10].join("/"), tmp.path().join("s")).unwrap();
        let store = Arc::new(cached(tmp.path()));
        let shared: Arc<dyn Storage> = store.clone();
        let vfs = crate::Vfs::builder().mount("/", shared).build().unwrap();
        let path = format!("/s/{}/f", names[10..].join("/"));
        assert!(path.len() <= crate::namespace::resolve::PATH_MAX);
        assert!(names.join("/").len() > crate::namespace::resolve::PATH_MAX);
        for _ in 0..3 {
            assert_eq!(vfs.metadata(&path).unwrap().size, 4);
        }
        let cache = store.names.as_ref().unwrap();
        let longest = cache.longest_way_kept();
        assert!(longest <= crate::namespace::resolve::PATH_MAX, "{longest}");
    }

    /// Every change the host makes to a directory the name cache knows
    /// (moved away and made again, removed and made again, another one
    /// renamed over it, a symlink out of the mount put in its place) is
    /// seen by the very next call, stat or open, even on a way walked
    /// often enough to be kept whole, and the symlink is not followed.
    #[test]
    fn a_known_directory_changed_on_the_host_is_seen_at_once() {
        use std::os::unix::fs::MetadataExt;
        let tmp = host_tree(&[
            ("t/a/b/c/f", b"old"),
            ("t/a/d/y", b""),
            ("t/a/other/x", b""),
            ("out/c/f", b"secret"),
        ]);
        std::fs::create_dir(tmp.path().join("t/a/e")).unwrap();
        let top = tmp.path().join("t");
        let host = |p: &str| std::fs::symlink_metadata(top.join(p)).unwrap().ino();
        let store = cached(&top);
        let root = store.root();
        // The first walk makes the entries, the second keeps the way whole.
        for _ in 0..2 {
            assert_eq!(peek(&store, "a/b/c/f").unwrap(), Some(host("a/b/c/f")));
            assert_eq!(peek(&store, "a/d/y").unwrap(), Some(host("a/d/y")));
        }
        assert_eq!(read_at(&store, "a/b/c/f").unwrap(), b"old");
        let (a, _) = store.lookup(root, "a").unwrap();
        store.lookup(a, "e").unwrap();
        let (_, entries) = store.names.as_ref().unwrap().counts();
        assert!(entries >= 5, "the ways are kept: {entries} entries");

        std::fs::rename(top.join("a/b"), top.join("a/b1")).unwrap();
        std::fs::create_dir_all(top.join("a/b/c")).unwrap();
        std::fs::write(top.join("a/b/c/f"), b"new").unwrap();
        assert_eq!(read_at(&store, "a/b/c/f").unwrap(), b"new");
        assert_eq!(peek(&store, "a/b/c/f").unwrap(), Some(host("a/b/c/f")));

        std::fs::remove_file(top.join("a/d/y")).unwrap();
        std::fs::remove_dir(top.join("a/d")).unwrap();
        std::fs::create_dir(top.join("a/d")).unwrap();
        std::fs::write(top.join("a/d/y"), b"").unwrap();
        assert_eq!(peek(&store, "a/d/y").unwrap(), Some(host("a/d/y")));

        std::fs::rename(top.join("a/other"), top.join("a/e")).unwrap();
        assert_eq!(peek(&store, "a/e/x").unwrap(), Some(host("a/e/x")));

        peek(&store, "a/b/c/f").unwrap();
        std::fs::rename(top.join("a/b"), top.join("a/b2")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("out"), top.join("a/b")).unwrap();
        assert_eq!(read_at(&store, "a/b/c/f"), None, "left to the walk");
        assert_eq!(peek(&store, "a/b/c/f").unwrap(), None, "left to the walk");
        let a_b = store.lookup(a, "b").unwrap();
        assert_eq!(a_b.1, FileKind::Symlink);
    }

    /// When more changes are made than the host queues notices for, the
    /// notice of the lost ones empties the cache: a directory moved and
    /// made again among them is seen.
    #[test]
    fn a_lost_notice_empties_the_name_cache() {
        use std::os::unix::fs::MetadataExt;
        let queued: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .map_or(16384, |s| s.trim().parse().unwrap());
        let tmp = host_tree(&[("a/b/f", b""), ("churn", b"")]);
        let host = |p: &str| std::fs::symlink_metadata(tmp.path().join(p)).unwrap().ino();
        let store = cached(tmp.path());
        // Twice: the way is then kept whole.
        for _ in 0..2 {
            assert_eq!(peek(&store, "a/b/f").unwrap(), Some(host("a/b/f")));
        }
        // Two notices (from and to) for each rename in the watched root.
        for i in 0..queued / 2 + 1 {
            let (from, to) = if i % 2 == 0 {
                ("churn", "churn2")
            } else {
                ("churn2", "churn")
            };
            std::fs::rename(tmp.path().join(from), tmp.path().join(to)).unwrap();
        }
        std::fs::rename(tmp.path().join("a/b"), tmp.path().join("a/b1")).unwrap();
        std::fs::create_dir(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/b/f"), b"").unwrap();
        assert_eq!(peek(&store, "a/b/f").unwrap(), Some(host("a/b/f")));
    }

    /// The directories watched and the entries kept stay within their
    /// bounds however many directories are walked, and the host holds no
    /// more watches than the cache counts.
    #[test]
    fn the_name_cache_stays_within_its_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let max = 64;
        let many = max + 16;
        for i in 0..many {
            std::fs::create_dir_all(tmp.path().join(format!("{i}/d"))).unwrap();
        }
        let wide = host_names::ENTRIES_MAX + 16;
        for i in 0..wide {
            std::fs::create_dir_all(tmp.path().join(format!("w/{i}"))).unwrap();
        }
        let store = cached(tmp.path()).max_open_dirs(max);
        let root = store.root();
        for i in 0..many {
            let (dir, _) = store.lookup(root, &i.to_string()).unwrap();
            store.lookup(dir, "d").unwrap();
        }
        let (w, _) = store.lookup(root, "w").unwrap();
        for i in 0..wide {
            store.lookup(w, &i.to_string()).unwrap();
        }
        let cache = store.names.as_ref().unwrap();
        let (watched, entries) = cache.counts();
        assert!(watched <= max, "{watched} watched");
        assert!(entries <= host_names::ENTRIES_MAX, "{entries} entries");
        assert!(entries > 0);
        let fdinfo = format!("/proc/self/fdinfo/{}", cache.raw_fd());
        let on_host = std::fs::read_to_string(fdinfo)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .count();
        assert_eq!(on_host, watched, "watches the host holds");
    }

    /// A filesystem mounted on the host over a directory the name cache
    /// knows is seen by the next call: the mount table's change empties
    /// the cache. Needs the right to mount (root); left out otherwise.
    #[test]
    fn a_mount_on_the_host_over_a_known_directory_is_seen_at_once() {
        struct Unmount<'p>(&'p Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                // Lazily: the store may still hold a handle below it.
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(self.0)
                    .status();
            }
        }
        let tmp = host_tree(&[("a/b/f", b"under")]);
        let store = cached(tmp.path());
        let size = |store: &HostDir| {
            let path = PlainPath::new("a/b/f").unwrap();
            store.peek_path(store.root(), path).unwrap().map(|a| a.size)
        };
        // Twice: the way is then kept whole.
        assert_eq!(size(&store), Some(5));
        assert_eq!(size(&store), Some(5));
        let b = tmp.path().join("a/b");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "none"])
            .arg(&b)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("no right to mount here: this test is left out");
            return;
        }
        let _unmount = Unmount(&b);
        std::fs::write(b.join("f"), b"new").unwrap();
        assert_eq!(size(&store), Some(3));
    }

    /// The cache is only kept where the host reports every change: not on
    /// procfs, say.
    #[test]
    fn only_local_filesystems_get_a_name_cache() {
        assert!(HostDir::open("/proc/self").unwrap().names.is_none());
        let tmp = tempfile::tempdir().unwrap();
        assert!(HostDir::open(tmp.path()).unwrap().names.is_some());
    }
}
