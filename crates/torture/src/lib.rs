//! revocable-torture: the kernel's rcutorture, for [`revocable::Revocable`].
//!
//! Many resources, readers taking (nested) guards with random hold times including sleeps, gangs
//! of revokers racing on one resource with `revoke`, `revoke_deferred` and `revoke_timeout` mixed,
//! resources recycled continuously. What is checked:
//! - while a guard is held, the payload is alive (its `Drop` poisons it) and its drop log is 0;
//! - the *pipe count* of a resource (bumped once, when its first waiting revoke returns) is 0 for
//!   every reader still holding it: a too-short wait shows up as pipe ≥ 1, as in rcutorture;
//! - exactly one revoke call per resource returns `true`; every waiting call returns only after the
//!   drop; after any revoke call returns, `try_access` fails; every revoked payload is dropped once;
//! - a watchdog fails the run if a revoke call exceeds the stall bound, naming the resource and its
//!   holders (the implementation's `RevokeTimeout` display).
//!
//! The checker is generic over [`Subject`], so that deliberately broken implementations
//! ([`broken`], hidden) prove it can fail. All random choices come from one seed ([`prng`]).
//!
//! ```
//! use std::time::Duration;
//! use revocable_torture::{broken::EarlyDrop, torture, Config};
//! let mut cfg = Config::for_cores(2);
//! cfg.duration = Duration::from_millis(500);
//! let report = torture::<EarlyDrop>(&cfg, |_| {}).unwrap();
//! assert!(!report.passed()); // the broken implementation is caught
//! ```

pub mod config;
pub mod payload;
pub mod prng;
pub mod report;
pub mod stats;
pub mod subject;
pub mod violation;

#[doc(hidden)]
pub mod broken;
mod run;

pub use config::{Config, ConfigError};
pub use report::{Progress, Report};
pub use run::torture;
pub use subject::Subject;
