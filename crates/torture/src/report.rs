//! What a run measured: the periodic [`Progress`] line and the final [`Report`].
//!
//! # Invariants
//! A report is built after every thread that stopped in time was joined; `hung` is true when the
//! watchdog fired or some thread did not stop, and then the figures of those threads are missing.

use std::fmt;
use std::time::Duration;

use crate::stats::{fmt_ns, Histogram};
use crate::violation::Kind;

/// A snapshot taken during the run (figures are approximate: threads are running).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Planned duration.
    pub duration: Duration,
    /// Successful accesses so far.
    pub accesses: u64,
    /// Revoke calls so far (all flavours).
    pub revokes: u64,
    /// Resources replaced by a fresh one so far.
    pub recycled: u64,
    /// Longest waiting revoke so far, in nanoseconds.
    pub max_revoke_ns: u64,
    /// Violations so far.
    pub violations: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torture: {:>4}/{}s accesses {} revokes {} recycled {} max-revoke {} violations {}",
            self.elapsed.as_secs(),
            self.duration.as_secs(),
            self.accesses,
            self.revokes,
            self.recycled,
            fmt_ns(self.max_revoke_ns),
            self.violations
        )
    }
}

/// Revoke calls by flavour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// `revoke` calls.
    pub revoke: u64,
    /// `revoke_deferred` calls.
    pub deferred: u64,
    /// `revoke_timeout` calls.
    pub timeout: u64,
    /// Batch revokes (`RevokeBatch`), each counted once whatever its size.
    pub batch: u64,
    /// Members revoked through batches.
    pub batch_members: u64,
    /// `revoke_async` calls (driven to completion by the revoker thread).
    pub async_revoke: u64,
}

impl OpCounts {
    /// All calls.
    pub fn total(&self) -> u64 {
        self.revoke + self.deferred + self.timeout + self.batch + self.async_revoke
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &OpCounts) {
        self.revoke += other.revoke;
        self.deferred += other.deferred;
        self.timeout += other.timeout;
        self.batch += other.batch;
        self.batch_members += other.batch_members;
        self.async_revoke += other.async_revoke;
    }
}

/// The final summary of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Name of the tortured implementation.
    pub subject: &'static str,
    /// Seed of the run.
    pub seed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Reader threads.
    pub readers: usize,
    /// Revoker threads.
    pub revokers: usize,
    /// Revokers racing on one resource.
    pub racers: usize,
    /// Resources alive at once.
    pub resources: usize,
    /// Successful `try_access` calls.
    pub accesses: u64,
    /// `try_access` calls that found the resource revoked.
    pub misses: u64,
    /// Accesses taken while the reader already held at least one guard.
    pub nested: u64,
    /// Holds that slept.
    pub sleeps: u64,
    /// Accesses by async holders (Send guards held across `.await` in tokio tasks).
    pub async_accesses: u64,
    /// Async holders' accesses that found the resource revoked.
    pub async_misses: u64,
    /// Reader pipe histogram: checks that saw pipe count 0 (good) and ≥ 1 (too-short wait).
    pub pipe: [u64; 2],
    /// Revoke calls by flavour.
    pub ops: OpCounts,
    /// Calls that returned `true` / `Ok(true)`.
    pub wins: u64,
    /// `revoke_timeout` calls that expired.
    pub timeouts: u64,
    /// Resources replaced by a fresh one.
    pub recycled: u64,
    /// Latency of waiting revokes (`revoke`, and `revoke_timeout` that returned `Ok`).
    pub wait_latency: Histogram,
    /// Latency of `revoke_deferred`.
    pub deferred_latency: Histogram,
    /// Violations by kind (only kinds with a non-zero count).
    pub violations: Vec<(Kind, u64)>,
    /// Details of the first violations.
    pub samples: Vec<String>,
    /// Time from the start to the first violation.
    pub first_violation: Option<Duration>,
    /// The watchdog fired or a thread did not stop.
    pub hung: bool,
}

impl Report {
    /// All violations (including hangs).
    pub fn violation_count(&self) -> u64 {
        self.violations.iter().map(|(_, n)| n).sum()
    }

    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.violation_count() == 0 && !self.hung
    }
}

fn latency_line(f: &mut fmt::Formatter<'_>, name: &str, h: &Histogram) -> fmt::Result {
    if h.count() == 0 {
        return writeln!(f, "  {name:<16} none");
    }
    writeln!(
        f,
        "  {name:<16} n={} p50={} p90={} p99={} p99.9={} max={}",
        h.count(),
        fmt_ns(h.percentile(50.0)),
        fmt_ns(h.percentile(90.0)),
        fmt_ns(h.percentile(99.0)),
        fmt_ns(h.percentile(99.9)),
        fmt_ns(h.max())
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "torture of {} (seed {}): {:.1}s, {} readers, {} revokers ({} racing per resource), \
             {} resources",
            self.subject, self.seed, secs, self.readers, self.revokers, self.racers, self.resources
        )?;
        writeln!(
            f,
            "  accesses         {} ({:.0}/s), {} nested, {} slept, {} found revoked",
            self.accesses,
            self.accesses as f64 / secs,
            self.nested,
            self.sleeps,
            self.misses
        )?;
        let all = self.accesses + self.async_accesses;
        writeln!(
            f,
            "  guarded accesses {all} in all ({:.0}/s, {:.2e} per 60 s)",
            all as f64 / secs,
            all as f64 / secs * 60.0
        )?;
        writeln!(
            f,
            "  async holders    {} accesses ({:.0}/s) held across .await, {} found revoked",
            self.async_accesses,
            self.async_accesses as f64 / secs,
            self.async_misses
        )?;
        writeln!(
            f,
            "  reader pipe      0: {}  >=1: {}",
            self.pipe[0], self.pipe[1]
        )?;
        writeln!(
            f,
            "  revokes          {} ({:.0}/s): revoke {} deferred {} timeout {} batch {} ({} members) \
             async {} ({} expired); {} won, {} resources recycled",
            self.ops.total(),
            self.ops.total() as f64 / secs,
            self.ops.revoke,
            self.ops.deferred,
            self.ops.timeout,
            self.ops.batch,
            self.ops.batch_members,
            self.ops.async_revoke,
            self.timeouts,
            self.wins,
            self.recycled
        )?;
        latency_line(f, "revoke latency", &self.wait_latency)?;
        latency_line(f, "deferred latency", &self.deferred_latency)?;
        if self.violations.is_empty() {
            write!(f, "  violations       0")?;
        } else {
            write!(f, "  violations       {}:", self.violation_count())?;
            for (k, n) in &self.violations {
                write!(f, " {k}={n}")?;
            }
            if let Some(t) = self.first_violation {
                let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
                write!(f, " (first after {})", fmt_ns(ns))?;
            }
            for s in &self.samples {
                write!(f, "\n    {s}")?;
            }
        }
        if self.hung {
            write!(f, "\n  HANG: the watchdog fired or a thread did not stop")?;
        }
        write!(
            f,
            "\n  result           {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_and_fail() {
        let mut r = Report::default();
        assert!(r.passed());
        assert!(r.to_string().ends_with("PASS"));
        r.violations = vec![(Kind::Poisoned, 3), (Kind::PipeTooShort, 2)];
        r.samples = vec!["poisoned: x".into()];
        r.first_violation = Some(Duration::from_micros(1500));
        assert_eq!(r.violation_count(), 5);
        assert!(!r.passed());
        let s = r.to_string();
        assert!(
            s.contains("violations       5: poisoned=3 pipe-too-short=2 (first after 1.50ms)"),
            "{s}"
        );
        assert!(s.ends_with("FAIL"));
        let mut r = Report {
            hung: true,
            ..Report::default()
        };
        assert!(!r.passed());
        r.hung = false;
        assert!(r.passed());
    }

    #[test]
    fn latency_and_progress_lines() {
        let mut r = Report::default();
        for v in [1_000, 2_000, 3_000_000] {
            r.wait_latency.record(v);
        }
        let s = r.to_string();
        assert!(s.contains("revoke latency   n=3 p50=2.05µs"), "{s}");
        assert!(s.contains("max=3.00ms"), "{s}");
        assert!(s.contains("deferred latency none"), "{s}");
        let p = Progress {
            elapsed: Duration::from_secs(3),
            duration: Duration::from_secs(20),
            ..Default::default()
        };
        assert!(p.to_string().starts_with("torture:    3/20s accesses 0"));
    }
}
