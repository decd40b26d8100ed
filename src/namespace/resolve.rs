//! The one path resolver. Every path a guest or the host API gives goes
//! through [`resolve`]; nothing else in the crate interprets `/`, `.`, `..`
//! or symlink targets.
//!
//! Confinement works by keeping the chain of directories walked from the
//! starting directory: `..` pops it, and popping the starting directory
//! itself is an escape. Absolute paths and absolute symlink targets are
//! escapes too. This is the same rule as wasi-common's cap-std host `Dir`,
//! which answers `EPERM`.

use super::{Metadata, Namespace, Node};
use crate::error::{Error, Result};
use crate::storage::{FileKind, NAME_MAX, PlainPath, plain_name};
use std::borrow::Cow;

/// The longest path accepted, in bytes, as Linux's `PATH_MAX` (which
/// counts the terminating NUL).
pub(crate) const PATH_MAX: usize = 4095;

/// Symlinks followed while resolving one path before `ELOOP`, as on Linux.
pub(crate) const MAX_SYMLINK_HOPS: u32 = 40;

/// The fewest directories on the way that a store taking runs of names in
/// one step ([`Namespace::one_step`]) is asked to take at once. A host
/// directory's step costs an `openat2` and an `fstat` (and a `close` when
/// it holds the directory already), where it looks up a name in one
/// `fstatat`: two directories are cheaper name by name.
pub(crate) const ONE_STEP_DIRS: usize = 3;

/// How far a path may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A guest's path: relative to its directory and confined to it.
    Confined,
    /// The host API: absolute paths start at the namespace root and `..` at
    /// the root stays there.
    Root,
}

/// Where a path leads.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The directory holding the last component (for a path naming a
    /// directory through `.`, `..` or `/`, that directory itself).
    pub(crate) parent: Node,
    /// The last component; `None` when the path ends in `.`, `..` or `/`
    /// alone.
    pub(crate) name: Option<String>,
    /// The node named, if it exists (a symlink here was not followed).
    pub(crate) target: Option<(Node, FileKind)>,
    /// The target's metadata, when its store gave it with the lookup.
    pub(crate) meta: Option<Metadata>,
    /// The path ended with a slash, so it must name a directory.
    pub(crate) dir_required: bool,
}

impl Resolved {
    fn directory(dir: Node) -> Self {
        Resolved {
            parent: dir,
            name: None,
            target: Some((dir, FileKind::Dir)),
            meta: None,
            dir_required: true,
        }
    }
}

fn push_components<'a>(pending: &mut Vec<Cow<'a, str>>, path: Cow<'a, str>) {
    let start = pending.len();
    match path {
        Cow::Borrowed(p) => {
            pending.extend(p.split('/').filter(|c| !c.is_empty()).map(Cow::Borrowed))
        }
        Cow::Owned(p) => pending.extend(
            p.split('/')
                .filter(|c| !c.is_empty())
                .map(|c| Cow::Owned(c.to_owned())),
        ),
    }
    pending[start..].reverse();
}

/// Resolves `path` from directory `start`.
///
/// Intermediate symlinks are always followed; the last one only when
/// `follow_last` is set or the path ends with a slash. A missing last
/// component is not an error (the caller may create it): it comes back as
/// `target: None`.
pub(crate) fn resolve(
    ns: &Namespace,
    start: Node,
    path: &str,
    follow_last: bool,
    scope: Scope,
) -> Result<Resolved> {
    walk(ns, start, path, follow_last, scope, Last::Look)
}

/// [`resolve`] for a change that the store checks itself (`unlink`): the
/// last name, not followed, is not looked up where its directory's store
/// takes paths in one step, and comes back as `target: None` whether it
/// exists or not. The store's own answer (`ENOENT`, `EISDIR`) then says.
pub(crate) fn resolve_unlooked(
    ns: &Namespace,
    start: Node,
    path: &str,
    scope: Scope,
) -> Result<Resolved> {
    walk(ns, start, path, false, scope, Last::Unlooked)
}

/// What the walk asks of the path's last name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Last {
    /// A lookup, for whatever the caller does with the node next.
    Look,
    /// Its attributes alone, for the metadata of what the path names and
    /// nothing more (`stat`):
    /// [`Storage::peek_attr`](crate::storage::Storage::peek_attr).
    Peek,
    /// Nothing, where its store checks the change itself.
    Unlooked,
}

/// [`resolve`], asking `ask_last` of the last name.
pub(crate) fn walk(
    ns: &Namespace,
    start: Node,
    path: &str,
    follow_last: bool,
    scope: Scope,
    ask_last: Last,
) -> Result<Resolved> {
    if path.is_empty() {
        return Err(Error::NotFound);
    }
    if path.len() > PATH_MAX {
        return Err(Error::NameTooLong);
    }
    if path.contains('\0') {
        return Err(Error::Invalid);
    }
    // Both sized once: growing them component by component cost several
    // reallocations for a path of 16 directories.
    let components = path.bytes().filter(|&b| b == b'/').count() + 1;
    let mut stack = Vec::with_capacity(components + 1);
    stack.push(start);
    if path.starts_with('/') {
        restart_at_root(ns, &mut stack, scope)?;
    }
    let mut dir_required = path.ends_with('/');
    let mut pending = Vec::with_capacity(components);
    push_components(&mut pending, Cow::Borrowed(path));
    let mut hops = 0;
    // Directories reached in one step: where each sits on the stack, and
    // the names it stands for, walked one by one should a `..` need them.
    let mut jumps: Vec<(usize, Vec<Cow<'_, str>>)> = Vec::new();
    let mut jump_tried = false;

    while let Some(component) = pending.pop() {
        let last = pending.is_empty();
        let cur = *stack.last().ok_or(Error::NotFound)?;
        match &*component {
            "." => {}
            ".." => {
                unfold_jump(ns, &mut stack, &mut jumps)?;
                if stack.len() > 1 {
                    stack.pop();
                } else if scope == Scope::Confined {
                    return Err(Error::Escape);
                }
            }
            name => {
                if name.len() > NAME_MAX {
                    return Err(Error::NameTooLong);
                }
                if !jump_tried && pending.len() >= ONE_STEP_DIRS && ns.one_step(cur) {
                    // Only plain names ahead: all but the last are
                    // directories on the way (this name and the
                    // `pending.len() - 1` after it), which a store may take
                    // in one step. Tried once per run of names.
                    jump_tried = true;
                    if let Some(dir) = jump(ns, cur, name, &pending) {
                        let mut names = vec![component.clone()];
                        names.extend(pending.drain(1..).rev());
                        stack.push(dir);
                        jumps.push((stack.len() - 1, names));
                        continue;
                    }
                }
                let unlooked =
                    last && ask_last == Last::Unlooked && !dir_required && ns.one_step(cur);
                let found = if unlooked {
                    Err(Error::NotFound)
                } else {
                    ns.lookup_attr(cur, name, last && ask_last == Last::Peek)
                };
                let (child, kind, meta) = match found {
                    Ok(found) => found,
                    // Missing, or not looked up: the caller creates it, or
                    // its store says.
                    Err(Error::NotFound) if last => {
                        return Ok(Resolved {
                            parent: cur,
                            name: Some(name.to_owned()),
                            target: None,
                            meta: None,
                            dir_required,
                        });
                    }
                    Err(e) => return Err(e),
                };
                match kind {
                    FileKind::Symlink if !last || follow_last || dir_required => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(Error::Loop);
                        }
                        let target = ns.readlink(child)?;
                        if target.is_empty() {
                            return Err(Error::NotFound);
                        }
                        if target.starts_with('/') {
                            restart_at_root(ns, &mut stack, scope)?;
                            jumps.clear();
                        }
                        jump_tried = false;
                        if last && target.ends_with('/') {
                            dir_required = true;
                        }
                        push_components(&mut pending, Cow::Owned(target));
                        continue;
                    }
                    FileKind::Dir if !last => stack.push(child),
                    _ if last => {
                        if dir_required && kind != FileKind::Dir {
                            return Err(Error::NotDir);
                        }
                        return Ok(Resolved {
                            parent: cur,
                            name: Some(name.to_owned()),
                            target: Some((child, kind)),
                            meta,
                            dir_required,
                        });
                    }
                    _ => return Err(Error::NotDir),
                }
            }
        }
    }
    // The path ended in `.`, `..` or `/`, or a symlink to one of those.
    let dir = *stack.last().ok_or(Error::NotFound)?;
    Ok(Resolved::directory(dir))
}

/// Where `path` starts and the rest of it, when that is nothing but plain
/// names (no `.`, `..`, empty component or trailing slash) below a
/// directory whose store takes such a run in one step and holds no mount:
/// a store can then open it beneath that directory at once. `None` for any
/// other path, which [`resolve`] takes name by name.
pub(crate) fn plain_path<'a>(
    ns: &Namespace,
    start: Node,
    path: &'a str,
    scope: Scope,
) -> Option<(Node, PlainPath<'a>)> {
    // The host API's absolute paths start at the root.
    let (dir, path) = match path.strip_prefix('/') {
        Some(rest) if scope == Scope::Root => (ns.root(), rest),
        _ => (start, path),
    };
    if path.len() > PATH_MAX || !ns.one_step(dir) {
        return None;
    }
    Some((dir, PlainPath::new(path)?))
}

/// The directory `names` lead to from `dir` in one step: `name`, then
/// every component of `pending` but the last (the path's last name), when
/// all are plain names and the store of `dir` can take them at once.
fn jump(ns: &Namespace, dir: Node, name: &str, pending: &[Cow<'_, str>]) -> Option<Node> {
    if !pending.iter().all(|c| plain_name(c.as_bytes())) {
        return None;
    }
    let mut names: Vec<&str> = Vec::with_capacity(pending.len());
    names.push(name);
    names.extend(pending.iter().skip(1).rev().map(|c| &**c));
    ns.lookup_dirs(dir, &names)
}

/// Before a `..` pops a directory reached in one step, puts the
/// directories it stands for on the stack, looked up one by one as a walk
/// would have, so that `..` leads to its true parent.
fn unfold_jump(
    ns: &Namespace,
    stack: &mut Vec<Node>,
    jumps: &mut Vec<(usize, Vec<Cow<'_, str>>)>,
) -> Result<()> {
    let Some((at, _)) = jumps.last() else {
        return Ok(());
    };
    if *at + 1 != stack.len() {
        return Ok(());
    }
    let Some((at, names)) = jumps.pop() else {
        return Ok(());
    };
    stack.truncate(at);
    for name in names {
        let cur = *stack.last().ok_or(Error::NotFound)?;
        match ns.lookup(cur, &name)? {
            (child, FileKind::Dir) => stack.push(child),
            // Changed on the host since: no longer the way it was.
            _ => return Err(Error::NotFound),
        }
    }
    Ok(())
}

fn restart_at_root(ns: &Namespace, stack: &mut Vec<Node>, scope: Scope) -> Result<()> {
    match scope {
        Scope::Confined => Err(Error::Escape),
        Scope::Root => {
            stack.clear();
            stack.push(ns.root());
            Ok(())
        }
    }
}
