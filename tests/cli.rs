//! `wasi-common-vfs run`, tested by running the real binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};
use wasi_common_vfs::Vfs;

const BIN: &str = env!("CARGO_BIN_EXE_wasi-common-vfs");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn guest(name: &str) -> String {
    common::guest_path(name).display().to_string()
}

fn shell(flags: &[&str], commands: &[&str]) -> (i32, String) {
    let g = guest("shell");
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.push(&g);
    args.extend_from_slice(commands);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        stdout(&out) + &stderr(&out),
    )
}

/// A failure reported as exactly one line on stderr, with `status`, naming
/// `names`; no panic, no backtrace.
fn one_line_failure(out: &Output, status: i32, names: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(status), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error:"), "{err}");
    for name in names {
        assert!(err.contains(name), "{name} in {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn the_embedded_default_is_an_in_memory_root_with_tmp() {
    let (status, out) = shell(
        &[],
        &["ls /", "write /tmp/a hello", "cat /tmp/a", "ls /tmp"],
    );
    assert_eq!(status, 0);
    assert_eq!(
        out,
        "ls /: tmp\nwrite /tmp/a hello: \ncat /tmp/a: hello\nls /tmp: a\n"
    );
}

#[test]
fn each_store_spec_with_a_guest() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("from-host"), b"on disk").unwrap();
    let dir = host.path().display().to_string();

    let (status, out) = shell(&["--mount", "/=mem"], &["ls /", "write /x mem", "cat /x"]);
    assert_eq!(
        (status, out.as_str()),
        (0, "ls /: \nwrite /x mem: \ncat /x: mem\n")
    );

    let spec = format!("/w=mem:{dir}");
    let (status, out) = shell(
        &["--mount", &spec],
        &["cat /w/from-host", "write /w/new copy", "ls /w"],
    );
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "cat /w/from-host: on disk\nwrite /w/new copy: \nls /w: from-host new\n"
        )
    );
    assert!(!host.path().join("new").exists(), "mem:DIR works on a copy");

    let spec = format!("/w=host:{dir}");
    let (status, out) = shell(
        &["--mount", &spec],
        &["write /w/written by-guest", "cat /w/from-host"],
    );
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "write /w/written by-guest: \ncat /w/from-host: on disk\n"
        )
    );
    assert_eq!(
        std::fs::read(host.path().join("written")).unwrap(),
        b"by-guest\n"
    );

    // EROFS is 69 in WASI.
    let spec = format!("/w=host:{dir}:ro");
    let (status, out) = shell(
        &["--mount", &spec],
        &["cat /w/from-host", "write /w/nope x", "rm /w/from-host"],
    );
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "cat /w/from-host: on disk\nwrite /w/nope x: errno 69\nrm /w/from-host: errno 69\n"
        )
    );
    assert!(!host.path().join("nope").exists() && host.path().join("from-host").exists());

    let spec = format!("/w=overlay:{dir}");
    let (status, out) = shell(
        &["--mount", &spec],
        &[
            "write /w/from-host changed",
            "cat /w/from-host",
            "rm /w/written",
            "ls /w",
        ],
    );
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "write /w/from-host changed: \ncat /w/from-host: changed\nrm /w/written: \nls /w: from-host\n"
        )
    );
    assert_eq!(
        std::fs::read(host.path().join("from-host")).unwrap(),
        b"on disk",
        "the overlay's lower dir is untouched"
    );
    assert!(host.path().join("written").exists());

    let archive = host.path().join("a.tar");
    let src = Vfs::new();
    src.write("/inside.txt", b"from the archive").unwrap();
    src.save_tar("/", std::fs::File::create(&archive).unwrap())
        .unwrap();
    let spec = format!("/t=tar:{}", archive.display());
    let (status, out) = shell(&["--mount", &spec], &["cat /t/inside.txt"]);
    assert_eq!(
        (status, out.as_str()),
        (0, "cat /t/inside.txt: from the archive\n")
    );
}

#[test]
fn mounts_form_one_tree_and_plain_names_their_own() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), b"session file").unwrap();
    let spec = format!("/mnt/session=host:{}", host.path().display());
    let (status, out) = shell(
        &["--mount", "/=mem", "--mount", &spec],
        &["ls /mnt", "cat /mnt/session/f"],
    );
    assert_eq!(
        (status, out.as_str()),
        (0, "ls /mnt: session\ncat /mnt/session/f: session file\n")
    );

    let (status, out) = shell(
        &["--mount", "fs-tests.dir=mem"],
        &[
            "write fs-tests.dir/x plain",
            "cat fs-tests.dir/x",
            "ls fs-tests.dir",
        ],
    );
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "write fs-tests.dir/x plain: \ncat fs-tests.dir/x: plain\nls fs-tests.dir: x\n"
        )
    );
}

#[test]
fn dir_flag_with_dot_and_with_root() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("here"), b"in cwd").unwrap();
    let g = guest("shell");
    let out = run_in(
        host.path(),
        &["run", "--dir", ".", &g, "cat here", "write made-here x"],
    );
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "cat here: in cwd\nwrite made-here x: \n"),
        "{}",
        stderr(&out)
    );
    assert!(host.path().join("made-here").exists());

    let root = format!("{}::/", host.path().display());
    let out = run(&["run", "--dir", &root, &g, "cat /here", "ls /"]);
    assert_eq!(
        stdout(&out),
        "cat /here: in cwd\nls /: here made-here\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn env_argv0_and_arguments() {
    let g = guest("status");
    let out = run(&["run", "--env", "A=1", &g, "env", "A"]);
    assert_eq!(stdout(&out), "Some(\"1\")\n");
    let out = Command::new(BIN)
        .args(["run", "--env", "FROM_HOST", &g, "env", "FROM_HOST"])
        .env("FROM_HOST", "yes")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Some(\"yes\")\n");
    let out = Command::new(BIN)
        .args(["run", &g, "env", "FROM_HOST"])
        .env("FROM_HOST", "yes")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "None\n", "nothing is inherited by default");
    let out = Command::new(BIN)
        .args(["run", "--inherit-env", &g, "env", "FROM_HOST"])
        .env("FROM_HOST", "all")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Some(\"all\")\n");
    let out = run(&["run", &g, "args", "--flag", "x"]);
    assert_eq!(
        stdout(&out),
        "[\"status.wasm\", \"args\", \"--flag\", \"x\"]\n"
    );
    let out = run(&["run", "--argv0", "tool", &g, "args"]);
    assert_eq!(stdout(&out), "[\"tool\", \"args\"]\n");
}

#[test]
fn exit_statuses() {
    let g = guest("status");
    assert_eq!(run(&["run", &g, "return"]).status.code(), Some(0));
    assert_eq!(run(&["run", &g, "exit3"]).status.code(), Some(3));
    let trap = run(&["run", &g, "trap"]);
    assert_eq!(trap.status.code(), Some(134));
    let err = stderr(&trap);
    assert!(
        err.contains("trapped") && err.contains("unreachable"),
        "{err}"
    );
    assert!(!err.contains("Stack backtrace"), "no host backtrace: {err}");
}

#[test]
fn threaded_guest_runs_without_a_flag() {
    let g = common::threaded_guest_path("threads").display().to_string();
    let out = run(&["run", &g, "own-files", "4"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "ok\n"),
        "{}",
        stderr(&out)
    );
    let out = run(&["run", &g, "exit-in-thread"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn save_then_mount_the_archive_round_trips() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/file.txt"), b"payload").unwrap();
    std::os::unix::fs::symlink("dir/file.txt", src.join("link")).unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(src.join("dir/file.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::set_permissions(
        src.join("dir/file.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let archive = work.path().join("out.tar");

    // The guest adds a hard link and exits non-zero: the archive is still
    // written, and no temporary file is left.
    let mount = format!("/=mem:{}", src.display());
    let save = format!("/={}", archive.display());
    let out = run(&[
        "run",
        "--mount",
        &mount,
        "--save",
        &save,
        &guest("shell"),
        "ln /dir/file.txt /hard",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&[
        "run",
        "--mount",
        &mount,
        "--save",
        &format!("/={}.2", archive.display()),
        &guest("status"),
        "exit3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        Path::new(&format!("{}.2", archive.display())).exists(),
        "saved after a non-zero exit"
    );
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // What the archive holds, read back by the library.
    let back = Vfs::new();
    back.load_tar(std::fs::File::open(&archive).unwrap(), "/")
        .unwrap();
    assert_eq!(back.read("/hard").unwrap(), b"payload");
    let (a, b) = (
        back.metadata("/dir/file.txt").unwrap(),
        back.metadata("/hard").unwrap(),
    );
    assert_eq!((a.ino, a.nlink), (b.ino, 2), "the hard link survives");
    assert_eq!(back.read_link("/link").unwrap(), "dir/file.txt");
    assert_eq!(a.mtime, old);
    assert_eq!(a.mode, 0o600);

    // And mounted by the command.
    let tar = format!("/=tar:{}", archive.display());
    let (status, out) = shell(&["--mount", &tar], &["cat /link", "cat /hard", "ls /dir"]);
    assert_eq!(
        (status, out.as_str()),
        (
            0,
            "cat /link: payload\ncat /hard: payload\nls /dir: file.txt\n"
        )
    );
}

#[test]
fn bad_input_is_one_line_with_a_status() {
    let g = guest("status");
    let work = tempfile::tempdir().unwrap();

    one_line_failure(
        &run(&["run", "--mount", "/x=nfs:server", &g]),
        2,
        &["--mount", "nfs:server", "unknown store"],
    );
    one_line_failure(
        &run(&["run", "--mount", "relative", &g]),
        2,
        &["--mount", "GUEST=SPEC"],
    );
    // An absolute path may be made by the guest, so it is looked for after
    // the run; a plain name must be a preopen.
    let missing = work.path().join("x.tar");
    let save = format!("/nowhere={}", missing.display());
    one_line_failure(
        &run(&["run", "--save", &save, "--mount", "/a=mem", &g, "return"]),
        1,
        &["--save", "/nowhere"],
    );
    assert!(!missing.exists());
    one_line_failure(
        &run(&["run", "--save", "nope=x.tar", &g, "return"]),
        2,
        &["--save", "nope"],
    );
    one_line_failure(
        &run(&["run", "--mount", "/x=host:/no/such/dir", &g]),
        1,
        &["/no/such/dir"],
    );
    one_line_failure(
        &run(&["run", "--dir", "/no/such/dir", &g]),
        1,
        &["/no/such/dir"],
    );

    let corrupt = work.path().join("corrupt.tar");
    std::fs::write(&corrupt, vec![0x5a; 1536]).unwrap();
    one_line_failure(
        &run(&[
            "run",
            "--mount",
            &format!("/t=tar:{}", corrupt.display()),
            &g,
        ]),
        1,
        &["corrupt.tar"],
    );
    let truncated = work.path().join("truncated.tar");
    let src = Vfs::new();
    src.write("/big", vec![7u8; 10_000]).unwrap();
    let mut bytes = Vec::new();
    src.save_tar("/", &mut bytes).unwrap();
    std::fs::write(&truncated, &bytes[..3000]).unwrap();
    one_line_failure(
        &run(&[
            "run",
            "--mount",
            &format!("/t=tar:{}", truncated.display()),
            &g,
        ]),
        1,
        &["truncated.tar"],
    );
    one_line_failure(
        &run(&["run", "--mount", "/t=tar:/no/such.tar", &g]),
        1,
        &["/no/such.tar"],
    );

    let not_wasm = work.path().join("not.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho hi\n").unwrap();
    one_line_failure(&run(&["run", not_wasm.to_str().unwrap()]), 1, &["not.wasm"]);
    one_line_failure(
        &run(&["run", "/no/such/module.wasm"]),
        1,
        &["/no/such/module.wasm"],
    );
    let unknown_import = work.path().join("import.wat");
    std::fs::write(&unknown_import, r#"(module (import "env" "mystery" (func)) (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
    one_line_failure(
        &run(&["run", unknown_import.to_str().unwrap()]),
        1,
        &["import.wat", "mystery"],
    );
    one_line_failure(&run(&["run", "--bogus", &g]), 2, &["--bogus"]);
}

/// Entries with an absolute path or `..` are refused, and nothing of them is
/// written anywhere.
#[test]
fn archives_cannot_write_outside_their_directory() {
    let work = tempfile::tempdir().unwrap();
    for (name, bad_path) in [
        ("abs.tar", "/escaped-abs"),
        ("dotdot.tar", "../escaped-dotdot"),
    ] {
        let archive = work.path().join(name);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Bypass the tar crate's own path checks to build a hostile archive.
        let field = &mut header.as_old_mut().name;
        field[..bad_path.len()].copy_from_slice(bad_path.as_bytes());
        header.set_cksum();
        builder.append(&header, &b"evil"[..]).unwrap();
        std::fs::write(&archive, builder.into_inner().unwrap()).unwrap();
        let out = run_in(
            work.path(),
            &[
                "run",
                "--mount",
                &format!("/t=tar:{}", archive.display()),
                &guest("status"),
                "return",
            ],
        );
        one_line_failure(&out, 1, &[name, "refused"]);
    }
    let escaped: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .chain(std::fs::read_dir(work.path().parent().unwrap()).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap_or_default())
        .filter(|n| n.starts_with("escaped"))
        .collect();
    assert!(escaped.is_empty(), "{escaped:?}");
    assert!(!Path::new("/escaped-abs").exists());
}

#[test]
fn help_documents_every_flag_and_version_works() {
    let help = stdout(&run(&["run", "--help"]));
    for flag in [
        "--dir",
        "--mount",
        "--env",
        "--inherit-env",
        "--argv0",
        "--save",
        "--limit-bytes",
        "--limit-inodes",
        "--limit-file-size",
        "--limit-open-files",
        "--no-cache",
        "--allow-precompiled",
    ] {
        // The flag's block: its line and the wrapped lines under it.
        let lines: Vec<&str> = help.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} in {help}"));
        let block: Vec<&str> = lines[at..]
            .iter()
            .take_while(|l| !l.trim().is_empty())
            .copied()
            .collect();
        assert!(
            block.iter().any(|l| l.contains("Example:")),
            "{flag} has an example: {block:?}"
        );
    }
    assert!(help.contains("Examples:"));
    let widest = help.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 100, "help wraps: a line of {widest} characters");
    let limit = help
        .split("--limit-bytes")
        .nth(1)
        .expect("--limit-bytes documented");
    assert!(
        limit.contains("each") && limit.contains("tree"),
        "limits are per tree"
    );
    let version = run(&["run", "--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(stdout(&version).contains(env!("CARGO_PKG_VERSION")));
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        stdout(&version).trim(),
        format!("wasi-common-vfs {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A progress bar for archives over a few megabytes, only on a terminal.
#[test]
fn progress_bar_only_on_a_terminal() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("big.tar");
    let src = Vfs::new();
    src.write("/big", vec![1u8; 6 << 20]).unwrap();
    src.save_tar("/", std::fs::File::create(&archive).unwrap())
        .unwrap();
    let spec = format!("/t=tar:{}", archive.display());
    let g = guest("status");

    let piped = run(&["run", "--mount", &spec, &g, "return"]);
    assert_eq!(piped.status.code(), Some(0));
    assert!(
        stderr(&piped).is_empty(),
        "nothing but the guest's output when stderr is a pipe: {}",
        stderr(&piped)
    );

    // `script` gives the command a terminal.
    let command = format!("{BIN} run --mount {spec} {g} return");
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("util-linux `script` runs");
    let all = stdout(&tty) + &stderr(&tty);
    assert!(all.contains("loading") && all.contains("MiB"), "{all}");
}

/// Limits are on by default and set by flags; ENOSPC is 51, EFBIG 22 and
/// EMFILE 33 in WASI.
#[test]
fn limits_from_flags() {
    let (status, out) = shell(
        &["--limit-bytes", "1M"],
        &["fill /tmp/a 3000000", "rm /tmp/a", "fill /tmp/b 100000"],
    );
    assert_eq!(status, 0);
    assert!(
        out.starts_with("fill /tmp/a 3000000: wrote ") && out.contains("then errno 51\n"),
        "{out}"
    );
    assert!(out.ends_with("fill /tmp/b 100000: wrote 100000\n"), "{out}");
    let (_, out) = shell(&["--limit-file-size", "64K"], &["fill /tmp/c 100000"]);
    assert_eq!(out, "fill /tmp/c 100000: wrote 65536, then errno 22\n");
    let (_, out) = shell(&["--limit-inodes", "10"], &["touch-many /tmp/f 100"]);
    assert_eq!(
        out, "touch-many /tmp/f 100: made 9, then errno 51\n",
        "/tmp counts too"
    );
    let (_, out) = shell(
        &["--limit-open-files", "4"],
        &["write /tmp/x hi", "open-many /tmp/x 10"],
    );
    assert_eq!(
        out,
        "write /tmp/x hi: \nopen-many /tmp/x 10: opened 3, then errno 33\n"
    );
    // The default is on: a guest cannot fill memory without bound.
    let (_, out) = shell(&[], &["touch-many /tmp/f 2000000"]);
    assert!(out.contains("then errno 51"), "{out}");
    one_line_failure(
        &run(&["run", "--limit-bytes", "lots", &guest("status")]),
        2,
        &["--limit-bytes", "lots"],
    );
}

/// A guest that can write beside a `--save` destination plants a symlink
/// to a file outside its directory at the temporary name a save would
/// pick if it were named after the process (`FILE.tmp-PID`: the command
/// runs through `sh -c 'exec …'`, so the guest is told its pid). The save
/// writes only its archive; the file outside is untouched.
#[test]
fn a_save_never_writes_through_a_symlink_the_guest_planted() {
    let work = tempfile::tempdir().unwrap();
    let jail = work.path().join("jail");
    std::fs::create_dir(&jail).unwrap();
    let victim = work.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let script = r#"exec "$0" run --dir . --save .=out.tar "$1" \
        "plant out.tar.tmp- $$ $(($$ + 1)) ../victim" \
        "plant .out.tar.tmp- 0 1000 ../victim" "write result.txt done""#;
    let out = Command::new("sh")
        .args(["-c", script, BIN, &guest("shell")])
        .current_dir(&jail)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("planted 1\n"), "{}", stdout(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let back = Vfs::new();
    back.load_tar(std::fs::File::open(jail.join("out.tar")).unwrap(), "/")
        .unwrap();
    assert_eq!(back.read("/result.txt").unwrap(), b"done\n");
    let leftovers: Vec<String> = std::fs::read_dir(&jail)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            n.starts_with('.')
                && !std::fs::symlink_metadata(jail.join(n))
                    .unwrap()
                    .is_symlink()
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A guest makes a 2^62-byte sparse file under a 16 MiB limit: the save
/// takes a few kilobytes, and the archive mounts back with the hole.
#[test]
fn a_2_62_byte_sparse_file_saves_in_kilobytes() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("sparse.tar");
    let save = format!("/={}", archive.display());
    let (status, out) = shell(
        &["--limit-bytes", "16M", "--save", &save],
        &[
            "truncate /tmp/huge 4611686018427387904",
            "write /tmp/small hi",
        ],
    );
    assert_eq!(status, 0, "{out}");
    let size = std::fs::metadata(&archive).unwrap().len();
    assert!(size < 16 * 1024, "{size} bytes");
    let back = Vfs::new();
    back.load_tar(std::fs::File::open(&archive).unwrap(), "/")
        .unwrap();
    assert_eq!(back.metadata("/tmp/huge").unwrap().size, 1 << 62);
    let tar = format!("/=tar:{}", archive.display());
    let (status, out) = shell(
        &["--limit-bytes", "16M", "--mount", &tar],
        &["cat /tmp/small"],
    );
    assert_eq!((status, out.as_str()), (0, "cat /tmp/small: hi\n"));

    // A 1 GiB sparse host file copied in by `mem:DIR` costs its data only.
    let host = work.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let sparse = std::fs::File::create(host.join("sparse.img")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"end", (1 << 30) - 3).unwrap();
    let mem = format!("/h=mem:{}", host.display());
    let (status, out) = shell(&["--limit-bytes", "16M", "--mount", &mem], &["ls /h"]);
    assert_eq!((status, out.as_str()), (0, "ls /h: sparse.img\n"));
}

/// A directory chain whose path is over 12,000 bytes saves, and so does
/// the tree saved after it.
#[test]
fn a_tree_deeper_than_any_path_saves_and_skips_no_other_save() {
    let work = tempfile::tempdir().unwrap();
    let (deep, tmp) = (work.path().join("deep.tar"), work.path().join("tmp.tar"));
    let name = "d".repeat(200);
    let out = run(&[
        "run",
        "--mount",
        "/work=mem",
        "--mount",
        "/out=mem",
        "--save",
        &format!("/work={}", deep.display()),
        "--save",
        &format!("/out={}", tmp.display()),
        &guest("shell"),
        &format!("deep /work 60 {name}"),
        "write /out/after.txt saved too",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("60 levels"), "{}", stdout(&out));
    let back = Vfs::new();
    back.load_tar(std::fs::File::open(&deep).unwrap(), "/")
        .unwrap();
    let mut view = back.subtree("/").unwrap();
    for _ in 0..60 {
        view = view.subtree(&name).unwrap();
    }
    assert_eq!(view.read("bottom").unwrap(), b"deep");
    let back = Vfs::new();
    back.load_tar(std::fs::File::open(&tmp).unwrap(), "/")
        .unwrap();
    assert_eq!(back.read("/after.txt").unwrap(), b"saved too\n");
    assert!(stdout(&out).contains("write /out/after.txt saved too: \n"));
}

/// A save that fails after the guest ran (the guest put a directory where
/// the archive goes) is reported, naming the tree and the file, and the
/// other saves still happen.
#[test]
fn one_failed_save_does_not_skip_the_others() {
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("h");
    std::fs::create_dir(&host).unwrap();
    let first = host.join("first.tar");
    let second = work.path().join("second.tar");
    let out = run(&[
        "run",
        "--dir",
        &format!("{}::/h", host.display()),
        "--mount",
        "/m=mem",
        "--save",
        &format!("/h={}", first.display()),
        "--save",
        &format!("/m={}", second.display()),
        &guest("shell"),
        "mkdir /h/first.tar",
        "write /h/first.tar/x in the way",
        "write /m/kept yes",
    ]);
    one_line_failure(&out, 1, &["--save /h=", "first.tar"]);
    let back = Vfs::new();
    back.load_tar(std::fs::File::open(&second).unwrap(), "/")
        .unwrap();
    assert_eq!(back.read("/kept").unwrap(), b"yes\n");
    let names: Vec<String> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["first.tar"], "no temporary file is left");
}

/// A missing or unusable `--save` destination stops the command before the
/// guest runs, so no guest work is lost to a typo.
#[test]
fn a_bad_save_destination_is_reported_before_the_guest_runs() {
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("h");
    std::fs::create_dir(&host).unwrap();
    std::fs::create_dir(work.path().join("a-dir")).unwrap();
    let dir = format!("{}::/h", host.display());
    for (dest, says) in [
        (work.path().join("missing/out.tar"), "missing"),
        (work.path().join("a-dir"), "a directory is in the way"),
    ] {
        let save = format!("/h={}", dest.display());
        let out = run(&[
            "run",
            "--dir",
            &dir,
            "--save",
            &save,
            &guest("shell"),
            "write /h/ran yes",
        ]);
        one_line_failure(&out, 2, &["--save", says]);
        assert!(!host.join("ran").exists(), "the guest ran");
    }
}

/// Archives mounted by the command are confined like any load: an entry
/// that would land in a host directory mounted below, or go through a
/// symlink of the archive, is refused and nothing is written.
#[test]
fn a_mounted_archive_never_writes_into_a_host_mount_or_through_a_symlink() {
    use common::{Entry, archive};
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("out");
    std::fs::create_dir(&host).unwrap();
    let cases = [
        (
            "into-mount.tar",
            "/",
            archive(&[
                Entry::File("a.txt", b"a"),
                Entry::File("out/run.sh", b"#!/bin/sh\n"),
            ]),
            "out/run.sh",
        ),
        (
            "through-link.tar",
            "/t",
            archive(&[
                Entry::Symlink("s", "/"),
                Entry::File("s/out/pwned.txt", b"pwned"),
            ]),
            "s/out/pwned.txt",
        ),
    ];
    for (name, at, bytes, entry) in cases {
        let file = work.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = run(&[
            "run",
            "--mount",
            &format!("{at}=tar:{}", file.display()),
            "--mount",
            &format!("/out=host:{}", host.display()),
            &guest("status"),
            "return",
        ]);
        one_line_failure(&out, 1, &[name, entry]);
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0);
    }
}

/// Grows each of its memories 1 MiB at a time until `memory.grow` fails,
/// and exits with the MiB it got in all (125, the largest status WASI
/// allows, for 125 or more).
const GROW_ALL: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  MEMORIES
  (func $grow (param $got i32) (param $m i32) (result i32)
    (block $full (loop $more
      (br_if $full (i32.ge_u (local.get $got) (i32.const 125)))
      (br_if $full (i32.eq (call_indirect (type $g) (local.get $m)) (i32.const -1)))
      (local.set $got (i32.add (local.get $got) (i32.const 1)))
      (br $more)))
    (local.get $got))
  (type $g (func (result i32)))
  (table 3 funcref)
  (elem (i32.const 0) $g0 $g1 $g2)
  GROWERS
  (func (export "_start")
    (call $exit (call $grow (call $grow (call $grow (i32.const 0) (i32.const 0)) (i32.const 1)) (i32.const 2)))))"#;

fn memory_module(dir: &Path, shared: bool) -> std::path::PathBuf {
    let (memories, growers) = if shared {
        (
            r#"(import "env" "memory" (memory $m0 1 16384 shared))
               (export "memory" (memory $m0))
               (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
               (func (export "wasi_thread_start") (param i32 i32))"#
                .to_owned(),
            (0..3)
                .map(|i| format!("(func $g{i} (result i32) (memory.grow (i32.const 16)))"))
                .collect::<String>(),
        )
    } else {
        (
            r#"(memory $m0 1) (memory $m1 1) (memory $m2 1) (export "memory" (memory $m0))"#
                .to_owned(),
            (0..3)
                .map(|i| format!("(func $g{i} (result i32) (memory.grow $m{i} (i32.const 16)))"))
                .collect::<String>(),
        )
    };
    let path = dir.join(if shared { "shared.wat" } else { "three.wat" });
    let text = GROW_ALL
        .replace("MEMORIES", &memories)
        .replace("GROWERS", &growers);
    std::fs::write(&path, text).unwrap();
    path
}

/// A module with three memories, or a threaded one with a shared memory,
/// gets no more linear memory in all than the limit, in either spelling.
#[test]
fn guest_memory_is_limited_in_all() {
    let work = tempfile::tempdir().unwrap();
    for shared in [false, true] {
        let module = memory_module(work.path(), shared).display().to_string();
        for flags in [
            &["--limit-memory", "64M"][..],
            &["-W", "max-memory-size=64M"][..],
        ] {
            let mut args = vec!["run"];
            args.extend_from_slice(flags);
            args.push(&module);
            let out = run(&args);
            // 64 MiB less what the memories start with.
            assert_eq!(
                out.status.code(),
                Some(63),
                "{shared} {flags:?}: {}",
                stderr(&out)
            );
        }
        let out = run(&["run", "--limit-memory", "unlimited", &module]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    }
}

/// A guest past its time limit traps with a message naming the limit.
#[test]
fn a_guest_past_its_time_limit_traps() {
    let work = tempfile::tempdir().unwrap();
    let spin = work.path().join("spin.wat");
    std::fs::write(
        &spin,
        r#"(module (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap();
    let spin = spin.display().to_string();
    for flags in [&["--timeout", "300ms"][..], &["-W", "timeout=300ms"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.push(&spin);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("time limit of 300ms"),
            "{}",
            stderr(&out)
        );
    }
    let out = run(&["run", "-W", "unknown-knob=1", &spin]);
    one_line_failure(
        &out,
        2,
        &["not supported by wasi-common-vfs", "unknown-knob"],
    );
}

/// The command reads its stdin so that the guest's end interrupts the
/// read: a worker's `proc_exit(99)` ends a guest whose main thread waits
/// on an open, silent stdin, and the command exits 99.
#[test]
fn exit_in_a_worker_interrupts_a_read_of_stdin() {
    use std::process::Stdio;
    let g = common::threaded_guest_path("threads").display().to_string();
    let mut child = Command::new(BIN)
        .args(["run", &g, "exit-while-main-reads"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Held open, never written: the read can only end by interruption.
    let stdin = child.stdin.take();
    let out = common::within(Duration::from_secs(60), "the command", move || {
        child.wait_with_output().unwrap()
    });
    drop(stdin);
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    assert!(!stdout(&out).contains("FAILED"), "{}", stdout(&out));
}

/// A C-style `rm -rf` of a host tree with 300 subdirectories, listing each
/// directory in 4 KiB pages while the listings above it are in progress,
/// removes everything: no listing is dropped or re-read by position.
#[test]
fn a_paged_recursive_removal_of_a_host_tree_removes_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    for i in 0..300 {
        let sub = top.join(format!("subdirectory-number-{i:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("a"), b"a").unwrap();
        std::fs::write(sub.join("b"), b"b").unwrap();
    }
    let dir = format!("{}::/h", tmp.path().display());
    let (status, out) = shell(&["--dir", &dir], &["rm-r /h/top"]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(out, "rm-r /h/top: removed 901\n");
    assert!(!top.exists(), "the tree is gone");
}

/// Everything after the module reaches the guest as it is: flags the
/// runner also has, `--help`, `--` and its followers. Nothing of it is
/// taken by the runner (no host directory is granted by a `--dir` there).
#[test]
fn arguments_after_the_module_are_the_guests() {
    let g = guest("status");
    let out = run(&[
        "run", &g, "args", "--dir", ".", "--env", "X=1", "--help", "--", "a", "--", "b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[\"status.wasm\", \"args\", \"--dir\", \".\", \"--env\", \"X=1\", \"--help\", \"--\", \"a\", \"--\", \"b\"]\n"
    );
    let out = run(&["run", &g, "env", "X", "--env", "X=1"]);
    assert_eq!(
        stdout(&out),
        "None\n",
        "--env after the module is not the runner's"
    );
    // Without `run`, as wasmtime takes it.
    let out = run(&[&g, "args", "--version"]);
    assert_eq!(stdout(&out), "[\"status.wasm\", \"args\", \"--version\"]\n");
    // The module from stdin.
    let out = Command::new(BIN)
        .args(["run", "-", "args", "x"])
        .stdin(std::fs::File::open(&g).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "[\"-\", \"args\", \"x\"]\n",
        "{}",
        stderr(&out)
    );
    // wasmtime's spellings.
    let out = Command::new(BIN)
        .args(["run", "-S", "inherit-env", &g, "env", "FROM_HOST"])
        .env("FROM_HOST", "yes")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Some(\"yes\")\n");
    let out = run(&[
        "run",
        "--limit-bytes",
        "10MB",
        "--limit-file-size",
        "1MiB",
        &g,
        "return",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Files in a cache directory, with their sizes and modification times,
/// leaving out the cache's own bookkeeping.
fn cache_entries(dir: &Path) -> Vec<(std::path::PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                pending.push(e.path());
            } else if !name.ends_with(".stats") && !name.starts_with('.') {
                out.push((e.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A Wasmtime cache configuration in `work` keeping its cache in the
/// directory `name`; the `-C` value naming it, and the directory.
fn cache_in(work: &Path, name: &str) -> (String, std::path::PathBuf) {
    let dir = work.join(name);
    let config = work.join(format!("{name}.toml"));
    let toml = format!("[cache]\ndirectory = {:?}\n", dir.display().to_string());
    std::fs::write(&config, toml).unwrap();
    (format!("cache-config={}", config.display()), dir)
}

/// Compiled code is cached across runs: the second run of a module finds
/// its entry and writes none; a corrupt entry is replaced; `--no-cache`
/// and `-C cache=n` write nothing.
#[test]
fn compiled_code_is_cached_across_runs() {
    let g = guest("status");
    let work = tempfile::tempdir().unwrap();
    let (flag, cache) = cache_in(work.path(), "cache");
    let first = run(&["run", "-C", &flag, &g, "return"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 1, "one compiled module cached: {entries:?}");
    std::thread::sleep(Duration::from_millis(50));
    let second = run(&["run", "-C", &flag, &g, "return"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(
        cache_entries(&cache),
        entries,
        "the second run compiled nothing"
    );

    std::fs::write(&entries[0].0, b"not compiled code").unwrap();
    let third = run(&["run", "-C", &flag, &g, "args"]);
    assert_eq!(
        stdout(&third),
        "[\"status.wasm\", \"args\"]\n",
        "{}",
        stderr(&third)
    );
    let replaced = std::fs::read(&entries[0].0).unwrap();
    assert_eq!(
        replaced.len() as u64,
        entries[0].1,
        "the corrupt entry was replaced"
    );

    for off in [&["--no-cache"][..], &["-C", "cache=n"][..]] {
        let (other_flag, other) = cache_in(work.path(), "other");
        let mut args = vec!["run"];
        args.extend_from_slice(off);
        args.extend(["-C", &other_flag, &g, "return"]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(cache_entries(&other).is_empty(), "{off:?} cached nothing");
    }
}

/// Each error keeps what explains it, on one line.
#[test]
fn errors_carry_their_cause() {
    let work = tempfile::tempdir().unwrap();
    one_line_failure(&run(&["run"]), 2, &["required", "<MODULE", "--help"]);
    let bare = run(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(stderr(&bare).contains("Usage:"), "no arguments: the help");
    let bad = work.path().join("bad.wat");
    std::fs::write(&bad, "(module (func (export \"_start\") (drop)))").unwrap();
    one_line_failure(
        &run(&["run", bad.to_str().unwrap()]),
        1,
        &["bad.wat", "type mismatch", "nothing on stack"],
    );
    let component = work.path().join("c.wasm");
    std::fs::write(&component, b"\0asm\x0d\x00\x01\x00").unwrap();
    one_line_failure(
        &run(&["run", component.to_str().unwrap()]),
        1,
        &["c.wasm", "component, not a module"],
    );
    one_line_failure(
        &run(&["run", "/no/such/app.wasm"]),
        1,
        &["/no/such/app.wasm", "no such file"],
    );
    let g = guest("status");
    one_line_failure(
        &run(&["run", "--preload", "a=b.wasm", &g]),
        2,
        &["not supported by wasi-common-vfs", "--preload"],
    );
    one_line_failure(
        &run(&["run", "-S", "tcp", &g]),
        2,
        &["not supported by wasi-common-vfs", "-S tcp"],
    );
    one_line_failure(
        &run(&["run", "--dir"]),
        2,
        &["--dir", "a value is required"],
    );
    one_line_failure(
        &run(&["run", "--limit-bytes", "10XB", &g]),
        2,
        &["10XB", "KiB"],
    );
}

/// `RUST_LOG` (or `WASMTIME_LOG`) logs each WASI call with its result on
/// stderr, errors included; without it nothing is logged.
#[test]
fn rust_log_shows_each_wasi_call() {
    let (_, quiet) = shell(&[], &["cat /missing"]);
    assert!(!quiet.contains("TRACE"), "{quiet}");
    let g = guest("shell");
    for var in ["RUST_LOG", "WASMTIME_LOG"] {
        let out = Command::new(BIN)
            .args(["run", &g, "cat /missing"])
            .env_remove("RUST_LOG")
            .env(var, "wasi_common=trace")
            .output()
            .unwrap();
        let log = stderr(&out);
        assert!(log.contains("function=\"fd_write\""), "{var}: {log}");
        assert!(log.contains("result=Ok("), "{var}: {log}");
        assert!(
            log.contains("Noent"),
            "{var}: the failed open's errno: {log}"
        );
    }
}

/// A library module: `_initialize` sets a base that `add` adds, `pair`
/// gives back an `i64` and an `f64`, `quit` calls `proc_exit`.
const LIBRARY: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $base (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $base (i32.const 100)))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (global.get $base) (i32.add (local.get 0) (local.get 1))))
  (func (export "pair") (param i64 f64) (result i64 f64) (local.get 0) (local.get 1))
  (func (export "quit") (param i32) (call $exit (local.get 0))))"#;

/// `--invoke FUNC` calls an export of a module without `_start`, after
/// its `_initialize`, with the arguments after the module as parameters,
/// prints the results one a line, and takes `proc_exit`'s status; a
/// missing function, a wrong count or a value of the wrong type is one
/// line before anything runs, as is a module without `_start` run
/// without `--invoke`.
#[test]
fn invoke_calls_a_function_of_a_library_module() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("lib.wat"), LIBRARY).unwrap();
    let call = |args: &[&str]| run_in(work.path(), args);

    let out = call(&["run", "--invoke", "add", "lib.wat", "2", "40"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "142\n"),
        "{}",
        stderr(&out)
    );
    let out = call(&["--invoke", "pair", "lib.wat", "-5", "2.5"]);
    assert_eq!(stdout(&out), "-5\n2.5\n", "{}", stderr(&out));
    let out = call(&["run", "--invoke", "quit", "lib.wat", "7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    one_line_failure(&call(&["run", "--invoke", "nope", "lib.wat"]), 2, &["nope"]);
    one_line_failure(
        &call(&["run", "--invoke", "add", "lib.wat", "1"]),
        2,
        &["takes 2 argument(s), 1 given"],
    );
    one_line_failure(
        &call(&["run", "--invoke", "add", "lib.wat", "x", "1"]),
        2,
        &["argument 1 (`x`) is not a valid i32"],
    );
    one_line_failure(&call(&["run", "lib.wat"]), 2, &["no `_start`", "--invoke"]);
}
