//! The synchronisation shim: `loom`'s model types under `--cfg loom`, the real ones otherwise.
//!
//! Everything in this crate that another thread can observe goes through these names, so that
//! `RUSTFLAGS="--cfg loom" cargo test -p revocable --release --lib --test loom` checks every
//! interleaving of the protocol. `UnsafeCell` is deliberately *not* shimmed: the only cells are the resource itself
//! (whose data races the loom tests detect with a loom cell *inside* the test resource) and
//! owner-only bookkeeping.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::fence;
#[cfg(all(not(loom), not(feature = "std")))]
pub(crate) use core::sync::atomic::AtomicUsize;
#[cfg(all(not(loom), feature = "std"))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

pub(crate) use core::sync::atomic::Ordering;

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(all(not(loom), feature = "std"))]
pub(crate) use std::sync::{Mutex, MutexGuard};
