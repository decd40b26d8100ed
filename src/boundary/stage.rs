//! `Stage`: everything that flows into the tree from outside (a tar
//! archive, a host directory) is built here first and put in place only
//! when all of it is there.
//!
//! A stage is a hidden directory made inside the target directory, so it
//! lives on the target's own store: data is written once, charged to that
//! store's budget as it is written, and moved into place by renames. It
//! works on nodes and single names, never on paths: nothing it does follows
//! a symlink, whether the source planted it or the tree already held it,
//! and nothing crosses into another mount. A commit that fails half way is
//! undone from a journal, so a load is all or nothing.
//!
//! This module owns staging, commit and rollback; what is staged, and in
//! what order, belongs to the callers (`tar_in`, `host_copy`).

use super::paths::shown;
use crate::error::{Error, Result};
use crate::namespace::ops::{At, OpenOptions};
use crate::namespace::resolve::Scope;
use crate::namespace::{Handle, Namespace, Node};
use crate::storage::{FileKind, SetAttr, TimeSet, WritePos};
use crate::vfs::Vfs;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::SystemTime;

/// Attributes of an entry to stage; `None` keeps the store's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EntryAttrs {
    pub(crate) mode: Option<u32>,
    pub(crate) mtime: Option<SystemTime>,
}

/// Where the bytes of a staged file go, at any offsets: what is never
/// written stays a hole.
pub(crate) struct FileSink<'a> {
    ns: &'a Namespace,
    node: Node,
}

impl FileSink<'_> {
    /// Writes `data` at `offset`, charged to the target store's budget.
    pub(crate) fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (n, _) =
                self.ns
                    .write(self.node, WritePos::At(at), &[IoSlice::new(&data[done..])])?;
            if n == 0 {
                return Err(Error::NoSpace);
            }
            done += n;
        }
        Ok(())
    }
}

/// One change made to the target while committing, with what undoes it.
enum Step {
    /// `(dir, name)` of the stage was moved to `(dir, name)` of the target.
    MovedIn {
        from: (Node, String),
        to: (Node, String),
    },
    /// A target entry was moved aside into the stage's trash.
    SetAside {
        from: (Node, String),
        to: (Node, String),
    },
    /// A target directory's attributes before the commit touched it.
    Attrs { node: Node, before: SetAttr },
    /// The target's entries were moved into the trash under their own
    /// names (a replacing load), as many as got there.
    Emptied,
}

/// A staging directory inside a target directory. Dropping it without
/// [`Stage::commit`] removes everything staged and leaves the target as it
/// was.
pub(crate) struct Stage {
    ns: Arc<Namespace>,
    /// `Root` lets staged symlinks hold absolute targets, as the host API
    /// may; a confined view refuses them, as a guest's preopen does.
    scope: Scope,
    target: Node,
    _target_open: Handle,
    /// The target's attributes before anything was staged.
    target_before: SetAttr,
    /// Directories made on the way to the target, to remove on failure.
    made_for_target: Vec<String>,
    vfs: Vfs,
    /// The name of the hidden directory in the target.
    root_name: String,
    /// Staged entries live here, with the same names as in the target.
    data: Node,
    /// Target entries replaced by the commit are moved here until it ends.
    trash: Node,
    /// Attributes of directories named by the source, applied once their
    /// contents are in place, and the target's own (from a `./` entry).
    /// A later entry for the same directory replaces an earlier one's, so
    /// an archive repeating a directory entry does not make this grow.
    dir_attrs: HashMap<Node, EntryAttrs>,
    target_attrs: Option<EntryAttrs>,
    /// The staged directories on the way to the last entry, by name.
    last_parents: Vec<(String, Node)>,
    /// The commit replaces the target's contents rather than merging.
    replace: bool,
    done: bool,
}

fn one(dir: Node, name: &str, scope: Scope) -> At<'_> {
    At {
        dir,
        path: name,
        scope,
    }
}

/// The attributes a commit may change on a directory, to restore them.
fn restorable(ns: &Namespace, node: Node) -> Result<SetAttr> {
    let m = ns.metadata(node)?;
    Ok(SetAttr {
        size: None,
        atime: Some(TimeSet::At(m.atime)),
        mtime: Some(TimeSet::At(m.mtime)),
        mode: Some(m.mode),
    })
}

fn display(rel: &[&str]) -> String {
    shown(&rel.join("/"))
}

impl Stage {
    /// A stage for loading into the directory `vfs_path` of `vfs` (created
    /// if missing, and removed again if the load fails).
    pub(crate) fn new(vfs: &Vfs, vfs_path: &str) -> Result<Stage> {
        let made_for_target = vfs.create_dir_all_recorded(vfs_path)?;
        let undo_made = |e: Error| {
            for path in made_for_target.iter().rev() {
                let _ = vfs.remove(path);
            }
            e
        };
        let (target, kind) = vfs.ns().find(vfs.at(vfs_path)).map_err(undo_made)?;
        if kind != FileKind::Dir {
            return Err(undo_made(Error::NotDir));
        }
        let ns = vfs.ns().clone();
        let target_open = ns.open_handle(target).map_err(undo_made)?;
        let target_before = restorable(&ns, target).map_err(undo_made)?;
        let scope = vfs.scope();
        let (root, root_name) =
            make_hidden_dir(&ns, target, scope).map_err(|e| undo_made(e.at(vfs_path)))?;
        let mut stage = Stage {
            ns,
            scope,
            target,
            _target_open: target_open,
            target_before,
            made_for_target,
            vfs: vfs.clone(),
            root_name,
            data: root,
            trash: root,
            dir_attrs: HashMap::new(),
            target_attrs: None,
            last_parents: Vec::new(),
            replace: false,
            done: false,
        };
        // From here on, dropping the stage cleans up.
        stage.data = stage.ns.mkdir(one(root, "d", scope))?;
        stage.trash = stage.ns.mkdir(one(root, "t", scope))?;
        Ok(stage)
    }

    /// The staged directory that will hold `rel`'s last component, made
    /// (as `mkdir -p` would) where missing. A symlink or a file on the
    /// way is refused: nothing is ever written through one. So is a path
    /// that reaches another mount below the target, named now, while the
    /// entry is known (the commit checks again).
    fn parent_of(&mut self, rel: &[&str]) -> Result<Node> {
        self.check_own_mount(rel)?;
        let Some((_, parents)) = rel.split_last() else {
            return Ok(self.data);
        };
        // Archives list parents before children: start where the last
        // entry's parents and this one's part.
        let kept = self
            .last_parents
            .iter()
            .zip(parents)
            .take_while(|((had, _), name)| had == *name)
            .count();
        self.last_parents.truncate(kept);
        let mut dir = self
            .last_parents
            .last()
            .map_or(self.data, |&(_, node)| node);
        for (i, name) in parents.iter().enumerate().skip(kept) {
            let so_far = || display(&parents[..=i]);
            dir = match self.ns.lookup(dir, name) {
                Ok((node, FileKind::Dir)) => node,
                Ok((_, FileKind::Symlink)) => {
                    return Err(Error::Archive(format!(
                        "{}: its parent {} is a symlink, and nothing is written through one",
                        display(rel),
                        so_far()
                    )));
                }
                Ok((_, FileKind::File)) => return Err(Error::NotDir.at(so_far())),
                Err(Error::NotFound) => self
                    .ns
                    .mkdir(one(dir, name, self.scope))
                    .map_err(|e| e.at(so_far()))?,
                Err(e) => return Err(e.at(so_far())),
            };
            self.last_parents.push(((*name).to_owned(), dir));
        }
        Ok(dir)
    }

    /// Refuses `rel` if it names or lies below a mountpoint in the target.
    /// The walk stops where the target has no directory: no mountpoint can
    /// lie beyond.
    fn check_own_mount(&self, rel: &[&str]) -> Result<()> {
        if !self.ns.has_mountpoints() {
            return Ok(()); // the common tree of one store
        }
        let mut dir = self.target;
        for name in rel {
            if self.ns.mount_at(dir, name).is_some() {
                return Err(Error::OtherMount(display(rel)));
            }
            match self.ns.lookup(dir, name) {
                Ok((node, FileKind::Dir)) => dir = node,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Frees `name` in the staged `dir` for a new entry: a later entry of
    /// the same name replaces an earlier one, never writes through it. A
    /// directory is kept for a directory entry (returned), removed for
    /// anything else if empty, and refused otherwise.
    fn make_room(
        &mut self,
        dir: Node,
        name: &str,
        for_dir: bool,
        rel: &[&str],
    ) -> Result<Option<Node>> {
        match self.ns.lookup(dir, name) {
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e.at(display(rel))),
            Ok((node, FileKind::Dir)) if for_dir => Ok(Some(node)),
            Ok((_, FileKind::Dir)) => {
                self.last_parents.clear();
                self.ns
                    .rmdir(one(dir, name, self.scope))
                    .map(|()| None)
                    .map_err(|e| e.at(display(rel)))
            }
            Ok(_) => self
                .ns
                .unlink(one(dir, name, self.scope))
                .map(|()| None)
                .map_err(|e| e.at(display(rel))),
        }
    }

    /// Stages the directory `rel` (the target itself when `rel` is empty).
    pub(crate) fn dir(&mut self, rel: &[&str], attrs: EntryAttrs) -> Result<()> {
        let Some(name) = rel.last() else {
            self.target_attrs = Some(attrs);
            return Ok(());
        };
        let parent = self.parent_of(rel)?;
        let node = match self.make_room(parent, name, true, rel)? {
            Some(node) => node,
            None => self
                .ns
                .mkdir(one(parent, name, self.scope))
                .map_err(|e| e.at(display(rel)))?,
        };
        self.dir_attrs.insert(node, attrs);
        Ok(())
    }

    /// Stages the regular file `rel` of `size` bytes, whose data `fill`
    /// writes; what it leaves unwritten below `size` is a hole.
    pub(crate) fn file(
        &mut self,
        rel: &[&str],
        attrs: EntryAttrs,
        size: u64,
        fill: impl FnOnce(&mut FileSink<'_>) -> Result<()>,
    ) -> Result<()> {
        let name = self.named(rel)?;
        let parent = self.parent_of(rel)?;
        self.make_room(parent, name, false, rel)?;
        let at = |e: Error| e.at(display(rel));
        let options = OpenOptions {
            create: true,
            exclusive: true,
            write: true,
            ..OpenOptions::default()
        };
        let slot = self.ns.reserve_handle().map_err(at)?;
        let (node, _) = self
            .ns
            .open(one(parent, name, self.scope), options)
            .map_err(at)?;
        let _open = slot.open(node, true).map_err(at)?;
        fill(&mut FileSink { ns: &self.ns, node })?;
        let set = SetAttr {
            size: Some(size),
            atime: None,
            mtime: attrs.mtime.map(TimeSet::At),
            mode: attrs.mode,
        };
        self.ns.setattr(node, &set).map_err(at)
    }

    /// Stages the symlink `rel` to `target`, stored verbatim and never
    /// followed.
    pub(crate) fn symlink(&mut self, rel: &[&str], target: &str, attrs: EntryAttrs) -> Result<()> {
        let name = self.named(rel)?;
        let parent = self.parent_of(rel)?;
        self.make_room(parent, name, false, rel)?;
        let at = |e: Error| e.at(display(rel));
        self.ns
            .symlink(target, one(parent, name, self.scope))
            .map_err(at)?;
        if let Some(mtime) = attrs.mtime {
            let (node, _) = self.ns.lookup(parent, name).map_err(at)?;
            let set = SetAttr {
                mtime: Some(TimeSet::At(mtime)),
                ..SetAttr::default()
            };
            self.ns.setattr(node, &set).map_err(at)?;
        }
        Ok(())
    }

    /// Stages `rel` as another name of `original`, which must be an
    /// earlier staged non-directory: a link can reach nothing else.
    pub(crate) fn hard_link(&mut self, rel: &[&str], original: &[&str]) -> Result<()> {
        let name = self.named(rel)?;
        let refuse = |why: &str| {
            Error::Archive(format!(
                "{}: hard link to {}, {why}",
                display(rel),
                display(original)
            ))
        };
        let Some((original_name, original_parents)) = original.split_last() else {
            return Err(refuse("which is the directory itself"));
        };
        let mut dir = self.data;
        for part in original_parents {
            dir = match self.ns.lookup(dir, part) {
                Ok((node, FileKind::Dir)) => node,
                _ => return Err(refuse("which is not an earlier entry")),
            };
        }
        match self.ns.lookup(dir, original_name) {
            Ok((_, FileKind::Dir)) => return Err(refuse("which is a directory")),
            Ok(_) => {}
            Err(_) => return Err(refuse("which is not an earlier entry")),
        }
        let parent = self.parent_of(rel)?;
        if (dir, *original_name) == (parent, name) {
            return Ok(()); // a link to itself: already there
        }
        self.make_room(parent, name, false, rel)?;
        self.ns
            .link(
                one(dir, original_name, self.scope),
                one(parent, name, self.scope),
            )
            .map_err(|e| e.at(display(rel)))
    }

    fn named<'r>(&self, rel: &[&'r str]) -> Result<&'r str> {
        rel.last().copied().ok_or_else(|| {
            Error::Archive(
                ". names the directory loaded into, which only a directory entry may".into(),
            )
        })
    }

    /// Moves everything staged into the target and applies the attributes
    /// of the directories named. On failure every change is undone and the
    /// target is as before.
    pub(crate) fn commit(mut self) -> Result<()> {
        let mut journal = Vec::new();
        let mut merged = HashMap::new();
        if let Err(e) = self.move_in(&mut journal, &mut merged) {
            self.undo(journal);
            return Err(e);
        }
        // Setting a directory's times touches no other directory, so the
        // order does not matter.
        for (node, attrs) in &self.dir_attrs {
            let node = merged.get(node).copied().unwrap_or(*node);
            self.apply(node, *attrs);
        }
        self.done = true;
        self.clean_up();
        if let Some(attrs) = self.target_attrs {
            self.apply(self.target, attrs);
        }
        Ok(())
    }

    fn apply(&self, node: Node, attrs: EntryAttrs) {
        let set = SetAttr {
            mode: attrs.mode,
            mtime: attrs.mtime.map(TimeSet::At),
            ..SetAttr::default()
        };
        // Only times and permission bits: the data is in place already.
        if let Err(e) = self.ns.setattr(node, &set) {
            tracing::debug!(error = %e, "attributes of a loaded directory not set");
        }
    }

    /// Makes the commit replace what the target holds instead of merging
    /// with it: everything there goes, in the same all-or-nothing commit.
    pub(crate) fn replacing(mut self) -> Self {
        self.replace = true;
        self
    }

    fn move_in(&self, journal: &mut Vec<Step>, merged: &mut HashMap<Node, Node>) -> Result<()> {
        journal.push(Step::Attrs {
            node: self.target,
            before: self.target_before.clone(),
        });
        let mut set_aside = 0u64;
        if self.replace {
            // A mount below the target would be moved away with the old
            // contents and could not be removed with them.
            if let Some(path) = self.ns.mount_below(self.target)? {
                return Err(Error::OtherMount(path));
            }
            // Into the trash under their own names, a page at a time from
            // the start as each page moves out: neither the listing nor the
            // journal holds a directory of a million entries, and undoing
            // moves back whatever the trash holds.
            journal.push(Step::Emptied);
            loop {
                let page = self.list_page(self.target, 257)?;
                let names: Vec<String> = page
                    .into_iter()
                    .map(|(name, _)| name)
                    .filter(|name| *name != self.root_name)
                    .collect();
                if names.is_empty() {
                    break;
                }
                for name in names {
                    self.ns
                        .rename(
                            one(self.target, &name, self.scope),
                            one(self.trash, &name, self.scope),
                        )
                        .map_err(|e| e.at(name.clone()))?;
                }
            }
        }
        let mut work = vec![(self.data, self.target, String::new())];
        while let Some((from_dir, to_dir, rel_dir)) = work.pop() {
            for (name, kind) in self.list(from_dir)? {
                let rel = if rel_dir.is_empty() {
                    name.clone()
                } else {
                    format!("{rel_dir}/{name}")
                };
                if self.ns.mount_at(to_dir, &name).is_some() {
                    return Err(Error::OtherMount(rel));
                }
                let at = |e: Error| e.at(rel.clone());
                let existing = match self.ns.lookup(to_dir, &name) {
                    Ok(found) => Some(found),
                    Err(Error::NotFound) => None,
                    Err(e) => return Err(at(e)),
                };
                match (kind, existing) {
                    (FileKind::Dir, Some((node, FileKind::Dir))) => {
                        journal.push(Step::Attrs {
                            node,
                            before: restorable(&self.ns, node).map_err(at)?,
                        });
                        let (staged, _) = self.ns.lookup(from_dir, &name).map_err(at)?;
                        merged.insert(staged, node);
                        work.push((staged, node, rel));
                        continue;
                    }
                    (FileKind::Dir, Some((_, existing))) if !self.named_dir(from_dir, &name)? => {
                        // A parent made for deeper entries, where the tree
                        // has a symlink or file: the entries would go
                        // through it.
                        let what = if existing == FileKind::Symlink {
                            "a symlink"
                        } else {
                            "a file"
                        };
                        return Err(Error::Archive(format!(
                            "{rel}: the tree has {what} there, and nothing is written through one"
                        )));
                    }
                    (_, Some((node, FileKind::Dir))) => {
                        if !self.list_page(node, 1).map_err(at)?.is_empty() {
                            return Err(Error::Archive(format!(
                                "{rel}: a non-directory entry cannot replace the non-empty directory there"
                            )));
                        }
                        self.set_aside(to_dir, &name, &mut set_aside, journal)
                            .map_err(at)?;
                    }
                    (_, Some(_)) => self
                        .set_aside(to_dir, &name, &mut set_aside, journal)
                        .map_err(at)?,
                    (_, None) => {}
                }
                self.ns
                    .rename(
                        one(from_dir, &name, self.scope),
                        one(to_dir, &name, self.scope),
                    )
                    .map_err(at)?;
                journal.push(Step::MovedIn {
                    from: (from_dir, name.clone()),
                    to: (to_dir, name),
                });
            }
        }
        Ok(())
    }

    /// True when the staged directory `dir/name` was named by the source
    /// itself, not made as a parent of deeper entries.
    fn named_dir(&self, dir: Node, name: &str) -> Result<bool> {
        let (node, _) = self.ns.lookup(dir, name)?;
        Ok(self.dir_attrs.contains_key(&node))
    }

    fn set_aside(
        &self,
        dir: Node,
        name: &str,
        count: &mut u64,
        journal: &mut Vec<Step>,
    ) -> Result<()> {
        *count += 1;
        let aside = count.to_string();
        self.ns.rename(
            one(dir, name, self.scope),
            one(self.trash, &aside, self.scope),
        )?;
        journal.push(Step::SetAside {
            from: (dir, name.to_owned()),
            to: (self.trash, aside),
        });
        Ok(())
    }

    fn undo(&mut self, journal: Vec<Step>) {
        for step in journal.into_iter().rev() {
            let result = match &step {
                Step::MovedIn { from, to } | Step::SetAside { from, to } => self.ns.rename(
                    one(to.0, &to.1, self.scope),
                    one(from.0, &from.1, self.scope),
                ),
                Step::Attrs { node, before } => self.ns.setattr(*node, before),
                Step::Emptied => self.refill(),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "a failed load could not undo one of its changes");
            }
        }
    }

    /// Moves every entry of the trash back into the target under its own
    /// name, undoing [`Step::Emptied`].
    fn refill(&self) -> Result<()> {
        loop {
            let page = self.list_page(self.trash, 256)?;
            if page.is_empty() {
                return Ok(());
            }
            for (name, _) in page {
                self.ns.rename(
                    one(self.trash, &name, self.scope),
                    one(self.target, &name, self.scope),
                )?;
            }
        }
    }

    /// Up to `max` entries of a directory with no mountpoints in it.
    fn list_page(&self, dir: Node, max: usize) -> Result<Vec<(String, FileKind)>> {
        Ok(self
            .ns
            .readdir(dir, 2, max)?
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect())
    }

    /// Every entry of a staged directory.
    fn list(&self, dir: Node) -> Result<Vec<(String, FileKind)>> {
        let mut out = Vec::new();
        let mut cookie = 2;
        loop {
            let batch = self.ns.readdir(dir, cookie, 256)?;
            let Some(last) = batch.last() else {
                return Ok(out);
            };
            cookie = last.next;
            out.extend(batch.into_iter().map(|e| (e.name, e.kind)));
        }
    }

    /// Removes the stage, and on failure what was made for the target.
    fn clean_up(&mut self) {
        if let Err(e) = remove_tree(&self.ns, self.target, &self.root_name, self.scope) {
            tracing::warn!(error = %e, dir = %self.root_name, "staging directory not removed");
        }
        if !self.done {
            let _ = self.ns.setattr(self.target, &self.target_before);
            for path in self.made_for_target.iter().rev() {
                let _ = self.vfs.remove(path);
            }
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.done {
            self.clean_up();
        }
    }
}

/// Makes a directory with a fresh, unguessable name in `dir`.
fn make_hidden_dir(ns: &Namespace, dir: Node, scope: Scope) -> Result<(Node, String)> {
    let state = std::collections::hash_map::RandomState::new();
    for attempt in 0u32..16 {
        let name = format!(".wasi-common-vfs-stage.{:016x}", state.hash_one(attempt));
        match ns.mkdir(one(dir, &name, scope)) {
            Ok(node) => return Ok((node, name)),
            Err(Error::Exists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Exists)
}

/// Removes `dir/name` and everything below it, depth first without
/// recursion, so no tree is too deep for it. Never follows a symlink and
/// never enters another mount.
pub(crate) fn remove_tree(ns: &Namespace, dir: Node, name: &str, scope: Scope) -> Result<()> {
    let (top, kind) = ns.lookup(dir, name)?;
    if kind != FileKind::Dir {
        return ns.unlink(one(dir, name, scope));
    }
    let mut stack = vec![(dir, name.to_owned(), top)];
    while let Some((parent, own_name, node)) = stack.last().cloned() {
        let next = ns.readdir(node, 2, 1)?.into_iter().next();
        match next {
            None => {
                ns.rmdir(one(parent, &own_name, scope))?;
                stack.pop();
            }
            Some(e) if ns.mount_at(node, &e.name).is_some() => {
                return Err(Error::Busy.at(e.name));
            }
            Some(e) if e.kind == FileKind::Dir => {
                let (child, _) = ns.lookup(node, &e.name)?;
                stack.push((node, e.name, child));
            }
            Some(e) => ns.unlink(one(node, &e.name, scope))?,
        }
    }
    Ok(())
}
