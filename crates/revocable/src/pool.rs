//! The Send-guard pool: announcement slots that belong to no thread.
//!
//! A [`SendGuard`](crate::SendGuard) or [`OwnedGuard`](crate::OwnedGuard) may be dropped on
//! another thread than the one that took it, and a runtime worker may hold thousands of them at
//! once (one per suspended task), so its announcement cannot live in the taking thread's line:
//! the owner could not clear it, and the line's overflow chain would grow with the guards held.
//!
//! # Where the announcement lives
//! In a *pooled* line of the ordinary registry ([`crate::registry`]): a 64-byte line claimed once
//! for the pool, never handed back, scanned by every revoke exactly like a thread's line (and
//! reported as "Send guard" in a [`RevokeTimeout`](crate::RevokeTimeout)). A guard takes one free
//! slot, writes its resource's id there, and zeroes it when dropped, on whatever thread that is;
//! the slot goes back to the pool. The slot's single writer is always the guard that holds it.
//!
//! # Why a revoke sees it
//! The protocol is unchanged: the taking thread stores the id and then loads the state with only
//! a compiler fence between; the dropping thread stores zero and then loads the state. Each step
//! runs on *some* thread, and the revoker's heavy barrier (membarrier) orders every thread's
//! stores before its loads, whichever thread it is. Moving the guard between the two steps
//! moves it through a synchronisation (a channel, a task hand-off) that orders the announcement
//! before the retract. So: every taker either sees `REVOKED` or is visible to the scan, and every
//! dropper either is visible as gone or sees the revocation and reports its exit.
//!
//! # What each side costs
//! * Reader: a pop from a thread-local *magazine* of free slots (no atomic, no shared line), the
//!   same store–compiler-fence–load as a thread-bound guard, and a push back on drop. A magazine
//!   holds up to [`MAGAZINE`] slots; when empty or full it exchanges half with a global *depot*
//!   under a lock, so the lock is taken at most once per `MAGAZINE / 2` guards moving
//!   between threads in one direction (the magazine/depot split of Bonwick's slab allocator).
//! * Memory: the pool grows to the largest number of Send guards held at once in the process,
//!   plus up to `MAGAZINE` idle slots cached per live thread and a reserve of half a magazine in
//!   the depot (in lines of 8 slots), and is then reused; an exiting thread hands its cache back.
//!   Nothing grows with the number of guards one thread holds: 10,000 suspended tasks holding a
//!   guard each cost about 10,000 slots (80 KB), wherever they run.
//! * Revoker: the pool's lines are scanned with the rest, 8 bytes per pooled slot.
//!
//! # Invariants
//! * A slot is in exactly one place: a magazine, the depot, or a live guard.
//! * A slot in a magazine or the depot is zero.
//! * A magazine's `top` is its number of cached slots (`slots[..top]` are `Some`), or
//!   [`CLOSED`] once the thread's exit handling flushed it (or nothing can run at its exit); a
//!   closed magazine caches nothing.
//! * A magazine holds a slot only while the thread's exit handling is armed
//!   ([`crate::registry::arm_exit`]): every first slot reaches it through a slow path that arms it.

use core::cell::Cell;

use crate::registry::{self, PoolSlot};
use crate::sync::Mutex;

/// Slots a thread caches.
const MAGAZINE: usize = 32;
/// `top` of a magazine whose thread is exiting: take and put go to the depot directly.
const CLOSED: usize = usize::MAX;

struct Magazine {
    top: Cell<usize>,
    slots: [Cell<Option<PoolSlot>>; MAGAZINE],
}

#[cfg(not(loom))]
std::thread_local! {
    /// No destructor and const-initialised: always accessible, no lazy-init check on the fast
    /// path. [`flush`] empties it at thread exit.
    static MAG: Magazine = const {
        Magazine { top: Cell::new(0), slots: [const { Cell::new(None) }; MAGAZINE] }
    };
}
#[cfg(loom)]
loom::thread_local! {
    static MAG: Magazine = Magazine {
        top: Cell::new(0),
        slots: core::array::from_fn(|_| Cell::new(None)),
    };
}

#[cfg(not(loom))]
fn depot() -> &'static Mutex<Vec<PoolSlot>> {
    static DEPOT: Mutex<Vec<PoolSlot>> = Mutex::new(Vec::new());
    &DEPOT
}
#[cfg(loom)]
fn depot() -> &'static Mutex<Vec<PoolSlot>> {
    loom::lazy_static! {
        static ref DEPOT: Mutex<Vec<PoolSlot>> = Mutex::new(Vec::new());
    }
    &DEPOT
}

/// A free (zero) slot for a new Send guard.
#[inline(always)]
pub(crate) fn take() -> PoolSlot {
    let fast = MAG.try_with(|m| {
        let top = m.top.get();
        // `top - 1 < MAGAZINE` rejects both an empty (0) and a closed magazine in one branch.
        let i = top.wrapping_sub(1);
        if i < MAGAZINE {
            let s = m.slots[i].take();
            m.top.set(i);
            s
        } else {
            None
        }
    });
    match fast {
        Ok(Some(s)) => s,
        _ => take_slow(),
    }
}

/// Gives a slot back (the guard's retract already zeroed it).
#[inline(always)]
pub(crate) fn put(s: PoolSlot) {
    let fast = MAG.try_with(|m| {
        let top = m.top.get();
        // `top - 1 < MAGAZINE - 1`: neither full nor closed, and not empty either: the first put
        // into an empty magazine takes the slow path, which arranges the flush at thread exit
        // (a thread that only drops guards taken elsewhere would otherwise lose its slots).
        if top.wrapping_sub(1) < MAGAZINE - 1 {
            m.slots[top].set(Some(s));
            m.top.set(top + 1);
            true
        } else {
            false
        }
    });
    if !matches!(fast, Ok(true)) {
        put_slow(s);
    }
}

/// Thread exit (called by the registry's exit handling, after every Rust thread-local of the
/// thread is gone): hands the cached slots to the depot and closes the magazine, so that later
/// takes and puts of this thread go to the depot directly.
pub(crate) fn flush() {
    let _ = MAG.try_with(|m| {
        let top = m.top.replace(CLOSED);
        if top != CLOSED && top != 0 {
            let mut depot = depot().lock().unwrap_or_else(|e| e.into_inner());
            depot.extend(m.slots[..top].iter().filter_map(Cell::take));
        }
    });
}

#[cold]
#[inline(never)]
fn take_slow() -> PoolSlot {
    // The flush at thread exit (cheap to repeat). Where nothing can run at exit, cache nothing.
    if !crate::registry::arm_exit() {
        close();
    }
    let mut depot = depot().lock().unwrap_or_else(|e| e.into_inner());
    if depot.len() <= MAGAZINE / 2 {
        registry::claim_pool_line(&mut depot);
    }
    let _ = MAG.try_with(|m| {
        if m.top.get() == 0 {
            // Refill half the magazine, so that the next MAGAZINE / 2 takes stay local.
            let n = (MAGAZINE / 2).min(depot.len() - 1);
            let from = depot.len() - n;
            for (k, s) in depot.drain(from..).enumerate() {
                m.slots[k].set(Some(s));
            }
            m.top.set(n);
        }
    });
    depot.pop().expect("the depot was refilled")
}

#[cold]
#[inline(never)]
fn put_slow(s: PoolSlot) {
    if !crate::registry::arm_exit() {
        close();
    }
    let cached = MAG.try_with(|m| {
        let top = m.top.get();
        if top < MAGAZINE {
            m.slots[top].set(Some(s));
            m.top.set(top + 1);
            true
        } else {
            false
        }
    });
    if matches!(cached, Ok(true)) {
        return;
    }
    let mut depot = depot().lock().unwrap_or_else(|e| e.into_inner());
    depot.push(s);
    let _ = MAG.try_with(|m| {
        let top = m.top.get();
        if top == MAGAZINE {
            // Spill the upper half, so that the next MAGAZINE / 2 puts stay local.
            depot.extend(m.slots[MAGAZINE / 2..].iter().filter_map(Cell::take));
            m.top.set(MAGAZINE / 2);
        }
    });
}

/// The depot's lock (held across `fork` by the forking thread, see [`crate::fork`]).
#[cfg(all(unix, not(loom), not(miri)))]
pub(crate) fn lock_depot() -> std::sync::MutexGuard<'static, Vec<PoolSlot>> {
    depot().lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes this thread's magazine (its slots go to the depot): nothing will flush it at exit.
fn close() {
    flush();
}

/// Slots in the depot (tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn depot_len() -> usize {
    depot().lock().unwrap().len()
}
