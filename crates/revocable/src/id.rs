//! Resource identities: what a reader writes into its announcement slot.
//!
//! An id is a process-unique, never-reused, non-zero `u64` (zero means "empty slot"). Announcing an
//! id rather than the resource's address is what makes a *leaked* announcement harmless once its
//! resource is gone: a `mem::forget`-ed guard leaves its id in a slot forever, but no later resource
//! (even one allocated at the same address, or the same one after a move) can ever carry that id, so
//! no revoke can mistake it for one of its own holders.
//!
//! Ids are handed out from per-thread blocks, so `Revocable::new` touches no shared cache line in
//! the common case (one global `fetch_add` per 65 536 resources per thread).
//!
//! # Invariants
//! `NEXT.0 <= NEXT.1`; ids in `NEXT.0..NEXT.1` belong to this thread and were never returned.

use crate::sync::{AtomicU64, Ordering};

const BLOCK: u64 = 1 << 16;

#[cfg(not(loom))]
static GLOBAL: AtomicU64 = AtomicU64::new(1);

#[cfg(not(loom))]
std::thread_local! {
    static NEXT: core::cell::Cell<(u64, u64)> = const { core::cell::Cell::new((0, 0)) };
}

#[cfg(loom)]
loom::lazy_static! {
    static ref GLOBAL: AtomicU64 = AtomicU64::new(1);
}
#[cfg(loom)]
loom::thread_local! {
    static NEXT: core::cell::Cell<(u64, u64)> = core::cell::Cell::new((0, 0));
}

/// Returns a fresh id.
#[inline]
pub(crate) fn next() -> u64 {
    NEXT.try_with(|c| {
        let (mut n, mut end) = c.get();
        if n == end {
            // Relaxed: uniqueness needs only the atomicity of the RMW, no ordering.
            n = GLOBAL.fetch_add(BLOCK, Ordering::Relaxed);
            end = n + BLOCK;
        }
        c.set((n + 1, end));
        n
    })
    // During thread-local destruction: take a single id from the global counter.
    .unwrap_or_else(|_| GLOBAL.fetch_add(BLOCK, Ordering::Relaxed))
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn unique_across_threads() {
        let mut all: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).map(|_| super::next()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(all.iter().all(|&i| i != 0));
    }
}
