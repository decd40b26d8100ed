//! `Vfs::load_tar`: a tar archive into the tree, confined and all or
//! nothing.
//!
//! Each entry is checked the way hardened extractors check them (no
//! absolute names, no `..`, no special files, hard links only to earlier
//! entries) and staged (see `stage`), where nothing is written through a
//! symlink; the whole archive goes into place only once every entry has
//! loaded. This module owns reading entries; placing them is the stage's.

use super::CHUNK;
use super::sparse;
use super::stage::{EntryAttrs, FileSink, Stage};
use crate::error::{Error, Result};
use crate::vfs::Vfs;
use std::io::Read;
use std::time::{Duration, SystemTime};

/// How much larger than its stored data an old GNU sparse entry may be.
/// The tar crate reads such an entry's holes as zeros, so loading costs
/// time in its full size: without a bound, a few bytes of archive could
/// keep a load busy for years. (PAX sparse entries, which saves write,
/// cost only their data.)
const GNU_SPARSE_MAX_RATIO: u64 = 64;

impl Vfs {
    /// Unpacks the tar archive read from `reader` into the directory
    /// `vfs_path` (created if needed), merging with what is there: a file
    /// of the same name as an entry is replaced.
    ///
    /// The archive is checked as hardened extractors check: an entry whose
    /// name is absolute or has `..`, one that would go through a symlink
    /// (from the archive or already in the tree), one that lies in another
    /// mount below `vfs_path`, a hard link to anything but an earlier
    /// entry, and device, FIFO and other special entries are refused with
    /// an error naming the entry. Loading is all or nothing: when an entry
    /// is refused, a limit is reached or the archive is corrupt or
    /// truncated, the tree is exactly as before. Entries are staged in a
    /// hidden directory inside `vfs_path` and moved into place at the end,
    /// so the target's store must hold the old and the new contents at
    /// once while loading.
    ///
    /// Permission bits and modification times are restored; holes of
    /// sparse entries (PAX 1.0, as [`Vfs::save_tar`] writes them, and GNU
    /// sparse entries) stay holes.
    ///
    /// ```
    /// use wasi_common_vfs::{Error, Vfs};
    ///
    /// // An archive that plants a symlink and then writes through it.
    /// let mut archive = tar::Builder::new(Vec::new());
    /// let mut link = tar::Header::new_ustar();
    /// link.set_entry_type(tar::EntryType::Symlink);
    /// archive.append_link(&mut link, "s", "/")?;
    /// let mut file = tar::Header::new_ustar();
    /// file.set_size(2);
    /// archive.append_data(&mut file, "s/etc/pwned", &b"hi"[..])?;
    /// let archive = archive.into_inner()?;
    ///
    /// let vfs = Vfs::new();
    /// let refused = vfs.load_tar(&archive[..], "/unpacked").unwrap_err();
    /// assert!(matches!(refused, Error::Archive(_)));
    /// assert!(vfs.symlink_metadata("/unpacked").is_err()); // nothing changed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_tar(&self, reader: impl Read, vfs_path: &str) -> Result<()> {
        load(Stage::new(self, vfs_path)?, reader)
    }

    /// [`Vfs::load_tar`], replacing what the directory `vfs_path` holds
    /// instead of merging with it: once the load succeeds, `vfs_path`
    /// holds exactly the archive's entries, and what was there before is
    /// gone. All or nothing as a load is: when it fails, the directory
    /// holds what it held. For restoring a snapshot from
    /// [`Vfs::save_tar`]. A mount at or below `vfs_path` refuses it with
    /// [`Error::OtherMount`] naming the mount, as that could not be
    /// removed.
    ///
    /// ```
    /// use wasi_common_vfs::Vfs;
    ///
    /// let vfs = Vfs::new();
    /// vfs.create_dir_all("/work")?;
    /// vfs.write("/work/kept.txt", b"v1")?;
    /// let mut snapshot = Vec::new();
    /// vfs.save_tar("/work", &mut snapshot)?;
    /// vfs.write("/work/kept.txt", b"v2")?;
    /// vfs.write("/work/added.txt", b"new")?;
    /// vfs.load_tar_replacing(&snapshot[..], "/work")?;
    /// assert_eq!(vfs.read("/work/kept.txt")?, b"v1");
    /// assert!(vfs.metadata("/work/added.txt").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_tar_replacing(&self, reader: impl Read, vfs_path: &str) -> Result<()> {
        load(Stage::new(self, vfs_path)?.replacing(), reader)
    }
}

/// Loads the archive read from `reader` into `stage` and commits it.
fn load(mut stage: Stage, reader: impl Read) -> Result<()> {
    let mut archive = tar::Archive::new(EndWatch {
        inner: reader,
        ran_out: false,
    });
    for entry in archive.entries().map_err(corrupt)? {
        load_entry(&mut stage, entry.map_err(corrupt)?)?;
    }
    // The entries end at the end-of-archive block or where the stream
    // does; only the block tells a whole archive from a cut one.
    if archive.into_inner().ran_out {
        return Err(Error::Archive(
            "the archive is truncated: it ends without its end-of-archive block".into(),
        ));
    }
    stage.commit()
}

/// A reader that remembers whether its stream ran out.
struct EndWatch<R> {
    inner: R,
    ran_out: bool,
}

impl<R: Read> Read for EndWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ran_out = true;
        }
        Ok(n)
    }
}

fn corrupt(e: std::io::Error) -> Error {
    Error::Archive(format!("the archive is corrupt or truncated: {e}"))
}

/// What the PAX records before an entry say that matters here.
#[derive(Default)]
struct PaxInfo {
    mtime: Option<SystemTime>,
    sparse_name: Option<Vec<u8>>,
    sparse_size: Option<u64>,
    sparse_version: (Option<u64>, Option<u64>),
    old_sparse: bool,
}

impl PaxInfo {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<PaxInfo> {
        let mut info = PaxInfo::default();
        let Some(records) = entry.pax_extensions().map_err(corrupt)? else {
            return Ok(info);
        };
        for record in records {
            let record = record.map_err(corrupt)?;
            let (Ok(key), value) = (record.key(), record.value_bytes()) else {
                continue;
            };
            let number = || std::str::from_utf8(value).ok()?.parse::<u64>().ok();
            match key {
                "mtime" => info.mtime = parse_time(value),
                "GNU.sparse.name" => info.sparse_name = Some(value.to_vec()),
                "GNU.sparse.realsize" => info.sparse_size = number(),
                "GNU.sparse.major" => info.sparse_version.0 = number(),
                "GNU.sparse.minor" => info.sparse_version.1 = number(),
                k if k.starts_with("GNU.sparse.") => info.old_sparse = true,
                _ => {}
            }
        }
        Ok(info)
    }

    fn is_sparse(&self) -> bool {
        self.sparse_version.0.is_some() || self.old_sparse
    }
}

/// A PAX time, `seconds[.fraction]`, at or after the epoch.
fn parse_time(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut nanos = 0u32;
    for (i, digit) in frac.bytes().take(9).enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// The components of an archive path below the target, or an error naming
/// it if it is absolute, climbs with `..` or is not UTF-8.
fn components(raw: &[u8]) -> std::result::Result<Vec<&str>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8")?;
    if text.starts_with('/') {
        return Err("absolute names are refused");
    }
    if text.contains('\0') {
        return Err("the name holds a NUL byte");
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("names with `..` are refused"),
            name => parts.push(name),
        }
    }
    Ok(parts)
}

fn load_entry<R: Read>(stage: &mut Stage, mut entry: tar::Entry<'_, R>) -> Result<()> {
    let pax = PaxInfo::read(&mut entry)?;
    let raw = match &pax.sparse_name {
        Some(name) => name.clone(),
        None => entry.path_bytes().into_owned(),
    };
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let refuse = |why: &str| Error::Archive(format!("entry {shown:?}: {why}"));
    let rel = components(&raw).map_err(refuse)?;
    let header = entry.header();
    let kind = header.entry_type();
    let attrs = EntryAttrs {
        mode: header.mode().ok().map(|m| m & 0o7777),
        mtime: pax.mtime.or_else(|| {
            let secs = header.mtime().ok()?;
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
        }),
    };
    let link_target = || -> Result<String> {
        let bytes = entry
            .link_name_bytes()
            .ok_or_else(|| refuse("a link without a target"))?;
        String::from_utf8(bytes.into_owned()).map_err(|_| refuse("the link target is not UTF-8"))
    };
    match kind {
        tar::EntryType::Directory => stage.dir(&rel, attrs),
        tar::EntryType::Symlink => {
            let target = link_target()?;
            stage.symlink(&rel, &target, attrs)
        }
        tar::EntryType::Link => {
            let target = link_target()?;
            let original = components(target.as_bytes())
                .map_err(|why| refuse(&format!("hard link target: {why}")))?;
            stage.hard_link(&rel, &original)
        }
        tar::EntryType::Regular | tar::EntryType::Continuous if pax.is_sparse() => {
            if pax.sparse_version != (Some(1), Some(0)) {
                return Err(refuse("only version 1.0 of the PAX sparse format is read"));
            }
            let size = pax
                .sparse_size
                .ok_or_else(|| refuse("a sparse entry without its real size"))?;
            let stored = entry.size();
            stage.file(&rel, attrs, size, |sink| {
                let (runs, map_len) =
                    sparse::read_map(&mut entry, size).map_err(|e| refuse(&e.to_string()))?;
                let data: u64 = runs.iter().map(|&(_, len)| len).sum();
                if map_len.checked_add(data) != Some(stored) {
                    return Err(refuse("the sparse map does not match the entry's size"));
                }
                for (offset, len) in runs {
                    copy_run(&mut entry, sink, offset, len, false).map_err(|e| with(e, &shown))?;
                }
                Ok(())
            })
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = entry.size();
            stage.file(&rel, attrs, size, |sink| {
                copy_run(&mut entry, sink, 0, size, false).map_err(|e| with(e, &shown))
            })
        }
        tar::EntryType::GNUSparse => {
            // The tar crate reads the holes of an old GNU sparse entry as
            // zeros; whole zero chunks are left unwritten, so they stay holes.
            let size = header.size().map_err(corrupt)?;
            let stored = header.entry_size().map_err(corrupt)?;
            if size
                > stored
                    .saturating_add(CHUNK as u64)
                    .saturating_mul(GNU_SPARSE_MAX_RATIO)
            {
                return Err(refuse(
                    "an old GNU sparse entry far larger than its data; save it as a PAX sparse entry",
                ));
            }
            stage.file(&rel, attrs, size, |sink| {
                copy_run(&mut entry, sink, 0, size, true).map_err(|e| with(e, &shown))
            })
        }
        tar::EntryType::XGlobalHeader => Ok(()),
        other => Err(refuse(&format!(
            "{} entries are refused",
            match other {
                tar::EntryType::Char => "character device",
                tar::EntryType::Block => "block device",
                tar::EntryType::Fifo => "FIFO",
                _ => "special",
            }
        ))),
    }
}

fn with(e: Error, shown: &str) -> Error {
    match e {
        Error::Archive(_) => e,
        other => other.at(format!("entry {shown}")),
    }
}

/// Copies `len` bytes of the entry's data into the file at `offset`, in
/// bounded chunks; with `skip_zeros`, all-zero chunks are left as holes.
fn copy_run(
    data: &mut impl Read,
    sink: &mut FileSink<'_>,
    offset: u64,
    len: u64,
    skip_zeros: bool,
) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done).map_or(CHUNK, |left| left.min(CHUNK));
        let chunk = &mut buf[..want];
        data.read_exact(chunk).map_err(|_| {
            Error::Archive("the archive is truncated: it ends inside an entry's data".into())
        })?;
        if !(skip_zeros && chunk.iter().all(|&b| b == 0)) {
            sink.write_at(offset + done, chunk)?;
        }
        done += want as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        assert_eq!(components(b"./a//b/").unwrap(), ["a", "b"]);
        assert_eq!(components(b"./").unwrap(), Vec::<&str>::new());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/../../b").is_err());
        assert!(components(b"a/..").is_err());
        assert!(components(b"a\xffb").is_err());
    }

    #[test]
    fn pax_times_keep_their_fraction() {
        let t = parse_time(b"1700000000.5").unwrap();
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            (d.as_secs(), d.subsec_nanos()),
            (1_700_000_000, 500_000_000)
        );
        assert!(parse_time(b"-5").is_none());
        assert!(parse_time(b"12.x").is_none());
    }
}
