//! Progress bars for archives of more than a few megabytes, on stderr and
//! only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read, Write};
use wasi_common_vfs::Vfs;

/// Archives smaller than this load and save without a bar.
const SHOW_FROM: u64 = 4 << 20;

fn bar(size: u64, what: &str) -> ProgressBar {
    if size < SHOW_FROM || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(size);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// `reader`, counting what is read of an archive of `size` bytes.
pub fn reader<R: Read>(reader: R, size: u64, what: &str) -> impl Read + use<R> {
    bar(size, what).wrap_read(reader)
}

/// `writer`, counting what is written of an archive of about `size` bytes.
pub fn writer<W: Write>(writer: W, size: u64, what: &str) -> impl Write + use<W> {
    bar(size, what).wrap_write(writer)
}

/// Bytes of file data under `path`, to size the bar of a save.
pub fn tree_size(vfs: &Vfs, path: &str) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.trim_end_matches('/').to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in vfs
            .read_dir(if dir.is_empty() { "/" } else { &dir })
            .unwrap_or_default()
        {
            let child = format!("{dir}/{}", entry.name);
            match vfs.symlink_metadata(&child) {
                Ok(m) if m.is_dir() => pending.push(child),
                Ok(m) => total += m.size,
                Err(_) => {}
            }
        }
    }
    total
}
