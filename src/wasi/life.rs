//! `GuestLife`: whether the guest that holds a descriptor is still running.
//!
//! The descriptors a guest reaches this crate's files through share one
//! `GuestLife`, kept in the guest's `WasiCtx` table at a reserved
//! descriptor number, so that preopens (pushed before the guest is linked)
//! and the runtime (which ends the guest) find the same one. Once the
//! guest is over, every call on those descriptors fails with `EBADF`: a
//! thread of the guest still running afterwards changes nothing. Owns that
//! flag and nothing else.

use crate::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasi_common::WasiCtx;

/// The table slot of a context's `GuestLife`: far past any descriptor a
/// guest is given, and not a file or directory, so `fd_close` and the
/// preopen scan of wasi-libc never touch it.
const SLOT: u32 = u32::MAX - 1;

/// Whether one guest is running, shared by its descriptors.
#[derive(Debug, Default)]
pub(crate) struct GuestLife {
    over: AtomicBool,
}

impl GuestLife {
    /// The `GuestLife` of the guest that `ctx` belongs to, made on first
    /// use.
    pub(crate) fn of(ctx: &WasiCtx) -> Arc<GuestLife> {
        if let Ok(life) = ctx.table().get::<GuestLife>(SLOT) {
            return life;
        }
        let life = Arc::new(GuestLife::default());
        ctx.table().insert_at(SLOT, life.clone());
        life
    }

    /// Marks the guest as over: its descriptors stop working.
    pub(crate) fn end(&self) {
        self.over.store(true, Ordering::Release);
    }

    /// `EBADF` once the guest is over.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.over.load(Ordering::Acquire) {
            return Err(Error::BadHandle);
        }
        Ok(())
    }
}
