//! The runtime glue: `poll_oneoff` with virtual files, and running guests
//! from an async application.

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use wasi_common::WasiCtx;
use wasi_common_vfs::{Vfs, runtime};
use wasmtime::{Engine, Linker, Module, Store};

/// Runs the `poll` guest on `ctx` (stdin an OS pipe holding `hi`, fd 3 a
/// tree holding the 5-byte file `data`).
fn run_poll(ctx: WasiCtx) -> common::Outcome {
    let stdout = wasi_common::pipe::WritePipe::new_in_memory();
    ctx.set_stdout(Box::new(stdout.clone()));
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(b"hi").unwrap();
    let stdin = cap_std::fs::File::from_std(std::fs::File::from(OwnedFd::from(reader)));
    ctx.set_stdin(Box::new(wasi_common::sync::file::File::from_cap_std(stdin)));
    let vfs = Vfs::new();
    vfs.write("/data", b"12345").unwrap();
    vfs.preopen(&ctx, "/", "/").unwrap();
    let mut linker = Linker::new(common::engine());
    runtime::add_to_linker(&mut linker, |cx: &mut WasiCtx| cx).unwrap();
    let mut store = Store::new(common::engine(), ctx);
    let code = runtime::run_command(&mut store, &linker, &common::guest("poll")).unwrap();
    drop(store);
    drop(writer);
    let out = stdout.try_into_inner().unwrap().into_inner();
    common::Outcome {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::new(),
        left_behind: 0,
    }
}

/// `poll_oneoff` on a virtual file and an OS pipe in one call, through
/// this crate's scheduler and through wasi-common's own sync scheduler (a
/// plain `WasiCtxBuilder` context), which polls the always-ready
/// descriptor a virtual file offers: the same answer from both.
#[test]
fn poll_oneoff_answers_virtual_files_and_os_descriptors_in_one_call() {
    let want = "virtual file and stdin in one call: Ok([(1, 0, 1, 5), (2, 0, 1, 1)])";
    let out = run_poll(runtime::context(&["poll"]).unwrap());
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains(want), "{}", out.stdout);

    let plain = wasi_common::sync::WasiCtxBuilder::new().build();
    let out = run_poll(plain);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains(want), "{}", out.stdout);
}

/// The same guest on wasi-common's tokio context, whose scheduler awaits
/// each file's `readable()`/`writable()` and a tokio timer for the clock:
/// a virtual file is ready at once there too, for reading (with the bytes
/// left to read) and for writing.
#[test]
fn poll_oneoff_answers_virtual_files_through_wasi_commons_tokio_context() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(async {
        let engine = Engine::default();
        let module = Module::from_file(&engine, common::guest_path("poll")).unwrap();
        let stdout = wasi_common::pipe::WritePipe::new_in_memory();
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(b"hi").unwrap();
        let stdin = cap_std::fs::File::from_std(std::fs::File::from(OwnedFd::from(reader)));
        let ctx = wasi_common::tokio::WasiCtxBuilder::new()
            .stdin(Box::new(wasi_common::tokio::File::from_cap_std(stdin)))
            .stdout(Box::new(stdout.clone()))
            .build();
        let vfs = Vfs::new();
        vfs.write("/data", b"12345").unwrap();
        vfs.preopen(&ctx, "/", "/").unwrap();
        let mut linker = Linker::new(&engine);
        wasi_common::tokio::add_to_linker(&mut linker, |cx: &mut WasiCtx| cx).unwrap();
        let mut store = Store::new(&engine, ctx);
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .unwrap();
        if let Err(e) = start.call_async(&mut store, ()).await {
            assert!(
                e.downcast_ref::<wasi_common::I32Exit>().is_some(),
                "the guest trapped: {e:?}"
            );
        }
        drop(store);
        drop(writer);
        String::from_utf8(stdout.try_into_inner().unwrap().into_inner()).unwrap()
    });
    // tokio reports a pipe ready only once its reactor has seen it, so the
    // first call may return with the virtual file alone (a poll returns
    // when one subscription is ready); the guest counts that as a failed
    // check, hence no claim on its exit status.
    for want in [
        "virtual file and stdin in one call: Ok([(1, 0, 1, 5)",
        "virtual file for writing: Ok([(4, 0, 2, 0)])",
        "clock alone: Ok([(7, 0, 0, 0)])",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
}

/// `runtime::link` finds the module's memory by its export index; a linker
/// linked for one module still serves another, whose memory is then found
/// by name.
#[test]
fn a_linker_linked_for_one_module_serves_another() {
    let mut linker = Linker::new(common::engine());
    let mut store = Store::new(common::engine(), runtime::context(&["poll"]).unwrap());
    runtime::link(&mut linker, &mut store, &common::guest("poll"), |cx| cx).unwrap();
    let ctx = runtime::context(&["status", "return"]).unwrap();
    let stdout = wasi_common::pipe::WritePipe::new_in_memory();
    ctx.set_stdout(Box::new(stdout.clone()));
    let mut store = Store::new(common::engine(), ctx);
    let code = runtime::run_command(&mut store, &linker, &common::guest("status")).unwrap();
    drop(store);
    assert_eq!(code, 0);
    let out = stdout.try_into_inner().unwrap().into_inner();
    assert_eq!(out, b"returning\n");
}

/// An async application runs guests on a blocking thread: the guest's
/// filesystem calls are synchronous and never await, and the runtime keeps
/// serving other tasks meanwhile.
#[test]
fn guests_run_from_an_async_runtime_on_blocking_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let guests: Vec<_> = (0..3)
            .map(|i| {
                tokio::task::spawn_blocking(move || {
                    let vfs = Vfs::new();
                    let out = common::run_threaded("threads", &["own-files", "2"], &vfs).unwrap();
                    (i, out.code, vfs.read("/own1").unwrap().len())
                })
            })
            .collect();
        let ticker = tokio::spawn(async { tokio::task::yield_now().await });
        for g in guests {
            let (_, code, len) = g.await.unwrap();
            assert_eq!((code, len), (0, "thread 1 ".len() * 1000));
        }
        ticker.await.unwrap();
    });
}

/// The data of a limited guest's stores: its context and its share of the
/// memory limit.
#[derive(Clone)]
struct Limited {
    ctx: WasiCtx,
    limiter: runtime::GuestLimiter,
}

/// Links `wat` with `limits` and runs it on a fresh engine.
fn run_limited(wat: &str, limits: &runtime::RunLimits) -> wasmtime::Result<i32> {
    let engine = wasmtime::Engine::new(&runtime::config())?;
    let module = wasmtime::Module::new(&engine, wat)?;
    let data = Limited {
        ctx: runtime::context(&["guest"])?,
        limiter: limits.limiter(),
    };
    let mut store = Store::new(&engine, data);
    let mut linker = Linker::new(&engine);
    let guest = runtime::link_with_limits(
        &mut linker,
        &mut store,
        &module,
        |d| &mut d.ctx,
        limits,
        |d| &mut d.limiter,
    )?;
    guest.run(store, &linker)
}

/// The time limit ends plain and threaded guests alike, with an error
/// naming it; a threaded guest's spinning worker is stopped too.
#[test]
fn the_time_limit_ends_plain_and_threaded_guests() {
    let limits = runtime::RunLimits::default().timeout(std::time::Duration::from_millis(200));
    let plain = r#"(module (func (export "_start") (loop $l (br $l))))"#;
    let threaded = r#"(module
      (import "env" "memory" (memory 1 1 shared))
      (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
      (export "memory" (memory 0))
      (func (export "wasi_thread_start") (param i32 i32) (loop $l (br $l)))
      (func (export "_start") (drop (call $spawn (i32.const 0))) (loop $l (br $l))))"#;
    for wat in [plain, threaded] {
        let e = run_limited(wat, &limits).unwrap_err();
        let late = e.downcast_ref::<runtime::TimeLimitExceeded>();
        assert!(late.is_some(), "{e:?}");
        assert!(format!("{e:#}").contains("time limit of 200ms"), "{e:#}");
    }
}

/// A shared memory is created with a maximum that fits the memory limit, so
/// `memory.grow` fails there; one that starts past the limit is refused.
#[test]
fn a_shared_memory_fits_the_memory_limit() {
    let grow_to_the_end = r#"(module
      (import "env" "memory" (memory 1 16384 shared))
      (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (export "memory" (memory 0))
      (func (export "wasi_thread_start") (param i32 i32))
      (func (export "_start") (local $pages i32)
        (block $full (loop $more
          (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
          (br $more)))
        (call $exit (i32.div_u (memory.size) (i32.const 16)))))"#;
    let limits = runtime::RunLimits::default().memory(8 << 20);
    assert_eq!(
        run_limited(grow_to_the_end, &limits).unwrap(),
        8,
        "MiB in the end"
    );
    let too_big = grow_to_the_end.replace("(memory 1 16384 shared)", "(memory 256 16384 shared)");
    let limits = runtime::RunLimits::default().memory(8 << 20);
    let e = run_limited(&too_big, &limits).unwrap_err();
    assert!(e.to_string().contains("more than the memory limit"), "{e}");
}

/// A worker blocked reading stdin when another thread ends the guest is
/// left behind; when it wakes after `run` returned, its descriptors no
/// longer work: it cannot create or delete anything in the tree.
#[test]
fn a_thread_left_behind_changes_nothing_when_it_wakes() {
    let wat = r#"(module
      (import "env" "memory" (memory 1 1 shared))
      (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_unlink_file" (func $unlink (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (export "memory" (memory 0))
      (data (i32.const 0) "\64\00\00\00\10\00\00\00")
      (data (i32.const 64) "zombie.txt")
      (data (i32.const 200) "precious.txt")
      (func (export "wasi_thread_start") (param i32 i32)
        (i32.atomic.store (i32.const 32) (i32.const 1))
        (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
        (drop (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 10) (i32.const 1)
          (i64.const 0x1ffffff) (i64.const 0x1ffffff) (i32.const 0) (i32.const 80)))
        (drop (call $unlink (i32.const 3) (i32.const 200) (i32.const 12))))
      (func (export "_start")
        (drop (call $spawn (i32.const 0)))
        (block $ready (loop $wait
          (br_if $ready (i32.atomic.load (i32.const 32)))
          (drop (memory.atomic.wait32 (i32.const 48) (i32.const 0) (i64.const 1000000)))
          (br $wait)))
        ;; Time for the worker to get into its read.
        (drop (memory.atomic.wait32 (i32.const 48) (i32.const 0) (i64.const 200000000)))
        (call $exit (i32.const 3))))"#;
    let engine = wasmtime::Engine::new(&runtime::config()).unwrap();
    let module = wasmtime::Module::new(&engine, wat).unwrap();
    let vfs = Vfs::new();
    vfs.write("/precious.txt", b"keep").unwrap();
    let ctx = runtime::context(&["guest"]).unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    let stdin = cap_std::fs::File::from_std(std::fs::File::from(OwnedFd::from(reader)));
    ctx.set_stdin(Box::new(wasi_common::sync::file::File::from_cap_std(stdin)));
    vfs.preopen(&ctx, "/", "/").unwrap();
    let mut store = Store::new(&engine, ctx);
    let mut linker = Linker::new(&engine);
    let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx).unwrap();
    assert_eq!(guest.run(store, &linker).unwrap(), 3);
    assert_eq!(guest.left_behind(), 1);
    // Wake the worker; give it time to try.
    writer.write_all(b"wake up").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        vfs.metadata("/zombie.txt").is_err(),
        "the worker created a file"
    );
    assert_eq!(vfs.read("/precious.txt").unwrap(), b"keep");
}

/// A plain guest that creates `made.txt` in fd 3, then sleeps an hour in
/// `poll_oneoff`.
const CREATE_THEN_SLEEP: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 512) "made.txt")
  (func (export "_start")
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 8) (i32.const 1)
      (i64.const 0x1ffffff) (i64.const 0x1ffffff) (i32.const 0) (i32.const 600)))
    ;; One subscription: the monotonic clock, an hour from now.
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;

/// A threaded guest whose main thread waits in `memory.atomic.wait` for
/// good while a worker spins.
const WAIT_AND_SPIN: &str = r#"(module
  (import "env" "memory" (memory 1 1 shared))
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (export "memory" (memory 0))
  (func (export "wasi_thread_start") (param i32 i32) (loop $l (br $l)))
  (func (export "_start")
    (drop (call $spawn (i32.const 0)))
    (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))))"#;

/// `wat` linked with `/` of `vfs` preopened as fd 3, ready to run.
fn linked(wat: &str, vfs: &Vfs) -> (Store<WasiCtx>, Linker<WasiCtx>, runtime::Guest<WasiCtx>) {
    let engine = wasmtime::Engine::new(&runtime::config()).unwrap();
    let module = wasmtime::Module::new(&engine, wat).unwrap();
    let ctx = runtime::context(&["guest"]).unwrap();
    vfs.preopen(&ctx, "/", "/").unwrap();
    let mut store = Store::new(&engine, ctx);
    let mut linker = Linker::new(&engine);
    let guest = runtime::link(&mut linker, &mut store, &module, |cx| cx).unwrap();
    (store, linker, guest)
}

/// Far beyond any stop, far short of the hour the guests sleep.
const BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// An embedder stops a guest from another thread: a plain one asleep in
/// `poll_oneoff` on the thread `_start` runs on, and a threaded one whose
/// main thread waits on an atomic while a worker spins. `run` returns the
/// `Stopped` error and leaves no thread behind.
#[test]
fn an_embedder_stops_a_running_guest_from_another_thread() {
    for wat in [CREATE_THEN_SLEEP, WAIT_AND_SPIN] {
        let vfs = Vfs::new();
        let (store, linker, guest) = linked(wat, &vfs);
        let stop = guest.stop_handle();
        assert!(!stop.is_over());
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            stop.stop();
            stop
        });
        let (result, left_behind) = common::within(BOUND, "the run", move || {
            let result = guest.run(store, &linker);
            (
                result.map_err(|e| e.is::<runtime::Stopped>()),
                guest.left_behind(),
            )
        });
        assert_eq!(result, Err(true), "the Stopped error");
        assert_eq!(left_behind, 0);
        assert!(stopper.join().unwrap().is_over());
    }
}

/// Stopped before it runs, a guest does not run at all; and a guest runs
/// once.
#[test]
fn a_guest_stopped_before_its_run_never_starts_and_runs_once() {
    let vfs = Vfs::new();
    let (store, linker, guest) = linked(CREATE_THEN_SLEEP, &vfs);
    let another = Store::new(store.engine(), runtime::context(&["guest"]).unwrap());
    guest.stop_handle().stop();
    let e = guest.run(store, &linker).unwrap_err();
    assert!(e.is::<runtime::Stopped>(), "{e:?}");
    assert!(vfs.metadata("/made.txt").is_err(), "the guest ran");
    let again = guest.run(another, &linker).unwrap_err();
    assert!(again.to_string().contains("has run already"), "{again}");
}

/// The time limit cuts short a plain guest asleep in `poll_oneoff` on the
/// thread `_start` runs on; what it did before stays.
#[test]
fn the_time_limit_cuts_a_sleep_short() {
    let limits = runtime::RunLimits::default().timeout(std::time::Duration::from_millis(200));
    let e = common::within(BOUND, "the run", move || {
        run_limited(CREATE_THEN_SLEEP, &limits).map_err(|e| e.to_string())
    })
    .unwrap_err();
    assert!(e.contains("time limit of 200ms"), "{e}");
}

/// A module that imports a shared memory without `thread-spawn` links and
/// runs single-threaded on it, as under wasmtime.
#[test]
fn a_shared_memory_without_thread_spawn_runs_single_threaded() {
    let wat = r#"(module
      (import "env" "memory" (memory 1 4 shared))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (export "memory" (memory 0))
      (func (export "_start")
        (call $exit (i32.add (memory.grow (i32.const 1)) (i32.const 40)))))"#;
    let limits = runtime::RunLimits::default();
    assert_eq!(run_limited(wat, &limits).unwrap(), 41, "grew from 1 page");
    let linked = {
        let vfs = Vfs::new();
        let (store, linker, guest) = linked(wat, &vfs);
        guest.run(store, &linker)
    };
    assert_eq!(linked.unwrap(), 41);
}

/// The argument and environment calls give the context's strings through
/// both preview-1 and preview-0 names, again and again, and trap on a
/// pointer outside the guest's memory as wasi-common does.
#[test]
fn argument_and_environment_calls_answer_as_wasi_common() {
    let module = |name: &str, bad: bool| {
        let at = if bad { "65533" } else { "0" };
        format!(
            r#"(module
                (import "{name}" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
                (import "{name}" "environ_get" (func $get (param i32 i32) (result i32)))
                (import "{name}" "args_get" (func $args (param i32 i32) (result i32)))
                (import "{name}" "proc_exit" (func $exit (param i32)))
                (memory (export "memory") 1)
                (func (export "_start") (local $i i32)
                  (loop $again
                    (drop (call $sizes (i32.const {at}) (i32.const 4)))
                    (drop (call $get (i32.const 16) (i32.const 256)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))
                  (drop (call $args (i32.const 1024) (i32.const 2048)))
                  ;; exit with: count + size + the first byte of the second string
                  (call $exit (i32.add (i32.add (i32.load (i32.const 0)) (i32.load (i32.const 4)))
                                       (i32.load8_u (i32.load (i32.const 20)))))))"#
        )
    };
    for name in ["wasi_snapshot_preview1", "wasi_unstable"] {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        runtime::add_to_linker(&mut linker, |cx| cx).unwrap();
        let run = |wat: &str| {
            let mut ctx = runtime::context(&["guest", "x"]).unwrap();
            ctx.push_env("A", "1").unwrap();
            ctx.push_env("B", "two").unwrap();
            let module = wasmtime::Module::new(&engine, wat).unwrap();
            let mut store = Store::new(&engine, ctx);
            runtime::run_command(&mut store, &linker, &module)
        };
        // 2 strings, "A=1\0B=two\0" is 10 bytes, and the second starts with 'B'.
        assert_eq!(run(&module(name, false)).unwrap(), 2 + 10 + i32::from(b'B'));
        let trap = run(&module(name, true)).unwrap_err();
        assert!(
            trap.downcast_ref::<wasmtime::Trap>().is_some()
                || format!("{trap:?}").contains("out of bounds"),
            "{trap:?}"
        );
    }
}

/// `run_command` on an engine from `runtime::config()` (epoch
/// interruption on) without a deadline is interrupted at once; the error
/// says what to do, and doing it runs the guest.
#[test]
fn run_command_on_an_epoch_engine_names_the_fix() {
    let engine = Engine::new(&runtime::config()).unwrap();
    let module = Module::from_file(&engine, common::guest_path("status")).unwrap();
    let mut linker = Linker::new(&engine);
    runtime::add_to_linker(&mut linker, |cx: &mut WasiCtx| cx).unwrap();
    let run = |deadline: bool| {
        let ctx = runtime::context(&["status", "return"]).unwrap();
        let mut store = Store::new(&engine, ctx);
        if deadline {
            store.set_epoch_deadline(u64::MAX);
        }
        runtime::run_command(&mut store, &linker, &module)
    };
    let err = run(false).unwrap_err();
    assert_eq!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::Interrupt)
    );
    let message = format!("{err}");
    assert!(
        message.contains("store.set_epoch_deadline(u64::MAX)"),
        "{message}"
    );
    assert_eq!(run(true).unwrap(), 0);
}
