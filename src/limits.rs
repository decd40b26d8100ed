//! `Limits`: what one tree may hold, so that no guest can exhaust the
//! host's memory through it.

/// Limits on a tree built by [`VfsBuilder`](crate::VfsBuilder); `None` is
/// no limit. A guest that would exceed one gets `ENOSPC` (bytes, inodes),
/// `EFBIG` (file size) or `EMFILE` (open files), the host API the matching
/// [`Error`](crate::Error), and the operation changes nothing.
///
/// ```
/// use wasi_common_vfs::{Limits, Vfs};
///
/// let vfs = Vfs::builder()
///     .limits(Limits { bytes: Some(1 << 20), ..Limits::default() })
///     .build()?;
/// assert!(vfs.write("/big", vec![0u8; 2 << 20]).is_err()); // ENOSPC
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes held by the tree's in-memory stores: file data (holes do not
    /// count), symlink targets and names, plus a fixed cost per inode and
    /// per directory entry, so that empty files and long names count too.
    /// Host directories are the host's disk and do not count.
    pub bytes: Option<u64>,
    /// Inodes (files, directories, symlinks) in the in-memory stores.
    pub inodes: Option<u64>,
    /// The largest size of any file, in any store.
    pub file_size: Option<u64>,
    /// Files and directories open at once through this tree: guests'
    /// descriptors and preopens.
    pub open_files: Option<u64>,
}

/// What a tree holds against its [`Limits`], from [`Vfs::usage`](crate::Vfs::usage).
///
/// ```
/// use wasi_common_vfs::{Limits, Vfs};
///
/// let vfs = Vfs::builder()
///     .limits(Limits { bytes: Some(1 << 20), ..Limits::default() })
///     .build()?;
/// vfs.write("/f", vec![1u8; 1000])?;
/// let usage = vfs.usage();
/// assert!(usage.bytes.unwrap() >= 1000);
/// assert_eq!(usage.limits.bytes, Some(1 << 20));
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Bytes the in-memory stores hold, as [`Limits::bytes`] counts them;
    /// `None` when neither bytes nor inodes are limited (nothing is
    /// counted then).
    pub bytes: Option<u64>,
    /// Inodes in the in-memory stores; `None` as for `bytes`.
    pub inodes: Option<u64>,
    /// Files and directories open through the tree now, preopens included.
    pub open_files: u64,
    /// The limits the tree was built with.
    pub limits: Limits,
}
