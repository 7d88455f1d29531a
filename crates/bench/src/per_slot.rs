//! A per-slot reader counter (percpu_ref / SRCU style), the scalable lock-free baseline.
//!
//! Each thread counts its read sections in its own cache-padded slot, so readers on different
//! cores never share a written cache line. Entering is one atomic RMW on the own slot (a full
//! fence on x86, like SRCU's `smp_mb()` after the increment) and one load of the shared,
//! read-mostly "closed" flag. The updater sets the flag and polls until every slot is zero.
//! Memory is one cache line per slot per instance: that is the price this design pays.

use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_utils::CachePadded;

use crate::{ReadSide, UpdateSide};

/// Number of slots per instance; threads share a slot only beyond this many.
pub const SLOTS: usize = 64;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
static FREE_IDS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A thread's slot id; returned to the free list when the thread exits, so that threads that
/// run at the same time get distinct slots (up to [`SLOTS`] of them).
struct SlotId(usize);

impl SlotId {
    fn acquire() -> SlotId {
        let reused = FREE_IDS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        SlotId(reused.unwrap_or_else(|| NEXT_THREAD.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for SlotId {
    fn drop(&mut self) {
        FREE_IDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0);
    }
}

thread_local! {
    static THREAD_SLOT: SlotId = SlotId::acquire();
}

/// This thread's slot index.
#[inline]
fn my_slot() -> usize {
    // A thread whose thread-locals are being destroyed shares slot 0 (still correct: slots
    // are atomic counters).
    THREAD_SLOT.try_with(|s| s.0 % SLOTS).unwrap_or(0)
}

/// Per-slot reader counters with a "closed" flag.
///
/// # Invariants
/// Each slot counts the sections entered (or tentatively entered) and not yet left by the
/// threads mapped to it; a thread always uses the same slot, so every slot is `>= 0`. While
/// `closed` is set, no section can be entered successfully.
///
/// ```
/// use revocable_bench::PerSlot;
/// let p = PerSlot::new();
/// drop(p.enter().unwrap());
/// p.close_and_wait();
/// assert!(p.enter().is_none());
/// ```
#[derive(Debug)]
pub struct PerSlot {
    slots: Box<[CachePadded<AtomicIsize>]>,
    closed: CachePadded<AtomicBool>,
}

/// A read section of a [`PerSlot`]; dropping it leaves the section.
#[derive(Debug)]
pub struct PerSlotGuard<'a> {
    slot: &'a AtomicIsize,
}

impl Drop for PerSlotGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: the section's accesses happen-before the updater sees the slot drop.
        self.slot.fetch_sub(1, Ordering::Release);
    }
}

impl Default for PerSlot {
    fn default() -> Self {
        PerSlot::new()
    }
}

impl PerSlot {
    /// A fresh, open instance.
    pub fn new() -> PerSlot {
        PerSlot {
            slots: (0..SLOTS)
                .map(|_| CachePadded::new(AtomicIsize::new(0)))
                .collect(),
            closed: CachePadded::new(AtomicBool::new(false)),
        }
    }

    /// Enters a read section, or `None` once closed.
    #[inline]
    pub fn enter(&self) -> Option<PerSlotGuard<'_>> {
        let slot: &AtomicIsize = &self.slots[my_slot()];
        // SeqCst increment then SeqCst load of `closed`, against the updater's SeqCst store of
        // `closed` then SeqCst loads of the slots (store-buffering): in the single total order
        // either our load sees `closed`, or the updater's scan sees our increment.
        slot.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            slot.fetch_sub(1, Ordering::Release);
            return None;
        }
        Some(PerSlotGuard { slot })
    }

    /// Closes the instance and waits (spin, then yield) until no section is in flight.
    pub fn close_and_wait(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut spins = 0u32;
        // SeqCst: see `enter`; a zero read also acquires the leaving reader's Release.
        while self.slots.iter().any(|s| s.load(Ordering::SeqCst) != 0) {
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Reopens a closed instance.
    pub fn reopen(&self) {
        self.closed.store(false, Ordering::Release);
    }

    /// Sections in flight, summed over the slots (for tests and diagnostics).
    pub fn in_flight(&self) -> isize {
        self.slots.iter().map(|s| s.load(Ordering::SeqCst)).sum()
    }
}

impl ReadSide for PerSlot {
    const NAME: &'static str = "per-slot";
    type Guard<'a> = PerSlotGuard<'a>;
    fn create(_updates: usize) -> Self {
        PerSlot::new()
    }
    #[inline]
    fn enter(&self) -> Option<PerSlotGuard<'_>> {
        PerSlot::enter(self)
    }
}

impl UpdateSide for PerSlot {
    const WAITS_FOR_READERS: bool = true;
    fn update(&self) {
        self.close_and_wait();
    }
    fn rearm(&self) {
        self.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn threads_use_distinct_slots_and_counts_balance() {
        let p = PerSlot::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        let g = p.enter().unwrap();
                        assert!(p.in_flight() >= 1);
                        drop(g);
                    }
                });
            }
        });
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn close_waits_for_holder_then_refuses() {
        let p = PerSlot::new();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (p, done) = (&p, &done);
            s.spawn(move || {
                let _g = p.enter().unwrap();
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(30));
                done.store(true, Ordering::SeqCst);
            });
            rx.recv().unwrap();
            p.close_and_wait();
            assert!(done.load(Ordering::SeqCst));
        });
        assert!(p.enter().is_none());
        p.reopen();
        assert!(p.enter().is_some());
    }
}
