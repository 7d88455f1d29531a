//! Self-waits: a thread about to wait for a value's drop that only it can bring about.
//!
//! Two cases are knowable, and every waiting path (`revoke`, `revoke_timeout` of any duration,
//! [`RevokeBatch`](crate::RevokeBatch), and the drop-wait of
//! [`revoke_async`](crate::Revocable::revoke_async)) checks both before it sleeps:
//! * the thread holds an access to the resource (a thread-bound guard announced in its own line,
//!   live or leaked): the kernel's `synchronize_srcu()` inside a read section;
//! * the thread is running the value's own `T::drop` (a drop that revokes its own resource,
//!   reached through any revoke), or the `T::drop` of a member of a batch that won the resource
//!   too and drops it only after that drop returns: the value cannot be dropped before then.
//!
//! What cannot be known: a Send guard held on this thread's stack (it belongs to no thread), or a
//! guard held by another task of the same thread (see `revoke_async`).
//!
//! # Invariants
//! `DROPPING[..len]` are the tags whose `T::drop` this thread is running, innermost last; a drop
//! nested deeper than [`DEPTH`] is not recorded (and so not detected).

use core::cell::Cell;

use crate::registry;

/// Nested drops tracked per thread.
const DEPTH: usize = 8;

struct Dropping {
    len: Cell<usize>,
    tags: [Cell<u64>; DEPTH],
}

#[cfg(not(loom))]
std::thread_local! {
    /// No destructor: usable during thread teardown and in drops run by TLS destructors.
    static DROPPING: Dropping = const {
        Dropping { len: Cell::new(0), tags: [const { Cell::new(0) }; DEPTH] }
    };
}
#[cfg(loom)]
loom::thread_local! {
    static DROPPING: Dropping = Dropping {
        len: Cell::new(0),
        tags: core::array::from_fn(|_| Cell::new(0)),
    };
}

#[cfg(not(loom))]
std::thread_local! {
    /// Tags a batch on this thread has won and will drop itself, one after another, each with
    /// the drop depth (`DROPPING`'s length) at which that batch runs.
    static BATCH_WON: core::cell::RefCell<Vec<(u64, usize)>> =
        const { core::cell::RefCell::new(Vec::new()) };
}
#[cfg(loom)]
loom::thread_local! {
    static BATCH_WON: core::cell::RefCell<Vec<(u64, usize)>> =
        core::cell::RefCell::new(Vec::new());
}

/// Records, until dropped, that this thread's batch won `tags` and drops their values itself:
/// one member's `T::drop` that waits for another member's drop would wait for itself.
#[must_use]
pub(crate) struct BatchMark(usize);

pub(crate) fn batch_won(tags: &[u64]) -> BatchMark {
    let depth = drop_depth();
    let start = BATCH_WON
        .try_with(|b| {
            let mut b = b.borrow_mut();
            let n = b.len();
            b.extend(tags.iter().map(|&t| (t, depth)));
            n
        })
        .unwrap_or(usize::MAX);
    BatchMark(start)
}

impl Drop for BatchMark {
    fn drop(&mut self) {
        if self.0 != usize::MAX {
            let _ = BATCH_WON.try_with(|b| b.borrow_mut().truncate(self.0));
        }
    }
}

/// Whether a batch of this thread that is now suspended inside a `T::drop` (it ran at a smaller
/// drop depth than the current one) won `tag`: that batch drops it only after the drop returns.
/// A batch's own members (same depth) are not: it is the one waiting for them.
fn won_by_enclosing_batch(tag: u64) -> bool {
    let depth = drop_depth();
    BATCH_WON
        .try_with(|b| {
            b.try_borrow()
                .is_ok_and(|b| b.iter().any(|&(t, d)| t == tag && d < depth))
        })
        .unwrap_or(false)
}

/// How many `T::drop`s this thread is inside (as recorded, up to [`DEPTH`]).
fn drop_depth() -> usize {
    DROPPING.try_with(|d| d.len.get()).unwrap_or(0)
}

/// Marks `tag` as being dropped by this thread until the mark is dropped.
#[must_use]
pub(crate) struct DropMark(bool);

/// Records that this thread runs `T::drop` of the resource `tag`.
pub(crate) fn dropping(tag: u64) -> DropMark {
    let pushed = DROPPING
        .try_with(|d| {
            let n = d.len.get();
            if n < DEPTH {
                d.tags[n].set(tag);
                d.len.set(n + 1);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    DropMark(pushed)
}

impl Drop for DropMark {
    fn drop(&mut self) {
        if self.0 {
            let _ = DROPPING.try_with(|d| d.len.set(d.len.get() - 1));
        }
    }
}

/// Why waiting for `tag`'s drop would never end, if this thread can know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SelfWait {
    /// This thread holds an access to the resource.
    Holding,
    /// This thread is running the value's own `T::drop`.
    InDrop,
}

/// The self-wait for `tag` this thread is in, if any (see the module docs). `watched`: the
/// revocation's winner drops the value itself (`WAITING`); only then can an enclosing batch of
/// this thread be the one that never gets to it (a handed-over or deferred member is dropped by
/// its last holder, or by whoever waits, see `wait_dropped`).
pub(crate) fn check(tag: u64, watched: bool) -> Option<SelfWait> {
    if in_drop(tag) || (watched && won_by_enclosing_batch(tag)) {
        return Some(SelfWait::InDrop);
    }
    registry::held_here(tag).then_some(SelfWait::Holding)
}

/// Only the `T::drop` case (the one `revoke_async` can know).
pub(crate) fn in_drop(tag: u64) -> bool {
    DROPPING
        .try_with(|d| d.tags[..d.len.get()].iter().any(|t| t.get() == tag))
        .unwrap_or(false)
}

/// Whether this thread is running any revoked value's `T::drop`.
pub(crate) fn in_any_drop() -> bool {
    DROPPING.try_with(|d| d.len.get() > 0).unwrap_or(false)
}

/// Fails loudly instead of waiting forever.
#[cold]
#[track_caller]
pub(crate) fn fail(why: SelfWait) -> ! {
    match why {
        SelfWait::Holding => panic!(
            "revocable: a revoke that waits (revoke, revoke_timeout, RevokeBatch) was called by a \
             thread that still holds an access to the same resource (a live or leaked guard): it \
             would wait for itself; drop the guard first, or use revoke_deferred()"
        ),
        SelfWait::InDrop => panic!(
            "revocable: a revoke that waits (revoke, revoke_timeout, RevokeBatch, revoke_async) was \
             called from inside the value's own Drop (or the Drop of a member of a batch that also \
             revokes this resource): the value cannot be dropped before that Drop returns; use \
             revoke_deferred() there"
        ),
    }
}
