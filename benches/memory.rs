//! Bytes a budget charges against the host memory actually held, for the
//! workloads that cost a tree the most bookkeeping: a million empty files,
//! a million small directories, directory entries up to a 256 MiB budget,
//! and a directory filled with a million links and emptied, three times.
//!
//! ```sh
//! cargo bench --bench memory
//! ```
//!
//! Each workload runs in a child process of its own, which reports the
//! budget's count and the growth of its resident set (`VmRSS`), so that
//! what one workload leaves in the allocator does not blur the next. Run
//! without `--bench` (as `cargo test` does) it uses tiny sizes and only
//! checks that everything still runs.

use std::process::Command;
use std::sync::Arc;
use wasi_common_vfs::storage::budget::Budget;
use wasi_common_vfs::storage::{NewNode, Storage};
use wasi_common_vfs::{Error, MemFs};

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number");
    kib * 1024
}

/// A fresh store with a budget of `max_bytes`.
fn store(max_bytes: u64) -> (MemFs, Arc<Budget>) {
    let fs = MemFs::new();
    let budget = Arc::new(Budget::new(max_bytes, u64::MAX));
    fs.attach_budget(budget.clone());
    (fs, budget)
}

/// Runs `workload` at size `n` in this process; prints the bytes charged
/// and the bytes the resident set grew by, and for `link-cycles` the
/// growth from the first cycle's end to the last's.
fn child(workload: &str, n: u64) {
    let before = rss();
    match workload {
        "files" => {
            let (fs, budget) = store(u64::MAX);
            let root = fs.root();
            for i in 0..n {
                fs.create(root, &format!("f{i}"), NewNode::File).unwrap();
            }
            println!("{} {}", budget.bytes_used(), rss() - before);
        }
        "dirs" => {
            let (fs, budget) = store(u64::MAX);
            let root = fs.root();
            for i in 0..n {
                let d = fs.create(root, &format!("d{i}"), NewNode::Dir).unwrap();
                fs.create(d.ino, "x", NewNode::File).unwrap();
            }
            println!("{} {}", budget.bytes_used(), rss() - before);
        }
        "entries" => {
            let (fs, budget) = store(n);
            let root = fs.root();
            let f = fs.create(root, "f", NewNode::File).unwrap().ino;
            let mut i = 0u64;
            loop {
                match fs.link(f, root, &format!("link-{i}")) {
                    Ok(_) => i += 1,
                    Err(Error::NoSpace) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            println!("{} {}", budget.bytes_used(), rss() - before);
        }
        "link-cycles" => {
            let (fs, budget) = store(u64::MAX);
            let root = fs.root();
            let f = fs.create(root, "f", NewNode::File).unwrap().ino;
            let d = fs.create(root, "d", NewNode::Dir).unwrap().ino;
            let (mut peak, mut held, mut after_first) = (0, 0, 0);
            for cycle in 0..3 {
                for i in 0..n {
                    fs.link(f, d, &format!("link-{i}")).unwrap();
                }
                if cycle == 0 {
                    (peak, held) = (budget.bytes_used(), rss() - before);
                }
                for i in 0..n {
                    fs.unlink(d, &format!("link-{i}")).unwrap();
                }
                if cycle == 0 {
                    after_first = rss();
                }
            }
            // Charged and held when the first cycle filled the directory;
            // what the second and third cycles added to the resident set
            // (emptied each time); what stays charged once emptied.
            println!(
                "{} {} {} {}",
                peak,
                held,
                rss().saturating_sub(after_first),
                budget.bytes_used()
            );
        }
        other => panic!("unknown workload {other}"),
    }
}

/// Runs `workload` in a child process; the numbers it printed.
fn measure(workload: &str, n: u64) -> Vec<u64> {
    let exe = std::env::current_exe().expect("the bench binary");
    let out = Command::new(exe)
        .args(["--child", workload, &n.to_string()])
        .output()
        .expect("the child runs");
    assert!(
        out.status.success(),
        "{workload}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|w| w.parse().expect("a number"))
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], args[i + 2].parse().expect("a size"));
        return;
    }
    let quick = !args.iter().any(|a| a == "--bench");
    let (million, budget) = if quick {
        (2_000, 1 << 20)
    } else {
        (1_000_000, 256 << 20)
    };
    println!(
        "{:<40} {:>12} {:>12} {:>10}",
        "workload", "charged MiB", "held MiB", "held/chg"
    );
    for (workload, label, n) in [
        ("files", format!("{million} empty files"), million),
        (
            "dirs",
            format!("{million} directories, one file each"),
            million,
        ),
        (
            "entries",
            format!("links up to a {} MiB budget", budget >> 20),
            budget,
        ),
    ] {
        let m = measure(workload, n);
        let (charged, held) = (m[0], m[1]);
        println!(
            "{:<40} {:>12.1} {:>12.1} {:>9.2}x",
            label,
            mib(charged),
            mib(held),
            held as f64 / charged as f64
        );
    }
    let m = measure("link-cycles", million);
    let (peak, held, added, left) = (m[0], m[1], m[2], m[3]);
    println!(
        "{:<40} {:>12.1} {:>12.1} {:>9.2}x",
        format!("{million} links in one directory"),
        mib(peak),
        mib(held),
        held as f64 / peak as f64
    );
    println!(
        "{:<40} {:>12.1} {:>12.1}",
        "  emptied, twice more filled and emptied",
        mib(left),
        mib(added)
    );
}
