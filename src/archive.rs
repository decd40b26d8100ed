//! Tar archives in and out of a [`Vfs`]: `load_tar` and `save_tar`.
//!
//! Files, directories, symlinks and hard links travel with their
//! permission bits and modification times (to the second, as tar keeps
//! them). An entry whose path is absolute or climbs with `..` is refused
//! before anything of it is written. This module works through the host
//! API only, so everything it does goes through the one resolver.

use crate::error::{Error, Result};
use crate::storage::FileKind;
use crate::vfs::Vfs;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Archive(what.to_string())
}

/// The archive path `path` as `/`-joined normal components, or an error
/// naming it if it is absolute or climbs out with `..`.
fn confined(path: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| bad(format!("entry {path:?}: name is not UTF-8")))?,
            ),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad(format!("entry {path:?}: absolute path refused")));
            }
            Component::ParentDir => {
                return Err(bad(format!("entry {path:?}: `..` in path refused")));
            }
        }
    }
    Ok(parts.join("/"))
}

fn join(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    if rel.is_empty() {
        if base.is_empty() {
            "/".to_owned()
        } else {
            base.to_owned()
        }
    } else {
        format!("{base}/{rel}")
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Vfs {
    /// Unpacks the tar archive read from `reader` into the directory
    /// `vfs_path` (created if needed), replacing files of the same names.
    ///
    /// Fails with [`Error::Archive`] for a corrupt or truncated archive
    /// and for an entry whose path (or hard-link target) is absolute or
    /// contains `..`; entries before the bad one stay loaded. Device nodes
    /// and FIFOs are skipped.
    pub fn load_tar(&self, reader: impl Read, vfs_path: &str) -> Result<()> {
        self.create_dir_all(vfs_path)?;
        let mut archive = tar::Archive::new(reader);
        let mut dir_times = Vec::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw_path = entry.path().map_err(bad)?.into_owned();
            let rel = confined(&raw_path)?;
            let target = join(vfs_path, &rel);
            let header = entry.header();
            let mode = header.mode().map_err(bad)?;
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(header.mtime().map_err(bad)?);
            let kind = header.entry_type();
            if let Some(parent) = Path::new(&rel).parent().and_then(Path::to_str) {
                self.create_dir_all(&join(vfs_path, parent))?;
            }
            match kind {
                tar::EntryType::Directory => {
                    self.create_dir_all(&target)?;
                    self.set_mode(&target, mode)?;
                    dir_times.push((target, mtime));
                    continue;
                }
                tar::EntryType::Symlink => {
                    let link = entry.link_name().map_err(bad)?.ok_or_else(|| {
                        bad(format!("entry {raw_path:?}: symlink without a target"))
                    })?;
                    let link = link
                        .to_str()
                        .ok_or_else(|| bad(format!("entry {raw_path:?}: target is not UTF-8")))?
                        .to_owned();
                    self.replace(&target)?;
                    self.symlink(&link, &target)?;
                    self.set_times_at(&target, false, None, Some(mtime))?;
                    continue;
                }
                tar::EntryType::Link => {
                    let link = entry.link_name().map_err(bad)?.ok_or_else(|| {
                        bad(format!("entry {raw_path:?}: hard link without a target"))
                    })?;
                    let original = join(vfs_path, &confined(&link)?);
                    self.replace(&target)?;
                    self.hard_link(&original, &target)?;
                    continue;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| bad(format!("entry {raw_path:?}: {e}")))?;
                    self.write(&target, data)?;
                }
                other => {
                    tracing::debug!(entry = ?raw_path, kind = ?other, "archive entry skipped");
                    continue;
                }
            }
            self.set_mode(&target, mode)?;
            self.set_times(&target, None, Some(mtime))?;
        }
        // Last, since filling a directory changes its time.
        for (dir, mtime) in dir_times.into_iter().rev() {
            self.set_times(&dir, None, Some(mtime))?;
        }
        Ok(())
    }

    /// Removes a non-directory at `path` so an archive entry can take its
    /// place.
    fn replace(&self, path: &str) -> Result<()> {
        match self.symlink_metadata(path) {
            Ok(m) if !m.is_dir() => self.remove(path),
            _ => Ok(()),
        }
    }

    /// Writes the subtree at `vfs_path` (not following symlinks) as a tar
    /// archive to `writer`, paths relative to `vfs_path`. A file with
    /// several names is stored once and linked from its other names.
    pub fn save_tar(&self, vfs_path: &str, writer: impl Write) -> Result<()> {
        let mut builder = tar::Builder::new(writer);
        let mut first_name: HashMap<(u64, u64), String> = HashMap::new();
        let mut pending = vec![String::new()];
        while let Some(rel_dir) = pending.pop() {
            let dir = join(vfs_path, &rel_dir);
            for entry in self.read_dir(&dir)? {
                let rel = if rel_dir.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{rel_dir}/{}", entry.name)
                };
                let path = join(vfs_path, &rel);
                let meta = self.symlink_metadata(&path)?;
                let mut header = tar::Header::new_gnu();
                header.set_mode(meta.mode);
                header.set_mtime(seconds(meta.mtime));
                header.set_size(0);
                match meta.kind {
                    FileKind::Dir => {
                        header.set_entry_type(tar::EntryType::Directory);
                        builder.append_data(&mut header, format!("{rel}/"), std::io::empty())?;
                        pending.push(rel);
                    }
                    FileKind::Symlink => {
                        header.set_entry_type(tar::EntryType::Symlink);
                        builder.append_link(&mut header, &rel, self.read_link(&path)?)?;
                    }
                    FileKind::File => {
                        if meta.nlink > 1 {
                            if let Some(original) = first_name.get(&(meta.dev, meta.ino)) {
                                header.set_entry_type(tar::EntryType::Link);
                                builder.append_link(&mut header, &rel, original)?;
                                continue;
                            }
                            first_name.insert((meta.dev, meta.ino), rel.clone());
                        }
                        let data = self.read(&path)?;
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(data.len() as u64);
                        builder.append_data(&mut header, &rel, data.as_slice())?;
                    }
                }
            }
        }
        builder.into_inner()?.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        assert_eq!(confined(Path::new("./a/b/")).unwrap(), "a/b");
        assert!(confined(Path::new("/etc/passwd")).is_err());
        assert!(confined(Path::new("a/../../b")).is_err());
        assert!(confined(Path::new("a/..")).is_err());
    }
}
