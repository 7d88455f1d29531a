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
//!   A future leaked (`mem::forget`) while pending leaves its waker here for good (it may keep
//!   its task alive): leaking the future leaks its registration, as leaking a guard leaks its
//!   announcement.
//! * No waker is dropped or woken while the table's lock is held.

use core::sync::atomic::{AtomicU64, Ordering};
use core::task::Waker;
use std::collections::BTreeMap;

use crate::sync::Mutex;

pub(crate) type Table = BTreeMap<u64, Vec<(u64, Waker)>>;

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

pub(crate) fn lock() -> crate::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh key for a future's registrations (never zero). Only uniqueness matters: Relaxed.
pub(crate) fn new_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Registers (or refreshes) the waker of future `key` under `tag`.
///
/// A replaced waker is dropped after the lock is released: dropping a waker may run arbitrary
/// code (the last reference to a task drops its future, whose guards may wake this table).
pub(crate) fn register(tag: u64, key: u64, waker: &Waker) {
    let mut t = lock();
    let list = t.entry(tag).or_default();
    let old = match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, w)) if !w.will_wake(waker) => Some(core::mem::replace(w, waker.clone())),
        Some(_) => None,
        None => {
            list.push((key, waker.clone()));
            None
        }
    };
    drop(t);
    drop(old);
}

/// Removes future `key`'s registration under `tag`, if any.
pub(crate) fn unregister(tag: u64, key: u64) {
    let mut t = lock();
    let mut removed = None;
    if let Some(list) = t.get_mut(&tag) {
        if let Some(i) = list.iter().position(|(k, _)| *k == key) {
            removed = Some(list.swap_remove(i));
        }
        if list.is_empty() {
            t.remove(&tag);
        }
    }
    drop(t);
    drop(removed); // outside the lock, as in `register`
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
