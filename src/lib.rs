pub mod error;
pub mod namespace;
pub mod runtime;
pub mod storage;
mod vfs;
pub mod wasi;

pub use error::{Error, Result};
pub use namespace::Metadata;
pub use vfs::{DirEntry, Vfs};
