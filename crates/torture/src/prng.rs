//! A small, seedable pseudo-random number generator and per-thread streams.
//!
//! Every random choice of a torture run (which resource, how long to hold, which revoke flavour)
//! comes from an [`Rng`] derived from the run's seed with [`Rng::stream`], one stream per thread and
//! role. The same seed therefore gives every thread the same *sequence of choices*; the interleaving
//! of threads is up to the scheduler, as in rcutorture.
//!
//! The generator is xoshiro256++ (Blackman and Vigna), seeded through SplitMix64 so that nearby seeds
//! give unrelated streams.
//!
//! # Invariants
//! The xoshiro state is never all zero (SplitMix64 seeding cannot produce four zero words in a row
//! for any input; [`Rng::from_state`] replaces an all-zero state by a fixed non-zero one).

/// SplitMix64: a 64-bit mixing generator, used to expand a seed into generator states.
///
/// ```
/// use revocable_torture::prng::SplitMix64;
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Roles of the threads of a run: each role gets its own family of streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Role {
    /// A reader thread (index = reader number).
    Reader = 1,
    /// A revoker thread (index = revoker number).
    Revoker = 2,
    /// The shared choices of a gang of racing revokers (index = gang number).
    Gang = 3,
    /// An async holder task (index = task number).
    AsyncHolder = 4,
}

/// xoshiro256++: fast, small state, good statistical quality; not cryptographic.
///
/// ```
/// use revocable_torture::prng::{Rng, Role};
/// let mut r = Rng::stream(42, Role::Reader, 0);
/// let x = r.below(10);
/// assert!(x < 10);
/// // The same seed, role and index give the same sequence.
/// assert_eq!(Rng::stream(42, Role::Reader, 0).below(10), x);
/// ```
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is expanded from `seed` by SplitMix64.
    pub fn new(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        Self::from_state([sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()])
    }

    /// A generator with exactly this state (an all-zero state, which would only produce zeros, is
    /// replaced by a fixed non-zero one).
    pub fn from_state(s: [u64; 4]) -> Self {
        if s == [0; 4] {
            return Self::new(0);
        }
        Self { s }
    }

    /// The stream of thread `index` in `role` for a run seeded with `seed`. Distinct (role, index)
    /// pairs give unrelated streams; the same triple always gives the same stream.
    pub fn stream(seed: u64, role: Role, index: u64) -> Self {
        // Mix the run seed first, then fold in the role and index and mix again, so that
        // (seed, role, index) triples that differ in one bit give unrelated states.
        let base = SplitMix64::new(seed).next_u64();
        let tag = ((role as u64) << 56) ^ index;
        Self::new(base ^ SplitMix64::new(tag).next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform value in `0..n` (Lemire's multiply-and-reject, no modulo bias). `below(0)` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform value in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// True with probability `percent`/100 (values above 100 count as 100).
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent.min(100))
    }

    /// True with probability `percent` / 100 (fractions allowed; clamped to 0..=100).
    pub fn chance(&mut self, percent: f64) -> bool {
        let p = (percent / 100.0).clamp(0.0, 1.0);
        // 2^64 · p, saturating at u64::MAX for p = 1.
        (self.next_u64() as f64) < p * 18_446_744_073_709_551_616.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference outputs of SplitMix64 seeded with 1234567 (from the published C code).
        let mut sm = SplitMix64::new(1_234_567);
        assert_eq!(sm.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(sm.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(sm.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn xoshiro_reference_values() {
        // xoshiro256++ with state [1, 2, 3, 4]: reference outputs of the published C code.
        let mut r = Rng::from_state([1, 2, 3, 4]);
        assert_eq!(r.next_u64(), 41_943_041);
        assert_eq!(r.next_u64(), 58_720_359);
        assert_eq!(r.next_u64(), 3_588_806_011_781_223);
    }

    #[test]
    fn same_seed_same_stream() {
        for role in [Role::Reader, Role::Revoker, Role::Gang] {
            for index in 0..4 {
                let a: Vec<u64> = {
                    let mut r = Rng::stream(99, role, index);
                    (0..64).map(|_| r.next_u64()).collect()
                };
                let mut r = Rng::stream(99, role, index);
                let b: Vec<u64> = (0..64).map(|_| r.next_u64()).collect();
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn distinct_streams_differ() {
        let mut firsts = std::collections::HashSet::new();
        for seed in [0, 1, 2, u64::MAX] {
            for role in [Role::Reader, Role::Revoker, Role::Gang] {
                for index in 0..16 {
                    assert!(
                        firsts.insert(Rng::stream(seed, role, index).next_u64()),
                        "stream collision at seed {seed} {role:?} {index}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_state_is_replaced() {
        let mut r = Rng::from_state([0; 4]);
        assert!((0..4).any(|_| r.next_u64() != 0));
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Rng::new(5);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let x = r.below(10);
            assert!(x < 10);
            counts[x as usize] += 1;
        }
        for c in counts {
            // Expected 10_000 each; 5 standard deviations is about 475.
            assert!((9_500..=10_500).contains(&c), "counts {counts:?}");
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn range_and_percent_edges() {
        let mut r = Rng::new(8);
        for _ in 0..1000 {
            let x = r.range_inclusive(3, 5);
            assert!((3..=5).contains(&x));
        }
        assert_eq!(r.range_inclusive(7, 7), 7);
        assert_eq!(r.range_inclusive(9, 2), 9);
        let _ = r.range_inclusive(0, u64::MAX);
        assert!((0..1000).all(|_| !r.percent(0)));
        assert!((0..1000).all(|_| r.percent(100)));
        assert!((0..1000).all(|_| r.percent(250)));
        let hits = (0..100_000).filter(|_| r.percent(30)).count();
        assert!((29_000..=31_000).contains(&hits), "{hits}");
    }
}
