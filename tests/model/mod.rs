//! A reference model of a filesystem tree, and a checker that applies the
//! same operations to it and to a store and requires equal results. The
//! store is a `MemFs`, or an `Overlay` over a lower store already holding
//! a tree (hard links across directories, symlinks, a sparse file, a chain
//! of directories) that the model starts from too.
//!
//! Shared by the property test (`tests/model.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/storage_model.rs`): both turn bytes into operations
//! with [`Op::decode`], eight bytes an operation, so a fuzzer's input and a
//! shrunk property-test case read the same way.
//!
//! The model is plain maps and vectors with the POSIX rules written out
//! directly; the store under test runs with a small byte and inode budget.
//! When the store refuses an operation with `ENOSPC`, the model skips it,
//! and the next comparison proves the refusal changed nothing. After every
//! operation the whole tree is compared (names, kinds, sizes, contents,
//! link counts, explicit times, `..`), and a listing read a few entries at
//! a time must name every entry once. At the end every handle is released
//! and every name removed (and an overlay reset to its lower layer), and
//! the budget must be back where it started.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use wasi_common_vfs::Error;
use wasi_common_vfs::storage::budget::Budget;
use wasi_common_vfs::storage::mem::MemFs;
use wasi_common_vfs::storage::{
    FileKind, Ino, MAX_FILE_SIZE, NewNode, SetAttr, Storage, TimeSet, WritePos,
};
use wasi_common_vfs::{Changes, Overlay};

/// Bytes one operation is decoded from.
pub const RECORD: usize = 8;

/// The store's budget: small, so that sequences reach it.
const BUDGET_BYTES: u64 = 96 << 10;
const BUDGET_INODES: u64 = 10;

/// The store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// An empty `MemFs`.
    Mem,
    /// An `Overlay` (a `MemFs` above) over a `MemFs` holding [`LOWER`].
    Overlay,
}

/// One entry of the lower tree an overlay is checked over.
enum Seed {
    Dir(&'static str),
    /// A file with nonzero bytes at the given offsets, and its size.
    File(&'static str, &'static [(u64, &'static [u8])], u64),
    /// Another name of an existing file.
    Link(&'static str, &'static str),
    Symlink(&'static str, &'static str),
}

/// The lower tree: every name is one [`name`] gives, so operations reach
/// all of it. `a` has three names in two directories, `dir/dir/dir/e` two;
/// `b` is sparse with data past a terabyte.
const LOWER: &[Seed] = &[
    Seed::File("a", &[(0, b"lower a"), (65_530, b"across chunks")], 65_600),
    Seed::Dir("dir"),
    Seed::Link("a", "dir/b"),
    Seed::Link("a", "e"),
    Seed::File("b", &[(3, b"x"), ((1 << 40) + 1, b"far")], (1 << 40) + 9),
    Seed::Symlink("c", "dir/../a"),
    Seed::File("dir/a", &[(0, b"xyz")], 3),
    Seed::Dir("dir/dir"),
    Seed::Dir("dir/dir/dir"),
    Seed::Dir("dir/dir/dir/dir"),
    Seed::File("dir/dir/dir/e", &[(1, b"deep")], 5),
    Seed::Link("dir/dir/dir/e", "dir/dir/c"),
];

/// One storage operation. Numbers pick among the model's live nodes
/// (modulo their count), names among [`name`]'s, offsets via [`offset`].
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Create {
        dir: u8,
        name: u8,
        kind: u8,
    },
    Write {
        file: u8,
        at: u8,
        n: u8,
        len: u8,
        append: bool,
    },
    Read {
        file: u8,
        at: u8,
        n: u8,
        len: u8,
    },
    SetSize {
        file: u8,
        at: u8,
        n: u8,
    },
    Allocate {
        file: u8,
        at: u8,
        n: u8,
    },
    SetMtime {
        node: u8,
        secs: u8,
    },
    Unlink {
        dir: u8,
        name: u8,
    },
    Rmdir {
        dir: u8,
        name: u8,
    },
    Rename {
        from: u8,
        name: u8,
        to: u8,
        new_name: u8,
    },
    Link {
        file: u8,
        dir: u8,
        name: u8,
    },
    Lookup {
        dir: u8,
        name: u8,
    },
    Open {
        file: u8,
    },
    Release {
        handle: u8,
    },
}

impl Op {
    /// The operations encoded in `data`, [`RECORD`] bytes each (a shorter
    /// tail is ignored).
    pub fn decode(data: &[u8]) -> Vec<Op> {
        data.chunks_exact(RECORD)
            .map(|r| {
                let a = |i: usize| r[i];
                // Creates and writes come up more often, so that sequences
                // grow trees large enough to reach the budget.
                match a(0) % 16 {
                    0..=2 => Op::Create {
                        dir: a(1),
                        name: a(2),
                        kind: a(3),
                    },
                    3..=4 => Op::Write {
                        file: a(1),
                        at: a(2),
                        n: a(3),
                        len: a(4),
                        append: a(5) % 4 == 0,
                    },
                    5 => Op::Read {
                        file: a(1),
                        at: a(2),
                        n: a(3),
                        len: a(4),
                    },
                    6 => Op::SetSize {
                        file: a(1),
                        at: a(2),
                        n: a(3),
                    },
                    7 => Op::Allocate {
                        file: a(1),
                        at: a(2),
                        n: a(3),
                    },
                    8 => Op::SetMtime {
                        node: a(1),
                        secs: a(2),
                    },
                    9 => Op::Unlink {
                        dir: a(1),
                        name: a(2),
                    },
                    10 => Op::Rmdir {
                        dir: a(1),
                        name: a(2),
                    },
                    11 => Op::Rename {
                        from: a(1),
                        name: a(2),
                        to: a(3),
                        new_name: a(4),
                    },
                    12 => Op::Link {
                        file: a(1),
                        dir: a(2),
                        name: a(3),
                    },
                    13 => Op::Lookup {
                        dir: a(1),
                        name: a(2),
                    },
                    14 => Op::Open { file: a(1) },
                    _ => Op::Release { handle: a(1) },
                }
            })
            .collect()
    }
}

/// Entry names: a few short ones that collide often, and one of the
/// longest length allowed.
fn name(i: u8) -> String {
    match i % 6 {
        0 => "a".into(),
        1 => "b".into(),
        2 => "c".into(),
        3 => "dir".into(),
        4 => "e".into(),
        _ => "n".repeat(255),
    }
}

/// Offsets and sizes around chunk boundaries, far out in sparse space, and
/// at and past the largest file size.
fn offset(at: u8, n: u8) -> u64 {
    let n = u64::from(n);
    match at % 8 {
        0 => n,
        1 => 65_536 - 1 - n % 8,
        2 => 65_536 + n,
        3 => 131_072 * (n % 3) + n,
        4 => n * 4099,
        5 => (1 << 40) + n,
        6 => MAX_FILE_SIZE - n % 4,
        _ => u64::MAX - n,
    }
}

/// Error variants by name, so that results of the two can be compared.
fn code(e: &Error) -> String {
    format!("{e:?}")
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// Nonzero bytes by offset, and the size; everything else reads as 0.
    File {
        bytes: BTreeMap<u64, u8>,
        size: u64,
    },
    Dir {
        entries: BTreeMap<String, u32>,
        parent: u32,
    },
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    /// Names referring to a non-directory.
    links: u32,
    /// Handles taken with `open`.
    open: u32,
    /// The mtime last set explicitly, while nothing has changed the node
    /// since.
    mtime: Option<SystemTime>,
}

impl Node {
    fn kind(&self) -> FileKind {
        match self.body {
            Body::File { .. } => FileKind::File,
            Body::Dir { .. } => FileKind::Dir,
            Body::Symlink(_) => FileKind::Symlink,
        }
    }
}

/// The reference tree; node 0 is the root.
#[derive(Clone)]
struct Model {
    nodes: BTreeMap<u32, Node>,
    next: u32,
}

/// An operation on named model nodes: an [`Op`] with its picks made.
#[derive(Debug)]
enum Step {
    Create {
        dir: u32,
        name: String,
        kind: u8,
    },
    Write {
        file: u32,
        at: Option<u64>,
        data: Vec<u8>,
    },
    Read {
        file: u32,
        at: u64,
        len: usize,
    },
    SetSize {
        file: u32,
        size: u64,
    },
    Allocate {
        file: u32,
        size: u64,
    },
    SetMtime {
        node: u32,
        time: SystemTime,
    },
    Unlink {
        dir: u32,
        name: String,
    },
    Rmdir {
        dir: u32,
        name: String,
    },
    Rename {
        from: u32,
        name: String,
        to: u32,
        new_name: String,
    },
    Link {
        file: u32,
        dir: u32,
        name: String,
    },
    Lookup {
        dir: u32,
        name: String,
    },
    Open {
        file: u32,
    },
    Release {
        handle: usize,
    },
}

/// What an operation returned, as text; an error is its variant's name.
type Outcome = Result<String, String>;

fn err(e: Error) -> Outcome {
    Err(code(&e))
}

impl Model {
    fn new() -> Self {
        let root = Node {
            body: Body::Dir {
                entries: BTreeMap::new(),
                parent: 0,
            },
            links: 1,
            open: 0,
            mtime: None,
        };
        Model {
            nodes: BTreeMap::from([(0, root)]),
            next: 1,
        }
    }

    fn pick(&self, i: u8, want: impl Fn(&Node) -> bool) -> Option<u32> {
        let ids: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| want(n))
            .map(|(&id, _)| id)
            .collect();
        (!ids.is_empty()).then(|| ids[usize::from(i) % ids.len()])
    }

    fn dir(&self, i: u8) -> u32 {
        self.pick(i, |n| n.kind() == FileKind::Dir).unwrap_or(0)
    }

    fn file(&self, i: u8) -> Option<u32> {
        self.pick(i, |n| n.kind() == FileKind::File)
    }

    fn entries(&self, dir: u32) -> &BTreeMap<String, u32> {
        match &self.nodes[&dir].body {
            Body::Dir { entries, .. } => entries,
            _ => unreachable!("not a directory"),
        }
    }

    fn entries_mut(&mut self, dir: u32) -> &mut BTreeMap<String, u32> {
        let node = self.nodes.get_mut(&dir).unwrap();
        node.mtime = None;
        match &mut node.body {
            Body::Dir { entries, .. } => entries,
            _ => unreachable!("not a directory"),
        }
    }

    fn parent(&self, dir: u32) -> u32 {
        match self.nodes[&dir].body {
            Body::Dir { parent, .. } => parent,
            _ => unreachable!("not a directory"),
        }
    }

    fn is_dir(&self, id: u32) -> bool {
        self.nodes[&id].kind() == FileKind::Dir
    }

    fn touch(&mut self, id: u32) {
        self.nodes.get_mut(&id).unwrap().mtime = None;
    }

    fn add(&mut self, body: Body) -> u32 {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(
            id,
            Node {
                body,
                links: 1,
                open: 0,
                mtime: None,
            },
        );
        id
    }

    /// Drops a name of `id`; the node goes once nothing refers to it.
    fn drop_name(&mut self, id: u32) -> bool {
        let node = self.nodes.get_mut(&id).unwrap();
        node.links -= 1;
        self.forget_if_unused(id)
    }

    fn forget_if_unused(&mut self, id: u32) -> bool {
        let node = &self.nodes[&id];
        let gone = node.links == 0 && node.open == 0;
        if gone {
            self.nodes.remove(&id);
        }
        gone
    }

    fn within(&self, dir: u32, ancestor: u32) -> bool {
        let mut cur = dir;
        loop {
            if cur == ancestor {
                return true;
            }
            if cur == 0 {
                return false;
            }
            cur = self.parent(cur);
        }
    }
}

impl Model {
    /// The step `op` names, or `None` when it names nothing (no file yet,
    /// no handle to release).
    fn resolve(&self, op: Op, handles: usize) -> Option<Step> {
        Some(match op {
            Op::Create { dir, name: n, kind } => Step::Create {
                dir: self.dir(dir),
                name: name(n),
                kind,
            },
            Op::Write {
                file,
                at,
                n,
                len,
                append,
            } => Step::Write {
                file: self.file(file)?,
                at: (!append).then(|| offset(at, n)),
                data: (0..len).map(|i| i.wrapping_mul(n) | 1).collect(),
            },
            Op::Read { file, at, n, len } => Step::Read {
                file: self.file(file)?,
                at: offset(at, n),
                len: usize::from(len) * 3,
            },
            Op::SetSize { file, at, n } => Step::SetSize {
                file: self.file(file)?,
                size: offset(at, n),
            },
            Op::Allocate { file, at, n } => Step::Allocate {
                file: self.file(file)?,
                size: offset(at, n),
            },
            Op::SetMtime { node, secs } => Step::SetMtime {
                node: self.pick(node, |_| true)?,
                time: SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(secs) << 20),
            },
            Op::Unlink { dir, name: n } => Step::Unlink {
                dir: self.dir(dir),
                name: name(n),
            },
            Op::Rmdir { dir, name: n } => Step::Rmdir {
                dir: self.dir(dir),
                name: name(n),
            },
            Op::Rename {
                from,
                name: n,
                to,
                new_name,
            } => Step::Rename {
                from: self.dir(from),
                name: name(n),
                to: self.dir(to),
                new_name: name(new_name),
            },
            Op::Link { file, dir, name: n } => Step::Link {
                file: self.file(file)?,
                dir: self.dir(dir),
                name: name(n),
            },
            Op::Lookup { dir, name: n } => Step::Lookup {
                dir: self.dir(dir),
                name: if n % 7 == 6 { "..".into() } else { name(n) },
            },
            Op::Open { file } => Step::Open {
                file: self.pick(file, |n| n.kind() != FileKind::Dir)?,
            },
            Op::Release { handle } => {
                (handles > 0).then_some(())?;
                Step::Release {
                    handle: usize::from(handle) % handles,
                }
            }
        })
    }

    /// Applies `step` with the POSIX rules; returns its outcome and the
    /// node it created.
    fn step(&mut self, step: &Step, handles: &mut Vec<u32>) -> (Outcome, Option<u32>) {
        let done = |s: &str| Ok(s.to_owned());
        match step {
            Step::Create { dir, name, kind } => {
                if self.entries(*dir).contains_key(name) {
                    return (err(Error::Exists), None);
                }
                let body = match kind % 3 {
                    0 => Body::File {
                        bytes: BTreeMap::new(),
                        size: 0,
                    },
                    1 => Body::Dir {
                        entries: BTreeMap::new(),
                        parent: *dir,
                    },
                    _ => Body::Symlink(symlink_target(*kind)),
                };
                let id = self.add(body);
                self.entries_mut(*dir).insert(name.clone(), id);
                (done("created"), Some(id))
            }
            Step::Write { file, at, data } => {
                let node = self.nodes.get_mut(file).unwrap();
                let Body::File { bytes, size } = &mut node.body else {
                    unreachable!()
                };
                let at = at.unwrap_or(*size);
                let len = data.len() as u64;
                if len == 0 {
                    return (Ok(format!("0 {at}")), None);
                }
                match at.checked_add(len) {
                    Some(end) if end <= MAX_FILE_SIZE => {
                        for (i, b) in data.iter().enumerate() {
                            bytes.insert(at + i as u64, *b);
                        }
                        *size = (*size).max(end);
                        node.mtime = None;
                        (Ok(format!("{len} {end}")), None)
                    }
                    _ => (err(Error::FileTooBig), None),
                }
            }
            Step::Read { file, at, len } => {
                let Body::File { bytes, size } = &self.nodes[file].body else {
                    unreachable!()
                };
                let end = at.saturating_add(*len as u64).min(*size);
                let got: Vec<u8> = (*at..end.max(*at))
                    .map(|o| bytes.get(&o).copied().unwrap_or(0))
                    .collect();
                (Ok(format!("{got:?}")), None)
            }
            Step::SetSize { file, size: new } => {
                if *new > MAX_FILE_SIZE {
                    return (err(Error::FileTooBig), None);
                }
                let node = self.nodes.get_mut(file).unwrap();
                let Body::File { bytes, size } = &mut node.body else {
                    unreachable!()
                };
                bytes.split_off(new);
                *size = *new;
                node.mtime = None;
                (done("resized"), None)
            }
            Step::Allocate { file, size: new } => {
                if *new > MAX_FILE_SIZE {
                    return (err(Error::FileTooBig), None);
                }
                let node = self.nodes.get_mut(file).unwrap();
                let Body::File { size, .. } = &mut node.body else {
                    unreachable!()
                };
                if *size < *new {
                    *size = *new;
                    node.mtime = None;
                }
                (done("allocated"), None)
            }
            Step::SetMtime { node, time } => {
                self.nodes.get_mut(node).unwrap().mtime = Some(*time);
                (done("set"), None)
            }
            Step::Unlink { dir, name } => {
                let Some(&id) = self.entries(*dir).get(name) else {
                    return (err(Error::NotFound), None);
                };
                if self.is_dir(id) {
                    return (err(Error::IsDir), None);
                }
                self.entries_mut(*dir).remove(name);
                self.touch(id);
                self.drop_name(id);
                (done("unlinked"), None)
            }
            Step::Rmdir { dir, name } => {
                let Some(&id) = self.entries(*dir).get(name) else {
                    return (err(Error::NotFound), None);
                };
                if !self.is_dir(id) {
                    return (err(Error::NotDir), None);
                }
                if !self.entries(id).is_empty() {
                    return (err(Error::NotEmpty), None);
                }
                self.entries_mut(*dir).remove(name);
                self.nodes.remove(&id);
                (done("removed"), None)
            }
            Step::Rename {
                from,
                name,
                to,
                new_name,
            } => (self.rename(*from, name, *to, new_name), None),
            Step::Link { file, dir, name } => {
                if self.entries(*dir).contains_key(name) {
                    return (err(Error::Exists), None);
                }
                if self.nodes[file].links == 0 {
                    return (err(Error::NotFound), None);
                }
                self.entries_mut(*dir).insert(name.clone(), *file);
                let node = self.nodes.get_mut(file).unwrap();
                node.links += 1;
                (done("linked"), None)
            }
            Step::Lookup { dir, name } => {
                let id = if name == ".." {
                    self.parent(*dir)
                } else {
                    match self.entries(*dir).get(name) {
                        Some(&id) => id,
                        None => return (err(Error::NotFound), None),
                    }
                };
                (Ok(format!("{id} {:?}", self.nodes[&id].kind())), None)
            }
            Step::Open { file } => {
                self.nodes.get_mut(file).unwrap().open += 1;
                handles.push(*file);
                (done("opened"), None)
            }
            Step::Release { handle } => {
                let id = handles.swap_remove(*handle);
                self.nodes.get_mut(&id).unwrap().open -= 1;
                self.forget_if_unused(id);
                (done("released"), None)
            }
        }
    }

    fn rename(&mut self, from: u32, name: &str, to: u32, new_name: &str) -> Outcome {
        let Some(&id) = self.entries(from).get(name) else {
            return err(Error::NotFound);
        };
        if self.is_dir(id) && self.within(to, id) {
            return err(Error::Invalid);
        }
        let replaced = self.entries(to).get(new_name).copied();
        match replaced {
            Some(r) if r == id => return Ok("same".into()),
            // A directory holding the source cannot be replaced by it.
            Some(r) if self.is_dir(r) && self.within(from, r) => return err(Error::NotEmpty),
            Some(r) if self.is_dir(r) && !self.is_dir(id) => return err(Error::IsDir),
            Some(r) if !self.is_dir(r) && self.is_dir(id) => return err(Error::NotDir),
            Some(r) if self.is_dir(r) && !self.entries(r).is_empty() => {
                return err(Error::NotEmpty);
            }
            _ => {}
        }
        self.entries_mut(from).remove(name);
        self.entries_mut(to).insert(new_name.to_owned(), id);
        if let Body::Dir { parent, .. } = &mut self.nodes.get_mut(&id).unwrap().body {
            *parent = to;
        }
        match replaced {
            Some(r) if self.is_dir(r) => {
                self.nodes.remove(&r);
            }
            Some(r) => {
                self.drop_name(r);
            }
            None => {}
        }
        Ok("renamed".into())
    }
}

fn symlink_target(kind: u8) -> String {
    format!("{}/../t{}", name(kind / 3), kind)
}

/// The inode at `path` (`/`-separated, from the root) of `store`.
fn lookup_path(store: &dyn Storage, path: &str) -> Ino {
    path.split('/')
        .filter(|n| !n.is_empty())
        .fold(store.root(), |dir, name| store.lookup(dir, name).unwrap().0)
}

/// Puts [`LOWER`] in `lower` and in `model`; returns each model node with
/// the path it was first made at.
fn seed(lower: &MemFs, model: &mut Model) -> Vec<(u32, &'static str)> {
    let mut ids: HashMap<&str, u32> = HashMap::from([("", 0)]);
    let mut first = Vec::new();
    for seed in LOWER {
        let path = match seed {
            Seed::Dir(p) | Seed::File(p, ..) | Seed::Link(_, p) | Seed::Symlink(p, _) => *p,
        };
        let (dir_path, name) = path.rsplit_once('/').unwrap_or(("", path));
        let (dir, dir_id) = (lookup_path(lower, dir_path), ids[dir_path]);
        let id = match seed {
            Seed::Dir(_) => {
                lower.create(dir, name, NewNode::Dir).unwrap();
                model.add(Body::Dir {
                    entries: BTreeMap::new(),
                    parent: dir_id,
                })
            }
            Seed::File(_, runs, size) => {
                let ino = lower.create(dir, name, NewNode::File).unwrap().ino;
                let mut bytes = BTreeMap::new();
                for (at, data) in *runs {
                    let pos = WritePos::At(*at);
                    lower
                        .write(ino, pos, &[IoSlice::new(data)], u64::MAX)
                        .unwrap();
                    bytes.extend(data.iter().enumerate().map(|(i, b)| (at + i as u64, *b)));
                }
                let set = SetAttr {
                    size: Some(*size),
                    ..SetAttr::default()
                };
                lower.setattr(ino, &set).unwrap();
                model.add(Body::File { bytes, size: *size })
            }
            Seed::Link(existing, _) => {
                lower.link(lookup_path(lower, existing), dir, name).unwrap();
                let id = ids[existing];
                model.nodes.get_mut(&id).unwrap().links += 1;
                id
            }
            Seed::Symlink(_, target) => {
                lower.create(dir, name, NewNode::Symlink(target)).unwrap();
                model.add(Body::Symlink((*target).to_owned()))
            }
        };
        model.entries_mut(dir_id).insert(name.to_owned(), id);
        if !matches!(seed, Seed::Link(..)) {
            first.push((id, path));
        }
        ids.insert(path, id);
    }
    first
}

/// What the model knows of an overlay's copy-ups, to predict what
/// `Overlay::changes` reports: the tree it started from, the lower files
/// and symlinks copied up (modified wherever a lower name of theirs
/// stands), and the lower directories moved (made opaque: replaced
/// wherever they stand).
struct Copied {
    initial: Model,
    files: BTreeSet<u32>,
    dirs: BTreeSet<u32>,
    /// Files an operation refused with `ENOSPC` may have copied up.
    maybe: BTreeSet<u32>,
}

impl Copied {
    /// Records what `step`, taken on `before`, copies up: into `maybe`
    /// when it was refused.
    fn note(&mut self, step: &Step, before: &Model, refused: bool) {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        match step {
            Step::Write { file, data, .. } if !data.is_empty() => files.push(*file),
            Step::SetSize { file, .. } | Step::Allocate { file, .. } | Step::Link { file, .. } => {
                files.push(*file)
            }
            Step::SetMtime { node, .. } if !before.is_dir(*node) => files.push(*node),
            Step::Rename {
                from,
                name,
                to,
                new_name,
            } => {
                let Some(&src) = before.entries(*from).get(name) else {
                    return;
                };
                if before.entries(*to).get(new_name) == Some(&src) {
                    return; // two names of one file: nothing happens
                }
                let mut pending = vec![src];
                while let Some(id) = pending.pop() {
                    if before.is_dir(id) {
                        dirs.push(id);
                        pending.extend(before.entries(id).values());
                    } else {
                        files.push(id);
                    }
                }
            }
            _ => {}
        }
        if refused {
            self.maybe.extend(files);
        } else {
            self.files.extend(files);
            self.dirs.extend(dirs);
        }
    }

    /// The changes from the initial tree to `now`, counting `copied` as
    /// copied up.
    fn expect(&self, now: &Model, copied: &BTreeSet<u32>) -> Changes {
        let mut out = Changes::default();
        let mut pending = vec![(String::new(), Some(0), Some(0))];
        while let Some((path, cur, init)) = pending.pop() {
            let none = BTreeMap::new();
            let cur_e = cur.map_or(&none, |d| now.entries(d));
            let init_e = init.map_or(&none, |d| self.initial.entries(d));
            let names: BTreeSet<&String> = cur_e.keys().chain(init_e.keys()).collect();
            for name in names {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                let c = cur_e.get(name).map(|&id| (id, now.is_dir(id)));
                let i = init_e.get(name).map(|&id| (id, self.initial.is_dir(id)));
                match (c, i) {
                    (Some((c, true)), Some((i, true))) if c == i && !self.dirs.contains(&c) => {
                        pending.push((p, Some(c), Some(i)));
                    }
                    (Some((c, false)), Some((i, false))) => {
                        if c != i || copied.contains(&c) {
                            out.modified.push(p);
                        }
                    }
                    (Some((c, is_dir)), i) => {
                        if i.is_some() {
                            out.deleted.push(p.clone());
                        }
                        out.added.push(p.clone());
                        if is_dir {
                            pending.push((p, Some(c), None));
                        }
                    }
                    (None, Some(_)) => out.deleted.push(p),
                    (None, None) => {}
                }
            }
        }
        for list in [&mut out.added, &mut out.modified, &mut out.deleted] {
            list.sort();
        }
        out
    }

    /// `got` is what the model predicts, allowing as modified files that
    /// a refused operation may have copied up.
    fn check(&self, now: &Model, got: &Changes, when: &str) {
        let want = self.expect(now, &self.files);
        assert_eq!(got.added, want.added, "{when}: changes, added");
        assert_eq!(got.deleted, want.deleted, "{when}: changes, deleted");
        let most = self.expect(now, &self.files.union(&self.maybe).copied().collect());
        for p in &want.modified {
            assert!(
                got.modified.contains(p),
                "{when}: {p} not listed as modified"
            );
        }
        for p in &got.modified {
            assert!(most.modified.contains(p), "{when}: {p} listed as modified");
        }
    }
}

/// The store under test and how the model's nodes map to its inodes.
pub struct Checker {
    model: Model,
    handles: Vec<u32>,
    fs: Box<dyn Storage>,
    /// The store again, when it is an overlay, to check its `changes()`
    /// and reset it at the end, and what the model knows of its copy-ups.
    overlay: Option<(Overlay, Copied)>,
    budget: Arc<Budget>,
    ino: HashMap<u32, Ino>,
    baseline: (u64, u64),
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    pub fn new() -> Self {
        Self::on(Store::Mem)
    }

    /// A checker of `store`. An overlay gets a larger budget than a
    /// `MemFs`, since copy-up takes some of it; only the first name of
    /// each lower node is looked up here, so the others are first met by
    /// the operations.
    pub fn on(store: Store) -> Self {
        let mut model = Model::new();
        let (fs, overlay, budget, firsts): (Box<dyn Storage>, _, _, _) = match store {
            Store::Mem => {
                let budget = Arc::new(Budget::new(BUDGET_BYTES, BUDGET_INODES));
                (Box::new(MemFs::new()), None, budget, Vec::new())
            }
            Store::Overlay => {
                let lower = MemFs::new();
                let firsts = seed(&lower, &mut model);
                let budget = Arc::new(Budget::new(BUDGET_BYTES * 3, BUDGET_INODES * 3));
                let overlay = Overlay::new(lower);
                let copied = Copied {
                    initial: model.clone(),
                    files: BTreeSet::new(),
                    dirs: BTreeSet::new(),
                    maybe: BTreeSet::new(),
                };
                (
                    Box::new(overlay.clone()),
                    Some((overlay, copied)),
                    budget,
                    firsts,
                )
            }
        };
        fs.attach_budget(budget.clone());
        let baseline = (budget.bytes_used(), budget.inodes_used());
        let mut ino = HashMap::from([(0, fs.root())]);
        for (id, path) in firsts {
            ino.insert(id, lookup_path(&*fs, path));
        }
        Checker {
            model,
            handles: Vec::new(),
            fs,
            overlay,
            budget,
            ino,
            baseline,
        }
    }

    /// Runs `ops` on a `MemFs`, comparing the whole tree after each, then
    /// takes the tree down and checks the budget is back where it started.
    pub fn run(ops: &[Op]) {
        Self::run_on(Store::Mem, ops)
    }

    /// [`run`](Self::run) on `store`.
    pub fn run_on(store: Store, ops: &[Op]) {
        let mut c = Checker::on(store);
        for (i, op) in ops.iter().enumerate() {
            c.apply(*op);
            c.compare(&format!("after op {i}, {op:?}"));
        }
        c.tear_down();
    }

    /// Applies `op` to the model and the store; both must give the same
    /// outcome, except that the store may refuse with `ENOSPC`, in which
    /// case the model is left as it was.
    pub fn apply(&mut self, op: Op) {
        let Some(step) = self.model.resolve(op, self.handles.len()) else {
            return;
        };
        let (model_before, handles_before) = (self.model.clone(), self.handles.clone());
        let (expected, created) = self.model.step(&step, &mut self.handles);
        let real = self.real(&step, &handles_before);
        if let Some((_, copied)) = &mut self.overlay
            && matches!(real, Ok(_) | Err(Error::NoSpace))
        {
            copied.note(&step, &model_before, real.is_err());
        }
        match real {
            Err(Error::NoSpace) => {
                assert!(
                    expected.is_ok(),
                    "{step:?}: ENOSPC where the model has {expected:?}"
                );
                self.model = model_before;
                self.handles = handles_before;
            }
            Err(e) => assert_eq!(err(e), expected, "{step:?}"),
            Ok((outcome, new_ino)) => {
                assert_eq!(Ok(outcome), expected, "{step:?}");
                if let (Some(id), Some(ino)) = (created, new_ino) {
                    self.ino.insert(id, ino);
                }
            }
        }
        let model = &self.model;
        let (kept, gone): (HashMap<u32, Ino>, HashMap<u32, Ino>) = self
            .ino
            .drain()
            .partition(|(id, _)| model.nodes.contains_key(id));
        self.ino = kept;
        for (id, ino) in gone {
            assert!(
                matches!(self.fs.getattr(ino), Err(Error::NotFound)),
                "{step:?}: node {id} is gone from the model but not from the store"
            );
        }
    }

    fn id_of(&self, ino: Ino) -> Option<u32> {
        self.ino.iter().find(|(_, i)| **i == ino).map(|(id, _)| *id)
    }

    /// Runs `step` on the store, giving its outcome in the model's words.
    fn real(&self, step: &Step, handles: &[u32]) -> Result<(String, Option<Ino>), Error> {
        let fs = &self.fs;
        let ino = |id: &u32| self.ino[id];
        let done = |s: &str| Ok((s.to_owned(), None));
        match step {
            Step::Create { dir, name, kind } => {
                let target = symlink_target(*kind);
                let node = match kind % 3 {
                    0 => NewNode::File,
                    1 => NewNode::Dir,
                    _ => NewNode::Symlink(&target),
                };
                let attr = fs.create(ino(dir), name, node)?;
                Ok(("created".into(), Some(attr.ino)))
            }
            Step::Write { file, at, data } => {
                let pos = at.map_or(WritePos::Append, WritePos::At);
                let (n, end) = fs.write(ino(file), pos, &[IoSlice::new(data)], u64::MAX)?;
                Ok((format!("{n} {end}"), None))
            }
            Step::Read { file, at, len } => {
                let mut buf = vec![0u8; *len];
                let n = fs.read(ino(file), *at, &mut [IoSliceMut::new(&mut buf)])?;
                buf.truncate(n);
                Ok((format!("{buf:?}"), None))
            }
            Step::SetSize { file, size } => {
                let set = SetAttr {
                    size: Some(*size),
                    ..SetAttr::default()
                };
                fs.setattr(ino(file), &set)?;
                done("resized")
            }
            Step::Allocate { file, size } => {
                fs.allocate(ino(file), *size)?;
                done("allocated")
            }
            Step::SetMtime { node, time } => {
                let set = SetAttr {
                    mtime: Some(TimeSet::At(*time)),
                    ..SetAttr::default()
                };
                fs.setattr(ino(node), &set)?;
                done("set")
            }
            Step::Unlink { dir, name } => {
                fs.unlink(ino(dir), name)?;
                done("unlinked")
            }
            Step::Rmdir { dir, name } => {
                fs.rmdir(ino(dir), name)?;
                done("removed")
            }
            Step::Rename {
                from,
                name,
                to,
                new_name,
            } => {
                let src = fs.lookup(ino(from), name).ok().map(|(i, _)| i);
                let same =
                    src.is_some() && src == fs.lookup(ino(to), new_name).ok().map(|(i, _)| i);
                fs.rename(ino(from), name, ino(to), new_name)?;
                done(if same { "same" } else { "renamed" })
            }
            Step::Link { file, dir, name } => {
                fs.link(ino(file), ino(dir), name)?;
                done("linked")
            }
            Step::Lookup { dir, name } => {
                let (found, kind) = fs.lookup(ino(dir), name)?;
                let id = self
                    .id_of(found)
                    .map_or("unknown".into(), |id| id.to_string());
                Ok((format!("{id} {kind:?}"), None))
            }
            Step::Open { file } => {
                fs.open(ino(file), true)?;
                done("opened")
            }
            Step::Release { handle } => {
                fs.release(ino(&handles[*handle]));
                done("released")
            }
        }
    }

    /// Compares the whole store with the model, and an overlay's
    /// `changes()` with what the model predicts.
    pub fn compare(&self, when: &str) {
        let fs = &self.fs;
        if let Some((overlay, copied)) = &self.overlay {
            copied.check(&self.model, &overlay.changes().unwrap(), when);
        }
        for (id, node) in &self.model.nodes {
            let ino = self.ino[id];
            let attr = fs
                .getattr(ino)
                .unwrap_or_else(|e| panic!("{when}: node {id}: {e}"));
            assert_eq!(attr.kind, node.kind(), "{when}: node {id}");
            if let Some(t) = node.mtime {
                assert_eq!(attr.mtime, t, "{when}: node {id} mtime");
            }
            match &node.body {
                Body::File { bytes, size } => {
                    assert_eq!(attr.size, *size, "{when}: node {id} size");
                    assert_eq!(attr.nlink, u64::from(node.links), "{when}: node {id} nlink");
                    self.compare_data(when, *id, bytes, *size);
                }
                Body::Symlink(target) => {
                    assert_eq!(fs.readlink(ino).unwrap(), *target, "{when}: node {id}");
                    assert_eq!(attr.nlink, u64::from(node.links), "{when}: node {id} nlink");
                }
                Body::Dir { entries, parent } => {
                    let subdirs = entries.values().filter(|e| self.model.is_dir(**e)).count();
                    assert_eq!(attr.nlink, 2 + subdirs as u64, "{when}: node {id} nlink");
                    let (up, _) = fs.lookup(ino, "..").unwrap();
                    assert_eq!(up, self.ino[parent], "{when}: node {id} ..");
                    let listed = self.list(ino);
                    let want: Vec<(String, Ino, FileKind)> = entries
                        .iter()
                        .map(|(n, e)| (n.clone(), self.ino[e], self.model.nodes[e].kind()))
                        .collect();
                    assert_eq!(listed, want, "{when}: listing of node {id}");
                }
            }
        }
    }

    /// A directory listing read three entries at a time, sorted.
    fn list(&self, dir: Ino) -> Vec<(String, Ino, FileKind)> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            let page = self.fs.readdir(dir, cursor, 3).unwrap();
            let Some(last) = page.last() else { break };
            cursor = last.next;
            out.extend(page.into_iter().map(|e| (e.name, e.ino, e.kind)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The file's first 200,000 bytes, and every byte the model holds beyond it.
    fn compare_data(&self, when: &str, id: u32, bytes: &BTreeMap<u64, u8>, size: u64) {
        const HEAD: u64 = 200_000;
        let ino = self.ino[&id];
        let head = size.min(HEAD);
        let mut buf = vec![0u8; head as usize];
        let n = self
            .fs
            .read(ino, 0, &mut [IoSliceMut::new(&mut buf)])
            .unwrap();
        assert_eq!(n as u64, head, "{when}: node {id} read");
        let mut want = vec![0u8; head as usize];
        for (&at, &b) in bytes.range(..head) {
            want[at as usize] = b;
        }
        assert!(
            buf == want,
            "{when}: node {id} contents differ near the start"
        );
        for (&at, &b) in bytes.range(HEAD..) {
            let mut one = [0u8];
            self.fs
                .read(ino, at, &mut [IoSliceMut::new(&mut one)])
                .unwrap();
            assert_eq!(one[0], b, "{when}: node {id} byte {at}");
        }
    }

    /// Releases every handle and removes every name, deepest first; the
    /// budget must then be back at its starting point.
    pub fn tear_down(mut self) {
        for id in std::mem::take(&mut self.handles) {
            self.fs.release(self.ino[&id]);
        }
        self.remove_all(self.fs.root());
        if let Some((overlay, _)) = &self.overlay {
            overlay.reset().unwrap();
        }
        let used = (self.budget.bytes_used(), self.budget.inodes_used());
        assert_eq!(
            used, self.baseline,
            "budget (bytes, inodes) after removing everything"
        );
    }

    fn remove_all(&self, dir: Ino) {
        for e in self.list(dir) {
            let (name, ino, kind) = e;
            if kind == FileKind::Dir {
                self.remove_all(ino);
                self.fs.rmdir(dir, &name).unwrap();
            } else {
                self.fs.unlink(dir, &name).unwrap();
            }
        }
    }
}
