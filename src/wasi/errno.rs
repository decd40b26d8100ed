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
        Error::Io(io) => host_errno(io),
        Error::HostDir { .. } => Errno::Io,
        Error::Mount { .. } | Error::Archive(_) => Errno::Inval,
        Error::AtPath { source, .. } => errno_of(source),
    }
}

/// The preview-1 errno for an error of the host: the same error where
/// WASI has it, `EIO` where it has none. wasi-common's own conversion traps
/// on an errno it does not list (`ETXTBSY` and `ENXIO` among them), which
/// would end the guest for what the host reported as a plain failure.
fn host_errno(e: &std::io::Error) -> Errno {
    use rustix::io::Errno as E;
    let Some(code) = e.raw_os_error() else {
        return match e.kind() {
            std::io::ErrorKind::NotFound => Errno::Noent,
            std::io::ErrorKind::AlreadyExists => Errno::Exist,
            std::io::ErrorKind::InvalidInput => Errno::Inval,
            std::io::ErrorKind::WouldBlock => Errno::Again,
            _ => Errno::Io,
        };
    };
    match E::from_raw_os_error(code) {
        E::TOOBIG => Errno::TooBig,
        E::ACCESS => Errno::Acces,
        E::ADDRINUSE => Errno::Addrinuse,
        E::ADDRNOTAVAIL => Errno::Addrnotavail,
        E::AFNOSUPPORT => Errno::Afnosupport,
        E::AGAIN => Errno::Again,
        E::ALREADY => Errno::Already,
        E::BADF => Errno::Badf,
        E::BADMSG => Errno::Badmsg,
        E::BUSY => Errno::Busy,
        E::CANCELED => Errno::Canceled,
        E::CHILD => Errno::Child,
        E::CONNABORTED => Errno::Connaborted,
        E::CONNREFUSED => Errno::Connrefused,
        E::CONNRESET => Errno::Connreset,
        E::DEADLK => Errno::Deadlk,
        E::DESTADDRREQ => Errno::Destaddrreq,
        E::DOM => Errno::Dom,
        E::DQUOT => Errno::Dquot,
        E::EXIST => Errno::Exist,
        E::FAULT => Errno::Fault,
        E::FBIG => Errno::Fbig,
        E::HOSTUNREACH => Errno::Hostunreach,
        E::IDRM => Errno::Idrm,
        E::ILSEQ => Errno::Ilseq,
        E::INPROGRESS => Errno::Inprogress,
        E::INTR => Errno::Intr,
        E::INVAL => Errno::Inval,
        E::ISCONN => Errno::Isconn,
        E::ISDIR => Errno::Isdir,
        E::LOOP => Errno::Loop,
        E::MFILE => Errno::Mfile,
        E::MLINK => Errno::Mlink,
        E::MSGSIZE => Errno::Msgsize,
        E::MULTIHOP => Errno::Multihop,
        E::NAMETOOLONG => Errno::Nametoolong,
        E::NETDOWN => Errno::Netdown,
        E::NETRESET => Errno::Netreset,
        E::NETUNREACH => Errno::Netunreach,
        E::NFILE => Errno::Nfile,
        E::NOBUFS => Errno::Nobufs,
        E::NODEV => Errno::Nodev,
        E::NOENT => Errno::Noent,
        E::NOEXEC => Errno::Noexec,
        E::NOLCK => Errno::Nolck,
        E::NOLINK => Errno::Nolink,
        E::NOMEM => Errno::Nomem,
        E::NOMSG => Errno::Nomsg,
        E::NOPROTOOPT => Errno::Noprotoopt,
        E::NOSPC => Errno::Nospc,
        E::NOSYS => Errno::Nosys,
        E::NOTCONN => Errno::Notconn,
        E::NOTDIR => Errno::Notdir,
        E::NOTEMPTY => Errno::Notempty,
        E::NOTRECOVERABLE => Errno::Notrecoverable,
        E::NOTSOCK => Errno::Notsock,
        E::NOTSUP => Errno::Notsup,
        E::NOTTY => Errno::Notty,
        E::NXIO => Errno::Nxio,
        E::OVERFLOW => Errno::Overflow,
        E::OWNERDEAD => Errno::Ownerdead,
        E::PERM => Errno::Perm,
        E::PIPE => Errno::Pipe,
        E::PROTO => Errno::Proto,
        E::PROTONOSUPPORT => Errno::Protonosupport,
        E::PROTOTYPE => Errno::Prototype,
        E::RANGE => Errno::Range,
        E::ROFS => Errno::Rofs,
        E::SPIPE => Errno::Spipe,
        E::SRCH => Errno::Srch,
        E::STALE => Errno::Stale,
        E::TIMEDOUT => Errno::Timedout,
        E::TXTBSY => Errno::Txtbsy,
        E::XDEV => Errno::Xdev,
        _ => Errno::Io,
    }
}

impl From<Error> for wasi_common::Error {
    fn from(e: Error) -> Self {
        tracing::debug!(error = %e, "filesystem call failed");
        errno_of(&e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno as E;

    fn seen_by_guest(e: std::io::Error) -> Option<Errno> {
        wasi_common::Error::from(Error::Io(e)).downcast().ok()
    }

    /// Host errors reach the guest as errnos, those wasi-common's own
    /// conversion would have made traps included.
    #[test]
    fn host_errors_become_errnos_never_traps() {
        for (host, guest) in [
            (E::TXTBSY, Errno::Txtbsy),
            (E::NXIO, Errno::Nxio),
            (E::NODEV, Errno::Nodev),
            (E::NOSYS, Errno::Nosys),
            (E::ACCESS, Errno::Acces),
            // No WASI errno of its own.
            (E::HWPOISON, Errno::Io),
        ] {
            let e = std::io::Error::from_raw_os_error(host.raw_os_error());
            assert_eq!(seen_by_guest(e), Some(guest), "{host:?}");
        }
        assert_eq!(
            seen_by_guest(std::io::Error::other("no code")),
            Some(Errno::Io)
        );
    }
}
