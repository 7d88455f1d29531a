//! Guards that may cross threads and `.await`: [`SendGuard`] (borrowed) and [`OwnedGuard`]
//! (owning an `Arc`), announced in a slot of the Send-guard pool ([`crate::pool`]) instead of the
//! taking thread's line.
//!
//! ```
//! use revocable::Revocable;
//! use std::sync::Arc;
//!
//! let backend = Arc::new(Revocable::new(String::from("eeprom")));
//! let guard = backend.try_access_owned().unwrap(); // 'static, Send
//! let t = std::thread::spawn(move || guard.len()); // used and dropped on another thread
//! assert_eq!(t.join().unwrap(), 6);
//! assert!(backend.revoke()); // nothing held any more: returns at once
//! ```

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use std::sync::Arc;

use crate::registry::PoolSlot;
use crate::Revocable;

/// An access that may be moved to another thread (or held across `.await` in a task that
/// migrates between runtime workers) and dropped there; borrows the [`Revocable`].
///
/// Taken by [`Revocable::try_access_send`]. It keeps the value alive until dropped, like a
/// [`RevocableGuard`](crate::RevocableGuard), but its announcement lives in the process-wide
/// Send-guard pool rather than in the taking thread's slots: holding many costs one 8-byte slot
/// each and nothing per thread. A leaked `SendGuard` is an access that never ends (its slot is
/// never reused).
///
/// `Send` when `T: Send + Sync`: the receiving thread reads `&T`, and if the guard is the last
/// holder after a deferred revoke its drop drops the value there. (That is exactly when the
/// `Revocable` itself can be shared between threads.) `Sync` when `T: Sync`.
///
/// Leaking one (`mem::forget`) is an access that never ends, as for a thread-bound guard.
///
/// Self-deadlock: a thread that calls [`Revocable::revoke`] while a `SendGuard` of the same
/// resource is alive on its own stack waits forever — a Send guard belongs to no thread, so the
/// crate cannot tell this from a guard held elsewhere. Use
/// [`revoke_timeout`](Revocable::revoke_timeout) where that can happen: its report lists the guard
/// ([`Holder::is_send_guard`](crate::Holder::is_send_guard)).
#[must_use = "the access ends when the guard is dropped"]
pub struct SendGuard<'a, T> {
    /// Raw, for the same reason as in `RevocableGuard`.
    data: NonNull<T>,
    rev: &'a Revocable<T>,
    slot: PoolSlot,
}

/// An access that owns a clone of the `Arc<Revocable<T>>`: `'static`, so it can be moved into a
/// spawned task or thread, held across `.await`, and dropped anywhere.
///
/// Taken by [`Revocable::try_access_owned`]; otherwise the same as [`SendGuard`] (same pool
/// slot, same `Send` rule, same self-deadlock caveat). `Sync` only when `T: Send + Sync`, since
/// [`OwnedGuard::revocable`] hands out the `Arc`, whose last clone may drop the value. The
/// `Revocable` lives at least as long as the guard.
///
/// ```
/// use revocable::{OwnedGuard, Revocable};
/// use std::sync::Arc;
///
/// fn assert_send_static<G: Send + 'static>(_: &G) {}
/// let r = Arc::new(Revocable::new(vec![1u8, 2, 3]));
/// let g: OwnedGuard<Vec<u8>> = r.try_access_owned().unwrap();
/// assert_send_static(&g);
/// assert_eq!(g.len(), 3);
/// ```
#[must_use = "the access ends when the guard is dropped"]
pub struct OwnedGuard<T> {
    data: NonNull<T>,
    rev: Arc<Revocable<T>>,
    slot: PoolSlot,
}

// SAFETY: the guard hands `&T` to the thread it is moved to (T: Sync) and, if it is the last
// holder after a deferred revoke, drops the value there (T: Send). Its announcement is a pool
// slot, written by whichever thread holds the guard; the move orders the writes (see `pool`).
unsafe impl<T: Send + Sync> Send for SendGuard<'_, T> {}
// SAFETY: `&SendGuard` only lets other threads read `&T`.
unsafe impl<T: Sync> Sync for SendGuard<'_, T> {}
// SAFETY: as for `SendGuard`; the `Arc<Revocable<T>>` is itself `Send` exactly when T: Send + Sync.
unsafe impl<T: Send + Sync> Send for OwnedGuard<T> {}
// SAFETY: `&OwnedGuard` lets other threads read `&T` (T: Sync) and, through
// `OwnedGuard::revocable`, clone the `Arc<Revocable<T>>`: the clone may be the last one and drop
// (or revoke, or unwrap) the value on that thread (T: Send).
unsafe impl<T: Send + Sync> Sync for OwnedGuard<T> {}

impl<T> Revocable<T> {
    /// Begins an access that may cross threads: `Some(guard)` while the value is live, `None` once
    /// revocation has begun. The guard is [`Send`] (when `T: Send + Sync`) and may be dropped on
    /// any thread.
    ///
    /// Never blocks. Costs a few ns more than [`try_access`](Self::try_access): a pop from and a
    /// push to a thread-local cache of pool slots (see the `pool` module docs for where the
    /// announcement lives and why a revoke sees it).
    ///
    /// ```
    /// let r = revocable::Revocable::new(7);
    /// std::thread::scope(|s| {
    ///     let g = r.try_access_send().unwrap();
    ///     s.spawn(move || assert_eq!(*g, 7)); // moved to, used and dropped on another thread
    /// });
    /// assert!(r.revoke());
    /// ```
    #[inline]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub fn try_access_send(&self) -> Option<SendGuard<'_, T>> {
        let (data, slot) = self.enter_send()?;
        Some(SendGuard {
            data,
            rev: self,
            slot,
        })
    }

    /// Begins an access that owns a clone of the `Arc`: a `'static` guard for spawned tasks and
    /// threads. `None` once revocation has begun. Otherwise as
    /// [`try_access_send`](Self::try_access_send).
    ///
    /// ```
    /// use revocable::Revocable;
    /// use std::sync::Arc;
    ///
    /// let r = Arc::new(Revocable::new(String::from("sensor")));
    /// let g = r.try_access_owned().unwrap();
    /// std::thread::spawn(move || println!("read from {}", *g)).join().unwrap();
    /// assert!(r.revoke());
    /// assert!(r.try_access_owned().is_none());
    /// ```
    #[inline]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub fn try_access_owned(self: &Arc<Self>) -> Option<OwnedGuard<T>> {
        let (data, slot) = self.enter_send()?;
        Some(OwnedGuard {
            data,
            rev: Arc::clone(self),
            slot,
        })
    }
}

impl<T> OwnedGuard<T> {
    /// The `Revocable` this guard accesses (an associated function, so as not to shadow methods
    /// of `T`).
    pub fn revocable(this: &Self) -> &Arc<Revocable<T>> {
        &this.rev
    }
}

impl<T> Deref for SendGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the access is announced until `drop`, so the value is alive.
        unsafe { self.data.as_ref() }
    }
}

impl<T> Deref for OwnedGuard<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the access is announced until `drop`, so the value is alive.
        unsafe { self.data.as_ref() }
    }
}

impl<T> Drop for SendGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.rev.leave_send(self.slot);
    }
}

impl<T> Drop for OwnedGuard<T> {
    #[inline]
    fn drop(&mut self) {
        // The access ends before the `Arc` field is dropped (fields drop after this body).
        self.rev.leave_send(self.slot);
    }
}

impl<T: fmt::Debug> fmt::Debug for SendGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Debug> fmt::Debug for OwnedGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for SendGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for OwnedGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
