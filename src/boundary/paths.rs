//! `PathTree`: the directories a walk has reached, each stored as its
//! parent and its own name.
//!
//! A walk that kept each pending directory's full path would hold memory
//! in the sum of path lengths: quadratic in depth, so a chain of 100,000
//! directories with siblings at the bottom (cheap for a guest to make)
//! would cost gigabytes that no budget charged. Stored this way, a walk
//! holds memory in proportion to the tree, and builds a full path only
//! while it uses it. Owns that representation and nothing else.

/// A directory of the walk; [`PathTree::ROOT`] is the walk's start.
pub(crate) type DirId = usize;

/// The directories of one walk.
pub(crate) struct PathTree {
    /// Parent, name and depth of each directory; the root's name is
    /// empty and its depth 0.
    dirs: Vec<(DirId, Box<str>, usize)>,
    /// The last path built, and the directories along it with the length
    /// of the path up to each: a depth-first walk's next directory is
    /// nearly always below it, so building a path costs its new names,
    /// not its depth.
    last: String,
    last_dirs: Vec<(DirId, usize)>,
}

impl PathTree {
    /// The directory the walk starts in.
    pub(crate) const ROOT: DirId = 0;

    pub(crate) fn new() -> Self {
        PathTree {
            dirs: vec![(Self::ROOT, "".into(), 0)],
            last: String::new(),
            last_dirs: Vec::new(),
        }
    }

    /// Records the directory `name` in `parent`.
    pub(crate) fn push(&mut self, parent: DirId, name: &str) -> DirId {
        let depth = self.dirs.get(parent).map_or(0, |&(_, _, d)| d) + 1;
        self.dirs.push((parent, name.into(), depth));
        self.dirs.len() - 1
    }

    /// The names leading from the root to `dir`, root first.
    pub(crate) fn components(&self, mut dir: DirId) -> Vec<&str> {
        let mut names = Vec::new();
        while dir != Self::ROOT {
            let Some((parent, name, _)) = self.dirs.get(dir) else {
                break;
            };
            names.push(&**name);
            dir = *parent;
        }
        names.reverse();
        names
    }

    /// `dir`'s path, `/`-joined (empty for the root).
    pub(crate) fn path(&mut self, dir: DirId) -> &str {
        // Climb until a directory on the last path, then extend from there.
        let mut new = Vec::new();
        let mut at = dir;
        let kept = loop {
            if at == Self::ROOT {
                break 0;
            }
            let Some(&(parent, _, depth)) = self.dirs.get(at) else {
                break 0;
            };
            // The last path holds the directory at depth k in slot k - 1.
            if self.last_dirs.get(depth - 1).is_some_and(|&(d, _)| d == at) {
                break depth;
            }
            new.push(at);
            at = parent;
        };
        self.last_dirs.truncate(kept);
        self.last
            .truncate(self.last_dirs.last().map_or(0, |&(_, len)| len));
        for &d in new.iter().rev() {
            let name = self.dirs.get(d).map_or("", |(_, n, _)| n);
            if !self.last.is_empty() {
                self.last.push('/');
            }
            self.last.push_str(name);
            self.last_dirs.push((d, self.last.len()));
        }
        &self.last
    }
}

/// A walk-relative path as messages show it: `.` for the walk's start.
pub(crate) fn shown(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}

pub(crate) use crate::storage::join_path as join;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_rebuilt_from_parents() {
        let mut tree = PathTree::new();
        let a = tree.push(PathTree::ROOT, "a");
        let b = tree.push(a, "b");
        let c = tree.push(PathTree::ROOT, "c");
        assert_eq!(tree.path(PathTree::ROOT), "");
        assert_eq!(tree.path(b), "a/b");
        assert_eq!(tree.path(a), "a");
        let d = tree.push(b, "d");
        assert_eq!(tree.path(d), "a/b/d");
        assert_eq!(tree.path(c), "c");
        assert_eq!(tree.path(b), "a/b");
        assert_eq!(tree.components(c), ["c"]);
        assert_eq!(join(tree.path(b), "f"), "a/b/f");
        assert_eq!(join("", "f"), "f");
    }
}
