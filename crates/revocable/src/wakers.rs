//! Wakers of [`RevokeAsync`](crate::RevokeAsync) futures, by resource tag: the async counterpart
//! of sleeping on a resource's `seq` word.
//!
//! A `Revocable` has no room for a waker (it costs `size_of::<T>() + 16` bytes, see the crate
//! docs), and waiting is rare, so wakers live in one process-wide table under a lock. A future
//! registers its waker *before* its final check; [`wake`] takes every waker registered under a
//! tag and wakes them outside the lock. Because both sides take the lock, a wake that finds no
//! waker happened before the registration, and so before the check that follows it.
//!
//! # Invariants
//! * A key (one per future) appears at most once in the table.
//! * An entry is removed when woken, and by its future when the future completes or is dropped.

use core::sync::atomic::{AtomicU64, Ordering};
use core::task::Waker;
use std::collections::BTreeMap;

use crate::sync::Mutex;

type Table = BTreeMap<u64, Vec<(u64, Waker)>>;

#[cfg(not(loom))]
fn table() -> &'static Mutex<Table> {
    static TABLE: Mutex<Table> = Mutex::new(BTreeMap::new());
    &TABLE
}
#[cfg(loom)]
fn table() -> &'static Mutex<Table> {
    loom::lazy_static! {
        static ref TABLE: Mutex<Table> = Mutex::new(BTreeMap::new());
    }
    &TABLE
}

fn lock() -> crate::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh key for a future's registrations (never zero). Only uniqueness matters: Relaxed.
pub(crate) fn new_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Registers (or refreshes) the waker of future `key` under `tag`.
pub(crate) fn register(tag: u64, key: u64, waker: &Waker) {
    let mut t = lock();
    let list = t.entry(tag).or_default();
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, w)) => {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
        }
        None => list.push((key, waker.clone())),
    }
}

/// Removes future `key`'s registration under `tag`, if any.
pub(crate) fn unregister(tag: u64, key: u64) {
    let mut t = lock();
    if let Some(list) = t.get_mut(&tag) {
        list.retain(|(k, _)| *k != key);
        if list.is_empty() {
            t.remove(&tag);
        }
    }
}

/// Wakes (and removes) every waker registered under `tag`.
pub(crate) fn wake(tag: u64) {
    let list = lock().remove(&tag);
    for (_, w) in list.into_iter().flatten() {
        w.wake();
    }
}

/// Registrations under `tag` (tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn registered_for(tag: u64) -> usize {
    lock().get(&tag).map_or(0, Vec::len)
}
