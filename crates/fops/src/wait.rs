//! Wait queues and waiters: how a blocked operation sleeps, is woken, is interrupted.
//!
//! A [`WaitQueue`] belongs to whoever produces readiness (a driver's event list, a device).
//! A [`Waiter`] belongs to one request. Registration is one-shot, as with the kernel's
//! `poll_wait`: [`WaitQueue::wake_all`] wakes every registered waiter and forgets it; a waiter
//! that wants to wait again re-registers (the file layer does this by polling again).
//!
//! Invariants:
//! - a wake that happens after [`WaitQueue::register`] returned is never lost: it either sets the
//!   waiter's `woken` flag (a later [`Waiter::wait`] returns at once) or finds the waiter already
//!   woken;
//! - a waiter's notify callback runs at most once per arming ([`Waiter::reset`] and
//!   [`Waiter::rearm`] re-arm), never under a queue lock, so it may register again;
//! - locks nest in one order only: a queue's, then a waiter's state (in `register`).
//! - cancellation is sticky: once [`Waiter::cancel`] (or a [`Canceller`]) ran, every blocking
//!   operation given this waiter returns `EINTR` instead of sleeping.
//!
//! Nothing here is on the fast path of a file operation: waiting happens only when an operation
//! would block, and always outside any `Revocable` access (see the crate docs, "Blocking").

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

type Notify = Box<dyn Fn() + Send + Sync>;

struct WaiterState {
    woken: bool,
    cancelled: bool,
    /// Queues this waiter is registered on, with its entry id there.
    regs: Vec<(Weak<QueueInner>, u64)>,
}

struct WaiterInner {
    state: Mutex<WaiterState>,
    cv: Condvar,
    notify: Option<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the protected data inconsistent
    // (every critical section is a few field updates), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WaiterInner {
    /// Marks the waiter woken; runs the notify callback if this is the first wake of the arming.
    fn wake(&self) {
        let first = {
            let mut st = lock(&self.state);
            let first = !st.woken;
            st.woken = true;
            first
        };
        self.cv.notify_all();
        if first {
            if let Some(n) = &self.notify {
                n();
            }
        }
    }
}

/// Registered waiters (entry id, waiter) and the next entry id.
type Entries = (Vec<(u64, Arc<WaiterInner>)>, u64);

struct QueueInner {
    entries: Mutex<Entries>,
}

/// A queue of waiters to wake when something changes (data arrived, device gone).
///
/// Dropping the queue wakes every waiter still registered, so a queue that lives inside a revoked
/// resource wakes its sleepers when the resource is dropped.
///
/// # Invariants
///
/// A waiter has at most one entry in a queue; an entry is removed by the wake that consumes it,
/// by the waiter's `reset`/`wait`/drop, or by the queue's drop (which wakes it).
///
/// # Examples
///
/// ```
/// use revocable_fops::{WaitQueue, Waiter, WaitOutcome};
/// use std::time::{Duration, Instant};
///
/// let q = WaitQueue::new();
/// let w = Waiter::new();
/// q.register(&w);
/// assert_eq!(q.wake_all(), 1);
/// assert_eq!(w.wait(Some(Instant::now() + Duration::from_secs(1))), WaitOutcome::Woken);
/// ```
pub struct WaitQueue {
    inner: Arc<QueueInner>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("waiters", &self.len())
            .finish()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub fn new() -> Self {
        WaitQueue {
            inner: Arc::new(QueueInner {
                entries: Mutex::new((Vec::new(), 0)),
            }),
        }
    }

    /// Registers `waiter` for the next [`wake_all`](Self::wake_all) (one-shot).
    ///
    /// A waiter is registered at most once per queue: registering it again before the wake is a
    /// no-op, so re-polling with the same waiter does not grow the queue.
    pub fn register(&self, waiter: &Waiter) {
        let mut e = lock(&self.inner.entries);
        if e.0.iter().any(|(_, w)| Arc::ptr_eq(w, &waiter.inner)) {
            return;
        }
        let id = e.1;
        e.1 += 1;
        e.0.push((id, waiter.inner.clone()));
        let me = Arc::downgrade(&self.inner);
        // Still under the queue's lock (queue, then waiter: nothing takes them the other way
        // round), so that two users of one waiter registering while a wake consumes an entry
        // cannot leave `regs` naming an entry the queue no longer has instead of the one it has.
        let mut st = lock(&waiter.inner.state);
        // A registration of this queue left from an earlier arming was consumed by a wake.
        st.regs.retain(|(q, _)| !q.ptr_eq(&me));
        st.regs.push((me, id));
    }

    /// Wakes and unregisters every registered waiter; returns how many were woken.
    pub fn wake_all(&self) -> usize {
        wake_all_inner(&self.inner)
    }

    /// Number of registered waiters.
    pub fn len(&self) -> usize {
        lock(&self.inner.entries).0.len()
    }

    /// True if no waiter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn wake_all_inner(q: &QueueInner) -> usize {
    let taken = std::mem::take(&mut lock(&q.entries).0);
    let n = taken.len();
    for (_, w) in taken {
        w.wake();
    }
    n
}

impl Drop for WaitQueue {
    fn drop(&mut self) {
        wake_all_inner(&self.inner);
    }
}

/// How a [`Waiter::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A queue it was registered on woke it (or it was already woken).
    Woken,
    /// It was cancelled (the request was interrupted): the operation returns `EINTR`.
    Cancelled,
    /// The deadline passed.
    TimedOut,
}

/// One request's handle for sleeping and being woken.
///
/// A waiter works in two modes, so that both server designs fit:
/// - **blocking**: a thread calls [`wait`](Self::wait) and sleeps until a registered queue wakes
///   it, it is cancelled, or the deadline passes;
/// - **notify**: made with [`with_notify`](Self::with_notify), it runs the callback (once per
///   arming, on the waking thread) instead of needing a sleeping thread; an event-driven server
///   parks the request and retries it from the callback.
///
/// # Invariants
///
/// `woken` is set by a wake and cleared only by [`reset`](Self::reset), [`rearm`](Self::rearm)
/// or a [`wait`](Self::wait) that returns; `cancelled` is never cleared; the notify callback runs at
/// most once between two clears of `woken`.
///
/// # Examples
///
/// ```
/// use revocable_fops::{WaitQueue, Waiter, WaitOutcome};
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
///
/// let hits = Arc::new(AtomicUsize::new(0));
/// let h = hits.clone();
/// let w = Waiter::with_notify(move || { h.fetch_add(1, Ordering::Relaxed); });
/// let q = WaitQueue::new();
/// q.register(&w);
/// q.wake_all();
/// assert_eq!(hits.load(Ordering::Relaxed), 1);
///
/// // Interruption from another thread:
/// let w = Waiter::new();
/// let c = w.canceller();
/// std::thread::spawn(move || c.cancel());
/// assert_eq!(w.wait(None), WaitOutcome::Cancelled);
/// ```
pub struct Waiter {
    inner: Arc<WaiterInner>,
}

impl Default for Waiter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Waiter")
            .field("woken", &st.woken)
            .field("cancelled", &st.cancelled)
            .field("registrations", &st.regs.len())
            .finish()
    }
}

impl Waiter {
    fn build(notify: Option<Notify>) -> Self {
        Waiter {
            inner: Arc::new(WaiterInner {
                state: Mutex::new(WaiterState {
                    woken: false,
                    cancelled: false,
                    regs: Vec::new(),
                }),
                cv: Condvar::new(),
                notify,
            }),
        }
    }

    /// A waiter for a thread that will block in [`wait`](Self::wait).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A waiter that calls `notify` when woken or cancelled (at most once per arming).
    ///
    /// The callback runs on the waking thread (a driver delivering data, a revoker, a
    /// canceller), and may run on the arming thread itself when the event already happened (e.g.
    /// the resource was revoked just before the waiter was armed): keep it short and take no lock
    /// the arming caller may hold, e.g. send the request id to the server's queue.
    pub fn with_notify(notify: impl Fn() + Send + Sync + 'static) -> Self {
        Self::build(Some(Box::new(notify)))
    }

    /// A handle that can cancel this waiter from anywhere (e.g. on `FUSE_INTERRUPT`).
    pub fn canceller(&self) -> Canceller {
        Canceller {
            inner: self.inner.clone(),
        }
    }

    /// Cancels: wakes the waiter; every later blocking operation with it returns `EINTR`.
    pub fn cancel(&self) {
        cancel_inner(&self.inner);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        lock(&self.inner.state).cancelled
    }

    /// True if woken since the last [`reset`](Self::reset) or [`rearm`](Self::rearm).
    pub fn is_woken(&self) -> bool {
        lock(&self.inner.state).woken
    }

    /// Re-arms, keeping the registrations: forgets a past wake, so the next wake runs the notify
    /// callback again, but stays on every queue it is registered on (cancellation stays).
    ///
    /// For a waiter shared by several operations of one file (every parked read and poll of it,
    /// [`Wait::Arm`](crate::Wait::Arm)): unlike [`reset`](Self::reset), re-arming for one of
    /// them never takes away a registration another one relies on. Between the removal and the
    /// new registration a `reset` leaves a gap in which a wake reaches nobody; the operation that
    /// re-arms then sees the readiness itself (it polls after registering), but the others sharing
    /// the waiter do not, and stay parked with the data there. Queues it no longer needs keep
    /// their entry until their next wake (a spurious wake, which a notify waiter must accept
    /// anyway) or the waiter's drop; a queue holds one entry per waiter, so they do not grow.
    pub fn rearm(&self) {
        lock(&self.inner.state).woken = false;
    }

    /// Re-arms: forgets a past wake and unregisters from every queue (cancellation stays).
    ///
    /// For a waiter of one operation (a thread about to block, [`Wait::Block`](crate::Wait::Block));
    /// a waiter shared by several uses [`rearm`](Self::rearm).
    pub fn reset(&self) {
        let regs = {
            let mut st = lock(&self.inner.state);
            st.woken = false;
            std::mem::take(&mut st.regs)
        };
        unregister(&self.inner, regs);
    }

    /// Sleeps until woken, cancelled, or `deadline` (`None`: no deadline).
    ///
    /// Returns at once if already woken or cancelled. A wake is consumed: the waiter is
    /// disarmed and unregistered from its queues before returning.
    pub fn wait(&self, deadline: Option<Instant>) -> WaitOutcome {
        let mut st = lock(&self.inner.state);
        let outcome = loop {
            if st.woken {
                break WaitOutcome::Woken;
            }
            if st.cancelled {
                break WaitOutcome::Cancelled;
            }
            match deadline {
                None => st = self.inner.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break WaitOutcome::TimedOut;
                    }
                    st = self
                        .inner
                        .cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        };
        st.woken = false;
        let regs = std::mem::take(&mut st.regs);
        drop(st);
        unregister(&self.inner, regs);
        outcome
    }

    /// Number of queues this waiter is currently registered on (diagnostics, tests).
    pub fn registrations(&self) -> usize {
        lock(&self.inner.state).regs.len()
    }
}

fn unregister(w: &Arc<WaiterInner>, regs: Vec<(Weak<QueueInner>, u64)>) {
    for (q, id) in regs {
        if let Some(q) = q.upgrade() {
            let mut e = lock(&q.entries);
            if let Some(i) =
                e.0.iter()
                    .position(|(eid, ew)| *eid == id && Arc::ptr_eq(ew, w))
            {
                e.0.swap_remove(i);
            }
        }
    }
}

fn cancel_inner(w: &WaiterInner) {
    let first = {
        let mut st = lock(&w.state);
        let first = !st.cancelled && !st.woken;
        st.cancelled = true;
        first
    };
    w.cv.notify_all();
    if first {
        if let Some(n) = &w.notify {
            n();
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let regs = std::mem::take(&mut lock(&self.inner.state).regs);
        unregister(&self.inner, regs);
    }
}

/// Cancels a [`Waiter`] from another thread (the server's `FUSE_INTERRUPT` handler).
///
/// Cancelling a waiter that is gone or not blocked is harmless.
#[derive(Clone)]
pub struct Canceller {
    inner: Arc<WaiterInner>,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Canceller")
    }
}

impl Canceller {
    /// Cancels the waiter: its blocking operation returns `EINTR`.
    pub fn cancel(&self) {
        cancel_inner(&self.inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn wake_before_wait_is_not_lost() {
        let q = WaitQueue::new();
        let w = Waiter::new();
        q.register(&w);
        q.wake_all();
        assert_eq!(w.wait(None), WaitOutcome::Woken);
        assert_eq!(w.registrations(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn timeout_and_reset_unregister() {
        let q = WaitQueue::new();
        let w = Waiter::new();
        q.register(&w);
        q.register(&w);
        assert_eq!(q.len(), 1, "registered once");
        assert_eq!(w.registrations(), 1);
        let d = Instant::now() + Duration::from_millis(20);
        assert_eq!(w.wait(Some(d)), WaitOutcome::TimedOut);
        assert_eq!(q.len(), 0);
        q.register(&w);
        w.reset();
        assert_eq!(q.len(), 0);
        assert_eq!(q.wake_all(), 0);
    }

    #[test]
    fn cross_thread_wake_and_cancel() {
        let q = Arc::new(WaitQueue::new());
        let w = Waiter::new();
        q.register(&w);
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            q2.wake_all()
        });
        assert_eq!(w.wait(None), WaitOutcome::Woken);
        assert_eq!(t.join().unwrap(), 1);
        let c = w.canceller();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            c.cancel();
        });
        assert_eq!(w.wait(None), WaitOutcome::Cancelled);
        t.join().unwrap();
        assert!(w.is_cancelled());
        assert_eq!(
            w.wait(None),
            WaitOutcome::Cancelled,
            "cancellation is sticky"
        );
    }

    /// A notify waiter and the count of its callback's runs.
    fn counting_waiter() -> (Arc<AtomicUsize>, Waiter) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let w = Waiter::with_notify(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        (hits, w)
    }

    #[test]
    fn notify_once_per_arming_and_drop_wakes() {
        let (hits, w) = counting_waiter();
        let q = WaitQueue::new();
        q.register(&w);
        q.register(&w);
        q.wake_all();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        w.reset();
        q.register(&w);
        drop(q); // the queue's owner goes away: its waiters are woken
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(w.is_woken());
        drop(w); // unregistering from a dropped queue is harmless
    }

    #[test]
    fn rearm_keeps_the_registrations_and_runs_the_callback_again() {
        let (hits, w) = counting_waiter();
        let (a, b) = (WaitQueue::new(), WaitQueue::new());
        a.register(&w);
        b.register(&w);
        // One user of the waiter re-arms: the other's registrations stay.
        w.rearm();
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_eq!(a.wake_all(), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(b.wake_all(), 1, "still registered on b");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "once per arming");
        // Re-armed after the wakes: registered again (once), the next wake notifies again.
        w.rearm();
        a.register(&w);
        a.register(&w);
        assert_eq!(a.len(), 1);
        a.wake_all();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // reset, by contrast, takes every registration away.
        b.register(&w);
        w.reset();
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn rearming_does_not_accumulate() {
        let q = WaitQueue::new();
        let w = Waiter::new();
        for _ in 0..100 {
            q.register(&w);
            q.wake_all();
        }
        assert_eq!(
            w.registrations(),
            1,
            "only the last, consumed, registration is kept"
        );
        q.register(&w);
        assert_eq!(w.registrations(), 1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn waiter_drop_unregisters() {
        let q = WaitQueue::new();
        let w = Waiter::new();
        q.register(&w);
        drop(w);
        assert!(q.is_empty());
    }
}
