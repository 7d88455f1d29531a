//! The fops gate benchmark: gated operations beside the bare ones, in one process.
//!
//! `cargo bench -p revocable-fops --bench gate` (a few seconds); `-- --quick` or
//! `REVOCABLE_BENCH_QUICK=1` for a shorter, noisier run.
//!
//! Measured (median of several interleaved runs):
//! - gate overhead per op: a gated `ioctl` through the open file vs the driver's `ioctl` called
//!   directly with a plain reference (target: ≤ 2 ns more);
//! - open+release through the replacement (resource `Arc<Resource<T>>`) vs the bare path
//!   (`Permanent<T>`, never revoked) (target: ≤ 1.2×);
//! - gated-op throughput on one open file at 1 and 2 threads (no lock: ~2×).

use std::hint::black_box;
use std::marker::PhantomData;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use revocable_fops::ioctl::IoctlArg;
use revocable_fops::*;

struct Data {
    x: u64,
}

struct Drv<R>(PhantomData<fn() -> R>);

macro_rules! bench_driver {
    ($res:ty) => {
        impl FileOperations for Drv<$res> {
            type Private = u64;
            type Resources = $res;
            type View<'a> = &'a Data;
            fn access<'a>(&'a self, d: &'a Data) -> Result<&'a Data, Errno> {
                Ok(d)
            }
            fn open(&self, d: &Data, _: OpenFlags) -> Result<u64, Errno> {
                Ok(d.x)
            }
            #[inline]
            fn ioctl(
                &self,
                v: Option<&Data>,
                f: &File<u64>,
                cmd: u32,
                arg: IoctlArg<'_>,
            ) -> Result<i64, Errno> {
                let d = v.ok_or(Errno::ENODEV)?;
                if cmd != 7 {
                    return Err(Errno::ENOTTY);
                }
                Ok((d.x ^ arg.raw() ^ *f.private()) as i64)
            }
        }
    };
}
bench_driver!(Arc<Resource<Data>>);
bench_driver!(Permanent<Data>);

type Gated = Drv<Arc<Resource<Data>>>;

/// One bare op behind a call boundary (nothing hoisted out of the caller's loop).
#[inline(never)]
fn call_bare(drv: &Gated, d: &Data, file: &File<u64>, i: u64) -> Result<i64, Errno> {
    drv.ioctl(Some(d), file, 7, IoctlArg::value(i))
}

/// One gated op behind a call boundary: the whole gate runs per call.
#[inline(never)]
fn call_gated(f: &OpenFile<GatedFile<Gated>>, i: u64) -> Result<i64, Errno> {
    f.ioctl(7, IoctlArg::value(i))
}

/// The core alone behind a call boundary: `try_access` + read + drop.
#[inline(never)]
fn call_core(r: &Resource<Data>) -> u64 {
    r.try_access().map_or(0, |g| g.x)
}

/// The plain read behind a call boundary.
#[inline(never)]
fn call_plain(d: &Data) -> u64 {
    d.x
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// ns per call of `f` over `iters` calls.
fn time_ns(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let t0 = Instant::now();
    for i in 0..iters {
        f(i);
    }
    t0.elapsed().as_nanos() as f64 / iters as f64
}

/// Total ops per second when `threads` threads each run `f` `iters` times at once.
fn throughput(threads: usize, iters: u64, f: &(impl Fn(u64) + Sync)) -> f64 {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t0 = Instant::now();
                    for i in 0..iters {
                        f(i);
                    }
                    t0.elapsed()
                })
            })
            .collect();
        barrier.wait();
        let slowest = hs
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default();
        (threads as u64 * iters) as f64 / slowest.as_secs_f64()
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() {
    let quick = std::env::var("REVOCABLE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
        || std::env::args().any(|a| a == "--quick");
    let (runs, op_iters, open_iters) = if quick {
        (5, 300_000u64, 50_000u64)
    } else {
        (9, 3_000_000u64, 300_000u64)
    };
    println!(
        "fops gate benchmark ({} runs per measure, median; {} threads available)",
        runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let gdrv = Arc::new(Drv::<Arc<Resource<Data>>>(PhantomData));
    let bdrv = Arc::new(Drv::<Permanent<Data>>(PhantomData));
    let res = Resource::new(Data { x: 0x5a });
    let perm = Permanent::new(Data { x: 0x5a });
    let gf = OpenFile::open(gdrv.clone(), res.clone(), OpenFlags::O_RDWR).expect("open");
    let bf = OpenFile::open(bdrv.clone(), perm.clone(), OpenFlags::O_RDWR).expect("open");
    let df: OpenFile = gf.clone().erase();
    let dbf: OpenFile = bf.clone().erase();
    let plain = Data { x: 0x5a };
    let file = gf.gated().file();

    // 1. Per-op cost, interleaved rounds.
    let (mut bare, mut gated, mut dynamic, mut permanent, mut dyn_perm) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut bare_call, mut gated_call) = (vec![], vec![]);
    let (mut core_call, mut plain_call) = (vec![], vec![]);
    for _ in 0..runs {
        plain_call.push(time_ns(op_iters, |_| {
            black_box(call_plain(black_box(&plain)));
        }));
        core_call.push(time_ns(op_iters, |_| {
            black_box(call_core(black_box(&res)));
        }));
        bare_call.push(time_ns(op_iters, |i| {
            let _ = black_box(call_bare(&gdrv, black_box(&plain), file, black_box(i)));
        }));
        gated_call.push(time_ns(op_iters, |i| {
            let _ = black_box(call_gated(black_box(&gf), black_box(i)));
        }));
        bare.push(time_ns(op_iters, |i| {
            let r = <Gated as FileOperations>::ioctl(
                &gdrv,
                Some(black_box(&plain)),
                file,
                black_box(7),
                IoctlArg::value(black_box(i)),
            );
            let _ = black_box(r);
        }));
        gated.push(time_ns(op_iters, |i| {
            let _ = black_box(gf.ioctl(black_box(7), IoctlArg::value(black_box(i))));
        }));
        dynamic.push(time_ns(op_iters, |i| {
            let _ = black_box(df.ioctl(black_box(7), IoctlArg::value(black_box(i))));
        }));
        dyn_perm.push(time_ns(op_iters, |i| {
            let _ = black_box(dbf.ioctl(black_box(7), IoctlArg::value(black_box(i))));
        }));
        permanent.push(time_ns(op_iters, |i| {
            let _ = black_box(bf.ioctl(black_box(7), IoctlArg::value(black_box(i))));
        }));
    }
    let (bare, gated, dynamic, permanent, dyn_perm) = (
        median(bare),
        median(gated),
        median(dynamic),
        median(permanent),
        median(dyn_perm),
    );
    let (bare_call, gated_call) = (median(bare_call), median(gated_call));
    let (core_call, plain_call) = (median(core_call), median(plain_call));
    println!("\nper op (ioctl)                           ns/op");
    println!("  one call per op (not inlined into the loop):");
    println!("  bare driver op (plain reference)      {bare_call:8.2}");
    println!("  gated op (OpenFile<GatedFile<D>>)     {gated_call:8.2}");
    println!("  plain field read                      {plain_call:8.2}");
    println!("  core try_access + read + drop         {core_call:8.2}");
    println!("  inlined into the loop:");
    println!("  bare driver op (plain reference)      {bare:8.2}");
    println!("  bare path via file (Permanent<T>)     {permanent:8.2}");
    println!("  gated, static dispatch                {gated:8.2}");
    println!("  bare path via dyn FileObject          {dyn_perm:8.2}");
    println!("  gated, via dyn FileObject (OpenFile)  {dynamic:8.2}");

    // 2. open + release.
    let (mut ob, mut og) = (vec![], vec![]);
    for _ in 0..runs {
        ob.push(time_ns(open_iters, |_| {
            let f = OpenFile::open(bdrv.clone(), perm.clone(), black_box(OpenFlags::O_RDWR));
            black_box(f.map(|f| f.release()).ok());
        }));
        og.push(time_ns(open_iters, |_| {
            let f = OpenFile::open(gdrv.clone(), res.clone(), black_box(OpenFlags::O_RDWR));
            black_box(f.map(|f| f.release()).ok());
        }));
    }
    let (ob, og) = (median(ob), median(og));
    println!("\nopen + release                           ns");
    println!("  bare (Permanent<T>)                   {ob:8.2}");
    println!("  through replacement (Resource<T>)     {og:8.2}");

    // 3. Throughput on one open file.
    let g = &gf;
    let op = move |i: u64| {
        let _ = black_box(g.ioctl(black_box(7), IoctlArg::value(black_box(i))));
    };
    let b = &bf;
    let bare_op = move |i: u64| {
        let _ = black_box(b.ioctl(black_box(7), IoctlArg::value(black_box(i))));
    };
    let (mut t1, mut t2, mut b1, mut b2) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        t1.push(throughput(1, op_iters, &op));
        t2.push(throughput(2, op_iters, &op));
        b1.push(throughput(1, op_iters, &bare_op));
        b2.push(throughput(2, op_iters, &bare_op));
    }
    let (t1, t2, b1, b2) = (median(t1), median(t2), median(b1), median(b2));
    println!("\nioctl throughput, one open file          1 thread   2 threads  (Mops/s)");
    println!(
        "  gated (Resource<T>)                   {:8.1}   {:8.1}",
        t1 / 1e6,
        t2 / 1e6
    );
    println!(
        "  bare path, control (Permanent<T>)     {:8.1}   {:8.1}",
        b1 / 1e6,
        b2 / 1e6
    );

    // Targets.
    let over = gated_call - bare_call;
    let open_ratio = og / ob;
    let scale = t2 / t1;
    println!("\ntargets");
    println!(
        "  gate overhead per op: {over:+.2} ns over bare (gated/bare = {:.2}x)  target <= 2 ns  {}",
        gated_call / bare_call,
        verdict(over <= 2.0)
    );
    println!(
        "    (inlined: {:+.2} ns; through dyn OpenFile, as devfs calls it: {:+.2} ns over the \
         bare path via dyn)",
        gated - bare,
        dynamic - dyn_perm
    );
    println!(
        "    (of which the core's try_access+drop: {:+.2} ns; the fops layer's own part: {:+.2} ns)",
        core_call - plain_call,
        over - (core_call - plain_call)
    );
    println!(
        "  open+release: replacement/bare = {open_ratio:.2}x  target <= 1.2x  {}",
        verdict(open_ratio <= 1.2)
    );
    println!(
        "  throughput 2 threads / 1 thread = {scale:.2}x  target ~2x (>= 1.8x)  {}  \
         (control, bare path: {:.2}x)",
        verdict(scale >= 1.8),
        b2 / b1
    );
    // Keep the file alive until here; release runs once at the end.
    drop((gf, bf, df, dbf));
    assert!(res.revoke());
}
