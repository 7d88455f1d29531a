//! loom models of the core protocol. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p revocable --release --lib --test loom`.
//!
//! loom does not model membarrier or IPIs: under `cfg(loom)` both the light and the heavy barrier
//! are `fence(SeqCst)` (see `barrier`), and a futex wait is a yield loop whose deadline expires at
//! once, so the time-out paths are explored too. The resource carries a loom `UnsafeCell` that its
//! drop writes and readers read: loom reports any read not ordered before the drop.
//!
//! What loom cannot check: that a *compiler* fence plus membarrier is as strong as the SeqCst
//! fence modelled here. That step rests on membarrier's guarantee (every running thread passes a
//! full barrier before it returns) and is argued in `barrier` and `revocable`; in particular the
//! Acquire load of `state` in `leave_slow`, which orders a finishing holder's scan after the
//! revoker's heavy barrier, is invisible to these models.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use revocable::{Revocable, RevokeBatch};

struct Res {
    cell: UnsafeCell<usize>,
    drops: Arc<AtomicUsize>,
}

impl Res {
    fn new(drops: &Arc<AtomicUsize>) -> Self {
        Self {
            cell: UnsafeCell::new(7),
            drops: drops.clone(),
        }
    }
    fn read(&self) {
        // SAFETY: loom checks this read against the drop's write; the protocol orders it
        // before the drop, and a model fails when it does not.
        self.cell
            .with(|p| assert_eq!(unsafe { *p }, 7, "use after drop"));
    }
}

impl Drop for Res {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other reference to the cell exists.
        self.cell.with_mut(|p| unsafe { *p = 0 });
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(3, f);
}

fn model_bounded(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound);
    }
    b.check(f);
}

/// A reader racing a synchronous revoke never sees the value after its drop, and revoke returns
/// only after the drop.
#[test]
fn try_access_vs_revoke() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Revocable::new(Res::new(&drops)));
        let r2 = r.clone();
        let t = thread::spawn(move || {
            if let Some(g) = r2.try_access() {
                g.read();
            }
        });
        assert!(r.revoke());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(r.try_access().is_none());
        t.join().unwrap();
    });
}

/// The last guard's drop wakes a revoker that is waiting for it (no lost wake-up: a lost one
/// leaves the revoker spinning forever, which loom reports).
#[test]
fn last_guard_drop_vs_waiting_revoker() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Revocable::new(Res::new(&drops)));
        let g_taken = Arc::new(AtomicUsize::new(0));
        let (r2, taken2) = (r.clone(), g_taken.clone());
        let t = thread::spawn(move || {
            let g = r2.try_access();
            taken2.store(1, Ordering::SeqCst);
            if let Some(g) = g {
                g.read();
            }
        });
        while g_taken.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        r.revoke();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        t.join().unwrap();
    });
}

/// Two revokers: exactly one wins, both return after the drop.
#[test]
fn concurrent_revokers() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Revocable::new(Res::new(&drops)));
        let (r2, d2) = (r.clone(), drops.clone());
        let t = thread::spawn(move || {
            let won = r2.revoke();
            assert_eq!(d2.load(Ordering::SeqCst), 1);
            won
        });
        let won = r.revoke();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(won ^ t.join().unwrap(), "exactly one revoker wins");
    });
}

/// Deferred revoke: never waits; the value is dropped exactly once, by the revoker or by the last
/// holder, and never while a holder reads it.
#[test]
fn deferred_revoke() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Revocable::new(Res::new(&drops)));
        let r2 = r.clone();
        let t = thread::spawn(move || {
            if let Some(g) = r2.try_access() {
                g.read();
            }
        });
        assert!(r.revoke_deferred());
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// An expiring revoke_timeout hands the drop to the last holder: dropped exactly once.
#[test]
fn timed_out_revoke_hands_over_to_the_last_holder() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Revocable::new(Res::new(&drops)));
        let r2 = r.clone();
        let t = thread::spawn(move || {
            if let Some(g) = r2.try_access() {
                g.read();
            }
        });
        let _ = r.revoke_timeout(std::time::Duration::from_millis(1));
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// Two holders leave around a deferred revoke: exactly one thread drops the value, and only after
/// both holders are done with it (catches a holder that finishes without scanning, or without
/// the fence in `leave_slow`).
#[test]
fn two_holders_and_a_deferred_revoke() {
    model_bounded(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Arc::new(Revocable::new(Res::new(&drops)));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let r = r.clone();
                thread::spawn(move || {
                    if let Some(g) = r.try_access() {
                        g.read();
                    }
                })
            })
            .collect();
        assert!(r.revoke_deferred());
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A waiting batch whose two members are each held by another thread: each member's value is
/// dropped only after its own holder is done, the batch returns after both drops, and the last
/// holder's wake of the shared batch word is never lost (a lost one spins forever: loom reports).
#[test]
fn batch_vs_holders_of_two_members() {
    model_bounded(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Arc::new(Revocable::new(Res::new(&drops)));
        let b = Arc::new(Revocable::new(Res::new(&drops)));
        let ts: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|r| {
                thread::spawn(move || {
                    if let Some(g) = r.try_access() {
                        g.read();
                    }
                })
            })
            .collect();
        let mut batch = RevokeBatch::new();
        batch.push(&*a);
        batch.push(&*b);
        assert_eq!(batch.revoke(), [true, true]);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        for t in ts {
            t.join().unwrap();
        }
    });
}

/// A batch racing a single revoker of one of its members and a reader of it: exactly one winner
/// for the shared member, every waiting caller returns after that member's drop.
#[test]
fn batch_races_a_single_revoker_and_a_reader() {
    model_bounded(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Arc::new(Revocable::new(Res::new(&drops)));
        let b = Arc::new(Revocable::new(Res::new(&drops)));
        let (a2, d2) = (a.clone(), drops.clone());
        let single = thread::spawn(move || {
            let won = a2.revoke();
            assert!(d2.load(Ordering::SeqCst) >= 1, "returned before a's drop");
            won
        });
        let a3 = a.clone();
        let reader = thread::spawn(move || {
            if let Some(g) = a3.try_access() {
                g.read();
            }
        });
        let mut batch = RevokeBatch::new();
        batch.push(&*a);
        batch.push(&*b);
        let won = batch.revoke();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert!(won[1]);
        assert!(won[0] ^ single.join().unwrap(), "exactly one winner for a");
        reader.join().unwrap();
    });
}

/// A deferred batch with a holder of one member: the held one is dropped by the holder after its
/// read, the other before the batch returns; exactly once each.
#[test]
fn deferred_batch_and_a_holder() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Arc::new(Revocable::new(Res::new(&drops)));
        let b = Arc::new(Revocable::new(Res::new(&drops)));
        let b2 = b.clone();
        let t = thread::spawn(move || {
            if let Some(g) = b2.try_access() {
                g.read();
            }
        });
        let mut batch = RevokeBatch::new();
        batch.push(&*a);
        batch.push(&*b);
        assert_eq!(batch.revoke_deferred(), [true, true]);
        assert!(
            drops.load(Ordering::SeqCst) >= 1,
            "a dropped before returning"
        );
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

/// A timed-out batch (loom expires deadlines at once) hands its held member to the last holder.
#[test]
fn timed_out_batch_hands_over() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Arc::new(Revocable::new(Res::new(&drops)));
        let a2 = a.clone();
        let t = thread::spawn(move || {
            if let Some(g) = a2.try_access() {
                g.read();
            }
        });
        let mut batch = RevokeBatch::new();
        batch.push(&*a);
        let _ = batch.revoke_timeout(std::time::Duration::from_millis(1));
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A Send guard taken on one thread and dropped on another, racing a synchronous revoke: the
/// value is never read after its drop, and revoke returns only after it.
#[test]
fn send_guard_moved_between_threads_vs_revoke() {
    model_bounded(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = std::sync::Arc::new(Revocable::new(Res::new(&drops)));
        let cell = Arc::new(loom::sync::Mutex::new(None));
        let moved = Arc::new(AtomicUsize::new(0));
        let (r2, cell2, moved2) = (r.clone(), cell.clone(), moved.clone());
        let taker = thread::spawn(move || {
            *cell2.lock().unwrap() = r2.try_access_owned();
            moved2.store(1, Ordering::SeqCst);
        });
        let (cell3, moved3) = (cell.clone(), moved.clone());
        let dropper = thread::spawn(move || {
            while moved3.load(Ordering::SeqCst) == 0 {
                thread::yield_now();
            }
            let g = cell3.lock().unwrap().take();
            if let Some(g) = g {
                g.read();
            }
        });
        assert!(r.revoke());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(r.try_access_owned().is_none());
        taker.join().unwrap();
        dropper.join().unwrap();
    });
}

/// A waker that sets a loom flag.
struct Flag(Arc<AtomicUsize>);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `revoke_async` vs the last holder's drop: the waker is registered before the final scan, so
/// once the holder is done either the future has resolved or its waker has been woken (a lost
/// wake-up fails the assertion); the future resolves after the drop, which it performs itself.
/// `owned` picks a Send guard moved to the holder thread or a thread-bound one taken there.
fn waker_vs_last_drop(owned: bool) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    model_bounded(2, move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = std::sync::Arc::new(Revocable::new(Res::new(&drops)));
        let done = Arc::new(AtomicUsize::new(0));
        let g = if owned { r.try_access_owned() } else { None };
        let (r2, done2) = (r.clone(), done.clone());
        let holder = thread::spawn(move || {
            if let Some(g) = g {
                g.read();
            } else if let Some(g) = r2.try_access() {
                g.read();
            }
            done2.store(1, Ordering::SeqCst);
        });
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Waker::from(std::sync::Arc::new(Flag(woken.clone())));
        let mut cx = Context::from_waker(&w);
        let mut f = std::pin::pin!(r.revoke_async());
        // Wakes counted with loads only (loom 0.7 may hand an RMW a stale value).
        let mut seen = 0;
        loop {
            if let Poll::Ready(won) = f.as_mut().poll(&mut cx) {
                assert!(won);
                break;
            }
            while woken.load(Ordering::SeqCst) == seen && done.load(Ordering::SeqCst) == 0 {
                thread::yield_now();
            }
            let now = woken.load(Ordering::SeqCst);
            assert!(now > seen, "lost wake-up");
            seen = now;
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        holder.join().unwrap();
    });
}

#[test]
fn revoke_async_waker_vs_last_drop_of_a_moved_owned_guard() {
    waker_vs_last_drop(true);
}

#[test]
fn revoke_async_waker_vs_last_drop_of_a_thread_bound_guard() {
    waker_vs_last_drop(false);
}

/// The future dropped mid-wait, racing the last holder: the value is dropped exactly once,
/// by the holder or by the future's drop, and never before the holder's read.
#[test]
fn revoke_async_dropped_mid_wait() {
    use std::future::Future;
    use std::task::{Context, Waker};
    model_bounded(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = std::sync::Arc::new(Revocable::new(Res::new(&drops)));
        let g = r.try_access_owned();
        let holder = thread::spawn(move || {
            if let Some(g) = g {
                g.read();
            }
        });
        {
            let mut cx = Context::from_waker(Waker::noop());
            let mut f = std::pin::pin!(r.revoke_async());
            let _ = f.as_mut().poll(&mut cx);
        }
        assert!(r.try_access().is_none());
        holder.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A reader nested deeper than the inline slots, so that its last access lives in an overflow
/// slot (the line's `overflowed` bit set just before), racing a revoke; then it unwinds (the bit
/// cleared) and nests deep again on a second resource that a second revoke races.
#[test]
fn deep_access_vs_revoke() {
    model_bounded(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Arc::new(Revocable::new(Res::new(&drops)));
        let b = Arc::new(Revocable::new(Res::new(&drops)));
        let (a2, b2) = (a.clone(), b.clone());
        let t = thread::spawn(move || {
            for r in [&a2, &b2] {
                // 3 accesses: the 2 inline slots of a line under loom, and one overflow slot.
                let mut gs: Vec<_> = (0..3).filter_map(|_| r.try_access()).collect();
                // The inline accesses end first: the overflow one alone must keep the value.
                let last = if gs.len() == 3 { gs.pop() } else { None };
                drop(gs);
                if let Some(g) = last {
                    g.read();
                }
            }
        });
        assert!(a.revoke());
        assert!(b.revoke());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        t.join().unwrap();
    });
}
