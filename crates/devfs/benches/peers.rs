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
//! `status`; the host's steal time from `/proc/stat`; how often the client thread and the
//! server's threads were moved to another CPU, from `se.nr_migrations` in `sched`), 2 client threads (reads/s), and everything on CPU 0 (server threads and the client
//! pinned with `sched_setaffinity`; reads/s, latency, server and client CPU per read). Figures
//! are medians over the rounds; ratios compare each devfs transport with the better peer of the
//! same run, against the targets of issue 12.
//!
//! The A/A control, in the same rotation: a second, identical instance of the last peer
//! (`libfuse #2`, or `fuser #2` without libfuse). It is never a peer of the ratios; its ratio
//! to its twin on each targeted row is how far two servers that differ in nothing land apart
//! in this run, and a target missed by less than that row's A/A gap is marked as such
//! (`MISS, within the A/A gap`): the run cannot tell it from chance.
//!
//! The floor, in the same rotation: a 1-byte pipe ping-pong between this process and another
//! (`peers --pingpong`), both pinned to CPU 0 and unpinned: the cheapest request/response between
//! two processes that block while waiting. On one CPU a round trip takes at least the client's
//! CPU time plus the server's; the bench prints two lower bounds for a same-CPU FUSE round trip
//! with any server: the least client CPU per FUSE read of the run plus the pipe server's CPU
//! (the floor bound), and that client CPU plus the least kernel CPU per read of a FUSE server
//! of the run (the kernel-work bound: the system share of its CPU time, tick-sampled), and says
//! where the median and reads/s targets fall against them.
//!
//! `PEERS_ROUNDS` and `PEERS_ROUND_MS` change the number and length of rounds; `PEERS_TWIN=0`
//! leaves the A/A control out;
//! `PEERS_DEV_THREADS` the dispatch threads of `devfs dev` (default: devfs's default);
//! `PEERS_URING_ENV` / `PEERS_DEV_ENV` (`NAME=VALUE;…`) add a column per variable: that server
//! with the variable set in its environment;
//! `PEERS_DEBUG=1` prints the CPU each client thread ended on and its reads.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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

    /// Pins every server thread to CPU 0; returns what to restore.
    fn pin(&self) -> Vec<(u32, libc::cpu_set_t)> {
        pin_tasks(self.pid())
    }

    fn unpin(&self, saved: Vec<(u32, libc::cpu_set_t)>) {
        unpin_tasks(saved)
    }
}

fn tasks(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The first field of a `schedstat` file: time spent on a CPU, in ns.
fn schedstat_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The scheduler's count of moves of a thread to another CPU (`se.nr_migrations` of a `sched`
/// file; 0 where the kernel has no `/proc/…/sched`).
fn nr_migrations(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("se.nr_migrations"))?
                .rsplit(':')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// What process `pid`'s threads have used so far: CPU time in ns (exact), context switches,
/// moves to another CPU, and
/// the user and system split of their CPU time in clock ticks (`/proc/PID/task/TID/stat`
/// utime and stime: sampled at each timer tick on this kernel, so only a share over many ticks
/// means anything).
#[derive(Clone, Copy, Default)]
struct Usage {
    cpu_ns: u64,
    cs: u64,
    migrations: u64,
    user_ticks: u64,
    sys_ticks: u64,
}

fn proc_usage(pid: u32) -> Usage {
    let (mut cpu, mut cs, mut user, mut sys, mut migrations) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for t in tasks(pid) {
        let base = format!("/proc/{pid}/task/{t}");
        cpu += schedstat_ns(&format!("{base}/schedstat"));
        migrations += nr_migrations(&format!("{base}/sched"));
        if let Ok(s) = std::fs::read_to_string(format!("{base}/stat")) {
            // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
            let f: Vec<u64> = s
                .rsplit_once(')')
                .map(|(_, rest)| {
                    rest.split_whitespace()
                        .map(|v| v.parse().unwrap_or(0))
                        .collect()
                })
                .unwrap_or_default();
            user += f.get(11).copied().unwrap_or(0);
            sys += f.get(12).copied().unwrap_or(0);
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
    Usage {
        cpu_ns: cpu,
        cs,
        migrations,
        user_ticks: user,
        sys_ticks: sys,
    }
}

/// The machine's (steal, total) clock ticks so far, all CPUs (`/proc/stat`): time the host
/// (hypervisor) ran something else while a vCPU of this machine wanted to run.
fn host_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is counted in user already).
    let total = f.iter().take(8).sum();
    (f.get(7).copied().unwrap_or(0), total)
}

/// Pins every thread of process `pid` to CPU 0; returns what to restore.
fn pin_tasks(pid: u32) -> Vec<(u32, libc::cpu_set_t)> {
    let mut saved = Vec::new();
    for t in tasks(pid) {
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

fn unpin_tasks(saved: Vec<(u32, libc::cpu_set_t)>) {
    for (t, set) in saved {
        // SAFETY: as in pin_tasks().
        unsafe { libc::sched_setaffinity(t as i32, std::mem::size_of::<libc::cpu_set_t>(), &set) };
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

/// The floor: a process that answers each byte written to its stdin with one byte on its
/// stdout (`peers --pingpong`), the cheapest request/response between two processes that the
/// kernel offers through a blocking wait: a pipe write wakes the other side, whose read
/// returns; no FUSE work at all. A FUSE round trip does at least this much.
struct Floor {
    child: Child,
    tx: std::process::ChildStdin,
    rx: std::process::ChildStdout,
}

impl Floor {
    fn start(me: &Path) -> std::io::Result<Floor> {
        let mut child = Command::new(me)
            .arg("--pingpong")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let tx = child.stdin.take().expect("piped stdin");
        let rx = child.stdout.take().expect("piped stdout");
        Ok(Floor { child, tx, rx })
    }

    fn op(&self) -> Op {
        Op::PingPong {
            tx: self.tx.as_raw_fd(),
            rx: self.rx.as_raw_fd(),
        }
    }

    /// One measurement, both processes pinned to CPU 0 or not.
    fn measure(&self, dur: Duration, pinned: bool) -> Sample {
        let pid = self.child.id();
        let saved = if pinned { pin_tasks(pid) } else { Vec::new() };
        let s = run_clients(pid, &[self.op()], 1, dur, pinned, true);
        unpin_tasks(saved);
        s
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `peers --pingpong`: answer every byte on stdin with one byte on stdout until end of file.
fn pingpong() {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: b is writable and readable for 1 byte; fds 0 and 1 are the pipes of Floor.
        let ok = unsafe {
            libc::read(0, b.as_mut_ptr().cast(), 1) == 1
                && libc::write(1, b.as_ptr().cast(), 1) == 1
        };
        if !ok {
            return;
        }
    }
}

// ---------------------------------------------------------------- the client

/// What one client thread does per operation.
#[derive(Clone, Copy)]
enum Op {
    /// `read(2)` of `BLOCK` bytes from a FUSE file.
    Read(RawFd),
    /// The floor: write one byte to the pipe the other process reads, read its one-byte answer
    /// from the pipe it writes.
    PingPong { tx: RawFd, rx: RawFd },
}

impl Op {
    fn run(self, buf: &mut [u8; BLOCK]) {
        match self {
            Op::Read(fd) => {
                // SAFETY: buf is writable for BLOCK bytes; fd stays open (the server keeps it
                // until the measurement is joined).
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), BLOCK) };
                assert_eq!(r, BLOCK as isize, "{}", std::io::Error::last_os_error());
            }
            Op::PingPong { tx, rx } => {
                // SAFETY: buf is readable and writable for 1 byte; both pipe ends stay open
                // until the Floor is dropped, after the measurement is joined.
                let (w, r) = unsafe {
                    (
                        libc::write(tx, buf.as_ptr().cast(), 1),
                        libc::read(rx, buf.as_mut_ptr().cast(), 1),
                    )
                };
                assert!(w == 1 && r == 1, "{}", std::io::Error::last_os_error());
            }
        }
    }
}

/// CPU time the calling thread has had so far, in ns.
fn thread_cpu_ns() -> u64 {
    schedstat_ns("/proc/thread-self/schedstat")
}

/// One measurement: operations per second and, with `lat`, each operation's latency; server
/// (process `pid`) and client CPU time and server context switches per operation.
fn run_clients(
    pid: u32,
    ops: &[Op],
    clients: usize,
    dur: Duration,
    pinned: bool,
    lat: bool,
) -> Sample {
    let go = Arc::new(Barrier::new(clients + 1));
    let u0 = proc_usage(pid);
    let h0 = host_ticks();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let op = ops[i];
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
                let c0 = thread_cpu_ns();
                let m0 = nr_migrations("/proc/thread-self/sched");
                let t = Instant::now();
                let mut n = 0u64;
                while t.elapsed() < dur {
                    for _ in 0..16 {
                        let t0 = Instant::now();
                        op.run(&mut buf);
                        if lat {
                            lats.push(t0.elapsed().as_nanos() as u64);
                        }
                    }
                    n += 16;
                }
                let cpu = thread_cpu_ns() - c0;
                let migrated = nr_migrations("/proc/thread-self/sched") - m0;
                if std::env::var_os("PEERS_DEBUG").is_some() {
                    // SAFETY: sched_getcpu has no preconditions.
                    eprint!(" [client {i} on CPU {}: {n}]", unsafe {
                        libc::sched_getcpu()
                    });
                }
                (n, t.elapsed(), lats, cpu, migrated)
            })
        })
        .collect();
    go.wait();
    let mut reads = 0u64;
    let mut secs = 0f64;
    let mut lats = Vec::new();
    let mut client_ns = 0u64;
    let mut client_migrations = 0u64;
    for h in handles {
        let (n, el, l, cpu, migrated) = h.join().expect("client thread");
        client_migrations += migrated;
        reads += n;
        secs = secs.max(el.as_secs_f64());
        lats.extend(l);
        client_ns += cpu;
    }
    let u1 = proc_usage(pid);
    let h1 = host_ticks();
    lats.sort_unstable();
    let pct = |p: f64| {
        lats.get(((lats.len() as f64 * p) as usize).min(lats.len().saturating_sub(1)))
            .map_or(f64::NAN, |&v| v as f64 / 1000.0)
    };
    Sample {
        rate: reads as f64 / secs,
        median_us: pct(0.5),
        p99_us: pct(0.99),
        cpu_us: (u1.cpu_ns - u0.cpu_ns) as f64 / 1000.0 / reads as f64,
        cs: (u1.cs - u0.cs) as f64 / reads as f64,
        // Saturating: a server thread that exits during the sample takes its count along.
        migrations: u1.migrations.saturating_sub(u0.migrations) as f64 * 1000.0 / reads as f64,
        client_migrations: client_migrations as f64 * 1000.0 / reads as f64,
        user_ticks: u1.user_ticks - u0.user_ticks,
        sys_ticks: u1.sys_ticks - u0.sys_ticks,
        client_cpu_us: client_ns as f64 / 1000.0 / reads as f64,
        steal_pct: steal_pct(h0, h1),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rate: f64,
    median_us: f64,
    p99_us: f64,
    cpu_us: f64,
    cs: f64,
    /// Moves of a server thread to another CPU, per 1000 operations.
    migrations: f64,
    /// Moves of a client thread to another CPU, per 1000 operations.
    client_migrations: f64,
    client_cpu_us: f64,
    /// The host's steal time, in % of the machine's CPU time during the sample.
    steal_pct: f64,
    user_ticks: u64,
    sys_ticks: u64,
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
    client_cpu: Vec<f64>,
    one_cpu_med: Vec<f64>,
    one_cpu_client: Vec<f64>,
    steal: Vec<f64>,
    migrations: Vec<f64>,
    client_migrations: Vec<f64>,
    /// Everything on CPU 0, all rounds together: the server's (user, system) clock ticks.
    one_cpu_ticks: (u64, u64),
}

impl Rows {
    /// The system share of the server's CPU time on CPU 0, over all rounds.
    fn one_cpu_sys_share(&self) -> f64 {
        let (u, s) = self.one_cpu_ticks;
        s as f64 / (u + s).max(1) as f64
    }

    /// The kernel's part of the server's CPU per read on CPU 0 (µs): the system share of it.
    fn one_cpu_kernel_us(&self) -> f64 {
        median(&self.one_cpu_cpu) * self.one_cpu_sys_share()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// (label, accessor, higher is better)
type Row = (&'static str, fn(&Rows) -> &Vec<f64>, bool);
const ROWS: [Row; 14] = [
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
    (
        "client CPU per read (µs), 1 client",
        |r| &r.client_cpu,
        false,
    ),
    (
        "everything on CPU 0: median latency (µs)",
        |r| &r.one_cpu_med,
        false,
    ),
    (
        "everything on CPU 0: client CPU/read (µs)",
        |r| &r.one_cpu_client,
        false,
    ),
    ("host steal, 1 client (% of CPU time)", |r| &r.steal, false),
    (
        "client moves to another CPU /1000 reads, 1 cl.",
        |r| &r.client_migrations,
        false,
    ),
    (
        "server moves to another CPU /1000 reads, 1 cl.",
        |r| &r.migrations,
        false,
    ),
];
/// Row indices the floor analysis uses.
const ROW_MEDIAN: usize = 2;
const ROW_ONE_CPU_MEDIAN: usize = 9;
const ROW_ONE_CPU_CLIENT: usize = 10;

/// Targets of issue 12 for the io_uring transport: (row index, target ratio vs the better peer).
const URING_TARGETS: [(usize, f64); 6] =
    [(0, 1.3), (1, 1.3), (2, 0.7), (3, 0.8), (4, 1.0), (6, 1.0)];
/// The /dev/fuse fallback alone: at least as good as the better peer on every targeted row.
const DEV_TARGETS: [(usize, f64); 6] = [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (6, 1.0)];

/// PASS or MISS; a miss by less than the row's A/A gap (`aa`: the ratio between two identical
/// servers of the same run) says so, since chance alone moves a ratio that far.
fn verdict(ratio: f64, target: f64, higher: bool, aa: Option<f64>) -> String {
    let pass = if higher {
        ratio >= target
    } else {
        ratio <= target
    };
    let aa_note = aa.map_or(String::new(), |a| format!("  (A/A {a:.2}x)"));
    if pass {
        return format!("PASS{aa_note}");
    }
    match aa {
        // Compared as logarithms: 0.9x and 1.11x are the same distance from 1.
        Some(a) if (ratio / target).ln().abs() <= a.ln().abs() => {
            format!("MISS, within the A/A gap{aa_note}")
        }
        _ => format!("MISS{aa_note}"),
    }
}

/// Host steal (% of CPU time over the run) above which the bench says the host disturbed it.
const STEAL_WARN_PCT: f64 = 3.0;

/// The targets of one of our servers (`devfs uring` or `devfs dev`).
fn targets_of(name: &str) -> &'static [(usize, f64)] {
    if name.ends_with("uring") {
        &URING_TARGETS
    } else {
        &DEV_TARGETS
    }
}

/// The host's steal time between two [`host_ticks`] readings, in % of the CPU time between them.
fn steal_pct(before: (u64, u64), after: (u64, u64)) -> f64 {
    100.0 * (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64
}

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
    if args.iter().any(|a| a == "--pingpong") {
        pingpong();
        return;
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
    // Variants of our servers, one column each: `NAME=VALUE` set in its environment
    // (`PEERS_URING_ENV` for the io_uring server, `PEERS_DEV_ENV` for the /dev/fuse one).
    let variants = ["uring", "dev"].into_iter().flat_map(|kind| {
        let list = std::env::var(format!("PEERS_{}_ENV", kind.to_uppercase())).unwrap_or_default();
        let vars: Vec<(String, String)> = list
            .split(';')
            .filter_map(|v| v.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.into_iter().map(move |v| (kind, v))
    });
    for (j, (kind, v)) in variants.enumerate() {
        if kind == "uring" && uring::enabled() != Some(true) {
            continue;
        }
        // Named by the variable's last word and value: REVOCABLE_FUSE_URING_JOINED=1 →
        // `uring joined`, PEERS_DEV_THREADS=4 → `dev threads4`.
        let word = v.0.rsplit('_').next().unwrap_or(&v.0).to_lowercase();
        let tag = if v.1 == "1" {
            String::new()
        } else {
            v.1.clone()
        };
        let name: &'static str = Box::leak(format!("{kind} {word}{tag}").into_boxed_str());
        let dir = mk(&format!("variant{j}"));
        let mut cmd = Command::new(&me);
        cmd.arg("--serve").arg(kind).arg(&dir).env(&v.0, &v.1);
        servers.push(Server::start(name, &mut cmd, dir).unwrap_or_else(|e| panic!("{e}")));
    }
    // The peers, then the A/A control: a second, identical instance of the last peer started
    // (libfuse where it was built, else fuser), in the same rotation. It is never a peer of the
    // ratios; how far it lands from its twin is how far two servers with no difference land
    // apart in this run.
    let peer_cmd = |kind: &str, dir: &Path| -> Option<Command> {
        let mut cmd = match kind {
            "fuser" => {
                let mut c = Command::new(&me);
                c.arg("--serve").arg("fuser");
                c
            }
            _ => {
                let libfuse = env!("LIBFUSE_SERVER");
                if libfuse.is_empty() {
                    println!("libfuse: not measured: {}", env!("LIBFUSE_SERVER_WHY"));
                    return None;
                }
                Command::new(libfuse)
            }
        };
        cmd.arg(dir);
        Some(cmd)
    };
    let mut peers = Vec::new();
    for kind in ["fuser", "libfuse"] {
        let dir = mk(kind);
        let Some(mut cmd) = peer_cmd(kind, &dir) else {
            continue;
        };
        match Server::start(kind, &mut cmd, dir) {
            Ok(s) => {
                servers.push(s);
                peers.push(kind);
            }
            Err(e) => println!("{kind}: not measured: {e}"),
        }
    }
    let mut twin: Option<(&str, &str)> = None;
    if let (Some(&kind), true) = (peers.last(), env_num("PEERS_TWIN", 1) != 0) {
        let name: &'static str = if kind == "fuser" {
            "fuser #2"
        } else {
            "libfuse #2"
        };
        let dir = mk("twin");
        if let Some(mut cmd) = peer_cmd(kind, &dir) {
            match Server::start(name, &mut cmd, dir) {
                Ok(s) => {
                    servers.push(s);
                    twin = Some((kind, name));
                }
                Err(e) => println!("{name} (the A/A control): not measured: {e}"),
            }
        }
    }
    let mut rows: Vec<Rows> = servers.iter().map(|_| Rows::default()).collect();
    // Warm-up: every server, briefly.
    let ops = |s: &Server| -> Vec<Op> { s.file.iter().map(|f| Op::Read(f.as_raw_fd())).collect() };
    for s in &servers {
        run_clients(
            s.pid(),
            &ops(s),
            1,
            Duration::from_millis(100),
            false,
            false,
        );
    }
    let floor = Floor::start(&me).expect("the ping-pong process");
    // (pinned, unpinned) samples, one per round.
    let mut floor_rows: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let run_start = host_ticks();
    for round in 0..rounds {
        // The floor takes its turn in the rotation like a server (position `servers.len()`).
        for k in 0..=servers.len() {
            let i = (k + round) % (servers.len() + 1);
            if i == servers.len() {
                floor_rows[0].push(floor.measure(dur, true));
                floor_rows[1].push(floor.measure(dur, false));
                continue;
            }
            let s = &servers[i];
            let a = run_clients(s.pid(), &ops(s), 1, dur, false, true);
            let b = run_clients(s.pid(), &ops(s), 2, dur, false, false);
            let saved = s.pin();
            let c = run_clients(s.pid(), &ops(s), 1, dur, true, true);
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
            r.client_cpu.push(a.client_cpu_us);
            r.one_cpu_med.push(c.median_us);
            r.one_cpu_client.push(c.client_cpu_us);
            r.steal.push(a.steal_pct);
            r.migrations.push(a.migrations);
            r.client_migrations.push(a.client_migrations);
            r.one_cpu_ticks.0 += c.user_ticks;
            r.one_cpu_ticks.1 += c.sys_ticks;
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
    let fmed =
        |k: usize, f: fn(&Sample) -> f64| median(&floor_rows[k].iter().map(f).collect::<Vec<_>>());
    println!(
        "  the floor, same rounds: a 1-byte pipe ping-pong with another process (`peers --pingpong`), no FUSE:"
    );
    println!(
        "    {:<18}{:>12}{:>12}{:>20}{:>20}{:>10}{:>10}",
        "", "median µs", "p99 µs", "client CPU/rt µs", "server CPU/rt µs", "cs/rt", "moves/krt"
    );
    for (k, label) in ["both on CPU 0", "unpinned"].iter().enumerate() {
        println!(
            "    {label:<18}{:>12.2}{:>12.2}{:>20.2}{:>20.2}{:>10.2}{:>10.2}",
            fmed(k, |s| s.median_us),
            fmed(k, |s| s.p99_us),
            fmed(k, |s| s.client_cpu_us),
            fmed(k, |s| s.cpu_us),
            fmed(k, |s| s.cs),
            fmed(k, |s| s.migrations + s.client_migrations),
        );
    }
    let run_end = host_ticks();
    let steal = steal_pct(run_start, run_end);
    println!(
        "  host steal over the whole run: {steal:.1} % of the machine's CPU time{}",
        if steal > STEAL_WARN_PCT {
            ": enough to lengthen tails and widen the spread of every server; read the ratios beside the A/A gaps and the steal row"
        } else {
            ""
        }
    );
    if peers.is_empty() {
        println!("no peer measured: no ratios");
        return;
    }
    let idx = |n: &str| names.iter().position(|x| *x == n);
    // The A/A ratio of a row: the twin's median over its original's (None without a twin).
    let aa = |row: usize| -> Option<f64> {
        let (orig, copy) = twin?;
        let get = ROWS[row].1;
        Some(median(get(&rows[idx(copy)?])) / median(get(&rows[idx(orig)?])))
    };
    println!(
        "  ratios against the better peer of this run ({}){}:",
        peers.join(", "),
        if twin.is_some() {
            "; A/A: the same ratio between two identical instances of the last peer"
        } else {
            ""
        }
    );
    for &ours_name in &ours {
        let Some(o) = idx(ours_name) else { continue };
        for &(row, target) in targets_of(ours_name) {
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
            println!(
                "    {ours_name:<12} {label:<44} {ratio:>6.2}x  target {} {target:.1}x  {}",
                if higher { ">=" } else { "<=" },
                verdict(ratio, target, higher, aa(row))
            );
        }
    }
    if let Some((orig, copy)) = twin {
        print!("  A/A ({orig} against {copy}, nothing differs but chance):");
        let mut widest = 1.0f64;
        for &(row, _) in &DEV_TARGETS {
            if let Some(r) = aa(row) {
                widest = widest.max(r.max(1.0 / r));
                print!(" {:.2}x", r);
            }
        }
        println!(
            "; in this run two identical servers land up to {:.0} % apart on these rows: a ratio that misses its target by less than its row's A/A gap is no measured difference",
            100.0 * (widest - 1.0)
        );
    }
    // What the floor says about the latency targets.
    let med = |i: usize, row: usize| median((ROWS[row].1)(&rows[i]));
    let (best_i, best) = peers
        .iter()
        .filter_map(|p| idx(p))
        .map(|i| (i, med(i, ROW_MEDIAN)))
        .fold((usize::MAX, f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
    let floor_same = fmed(0, |s| s.median_us);
    println!("  the floor against the FUSE round trips of this run (medians):");
    print!(
        "    median / floor on one CPU ({floor_same:.2} µs): {} {:.2}",
        names[best_i],
        best / floor_same
    );
    for o in ours.iter().filter_map(|n| idx(n)) {
        print!(", {} {:.2}", names[o], med(o, ROW_MEDIAN) / floor_same);
    }
    println!();
    // On one CPU a round trip takes at least the client's CPU time plus the server's. Any
    // server has at least the pipe server's work (woken, one message in, one out, asleep); the
    // client's FUSE read costs what the cheapest transport of this run made it cost.
    let (cf_i, cf) = (0..rows.len())
        .map(|i| (i, med(i, ROW_ONE_CPU_CLIENT)))
        .fold((usize::MAX, f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
    let (cp, sp) = (fmed(0, |s| s.client_cpu_us), fmed(0, |s| s.cpu_us));
    let bound = cf + sp;
    println!(
        "    one CPU: a FUSE read costs its client {cf:.2} µs of CPU (the least, {}), a pipe round trip {cp:.2} µs (FUSE's own client-side work: {:.2} µs)",
        names[cf_i],
        cf - cp
    );
    println!(
        "    so a same-CPU FUSE round trip takes at least {cf:.2} + {sp:.2} (the pipe server's CPU) = {bound:.2} µs, whatever the server: {:.2}x the better peer's median",
        bound / best
    );
    // Tighter: a server's own code can shrink to nothing, the kernel's work for it cannot. The
    // kernel's part of each server's CPU time on CPU 0 (system share, tick-sampled over all
    // rounds); the least of them is what the kernel spends on a FUSE server of this run.
    print!("    one CPU, server CPU per read in the kernel (system share of tick samples over all rounds):");
    let mut kern = (usize::MAX, f64::MAX);
    for (i, r) in rows.iter().enumerate() {
        let k = r.one_cpu_kernel_us();
        print!(
            " {} {k:.2} µs ({:.0} %, {} ticks)",
            names[i],
            100.0 * r.one_cpu_sys_share(),
            r.one_cpu_ticks.0 + r.one_cpu_ticks.1
        );
        if k < kern.1 {
            kern = (i, k);
        }
    }
    println!();
    let tight = cf + kern.1;
    println!(
        "    so a same-CPU round trip whose server spent no time of its own takes at least {cf:.2} + {:.2} = {tight:.2} µs: {:.2}x the better peer's median",
        kern.1,
        tight / best
    );
    println!(
        "    median target 0.7x the better peer = {:.2} µs: {}",
        0.7 * best,
        if 0.7 * best < bound {
            "below the floor bound: no server can reach it on this machine in this run"
        } else if 0.7 * best < tight {
            "above the floor bound, below the kernel-work bound: out of reach of any server on these transports in this run"
        } else {
            "above both bounds: not ruled out"
        }
    );
    // Unpinned, a peer's round trip stays on one CPU only when the scheduler keeps the client
    // and the server thread it wakes together; its one-CPU median is that round trip, measured
    // in every run whatever the scheduler did unpinned.
    let best_one = peers
        .iter()
        .filter_map(|p| idx(p))
        .map(|i| med(i, ROW_ONE_CPU_MEDIAN))
        .fold(f64::MAX, f64::min);
    println!(
        "    the better peer's same-CPU round trip (one-CPU median) {best_one:.2} µs: the floor bound is {:.2}x it, the kernel-work bound {:.2}x; so where a peer's round trip stays on one CPU, median <= 0.7x is {}",
        bound / best_one,
        tight / best_one,
        if 0.7 * best_one < bound {
            "below the floor bound: out of reach of any server"
        } else if 0.7 * best_one < tight {
            "below the kernel-work bound: out of reach of any server on these transports"
        } else {
            "not ruled out"
        }
    );
    // Per transport of ours: with no code of its own, a server still has its transport's work,
    // the client's side and the kernel's side for the server; on one CPU a round trip takes at
    // least their sum. Over io_uring a request is served on the CPU that issued it, so this is
    // its round trip unpinned too.
    for (name, o) in ours.iter().filter_map(|n| idx(n).map(|o| (*n, o))) {
        let r = &rows[o];
        let client = med(o, ROW_ONE_CPU_CLIENT);
        let kernel = r.one_cpu_kernel_us();
        let target = targets_of(name)
            .iter()
            .find(|t| t.0 == ROW_MEDIAN)
            .map_or(f64::NAN, |t| t.1);
        let b = client + kernel;
        println!(
            "    {name}: a same-CPU round trip over its transport takes at least its client's CPU {client:.2} + the kernel's work for its server {kernel:.2} = {b:.2} µs with no server code at all: {:.2}x the better peer's median (target {target:.1}x: {})",
            b / best,
            if b / best > target {
                "out of reach on this transport in this run"
            } else {
                "not ruled out"
            }
        );
    }
    // One client thread has one read in flight: its reads/s is 1 / its mean round trip; two
    // client threads that the scheduler puts on one CPU share that CPU's time.
    let best_rate = |row: usize| {
        peers
            .iter()
            .filter_map(|p| idx(p))
            .map(|i| med(i, row))
            .fold(f64::MIN, f64::max)
    };
    println!(
        "    reads/s target 1.3x the better peer: 1 client {:.1}k, 2 clients {:.1}k, and of its one-CPU rate {:.1}k; the kernel-work bound allows at most {:.1}k on one CPU (1 client, or 2 clients the scheduler keeps on one CPU)",
        1.3 * best_rate(0) / 1000.0,
        1.3 * best_rate(1) / 1000.0,
        1.3 * best_rate(6) / 1000.0,
        1000.0 / tight
    );
    drop(floor);
    drop(servers);
    let _ = std::fs::remove_dir(&base);
}
