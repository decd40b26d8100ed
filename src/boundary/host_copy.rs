//! `Vfs::copy_in`: a host directory into the tree, confined on both sides
//! and all or nothing.
//!
//! The host side is read through cap-std directory handles, one name at a
//! time and never following a symlink, so a link in the host tree (or one
//! swapped in while copying) pulls in nothing outside it. File data is
//! read in bounded chunks, only where the host file has data
//! (`SEEK_DATA`/`SEEK_HOLE`), and each chunk is charged to the budget
//! before it is stored: a 1 GiB sparse host file costs what it holds. The
//! tree side is the stage's (see `stage`). This module must not write to
//! the host.

use super::CHUNK;
use super::paths::{DirId, PathTree, shown};
use super::stage::{EntryAttrs, FileSink, Stage};
use crate::error::{Error, Result};
use crate::vfs::Vfs;
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, File, FileExt, Metadata, MetadataExt, OpenOptions, PermissionsExt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

impl Vfs {
    /// Copies the host directory `host_dir` (files, directories, symlinks,
    /// hard links, their times and permission bits) into the tree at
    /// `vfs_path`, creating it if needed and replacing files of the same
    /// names.
    ///
    /// Symlinks are copied as symlinks, never followed, so a link in the
    /// host tree cannot pull in anything outside it; FIFOs, sockets and
    /// devices are skipped. Holes stay holes and data is charged to the
    /// tree's limits before it is stored, so the copy fails with `ENOSPC`
    /// rather than exhaust memory. Like [`Vfs::load_tar`], the copy is all
    /// or nothing and never writes through a symlink already in the tree.
    ///
    /// ```
    /// use wasi_common_vfs::Vfs;
    ///
    /// let host = tempfile::tempdir()?;
    /// std::fs::write(host.path().join("input.txt"), "data")?;
    /// let vfs = Vfs::new();
    /// vfs.copy_in(host.path(), "/work")?;
    /// assert_eq!(vfs.read("/work/input.txt")?, b"data");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_in(&self, host_dir: impl AsRef<Path>, vfs_path: &str) -> Result<()> {
        let host_dir = host_dir.as_ref();
        let root =
            Dir::open_ambient_dir(host_dir, cap_std::ambient_authority()).map_err(|source| {
                Error::HostDir {
                    path: host_dir.to_path_buf(),
                    source,
                }
            })?;
        let mut stage = Stage::new(self, vfs_path)?;
        // Directories wait as (parent handle, directory), so the handles
        // open at once number the depth of the walk, not the width of the
        // tree, and no full path is held for any of them.
        let mut dirs = PathTree::new();
        let mut pending: Vec<(Arc<Dir>, DirId)> = vec![(Arc::new(root), PathTree::ROOT)];
        let mut first_name: HashMap<(u64, u64), (DirId, String)> = HashMap::new();
        while let Some((parent, dir_id)) = pending.pop() {
            let rel: Vec<String> = dirs
                .components(dir_id)
                .into_iter()
                .map(String::from)
                .collect();
            let dir = match rel.last() {
                Some(name) => Arc::new(
                    parent
                        .open_dir_nofollow(name)
                        .map_err(|e| Error::from_host(e).at(rel.join("/")))?,
                ),
                None => parent,
            };
            for entry in dir
                .entries()
                .map_err(|e| Error::from_host(e).at(shown(&rel.join("/"))))?
            {
                let entry = entry.map_err(|e| Error::from_host(e).at(shown(&rel.join("/"))))?;
                let mut child = rel.clone();
                child.push(
                    entry.file_name().into_string().map_err(|n| {
                        Error::Invalid.at(format!("{}/{n:?}", shown(&rel.join("/"))))
                    })?,
                );
                let child_name = child.last().cloned().unwrap_or_default();
                let parts: Vec<&str> = child.iter().map(String::as_str).collect();
                let at = |e: std::io::Error| Error::from_host(e).at(child.join("/"));
                let meta = dir.symlink_metadata(&child_name).map_err(at)?;
                let attrs = attrs_of(&meta);
                let file_type = meta.file_type();
                if file_type.is_dir() {
                    stage.dir(&parts, attrs)?;
                    pending.push((dir.clone(), dirs.push(dir_id, &child_name)));
                } else if file_type.is_symlink() {
                    let target = dir.read_link_contents(&child_name).map_err(at)?;
                    let target = target
                        .into_os_string()
                        .into_string()
                        .map_err(|_| Error::Invalid.at(child.join("/")))?;
                    stage.symlink(&parts, &target, attrs)?;
                } else if file_type.is_file() {
                    if meta.nlink() > 1 {
                        let key = (meta.dev(), meta.ino());
                        if let Some((dir, name)) = first_name.get(&key) {
                            let mut original = dirs.components(*dir);
                            original.push(name);
                            stage.hard_link(&parts, &original)?;
                            continue;
                        }
                        first_name.insert(key, (dir_id, child_name.clone()));
                    }
                    let mut options = OpenOptions::new();
                    options.read(true).follow(FollowSymlinks::No);
                    let file = dir.open_with(&child_name, &options).map_err(at)?;
                    let opened = file.metadata().map_err(at)?;
                    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
                        // Swapped since it was listed: copy what is there now
                        // only if it is what was looked at.
                        return Err(Error::NotFound.at(child.join("/")));
                    }
                    stage.file(&parts, attrs, opened.len(), |sink| {
                        copy_data(&file, opened.len(), sink).map_err(|e| e.at(child.join("/")))
                    })?;
                } else {
                    tracing::debug!(entry = %child.join("/"), "special host file skipped");
                }
            }
        }
        stage.commit()
    }
}

fn attrs_of(meta: &Metadata) -> EntryAttrs {
    EntryAttrs {
        mode: Some(meta.permissions().mode() & 0o7777),
        mtime: meta.modified().ok().map(|t| t.into_std()),
    }
}

/// Copies the data runs of `file` (its first `size` bytes), leaving its
/// holes as holes.
fn copy_data(file: &File, size: u64, sink: &mut FileSink<'_>) -> Result<()> {
    use rustix::fs::SeekFrom;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    while pos < size {
        let (start, end) = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(start) => (
                start,
                rustix::fs::seek(file, SeekFrom::Hole(start)).unwrap_or(size),
            ),
            Err(rustix::io::Errno::NXIO) => break,
            // No hole reporting here: all of it is data.
            Err(_) => (pos, size),
        };
        let end = end.min(size);
        let mut at = start;
        while at < end {
            let want = usize::try_from(end - at).map_or(CHUNK, |left| left.min(CHUNK));
            let n = file
                .read_at(&mut buf[..want], at)
                .map_err(Error::from_host)?;
            if n == 0 {
                return Ok(()); // the file shrank while copying
            }
            sink.write_at(at, &buf[..n])?;
            at += n as u64;
        }
        pos = end.max(pos + 1);
    }
    Ok(())
}
