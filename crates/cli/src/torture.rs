//! `revocable torture`: stress the core like the kernel's rcutorture (see `revocable-torture`).
//!
//! Prints a status line to stderr every `--interval` seconds and the summary to stdout. Exit status:
//! 0 when the run found nothing wrong, 1 on any violation or hang, 2 on bad arguments.
//!
//! With `--devfs` it tortures the device file system instead (see [`devfs_load`]): client
//! processes ([`devfs_client`]) cycling open/close on `cros_ec` while the EC is unplugged and
//! re-plugged.

mod devfs_client;
mod devfs_load;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use revocable::Revocable;
use revocable_torture::broken::{EarlyDrop, SkipWait};
use revocable_torture::payload::Payload;
use revocable_torture::{torture, Config, Progress, Report, Subject};

/// A deliberately broken implementation to torture instead of the real one (to see a failure).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Broken {
    /// Revoke returns without waiting for the holders.
    SkipWait,
    /// Revoke drops the data under its holders.
    EarlyDrop,
}

/// Arguments of `revocable torture`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long to run, in seconds [default: 30; 60 with --devfs].
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub duration: Option<u64>,
    /// Reader threads [default: 2 per core]; more than 2 per core needs --oversubscribe.
    #[arg(long, conflicts_with = "devfs", value_name = "N")]
    pub readers: Option<usize>,
    /// Revoker threads.
    #[arg(long, conflicts_with = "devfs", value_name = "N", default_value_t = 4)]
    pub revokers: usize,
    /// Revokers racing on the same resource at once (revokers are split in gangs of this size).
    #[arg(long, conflicts_with = "devfs", value_name = "N", default_value_t = 2)]
    pub racers: usize,
    /// Resources alive at once (each revoked one is replaced by a fresh one).
    #[arg(long, conflicts_with = "devfs", value_name = "N", default_value_t = 16)]
    pub resources: usize,
    /// Longest hold of a guard, in microseconds (holds are uniform in 0..=this).
    #[arg(
        long,
        conflicts_with = "devfs",
        value_name = "US",
        default_value_t = 200
    )]
    pub hold_max_us: u64,
    /// Percentage of accesses that hold their guard at all, busy or asleep (the others drop it
    /// at once); fractions allowed. Mostly short readers, occasional long ones, as rcutorture.
    #[arg(
        long,
        conflicts_with = "devfs",
        value_name = "PERCENT",
        default_value_t = 0.2
    )]
    pub hold_percent: f64,
    /// Percentage of holds that sleep instead of busy-waiting.
    #[arg(
        long,
        conflicts_with = "devfs",
        value_name = "PERCENT",
        default_value_t = 10
    )]
    pub sleep_percent: u32,
    /// Deepest nesting of guards in one reader (on one resource or several).
    #[arg(long, conflicts_with = "devfs", value_name = "N", default_value_t = 3)]
    pub nest_max: usize,
    /// Largest batch a revoker builds: 3 in 10 revoke calls revoke the gang's target together
    /// with up to N-1 random other resources as one `RevokeBatch` (duplicates allowed), with
    /// every check applied per member. 1 disables batches.
    #[arg(long, conflicts_with = "devfs", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_max: u64,
    /// Async holders: tokio tasks (on a 2-worker runtime) that hold Send guards across `.await`
    /// yields and sleeps; 1 in 10 single revokes is a `revoke_async`. 0 disables the holders.
    #[arg(long, conflicts_with = "devfs", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub async_holders: u64,
    /// Seed of every random choice [default: from the clock; printed, so a run can be repeated].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// A revoke running longer than this is a hang: the watchdog reports it and the run fails.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub stall_ms: u64,
    /// Allow more than 2 readers per core.
    #[arg(long, conflicts_with = "devfs")]
    pub oversubscribe: bool,
    /// Seconds between status lines on stderr [default: 1; 5 with --devfs].
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: Option<u64>,
    /// Torture a deliberately broken implementation (the run must fail).
    #[arg(long, conflicts_with = "devfs", value_enum, hide = true)]
    pub broken: Option<Broken>,
    /// Torture the device file system instead of the core: client processes run open →
    /// read-or-ioctl → close cycles on cros_ec while the EC is unplugged and re-plugged.
    #[arg(long)]
    pub devfs: bool,
    /// With --devfs: client processes.
    #[arg(long, requires = "devfs", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// With --devfs: open/close cycles per second, over all clients.
    #[arg(long, requires = "devfs", value_name = "PER_SEC", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// With --devfs: unplug the EC every MS milliseconds (it is re-plugged half a period later).
    #[arg(long, requires = "devfs", value_name = "MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(2..=3_600_000))]
    pub replug_ms: u64,
    /// With --devfs: largest accepted growth of the server's resident memory (VmRSS) over the
    /// run, in MiB. A 60 s run grows by under 1 MiB here; a leak of 200 bytes per open trips 4.
    #[arg(long, requires = "devfs", value_name = "MIB", default_value_t = 4)]
    pub rss_growth_max_mib: u64,
    /// (internal) run as a --devfs client on this device file.
    #[arg(long, value_name = "PATH", hide = true)]
    pub devfs_client: Option<PathBuf>,
    /// (internal) the client's cycles per second.
    #[arg(long, hide = true, default_value_t = 250)]
    pub client_rate: u64,
    /// (internal) how long the client runs, in milliseconds.
    #[arg(long, hide = true, default_value_t = 1000)]
    pub client_ms: u64,
}

fn clock_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

/// Builds the run's configuration from the arguments.
fn config(args: &Args) -> Config {
    let mut cfg = Config::for_this_machine();
    cfg.duration = Duration::from_secs(args.duration.unwrap_or(30));
    if let Some(r) = args.readers {
        cfg.readers = r;
    }
    cfg.revokers = args.revokers;
    cfg.racers = args.racers;
    cfg.resources = args.resources;
    cfg.hold_max = Duration::from_micros(args.hold_max_us);
    cfg.hold_percent = args.hold_percent;
    cfg.sleep_percent = args.sleep_percent;
    cfg.nest_max = args.nest_max;
    cfg.batch_max = args.batch_max as usize;
    cfg.async_holders = args.async_holders as usize;
    cfg.seed = args.seed.unwrap_or_else(clock_seed);
    cfg.stall = Duration::from_millis(args.stall_ms);
    cfg.oversubscribe = args.oversubscribe;
    cfg.progress_interval = Duration::from_secs(args.interval.unwrap_or(1));
    cfg
}

fn go<S: Subject>(cfg: &Config) -> Result<Report, revocable_torture::ConfigError> {
    torture::<S>(cfg, |p: &Progress| eprintln!("{p}"))
}

/// The configuration of `--devfs` from the arguments.
fn devfs_config(args: &Args) -> devfs_load::Config {
    devfs_load::Config {
        duration: Duration::from_secs(args.duration.unwrap_or(60)),
        clients: args.clients as usize,
        rate: args.rate,
        replug: Duration::from_millis(args.replug_ms),
        stall: Duration::from_millis(args.stall_ms),
        rss_growth_max_kib: args.rss_growth_max_mib.saturating_mul(1024),
        interval: Duration::from_secs(args.interval.unwrap_or(5)),
        seed: args.seed.unwrap_or_else(clock_seed),
    }
}

/// Entry point of `revocable torture`.
pub fn run(args: Args) -> ExitCode {
    if let Some(dev) = &args.devfs_client {
        return devfs_client::run_client(
            dev,
            args.client_rate,
            Duration::from_millis(args.client_ms),
            args.seed.unwrap_or_else(clock_seed),
        );
    }
    if args.devfs {
        return devfs_load::run(&devfs_config(&args));
    }
    let cfg = config(&args);
    if let Err(e) = cfg.validate() {
        eprintln!("revocable torture: error: {e}");
        return ExitCode::from(2);
    }
    eprintln!(
        "torture: {}s, {} readers, {} revokers ({} racing), {} resources, holds up to {}µs \
         ({}% hold, {}% of holds sleep), nesting up to {}, batches up to {}, {} async holders, \
         stall bound {}ms, \
         seed {} (repeat with --seed {})",
        cfg.duration.as_secs(),
        cfg.readers,
        cfg.revokers,
        cfg.racers,
        cfg.resources,
        args.hold_max_us,
        cfg.hold_percent,
        cfg.sleep_percent,
        cfg.nest_max,
        cfg.batch_max,
        cfg.async_holders,
        args.stall_ms,
        cfg.seed,
        cfg.seed
    );
    let result = match args.broken {
        None => go::<Revocable<Payload>>(&cfg),
        Some(Broken::SkipWait) => go::<SkipWait>(&cfg),
        Some(Broken::EarlyDrop) => go::<EarlyDrop>(&cfg),
    };
    match result {
        Err(e) => {
            eprintln!("revocable torture: error: {e}");
            ExitCode::from(2)
        }
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        crate::parse_args("torture", argv)
    }

    #[test]
    fn flags_map_to_the_configuration() {
        let a = parse(&[
            "--duration",
            "20",
            "--readers",
            "3",
            "--revokers",
            "5",
            "--racers",
            "5",
            "--resources",
            "7",
            "--hold-max-us",
            "50",
            "--sleep-percent",
            "30",
            "--seed",
            "9",
            "--stall-ms",
            "700",
            "--nest-max",
            "4",
            "--hold-percent",
            "80",
        ])
        .unwrap();
        let c = config(&a);
        assert_eq!(c.duration, Duration::from_secs(20));
        assert_eq!((c.readers, c.revokers, c.racers, c.resources), (3, 5, 5, 7));
        assert_eq!(c.hold_max, Duration::from_micros(50));
        assert_eq!(
            (c.sleep_percent, c.hold_percent, c.nest_max, c.seed),
            (30, 80.0, 4, 9)
        );
        assert_eq!(c.stall, Duration::from_millis(700));
        assert!(a.broken.is_none());
    }

    #[test]
    fn flags_of_the_other_mode_are_refused() {
        for argv in [
            &["--devfs", "--readers", "3"][..],
            &["--devfs", "--revokers", "3"],
            &["--devfs", "--oversubscribe"],
            &["--clients", "3"],
            &["--rate", "10"],
            &["--replug-ms", "50"],
        ] {
            let e = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert!(
                matches!(
                    e.kind(),
                    clap::error::ErrorKind::ArgumentConflict
                        | clap::error::ErrorKind::MissingRequiredArgument
                ),
                "{argv:?}: {e}"
            );
        }
        // Defaults of the other mode do not count, nor the flags both modes take.
        assert!(parse(&[
            "--devfs",
            "--clients",
            "3",
            "--duration",
            "5",
            "--seed",
            "1"
        ])
        .is_ok());
        assert!(parse(&["--readers", "3", "--stall-ms", "100"]).is_ok());
    }

    #[test]
    fn bad_flags_are_refused_with_clear_errors() {
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--duration", "ten"]).is_err());
        assert!(parse(&["--readers", "-1"]).is_err());
        assert!(parse(&["--broken", "sometimes"]).is_err());
        let a = parse(&["--sleep-percent", "150"]).unwrap();
        assert!(config(&a)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sleep-percent"));
        let a = parse(&["--hold-percent", "150"]).unwrap();
        assert_eq!(
            config(&a).validate().unwrap_err().to_string(),
            "hold-percent must be a percentage from 0 to 100, not 150"
        );
        assert!(parse(&["--hold-percent", "lots"]).is_err());
        let a = parse(&["--racers", "9"]).unwrap();
        assert!(config(&a)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("racers"));
        let a = parse(&["--readers", "100000"]).unwrap();
        assert!(config(&a).validate().is_err());
        let a = parse(&["--broken", "early-drop"]).unwrap();
        assert!(matches!(a.broken, Some(Broken::EarlyDrop)));
    }

    #[test]
    fn devfs_flags_map_to_the_load_configuration() {
        let a = parse(&["--devfs"]).unwrap();
        let c = devfs_config(&a);
        assert!(a.devfs);
        assert_eq!(c.duration, Duration::from_secs(60));
        assert_eq!((c.clients, c.rate), (4, 1000));
        assert_eq!(c.replug, Duration::from_millis(100));
        assert_eq!(c.stall, Duration::from_millis(5000));
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.rss_growth_max_kib, 4 * 1024);
        let a = parse(&[
            "--devfs",
            "--duration",
            "7",
            "--clients",
            "3",
            "--rate",
            "300",
            "--replug-ms",
            "40",
            "--seed",
            "5",
            "--rss-growth-max-mib",
            "2",
        ])
        .unwrap();
        let c = devfs_config(&a);
        assert_eq!(c.duration, Duration::from_secs(7));
        assert_eq!((c.clients, c.rate, c.seed), (3, 300, 5));
        assert_eq!(c.replug, Duration::from_millis(40));
        assert_eq!(c.rss_growth_max_kib, 2048);
        // The core torture keeps its own defaults.
        assert_eq!(
            config(&parse(&[]).unwrap()).duration,
            Duration::from_secs(30)
        );
        for bad in [
            &["--devfs", "--clients", "0"][..],
            &["--devfs", "--rate", "0"],
            &["--devfs", "--replug-ms", "1"],
            &["--devfs", "--clients", "many"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn exit_status_tells_pass_fail_and_usage_error() {
        let a = parse(&["--duration", "1", "--seed", "3", "--interval", "1"]).unwrap();
        assert_eq!(run(a), ExitCode::SUCCESS);
        let a = parse(&["--duration", "1", "--broken", "early-drop"]).unwrap();
        assert_eq!(run(a), ExitCode::from(1));
        let a = parse(&["--duration", "1", "--broken", "skip-wait"]).unwrap();
        assert_eq!(run(a), ExitCode::from(1));
        let a = parse(&["--duration", "1", "--resources", "0"]).unwrap();
        assert_eq!(run(a), ExitCode::from(2));
    }
}
