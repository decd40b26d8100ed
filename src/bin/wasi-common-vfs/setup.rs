//! From flags to trees: stores opened, mounts built, archives and host
//! copies loaded, preopens pushed, archives saved. Every failure names the
//! flag value it came from.

use crate::Failure;
use crate::args::{Preopen, RunArgs, Store};
use crate::progress;
use std::path::Path;
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
        let limits = Limits {
            bytes: args.limit_bytes.0,
            inodes: args.limit_inodes.0,
            file_size: args.limit_file_size.0,
            open_files: args.limit_open_files.0,
        };
        let all: Vec<&Preopen> = args.dirs.iter().chain(&args.mounts).collect();
        if all.is_empty() {
            // The embedded default.
            let vfs = Vfs::builder()
                .limits(limits)
                .build()
                .map_err(|e| Failure::usage(e.to_string()))?;
            vfs.create_dir("/tmp")
                .map_err(|e| Failure::runtime(format!("/tmp: {e}")))?;
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
                    .map_err(|e| Failure::runtime(format!("{path}: {e}")))?;
            }
        }
        for (name, vfs) in &self.plain {
            vfs.preopen(ctx, "/", name)
                .map_err(|e| Failure::runtime(format!("{name}: {e}")))?;
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

    /// Checks, before the guest runs, that every `--save` names a tree.
    pub fn check_saves(&self, args: &RunArgs) -> Result<(), Failure> {
        for (guest, file) in &args.saves {
            if self.find(guest).is_none() {
                return Err(Failure::usage(format!(
                    "--save {guest}={}: no mount or preopen named {guest}",
                    file.display()
                )));
            }
        }
        Ok(())
    }

    /// Writes each `--save` archive: to a temporary file beside it, then
    /// renamed into place, so a reader never sees half an archive.
    pub fn save(&self, args: &RunArgs) -> Result<(), Failure> {
        for (guest, file) in &args.saves {
            let named = |e: &dyn std::fmt::Display| {
                Failure::runtime(format!("--save {guest}={}: {e}", file.display()))
            };
            let (vfs, path) = self.find(guest).ok_or_else(|| named(&"no such tree"))?;
            let size = progress::tree_size(vfs, &path);
            let mut temp_name = file.as_os_str().to_owned();
            temp_name.push(format!(".tmp-{}", std::process::id()));
            let temp = Path::new(&temp_name);
            let result = std::fs::File::create(temp)
                .map_err(|e| named(&e))
                .and_then(|f| {
                    let writer = progress::writer(
                        std::io::BufWriter::new(f),
                        size,
                        &format!("saving {}", file.display()),
                    );
                    vfs.save_tar(&path, writer).map_err(|e| named(&e))?;
                    std::fs::rename(temp, file).map_err(|e| named(&e))
                });
            if result.is_err() {
                let _ = std::fs::remove_file(temp);
            }
            result?;
        }
        Ok(())
    }
}
