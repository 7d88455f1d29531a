//! `revocable demo`: mount devfs in a temporary directory, run real client processes on
//! `cros_ec` (blocked readers, pollers, ioctl loops), unplug the EC under them, re-plug it, and
//! report what each client saw. Without FUSE the same scenario runs in-process on the fops layer
//! (threads instead of processes).
//!
//! Clients are this binary re-executed in a hidden client mode (`demo --client KIND --dev PATH`);
//! each prints `READY` once set up and one `REPORT …` line when its device fails.
//!
//! Invariant: the demo always unmounts and removes its directory, and never waits without a
//! bound: a client that does not report within the deadline is killed and shown as stuck.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use revocable_devfs::control::Devices;
use revocable_devfs::cros_ec::chardev::{
    IOCEVENTMASK, IOCRDMEM, IOCXCMD_FIXED, READMEM_SIZE, XCMD_FIXED_DATA, XCMD_HEADER,
};
use revocable_devfs::cros_ec::device::CrosEcDevice;
use revocable_devfs::cros_ec::ec::cmd;
use revocable_devfs::server::Devfs;
use revocable_fops::ioctl::IoctlArg;
use revocable_fops::{Errno, OpenFile, PollEvents, Wait, Waiter};

/// Arguments of `revocable demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Blocked readers to start (0 to 64; with --net, `cat` readers of the interface).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = client_count)]
    pub readers: usize,
    /// Pollers to start (0 to 64; not with --net).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = client_count,
          conflicts_with = "net")]
    pub pollers: usize,
    /// ioctl loops to start (0 to 64; not with --net).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = client_count,
          conflicts_with = "net")]
    pub ioctl_loops: usize,
    /// Run in-process on the fops layer even when FUSE is available.
    #[arg(long)]
    pub no_fuse: bool,
    /// Real hot-plug instead: veth interfaces in a private network namespace, served as
    /// `net/veth0` under `cat` client processes (needs root and iproute2).
    #[arg(long, conflicts_with = "no_fuse")]
    pub net: bool,
    /// (internal) run as a client of this kind.
    #[arg(long, hide = true)]
    pub client: Option<String>,
    /// (internal) the client's device file.
    #[arg(long, hide = true)]
    pub dev: Option<PathBuf>,
}

/// Most client processes of one kind: each is a process with a thread, and the demo is a
/// demonstration, not a load test (`revocable torture --devfs` is that).
const MAX_CLIENTS: usize = 64;

/// Parses a number of clients of one kind, `0..=MAX_CLIENTS`.
fn client_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_CLIENTS => Ok(n),
        Ok(n) => Err(format!("{n} is not in 0..={MAX_CLIENTS}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Prints a line; a closed stdout (`revocable demo | head`) is not an error.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const DEADLINE: Duration = Duration::from_secs(10);
const EVENT_TYPE: u8 = 1;

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC is system-wide, so parent and children
    // share the time base.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn errno_name(e: i32) -> String {
    match Errno::from_raw(e) {
        Some(x) => x
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("errno {e}")),
        None => format!("errno {e}"),
    }
}

/// The EC operations a client uses, over a real file or an in-process open file.
trait Ec: Send {
    fn set_mask(&self, mask: u64) -> Result<(), i32>;
    /// Blocking read of one event.
    fn read_event(&self) -> Result<Vec<u8>, i32>;
    /// Non-blocking read of one event.
    fn read_nb(&self) -> Result<Vec<u8>, i32>;
    /// Blocks until readable (or error/hang-up); returns revents.
    fn poll_in(&self) -> Result<u32, i32>;
    fn readmem(&self) -> Result<(), i32>;
    fn hello(&self) -> Result<(), i32>;
}

/// A real file descriptor on the mounted `cros_ec`.
struct FdEc(OwnedFd);

fn sys(r: isize) -> Result<isize, i32> {
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

impl FdEc {
    fn open(path: &Path, flags: i32) -> Result<FdEc, i32> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
        // SAFETY: c is a valid NUL-terminated path.
        let fd = sys(
            unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | flags) } as isize,
        )?;
        // SAFETY: fd is a fresh descriptor we own.
        Ok(FdEc(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }
    fn read(&self) -> Result<Vec<u8>, i32> {
        let mut b = [0u8; 64];
        // SAFETY: b is writable for its length.
        let n = sys(unsafe { libc::read(self.0.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) })?;
        Ok(b[..n as usize].to_vec())
    }
    fn ioctl(&self, cmd: u32, buf: &mut [u8]) -> Result<(), i32> {
        // SAFETY: buf is sized for the command's _IOC_SIZE by the callers.
        sys(unsafe { libc::ioctl(self.0.as_raw_fd(), cmd as _, buf.as_mut_ptr()) } as isize)
            .map(|_| ())
    }
}

fn readmem_buf() -> Vec<u8> {
    let mut b = vec![0u8; READMEM_SIZE];
    b[..4].copy_from_slice(&0x20u32.to_le_bytes());
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    b
}

fn hello_buf() -> Vec<u8> {
    let mut b = vec![0u8; XCMD_HEADER + XCMD_FIXED_DATA];
    b[4..8].copy_from_slice(&cmd::HELLO.to_le_bytes());
    b[8..12].copy_from_slice(&4u32.to_le_bytes());
    b[12..16].copy_from_slice(&4u32.to_le_bytes());
    b
}

impl Ec for FdEc {
    fn set_mask(&self, mask: u64) -> Result<(), i32> {
        // SAFETY: a value ioctl; the argument is not dereferenced.
        sys(
            unsafe { libc::ioctl(self.0.as_raw_fd(), IOCEVENTMASK as _, mask as libc::c_ulong) }
                as isize,
        )
        .map(|_| ())
    }
    /// Blocks unless the file was opened `O_NONBLOCK` (pollers are).
    fn read_event(&self) -> Result<Vec<u8>, i32> {
        self.read()
    }
    fn read_nb(&self) -> Result<Vec<u8>, i32> {
        self.read()
    }
    fn poll_in(&self) -> Result<u32, i32> {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        sys(unsafe { libc::poll(&mut p, 1, -1) } as isize)?;
        Ok(p.revents as u32)
    }
    fn readmem(&self) -> Result<(), i32> {
        self.ioctl(IOCRDMEM, &mut readmem_buf())
    }
    fn hello(&self) -> Result<(), i32> {
        self.ioctl(IOCXCMD_FIXED, &mut hello_buf())
    }
}

/// An in-process open file (the fallback without FUSE).
struct FileEc(OpenFile, Waiter);

impl Ec for FileEc {
    fn set_mask(&self, mask: u64) -> Result<(), i32> {
        self.0
            .ioctl(IOCEVENTMASK, IoctlArg::value(mask))
            .map(|_| ())
            .map_err(Errno::raw)
    }
    fn read_event(&self) -> Result<Vec<u8>, i32> {
        let mut b = [0u8; 64];
        let n = self
            .0
            .read(&mut b, Wait::Block(&self.1))
            .map_err(Errno::raw)?;
        Ok(b[..n].to_vec())
    }
    fn read_nb(&self) -> Result<Vec<u8>, i32> {
        let mut b = [0u8; 64];
        let n = self.0.read(&mut b, Wait::NonBlocking).map_err(Errno::raw)?;
        Ok(b[..n].to_vec())
    }
    fn poll_in(&self) -> Result<u32, i32> {
        self.0
            .poll_wait(PollEvents::POLLIN, &self.1, None)
            .map(PollEvents::bits)
            .map_err(Errno::raw)
    }
    fn readmem(&self) -> Result<(), i32> {
        let mut b = readmem_buf();
        self.0
            .ioctl(IOCRDMEM, IoctlArg::with_data(0, &mut b))
            .map(|_| ())
            .map_err(Errno::raw)
    }
    fn hello(&self) -> Result<(), i32> {
        let mut b = hello_buf();
        self.0
            .ioctl(IOCXCMD_FIXED, IoctlArg::with_data(0, &mut b))
            .map(|_| ())
            .map_err(Errno::raw)
    }
}

/// What a client reports when its device fails (or, for `once`, after one event).
#[derive(Clone, Debug, Default)]
struct Report {
    ops: u64,
    errno: i32,
    revents: u32,
    t_ns: u64,
}

impl Report {
    fn line(&self) -> String {
        format!(
            "REPORT {} {} {} {}",
            self.ops, self.errno, self.revents, self.t_ns
        )
    }
    fn parse(s: &str) -> Option<Report> {
        let mut w = s
            .strip_prefix("REPORT ")?
            .split(' ')
            .map(|x| x.parse::<u64>().ok());
        Some(Report {
            ops: w.next()??,
            errno: i32::try_from(w.next()??).ok()?,
            revents: u32::try_from(w.next()??).ok()?,
            t_ns: w.next()??,
        })
    }
}

/// Runs one client to its end; `ready` is called once the file is set up.
fn client(kind: &str, ec: &dyn Ec, ready: &mut dyn FnMut()) -> Report {
    let mut r = Report::default();
    if let Err(e) = ec.set_mask(1 << EVENT_TYPE) {
        r.errno = e;
        r.t_ns = now_ns();
        return r;
    }
    ready();
    loop {
        let res = match kind {
            "reader" | "once" => ec.read_event().map(|_| ()),
            "poller" => match ec.poll_in() {
                Ok(ev) if ev & (libc::POLLERR | libc::POLLHUP) as u32 != 0 => {
                    r.revents = ev;
                    // The device is gone: the next read says why.
                    ec.read_nb().map(|_| ())
                }
                Ok(_) => ec.read_nb().map(|_| ()),
                Err(e) => Err(e),
            },
            _ => ec.readmem().and_then(|()| ec.hello()),
        };
        match res {
            Ok(()) => {
                r.ops += 1;
                if kind == "once" {
                    r.t_ns = now_ns();
                    return r;
                }
            }
            Err(libc::EAGAIN) => {}
            Err(e) => {
                r.errno = e;
                r.t_ns = now_ns();
                return r;
            }
        }
    }
}

/// The hidden client mode: a real process on the mounted file.
fn run_client(kind: &str, dev: &Path) -> ExitCode {
    // The demo blocks its stop signals for its own signal thread; a client takes them normally.
    let set = crate::devfs::block_stop_signals();
    // SAFETY: set is an initialised sigset_t.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    let flags = if kind == "poller" {
        libc::O_NONBLOCK
    } else {
        0
    };
    let ec = match FdEc::open(dev, flags) {
        Ok(ec) => ec,
        Err(e) => {
            say!(
                "{}",
                Report {
                    errno: e,
                    t_ns: now_ns(),
                    ..Default::default()
                }
                .line()
            );
            return ExitCode::from(1);
        }
    };
    let r = client(kind, &ec, &mut || say!("READY"));
    say!("{}", r.line());
    ExitCode::SUCCESS
}

/// A running client: its kind and where its lines arrive.
struct Running {
    name: String,
    kind: &'static str,
    lines: Receiver<String>,
    child: Option<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // Not waited for here: a client may still be blocked until the session ends.
            let _ = c.kill();
        }
    }
}

impl Running {
    fn wait_ready(&self) -> bool {
        matches!(self.lines.recv_timeout(DEADLINE).as_deref(), Ok("READY"))
    }
    fn report(&mut self) -> Option<Report> {
        let r = self
            .lines
            .recv_timeout(DEADLINE)
            .ok()
            .and_then(|l| Report::parse(&l));
        if let Some(c) = &mut self.child {
            if r.is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        r
    }
}

/// How clients are started: processes on the mount, or threads on the fops layer.
enum Mode<'a> {
    Fuse { dev: PathBuf },
    InProcess { ec: &'a Arc<CrosEcDevice> },
}

impl Mode<'_> {
    fn spawn(&self, name: String, kind: &'static str) -> Result<Running, String> {
        let (tx, rx): (Sender<String>, _) = channel();
        match self {
            Mode::Fuse { dev } => {
                let exe =
                    std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
                let mut child = Command::new(exe)
                    .args(["demo", "--client", kind, "--dev"])
                    .arg(dev)
                    .stdout(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start client: {e}"))?;
                let out = child.stdout.take().ok_or("no client stdout")?;
                std::thread::spawn(move || {
                    for l in BufReader::new(out).lines().map_while(Result::ok) {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                });
                Ok(Running {
                    name,
                    kind,
                    lines: rx,
                    child: Some(child),
                })
            }
            Mode::InProcess { ec } => {
                let f = ec
                    .open(libc::O_RDWR as u32)
                    .map_err(|e| format!("open cros_ec: {e}"))?;
                std::thread::spawn(move || {
                    let ec = FileEc(f, Waiter::new());
                    let r = client(kind, &ec, &mut || {
                        let _ = tx.send("READY".into());
                    });
                    let _ = tx.send(r.line());
                });
                Ok(Running {
                    name,
                    kind,
                    lines: rx,
                    child: None,
                })
            }
        }
    }
}

fn fmt_us(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.0} µs", ns as f64 / 1e3)
    }
}

/// The scenario, for either mode. Returns false if a client got stuck or misbehaved.
fn scenario(
    args: &Args,
    mode: &Mode<'_>,
    devices: &Devices,
    event: &dyn Fn(u8) -> Result<(), String>,
) -> Result<bool, String> {
    let mut clients = Vec::new();
    let plan: [(&'static str, usize); 3] = [
        ("reader", args.readers),
        ("poller", args.pollers),
        ("ioctl", args.ioctl_loops),
    ];
    for (kind, n) in plan {
        for i in 0..n {
            clients.push(mode.spawn(format!("{kind}-{}", i + 1), kind)?);
        }
    }
    for c in &clients {
        if !c.wait_ready() {
            return Err(format!("client {} did not start", c.name));
        }
    }
    say!(
        "started {} clients ({} blocked readers, {} pollers, {} ioctl loops)",
        clients.len(),
        args.readers,
        args.pollers,
        args.ioctl_loops
    );
    let events = 10u8;
    for i in 0..events {
        event(i)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    say!("injected {events} MKBP events through control; ioctl loops running");
    std::thread::sleep(Duration::from_millis(100));

    say!("unplugging cros_ec ...");
    let t0 = now_ns();
    let revoke = devices.cros_ec.unbind().ok_or("cros_ec was not bound")?;
    let mut ok = true;
    say!();
    say!(
        "{:<10} {:<7} {:>10}  {:<36} {:>12}",
        "client",
        "kind",
        "ops before",
        "after unplug",
        "woke after"
    );
    for c in &mut clients {
        match c.report() {
            Some(r) => {
                let what = match (c.kind, r.revents) {
                    ("poller", ev) if ev != 0 => format!(
                        "{:?} then {}",
                        PollEvents::from_bits(ev),
                        errno_name(r.errno)
                    ),
                    _ => errno_name(r.errno),
                };
                ok &= r.errno == libc::ENODEV;
                say!(
                    "{:<10} {:<7} {:>10}  {:<36} {:>12}",
                    c.name,
                    c.kind,
                    r.ops,
                    what,
                    fmt_us(r.t_ns.saturating_sub(t0))
                );
            }
            None => {
                ok = false;
                say!(
                    "{:<10} {:<7} {:>10}  {:<36} {:>12}",
                    c.name,
                    c.kind,
                    "?",
                    "STUCK (killed)",
                    "-"
                );
            }
        }
    }
    say!();
    say!(
        "revoke latency (unbind: deregister node, revoke EC, wake sleepers): {}",
        fmt_us(revoke.as_nanos() as u64)
    );
    match mode {
        Mode::Fuse { dev } => match FdEc::open(dev, 0) {
            Err(e) => say!("open cros_ec after unplug: {}", errno_name(e)),
            Ok(_) => {
                ok = false;
                say!("open cros_ec after unplug: unexpectedly succeeded");
            }
        },
        Mode::InProcess { ec } => say!(
            "open cros_ec after unplug: {}",
            ec.open(0)
                .err()
                .map_or("ok?".into(), |e| errno_name(e.raw()))
        ),
    }

    say!("re-plugging cros_ec ...");
    devices.cros_ec.bind();
    let mut fresh = mode.spawn("reader-new".into(), "once")?;
    if !fresh.wait_ready() {
        return Err("the client after re-plug did not start".into());
    }
    let t1 = now_ns();
    event(0x42)?;
    match fresh.report() {
        Some(r) if r.errno == 0 => say!(
            "new client after re-plug: got an event {} after injection",
            fmt_us(r.t_ns.saturating_sub(t1))
        ),
        other => {
            ok = false;
            say!("new client after re-plug: failed ({other:?})");
        }
    }
    Ok(ok)
}

fn run_fuse(args: &Args, dir: &Path, mut fs: Devfs, set: libc::sigset_t) -> Result<bool, String> {
    // Ctrl-C during the demo: unmount and let the scenario fail fast instead of leaving a mount.
    let stop = fs.stopper();
    std::thread::spawn(move || {
        if crate::devfs::wait_for_stop_signal(&set).is_some() {
            eprintln!("revocable demo: interrupted, unmounting");
            stop.stop();
        }
    });
    say!("devfs mounted at {}", dir.display());
    say!(
        "  control: {}",
        std::fs::read_to_string(dir.join("control"))
            .unwrap_or_default()
            .trim()
            .replace('\n', ", ")
    );
    if let Ok(out) = Command::new("cat").arg(dir.join("cros_ec")).output() {
        say!(
            "  `cat cros_ec`: {}",
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .replace('\n', " | ")
        );
    }
    let devices = fs.devices().clone();
    let ctl = dir.join("control");
    let event = move |i: u8| {
        // No create: after an interrupted demo the path may no longer be on the mount.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&ctl)
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    format!("event cros_ec {EVENT_TYPE} {i:02x}\n").as_bytes(),
                )
            })
            .map_err(|e| format!("write control: {e}"))
    };
    let ok = scenario(
        args,
        &Mode::Fuse {
            dev: dir.join("cros_ec"),
        },
        &devices,
        &event,
    );
    let balanced = unmount_balanced(&mut fs);
    say!("unmounted {}", dir.display());
    Ok(ok? && balanced)
}

/// Lets the last RELEASEs arrive, unmounts, and prints whether every open was released (by a
/// RELEASE or at unmount); returns that.
pub(crate) fn unmount_balanced(fs: &mut Devfs) -> bool {
    std::thread::sleep(Duration::from_millis(100));
    let (opens, releases) = (
        fs.stats().opens.load(Relaxed),
        fs.stats().releases.load(Relaxed),
    );
    fs.stopper().stop();
    fs.join();
    let at_end = fs.stats().releases_at_end.load(Relaxed);
    let balanced = opens == releases + at_end;
    say!(
        "opens {opens}, releases {releases} (+{at_end} at unmount): {}",
        if balanced { "balanced" } else { "UNBALANCED" }
    );
    balanced
}

fn run_in_process(args: &Args) -> Result<bool, String> {
    let devices = Devices::new();
    let ec = devices.cros_ec.clone();
    let d2 = devices.clone();
    let event = move |i: u8| {
        d2.run_text(format!("event cros_ec {EVENT_TYPE} {i:02x}\n").as_bytes())
            .map_err(|e| format!("event: {}", errno_name(e)))
    };
    scenario(args, &Mode::InProcess { ec: &ec }, &devices, &event)
}

/// Entry point of `revocable demo`.
pub fn run(args: Args) -> ExitCode {
    if let (Some(kind), Some(dev)) = (&args.client, &args.dev) {
        return run_client(kind, dev);
    }
    let clients = if args.net {
        args.readers
    } else {
        args.readers + args.pollers + args.ioctl_loops
    };
    if clients == 0 {
        eprintln!(
            "revocable demo: no clients to unplug the device under: \
             give at least one reader, poller or ioctl loop"
        );
        return ExitCode::from(2);
    }
    let t = std::time::Instant::now();
    let result = if args.net {
        say!("revocable demo --net: real network interfaces plugged and unplugged");
        crate::demo_net::run(args.readers)
    } else if args.no_fuse {
        say!("revocable demo: in-process on the fops layer (--no-fuse)");
        run_in_process(&args)
    } else {
        match crate::tempdir::make("revocable-demo") {
            Err(e) => Err(e),
            Ok(dir) => {
                // The stop signals are blocked before the server threads start, so that they
                // inherit the mask, and taken by the demo's signal thread; client processes
                // unblock them (other children, `cat`, inherit the mask: they are short-lived).
                let set = crate::devfs::block_stop_signals();
                let r = match Devfs::mount(&dir, 4) {
                    Ok(fs) => run_fuse(&args, &dir, fs, set),
                    Err(e) => {
                        // Nobody waits for the stop signals here: let them act as usual.
                        // SAFETY: set is an initialised sigset_t.
                        unsafe {
                            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
                        };
                        say!("revocable demo: FUSE is not available ({e}); running the same scenario in-process on the fops layer");
                        run_in_process(&args)
                    }
                };
                let _ = std::fs::remove_dir(&dir);
                r
            }
        }
    };
    match result {
        Ok(true) => {
            say!("demo finished in {:.1} s: every client saw ENODEV after unplug and none was left blocked", t.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            say!(
                "demo finished in {:.1} s with unexpected results (see above)",
                t.elapsed().as_secs_f64()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("revocable demo: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_counts_are_bounded() {
        let p = |argv: &[&str]| crate::parse_args::<Args>("demo", argv);
        let a = p(&["--readers", "0", "--pollers", "64"]).unwrap();
        assert_eq!((a.readers, a.pollers, a.ioctl_loops), (0, 64, 2));
        assert!(p(&["--net", "--pollers", "1"]).is_err());
        assert!(p(&["--net", "--readers", "5"]).is_ok());
        for bad in ["65", "100000", "-1", "many"] {
            for flag in ["--readers", "--pollers", "--ioctl-loops"] {
                assert!(p(&[flag, bad]).is_err(), "{flag} {bad}");
            }
        }
    }

    #[test]
    fn a_demo_without_clients_is_a_usage_error() {
        let a = crate::parse_args::<Args>(
            "demo",
            &["--readers", "0", "--pollers", "0", "--ioctl-loops", "0"],
        )
        .unwrap();
        assert_eq!(run(a), ExitCode::from(2));
    }
}
