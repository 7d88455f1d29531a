//! Order statistics of repeated measurements: median, percentiles, spread.
//!
//! Benchmarks report medians of repeated runs (robust to a run disturbed by another process)
//! with the spread beside them, so a reader can judge how noisy a figure is.

/// Summary of a set of samples (ns, or ns/op).
///
/// # Invariants
/// `min <= p50 == median <= p99 <= max`, all finite, and `count >= 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median (mean of the two middle samples for an even count).
    pub median: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples`; `None` if there are none or one is not finite.
    ///
    /// ```
    /// use revocable_bench::Summary;
    /// let s = Summary::from_samples(&[3.0, 1.0, 2.0, 10.0]).unwrap();
    /// assert_eq!(s.median, 2.5);
    /// assert_eq!((s.min, s.max), (1.0, 10.0));
    /// assert!(Summary::from_samples(&[]).is_none());
    /// ```
    pub fn from_samples(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            count: n,
            min: v[0],
            median,
            p99: percentile_sorted(&v, 99.0),
            max: v[n - 1],
            mean: v.iter().sum::<f64>() / n as f64,
        })
    }

    /// `(max - min) / median` in percent: how far apart the repeated runs were.
    pub fn spread_pct(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median * 100.0
        } else {
            0.0
        }
    }
}

/// Nearest-rank percentile `p` (0..=100) of an ascending, non-empty slice.
///
/// ```
/// let v: Vec<f64> = (1..=100).map(f64::from).collect();
/// assert_eq!(revocable_bench::stats::percentile_sorted(&v, 99.0), 99.0);
/// assert_eq!(revocable_bench::stats::percentile_sorted(&v, 100.0), 100.0);
/// assert_eq!(revocable_bench::stats::percentile_sorted(&v, 0.0), 1.0);
/// ```
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    assert!(n > 0, "percentile of no samples");
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Formats a duration given in nanoseconds with a unit that keeps 3 significant digits.
///
/// ```
/// use revocable_bench::stats::fmt_ns;
/// assert_eq!(fmt_ns(1.234), "1.23 ns");
/// assert_eq!(fmt_ns(45_600.0), "45.6 us");
/// assert_eq!(fmt_ns(2_500_000.0), "2.50 ms");
/// ```
pub fn fmt_ns(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "us")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// Formats a ratio with two significant digits at least (`0.012x`, `0.45x`, `3.2x`, `41x`).
///
/// ```
/// use revocable_bench::stats::fmt_ratio;
/// assert_eq!(fmt_ratio(0.0123), "0.012x");
/// assert_eq!(fmt_ratio(0.456), "0.46x");
/// assert_eq!(fmt_ratio(3.21), "3.2x");
/// assert_eq!(fmt_ratio(41.2), "41x");
/// ```
pub fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}x")
    } else if r >= 1.0 {
        format!("{r:.1}x")
    } else if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.3}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_medians() {
        assert_eq!(Summary::from_samples(&[5.0]).unwrap().median, 5.0);
        assert_eq!(Summary::from_samples(&[9.0, 1.0, 5.0]).unwrap().median, 5.0);
        assert_eq!(
            Summary::from_samples(&[4.0, 1.0, 3.0, 2.0]).unwrap().median,
            2.5
        );
    }

    #[test]
    fn p99_and_spread() {
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        v.reverse();
        let s = Summary::from_samples(&v).unwrap();
        assert_eq!(s.p99, 198.0);
        assert_eq!(s.count, 200);
        assert_eq!(s.mean, 100.5);
        let s = Summary::from_samples(&[9.0, 10.0, 11.0]).unwrap();
        assert!((s.spread_pct() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_non_finite() {
        assert!(Summary::from_samples(&[1.0, f64::NAN]).is_none());
        assert!(Summary::from_samples(&[f64::INFINITY]).is_none());
    }
}
