//! Wake-up latency of [`Revocable::revoke_async`]: from the last holder's guard drop to the
//! awaiting task running again, on a tokio current-thread and a multi-thread runtime.
//!
//! The holder is a plain thread (pinned to the second allowed CPU when possible) that takes an
//! owned guard, lets the task start awaiting, sleeps `hold`, takes a timestamp and drops the
//! guard; the task takes a timestamp as soon as `revoke_async().await` returns. The difference is
//! what the issue's target bounds: waker registration, the holder's wake, the runtime's
//! scheduling and the final scan and drop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use revocable::Revocable;

use crate::affinity::{allowed_cpus, pin_index};
use crate::stats::Summary;

/// Which tokio runtime awaits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `new_current_thread()`: the awaiting task runs on the measuring thread.
    CurrentThread,
    /// `new_multi_thread()` with 2 workers.
    MultiThread,
}

impl Flavor {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "current-thread runtime",
            Flavor::MultiThread => "multi-thread runtime",
        }
    }
}

/// Median (and spread) in ns of `samples` wake-ups after `warmup` unmeasured ones.
///
/// ```
/// use revocable_bench::async_wakeup::{measure, Flavor};
/// use std::time::Duration;
/// let s = measure(Flavor::CurrentThread, 5, 1, Duration::from_micros(100));
/// assert_eq!(s.count, 5);
/// ```
pub fn measure(flavor: Flavor, samples: usize, warmup: usize, hold: Duration) -> Summary {
    let samples = samples.max(1);
    let rt = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread().build(),
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build(),
    }
    .expect("a tokio runtime");
    let cpus = allowed_cpus();
    let base = Instant::now();
    let dropped_at = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel::<Option<Arc<Revocable<u64>>>>();
    let holder = {
        let (dropped_at, barrier) = (dropped_at.clone(), barrier.clone());
        std::thread::spawn(move || {
            pin_index(&cpus, 1, true);
            while let Ok(Some(r)) = rx.recv() {
                let g = r.try_access_owned().expect("a fresh resource is live");
                barrier.wait(); // the guard is held: the task may start revoking
                std::thread::sleep(hold);
                // Release: pairs with the task's Acquire load after the await.
                dropped_at.store(base.elapsed().as_nanos() as u64, Ordering::Release);
                drop(g);
            }
        })
    };
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + warmup {
        let r = Arc::new(Revocable::new(i as u64));
        tx.send(Some(r.clone())).expect("holder alive");
        barrier.wait();
        let (r2, dropped_at2) = (r.clone(), dropped_at.clone());
        let task = async move {
            assert!(r2.revoke_async().await);
            let resumed = base.elapsed().as_nanos() as u64;
            resumed.saturating_sub(dropped_at2.load(Ordering::Acquire))
        };
        let ns = match flavor {
            Flavor::CurrentThread => rt.block_on(task),
            Flavor::MultiThread => rt
                .block_on(async { tokio::spawn(task).await })
                .expect("the awaiting task does not panic"),
        };
        if i >= warmup {
            times.push(ns as f64);
        }
    }
    let _ = tx.send(None);
    holder.join().expect("holder thread");
    Summary::from_samples(&times).expect("samples >= 1")
}
