//! The torture engine: readers, gangs of racing revokers, continuous recycling, and a watchdog.
//!
//! Each of `resources` slots holds the current generation of its resource (an [`Entry`]). Readers
//! pick slots at random, take guards (nested, on one resource or several), check the payload while
//! holding them, and hold for a random time (busy or asleep). Revokers work in gangs of `racers`:
//! each round, the gang's leader picks one entry and every member revokes it at once with a random
//! flavour (`revoke`, `revoke_deferred`, `revoke_timeout`); after returning, a member checks the
//! waiting contract and replaces the entry by the next generation (compare-and-swap, so exactly one
//! replacement per generation). A watchdog reports any revoke call running longer than the stall
//! bound, with the holders as the implementation describes them, and fails the run.
//!
//! # Invariants
//! - An entry's generation is replaced at most once (compare-and-swap on the slot), so generations of
//!   a slot are unique and increasing.
//! - An entry's `pipe` is 0 until the first waiting revoke call of that entry returns, then 1: a
//!   reader that sees 1 while holding a guard of it caught a too-short wait.
//! - Checks that need the whole life of an entry (one drop, one winner) run in its `Drop`, when no
//!   reader or revoker can touch it any more.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError};
use crate::payload::{Damage, DropLog, Payload};
use crate::prng::{Rng, Role};
use crate::report::{OpCounts, Progress, Report};
use crate::stats::{fmt_ns, Histogram};
use crate::subject::Subject;
use crate::violation::{Kind, Violations};

/// One generation of one resource.
struct Entry<S: Subject> {
    rev: S,
    slot: usize,
    generation: u64,
    log: Arc<DropLog>,
    /// 0 while no waiting revoke of this entry has returned, then 1.
    pipe: AtomicU32,
    winners: AtomicU32,
    timeouts: AtomicU32,
    revoking: AtomicBool,
    violations: Arc<Violations>,
}

impl<S: Subject> Entry<S> {
    fn fresh(slot: usize, generation: u64, violations: &Arc<Violations>) -> Arc<Self> {
        let (payload, log) = Payload::new(generation);
        Arc::new(Self {
            rev: S::new(payload),
            slot,
            generation,
            log,
            pipe: AtomicU32::new(0),
            winners: AtomicU32::new(0),
            timeouts: AtomicU32::new(0),
            revoking: AtomicBool::new(false),
            violations: Arc::clone(violations),
        })
    }

    fn name(&self) -> String {
        format!("resource {} generation {}", self.slot, self.generation)
    }
}

impl<S: Subject> Drop for Entry<S> {
    fn drop(&mut self) {
        // Every reader and revoker is gone (they held an `Arc`), so the revoked payload must have
        // been dropped exactly once by now, and exactly one call must have won.
        if !*self.revoking.get_mut() {
            return;
        }
        let drops = self.log.drops();
        let v = &self.violations;
        if drops == 0 {
            v.record(Kind::NotDropped, || {
                format!("{} retired, payload never dropped", self.name())
            });
        } else if drops > 1 {
            v.record(Kind::DoubleDrop, || {
                format!("{} dropped {drops} times", self.name())
            });
        }
        if *self.winners.get_mut() == 0 && *self.timeouts.get_mut() == 0 {
            v.record(Kind::NoWinner, || {
                format!("{}: no revoke call returned true", self.name())
            });
        }
    }
}

/// A counter written by one thread and read by the progress line; padded against false sharing.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

impl Padded {
    fn set(&self, v: u64) {
        // Relaxed: a statistic read only for the approximate progress line.
        self.0.store(v, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A revoke call under way, for the watchdog.
struct Inflight<S: Subject> {
    entry: Arc<Entry<S>>,
    op: Op,
    start: Instant,
    reported: bool,
}

struct RevokerSlot<S: Subject> {
    ops: Padded,
    inflight: Mutex<Option<Inflight<S>>>,
}

struct Shared<S: Subject> {
    cfg: Config,
    slots: Vec<ArcSwap<Entry<S>>>,
    stop: AtomicBool,
    hung: AtomicBool,
    violations: Arc<Violations>,
    accesses: Vec<Padded>,
    revokers: Vec<RevokerSlot<S>>,
    recycled: AtomicU64,
    max_revoke_ns: AtomicU64,
    /// The runtime of the async holders, on which revokers also drive `revoke_async`.
    rt: tokio::runtime::Handle,
    async_accesses: AtomicU64,
    async_misses: AtomicU64,
}

impl<S: Subject> Shared<S> {
    fn stopping(&self) -> bool {
        // Relaxed: the flag only ends loops; no data is published through it.
        self.stop.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Revoke,
    /// `revoke_async`, driven to completion by the revoker thread (`Handle::block_on`).
    Async,
    Deferred,
    Timeout(Duration),
}

impl Op {
    fn waits(self) -> bool {
        !matches!(self, Op::Deferred)
    }
}

/// Reader visits between two `yield_now`s.
const READER_YIELD: u32 = 32;

/// Per-reader totals, returned when the reader stops.
#[derive(Default)]
struct ReaderTotals {
    accesses: u64,
    misses: u64,
    nested: u64,
    sleeps: u64,
    pipe: [u64; 2],
}

fn damage_kind(d: Damage) -> Kind {
    match d {
        Damage::Poisoned => Kind::Poisoned,
        Damage::Dropped(_) => Kind::DroppedUnderGuard,
        Damage::Corrupt(_) | Damage::WrongGeneration { .. } => Kind::WrongData,
    }
}

struct Reader<'a, S: Subject> {
    sh: &'a Shared<S>,
    rng: Rng,
    index: usize,
    t: ReaderTotals,
}

impl<S: Subject> Reader<'_, S> {
    fn run(mut self) -> ReaderTotals {
        let nest_max = self.sh.cfg.nest_max as u64;
        let mut visits = 0u32;
        while !self.sh.stopping() {
            let depth = self.rng.range_inclusive(1, nest_max) as usize;
            self.visit(depth, None);
            self.sh.accesses[self.index].set(self.t.accesses);
            visits = visits.wrapping_add(1);
            if visits.is_multiple_of(READER_YIELD) {
                // Short readers would otherwise keep every CPU busy and starve the revokers,
                // whose wake-ups then wait for a time slice: yield now and then.
                thread::yield_now();
            }
        }
        self.t
    }

    /// Takes one guard (on the enclosing guard's resource, or on a random one), nests `depth - 1`
    /// more inside it, holds, and checks before and after.
    fn visit(&mut self, depth: usize, outer: Option<&Entry<S>>) {
        // A fresh entry through arc-swap's cheap `load` (no shared reference count touched); the
        // enclosing guard's entry is simply borrowed (it outlives this nested access).
        let fresh;
        let entry: &Entry<S> = match outer {
            Some(e) if self.rng.percent(30) => e,
            _ => {
                let slot = self.rng.below(self.sh.slots.len() as u64) as usize;
                fresh = self.sh.slots[slot].load();
                &fresh
            }
        };
        let Some(guard) = entry.rev.try_access() else {
            self.t.misses += 1;
            if depth > 1 {
                self.visit(depth - 1, outer);
            }
            return;
        };
        self.t.accesses += 1;
        if outer.is_some() {
            self.t.nested += 1;
        }
        self.check(entry, &guard);
        if depth > 1 {
            self.visit(depth - 1, Some(entry));
        }
        self.hold();
        self.check(entry, &guard);
        drop(guard);
    }

    fn check(&mut self, entry: &Entry<S>, payload: &Payload) {
        let ok = check_held(self.sh, entry, payload, || format!("reader {}", self.index));
        self.t.pipe[usize::from(!ok)] += 1;
    }

    fn hold(&mut self) {
        let cfg = &self.sh.cfg;
        if !self.rng.chance(cfg.hold_percent) {
            return;
        }
        let max_ns = u64::try_from(cfg.hold_max.as_nanos()).unwrap_or(u64::MAX);
        let d = Duration::from_nanos(self.rng.range_inclusive(0, max_ns));
        if self.rng.percent(cfg.sleep_percent) {
            self.t.sleeps += 1;
            thread::sleep(d);
        } else {
            let t0 = Instant::now();
            let mut spins = 0u32;
            while t0.elapsed() < d {
                std::hint::spin_loop();
                spins += 1;
                if spins.is_multiple_of(256) {
                    thread::yield_now();
                }
            }
        }
    }
}

/// Checks a payload held through a guard: intact, of the right generation, and no waiting
/// revoke of it has returned yet (the pipe). Records violations; returns whether the pipe was 0.
fn check_held<S: Subject>(
    sh: &Shared<S>,
    entry: &Entry<S>,
    payload: &Payload,
    who: impl Fn() -> String,
) -> bool {
    if let Err(d) = payload.check(entry.generation) {
        sh.violations.record(damage_kind(d), || {
            format!("{} holding {}: {d:?}", who(), entry.name())
        });
    }
    // Acquire pairs with the Release bump after a waiting revoke returned: if this load sees
    // it, the revoke returned while this guard was held.
    if entry.pipe.load(Ordering::Acquire) == 0 {
        return true;
    }
    sh.violations.record(Kind::PipeTooShort, || {
        format!(
            "{} holding {}: a waiting revoke already returned",
            who(),
            entry.name()
        )
    });
    false
}

/// An async holder: a task that takes Send guards and holds them across `.await` (yields and
/// timer sleeps, so the task may resume on the other worker), checking before and after.
async fn async_holder<S: Subject>(sh: Arc<Shared<S>>, index: usize) {
    let mut rng = Rng::stream(sh.cfg.seed, Role::AsyncHolder, index as u64);
    let max_ns = u64::try_from(sh.cfg.hold_max.as_nanos()).unwrap_or(u64::MAX);
    let who = || format!("async holder {index}");
    let (mut accesses, mut misses) = (0u64, 0u64);
    while !sh.stopping() {
        let slot = rng.below(sh.slots.len() as u64) as usize;
        let e = sh.slots[slot].load_full();
        let guard = e.rev.try_access_send();
        match guard {
            None => {
                misses += 1;
                tokio::task::yield_now().await;
            }
            Some(g) => {
                accesses += 1;
                check_held(&sh, &e, &g, who);
                // Held across an await: sometimes a yield (the task may resume on the other
                // worker), rarely a timer sleep: tokio rounds it up to its 1 ms tick, so a
                // hundredth of the readers' rate of long holds already keeps about one task
                // asleep on a guard at any time.
                if rng.chance(sh.cfg.hold_percent / 100.0) {
                    let d = Duration::from_nanos(rng.range_inclusive(0, max_ns));
                    tokio::time::sleep(d).await;
                } else if rng.percent(5) {
                    tokio::task::yield_now().await;
                }
                check_held(&sh, &e, &g, who);
                drop(g);
                if accesses.is_multiple_of(16) {
                    // Not holding: let the other tasks (and threads) run; now and then rest a
                    // tick, so that the tasks take at most a share of the CPUs.
                    if accesses.is_multiple_of(256) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }
    sh.async_accesses.fetch_add(accesses, Ordering::Relaxed);
    sh.async_misses.fetch_add(misses, Ordering::Relaxed);
}

/// What a gang of racing revokers shares.
struct Gang<S: Subject> {
    barrier: Barrier,
    stop: AtomicBool,
    target: Mutex<Option<Arc<Entry<S>>>>,
    rng: Mutex<Rng>,
}

/// Per-revoker totals.
#[derive(Default)]
struct RevokerTotals {
    ops: OpCounts,
    wins: u64,
    timeouts: u64,
    wait: Histogram,
    deferred: Histogram,
}

fn revoker<S: Subject>(sh: &Shared<S>, gang: &Gang<S>, index: usize) -> RevokerTotals {
    let mut rng = Rng::stream(sh.cfg.seed, Role::Revoker, index as u64);
    let mut t = RevokerTotals::default();
    let me = &sh.revokers[index];
    let max_timeout_ns = 2 * u64::try_from(sh.cfg.hold_max.as_nanos()).unwrap_or(u64::MAX / 2);
    loop {
        if gang.barrier.wait().is_leader() {
            let stop = sh.stopping();
            // Relaxed: the barrier below orders this store before the members' loads.
            gang.stop.store(stop, Ordering::Relaxed);
            if !stop {
                let slot = gang
                    .rng
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .below(sh.slots.len() as u64);
                *gang.target.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(sh.slots[slot as usize].load_full());
            }
        }
        gang.barrier.wait();
        if gang.stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(e) = gang
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            break;
        };
        let batch = sh.cfg.batch_max > 1 && rng.below(10) < 3;
        let op = match rng.below(10) {
            0..=2 => Op::Revoke,
            3 => Op::Async,
            4..=6 => Op::Deferred,
            _ => Op::Timeout(Duration::from_nanos(rng.range_inclusive(0, max_timeout_ns))),
        };
        // A batch: the gang's target plus random other entries (duplicates allowed, members
        // already revoked or being revoked by another gang too).
        let mut members = vec![Arc::clone(&e)];
        if batch {
            let extra = rng.range_inclusive(0, sh.cfg.batch_max as u64 - 1);
            for _ in 0..extra {
                let slot = rng.below(sh.slots.len() as u64) as usize;
                members.push(sh.slots[slot].load_full());
            }
        }
        for m in &members {
            m.revoking.store(true, Ordering::Relaxed);
        }
        let start = Instant::now();
        *me.inflight.lock().unwrap_or_else(PoisonError::into_inner) = Some(Inflight {
            entry: Arc::clone(&e),
            op,
            start,
            reported: false,
        });
        let results: Vec<Result<bool, ()>> = if batch {
            let revs: Vec<&S> = members.iter().map(|m| &m.rev).collect();
            let (deferred, timeout) = match op {
                // A batch has no async form: it waits like a synchronous one.
                Op::Revoke | Op::Async => (false, None),
                Op::Deferred => (true, None),
                Op::Timeout(d) => (false, Some(d)),
            };
            match S::revoke_batch(&revs, deferred, timeout) {
                Ok(won) => won.into_iter().map(Ok).collect(),
                // Members not named by the error did complete, but which of them this call won
                // is unknown: count every member as timed out (the one-winner check then
                // tolerates them, never reports them wrongly).
                Err(_) => members.iter().map(|_| Err(())).collect(),
            }
        } else {
            vec![match op {
                Op::Revoke => Ok(e.rev.revoke()),
                Op::Async => Ok(sh.rt.block_on(e.rev.revoke_async())),
                Op::Deferred => Ok(e.rev.revoke_deferred()),
                Op::Timeout(d) => e.rev.revoke_timeout(d).map_err(drop),
            }]
        };
        let latency = start.elapsed();
        *me.inflight.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if batch {
            t.ops.batch += 1;
            t.ops.batch_members += members.len() as u64;
        } else {
            match op {
                Op::Revoke => t.ops.revoke += 1,
                Op::Async => t.ops.async_revoke += 1,
                Op::Deferred => t.ops.deferred += 1,
                Op::Timeout(_) => t.ops.timeout += 1,
            }
        }
        me.ops.set(t.ops.total());
        for (m, result) in members.iter().zip(results) {
            // Per member, the checks of a single call (poison through the readers, pipe, one
            // winner, return after the drop, no access after).
            check_return(sh, m, op, result, latency, &mut t, index);
        }
        // Revokes are cheap when nothing holds the target: leave the CPUs to the readers for a
        // moment, so that neither side starves the other on a small machine.
        if t.ops.total().is_multiple_of(4) {
            thread::yield_now();
        }
        // Recycle: the first revoker back replaces each generation by the next one.
        for m in &members {
            let slot = &sh.slots[m.slot];
            if Arc::ptr_eq(&slot.load(), m) {
                let fresh = Entry::fresh(m.slot, m.generation + 1, &sh.violations);
                let prev = slot.compare_and_swap(m, fresh);
                if Arc::ptr_eq(&prev, m) {
                    sh.recycled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    t
}

/// Checks what a revoke call promised once it returned.
fn check_return<S: Subject>(
    sh: &Shared<S>,
    e: &Entry<S>,
    op: Op,
    result: Result<bool, ()>,
    latency: Duration,
    t: &mut RevokerTotals,
    index: usize,
) {
    let v = &sh.violations;
    match result {
        Err(()) => {
            t.timeouts += 1;
            e.timeouts.fetch_add(1, Ordering::Relaxed);
            if let Op::Timeout(d) = op {
                // The implementation's deadline starts after our `start`, so a correct one
                // never expires in less than `d` as we measure it.
                if latency < d {
                    v.record(Kind::EarlyTimeout, || {
                        format!(
                            "revoker {index}: {op:?} of {} expired after {latency:?}",
                            e.name()
                        )
                    });
                }
            }
        }
        Ok(won) => {
            if won {
                t.wins += 1;
                let before = e.winners.fetch_add(1, Ordering::Relaxed);
                if before > 0 {
                    v.record(Kind::MultipleWinners, || {
                        format!("{}: {} calls returned true", e.name(), before + 1)
                    });
                }
            }
            if op.waits() {
                match e.log.drops() {
                    1 => {}
                    0 => v.record(Kind::ReturnedBeforeDrop, || {
                        format!(
                            "revoker {index}: {op:?} of {} returned before the drop",
                            e.name()
                        )
                    }),
                    n => v.record(Kind::DoubleDrop, || {
                        format!("{} dropped {n} times", e.name())
                    }),
                }
                // Once per generation: readers still holding a guard of it will see the pipe.
                let _ = e
                    .pipe
                    .compare_exchange(0, 1, Ordering::Release, Ordering::Relaxed);
                t.wait.record_duration(latency);
                let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                sh.max_revoke_ns.fetch_max(ns, Ordering::Relaxed);
            } else {
                t.deferred.record_duration(latency);
            }
        }
    }
    if e.rev.try_access().is_some() {
        v.record(Kind::AccessAfterRevoke, || {
            format!(
                "revoker {index}: {} accessible after {op:?} returned",
                e.name()
            )
        });
    }
}

/// Looks for revoke calls running longer than the stall bound; reports each once and stops the run.
fn watchdog<S: Subject>(sh: &Shared<S>, done: &AtomicBool) {
    let tick = (sh.cfg.stall / 10).clamp(Duration::from_millis(1), Duration::from_millis(50));
    while !done.load(Ordering::Relaxed) {
        thread::sleep(tick);
        for (i, r) in sh.revokers.iter().enumerate() {
            let stuck = {
                let mut inflight = r.inflight.lock().unwrap_or_else(PoisonError::into_inner);
                match inflight.as_mut() {
                    Some(f) if !f.reported && f.start.elapsed() > sh.cfg.stall => {
                        f.reported = true;
                        Some((Arc::clone(&f.entry), f.op, f.start))
                    }
                    _ => None,
                }
            };
            let Some((entry, op, start)) = stuck else {
                continue;
            };
            // The entry is already being revoked, so this call only asks who still holds it.
            let holders = match entry.rev.revoke_timeout(Duration::from_millis(1)) {
                Err(t) => t.to_string(),
                Ok(_) => "no holder remains: the call is stuck elsewhere than waiting for holders"
                    .to_string(),
            };
            sh.violations.record(Kind::Hang, || {
                format!(
                    "revoker {i}: {op:?} of {} running for {} (bound {}): {holders}",
                    entry.name(),
                    fmt_ns(start.elapsed().as_nanos() as u64),
                    fmt_ns(sh.cfg.stall.as_nanos() as u64)
                )
            });
            sh.hung.store(true, Ordering::Relaxed);
            sh.stop.store(true, Ordering::Relaxed);
        }
    }
}

fn progress_of<S: Subject>(sh: &Shared<S>, start: Instant) -> Progress {
    Progress {
        elapsed: start.elapsed(),
        duration: sh.cfg.duration,
        accesses: sh.accesses.iter().map(Padded::get).sum(),
        revokes: sh.revokers.iter().map(|r| r.ops.get()).sum(),
        recycled: sh.recycled.load(Ordering::Relaxed),
        max_revoke_ns: sh.max_revoke_ns.load(Ordering::Relaxed),
        violations: sh.violations.total(),
    }
}

/// How long threads may take to stop once told: a revoke may take up to the stall bound, and a
/// reader finishes its nest of holds (each at most `hold_max`), plus a second of slack.
fn stop_grace(cfg: &Config) -> Duration {
    cfg.stall + cfg.longest_hold() + Duration::from_secs(1)
}

enum Worker {
    Reader(JoinHandle<ReaderTotals>),
    Revoker(JoinHandle<RevokerTotals>),
}

impl Worker {
    fn is_finished(&self) -> bool {
        match self {
            Worker::Reader(h) => h.is_finished(),
            Worker::Revoker(h) => h.is_finished(),
        }
    }

    fn name(&self) -> String {
        let t = match self {
            Worker::Reader(h) => h.thread(),
            Worker::Revoker(h) => h.thread(),
        };
        t.name().unwrap_or("unnamed").to_string()
    }
}

/// Tortures implementation `S` as `cfg` says, calling `progress` every `cfg.progress_interval`.
///
/// Returns the report (check [`Report::passed`]), or why the configuration cannot run. Threads that
/// do not stop in time after the end (stall bound + `nest_max` × `hold_max` + 1 s) are left behind
/// (detached) and the report says `hung`.
///
/// ```
/// use std::time::Duration;
/// use revocable::Revocable;
/// use revocable_torture::{payload::Payload, torture, Config};
/// let mut cfg = Config::for_cores(2);
/// cfg.duration = Duration::from_millis(300);
/// let report = torture::<Revocable<Payload>>(&cfg, |_| {}).unwrap();
/// assert!(report.passed(), "{report}");
/// assert!(report.accesses > 0 && report.ops.total() > 0);
/// ```
pub fn torture<S: Subject>(
    cfg: &Config,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, ConfigError> {
    cfg.validate()?;
    let violations = Arc::new(Violations::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("torture-async")
        .enable_time()
        .build()
        .expect("building the async holders' tokio runtime");
    let sh = Arc::new(Shared::<S> {
        cfg: cfg.clone(),
        slots: (0..cfg.resources)
            .map(|i| ArcSwap::new(Entry::fresh(i, 0, &violations)))
            .collect(),
        stop: AtomicBool::new(false),
        hung: AtomicBool::new(false),
        violations: Arc::clone(&violations),
        accesses: (0..cfg.readers).map(|_| Padded::default()).collect(),
        revokers: (0..cfg.revokers)
            .map(|_| RevokerSlot {
                ops: Padded::default(),
                inflight: Mutex::new(None),
            })
            .collect(),
        recycled: AtomicU64::new(0),
        max_revoke_ns: AtomicU64::new(0),
        rt: rt.handle().clone(),
        async_accesses: AtomicU64::new(0),
        async_misses: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut workers = Vec::new();
    for i in 0..cfg.readers {
        let sh = Arc::clone(&sh);
        let rng = Rng::stream(cfg.seed, Role::Reader, i as u64);
        let h = thread::Builder::new()
            .name(format!("torture-reader-{i}"))
            .spawn(move || {
                Reader {
                    sh: &sh,
                    rng,
                    index: i,
                    t: ReaderTotals::default(),
                }
                .run()
            })
            .expect("spawning a torture reader thread");
        workers.push(Worker::Reader(h));
    }
    let mut next = 0;
    for g in 0..cfg.revokers.div_ceil(cfg.racers) {
        let size = cfg.racers.min(cfg.revokers - next);
        let gang = Arc::new(Gang::<S> {
            barrier: Barrier::new(size),
            stop: AtomicBool::new(false),
            target: Mutex::new(None),
            rng: Mutex::new(Rng::stream(cfg.seed, Role::Gang, g as u64)),
        });
        for _ in 0..size {
            let (sh, gang, i) = (Arc::clone(&sh), Arc::clone(&gang), next);
            let h = thread::Builder::new()
                .name(format!("torture-revoker-{i}"))
                .spawn(move || revoker(&sh, &gang, i))
                .expect("spawning a torture revoker thread");
            workers.push(Worker::Revoker(h));
            next += 1;
        }
    }
    let async_holders: Vec<_> = (0..cfg.async_holders)
        .map(|i| rt.spawn(async_holder(Arc::clone(&sh), i)))
        .collect();
    let dog_done = Arc::new(AtomicBool::new(false));
    let dog = {
        let (sh, done) = (Arc::clone(&sh), Arc::clone(&dog_done));
        thread::Builder::new()
            .name("torture-watchdog".into())
            .spawn(move || watchdog(&sh, &done))
            .expect("spawning the torture watchdog thread")
    };

    // Run, reporting progress, until the duration is over or the watchdog stopped the run.
    let mut next_progress = start + cfg.progress_interval;
    loop {
        let now = Instant::now();
        let end = start + cfg.duration;
        if now >= end || sh.stopping() {
            break;
        }
        if now >= next_progress {
            progress(&progress_of(&sh, start));
            next_progress += cfg.progress_interval;
        }
        let wake = end.min(next_progress).min(now + Duration::from_millis(20));
        thread::sleep(wake.saturating_duration_since(now));
    }
    sh.stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();

    // Join what stops in time; the watchdog keeps watching meanwhile.
    let grace = stop_grace(cfg);
    let deadline = Instant::now() + grace;
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let holders_done = rt.block_on(async {
        tokio::time::timeout(left, async {
            for h in async_holders {
                if h.await.is_err() {
                    sh.violations
                        .record(Kind::Hang, || "an async holder task panicked".into());
                }
            }
        })
        .await
        .is_ok()
    });
    dog_done.store(true, Ordering::Relaxed);
    let _ = dog.join();
    let mut report = Report {
        subject: S::NAME,
        seed: cfg.seed,
        elapsed,
        readers: cfg.readers,
        revokers: cfg.revokers,
        racers: cfg.racers,
        resources: cfg.resources,
        ..Report::default()
    };
    let mut stuck = Vec::new();
    if !holders_done {
        stuck.push("async holder tasks".to_string());
    }
    report.async_accesses = sh.async_accesses.load(Ordering::Relaxed);
    report.async_misses = sh.async_misses.load(Ordering::Relaxed);
    for w in workers {
        if !w.is_finished() {
            stuck.push(w.name());
            continue; // detached: it may never return
        }
        match w {
            Worker::Reader(h) => match h.join() {
                Ok(t) => {
                    report.accesses += t.accesses;
                    report.misses += t.misses;
                    report.nested += t.nested;
                    report.sleeps += t.sleeps;
                    report.pipe[0] += t.pipe[0];
                    report.pipe[1] += t.pipe[1];
                }
                Err(_) => sh
                    .violations
                    .record(Kind::Hang, || "a reader thread panicked".into()),
            },
            Worker::Revoker(h) => match h.join() {
                Ok(t) => {
                    report.ops.add(&t.ops);
                    report.wins += t.wins;
                    report.timeouts += t.timeouts;
                    report.wait_latency.merge(&t.wait);
                    report.deferred_latency.merge(&t.deferred);
                }
                Err(_) => sh
                    .violations
                    .record(Kind::Hang, || "a revoker thread panicked".into()),
            },
        }
    }
    if !stuck.is_empty() {
        sh.hung.store(true, Ordering::Relaxed);
        sh.violations.record(Kind::Hang, || {
            format!(
                "{} threads did not stop within {} of the end: {}",
                stuck.len(),
                fmt_ns(u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX)),
                stuck.join(", ")
            )
        });
    }
    report.recycled = sh.recycled.load(Ordering::Relaxed);
    report.hung = sh.hung.load(Ordering::Relaxed);
    if stuck.is_empty() {
        // Retire the last generations now so that their end-of-life checks count in this report.
        if let Ok(shared) = Arc::try_unwrap(sh) {
            drop(shared);
        }
    }
    report.violations = Kind::ALL
        .iter()
        .map(|k| (*k, violations.count(*k)))
        .filter(|(_, n)| *n > 0)
        .collect();
    report.samples = violations.samples();
    report.first_violation = violations
        .first_at()
        .map(|t| t.saturating_duration_since(start));
    Ok(report)
}
