//! The `/dev/fuse` channel: receive requests, send replies and notifications, stop the receivers.
//!
//! Two ways to receive:
//! - [`Channel::receive`] (the INIT handshake, tests over pipes): a non-blocking read that waits
//!   in `poll(2)` on the fd and on a stop eventfd.
//! - [`Reader::receive`] (the dispatch threads, after [`Channel::set_blocking`]): a blocking
//!   `read(2)`. The kernel queues blocked readers of `/dev/fuse` as *exclusive* waiters, so a
//!   request wakes exactly one of them (no thundering herd; see issue 12 for the numbers of the
//!   `poll(2)` design this replaced). A blocked read ends with `ENODEV` when the connection ends
//!   (unmount, abort); to end it on [`Channel::stop`] while the mount still has users, the
//!   stopper sends [`wake_signal`] to every reader that is inside `read(2)` (a handler without
//!   `SA_RESTART` makes the read fail with `EINTR`); [`Channel::kick`] repeats that until the
//!   readers are gone, which covers a signal that lands between the stop check and the read.
//!
//! Invariant: after [`Channel::stop`], no receiver starts a new wait, and every receiver that is
//! waiting is woken (by the eventfd, or by the signal that [`Channel::kick`] re-sends).
//! [`Channel::close`] (called by the last receiver to leave) closes the fd, which makes the
//! kernel abort the connection: no client can hang on a server that stopped reading. Senders
//! hold a read lock on the fd, so a reply never goes to a closed (or reused) descriptor.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};

/// What [`Channel::receive`] saw.
#[derive(Debug)]
pub enum Received {
    /// A request of this many bytes is in the buffer.
    Request(usize),
    /// [`Channel::stop`] was called.
    Stopped,
    /// The connection ended: unmounted, or aborted through fusectl.
    Ended,
}

/// An open `/dev/fuse` connection.
///
/// # Invariants
/// `fd` holds an open, non-blocking `/dev/fuse` fd until [`Channel::close`]; `raw` is its number,
/// used by receivers only (close happens after every receiver left); `stop_fd` is an eventfd
/// that becomes readable (and stays so) once `stopped` is set.
#[derive(Debug)]
pub struct Channel {
    fd: RwLock<Option<OwnedFd>>,
    raw: i32,
    stop_fd: OwnedFd,
    stopped: AtomicBool,
    /// The threads that receive with [`Reader::receive`] (registered by [`Channel::reader`]).
    readers: Mutex<Vec<Arc<ReaderSlot>>>,
}

/// One blocking reader: its thread, and whether it is inside (or about to enter) `read(2)`.
#[derive(Debug)]
struct ReaderSlot {
    thread: libc::pthread_t,
    in_read: AtomicBool,
}

/// The signal that wakes a reader blocked in `read(2)` on `/dev/fuse` at [`Channel::stop`]:
/// `SIGRTMAX - 2`. [`Channel::reader`] installs a handler that does nothing (without
/// `SA_RESTART`) if the signal still has its default disposition, and unblocks the signal in
/// the reader's thread. A program that uses this signal for itself should give it a handler
/// without `SA_RESTART`: with `SA_RESTART` the reads restart, and a stopped
/// [`crate::Session`] falls back to aborting the connection through fusectl after a second.
pub fn wake_signal() -> libc::c_int {
    libc::SIGRTMAX() - 2
}

extern "C" fn on_wake_signal(_: libc::c_int) {}

fn install_wake_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with a null new action only reads the current one into `old`, a
        // valid out-pointer; the new action is a zeroed sigaction (valid) with a handler that
        // does nothing, so it is async-signal-safe.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(wake_signal(), std::ptr::null(), &mut old);
            if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_wake_signal as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                sa.sa_flags = 0; // no SA_RESTART: a blocked read(2) returns EINTR
                libc::sigaction(wake_signal(), &sa, std::ptr::null_mut());
            }
        }
    });
}

/// A registered blocking reader of a [`Channel`] (one per dispatch thread; not `Send`: it
/// names the thread that made it). Deregisters on drop.
#[derive(Debug)]
pub struct Reader<'a> {
    ch: &'a Channel,
    slot: Arc<ReaderSlot>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Channel {
    /// Wraps a mounted, non-blocking `/dev/fuse` fd.
    ///
    /// # Errors
    /// When no eventfd can be created.
    pub fn new(fd: OwnedFd) -> io::Result<Channel> {
        // SAFETY: eventfd has no memory preconditions.
        let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if e < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: e is a fresh fd owned by nobody else.
        let stop_fd = unsafe { OwnedFd::from_raw_fd(e) };
        Ok(Channel {
            raw: fd.as_raw_fd(),
            fd: RwLock::new(Some(fd)),
            stop_fd,
            stopped: AtomicBool::new(false),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Makes the fd blocking, for [`Reader::receive`] (a mount's fd starts non-blocking).
    ///
    /// # Errors
    /// fcntl(2) errors.
    pub fn set_blocking(&self) -> io::Result<()> {
        // SAFETY: fcntl on our own open fd with integer arguments.
        let fl = unsafe { libc::fcntl(self.raw, libc::F_GETFL) };
        // SAFETY: as above.
        if fl < 0 || unsafe { libc::fcntl(self.raw, libc::F_SETFL, fl & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Registers the calling thread as a blocking reader (installs and unblocks
    /// [`wake_signal`], see there).
    pub fn reader(&self) -> Reader<'_> {
        install_wake_handler();
        // SAFETY: a sigset_t initialised by sigemptyset/sigaddset; pthread_sigmask only reads
        // it; pthread_self has no preconditions.
        let thread = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, wake_signal());
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::pthread_self()
        };
        let slot = Arc::new(ReaderSlot {
            thread,
            in_read: AtomicBool::new(false),
        });
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot.clone());
        Reader {
            ch: self,
            slot,
            _not_send: std::marker::PhantomData,
        }
    }

    /// After [`Channel::stop`]: signals every registered reader that is in (or about to enter)
    /// `read(2)`; returns how many. Call it until the readers have left: a signal that arrives
    /// just before the read starts is lost, the next one is not.
    pub fn kick(&self) -> usize {
        if !self.is_stopped() {
            return 0;
        }
        let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for r in readers.iter() {
            // SeqCst: pairs with the SeqCst store of in_read and load of stopped in
            // Reader::receive (a Dekker pattern: the reader sees the stop, or we see it reading).
            if r.in_read.load(Ordering::SeqCst) {
                // SAFETY: the thread is registered, so it has not exited (it deregisters, under
                // this lock, before it returns); a signal with a do-nothing handler is harmless.
                unsafe { libc::pthread_kill(r.thread, wake_signal()) };
                n += 1;
            }
        }
        n
    }

    /// Reads the next request into `buf` (which must hold at least max_write + 4 KiB), waiting for
    /// one in `poll(2)`; returns early when stopped or when the connection is gone.
    ///
    /// Every idle dispatch thread wakes for a request and all but one find nothing (EAGAIN) and
    /// wait again. Measured here, that beats waking exactly one thread with `EPOLLEXCLUSIVE`
    /// (72k against 17k small reads/s with one client): the first thread to run takes the request.
    ///
    /// # Errors
    /// Unexpected errors of read(2)/poll(2).
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            // Acquire pairs with the Release in stop(): a receiver that sees the flag stops.
            if self.stopped.load(Ordering::Acquire) {
                return Ok(Received::Stopped);
            }
            if let Some(r) = self.read_once(buf)? {
                return Ok(r);
            }
        }
    }

    /// One `read(2)`: `Some` result, or `None` to read again (after waiting in `poll(2)` when
    /// the fd is non-blocking and had nothing).
    fn read_once(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(self.raw, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(Received::Request(n as usize)));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => self.wait().map(|()| None),
            // EINTR: a signal (a wake signal: the caller checks the stop); ENOENT: the request
            // was interrupted/aborted while being copied; take the next one.
            Some(libc::EINTR) | Some(libc::ENOENT) => Ok(None),
            Some(libc::ENODEV) | Some(libc::ECONNABORTED) => Ok(Some(Received::Ended)),
            _ => Err(e),
        }
    }

    fn wait(&self) -> io::Result<()> {
        let mut fds = [
            libc::pollfd {
                fd: self.raw,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.stop_fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd structs.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes one reply or notification (header and body in `parts`). A reply to a request that no
    /// longer exists (ENOENT: interrupted and answered, or aborted) is not an error.
    ///
    /// # Errors
    /// Other write errors (ENODEV once the connection is gone).
    pub fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        let fd = self.fd.read().unwrap_or_else(|e| e.into_inner());
        let Some(fd) = fd.as_ref() else {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        };
        loop {
            // SAFETY: IoSlice is ABI-compatible with iovec; the slices live across the call.
            let n = unsafe {
                libc::writev(
                    fd.as_raw_fd(),
                    parts.as_ptr().cast(),
                    parts.len() as libc::c_int,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOENT) => return Ok(()),
                _ => return Err(e),
            }
        }
    }

    /// Stops every receiver (now and later): poll-based ones through the eventfd, blocking ones
    /// through [`wake_signal`] (see [`Channel::kick`]). Idempotent.
    pub fn stop(&self) {
        // SeqCst: pairs with the Acquire in receive() and with the Dekker pair in kick().
        self.stopped.store(true, Ordering::SeqCst);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.stop_fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        self.kick();
    }

    /// The `/dev/fuse` fd number (valid until [`Channel::close`]), for io_uring commands.
    pub fn raw_fd(&self) -> i32 {
        self.raw
    }

    /// The eventfd that turns readable (and stays so) at [`Channel::stop`]: io_uring dispatch
    /// threads poll it.
    pub fn stop_fd(&self) -> i32 {
        self.stop_fd.as_raw_fd()
    }

    /// Closes the fd (the kernel then aborts the connection: queued and later client requests
    /// fail). Only after every receiver has left. Idempotent.
    pub fn close(&self) {
        let fd = self.fd.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(fd);
    }

    /// True once [`Channel::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

impl Reader<'_> {
    /// Reads the next request into `buf` (at least max_write + 4 KiB), blocking in `read(2)`
    /// until one comes (one woken reader per request), the connection ends, or the channel is
    /// stopped. On a non-blocking fd it waits in `poll(2)` as [`Channel::receive`] does.
    ///
    /// # Errors
    /// Unexpected errors of read(2)/poll(2).
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<Received> {
        let ch = self.ch;
        loop {
            // SeqCst (both): the Dekker pair with stop()/kick(): either this thread sees the
            // stop, or the stopper sees in_read and signals us.
            self.slot.in_read.store(true, Ordering::SeqCst);
            if ch.stopped.load(Ordering::SeqCst) {
                self.slot.in_read.store(false, Ordering::Relaxed);
                return Ok(Received::Stopped);
            }
            let r = ch.read_once(buf);
            self.slot.in_read.store(false, Ordering::Relaxed);
            if let Some(r) = r? {
                return Ok(r);
            }
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.ch
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| !Arc::ptr_eq(r, &self.slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn stop_wakes_a_waiting_receiver() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        assert_eq!(rc, 0);
        // SAFETY: both fds are fresh and owned by us.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let ch = Arc::new(Channel::new(r).unwrap());
        let c2 = ch.clone();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            c2.receive(&mut buf).unwrap()
        });
        std::thread::sleep(Duration::from_millis(30));
        let t0 = Instant::now();
        ch.stop();
        assert!(matches!(t.join().unwrap(), Received::Stopped));
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(ch.is_stopped());
        drop(w);
    }

    #[test]
    fn stop_wakes_a_blocked_reader() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(rc, 0);
        // SAFETY: both fds are fresh and owned by us.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let ch = Arc::new(Channel::new(r).unwrap());
        ch.set_blocking().unwrap();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let c2 = ch.clone();
                std::thread::spawn(move || {
                    let me = c2.reader();
                    let mut buf = [0u8; 64];
                    me.receive(&mut buf).unwrap()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ch.kick(), 0, "no kick before stop");
        let t0 = Instant::now();
        ch.stop();
        while readers.iter().any(|h| !h.is_finished()) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "a reader stayed blocked"
            );
            ch.kick();
            std::thread::sleep(Duration::from_millis(1));
        }
        for h in readers {
            assert!(matches!(h.join().unwrap(), Received::Stopped));
        }
        assert!(
            ch.readers.lock().unwrap().is_empty(),
            "readers deregistered"
        );
        drop(w);
    }
}
