//! The measurement loops: read-side cost at N threads, update latency with 0 or k busy readers,
//! wake-up latency from the last holder's exit to the updater's return, and single-thread
//! per-iteration cost.
//!
//! Read-side runs follow refscale: the readers are started together by a barrier, pinned to
//! CPUs, warmed up, then each run has every reader do the same number of enter+leave pairs
//! (calibrated from the warm-up to last about `run_time`), timing itself; a reader that is done
//! keeps entering and leaving, untimed, until the last one is done (the cool-down), so no reader
//! is ever timed while running alone. The figure of a run is the mean per-thread ns/op; the
//! result is the median over runs with the spread beside it.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::affinity::{allowed_cpus, pin_index};
use crate::delay::Delay;
use crate::stats::Summary;
use crate::{ReadSide, UpdateSide};

/// Configuration of a read-side measurement.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    /// Number of reader threads (at least 1).
    pub threads: usize,
    /// Number of timed runs (at least 1); the result is their median.
    pub runs: usize,
    /// Target duration of one run.
    pub run_time: Duration,
    /// Warm-up before the first run (also used to calibrate the iteration count).
    pub warmup: Duration,
    /// Busy-wait inside each read section, in nanoseconds (0: none).
    pub delay_ns: u64,
    /// Pin reader `i` to the `i`-th allowed CPU.
    pub pin: bool,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            threads: 1,
            runs: 5,
            run_time: Duration::from_millis(200),
            warmup: Duration::from_millis(50),
            delay_ns: 0,
            pin: true,
        }
    }
}

/// Result of a read-side measurement.
#[derive(Clone, Debug)]
pub struct ReadResult {
    /// Number of reader threads.
    pub threads: usize,
    /// Per-thread ns per enter+leave, over the runs (median, spread, ...).
    pub summary: Summary,
    /// The per-run figures, in run order.
    pub per_run: Vec<f64>,
    /// Enter+leave pairs each thread did per run.
    pub iters_per_run: u64,
    /// Whether every reader was pinned to a CPU.
    pub pinned: bool,
    /// Number of `enter` calls that returned `None` (0 unless the primitive was closed).
    pub failed_enters: u64,
}

#[inline(always)]
fn section<P: ReadSide>(p: &P, delay: Delay) -> bool {
    // No `black_box(p)` per call: every primitive's enter/leave is made of atomic operations the
    // compiler may not elide or hoist, and laundering the pointer through the stack on every
    // iteration added the same store-to-load round trip to every primitive (~0.3 ns), which
    // compresses the ratios between them. `read_loop` launders it once.
    match p.enter() {
        Some(g) => {
            delay.spin();
            drop(g);
            true
        }
        None => false,
    }
}

/// `n` enter+leave pairs; returns the number of failed enters.
#[inline(never)]
fn read_loop<P: ReadSide>(p: &P, n: u64, delay: Delay) -> u64 {
    let p = black_box(p);
    let mut failed = 0;
    for _ in 0..n {
        if !section(p, delay) {
            failed += 1;
        }
    }
    failed
}

/// Measures the per-thread cost of one enter+leave of `P` at `cfg.threads` threads.
///
/// ```
/// use revocable_bench::{measure_read, ReadConfig, Rundown};
/// use std::time::Duration;
/// let cfg = ReadConfig { threads: 2, runs: 3, run_time: Duration::from_millis(5),
///                        warmup: Duration::from_millis(2), ..ReadConfig::default() };
/// let r = measure_read::<Rundown>(&cfg);
/// assert_eq!((r.threads, r.per_run.len(), r.failed_enters), (2, 3, 0));
/// ```
pub fn measure_read<P: ReadSide>(cfg: &ReadConfig) -> ReadResult {
    let p = P::create(0);
    let delay = Delay::calibrated(cfg.delay_ns);
    let n = cfg.threads.max(1);
    let runs = cfg.runs.max(1);
    let cpus = allowed_cpus();
    let barrier = Barrier::new(n + 1);
    // Slowest warm-up rate (ns/op as f64 bits), then the calibrated iteration count.
    let warm_ns_per_op = AtomicU64::new(0);
    let iters = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let pinned = AtomicUsize::new(0);
    let failed = AtomicU64::new(0);

    let per_thread: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (p, barrier, cpus) = (&p, &barrier, &cpus);
                let (warm_ns_per_op, iters, finished, pinned, failed) =
                    (&warm_ns_per_op, &iters, &finished, &pinned, &failed);
                s.spawn(move || {
                    if pin_index(cpus, i, cfg.pin) {
                        pinned.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut fails = 0;
                    // Warm-up, all readers together; calibrates the run length.
                    barrier.wait();
                    let t = Instant::now();
                    let mut ops = 0u64;
                    while t.elapsed() < cfg.warmup || ops == 0 {
                        fails += read_loop(p, 256, delay);
                        ops += 256;
                    }
                    let rate = t.elapsed().as_nanos() as f64 / ops as f64;
                    warm_ns_per_op.fetch_max(rate.to_bits(), Ordering::Relaxed);
                    barrier.wait(); // main computes `iters`
                    barrier.wait();
                    let iters = iters.load(Ordering::Relaxed);
                    let mut mine = Vec::with_capacity(runs);
                    for _ in 0..runs {
                        barrier.wait(); // start together
                        let t = Instant::now();
                        fails += read_loop(p, iters, delay);
                        let elapsed = t.elapsed();
                        mine.push(elapsed.as_nanos() as f64 / iters as f64);
                        // Cool-down: keep the load on until every reader is done.
                        finished.fetch_add(1, Ordering::AcqRel);
                        while finished.load(Ordering::Acquire) < n {
                            fails += read_loop(p, 64, delay);
                        }
                        barrier.wait(); // end of run
                    }
                    failed.fetch_add(fails, Ordering::Relaxed);
                    mine
                })
            })
            .collect();
        barrier.wait(); // start warm-up
        barrier.wait(); // warm-up done
                        // Positive f64 bit patterns order like the values, so fetch_max above found the slowest.
        let rate = f64::from_bits(warm_ns_per_op.load(Ordering::Relaxed)).max(0.01);
        let want = (cfg.run_time.as_nanos() as f64 / rate) as u64;
        iters.store(want.max(64), Ordering::Relaxed);
        barrier.wait();
        for _ in 0..runs {
            barrier.wait();
            barrier.wait();
            finished.store(0, Ordering::Release);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });

    let per_run: Vec<f64> = (0..runs)
        .map(|r| per_thread.iter().map(|t| t[r]).sum::<f64>() / n as f64)
        .collect();
    ReadResult {
        threads: n,
        summary: Summary::from_samples(&per_run).expect("runs >= 1 and finite timings"),
        per_run,
        iters_per_run: iters.load(Ordering::Relaxed),
        pinned: pinned.load(Ordering::Relaxed) == n,
        failed_enters: failed.load(Ordering::Relaxed),
    }
}

/// Configuration of an update-side measurement.
#[derive(Clone, Debug)]
pub struct UpdateConfig {
    /// Number of timed updates.
    pub samples: usize,
    /// Untimed updates before them.
    pub warmup_samples: usize,
    /// Reader threads entering and leaving continuously meanwhile (0: none).
    pub holders: usize,
    /// Busy-wait inside each of their read sections, in nanoseconds.
    pub delay_ns: u64,
    /// Pin the updater to the first allowed CPU and holder `i` to the `i+1`-th.
    pub pin: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            samples: 1000,
            warmup_samples: 50,
            holders: 0,
            delay_ns: 0,
            pin: true,
        }
    }
}

/// Measures the latency (ns) of one `update()` of `P`, with `cfg.holders` readers busy
/// entering and leaving read sections. `rearm` between updates is not timed.
///
/// ```
/// use revocable_bench::{measure_update, PerSlot, UpdateConfig};
/// let cfg = UpdateConfig { samples: 20, warmup_samples: 2, holders: 1, ..UpdateConfig::default() };
/// assert_eq!(measure_update::<PerSlot>(&cfg).count, 20);
/// ```
pub fn measure_update<P: UpdateSide>(cfg: &UpdateConfig) -> Summary {
    let samples = cfg.samples.max(1);
    let total = samples + cfg.warmup_samples;
    let p = P::create(total);
    let delay = Delay::calibrated(cfg.delay_ns);
    let cpus = allowed_cpus();
    let stop = AtomicBool::new(false);
    let started = Barrier::new(cfg.holders + 1);
    let active = AtomicUsize::new(0);
    let times = std::thread::scope(|s| {
        for i in 0..cfg.holders {
            let (p, stop, started, cpus, active) = (&p, &stop, &started, &cpus, &active);
            s.spawn(move || {
                pin_index(cpus, i + 1, cfg.pin);
                started.wait();
                let mut announced = false;
                while !stop.load(Ordering::Relaxed) {
                    if section(p, delay) {
                        if !announced {
                            active.fetch_add(1, Ordering::Relaxed);
                            announced = true;
                        }
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        let updater = s.spawn(|| {
            pin_index(&cpus, 0, cfg.pin);
            started.wait();
            // Time nothing until every holder is really reading (or 5 s have passed: a
            // primitive that refuses every reader must not hang the measurement).
            let t = Instant::now();
            while active.load(Ordering::Relaxed) < cfg.holders
                && t.elapsed() < Duration::from_secs(5)
            {
                std::thread::yield_now();
            }
            let mut times = Vec::with_capacity(samples);
            for i in 0..total {
                let t = Instant::now();
                p.update();
                let ns = t.elapsed().as_nanos() as f64;
                p.rearm();
                if i >= cfg.warmup_samples {
                    times.push(ns);
                }
            }
            times
        });
        let times = updater.join();
        stop.store(true, Ordering::Relaxed);
        times.unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    Summary::from_samples(&times).expect("samples >= 1 and finite timings")
}

/// Configuration of a wake-up latency measurement.
#[derive(Clone, Debug)]
pub struct WakeupConfig {
    /// Number of timed samples.
    pub samples: usize,
    /// Untimed samples before them.
    pub warmup_samples: usize,
    /// How long the holder keeps its section after the updater started waiting.
    pub hold: Duration,
    /// Pin the updater and the holder to two different CPUs (where there are two).
    pub pin: bool,
}

impl Default for WakeupConfig {
    fn default() -> Self {
        WakeupConfig {
            samples: 300,
            warmup_samples: 10,
            hold: Duration::from_micros(200),
            pin: true,
        }
    }
}

/// Measures the time (ns) from the last holder leaving its read section to the blocked
/// `update()` returning: a holder enters, the updater starts `update()`, the holder sleeps
/// `cfg.hold`, takes a timestamp and leaves; the updater takes a timestamp when `update()`
/// returns. Only meaningful when `P::WAITS_FOR_READERS`.
///
/// ```
/// use revocable_bench::{measure_wakeup, Rundown, WakeupConfig};
/// use std::time::Duration;
/// let cfg = WakeupConfig { samples: 5, warmup_samples: 1, hold: Duration::from_micros(100),
///                          ..WakeupConfig::default() };
/// assert!(measure_wakeup::<Rundown>(&cfg).median < 1e9);
/// ```
pub fn measure_wakeup<P: UpdateSide>(cfg: &WakeupConfig) -> Summary {
    let samples = cfg.samples.max(1);
    let total = samples + cfg.warmup_samples;
    let p = P::create(total);
    let cpus = allowed_cpus();
    let base = Instant::now();
    let dropped_at = AtomicU64::new(0);
    let barrier = Barrier::new(2);
    let times = std::thread::scope(|s| {
        s.spawn(|| {
            pin_index(&cpus, 1, cfg.pin);
            for _ in 0..total {
                barrier.wait(); // the updater has re-armed
                let g = loop {
                    if let Some(g) = p.enter() {
                        break g;
                    }
                    std::hint::spin_loop();
                };
                barrier.wait(); // entered: the updater may start waiting
                std::thread::sleep(cfg.hold);
                // Release: pairs with the updater's Acquire load after update() returns.
                dropped_at.store(base.elapsed().as_nanos() as u64, Ordering::Release);
                drop(g);
            }
        });
        let updater = s.spawn(|| {
            pin_index(&cpus, 0, cfg.pin);
            let mut times = Vec::with_capacity(samples);
            for i in 0..total {
                barrier.wait();
                barrier.wait();
                p.update();
                let returned = base.elapsed().as_nanos() as u64;
                // Acquire: update() returned after the drop, which follows the store.
                let dropped = dropped_at.load(Ordering::Acquire);
                p.rearm();
                if i >= cfg.warmup_samples {
                    times.push(returned.saturating_sub(dropped) as f64);
                }
            }
            times
        });
        updater
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    Summary::from_samples(&times).expect("samples >= 1 and finite timings")
}

/// Runs `f` once per sample on a fresh thread pinned to the first allowed CPU (nothing else of
/// this measurement running) and returns the per-call latency in ns. Used for the membarrier
/// baseline, under the same conditions as [`measure_update`] with no holders.
///
/// ```
/// let s = revocable_bench::harness::sample_latency(10, 1, true, || std::hint::black_box(1 + 1));
/// assert_eq!(s.count, 10);
/// ```
pub fn sample_latency<R>(
    samples: usize,
    warmup: usize,
    pin: bool,
    f: impl FnMut() -> R + Send,
) -> Summary {
    let samples = samples.max(1);
    let mut f = f;
    let times = std::thread::scope(|s| {
        s.spawn(|| {
            pin_index(&allowed_cpus(), 0, pin);
            let mut times = Vec::with_capacity(samples);
            for i in 0..samples + warmup {
                let t = Instant::now();
                black_box(f());
                let ns = t.elapsed().as_nanos() as f64;
                if i >= warmup {
                    times.push(ns);
                }
            }
            times
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    Summary::from_samples(&times).expect("samples >= 1 and finite timings")
}

/// Median cost (ns) of the timestamp pair that brackets every single-update sample: latencies
/// near this figure are at the clock's resolution.
///
/// ```
/// assert!(revocable_bench::harness::timer_overhead_ns() < 1e6);
/// ```
pub fn timer_overhead_ns() -> f64 {
    let samples: Vec<f64> = (0..1001)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    Summary::from_samples(&samples).map_or(0.0, |s| s.median)
}

/// Single-thread cost (ns) of one call of `f`: `runs` runs of a calibrated number of calls
/// lasting about `run_time` each; returns the summary over runs.
///
/// ```
/// use std::time::Duration;
/// let s = revocable_bench::measure_ns_per_iter(3, Duration::from_millis(2), || {
///     std::hint::black_box(Box::new(1u64));
/// });
/// assert!(s.median > 0.0 && s.count == 3);
/// ```
pub fn measure_ns_per_iter(runs: usize, run_time: Duration, mut f: impl FnMut()) -> Summary {
    let runs = runs.max(1);
    // Calibrate: double the batch until it takes at least 1/20 of a run.
    let mut batch = 16u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        let e = t.elapsed();
        if e >= run_time / 20 || batch >= 1 << 40 {
            let per = e.as_nanos().max(1) as f64 / batch as f64;
            batch = ((run_time.as_nanos() as f64 / per) as u64).max(16);
            break;
        }
        batch *= 2;
    }
    let per_run: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    Summary::from_samples(&per_run).expect("runs >= 1 and finite timings")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArcSwapLoad, EpochPin, OursPool, PerSlot, Rundown};
    use revocable::Revocable;

    fn quick(threads: usize) -> ReadConfig {
        ReadConfig {
            threads,
            runs: 3,
            run_time: Duration::from_millis(3),
            warmup: Duration::from_millis(1),
            ..ReadConfig::default()
        }
    }

    fn check_read<P: ReadSide>() {
        for threads in [1, 2, 3] {
            let r = measure_read::<P>(&quick(threads));
            assert_eq!(r.threads, threads);
            assert_eq!(r.per_run.len(), 3);
            assert_eq!(r.failed_enters, 0, "{}", P::NAME);
            assert!(r.iters_per_run >= 64);
            assert!(
                r.summary.median > 0.0 && r.summary.median < 1e6,
                "{}: {:?}",
                P::NAME,
                r.summary
            );
        }
    }

    #[test]
    fn every_primitive_reads_at_several_thread_counts() {
        check_read::<Revocable<u64>>();
        check_read::<std::sync::RwLock<u64>>();
        check_read::<parking_lot::RwLock<u64>>();
        check_read::<Rundown>();
        check_read::<PerSlot>();
        check_read::<EpochPin>();
        check_read::<ArcSwapLoad>();
    }

    #[test]
    fn a_closed_primitive_counts_failed_enters() {
        struct Closed;
        impl ReadSide for Closed {
            const NAME: &'static str = "closed";
            type Guard<'a> = ();
            fn create(_: usize) -> Self {
                Closed
            }
            fn enter(&self) -> Option<()> {
                None
            }
        }
        let r = measure_read::<Closed>(&quick(2));
        assert!(r.failed_enters >= 2 * 3 * r.iters_per_run);
    }

    #[test]
    fn in_section_delay_shows_in_the_cost() {
        let cfg = ReadConfig {
            delay_ns: 20_000,
            ..quick(1)
        };
        let r = measure_read::<Rundown>(&cfg);
        // A section costs a few ns; with the 20 us delay it must cost microseconds (the bound
        // leaves room for a calibration taken on a loaded machine).
        assert!(r.summary.median >= 5_000.0, "{:?}", r.summary);
    }

    fn check_update<P: UpdateSide>(holders: usize) {
        let cfg = UpdateConfig {
            samples: 30,
            warmup_samples: 3,
            holders,
            ..UpdateConfig::default()
        };
        let s = measure_update::<P>(&cfg);
        assert_eq!(s.count, 30);
        assert!(s.median < 1e9);
    }

    #[test]
    fn every_update_side_runs_with_and_without_holders() {
        for holders in [0, 2] {
            check_update::<OursPool>(holders);
            check_update::<std::sync::RwLock<u64>>(holders);
            check_update::<parking_lot::RwLock<u64>>(holders);
            check_update::<Rundown>(holders);
            check_update::<PerSlot>(holders);
            check_update::<EpochPin>(holders);
            check_update::<ArcSwapLoad>(holders);
        }
    }

    #[test]
    fn wakeup_excludes_the_hold_time() {
        // A 60 ms hold: if the measurement started before the holder left, every sample would
        // exceed it. (A wake-up on a loaded 2-CPU machine can take milliseconds, not 60.)
        let hold = Duration::from_millis(60);
        let cfg = WakeupConfig {
            samples: 3,
            warmup_samples: 0,
            hold,
            pin: true,
        };
        for s in [
            measure_wakeup::<OursPool>(&cfg),
            measure_wakeup::<Rundown>(&cfg),
            measure_wakeup::<std::sync::RwLock<u64>>(&cfg),
        ] {
            assert_eq!(s.count, 3);
            assert!(s.min < hold.as_nanos() as f64, "{s:?}");
        }
    }

    /// An update that returns 5 ms after the last reader left: the measured wake-up must
    /// include those 5 ms (the timestamps are taken at the right places).
    struct SlowWaker(Rundown);
    impl ReadSide for SlowWaker {
        const NAME: &'static str = "slow waker";
        type Guard<'a> = crate::rundown::RundownGuard<'a>;
        fn create(_: usize) -> Self {
            SlowWaker(Rundown::new())
        }
        fn enter(&self) -> Option<Self::Guard<'_>> {
            self.0.acquire()
        }
    }
    impl UpdateSide for SlowWaker {
        const WAITS_FOR_READERS: bool = true;
        fn update(&self) {
            self.0.wait_for_rundown();
            std::thread::sleep(Duration::from_millis(5));
        }
        fn rearm(&self) {
            self.0.rearm();
        }
    }

    #[test]
    fn wakeup_includes_what_happens_after_the_drop() {
        let cfg = WakeupConfig {
            samples: 3,
            warmup_samples: 0,
            hold: Duration::from_millis(1),
            pin: true,
        };
        let s = measure_wakeup::<SlowWaker>(&cfg);
        assert!(s.min >= 5e6, "{s:?}");
    }

    #[test]
    fn per_iter_cost_orders_cheap_and_expensive_work() {
        let d = Duration::from_millis(3);
        let cheap = measure_ns_per_iter(3, d, || {
            black_box(1u64);
        });
        let dear = measure_ns_per_iter(3, d, || {
            std::thread::sleep(Duration::from_micros(50));
        });
        assert!(dear.median > 10.0 * cheap.median, "{cheap:?} {dear:?}");
    }
}
