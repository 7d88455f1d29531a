//! [`Kind`]: the primitives by name, dispatching to the monomorphised measurement loops.
//!
//! Command-line tools pick primitives at run time; this enum turns a choice into a call of the
//! generic harness on the concrete type, so no dynamic dispatch enters a timed loop.

use std::fmt;
use std::str::FromStr;

use revocable::Revocable;

use crate::harness::{
    measure_read, measure_update, measure_wakeup, ReadConfig, ReadResult, UpdateConfig,
    WakeupConfig,
};
use crate::stats::Summary;
use crate::{
    ArcSwapLoad, EpochPin, OursPool, OursSendPool, PerSlot, ReadSide, Rundown, UpdateSide,
};

/// One of the measured primitives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Revocable::try_access` + drop; update: `revoke()`.
    Ours,
    /// `std::sync::RwLock::read`; update: `write()`.
    StdRwLock,
    /// `parking_lot::RwLock::read`; update: `write()`.
    ParkingLotRwLock,
    /// A shared-atomic rundown counter ([`Rundown`]).
    Rundown,
    /// Per-thread padded counters ([`PerSlot`]).
    PerSlot,
    /// `crossbeam_epoch::pin()` ([`EpochPin`]).
    EpochPin,
    /// `arc_swap::ArcSwap::load` ([`ArcSwapLoad`]).
    ArcSwap,
    /// `Revocable::try_access_send` + drop (a Send guard); update: `revoke()` ([`OursSendPool`]).
    OursSend,
    /// `tokio::sync::RwLock::try_read` + drop; update: `blocking_write()`.
    TokioRwLock,
}

impl Kind {
    /// Every primitive, ours first.
    pub const ALL: [Kind; 9] = [
        Kind::Ours,
        Kind::StdRwLock,
        Kind::ParkingLotRwLock,
        Kind::Rundown,
        Kind::PerSlot,
        Kind::EpochPin,
        Kind::ArcSwap,
        Kind::OursSend,
        Kind::TokioRwLock,
    ];

    /// Display name (as in tables and charts).
    ///
    /// ```
    /// assert_eq!(revocable_bench::Kind::StdRwLock.name(), "std RwLock");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => <Revocable<u64> as ReadSide>::NAME,
            Kind::StdRwLock => <std::sync::RwLock<u64> as ReadSide>::NAME,
            Kind::ParkingLotRwLock => <parking_lot::RwLock<u64> as ReadSide>::NAME,
            Kind::Rundown => Rundown::NAME,
            Kind::PerSlot => PerSlot::NAME,
            Kind::EpochPin => EpochPin::NAME,
            Kind::ArcSwap => ArcSwapLoad::NAME,
            Kind::OursSend => OursSendPool::NAME,
            Kind::TokioRwLock => <tokio::sync::RwLock<u64> as ReadSide>::NAME,
        }
    }

    /// Short key accepted on command lines (`FromStr`).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::StdRwLock => "std-rwlock",
            Kind::ParkingLotRwLock => "parking-lot",
            Kind::Rundown => "rundown",
            Kind::PerSlot => "per-slot",
            Kind::EpochPin => "epoch",
            Kind::ArcSwap => "arc-swap",
            Kind::OursSend => "ours-send",
            Kind::TokioRwLock => "tokio-rwlock",
        }
    }

    /// Whether the update operation waits for readers (a revoke); `false` for publish-and-defer.
    pub fn waits_for_readers(self) -> bool {
        match self {
            Kind::Ours => OursPool::WAITS_FOR_READERS,
            Kind::StdRwLock => <std::sync::RwLock<u64> as UpdateSide>::WAITS_FOR_READERS,
            Kind::ParkingLotRwLock => <parking_lot::RwLock<u64> as UpdateSide>::WAITS_FOR_READERS,
            Kind::Rundown => Rundown::WAITS_FOR_READERS,
            Kind::PerSlot => PerSlot::WAITS_FOR_READERS,
            Kind::EpochPin => EpochPin::WAITS_FOR_READERS,
            Kind::ArcSwap => ArcSwapLoad::WAITS_FOR_READERS,
            Kind::OursSend => OursSendPool::WAITS_FOR_READERS,
            Kind::TokioRwLock => <tokio::sync::RwLock<u64> as UpdateSide>::WAITS_FOR_READERS,
        }
    }

    /// Read-side cost, see [`measure_read`].
    pub fn measure_read(self, cfg: &ReadConfig) -> ReadResult {
        match self {
            Kind::Ours => measure_read::<Revocable<u64>>(cfg),
            Kind::StdRwLock => measure_read::<std::sync::RwLock<u64>>(cfg),
            Kind::ParkingLotRwLock => measure_read::<parking_lot::RwLock<u64>>(cfg),
            Kind::Rundown => measure_read::<Rundown>(cfg),
            Kind::PerSlot => measure_read::<PerSlot>(cfg),
            Kind::EpochPin => measure_read::<EpochPin>(cfg),
            Kind::ArcSwap => measure_read::<ArcSwapLoad>(cfg),
            Kind::OursSend => measure_read::<OursSendPool>(cfg),
            Kind::TokioRwLock => measure_read::<tokio::sync::RwLock<u64>>(cfg),
        }
    }

    /// Update latency, see [`measure_update`].
    pub fn measure_update(self, cfg: &UpdateConfig) -> Summary {
        match self {
            Kind::Ours => measure_update::<OursPool>(cfg),
            Kind::StdRwLock => measure_update::<std::sync::RwLock<u64>>(cfg),
            Kind::ParkingLotRwLock => measure_update::<parking_lot::RwLock<u64>>(cfg),
            Kind::Rundown => measure_update::<Rundown>(cfg),
            Kind::PerSlot => measure_update::<PerSlot>(cfg),
            Kind::EpochPin => measure_update::<EpochPin>(cfg),
            Kind::ArcSwap => measure_update::<ArcSwapLoad>(cfg),
            Kind::OursSend => measure_update::<OursSendPool>(cfg),
            Kind::TokioRwLock => measure_update::<tokio::sync::RwLock<u64>>(cfg),
        }
    }

    /// Wake-up latency (see [`measure_wakeup`]); `None` for primitives whose update does not
    /// wait for readers.
    pub fn measure_wakeup(self, cfg: &WakeupConfig) -> Option<Summary> {
        Some(match self {
            Kind::Ours => measure_wakeup::<OursPool>(cfg),
            Kind::StdRwLock => measure_wakeup::<std::sync::RwLock<u64>>(cfg),
            Kind::ParkingLotRwLock => measure_wakeup::<parking_lot::RwLock<u64>>(cfg),
            Kind::Rundown => measure_wakeup::<Rundown>(cfg),
            Kind::PerSlot => measure_wakeup::<PerSlot>(cfg),
            Kind::OursSend => measure_wakeup::<OursSendPool>(cfg),
            Kind::TokioRwLock => measure_wakeup::<tokio::sync::RwLock<u64>>(cfg),
            Kind::EpochPin | Kind::ArcSwap => return None,
        })
    }
}

/// Read-side cost of several primitives at several thread counts, measured in interleaved
/// rounds: each round measures every (primitive, thread count) pair once with `cfg` (whose
/// `runs` is the number of runs per pair and round, usually 1), so that a change of machine load
/// during the measurement hits every primitive alike instead of skewing one of them.
///
/// Returns `result[kind][threads]`, whose `per_run` holds one figure per round and run (the
/// median over each round's runs is not taken: every run counts) and whose `summary` is over all
/// of them. `progress` is called after each measurement with (round, kind, threads, result).
///
/// ```
/// use revocable_bench::{kind::measure_read_interleaved, Kind, ReadConfig};
/// use std::time::Duration;
/// let cfg = ReadConfig { runs: 1, run_time: Duration::from_millis(2),
///                        warmup: Duration::from_millis(1), ..ReadConfig::default() };
/// let r = measure_read_interleaved(&[Kind::Ours, Kind::Rundown], &[1, 2], 3, &cfg, |_, _, _, _| {});
/// assert_eq!(r[1][1].threads, 2);
/// assert_eq!(r[1][1].per_run.len(), 3);
/// ```
pub fn measure_read_interleaved(
    kinds: &[Kind],
    threads: &[usize],
    rounds: usize,
    cfg: &ReadConfig,
    mut progress: impl FnMut(usize, Kind, usize, &ReadResult),
) -> Vec<Vec<ReadResult>> {
    let mut acc: Vec<Vec<Option<ReadResult>>> =
        kinds.iter().map(|_| vec![None; threads.len()]).collect();
    for round in 0..rounds.max(1) {
        for (ki, &kind) in kinds.iter().enumerate() {
            for (ti, &t) in threads.iter().enumerate() {
                let r = kind.measure_read(&ReadConfig {
                    threads: t,
                    ..cfg.clone()
                });
                progress(round, kind, t, &r);
                let slot = &mut acc[ki][ti];
                match slot {
                    None => *slot = Some(r),
                    Some(a) => {
                        a.per_run.extend_from_slice(&r.per_run);
                        a.pinned &= r.pinned;
                        a.failed_enters += r.failed_enters;
                        a.iters_per_run = a.iters_per_run.min(r.iters_per_run);
                    }
                }
            }
        }
    }
    acc.into_iter()
        .map(|row| {
            row.into_iter()
                .flatten()
                .map(|mut r| {
                    r.summary = Summary::from_samples(&r.per_run).expect("at least one finite run");
                    r
                })
                .collect()
        })
        .collect()
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown primitive name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = Kind::ALL.iter().map(|k| k.key()).collect();
        write!(
            f,
            "unknown primitive `{}` (expected one of: {})",
            self.0,
            keys.join(", ")
        )
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;
    /// Parses a [`Kind::key`] (case-insensitive).
    ///
    /// ```
    /// use revocable_bench::Kind;
    /// assert_eq!("Per-Slot".parse::<Kind>(), Ok(Kind::PerSlot));
    /// assert!("mutex".parse::<Kind>().unwrap_err().to_string().contains("expected one of"));
    /// ```
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.key().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_rounds_collect_every_pair() {
        let cfg = ReadConfig {
            runs: 2,
            run_time: std::time::Duration::from_millis(1),
            warmup: std::time::Duration::from_millis(1),
            ..ReadConfig::default()
        };
        let mut calls = Vec::new();
        let r = measure_read_interleaved(
            &[Kind::PerSlot, Kind::ArcSwap],
            &[1, 3],
            2,
            &cfg,
            |round, k, t, _| calls.push((round, k, t)),
        );
        assert_eq!(calls.len(), 8);
        assert_eq!(calls[0], (0, Kind::PerSlot, 1));
        assert_eq!(
            calls[4],
            (1, Kind::PerSlot, 1),
            "round 2 starts after every pair of round 1"
        );
        assert_eq!(r.len(), 2);
        for row in &r {
            assert_eq!(
                row.iter().map(|x| x.threads).collect::<Vec<_>>(),
                vec![1, 3]
            );
            for x in row {
                assert_eq!((x.per_run.len(), x.summary.count), (4, 4));
            }
        }
    }

    #[test]
    fn keys_round_trip_and_names_are_distinct() {
        for k in Kind::ALL {
            assert_eq!(k.key().parse::<Kind>(), Ok(k));
        }
        let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
    }

    #[test]
    fn only_waiting_updates_have_a_wakeup_latency() {
        let cfg = WakeupConfig {
            samples: 2,
            warmup_samples: 0,
            ..WakeupConfig::default()
        };
        for k in Kind::ALL {
            assert_eq!(
                k.measure_wakeup(&cfg).is_some(),
                k.waits_for_readers(),
                "{k}"
            );
        }
    }
}
