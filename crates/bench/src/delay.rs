//! A calibrated busy-wait for the optional in-section delay (refscale's `readdelay`).
//!
//! Reading a clock inside the section would cost more than the sections being measured, so the
//! delay is a spin loop whose iteration count per nanosecond is calibrated once.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A spin delay of a fixed length.
///
/// # Invariants
/// `iters` is the number of loop iterations calibrated to take about the requested time; 0 means
/// no delay at all (the loop is skipped).
#[derive(Clone, Copy, Debug)]
pub struct Delay {
    iters: u64,
}

impl Delay {
    /// No delay.
    pub const NONE: Delay = Delay { iters: 0 };

    /// A delay of about `ns` nanoseconds (calibrated on this machine; takes ~10 ms once).
    ///
    /// ```
    /// let d = revocable_bench::delay::Delay::calibrated(1_000);
    /// let t = std::time::Instant::now();
    /// for _ in 0..1000 { d.spin(); }
    /// assert!(t.elapsed() >= std::time::Duration::from_micros(100));
    /// ```
    pub fn calibrated(ns: u64) -> Delay {
        if ns == 0 {
            return Delay::NONE;
        }
        let per_ns = iterations_per_ns();
        Delay {
            iters: ((ns as f64 * per_ns).round() as u64).max(1),
        }
    }

    /// Spins for the calibrated time.
    #[inline(always)]
    pub fn spin(&self) {
        if self.iters != 0 {
            spin_iters(self.iters);
        }
    }

    /// Number of loop iterations per delay.
    pub fn iterations(&self) -> u64 {
        self.iters
    }
}

#[inline(never)]
fn spin_iters(n: u64) {
    let mut i = 0u64;
    while i < black_box(n) {
        i += 1;
        black_box(i);
    }
}

/// Calibrated loop iterations per nanosecond (best of a few tries, cached).
fn iterations_per_ns() -> f64 {
    static CACHE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *CACHE.get_or_init(|| {
        // Many short tries, best one kept: a try that was preempted or ran on a busy core only
        // makes itself slower, never the result.
        let n = 1u64 << 16;
        let mut best = Duration::MAX;
        for _ in 0..40 {
            let t = Instant::now();
            spin_iters(n);
            best = best.min(t.elapsed());
        }
        n as f64 / (best.as_nanos().max(1) as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_delay_and_longer_delays_take_longer() {
        assert_eq!(Delay::calibrated(0).iterations(), 0);
        let short = Delay::calibrated(100);
        let long = Delay::calibrated(10_000);
        assert!(long.iterations() > short.iterations());
        let t = Instant::now();
        for _ in 0..100 {
            long.spin();
        }
        // 100 x 10 us: at least ~half of 1 ms even if calibration ran on a busy core.
        assert!(
            t.elapsed() >= Duration::from_micros(500),
            "{:?}",
            t.elapsed()
        );
    }
}
