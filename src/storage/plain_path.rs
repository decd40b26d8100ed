//! [`PlainPath`]: a relative path the resolver checked to be nothing but
//! plain names, which a store may take in one step.
//!
//! This module owns the check; it knows nothing of stores or the tree.

use super::NAME_MAX;

/// A relative path of one or more plain names joined by single slashes:
/// no name is empty, `.` or `..`, longer than [`NAME_MAX`] bytes, or holds
/// a NUL, and the path neither starts nor ends with `/`.
///
/// Only this crate makes one, from a path it checked; a store given one
/// (through [`Storage::open_path`](super::Storage::open_path)) can hand the
/// whole path to a call that resolves beneath a directory (`openat2` with
/// `RESOLVE_BENEATH`) knowing it cannot climb out through `..`, or walk it
/// name by name with [`names`](Self::names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainPath<'a> {
    path: &'a str,
    names: usize,
}

impl<'a> PlainPath<'a> {
    /// `path` as a plain path, or `None` when it is anything else. One pass
    /// over the bytes, building nothing.
    pub(crate) fn new(path: &'a str) -> Option<Self> {
        let bytes = path.as_bytes();
        let mut names = 1;
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'/' if plain_name(&bytes[start..i]) => {
                    names += 1;
                    start = i + 1;
                }
                b'/' | 0 => return None,
                _ => {}
            }
        }
        plain_name(&bytes[start..]).then_some(PlainPath { path, names })
    }

    /// The path, names joined by `/`.
    pub fn as_str(&self) -> &'a str {
        self.path
    }

    /// The names, first to last.
    pub fn names(&self) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
        self.path.split('/')
    }

    /// How many names the path has (at least one).
    pub fn len(&self) -> usize {
        self.names
    }

    /// Always `false`: a plain path has at least one name.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A name that stands for itself: not empty, `.` or `..`, and at most
/// [`NAME_MAX`] bytes (the caller rules out `/` and NUL).
pub(crate) fn plain_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && name.len() <= NAME_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runs_of_plain_names_pass() {
        let ok = PlainPath::new("a/b.c/..d/f").unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(ok.names().collect::<Vec<_>>(), ["a", "b.c", "..d", "f"]);
        assert_eq!(ok.as_str(), "a/b.c/..d/f");
        assert_eq!(PlainPath::new("f").map(|p| p.len()), Some(1));
        let long = "n".repeat(NAME_MAX);
        assert!(PlainPath::new(&format!("a/{long}")).is_some());
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            ".",
            "a/./b",
            "..",
            "a/../b",
            "a/..",
            "a\0b",
            &format!("a/{long}n"),
        ] {
            assert_eq!(PlainPath::new(bad), None, "{bad:?}");
        }
    }
}
