//! devfs's FUSE transports beside the servers a user would pick instead, in one run
//! (`cargo bench -p revocable-devfs --bench peers`):
//!
//! - `devfs uring`: devfs over FUSE io_uring (one queue per CPU), where the fuse module allows it;
//! - `devfs dev`: devfs over `/dev/fuse` (blocking reads, one woken thread per request);
//! - `fuser`: fuser 0.18 (4 threads, cloned fds);
//! - `libfuse`: libfuse 3's low-level multi-threaded loop (a C server built by build.rs; skipped
//!   with a line saying why when it cannot be built).
//!
//! Each server runs in a process of its own and serves one 64-byte file opened with
//! `FOPEN_DIRECT_IO` (devfs: the gated /dev/zero-like driver of the devfs bench). The client
//! (this process) `read`s 64 bytes in a loop (devfs files are streams: no `pread`). Rounds alternate the servers (7 rounds, the order
//! rotating); each round measures, per server: 1 client thread (reads/s, per-read latency median
//! and p99, server CPU time and context switches per read, from `/proc/PID/task/*/schedstat` and
//! `status`), 2 client threads (reads/s), and everything on CPU 0 (server threads and the client
//! pinned with `sched_setaffinity`; reads/s). Figures are medians over the rounds; ratios compare
//! each devfs transport with the better peer of the same run, against the targets of issue 12.
//!
//! `PEERS_ROUNDS` and `PEERS_ROUND_MS` change the number and length of rounds;
//! `PEERS_DEV_THREADS` the dispatch threads of `devfs dev` (default: devfs's default);
//! `PEERS_DEBUG=1` prints the CPU each client thread ended on and its reads.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use revocable_devfs::fuse::{uring, Options, Session, Transport};
use revocable_devfs::server::default_threads;

mod common;
use common::{one_file, BLOCK};

// ---------------------------------------------------------------- servers (child processes)

/// `peers --serve KIND DIR`: serve the one-file tree at DIR until it is unmounted.
fn serve(kind: &str, dir: &Path) {
    match kind {
        "uring" | "dev" => {
            let transport = if kind == "uring" {
                Transport::Uring
            } else {
                Transport::Dev
            };
            let opts = Options {
                threads: env_num("PEERS_DEV_THREADS", default_threads() as u64) as usize,
                transport,
            };
            let mut s = Session::mount_with(dir, Arc::new(one_file("f", true)), &opts)
                .unwrap_or_else(|e| panic!("devfs {kind}: {e}"));
            eprintln!("  devfs {kind}: {}", s.transport());
            s.join();
        }
        "fuser" => {
            let mut cfg = fuser::Config::default();
            cfg.n_threads = Some(4);
            cfg.clone_fd = true;
            cfg.mount_options = vec![fuser::MountOption::FSName("fuser".into())];
            let s = fuser::Session::new(FuserFile, dir, &cfg).expect("fuser mount");
            let _ = s.run();
        }
        _ => panic!("unknown server {kind}"),
    }
}

/// fuser's version of the one-file tree.
struct FuserFile;

fn fuser_attr(ino: u64) -> fuser::FileAttr {
    let dir = ino == 1;
    fuser::FileAttr {
        ino: fuser::INodeNo(ino),
        size: if dir { 0 } else { BLOCK as u64 },
        blocks: 0,
        atime: std::time::UNIX_EPOCH,
        mtime: std::time::UNIX_EPOCH,
        ctime: std::time::UNIX_EPOCH,
        crtime: std::time::UNIX_EPOCH,
        kind: if dir {
            fuser::FileType::Directory
        } else {
            fuser::FileType::RegularFile
        },
        perm: if dir { 0o755 } else { 0o444 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl fuser::Filesystem for FuserFile {
    fn lookup(
        &self,
        _: &fuser::Request,
        parent: fuser::INodeNo,
        name: &std::ffi::OsStr,
        reply: fuser::ReplyEntry,
    ) {
        if u64::from(parent) == 1 && name == "f" {
            reply.entry(
                &Duration::from_secs(1),
                &fuser_attr(2),
                fuser::Generation(0),
            );
        } else {
            reply.error(fuser::Errno::ENOENT);
        }
    }
    fn getattr(
        &self,
        _: &fuser::Request,
        ino: fuser::INodeNo,
        _: Option<fuser::FileHandle>,
        reply: fuser::ReplyAttr,
    ) {
        match u64::from(ino) {
            i @ (1 | 2) => reply.attr(&Duration::from_secs(1), &fuser_attr(i)),
            _ => reply.error(fuser::Errno::ENOENT),
        }
    }
    fn open(
        &self,
        _: &fuser::Request,
        _: fuser::INodeNo,
        _: fuser::OpenFlags,
        reply: fuser::ReplyOpen,
    ) {
        reply.opened(fuser::FileHandle(0), fuser::FopenFlags::FOPEN_DIRECT_IO);
    }
    fn read(
        &self,
        _: &fuser::Request,
        _: fuser::INodeNo,
        _: fuser::FileHandle,
        _: u64,
        size: u32,
        _: fuser::OpenFlags,
        _: Option<fuser::LockOwner>,
        reply: fuser::ReplyData,
    ) {
        let d = [7u8; BLOCK];
        reply.data(&d[..(size as usize).min(BLOCK)]);
    }
}

/// A server process with its mount.
struct Server {
    name: &'static str,
    dir: PathBuf,
    child: Child,
    file: Vec<OwnedFd>,
}

impl Server {
    fn start(name: &'static str, cmd: &mut Command, dir: PathBuf) -> Result<Server, String> {
        let child = cmd.spawn().map_err(|e| format!("{name}: {e}"))?;
        let mut s = Server {
            name,
            dir,
            child,
            file: Vec::new(),
        };
        let t = Instant::now();
        let f = s.dir.join("f");
        while !f.exists() {
            if t.elapsed() > Duration::from_secs(10) || s.child.try_wait().ok().flatten().is_some()
            {
                return Err(format!("{name}: the server did not come up"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // One open file per client thread, opened once.
        for _ in 0..2 {
            s.file.push(
                std::fs::File::open(&f)
                    .map_err(|e| format!("{name}: open: {e}"))?
                    .into(),
            );
        }
        Ok(s)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn tasks(&self) -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (CPU time in ns, context switches) of the server's threads so far.
    fn usage(&self) -> (u64, u64) {
        let (mut cpu, mut cs) = (0u64, 0u64);
        for t in self.tasks() {
            let base = format!("/proc/{}/task/{t}", self.pid());
            if let Ok(s) = std::fs::read_to_string(format!("{base}/schedstat")) {
                cpu += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            if let Ok(s) = std::fs::read_to_string(format!("{base}/status")) {
                for l in s.lines() {
                    if l.starts_with("voluntary_ctxt_switches")
                        || l.starts_with("nonvoluntary_ctxt_switches")
                    {
                        cs += l
                            .split_whitespace()
                            .nth(1)
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                    }
                }
            }
        }
        (cpu, cs)
    }

    /// Pins every server thread to CPU 0; returns what to restore.
    fn pin(&self) -> Vec<(u32, libc::cpu_set_t)> {
        let mut saved = Vec::new();
        for t in self.tasks() {
            // SAFETY: cpu_set_t is plain data; sched_getaffinity/setaffinity read and write
            // exactly one cpu_set_t of the given size.
            unsafe {
                let mut old: libc::cpu_set_t = std::mem::zeroed();
                let sz = std::mem::size_of::<libc::cpu_set_t>();
                if libc::sched_getaffinity(t as i32, sz, &mut old) == 0 {
                    saved.push((t, old));
                }
                libc::sched_setaffinity(t as i32, sz, &cpu0());
            }
        }
        saved
    }

    fn unpin(&self, saved: Vec<(u32, libc::cpu_set_t)>) {
        for (t, set) in saved {
            // SAFETY: as in pin().
            unsafe {
                libc::sched_setaffinity(t as i32, std::mem::size_of::<libc::cpu_set_t>(), &set)
            };
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.file.clear();
        if let Ok(c) = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let t = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t.elapsed() > Duration::from_secs(3) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn cpu0() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set; CPU_SET writes within it.
    unsafe {
        let mut s: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut s);
        s
    }
}

// ---------------------------------------------------------------- the client

/// One measurement: reads per second and, with `lat`, each read's latency in ns.
fn run_clients(s: &Server, clients: usize, dur: Duration, pinned: bool, lat: bool) -> Sample {
    let go = Arc::new(Barrier::new(clients + 1));
    let u0 = s.usage();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let fd = s.file[i].as_raw_fd();
            let go = go.clone();
            std::thread::spawn(move || {
                if pinned {
                    // SAFETY: pins the calling thread only.
                    unsafe {
                        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cpu0())
                    };
                }
                let mut lats = Vec::with_capacity(if lat { 1 << 20 } else { 0 });
                let mut buf = [0u8; BLOCK];
                go.wait();
                let t = Instant::now();
                let mut n = 0u64;
                while t.elapsed() < dur {
                    for _ in 0..16 {
                        let t0 = Instant::now();
                        // SAFETY: buf is writable for BLOCK bytes; fd stays open (the server
                        // keeps it until the measurement is joined).
                        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), BLOCK) };
                        if lat {
                            lats.push(t0.elapsed().as_nanos() as u64);
                        }
                        assert_eq!(r, BLOCK as isize, "{}", std::io::Error::last_os_error());
                    }
                    n += 16;
                }
                if std::env::var_os("PEERS_DEBUG").is_some() {
                    // SAFETY: sched_getcpu has no preconditions.
                    eprint!(" [client {i} on CPU {}: {n}]", unsafe {
                        libc::sched_getcpu()
                    });
                }
                (n, t.elapsed(), lats)
            })
        })
        .collect();
    go.wait();
    let mut reads = 0u64;
    let mut secs = 0f64;
    let mut lats = Vec::new();
    for h in handles {
        let (n, el, l) = h.join().expect("client thread");
        reads += n;
        secs = secs.max(el.as_secs_f64());
        lats.extend(l);
    }
    let u1 = s.usage();
    lats.sort_unstable();
    let pct = |p: f64| {
        lats.get(((lats.len() as f64 * p) as usize).min(lats.len().saturating_sub(1)))
            .map_or(f64::NAN, |&v| v as f64 / 1000.0)
    };
    Sample {
        rate: reads as f64 / secs,
        median_us: pct(0.5),
        p99_us: pct(0.99),
        cpu_us: (u1.0 - u0.0) as f64 / 1000.0 / reads as f64,
        cs: (u1.1 - u0.1) as f64 / reads as f64,
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rate: f64,
    median_us: f64,
    p99_us: f64,
    cpu_us: f64,
    cs: f64,
}

/// The rows of the table, per server: one value per round.
#[derive(Default)]
struct Rows {
    r1: Vec<f64>,
    r2: Vec<f64>,
    med: Vec<f64>,
    p99: Vec<f64>,
    cpu: Vec<f64>,
    cs: Vec<f64>,
    one_cpu: Vec<f64>,
    one_cpu_cpu: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// (label, accessor, higher is better)
type Row = (&'static str, fn(&Rows) -> &Vec<f64>, bool);
const ROWS: [Row; 8] = [
    ("reads/s, 1 client thread", |r| &r.r1, true),
    ("reads/s, 2 client threads", |r| &r.r2, true),
    ("median latency (µs), 1 client", |r| &r.med, false),
    ("p99 latency (µs), 1 client", |r| &r.p99, false),
    ("server CPU per read (µs)", |r| &r.cpu, false),
    ("server context switches per read", |r| &r.cs, false),
    ("everything on CPU 0: reads/s", |r| &r.one_cpu, true),
    (
        "everything on CPU 0: server CPU/read (µs)",
        |r| &r.one_cpu_cpu,
        false,
    ),
];

/// Targets of issue 12 for the io_uring transport: (row index, target ratio vs the better peer).
const URING_TARGETS: [(usize, f64); 6] =
    [(0, 1.3), (1, 1.3), (2, 0.7), (3, 0.8), (4, 1.0), (6, 1.0)];
/// The /dev/fuse fallback alone: at least as good as the better peer on every targeted row.
const DEV_TARGETS: [(usize, f64); 6] = [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (6, 1.0)];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` probing
    }
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    if !common::fuse_or_skip() {
        return;
    }
    let rounds = env_num("PEERS_ROUNDS", 7) as usize;
    let dur = Duration::from_millis(env_num("PEERS_ROUND_MS", 400));
    let me = std::env::current_exe().expect("current exe");
    let base = std::env::temp_dir().join(format!("devfs-peers-{}", std::process::id()));
    let mk = |n: &str| {
        let d = base.join(n);
        std::fs::create_dir_all(&d).expect("mount point");
        d
    };
    let mut servers: Vec<Server> = Vec::new();
    let mut ours = Vec::new();
    if uring::enabled() == Some(true) {
        ours.push("devfs uring");
    } else {
        println!(
            "devfs uring: not measured: fuse enable_uring is not Y (as root: echo Y > {})",
            uring::ENABLE_PARAM
        );
    }
    ours.push("devfs dev");
    for name in ours.iter().copied() {
        let kind = name.trim_start_matches("devfs ");
        let dir = mk(kind);
        let mut cmd = Command::new(&me);
        cmd.arg("--serve").arg(kind).arg(&dir);
        servers.push(Server::start(name, &mut cmd, dir).unwrap_or_else(|e| panic!("{e}")));
    }
    let mut peers = Vec::new();
    {
        let dir = mk("fuser");
        let mut cmd = Command::new(&me);
        cmd.arg("--serve").arg("fuser").arg(&dir);
        match Server::start("fuser", &mut cmd, dir) {
            Ok(s) => {
                servers.push(s);
                peers.push("fuser");
            }
            Err(e) => println!("fuser: not measured: {e}"),
        }
    }
    let libfuse = env!("LIBFUSE_SERVER");
    if libfuse.is_empty() {
        println!("libfuse: not measured: {}", env!("LIBFUSE_SERVER_WHY"));
    } else {
        let dir = mk("libfuse");
        let mut cmd = Command::new(libfuse);
        cmd.arg(&dir);
        match Server::start("libfuse", &mut cmd, dir) {
            Ok(s) => {
                servers.push(s);
                peers.push("libfuse");
            }
            Err(e) => println!("libfuse: not measured: {e}"),
        }
    }
    let mut rows: Vec<Rows> = servers.iter().map(|_| Rows::default()).collect();
    // Warm-up: every server, briefly.
    for s in &servers {
        run_clients(s, 1, Duration::from_millis(100), false, false);
    }
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            let s = &servers[i];
            let a = run_clients(s, 1, dur, false, true);
            let b = run_clients(s, 2, dur, false, false);
            let saved = s.pin();
            let c = run_clients(s, 1, dur, true, false);
            s.unpin(saved);
            let r = &mut rows[i];
            r.r1.push(a.rate);
            r.r2.push(b.rate);
            r.med.push(a.median_us);
            r.p99.push(a.p99_us);
            r.cpu.push(a.cpu_us);
            r.cs.push(a.cs);
            r.one_cpu.push(c.rate);
            r.one_cpu_cpu.push(c.cpu_us);
        }
        eprint!("\r  round {}/{rounds}", round + 1);
    }
    eprintln!();
    let names: Vec<&str> = servers.iter().map(|s| s.name).collect();
    println!(
        "FUSE servers side by side: {BLOCK}-byte reads of one FOPEN_DIRECT_IO file, median of {rounds} alternating rounds of {} ms ({} CPUs)",
        dur.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("  {:<44}", "");
    for n in &names {
        print!("{n:>13}");
    }
    println!();
    for (label, get, _) in ROWS {
        print!("  {label:<44}");
        for r in &rows {
            let m = median(get(r));
            if m >= 1000.0 {
                print!("{:>12.1}k", m / 1000.0);
            } else {
                print!("{m:>13.2}");
            }
        }
        println!();
    }
    if peers.is_empty() {
        println!("no peer measured: no ratios");
        return;
    }
    let idx = |n: &str| names.iter().position(|x| *x == n);
    println!(
        "  ratios against the better peer of this run ({}):",
        peers.join(", ")
    );
    for ours_name in ours {
        let Some(o) = idx(ours_name) else { continue };
        let targets: &[(usize, f64)] = if ours_name.ends_with("uring") {
            &URING_TARGETS
        } else {
            &DEV_TARGETS
        };
        for &(row, target) in targets {
            let (label, get, higher) = ROWS[row];
            let best = peers
                .iter()
                .filter_map(|p| idx(p))
                .map(|p| median(get(&rows[p])))
                .fold(if higher { f64::MIN } else { f64::MAX }, |a, b| {
                    if higher {
                        a.max(b)
                    } else {
                        a.min(b)
                    }
                });
            let ratio = median(get(&rows[o])) / best;
            let pass = if higher {
                ratio >= target
            } else {
                ratio <= target
            };
            println!(
                "    {ours_name:<12} {label:<44} {ratio:>6.2}x  target {} {target:.1}x  {}",
                if higher { ">=" } else { "<=" },
                if pass { "PASS" } else { "MISS" }
            );
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir(&base);
}
