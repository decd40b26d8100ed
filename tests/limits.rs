//! Limits: a guest (or the host API) that would exceed one gets ENOSPC,
//! EFBIG or EMFILE, changes nothing, and gets room back by freeing.

mod common;

use wasi_common_vfs::{Error, HostDir, Limits, MemFs, Overlay, Vfs};

fn shell(vfs: &Vfs, commands: &[&str]) -> Vec<String> {
    let out = common::run_with(&common::guest("shell"), commands, false, |ctx| {
        vfs.preopen(ctx, "/", "/").unwrap()
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.lines().map(String::from).collect()
}

fn limited(limits: Limits) -> Vfs {
    Vfs::builder().limits(limits).build().unwrap()
}

#[test]
fn bytes_limit_gives_enospc_and_room_comes_back() {
    let vfs = limited(Limits::default().with_bytes(1 << 20));
    // ENOSPC is 51 in WASI.
    let out = shell(&vfs, &["fill /a 2000000", "rm /a", "fill /b 500000"]);
    assert!(
        out[0].starts_with("fill /a 2000000: wrote ") && out[0].ends_with("then errno 51"),
        "{out:?}"
    );
    assert_eq!(out[2], "fill /b 500000: wrote 500000");
    assert!(matches!(
        vfs.write("/c", vec![0u8; 1 << 20])
            .map_err(Error::into_innermost),
        Err(Error::NoSpace)
    ));
    assert!(
        matches!(vfs.metadata("/c"), Ok(m) if m.size == 0),
        "the refused write left an empty file, no data"
    );
}

#[test]
fn empty_files_run_into_the_inode_and_byte_limits() {
    let vfs = limited(Limits::default().with_inodes(100));
    let out = shell(&vfs, &["touch-many /f 1000"]);
    assert_eq!(out[0], "touch-many /f 1000: made 100, then errno 51");
    let vfs = limited(Limits::default().with_bytes(64 * 1024));
    let out = shell(&vfs, &["touch-many /some-longer-file-name- 100000"]);
    let made: usize = out[0]
        .split_whitespace()
        .nth(4)
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap();
    assert!(made > 50 && made < 1000, "{out:?}");
}

#[test]
fn file_size_limit_gives_efbig_on_every_store() {
    let host = tempfile::tempdir().unwrap();
    let lower = tempfile::tempdir().unwrap();
    let limits = Limits::default().with_file_size(100_000);
    let trees = [
        limited(limits),
        Vfs::builder()
            .mount("/", HostDir::open(host.path()).unwrap())
            .limits(limits)
            .build()
            .unwrap(),
        Vfs::builder()
            .mount("/", Overlay::new(HostDir::open(lower.path()).unwrap()))
            .limits(limits)
            .build()
            .unwrap(),
        Vfs::builder()
            .mount("/m", MemFs::new())
            .limits(limits)
            .build()
            .unwrap(),
    ];
    for vfs in &trees {
        // EFBIG is 22 in WASI; the first 64 KiB block fits, the second not.
        let out = shell(vfs, &["fill /f 300000"]);
        assert_eq!(out[0], "fill /f 300000: wrote 65536, then errno 22");
        assert!(matches!(
            vfs.set_len("/f", 100_001).map_err(Error::into_innermost),
            Err(Error::FileTooBig)
        ));
        vfs.set_len("/f", 100_000).unwrap();
    }
}

#[test]
fn open_files_limit_gives_emfile_and_closing_frees_slots() {
    // The preopen itself is one of the open files.
    let vfs = limited(Limits::default().with_open_files(11));
    vfs.write("/f", b"x").unwrap();
    // EMFILE is 33 in WASI.
    let out = shell(&vfs, &["open-many /f 100", "open-many /f 10"]);
    assert_eq!(
        out,
        [
            "open-many /f 100: opened 10, then errno 33",
            "open-many /f 10: opened 10"
        ]
    );
}

/// At the open-files limit, an open that would truncate or create is
/// refused before it does either: the descriptor slot is taken first.
#[test]
fn an_open_refused_at_the_limit_neither_truncates_nor_creates() {
    let vfs = limited(Limits::default().with_open_files(16));
    vfs.write("/data", b"keep me").unwrap();
    let out = shell(&vfs, &["at-limit /data"]);
    // EMFILE is 33 in WASI.
    assert_eq!(
        out,
        [
            "at-limit /data: full: errno 33, truncate: errno 33, create: errno 33, size 7, made false"
        ]
    );
    assert_eq!(vfs.read("/data").unwrap(), b"keep me");
    // The host API too.
    let wasi_dirs: Vec<_> = (0..16).map_while(|_| vfs.wasi_dir("/").ok()).collect();
    assert!(matches!(
        vfs.write("/data", b"").map_err(Error::into_innermost),
        Err(Error::TooManyOpen)
    ));
    assert!(matches!(
        vfs.write("/other", b"x").map_err(Error::into_innermost),
        Err(Error::TooManyOpen)
    ));
    drop(wasi_dirs);
    assert_eq!(vfs.read("/data").unwrap(), b"keep me");
    assert!(vfs.metadata("/other").is_err());
}

/// Writers appending through separate descriptors at once cannot push a
/// file past the size limit together: the limit is checked with the write.
#[test]
fn concurrent_appends_never_overshoot_the_file_size_limit() {
    use wasi_common::WasiDir;
    use wasi_common::dir::OpenResult;
    use wasi_common::file::{FdFlags, OFlags};
    const LIMIT: u64 = 1 << 20;
    let host = tempfile::tempdir().unwrap();
    for vfs in [
        limited(Limits::default().with_file_size(LIMIT)),
        Vfs::builder()
            .limits(Limits::default().with_file_size(LIMIT))
            .mount("/", HostDir::open(host.path()).unwrap())
            .build()
            .unwrap(),
    ] {
        vfs.write("/log", b"").unwrap();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let dir = vfs.wasi_dir("/").unwrap();
                std::thread::spawn(move || {
                    let opened = common::now(dir.open_file(
                        false,
                        "log",
                        OFlags::empty(),
                        false,
                        true,
                        FdFlags::APPEND,
                    ));
                    let Ok(OpenResult::File(file)) = opened else {
                        panic!("log did not open");
                    };
                    let block = [7u8; 4096];
                    while common::now(file.write_vectored(&[std::io::IoSlice::new(&block)])).is_ok()
                    {
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(vfs.metadata("/log").unwrap().size, LIMIT);
    }
}

/// `Vfs::usage` reports bytes, inodes and open files beside the limits,
/// and they go back down as things are removed and closed.
#[test]
fn usage_reports_what_the_tree_holds() {
    let limits = Limits::default()
        .with_bytes(64 << 20)
        .with_inodes(1000)
        .with_open_files(10);
    let vfs = Vfs::builder().limits(limits).build().unwrap();
    let start = vfs.usage();
    assert_eq!(start.limits, limits);
    assert_eq!(start.open_files, 0);
    vfs.create_dir("/d").unwrap();
    vfs.write("/d/f", vec![7u8; 100_000]).unwrap();
    let used = vfs.usage();
    assert!(
        used.bytes.unwrap() >= start.bytes.unwrap() + 100_000,
        "{used:?}"
    );
    assert_eq!(used.inodes.unwrap(), start.inodes.unwrap() + 2);
    let ctx = wasi_common::sync::WasiCtxBuilder::new().build();
    vfs.preopen(&ctx, "/d", "/d").unwrap();
    assert_eq!(vfs.usage().open_files, 1, "a preopen is an open directory");
    drop(ctx);
    vfs.remove_dir_all("/d").unwrap();
    let end = vfs.usage();
    assert_eq!(
        (end.bytes, end.inodes, end.open_files),
        (start.bytes, start.inodes, 0)
    );
    // Without byte or inode limits nothing is counted.
    assert_eq!(Vfs::new().usage().bytes, None);
}
