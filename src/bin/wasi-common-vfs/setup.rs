//! From flags to trees: stores opened, mounts built, archives and host
//! copies loaded, preopens pushed, archives saved. Every failure names the
//! flag value it came from.

use crate::Failure;
use crate::args::{Preopen, RunArgs, Store};
use crate::progress;
use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};
use std::ffi::{OsStr, OsString};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use wasi_common::WasiCtx;
use wasi_common_vfs::{HostDir, Limits, MemFs, Overlay, Storage, Vfs};

/// The trees a guest runs on: one mount table for absolute guest paths,
/// and a tree of its own for each plain preopen name.
pub struct Trees {
    /// The tree of absolute paths and the paths to preopen in it.
    main: Option<(Vfs, Vec<String>)>,
    plain: Vec<(String, Vfs)>,
}

/// The store a preopen names; host directories must exist.
fn open_store(p: &Preopen) -> Result<Box<dyn Storage>, Failure> {
    let host =
        |dir: &Path| HostDir::open(dir).map_err(|e| Failure::runtime(format!("{}: {e}", p.guest)));
    Ok(match &p.store {
        Store::Mem | Store::MemCopy(_) | Store::Tar(_) => Box::new(MemFs::new()),
        Store::Host(dir) => Box::new(host(dir)?),
        Store::HostReadOnly(dir) => Box::new(host(dir)?.read_only()),
        Store::Overlay(dir) => Box::new(Overlay::new(host(dir)?)),
    })
}

/// Fills an in-memory store from a host copy or an archive.
fn fill(vfs: &Vfs, at: &str, p: &Preopen) -> Result<(), Failure> {
    match &p.store {
        Store::MemCopy(dir) => vfs
            .copy_in(dir, at)
            .map_err(|e| Failure::runtime(format!("{}=mem:{}: {e}", p.guest, dir.display()))),
        Store::Tar(file) => {
            let named = |e: &dyn std::fmt::Display| {
                Failure::runtime(format!("{}=tar:{}: {e}", p.guest, file.display()))
            };
            let f = std::fs::File::open(file).map_err(|e| named(&e))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let reader = progress::reader(f, size, &format!("loading {}", file.display()));
            vfs.load_tar(std::io::BufReader::new(reader), at)
                .map_err(|e| named(&e))
        }
        _ => Ok(()),
    }
}

impl Trees {
    pub fn build(args: &RunArgs) -> Result<Trees, Failure> {
        let mut limits = Limits::default();
        limits.bytes = args.limit_bytes.0;
        limits.inodes = args.limit_inodes.0;
        limits.file_size = args.limit_file_size.0;
        limits.open_files = args.limit_open_files.0;
        let all: Vec<&Preopen> = args.dirs.iter().chain(&args.mounts).collect();
        if all.is_empty() {
            // The embedded default.
            let vfs = Vfs::builder()
                .limits(limits)
                .build()
                .map_err(|e| Failure::usage(e.to_string()))?;
            vfs.create_dir("/tmp")
                .map_err(|e| Failure::runtime(e.to_string()))?;
            return Ok(Trees {
                main: Some((vfs, vec!["/".to_owned()])),
                plain: Vec::new(),
            });
        }
        let (absolute, plain): (Vec<&Preopen>, Vec<&Preopen>) =
            all.into_iter().partition(|p| p.guest.starts_with('/'));
        let main = if absolute.is_empty() {
            None
        } else {
            let mut builder = Vfs::builder().limits(limits);
            for p in &absolute {
                builder = builder.mount(&p.guest, open_store(p)?);
            }
            let vfs = builder.build().map_err(|e| Failure::usage(e.to_string()))?;
            let mut paths: Vec<String> = absolute.iter().map(|p| p.guest.clone()).collect();
            // Parents first, as wasi-libc expects no particular order but
            // people reading `fd_prestat` do.
            paths.sort_by_key(|p| p.split('/').filter(|c| !c.is_empty()).count());
            for p in &absolute {
                fill(&vfs, &p.guest, p)?;
            }
            Some((vfs, paths))
        };
        let mut plain_trees = Vec::new();
        for p in plain {
            let vfs = Vfs::builder()
                .limits(limits)
                .mount("/", open_store(p)?)
                .build()
                .map_err(|e| Failure::usage(e.to_string()))?;
            fill(&vfs, "/", p)?;
            plain_trees.push((p.guest.clone(), vfs));
        }
        Ok(Trees {
            main,
            plain: plain_trees,
        })
    }

    /// Pushes every preopen into `ctx`, in flag order within each kind.
    pub fn preopen(&self, ctx: &WasiCtx) -> Result<(), Failure> {
        if let Some((vfs, paths)) = &self.main {
            for path in paths {
                vfs.preopen(ctx, path, path)
                    .map_err(|e| Failure::runtime(e.to_string()))?;
            }
        }
        for (name, vfs) in &self.plain {
            vfs.preopen(ctx, "/", name)
                .map_err(|e| Failure::runtime(format!("{name}: {}", e.innermost())))?;
        }
        Ok(())
    }

    /// The tree and path behind a `--save` guest name.
    fn find(&self, guest: &str) -> Option<(&Vfs, String)> {
        if guest.starts_with('/') {
            return self.main.as_ref().map(|(vfs, _)| (vfs, guest.to_owned()));
        }
        self.plain
            .iter()
            .find(|(name, _)| name == guest)
            .map(|(_, vfs)| (vfs, "/".to_owned()))
    }

    /// Checks, before the guest runs, that every `--save` names a tree and
    /// a place an archive can be written, so a typo costs no guest work.
    /// The destination directories are opened now: what the guest does to
    /// host paths meanwhile cannot move where the archives land.
    pub fn check_saves(&self, args: &RunArgs) -> Result<Vec<SaveTarget>, Failure> {
        let mut targets = Vec::new();
        for (guest, file) in &args.saves {
            let named =
                |what: String| Failure::usage(format!("--save {guest}={}: {what}", file.display()));
            if self.find(guest).is_none() {
                return Err(named(format!("no mount or preopen named {guest}")));
            }
            let (Some(name), parent) = (file.file_name(), file.parent()) else {
                return Err(named("not a file name".into()));
            };
            let parent = match parent {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let dir =
                Dir::open_ambient_dir(&parent, cap_std::ambient_authority()).map_err(|e| {
                    named(format!(
                        "cannot open the directory {}: {e}",
                        parent.display()
                    ))
                })?;
            if dir.symlink_metadata(name).is_ok_and(|m| m.is_dir()) {
                return Err(named("a directory is in the way".into()));
            }
            // Writable: a probe file, made and removed as the archive will be.
            let (probe, probe_name) = create_temp(&dir, name).map_err(|e| {
                named(format!(
                    "cannot write in the directory {}: {e}",
                    parent.display()
                ))
            })?;
            drop(probe);
            let _ = dir.remove_file(&probe_name);
            targets.push(SaveTarget {
                guest: guest.clone(),
                file: file.clone(),
                dir,
                name: name.to_owned(),
            });
        }
        Ok(targets)
    }

    /// Writes each `--save` archive to a fresh temporary file beside its
    /// destination, created exclusively (so never through a symlink), and
    /// renames it into place once complete. A failed save does not stop
    /// the others; every failure is returned, naming the tree and the
    /// entry.
    pub fn save(&self, targets: &[SaveTarget]) -> Vec<Failure> {
        let mut failures = Vec::new();
        for target in targets {
            if let Err(e) = self.save_one(target) {
                failures.push(Failure::runtime(format!(
                    "--save {}={}: {e}",
                    target.guest,
                    target.file.display()
                )));
            }
        }
        failures
    }

    fn save_one(&self, target: &SaveTarget) -> Result<(), Box<dyn std::error::Error>> {
        let (vfs, path) = self.find(&target.guest).ok_or("no such tree")?;
        let size = progress::tree_size(vfs, &path);
        let (file, temp) = create_temp(&target.dir, &target.name)?;
        let written = (|| -> Result<(), Box<dyn std::error::Error>> {
            let writer = progress::writer(
                std::io::BufWriter::new(file),
                size,
                &format!("saving {}", target.file.display()),
            );
            vfs.save_tar(&path, writer)
                .map_err(|e| format!("tree {}: {e}", target.guest))?;
            Ok(())
        })()
        .and_then(|()| {
            target.dir.rename(&temp, &target.dir, &target.name)?;
            Ok(())
        });
        if written.is_err() {
            let _ = target.dir.remove_file(&temp);
        }
        written
    }
}

/// Where one `--save` archive goes: its directory, opened before the guest
/// ran, and its name there.
pub struct SaveTarget {
    guest: String,
    file: PathBuf,
    dir: Dir,
    name: OsString,
}

/// A new file beside `name` in `dir`, with a name nobody could have
/// guessed, created exclusively: a symlink or file already there makes it
/// try another name, never follows or truncates it.
fn create_temp(dir: &Dir, name: &OsStr) -> std::io::Result<(cap_std::fs::File, OsString)> {
    let state = std::collections::hash_map::RandomState::new();
    let mut last = None;
    for attempt in 0u32..16 {
        let mut temp = OsString::from(".");
        temp.push(name);
        temp.push(format!(".tmp-{:016x}", state.hash_one(attempt)));
        let mut options = OpenOptions::new();
        options
            .write(true)
            .create_new(true)
            .follow(FollowSymlinks::No);
        match dir.open_with(&temp, &options) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}
