//! A tiny shell over `std::fs`, the way tools compiled to WASI reach files:
//! wasi-libc maps each absolute path to the longest matching preopen. Each
//! argument is one command; errors print the errno and go on.
//!
//! `cat PATH`, `ls PATH`, `write PATH TEXT` (like `echo TEXT > PATH`),
//! `append PATH TEXT` (like `printf TEXT >> PATH`),
//! `mkdir PATH`, `rm PATH`, `rmdir PATH`, `mv FROM TO`, `ln FROM TO` (a hard
//! link).

use std::fs;
use std::io::Write;

fn run(cmd: &str) -> std::io::Result<String> {
    let words: Vec<&str> = cmd.splitn(3, ' ').collect();
    match words.as_slice() {
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
