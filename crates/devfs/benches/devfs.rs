//! devfs benchmarks (run with `cargo bench -p revocable-devfs`):
//!
//! 1. gated vs ungated reads through FUSE: the same /dev/zero-like driver served twice, once
//!    gated on a `Resource` (the fops replacement) and once on `Permanent` (the bare path), read by
//!    the same client loop through the kernel; rounds alternate, medians compared, target ≥ 0.95×;
//!    once per transport (io_uring where the fuse module allows it, and /dev/fuse).
//!
//! The comparison with fuser and libfuse is the `peers` bench.
//! 2. unplug latency: 100 open `cros_ec` files, 20 of them with a reader blocked in read(2);
//!    time from the start of unbind to the last reader's wake-up (ENODEV), median of runs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use revocable_devfs::cros_ec::chardev::IOCEVENTMASK;
use revocable_devfs::fs::{DevFs, Entry, Kind};
use revocable_devfs::fuse::{uring, Options, Session, Transport};
use revocable_devfs::server::{default_threads, Devfs};

mod common;
use common::{opener, FopsNode, BLOCK};

fn open(p: &Path) -> OwnedFd {
    std::fs::File::open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
        .into()
}

fn read_loop(fd: &OwnedFd, dur: Duration) -> f64 {
    let mut buf = [0u8; BLOCK];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < dur {
        for _ in 0..64 {
            // SAFETY: buf is writable for BLOCK bytes.
            let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), BLOCK) };
            assert_eq!(
                r,
                BLOCK as isize,
                "read failed: {}",
                std::io::Error::last_os_error()
            );
        }
        n += 64;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("devfs-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gated_vs_ungated(transport: Transport) -> bool {
    let dir = temp_dir("gate");
    let fs = Arc::new(DevFs::new(vec![
        Entry {
            ino: 2,
            parent: 1,
            name: "gated",
            kind: Kind::File(Arc::new(FopsNode(opener(true)))),
        },
        Entry {
            ino: 3,
            parent: 1,
            name: "ungated",
            kind: Kind::File(Arc::new(FopsNode(opener(false)))),
        },
    ]));
    let opts = Options {
        threads: default_threads(),
        transport,
    };
    let mut s = Session::mount_with(&dir, fs, &opts).expect("mount");
    let chosen = s.transport().to_string();
    let g = open(&dir.join("gated"));
    let u = open(&dir.join("ungated"));
    let round = Duration::from_millis(150);
    read_loop(&g, Duration::from_millis(200)); // warm-up
    read_loop(&u, Duration::from_millis(200));
    let (mut gs, mut us) = (Vec::new(), Vec::new());
    let rounds = 15;
    for i in 0..rounds {
        if i % 2 == 0 {
            gs.push(read_loop(&g, round));
            us.push(read_loop(&u, round));
        } else {
            us.push(read_loop(&u, round));
            gs.push(read_loop(&g, round));
        }
        eprint!("\r  round {}/{rounds}", i + 1);
    }
    eprintln!();
    drop((g, u));
    s.stopper().stop();
    s.join();
    let _ = std::fs::remove_dir(&dir);
    // Each round measures both files back to back: the median of the per-round ratios cancels
    // the drift of a shared machine better than the ratio of the medians (also printed).
    let mut ratios: Vec<f64> = gs.iter().zip(&us).map(|(g, u)| g / u).collect();
    let (gm, um) = (median(&mut gs), median(&mut us));
    let ratio = median(&mut ratios);
    let pass = ratio >= 0.95;
    println!("devfs reads through FUSE ({BLOCK} B, 1 client thread, transport {chosen}, median of {rounds} alternating rounds):");
    println!("  gated (fops replacement): {:>9.0} ops/s", gm);
    println!("  ungated (bare fops):      {:>9.0} ops/s", um);
    println!(
        "  ratio gated/ungated = {ratio:.3} (median of per-round ratios; ratio of medians {:.3}; spread {:.3}..{:.3})  target >= 0.95  {}",
        gm / um,
        ratios[0],
        ratios[ratios.len() - 1],
        if pass { "PASS" } else { "FAIL" }
    );
    pass
}

fn unplug_latency() {
    let dir = temp_dir("unplug");
    let mut fs = Devfs::mount(&dir, 4).expect("mount");
    let runs = 7;
    let (files, blocked) = (100, 20);
    let mut lat = Vec::new();
    let mut revoke = Vec::new();
    for run in 0..runs {
        let fds: Vec<Arc<OwnedFd>> = (0..files)
            .map(|_| {
                let fd = open(&dir.join("cros_ec"));
                // SAFETY: a value ioctl on our fd.
                let rc =
                    unsafe { libc::ioctl(fd.as_raw_fd(), IOCEVENTMASK as _, 1 as libc::c_ulong) };
                assert_eq!(rc, 0);
                Arc::new(fd)
            })
            .collect();
        let parked0 = fs.stats().parked_reads.load(Ordering::SeqCst);
        let go = Arc::new(Barrier::new(blocked + 1));
        let readers: Vec<_> = fds[..blocked]
            .iter()
            .map(|fd| {
                let (fd, go) = (fd.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    let mut b = [0u8; 16];
                    // SAFETY: b is writable for 16 bytes.
                    let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 16) };
                    let at = Instant::now();
                    assert!(
                        r < 0
                            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENODEV)
                    );
                    at
                })
            })
            .collect();
        go.wait();
        while fs.stats().parked_reads.load(Ordering::SeqCst) < parked0 + blocked as u64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        let rv = fs.devices().cros_ec.unbind().expect("bound");
        let last = readers
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap();
        lat.push(last.duration_since(t0).as_secs_f64() * 1e6);
        revoke.push(rv.as_secs_f64() * 1e6);
        drop(fds);
        fs.devices().cros_ec.bind();
        eprint!("\r  run {}/{runs}", run + 1);
    }
    eprintln!();
    fs.stopper().stop();
    fs.join();
    let _ = std::fs::remove_dir(&dir);
    println!("unplug with {files} open cros_ec files, {blocked} readers blocked in read(2) (median of {runs} runs):");
    println!(
        "  unbind (deregister + revoke + wake) returns after {:>8.0} µs",
        median(&mut revoke)
    );
    println!(
        "  last blocked reader back in user space after {:>8.0} µs (max of runs {:.0} µs)",
        median(&mut lat.clone()),
        lat.iter().cloned().fold(0.0, f64::max)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probing
    }
    if !common::fuse_or_skip() {
        return;
    }
    let mut transports = vec![Transport::Dev];
    if uring::enabled() == Some(true) {
        transports.insert(0, Transport::Uring);
    } else {
        println!(
            "io_uring transport not measured: fuse enable_uring is not Y (as root: echo Y > {})",
            uring::ENABLE_PARAM
        );
    }
    let mut pass = true;
    for t in transports {
        eprintln!("devfs bench: gated vs ungated reads over {t:?} ...");
        pass &= gated_vs_ungated(t);
    }
    eprintln!("devfs bench: unplug latency ...");
    unplug_latency();
    if !pass {
        println!("note: FAIL above means the gated path measured more than 5% slower in this run");
    }
}
