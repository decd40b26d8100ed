//! One guest module, many stores, one run: this crate's stores against
//! wasi-common's own host directory on tmpfs, with ratios.
//!
//! ```sh
//! cargo bench --bench vfs
//! ```
//!
//! Every workload is timed inside the guest with its monotonic clock, so
//! module compilation is excluded. Each ratio to wasi-common's directory
//! comes with a range that holds the true ratio with 95% confidence;
//! `-- --bench --rounds=N` (nine by default) narrows the ranges with more
//! rounds. Run without `--bench` (as `cargo test` does) it uses tiny sizes
//! and only checks that everything still runs and that the ranges are
//! taken at the right ranks.

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Instant;
use wasi_common_vfs::{HostDir, MemFs, Overlay, Vfs};

/// Counts the bytes allocated and not freed while [`COUNTING`] is on. Off,
/// it writes nothing shared: one counter written by every allocation
/// would slow the threaded workload down by itself.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Where host directories are made: tmpfs when the machine has it.
fn scratch() -> (PathBuf, &'static str) {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        (shm.to_path_buf(), "/dev/shm (tmpfs)")
    } else {
        (std::env::temp_dir(), "the temp dir (no /dev/shm)")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Store {
    Reference,
    Mem,
    Host,
    Overlay,
    Nested,
}

impl Store {
    const ALL: [Store; 5] = [
        Store::Reference,
        Store::Mem,
        Store::Host,
        Store::Overlay,
        Store::Nested,
    ];

    fn name(self) -> &'static str {
        match self {
            Store::Reference => "wasi-common host dir",
            Store::Mem => "MemFs",
            Store::Host => "HostDir",
            Store::Overlay => "Overlay/HostDir",
            Store::Nested => "nested mount",
        }
    }
}

/// Runs the bench guest with `args` on `store`; returns `(ops, seconds)` per
/// reported workload.
fn run(store: Store, args: &[&str], base: &Path) -> BTreeMap<String, (f64, f64)> {
    let module = common::guest("bench");
    let tmp = tempfile::tempdir_in(base).unwrap();
    let out = match store {
        Store::Reference => common::run_with(&module, args, true, |ctx| {
            let d = cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority())
                .unwrap();
            ctx.push_preopened_dir(
                Box::new(wasi_common::sync::dir::Dir::from_cap_std(d)),
                "/sandbox",
            )
            .unwrap();
        }),
        _ => {
            let (vfs, sandbox) = match store {
                Store::Mem => (Vfs::new(), "/"),
                Store::Host => (
                    Vfs::builder()
                        .mount("/", HostDir::open(tmp.path()).unwrap())
                        .build()
                        .unwrap(),
                    "/",
                ),
                Store::Overlay => {
                    let overlay = Overlay::new(HostDir::open(tmp.path()).unwrap());
                    (Vfs::builder().mount("/", overlay).build().unwrap(), "/")
                }
                _ => (
                    Vfs::builder()
                        .mount("/nested/box", MemFs::new())
                        .build()
                        .unwrap(),
                    "/nested/box",
                ),
            };
            common::run_with(&module, args, false, |ctx| {
                vfs.preopen(ctx, sandbox, "/sandbox").unwrap()
            })
        }
    };
    assert_eq!(out.code, 0, "{}: {:?}\n{}", store.name(), args, out.stderr);
    out.stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((
                f.first()?.to_string(),
                (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?),
            ))
        })
        .collect()
}

/// The middle of `rates` (the mean of the two middle ones for an even
/// count).
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    let mid = rates.len() / 2;
    match rates.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => rates[mid],
        _ => (rates[mid - 1] + rates[mid]) / 2.0,
    }
}

/// A range of `sorted` that holds the median of the distribution it was
/// drawn from with at least 95% confidence: the `k`-th smallest and `k`-th
/// largest sample, for the largest `k` at which fewer than `k` samples fall
/// on one side of that median with a probability of 2.5% at most. It
/// assumes only that the samples are independent draws of one
/// distribution; with fewer than six there is no such range.
fn median_interval(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    // P(at most `j` of `n` fair coins land heads), summed in logarithms so
    // that no term underflows however many rounds ran.
    let mut ln_choose = 0.0f64;
    let mut below = 0.0f64;
    let mut k = 0;
    for j in 0..n / 2 {
        if j > 0 {
            ln_choose += ((n - j + 1) as f64 / j as f64).ln();
        }
        let next = below + (ln_choose - n as f64 * std::f64::consts::LN_2).exp();
        if next > 0.025 {
            break;
        }
        below = next;
        k = j + 1;
    }
    (k > 0).then(|| (sorted[k - 1], sorted[n - k]))
}

/// The ranges [`median_interval`] gives for a few numbers of samples, the
/// ranks those are from the binomial distribution: run as part of the
/// tiny run `cargo test` makes.
fn check_median_interval() {
    let ranks = |n: usize| {
        let samples: Vec<f64> = (1..=n).map(|r| r as f64).collect();
        median_interval(&samples).map(|(lo, hi)| (lo as usize, hi as usize))
    };
    assert_eq!(ranks(5), None, "five samples fall on one side with 6% odds");
    assert_eq!(ranks(6), Some((1, 6)));
    assert_eq!(ranks(9), Some((2, 8)));
    assert_eq!(ranks(27), Some((8, 20)));
    assert_eq!(ranks(81), Some((32, 50)));
    assert_eq!(ranks(2000), Some((956, 1045)));
}

/// The order of the stores (indices into [`Store::ALL`]) in the next round:
/// a shuffle drawn from `seed`, the same in every run.
fn round_order(seed: &mut u64) -> [usize; Store::ALL.len()] {
    let mut order: [usize; Store::ALL.len()] = std::array::from_fn(|i| i);
    for top in (1..order.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        order.swap(top, (*seed % (top as u64 + 1)) as usize);
    }
    order
}

/// Plain `memcpy` bandwidth for 64 KiB blocks, bytes per second.
fn memcpy_bandwidth(total: usize) -> f64 {
    let src = vec![0x5Au8; total];
    let mut dst = vec![0u8; 64 * 1024];
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        for chunk in src.chunks(dst.len()) {
            dst[..chunk.len()].copy_from_slice(chunk);
            std::hint::black_box(&mut dst);
        }
        best = best.max(total as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// Storing new data: 64 KiB blocks copied into newly mapped memory, each
/// block populated with one `madvise` first as `MemFs` does, bytes per
/// second. Every store that keeps new data in memory (tmpfs too) pays for
/// fresh pages; on a virtual machine whose host backs memory lazily, that,
/// not the store, bounds sequential writes.
fn fresh_memory_bandwidth(total: usize) -> f64 {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
    const BLOCK: usize = 64 * 1024;
    let block = vec![0x5Au8; BLOCK];
    // SAFETY: a new private mapping, written only below and unmapped after.
    let base = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            total,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .expect("fresh memory for the measurement");
    let start = Instant::now();
    for i in 0..total / BLOCK {
        // SAFETY: block `i` lies inside the mapping.
        unsafe {
            let at = base.cast::<u8>().add(i * BLOCK);
            #[cfg(target_os = "linux")]
            let _ = rustix::mm::madvise(at.cast(), BLOCK, rustix::mm::Advice::LinuxPopulateWrite);
            std::ptr::copy_nonoverlapping(block.as_ptr(), at, BLOCK);
        }
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    // SAFETY: the mapping made above, no longer used.
    unsafe { munmap(base, total) }.expect("unmapping the measurement's memory");
    rate
}

/// The namespace's own cost for a 16-component path (no guest, no
/// wasi-common): `Vfs::metadata` calls per second.
fn host_stat_depth16(n: u32) -> f64 {
    let vfs = Vfs::new();
    let deep: String = (0..16).map(|i| format!("/d{i}")).collect();
    vfs.create_dir_all(&deep).unwrap();
    let leaf = format!("{deep}/leaf");
    vfs.write(&leaf, b"x").unwrap();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(vfs.metadata(&leaf).unwrap());
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// Host memory held per empty file after creating `n` of them through the
/// host API: (allocated bytes, resident bytes) per file.
fn memory_per_empty_file(n: usize) -> (f64, f64) {
    let vfs = Vfs::new();
    vfs.create_dir("/many").unwrap();
    COUNTING.store(true, Ordering::Relaxed);
    let (live, rss) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    let mut name = String::new();
    for i in 0..n {
        name.clear();
        name.push_str("/many/f");
        name.push_str(&i.to_string());
        vfs.write(&name, b"").unwrap();
    }
    let per_alloc = (LIVE.load(Ordering::Relaxed) - live) as f64 / n as f64;
    COUNTING.store(false, Ordering::Relaxed);
    let per_rss = rss_bytes().saturating_sub(rss) as f64 / n as f64;
    drop(vfs);
    (per_alloc, per_rss)
}

/// [`memory_per_empty_file`] in a process of its own (this program, run
/// with `--empty-files=N`): its heap starts fresh, so the resident size is
/// honest, and the memory it frees cannot speed up the workloads after it.
fn memory_per_empty_file_apart(n: usize) -> (f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(format!("--empty-files={n}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = text.split_whitespace().map(|f| f.parse().unwrap());
    (figures.next().unwrap(), figures.next().unwrap())
}

/// `environ_sizes_get` + `environ_get` pairs per second over 20 variables,
/// linked with this crate's `runtime::add_to_linker` or (`ours` false)
/// wasi-common's own. wasi-common's builds an error value for each string
/// it copies, which captures a backtrace when library backtraces are on
/// (`RUST_LIB_BACKTRACE=1` for this bench).
fn environ_rate(n: u32, ours: bool) -> f64 {
    use wasmtime::{Engine, Linker, Module, Store};
    let engine = Engine::default();
    let wat = format!(
        r#"(module
          (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start") (local $i i32)
            (loop $again
              (drop (call $sizes (i32.const 0) (i32.const 4)))
              (drop (call $get (i32.const 1024) (i32.const 4096)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $again (i32.lt_u (local.get $i) (i32.const {n}))))))"#
    );
    let module = Module::new(&engine, wat).unwrap();
    let mut linker = Linker::new(&engine);
    if ours {
        wasi_common_vfs::runtime::add_to_linker(&mut linker, |cx| cx).unwrap();
    } else {
        wasi_common::sync::add_to_linker(&mut linker, |cx| cx).unwrap();
    }
    let mut builder = wasi_common::sync::WasiCtxBuilder::new();
    for i in 0..20 {
        builder
            .env(&format!("VARIABLE_{i}"), "a value of about thirty bytes")
            .unwrap();
    }
    let mut store = Store::new(&engine, builder.build());
    let started = Instant::now();
    let status = wasi_common_vfs::runtime::run_command(&mut store, &linker, &module).unwrap();
    assert_eq!(status, 0);
    f64::from(n) / started.elapsed().as_secs_f64()
}

fn main() {
    // wasi-common's own directory builds an error value on some calls that
    // succeed (every `rename` and `link`), which captures a backtrace when
    // `RUST_BACKTRACE` is set and then runs at a fraction of its speed.
    // Library backtraces are off unless the caller chose, so that the
    // figures do not depend on a variable set for other reasons. Nothing
    // has run yet that reads the environment from another thread.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    if let Some(n) = std::env::args().find_map(|a| {
        a.strip_prefix("--empty-files=")
            .and_then(|n| n.parse().ok())
    }) {
        let (per_alloc, per_rss) = memory_per_empty_file(n);
        println!("{per_alloc} {per_rss}");
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        check_median_interval();
    }
    // `cargo bench --bench vfs -- data` runs only the guest workloads whose
    // first argument matches.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    // `--store=HostDir` runs only the store of that name (to
    // trace or profile one store alone).
    let only_store: Option<String> =
        std::env::args().find_map(|a| a.strip_prefix("--store=").map(str::to_owned));
    if let Some(name) = &only_store
        && !Store::ALL.iter().any(|s| s.name() == name)
    {
        let names: Vec<&str> = Store::ALL.iter().map(|s| s.name()).collect();
        eprintln!("--store={name}: no such store; the stores are {names:?}");
        std::process::exit(2);
    }
    let shown = |store: Store| only_store.as_deref().is_none_or(|o| store.name() == o);
    let (files, meta, small_list, large_list, mib, random) = if full {
        (1_000_000, "20000", "5000", "100000", "256", "200000")
    } else {
        (1000, "50", "50", "300", "1", "100")
    };
    let (base, base_name) = scratch();

    let (per_alloc, per_rss) = if only.is_some() || only_store.is_some() {
        (f64::NAN, f64::NAN)
    } else {
        memory_per_empty_file_apart(files)
    };

    let mut samples: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
    // The shared machine drifts within a run, and one round of a store can
    // run a fifth faster or slower than the next for it: the metadata
    // workloads, then the data ones, run in rounds, each round in an order
    // of its own, so that no store always runs first, last or just after
    // the same one. A row's rate is the median of its rounds, and its ratio
    // the median of each round's ratio, which the drift from one round to
    // the next does not reach. (The best round of each store made two
    // stores with the same host calls differ by a tenth.)
    // A data round is short, and its writes swing by a third with the
    // pages the kernel hands out (a C loop of `pwrite`, and one of
    // `writev`, on tmpfs each ranged over 2.0 to 2.9 GB/s): it runs three
    // times as often. The listings, far apart from one store to the next,
    // run once.
    // `--rounds=N` runs N rounds of metadata and 3N of data, for ranges
    // narrow enough to tell two close stores apart.
    let rounds = match std::env::args().find_map(|a| a.strip_prefix("--rounds=").map(str::to_owned))
    {
        None => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                eprintln!("--rounds={n}: the number of rounds must be a whole number above 0");
                std::process::exit(2);
            }
        },
    };
    let (meta_rounds, data_rounds) = match rounds {
        Some(n) => (n, 3 * n),
        None if full => (9, 27),
        // Enough data rounds for the ranges to be printed, and so checked.
        None => (1, 6),
    };
    let mut turns = Vec::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for (args, rounds) in [
        (vec!["meta", meta], meta_rounds),
        (vec!["data", mib, random], data_rounds),
    ] {
        for _ in 0..rounds {
            for i in round_order(&mut seed) {
                turns.push((i, Store::ALL[i], args.clone()));
            }
        }
    }
    for (i, store) in Store::ALL.into_iter().enumerate() {
        turns.push((i, store, vec!["list", small_list]));
        turns.push((i, store, vec!["list", large_list]));
    }
    for (i, store, args) in turns {
        if only.as_deref().is_some_and(|o| o != args[0]) || !shown(store) {
            continue;
        }
        for (name, (ops, seconds)) in run(store, &args, &base) {
            let key = if let Some(size) = name.strip_prefix("list-") {
                if size == small_list {
                    "list (small dir), per entry"
                } else {
                    "list (large dir), per entry"
                }
                .to_owned()
            } else {
                name
            };
            samples.entry((i, key)).or_default().push(ops / seconds);
        }
    }

    let results: BTreeMap<(usize, String), f64> = samples
        .iter()
        .map(|(key, rates)| (key.clone(), median(rates.clone())))
        .collect();
    // Round `r` of every store is sample `r`: each store runs once per
    // round, and the rounds run in order.
    let ratios = |i: usize, workload: &str| {
        let of = |i: usize| samples.get(&(i, workload.to_owned()));
        let (rates, reference) = (of(i)?, of(0)?);
        if rates.len() != reference.len() {
            return None;
        }
        let mut ratios: Vec<f64> = rates.iter().zip(reference).map(|(v, r)| v / r).collect();
        ratios.sort_by(f64::total_cmp);
        Some(ratios)
    };
    let ratio = |i: usize, workload: &str| ratios(i, workload).map(median);

    println!(
        "host directories on {base_name}; sizes: metadata x{meta}, lists of {small_list} and {large_list}, {mib} MiB, {random} random reads"
    );
    println!(
        "{meta_rounds} rounds of metadata, {data_rounds} of data; a rate is the median of its rounds, a ratio the median of each round's ratio to {}",
        Store::Reference.name()
    );
    print!("{:<30}", "workload (ops/s, bytes/s)");
    for store in Store::ALL.into_iter().filter(|s| shown(*s)) {
        print!(" {:>22}", store.name());
    }
    println!();
    let workloads: std::collections::BTreeSet<String> =
        results.keys().map(|(_, w)| w.clone()).collect();
    for workload in &workloads {
        print!("{workload:<30}");
        for (i, _) in Store::ALL.iter().enumerate().filter(|(_, s)| shown(**s)) {
            let v = results.get(&(i, workload.clone())).copied().unwrap_or(0.0);
            // No ratio where the reference did not run (`--store`).
            match ratio(i, workload) {
                Some(x) if i > 0 => print!(" {v:>12.0} ({x:>6.2}x)"),
                _ => print!(" {v:>22.0}"),
            }
        }
        println!();
    }
    // How far each ratio can be trusted: one round's ratio can land a
    // third away from the next on a shared machine, so a store that makes
    // the same host calls as the reference shows a ratio above 1 in one
    // run and below it in the next. A range that includes 1 says the
    // rounds cannot tell the two apart.
    let ranged: Vec<usize> = (1..Store::ALL.len())
        .filter(|i| shown(Store::ALL[*i]))
        .collect();
    let range = |i: usize, w: &str| ratios(i, w).as_deref().and_then(median_interval);
    if workloads
        .iter()
        .any(|w| ranged.iter().any(|i| range(*i, w).is_some()))
    {
        println!();
        println!(
            "ratio to {} [a range that holds the median of a round's ratio with 95% confidence or more]",
            Store::Reference.name()
        );
        print!("{:<30}", "workload");
        for i in &ranged {
            print!(" {:>22}", Store::ALL[*i].name());
        }
        println!();
        for workload in &workloads {
            print!("{workload:<30}");
            for i in &ranged {
                let cell = match (ratio(*i, workload), range(*i, workload)) {
                    (Some(x), Some((lo, hi))) => format!("{x:.2} [{lo:.2}, {hi:.2}]"),
                    (Some(x), None) => format!("{x:.2}"),
                    (None, _) => String::new(),
                };
                print!(" {cell:>22}");
            }
            println!();
        }
    }
    if only.is_some() || only_store.is_some() {
        return;
    }
    let memcpy = memcpy_bandwidth(if full { 256 << 20 } else { 1 << 20 });
    let fresh = fresh_memory_bandwidth(if full { 256 << 20 } else { 1 << 20 });
    let resolve = host_stat_depth16(if full { 1_000_000 } else { 1000 });
    // The best of five rounds: thread timings suffer most from a shared
    // machine, always downwards.
    let thread_rounds = if full { 5 } else { 1 };
    let ops = if full { 200_000 } else { 100 };
    let threads = [1, 2].map(|t| common::threaded_rate(t, ops, thread_rounds));
    let get = |w: &str| results.get(&(1, w.to_owned())).copied().unwrap_or(f64::NAN);
    println!();
    println!(
        "MemFs listing, per-entry rate small/large dir: {:.2} (linear is 1)",
        get("list (small dir), per entry") / get("list (large dir), per entry")
    );
    println!(
        "memcpy, 64 KiB blocks: {:.2} GiB/s; MemFs sequential read is {:.0}% of it",
        memcpy / (1u64 << 30) as f64,
        100.0 * get("seq-read-bytes") / memcpy
    );
    println!(
        "threads on independent files (MemFs, best of {thread_rounds}): 1: {:.0} ops/s, 2: {:.0} ops/s, ratio {:.2}x",
        threads[0],
        threads[1],
        threads[1] / threads[0]
    );
    println!(
        "fresh memory, 64 KiB blocks: {:.2} GiB/s; MemFs sequential write is {:.0}% of it",
        fresh / (1u64 << 30) as f64,
        100.0 * get("seq-write-bytes") / fresh
    );
    println!("host API stat of a depth-16 path (the resolver alone): {resolve:.0}/s");
    let environ = if full { 20_000 } else { 100 };
    let (ours, theirs) = (environ_rate(environ, true), environ_rate(environ, false));
    println!(
        "environ_sizes_get + environ_get, 20 variables, RUST_LIB_BACKTRACE={}: this crate's linker {ours:.0}/s, wasi-common's {theirs:.0}/s, ratio {:.1}x",
        std::env::var("RUST_LIB_BACKTRACE").unwrap_or_default(),
        ours / theirs
    );
    println!(
        "memory per empty file after {files}: {per_alloc:.0} bytes allocated, {per_rss:.0} bytes resident"
    );
}
