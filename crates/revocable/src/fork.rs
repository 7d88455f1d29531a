//! `fork()`: the child has only the forking thread, so every other thread's announcements are
//! phantoms there; this module drops them, as liburcu's bulletproof flavour does.
//!
//! `pthread_atfork` handlers, registered at the first registration in the process:
//! * *prepare* (parent, before the fork): takes the Send-guard depot's and the waker table's
//!   locks, so that no other thread holds them at the instant of the fork (the child would
//!   otherwise inherit them locked forever);
//! * *parent* (after): releases them;
//! * *child* (after): zeroes every slot of every thread line except its own and marks those
//!   lines orphaned (their threads do not exist in the child, so the sweep reclaims them),
//!   clears the shared barrier's leader flag, then releases the locks. It only loads and stores
//!   atomics and unlocks: async-signal-safe, as a handler running in the child of a
//!   multi-threaded process must be.
//!
//! What other threads were doing at the fork is lost with them: a line lock one of them held
//! stays taken in the child (the exit handling, the sweep and a new thread's claim only
//! `try_lock`, so such a line is kept, not reclaimed, and never handed to a thread; a
//! report (`RevokeTimeout`, `holders()`) waits for it about 50 ms, once per line, then names
//! that line's holders' thread as unknown); a line
//! one of them was claiming at the fork stays claimed by nobody, for good (its owner unknown,
//! so the sweep never finds its thread gone); revocations they had won but not finished never
//! finish; a process-wide
//! one-time initialisation they were inside (the barrier's probe, the pthread key) never
//! completes, and the child's first access waits for it; a revocation handed over to a holder
//! that was another thread is finished by whoever waits for it in the child (a waiting revoke
//! rescans); [`pending_drops`](crate::pending_drops) keeps the parent's count. A `fork` from a
//! signal handler that interrupted this crate while it held the depot's or the waker table's
//! lock deadlocks in *prepare*.
//!
//! Not dropped in the child: Send guards ([`SendGuard`](crate::SendGuard),
//! [`OwnedGuard`](crate::OwnedGuard)), since they belong to no thread and one may be on the
//! forking thread's own stack; a revoke in the child waits for those (`revoke_timeout` names
//! them). Revokes that other threads had in progress at the fork never complete in the child.

#[cfg(all(unix, not(loom), not(miri)))]
mod imp {
    use std::cell::RefCell;
    use std::sync::{MutexGuard, Once};

    type Held = (
        Option<MutexGuard<'static, Vec<crate::registry::PoolSlot>>>,
        Option<MutexGuard<'static, crate::wakers::Table>>,
    );

    std::thread_local! {
        /// The locks taken by *prepare*, held across the fork by the forking thread.
        static HELD: RefCell<Held> = const { RefCell::new((None, None)) };
    }

    extern "C" fn prepare() {
        let held = (Some(crate::pool::lock_depot()), Some(crate::wakers::lock()));
        let _ = HELD.try_with(|h| *h.borrow_mut() = held);
    }

    extern "C" fn parent() {
        let _ = HELD.try_with(|h| *h.borrow_mut() = (None, None));
    }

    extern "C" fn child() {
        crate::registry::forget_other_threads();
        crate::barrier::after_fork_child();
        let _ = HELD.try_with(|h| *h.borrow_mut() = (None, None));
    }

    /// Registers the handlers (once per process).
    pub(crate) fn arm() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: three handlers with the C ABI that never unwind (they lock, unlock and
            // touch atomics only).
            unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        });
    }
}

#[cfg(all(unix, not(loom), not(miri)))]
pub(crate) use imp::arm;

/// Nothing to register where there is no `fork`, or under loom and Miri (which do not model it).
#[cfg(not(all(unix, not(loom), not(miri))))]
pub(crate) fn arm() {}
