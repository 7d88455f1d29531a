//! Revoked values not dropped yet, process-wide: [`pending_drops`] and [`drop_barrier`], the
//! counterpart of the kernel's `rcu_barrier()` / `srcu_barrier()` for deferred drops.
//!
//! After [`Revocable::revoke_deferred`](crate::Revocable::revoke_deferred), an expired
//! `revoke_timeout` or a dropped `revoke_async` future, the value is dropped by its last
//! holder. If the process exits first (`main` returns, `std::process::exit`), that never
//! happens: `T::drop` does not run, as for any value alive at exit. A program whose `T::drop`
//! must run (flush a log, release a device) calls [`drop_barrier`] before it exits.
//!
//! A revocation is counted when it is handed to the last holder (the revoker stops waiting with
//! accesses still in progress): raised before the state gains `COUNTED`, which only happens
//! while the drop is unclaimed, and lowered by whoever drops a `COUNTED` value. A revoke that
//! waits and drops the value itself is never counted: nothing of it can outlive its caller.
//!
//! # Invariants
//! `PENDING` = values handed to their last holder (or being counted) and not yet dropped.

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::time::Instant;

use crate::sync::AtomicU32;
use crate::wait;

static PENDING: AtomicUsize = AtomicUsize::new(0);
static WAITERS: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(loom))]
fn seq() -> &'static AtomicU32 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    &SEQ
}
#[cfg(loom)]
fn seq() -> &'static AtomicU32 {
    loom::lazy_static! {
        static ref SEQ: AtomicU32 = AtomicU32::new(0);
    }
    &SEQ
}

/// Runs a revoke's winning attempt `cas`, counted as pending from before it can succeed (so the
/// drop that follows can never be counted first).
#[inline]
pub(crate) fn attempt(cas: impl FnOnce() -> bool) -> bool {
    // SeqCst: ordered with the waiters' checks in one total order (see `dropped`).
    PENDING.fetch_add(1, Ordering::SeqCst);
    let won = cas();
    if !won {
        dropped();
    }
    won
}

/// A counted value was dropped (or the attempt failed).
pub(crate) fn dropped() {
    // SeqCst, with `WAITERS` and the waiter's check: either the waiter sees the count reach 0, or
    // we see the waiter and wake it.
    if PENDING.fetch_sub(1, Ordering::SeqCst) == 1 && WAITERS.load(Ordering::SeqCst) > 0 {
        let s = seq();
        s.fetch_add(1, Ordering::Release);
        wait::wake_all(s);
    }
}

/// Revoked values whose drop was handed to their last holder and has not happened yet (a
/// snapshot): those still held after a deferred or timed-out revoke or a dropped `revoke_async`
/// future.
///
/// ```
/// let r = revocable::Revocable::new(String::from("log buffer"));
/// let g = r.try_access().unwrap();
/// r.revoke_deferred();
/// assert!(revocable::pending_drops() >= 1);
/// drop(g); // the last holder drops the value
/// ```
pub fn pending_drops() -> usize {
    PENDING.load(Ordering::SeqCst)
}

/// Waits until no revoked value is waiting for its drop (`rcu_barrier()` for deferred drops):
/// returns `true` once [`pending_drops`] is 0, `false` if `timeout` expired first. `None` waits
/// without limit — forever if a guard was leaked.
///
/// Call it before the process exits when `T::drop` must run for every revoked value: values
/// whose last holder has not let go yet are otherwise never dropped (exit does not run
/// destructors of values other threads still use). New revocations during the wait extend it.
/// It does not wait for revokes still waiting for their holders (`revoke`, an unexpired
/// `revoke_timeout`, a pending `revoke_async`): their callers drop the value themselves.
///
/// Blocks (sleeping). Panics if called from inside a revoked value's `T::drop`, which would wait
/// for itself.
///
/// ```
/// use std::time::Duration;
/// let r = std::sync::Arc::new(revocable::Revocable::new(vec![0u8; 16]));
/// let g = r.try_access_owned().unwrap();
/// r.revoke_deferred();
/// std::thread::spawn(move || drop(g)); // the last holder, elsewhere
/// assert!(revocable::drop_barrier(Some(Duration::from_secs(10))));
/// ```
pub fn drop_barrier(timeout: Option<Duration>) -> bool {
    if crate::self_wait::in_any_drop() {
        crate::self_wait::fail(crate::self_wait::SelfWait::InDrop);
    }
    let start = Instant::now();
    WAITERS.fetch_add(1, Ordering::SeqCst);
    let done = loop {
        let q = seq().load(Ordering::Acquire);
        if PENDING.load(Ordering::SeqCst) == 0 {
            break true;
        }
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        if left == Some(Duration::ZERO) {
            break false;
        }
        wait::wait(seq(), q, left);
    };
    WAITERS.fetch_sub(1, Ordering::SeqCst);
    done
}
