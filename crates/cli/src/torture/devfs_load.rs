//! `revocable torture --devfs`: devfs under load. Mounts devfs in a temporary directory, starts
//! client processes (this binary re-executed in the hidden mode `torture --devfs-client PATH`,
//! see [`super::devfs_client`]) that run paced open → read-or-ioctl → close cycles on `cros_ec`, and unplugs and re-plugs the
//! EC through the `control` file on a fixed schedule. At the end it checks that no client got
//! stuck, that every open was released (opens == releases, no file left open) and that the
//! server's resident memory stayed within a bound, and prints a summary.
//!
//! Each client has a heartbeat thread that reports, every 100 ms, its counters and the operation
//! in flight with its age; the parent's watchdog calls a client stuck when an operation has been
//! in flight (or no heartbeat arrived) for longer than the stall bound, and names it.
//!
//! Invariant: the run never waits without a bound, and always unmounts and removes its directory:
//! a stuck client ends the run, the session is stopped (which aborts the connection, so nothing
//! can stay blocked on it) and the client is killed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use revocable_devfs::server::Devfs;

use super::devfs_client::{Counters, Op};

/// How long the server may take to see the last RELEASEs after the clients exited.
const SETTLE: Duration = Duration::from_secs(5);

/// What the parent runs: the parsed flags of `torture --devfs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Length of the load phase.
    pub duration: Duration,
    /// Client processes.
    pub clients: usize,
    /// Open/close cycles per second, over all clients.
    pub rate: u64,
    /// Unplug period: every period the EC is unplugged, and re-plugged half a period later.
    pub replug: Duration,
    /// A client operation (or a control write) in flight longer than this is a stuck client.
    pub stall: Duration,
    /// Largest accepted growth of the server's resident set, in KiB.
    pub rss_growth_max_kib: u64,
    /// Time between progress lines on stderr.
    pub interval: Duration,
    /// Seed of the clients' choices of operation.
    pub seed: u64,
}

/// What the parent knows about a client.
#[derive(Clone, Debug)]
struct View {
    last: Counters,
    last_seen: Instant,
    done: bool,
    /// The client's stdout closed (it exited, or died).
    gone: bool,
}

/// The watchdog's verdict on one client at `now`: `Some(reason)` when it is stuck.
fn stuck(v: &View, now: Instant, stall: Duration) -> Option<String> {
    if v.done {
        return None;
    }
    if v.gone {
        return Some("exited without its final report".into());
    }
    let silent = now.saturating_duration_since(v.last_seen);
    // The age reported on the last heartbeat, plus the time since it.
    let in_flight = Duration::from_millis(v.last.op_ms) + silent;
    if v.last.op != 0 && in_flight > stall {
        return Some(format!(
            "{} in flight for {:.1} s",
            Op::from_code(v.last.op).name(),
            in_flight.as_secs_f64()
        ));
    }
    if silent > stall {
        return Some(format!(
            "no heartbeat for {:.1} s (last operation: {})",
            silent.as_secs_f64(),
            Op::from_code(v.last.op).name()
        ));
    }
    None
}

struct Client {
    name: String,
    child: Child,
    view: Arc<Mutex<View>>,
}

impl Client {
    fn spawn(i: usize, cfg: &Config, dev: &Path) -> Result<Client, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
        let rate = (cfg.rate / cfg.clients as u64
            + u64::from((i as u64) < cfg.rate % cfg.clients as u64))
        .max(1);
        let mut child = Command::new(exe)
            .arg("torture")
            .arg("--devfs-client")
            .arg(dev)
            .args([
                "--client-rate".to_string(),
                rate.to_string(),
                "--client-ms".to_string(),
                cfg.duration.as_millis().to_string(),
                "--seed".to_string(),
                (cfg.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a client: {e}"))?;
        let out = child.stdout.take().ok_or("no client stdout")?;
        let view = Arc::new(Mutex::new(View {
            last: Counters::default(),
            last_seen: Instant::now(),
            done: false,
            gone: false,
        }));
        let v = view.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((tag, c)) = Counters::parse(&l) {
                    let mut v = v.lock().unwrap_or_else(|e| e.into_inner());
                    v.last = c;
                    v.last_seen = Instant::now();
                    v.done |= tag == "DONE";
                }
            }
            v.lock().unwrap_or_else(|e| e.into_inner()).gone = true;
        });
        Ok(Client {
            name: format!("client-{} (pid {})", i + 1, child.id()),
            child,
            view,
        })
    }

    fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The unplug/re-plug schedule, run on its own thread through the `control` file.
#[derive(Default)]
struct Replugger {
    unplugs: AtomicU64,
    replugs: AtomicU64,
    failures: AtomicU64,
    /// Start of the control write in flight, in ms since the run's start + 1 (0 when idle).
    busy_since_ms: AtomicU64,
    stop: AtomicBool,
}

impl Replugger {
    fn write(&self, ctl: &Path, line: &str, t0: Instant) -> bool {
        self.busy_since_ms
            .store(t0.elapsed().as_millis() as u64 + 1, Relaxed);
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open(ctl)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        self.busy_since_ms.store(0, Relaxed);
        if let Err(e) = &r {
            self.failures.fetch_add(1, Relaxed);
            eprintln!(
                "torture --devfs: control write {:?} failed: {e}",
                line.trim()
            );
        }
        r.is_ok()
    }

    fn sleep_until(&self, t: Instant) -> bool {
        loop {
            if self.stop.load(Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= t {
                return true;
            }
            std::thread::sleep((t - now).min(Duration::from_millis(10)));
        }
    }

    fn run(&self, ctl: &Path, period: Duration, t0: Instant) {
        let mut tick = Instant::now();
        loop {
            tick += period;
            if !self.sleep_until(tick - period / 2) {
                return;
            }
            if self.write(ctl, "unbind cros_ec\n", t0) {
                self.unplugs.fetch_add(1, Relaxed);
            }
            // Re-plug even when stopping: the run ends with the EC bound.
            let _ = self.sleep_until(tick);
            if self.write(ctl, "bind cros_ec\n", t0) {
                self.replugs.fetch_add(1, Relaxed);
            }
            if Instant::now() > tick + period {
                tick = Instant::now(); // far behind: do not burst
            }
        }
    }

    /// The watchdog's verdict on the control writer.
    fn stuck(&self, t0: Instant, stall: Duration) -> Option<String> {
        let since = self.busy_since_ms.load(Relaxed);
        let now = t0.elapsed().as_millis() as u64 + 1;
        (since != 0 && now.saturating_sub(since) > stall.as_millis() as u64).then(|| {
            format!(
                "control write (unplug/re-plug) in flight for {:.1} s",
                (now - since) as f64 / 1e3
            )
        })
    }
}

/// The resident set size of this process, in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn sum(clients: &[Client]) -> Counters {
    let mut t = Counters::default();
    for c in clients {
        let v = c.view().last;
        t.cycles += v.cycles;
        t.opened += v.opened;
        t.enodev += v.enodev;
        t.revoked += v.revoked;
        t.eagain += v.eagain;
        t.other += v.other;
        t.max_cycle_us = t.max_cycle_us.max(v.max_cycle_us);
        if v.other > 0 {
            t.last_errno = v.last_errno;
        }
    }
    t
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The run's findings.
#[derive(Debug, Default)]
struct Outcome {
    stuck: Vec<String>,
    failures: Vec<String>,
}

/// Entry point of `revocable torture --devfs`.
pub fn run(cfg: &Config) -> ExitCode {
    if cfg.clients == 0 || cfg.rate == 0 {
        eprintln!("revocable torture: error: --clients and --rate must be at least 1");
        return ExitCode::from(2);
    }
    let dir = match crate::tempdir::make("revocable-torture") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("revocable torture: error: {e}");
            return ExitCode::from(1);
        }
    };
    // Blocked before the server threads start, so that they inherit the mask.
    let set = crate::devfs::block_stop_signals();
    let code = match Devfs::mount(&dir, revocable_devfs::server::DEFAULT_THREADS) {
        Ok(fs) => run_mounted(cfg, &dir, fs, set),
        Err(e) => {
            eprintln!("revocable torture: error: cannot mount devfs: {e}");
            ExitCode::from(1)
        }
    };
    let _ = std::fs::remove_dir(&dir);
    code
}

fn run_mounted(cfg: &Config, dir: &Path, mut fs: Devfs, set: libc::sigset_t) -> ExitCode {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        std::thread::spawn(move || {
            if crate::devfs::wait_for_stop_signal(&set).is_some() {
                eprintln!("torture --devfs: interrupted, finishing early");
                interrupted.store(true, Relaxed);
            }
        });
    }
    let rss_before = rss_kib().unwrap_or(0);
    eprintln!(
        "torture --devfs: {} s, {} client processes, {} cycles/s in total, unplug every {} ms \
         (re-plug {} ms later), stall bound {} ms, RSS growth bound {} MiB, seed {} \
         (repeat with --seed {}); devfs at {}",
        cfg.duration.as_secs_f64(),
        cfg.clients,
        cfg.rate,
        cfg.replug.as_millis(),
        (cfg.replug / 2).as_millis(),
        cfg.stall.as_millis(),
        mib(cfg.rss_growth_max_kib),
        cfg.seed,
        cfg.seed,
        dir.display()
    );
    let mut out = Outcome::default();
    let dev = dir.join("cros_ec");
    let mut clients = Vec::new();
    for i in 0..cfg.clients {
        match Client::spawn(i, cfg, &dev) {
            Ok(c) => clients.push(c),
            Err(e) => {
                out.failures.push(e);
                break;
            }
        }
    }
    let t0 = Instant::now();
    let rep = Arc::new(Replugger::default());
    let rep_thread = {
        let (rep, ctl, period) = (rep.clone(), dir.join("control"), cfg.replug);
        std::thread::spawn(move || rep.run(&ctl, period, t0))
    };

    // Load phase, then the clients' final reports; the watchdog runs throughout.
    let end = t0 + cfg.duration;
    let deadline = end + cfg.stall + Duration::from_secs(2);
    let mut next_progress = t0 + cfg.interval;
    let mut stopped_replug = false;
    // A second sample once the run is warm (threads started, allocator arenas grown): the growth
    // after it is the steady-state one.
    let warm_at = t0 + cfg.duration / 10;
    let mut rss_warm = None;
    while out.failures.is_empty() {
        let now = Instant::now();
        if rss_warm.is_none() && now >= warm_at {
            rss_warm = rss_kib();
        }
        if now >= end && !stopped_replug {
            rep.stop.store(true, Relaxed);
            stopped_replug = true;
        }
        for c in &clients {
            if let Some(why) = stuck(&c.view(), now, cfg.stall) {
                out.stuck.push(format!("{}: {why}", c.name));
            }
        }
        if let Some(why) = rep.stuck(t0, cfg.stall) {
            out.stuck.push(why);
        }
        if !out.stuck.is_empty() || interrupted.load(Relaxed) {
            break;
        }
        if clients.iter().all(|c| c.view().done) && stopped_replug {
            break;
        }
        if now > deadline {
            out.stuck.push("clients did not finish in time".into());
            break;
        }
        if now >= next_progress {
            next_progress += cfg.interval;
            let t = sum(&clients);
            let el = t0.elapsed().as_secs_f64();
            eprintln!(
                "torture --devfs: {:>5.1}/{:.0} s  cycles {} ({:.0}/s)  ENODEV {}+{}  unplugs {}  \
                 opens {} releases {}  RSS {:.1} MiB",
                el,
                cfg.duration.as_secs_f64(),
                t.cycles,
                t.cycles as f64 / el.max(1e-9),
                t.enodev,
                t.revoked,
                rep.unplugs.load(Relaxed),
                fs.stats().opens.load(Relaxed),
                fs.stats().releases.load(Relaxed),
                mib(rss_kib().unwrap_or(0))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t0.elapsed().min(cfg.duration.max(Duration::from_millis(1)));
    rep.stop.store(true, Relaxed);
    if interrupted.load(Relaxed) {
        out.failures.push("interrupted".into());
    }
    let early = !out.stuck.is_empty() || !out.failures.is_empty();
    // Control writes that failed before an early stop; the stop aborts the connection, and the
    // write in flight then fails because of it, not of the devfs under test.
    let failed_before_stop = rep.failures.load(Relaxed);
    if early {
        // Stop the session first: it aborts the connection, so no client (nor the control
        // writer) can stay blocked in a request, then kill what is left.
        fs.stopper().stop();
        for c in &mut clients {
            let _ = c.child.kill();
        }
    }
    // A stuck control writer is unblocked by the stop above.
    let _ = rep_thread.join();
    for c in &mut clients {
        let _ = c.child.wait();
    }
    let totals = sum(&clients);

    // Every RELEASE is sent after the close that caused it: wait (bounded) for the last ones.
    let t = Instant::now();
    while !early
        && (fs.stats().opens.load(Relaxed) != fs.stats().releases.load(Relaxed)
            || fs.open_files() != 0)
        && t.elapsed() < SETTLE
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (opens, releases, open_now) = (
        fs.stats().opens.load(Relaxed),
        fs.stats().releases.load(Relaxed),
        fs.open_files(),
    );
    let rss_after = rss_kib().unwrap_or(0);
    fs.stopper().stop();
    fs.join();
    let at_end = fs.stats().releases_at_end.load(Relaxed);

    // A run that ended early aborted the connection under open files: the server released them
    // at unmount, which is correct; otherwise every file must have been released by its client.
    let balanced = if early {
        opens == releases + at_end
    } else {
        opens == releases && open_now == 0 && at_end == 0
    };
    if !balanced {
        out.failures.push(format!(
            "leaked file handles: opens {opens}, releases {releases}, still open {open_now}, \
             released at unmount {at_end}"
        ));
    }
    if totals.other > 0 {
        out.failures.push(format!(
            "{} client operations failed unexpectedly or returned wrong data (last: {})",
            totals.other,
            match totals.last_errno {
                0 => "wrong data".to_string(),
                e => std::io::Error::from_raw_os_error(e as i32).to_string(),
            }
        ));
    }
    let failed_writes = if early {
        failed_before_stop
    } else {
        rep.failures.load(Relaxed)
    };
    if failed_writes > 0 {
        out.failures
            .push(format!("{failed_writes} control writes failed"));
    }
    let growth = rss_after.saturating_sub(rss_before);
    if rss_before == 0 || rss_after == 0 {
        out.failures
            .push("cannot read VmRSS from /proc/self/status".into());
    } else if growth > cfg.rss_growth_max_kib {
        out.failures.push(format!(
            "server memory grew by {:.1} MiB, above the bound of {:.1} MiB",
            mib(growth),
            mib(cfg.rss_growth_max_kib)
        ));
    }

    let secs = elapsed.as_secs_f64();
    println!(
        "devfs torture summary ({secs:.1} s, {} client processes)",
        clients.len()
    );
    println!(
        "  cycles            {} ({:.0}/s achieved, {} requested), {} opened, longest {:.1} ms",
        totals.cycles,
        totals.cycles as f64 / secs.max(1e-9),
        cfg.rate,
        totals.opened,
        totals.max_cycle_us as f64 / 1e3
    );
    println!(
        "  expected errors   ENODEV {} on open (EC unplugged), ENODEV {} on open files (revoked \
         under them), EAGAIN {} (no event queued)",
        totals.enodev, totals.revoked, totals.eagain
    );
    println!("  unexpected        {}", totals.other);
    println!(
        "  EC                {} unplugs, {} re-plugs (every {} ms)",
        rep.unplugs.load(Relaxed),
        rep.replugs.load(Relaxed),
        cfg.replug.as_millis()
    );
    println!(
        "  file handles      opens {opens}, releases {releases}, still open {open_now}, \
         released at unmount {at_end}: {}",
        if balanced { "balanced" } else { "LEAKED" }
    );
    println!(
        "                    ({} opens of cros_ec by the clients, {} of control by the \
         re-plugger)",
        totals.opened,
        rep.unplugs.load(Relaxed) + rep.replugs.load(Relaxed) + failed_writes
    );
    println!(
        "  server RSS        before {:.1} MiB, after {:.1} MiB, growth {:+.1} MiB (bound {:.1} MiB)",
        mib(rss_before),
        mib(rss_after),
        (rss_after as f64 - rss_before as f64) / 1024.0,
        mib(cfg.rss_growth_max_kib)
    );
    if let Some(w) = rss_warm {
        println!(
            "  server RSS warm   {:.1} MiB at {:.0} s, growth since {:+.2} MiB",
            mib(w),
            (cfg.duration / 10).as_secs_f64(),
            (rss_after as f64 - w as f64) / 1024.0
        );
    }
    println!(
        "  stuck clients     {}",
        if out.stuck.is_empty() {
            "none".to_string()
        } else {
            out.stuck.len().to_string()
        }
    );
    for s in &out.stuck {
        println!("    STUCK: {s}");
    }
    for f in &out.failures {
        println!("  FAILED: {f}");
    }
    if out.stuck.is_empty() && out.failures.is_empty() {
        println!("  result            PASS");
        ExitCode::SUCCESS
    } else {
        println!("  result            FAIL");
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(op: Op, op_ms: u64, seen_ago: Duration, now: Instant) -> View {
        View {
            last: Counters {
                op: op as u64,
                op_ms,
                ..Default::default()
            },
            last_seen: now - seen_ago,
            done: false,
            gone: false,
        }
    }

    #[test]
    fn watchdog_names_the_stuck_operation() {
        let now = Instant::now() + Duration::from_secs(60);
        let stall = Duration::from_secs(5);
        assert_eq!(
            stuck(&view(Op::Idle, 0, Duration::ZERO, now), now, stall),
            None
        );
        assert_eq!(
            stuck(
                &view(Op::Open, 4000, Duration::from_millis(100), now),
                now,
                stall
            ),
            None
        );
        let s = stuck(
            &view(Op::ReadMem, 4000, Duration::from_millis(1500), now),
            now,
            stall,
        )
        .unwrap();
        assert!(s.contains("ioctl RDMEM in flight for 5.5 s"), "{s}");
        let s = stuck(&view(Op::Idle, 0, Duration::from_secs(6), now), now, stall).unwrap();
        assert!(s.contains("no heartbeat"), "{s}");
        let mut v = view(Op::Close, 9000, Duration::from_secs(9), now);
        v.done = true;
        assert_eq!(stuck(&v, now, stall), None);
        v.done = false;
        v.gone = true;
        assert!(stuck(&v, now, stall).unwrap().contains("exited"));
    }

    #[test]
    fn rss_is_readable() {
        assert!(rss_kib().unwrap() > 0);
    }
}
