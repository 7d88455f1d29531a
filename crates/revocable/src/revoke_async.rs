//! [`Revocable::revoke_async`]: a revoke that awaits the last holder instead of blocking a thread.
//!
//! Depends only on `core::task`: any executor can drive it (tokio, smol, a hand-written
//! `block_on`). It never waits for holders: a `poll` does bounded work (the first one a heavy
//! barrier, a few µs; the one that finds the last access gone drops the value) and returns.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::{wakers, Revocable};

/// The future returned by [`Revocable::revoke_async`]: resolves to `true` for the one caller
/// (synchronous or asynchronous) that revoked, after the value has been dropped.
///
/// `Send` when `T: Send + Sync`, `Unpin`. It borrows the `Revocable`: to spawn it, revoke
/// through an `Arc` inside the task (`async move { r.revoke_async().await }`).
///
/// # Cancellation
/// Dropping the future before it resolves leaves the revocation in progress, as after an expired
/// [`Revocable::revoke_timeout`]: new accesses keep failing, and the value is dropped by the last
/// holder when its access ends (inside the future's own drop if no access is left by then). A
/// future that is neither polled to completion nor dropped (leaked) leaves the value undropped
/// until the `Revocable` itself is dropped.
#[must_use = "futures do nothing unless polled; the revocation starts at the first poll"]
pub struct RevokeAsync<'a, T> {
    rev: &'a Revocable<T>,
    phase: Phase,
    /// This future's key in the waker table (0: never registered).
    key: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not polled yet: nothing has happened.
    Start,
    /// We won: waiting for the accesses in progress to end, then we drop the value.
    Holders,
    /// Waiting for whoever drops the value; `won` is our result.
    Dropped { won: bool },
    /// Resolved.
    Done,
}

impl<T> Revocable<T> {
    /// Revokes, and resolves once the value has been dropped: the semantics of
    /// [`revoke`](Self::revoke) without blocking the executor thread.
    ///
    /// Exactly one caller, among all `revoke`, `revoke_timeout`, `revoke_deferred`,
    /// [`RevokeBatch`](crate::RevokeBatch) and `revoke_async` callers, gets `true`; every
    /// `revoke_async` resolves only after the value has been dropped. The winner drops the value
    /// itself, inside the `poll` that finds the last access gone (so `T::drop` runs in the
    /// revoking task, as with `revoke`); the last holder's guard drop wakes it. The revocation
    /// starts at the first `poll` (a heavy barrier, a few µs), not at the call.
    ///
    /// ```
    /// use revocable::Revocable;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let backend = Arc::new(Revocable::new(String::from("backend")));
    /// let request = {
    ///     let guard = backend.try_access_owned().unwrap();
    ///     tokio::spawn(async move {
    ///         tokio::time::sleep(Duration::from_millis(20)).await; // held across .await
    ///         guard.len()
    ///     })
    /// };
    /// assert!(backend.revoke_async().await); // waits for the request, without blocking
    /// assert!(backend.try_access().is_none());
    /// assert_eq!(request.await.unwrap(), 7);
    /// # });
    /// ```
    ///
    /// # Self-wait
    /// A task that awaits `revoke_async` while it holds an access to the same resource that it
    /// will drop only *after* the await waits forever. The crate cannot know this: a Send guard
    /// belongs to no thread, and a thread-bound guard announced on the polling thread may belong
    /// to another task of a single-threaded executor (a `LocalSet`) or to another branch of the
    /// same task's `join!`, which will let go. The synchronous revokes, which block their thread,
    /// do detect a thread-bound guard of their own thread and panic. To diagnose a stuck
    /// revocation, wrap the future in your runtime's timeout and look at
    /// [`holders`](Self::holders).
    pub fn revoke_async(&self) -> RevokeAsync<'_, T> {
        RevokeAsync {
            rev: self,
            phase: Phase::Start,
            key: 0,
        }
    }
}

impl<T> RevokeAsync<'_, T> {
    /// Registers (or refreshes) our waker: always before the check it guards.
    fn register(&mut self, cx: &Context<'_>) {
        if self.key == 0 {
            self.key = wakers::new_key();
        }
        wakers::register(self.rev.tag(), self.key, cx.waker());
    }

    fn unregister(&mut self) {
        if self.key != 0 {
            wakers::unregister(self.rev.tag(), self.key);
        }
    }
}

impl<T> Future for RevokeAsync<'_, T> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = &mut *self;
        loop {
            match this.phase {
                Phase::Start => {
                    this.phase = if this.rev.begin_async() {
                        Phase::Holders
                    } else {
                        Phase::Dropped { won: false }
                    };
                }
                Phase::Holders => {
                    this.register(cx);
                    if !this.rev.unheld() {
                        return Poll::Pending;
                    }
                    this.unregister();
                    if this.rev.finish() {
                        this.phase = Phase::Done;
                        return Poll::Ready(true);
                    }
                    // Only reachable on a re-poll after our own `T::drop` panicked (CLAIMED set,
                    // DROPPED set by its unwind guard): while we wait, WAITING stays set, so no
                    // holder or other revoker claims the drop. Wait for DROPPED all the same.
                    this.phase = Phase::Dropped { won: true };
                }
                Phase::Dropped { won } => {
                    if crate::self_wait::in_drop(this.rev.tag()) {
                        // Driven to completion from inside the value's own Drop (a `block_on`).
                        crate::self_wait::fail(crate::self_wait::SelfWait::InDrop);
                    }
                    this.register(cx);
                    if !this.rev.dropped_or_mark_async() {
                        return Poll::Pending;
                    }
                    this.unregister();
                    this.phase = Phase::Done;
                    return Poll::Ready(won);
                }
                Phase::Done => panic!("RevokeAsync polled after it resolved"),
            }
        }
    }
}

impl<T> Drop for RevokeAsync<'_, T> {
    fn drop(&mut self) {
        match self.phase {
            Phase::Start | Phase::Done => {}
            Phase::Holders => {
                self.unregister();
                // As an expired `revoke_timeout`: the last holder drops the value; look once more,
                // since a holder that saw us waiting may have left just now without scanning.
                self.rev.hand_over();
                if self.rev.unheld() {
                    self.rev.finish();
                }
            }
            Phase::Dropped { .. } => self.unregister(),
        }
    }
}

impl<T> fmt::Debug for RevokeAsync<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeAsync")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}
