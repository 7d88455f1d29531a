//! [`Revocable<T>`] with thread-local announcements and asymmetric fences (feature `std`).
//!
//! # The protocol (a one-shot SRCU)
//!
//! One word holds the resource's *tag* (its unique id, shifted) and its state bits.
//!
//! Reader (`try_access`): load the word; a non-zero state fails at once. Otherwise write the tag
//! into a free slot of this thread's record, light barrier, load the state again; zero means
//! "live": use the value; otherwise retract and fail. Leaving (guard drop): write zero into the
//! slot (Release), light barrier, load the state; non-zero means a revocation is under way: take
//! the slow path ([`Revocable::leave_slow`]).
//!
//! Revoker: one caller wins the CAS `tag → tag | REVOKED (| WAITING)`; it issues the heavy barrier,
//! then sets `SCANNED`, a full fence, and scans every record for the tag. Because of the barrier
//! pair, every reader either saw `REVOKED` (and backs out) or is visible to the scan; every leaving
//! holder either is visible to the scan as gone or saw the revocation (and reports its exit). When
//! the scan finds nothing, whoever saw that first sets `CLAIMED` and drops the value, then sets
//! `DROPPED`.
//!
//! * `WAITING` (a synchronous revoker sleeps on `seq`): a leaving holder bumps `seq` and wakes it;
//!   the revoker rescans and drops the value itself.
//! * Without `WAITING` (`revoke_deferred`, or an expired `revoke_timeout`), once `SCANNED` is set a
//!   leaving holder scans; the last one out drops the value in its own thread.
//! * Callers that lost the race and must wait for the drop set `DROP_WAITERS` and sleep on `seq`;
//!   the dropper bumps it after setting `DROPPED`.
//! * `ASYNC`: a [`RevokeAsync`](crate::RevokeAsync) future waits instead of a thread. It registers
//!   its waker under the tag *before* its final check (a scan as the winner, the `DROPPED` bit
//!   otherwise); every leaving holder that bumps `seq` and every dropper also wakes the registered
//!   wakers. The table's lock orders a registration against a wake: a wake that finds no waker
//!   happened before the registration, so the check after it sees that holder gone.
//! * Send guards ([`SendGuard`](crate::SendGuard), [`OwnedGuard`](crate::OwnedGuard)) follow the
//!   same reader protocol with a slot from the pool ([`crate::pool`]) instead of the thread's line.
//!
//! Only the revoking side pays: a heavy barrier and scans. The read side is two plain stores, two
//! compiler fences and three loads of lines that stay in the reader's cache.
//!
//! # Invariants
//! * The state only gains bits, in this order: `REVOKED` (with `WAITING` if the winner waits,
//!   plus `BATCH` for a batch, `ASYNC` for a future), `SCANNED`, `CLAIMED`, `DROPPED`; `WAITING`
//!   (and `BATCH`) are cleared only by the winner's hand-over (an expired `revoke_timeout`, a
//!   dropped `RevokeAsync`; possibly again, harmlessly, after `DROPPED`); `DROP_WAITERS` and
//!   `ASYNC` may be set at any point after `REVOKED` (`ASYNC` by a waiting future, never
//!   cleared). The tag bits never change.
//! * `data` is initialised until the one thread that set `CLAIMED` drops it; no guard exists then.
//! * The tag is unique in the process and never reused (see [`crate::id`]).

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::NonNull;
use core::time::Duration;
use std::time::Instant;

use crate::error::{Holder, RevokeTimeout};
use crate::registry::PoolSlot;
use crate::registry::{self, Token};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use crate::{barrier, id, pending, pool, self_wait, wait, wakers};

/// The low 9 bits of `word` hold the state; the rest is the resource's id (its *tag*).
const STATE_BITS: u32 = 9;
const STATE: u64 = (1 << STATE_BITS) - 1;
const REVOKED: u64 = 1;
const SCANNED: u64 = 2;
const WAITING: u64 = 4;
const CLAIMED: u64 = 8;
const DROPPED: u64 = 16;
const DROP_WAITERS: u64 = 32;
/// With `WAITING`: the waiter is a [`RevokeBatch`](crate::RevokeBatch) sleeping on the shared batch
/// futex word ([`wait::batch_seq`]), not on this resource's `seq`.
const BATCH: u64 = 64;
/// A [`RevokeAsync`](crate::RevokeAsync) future waits (for holders as the winner, or for the drop):
/// whoever bumps `seq` for this resource also wakes the wakers registered under its tag
/// ([`crate::wakers`]). Never cleared: at worst a later bump looks in the table for nothing.
pub(crate) const ASYNC: u64 = 128;
/// The value was handed to its last holder (deferred, timed out, a dropped future) and counted
/// in [`pending`](crate::pending_drops); whoever drops it uncounts it. Set only before
/// `CLAIMED` (a CAS), so the dropper sees it exactly when it was counted.
const COUNTED: u64 = 256;

/// A value that its owner can revoke while others may be using it.
///
/// Accesses ([`try_access`](Self::try_access)) succeed until the value is revoked; after
/// [`revoke`](Self::revoke) returns, the value has been dropped and every later access returns
/// `None`. An access already in progress keeps the value alive until its guard is dropped: revoke
/// waits for it. Holders may block or sleep while holding a guard.
///
/// ```
/// use revocable::Revocable;
///
/// let dev = Revocable::new(String::from("/dev/cros_ec"));
/// assert_eq!(dev.try_access().as_deref().map(String::as_str), Some("/dev/cros_ec"));
/// assert!(dev.revoke());                  // exactly one caller gets `true`
/// assert!(dev.try_access().is_none());    // every later access fails cleanly
/// assert!(!dev.revoke());                 // idempotent
/// ```
///
/// Sharing between threads (here with scoped threads; an `Arc<Revocable<T>>` works the same):
///
/// ```
/// use revocable::Revocable;
/// use std::time::Duration;
///
/// let res = Revocable::new(vec![1, 2, 3]);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         // Either the value is there for the whole access, or the access fails.
///         if let Some(v) = res.try_access() {
///             std::thread::sleep(Duration::from_millis(5)); // holders may sleep
///             assert_eq!(v.len(), 3);
///         }
///     });
///     res.revoke(); // waits for an access in progress, then drops the Vec
/// });
/// ```
///
/// # Blocking
/// `try_access`, guard drop, [`is_revoked`](Self::is_revoked) and
/// [`revoke_deferred`](Self::revoke_deferred) never wait for other threads;
/// [`revoke_async`](Self::revoke_async) waits without blocking its thread. [`revoke`](Self::revoke)
/// blocks (sleeping, not spinning) until every access in progress has ended and the value is
/// dropped — forever if another thread leaked a guard with `mem::forget`;
/// [`revoke_timeout`](Self::revoke_timeout) bounds the wait. A waiting revoke (`revoke`, or
/// `revoke_timeout` with any timeout) by a thread that itself holds a thread-bound access to the
/// same resource, or from inside the value's own `Drop`, panics instead of waiting for itself (a
/// [`SendGuard`](crate::SendGuard) on its own stack cannot be known: it waits, or times out).
///
/// After `revoke_deferred` or an expired `revoke_timeout`, the value is dropped by whichever thread
/// leaves the last access: usually a guard's `drop`, rarely a `try_access` that raced the
/// revocation and returned `None`. `T::drop` should therefore not take locks that such callers
/// may hold.
///
/// # Signal handlers
/// `try_access` and guard drop are async-signal-safe for a thread that already has its record
/// (it has taken an access before) while the thread's accesses, the handler's included, fit in
/// its 8 inline slots, and while the resource is live or revoked synchronously: a handler runs
/// strictly inside the code it interrupts, so taking the lowest free slot gives it one the
/// interrupted code is not using, whatever instruction it interrupted. Not async-signal-safe:
/// the first access of a thread (it registers: allocates, takes locks), nesting deeper than 8 (a
/// per-thread lock), Send guards (a per-thread cache), every revoke, and leaving an access to a
/// resource under `revoke_async` or handed to its last holder (a deferred or expired revoke: the
/// leaving holder may take the waker table's lock or run `T::drop`).
///
/// # `fork`
/// In the child only the forking thread exists: the announcements of every other thread are
/// dropped (a `pthread_atfork` child handler, as liburcu's bulletproof flavour does), so a revoke
/// in the child never waits for a phantom holder. Send guards, which belong to no thread, are
/// kept (one may be on the forking thread's stack).
///
/// # Process exit
/// A value whose revocation was handed to its last holder (`revoke_deferred`, an expired
/// `revoke_timeout`, a dropped `revoke_async` future) is never dropped if the process exits
/// first, as for any value other threads still use at exit. Call [`drop_barrier`](crate::drop_barrier)
/// before exiting when `T::drop` must run.
///
/// # Panics in `T::drop`
/// The value is dropped exactly once, by the thread that finds it unused after revocation: the
/// winning synchronous revoker, or, after `revoke_deferred` or an expired `revoke_timeout`, the
/// thread that leaves the last access (inside its guard's `drop`) or a losing waiting revoker
/// that finds the last access gone first. If `T::drop` panics, the panic propagates out of that
/// call, and the `Revocable` is still completely revoked: the value counts as dropped, other
/// waiting revokers return normally, no access can succeed, and the `Revocable`'s own
/// drop will not touch the value again. (A panic out of a guard's drop during unwinding aborts, as
/// any double panic does.)
pub struct Revocable<T> {
    /// `tag | state`: the tag (the unique id shifted past the state bits) never changes, so one
    /// load gives a reader both what to announce and whether to bother.
    word: AtomicU64,
    /// The futex word every waiter sleeps on: bumped by holders leaving while a synchronous
    /// revoker waits, and by the dropper when someone waits for `DROPPED`.
    seq: AtomicU32,
    data: UnsafeCell<ManuallyDrop<T>>,
}

// SAFETY: moving a Revocable moves the T it owns.
unsafe impl<T: Send> Send for Revocable<T> {}
// SAFETY: `&Revocable` hands out `&T` to any thread (needs `T: Sync`) and lets any thread drop the
// value through `revoke` or a last guard (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for Revocable<T> {}

/// Proof of access: dereferences to the value, which stays alive until the guard is dropped.
///
/// A guard is `!Send`: an access begins and ends on one thread ([`SendGuard`](crate::SendGuard)
/// and [`OwnedGuard`](crate::OwnedGuard) may move). It is `Sync` when `T` is, so scoped
/// threads can borrow through it. A leaked guard (`mem::forget`) is an access that never ends: a
/// revoke then waits forever, and [`Revocable::revoke_timeout`] reports it.
#[must_use = "the access ends when the guard is dropped"]
pub struct RevocableGuard<'a, T> {
    /// Raw, not `&'a T`: a reference argument must stay valid for the whole call it is passed to,
    /// even if the guard is dropped inside that call (and the value then dropped by a revoker).
    data: NonNull<T>,
    rev: &'a Revocable<T>,
    token: Token,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing `&RevocableGuard` only lets other threads read `&T`; the access still ends on
// the owning thread.
unsafe impl<T: Sync> Sync for RevocableGuard<'_, T> {}

impl<T> Revocable<T> {
    /// Wraps `data`. No grace period, no system call, no shared cache line: a resource is as cheap
    /// to create as the value itself (kernel-series defect 1).
    #[inline]
    pub fn new(data: T) -> Self {
        let id = id::next();
        debug_assert!(id < 1 << (64 - STATE_BITS), "resource ids exhausted");
        Self {
            word: AtomicU64::new(id << STATE_BITS),
            seq: AtomicU32::new(0),
            data: UnsafeCell::new(ManuallyDrop::new(data)),
        }
    }

    /// Begins an access: `Some(guard)` while the value is live, `None` once revocation has begun.
    ///
    /// Never blocks. Each call owns its own announcement (its "SRCU index" token lives in the
    /// guard), so any number of threads may share one `&Revocable` and nest accesses to it.
    #[inline]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        // One load gives the tag to announce and the state. Once revocation is visibly under way,
        // fail without announcing: a storm of failing accesses (a poll loop after unplug) then
        // costs a load each, never wakes a waiting revoker and never scans. Relaxed: a stale
        // "live" only means we take the full path below.
        let w = self.word.load(Ordering::Relaxed);
        if w & STATE != 0 {
            core::hint::cold_path();
            return None;
        }
        let token = registry::announce(w);
        // Relaxed: ordered after the announcement by the barrier pair (see `barrier`).
        if self.word.load(Ordering::Relaxed) & STATE != 0 {
            core::hint::cold_path();
            self.leave(&token);
            return None;
        }
        Some(RevocableGuard {
            // SAFETY: the value is initialised: `state` was 0 after our announcement became
            // visible, so no revoker can drop it before we retract.
            data: NonNull::from(unsafe { &**self.data.get() }),
            rev: self,
            token,
            _not_send: PhantomData,
        })
    }

    /// Runs `f` on the value if it is live; `None` once revoked (`f` is not called).
    ///
    /// ```
    /// let r = revocable::Revocable::new(21);
    /// assert_eq!(r.try_access_with(|v| v * 2), Some(42));
    /// r.revoke();
    /// assert_eq!(r.try_access_with(|v| v * 2), None);
    /// ```
    #[inline]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub fn try_access_with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.try_access().map(|g| f(&g))
    }

    /// Like [`try_access`](Self::try_access), with an error for the revoked case, so that `?`
    /// returns early (the kernel's `..._or_return_err`).
    ///
    /// ```
    /// fn read(r: &revocable::Revocable<u32>) -> Result<u32, &'static str> {
    ///     let v = r.access_or("ENODEV")?;
    ///     Ok(*v)
    /// }
    /// let r = revocable::Revocable::new(7);
    /// assert_eq!(read(&r), Ok(7));
    /// r.revoke();
    /// assert_eq!(read(&r), Err("ENODEV"));
    /// ```
    #[inline]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub fn access_or<E>(&self, err: E) -> Result<RevocableGuard<'_, T>, E> {
        self.try_access().ok_or(err)
    }

    /// Whether revocation has begun (new accesses fail). The value may still be alive in accesses
    /// that began earlier.
    #[inline]
    pub fn is_revoked(&self) -> bool {
        self.word.load(Ordering::Acquire) & REVOKED != 0
    }

    /// Revokes and waits: when it returns, the value has been dropped and no access can succeed.
    ///
    /// Returns `true` for exactly one caller, the one that revoked; every other caller also
    /// returns only after the drop (kernel-series defect 4). Blocks while accesses are in progress —
    /// forever if a guard was leaked; see [`revoke_timeout`](Self::revoke_timeout).
    pub fn revoke(&self) -> bool {
        match self.revoke_internal::<true>(None) {
            Ok(won) => won,
            Err(_) => unreachable!("a revoke without a deadline never times out"),
        }
    }

    /// [`revoke`](Self::revoke), giving up after `timeout`.
    ///
    /// `Ok(won)` as for `revoke`. On `Err`, revocation stays in progress: new accesses fail, and the
    /// value is dropped when the last holder leaves; the error says who still holds it.
    pub fn revoke_timeout(&self, timeout: Duration) -> Result<bool, RevokeTimeout> {
        self.revoke_internal::<true>(Some(timeout))
    }

    /// Revokes without waiting for holders. Returns `true` for the caller that revoked. The value is
    /// dropped at once if nobody holds it, otherwise by the thread whose guard leaves last.
    ///
    /// **When the value is dropped:** before this call returns if no access is in progress;
    /// otherwise inside the `drop` of the last guard (or the failing `try_access` that raced the
    /// revocation), in that thread, or by a waiting `revoke` of another thread that finds the last
    /// access gone first — never later: once this call returns, every leaving holder
    /// checks whether it is the last one. The call itself costs one heavy barrier, shared with
    /// revokes running concurrently in other threads (a burst of deferred revokes from several
    /// threads issues fewer barriers than calls; see [`RevokeBatch`](crate::RevokeBatch) to
    /// revoke many resources from one thread with a single barrier).
    ///
    /// ```
    /// let r = revocable::Revocable::new(String::from("eeprom"));
    /// let g = r.try_access().unwrap();
    /// assert!(r.revoke_deferred()); // returns at once
    /// assert!(r.try_access().is_none());
    /// assert_eq!(*g, "eeprom"); // still alive for the holder
    /// drop(g); // dropped here
    /// ```
    pub fn revoke_deferred(&self) -> bool {
        self.revoke_internal::<false>(None).unwrap_or(true)
    }

    /// Who holds an access to the resource now: one entry per access in progress (thread-bound
    /// guards name their thread; Send guards are reported as such, see
    /// [`Holder::is_send_guard`]). A snapshot, for diagnostics: e.g. after a
    /// [`revoke_async`](Self::revoke_async) wrapped in a runtime's timeout expired.
    ///
    /// ```
    /// let r = revocable::Revocable::new(1);
    /// let g = r.try_access_send().unwrap();
    /// let holders = r.holders();
    /// assert_eq!(holders.len(), 1);
    /// assert!(holders[0].is_send_guard());
    /// drop(g);
    /// assert!(r.holders().is_empty());
    /// ```
    pub fn holders(&self) -> Vec<Holder> {
        self.timeout_report(None).holders
    }

    /// Begins an access announced in a pool slot (the Send guards' reader path).
    #[inline]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub(crate) fn enter_send(&self) -> Option<(NonNull<T>, PoolSlot)> {
        // As in `try_access`: one Relaxed load, fail early once revocation is visible.
        let w = self.word.load(Ordering::Relaxed);
        if w & STATE != 0 {
            core::hint::cold_path();
            return None;
        }
        let slot = pool::take();
        slot.announce(w);
        // Relaxed: ordered after the announcement by the barrier pair (see `barrier`).
        if self.word.load(Ordering::Relaxed) & STATE != 0 {
            core::hint::cold_path();
            self.leave_send(slot);
            return None;
        }
        // SAFETY: as in `try_access`: the state was 0 after our announcement became visible.
        Some((NonNull::from(unsafe { &**self.data.get() }), slot))
    }

    /// Ends an access taken by [`enter_send`](Self::enter_send), on any thread.
    #[inline(always)]
    pub(crate) fn leave_send(&self, slot: PoolSlot) {
        registry::retract(&slot.token());
        // Relaxed: ordered after the retract by the barrier pair.
        let s = self.word.load(Ordering::Relaxed) & STATE;
        // The slot is zero again: back to this thread's magazine before anything can unwind.
        pool::put(slot);
        if s != 0 {
            core::hint::cold_path();
            self.leave_slow(s);
        }
    }

    /// The resource's unique id (what its readers announce).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn id(&self) -> u64 {
        self.tag()
    }

    /// What readers announce: the id part of `word`, which never changes.
    #[inline]
    pub(crate) fn tag(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & !STATE
    }

    /// Consumes the `Revocable`, returning the value if it was not revoked.
    pub fn into_inner(self) -> Option<T> {
        let me = ManuallyDrop::new(self);
        if me.word.load(Ordering::Acquire) & STATE != 0 {
            // Revoked: the value is dropped, or will be by our own drop below.
            let _ = ManuallyDrop::into_inner(me);
            return None;
        }
        // SAFETY: not revoked, so initialised; `me` is never dropped, so the value is moved out
        // exactly once; the other fields have no drop glue.
        Some(unsafe { ManuallyDrop::take(&mut *me.data.get()) })
    }

    /// One body for every kind of revoke: `SYNC` waits for the drop (up to `timeout`).
    fn revoke_internal<const SYNC: bool>(
        &self,
        timeout: Option<Duration>,
    ) -> Result<bool, RevokeTimeout> {
        let start = timeout.map(|_| Instant::now());
        let flags = if SYNC { REVOKED | WAITING } else { REVOKED };
        let tag = self.tag();
        // Exactly one caller moves the state away from 0 (all other bits come after REVOKED).
        if self
            .word
            .compare_exchange(tag, tag | flags, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return if SYNC {
                self.wait_dropped(start, timeout).map(|()| false)
            } else {
                Ok(false)
            };
        }
        barrier::heavy();
        // From here on, every access that is not visible to our scans has seen REVOKED.
        self.word.fetch_or(SCANNED, Ordering::Relaxed);
        // Pairs with the fence in `leave_slow`: a leaving holder either sees SCANNED (and may finish
        // the job) or its retract is visible to the scan below.
        fence(Ordering::SeqCst);
        loop {
            // Acquire: a holder's retract happens before its bump of `seq` (Release).
            let q = self.seq.load(Ordering::Acquire);
            if registry::count(tag) == 0 {
                if self.finish() || !SYNC {
                    return Ok(true);
                }
                return self.wait_dropped(start, timeout).map(|()| true);
            }
            if !SYNC {
                // Held: the last holder drops it.
                self.count_pending();
                return Ok(true);
            }
            // Any timeout, even Duration::MAX: waiting for ourselves only wastes it.
            let self_wait = self_wait::check(tag, true);
            let timed_out = self_wait.is_some()
                || match remaining(start, timeout) {
                    Some(Duration::ZERO) => true,
                    left => wait::wait(&self.seq, q, left) == wait::Woken::TimedOut,
                };
            if !timed_out {
                continue;
            }
            // Timed out: hand the drop over to the last holder, then look once more, since a holder
            // that saw WAITING may have left just now without scanning.
            self.hand_over();
            if registry::count(tag) == 0 {
                if self.finish() {
                    return Ok(true);
                }
                return self.wait_dropped(start, timeout).map(|()| true);
            }
            if let Some(why) = self_wait {
                // Revocation stays in progress (handed over as above): the value is dropped when
                // this thread's own access ends, e.g. while this panic unwinds.
                self_wait::fail(why);
            }
            return Err(self.timeout_report(start));
        }
    }

    /// [`RevokeAsync`](crate::RevokeAsync)'s first step: the winning state change
    /// (`REVOKED | WAITING | ASYNC`), the heavy barrier and `SCANNED`, as in `revoke_internal`.
    /// Whether this caller won; never waits for other threads.
    pub(crate) fn begin_async(&self) -> bool {
        let tag = self.tag();
        if self
            .word
            .compare_exchange(
                tag,
                tag | REVOKED | WAITING | ASYNC,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        barrier::heavy();
        self.word.fetch_or(SCANNED, Ordering::Relaxed);
        // Pairs with the fence in `leave_slow`, as in `revoke_internal`.
        fence(Ordering::SeqCst);
        true
    }

    /// Whether no access to the resource is in progress (a scan; ends with an Acquire fence).
    pub(crate) fn unheld(&self) -> bool {
        registry::count(self.tag()) == 0
    }

    /// An async waiter's check for the drop: marks `ASYNC` (so the dropper wakes the table) and
    /// says whether the value has been dropped. Call after registering the waker.
    pub(crate) fn dropped_or_mark_async(&self) -> bool {
        // AcqRel, as in `wait_dropped`: Acquire pairs with the Release that sets DROPPED; Release
        // orders our registration before the dropper's look into the table (it reads ASYNC from
        // this RMW or a later one).
        self.word.fetch_or(ASYNC, Ordering::AcqRel) & DROPPED != 0
    }

    /// The slow half of leaving an access (guard drop or a failed `try_access`) during revocation.
    #[cold]
    #[inline(never)]
    pub(crate) fn leave_slow(&self, s: u64) {
        if s & CLAIMED != 0 {
            return; // the value is being (or has been) dropped; nobody needs to hear from us
        }
        // Pairs with the fences after setting SCANNED and after clearing WAITING in the revoker.
        fence(Ordering::SeqCst);
        // Acquire, not Relaxed: our scan below must see every announcement the revoker's heavy
        // barrier made visible. SCANNED (and the clearing of WAITING) are written by RMWs after
        // the fence that ends `barrier::heavy`, so reading them synchronises with that fence;
        // without it, weakly ordered CPUs may perform the scan's loads before this one.
        let w = self.word.load(Ordering::Acquire);
        let s = w & STATE;
        if s & WAITING != 0 {
            let seq = if s & BATCH != 0 {
                wait::batch_seq()
            } else {
                &self.seq
            };
            // Release: our retract happens before the revoker's Acquire load of `seq`.
            seq.fetch_add(1, Ordering::Release);
            wait::wake_all(seq);
            if s & ASYNC != 0 {
                // The waiting winner may be a future: our retract happens before the table's
                // lock, so a future registered after we look has its scan see us gone.
                wakers::wake(w & !STATE);
            }
        } else if s & SCANNED != 0 && s & CLAIMED == 0 && registry::count(w & !STATE) == 0 {
            self.finish();
        }
    }

    /// Retracts `token` and reports the exit if a revocation is under way.
    #[inline(always)]
    fn leave(&self, token: &Token) {
        registry::retract(token);
        // Relaxed: ordered after the retract by the barrier pair. An overflow slot's retract
        // (`token.deep`, above the state bits) takes the same single branch.
        let s = (self.word.load(Ordering::Relaxed) & STATE) | token.deep;
        if s != 0 {
            core::hint::cold_path();
            self.leave_cold(s);
        }
    }

    /// The cold half of [`leave`](Self::leave): the owner's bookkeeping of an overflow slot, then
    /// the revocation's slow path if one is under way.
    #[cold]
    #[inline(never)]
    fn leave_cold(&self, s: u64) {
        if s & registry::DEEP != 0 {
            registry::deep_retracted(s >> registry::DEEP_GEN_SHIFT);
        }
        if s & STATE != 0 {
            self.leave_slow(s & STATE);
        }
    }

    /// Stops waiting: clears `WAITING` (and `BATCH`) so that the last holder drops the value, then
    /// a full fence, so that a holder that saw `WAITING` and left without scanning is visible to
    /// the caller's next scan (pairs with the fence in `leave_slow`).
    pub(crate) fn hand_over(&self) {
        self.word.fetch_and(!(WAITING | BATCH), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.count_pending();
    }

    /// Counts the value in [`pending_drops`](crate::pending_drops) once it is handed to its last
    /// holder, unless its drop was already claimed (then it is not counted, and not uncounted).
    pub(crate) fn count_pending(&self) {
        pending::attempt(|| {
            self.word
                // Release: our count's increment (before this RMW) happens before the decrement
                // of whoever drops the value, whose AcqRel RMW reads COUNTED from this one (or a
                // later one in its release sequence): the counter never dips below zero.
                .fetch_update(Ordering::Release, Ordering::Relaxed, |w| {
                    (w & (COUNTED | CLAIMED) == 0).then_some(w | COUNTED)
                })
                .is_ok()
        });
    }

    /// Drops the value if nobody else has claimed that job; returns whether we did.
    pub(crate) fn finish(&self) -> bool {
        // Acquire: the drop comes after every holder's last use, which our scan (Relaxed loads of
        // their Release retracts, then an Acquire fence) or our own program order already ordered before this point.
        if self.word.fetch_or(CLAIMED, Ordering::AcqRel) & CLAIMED != 0 {
            return false;
        }
        /// Marks the drop done even if `T::drop` unwinds.
        struct Done<'a>(&'a AtomicU64, &'a AtomicU32);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                // AcqRel: Release so the value's drop happens before a waiter's Acquire of
                // DROPPED; Acquire so a waiter's earlier load of `seq` (or registration of its
                // waker) happens before our bump (or our look into the waker table).
                let prev = self.0.fetch_or(DROPPED, Ordering::AcqRel);
                if prev & DROP_WAITERS != 0 {
                    self.1.fetch_add(1, Ordering::Release);
                    wait::wake_all(self.1);
                }
                if prev & ASYNC != 0 {
                    wakers::wake(prev & !STATE);
                }
                if prev & COUNTED != 0 {
                    pending::dropped();
                }
            }
        }
        let _done = Done(&self.word, &self.seq);
        // Dropped before `_done` (locals drop in reverse order), so DROPPED is set once the mark
        // is gone: a revoke of this resource from inside `T::drop` is a self-wait that
        // `self_wait::check` reports instead of sleeping forever.
        let _mark = self_wait::dropping(self.tag());
        // SAFETY: we set CLAIMED first, so we are the only dropper; REVOKED forbids new accesses
        // and the scan found no access in progress, so nothing else can observe the value.
        unsafe { ManuallyDrop::drop(&mut *self.data.get()) };
        true
    }

    /// Waits until `DROPPED` (callers that lost the revoke race, or found the drop in progress).
    fn wait_dropped(
        &self,
        start: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), RevokeTimeout> {
        loop {
            let q = self.seq.load(Ordering::Acquire);
            // AcqRel: Acquire pairs with the Release that sets DROPPED; Release orders our load of
            // `q` before the dropper's bump (it reads DROP_WAITERS from this RMW or a later one),
            // so either we see DROPPED here or the futex sees `seq` changed: no lost wake-up.
            let prev = self.word.fetch_or(DROP_WAITERS, Ordering::AcqRel);
            if prev & DROPPED != 0 {
                return Ok(());
            }
            // A handed-over revocation (deferred, timed out, a dropped future) is finished by
            // its last holder; if that holder no longer exists (the child of a fork, whose other
            // threads are gone), nobody would: whoever waits looks once itself, as a leaving
            // holder does (same fence, same Acquire-ordered scan after SCANNED).
            if prev & (SCANNED | WAITING | CLAIMED) == SCANNED {
                fence(Ordering::SeqCst);
                if registry::count(prev & !STATE) == 0 {
                    self.finish();
                    continue;
                }
            }
            let left = remaining(start, timeout);
            if left == Some(Duration::ZERO) {
                return Err(self.timeout_report(start));
            }
            if let Some(why) = self_wait::check(prev & !STATE, prev & WAITING != 0) {
                self_wait::fail(why);
            }
            wait::wait(&self.seq, q, left);
        }
    }

    fn timeout_report(&self, start: Option<Instant>) -> RevokeTimeout {
        let waited = start.map_or(Duration::ZERO, |s| s.elapsed());
        let holders = registry::holders(self.tag())
            .into_iter()
            .map(|seen| Holder {
                thread_name: seen.owner.name,
                thread_id: seen.owner.id,
                os_tid: seen.owner.os_tid,
                exited: seen.gone,
                exiting: seen.exited && !seen.gone,
                send_guard: seen.owner.pooled,
                held_for: seen.since.map_or(waited, |(d, _)| d),
                exact: seen.since.is_some(),
                location: seen.since.map(|(_, l)| l),
                member: None,
            })
            .collect();
        RevokeTimeout {
            waited,
            holders,
            members: Vec::new(),
        }
    }
}

/// What a [`RevokeBatch`](crate::RevokeBatch) needs of a member, whatever its `T`: the steps of
/// `revoke_internal`, one at a time, so that one heavy barrier and one scan serve every member.
pub(crate) trait Member {
    /// What the member's readers announce.
    fn tag(&self) -> u64;
    /// The winning state change (`REVOKED`, plus `WAITING | BATCH` if `sync`): true for the one
    /// caller, batched or not, that makes it.
    fn begin(&self, sync: bool) -> bool;
    /// After the heavy barrier: from here on, leaving holders may finish the job.
    fn mark_scanned(&self);
    /// Drops the value unless someone else claimed that; whether we did.
    fn finish(&self) -> bool;
    /// A waiting winner gives up waiting: the last holder drops the value (`WAITING` cleared).
    fn hand_over(&self);
    /// A deferred winner leaves the drop to the last holder: counted as pending.
    fn count_pending(&self);
    /// Waits until the value is dropped by whoever is responsible.
    fn wait_dropped(
        &self,
        start: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), RevokeTimeout>;
    /// Who still holds the member.
    fn timeout_report(&self, start: Option<Instant>) -> RevokeTimeout;
    /// Whether the value has been dropped.
    fn dropped(&self) -> bool;
}

impl<T> Member for Revocable<T> {
    fn tag(&self) -> u64 {
        Revocable::tag(self)
    }

    fn begin(&self, sync: bool) -> bool {
        let flags = if sync {
            REVOKED | WAITING | BATCH
        } else {
            REVOKED
        };
        let tag = self.tag();
        // SeqCst: precedes the heavy barrier's bookkeeping in the single total order, which is
        // what lets a barrier started later by another thread cover it (see `barrier::heavy`).
        self.word
            .compare_exchange(tag, tag | flags, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    fn mark_scanned(&self) {
        self.word.fetch_or(SCANNED, Ordering::Relaxed);
    }

    fn finish(&self) -> bool {
        Revocable::finish(self)
    }

    fn hand_over(&self) {
        Revocable::hand_over(self)
    }

    fn count_pending(&self) {
        Revocable::count_pending(self)
    }

    fn wait_dropped(
        &self,
        start: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), RevokeTimeout> {
        Revocable::wait_dropped(self, start, timeout)
    }

    fn timeout_report(&self, start: Option<Instant>) -> RevokeTimeout {
        Revocable::timeout_report(self, start)
    }

    fn dropped(&self) -> bool {
        self.word.load(Ordering::Acquire) & DROPPED != 0
    }
}

pub(crate) fn remaining(start: Option<Instant>, timeout: Option<Duration>) -> Option<Duration> {
    Some(timeout?.saturating_sub(start?.elapsed()))
}

impl<T> Drop for Revocable<T> {
    fn drop(&mut self) {
        // `&mut self`: no guard is alive. Leaked guards left only their (unique) id behind.
        let s = self.word.load(Ordering::Acquire) & STATE;
        if s & CLAIMED == 0 {
            // Counted as pending if handed over (a leaked guard kept it from its last holder).
            struct Counted(bool);
            impl Drop for Counted {
                fn drop(&mut self) {
                    if self.0 {
                        pending::dropped();
                    }
                }
            }
            let _counted = Counted(s & COUNTED != 0);
            // SAFETY: not claimed, so the value is initialised and nobody else will drop it.
            unsafe { ManuallyDrop::drop(&mut *self.data.get()) };
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Revocable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_access() {
            Some(v) => f.debug_tuple("Revocable").field(&*v).finish(),
            None => f.write_str("Revocable(<revoked>)"),
        }
    }
}

impl<T> Deref for RevocableGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the access is announced until `drop`, so the value is alive (type invariant).
        unsafe { self.data.as_ref() }
    }
}

impl<T> Drop for RevocableGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.rev.leave(&self.token);
    }
}

impl<T: fmt::Debug> fmt::Debug for RevocableGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for RevocableGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
