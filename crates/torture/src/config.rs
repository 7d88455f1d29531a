//! Parameters of a torture run, with their validation.
//!
//! # Invariants
//! A [`Config`] that passed [`Config::validate`] describes a run that can start: at least one reader,
//! revoker and resource, racers between 1 and the revoker count, bounded hold times and percentages.

use std::fmt;
use std::time::Duration;

/// Upper bound of `hold_max` (a longer hold only makes the run slower, never more thorough).
pub const HOLD_MAX_LIMIT: Duration = Duration::from_secs(1);
/// Upper bound of nesting depth.
pub const NEST_LIMIT: usize = 16;
/// Upper bound of thread counts (readers, revokers) without oversubscription checks.
pub const THREAD_LIMIT: usize = 4096;
/// Upper bound of resources.
pub const RESOURCE_LIMIT: usize = 1 << 20;

/// The parameters of one run.
///
/// ```
/// use revocable_torture::Config;
/// let mut c = Config::for_cores(2);
/// assert_eq!(c.readers, 4); // 2 per core
/// c.readers = 64;
/// assert!(c.validate().is_err()); // more than 2 per core needs `oversubscribe`
/// c.oversubscribe = true;
/// assert!(c.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// How long to run.
    pub duration: Duration,
    /// Reader threads.
    pub readers: usize,
    /// Revoker threads.
    pub revokers: usize,
    /// Revokers racing on one resource at a time (revokers are split in gangs of this size).
    pub racers: usize,
    /// Resources alive at any time (each revoked one is replaced by a fresh one).
    pub resources: usize,
    /// Longest hold of a guard (busy-wait or sleep); holds are uniform in `0..=hold_max`.
    pub hold_max: Duration,
    /// Percentage of holds that sleep instead of busy-waiting.
    pub sleep_percent: u32,
    /// Percentage of accesses that hold the guard at all (the others drop it at once; a
    /// fraction is fine, e.g. 0.2). rcutorture's model: mostly short readers, occasional long
    /// (busy or sleeping) ones.
    pub hold_percent: f64,
    /// Deepest nesting of guards in one reader (same resource or several).
    pub nest_max: usize,
    /// Largest batch a revoker builds (`RevokeBatch`: the gang's target plus random other
    /// resources, duplicates allowed); 1 disables batches.
    pub batch_max: usize,
    /// Async holders: tokio tasks on a 2-worker multi-thread runtime that take Send guards and
    /// hold them across yields and sleeps (migrating between workers); 0 disables them.
    pub async_holders: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// A revoke call running longer than this is a hang: reported, and the run fails.
    pub stall: Duration,
    /// Allow more than 2 readers per core.
    pub oversubscribe: bool,
    /// Cores of the machine (for the oversubscription check).
    pub cores: usize,
    /// Interval of the progress callback.
    pub progress_interval: Duration,
}

/// Why a [`Config`] cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A count that must be at least 1 is 0.
    Zero(&'static str),
    /// A value is above its limit.
    TooLarge {
        /// Name of the parameter.
        what: &'static str,
        /// Its value.
        value: u128,
        /// The largest accepted value.
        limit: u128,
    },
    /// More readers than 2 per core without `oversubscribe`.
    Oversubscribed {
        /// Readers asked for.
        readers: usize,
        /// Cores of the machine.
        cores: usize,
    },
    /// The stall bound is not above twice the longest legitimate hold (`nest_max` × `hold_max`): a
    /// correct implementation could be reported as hung.
    StallTooShort {
        /// The stall bound.
        stall: Duration,
        /// The longest legitimate hold.
        longest_hold: Duration,
    },
    /// A percentage (fractions allowed) outside 0..=100, or not a number.
    NotAPercentage {
        /// Name of the parameter.
        what: &'static str,
        /// Its value, as given.
        value: String,
    },
    /// `racers` is larger than `revokers`.
    RacersAboveRevokers {
        /// Racers asked for.
        racers: usize,
        /// Revokers asked for.
        revokers: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zero(what) => write!(f, "{what} must be at least 1"),
            Self::NotAPercentage { what, value } => {
                write!(f, "{what} must be a percentage from 0 to 100, not {value}")
            }
            Self::TooLarge { what, value, limit } => {
                write!(f, "{what} is {value}, above the limit of {limit}")
            }
            Self::Oversubscribed { readers, cores } => write!(
                f,
                "{readers} readers on {cores} cores is more than 2 per core; \
                 pass --oversubscribe to allow it"
            ),
            Self::StallTooShort {
                stall,
                longest_hold,
            } => write!(
                f,
                "stall bound of {} ms is not above twice the longest hold a reader may make \
                 (nest-max × hold-max-us = {} µs); raise --stall-ms",
                stall.as_millis(),
                longest_hold.as_micros()
            ),
            Self::RacersAboveRevokers { racers, revokers } => write!(
                f,
                "{racers} racers per resource but only {revokers} revokers; \
                 racers must be at most the revoker count"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The defaults for a machine with `cores` cores: 2 readers per core, 4 revokers in gangs of 2,
    /// 16 resources, holds up to 200 µs (10 % sleeping), nesting up to 3, 10 s, stall bound 5 s.
    pub fn for_cores(cores: usize) -> Self {
        let cores = cores.max(1);
        Self {
            duration: Duration::from_secs(10),
            readers: 2 * cores,
            revokers: 4,
            racers: 2,
            resources: 16,
            hold_max: Duration::from_micros(200),
            sleep_percent: 10,
            hold_percent: 0.2,
            nest_max: 3,
            batch_max: 8,
            async_holders: 8,
            seed: 1,
            stall: Duration::from_secs(5),
            oversubscribe: false,
            cores,
            progress_interval: Duration::from_secs(1),
        }
    }

    /// The defaults for this machine (see [`Config::for_cores`]).
    pub fn for_this_machine() -> Self {
        Self::for_cores(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The longest a reader may legitimately hold one guard: its whole nest of holds.
    pub fn longest_hold(&self) -> Duration {
        self.hold_max
            .saturating_mul(u32::try_from(self.nest_max).unwrap_or(u32::MAX))
    }

    /// Checks that the run can start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = [
            ("readers", self.readers),
            ("revokers", self.revokers),
            ("racers", self.racers),
            ("resources", self.resources),
            ("nest-max", self.nest_max),
            ("batch-max", self.batch_max),
        ];
        for (what, v) in nonzero {
            if v == 0 {
                return Err(ConfigError::Zero(what));
            }
        }
        if self.duration.is_zero() {
            return Err(ConfigError::Zero("duration"));
        }
        if self.stall.is_zero() {
            return Err(ConfigError::Zero("stall bound"));
        }
        if self.progress_interval.is_zero() {
            return Err(ConfigError::Zero("progress interval"));
        }
        if !(0.0..=100.0).contains(&self.hold_percent) {
            return Err(ConfigError::NotAPercentage {
                what: "hold-percent",
                value: self.hold_percent.to_string(),
            });
        }
        let limits = [
            ("readers", self.readers as u128, THREAD_LIMIT as u128),
            ("revokers", self.revokers as u128, THREAD_LIMIT as u128),
            ("async-holders", self.async_holders as u128, 100_000),
            ("resources", self.resources as u128, RESOURCE_LIMIT as u128),
            ("nest-max", self.nest_max as u128, NEST_LIMIT as u128),
            ("sleep-percent", self.sleep_percent.into(), 100),
            (
                "hold-max-us",
                self.hold_max.as_micros(),
                HOLD_MAX_LIMIT.as_micros(),
            ),
        ];
        for (what, value, limit) in limits {
            if value > limit {
                return Err(ConfigError::TooLarge { what, value, limit });
            }
        }
        if self.racers > self.revokers {
            return Err(ConfigError::RacersAboveRevokers {
                racers: self.racers,
                revokers: self.revokers,
            });
        }
        let longest_hold = self.longest_hold();
        if self.stall <= longest_hold.saturating_mul(2) {
            return Err(ConfigError::StallTooShort {
                stall: self.stall,
                longest_hold,
            });
        }
        if !self.oversubscribe && self.readers > 2 * self.cores.max(1) {
            return Err(ConfigError::Oversubscribed {
                readers: self.readers,
                cores: self.cores,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for cores in [1, 2, 64] {
            Config::for_cores(cores).validate().unwrap();
        }
        assert_eq!(Config::for_cores(0).readers, 2);
    }

    #[test]
    fn each_bad_value_has_its_error() {
        let base = Config::for_cores(2);
        let mut c = base.clone();
        c.readers = 0;
        assert_eq!(c.validate(), Err(ConfigError::Zero("readers")));
        let mut c = base.clone();
        c.duration = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::Zero("duration")));
        let mut c = base.clone();
        c.sleep_percent = 101;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooLarge {
                what: "sleep-percent",
                ..
            })
        ));
        for bad in [-0.5, 100.5, f64::NAN] {
            let mut c = base.clone();
            c.hold_percent = bad;
            assert_eq!(
                c.validate().unwrap_err().to_string(),
                format!("hold-percent must be a percentage from 0 to 100, not {bad}")
            );
        }
        let mut c = base.clone();
        c.hold_percent = 0.05;
        assert!(c.validate().is_ok(), "fractions are fine");
        let mut c = base.clone();
        c.hold_max = Duration::from_secs(2);
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "hold-max-us is 2000000, above the limit of 1000000"
        );
        let mut c = base.clone();
        c.racers = 5;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("racers must be at most"));
        let mut c = base.clone();
        c.hold_max = Duration::from_millis(500);
        c.nest_max = 10;
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "stall bound of 5000 ms is not above twice the longest hold a reader may make \
             (nest-max × hold-max-us = 5000000 µs); raise --stall-ms"
        );
        c.stall = Duration::from_secs(11);
        c.validate().unwrap();
        let mut c = base;
        c.readers = 5;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--oversubscribe"));
        c.oversubscribe = true;
        c.validate().unwrap();
    }
}
