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
//! A way (a run of names from one directory) followed to its end through
//! entries alone is kept whole, the last few of them: until an entry is
//! dropped, for whatever reason, its next walk is one comparison in place
//! of a step for each name.
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

/// Ways (runs of names from a directory) whose whole walk is kept, the
/// most recently walked; with [`WAY_KEPT_MAX`], they hold 32 KiB at most.
const WAYS_KEPT: usize = 8;

/// The longest way kept, in bytes (Linux's `PATH_MAX`). A longer one is
/// still followed, only not kept: a run the namespace takes in one step
/// may be longer than any path a guest can give, once symlinks on the
/// way added their targets' names to it.
const WAY_KEPT_MAX: usize = 4095;

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

/// The names of a way that [`NameCache::follow_way`] did not follow.
pub(crate) type Names<'w> = std::iter::Peekable<std::str::Split<'w, char>>;

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
    /// Counts the times entries were dropped: a way walked since the last
    /// time walks the same entries again.
    drops: u64,
    /// Ways walked through entries alone, so that the next walk of one
    /// costs one comparison in place of a step for each name.
    ways: Vec<Way>,
    /// The way to replace next once [`WAYS_KEPT`] are kept.
    next_way: usize,
}

/// A way walked through entries alone: `names` from `from` led to `at`,
/// the last step from `parent`, while the entries dropped were `drops`.
struct Way {
    from: Ino,
    names: String,
    at: Ino,
    parent: Ino,
    drops: u64,
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

    /// How far the cache follows the plain names joined in `way` from
    /// `dir`: the last directory reached, the directory and name of the
    /// last step, and the names it did not follow (`None` when it followed
    /// all). A way followed to its end is kept, and while no entry is
    /// dropped its next walk is one comparison.
    pub(crate) fn follow_way<'w>(
        &self,
        dir: Ino,
        way: &'w str,
    ) -> (Ino, Option<(Ino, &'w str)>, Option<Names<'w>>) {
        let mut inner = self.inner.lock();
        let kept = inner
            .ways
            .iter()
            .position(|w| w.from == dir && w.names == way);
        let first = way.split('/').next().unwrap_or(way);
        if kept.is_none() && !inner.has(dir, first) {
            return (dir, None, Some(way.split('/').peekable()));
        }
        // Notices read now may drop entries the way went through.
        self.catch_up(&mut inner);
        if let Some(w) = kept.and_then(|k| inner.ways.get(k))
            && w.drops == inner.drops
        {
            let (at, parent) = (w.at, w.parent);
            inner.used(at);
            let last = way.rsplit('/').next().unwrap_or(way);
            return (at, Some((parent, last)), None);
        }
        let mut names = way.split('/').peekable();
        let (at, last) = inner.walk(dir, &mut names);
        if names.peek().is_some() {
            return (at, last, Some(names));
        }
        if let Some((parent, _)) = last
            && way.len() <= WAY_KEPT_MAX
        {
            inner.keep_way(kept, dir, way, at, parent);
        }
        (at, last, None)
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
        match w.names.insert(name.into(), child) {
            None => inner.entries += 1,
            // A way kept through the entry replaced is walked again.
            Some(old) if old != child => inner.drops += 1,
            Some(_) => {}
        }
    }

    /// Directories watched and entries kept, for tests of the bounds.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let mut inner = self.inner.lock();
        self.catch_up(&mut inner);
        (inner.dirs.len(), inner.entries)
    }

    /// Ways kept whole, for tests.
    #[cfg(test)]
    fn ways_kept(&self) -> usize {
        self.inner.lock().ways.len()
    }

    /// The length of the longest way kept whole, for tests.
    #[cfg(test)]
    pub(crate) fn longest_way_kept(&self) -> usize {
        let inner = self.inner.lock();
        inner.ways.iter().map(|w| w.names.len()).max().unwrap_or(0)
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
    /// Follows entries from `dir` for as many of `names` as they reach
    /// (taking those from `names`): the directory reached and the last
    /// step's directory and name.
    fn walk<'n, I>(
        &mut self,
        dir: Ino,
        names: &mut std::iter::Peekable<I>,
    ) -> (Ino, Option<(Ino, &'n str)>)
    where
        I: Iterator<Item = &'n str>,
    {
        let (mut at, mut last) = (dir, None);
        while let Some(&name) = names.peek() {
            let Some(next) = self.child(at, name) else {
                break;
            };
            names.next();
            last = Some((at, name));
            at = next;
        }
        (at, last)
    }

    /// Marks the watched directory `dir` as just used. A kept way's walk
    /// marks only the directory it reaches: when watches run short, the
    /// others on the way may be unwatched first, and the way is then
    /// walked again name by name.
    fn used(&mut self, dir: Ino) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(w) = self.dirs.get_mut(&dir) {
            w.used = tick;
        }
    }

    /// Keeps that `names` from `from` led to `at`, the last step from
    /// `parent`, through entries all present now: in the slot `kept`
    /// where the way was kept before.
    fn keep_way(&mut self, kept: Option<usize>, from: Ino, names: &str, at: Ino, parent: Ino) {
        let drops = self.drops;
        if kept.is_none() && self.ways.len() < WAYS_KEPT {
            self.ways.push(Way {
                from,
                names: names.to_owned(),
                at,
                parent,
                drops,
            });
            return;
        }
        let slot = kept.unwrap_or_else(|| {
            let slot = self.next_way % WAYS_KEPT;
            self.next_way = slot + 1;
            slot
        });
        if let Some(w) = self.ways.get_mut(slot) {
            // The string's room is used again.
            w.names.clear();
            w.names.push_str(names);
            (w.from, w.at, w.parent, w.drops) = (from, at, parent, drops);
        }
    }

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
        if dropped > 0 {
            self.drops += 1;
        }
    }

    /// Drops the record of the watched directory `dir`, with its entries.
    fn forget(&mut self, dir: Ino) -> Option<Watched> {
        let gone = self.dirs.remove(&dir)?;
        self.entries = self.entries.saturating_sub(gone.names.len());
        self.drops += 1;
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
        self.drops += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache over a temporary tree with the directories `a` and `a/b`,
    /// watched as the inodes 1 (the root) and 2 (`a`), with their handles.
    fn watched_tree() -> (tempfile::TempDir, NameCache, Watch, Watch) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(tmp.path(), flags, Mode::empty()).unwrap();
        let a = rustix::fs::openat(&root, "a", flags, Mode::empty()).unwrap();
        let cache = NameCache::new(&root, 8).expect("the temporary directory is local");
        let (in_root, in_a) = (cache.watch(1, &root).unwrap(), cache.watch(2, &a).unwrap());
        (tmp, cache, in_root, in_a)
    }

    fn left(names: Option<Names<'_>>) -> Vec<&str> {
        names.into_iter().flatten().collect()
    }

    #[test]
    fn a_way_is_followed_as_far_as_entries_reach_and_the_rest_handed_back() {
        let (_tmp, cache, in_root, in_a) = watched_tree();
        let (at, last, rest) = cache.follow_way(1, "a/b/c");
        assert_eq!((at, last, left(rest)), (1, None, vec!["a", "b", "c"]));
        cache.insert(in_root, "a", 2);
        let (at, last, rest) = cache.follow_way(1, "a/b/c");
        assert_eq!((at, last, left(rest)), (2, Some((1, "a")), vec!["b", "c"]));
        cache.insert(in_a, "b", 3);
        for _ in 0..2 {
            let (at, last, rest) = cache.follow_way(1, "a/b");
            assert_eq!((at, last, left(rest)), (3, Some((2, "b")), vec![]));
        }
    }

    /// However many ways are walked, only the last [`WAYS_KEPT`] are kept.
    #[test]
    fn kept_ways_stay_within_their_bound() {
        let (_tmp, cache, in_root, _) = watched_tree();
        let names: Vec<String> = (0..3 * WAYS_KEPT).map(|i| format!("d{i}")).collect();
        for (i, name) in (10..).zip(&names) {
            cache.insert(in_root, name, i);
            cache.follow_way(1, name);
        }
        assert_eq!(cache.ways_kept(), WAYS_KEPT);
        // The last one walked still leads where its entry says.
        let last = names.last().unwrap();
        assert_eq!(cache.follow_way(1, last).0, 9 + names.len() as u64);
    }

    /// A way longer than a path may be (which symlinks on the way can
    /// make of a guest's path) is followed to its end but not kept, so
    /// that kept ways hold what their bound says.
    #[test]
    fn a_way_longer_than_a_path_is_followed_but_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let names: Vec<String> = (0..17)
            .map(|i| format!("{i:02}{}", "d".repeat(248)))
            .collect();
        let mut fds = vec![rustix::fs::open(tmp.path(), flags, Mode::empty()).unwrap()];
        for name in &names {
            let parent = fds.last().unwrap();
            rustix::fs::mkdirat(parent, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            let child = rustix::fs::openat(parent, name.as_str(), flags, Mode::empty()).unwrap();
            fds.push(child);
        }
        let cache = NameCache::new(&fds[0], 32).expect("the temporary directory is local");
        for ((parent, name), ino) in fds.iter().zip(&names).zip(1..) {
            let watch = cache.watch(ino, parent).unwrap();
            cache.insert(watch, name, ino + 1);
        }
        let within = names[..16].join("/");
        let beyond = names.join("/");
        assert!(within.len() <= WAY_KEPT_MAX && beyond.len() > WAY_KEPT_MAX);
        for _ in 0..2 {
            let (at, last, rest) = cache.follow_way(1, &beyond);
            assert_eq!(
                (at, last.map(|(p, _)| p), left(rest)),
                (18, Some(17), vec![])
            );
        }
        assert_eq!(cache.ways_kept(), 0);
        cache.follow_way(1, &within);
        assert_eq!(cache.ways_kept(), 1);
    }

    /// A way kept whole is not used once an entry it went through was
    /// replaced (a lookup racing a change on the host found another
    /// directory), dropped by a notice, or dropped with its watch.
    #[test]
    fn a_kept_way_is_walked_again_once_an_entry_on_it_changes() {
        let (tmp, cache, in_root, in_a) = watched_tree();
        cache.insert(in_root, "a", 2);
        cache.insert(in_a, "b", 3);
        let keep = || {
            for _ in 0..2 {
                cache.follow_way(1, "a/b");
            }
        };
        keep();
        cache.insert(in_a, "b", 4);
        assert_eq!(cache.follow_way(1, "a/b").0, 4);
        assert_eq!(cache.ways_kept(), 1, "kept again in its old place");

        keep();
        std::fs::rename(tmp.path().join("a/b"), tmp.path().join("a/b1")).unwrap();
        let (at, _, rest) = cache.follow_way(1, "a/b");
        assert_eq!((at, left(rest)), (2, vec!["b"]));

        cache.insert(in_a, "b", 5);
        keep();
        // With two watches allowed, watching a third directory ends the
        // least recently used one's, the root's.
        std::fs::create_dir(tmp.path().join("c")).unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let c = rustix::fs::open(tmp.path().join("c"), flags, Mode::empty()).unwrap();
        let cache = NameCache {
            max_watched: 2,
            ..cache
        };
        cache.watch(9, &c).unwrap();
        assert_eq!(cache.counts().0, 2);
        assert_eq!(cache.follow_way(1, "a/b").0, 1);
    }
}
