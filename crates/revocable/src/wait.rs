//! Sleeping on a 32-bit word until another thread changes it: the futex idea, per platform.
//!
//! [`wait`] returns when `*word != expected`, when woken, on timeout, or spuriously: callers always
//! re-check their condition in a loop. [`wake_all`] takes a raw pointer because the waker may
//! legitimately race with the word's owner returning; the kernel treats the address as a key only.
//!
//! * Linux: `futex(FUTEX_WAIT_PRIVATE / FUTEX_WAKE_PRIVATE)` (Miri implements these too).
//! * Other targets: a polling sleep with exponential back-off (10 µs → 1 ms). Correct, less prompt.
//! * `cfg(loom)`: a `yield_now` loop; a deadline is modelled as expiring at once, so the models
//!   explore the time-out paths too.

use core::time::Duration;

use crate::sync::AtomicU32;
#[cfg(any(loom, not(target_os = "linux")))]
use crate::sync::Ordering;

/// Outcome of one [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Woken, value changed, or spurious: re-check.
    Maybe,
    /// The timeout elapsed.
    TimedOut,
}

/// The futex word every waiting [`RevokeBatch`](crate::RevokeBatch) sleeps on: a holder leaving a
/// member of a waiting batch bumps it and wakes all (a batch cannot sleep on each member's own
/// word at once). Shared by all batches, so a wake may be for another batch: waiters re-scan.
#[cfg(not(loom))]
pub(crate) fn batch_seq() -> &'static AtomicU32 {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    &SEQ
}
#[cfg(loom)]
pub(crate) fn batch_seq() -> &'static AtomicU32 {
    loom::lazy_static! {
        static ref SEQ: AtomicU32 = AtomicU32::new(0);
    }
    &SEQ
}

#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woken {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the u32 at `word` (a live atomic we borrow) and the optional relative
    // timespec, which lives on our stack for the whole call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            // The kernel's type for the futex word (Miri checks the variadic argument's type).
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tsp,
        )
    };
    // SAFETY: reading errno of this thread.
    if r != 0 && unsafe { *libc::__errno_location() } == libc::ETIMEDOUT {
        Woken::TimedOut
    } else {
        Woken::Maybe
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) fn wake_all(word: *const AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key to find waiters; it never dereferences it,
    // so it is sound even if the word was freed after our last access to it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            // `*mut u32`: the kernel's type for the futex word (Miri checks the variadic
            // argument's type); AtomicU32 has the layout of u32.
            word.cast::<u32>().cast_mut(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woken {
    let start = std::time::Instant::now();
    let mut nap = Duration::from_micros(10);
    while word.load(Ordering::Acquire) == expected {
        if let Some(t) = timeout {
            let spent = start.elapsed();
            if spent >= t {
                return Woken::TimedOut;
            }
            nap = nap.min(t - spent);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(1));
    }
    Woken::Maybe
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
pub(crate) fn wake_all(_word: *const AtomicU32) {}

#[cfg(loom)]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woken {
    if timeout.is_some() {
        return Woken::TimedOut;
    }
    while word.load(Ordering::Acquire) == expected {
        loom::thread::yield_now();
    }
    Woken::Maybe
}

#[cfg(loom)]
pub(crate) fn wake_all(_word: *const AtomicU32) {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn times_out_when_unchanged() {
        let w = AtomicU32::new(7);
        assert_eq!(wait(&w, 7, Some(Duration::from_millis(5))), Woken::TimedOut);
    }

    #[test]
    fn returns_at_once_when_changed() {
        let w = AtomicU32::new(8);
        assert_eq!(wait(&w, 7, Some(Duration::from_secs(5))), Woken::Maybe);
    }

    #[test]
    fn wakes_a_sleeper() {
        let w = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while w.load(Ordering::Acquire) == 0 {
                    wait(&w, 0, None);
                }
            });
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            w.store(1, Ordering::Release);
            wake_all(&w);
        });
    }
}
