//! `revocable scale`: refscale/rcuscale for revocable — read-side cost of every primitive at
//! 1..N threads, update-side latency with 0 and k busy readers, and the wake-up latency from the
//! last holder's exit to the updater's return, as tables (ns and ratio to ours) and an SVG chart.
//!
//! The measurements are those of the `revocable-bench` harness: readers started together by a
//! barrier, pinned to CPUs, warmed up, repeated runs reported as medians, and a cool-down that
//! keeps the load on until the slowest reader is done.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use revocable_bench::affinity::core_count;
use revocable_bench::chart::{write_svg, write_svg_with, Axes, Series};
use revocable_bench::date::today_utc;
use revocable_bench::harness::timer_overhead_ns;
use revocable_bench::kind::measure_read_interleaved;
use revocable_bench::stats::{fmt_ns, fmt_ratio};
use revocable_bench::update_scale::{self, UpdateScaleConfig};
use revocable_bench::{Kind, ReadConfig, ReadResult, Summary, UpdateConfig, WakeupConfig};

/// Arguments of `revocable scale`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Measure the read side at 1..=N reader threads [default: the number of CPUs]. More than
    /// the CPU count is allowed (oversubscribed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,

    /// Busy-wait inside each read section, in nanoseconds (refscale's readdelay).
    #[arg(long, value_name = "NS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    delay_ns: u64,

    /// Primitives to measure, comma-separated [default: all]: ours, std-rwlock, parking-lot,
    /// rundown, per-slot, epoch, arc-swap, ours-send, tokio-rwlock.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_kind)]
    primitives: Vec<Kind>,

    /// Timed runs of each (primitive, thread count) pair, done in interleaved rounds (each round
    /// measures every pair once, so drifting machine load hits all alike); the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,

    /// Length of one read-side run, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    run_ms: u64,

    /// Warm-up before each timed run (all its readers together), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    warmup_ms: u64,

    /// Busy readers (k) during the "k holders" update measurement [default: CPUs - 1, at least 1].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1024))]
    holders: Option<u32>,

    /// Updates timed per update-side measurement.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    samples: u32,

    /// Wake-up samples (each holds a reader for --hold-us, then times the updater's wake-up).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    wakeup_samples: u32,

    /// How long the holder keeps its section once the updater waits, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    hold_us: u64,

    /// Skip the update side (read side only).
    #[arg(long)]
    no_update: bool,

    /// Do not pin threads to CPUs.
    #[arg(long)]
    no_pin: bool,

    /// Write a chart of read cost against thread count (one line per primitive) to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// Update side at scale: idle registered threads at which revoke() is timed, comma-separated
    /// (batches are timed at the smallest count and at 1000, or the largest; device unbind at
    /// 1000, or the largest).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,10,100,1000,4000",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    idle: Vec<u32>,

    /// Batch sizes of the update side at scale, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,10,100,1000,10000",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch_sizes: Vec<u32>,

    /// Devres per device in the unbind comparison (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    devres: u32,

    /// Skip the update side at scale (idle threads, batches, device unbind).
    #[arg(long)]
    no_update_scale: bool,

    /// Write a chart of the update side at scale (revoke, batch and one-by-one cost against idle
    /// threads, and the membarrier floor) to FILE.
    #[arg(long, value_name = "FILE")]
    update_svg: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse::<Kind>().map_err(|e| e.to_string())
}

/// Checks what clap cannot: that the chart can be written where asked (before a long run).
fn check_svg_path(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("--svg {}: is a directory", path.display()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "--svg {}: directory {} does not exist",
            path.display(),
            parent.display()
        ));
    }
    Ok(())
}

/// The measurement plan, resolved from the arguments.
#[derive(Debug)]
struct Plan {
    kinds: Vec<Kind>,
    max_threads: usize,
    rounds: usize,
    holders: usize,
    read: ReadConfig,
    update: Option<(UpdateConfig, WakeupConfig)>,
    svg: Option<PathBuf>,
    at_scale: Option<UpdateScaleConfig>,
    update_svg: Option<PathBuf>,
}

fn plan(args: Args, cores: usize) -> Result<Plan, String> {
    for p in args.svg.iter().chain(&args.update_svg) {
        check_svg_path(p)?;
    }
    if args.update_svg.is_some() && (args.no_update || args.no_update_scale) {
        return Err(
            "--update-svg needs the update side at scale (drop --no-update / --no-update-scale)"
                .into(),
        );
    }
    let mut idle: Vec<usize> = args.idle.iter().map(|&n| n as usize).collect();
    idle.sort_unstable();
    idle.dedup();
    let big = if idle.contains(&1000) {
        1000
    } else {
        idle.last().copied().unwrap_or(1)
    };
    let at_scale = (!args.no_update && !args.no_update_scale && !idle.is_empty()).then(|| {
        let mut batch_idle = vec![idle[0], big];
        batch_idle.dedup();
        UpdateScaleConfig {
            samples: (args.samples as usize).max(11),
            batch_sizes: args.batch_sizes.iter().map(|&n| n as usize).collect(),
            batch_idle,
            batch_samples: 11,
            devres: args.devres as usize,
            unbind_idle: big,
            unbind_samples: 15,
            idle: idle.clone(),
        }
    });
    let mut kinds: Vec<Kind> = Vec::new();
    for k in if args.primitives.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.primitives
    } {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let pin = !args.no_pin;
    let holders = args
        .holders
        .map_or(cores.saturating_sub(1).max(1), |h| h as usize);
    Ok(Plan {
        kinds,
        max_threads: args.threads.map_or(cores, |t| t as usize).max(1),
        rounds: args.runs as usize,
        holders,
        read: ReadConfig {
            threads: 1,
            runs: 1,
            run_time: Duration::from_millis(args.run_ms),
            warmup: Duration::from_millis(args.warmup_ms),
            delay_ns: args.delay_ns,
            pin,
        },
        update: (!args.no_update).then(|| {
            (
                UpdateConfig {
                    samples: args.samples as usize,
                    warmup_samples: (args.samples as usize / 20).clamp(1, 100),
                    holders,
                    delay_ns: args.delay_ns,
                    pin,
                },
                WakeupConfig {
                    samples: args.wakeup_samples as usize,
                    warmup_samples: (args.wakeup_samples as usize / 20).clamp(1, 20),
                    hold: Duration::from_micros(args.hold_us),
                    pin,
                },
            )
        }),
        svg: args.svg,
        at_scale,
        update_svg: args.update_svg,
    })
}

/// Update-side figures of one primitive.
struct UpdateRow {
    kind: Kind,
    idle: Summary,
    busy: Summary,
    wakeup: Option<Summary>,
}

/// Formats `value` and its ratio to ours (`ours` is `None` when ours was not measured).
fn with_ratio(value: f64, ours: Option<f64>) -> String {
    match ours {
        Some(o) if o > 0.0 => format!("{} ({})", fmt_ns(value), fmt_ratio(value / o)),
        _ => fmt_ns(value),
    }
}

/// The read-side table: one row per primitive, one column per thread count.
fn read_table(rows: &[(Kind, Vec<ReadResult>)], max_threads: usize) -> String {
    let ours = rows.iter().find(|r| r.0 == Kind::Ours);
    let mut s = String::from("| primitive |");
    for t in 1..=max_threads {
        let _ = write!(s, " {t} thr |");
    }
    s.push_str(" spread (max) |\n|---|");
    for _ in 0..=max_threads {
        s.push_str("---:|");
    }
    s.push('\n');
    for (kind, results) in rows {
        let _ = write!(s, "| {} |", kind.name());
        for (i, r) in results.iter().enumerate() {
            let o = ours.and_then(|o| o.1.get(i)).map(|o| o.summary.median);
            let _ = write!(s, " {} |", with_ratio(r.summary.median, o));
        }
        let spread = results
            .iter()
            .map(|r| r.summary.spread_pct())
            .fold(0.0, f64::max);
        let _ = writeln!(s, " {spread:.0}% |");
    }
    s
}

/// The update-side table.
fn update_table(rows: &[UpdateRow], holders: usize) -> String {
    let ours = rows.iter().find(|r| r.kind == Kind::Ours);
    let mut s = format!(
        "| primitive | waits for readers | 0 holders median | p99 | k={holders} busy readers median | p99 | wake-up median | p99 |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let (wm, wp) = match (&r.wakeup, ours.and_then(|o| o.wakeup)) {
            (Some(w), o) => (with_ratio(w.median, o.map(|o| o.median)), fmt_ns(w.p99)),
            (None, _) => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.kind.name(),
            if r.kind.waits_for_readers() {
                "yes"
            } else {
                "no (publish + defer)"
            },
            with_ratio(r.idle.median, ours.map(|o| o.idle.median)),
            fmt_ns(r.idle.p99),
            with_ratio(r.busy.median, ours.map(|o| o.busy.median)),
            fmt_ns(r.busy.p99),
            wm,
            wp
        );
    }
    s
}

fn chart_series(rows: &[(Kind, Vec<ReadResult>)]) -> Vec<Series> {
    rows.iter()
        .map(|(k, rs)| Series {
            name: k.name().to_string(),
            points: rs.iter().map(|r| (r.threads, r.summary.median)).collect(),
        })
        .collect()
}

/// Entry point of `revocable scale`.
pub fn run(args: Args) -> ExitCode {
    let cores = core_count();
    let plan = match plan(args, cores) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("revocable scale: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    println!(
        "revocable scale ({}): {} primitive(s), 1..={} reader thread(s) on {cores} CPU(s){}, in-section delay {} ns, \
         {} interleaved round(s) x {} ms, threads {}",
        today_utc(),
        plan.kinds.len(),
        plan.max_threads,
        if plan.max_threads > cores { " (oversubscribed)" } else { "" },
        plan.read.delay_ns,
        plan.rounds,
        plan.read.run_time.as_millis(),
        if plan.read.pin { "pinned" } else { "not pinned" },
    );

    let threads: Vec<usize> = (1..=plan.max_threads).collect();
    let total = plan.rounds * plan.kinds.len() * threads.len();
    let mut done = 0;
    let rows_results = measure_read_interleaved(
        &plan.kinds,
        &threads,
        plan.rounds,
        &plan.read,
        |round, kind, t, r| {
            done += 1;
            eprintln!(
                "[{done}/{total}] round {}: read {:<20} {t:>3} thr: {:>10}/op",
                round + 1,
                kind.name(),
                fmt_ns(r.summary.median),
            );
        },
    );
    let unpinned = plan.read.pin && rows_results.iter().flatten().any(|r| !r.pinned);
    let rows: Vec<(Kind, Vec<ReadResult>)> = plan.kinds.iter().copied().zip(rows_results).collect();
    println!();
    println!("## Read side: ns per enter+leave, per thread (x ours)");
    println!();
    print!("{}", read_table(&rows, plan.max_threads));
    if unpinned {
        println!("\nnote: some readers could not be pinned to a CPU");
    }

    if let Some((ucfg, wcfg)) = &plan.update {
        let mut urows = Vec::new();
        for (i, &kind) in plan.kinds.iter().enumerate() {
            eprintln!("[{}/{}] update {}", i + 1, plan.kinds.len(), kind.name());
            let idle = kind.measure_update(&UpdateConfig {
                holders: 0,
                ..ucfg.clone()
            });
            let busy = kind.measure_update(ucfg);
            let wakeup = kind.measure_wakeup(wcfg);
            urows.push(UpdateRow {
                kind,
                idle,
                busy,
                wakeup,
            });
        }
        println!();
        println!(
            "## Update side: one revoke / write lock / rundown / publish (x ours); wake-up = last holder leaves -> update returns"
        );
        println!();
        print!("{}", update_table(&urows, plan.holders));
        println!(
            "\nnote: each update is timed alone; the clock pair costs ~{} here, so figures near it are at the clock's resolution",
            fmt_ns(timer_overhead_ns())
        );
    }

    if let Some(cfg) = &plan.at_scale {
        let at_scale = update_scale::measure(cfg, |m| eprintln!("update at scale: {m}"));
        println!();
        println!("## Update side at scale: revoke vs idle threads, batches, device unbind");
        println!();
        print!("{}", at_scale.tables());
        if let Some(path) = &plan.update_svg {
            let title = format!(
                "update side vs idle registered threads ({cores} CPUs, {})",
                today_utc()
            );
            let axes = Axes {
                x: "idle registered threads (log)",
                y: "ns per call (log)",
                log_x: true,
            };
            match write_svg_with(path, &title, &axes, &at_scale.chart_series()) {
                Ok(()) => println!("\nchart written to {}", path.display()),
                Err(e) => {
                    eprintln!("revocable scale: --update-svg {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
        }
    }

    if let Some(path) = &plan.svg {
        let title = format!(
            "read-side cost vs threads ({cores} CPUs, delay {} ns, {})",
            plan.read.delay_ns,
            today_utc()
        );
        match write_svg(path, &title, &chart_series(&rows)) {
            Ok(()) => println!("\nchart written to {}", path.display()),
            Err(e) => {
                eprintln!("revocable scale: --svg {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        crate::parse_args("scale", argv)
    }

    #[test]
    fn defaults_follow_the_core_count() {
        let p = plan(parse(&[]).unwrap(), 4).unwrap();
        assert_eq!(p.kinds, Kind::ALL.to_vec());
        assert_eq!((p.max_threads, p.holders), (4, 3));
        assert!(p.read.pin && p.update.is_some() && p.svg.is_none());
        let p = plan(parse(&[]).unwrap(), 1).unwrap();
        assert_eq!((p.max_threads, p.holders), (1, 1));
    }

    #[test]
    fn flags_are_applied_and_primitives_deduplicated() {
        let a = parse(&[
            "--threads",
            "8",
            "--delay-ns",
            "100",
            "--primitives",
            "ours,epoch,ours",
            "--runs",
            "3",
            "--run-ms",
            "7",
            "--holders",
            "2",
            "--no-pin",
            "--no-update",
        ])
        .unwrap();
        let p = plan(a, 2).unwrap();
        assert_eq!(p.kinds, vec![Kind::Ours, Kind::EpochPin]);
        assert_eq!(
            (p.max_threads, p.holders, p.rounds, p.read.delay_ns),
            (8, 2, 3, 100)
        );
        assert_eq!(p.read.run_time, Duration::from_millis(7));
        assert!(!p.read.pin && p.update.is_none());
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        for bad in [
            &["--threads", "0"][..],
            &["--threads", "many"],
            &["--runs", "0"],
            &["--delay-ns", "-5"],
            &["--samples", "0"],
            &["--holders", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse(&["--primitives", "ours,mutex"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown primitive `mutex`") && e.contains("per-slot"),
            "{e}"
        );

        let dir = std::env::temp_dir();
        let e = plan(parse(&["--svg", dir.to_str().unwrap()]).unwrap(), 2).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
        let e = plan(parse(&["--svg", "/nonexistent-dir-xyz/c.svg"]).unwrap(), 2).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(plan(parse(&["--svg", "chart.svg"]).unwrap(), 2).is_ok());
    }

    #[test]
    fn a_tiny_run_prints_tables_and_writes_the_chart() {
        let dir = std::env::temp_dir().join(format!("revocable-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("scale.svg");
        let args = parse(&[
            "--threads",
            "2",
            "--primitives",
            "ours,std-rwlock,arc-swap",
            "--runs",
            "2",
            "--run-ms",
            "2",
            "--warmup-ms",
            "1",
            "--samples",
            "10",
            "--wakeup-samples",
            "3",
            "--hold-us",
            "100",
            "--idle",
            "1,3",
            "--batch-sizes",
            "1,20",
            "--devres",
            "10",
            "--update-svg",
            dir.join("update.svg").to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(run(args), ExitCode::SUCCESS);
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("std RwLock") && text.trim_end().ends_with("</svg>"));
        let update = std::fs::read_to_string(dir.join("update.svg")).unwrap();
        assert!(update.contains("RevokeBatch") && update.contains("idle registered threads"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tables_show_ratios_to_ours() {
        let fake = |threads, median| ReadResult {
            threads,
            summary: Summary::from_samples(&[median]).unwrap(),
            per_run: vec![median],
            iters_per_run: 64,
            pinned: true,
            failed_enters: 0,
        };
        let rows = vec![
            (Kind::Ours, vec![fake(1, 2.0), fake(2, 2.5)]),
            (Kind::StdRwLock, vec![fake(1, 6.0), fake(2, 50.0)]),
        ];
        let t = read_table(&rows, 2);
        assert!(t.starts_with("| primitive | 1 thr | 2 thr |"), "{t}");
        assert!(
            t.contains("| std RwLock | 6.00 ns (3.0x) | 50.0 ns (20x) |"),
            "{t}"
        );
        assert_eq!(chart_series(&rows)[1].points, vec![(1, 6.0), (2, 50.0)]);

        let s = |v| Summary::from_samples(&[v]).unwrap();
        let urows = vec![
            UpdateRow {
                kind: Kind::Ours,
                idle: s(1000.0),
                busy: s(2000.0),
                wakeup: Some(s(10_000.0)),
            },
            UpdateRow {
                kind: Kind::ArcSwap,
                idle: s(50.0),
                busy: s(60.0),
                wakeup: None,
            },
        ];
        let t = update_table(&urows, 3);
        assert!(t.contains("k=3 busy readers"), "{t}");
        assert!(
            t.contains("| arc_swap load | no (publish + defer) | 50.0 ns (0.050x) |"),
            "{t}"
        );
        assert!(t.contains("n/a"), "{t}");
    }
}
