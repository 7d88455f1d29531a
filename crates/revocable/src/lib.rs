//! Revocable resources: the Linux kernel's *revocable* for user space.
//!
//! A [`Revocable<T>`] owns a value that may disappear while others still hold handles to it — a
//! device that is unplugged, a driver that is unbound. Its owner calls [`Revocable::revoke`]; every
//! later [`Revocable::try_access`] fails cleanly, accesses already in progress finish first, and the
//! value is never used after it is gone.
//!
//! ```
//! use revocable::Revocable;
//! use std::sync::Arc;
//!
//! let ec = Arc::new(Revocable::new(String::from("cros_ec")));
//! let reader = {
//!     let ec = Arc::clone(&ec);
//!     std::thread::spawn(move || {
//!         let mut seen = 0;
//!         while let Some(name) = ec.try_access() {
//!             assert_eq!(*name, "cros_ec"); // alive for the whole access
//!             seen += 1;
//!         }
//!         seen
//!     })
//! };
//! std::thread::sleep(std::time::Duration::from_millis(10));
//! assert!(ec.revoke()); // waits for the access in progress, then drops the String
//! reader.join().unwrap();
//! ```
//!
//! A [`RevocableGuard`] is `!Send`: an access begins and ends on the same thread (the fastest
//! path; see [Async](#async) for guards that move).
//!
//! ```compile_fail
//! let r = revocable::Revocable::new(1);
//! let g = r.try_access().unwrap();
//! std::thread::scope(|s| {
//!     s.spawn(move || drop(g)); // error: `*const ()` cannot be sent between threads safely
//! });
//! ```
//!
//! # Async
//! [`RevocableGuard`] is bound to its thread. For guards that cross `.await` in a work-stealing
//! runtime or move into spawned tasks, take a *Send guard*: [`Revocable::try_access_owned`]
//! (an [`OwnedGuard`], `'static`, owns a clone of the `Arc`) or [`Revocable::try_access_send`]
//! (a borrowed [`SendGuard`]). Their announcement lives in a process-wide pool of slots rather
//! than in the thread's, so a worker with 10,000 suspended tasks each holding one costs 10,000
//! slots, nothing per thread (see the `pool` module docs). [`Revocable::revoke_async`] revokes
//! without blocking the executor: it resolves after the value is dropped, woken by the last
//! holder, and depends on no runtime (only `core::task`).
//!
//! ```
//! use revocable::Revocable;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap().block_on(async {
//! let device = Arc::new(Revocable::new(String::from("cros_ec")));
//! // A request in flight: its guard moves into a spawned task and is held across .await.
//! let dev = device.try_access_owned().expect("plugged in");
//! let request = tokio::spawn(async move {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     dev.len()
//! });
//! assert!(device.revoke_async().await); // waits for the request without blocking a worker
//! assert_eq!(request.await.unwrap(), 7); // the in-flight request finished
//! assert!(device.try_access_owned().is_none()); // later ones fail cleanly
//! # });
//! ```
//!
//! Dropping a `revoke_async` future before it resolves leaves the revocation in progress (the
//! last holder drops the value), as after an expired [`Revocable::revoke_timeout`]. Blocking
//! [`Revocable::revoke`] inside a task would stall its worker thread: use `revoke_async` there.
//! The example `async_service` (`cargo run -p revocable --example async_service`) is a Unix-socket
//! service whose backend is unplugged while requests are in flight.
//!
//! Many resources at once — a device's resources at unbind — are revoked with one heavy barrier
//! and one scan by a [`RevokeBatch`], with each member keeping the single calls' semantics:
//!
//! ```
//! use revocable::{Revocable, RevokeBatch};
//!
//! let resources: Vec<Revocable<u64>> = (0..1000).map(Revocable::new).collect();
//! let mut batch = RevokeBatch::with_capacity(resources.len());
//! for r in &resources {
//!     batch.push(r);
//! }
//! assert!(batch.revoke().into_iter().all(|won| won));
//! assert!(resources.iter().all(|r| r.try_access().is_none()));
//! ```
//!
//! # How it is fast
//! The read path is a one-shot SRCU built on *asymmetric fences*: a reader writes the resource's id
//! into its own thread-local slot and issues only a compiler fence before checking the revoked flag;
//! the revoker issues `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every other thread
//! execute a full barrier, and then scans the slots. No read-side atomic read-modify-write, no
//! shared cache line written, O(1) memory per resource (`size_of::<T>() + 16` bytes). See the
//! `revocable` module docs for the protocol and `barrier` for the per-platform fallbacks.
//!
//! # Features
//! * `std` (default): everything above. Without it the crate is `no_std` (no allocation either),
//!   readers use a shared rundown counter, and only the non-blocking API exists: `new`,
//!   `try_access`, `try_access_with`, `access_or`, `is_revoked`, `revoke_deferred`, `into_inner`.
//!   `revoke`, `revoke_timeout` and [`RevokeTimeout`] need `std`: they sleep until holders leave.
//! * `fence-readers`: readers issue a real `fence(SeqCst)` (a few ns, ~40% on the read path)
//!   instead of relying on the revoker's heavy barrier. Without it, where
//!   `membarrier(PRIVATE_EXPEDITED)` is unusable (kernels before 4.14, seccomp profiles and
//!   sandboxes that deny it, even when denied only after start), the revoker falls back at run
//!   time to `membarrier(GLOBAL)` or, failing that, to moving itself across every CPU (see
//!   [`barrier_strategy`]): correct, but each revoke then costs milliseconds. The feature buys
//!   fast revokes on such systems, at the readers' expense; other targets always fence.
//! * `track-holders`: each access records where (`#[track_caller]`) and when it was taken, so that
//!   [`RevokeTimeout`] names the file and line of a stuck holder and its exact holding time.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

mod sync;

#[cfg(feature = "std")]
mod barrier;
#[cfg(feature = "std")]
mod batch;
#[cfg(feature = "std")]
mod error;
#[cfg(feature = "std")]
mod fork;
#[cfg(feature = "std")]
mod id;
#[cfg(feature = "std")]
mod pending;
#[cfg(feature = "std")]
mod pool;
#[cfg(feature = "std")]
mod registry;
#[cfg(feature = "std")]
mod revocable;
#[cfg(feature = "std")]
mod revoke_async;
#[cfg(feature = "std")]
mod self_wait;
#[cfg(feature = "std")]
mod send;
#[cfg(feature = "std")]
mod wait;
#[cfg(feature = "std")]
mod wakers;

#[cfg(not(feature = "std"))]
mod rundown;

#[cfg(feature = "std")]
pub use crate::batch::RevokeBatch;
#[cfg(feature = "std")]
pub use crate::error::{Holder, RevokeTimeout};
#[cfg(feature = "std")]
pub use crate::pending::{drop_barrier, pending_drops};
#[cfg(feature = "std")]
pub use crate::revocable::{Revocable, RevocableGuard};
#[cfg(feature = "std")]
pub use crate::revoke_async::RevokeAsync;
#[cfg(not(feature = "std"))]
pub use crate::rundown::{Revocable, RevocableGuard};
#[cfg(feature = "std")]
pub use crate::send::{OwnedGuard, SendGuard};

/// The barrier strategy in use, for diagnostics: `"membarrier(PRIVATE_EXPEDITED)"`; where that
/// is unusable (chosen at the first access, degraded at run time if a command starts failing)
/// `"membarrier(GLOBAL) …"` or `"CPU hop via sched_setaffinity …"`; with `fence-readers`, under
/// loom or Miri, and on other targets `"fence(SeqCst) on both sides"`.
///
/// ```
/// println!("revocable uses {}", revocable::barrier_strategy());
/// ```
#[cfg(feature = "std")]
pub fn barrier_strategy() -> &'static str {
    barrier::strategy()
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests;
