//! [`ReadSide`]/[`UpdateSide`] for ours and the library baselines (std and parking_lot rwlocks,
//! crossbeam-epoch, arc-swap). The hand-written baselines live in [`crate::rundown`] and
//! [`crate::per_slot`].
//!
//! Each read section is exactly the call a user would write: `try_access()`, `read()`, `pin()`,
//! `load()`, and leaving is dropping what it returned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use revocable::{Revocable, RevocableGuard, SendGuard};

use crate::{ReadSide, UpdateSide};

impl ReadSide for Revocable<u64> {
    const NAME: &'static str = "ours";
    type Guard<'a> = RevocableGuard<'a, u64>;
    fn create(_updates: usize) -> Self {
        Revocable::new(0)
    }
    #[inline]
    fn enter(&self) -> Option<RevocableGuard<'_, u64>> {
        self.try_access()
    }
}

/// Ours for update-side measurements: `revoke()` is one-shot, so each update revokes the
/// current instance of a pre-built pool and [`rearm`](UpdateSide::rearm) moves to the next.
///
/// # Invariants
/// `current` indexes the instance readers use; instances before it are revoked, instances after
/// it untouched. Past the end of the pool, `enter` fails and `update` does nothing.
///
/// ```
/// use revocable_bench::{OursPool, ReadSide, UpdateSide};
/// let p = OursPool::create(1);
/// drop(p.enter().unwrap());
/// p.update();
/// assert!(p.enter().is_none());
/// p.rearm();
/// assert!(p.enter().is_some());
/// ```
pub struct OursPool {
    pool: Box<[Revocable<u64>]>,
    current: AtomicUsize,
}

impl OursPool {
    fn current(&self) -> Option<&Revocable<u64>> {
        // Acquire: pairs with the Release in `rearm`, so a reader that sees the new index
        // also sees everything the updater did before moving on.
        self.pool.get(self.current.load(Ordering::Acquire))
    }
}

impl ReadSide for OursPool {
    const NAME: &'static str = "ours";
    type Guard<'a> = RevocableGuard<'a, u64>;
    fn create(updates: usize) -> Self {
        OursPool {
            pool: (0..=updates as u64).map(Revocable::new).collect(),
            current: AtomicUsize::new(0),
        }
    }
    #[inline]
    fn enter(&self) -> Option<RevocableGuard<'_, u64>> {
        self.current()?.try_access()
    }
}

impl UpdateSide for OursPool {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        if let Some(r) = self.current() {
            r.revoke();
        }
    }
    fn rearm(&self) {
        let next = (self.current.load(Ordering::Relaxed) + 1).min(self.pool.len());
        self.current.store(next, Ordering::Release);
    }
}

/// [`OursPool`] read through Send guards: `try_access_send()` + drop; update: `revoke()`.
///
/// ```
/// use revocable_bench::{OursSendPool, ReadSide, UpdateSide};
/// let p = OursSendPool::create(1);
/// drop(p.enter().unwrap());
/// p.update();
/// assert!(p.enter().is_none());
/// ```
pub struct OursSendPool(OursPool);

impl ReadSide for OursSendPool {
    const NAME: &'static str = "ours, Send guard";
    type Guard<'a> = SendGuard<'a, u64>;
    fn create(updates: usize) -> Self {
        OursSendPool(OursPool::create(updates))
    }
    #[inline]
    fn enter(&self) -> Option<SendGuard<'_, u64>> {
        self.0.current()?.try_access_send()
    }
}

impl UpdateSide for OursSendPool {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        self.0.update();
    }
    fn rearm(&self) {
        self.0.rearm();
    }
}

/// `tokio::sync::RwLock`: the async ecosystem's guard that may cross `.await`. The read section
/// is `try_read()` (the non-async entry, as a poll would take it); the update `blocking_write()`.
impl ReadSide for tokio::sync::RwLock<u64> {
    const NAME: &'static str = "tokio RwLock try_read";
    type Guard<'a> = tokio::sync::RwLockReadGuard<'a, u64>;
    fn create(_updates: usize) -> Self {
        tokio::sync::RwLock::new(0)
    }
    #[inline]
    fn enter(&self) -> Option<Self::Guard<'_>> {
        self.try_read().ok()
    }
}

impl UpdateSide for tokio::sync::RwLock<u64> {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        drop(self.blocking_write());
    }
}

impl ReadSide for std::sync::RwLock<u64> {
    const NAME: &'static str = "std RwLock";
    type Guard<'a> = std::sync::RwLockReadGuard<'a, u64>;
    fn create(_updates: usize) -> Self {
        std::sync::RwLock::new(0)
    }
    #[inline]
    fn enter(&self) -> Option<Self::Guard<'_>> {
        self.read().ok()
    }
}

impl UpdateSide for std::sync::RwLock<u64> {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        drop(self.write());
    }
}

impl ReadSide for parking_lot::RwLock<u64> {
    const NAME: &'static str = "parking_lot RwLock";
    type Guard<'a> = parking_lot::RwLockReadGuard<'a, u64>;
    fn create(_updates: usize) -> Self {
        parking_lot::RwLock::new(0)
    }
    #[inline]
    fn enter(&self) -> Option<Self::Guard<'_>> {
        Some(self.read())
    }
}

impl UpdateSide for parking_lot::RwLock<u64> {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        drop(self.write());
    }
}

/// `crossbeam_epoch::pin()` on the global collector; the update publishes a new value and
/// defers the destruction of the old one (it does not wait for readers).
///
/// # Invariants
/// `data` always points to a live, uniquely owned `u64` (never null); replaced values are
/// destroyed through the epoch's deferred destruction only.
///
/// ```
/// use revocable_bench::{EpochPin, ReadSide, UpdateSide};
/// let e = EpochPin::create(0);
/// drop(e.enter().unwrap());
/// e.update();
/// ```
pub struct EpochPin {
    data: crossbeam_epoch::Atomic<u64>,
}

impl ReadSide for EpochPin {
    const NAME: &'static str = "crossbeam_epoch pin";
    type Guard<'a> = crossbeam_epoch::Guard;
    fn create(_updates: usize) -> Self {
        EpochPin {
            data: crossbeam_epoch::Atomic::new(0),
        }
    }
    #[inline]
    fn enter(&self) -> Option<crossbeam_epoch::Guard> {
        Some(crossbeam_epoch::pin())
    }
}

impl UpdateSide for EpochPin {
    const WAITS_FOR_READERS: bool = false;
    fn update(&self) {
        let guard = crossbeam_epoch::pin();
        let old = self
            .data
            .swap(crossbeam_epoch::Owned::new(1), Ordering::AcqRel, &guard);
        // SAFETY: `old` was just unlinked from `data` (the only place it was stored), so no
        // new reader can reach it, and it is destroyed only after every pinned thread moves on.
        unsafe { guard.defer_destroy(old) };
    }
}

impl Drop for EpochPin {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no other thread can access `data` any more (the invariant
        // guarantees it is a live, uniquely owned value, never null).
        unsafe {
            let guard = crossbeam_epoch::unprotected();
            drop(self.data.load(Ordering::Relaxed, guard).into_owned());
        }
    }
}

/// `arc_swap::ArcSwap::load()`; the update stores a new `Arc` (it does not wait for readers:
/// the old value lives on until its last holder drops it).
///
/// ```
/// use revocable_bench::{ArcSwapLoad, ReadSide, UpdateSide};
/// let a = ArcSwapLoad::create(0);
/// assert_eq!(**a.enter().unwrap(), 0);
/// a.update();
/// assert_eq!(**a.enter().unwrap(), 1);
/// ```
pub struct ArcSwapLoad {
    data: arc_swap::ArcSwap<u64>,
}

impl ReadSide for ArcSwapLoad {
    const NAME: &'static str = "arc_swap load";
    type Guard<'a> = arc_swap::Guard<Arc<u64>>;
    fn create(_updates: usize) -> Self {
        ArcSwapLoad {
            data: arc_swap::ArcSwap::from_pointee(0),
        }
    }
    #[inline]
    fn enter(&self) -> Option<arc_swap::Guard<Arc<u64>>> {
        Some(self.data.load())
    }
}

impl UpdateSide for ArcSwapLoad {
    const WAITS_FOR_READERS: bool = false;
    fn update(&self) {
        self.data.store(Arc::new(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rwlocks_block_writers_while_read() {
        let l = <std::sync::RwLock<u64> as ReadSide>::create(0);
        let g = l.enter().unwrap();
        assert!(l.try_write().is_err());
        drop(g);
        assert!(l.try_write().is_ok());
        let l = <parking_lot::RwLock<u64> as ReadSide>::create(0);
        let g = ReadSide::enter(&l).unwrap();
        assert!(l.try_write().is_none());
        drop(g);
        assert!(l.try_write().is_some());
    }

    #[test]
    fn ours_refuses_after_revoke_and_pool_moves_on() {
        let r = <Revocable<u64> as ReadSide>::create(0);
        assert_eq!(*ReadSide::enter(&r).unwrap(), 0);
        r.revoke();
        assert!(ReadSide::enter(&r).is_none());

        let p = OursPool::create(2);
        for i in 0..3u64 {
            assert_eq!(*p.enter().unwrap(), i);
            p.update();
            assert!(p.enter().is_none());
            p.rearm();
        }
        // Past the end: nothing left to enter, update is a no-op.
        assert!(p.enter().is_none());
        p.update();
    }

    #[test]
    fn ours_update_waits_for_holder() {
        let p = OursPool::create(1);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (p, done) = (&p, &done);
            s.spawn(move || {
                let _g = p.enter().unwrap();
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(30));
                done.store(true, Ordering::SeqCst);
            });
            rx.recv().unwrap();
            p.update();
            assert!(done.load(Ordering::SeqCst));
        });
    }

    #[test]
    fn epoch_pins_and_arc_swap_loads() {
        let e = EpochPin::create(0);
        let g = e.enter().unwrap();
        assert!(g.collector().is_some());
        drop(g);
        for _ in 0..100 {
            e.update();
        }
        let a = ArcSwapLoad::create(0);
        let g = a.enter().unwrap();
        a.update();
        assert_eq!(**g, 0, "a loaded guard keeps the old value");
        assert_eq!(**a.enter().unwrap(), 1);
    }
}
