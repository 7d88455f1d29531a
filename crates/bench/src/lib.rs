//! Baselines and a refscale-style measurement harness for [`revocable`].
//!
//! The kernel answers "how much does a read section cost?" with refscale: the same loop of
//! enter + leave over every primitive, N readers started together, warm-up, repeated runs and a
//! cool-down that keeps the load on until the slowest reader is done. This crate does the same
//! for [`revocable::Revocable`] and the primitives a user might hand-roll instead:
//!
//! | [`Kind`] | read section | update side |
//! |---|---|---|
//! | [`Kind::Ours`] | `Revocable::try_access` + drop | `revoke()` (one-shot, a fresh instance each time) |
//! | [`Kind::StdRwLock`] | `std::sync::RwLock::read` | `write()` + drop |
//! | [`Kind::ParkingLotRwLock`] | `parking_lot::RwLock::read` | `write()` + drop |
//! | [`Kind::Rundown`] | [`Rundown::acquire`] (one shared atomic, `EX_RUNDOWN_REF`) | [`Rundown::wait_for_rundown`] |
//! | [`Kind::PerSlot`] | [`PerSlot::enter`] (per-thread padded counters, percpu_ref/SRCU) | [`PerSlot::close_and_wait`] |
//! | [`Kind::EpochPin`] | `crossbeam_epoch::pin()` | swap + `defer_destroy` (does not wait) |
//! | [`Kind::ArcSwap`] | `arc_swap::ArcSwap::load` | `store` (does not wait) |
//! | [`Kind::OursSend`] | `Revocable::try_access_send` + drop (a Send guard) | `revoke()` |
//! | [`Kind::TokioRwLock`] | `tokio::sync::RwLock::try_read` + drop | `blocking_write()` + drop |
//!
//! Every primitive implements [`ReadSide`] (enter a section, leave it by dropping the guard) and,
//! where there is an update operation, [`UpdateSide`]. The harness ([`measure_read`],
//! [`measure_update`], [`measure_wakeup`]) is generic over them, so each loop is monomorphised and
//! the measured cost is the primitive's, not a virtual call's. [`Kind`] picks a primitive at run
//! time, and [`kind::measure_read_interleaved`] measures several of them in interleaved rounds
//! (what `benches/core.rs` and `revocable scale` use). [`chart`] draws the SVG chart.
//!
//! ```
//! use revocable_bench::{measure_read, Kind, ReadConfig};
//! use std::time::Duration;
//!
//! let cfg = ReadConfig {
//!     threads: 1,
//!     runs: 2,
//!     run_time: Duration::from_millis(2),
//!     warmup: Duration::from_millis(1),
//!     ..ReadConfig::default()
//! };
//! let result = Kind::Rundown.measure_read(&cfg);
//! assert!(result.summary.median > 0.0);
//! # let _ = measure_read::<revocable_bench::Rundown>;
//! ```

#![warn(missing_docs)]

pub mod affinity;
pub mod async_wakeup;
pub mod chart;
pub mod date;
pub mod delay;
pub mod harness;
pub mod kind;
pub mod membarrier;
pub mod per_slot;
pub mod primitives;
pub mod rundown;
pub mod stats;
pub mod update_scale;

pub use harness::{
    measure_ns_per_iter, measure_read, measure_update, measure_wakeup, ReadConfig, ReadResult,
    UpdateConfig, WakeupConfig,
};
pub use kind::Kind;
pub use per_slot::PerSlot;
pub use primitives::{ArcSwapLoad, EpochPin, OursPool, OursSendPool};
pub use rundown::Rundown;
pub use stats::Summary;

/// The read side of a primitive: enter a read section, leave it by dropping the guard.
///
/// `enter` returns `None` when the update side has closed the primitive (revoked, run down);
/// a primitive that cannot be closed always returns `Some`.
pub trait ReadSide: Sync + Sized {
    /// Short name used in tables and charts.
    const NAME: &'static str;
    /// Proof of being inside a read section; dropping it leaves the section.
    type Guard<'a>
    where
        Self: 'a;
    /// Builds an instance able to serve at least `updates` calls of [`UpdateSide::update`]
    /// (each followed by [`UpdateSide::rearm`]); read-only uses pass 0.
    fn create(updates: usize) -> Self;
    /// Enters a read section.
    fn enter(&self) -> Option<Self::Guard<'_>>;
}

/// The update side of a primitive: a revoke-like operation.
pub trait UpdateSide: ReadSide {
    /// Whether [`update`](Self::update) returns only after every reader that entered before it
    /// has left (revoke, write lock, rundown). `false` for publish-and-defer primitives
    /// (epoch, arc-swap), whose update cost is shown for information only.
    const WAITS_FOR_READERS: bool;
    /// The revoke-like operation whose latency is measured.
    fn update(&self);
    /// Makes the primitive usable again after `update` (not timed).
    fn rearm(&self) {}
}
