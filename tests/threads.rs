//! Threaded guests (`wasm32-wasip1-threads`) on one shared tree, and guests
//! that end in a thread without ending the test process.

mod common;

use wasi_common_vfs::Vfs;

fn ok(name: &str, args: &[&str], vfs: &Vfs) {
    let out = common::run_threaded(name, args, vfs).unwrap_or_else(|e| panic!("{args:?}: {e:?}"));
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "ok"),
        "{args:?}: {}",
        out.stderr
    );
}

#[test]
fn threads_write_their_own_files_and_read_each_others() {
    let vfs = Vfs::new();
    ok("threads", &["own-files", "6"], &vfs);
    for i in 0..6 {
        assert_eq!(
            vfs.read(&format!("/own{i}")).unwrap(),
            format!("thread {i} ").repeat(1000).as_bytes()
        );
    }
}

#[test]
fn threads_sharing_one_descriptor_never_interleave_or_lose_writes() {
    let vfs = Vfs::new();
    ok("threads", &["shared-fd", "4"], &vfs);
    for name in ["/appended", "/positioned"] {
        let meta = vfs.metadata(name).unwrap();
        assert_eq!(meta.size, 4 * 200 * 32, "{name}");
    }
}

#[test]
fn threads_create_rename_and_unlink_while_another_lists() {
    let vfs = Vfs::new();
    ok("threads", &["churn", "4"], &vfs);
    let names = vfs.read_dir("/churn").unwrap();
    assert_eq!(names.len(), 4 * 50);
    assert!(names.iter().all(|e| e.name.starts_with("kept-")
        && vfs.metadata(&format!("/churn/{}", e.name)).unwrap().nlink == 1));
    assert_eq!(vfs.metadata("/churn").unwrap().nlink, 2);
}

#[test]
fn fcntl_set_append_works_while_threads_share_the_context() {
    let vfs = Vfs::new();
    ok("threads", &["set-append"], &vfs);
    assert_eq!(vfs.read("/flagged").unwrap(), b"0123456789END");
}

/// `proc_exit(7)` and a trap in a non-main thread end that guest with that
/// status, and this process carries on to run another guest.
#[test]
fn exit_or_trap_in_a_thread_ends_the_guest_not_the_host() {
    let vfs = Vfs::new();
    let out = common::run_threaded("threads", &["exit-in-thread"], &vfs).unwrap();
    assert_eq!(out.code, 7);
    assert_eq!(vfs.read("/before-exit").unwrap(), b"written");

    let trap = common::run_threaded("threads", &["trap-in-thread"], &vfs).unwrap_err();
    assert!(format!("{trap:?}").contains("unreachable"), "{trap:?}");

    // Still here: run another guest, threaded and not.
    ok("threads", &["own-files", "2"], &vfs);
    let plain = common::run_on_vfs(
        &common::guest("files"),
        &[],
        &common::tree(common::Backend::Mem).0,
    );
    assert_eq!(plain.code, 0);
}

/// Threads that would never end on their own are stopped when the guest
/// exits: one parked in `memory.atomic.wait`, one spinning.
#[test]
fn blocked_and_spinning_threads_are_stopped_when_the_guest_ends() {
    let vfs = Vfs::new();
    let out = common::run_threaded("threads", &["wait-forever"], &vfs).unwrap();
    assert_eq!((out.code, out.left_behind), (3, 0), "every thread stopped");
    let out = common::run_threaded("threads", &["spin-forever"], &vfs).unwrap();
    assert_eq!((out.code, out.stdout.trim(), out.left_behind), (0, "ok", 0));
}

/// Far beyond any stop, far short of the hour the guests sleep.
const BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// A worker's `proc_exit` ends the guest while the main thread, which
/// `_start` runs on, sleeps in `poll_oneoff`: the sleep is cut short, and
/// no thread is left behind.
#[test]
fn exit_in_a_worker_ends_a_guest_whose_main_thread_sleeps() {
    let out = common::within(BOUND, "the run", || {
        common::run_threaded("threads", &["exit-while-main-sleeps"], &Vfs::new()).unwrap()
    });
    assert_eq!((out.code, out.left_behind), (3, 0), "{}", out.stdout);
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);
}

/// Threads asleep when the guest ends are woken and end: none is left
/// behind to wake later, so a worker that meant to create and delete
/// files after the run never does.
#[test]
fn no_thread_of_a_guest_outlives_its_run() {
    let vfs = Vfs::new();
    vfs.write("/precious.txt", b"keep").unwrap();
    let out = common::within(BOUND, "the run", {
        let vfs = vfs.clone();
        move || common::run_threaded("threads", &["late-worker"], &vfs).unwrap()
    });
    assert_eq!((out.code, out.left_behind), (0, 0));
    let out = common::within(BOUND, "the run", || {
        common::run_threaded("threads", &["sleepers", "32"], &Vfs::new()).unwrap()
    });
    assert_eq!((out.code, out.left_behind), (0, 0));
    assert!(vfs.metadata("/zombie.txt").is_err());
    assert_eq!(vfs.read("/precious.txt").unwrap(), b"keep");
}

/// A threaded guest (shared memory) reads and writes through iovec lists
/// with empty iovecs and one past 64 KiB exactly as a plain one does.
#[test]
fn shared_memory_reads_and_writes_fill_every_iovec() {
    ok("threads", &["iovec-gaps"], &Vfs::new());
}

/// A threaded guest's reads and writes of 20 MiB in one call move every
/// byte, though the host serves them through 16 MiB at a time.
#[test]
fn shared_memory_calls_larger_than_the_hosts_scratch_move_every_byte() {
    ok("threads", &["large-io"], &Vfs::new());
}

/// A threaded guest's `readv` and `writev` of 200,000 iovecs are served to
/// the 1,024th, so the host neither copies nor walks the rest of the list.
#[test]
fn shared_memory_calls_serve_at_most_iov_max_iovecs() {
    ok("threads", &["many-iovecs"], &Vfs::new());
}

/// wasi-libc's buffered `fgetc` in a threaded guest reads the whole file.
/// The wasi-libc that Rust ships refills the `FILE` buffer with one plain
/// read; older ones pass an empty first iovec, the case `iovec-gaps`
/// checks.
#[test]
fn wasi_libc_fgetc_reads_a_file_in_a_threaded_guest() {
    ok("threads", &["stdio-fgetc"], &Vfs::new());
}
