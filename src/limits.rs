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
///     .limits(Limits::default().with_bytes(1 << 20))
///     .build()?;
/// assert!(vfs.write("/big", vec![0u8; 2 << 20]).is_err()); // ENOSPC
/// # Ok::<(), wasi_common_vfs::Error>(())
/// ```
///
/// Start from `Limits::default()` (nothing limited) and set what you need
/// with the `with_*` methods or by assigning the fields: the struct may
/// gain fields, so it is not built with a literal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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

impl Limits {
    /// These limits with [`bytes`](Self::bytes) at `bytes`.
    pub const fn with_bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// These limits with [`inodes`](Self::inodes) at `inodes`.
    pub const fn with_inodes(mut self, inodes: u64) -> Self {
        self.inodes = Some(inodes);
        self
    }

    /// These limits with [`file_size`](Self::file_size) at `bytes`.
    pub const fn with_file_size(mut self, bytes: u64) -> Self {
        self.file_size = Some(bytes);
        self
    }

    /// These limits with [`open_files`](Self::open_files) at `files`.
    pub const fn with_open_files(mut self, files: u64) -> Self {
        self.open_files = Some(files);
        self
    }
}

/// What a tree holds against its [`Limits`], from [`Vfs::usage`](crate::Vfs::usage).
///
/// ```
/// use wasi_common_vfs::{Limits, Vfs};
///
/// let vfs = Vfs::builder()
///     .limits(Limits::default().with_bytes(1 << 20))
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
