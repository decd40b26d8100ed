//! The wasi adapter: `wasi_common::WasiDir` and `WasiFile` over the
//! namespace.
//!
//! Thin by design: it converts `wasi_common` arguments and types to
//! namespace calls and maps [`Error`](crate::Error) to the errno a POSIX
//! system returns. It owns the per-descriptor state (file position, append
//! flag, access mode) and nothing else; it must not interpret paths.

mod dir;
mod errno;
mod file;
pub(crate) mod life;

pub use dir::VfsDir;
pub use file::VfsFile;

use crate::namespace::Metadata;
use crate::storage::{FileKind, TimeSet};
use wasi_common::SystemTimeSpec;
use wasi_common::file::{FileType, Filestat};

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::SymbolicLink,
    }
}

fn filestat(m: Metadata) -> Filestat {
    Filestat {
        device_id: m.dev,
        inode: m.ino,
        filetype: file_type(m.kind),
        nlink: m.nlink,
        size: m.size,
        atim: Some(m.atime),
        mtim: Some(m.mtime),
        ctim: Some(m.ctime),
    }
}

fn time_set(t: Option<SystemTimeSpec>) -> Option<TimeSet> {
    t.map(|t| match t {
        SystemTimeSpec::SymbolicNow => TimeSet::Now,
        SystemTimeSpec::Absolute(t) => TimeSet::At(t.into_std()),
    })
}
