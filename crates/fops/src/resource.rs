//! Revocable resources an open file can be gated on, singly or several together.
//!
//! Invariant: a sleeper never holds access to a resource (the file layer waits only outside its
//! gate), so [`Resource::revoke`] waits only for operations actually running in a driver; it then
//! wakes every waiter registered with [`Resource::watch_revoke`], which retry and fail with
//! `ENODEV`. A waiter registered before it checks [`Resource::is_revoked`] cannot miss the wake.

use std::sync::Arc;
use std::time::Duration;

use revocable::{Revocable, RevocableGuard, RevokeTimeout};

use crate::wait::{WaitQueue, Waiter};

/// A [`Revocable<T>`] plus the wait queue woken when it is revoked.
///
/// Shared by `Arc` between its owner (a driver, a [`Devres`]-style holder) who revokes it and the
/// open files gated on it. Revoke through [`Resource::revoke`] (not through the inner
/// [`Revocable`]) so that blocked readers and pollers are woken.
///
/// [`Devres`]: https://docs.rs/kernel/latest/kernel/devres/struct.Devres.html
///
/// # Invariants
///
/// Every waiter registered with [`watch_revoke`](Self::watch_revoke) is woken once revocation
/// has started: by [`revoke`](Self::revoke)/[`revoke_timeout`](Self::revoke_timeout) after the
/// flag is set, or at registration if the flag was already set.
///
/// # Examples
///
/// ```
/// use revocable_fops::Resource;
///
/// let r = Resource::new(String::from("ec"));
/// assert_eq!(r.try_access().as_deref().map(String::as_str), Some("ec"));
/// assert!(r.revoke());
/// assert!(r.try_access().is_none());
/// assert!(!r.revoke(), "only one caller revokes");
/// ```
pub struct Resource<T> {
    rev: Revocable<T>,
    revoked: WaitQueue,
}

impl<T> std::fmt::Debug for Resource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("revoked", &self.rev.is_revoked())
            .finish()
    }
}

impl<T> Resource<T> {
    /// A new, live resource.
    pub fn new(data: T) -> Arc<Self> {
        Arc::new(Resource {
            rev: Revocable::new(data),
            revoked: WaitQueue::new(),
        })
    }

    /// The underlying core revocable.
    pub fn revocable(&self) -> &Revocable<T> {
        &self.rev
    }

    /// Access, `None` once revocation has started.
    #[inline]
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        self.rev.try_access()
    }

    /// True once revocation has started.
    #[inline]
    pub fn is_revoked(&self) -> bool {
        self.rev.is_revoked()
    }

    /// Revokes: waits for in-flight accesses, drops `T`, then wakes every watcher.
    ///
    /// Returns true for exactly one caller; every caller returns after `T` is dropped.
    pub fn revoke(&self) -> bool {
        let won = self.rev.revoke();
        self.revoked.wake_all();
        won
    }

    /// Like [`revoke`](Self::revoke) with a bound on the wait. On timeout revocation stays in
    /// progress (new access already fails, watchers are already woken) and `T` is dropped when the
    /// last holder leaves.
    pub fn revoke_timeout(&self, timeout: Duration) -> Result<bool, RevokeTimeout> {
        let won = self.rev.revoke_deferred();
        self.revoked.wake_all();
        self.rev.revoke_timeout(timeout).map(|_| won)
    }

    /// Wakes every watcher: for callers that revoked the inner [`Revocable`] themselves (in a
    /// [`RevokeBatch`](revocable::RevokeBatch), say). Does nothing useful before revocation has
    /// started (woken watchers re-check and go back to sleep).
    pub fn wake_watchers(&self) {
        self.revoked.wake_all();
    }

    /// Registers `waiter` to be woken when this resource is revoked (one-shot; see [`WaitQueue`]).
    ///
    /// If the resource is already revoked the waiter is woken at once, so a caller that registers
    /// and then sleeps never sleeps through a revoke.
    pub fn watch_revoke(&self, waiter: &Waiter) {
        self.revoked.register(waiter);
        // The queue lock taken by `register` orders this check after the revoker's flag store
        // when the revoker's `wake_all` ran first; otherwise the wake finds our entry.
        if self.rev.is_revoked() {
            self.revoked.wake_all();
        }
    }
}

/// One or more revocable resources that gate a file's operations (the kernel's `revs[]`).
///
/// Implemented for `Arc<Resource<T>>`, for tuples of resource sets (every member must be live:
/// revoking any of them revokes the file), for `()` (no resource: nothing to revoke) and for
/// [`Permanent<T>`] (never revoked: the bare, unreplaced path).
pub trait ResourceSet: Clone + Send + Sync + 'static {
    /// Access held for the duration of one operation.
    type Guard<'a>
    where
        Self: 'a;
    /// What the guard lends to the access hook.
    type Refs<'a>
    where
        Self: 'a;
    /// Takes access to every member, or `None` if any is revoked.
    fn try_access(&self) -> Option<Self::Guard<'_>>;
    /// The references a guard lends.
    fn refs<'a, 'r: 'a>(guard: &'a Self::Guard<'r>) -> Self::Refs<'a>
    where
        Self: 'r;
    /// True if any member is revoked.
    fn is_revoked(&self) -> bool;
    /// Registers `waiter` on every member's revoke queue.
    fn watch_revoke(&self, waiter: &Waiter);
}

impl<T: Send + Sync + 'static> ResourceSet for Arc<Resource<T>> {
    type Guard<'a> = RevocableGuard<'a, T>;
    type Refs<'a> = &'a T;
    #[inline]
    fn try_access(&self) -> Option<Self::Guard<'_>> {
        Resource::try_access(self)
    }
    #[inline]
    fn refs<'a, 'r: 'a>(guard: &'a Self::Guard<'r>) -> &'a T {
        guard
    }
    #[inline]
    fn is_revoked(&self) -> bool {
        Resource::is_revoked(self)
    }
    fn watch_revoke(&self, waiter: &Waiter) {
        Resource::watch_revoke(self, waiter)
    }
}

impl ResourceSet for () {
    type Guard<'a> = ();
    type Refs<'a> = ();
    #[inline]
    fn try_access(&self) -> Option<()> {
        Some(())
    }
    #[inline]
    fn refs<'a, 'r: 'a>(_: &'a ()) {}
    #[inline]
    fn is_revoked(&self) -> bool {
        false
    }
    fn watch_revoke(&self, _: &Waiter) {}
}

/// A resource that is never revoked: an `Arc<T>` seen through the [`ResourceSet`] interface.
///
/// This is the bare path (the kernel's unreplaced fops): the gate compiles to nothing, and the
/// resource lives as long as any open file holds it.
///
/// # Examples
///
/// ```
/// use revocable_fops::{Permanent, ResourceSet};
/// let p = Permanent::new(7u32);
/// let g = p.try_access().unwrap();
/// assert_eq!(*Permanent::refs(&g), 7);
/// assert!(!p.is_revoked());
/// ```
#[derive(Debug, Default)]
pub struct Permanent<T>(pub Arc<T>);

impl<T> Clone for Permanent<T> {
    fn clone(&self) -> Self {
        Permanent(self.0.clone())
    }
}

impl<T> Permanent<T> {
    /// Wraps `data`.
    pub fn new(data: T) -> Self {
        Permanent(Arc::new(data))
    }
}

impl<T: Send + Sync + 'static> ResourceSet for Permanent<T> {
    type Guard<'a> = &'a T;
    type Refs<'a> = &'a T;
    #[inline]
    fn try_access(&self) -> Option<&T> {
        Some(&self.0)
    }
    #[inline]
    fn refs<'a, 'r: 'a>(guard: &'a &'r T) -> &'a T {
        guard
    }
    #[inline]
    fn is_revoked(&self) -> bool {
        false
    }
    fn watch_revoke(&self, _: &Waiter) {}
}

macro_rules! tuple_set {
    ($($n:ident $i:tt),+) => {
        impl<$($n: ResourceSet),+> ResourceSet for ($($n,)+) {
            type Guard<'a> = ($($n::Guard<'a>,)+) where Self: 'a;
            type Refs<'a> = ($($n::Refs<'a>,)+) where Self: 'a;
            #[inline]
            fn try_access(&self) -> Option<Self::Guard<'_>> {
                // A member that fails drops the guards already taken (in reverse order).
                Some(($(self.$i.try_access()?,)+))
            }
            #[inline]
            fn refs<'a, 'r: 'a>(guard: &'a Self::Guard<'r>) -> Self::Refs<'a> where Self: 'r {
                ($($n::refs(&guard.$i),)+)
            }
            #[inline]
            fn is_revoked(&self) -> bool {
                false $(|| self.$i.is_revoked())+
            }
            fn watch_revoke(&self, waiter: &Waiter) {
                $(self.$i.watch_revoke(waiter);)+
            }
        }
    };
}

tuple_set!(A 0);
tuple_set!(A 0, B 1);
tuple_set!(A 0, B 1, C 2);
tuple_set!(A 0, B 1, C 2, D 3);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::WaitOutcome;

    #[test]
    fn tuple_fails_if_either_is_revoked() {
        let a = Resource::new(1u8);
        let b = Resource::new(2u16);
        let set = (a.clone(), b.clone());
        {
            let g = set.try_access().unwrap();
            let (x, y) = <(Arc<Resource<u8>>, Arc<Resource<u16>>)>::refs(&g);
            assert_eq!((*x, *y), (1, 2));
        }
        b.revoke();
        assert!(set.is_revoked());
        assert!(set.try_access().is_none());
        // The failed attempt released its access to `a`: revoking `a` does not hang.
        assert!(a.revoke());
    }

    #[test]
    fn watch_after_revoke_wakes_at_once() {
        let r = Resource::new(());
        r.revoke();
        let w = Waiter::new();
        r.watch_revoke(&w);
        assert_eq!(w.wait(None), WaitOutcome::Woken);
    }

    #[test]
    fn revoke_wakes_watchers() {
        let r = Resource::new(5i32);
        let w = Waiter::new();
        r.watch_revoke(&w);
        let r2 = r.clone();
        let t = std::thread::spawn(move || r2.revoke());
        assert_eq!(w.wait(None), WaitOutcome::Woken);
        assert!(t.join().unwrap());
    }

    #[test]
    fn revoke_timeout_reports_holder() {
        let r = Resource::new(1u32);
        let w = Waiter::new();
        r.watch_revoke(&w);
        let r2 = r.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let g = r2.try_access().unwrap();
            tx.send(()).unwrap();
            rx2.recv().unwrap();
            drop(g);
        });
        rx.recv().unwrap();
        assert!(r.revoke_timeout(Duration::from_millis(20)).is_err());
        assert!(
            w.is_woken(),
            "watchers are woken even when the wait times out"
        );
        assert!(r.try_access().is_none());
        tx2.send(()).unwrap();
        t.join().unwrap();
        assert!(!r.revoke());
    }
}
