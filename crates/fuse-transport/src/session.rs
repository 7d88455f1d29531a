//! The session: mount, INIT handshake, a pool of dispatch threads, and an orderly end.
//!
//! Invariant: when the last dispatch thread leaves (stop, unmount, abort), every parked request
//! has been answered and `/dev/fuse` is closed, which aborts the connection, so no client can
//! hang on a server that stopped; when [`Session::join`] returns, in addition the mount is gone
//! and [`Filesystem::session_ended`] has run once (it releases the files still open).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::abi::{self, InitOut};
use super::channel::{Channel, Received};
use super::interrupt::{Parked, Parking};
use super::mount::{Mount, MountError};
use super::notify::Notifier;
use super::reply::Reply;
use super::request::{Op, Request};

/// Largest write the kernel may send us (and largest read we answer).
pub const MAX_WRITE: usize = 64 * 1024;
const BUF_SIZE: usize = MAX_WRITE + 4096;

/// What the file system gets to serve requests: parking, notification, identity of the caller.
#[derive(Clone, Debug)]
pub struct Ctx {
    parking: Arc<Parking>,
    notifier: Notifier,
}

impl Ctx {
    /// Parks a reply to answer later, from any thread (see [`Parked`]).
    pub fn park(&self, reply: Reply) -> Arc<Parked> {
        self.parking.park(reply)
    }
    /// The notification handle (poll wake-ups).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }
    /// Number of requests parked right now.
    pub fn parked(&self) -> usize {
        self.parking.len()
    }

    /// A context outside any session, for [`dispatch`] in tests and fuzzers: parked replies and
    /// poll notifications go to `ch`.
    #[doc(hidden)]
    pub fn detached(ch: &Arc<Channel>) -> Ctx {
        Ctx {
            parking: Arc::new(Parking::default()),
            notifier: Notifier::new(Arc::downgrade(ch)),
        }
    }
}

/// A file system served by a [`Session`].
pub trait Filesystem: Send + Sync + 'static {
    /// Serves one request; must answer `reply` now or park it (see [`Ctx::park`]).
    fn request(&self, ctx: &Ctx, header: &abi::InHeader, op: Op<'_>, reply: Reply);
    /// The session ended (stopped, unmounted or aborted): release whatever is still open. Called
    /// once, after every dispatch thread exited.
    fn session_ended(&self);
}

/// Why the session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// [`Stopper::stop`] was called (signal, test teardown).
    Stopped,
    /// The kernel ended the connection: external unmount or fusectl abort.
    Disconnected,
    /// A dispatch thread hit an unexpected I/O error.
    Failed,
}

/// Stops a session from any thread (e.g. a signal-handling thread). Cloneable.
#[derive(Clone, Debug)]
pub struct Stopper {
    // Weak: a stopper kept after the session ended must not keep /dev/fuse open.
    ch: Weak<Channel>,
    mount: Arc<Mount>,
}

impl Stopper {
    /// Removes the mount (lazily) and stops the dispatch threads. Idempotent.
    pub fn stop(&self) {
        // Flag first: the unmount may end the connection, and the threads must see a stop.
        if let Some(ch) = self.ch.upgrade() {
            ch.stop();
        }
        self.mount.unmount();
    }
}

/// A mounted, running FUSE session.
///
/// # Invariants
/// `threads` are the dispatch threads, joined exactly once by [`Session::join`] (or on drop).
pub struct Session<F: Filesystem> {
    ch: Option<Arc<Channel>>,
    mount: Arc<Mount>,
    parking: Arc<Parking>,
    fs: Arc<F>,
    threads: Vec<JoinHandle<EndReason>>,
    end: Arc<End>,
    ended: Option<EndReason>,
}

impl<F: Filesystem> std::fmt::Debug for Session<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("mount", &self.mount)
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// Shared by the dispatch threads: the first reason to end, and how many threads still run.
struct End {
    reason: Mutex<Option<EndReason>>,
    /// Notified (under `reason`) by each dispatch thread as it exits.
    exited: Condvar,
    live: AtomicUsize,
}

impl<F: Filesystem> Session<F> {
    /// Mounts `fs` at `mountpoint`, completes the INIT handshake, and starts `threads` dispatch
    /// threads (at least 2). When this returns, the mount serves requests.
    ///
    /// # Errors
    /// A one-line [`MountError`] when mounting is impossible, or the handshake fails.
    pub fn mount(mountpoint: &Path, fs: Arc<F>, threads: usize) -> Result<Session<F>, MountError> {
        let (mount, fd) = Mount::new(mountpoint, "revocable")?;
        let mount = Arc::new(mount);
        let ch = Arc::new(Channel::new(fd).map_err(|e| MountError(format!("eventfd: {e}")))?);
        handshake(&ch).map_err(|e| {
            mount.unmount();
            MountError(format!("FUSE handshake failed: {e}"))
        })?;
        ch.set_blocking().map_err(|e| {
            mount.unmount();
            MountError(format!("/dev/fuse: cannot make it blocking: {e}"))
        })?;
        let parking = Arc::new(Parking::default());
        let ctx = Ctx {
            parking: parking.clone(),
            notifier: Notifier::new(Arc::downgrade(&ch)),
        };
        let n = threads.max(2);
        let end = Arc::new(End {
            reason: Mutex::new(None),
            exited: Condvar::new(),
            live: AtomicUsize::new(n),
        });
        let mut handles = Vec::new();
        for i in 0..n {
            let (ch, ctx, fs, end) = (ch.clone(), ctx.clone(), fs.clone(), end.clone());
            let h = std::thread::Builder::new()
                .name(format!("devfs-{i}"))
                .spawn(move || worker(&ch, &ctx, &*fs, &end))
                .map_err(|e| MountError(format!("cannot spawn a dispatch thread: {e}")))?;
            handles.push(h);
        }
        Ok(Session {
            ch: Some(ch),
            mount,
            parking,
            fs,
            threads: handles,
            end,
            ended: None,
        })
    }

    /// A handle that stops this session from another thread.
    pub fn stopper(&self) -> Stopper {
        let ch = self.ch.as_ref().map(Arc::downgrade).unwrap_or_default();
        Stopper {
            ch,
            mount: self.mount.clone(),
        }
    }

    /// A notification handle for threads outside the dispatch threads (it holds the connection
    /// weakly: after the session ends, sends fail with ENODEV).
    pub fn notifier(&self) -> Notifier {
        Notifier::new(self.ch.as_ref().map(Arc::downgrade).unwrap_or_default())
    }

    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        self.mount.path()
    }

    /// The served file system.
    pub fn fs(&self) -> &Arc<F> {
        &self.fs
    }

    /// Waits until the session ends (stop, unmount, abort), then tears it down (see the module
    /// invariant). Idempotent.
    pub fn join(&mut self) -> EndReason {
        if let Some(r) = self.ended {
            return r;
        }
        // Blocked readers leave on ENODEV (unmount, abort) or, after a stop, on the wake signal,
        // which is re-sent until they are gone (one sent just before a read starts is lost).
        while self.threads.iter().any(|h| !h.is_finished()) {
            let stopped = self.ch.as_ref().is_some_and(|ch| ch.is_stopped());
            if let (true, Some(ch)) = (stopped, &self.ch) {
                ch.kick();
            }
            // Woken by each thread's exit; the timeout re-checks for a stop (and re-kicks).
            let g = self.end.reason.lock().unwrap_or_else(|p| p.into_inner());
            let wait = Duration::from_millis(if stopped { 2 } else { 50 });
            drop(self.end.exited.wait_timeout(g, wait));
        }
        for h in self.threads.drain(..) {
            if h.join().is_err() {
                // A panicking dispatch thread: record it and stop the others.
                self.end
                    .reason
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(EndReason::Failed);
                if let Some(ch) = &self.ch {
                    ch.stop();
                }
            }
        }
        let reason = self
            .end
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(EndReason::Stopped);
        self.parking.fail_all(libc::ENODEV);
        if let Some(ch) = &self.ch {
            // Already closed by the last thread, unless a thread panicked.
            ch.close();
        }
        self.mount.unmount();
        self.fs.session_ended();
        // Dropping the last strong reference closes /dev/fuse, which aborts the connection.
        self.ch = None;
        self.ended = Some(reason);
        reason
    }
}

impl<F: Filesystem> Drop for Session<F> {
    fn drop(&mut self) {
        if self.ended.is_none() {
            if let Some(ch) = &self.ch {
                ch.stop();
            }
            self.join();
        }
    }
}

fn handshake(ch: &Arc<Channel>) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match ch.receive(&mut buf)? {
            Received::Request(n) => n,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection ended before INIT",
                ))
            }
        };
        let Some(req) = Request::parse(&buf[..n]) else {
            continue;
        };
        let reply = Reply::new(ch.clone(), req.header.unique);
        match req.op {
            Op::Init {
                major,
                minor: _,
                max_readahead,
                flags: _,
            } => {
                if major != abi::KERNEL_VERSION {
                    reply.error(libc::EPROTO);
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("kernel FUSE major {major}"),
                    ));
                }
                let out = InitOut {
                    major: abi::KERNEL_VERSION,
                    minor: abi::KERNEL_MINOR_VERSION,
                    max_readahead,
                    flags: abi::FUSE_BIG_WRITES,
                    max_background: 64,
                    congestion_threshold: 48,
                    max_write: MAX_WRITE as u32,
                    time_gran: 1,
                    ..Default::default()
                };
                reply.ok_pod(&out);
                return Ok(());
            }
            _ => reply.error(libc::EIO),
        }
    }
}

/// Serves one request, the `bytes` a read of `/dev/fuse` returned, as a dispatch thread does:
/// decode it, answer the session-level opcodes, hand the others to `fs`; answers go to `ch`.
/// Public (hidden) so that tests and fuzzers can feed arbitrary bytes to the real path.
///
/// ```
/// use std::sync::Arc;
/// use revocable_fuse::{abi::InHeader, channel::Channel, session::dispatch, Ctx, Filesystem};
/// use revocable_fuse::{Op, Reply};
/// struct Nothing;
/// impl Filesystem for Nothing {
///     fn request(&self, _: &Ctx, _: &InHeader, _: Op<'_>, reply: Reply) {
///         reply.error(libc::ENOSYS)
///     }
///     fn session_ended(&self) {}
/// }
/// let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
/// let ch = Arc::new(Channel::new(null.into()).unwrap());
/// dispatch(&ch, &Ctx::detached(&ch), &Nothing, &[0u8; 3]); // shorter than a header: ignored
/// ```
#[doc(hidden)]
pub fn dispatch<F: Filesystem>(ch: &Arc<Channel>, ctx: &Ctx, fs: &F, bytes: &[u8]) {
    let Some(req) = Request::parse(bytes) else {
        return;
    };
    let reply = Reply::new(ch.clone(), req.header.unique);
    match req.op {
        Op::Forget => reply.no_reply(),
        Op::Interrupt { target } => {
            if !ctx.parking.interrupt(target) {
                // Not parked (yet): let the kernel queue the interrupt again a moment later.
                std::thread::sleep(Duration::from_micros(200));
                reply.error(libc::EAGAIN);
            }
        }
        Op::Init { .. } => reply.error(libc::EIO),
        Op::Destroy => reply.ok(&[]),
        Op::Malformed => reply.error(libc::EINVAL),
        Op::Unsupported(_) => reply.error(libc::ENOSYS),
        op => fs.request(ctx, &req.header, op, reply),
    }
}

fn worker<F: Filesystem>(ch: &Arc<Channel>, ctx: &Ctx, fs: &F, end: &End) -> EndReason {
    let mut buf = vec![0u8; BUF_SIZE];
    let reader = ch.reader();
    let reason = loop {
        let n = match reader.receive(&mut buf) {
            Ok(Received::Request(n)) => n,
            Ok(Received::Stopped) => break EndReason::Stopped,
            Ok(Received::Ended) if ch.is_stopped() => break EndReason::Stopped,
            Ok(Received::Ended) => break EndReason::Disconnected,
            Err(e) => {
                eprintln!("devfs: /dev/fuse read failed: {e}");
                break EndReason::Failed;
            }
        };
        dispatch(ch, ctx, fs, &buf[..n]);
    };
    drop(reader);
    // Record first, then make the other dispatch threads leave: they will see a stop, but the
    // first reason is the one that counts.
    let first = *end
        .reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(reason);
    if reason != EndReason::Stopped {
        ch.stop();
    }
    // AcqRel: the last thread out sees every other thread's exit before it closes the channel.
    if end.live.fetch_sub(1, Ordering::AcqRel) == 1 {
        // Nobody reads requests any more: answer what is parked, then close /dev/fuse so that the
        // kernel aborts the connection and no client waits for us (even before `join`).
        ctx.parking.fail_all(libc::ENODEV);
        ch.close();
    }
    let _g = end.reason.lock().unwrap_or_else(|p| p.into_inner());
    end.exited.notify_all();
    first
}
