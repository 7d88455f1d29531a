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
//! | Linux where membarrier is unusable | the process aborts with a message: build with `fence-readers` | |
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

/// The revoker's side: returns after every thread of the process has passed a full barrier.
pub(crate) fn heavy() {
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

/// Number of heavy barriers issued so far (for tests: creating a resource must issue none).
#[cfg(all(test, not(loom)))]
pub(crate) fn heavy_count() -> u64 {
    HEAVY_COUNT.load(core::sync::atomic::Ordering::Relaxed)
}

/// The strategy in use, for diagnostics and the benchmark's report.
pub fn strategy() -> &'static str {
    if FENCED_READERS {
        "fence(SeqCst) on both sides"
    } else {
        init();
        "membarrier(PRIVATE_EXPEDITED)"
    }
}
