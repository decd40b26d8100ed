//! Limits on one run of a guest: the linear memory, tables and instances
//! its stores may create, and the wall-clock time it may run.
//!
//! Memory is limited by a `wasmtime::ResourceLimiter` that every store of
//! the guest shares an account with (the caller's store and each spawned
//! thread's), and by the maximum a shared memory is created with, since
//! growing a shared memory consults no store. Time is limited by
//! the caller of `Guest::run`, which waits for the guest's end until the
//! deadline and then ends it the way any other end is made. This module
//! owns the limiter, not the running of guests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Instances, tables and memories one store of a guest may create: a
/// guest's store holds one instance of one module, so these only stop a
/// module that makes many.
const MAX_INSTANCES: usize = 16;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 64;

/// Elements one table may grow to.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Limits for a run of a guest, given to [`link_with_limits`](super::link_with_limits).
///
/// ```
/// use std::time::Duration;
/// use wasi_common_vfs::runtime::RunLimits;
///
/// let limits = RunLimits::default()
///     .memory(256 << 20)
///     .timeout(Duration::from_secs(30));
/// assert_eq!(limits.memory, Some(256 << 20));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunLimits {
    /// Bytes of linear memory the guest may hold in all, over every memory
    /// of every thread (a shared memory counts once, at the maximum it may
    /// grow to). Past it, `memory.grow` fails as it does at a memory's own
    /// maximum, and instantiating a module whose memories start larger
    /// fails. `None` leaves memory unlimited.
    pub memory: Option<usize>,
    /// Wall-clock time the guest may run. Past it, the guest ends as if a
    /// thread had trapped, with an error naming the limit (see
    /// [`TimeLimitExceeded`]). `None` lets it run as long as it likes.
    pub timeout: Option<Duration>,
}

impl RunLimits {
    /// These limits with [`RunLimits::memory`] set to `bytes`.
    pub fn memory(mut self, bytes: usize) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// These limits with [`RunLimits::timeout`] set to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A limiter that enforces [`RunLimits::memory`], for the store data
    /// of the guest's stores (see [`link_with_limits`](super::link_with_limits)).
    pub fn limiter(&self) -> GuestLimiter {
        GuestLimiter {
            max: self.memory.unwrap_or(usize::MAX),
            used: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// The error a guest ends with when it runs past [`RunLimits::timeout`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("the guest ran past its time limit of {0:?}")]
pub struct TimeLimitExceeded(pub Duration);

/// A `wasmtime::ResourceLimiter` over all the stores of one guest: clones
/// share one account of linear memory, so the guest's threads cannot each
/// take the whole limit. Memory freed when a thread's store goes is not
/// given back to the account, which errs on the side of refusing.
#[derive(Debug, Clone)]
pub struct GuestLimiter {
    max: usize,
    used: Arc<AtomicUsize>,
}

impl GuestLimiter {
    /// Takes `bytes` from the account, or fails leaving it unchanged.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    /// Bytes the account has left.
    pub(crate) fn left(&self) -> usize {
        self.max.saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Bytes of linear memory taken so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.take(desired.saturating_sub(current)))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
