//! The core benchmark: ours beside every baseline in one process, and DESIGN.md's performance
//! targets printed as measured ratios with PASS/FAIL.
//!
//! `cargo bench -p revocable-bench --bench core` (under a minute, ~30 s on 2 CPUs);
//! `REVOCABLE_BENCH_QUICK=1 cargo bench -p revocable-bench --bench core` or `-- --quick`
//! for a run of a few seconds (noisier figures, same table).

use std::hint::black_box;
use std::time::Duration;

use revocable::Revocable;
use revocable_bench::affinity::core_count;
use revocable_bench::async_wakeup::{self, Flavor};
use revocable_bench::harness::{sample_latency, timer_overhead_ns};
use revocable_bench::kind::measure_read_interleaved;
use revocable_bench::stats::fmt_ns;
use revocable_bench::{
    measure_ns_per_iter, membarrier, Kind, ReadConfig, Summary, UpdateConfig, WakeupConfig,
};

struct Settings {
    quick: bool,
    runs: usize,
    run_time: Duration,
    warmup: Duration,
    update_samples: usize,
    wakeup_samples: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let env_quick =
            std::env::var("REVOCABLE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let quick = env_quick || std::env::args().any(|a| a == "--quick");
        if quick {
            Settings {
                quick,
                runs: 3,
                run_time: Duration::from_millis(15),
                warmup: Duration::from_millis(3),
                update_samples: 200,
                wakeup_samples: 60,
            }
        } else {
            Settings {
                quick,
                runs: 9,
                run_time: Duration::from_millis(150),
                warmup: Duration::from_millis(30),
                update_samples: 2000,
                wakeup_samples: 400,
            }
        }
    }
}

/// One DESIGN.md target: measured ratio against a limit.
struct Target {
    what: String,
    ours: String,
    baseline: String,
    ratio: f64,
    limit: f64,
    unit: &'static str,
}

impl Target {
    fn pass(&self) -> bool {
        self.ratio <= self.limit
    }
}

fn cell(s: &Summary) -> String {
    format!("{} ±{:.0}%", fmt_ns(s.median), s.spread_pct())
}

fn main() {
    let st = Settings::from_env();
    let cores = core_count();
    println!(
        "revocable core benchmark ({}, {} run; {cores} CPUs; read side: medians of {} interleaved rounds, ± = (max-min)/median)",
        revocable_bench::date::today_utc(),
        if st.quick { "quick" } else { "full" },
        st.runs
    );
    if cores < 2 {
        println!("note: fewer than 2 CPUs available: the 2-thread figures are oversubscribed");
    }
    let membarrier_ok = membarrier::register();
    if let Err(e) = &membarrier_ok {
        println!("note: membarrier unavailable ({e}); the revoke target is skipped");
    }

    // ---- Read side: every primitive at 1 and 2 threads. ----
    // Interleaved rounds: each round measures every primitive once at 1 and at 2 threads, so a
    // change of machine load hits all of them alike.
    let cfg = ReadConfig {
        runs: 1,
        run_time: st.run_time,
        warmup: st.warmup,
        ..ReadConfig::default()
    };
    let grid = measure_read_interleaved(&Kind::ALL, &[1, 2], st.runs, &cfg, |round, k, t, r| {
        eprintln!(
            "[bench] read side, round {}/{}: {} at {t} thread(s): {}/op",
            round + 1,
            st.runs,
            k.name(),
            fmt_ns(r.summary.median)
        );
    });
    let pinned = grid.iter().flatten().all(|r| r.pinned);
    let read: Vec<(Kind, Summary, Summary)> = Kind::ALL
        .iter()
        .zip(&grid)
        .map(|(&k, row)| (k, row[0].summary, row[1].summary))
        .collect();
    let ours1 = read[0].1.median;
    let ours2 = read[0].2.median;
    println!();
    println!(
        "## Read side: enter+leave, ns per op per thread{}",
        if pinned {
            " (threads pinned)"
        } else {
            " (NOT pinned)"
        }
    );
    println!();
    println!(
        "| primitive | 1 thread | 2 threads | 2 thr / 1 thr | x ours (1 thr) | x ours (2 thr) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, one, two) in &read {
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.1} |",
            k.name(),
            cell(one),
            cell(two),
            two.median / one.median,
            one.median / ours1,
            two.median / ours2
        );
    }
    let by = |kind: Kind| {
        read.iter()
            .find(|r| r.0 == kind)
            .map(|r| (r.1.median, r.2.median))
            .unwrap_or((f64::NAN, f64::NAN))
    };

    // ---- Update side. ----
    let ucfg = |holders| UpdateConfig {
        samples: st.update_samples,
        warmup_samples: 50,
        holders,
        ..UpdateConfig::default()
    };
    let wcfg = WakeupConfig {
        samples: st.wakeup_samples,
        ..WakeupConfig::default()
    };
    let mb = membarrier_ok
        .is_ok()
        .then(|| sample_latency(st.update_samples, 50, true, membarrier::private_expedited));
    let mut update = Vec::new();
    for k in Kind::ALL {
        eprintln!("[bench] update side: {}", k.name());
        let zero = k.measure_update(&ucfg(0));
        let busy = k.measure_update(&ucfg(1));
        let wake = k.measure_wakeup(&wcfg);
        update.push((k, zero, busy, wake));
    }
    println!();
    println!("## Update side: latency of one update (revoke / write lock / rundown / publish)");
    println!();
    println!("| primitive | waits for readers | 0 holders median | p99 | 1 busy reader median | p99 | wake-up median | p99 |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    if let Some(mb) = &mb {
        println!(
            "| membarrier(PRIVATE_EXPEDITED) | - | {} | {} | | | | |",
            fmt_ns(mb.median),
            fmt_ns(mb.p99)
        );
    }
    for (k, zero, busy, wake) in &update {
        let (wm, wp) = wake.map_or(("n/a".to_string(), "n/a".to_string()), |w| {
            (fmt_ns(w.median), fmt_ns(w.p99))
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            k.name(),
            if k.waits_for_readers() { "yes" } else { "no" },
            fmt_ns(zero.median),
            fmt_ns(zero.p99),
            fmt_ns(busy.median),
            fmt_ns(busy.p99),
            wm,
            wp
        );
    }

    println!();
    println!(
        "Each update is timed alone (the clock pair costs ~{}). Wake-up: a holder sleeps {} us inside its section while the updater waits, then timestamps and leaves; measured to the update's return.",
        fmt_ns(timer_overhead_ns()),
        wcfg.hold.as_micros()
    );

    // ---- revoke_async wake-up on tokio runtimes. ----
    let hold = wcfg.hold;
    let async_wake: Vec<(Flavor, Summary)> = [Flavor::CurrentThread, Flavor::MultiThread]
        .into_iter()
        .map(|f| {
            eprintln!("[bench] revoke_async wake-up: {}", f.name());
            (f, async_wakeup::measure(f, st.wakeup_samples, 10, hold))
        })
        .collect();
    println!();
    println!("## revoke_async wake-up: last holder's guard drop -> the awaiting task resumes");
    println!();
    println!("| runtime | median | p99 |");
    println!("|---|---:|---:|");
    for (f, w) in &async_wake {
        println!(
            "| tokio {} | {} | {} |",
            f.name(),
            fmt_ns(w.median),
            fmt_ns(w.p99)
        );
    }

    // ---- Deep nesting (issue 10): one more access on top of a nest of depth d. ----
    eprintln!("[bench] deep nesting");
    // A revoke of other resources (per revoke), before any deep nest and after this thread's
    // nest of 8000 unwound: its overflow slots must no longer be scanned.
    let revoke_each = |n: usize| {
        let pool: Vec<Revocable<u64>> = (0..n as u64).map(Revocable::new).collect();
        let t = std::time::Instant::now();
        for r in &pool {
            r.revoke();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    let revoke_before = revoke_each(2000);
    let deep_r = Revocable::new(0u64);
    let depths = [0usize, 1000, 8000];
    let mut deep_samples = vec![Vec::new(); depths.len()];
    let build_start = std::time::Instant::now();
    let mut nest: Vec<_> = (0..8000)
        .map(|_| deep_r.try_access().expect("live"))
        .collect();
    let build_8000 = build_start.elapsed();
    drop(nest.drain(..));
    for _ in 0..st.runs {
        for (i, &d) in depths.iter().enumerate() {
            nest.extend((0..d).map(|_| deep_r.try_access().expect("live")));
            let r = measure_ns_per_iter(1, st.run_time / 4, || {
                drop(black_box(deep_r.try_access()));
            });
            deep_samples[i].push(r.median);
            nest.clear();
        }
    }
    let deep: Vec<Summary> = deep_samples
        .iter()
        .map(|v| Summary::from_samples(v).expect("runs >= 1"))
        .collect();
    let revoke_after_unwind = revoke_each(2000);
    println!();
    println!("## Deep nesting: take+drop one more access on top of a nest of depth d");
    println!();
    println!("| depth | take+drop | x depth 0 |");
    println!("|---:|---:|---:|");
    for (d, s) in depths.iter().zip(&deep) {
        println!("| {d} | {} | {:.1} |", cell(s), s.median / deep[0].median);
    }
    println!(
        "\nBuilding a nest of 8000 took {} ({} per access); a revoke after this thread's nest of 8000 unwound: {} (before any nest: {}).",
        fmt_ns(build_8000.as_nanos() as f64),
        fmt_ns(build_8000.as_nanos() as f64 / 8000.0),
        fmt_ns(revoke_after_unwind),
        fmt_ns(revoke_before)
    );

    // ---- new + drop vs Box::new + drop. ----
    eprintln!("[bench] new+drop");
    // Interleaved as well: one run of each variant per round.
    let nt = st.run_time / 4;
    let mut samples = [const { Vec::new() }; 4];
    for _ in 0..st.runs {
        let rounds = [
            measure_ns_per_iter(1, nt, || drop(black_box(Revocable::new(black_box(7u64))))),
            measure_ns_per_iter(1, nt, || drop(black_box(Box::new(black_box(7u64))))),
            measure_ns_per_iter(1, nt, || {
                drop(black_box(Revocable::new(black_box([7u64; 32]))))
            }),
            measure_ns_per_iter(1, nt, || drop(black_box(Box::new(black_box([7u64; 32]))))),
        ];
        for (acc, r) in samples.iter_mut().zip(rounds) {
            acc.push(r.median);
        }
    }
    let [rev_small, box_small, rev_big, box_big] =
        samples.map(|v| Summary::from_samples(&v).expect("runs >= 1"));
    println!();
    println!("## Construction: new + drop");
    println!();
    println!("| T | Revocable::new + drop | Box::new + drop | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| u64 | {} | {} | {:.2} |",
        cell(&rev_small),
        cell(&box_small),
        rev_small.median / box_small.median
    );
    println!(
        "| [u64; 32] | {} | {} | {:.2} |",
        cell(&rev_big),
        cell(&box_big),
        rev_big.median / box_big.median
    );

    // ---- size_of. ----
    let sizes: [(&str, usize, usize); 6] = [
        ("u8", size_of::<u8>(), size_of::<Revocable<u8>>()),
        ("u64", size_of::<u64>(), size_of::<Revocable<u64>>()),
        (
            "String",
            size_of::<String>(),
            size_of::<Revocable<String>>(),
        ),
        (
            "Vec<u64>",
            size_of::<Vec<u64>>(),
            size_of::<Revocable<Vec<u64>>>(),
        ),
        (
            "[u8; 256]",
            size_of::<[u8; 256]>(),
            size_of::<Revocable<[u8; 256]>>(),
        ),
        (
            "std::fs::File",
            size_of::<std::fs::File>(),
            size_of::<Revocable<std::fs::File>>(),
        ),
    ];
    println!();
    println!("## Size: size_of::<Revocable<T>>()");
    println!();
    println!("| T | size_of::<T>() | size_of::<Revocable<T>>() | overhead |");
    println!("|---|---:|---:|---:|");
    for (name, t, r) in sizes {
        println!("| {name} | {t} | {r} | {} |", r as isize - t as isize);
    }
    let worst = sizes
        .iter()
        .max_by_key(|s| s.2 as isize - s.1 as isize)
        .expect("non-empty");

    // ---- Update side at scale (idle threads, batches, device unbind). ----
    let scale_cfg = if st.quick {
        revocable_bench::update_scale::UpdateScaleConfig::quick()
    } else {
        revocable_bench::update_scale::UpdateScaleConfig::default()
    };
    let at_scale = revocable_bench::update_scale::measure(&scale_cfg, |m| {
        eprintln!("[bench] update at scale: {m}")
    });
    println!();
    println!("## Update side at scale");
    println!();
    print!("{}", at_scale.tables());

    // ---- Targets. ----
    let (epoch1, _) = by(Kind::EpochPin);
    let (std1, std2) = by(Kind::StdRwLock);
    let ours_up = &update[0];
    let mut targets = vec![
        Target {
            what: "try_access+drop, 1 thread, vs crossbeam_epoch::pin()".into(),
            ours: fmt_ns(ours1),
            baseline: fmt_ns(epoch1),
            ratio: ours1 / epoch1,
            limit: 0.5,
            unit: "x",
        },
        Target {
            what: "try_access+drop, 1 thread, vs crossbeam_epoch::pin() (issue 8: stays within)"
                .into(),
            ours: fmt_ns(ours1),
            baseline: fmt_ns(epoch1),
            ratio: ours1 / epoch1,
            limit: 0.55,
            unit: "x",
        },
        Target {
            what: "try_access+drop, 1 thread, vs std RwLock::read()".into(),
            ours: fmt_ns(ours1),
            baseline: fmt_ns(std1),
            ratio: ours1 / std1,
            limit: 1.0 / 3.0,
            unit: "x",
        },
        Target {
            what: "try_access+drop, 2 threads, per-thread vs 1 thread".into(),
            ours: fmt_ns(ours2),
            baseline: fmt_ns(ours1),
            ratio: ours2 / ours1,
            limit: 1.3,
            unit: "x",
        },
        Target {
            what: "try_access+drop, 2 threads, vs std RwLock::read() at 2 threads".into(),
            ours: fmt_ns(ours2),
            baseline: fmt_ns(std2),
            ratio: ours2 / std2,
            limit: 1.0 / 20.0,
            unit: "x",
        },
    ];
    let (send1, send2) = by(Kind::OursSend);
    let (_, tokio2) = by(Kind::TokioRwLock);
    targets.push(Target {
        what: "try_access_send+drop (Send guard), 1 thread (issue 9)".into(),
        ours: fmt_ns(send1),
        baseline: "-".into(),
        ratio: send1,
        limit: 10.0,
        unit: "ns",
    });
    targets.push(Target {
        what: "try_access_send+drop, 2 threads, per-thread vs 1 thread (issue 9)".into(),
        ours: fmt_ns(send2),
        baseline: fmt_ns(send1),
        ratio: send2 / send1,
        limit: 1.3,
        unit: "x",
    });
    targets.push(Target {
        what: "try_access_send+drop vs tokio RwLock::try_read+drop, 2 threads (issue 9)".into(),
        ours: fmt_ns(send2),
        baseline: fmt_ns(tokio2),
        ratio: send2 / tokio2,
        limit: 1.0 / 3.0,
        unit: "x",
    });
    for (f, w) in &async_wake {
        targets.push(Target {
            what: format!(
                "last guard drop -> revoke_async().await resumes, tokio {}, median (issue 9)",
                f.name()
            ),
            ours: fmt_ns(w.median),
            baseline: "-".into(),
            ratio: w.median / 1e3,
            limit: 50.0,
            unit: "us",
        });
    }
    targets.push(Target {
        what: "one more access at depth 8000 vs at depth 1000 (issue 10: O(1) at any depth)".into(),
        ours: fmt_ns(deep[2].median),
        baseline: fmt_ns(deep[1].median),
        ratio: deep[2].median / deep[1].median,
        limit: 1.5,
        unit: "x",
    });
    targets.push(Target {
        what: "revoke after a nest of 8000 unwound vs before it (issue 10: no scan cost left)"
            .into(),
        ours: fmt_ns(revoke_after_unwind),
        baseline: fmt_ns(revoke_before),
        ratio: revoke_after_unwind / revoke_before,
        limit: 1.5,
        unit: "x",
    });
    if let Some(mb) = &mb {
        targets.push(Target {
            what: "revoke(), no holders, vs one membarrier(PRIVATE_EXPEDITED)".into(),
            ours: fmt_ns(ours_up.1.median),
            baseline: fmt_ns(mb.median),
            ratio: ours_up.1.median / mb.median,
            limit: 3.0,
            unit: "x",
        });
    }
    if let Some(w) = ours_up.3 {
        targets.push(Target {
            what: "last guard drop -> revoke() returns, median".into(),
            ours: fmt_ns(w.median),
            baseline: "-".into(),
            ratio: w.median / 1e3,
            limit: 50.0,
            unit: "us",
        });
    }
    targets.push(Target {
        what: "Revocable::new+drop vs Box::new+drop, T = u64".into(),
        ours: fmt_ns(rev_small.median),
        baseline: fmt_ns(box_small.median),
        ratio: rev_small.median / box_small.median,
        limit: 2.0,
        unit: "x",
    });
    targets.push(Target {
        what: "Revocable::new+drop vs Box::new+drop, T = [u64; 32]".into(),
        ours: fmt_ns(rev_big.median),
        baseline: fmt_ns(box_big.median),
        ratio: rev_big.median / box_big.median,
        limit: 2.0,
        unit: "x",
    });
    targets.push(Target {
        what: format!(
            "size_of::<Revocable<T>>() - size_of::<T>(), worst T ({})",
            worst.0
        ),
        ours: format!("{} B", worst.2),
        baseline: format!("{} B", worst.1),
        ratio: worst.2 as f64 - worst.1 as f64,
        limit: 64.0,
        unit: "B",
    });

    println!();
    println!("## DESIGN.md targets (ratio = ours / baseline)");
    println!();
    println!("| target | ours | baseline | measured | limit | result |");
    println!("|---|---:|---:|---:|---:|---|");
    for t in &targets {
        let (m, l) = match t.unit {
            "x" => (format!("{:.3}x", t.ratio), format!("<= {:.3}x", t.limit)),
            u => (
                format!("{:.1} {u}", t.ratio),
                format!("<= {:.0} {u}", t.limit),
            ),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            t.what,
            t.ours,
            t.baseline,
            m,
            l,
            if t.pass() { "PASS" } else { "FAIL" }
        );
    }
    if let Some(w) = ours_up.3 {
        println!(
            "| last guard drop -> revoke() returns, p99 (info) | {} | - | {:.1} us | - | info |",
            fmt_ns(w.p99),
            w.p99 / 1e3
        );
    }
    for c in at_scale.checks() {
        println!(
            "| {} | - | - | {} | {} | {} |",
            c.what,
            c.measured,
            c.limit,
            if c.pass { "PASS" } else { "FAIL" }
        );
    }
    let scale_pass = at_scale.checks().iter().filter(|c| c.pass).count();
    let passed = targets.iter().filter(|t| t.pass()).count() + scale_pass;
    println!();
    println!(
        "{passed} of {} targets PASS",
        targets.len() + at_scale.checks().len()
    );
}
