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
use crate::storage::{FileKind, NAME_MAX};
use std::borrow::Cow;

/// The longest path accepted, in bytes, as Linux's `PATH_MAX` (which
/// counts the terminating NUL).
pub(crate) const PATH_MAX: usize = 4095;

/// Symlinks followed while resolving one path before `ELOOP`, as on Linux.
pub(crate) const MAX_SYMLINK_HOPS: u32 = 40;

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

    while let Some(component) = pending.pop() {
        let last = pending.is_empty();
        let cur = *stack.last().ok_or(Error::NotFound)?;
        match &*component {
            "." => {}
            ".." => {
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
                let (child, kind, meta) = match ns.lookup_attr(cur, name) {
                    Ok(found) => found,
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
                        }
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
