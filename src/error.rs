//! The one error type of the crate.
//!
//! Every layer (storage, namespace, host API) reports failures as [`Error`],
//! a POSIX-flavoured enum; the wasi adapter turns it into the errno a guest
//! sees (see `wasi::errno`). This module owns the variants and their messages
//! and must not know about WASI types.

/// A filesystem failure, named after the POSIX error a guest would see.
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
    /// An error from the host operating system.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
