//! The errno a guest sees for each [`Error`].

use crate::error::Error;
use wasi_common::snapshots::preview_1::types::Errno;

/// The preview-1 errno for `e`; escapes are `EPERM`, as wasi-common's host
/// `Dir` answers them.
pub(crate) fn errno_of(e: &Error) -> Errno {
    match e {
        Error::NotFound => Errno::Noent,
        Error::Exists => Errno::Exist,
        Error::NotDir => Errno::Notdir,
        Error::IsDir => Errno::Isdir,
        Error::NotEmpty => Errno::Notempty,
        Error::Loop => Errno::Loop,
        Error::NameTooLong => Errno::Nametoolong,
        Error::Invalid => Errno::Inval,
        Error::Escape | Error::NotPermitted => Errno::Perm,
        Error::ReadOnly => Errno::Rofs,
        Error::CrossDevice | Error::OtherMount(_) => Errno::Xdev,
        Error::Busy => Errno::Busy,
        Error::NoSpace => Errno::Nospc,
        Error::FileTooBig => Errno::Fbig,
        Error::TooManyOpen => Errno::Mfile,
        Error::BadHandle => Errno::Badf,
        Error::NotSupported => Errno::Notsup,
        Error::Io(_) | Error::HostDir { .. } => Errno::Io,
        Error::Mount { .. } | Error::Archive(_) => Errno::Inval,
        Error::AtPath { source, .. } => errno_of(source),
    }
}

impl From<Error> for wasi_common::Error {
    fn from(e: Error) -> Self {
        tracing::debug!(error = %e, "filesystem call failed");
        match e {
            // wasi-common knows how to read the host's errno.
            Error::Io(io) => io.into(),
            other => errno_of(&other).into(),
        }
    }
}
