//! A virtual filesystem for WebAssembly guests on WASI preview 1 (and 0),
//! served through Wasmtime's `wasi-common` traits.
//!
//! Ordinary preview-1 programs see an in-memory tree instead of the host
//! disk: they cannot tell it from a POSIX filesystem, they cannot leave the
//! directories they were given, and the host reads and writes the same tree
//! through [`Vfs`].
//!
//! # Example
//!
//! ```
//! use wasi_common::sync::WasiCtxBuilder;
//! use wasi_common_vfs::{Vfs, runtime};
//! use wasmtime::{Engine, Linker, Module, Store};
//!
//! # fn main() -> wasmtime::Result<()> {
//! # // The guest: copies `data/input.txt` of its first preopen to
//! # // `data/output.txt` (Wasmtime reads the text format too).
//! # let here = tempfile::tempdir()?;
//! # std::env::set_current_dir(here.path())?;
//! # std::fs::write("guest.wasm", r#"(module
//! #   (import "wasi_snapshot_preview1" "path_open"
//! #     (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
//! #   (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
//! #   (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
//! #   (memory (export "memory") 1)
//! #   (data (i32.const 0) "data/input.txt")
//! #   (data (i32.const 16) "data/output.txt")
//! #   (func $ok (param i32) (if (local.get 0) (then unreachable)))
//! #   (func (export "_start")
//! #     (call $ok (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 14)
//! #       (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 100)))
//! #     (i32.store (i32.const 200) (i32.const 300))
//! #     (i32.store (i32.const 204) (i32.const 64))
//! #     (call $ok (call $read (i32.load (i32.const 100)) (i32.const 200) (i32.const 1) (i32.const 208)))
//! #     (i32.store (i32.const 204) (i32.load (i32.const 208)))
//! #     (call $ok (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 15)
//! #       (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 104)))
//! #     (call $ok (call $write (i32.load (i32.const 104)) (i32.const 200) (i32.const 1) (i32.const 208)))))"#)?;
//! let vfs = Vfs::new();
//! vfs.create_dir_all("/data")?;
//! vfs.write("/data/input.txt", b"hello")?;
//!
//! let ctx = WasiCtxBuilder::new().inherit_stdio().build();
//! vfs.preopen(&ctx, "/", "/")?; // the guest sees the whole tree as `/`
//!
//! let engine = Engine::default();
//! let mut linker = Linker::new(&engine);
//! runtime::add_to_linker(&mut linker, |cx| cx)?;
//! let module = Module::from_file(&engine, "guest.wasm")?;
//! let mut store = Store::new(&engine, ctx);
//! let status = runtime::run_command(&mut store, &linker, &module)?;
//! println!("exit {status}, output {:?}", vfs.read("/data/output.txt"));
//! # assert_eq!((status, vfs.read("/data/output.txt")?), (0, b"hello".to_vec()));
//! # Ok(())
//! # }
//! ```
//!
//! # Architecture
//!
//! Data flows from top to bottom; each layer calls only the one below it.
//!
//! | layer | where | owns |
//! |---|---|---|
//! | runtime glue | [`runtime`] | linking WASI into a `wasmtime::Linker`, running `_start` |
//! | wasi adapter | [`VfsDir`], [`VfsFile`] | `WasiDir`/`WasiFile`, errno mapping, per-descriptor state |
//! | namespace | [`Vfs`] and the private `namespace` module | mount table, the one path resolver, path operations |
//! | storage | [`storage`] | the inode-level [`Storage`] trait; [`MemFs`], [`HostDir`], [`Overlay`], [`ReadOnly`] |
//!
//! Beside the host API, the private `boundary` module moves data across the
//! tree's edge: tar archives in and out ([`Vfs::load_tar`],
//! [`Vfs::save_tar`]) and host directories in ([`Vfs::copy_in`]). It treats
//! both the tree and the incoming data as hostile: loads are staged and
//! committed all or nothing, never through a symlink or into another
//! mount; saves stream in bounded chunks and keep holes.
//!
//! Storage is inode-based, like FUSE's low-level API: an open file is a
//! handle on an inode, so unlinking or renaming an open file behaves as on
//! POSIX. Every path, from a guest or from the host API, is resolved by one
//! resolver, which confines guests to the directory they were given and
//! crosses mountpoints: stores are mounted at absolute paths with
//! [`Vfs::builder`], each mount is its own device (rename or link between
//! mounts is `EXDEV`, removing a mountpoint `EBUSY`; host directories on
//! one host filesystem share a device, and rename and link between them
//! work), and
//! [`Vfs::preopen_mounts`] hands a guest one preopen per mount.
//!
//! ```
//! use wasi_common_vfs::{MemFs, Overlay, Vfs};
//!
//! # fn main() -> wasi_common_vfs::Result<()> {
//! let image = MemFs::new(); // typically HostDir::open("/srv/image")?
//! let layer = Overlay::new(image); // writes stay in memory
//! let vfs = Vfs::builder()
//!     .mount("/", MemFs::new())
//!     .mount("/app", layer.clone())
//!     .build()?;
//! vfs.write("/app/config.toml", b"debug = true")?;
//! assert_eq!(layer.changes()?.added, ["config.toml"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Differences from wasi-common's host directory
//!
//! Where wasi-common's cap-std `Dir` departs from Linux, this crate follows
//! Linux: `fd_allocate` grows files (wasi-common answers `ENOTSUP` for every
//! file), `fd_readdir` cookies stay valid while a directory changes, a
//! trailing slash makes `lstat` follow a symlink and makes `rename` of a
//! file fail with `ENOTDIR`, `rmdir("dir/")` works, and `readlink` returns
//! an absolute target's text. Like cap-std, guests may not create symlinks
//! with absolute targets (`EPERM`).
//!
//! [`HostDir`] holds host directories as open handles and acts beside
//! them with `*at` system calls, never walking a path from its root; its
//! records and handles have a bound whatever the number of host files
//! looked up, and a listing's cursor carries the host's own cookie, so
//! any number of listings can be in progress and none is ever forgotten.

#![warn(missing_docs)]

mod boundary;
mod error;
mod limits;
mod namespace;
pub mod runtime;
pub mod storage;
mod vfs;
mod wasi;

pub use error::{Error, Result};
pub use limits::{Limits, Usage};
pub use namespace::Metadata;
pub use storage::DirEntry;
pub use storage::host::HostDir;
pub use storage::mem::MemFs;
pub use storage::overlay::{Changes, Overlay};
pub use storage::read_only::ReadOnly;
pub use storage::{FileKind, Storage};
pub use vfs::{Vfs, VfsBuilder};
pub use wasi::{VfsDir, VfsFile};

/// The code blocks of the README compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
