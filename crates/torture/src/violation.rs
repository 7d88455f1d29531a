//! The kinds of contract violation the checker detects, and their thread-safe tally.
//!
//! # Invariants
//! `counts[k]` is the number of violations of kind `k` recorded; `samples` keeps the details of the
//! first [`SAMPLES`] violations in the order they were recorded.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// How many violation details are kept for the report.
pub const SAMPLES: usize = 16;

/// A broken promise of the revocable contract, as seen by the torture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A reader holding a guard saw the payload's poison: `T` was dropped under a holder.
    Poisoned,
    /// A reader holding a guard saw the drop log count a drop.
    DroppedUnderGuard,
    /// A reader holding a guard saw a non-zero pipe count: a waiting revoke of this very resource
    /// returned while the reader was still inside (the grace period was too short).
    PipeTooShort,
    /// A reader saw another generation's payload, or corrupt memory.
    WrongData,
    /// `revoke` or an `Ok` from `revoke_timeout` returned before the payload was dropped.
    ReturnedBeforeDrop,
    /// The payload was dropped more than once.
    DoubleDrop,
    /// More than one revoke call on one resource returned `true`.
    MultipleWinners,
    /// A revoked resource was retired with no call returning `true` and no timeout.
    NoWinner,
    /// `try_access` succeeded after a revoke call on the resource had returned.
    AccessAfterRevoke,
    /// A revoked resource was retired without its payload ever being dropped.
    NotDropped,
    /// `revoke_timeout` gave up (returned `Err`) before its timeout had elapsed.
    EarlyTimeout,
    /// A revoke call exceeded the stall bound, or a thread did not stop (watchdog).
    Hang,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 12] = [
        Kind::Poisoned,
        Kind::DroppedUnderGuard,
        Kind::PipeTooShort,
        Kind::WrongData,
        Kind::ReturnedBeforeDrop,
        Kind::DoubleDrop,
        Kind::MultipleWinners,
        Kind::NoWinner,
        Kind::AccessAfterRevoke,
        Kind::NotDropped,
        Kind::EarlyTimeout,
        Kind::Hang,
    ];

    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Poisoned => "poisoned",
            Kind::DroppedUnderGuard => "dropped-under-guard",
            Kind::PipeTooShort => "pipe-too-short",
            Kind::WrongData => "wrong-data",
            Kind::ReturnedBeforeDrop => "returned-before-drop",
            Kind::DoubleDrop => "double-drop",
            Kind::MultipleWinners => "multiple-winners",
            Kind::NoWinner => "no-winner",
            Kind::AccessAfterRevoke => "access-after-revoke",
            Kind::NotDropped => "not-dropped",
            Kind::EarlyTimeout => "early-timeout",
            Kind::Hang => "hang",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Thread-safe tally of violations.
///
/// ```
/// use revocable_torture::violation::{Kind, Violations};
/// let v = Violations::default();
/// v.record(Kind::Poisoned, || "resource 3 generation 7".into());
/// assert_eq!(v.total(), 1);
/// assert_eq!(v.count(Kind::Poisoned), 1);
/// assert_eq!(v.samples(), vec!["poisoned: resource 3 generation 7".to_string()]);
/// ```
#[derive(Debug, Default)]
pub struct Violations {
    counts: [AtomicU64; Kind::ALL.len()],
    samples: Mutex<Vec<String>>,
    first: OnceLock<Instant>,
}

impl Violations {
    /// Records one violation; `detail` is only evaluated while fewer than [`SAMPLES`] are kept.
    pub fn record(&self, kind: Kind, detail: impl FnOnce() -> String) {
        // Relaxed: a tally; readers of the totals run after the threads were joined, or only
        // display an approximate progress value.
        let before = self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.first.get_or_init(Instant::now);
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() < SAMPLES && (before < 4 || kind == Kind::Hang) {
            samples.push(format!("{kind}: {}", detail()));
        }
    }

    /// When the first violation was recorded.
    pub fn first_at(&self) -> Option<Instant> {
        self.first.get().copied()
    }

    /// Violations of `kind` so far.
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// All violations so far.
    pub fn total(&self) -> u64 {
        Kind::ALL.iter().map(|k| self.count(*k)).sum()
    }

    /// The details kept (at most [`SAMPLES`], at most 4 per kind except hangs).
    pub fn samples(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bounded_samples() {
        let v = Violations::default();
        assert!(v.first_at().is_none());
        let t0 = Instant::now();
        for i in 0..100 {
            v.record(Kind::PipeTooShort, || format!("{i}"));
        }
        v.record(Kind::Hang, || "stuck".into());
        assert!(v.first_at().is_some_and(|t| t >= t0));
        assert_eq!(v.count(Kind::PipeTooShort), 100);
        assert_eq!(v.count(Kind::Hang), 1);
        assert_eq!(v.count(Kind::Poisoned), 0);
        assert_eq!(v.total(), 101);
        let s = v.samples();
        assert_eq!(s.len(), 5, "4 of a kind, plus the hang: {s:?}");
        assert_eq!(s[0], "pipe-too-short: 0");
        assert_eq!(s[4], "hang: stuck");
    }

    #[test]
    fn names_are_distinct() {
        let names: std::collections::HashSet<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
        for k in Kind::ALL {
            assert_eq!(Kind::ALL[k.index()], k);
        }
    }
}
