//! Shared test fixture: a devfs mounted in a fresh temporary directory, always unmounted.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use revocable_devfs::server::{Devfs, Options};

pub use revocable_devfs::fuse::testing::fuse_available;

/// Makes a fresh directory `devfs-TAG-XXXXXX` under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    revocable_devfs::fuse::testing::temp_dir(&format!("devfs-{tag}"))
}

/// A mounted devfs; unmounts and removes its directory on drop (also on test failure).
pub struct Mounted {
    pub fs: Devfs,
    pub dir: PathBuf,
}

impl Mounted {
    pub fn new(tag: &str) -> Option<Mounted> {
        Mounted::with_options(tag, &Options::default())
    }

    pub fn with_options(tag: &str, options: &Options) -> Option<Mounted> {
        if !fuse_available() {
            return None;
        }
        let dir = temp_dir(tag);
        let fs = Devfs::mount_with(&dir, 4, options)
            .unwrap_or_else(|e| panic!("mount {}: {e}", dir.display()));
        // The suite runs once per transport (scripts/test.sh): make sure it is the one asked for.
        match std::env::var("REVOCABLE_FUSE_TRANSPORT").as_deref() {
            Ok("uring") => assert!(fs.transport().uring, "{}", fs.transport()),
            Ok("dev") => assert!(!fs.transport().uring, "{}", fs.transport()),
            _ => {}
        }
        Some(Mounted { fs, dir })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn control(&self, line: &str) -> std::io::Result<()> {
        std::fs::write(self.path("control"), line)
    }

    /// Waits (bounded) until `cond` holds.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.fs.stopper().stop();
        self.fs.join();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// open(2) returning the errno on failure.
pub fn open(path: &Path, flags: i32) -> Result<OwnedFd, i32> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(errno())
    } else {
        // SAFETY: fd is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// read(2): the bytes, or the errno.
pub fn read(fd: &OwnedFd, len: usize) -> Result<Vec<u8>, i32> {
    let mut b = vec![0u8; len];
    // SAFETY: b has len writable bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(errno());
    }
    b.truncate(n as usize);
    Ok(b)
}

/// pread(2).
pub fn pread(fd: &OwnedFd, len: usize, off: i64) -> Result<Vec<u8>, i32> {
    let mut b = vec![0u8; len];
    // SAFETY: b has len writable bytes.
    let n = unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), len, off) };
    if n < 0 {
        return Err(errno());
    }
    b.truncate(n as usize);
    Ok(b)
}

/// write(2).
pub fn write(fd: &OwnedFd, data: &[u8]) -> Result<usize, i32> {
    // SAFETY: data is readable for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// ioctl with a buffer argument.
pub fn ioctl_buf(fd: &OwnedFd, cmd: u32, buf: &mut [u8]) -> Result<i32, i32> {
    // SAFETY: buf is valid for _IOC_SIZE(cmd) bytes as the callers size it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, buf.as_mut_ptr()) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// ioctl with a value argument.
pub fn ioctl_val(fd: &OwnedFd, cmd: u32, val: u64) -> Result<i32, i32> {
    // SAFETY: value ioctls do not dereference the argument.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, val as libc::c_ulong) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// poll(2) on one fd; returns revents (0 on timeout).
pub fn poll1(fd: &OwnedFd, events: i16, timeout_ms: i32) -> i16 {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: p is one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    assert!(r >= 0, "poll: {}", std::io::Error::last_os_error());
    p.revents
}

/// Opens cros_ec and sets an event mask.
pub fn ec_with_mask(m: &Mounted, flags: i32, mask: u64) -> OwnedFd {
    let fd = open(&m.path("cros_ec"), flags).expect("open cros_ec");
    ioctl_val(&fd, revocable_devfs::cros_ec::chardev::IOCEVENTMASK, mask).expect("EVENTMASK");
    fd
}

/// Forks a child that runs `child` (async-signal-safe calls only) and exits with its return value.
pub fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no memory preconditions; the child only makes raw system calls and exits
    // with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child();
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for `pid` up to `timeout`; returns the raw wait status, or None on timeout.
pub fn wait_pid(pid: libc::pid_t, timeout: Duration) -> Option<i32> {
    let t = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: st is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return Some(st);
        }
        if t.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills and reaps `pid` (cleanup after a failed assertion).
pub fn kill_reap(pid: libc::pid_t) {
    // SAFETY: plain syscalls on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// In a forked child: opens the cros_ec at `path`, sets event mask 1, blocks in read; returns
/// the errno it got, or 100 (open failed), 101 (ioctl failed), 102 (the read succeeded).
/// Async-signal-safe: raw system calls only.
pub fn blocked_read(path: &CString) -> i32 {
    // SAFETY: raw system calls with valid arguments (path is NUL-terminated; buf is on the stack).
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return 100;
        }
        if libc::ioctl(
            fd,
            revocable_devfs::cros_ec::chardev::IOCEVENTMASK as _,
            1 as libc::c_ulong,
        ) < 0
        {
            return 101;
        }
        let mut buf = [0u8; 16];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n >= 0 {
            return 102;
        }
        *libc::__errno_location()
    }
}

extern "C" fn on_signal(_: libc::c_int) {}

/// Installs a handler that does nothing for `sig` (so that the signal interrupts instead of
/// killing), with `sigaction` flags `flags`. For forked children: async-signal-safe.
pub fn install_noop_handler(sig: libc::c_int, flags: libc::c_int) {
    // SAFETY: a zeroed sigaction is valid; the handler is a plain extern "C" fn that does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = flags;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Waits until `n` reads were parked in the server, then a little longer (the client is then
/// asleep in the kernel).
pub fn wait_parked(m: &Mounted, n: u64) {
    let stats = m.fs.stats().clone();
    m.wait_until("client blocked in the server", || {
        stats.parked_reads.load(std::sync::atomic::Ordering::SeqCst) >= n
    });
    std::thread::sleep(Duration::from_millis(50));
}
