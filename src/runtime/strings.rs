//! Preview 1's `args_get`, `args_sizes_get`, `environ_get` and
//! `environ_sizes_get`, served from a copy of the context's strings made
//! once per guest.
//!
//! wasi-common's own `args_get` and `environ_get` build an error value for
//! every string they copy, used or not; with `RUST_BACKTRACE=1` each one
//! captures a backtrace, so a guest that reads its environment often
//! (CPython does it around every `pread`) runs ten times slower. Here the
//! strings are fetched once, through wasi-common's own calls on a private
//! memory, and kept in the context's descriptor table beside the guest's
//! life; every later call copies them straight into the guest's memory. A
//! call with a pointer outside the guest's memory goes to wasi-common
//! unchanged, which traps as the WASI rules say. This module must not
//! change what any of the four calls answers.

use super::data_calls::with_memory;
use std::sync::Arc;
use wasi_common::WasiCtx;
use wasi_common::snapshots::preview_1::wasi_snapshot_preview1 as abi;
use wasmtime::{Caller, Linker};
use wiggle::{GuestMemory, GuestPtr};

/// The table slots the copies are kept in, below the guest's life's.
const ARGS_SLOT: u32 = u32::MAX - 2;
const ENV_SLOT: u32 = u32::MAX - 3;

/// The arguments or the environment.
#[derive(Clone, Copy)]
enum Which {
    Args,
    Env,
}

/// One list of strings as the guest receives it: each string's offset in
/// `bytes`, and the strings, each ended by a NUL.
struct Strings {
    heads: Vec<u32>,
    bytes: Vec<u8>,
}

/// The strings of `which` in `cx`, copied on first use.
fn strings(cx: &mut WasiCtx, which: Which) -> wasmtime::Result<Arc<Strings>> {
    let slot = match which {
        Which::Args => ARGS_SLOT,
        Which::Env => ENV_SLOT,
    };
    if let Ok(kept) = cx.table().get::<Strings>(slot) {
        return Ok(kept);
    }
    let mut sizes = [0u8; 8];
    let errno = wiggle::run_in_dummy_executor(async {
        let mut memory = GuestMemory::Unshared(&mut sizes);
        match which {
            Which::Args => abi::args_sizes_get(cx, &mut memory, 0, 4).await,
            Which::Env => abi::environ_sizes_get(cx, &mut memory, 0, 4).await,
        }
    })??;
    wasmtime::ensure!(errno == 0, "the context's strings could not be read");
    let word = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (count, size) = (word(&sizes, 0) as usize, word(&sizes, 4) as usize);
    let heads_len = 4 * count;
    let mut scratch = vec![0u8; heads_len + size];
    let errno = wiggle::run_in_dummy_executor(async {
        let mut memory = GuestMemory::Unshared(&mut scratch);
        let (list, buf) = (0, heads_len as i32);
        match which {
            Which::Args => abi::args_get(cx, &mut memory, list, buf).await,
            Which::Env => abi::environ_get(cx, &mut memory, list, buf).await,
        }
    })??;
    wasmtime::ensure!(errno == 0, "the context's strings could not be read");
    let heads = (0..count)
        .map(|i| word(&scratch, 4 * i).saturating_sub(heads_len as u32))
        .collect();
    let kept = Arc::new(Strings {
        heads,
        bytes: scratch.split_off(heads_len),
    });
    cx.table().insert_at(slot, kept.clone());
    Ok(kept)
}

/// Writes the count and total size of `strings` at `count` and `size`.
fn write_sizes(memory: &mut GuestMemory<'_>, s: &Strings, count: i32, size: i32) -> Option<()> {
    let n = u32::try_from(s.heads.len()).ok()?;
    let total = u32::try_from(s.bytes.len()).ok()?;
    memory.write(GuestPtr::<u32>::new(count as u32), n).ok()?;
    memory.write(GuestPtr::<u32>::new(size as u32), total).ok()
}

/// Writes `strings` at `buf` and a pointer to each at `list`.
fn write_strings(memory: &mut GuestMemory<'_>, s: &Strings, list: i32, buf: i32) -> Option<()> {
    let (list, buf) = (list as u32, buf as u32);
    let len = u32::try_from(s.bytes.len()).ok()?;
    memory
        .copy_from_slice(&s.bytes, GuestPtr::<[u8]>::new((buf, len)))
        .ok()?;
    for (i, head) in s.heads.iter().enumerate() {
        let at = list.checked_add(u32::try_from(i).ok()?.checked_mul(4)?)?;
        memory
            .write(GuestPtr::<u32>::new(at), buf.checked_add(*head)?)
            .ok()?;
    }
    Some(())
}

/// Serves one call: the sizes (`count`, `size`) or the strings (`list`,
/// `buf`) of `which`, from the copy; wasi-common's own call when a pointer
/// is outside the guest's memory.
fn serve<T>(
    caller: &mut Caller<'_, T>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx,
    which: Which,
    sizes: bool,
    (a, b): (i32, i32),
) -> wasmtime::Result<i32> {
    with_memory(caller, None, get_cx, |cx, memory| {
        let s = strings(cx, which)?;
        let written = if sizes {
            write_sizes(memory, &s, a, b)
        } else {
            write_strings(memory, &s, a, b)
        };
        if written.is_some() {
            return Ok(0);
        }
        wiggle::run_in_dummy_executor(async {
            match (which, sizes) {
                (Which::Args, true) => abi::args_sizes_get(cx, memory, a, b).await,
                (Which::Args, false) => abi::args_get(cx, memory, a, b).await,
                (Which::Env, true) => abi::environ_sizes_get(cx, memory, a, b).await,
                (Which::Env, false) => abi::environ_get(cx, memory, a, b).await,
            }
        })?
    })
}

/// Defines the four calls in `linker` for both preview-1 module names,
/// in front of wasi-common's.
pub(crate) fn link<T: 'static>(
    linker: &mut Linker<T>,
    get_cx: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> wasmtime::Result<()> {
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        for (which, sizes, name) in [
            (Which::Args, true, "args_sizes_get"),
            (Which::Args, false, "args_get"),
            (Which::Env, true, "environ_sizes_get"),
            (Which::Env, false, "environ_get"),
        ] {
            linker.func_wrap(
                module,
                name,
                move |mut caller: Caller<'_, T>, a: i32, b: i32| {
                    serve(&mut caller, get_cx, which, sizes, (a, b))
                },
            )?;
        }
    }
    Ok(())
}
