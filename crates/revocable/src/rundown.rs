//! [`Revocable<T>`] without `std`: a shared rundown counter (Windows `EX_RUNDOWN_REF` style).
//!
//! Without the standard library there is no thread-local storage to hold per-thread announcement
//! slots and no way to sleep, so this build keeps one atomic word per resource: a count of accesses
//! in progress plus a `REVOKED` and a `CLAIMED` bit. Accesses cost one atomic read-modify-write each
//! way on a shared cache line (tens of ns when threads contend, versus a few ns for the `std`
//! build). Only the non-blocking half of the API exists here: `new`, `try_access`,
//! `try_access_with`, `access_or`, `is_revoked`, `revoke_deferred`, `into_inner`; `revoke` and
//! `revoke_timeout` need `std` (they sleep until accesses end).
//!
//! # Invariants
//! * `state = count * ONE | flags`; `count` is the number of accesses that incremented it and have
//!   not yet decremented it (including failed ones, briefly).
//! * The value is dropped exactly once, by whoever sets `CLAIMED`, which happens only after
//!   `REVOKED` is set and `count` is zero.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::NonNull;

use crate::sync::{fence, AtomicUsize, Ordering};

const REVOKED: usize = 1;
const CLAIMED: usize = 2;
const ONE: usize = 4;

/// A value that its owner can revoke while others may be using it (no_std build: see the
/// module docs of `rundown`; the `std` build is the fast one).
///
/// ```
/// let r = revocable::Revocable::new(3);
/// assert_eq!(r.try_access_with(|v| *v), Some(3));
/// assert!(r.revoke_deferred());
/// assert!(r.try_access().is_none());
/// ```
pub struct Revocable<T> {
    state: AtomicUsize,
    data: UnsafeCell<ManuallyDrop<T>>,
}

// SAFETY: moving a Revocable moves the T it owns.
unsafe impl<T: Send> Send for Revocable<T> {}
// SAFETY: hands out `&T` to any thread (T: Sync) and may drop the value on any thread (T: Send).
unsafe impl<T: Send + Sync> Sync for Revocable<T> {}

/// Proof of access: dereferences to the value, which stays alive until the guard is dropped.
#[must_use = "the access ends when the guard is dropped"]
pub struct RevocableGuard<'a, T> {
    data: NonNull<T>,
    rev: &'a Revocable<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&RevocableGuard` only lets other threads read `&T`.
unsafe impl<T: Sync> Sync for RevocableGuard<'_, T> {}

impl<T> Revocable<T> {
    /// Wraps `data`.
    pub fn new(data: T) -> Self {
        Self {
            state: AtomicUsize::new(0),
            data: UnsafeCell::new(ManuallyDrop::new(data)),
        }
    }

    /// Begins an access: `Some(guard)` while the value is live, `None` once revoked.
    #[inline]
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        // Acquire: pairs with nothing that matters for the value (initialised before sharing), but
        // keeps the access after the increment that the revoker waits on.
        let prev = self.state.fetch_add(ONE, Ordering::Acquire);
        if prev & REVOKED != 0 {
            self.leave();
            return None;
        }
        Some(RevocableGuard {
            // SAFETY: count > 0 and not revoked when we incremented: nobody can claim the value.
            data: NonNull::from(unsafe { &**self.data.get() }),
            rev: self,
            _not_send: PhantomData,
        })
    }

    /// Runs `f` on the value if it is live; `None` once revoked.
    #[inline]
    pub fn try_access_with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.try_access().map(|g| f(&g))
    }

    /// Like `try_access`, with an error for the revoked case.
    #[inline]
    pub fn access_or<E>(&self, err: E) -> Result<RevocableGuard<'_, T>, E> {
        self.try_access().ok_or(err)
    }

    /// Whether revocation has begun.
    #[inline]
    pub fn is_revoked(&self) -> bool {
        self.state.load(Ordering::Acquire) & REVOKED != 0
    }

    /// Revokes without waiting; `true` for the caller that revoked. The value is dropped now if
    /// unused, otherwise by the last guard to leave.
    pub fn revoke_deferred(&self) -> bool {
        let prev = self.state.fetch_or(REVOKED, Ordering::AcqRel);
        if prev & REVOKED != 0 {
            return false;
        }
        if prev < ONE {
            self.finish();
        }
        true
    }

    /// Consumes the `Revocable`, returning the value if it was not revoked.
    pub fn into_inner(self) -> Option<T> {
        let me = ManuallyDrop::new(self);
        if me.state.load(Ordering::Acquire) & REVOKED != 0 {
            let _ = ManuallyDrop::into_inner(me);
            return None;
        }
        // SAFETY: not revoked: initialised; `me` is never dropped, so the value moves out once.
        Some(unsafe { ManuallyDrop::take(&mut *me.data.get()) })
    }

    fn leave(&self) {
        // Release: our uses of the value happen before the decrement the dropper observes.
        let prev = self.state.fetch_sub(ONE, Ordering::Release);
        if prev == REVOKED | ONE {
            fence(Ordering::Acquire);
            self.finish();
        }
    }

    fn finish(&self) {
        // Only from `REVOKED` with count 0: a racing last holder and revoker agree on one dropper.
        if self
            .state
            .compare_exchange(
                REVOKED,
                REVOKED | CLAIMED,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            // SAFETY: we claimed the value: revoked, no access in progress, nobody else drops it.
            unsafe { ManuallyDrop::drop(&mut *self.data.get()) };
        }
    }
}

impl<T> Drop for Revocable<T> {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) & CLAIMED == 0 {
            // SAFETY: unclaimed, hence initialised; `&mut self` excludes every other user.
            unsafe { ManuallyDrop::drop(&mut *self.data.get()) };
        }
    }
}

impl<T> Deref for RevocableGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the counted access keeps the value alive until `drop`.
        unsafe { self.data.as_ref() }
    }
}

impl<T> Drop for RevocableGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.rev.leave();
    }
}

impl<T: fmt::Debug> fmt::Debug for RevocableGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
