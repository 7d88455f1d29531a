//! The client side of `revocable torture --devfs`: a process (this binary re-executed as
//! `torture --devfs-client PATH`) that runs paced open → read-or-ioctl → close cycles on
//! `cros_ec`, and the line protocol (`HB …` every 100 ms, `DONE …` at the end) by which it reports
//! its counters and the operation in flight to the parent's watchdog.
//!
//! Invariant: the heartbeat thread never touches the device file, so a client whose operation
//! is stuck in the server keeps reporting which operation it is and for how long.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use revocable_devfs::cros_ec::chardev::{
    IOCEVENTMASK, IOCRDMEM, IOCXCMD_FIXED, READMEM_SIZE, XCMD_FIXED_DATA, XCMD_HEADER,
};
use revocable_devfs::cros_ec::ec::cmd;

/// Heartbeat period of a client.
const HEARTBEAT: Duration = Duration::from_millis(100);

/// The operations of a cycle, as a client reports the one in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(super) enum Op {
    Idle = 0,
    Open = 1,
    Read = 2,
    ReadMem = 3,
    Hello = 4,
    EventMask = 5,
    ReadNonBlock = 6,
    Close = 7,
}

impl Op {
    pub(super) fn from_code(c: u64) -> Op {
        match c {
            1 => Op::Open,
            2 => Op::Read,
            3 => Op::ReadMem,
            4 => Op::Hello,
            5 => Op::EventMask,
            6 => Op::ReadNonBlock,
            7 => Op::Close,
            _ => Op::Idle,
        }
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Idle => "idle",
            Op::Open => "open",
            Op::Read => "read (version)",
            Op::ReadMem => "ioctl RDMEM",
            Op::Hello => "ioctl XCMD_FIXED (hello)",
            Op::EventMask => "ioctl EVENTMASK",
            Op::ReadNonBlock => "non-blocking read (event)",
            Op::Close => "close",
        }
    }
}

/// A client's counters, as reported on its heartbeat and final lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counters {
    /// Cycles attempted (each starts with an open).
    pub(super) cycles: u64,
    /// Cycles whose open succeeded (each ended with a close).
    pub(super) opened: u64,
    /// Opens that failed with ENODEV (expected while the EC is unplugged).
    pub(super) enodev: u64,
    /// Operations on an open file that failed with ENODEV: the EC was unplugged while the file
    /// was open (expected: the file stays revoked, even after a re-plug).
    pub(super) revoked: u64,
    /// Non-blocking event reads that found nothing (EAGAIN, expected).
    pub(super) eagain: u64,
    /// Operations that failed otherwise, or returned wrong data (a failure of the run).
    pub(super) other: u64,
    /// The errno of the last such failure (0 for wrong data).
    pub(super) last_errno: u64,
    /// Longest cycle, in microseconds.
    pub(super) max_cycle_us: u64,
    /// The operation in flight ([`Op`] code), and for how long, in milliseconds.
    pub(super) op: u64,
    pub(super) op_ms: u64,
}

impl Counters {
    fn line(&self, tag: &str) -> String {
        format!(
            "{tag} {} {} {} {} {} {} {} {} {} {}",
            self.cycles,
            self.opened,
            self.enodev,
            self.revoked,
            self.eagain,
            self.other,
            self.last_errno,
            self.max_cycle_us,
            self.op,
            self.op_ms
        )
    }

    /// Parses a `HB …` or `DONE …` line: the tag and the counters.
    pub(super) fn parse(line: &str) -> Option<(&str, Counters)> {
        let mut w = line.split(' ');
        let tag = w.next().filter(|t| *t == "HB" || *t == "DONE")?;
        let mut n = || w.next()?.parse::<u64>().ok();
        let c = Counters {
            cycles: n()?,
            opened: n()?,
            enodev: n()?,
            revoked: n()?,
            eagain: n()?,
            other: n()?,
            last_errno: n()?,
            max_cycle_us: n()?,
            op: n()?,
            op_ms: n()?,
        };
        Some((tag, c))
    }
}

/// Shared between a client's cycling thread and its heartbeat thread.
#[derive(Default)]
struct ClientState {
    cycles: AtomicU64,
    opened: AtomicU64,
    enodev: AtomicU64,
    revoked: AtomicU64,
    eagain: AtomicU64,
    other: AtomicU64,
    last_errno: AtomicU64,
    max_cycle_us: AtomicU64,
    op: AtomicU64,
    /// Start of the operation in flight, in ns since the client's start (0 when idle).
    op_since: AtomicU64,
    start: Option<Instant>,
}

impl ClientState {
    fn now_ns(&self) -> u64 {
        self.start
            .map_or(0, |s| s.elapsed().as_nanos() as u64)
            .max(1)
    }
    // Relaxed everywhere: the heartbeat reads a snapshot of independent counters; a slightly
    // stale value only shifts a report by one heartbeat.
    fn begin(&self, op: Op) {
        self.op.store(op as u64, Relaxed);
        self.op_since.store(self.now_ns(), Relaxed);
    }
    fn idle(&self) {
        self.op.store(Op::Idle as u64, Relaxed);
        self.op_since.store(0, Relaxed);
    }
    fn snapshot(&self) -> Counters {
        let since = self.op_since.load(Relaxed);
        let op = self.op.load(Relaxed);
        Counters {
            cycles: self.cycles.load(Relaxed),
            opened: self.opened.load(Relaxed),
            enodev: self.enodev.load(Relaxed),
            revoked: self.revoked.load(Relaxed),
            eagain: self.eagain.load(Relaxed),
            other: self.other.load(Relaxed),
            last_errno: self.last_errno.load(Relaxed),
            max_cycle_us: self.max_cycle_us.load(Relaxed),
            op: if since == 0 { 0 } else { op },
            op_ms: if since == 0 {
                0
            } else {
                self.now_ns().saturating_sub(since) / 1_000_000
            },
        }
    }
    fn failed(&self, errno: i32) {
        self.other.fetch_add(1, Relaxed);
        self.last_errno.store(errno as u64, Relaxed);
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn readmem_buf() -> Vec<u8> {
    let mut b = vec![0u8; READMEM_SIZE];
    b[..4].copy_from_slice(&0x20u32.to_le_bytes());
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    b
}

fn hello_buf(x: u32) -> Vec<u8> {
    let mut b = vec![0u8; XCMD_HEADER + XCMD_FIXED_DATA];
    b[4..8].copy_from_slice(&cmd::HELLO.to_le_bytes());
    b[8..12].copy_from_slice(&4u32.to_le_bytes());
    b[12..16].copy_from_slice(&4u32.to_le_bytes());
    b[XCMD_HEADER..XCMD_HEADER + 4].copy_from_slice(&x.to_le_bytes());
    b
}

/// Outcome of one operation: `Err(errno)`, or `Err(0)` for a success with wrong data.
type OpResult = Result<(), i32>;

/// The operation after the open (chosen by `choice`) on the open descriptor `fd`.
fn middle(fd: i32, choice: u64, st: &ClientState) -> OpResult {
    match choice % 4 {
        0 => {
            st.begin(Op::Read);
            let mut b = [0u8; 128];
            // SAFETY: b is writable for its length.
            let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
            if n < 0 {
                return Err(errno());
            }
            // Mask 0: the legacy version text, which starts with the chardev's version.
            if !b[..n as usize].starts_with(b"1.0.0\n") {
                return Err(0);
            }
            Ok(())
        }
        1 => {
            st.begin(Op::ReadMem);
            let mut b = readmem_buf();
            // SAFETY: b has READMEM_SIZE bytes, the command's _IOC_SIZE.
            let r = unsafe { libc::ioctl(fd, IOCRDMEM as _, b.as_mut_ptr()) };
            if r < 0 {
                return Err(errno());
            }
            // EC_MEMMAP_ID holds "EC".
            if r != 2 || &b[8..10] != b"EC" {
                return Err(0);
            }
            Ok(())
        }
        2 => {
            st.begin(Op::Hello);
            let x = (choice >> 8) as u32;
            let mut b = hello_buf(x);
            // SAFETY: b has XCMD_HEADER + XCMD_FIXED_DATA bytes, the command's _IOC_SIZE.
            let r = unsafe { libc::ioctl(fd, IOCXCMD_FIXED as _, b.as_mut_ptr()) };
            if r < 0 {
                return Err(errno());
            }
            let out = u32::from_le_bytes([
                b[XCMD_HEADER],
                b[XCMD_HEADER + 1],
                b[XCMD_HEADER + 2],
                b[XCMD_HEADER + 3],
            ]);
            if r != 4 || out != x.wrapping_add(0x0102_0304) {
                return Err(0);
            }
            Ok(())
        }
        _ => {
            st.begin(Op::EventMask);
            // SAFETY: a value ioctl: the argument is not dereferenced.
            let r = unsafe { libc::ioctl(fd, IOCEVENTMASK as _, (1u64 << 1) as libc::c_ulong) };
            if r < 0 {
                return Err(errno());
            }
            st.begin(Op::ReadNonBlock);
            // SAFETY: fcntl on our own descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
            let mut b = [0u8; 64];
            // SAFETY: b is writable for its length.
            let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
            if n < 0 {
                return Err(errno());
            }
            // Nobody raises events in this run: an event here is wrong data.
            Err(0)
        }
    }
}

fn count(st: &ClientState, r: OpResult) {
    match r {
        Ok(()) => {}
        Err(libc::ENODEV) if Op::from_code(st.op.load(Relaxed)) == Op::Open => {
            st.enodev.fetch_add(1, Relaxed);
        }
        Err(libc::ENODEV) => {
            st.revoked.fetch_add(1, Relaxed);
        }
        Err(libc::EAGAIN) if Op::from_code(st.op.load(Relaxed)) == Op::ReadNonBlock => {
            st.eagain.fetch_add(1, Relaxed);
        }
        Err(e) => st.failed(e),
    }
}

/// One cycle: open, one operation, close; one cycle in four holds the file open for `hold` and
/// runs a second operation, so that unplugs also hit open files.
fn cycle(path: &CStr, choice: u64, hold: Duration, st: &ClientState) {
    let t = Instant::now();
    st.cycles.fetch_add(1, Relaxed);
    st.begin(Op::Open);
    // SAFETY: path is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        count(st, Err(errno()));
    } else {
        st.opened.fetch_add(1, Relaxed);
        let r = middle(fd, choice, st);
        count(st, r);
        if choice & 0x30 == 0 {
            st.idle();
            std::thread::sleep(hold);
            // An ioctl: a read's result depends on the first operation (offset, mask).
            let r = middle(fd, 1 + (choice >> 8) % 2, st);
            count(st, r);
        }
        st.begin(Op::Close);
        // SAFETY: fd is our descriptor, closed exactly once here.
        if unsafe { libc::close(fd) } < 0 {
            st.failed(errno());
        }
    }
    st.idle();
    st.max_cycle_us
        .fetch_max(t.elapsed().as_micros() as u64, Relaxed);
}

/// xorshift64*: the clients' choices of operation.
fn next_rand(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Writes a line to stdout; a closed stdout means the parent is gone, so the client leaves.
fn emit(line: &str) {
    let mut o = std::io::stdout().lock();
    if writeln!(o, "{line}").and_then(|()| o.flush()).is_err() {
        std::process::exit(3);
    }
}

/// The hidden client mode: `rate` cycles per second on `dev` for `run_for`, then a `DONE` line.
pub fn run_client(dev: &Path, rate: u64, run_for: Duration, seed: u64) -> ExitCode {
    // The parent blocks SIGINT/SIGTERM for its signal thread; a client takes them normally.
    let set = crate::devfs::block_stop_signals();
    // SAFETY: set is an initialised sigset_t.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    let Ok(path) = CString::new(dev.as_os_str().as_bytes()) else {
        eprintln!("revocable torture client: bad device path");
        return ExitCode::from(2);
    };
    let st = Arc::new(ClientState {
        start: Some(Instant::now()),
        ..Default::default()
    });
    let done = Arc::new(AtomicBool::new(false));
    let hb = {
        let (st, done) = (st.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Relaxed) {
                emit(&st.snapshot().line("HB"));
                std::thread::sleep(HEARTBEAT);
            }
        })
    };
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut rng = seed | 1;
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < run_for {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_millis(50) {
            // Far behind (the machine was busy): do not burst to catch up.
            next = now;
        }
        next += period;
        cycle(&path, next_rand(&mut rng), period / 2, &st);
    }
    done.store(true, Relaxed);
    let _ = hb.join();
    emit(&st.snapshot().line("DONE"));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_lines_round_trip_and_garbage_is_refused() {
        let c = Counters {
            cycles: 10,
            opened: 9,
            enodev: 1,
            revoked: 4,
            eagain: 2,
            other: 0,
            last_errno: 5,
            max_cycle_us: 77,
            op: 3,
            op_ms: 12,
        };
        assert_eq!(Counters::parse(&c.line("HB")), Some(("HB", c)));
        assert_eq!(Counters::parse(&c.line("DONE")), Some(("DONE", c)));
        assert_eq!(Counters::parse("HB 1 2 3"), None);
        assert_eq!(Counters::parse("XX 1 2 3 4 5 6 7 8 9"), None);
        assert_eq!(Counters::parse("HB 1 2 3 4 5 6 7 8 9 x"), None);
    }

    #[test]
    fn ops_have_names_and_choices_vary() {
        for c in 0..9 {
            assert!(!Op::from_code(c).name().is_empty());
        }
        let mut s = 1;
        let a = next_rand(&mut s);
        assert_ne!(a, next_rand(&mut s));
    }

    #[test]
    fn a_client_without_a_device_counts_failures_not_panics() {
        let st = ClientState {
            start: Some(Instant::now()),
            ..Default::default()
        };
        let p = CString::new("/nonexistent/cros_ec").unwrap();
        cycle(&p, 0, Duration::ZERO, &st);
        let c = st.snapshot();
        assert_eq!((c.cycles, c.opened, c.other), (1, 0, 1));
        assert_eq!(c.last_errno, libc::ENOENT as u64);
        assert_eq!(c.op, 0);
    }
}
