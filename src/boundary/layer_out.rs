//! `Overlay::export_changes`: what a guest changed through an overlay, out
//! as one image layer (a tar archive in the OCI layer format).
//!
//! The archive holds every added or modified entry as it now is, the
//! directories on the way to them, and for every deleted path an empty
//! whiteout file `.wh.NAME` beside it, so that applying the layer over the
//! overlay's lower tree gives the merged tree. Entries are written through
//! the same saver as `Vfs::save_tar` (holes, hard links, long names, exact
//! times), reading the overlay's merged view and never writing to it.

use super::paths::{DirId, PathTree, join};
use super::tar_out::Saver;
use crate::error::{Error, Result};
use crate::namespace::{Namespace, Node};
use crate::storage::Storage;
use crate::storage::overlay::Overlay;
use std::io::Write;
use std::sync::Arc;

/// What an OCI layer's reader takes a name starting with for a deletion.
const WHITEOUT: &str = ".wh.";

/// One entry of the layer, by the names leading to it.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    names: Vec<String>,
    /// A whiteout marker rather than the merged tree's entry.
    marker: bool,
}

impl Overlay {
    /// Writes what changed through the overlay to `writer` as a tar archive
    /// in the OCI image layer format: each added or modified path as it now
    /// is (a directory added with everything in it), the directories on the
    /// way to them, and an empty `.wh.NAME` file for each deleted path
    /// (a path replaced by something new has both). Extracting it with an
    /// OCI-aware tool over a copy of the lower layer gives the merged tree;
    /// with [`Overlay::reset`], a sandbox keeps a guest's work as a layer
    /// and starts the next guest from the lower layer again.
    ///
    /// Fails as [`Overlay::changes`] does when the changed paths would not
    /// fit in [`CHANGES_MAX_BYTES`](crate::storage::overlay::CHANGES_MAX_BYTES).
    /// A changed name that starts with `.wh.` cannot be told from a
    /// whiteout in this format, so the export fails naming it, rather than
    /// let a guest's file delete something when the layer is applied. The
    /// overlay is read, never changed; an archive written while a guest
    /// is still changing the overlay may catch it midway.
    ///
    /// ```
    /// use wasi_common_vfs::{MemFs, Overlay, Storage};
    /// use wasi_common_vfs::storage::NewNode;
    ///
    /// let lower = MemFs::new();
    /// lower.create(lower.root(), "old.txt", NewNode::File)?;
    /// let overlay = Overlay::new(lower);
    /// overlay.create(overlay.root(), "new.txt", NewNode::File)?;
    /// overlay.unlink(overlay.root(), "old.txt")?;
    ///
    /// let mut layer = Vec::new();
    /// overlay.export_changes(&mut layer)?;
    /// let mut names: Vec<String> = tar::Archive::new(&layer[..])
    ///     .entries()?
    ///     .map(|e| e.unwrap().path().unwrap().display().to_string())
    ///     .collect();
    /// names.sort();
    /// assert_eq!(names, [".wh.old.txt", "new.txt"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_changes(&self, writer: impl Write) -> Result<()> {
        let changes = self.changes()?;
        let mut items = Vec::new();
        for path in changes.added.iter().chain(&changes.modified) {
            let names: Vec<String> = path.split('/').map(str::to_owned).collect();
            if names.iter().any(|n| n.starts_with(WHITEOUT)) {
                return Err(Error::Archive(format!(
                    "{path}: a name starting with {WHITEOUT} means a deletion in a layer"
                )));
            }
            items.push(Item {
                names,
                marker: false,
            });
        }
        for path in &changes.deleted {
            let mut names: Vec<String> = path.split('/').map(str::to_owned).collect();
            if let Some(last) = names.last_mut() {
                *last = format!("{WHITEOUT}{last}");
            }
            items.push(Item {
                names,
                marker: true,
            });
        }
        // Sorted by names, a directory comes before everything in it.
        items.sort();
        let store: Arc<dyn Storage> = Arc::new(self.clone());
        let ns = Namespace::new(vec![("/".to_owned(), store)], &crate::Limits::default())?;
        let mut saver = Saver::new(&ns, writer);
        let mut walk = Walk {
            ns: &ns,
            open: vec![(ns.root(), PathTree::ROOT)],
            names: Vec::new(),
        };
        for item in &items {
            let Some((last, parents)) = item.names.split_last() else {
                continue;
            };
            let dir = walk.enter(parents, &mut saver)?;
            let rel = join(saver.dirs.path(dir), last);
            if item.marker {
                saver.marker(&rel).map_err(|e| e.at(rel.clone()))?;
                continue;
            }
            let (node, _) = ns.lookup(walk.top(), last).map_err(|e| e.at(rel.clone()))?;
            if saver
                .entry(node, (dir, last), &rel)
                .map_err(|e| e.at(rel.clone()))?
            {
                let id = saver.dirs.push(dir, last);
                walk.open.push((node, id));
                walk.names.push(last.clone());
            }
        }
        saver.finish()
    }
}

/// The directories from the root to the one the last item was in, so that
/// items in sorted order are each reached from where the last one was.
struct Walk<'a> {
    ns: &'a Arc<Namespace>,
    /// The root and each directory entered below it.
    open: Vec<(Node, DirId)>,
    /// The names of the entered directories.
    names: Vec<String>,
}

impl Walk<'_> {
    fn top(&self) -> Node {
        self.open.last().map_or(self.ns.root(), |&(node, _)| node)
    }

    /// Moves to the directory at `names`, saving each directory entered
    /// that no item saved before; returns its id.
    fn enter<W: Write>(&mut self, names: &[String], saver: &mut Saver<'_, W>) -> Result<DirId> {
        let same = self
            .names
            .iter()
            .zip(names)
            .take_while(|(a, b)| a == b)
            .count();
        self.names.truncate(same);
        self.open.truncate(same + 1);
        for name in &names[same..] {
            let (parent, parent_id) = *self.open.last().ok_or(Error::NotFound)?;
            let rel = join(saver.dirs.path(parent_id), name);
            let (node, _) = self
                .ns
                .lookup(parent, name)
                .map_err(|e| e.at(rel.clone()))?;
            let meta = self.ns.metadata(node).map_err(|e| e.at(rel.clone()))?;
            if !meta.is_dir() {
                return Err(Error::NotDir.at(rel));
            }
            saver.dir(&meta, &format!("{rel}/"))?;
            let id = saver.dirs.push(parent_id, name);
            self.open.push((node, id));
            self.names.push(name.clone());
        }
        Ok(self.open.last().map_or(PathTree::ROOT, |&(_, id)| id))
    }
}
