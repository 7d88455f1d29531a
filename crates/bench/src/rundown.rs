//! A shared-atomic rundown counter (Windows `EX_RUNDOWN_REF`, the `run-down` crate).
//!
//! One atomic word holds a reference count and a "run down" bit. Readers increment it to enter
//! (one shared cache line: cheap alone, expensive when several cores bounce it); the owner sets
//! the bit, after which every acquire fails, and waits until the count drains to zero.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::Thread;

use crate::{ReadSide, UpdateSide};

const RUNDOWN: usize = 1;
const ONE: usize = 2;

/// Rundown protection.
///
/// # Invariants
/// `state >> 1` is the number of references handed out by [`acquire`](Self::acquire) (or taken
/// tentatively by it) and not yet released; bit 0 is set from the start of
/// [`wait_for_rundown`](Self::wait_for_rundown) until [`rearm`](Self::rearm). While bit 0 is set
/// and references remain, `waiter` holds the thread to unpark when the count reaches zero.
///
/// ```
/// use revocable_bench::Rundown;
/// let r = Rundown::new();
/// let g = r.acquire().unwrap();
/// drop(g);
/// r.wait_for_rundown();
/// assert!(r.acquire().is_none());
/// ```
#[derive(Debug, Default)]
pub struct Rundown {
    state: AtomicUsize,
    waiter: Mutex<Option<Thread>>,
}

/// A reference obtained by [`Rundown::acquire`]; dropping it releases the reference.
#[derive(Debug)]
pub struct RundownGuard<'a>(&'a Rundown);

impl Drop for RundownGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Rundown {
    /// A fresh counter: no references, not run down.
    pub fn new() -> Rundown {
        Rundown::default()
    }

    /// Takes a reference, or `None` once run down. One `fetch_add` on the shared word.
    #[inline]
    pub fn acquire(&self) -> Option<RundownGuard<'_>> {
        // Acquire: the section's reads must not move before the reference is taken. The RMW
        // is ordered with the owner's `fetch_or` on the same word, so either we see the bit
        // or the owner sees our reference.
        let old = self.state.fetch_add(ONE, Ordering::Acquire);
        if old & RUNDOWN != 0 {
            self.release();
            return None;
        }
        Some(RundownGuard(self))
    }

    #[inline]
    fn release(&self) {
        // Release: the section's accesses happen-before the owner sees the count drain.
        let old = self.state.fetch_sub(ONE, Ordering::Release);
        if old == RUNDOWN | ONE {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // The waiter was stored before the bit was set (under this mutex), so it is visible.
        if let Some(t) = self
            .waiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            t.unpark();
        }
    }

    /// Sets the run-down bit and waits (parked) until every reference is released.
    pub fn wait_for_rundown(&self) {
        *self.waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
        // AcqRel: publish the bit to acquirers; Acquire side pairs with releases seen below.
        let old = self.state.fetch_or(RUNDOWN, Ordering::AcqRel);
        if old >> 1 == 0 {
            return;
        }
        // Acquire: pairs with the Release decrement of the last holder.
        while self.state.load(Ordering::Acquire) >> 1 != 0 {
            std::thread::park();
        }
    }

    /// Clears the run-down bit so that references can be taken again.
    pub fn rearm(&self) {
        *self.waiter.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.state.fetch_and(!RUNDOWN, Ordering::Release);
    }

    /// Number of references currently held (for tests and diagnostics).
    pub fn references(&self) -> usize {
        self.state.load(Ordering::Relaxed) >> 1
    }
}

impl ReadSide for Rundown {
    const NAME: &'static str = "rundown";
    type Guard<'a> = RundownGuard<'a>;
    fn create(_updates: usize) -> Self {
        Rundown::new()
    }
    #[inline]
    fn enter(&self) -> Option<RundownGuard<'_>> {
        self.acquire()
    }
}

impl UpdateSide for Rundown {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        self.wait_for_rundown();
    }
    fn rearm(&self) {
        Rundown::rearm(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn counts_references_and_refuses_after_rundown() {
        let r = Rundown::new();
        let a = r.acquire().unwrap();
        let b = r.acquire().unwrap();
        assert_eq!(r.references(), 2);
        drop((a, b));
        assert_eq!(r.references(), 0);
        r.wait_for_rundown();
        assert!(r.acquire().is_none());
        assert_eq!(r.references(), 0);
        r.rearm();
        assert!(r.acquire().is_some());
    }

    #[test]
    fn rundown_waits_for_the_holder() {
        let r = Rundown::new();
        let released = AtomicBool::new(false);
        std::thread::scope(|s| {
            let g = r.acquire().unwrap();
            s.spawn(|| {
                let _g = g;
                std::thread::sleep(Duration::from_millis(30));
                released.store(true, Ordering::SeqCst);
            });
            r.wait_for_rundown();
            assert!(released.load(Ordering::SeqCst));
        });
    }
}
