//! [`RevokeBatch`]: many resources revoked with one heavy barrier and one scan.
//!
//! A revoke costs a heavy barrier (a `membarrier` system call) and a scan of every thread's
//! announcement line; revoking N resources one by one pays both N times. A batch changes every
//! member's state first, then issues one barrier that covers all of those state changes, then
//! scans once for the whole set of ids (one pass over the lines, each non-zero slot looked up in a
//! small hash table of member ids). Most slots are zero, so the scan costs what a single revoke's
//! does and the batch adds a few tens of nanoseconds per member — the grace-period sharing of
//! liburcu's `synchronize_rcu` and of call_rcu batching, applied to revocation.
//!
//! # Semantics, per member
//! Exactly those of the single calls: one winner across every concurrent revoker of a resource,
//! batched or not; a waiting call returns only after each member's value is dropped; each value is
//! dropped as soon as its own holders are gone — a held member never delays the drop of an unheld
//! one (a waiting batch sleeps on a futex word shared by all batches, which a holder leaving any
//! member bumps, and re-scans); values whose holders allow it are dropped in push order, by the
//! revoking thread. Duplicates, members already revoked (or being revoked) elsewhere and an empty
//! batch are fine: a member that this call did not win (including a duplicate's later entries)
//! reports `false` and is waited for like any losing revoker.

use core::any::Any;
use core::fmt;
use core::time::Duration;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;
use std::vec::Vec;

use crate::error::RevokeTimeout;
use crate::registry::{self, TagSet};
use crate::revocable::{remaining, Member};
use crate::self_wait;
use crate::sync::{fence, Ordering};
use crate::{barrier, wait, Revocable};

/// A set of resources to revoke together, with one heavy barrier and one scan.
///
/// ```
/// use revocable::{Revocable, RevokeBatch};
///
/// let a = Revocable::new(String::from("regs"));
/// let b = Revocable::new([0u8; 64]); // members may have different types
/// let c = Revocable::new(7u32);
/// c.revoke(); // already revoked: fine, reports `false`
///
/// let mut batch = RevokeBatch::new();
/// batch.push(&a);
/// batch.push(&b);
/// batch.push(&c);
/// assert_eq!(batch.revoke(), [true, true, false]); // per member, in push order
/// assert!(a.try_access().is_none() && b.try_access().is_none());
/// ```
///
/// # Blocking
/// [`revoke`](Self::revoke) sleeps until every member's value is dropped (forever if a guard of
/// one was leaked; [`revoke_timeout`](Self::revoke_timeout) bounds that);
/// [`revoke_deferred`](Self::revoke_deferred) never waits for holders. Like
/// [`Revocable::revoke`], a waiting revoke by a thread that itself holds an access to a member
/// panics instead of waiting for itself forever (the other members are still revoked, and each is
/// dropped when its last holder leaves).
///
/// # Panics in `T::drop`
/// If a member's `T::drop` panics, the other members' drops still run (each panicking member
/// counts as dropped, as for [`Revocable::revoke`]); members still held are handed over to their
/// last holder; then the first panic propagates out of the revoke. No member is left
/// half-revoked.
#[derive(Default)]
pub struct RevokeBatch<'a> {
    members: Vec<&'a (dyn Member + 'a)>,
}

impl fmt::Debug for RevokeBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeBatch")
            .field("members", &self.members.len())
            .finish()
    }
}

impl<'a> RevokeBatch<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` members.
    pub fn with_capacity(n: usize) -> Self {
        RevokeBatch {
            members: Vec::with_capacity(n),
        }
    }

    /// Adds `r`; returns its index in the result of the revoke.
    pub fn push<T>(&mut self, r: &'a Revocable<T>) -> usize {
        self.members.push(r);
        self.members.len() - 1
    }

    /// Number of members pushed (duplicates counted).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True if nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Revokes every member and waits until each value is dropped: per member, in push order,
    /// whether this call revoked it (see [`Revocable::revoke`]).
    pub fn revoke(self) -> Vec<bool> {
        match self.run::<true>(None) {
            Ok(won) => won,
            Err(_) => unreachable!("a revoke without a deadline never times out"),
        }
    }

    /// [`revoke`](Self::revoke), giving up after `timeout`.
    ///
    /// On `Err`, every member's revocation stays in progress (new accesses fail) and each value
    /// still held is dropped when its last holder leaves; the error names the members still held
    /// ([`RevokeTimeout::members`]) and their holders ([`Holder::member`](crate::Holder::member)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use revocable::{Revocable, RevokeBatch};
    ///
    /// let (a, b) = (Revocable::new(1), Revocable::new(2));
    /// let held = b.try_access().unwrap();
    /// std::thread::scope(|s| {
    ///     // Another thread revokes: a holder's own waiting revoke is a self-wait (it panics).
    ///     let err = s.spawn(|| {
    ///         let mut batch = RevokeBatch::new();
    ///         batch.push(&a);
    ///         batch.push(&b);
    ///         batch.revoke_timeout(Duration::from_millis(10)).unwrap_err()
    ///     });
    ///     assert_eq!(err.join().unwrap().members(), [1]); // `a` was dropped; `b` is still held
    /// });
    /// drop(held);                              // `b`'s last holder drops it now
    /// ```
    pub fn revoke_timeout(self, timeout: Duration) -> Result<Vec<bool>, RevokeTimeout> {
        self.run::<true>(Some(timeout))
    }

    /// Revokes every member without waiting for holders. Of the members this call wins, each
    /// value not held is dropped before this returns, each held one by the thread whose guard
    /// leaves last (see [`Revocable::revoke_deferred`] for the bound). Per member, whether this
    /// call revoked it.
    pub fn revoke_deferred(self) -> Vec<bool> {
        self.run::<false>(None).unwrap_or_default()
    }

    /// One body for the three revokes: `SYNC` waits for the drops (up to `timeout`).
    fn run<const SYNC: bool>(self, timeout: Option<Duration>) -> Result<Vec<bool>, RevokeTimeout> {
        let start = timeout.map(|_| Instant::now());
        let m = &self.members;
        // The state changes of every member first: one heavy barrier after them covers them all.
        let won: Vec<bool> = m.iter().map(|r| r.begin(SYNC)).collect();
        let winners: Vec<usize> = (0..m.len()).filter(|&i| won[i]).collect();
        // Members someone else is revoking (or a duplicate we won earlier): wait for their drop.
        let mut lost: Vec<usize> = (0..m.len()).filter(|&i| !won[i]).collect();
        if !winners.is_empty() {
            barrier::heavy();
            for &i in &winners {
                m[i].mark_scanned();
            }
            // Pairs with the fence in `leave_slow`, as in the single revoke.
            fence(Ordering::SeqCst);
            let tags: Vec<u64> = winners.iter().map(|&i| m[i].tag()).collect();
            // A member's `T::drop` that revokes a sibling this batch will drop next is a
            // self-wait (see `self_wait`).
            let _won = self_wait::batch_won(&tags);
            let set = TagSet::new(&tags);
            let mut counts = vec![0u32; winners.len()];
            // Positions in `winners` whose value is not dropped yet.
            let mut pending: Vec<usize> = (0..winners.len()).collect();
            let mut panicked = None;
            loop {
                // Acquire: a holder's retract happens before its bump of the batch word.
                let q = wait::batch_seq().load(Ordering::Acquire);
                registry::count_set(&set, &mut counts);
                drop_free::<SYNC>(m, &winners, &mut pending, &counts, &mut lost, &mut panicked);
                if !SYNC {
                    // Held members: their last holders drop them.
                    for &j in &pending {
                        m[winners[j]].count_pending();
                    }
                    break;
                }
                if pending.is_empty() {
                    break;
                }
                let self_wait = pending
                    .iter()
                    .find_map(|&j| self_wait::check(tags[j], true));
                let timed_out = panicked.is_some()
                    || self_wait.is_some()
                    || match remaining(start, timeout) {
                        Some(Duration::ZERO) => true,
                        left => wait::wait(wait::batch_seq(), q, left) == wait::Woken::TimedOut,
                    };
                if !timed_out {
                    continue;
                }
                // Hand every member still held to its last holder, then look once more.
                for &j in &pending {
                    m[winners[j]].hand_over();
                }
                registry::count_set(&set, &mut counts);
                drop_free::<SYNC>(m, &winners, &mut pending, &counts, &mut lost, &mut panicked);
                if pending.is_empty() || panicked.is_some() {
                    break;
                }
                if let Some(why) = self_wait {
                    self_wait::fail(why);
                }
                let held: Vec<usize> = pending.iter().map(|&j| winners[j]).collect();
                return Err(self.report(&held, &lost, start));
            }
            if let Some(p) = panicked {
                // Every other member is dropped or handed over to its last holder: none is left
                // half-revoked. A panic in `T::drop` propagates, as from a single revoke.
                std::panic::resume_unwind(p);
            }
        }
        if SYNC {
            lost.sort_unstable();
            lost.dedup();
            for (k, &i) in lost.iter().enumerate() {
                if m[i].wait_dropped(start, timeout).is_err() {
                    // Out of time: name every member not yet dropped.
                    return Err(self.report(&[], &lost[k..], start));
                }
            }
        }
        Ok(won)
    }

    /// The holders of the members at `held` and of those at `lost` not yet dropped (push
    /// indexes), each tagged with its member.
    fn report(&self, held: &[usize], lost: &[usize], start: Option<Instant>) -> RevokeTimeout {
        let mut out = RevokeTimeout::empty(start.map_or(Duration::ZERO, |s| s.elapsed()));
        let lost_held = lost.iter().filter(|&&i| !self.members[i].dropped());
        let mut all: Vec<usize> = held.iter().chain(lost_held).copied().collect();
        all.sort_unstable();
        all.dedup();
        for i in all {
            out.merge(self.members[i].timeout_report(start).for_members(&[i]));
        }
        out
    }
}

/// Drops every pending member that the last scan found unheld (`counts[j] == 0`), in push
/// order, and removes it from `pending`. A member whose drop another thread claimed goes to
/// `lost` (waited for later, if `SYNC`); the first panic out of a `T::drop` is kept in
/// `panicked` and the others still run (the panicking member counts as dropped).
fn drop_free<const SYNC: bool>(
    m: &[&(dyn Member + '_)],
    winners: &[usize],
    pending: &mut Vec<usize>,
    counts: &[u32],
    lost: &mut Vec<usize>,
    panicked: &mut Option<Box<dyn Any + Send>>,
) {
    pending.retain(|&j| {
        if counts[j] != 0 {
            return true;
        }
        let i = winners[j];
        match catch_unwind(AssertUnwindSafe(|| m[i].finish())) {
            Ok(true) => {}
            // A holder that saw it unwatched (after a hand-over) is dropping it.
            Ok(false) if SYNC => lost.push(i),
            Ok(false) => {}
            Err(p) => {
                panicked.get_or_insert(p);
            }
        }
        false
    });
}
