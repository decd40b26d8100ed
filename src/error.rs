//! The one error type of the crate.
//!
//! Every layer (storage, namespace, host API) reports failures as [`Error`],
//! a POSIX-flavoured enum; the wasi adapter turns it into the errno a guest
//! sees (see `wasi::errno`). This module owns the variants and their messages
//! and must not know about WASI types.

/// A filesystem failure, named after the POSIX error a guest would see.
///
/// The host API's calls on a path name it: their errors are
/// [`Error::AtPath`] around the cause, and read `/missing: no such file or
/// directory`. Match on [`innermost`](Error::innermost) (or
/// [`into_innermost`](Error::into_innermost)) for the cause itself.
///
/// ```
/// use wasi_common_vfs::{Error, Vfs};
///
/// let vfs = Vfs::new();
/// let e = vfs.read("/missing").unwrap_err();
/// assert_eq!(e.to_string(), "/missing: no such file or directory");
/// assert!(matches!(e.innermost(), Error::NotFound));
/// match vfs.read("/missing").map_err(Error::into_innermost) {
///     Err(Error::NotFound) => {}
///     other => panic!("{other:?}"),
/// }
/// // As an `io::Error` of the matching kind, for `?` in I/O code.
/// let io: std::io::Error = vfs.read("/missing").unwrap_err().into();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ENOENT`: a component of the path does not exist, or the path is empty.
    #[error("no such file or directory")]
    NotFound,
    /// `EEXIST`: the name is already taken.
    #[error("file exists")]
    Exists,
    /// `ENOTDIR`: a directory was needed (including a path with a trailing slash).
    #[error("not a directory")]
    NotDir,
    /// `EISDIR`: a non-directory was needed.
    #[error("is a directory")]
    IsDir,
    /// `ENOTEMPTY`: the directory still has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// `ELOOP`: more than 40 symbolic links while resolving one path, or a
    /// symlink where following was refused.
    #[error("too many levels of symbolic links")]
    Loop,
    /// `ENAMETOOLONG`: a name over 255 bytes or a path over 4096 bytes.
    #[error("file name too long")]
    NameTooLong,
    /// `EINVAL`: an argument the operation cannot accept (for example
    /// renaming a directory into its own subtree, or a NUL byte in a name).
    #[error("invalid argument")]
    Invalid,
    /// `EPERM`: the path would leave the directory it is resolved in, through
    /// `..`, an absolute path or a symlink. This is the confinement guarantee.
    #[error("path escapes its directory")]
    Escape,
    /// `EPERM`: the operation is never allowed on this node (hard-linking a
    /// directory, for example).
    #[error("operation not permitted")]
    NotPermitted,
    /// `EROFS`: the store is read-only.
    #[error("read-only file system")]
    ReadOnly,
    /// `EXDEV`: rename or link between two different stores.
    #[error("cross-device link")]
    CrossDevice,
    /// `EBUSY`: the node is in use by the mount table.
    #[error("device or resource busy")]
    Busy,
    /// `ENOSPC`: a storage limit was reached.
    #[error("no space left on device")]
    NoSpace,
    /// `EFBIG`: the file would grow past the largest size allowed.
    #[error("file too large")]
    FileTooBig,
    /// `EBADF`: the handle does not allow this operation.
    #[error("bad file descriptor")]
    BadHandle,
    /// `EMFILE`: no more descriptors can be opened.
    #[error("too many open files")]
    TooManyOpen,
    /// `ENOTSUP`: the store does not implement this operation.
    #[error("operation not supported")]
    NotSupported,
    /// A mount table that cannot be built, naming the mount path.
    #[error("cannot mount at {path:?}: {reason}")]
    Mount {
        /// The mount path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host directory that cannot be opened, naming it.
    #[error("cannot open host directory {}: {source}", path.display())]
    HostDir {
        /// The host path as given.
        path: std::path::PathBuf,
        /// Why it could not be opened.
        #[source]
        source: std::io::Error,
    },
    /// A tar archive that cannot be loaded: corrupt, truncated, or holding an
    /// entry that would land outside its directory.
    #[error("bad archive: {0}")]
    Archive(String),
    /// `EXDEV`: a load or copy would have written into another mount below
    /// its target directory; names the entry, relative to the target.
    #[error("{0}: another store is mounted there, and a load never writes into another mount")]
    OtherMount(String),
    /// A host-API call on a path failed, or an operation on one entry of a
    /// larger job (a save, a load, a copy): names the path as the caller
    /// gave it, or the entry relative to the job's directory, and keeps
    /// the cause.
    #[error("{path}: {source}")]
    AtPath {
        /// The path given, or the entry relative to the job's directory.
        path: String,
        /// What went wrong there.
        #[source]
        source: Box<Error>,
    },
    /// An error from the host operating system.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An I/O error of the kind the POSIX error would give (`NotFound` for
/// `ENOENT`, and so on), carrying this error and its message; a host error
/// is passed on as it is.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        if let Error::Io(io) = e {
            return io;
        }
        let kind = match e.innermost().os_code() {
            Some(code) => std::io::Error::from_raw_os_error(code).kind(),
            None => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

impl Error {
    /// This error, naming the entry `path` it happened at.
    pub(crate) fn at(self, path: impl Into<String>) -> Error {
        Error::AtPath {
            path: path.into(),
            source: Box::new(self),
        }
    }

    /// The host's error number for the POSIX error this is, if it is one.
    fn os_code(&self) -> Option<i32> {
        use rustix::io::Errno as E;
        let errno = match self {
            Error::NotFound => E::NOENT,
            Error::Exists => E::EXIST,
            Error::NotDir => E::NOTDIR,
            Error::IsDir => E::ISDIR,
            Error::NotEmpty => E::NOTEMPTY,
            Error::Loop => E::LOOP,
            Error::NameTooLong => E::NAMETOOLONG,
            Error::Invalid | Error::Mount { .. } | Error::Archive(_) => E::INVAL,
            Error::Escape | Error::NotPermitted => E::PERM,
            Error::ReadOnly => E::ROFS,
            Error::CrossDevice | Error::OtherMount(_) => E::XDEV,
            Error::Busy => E::BUSY,
            Error::NoSpace => E::NOSPC,
            Error::FileTooBig => E::FBIG,
            Error::TooManyOpen => E::MFILE,
            Error::BadHandle => E::BADF,
            Error::NotSupported => E::NOTSUP,
            _ => return None,
        };
        Some(errno.raw_os_error())
    }

    /// The error without the entry names wrapped around it.
    pub fn innermost(&self) -> &Error {
        let mut e = self;
        while let Error::AtPath { source, .. } = e {
            e = source;
        }
        e
    }

    /// [`innermost`](Error::innermost), by value: for
    /// `.map_err(Error::into_innermost)` before matching on the cause.
    pub fn into_innermost(self) -> Error {
        let mut e = self;
        while let Error::AtPath { source, .. } = e {
            e = *source;
        }
        e
    }

    /// The variant for an error of the host operating system, so that the
    /// layers above can tell `ENOENT` from `EEXIST` whatever the backend.
    pub(crate) fn from_host(e: std::io::Error) -> Error {
        use rustix::io::Errno as E;
        let Some(code) = e.raw_os_error() else {
            // cap-std reports an attempt to leave its directory without an
            // OS error code.
            return match e.kind() {
                std::io::ErrorKind::PermissionDenied => Error::Escape,
                std::io::ErrorKind::InvalidInput => Error::Invalid,
                _ => Error::Io(e),
            };
        };
        match E::from_raw_os_error(code) {
            E::NOENT => Error::NotFound,
            E::EXIST => Error::Exists,
            E::NOTDIR => Error::NotDir,
            E::ISDIR => Error::IsDir,
            E::NOTEMPTY => Error::NotEmpty,
            E::LOOP => Error::Loop,
            E::NAMETOOLONG => Error::NameTooLong,
            E::INVAL => Error::Invalid,
            E::PERM => Error::NotPermitted,
            E::ROFS => Error::ReadOnly,
            E::XDEV => Error::CrossDevice,
            E::BUSY => Error::Busy,
            E::NOSPC => Error::NoSpace,
            E::FBIG => Error::FileTooBig,
            E::MFILE | E::NFILE => Error::TooManyOpen,
            E::BADF => Error::BadHandle,
            _ => Error::Io(e),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
