//! Path operations with the POSIX rules that depend on how a path resolved:
//! `EEXIST` for a taken name, `ELOOP` for an unfollowed symlink, `EISDIR`
//! and `ENOTDIR` from trailing slashes, `EXDEV` between mounts.
//!
//! Each function resolves its paths once, through [`resolve`], and then
//! calls the store; the rules that concern a single store (empty
//! directories, rename into a subtree, `nlink`) are the store's.

use super::resolve::{
    Last, ONE_STEP_DIRS, PATH_MAX, Resolved, Scope, plain_path, resolve, resolve_unlooked, walk,
};
use super::{Metadata, Namespace, Node};
use crate::error::{Error, Result};
use crate::storage::{FileKind, NewNode, PathChange, PathOpen, PlainPath, SetAttr, TimeSet};

/// A path relative to a starting directory, within a scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    pub(crate) dir: Node,
    pub(crate) path: &'a str,
    pub(crate) scope: Scope,
}

impl At<'_> {
    fn resolve(&self, ns: &Namespace, follow_last: bool) -> Result<Resolved> {
        resolve(ns, self.dir, self.path, follow_last, self.scope)
    }
}

/// How to open a path, in `open(2)` terms.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenOptions {
    /// `O_CREAT`.
    pub(crate) create: bool,
    /// `O_EXCL`.
    pub(crate) exclusive: bool,
    /// `O_TRUNC`.
    pub(crate) truncate: bool,
    /// `O_DIRECTORY`.
    pub(crate) directory: bool,
    /// Follow a symlink in the last component (no `O_NOFOLLOW`).
    pub(crate) follow: bool,
    /// Opened for writing.
    pub(crate) write: bool,
}

/// A resolved path that names a directory entry (not `.`, `..` or `/`).
struct Named {
    parent: Node,
    name: String,
    target: Option<(Node, FileKind)>,
    dir_required: bool,
}

/// The entry a path names, or `if_unnamed` for `.`, `..` and `/`.
fn named(r: Resolved, if_unnamed: Error) -> Result<Named> {
    match r.name {
        Some(name) => Ok(Named {
            parent: r.parent,
            name,
            target: r.target,
            dir_required: r.dir_required,
        }),
        None => Err(if_unnamed),
    }
}

impl Namespace {
    /// The directory holding the entry `at` names, and its name, without
    /// following a final symlink; `EINVAL` for `.`, `..` and `/`, which
    /// name no entry of their own.
    pub(crate) fn entry(&self, at: At<'_>) -> Result<(Node, String)> {
        let n = named(at.resolve(self, false)?, Error::Invalid)?;
        if n.target.is_none() {
            return Err(Error::NotFound);
        }
        Ok((n.parent, n.name))
    }

    /// Opens (and maybe creates or truncates) a path; returns the node and
    /// its kind.
    pub(crate) fn open(&self, at: At<'_>, o: OpenOptions) -> Result<(Node, FileKind)> {
        if o.directory && (o.create || o.exclusive || o.truncate) {
            return Err(Error::Invalid);
        }
        if o.truncate && !o.write {
            return Err(Error::Invalid);
        }
        if let Some(found) = self.open_in_one_step(at, o)? {
            return Ok(found);
        }
        if let Some(dir) = self.open_dir_in_one_step(at, o) {
            return Ok((dir, FileKind::Dir));
        }
        // O_CREAT|O_EXCL never follows: a symlink in the way is EEXIST.
        let follow = o.follow && !(o.create && o.exclusive);
        let r = at.resolve(self, follow)?;
        match r.target {
            Some(_) if o.create && o.exclusive => Err(Error::Exists),
            Some((_, FileKind::Symlink)) => Err(Error::Loop),
            Some((node, FileKind::Dir)) => {
                if o.create || o.write || o.truncate {
                    return Err(Error::IsDir);
                }
                Ok((node, FileKind::Dir))
            }
            Some((node, FileKind::File)) => {
                if o.directory {
                    return Err(Error::NotDir);
                }
                if o.write && self.is_read_only(node.mount) {
                    return Err(Error::ReadOnly);
                }
                if o.truncate {
                    self.truncate(node)?;
                }
                Ok((node, FileKind::File))
            }
            None if !o.create => Err(Error::NotFound),
            None if r.dir_required => Err(Error::IsDir),
            None => {
                let Named { parent, name, .. } = named(r, Error::Exists)?;
                let ino = self.create_at(parent, &name, NewNode::File)?;
                Ok((
                    Node {
                        mount: parent.mount,
                        ino,
                    },
                    FileKind::File,
                ))
            }
        }
    }

    /// [`open`](Self::open) of a path of plain names to a regular file,
    /// where the directory's store takes such a path in one step
    /// ([`Storage::open_path`](crate::storage::Storage::open_path)) and no
    /// mount lies below it; `None` for the resolver to take it name by name.
    fn open_in_one_step(&self, at: At<'_>, o: OpenOptions) -> Result<Option<(Node, FileKind)>> {
        if o.directory {
            return Ok(None);
        }
        let Some((dir, path)) = plain_path(self, at.dir, at.path, at.scope) else {
            return Ok(None);
        };
        if (o.write || o.create) && self.is_read_only(dir.mount) {
            return Ok(None);
        }
        let how = PathOpen {
            create: o.create,
            exclusive: o.create && o.exclusive,
            write: o.write,
        };
        let Some(attr) = self.store(dir.mount).open_path(dir.ino, path, how)? else {
            return Ok(None);
        };
        let node = Node {
            mount: dir.mount,
            ino: attr.ino,
        };
        if o.truncate {
            self.truncate(node)?;
        }
        Ok(Some((node, FileKind::File)))
    }

    /// [`open`](Self::open) of a path of more than [`ONE_STEP_DIRS`] plain
    /// names with `O_DIRECTORY`, all of them directories, which the store
    /// takes in one step
    /// ([`Storage::lookup_dirs`](crate::storage::Storage::lookup_dirs))
    /// where no mount lies below; `None` for the resolver to take it name
    /// by name, which also gives every refusal its answer.
    fn open_dir_in_one_step(&self, at: At<'_>, o: OpenOptions) -> Option<Node> {
        if !o.directory || o.write || o.create || o.truncate {
            return None;
        }
        let (dir, path) = self.plain_path_of(at, ONE_STEP_DIRS + 1)?;
        let names: Vec<&str> = path.names().collect();
        self.lookup_dirs(dir, &names)
    }

    /// `at` as a path of plain names, from a directory whose store takes
    /// such paths in one step and holds no mount, when it has at least
    /// `fewest` names; `None` otherwise.
    fn plain_path_of<'a>(&self, at: At<'a>, fewest: usize) -> Option<(Node, PlainPath<'a>)> {
        plain_path(self, at.dir, at.path, at.scope).filter(|(_, path)| path.len() >= fewest)
    }

    /// Two paths of plain names in one mount, as
    /// [`plain_path_of`](Self::plain_path_of) takes them at any length.
    fn plain_paths_of<'a>(
        &self,
        from: At<'a>,
        to: At<'a>,
    ) -> Option<((Node, PlainPath<'a>), (Node, PlainPath<'a>))> {
        let (src, dst) = (self.plain_path_of(from, 1)?, self.plain_path_of(to, 1)?);
        (src.0.mount == dst.0.mount).then_some((src, dst))
    }

    /// `O_TRUNC`.
    fn truncate(&self, node: Node) -> Result<()> {
        let empty = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        self.setattr(node, &empty)
    }

    fn create_at(&self, parent: Node, name: &str, node: NewNode<'_>) -> Result<u64> {
        Ok(self.store(parent.mount).create(parent.ino, name, node)?.ino)
    }

    /// `stat` (following the last symlink) or `lstat`.
    pub(crate) fn stat(&self, at: At<'_>, follow: bool) -> Result<Metadata> {
        if let Some(meta) = self.stat_in_one_step(at, follow)? {
            return Ok(meta);
        }
        let r = walk(self, at.dir, at.path, follow, at.scope, Last::Peek)?;
        let (node, _) = r.target.ok_or(Error::NotFound)?;
        match r.meta {
            Some(meta) => Ok(meta),
            None => self.metadata(node),
        }
    }

    /// [`stat`](Self::stat) of a path of plain names with at least
    /// [`ONE_STEP_DIRS`] directories on the way, where the directory's
    /// store takes such a path in one step
    /// ([`Storage::peek_path`](crate::storage::Storage::peek_path)) and no
    /// mount lies below it; `None` for the resolver to take it name by
    /// name, which shorter paths cost no more than the step.
    fn stat_in_one_step(&self, at: At<'_>, follow: bool) -> Result<Option<Metadata>> {
        let Some((dir, path)) = self.plain_path_of(at, ONE_STEP_DIRS + 1) else {
            return Ok(None);
        };
        let Some(attr) = self.store(dir.mount).peek_path(dir.ino, path)? else {
            return Ok(None);
        };
        // A symlink to follow is resolved as the guest's tree has it.
        if follow && attr.kind == FileKind::Symlink {
            return Ok(None);
        }
        Ok(Some(Metadata::new(self.dev(dir.mount), attr)))
    }

    /// `change` to the last name of a path of plain names with at least
    /// [`ONE_STEP_DIRS`] directories on the way, where the directory's
    /// store makes it in one step
    /// ([`Storage::change_path`](crate::storage::Storage::change_path))
    /// and no mount lies below it; `false` for the caller to resolve the
    /// path name by name.
    fn change_in_one_step(&self, at: At<'_>, change: PathChange<'_>) -> Result<bool> {
        let Some((dir, path)) = self.plain_path_of(at, ONE_STEP_DIRS + 1) else {
            return Ok(false);
        };
        self.store(dir.mount).change_path(dir.ino, path, change)
    }

    /// [`rename`](Self::rename) of two paths of plain names in one mount,
    /// where the store reaches both directories in one step
    /// ([`Storage::rename_path`](crate::storage::Storage::rename_path)) and
    /// no mount lies below them; `false` for the caller to resolve both
    /// paths name by name. However short the paths, the step costs less
    /// than the walk, which also looks both last names up.
    fn rename_in_one_step(&self, from: At<'_>, to: At<'_>) -> Result<bool> {
        let Some(((src, from_path), (dst, to_path))) = self.plain_paths_of(from, to) else {
            return Ok(false);
        };
        self.store(src.mount)
            .rename_path(src.ino, from_path, dst.ino, to_path)
    }

    /// [`link`](Self::link) of two paths of plain names in one mount,
    /// where the store reaches both directories in one step
    /// ([`Storage::link_path`](crate::storage::Storage::link_path)), as
    /// [`rename_in_one_step`](Self::rename_in_one_step) does; `false` for
    /// the caller to resolve both paths name by name.
    fn link_in_one_step(&self, from: At<'_>, to: At<'_>) -> Result<bool> {
        let Some(((src, from_path), (dst, to_path))) = self.plain_paths_of(from, to) else {
            return Ok(false);
        };
        self.store(src.mount)
            .link_path(src.ino, from_path, dst.ino, to_path)
    }

    /// The node a path names, following symlinks all the way.
    pub(crate) fn find(&self, at: At<'_>) -> Result<(Node, FileKind)> {
        at.resolve(self, true)?.target.ok_or(Error::NotFound)
    }

    /// `mkdir`.
    pub(crate) fn mkdir(&self, at: At<'_>) -> Result<Node> {
        let (parent, name) = self.to_make(at)?;
        let ino = self.create_at(parent, &name, NewNode::Dir)?;
        Ok(Node {
            mount: parent.mount,
            ino,
        })
    }

    /// [`mkdir`](Self::mkdir), for a caller that wants nothing back.
    pub(crate) fn make_dir(&self, at: At<'_>) -> Result<()> {
        if self.change_in_one_step(at, PathChange::Make(NewNode::Dir))? {
            return Ok(());
        }
        let (parent, name) = self.to_make(at)?;
        self.store(parent.mount)
            .make(parent.ino, &name, NewNode::Dir)
    }

    /// Where `mkdir` or `symlink` makes the path's last name: its directory
    /// and the name. A taken name is `EEXIST`; where the directory's store
    /// takes names in one step, the name is not looked up first, and the
    /// store's own `EEXIST` says so.
    fn to_make(&self, at: At<'_>) -> Result<(Node, String)> {
        let r = resolve_unlooked(self, at.dir, at.path, at.scope)?;
        let Named {
            parent,
            name,
            target,
            ..
        } = named(r, Error::Exists)?;
        if target.is_some() || self.mount_at(parent, &name).is_some() {
            return Err(Error::Exists);
        }
        Ok((parent, name))
    }

    /// `symlink(target, at)`. A confined caller may not create a link with
    /// an absolute target (`EPERM`, as cap-std answers): it could never be
    /// followed inside the confinement, and another view of the same tree
    /// would follow it from its own root.
    pub(crate) fn symlink(&self, target: &str, at: At<'_>) -> Result<()> {
        if target.is_empty() {
            return Err(Error::NotFound);
        }
        // As on Linux: a target no path could hold is refused, which also
        // keeps a guest from storing megabytes in one inode's metadata.
        if target.len() > PATH_MAX {
            return Err(Error::NameTooLong);
        }
        if target.contains('\0') {
            return Err(Error::Invalid);
        }
        if at.scope == Scope::Confined && target.starts_with('/') {
            return Err(Error::Escape);
        }
        if at.path.ends_with('/') {
            // A trailing slash asks for a directory, which a symlink is not.
            let entry = named(at.resolve(self, false)?, Error::Exists)?;
            return Err(if entry.target.is_some() {
                Error::Exists
            } else {
                Error::NotFound
            });
        }
        if self.change_in_one_step(at, PathChange::Make(NewNode::Symlink(target)))? {
            return Ok(());
        }
        let (parent, name) = self.to_make(at)?;
        self.store(parent.mount)
            .make(parent.ino, &name, NewNode::Symlink(target))
    }

    /// `readlink`.
    pub(crate) fn read_link(&self, at: At<'_>) -> Result<String> {
        // A deep path's directory in the store's one step
        // (`readlink_path`); a shorter one costs no more name by name.
        if let Some((dir, path)) = self.plain_path_of(at, ONE_STEP_DIRS + 1)
            && let Some(target) = self.store(dir.mount).readlink_path(dir.ino, path)?
        {
            return Ok(target);
        }
        let r = resolve_unlooked(self, at.dir, at.path, at.scope)?;
        match r.target {
            // A mountpoint is a directory.
            None if r
                .name
                .as_deref()
                .is_some_and(|name| self.mount_at(r.parent, name).is_some()) =>
            {
                Err(Error::Invalid)
            }
            // Missing or not looked up: the store says which.
            None => match &r.name {
                Some(name) => self.store(r.parent.mount).readlink_at(r.parent.ino, name),
                None => Err(Error::NotFound),
            },
            Some((node, FileKind::Symlink)) => self.readlink(node),
            Some(_) => Err(Error::Invalid),
        }
    }

    /// `unlink`: removes a file or symlink.
    pub(crate) fn unlink(&self, at: At<'_>) -> Result<()> {
        if self.change_in_one_step(at, PathChange::Unlink)? {
            return Ok(());
        }
        let r = resolve_unlooked(self, at.dir, at.path, at.scope)?;
        let e = named(r, Error::IsDir)?;
        if self.mount_at(e.parent, &e.name).is_some() {
            return Err(Error::Busy);
        }
        match e.target {
            Some((_, FileKind::Dir)) => Err(Error::IsDir),
            // Missing or not looked up: the store's unlink answers `ENOENT`
            // for a missing name and `EISDIR` for a directory.
            _ => self.store(e.parent.mount).unlink(e.parent.ino, &e.name),
        }
    }

    /// `rmdir`: removes an empty directory.
    pub(crate) fn rmdir(&self, at: At<'_>) -> Result<()> {
        if self.change_in_one_step(at, PathChange::Rmdir)? {
            return Ok(());
        }
        let r = resolve_unlooked(self, at.dir, at.path, at.scope)?;
        let e = named(r, Error::Invalid)?;
        if self.mount_at(e.parent, &e.name).is_some() {
            return Err(Error::Busy);
        }
        match e.target {
            // Missing or not looked up: the store's rmdir answers `ENOENT`
            // for a missing name and `ENOTDIR` for anything else.
            None => self.store(e.parent.mount).rmdir(e.parent.ino, &e.name),
            Some((node, _)) if self.holds_mountpoints(node) => Err(Error::Busy),
            Some((_, FileKind::Dir)) => self.store(e.parent.mount).rmdir(e.parent.ino, &e.name),
            Some(_) => Err(Error::NotDir),
        }
    }

    /// `rename(from, to)`. A mountpoint can be neither moved nor replaced
    /// (`EBUSY`); a directory holding mountpoints can move (they are
    /// attached to it, not to its path) but not be replaced.
    pub(crate) fn rename(&self, from: At<'_>, to: At<'_>) -> Result<()> {
        if self.rename_in_one_step(from, to)? {
            return Ok(());
        }
        // Both paths are resolved before the source's absence counts, as
        // on Linux: `rename("missing", ".")` is EBUSY.
        let (src, dst) = (from.resolve(self, false)?, to.resolve(self, false)?);
        let src = named(src, Error::Busy)?;
        let dst = named(dst, Error::Busy)?;
        let (_, src_kind) = src.target.ok_or(Error::NotFound)?;
        if self.mount_at(src.parent, &src.name).is_some()
            || self.mount_at(dst.parent, &dst.name).is_some()
            || dst
                .target
                .is_some_and(|(node, _)| self.holds_mountpoints(node))
        {
            return Err(Error::Busy);
        }
        if dst.dir_required && src_kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        if src.parent.mount != dst.parent.mount {
            // Two host directories on one host filesystem rename between
            // them as the host does; every other pair is `EXDEV`.
            return self.store(src.parent.mount).rename_to(
                src.parent.ino,
                &src.name,
                self.store(dst.parent.mount),
                dst.parent.ino,
                &dst.name,
            );
        }
        self.store(src.parent.mount)
            .rename(src.parent.ino, &src.name, dst.parent.ino, &dst.name)
    }

    /// `link(from, to)`: a new name for an existing non-directory.
    pub(crate) fn link(&self, from: At<'_>, to: At<'_>) -> Result<()> {
        if self.link_in_one_step(from, to)? {
            return Ok(());
        }
        // As for rename, both paths are resolved (and confined) before the
        // source's absence counts.
        let src = from.resolve(self, false)?;
        let dst = to.resolve(self, false)?;
        let (node, kind) = src.target.ok_or(Error::NotFound)?;
        let dst = named(dst, Error::Exists)?;
        if dst.target.is_some() {
            return Err(Error::Exists);
        }
        if kind == FileKind::Dir {
            return Err(Error::NotPermitted);
        }
        if dst.dir_required {
            return Err(Error::NotFound);
        }
        if node.mount != dst.parent.mount {
            return self.store(node.mount).link_to(
                node.ino,
                self.store(dst.parent.mount),
                dst.parent.ino,
                &dst.name,
            );
        }
        self.store(node.mount)
            .link(node.ino, dst.parent.ino, &dst.name)
            .map(drop)
    }

    /// `utimensat`.
    pub(crate) fn set_times(
        &self,
        at: At<'_>,
        follow: bool,
        atime: Option<TimeSet>,
        mtime: Option<TimeSet>,
    ) -> Result<()> {
        // However short the path, the store's one step (`set_times_path`)
        // costs less than the walk and a call on what it found.
        if let Some((dir, path)) = self.plain_path_of(at, 1)
            && self
                .store(dir.mount)
                .set_times_path(dir.ino, path, follow, atime, mtime)?
        {
            return Ok(());
        }
        let r = at.resolve(self, follow)?;
        let (node, _) = r.target.ok_or(Error::NotFound)?;
        self.setattr(
            node,
            &SetAttr {
                atime,
                mtime,
                ..SetAttr::default()
            },
        )
    }
}
