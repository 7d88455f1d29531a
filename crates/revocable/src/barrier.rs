//! Asymmetric memory barriers: a nearly free *light* barrier for readers, a *heavy* one for revokers.
//!
//! The protocol needs, on both sides of a Dekker-style handshake, a full barrier between a store and
//! a later load (reader: "announce, then check the revoked flag"; revoker: "set the flag, then look
//! for announcements"). Readers are many and hot, revokers rare, so the cost is moved to the revoker:
//!
//! * [`light`] is only a *compiler* fence: it stops the compiler from moving the reader's load above
//!   its store; the CPU may still reorder them (x86 store buffer).
//! * [`heavy`] makes every other thread of the process execute a full memory barrier before it
//!   returns, so any reader store that came before that point is visible to the revoker's next load,
//!   and any reader load that comes after it sees the revoker's earlier store.
//!
//! Strategies, chosen at compile time (each tiny, in the style of seize's barrier module):
//!
//! | platform | heavy | light |
//! |---|---|---|
//! | Linux (membarrier registered at the first access) | `membarrier(PRIVATE_EXPEDITED)` (IPIs to CPUs running this process) | compiler fence |
//! | Linux without it (old kernel, seccomp, sandbox) | `membarrier(GLOBAL)`, else a *CPU hop* (see `linux`), chosen at run time | compiler fence |
//! | feature `fence-readers`, and other targets | `fence(SeqCst)` | `fence(SeqCst)` |
//! | `cfg(loom)` / `cfg(miri)` | `fence(SeqCst)` | `fence(SeqCst)` |
//!
//! Neither loom nor Miri models membarrier or IPIs, so under them both barriers are real `SeqCst`
//! fences, which the C++ memory model (and both tools) do understand: two SeqCst fences on the two
//! sides of a store→load handshake forbid the "both loads see the old value" outcome.

#[cfg(all(
    target_os = "linux",
    not(loom),
    not(miri),
    not(feature = "fence-readers")
))]
mod linux;

use crate::sync::{fence, Ordering};

/// True where readers issue a real fence (and the heavy barrier is only a fence).
const FENCED_READERS: bool = cfg!(any(
    loom,
    miri,
    not(target_os = "linux"),
    feature = "fence-readers"
));

/// The reader's side of the handshake.
#[inline(always)]
pub(crate) fn light() {
    if FENCED_READERS {
        fence(Ordering::SeqCst);
    } else {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
}

/// The revoker's side: returns after every thread of the process has passed a full barrier at a
/// point after the caller's earlier state changes (its `SeqCst` read-modify-writes).
///
/// # Sharing (a grace period for many callers)
/// Concurrent callers share barriers, as liburcu's `synchronize_rcu` callers share a grace period:
/// membarrier serialises inside the kernel anyway, so N revokers at once would otherwise pay N
/// barriers back to back. Barriers are numbered: `STARTED` counts those begun, `DONE` holds the
/// highest number completed. A caller reads `k = STARTED` after its state change; any barrier
/// numbered above `k` began after that read, hence after the state change, and covers it. The
/// caller that finds no barrier in flight issues one (the *leader*); the others wait for a
/// covering one to complete — spinning for at most [`SHARE_SPIN`] rounds (with a `yield_now`
/// every 64; tens of microseconds when the leader is descheduled), then issuing their own, so a
/// caller's dependence on another thread's progress is bounded.
///
/// Why a barrier issued by another thread covers us: our state change precedes our load of
/// `STARTED`, which precedes the leader's `fetch_add` in the single total order of `SeqCst`
/// operations, and that precedes the leader's fence and the full barrier membarrier forces on
/// every thread. A reader's load after that barrier therefore sees our state change. Conversely a
/// reader store before that barrier happens before the leader's `DONE` release, which our Acquire
/// load of `DONE` synchronises with, so our scan sees it.
///
/// Under loom and Miri the heavy barrier is a `SeqCst` fence in each caller (the protocol is then
/// Dekker-correct on its own), so they cannot check the sharing argument above; the models check
/// the rest of the protocol around it.
pub(crate) fn heavy() {
    #[cfg(all(test, not(loom)))]
    HEAVY_CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    if FENCED_READERS {
        raw_heavy();
        return;
    }
    shared::heavy();
}

/// One barrier of our own, not shared.
fn raw_heavy() {
    #[cfg(all(test, not(loom)))]
    HEAVY_COUNT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    fence(Ordering::SeqCst);
    #[cfg(all(
        target_os = "linux",
        not(loom),
        not(miri),
        not(feature = "fence-readers")
    ))]
    linux::heavy();
    fence(Ordering::SeqCst);
}

/// How long a caller waits for another thread's covering barrier before issuing its own (rounds
/// of a spin-loop hint with a yield every 64; a membarrier takes ~0.5–5 µs here).
#[cfg(not(any(loom, miri)))]
pub(crate) const SHARE_SPIN: u32 = 4096;

#[cfg(not(any(loom, miri)))]
mod shared {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    static STARTED: AtomicU64 = AtomicU64::new(0);
    static DONE: AtomicU64 = AtomicU64::new(0);
    pub(super) static LEADER: AtomicBool = AtomicBool::new(false);

    pub(super) fn heavy() {
        // SeqCst: after the caller's state change in the total order (see `super::heavy`).
        let k = STARTED.load(Ordering::SeqCst);
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the leader's Release of DONE (its barrier happened before).
            if DONE.load(Ordering::Acquire) > k {
                #[cfg(test)]
                super::SHARED_COUNT.fetch_add(1, Ordering::Relaxed);
                // Like our own barrier would, end with a full fence: the caller's next RMWs
                // (SCANNED) are then ordered after everything the leader's barrier made visible,
                // for holders that synchronise with them (see `leave_slow`).
                core::sync::atomic::fence(Ordering::SeqCst);
                return;
            }
            if !LEADER.load(Ordering::Relaxed)
                && LEADER
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // SeqCst: this barrier's number is ordered after every caller that read a
                // smaller `STARTED`, and before the barrier itself.
                let n = STARTED.fetch_add(1, Ordering::SeqCst) + 1;
                super::raw_heavy();
                DONE.fetch_max(n, Ordering::Release);
                LEADER.store(false, Ordering::Release);
                return;
            }
            spins += 1;
            if spins >= super::SHARE_SPIN {
                // The leader is slow (descheduled): do not depend on it any longer.
                super::raw_heavy();
                return;
            }
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                core::hint::spin_loop();
            }
        }
    }
}

/// In the child of a `fork`: a leader that was issuing a barrier in the parent does not exist
/// here; without this every revoke would spin `SHARE_SPIN` rounds first.
#[cfg(all(unix, not(any(loom, miri))))]
pub(crate) fn after_fork_child() {
    shared::LEADER.store(false, core::sync::atomic::Ordering::Relaxed);
}

#[cfg(any(loom, miri))]
mod shared {
    /// Under loom and Miri every caller issues its own (fence) barrier: see `super::heavy`.
    pub(super) fn heavy() {
        super::raw_heavy();
    }
}

/// Chooses the strategy and registers with membarrier. Called when the first reader thread
/// registers, so that the (slow) registration never lands on a revoke.
pub(crate) fn init() {
    #[cfg(all(
        target_os = "linux",
        not(loom),
        not(miri),
        not(feature = "fence-readers")
    ))]
    linux::init();
}

#[cfg(all(test, not(loom)))]
static HEAVY_COUNT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
#[cfg(all(test, not(loom)))]
static HEAVY_CALLS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
#[cfg(all(test, not(loom), not(miri)))]
static SHARED_COUNT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Heavy barriers requested so far (each revoke or batch asks for one), for tests.
#[cfg(all(test, not(loom)))]
pub(crate) fn heavy_calls() -> u64 {
    HEAVY_CALLS.load(core::sync::atomic::Ordering::Relaxed)
}

/// Requests served by another thread's barrier so far, for tests.
#[cfg(all(test, not(loom), not(miri)))]
pub(crate) fn shared_count() -> u64 {
    SHARED_COUNT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Number of heavy barriers actually issued so far (for tests: creating a resource must issue none).
#[cfg(all(test, not(loom)))]
pub(crate) fn heavy_count() -> u64 {
    HEAVY_COUNT.load(core::sync::atomic::Ordering::Relaxed)
}

/// The strategy in use, for diagnostics and the benchmark's report.
pub fn strategy() -> &'static str {
    #[cfg(all(
        target_os = "linux",
        not(loom),
        not(miri),
        not(feature = "fence-readers")
    ))]
    return linux::strategy();
    #[allow(unreachable_code)]
    "fence(SeqCst) on both sides"
}
