//! End-to-end tortures: the real `Revocable` passes; broken implementations and a stalled revoke
//! are caught within seconds.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use revocable::Revocable;
use revocable_torture::broken::{EarlyDrop, SkipWait};
use revocable_torture::payload::Payload;
use revocable_torture::violation::Kind;
use revocable_torture::{torture, Config, ConfigError, Progress, Report, Subject};

/// The items every test subject below shares: it wraps a real `Revocable<Payload>` (field 0) and
/// passes accesses through unchanged; each subject then breaks one revoke path.
macro_rules! wraps_revocable {
    () => {
        type Guard<'a> = revocable::RevocableGuard<'a, Payload>;
        type SendGuard<'a> = revocable::SendGuard<'a, Payload>;
        type Timeout = revocable::RevokeTimeout;
        fn new(data: Payload) -> Self {
            Self(Revocable::new(data))
        }
        fn try_access(&self) -> Option<Self::Guard<'_>> {
            self.0.try_access()
        }
        fn try_access_send(&self) -> Option<Self::SendGuard<'_>> {
            self.0.try_access_send()
        }
    };
}

fn short(duration: Duration) -> Config {
    let mut cfg = Config::for_cores(2);
    cfg.duration = duration;
    cfg.progress_interval = Duration::from_millis(100);
    cfg.seed = 20_261_125;
    cfg
}

/// Runs and returns the report with the time at which the first violation was seen (per progress).
fn run<S: Subject>(cfg: &Config) -> (Report, Option<Duration>) {
    let first = Arc::new(Mutex::new(None));
    let f = Arc::clone(&first);
    let report = torture::<S>(cfg, move |p: &Progress| {
        let mut f = f.lock().unwrap();
        if p.violations > 0 && f.is_none() {
            *f = Some(p.elapsed);
        }
    })
    .expect("valid configuration");
    eprintln!("{report}");
    let first = *first.lock().unwrap();
    (report, first)
}

fn count(r: &Report, k: Kind) -> u64 {
    r.violations
        .iter()
        .find(|(kind, _)| *kind == k)
        .map_or(0, |(_, n)| *n)
}

#[test]
fn real_revocable_passes_a_short_torture() {
    let (r, _) = run::<Revocable<Payload>>(&short(Duration::from_secs(3)));
    assert!(r.passed(), "{r}");
    assert_eq!(r.violation_count(), 0);
    // The run exercised what it claims to.
    assert!(r.accesses > 1000, "{r}");
    assert!(r.nested > 0 && r.sleeps > 0 && r.misses > 0, "{r}");
    assert!(
        r.ops.revoke > 0 && r.ops.deferred > 0 && r.ops.timeout > 0,
        "{r}"
    );
    assert!(r.wins > 0 && r.recycled > 0, "{r}");
    assert!(r.wait_latency.count() > 0, "{r}");
    assert_eq!(r.pipe[1], 0);
    assert!(r.pipe[0] > 0);
}

#[test]
fn early_drop_is_caught_by_the_poison_check() {
    let (r, first) = run::<EarlyDrop>(&short(Duration::from_secs(2)));
    assert!(!r.passed());
    assert!(count(&r, Kind::Poisoned) > 0, "{r}");
    assert!(
        first.is_some_and(|t| t < Duration::from_secs(2)),
        "first seen at {first:?}"
    );
}

#[test]
fn skip_wait_is_caught_by_the_pipe_count_and_the_drop_check() {
    let (r, first) = run::<SkipWait>(&short(Duration::from_secs(2)));
    assert!(!r.passed());
    assert!(count(&r, Kind::PipeTooShort) > 0, "{r}");
    assert!(count(&r, Kind::ReturnedBeforeDrop) > 0, "{r}");
    assert_eq!(
        count(&r, Kind::Poisoned),
        0,
        "skip-wait never drops under a holder: {r}"
    );
    assert!(
        first.is_some_and(|t| t < Duration::from_secs(2)),
        "first seen at {first:?}"
    );
}

/// A correct but slow implementation: `revoke` keeps a guard of its own for `STALL * 3`, then
/// lets go. The watchdog must report it with the holders, and the run must fail as hung.
struct Stalls(Revocable<Payload>);

const STALL: Duration = Duration::from_millis(200);

impl Subject for Stalls {
    wraps_revocable!();
    const NAME: &'static str = "stalls";
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        self.0.revoke_async()
    }
    fn revoke(&self) -> bool {
        let held = self.0.try_access();
        let won = self.0.revoke_deferred();
        thread::sleep(STALL * 3);
        drop(held);
        won
    }
    fn revoke_deferred(&self) -> bool {
        self.0.revoke_deferred()
    }
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, Self::Timeout> {
        self.0.revoke_timeout(timeout)
    }
}

#[test]
fn watchdog_reports_a_stalled_revoke_with_its_holders() {
    let mut cfg = short(Duration::from_secs(5));
    cfg.stall = STALL;
    // One revoker per resource: every stalled call is a winner holding its own guard, so the
    // holder report is never empty. No batches: the watchdog reports a batch by its first
    // member, which need not be the one stalling.
    cfg.racers = 1;
    cfg.batch_max = 1;
    let t0 = std::time::Instant::now();
    let (r, _) = run::<Stalls>(&cfg);
    assert!(r.hung && !r.passed(), "{r}");
    assert!(count(&r, Kind::Hang) > 0, "{r}");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the watchdog stops the run early"
    );
    let hangs: Vec<_> = r
        .samples
        .iter()
        .filter(|s| s.starts_with("hang: revoker"))
        .collect();
    assert!(!hangs.is_empty(), "{r}");
    for hang in &hangs {
        assert!(
            hang.contains("Revoke of resource") && hang.contains("running for"),
            "{hang}"
        );
    }
    // The holders as the implementation describes them (`RevokeTimeout`'s Display). Gangs pick
    // slots independently, so a second gang may stall on an entry another gang's stalled call
    // holds and find no holder once that one let go: at least one report names holders.
    assert!(
        hangs.iter().any(|h| !h.contains("no holder remains")),
        "{hangs:?}"
    );
    // No other violation: the slow implementation is otherwise correct.
    assert_eq!(r.violation_count(), count(&r, Kind::Hang), "{r}");
}

#[test]
fn bad_configuration_is_refused_before_starting() {
    let mut cfg = short(Duration::from_secs(1));
    cfg.resources = 0;
    assert_eq!(
        torture::<Revocable<Payload>>(&cfg, |_| {}).unwrap_err(),
        ConfigError::Zero("resources")
    );
}

/// Wraps the real type but lies about who revoked: `WINS` is what every revoke call returns.
struct Lies<const WINS: bool>(Revocable<Payload>);

impl<const WINS: bool> Subject for Lies<WINS> {
    type Guard<'a> = revocable::RevocableGuard<'a, Payload>;
    type SendGuard<'a> = revocable::SendGuard<'a, Payload>;
    type Timeout = revocable::RevokeTimeout;
    const NAME: &'static str = if WINS { "always-wins" } else { "never-wins" };
    fn new(data: Payload) -> Self {
        Self(Revocable::new(data))
    }
    fn try_access(&self) -> Option<Self::Guard<'_>> {
        self.0.try_access()
    }
    fn try_access_send(&self) -> Option<Self::SendGuard<'_>> {
        self.0.try_access_send()
    }
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        self.0.revoke_async()
    }
    fn revoke(&self) -> bool {
        self.0.revoke();
        WINS
    }
    fn revoke_deferred(&self) -> bool {
        self.0.revoke_deferred();
        WINS
    }
    fn revoke_timeout(&self, _timeout: Duration) -> Result<bool, Self::Timeout> {
        // Never expires, so that every resource is settled by a call that returns a bool.
        self.0.revoke();
        Ok(WINS)
    }
}

#[test]
fn a_second_winner_is_caught() {
    let mut cfg = short(Duration::from_secs(1));
    cfg.racers = 4;
    let (r, _) = run::<Lies<true>>(&cfg);
    assert!(count(&r, Kind::MultipleWinners) > 0, "{r}");
    assert_eq!(r.violation_count(), count(&r, Kind::MultipleWinners), "{r}");
}

#[test]
fn a_resource_revoked_without_a_winner_is_caught() {
    let (r, _) = run::<Lies<false>>(&short(Duration::from_secs(1)));
    assert!(count(&r, Kind::NoWinner) > 0, "{r}");
    assert_eq!(r.violation_count(), count(&r, Kind::NoWinner), "{r}");
}

#[test]
fn real_revocable_passes_oversubscribed_with_deep_nesting_and_long_sleeps() {
    let mut cfg = short(Duration::from_secs(2));
    cfg.readers = 16;
    cfg.oversubscribe = true;
    cfg.revokers = 6;
    cfg.racers = 3;
    cfg.resources = 3;
    cfg.nest_max = 6;
    cfg.sleep_percent = 50;
    cfg.hold_max = Duration::from_millis(2);
    let (r, _) = run::<Revocable<Payload>>(&cfg);
    assert!(r.passed(), "{r}");
    assert!(r.sleeps > 0 && r.nested > 0 && r.timeouts > 0, "{r}");
}

/// `revoke` does not come back for 2.5 s: longer than the stall bound plus the join grace.
struct NeverReturns(Revocable<Payload>);

impl Subject for NeverReturns {
    wraps_revocable!();
    const NAME: &'static str = "never-returns";
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        self.0.revoke_async()
    }
    fn revoke(&self) -> bool {
        thread::sleep(Duration::from_millis(2500));
        self.0.revoke()
    }
    fn revoke_deferred(&self) -> bool {
        self.0.revoke_deferred()
    }
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, Self::Timeout> {
        self.0.revoke_timeout(timeout)
    }
}

#[test]
fn threads_that_do_not_stop_are_named_and_the_run_fails() {
    let mut cfg = short(Duration::from_secs(1));
    cfg.stall = Duration::from_millis(100);
    let t0 = std::time::Instant::now();
    let (r, _) = run::<NeverReturns>(&cfg);
    assert!(r.hung && !r.passed(), "{r}");
    assert!(
        t0.elapsed() < Duration::from_millis(2400),
        "torture() returned without them"
    );
    let s = r
        .samples
        .iter()
        .find(|s| s.contains("did not stop"))
        .expect("the stuck threads are reported");
    assert!(s.contains("torture-revoker-"), "{s}");
}

/// `revoke_timeout` gives up at once when there are holders, whatever the timeout.
struct GivesUp(Revocable<Payload>);

impl Subject for GivesUp {
    wraps_revocable!();
    const NAME: &'static str = "gives-up";
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        self.0.revoke_async()
    }
    fn revoke(&self) -> bool {
        self.0.revoke()
    }
    fn revoke_deferred(&self) -> bool {
        self.0.revoke_deferred()
    }
    fn revoke_timeout(&self, _timeout: Duration) -> Result<bool, Self::Timeout> {
        self.0.revoke_timeout(Duration::ZERO)
    }
}

#[test]
fn a_timeout_that_expires_early_is_caught() {
    let mut cfg = short(Duration::from_secs(1));
    cfg.hold_max = Duration::from_millis(1);
    let (r, _) = run::<GivesUp>(&cfg);
    assert!(count(&r, Kind::EarlyTimeout) > 0, "{r}");
    assert_eq!(r.violation_count(), count(&r, Kind::EarlyTimeout), "{r}");
}

/// A batch that forgets to wait for its held members (it revokes them deferred but reports a
/// waiting revoke): the per-member checks catch it.
struct BatchSkipsWait(Revocable<Payload>);

impl Subject for BatchSkipsWait {
    wraps_revocable!();
    const NAME: &'static str = "batch-skips-wait";
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        self.0.revoke_async()
    }
    fn revoke(&self) -> bool {
        self.0.revoke()
    }
    fn revoke_deferred(&self) -> bool {
        self.0.revoke_deferred()
    }
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, Self::Timeout> {
        self.0.revoke_timeout(timeout)
    }
    fn revoke_batch(
        batch: &[&Self],
        _deferred: bool,
        _timeout: Option<Duration>,
    ) -> Result<Vec<bool>, Self::Timeout> {
        let mut b = revocable::RevokeBatch::new();
        for r in batch {
            b.push(&r.0);
        }
        Ok(b.revoke_deferred())
    }
}

#[test]
fn a_batch_that_skips_the_wait_is_caught_per_member() {
    let mut cfg = short(Duration::from_secs(3));
    cfg.hold_max = Duration::from_millis(1);
    let (r, _) = run::<BatchSkipsWait>(&cfg);
    assert!(!r.passed(), "{r}");
    assert!(count(&r, Kind::ReturnedBeforeDrop) > 0, "{r}");
}

/// The real batch passes with batches on every other call.
#[test]
fn real_batches_pass() {
    let mut cfg = short(Duration::from_secs(2));
    cfg.batch_max = 32;
    let (r, _) = run::<Revocable<Payload>>(&cfg);
    assert!(r.passed(), "{r}");
    assert!(r.ops.batch > 0 && r.ops.batch_members > r.ops.batch, "{r}");
}

/// `revoke_async` that resolves without waiting for the holders (a deferred revoke in disguise).
struct AsyncSkipsWait(Revocable<Payload>);

impl Subject for AsyncSkipsWait {
    wraps_revocable!();
    const NAME: &'static str = "async-skips-wait";
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        std::future::ready(self.0.revoke_deferred())
    }
    fn revoke(&self) -> bool {
        self.0.revoke()
    }
    fn revoke_deferred(&self) -> bool {
        self.0.revoke_deferred()
    }
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, Self::Timeout> {
        self.0.revoke_timeout(timeout)
    }
}

#[test]
fn an_async_revoke_that_skips_the_wait_is_caught() {
    let mut cfg = Config::for_cores(2);
    cfg.duration = Duration::from_secs(2);
    cfg.hold_percent = 100.0;
    cfg.batch_max = 1;
    let report = torture::<AsyncSkipsWait>(&cfg, |_| {}).unwrap();
    assert!(!report.passed(), "{report}");
    assert!(report.ops.async_revoke > 0, "{report}");
    let kinds: Vec<_> = report.violations.iter().map(|(k, _)| k.name()).collect();
    assert!(
        kinds
            .iter()
            .any(|k| *k == "returned-before-drop" || *k == "pipe-too-short"),
        "{report}"
    );
}

#[test]
fn async_holders_take_accesses_across_awaits() {
    let mut cfg = Config::for_cores(2);
    cfg.duration = Duration::from_millis(800);
    cfg.async_holders = 32;
    let report = torture::<Revocable<Payload>>(&cfg, |_| {}).unwrap();
    assert!(report.passed(), "{report}");
    assert!(
        report.async_accesses > 0 && report.ops.async_revoke > 0,
        "{report}"
    );
}
