//! A tiny shell over `std::fs`, the way tools compiled to WASI reach files:
//! wasi-libc maps each absolute path to the longest matching preopen. Each
//! argument is one command; errors print the errno and go on.
//!
//! `cat PATH`, `ls PATH`, `write PATH TEXT` (like `echo TEXT > PATH`),
//! `append PATH TEXT` (like `printf TEXT >> PATH`),
//! `mkdir PATH`, `rm PATH`, `rmdir PATH`, `mv FROM TO`, `ln FROM TO` (a hard
//! link), `fill PATH BYTES`, `touch-many PREFIX N`, `open-many PATH N`,
//! `truncate PATH SIZE`, `symlink TARGET PATH` (like `ln -s`),
//! `plant PREFIX FROM TO TARGET` (symlinks `PREFIX{FROM..TO}` to TARGET),
//! `at-limit PATH` (opens PATH until `EMFILE`, then tries to truncate it
//! and to create `PATH.new`, and reports what each did),
//! `deep DIR LEVELS NAME` (directories `NAME` nested LEVELS deep in DIR,
//! each made from the one above, so the whole path may exceed PATH_MAX,
//! with a file `bottom` at the bottom),
//! `rm-r PATH` (removes a tree as C's `rm -rf` does over wasi-libc: each
//! directory listed in 4 KiB pages continued from the last cookie, its
//! entries removed as they are listed, with the listings of all the
//! directories above still in progress).

use std::fs;
use std::io::Write;

/// `path_symlink` in the directory holding `path`, which std has no
/// stable call for on WASI.
fn symlink(target: &str, path: &str) -> std::io::Result<()> {
    let (dir, name) = match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", path),
    };
    let dir = open_dir(dir)?;
    // SAFETY: `dir` is an open descriptor, closed after this one use.
    unsafe {
        let made = wasi::path_symlink(target, dir, name).map_err(errno);
        wasi::fd_close(dir).map_err(errno)?;
        made
    }
}

fn errno(e: wasi::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw() as i32)
}

const DIR_RIGHTS: wasi::Rights = wasi::RIGHTS_PATH_CREATE_DIRECTORY
    | wasi::RIGHTS_PATH_OPEN
    | wasi::RIGHTS_PATH_CREATE_FILE
    | wasi::RIGHTS_PATH_SYMLINK;

/// A descriptor for the directory `path`, opened as wasi-libc would: from
/// the preopen whose name is the longest prefix of it.
fn open_dir(path: &str) -> std::io::Result<wasi::Fd> {
    let mut best: Option<(wasi::Fd, usize)> = None;
    for fd in 3..64 {
        // SAFETY: probing descriptors that may not exist is what these are for.
        let Ok(wasi::Prestat { u, .. }) = (unsafe { wasi::fd_prestat_get(fd) }) else {
            continue;
        };
        // SAFETY: the tag is a directory, the only kind of preopen.
        let len = unsafe { u.dir.pr_name_len };
        let mut name = vec![0u8; len];
        // SAFETY: `name` has room for the name's length.
        if unsafe { wasi::fd_prestat_dir_name(fd, name.as_mut_ptr(), len) }.is_err() {
            continue;
        }
        let name = String::from_utf8_lossy(&name)
            .trim_end_matches('/')
            .to_owned();
        let matches = path == name
            || path.starts_with(&format!("{name}/"))
            || (name.is_empty() && path.starts_with('/'));
        if matches && best.is_none_or(|(_, l)| name.len() > l) {
            best = Some((fd, name.len()));
        }
    }
    let (fd, len) = best.ok_or_else(|| std::io::Error::from_raw_os_error(44))?;
    let rest = path[len..].trim_start_matches('/');
    let rest = if rest.is_empty() { "." } else { rest };
    // SAFETY: `fd` is a preopen.
    unsafe {
        wasi::path_open(
            fd,
            0,
            rest,
            wasi::OFLAGS_DIRECTORY,
            DIR_RIGHTS,
            DIR_RIGHTS,
            0,
        )
    }
    .map_err(errno)
}

fn deep(dir: &str, levels: usize, name: &str) -> std::io::Result<String> {
    let mut fd = open_dir(dir)?;
    for _ in 0..levels {
        // SAFETY: `fd` is open (the one above, or one opened below it).
        unsafe {
            wasi::path_create_directory(fd, name).map_err(errno)?;
            let child = wasi::path_open(
                fd,
                0,
                name,
                wasi::OFLAGS_DIRECTORY,
                DIR_RIGHTS,
                DIR_RIGHTS,
                0,
            )
            .map_err(errno)?;
            // Only preopens may stay open: wasi-libc takes any open
            // directory it finds at start-up for one.
            wasi::fd_close(fd).map_err(errno)?;
            fd = child;
        }
    }
    // SAFETY: as above.
    unsafe {
        let rights = wasi::RIGHTS_FD_WRITE;
        let file =
            wasi::path_open(fd, 0, "bottom", wasi::OFLAGS_CREAT, rights, 0, 0).map_err(errno)?;
        let data = [wasi::Ciovec {
            buf: b"deep".as_ptr(),
            buf_len: 4,
        }];
        wasi::fd_write(file, &data).map_err(errno)?;
        wasi::fd_close(file).map_err(errno)?;
        wasi::fd_close(fd).map_err(errno)?;
    }
    Ok(format!("{levels} levels"))
}

/// Removes the tree `name` in `parent`, listing as wasi-libc's `readdir`
/// does; returns how many entries it removed, itself included.
fn remove_tree(parent: wasi::Fd, name: &str) -> Result<u64, wasi::Errno> {
    const RIGHTS: wasi::Rights = wasi::RIGHTS_FD_READDIR
        | wasi::RIGHTS_PATH_OPEN
        | wasi::RIGHTS_PATH_UNLINK_FILE
        | wasi::RIGHTS_PATH_REMOVE_DIRECTORY;
    // SAFETY: plain WASI calls on descriptors this function owns.
    unsafe {
        let fd = wasi::path_open(parent, 0, name, wasi::OFLAGS_DIRECTORY, RIGHTS, RIGHTS, 0)?;
        let mut removed = 0;
        let mut cookie = 0;
        let mut buf = vec![0u8; 4096];
        loop {
            let used = wasi::fd_readdir(fd, buf.as_mut_ptr(), buf.len(), cookie)?;
            let mut pos = 0;
            while pos + 24 <= used {
                let d: wasi::Dirent =
                    std::ptr::read_unaligned(buf[pos..].as_ptr() as *const wasi::Dirent);
                let end = pos + 24 + d.d_namlen as usize;
                if end > used {
                    break;
                }
                let entry = String::from_utf8_lossy(&buf[pos + 24..end]).into_owned();
                if entry != "." && entry != ".." {
                    if d.d_type == wasi::FILETYPE_DIRECTORY {
                        removed += remove_tree(fd, &entry)?;
                    } else {
                        wasi::path_unlink_file(fd, &entry)?;
                        removed += 1;
                    }
                }
                cookie = d.d_next;
                pos = end;
            }
            if used < buf.len() {
                break;
            }
        }
        wasi::fd_close(fd)?;
        wasi::path_remove_directory(parent, name)?;
        Ok(removed + 1)
    }
}

fn run(cmd: &str) -> std::io::Result<String> {
    let words: Vec<&str> = cmd.splitn(3, ' ').collect();
    if let Some(rest) = cmd.strip_prefix("plant ") {
        let w: Vec<&str> = rest.split(' ').collect();
        let [prefix, from, to, target] = w[..] else {
            panic!("plant PREFIX FROM TO TARGET");
        };
        let (from, to): (u64, u64) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
        let mut made = 0;
        for n in from..to {
            if symlink(target, &format!("{prefix}{n}")).is_ok() {
                made += 1;
            }
        }
        return Ok(format!("planted {made}"));
    }
    if let Some(rest) = cmd.strip_prefix("deep ") {
        let w: Vec<&str> = rest.split(' ').collect();
        let [dir, levels, name] = w[..] else {
            panic!("deep DIR LEVELS NAME");
        };
        return deep(dir, levels.parse().unwrap_or(0), name);
    }
    match words.as_slice() {
        ["rm-r", path] => {
            let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
            let parent = open_dir(if dir.is_empty() { "/" } else { dir })?;
            let removed = remove_tree(parent, name).map_err(errno);
            // SAFETY: `parent` was opened above and is not used again.
            unsafe { wasi::fd_close(parent) }.map_err(errno)?;
            Ok(format!("removed {}", removed?))
        }
        ["at-limit", path] => {
            let mut open = Vec::new();
            let full = loop {
                match fs::File::open(path) {
                    Ok(f) => open.push(f),
                    Err(e) => break e,
                }
            };
            let errno = |r: std::io::Result<fs::File>| match r {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(-1)),
            };
            let truncate = errno(fs::OpenOptions::new().write(true).truncate(true).open(path));
            let create = errno(fs::File::create(format!("{path}.new")));
            let size = fs::metadata(path)?.len();
            let made = fs::metadata(format!("{path}.new")).is_ok();
            drop(open);
            Ok(format!(
                "full: errno {}, truncate: {truncate}, create: {create}, size {size}, made {made}",
                full.raw_os_error().unwrap_or(-1)
            ))
        }
        ["truncate", path, size] => {
            let size: u64 = size.parse().unwrap_or(0);
            let f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            f.set_len(size).map(|_| String::new())
        }
        ["symlink", target, path] => symlink(target, path).map(|_| String::new()),
        ["cat", path] => Ok(fs::read_to_string(path)?),
        ["ls", path] => {
            let mut names: Vec<String> = fs::read_dir(path)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            names.sort();
            Ok(names.join(" "))
        }
        ["write", path, text] => fs::write(path, format!("{text}\n")).map(|_| String::new()),
        ["append", path, text] => {
            let mut f = fs::OpenOptions::new().append(true).open(path)?;
            f.write_all(text.as_bytes()).map(|_| String::new())
        }
        ["mkdir", path] => fs::create_dir(path).map(|_| String::new()),
        ["rm", path] => fs::remove_file(path).map(|_| String::new()),
        ["rmdir", path] => fs::remove_dir(path).map(|_| String::new()),
        ["mv", from, to] => fs::rename(from, to).map(|_| String::new()),
        ["ln", from, to] => fs::hard_link(from, to).map(|_| String::new()),
        ["fill", path, bytes] => {
            // Writes BYTES bytes in 64 KiB writes; reports how far it got.
            let want: usize = bytes.parse().unwrap_or(0);
            let mut f = fs::File::create(path)?;
            let block = vec![b'x'; 64 * 1024];
            let mut done = 0;
            while done < want {
                let n = block.len().min(want - done);
                if let Err(e) = f.write_all(&block[..n]) {
                    return Ok(format!(
                        "wrote {done}, then errno {}",
                        e.raw_os_error().unwrap_or(-1)
                    ));
                }
                done += n;
            }
            Ok(format!("wrote {done}"))
        }
        ["touch-many", prefix, count] => {
            let want: usize = count.parse().unwrap_or(0);
            for i in 0..want {
                if let Err(e) = fs::File::create(format!("{prefix}{i}")) {
                    return Ok(format!(
                        "made {i}, then errno {}",
                        e.raw_os_error().unwrap_or(-1)
                    ));
                }
            }
            Ok(format!("made {want}"))
        }
        ["open-many", path, count] => {
            let want: usize = count.parse().unwrap_or(0);
            let mut open = Vec::new();
            for i in 0..want {
                match fs::File::open(path) {
                    Ok(f) => open.push(f),
                    Err(e) => {
                        return Ok(format!(
                            "opened {i}, then errno {}",
                            e.raw_os_error().unwrap_or(-1)
                        ))
                    }
                }
            }
            Ok(format!("opened {want}"))
        }
        _ => panic!("unknown command {cmd:?}"),
    }
}

fn main() {
    for cmd in std::env::args().skip(1) {
        match run(&cmd) {
            Ok(out) => println!("{cmd}: {}", out.trim_end()),
            Err(e) => println!("{cmd}: errno {}", e.raw_os_error().unwrap_or(-1)),
        }
    }
}
