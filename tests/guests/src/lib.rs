//! Helpers shared by the test guests.
//!
//! A guest runs a scenario of preview-1 calls against the directory
//! preopened as fd 3 (and fd 4 for calls that involve two directories). Each
//! call's outcome is printed as one line, `label: outcome`, and checked
//! against what POSIX gives; the harness compares the printed transcript of
//! a run on the virtual filesystem with one on wasi-common's host directory.
//! The exit status is the number of failed checks.

use std::fmt::Debug;
pub use wasi::{Errno, Fd};

/// The scenario's directory.
pub const DIR: Fd = 3;
/// A second directory, `sub2` inside [`DIR`], preopened separately.
pub const DIR2: Fd = 4;

/// The errno for a raw return code of an imported function.
pub fn errno(code: u16) -> Errno {
    // SAFETY: `Errno` is a transparent wrapper of the raw u16 code.
    unsafe { core::mem::transmute::<u16, Errno>(code) }
}

/// `Ok` for a raw return code of 0, else its errno.
pub fn check_code(code: i32) -> Result<(), Errno> {
    if code == 0 {
        Ok(())
    } else {
        Err(errno(code as u16))
    }
}

/// True when the guest runs on wasi-common's host directory (the reference)
/// rather than on the virtual filesystem; only documented differences may
/// look at it.
pub fn on_reference() -> bool {
    std::env::var_os("VFS_REFERENCE").is_some()
}

/// Prints outcomes and counts the ones that differ from expectations.
#[derive(Default)]
pub struct Checks {
    failed: u32,
    /// Lines kept rather than printed, for a thread whose transcript is
    /// printed once it has finished.
    kept: Option<Vec<String>>,
}

/// `Ok(value)` or the errno's name, the way outcomes are printed.
pub fn show<T: Debug>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("E{}", e.name()),
    }
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks that keep their transcript for [`Checks::merge`].
    pub fn kept() -> Self {
        Self {
            failed: 0,
            kept: Some(Vec::new()),
        }
    }

    /// Prints the transcript `other` kept and counts its failures.
    pub fn merge(&mut self, other: Checks) {
        for line in other.kept.into_iter().flatten() {
            self.line(line);
        }
        self.failed += other.failed;
    }

    fn line(&mut self, line: String) {
        match &mut self.kept {
            Some(lines) => lines.push(line),
            None => println!("{line}"),
        }
    }

    /// Prints `label: actual`; a mismatch with `expected` counts as failed.
    pub fn eq<T: Debug + PartialEq>(
        &mut self,
        label: &str,
        actual: Result<T, Errno>,
        expected: Result<T, Errno>,
    ) {
        self.line(format!("{label}: {}", show(&actual)));
        if actual != expected {
            self.failed += 1;
            eprintln!(
                "FAILED {label}: got {}, expected {}",
                show(&actual),
                show(&expected)
            );
        }
    }

    /// Checks only the outcome's success or errno, not the value.
    pub fn outcome<T: Debug>(
        &mut self,
        label: &str,
        actual: Result<T, Errno>,
        expected: Result<(), Errno>,
    ) {
        self.eq(label, actual.map(drop), expected);
    }

    /// Prints `label: value`; fails unless `ok`.
    pub fn that(&mut self, label: &str, value: impl Debug, ok: bool) {
        self.line(format!("{label}: {value:?}"));
        if !ok {
            self.failed += 1;
            eprintln!("FAILED {label}: {value:?}");
        }
    }

    /// Exits with the number of failed checks.
    pub fn finish(self) -> ! {
        std::process::exit(self.failed.min(125) as i32)
    }
}

pub const RW: wasi::Rights = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE;

/// Every right a file descriptor can carry (wasi-common ignores rights
/// beyond read and write, but guests built with wasi-libc ask for these).
pub const ALL: wasi::Rights = u64::MAX >> 35;

/// `path_open` from `dir`, following symlinks.
pub fn open(
    dir: Fd,
    path: &str,
    oflags: wasi::Oflags,
    rights: wasi::Rights,
    fdflags: wasi::Fdflags,
) -> Result<Fd, Errno> {
    unsafe {
        wasi::path_open(
            dir,
            wasi::LOOKUPFLAGS_SYMLINK_FOLLOW,
            path,
            oflags,
            rights,
            ALL,
            fdflags,
        )
    }
}

/// Creates (or truncates) `path` holding `data`.
pub fn put(dir: Fd, path: &str, data: &[u8]) -> Result<(), Errno> {
    let fd = open(dir, path, wasi::OFLAGS_CREAT | wasi::OFLAGS_TRUNC, RW, 0)?;
    let r = write(fd, data);
    close(fd);
    r.map(drop)
}

/// The whole contents of `path`.
pub fn get(dir: Fd, path: &str) -> Result<Vec<u8>, Errno> {
    let fd = open(dir, path, 0, wasi::RIGHTS_FD_READ, 0)?;
    let r = read_to_end(fd);
    close(fd);
    r
}

pub fn write(fd: Fd, data: &[u8]) -> Result<usize, Errno> {
    unsafe {
        wasi::fd_write(
            fd,
            &[wasi::Ciovec {
                buf: data.as_ptr(),
                buf_len: data.len(),
            }],
        )
    }
}

pub fn read(fd: Fd, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let n = unsafe {
        wasi::fd_read(
            fd,
            &[wasi::Iovec {
                buf: buf.as_mut_ptr(),
                buf_len: buf.len(),
            }],
        )?
    };
    buf.truncate(n);
    Ok(buf)
}

pub fn read_to_end(fd: Fd) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    loop {
        let chunk = read(fd, 4096)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend(chunk);
    }
}

pub fn close(fd: Fd) {
    let _ = unsafe { wasi::fd_close(fd) };
}

/// `path_filestat_get`, following symlinks or not.
pub fn stat(dir: Fd, path: &str, follow: bool) -> Result<wasi::Filestat, Errno> {
    let flags = if follow {
        wasi::LOOKUPFLAGS_SYMLINK_FOLLOW
    } else {
        0
    };
    unsafe { wasi::path_filestat_get(dir, flags, path) }
}

/// The file type's name, for transcripts.
pub fn kind(t: wasi::Filetype) -> &'static str {
    t.name()
}

/// Every entry of a directory listing, `(name, type, next cookie)`, read
/// with a buffer of `buf_len` bytes starting at `cookie`.
pub fn readdir_from(
    fd: Fd,
    cookie: u64,
    buf_len: usize,
) -> Result<Vec<(String, wasi::Filetype, u64)>, Errno> {
    let mut out = Vec::new();
    let mut cookie = cookie;
    let mut buf = vec![0u8; buf_len];
    loop {
        let used = unsafe { wasi::fd_readdir(fd, buf.as_mut_ptr(), buf.len(), cookie)? };
        let mut pos = 0;
        let mut progressed = false;
        while pos + 24 <= used {
            let d: wasi::Dirent =
                unsafe { std::ptr::read_unaligned(buf[pos..].as_ptr() as *const wasi::Dirent) };
            let name_start = pos + 24;
            let name_end = name_start + d.d_namlen as usize;
            if name_end > used {
                break;
            }
            let name = String::from_utf8_lossy(&buf[name_start..name_end]).into_owned();
            out.push((name, d.d_type, d.d_next));
            cookie = d.d_next;
            pos = name_end;
            progressed = true;
        }
        if used < buf.len() {
            return Ok(out);
        }
        if !progressed {
            // The buffer cannot hold even one entry.
            return Err(wasi::ERRNO_NOBUFS);
        }
    }
}

/// Sorted `name:type` of a directory, `.` and `..` included.
pub fn list(fd: Fd) -> Result<Vec<String>, Errno> {
    let mut names: Vec<String> = readdir_from(fd, 0, 256)?
        .into_iter()
        .map(|(n, t, _)| format!("{n}:{}", kind(t)))
        .collect();
    names.sort();
    Ok(names)
}

/// Opens a directory for listing.
pub fn open_dir(dir: Fd, path: &str) -> Result<Fd, Errno> {
    open(
        dir,
        path,
        wasi::OFLAGS_DIRECTORY,
        wasi::RIGHTS_FD_READDIR,
        0,
    )
}
