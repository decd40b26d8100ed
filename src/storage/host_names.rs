//! The directory names a [`HostDir`](crate::HostDir) has looked up, kept
//! true by the host's own change notices (inotify), so that a walk
//! through directories it knows asks the host nothing but whether
//! anything changed.
//!
//! An entry says that the name `n` in the directory `p` led to the
//! directory `c`. It is only made once `p` is watched, and only from a
//! lookup made after the watch began; the host queues a notice on `p`'s
//! watch before any call that moves, removes or replaces `n` returns, and
//! before an entry is used every queued notice is read and what they
//! touch is dropped. So an entry used was true when the operation began,
//! whoever changed the host (this store, another process, another mount
//! of the same filesystem), which is what a walk name by name gives too.
//! A mount or unmount anywhere in the process's mount namespace, which no
//! watch reports, empties the cache (the host's mount table says it
//! changed, `/proc/self/mountinfo`), and so does a lost notice (the queue
//! overflowed). Entries are only made within the root's own filesystem,
//! and only where every change to it is made by this machine's kernel
//! ([`LOCAL`]), not where it may come from elsewhere (a network
//! filesystem). A change of a directory's permissions is not watched for
//! ([`watch_flags`]).
//!
//! This module owns the watches and the entries; it opens nothing on the
//! host, knows nothing of records or handles, and never decides what an
//! entry's directory is: the store checks that when it uses one.

use crate::storage::Ino;
use parking_lot::Mutex;
use rustix::event::Timespec;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::fs::{Mode, OFlags};
use std::collections::HashMap as StdHashMap;
use std::mem::MaybeUninit;

type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// Filesystems whose every change is made by this machine's kernel, and
/// so noticed (`statfs` magic numbers): tmpfs, ext2/3/4, XFS, Btrfs, F2FS.
const LOCAL: [u64; 5] = [0x0102_1994, 0xEF53, 0x5846_5342, 0x9123_683E, 0xF2F5_2010];

/// Entries kept, at most; all are dropped when one more is needed (a tree
/// walked that wide is walked again name by name).
pub(crate) const ENTRIES_MAX: usize = 1 << 16;

/// What [`NameCache::catch_up`]'s wait says: notices are queued, or the
/// mount table changed.
const NOTICES_QUEUED: u64 = 0;
const MOUNTS_CHANGED: u64 = 1;

/// Bytes of notices read at once.
const NOTICES_READ: usize = 4096;

/// The fixed part of an `inotify_event` (watch, mask, cookie, name length).
const NOTICE_HEAD: usize = 16;

/// The longest `inotify_event`: the fixed part, a name and its NUL.
const NOTICE_MAX: usize = NOTICE_HEAD + crate::storage::NAME_MAX + 1;

/// What a watch reports: a name in the directory moved or removed, or the
/// directory itself. Not a change of mode or owner (`IN_ATTRIB`): asking
/// for it has the host report every open, read and close of a file in a
/// watched directory to the watch's filter, which costs each of those a
/// tenth more, and a walk through a known directory keeps the access it
/// had, as a handle held open does (the host still checks the last
/// directory's permission on each call).
fn watch_flags() -> WatchFlags {
    WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
}

/// The directory names of one store, and the watches that keep them true.
pub(crate) struct NameCache {
    notices: OwnedFd,
    /// The mount table, which reports (`EPOLLPRI`) that it changed; held
    /// for `ready`.
    _mounts: OwnedFd,
    /// Reports whether notices are queued or the mount table changed, in
    /// one `epoll_wait`.
    ready: OwnedFd,
    /// Directories watched, at most; the least recently used is unwatched
    /// (with its entries) when one more is needed. A watch holds its
    /// directory's inode on the host as a handle does, and the host
    /// bounds the watches of each user, so the store's bound on handles
    /// ([`HostDir::max_open_dirs`](crate::HostDir::max_open_dirs)) serves.
    pub(crate) max_watched: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    dirs: HashMap<Ino, Watched>,
    by_watch: HashMap<i32, Ino>,
    /// Names kept under all watches. It only bounds the cache, so it is
    /// lowered saturating rather than ever stopping the host.
    entries: usize,
    tick: u64,
}

struct Watched {
    watch: i32,
    names: HashMap<Box<str>, Ino>,
    used: u64,
}

/// What [`NameCache::get`] knows of a name.
pub(crate) enum Known {
    /// The directory it leads to.
    Dir(Ino),
    /// Nothing. What a lookup of it finds may be kept under this watch of
    /// its directory (`None`: not watched yet, [`NameCache::watch`]).
    Unknown(Option<Watch>),
}

/// Proof that a directory was watched before a lookup in it began, for
/// [`NameCache::insert`].
#[derive(Clone, Copy)]
pub(crate) struct Watch {
    dir: Ino,
    watch: i32,
}

impl NameCache {
    /// A cache for the store whose root directory is `root`; `None` where
    /// the root's filesystem is not [`LOCAL`], the host has no inotify
    /// instance to spare or no `/proc`, and the store then looks every
    /// name up.
    pub(crate) fn new(root: &OwnedFd, max_watched: usize) -> Option<Self> {
        let fs = rustix::fs::fstatfs(root).ok()?;
        #[allow(clippy::useless_conversion, reason = "`f_type` differs by target")]
        let kind = u64::try_from(fs.f_type).ok()?;
        if !LOCAL.contains(&kind) {
            return None;
        }
        let notices = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let mounts = rustix::fs::open("/proc/self/mountinfo", flags, Mode::empty()).ok()?;
        let ready = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
        let queued = EventData::new_u64(NOTICES_QUEUED);
        epoll::add(&ready, &notices, queued, EventFlags::IN).ok()?;
        let remounted = EventData::new_u64(MOUNTS_CHANGED);
        epoll::add(&ready, &mounts, remounted, EventFlags::PRI).ok()?;
        Some(NameCache {
            notices,
            _mounts: mounts,
            ready,
            max_watched,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// What the cache knows of `name` in `dir`.
    pub(crate) fn get(&self, dir: Ino, name: &str) -> Known {
        let mut inner = self.inner.lock();
        // Only an entry needs the notices read first: without one, the
        // name is looked up whatever they say.
        if inner.has(dir, name) {
            self.catch_up(&mut inner);
            if let Some(child) = inner.child(dir, name) {
                return Known::Dir(child);
            }
        }
        Known::Unknown(inner.watch_of(dir))
    }

    /// How far the cache follows `names` from `dir`: the last directory
    /// reached, how many names led there, and the directory and name of
    /// the last step.
    pub(crate) fn follow<'n>(
        &self,
        dir: Ino,
        names: impl IntoIterator<Item = &'n str>,
    ) -> (Ino, usize, Option<(Ino, &'n str)>) {
        let mut inner = self.inner.lock();
        let mut names = names.into_iter().peekable();
        match names.peek() {
            Some(first) if inner.has(dir, first) => self.catch_up(&mut inner),
            _ => return (dir, 0, None),
        }
        let (mut at, mut taken, mut last) = (dir, 0, None);
        for name in names {
            match inner.child(at, name) {
                Some(next) => {
                    last = Some((at, name));
                    (at, taken) = (next, taken + 1);
                }
                None => break,
            }
        }
        (at, taken, last)
    }

    /// Watches the directory `dir`, whose handle is `fd`, so that what a
    /// lookup in it finds from now on may be kept; `None` when the host
    /// refuses a watch (its limit is reached), and nothing is kept.
    pub(crate) fn watch(&self, dir: Ino, fd: &OwnedFd) -> Option<Watch> {
        let mut inner = self.inner.lock();
        self.catch_up(&mut inner);
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(w) = inner.dirs.get_mut(&dir) {
            w.used = tick;
            return Some(Watch {
                dir,
                watch: w.watch,
            });
        }
        if inner.dirs.len() >= self.max_watched {
            self.unwatch_oldest(&mut inner);
        }
        // The handle's own inode, through the process's descriptor table:
        // no name on the host is resolved.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let watch = inotify::add_watch(&self.notices, path, watch_flags()).ok()?;
        // A watch this instance already has on that inode comes back with
        // its number: a record under another number that is the same
        // inode again (the number was reused) is replaced.
        if let Some(old) = inner.by_watch.insert(watch, dir)
            && old != dir
        {
            inner.forget(old);
        }
        inner.dirs.insert(
            dir,
            Watched {
                watch,
                names: HashMap::default(),
                used: tick,
            },
        );
        Some(Watch { dir, watch })
    }

    /// Keeps that `name` led to the directory `child`, as a lookup begun
    /// after `watch` was taken found; nothing if the watch has ended since.
    pub(crate) fn insert(&self, watch: Watch, name: &str, child: Ino) {
        let mut inner = self.inner.lock();
        if inner.entries >= ENTRIES_MAX {
            inner.clear();
        }
        let Some(w) = inner.dirs.get_mut(&watch.dir) else {
            return;
        };
        if w.watch != watch.watch {
            return;
        }
        if w.names.insert(name.into(), child).is_none() {
            inner.entries += 1;
        }
    }

    /// Directories watched and entries kept, for tests of the bounds.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let mut inner = self.inner.lock();
        self.catch_up(&mut inner);
        (inner.dirs.len(), inner.entries)
    }

    /// The inotify descriptor, for tests that ask the host about it.
    #[cfg(test)]
    pub(crate) fn raw_fd(&self) -> i32 {
        self.notices.as_raw_fd()
    }

    /// Reads every queued notice and drops the entries it touches, and
    /// all of them if the mount table changed: one `epoll_wait` when
    /// nothing changed.
    fn catch_up(&self, inner: &mut Inner) {
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); 2];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let ready = match epoll::wait(&self.ready, &mut events, Some(&now)) {
            Ok((ready, _)) => ready,
            // Nothing is known to be true.
            Err(_) => return inner.clear(),
        };
        let mut queued = false;
        for event in ready.iter() {
            // Each wait reports a change of the mount table once. (The
            // data is copied out: the event is a packed struct.)
            match { event.data }.u64() {
                MOUNTS_CHANGED => inner.clear(),
                _ => queued = true,
            }
        }
        if !queued {
            return;
        }
        let mut buf = [MaybeUninit::<u8>::uninit(); NOTICES_READ];
        loop {
            let read = match rustix::io::read(&self.notices, &mut buf) {
                Ok((read, _)) => read,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return,
                // Anything else leaves nothing known to be true.
                Err(_) => return inner.clear(),
            };
            let room = NOTICES_READ - read.len();
            if read.is_empty() || !inner.take_notices(read) {
                return inner.clear();
            }
            // A read that had room for one more notice, whatever its name,
            // took every one queued: what is queued later is a change made
            // while this operation runs.
            if room >= NOTICE_MAX {
                return;
            }
        }
    }

    fn unwatch_oldest(&self, inner: &mut Inner) {
        let Some((&dir, _)) = inner.dirs.iter().min_by_key(|(_, w)| w.used) else {
            return;
        };
        if let Some(gone) = inner.forget(dir) {
            inner.by_watch.remove(&gone.watch);
            let _ = inotify::remove_watch(&self.notices, gone.watch);
        }
    }
}

impl Inner {
    /// Drops what the notices `read` (whole `inotify_event`s, as the host
    /// writes them) touch; `false` if they are not whole.
    fn take_notices(&mut self, read: &[u8]) -> bool {
        let mut rest = read;
        while !rest.is_empty() {
            let word = |at: usize| {
                let bytes = rest.get(at..at + 4)?;
                Some(u32::from_ne_bytes(bytes.try_into().ok()?))
            };
            let (Some(wd), Some(mask), Some(len)) = (word(0), word(4), word(12)) else {
                return false;
            };
            let end = NOTICE_HEAD + len as usize;
            let Some(padded) = rest.get(NOTICE_HEAD..end) else {
                return false;
            };
            // The name is padded with NULs; none for the directory itself.
            let name = padded.split(|&b| b == 0).next().unwrap_or_default();
            self.take_notice(wd as i32, ReadFlags::from_bits_retain(mask), name);
            rest = rest.get(end..).unwrap_or_default();
        }
        true
    }

    fn take_notice(&mut self, wd: i32, flags: ReadFlags, name: &[u8]) {
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            return self.clear();
        }
        let Some(&dir) = self.by_watch.get(&wd) else {
            return;
        };
        if flags.contains(ReadFlags::IGNORED) {
            self.by_watch.remove(&wd);
            // Unless the directory is watched again, under a new number.
            if self.dirs.get(&dir).is_some_and(|w| w.watch == wd) {
                self.forget(dir);
            }
            return;
        }
        let Some(w) = self.dirs.get_mut(&dir) else {
            return;
        };
        let dropped = if name.is_empty() {
            // The directory itself moved or went: what it held is asked
            // again.
            std::mem::take(&mut w.names).len()
        } else {
            // A name that is not UTF-8 was never kept.
            std::str::from_utf8(name).map_or(0, |n| usize::from(w.names.remove(n).is_some()))
        };
        self.entries = self.entries.saturating_sub(dropped);
    }

    /// Drops the record of the watched directory `dir`, with its entries.
    fn forget(&mut self, dir: Ino) -> Option<Watched> {
        let gone = self.dirs.remove(&dir)?;
        self.entries = self.entries.saturating_sub(gone.names.len());
        Some(gone)
    }

    fn has(&self, dir: Ino, name: &str) -> bool {
        self.dirs
            .get(&dir)
            .is_some_and(|w| w.names.contains_key(name))
    }

    fn watch_of(&self, dir: Ino) -> Option<Watch> {
        let w = self.dirs.get(&dir)?;
        Some(Watch {
            dir,
            watch: w.watch,
        })
    }

    fn child(&mut self, dir: Ino, name: &str) -> Option<Ino> {
        self.tick += 1;
        let tick = self.tick;
        let w = self.dirs.get_mut(&dir)?;
        w.used = tick;
        w.names.get(name).copied()
    }

    fn clear(&mut self) {
        for w in self.dirs.values_mut() {
            w.names.clear();
        }
        self.entries = 0;
    }
}

impl std::fmt::Debug for NameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("NameCache")
            .field("watched", &inner.dirs.len())
            .field("entries", &inner.entries)
            .finish()
    }
}
