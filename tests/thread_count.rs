//! Runs of a threaded guest leave no OS thread behind: the process's
//! thread count after a thousand runs is where it started, and so is its
//! count of open descriptors. A test binary of its own, so that no other
//! test's threads come and go meanwhile.

mod common;

use wasi_common_vfs::Vfs;

/// The process's threads, from `/proc/self/status`.
fn threads_now() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// The process's open descriptors.
fn descriptors_now() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads that have returned may take a moment to leave the kernel's
/// count; waits for the count to come down to `want`, a while at most.
fn settled_threads(want: usize) -> usize {
    for _ in 0..200 {
        let now = threads_now();
        if now <= want {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    threads_now()
}

#[test]
fn a_thousand_runs_of_sleeping_threads_leave_the_thread_count_as_it_was() {
    // Build the guests and compile the module before counting.
    let out = common::run_threaded("threads", &["sleepers", "1"], &Vfs::new()).unwrap();
    assert_eq!(out.left_behind, 0);
    let before = settled_threads(0);
    let descriptors = descriptors_now();
    let mut left_behind = 0;
    for _ in 0..1000 {
        let out = common::run_threaded("threads", &["sleepers", "4"], &Vfs::new()).unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
        left_behind += out.left_behind;
    }
    assert_eq!(left_behind, 0, "every sleeper was stopped");
    let after = settled_threads(before);
    assert_eq!(after, before, "threads in the process before and after");
    assert_eq!(
        descriptors_now(),
        descriptors,
        "descriptors before and after"
    );
}
