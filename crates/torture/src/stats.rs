//! Latency statistics: a log-linear histogram with bounded relative error, mergeable across threads.
//!
//! Values (nanoseconds) below 16 are counted exactly; above, each power of two is split into 8
//! sub-buckets, so a reported percentile is within 12.5 % above the true one (it reports the
//! bucket's upper bound, clamped to the exact maximum). Memory is fixed (496 buckets) whatever the
//! run length, so an hours-long torture does not grow.
//!
//! # Invariants
//! `count` is the sum of `buckets`; `min`/`max`/`sum` are exact over the recorded values
//! (`min == u64::MAX` and `max == 0` when empty).

use std::fmt;
use std::time::Duration;

const EXACT: u64 = 16; // values 0..16 have a bucket each
const SUB_BITS: u32 = 3; // 8 sub-buckets per power of two
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = EXACT as usize + (64 - 4) * SUB;

/// A latency histogram (values in nanoseconds).
///
/// ```
/// use revocable_torture::stats::Histogram;
/// let mut h = Histogram::new();
/// for v in 1..=100 { h.record(v); }
/// assert_eq!(h.count(), 100);
/// assert_eq!(h.max(), 100);
/// let p50 = h.percentile(50.0);
/// assert!((50..=57).contains(&p50)); // within 12.5 % above the true median
/// ```
#[derive(Clone)]
pub struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 4
    let sub = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    EXACT as usize + (e as usize - 4) * SUB + sub
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < EXACT as usize {
        return i as u64;
    }
    let j = i - EXACT as usize;
    let e = (j / SUB) as u32 + 4;
    let sub = (j % SUB) as u64;
    let lo = (1u64 << e) + (sub << (e - SUB_BITS));
    lo + ((1u64 << (e - SUB_BITS)) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Counts one value (nanoseconds).
    pub fn record(&mut self, v: u64) {
        self.buckets[index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Counts one duration, saturating at `u64::MAX` nanoseconds.
    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds every value counted by `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += *b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Number of values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value counted (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Smallest value counted (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// Mean of the values counted (0 when empty).
    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / u128::from(self.count)) as u64
        }
    }

    /// The `p`-th percentile (`p` in 0..=100, clamped): the smallest bucket bound below which at
    /// least `p` % of the values fall, never above the exact maximum. 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let p = if p.is_nan() {
            100.0
        } else {
            p.clamp(0.0, 100.0)
        };
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

/// Formats nanoseconds with a unit that keeps 3 significant digits (`850ns`, `12.3µs`, `4.56ms`).
///
/// ```
/// use revocable_torture::stats::fmt_ns;
/// assert_eq!(fmt_ns(850), "850ns");
/// assert_eq!(fmt_ns(12_345), "12.3µs");
/// assert_eq!(fmt_ns(4_560_000), "4.56ms");
/// assert_eq!(fmt_ns(2_000_000_000), "2.00s");
/// ```
pub fn fmt_ns(ns: u64) -> String {
    let f = ns as f64;
    let (v, unit) = if ns < 1_000 {
        return format!("{ns}ns");
    } else if ns < 1_000_000 {
        (f / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        (f / 1e6, "ms")
    } else {
        (f / 1e9, "s")
    };
    if v < 10.0 {
        format!("{v:.2}{unit}")
    } else if v < 100.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        assert_eq!(index(0), 0);
        assert_eq!(index(15), 15);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(upper(BUCKETS - 1), u64::MAX);
        for i in 0..BUCKETS - 1 {
            // The next bucket starts right after this one ends.
            assert_eq!(index(upper(i)), i, "bucket {i}");
            assert_eq!(index(upper(i) + 1), i + 1, "bucket {i}");
        }
    }

    #[test]
    fn relative_error_is_bounded() {
        let mut r = crate::prng::Rng::new(3);
        for _ in 0..100_000 {
            let v = r.next_u64() >> r.below(64);
            let u = upper(index(v));
            assert!(u >= v);
            assert!((u - v) as f64 <= v as f64 / 8.0 + 1.0, "{v} -> {u}");
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in [3, 1, 2, 2, 9] {
            h.record(v);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 9);
        assert_eq!(h.mean(), 3);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.percentile(20.0), 1);
        assert_eq!(h.percentile(50.0), 2);
        assert_eq!(h.percentile(80.0), 3);
        assert_eq!(h.percentile(100.0), 9);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for p in [1.0, 10.0, 50.0, 90.0, 99.0, 99.9] {
            let truth = (p / 100.0 * 100_000.0) as u64 * 1000;
            let got = h.percentile(p);
            assert!(
                got >= truth && got as f64 <= truth as f64 * 1.125,
                "p{p}: {got} vs {truth}"
            );
        }
        assert_eq!(h.percentile(100.0), 100_000_000);
        assert_eq!(h.max(), 100_000_000);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut r = crate::prng::Rng::new(11);
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for i in 0..10_000 {
            let v = r.below(1 << 30);
            all.record(v);
            if i % 3 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!(a.max(), all.max());
        assert_eq!(a.min(), all.min());
        assert_eq!(a.mean(), all.mean());
        for p in [50.0, 90.0, 99.0, 99.99] {
            assert_eq!(a.percentile(p), all.percentile(p));
        }
    }

    #[test]
    fn empty_and_odd_inputs() {
        let h = Histogram::new();
        assert_eq!((h.count(), h.max(), h.min(), h.mean()), (0, 0, 0, 0));
        assert_eq!(h.percentile(50.0), 0);
        let mut h = Histogram::new();
        h.record_duration(Duration::MAX);
        h.record(7);
        assert_eq!(h.max(), u64::MAX);
        assert_eq!(h.percentile(f64::NAN), u64::MAX);
        assert_eq!(h.percentile(-5.0), 7);
    }
}
