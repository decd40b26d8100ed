//! `Vfs::save_tar`: a subtree out to a tar archive.
//!
//! The walk goes from node to node, never through paths, so a tree of any
//! depth saves (names longer than a header holds travel as PAX `path` and
//! `linkpath` records). File data is streamed in bounded chunks, and holes
//! stay holes: a file with any is written as a PAX 1.0 sparse entry (see
//! `sparse`), so a guest's 2^62-byte sparse file costs the save a few
//! kilobytes, not 2^62 bytes. Times keep their nanoseconds through a PAX
//! `mtime` record. This module only reads the tree.

use super::CHUNK;
use super::paths::{DirId, PathTree, join, shown};
use super::sparse;
use crate::error::{Error, Result};
use crate::namespace::{Metadata, Namespace, Node};
use crate::storage::FileKind;
use crate::vfs::Vfs;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::SystemTime;

/// The largest size a ustar header's octal field holds; larger sizes also
/// travel as a PAX `size` record.
const USTAR_MAX_SIZE: u64 = 0o777_7777_7777;

/// The length of a ustar header's name and link name fields.
const NAME_FIELD: usize = 100;

type PaxRecords = Vec<(&'static str, Vec<u8>)>;

impl Vfs {
    /// Writes the subtree at `vfs_path` as a tar archive to `writer`, paths
    /// relative to `vfs_path` (which is saved as `./`). Symlinks are saved
    /// as symlinks, never followed; a file with several names is stored
    /// once and linked from its other names; mounts below `vfs_path` are
    /// included.
    ///
    /// The archive is POSIX (ustar with PAX records), readable by GNU tar,
    /// bsdtar and [`Vfs::load_tar`], which restores it exactly: contents,
    /// holes (as PAX 1.0 sparse entries), links, permission bits and
    /// modification times to the nanosecond. Memory use does not depend on
    /// file sizes. An error names the entry it happened at.
    ///
    /// ```
    /// use wasi_common_vfs::Vfs;
    ///
    /// let vfs = Vfs::new();
    /// vfs.create_dir_all("/out/logs")?;
    /// vfs.write("/out/logs/run.txt", b"done")?;
    /// vfs.write("/out/sparse.img", b"")?;
    /// vfs.set_len("/out/sparse.img", 1 << 40)?; // a 1 TiB hole
    ///
    /// let mut archive = Vec::new();
    /// vfs.save_tar("/out", &mut archive)?;
    /// assert!(archive.len() < 16 * 1024);
    ///
    /// let copy = Vfs::new();
    /// copy.load_tar(&archive[..], "/")?;
    /// assert_eq!(copy.read("/logs/run.txt")?, b"done");
    /// assert_eq!(copy.metadata("/sparse.img")?.size, 1 << 40);
    /// # Ok::<(), wasi_common_vfs::Error>(())
    /// ```
    pub fn save_tar(&self, vfs_path: &str, writer: impl Write) -> Result<()> {
        let ns = self.ns();
        let (root, kind) = ns.find(self.at(vfs_path))?;
        if kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        let _open = ns.open_handle(root)?;
        let mut saver = Saver::new(ns, writer);
        let root_meta = ns.metadata(root)?;
        saver.dir(&root_meta, "./").map_err(|e| e.at("."))?;
        let mut pending = vec![(root, PathTree::ROOT)];
        while let Some((dir, dir_id)) = pending.pop() {
            let rel_dir = saver.dirs.path(dir_id).to_owned();
            let mut cookie = 2;
            loop {
                let batch = ns
                    .readdir(dir, cookie, 256)
                    .map_err(|e| e.at(shown(&rel_dir)))?;
                let Some(last) = batch.last() else { break };
                cookie = last.next;
                for entry in batch {
                    let rel = join(&rel_dir, &entry.name);
                    let node = match ns.lookup(dir, &entry.name) {
                        Ok((node, _)) => node,
                        Err(Error::NotFound) => continue, // gone since listed
                        Err(e) => return Err(e.at(rel)),
                    };
                    let placed = (dir_id, entry.name.as_str());
                    if saver
                        .entry(node, placed, &rel)
                        .map_err(|e| e.at(rel.clone()))?
                    {
                        let child = saver.dirs.push(dir_id, &entry.name);
                        pending.push((node, child));
                    }
                }
            }
        }
        saver.finish()
    }
}

/// Writes entries of a namespace's tree to a tar archive.
pub(super) struct Saver<'a, W: Write> {
    ns: &'a Arc<Namespace>,
    out: tar::Builder<W>,
    /// The first place (directory and name) each file with several names
    /// was saved at.
    first_name: HashMap<(u64, u64), (DirId, Box<str>)>,
    /// The directories saved so far, so no walk state holds a full path.
    pub(super) dirs: PathTree,
}

impl<'a, W: Write> Saver<'a, W> {
    pub(super) fn new(ns: &'a Arc<Namespace>, writer: W) -> Self {
        Saver {
            ns,
            out: tar::Builder::new(writer),
            first_name: HashMap::new(),
            dirs: PathTree::new(),
        }
    }

    /// Ends the archive and flushes it.
    pub(super) fn finish(self) -> Result<()> {
        self.out.into_inner()?.flush()?;
        Ok(())
    }

    /// Saves an empty regular file at `rel` that stands for no node: a
    /// marker an archive's reader acts on.
    pub(super) fn marker(&mut self, rel: &str) -> Result<()> {
        let mut pax = PaxRecords::new();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(0);
        set_field(&mut header.as_old_mut().name, "path", rel, &mut pax);
        self.append(header, pax, io::empty())
    }

    /// Saves one entry, named `placed.1` in the directory `placed.0`, at
    /// path `rel`; true for a directory, whose contents come next.
    pub(super) fn entry(&mut self, node: Node, placed: (DirId, &str), rel: &str) -> Result<bool> {
        let meta = self.ns.metadata(node)?;
        match meta.kind {
            FileKind::Dir => {
                self.dir(&meta, &format!("{rel}/"))?;
                Ok(true)
            }
            FileKind::Symlink => {
                let target = self.ns.readlink(node)?;
                let mut pax = PaxRecords::new();
                let mut header = header(&meta, tar::EntryType::Symlink, rel, &mut pax);
                set_field(
                    &mut header.as_old_mut().linkname,
                    "linkpath",
                    &target,
                    &mut pax,
                );
                self.append(header, pax, io::empty())?;
                Ok(false)
            }
            FileKind::File => {
                if meta.nlink > 1 {
                    if let Some((dir, name)) = self.first_name.get(&(meta.dev, meta.ino)) {
                        let original = join(self.dirs.path(*dir), name);
                        let mut pax = PaxRecords::new();
                        let mut header = header(&meta, tar::EntryType::Link, rel, &mut pax);
                        let linkname = &mut header.as_old_mut().linkname;
                        set_field(linkname, "linkpath", &original, &mut pax);
                        self.append(header, pax, io::empty())?;
                        return Ok(false);
                    }
                    let (dir, name) = placed;
                    self.first_name
                        .insert((meta.dev, meta.ino), (dir, name.into()));
                }
                self.file(node, &meta, rel)?;
                Ok(false)
            }
        }
    }

    pub(super) fn dir(&mut self, meta: &Metadata, name: &str) -> Result<()> {
        let mut pax = PaxRecords::new();
        let header = header(meta, tar::EntryType::Directory, name, &mut pax);
        self.append(header, pax, io::empty())
    }

    fn file(&mut self, node: Node, meta: &Metadata, rel: &str) -> Result<()> {
        let _open = self.ns.open_handle(node)?;
        let size = meta.size;
        let ns: &Namespace = self.ns;
        let mut runs = sparse::group_runs(|| {
            Ok(DataRuns {
                ns,
                node,
                pos: 0,
                failed: false,
            })
        })?;
        let mut pax = PaxRecords::new();
        if size == 0 || runs == [(0, size)] {
            let mut header = header(meta, tar::EntryType::Regular, rel, &mut pax);
            set_size(&mut header, size, &mut pax);
            let data = RunsReader::new(ns, node, vec![(0, size)]);
            return self.append(header, pax, data);
        }
        // Sparse: the real name and size in PAX records, the map first in
        // the data, then the runs.
        let placeholder = match rel.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/GNUSparseFile.0/{file}"),
            None => format!("GNUSparseFile.0/{rel}"),
        };
        let mut header = header(meta, tar::EntryType::Regular, &placeholder, &mut pax);
        pax.retain(|(key, _)| *key != "path");
        pax.push(("GNU.sparse.major", b"1".to_vec()));
        pax.push(("GNU.sparse.minor", b"0".to_vec()));
        pax.push(("GNU.sparse.name", rel.as_bytes().to_vec()));
        pax.push(("GNU.sparse.realsize", size.to_string().into_bytes()));
        let data_len: u64 = runs.iter().map(|&(_, len)| len).sum();
        if runs.last().is_none_or(|&(o, l)| o + l < size) {
            runs.push((size, 0)); // where the trailing hole ends, as GNU tar marks it
        }
        let map = sparse::encode_map(&runs);
        set_size(&mut header, map.len() as u64 + data_len, &mut pax);
        let data = (&map[..]).chain(RunsReader::new(ns, node, runs));
        self.append(header, pax, data)
    }

    fn append(&mut self, mut header: tar::Header, pax: PaxRecords, data: impl Read) -> Result<()> {
        if !pax.is_empty() {
            self.out
                .append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))?;
        }
        header.set_cksum();
        let data = io::BufReader::with_capacity(CHUNK, data);
        self.out.append(&header, data)?;
        Ok(())
    }
}

/// A ustar header for `meta`, named `name` (in a PAX record when too long
/// for the header), with its mode and its time (the nanoseconds in a PAX
/// record).
fn header(meta: &Metadata, kind: tar::EntryType, name: &str, pax: &mut PaxRecords) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(0);
    let since = meta
        .mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    header.set_mtime(since.as_secs());
    if since.subsec_nanos() != 0 {
        let exact = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
        pax.push(("mtime", exact.into_bytes()));
    }
    set_field(&mut header.as_old_mut().name, "path", name, pax);
    header
}

/// Puts `value` in a header field, or, when it does not fit, a cut-down
/// copy there for old readers and the whole of it in the PAX record `key`.
fn set_field(field: &mut [u8; NAME_FIELD], key: &'static str, value: &str, pax: &mut PaxRecords) {
    let mut cut = value.len().min(NAME_FIELD);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    field.fill(0);
    field[..cut].copy_from_slice(&value.as_bytes()[..cut]);
    if cut < value.len() {
        pax.push((key, value.as_bytes().to_vec()));
    }
}

fn set_size(header: &mut tar::Header, size: u64, pax: &mut PaxRecords) {
    header.set_size(size);
    if size > USTAR_MAX_SIZE {
        pax.push(("size", size.to_string().into_bytes()));
    }
}

/// The data runs of a file, from its start, as the store reports them.
struct DataRuns<'a> {
    ns: &'a Namespace,
    node: Node,
    pos: u64,
    failed: bool,
}

impl Iterator for DataRuns<'_> {
    type Item = Result<(u64, u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.ns.next_data(self.node, self.pos) {
            Ok(None) => None,
            Ok(Some((start, end))) if start >= self.pos && end > start => {
                self.pos = end;
                Some(Ok((start, end)))
            }
            Ok(Some(_)) => {
                self.failed = true;
                Some(Err(Error::Invalid))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The bytes of a file's runs, in order: exactly their total length, with
/// zeros standing in for anything the file lost since the runs were read.
struct RunsReader<'a> {
    ns: &'a Namespace,
    node: Node,
    runs: std::vec::IntoIter<(u64, u64)>,
    /// The current run's next offset and what is left of it.
    at: u64,
    left: u64,
}

impl<'a> RunsReader<'a> {
    fn new(ns: &'a Namespace, node: Node, runs: Vec<(u64, u64)>) -> Self {
        RunsReader {
            ns,
            node,
            runs: runs.into_iter(),
            at: 0,
            left: 0,
        }
    }
}

impl Read for RunsReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            match self.runs.next() {
                Some((offset, len)) => (self.at, self.left) = (offset, len),
                None => return Ok(0),
            }
        }
        let want = buf
            .len()
            .min(CHUNK)
            .min(usize::try_from(self.left).unwrap_or(CHUNK));
        let buf = &mut buf[..want];
        let n = self
            .ns
            .read(self.node, self.at, &mut [io::IoSliceMut::new(buf)])
            .map_err(io::Error::other)?;
        buf[n..].fill(0);
        self.at += want as u64;
        self.left -= want as u64;
        Ok(want)
    }
}
