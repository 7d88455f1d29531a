//! The session: mount, INIT handshake, a pool of dispatch threads, and an orderly end.
//!
//! Invariant: when the last dispatch thread leaves (stop, unmount, abort), every parked request
//! has been answered and `/dev/fuse` is closed, which aborts the connection, so no client can
//! hang on a server that stopped; when [`Session::join`] returns, in addition the mount is gone
//! and [`Filesystem::session_ended`] has run once (it releases the files still open).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::abi::{self, InitOut};
use super::channel::{Channel, Received};
use super::interrupt::{Parked, Parking};
use super::mount::{Mount, MountError};
use super::notify::Notifier;
use super::reply::Reply;
use super::request::{Op, Request};
use super::uring;

/// Largest write the kernel may send us (and largest read we answer).
pub const MAX_WRITE: usize = 64 * 1024;
const BUF_SIZE: usize = MAX_WRITE + 4096;

/// What the file system gets to serve requests: parking, notification, identity of the caller.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub(crate) parking: Arc<Parking>,
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

/// Which kernel interface carries the requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// `REVOCABLE_FUSE_TRANSPORT` (`uring` or `dev`) when set (`uring` is then required);
    /// else io_uring when the fuse module allows it (`enable_uring` is `Y`), falling back to
    /// `/dev/fuse` if setting it up fails.
    #[default]
    Auto,
    /// FUSE over io_uring, or a [`MountError`]. Each CPU's requests are served by that CPU's
    /// one thread, in order: a handler that blocks holds up its CPU's queue, so a file system
    /// served this way parks what must wait ([`Ctx::park`]) rather than blocking in
    /// [`Filesystem::request`].
    Uring,
    /// `/dev/fuse` reads and writes.
    Dev,
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Transport, String> {
        match s {
            "auto" => Ok(Transport::Auto),
            "uring" | "io_uring" => Ok(Transport::Uring),
            "dev" => Ok(Transport::Dev),
            _ => Err(format!("unknown transport {s:?} (auto, uring or dev)")),
        }
    }
}

/// The environment variable [`Transport::Auto`] reads (`uring` or `dev`; `auto` or empty: as
/// if unset).
pub const TRANSPORT_ENV: &str = "REVOCABLE_FUSE_TRANSPORT";

/// What [`Transport::wanted`] decided before mounting.
struct Want {
    uring: bool,
    required: bool,
    why: String,
}

impl Transport {
    fn wanted(self) -> Result<Want, MountError> {
        self.decide(
            std::env::var(TRANSPORT_ENV).ok().as_deref(),
            uring::enabled(),
        )
    }

    /// The decision of [`Transport::wanted`], given the environment variable's value and the
    /// fuse module's `enable_uring` (`None`: no such parameter).
    fn decide(self, env: Option<&str>, param: Option<bool>) -> Result<Want, MountError> {
        let t = match (self, env) {
            (Transport::Auto, Some("uring")) => {
                (Transport::Uring, format!("{TRANSPORT_ENV}=uring"))
            }
            (Transport::Auto, Some("dev")) => (Transport::Dev, format!("{TRANSPORT_ENV}=dev")),
            (Transport::Auto, Some(v)) if !v.is_empty() && v != "auto" => {
                return Err(MountError(format!(
                    "{TRANSPORT_ENV}={v}: unknown transport (auto, uring or dev)"
                )))
            }
            (t, _) => (t, String::new()),
        };
        let state = match param {
            Some(true) => "fuse enable_uring=Y".to_string(),
            Some(false) => format!("enable_uring=N in {}", uring::ENABLE_PARAM),
            None => "this kernel has no FUSE over io_uring (no fuse enable_uring parameter)".into(),
        };
        Ok(match t {
            (Transport::Dev, why) => Want {
                uring: false,
                required: false,
                why: if why.is_empty() {
                    "asked for".into()
                } else {
                    why
                },
            },
            (Transport::Uring, why) => {
                let why = if why.is_empty() {
                    "asked for".into()
                } else {
                    why
                };
                if param != Some(true) {
                    return Err(MountError(format!(
                        "io_uring transport required ({why}) but unavailable: {state}"
                    )));
                }
                Want {
                    uring: true,
                    required: true,
                    why: format!("{why}, {state}"),
                }
            }
            (Transport::Auto, _) => Want {
                uring: param == Some(true),
                required: false,
                why: state,
            },
        })
    }
}

/// How a session is served.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `/dev/fuse` dispatch threads (at least 2) when that transport is used.
    pub threads: usize,
    /// The transport.
    pub transport: Transport,
}

/// The transport a session uses and why, e.g. `io_uring (fuse enable_uring=Y, 2 queues)` or
/// `/dev/fuse (enable_uring=N in /sys/module/fuse/parameters/enable_uring)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// True for io_uring.
    pub uring: bool,
    /// Queues (io_uring) or dispatch threads (`/dev/fuse`).
    pub threads: usize,
    /// Why, in a few words.
    pub why: String,
}

impl std::fmt::Display for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.uring {
            write!(f, "io_uring ({})", self.why)
        } else {
            write!(f, "/dev/fuse ({}, {} threads)", self.why, self.threads)
        }
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
    threads: Vec<JoinHandle<()>>,
    end: Arc<End>,
    ended: Option<EndReason>,
    chosen: Chosen,
    /// io_uring buffers of finished queue threads, emptied once the threads are joined.
    kept: Arc<uring::Kept>,
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
    /// threads (at least 2) on the transport [`Transport::Auto`] picks. When this returns, the
    /// mount serves requests.
    ///
    /// # Errors
    /// A one-line [`MountError`] when mounting is impossible, or the handshake fails.
    pub fn mount(mountpoint: &Path, fs: Arc<F>, threads: usize) -> Result<Session<F>, MountError> {
        Session::mount_with(
            mountpoint,
            fs,
            &Options {
                threads,
                transport: Transport::Auto,
            },
        )
    }

    /// Mounts as [`Session::mount`] does, on the transport `options` ask for. With io_uring:
    /// one queue per possible CPU, each served by a thread pinned to its CPU, plus one thread
    /// reading `/dev/fuse` (interrupts, forgets); `options.threads` counts the `/dev/fuse`
    /// dispatch threads of the other transport. [`Session::transport`] tells what was chosen.
    ///
    /// # Errors
    /// A one-line [`MountError`] when mounting is impossible, the handshake fails, or io_uring
    /// was required ([`Transport::Uring`], or `REVOCABLE_FUSE_TRANSPORT=uring`) and is not
    /// available (nothing stays mounted then).
    pub fn mount_with(
        mountpoint: &Path,
        fs: Arc<F>,
        options: &Options,
    ) -> Result<Session<F>, MountError> {
        let want = options.transport.wanted()?;
        let (mount, fd) = Mount::new(mountpoint, "revocable")?;
        let mount = Arc::new(mount);
        let fail = |m: String| {
            mount.unmount();
            MountError(m)
        };
        let ch = Arc::new(Channel::new(fd).map_err(|e| fail(format!("eventfd: {e}")))?);
        let parking = Arc::new(Parking::default());
        let ctx = Ctx {
            parking: parking.clone(),
            notifier: Notifier::new(Arc::downgrade(&ch)),
        };
        let end = Arc::new(End {
            reason: Mutex::new(None),
            exited: Condvar::new(),
            live: AtomicUsize::new(0),
        });
        let mut handles = Vec::new();
        // io_uring: the queue threads make their rings before INIT, so that INIT offers
        // io_uring only when every queue can serve (the kernel waits for all of them).
        let mut queues = Vec::new();
        let mut why = want.why.clone();
        let mut try_uring = want.uring;
        let (report_tx, report_rx) = mpsc::channel();
        let running = Arc::new(AtomicUsize::new(0));
        let kept = Arc::new(uring::Kept::default());
        if try_uring {
            for qid in 0..uring::possible_cpus() {
                let (go_tx, go_rx) = mpsc::channel();
                let args = uring::QueueArgs {
                    qid,
                    ch: ch.clone(),
                    ctx: ctx.clone(),
                    fs: fs.clone(),
                    running: running.clone(),
                    report: report_tx.clone(),
                    go: go_rx,
                    keep: kept.clone(),
                };
                let (ch2, ctx2, end2) = (ch.clone(), ctx.clone(), end.clone());
                let h = std::thread::Builder::new()
                    .name(format!("fuse-q{qid}"))
                    .spawn(move || {
                        if let Some(r) = uring::run_queue(args, &end2.live) {
                            finish(&ch2, &ctx2, &end2, r);
                        }
                    })
                    .map_err(|e| fail(format!("cannot spawn a queue thread: {e}")))?;
                handles.push(h);
                queues.push(go_tx);
            }
            let made: Vec<_> = (0..queues.len())
                .filter_map(|_| report_rx.recv().ok())
                .collect();
            if let Some((q, Err(e))) = made.iter().find(|(_, r)| r.is_err()) {
                try_uring = false;
                why = format!("io_uring queue {q}: {e}");
            }
        }
        let offered = handshake(&ch, try_uring).map_err(|e| {
            for g in &queues {
                let _ = g.send(uring::Go::Leave);
            }
            fail(format!("FUSE handshake failed: {e}"))
        })?;
        let mut uring_on = false;
        if try_uring && !offered {
            why = "the kernel did not offer FUSE_OVER_IO_URING in INIT".into();
        } else if try_uring {
            for g in &queues {
                let _ = g.send(uring::Go::Serve);
            }
            let regs: Vec<_> = (0..queues.len())
                .filter_map(|_| report_rx.recv().ok())
                .collect();
            match regs.iter().find(|(_, r)| r.is_err()) {
                // The kernel turned io_uring off for this connection: requests use /dev/fuse.
                Some((q, Err(e))) => why = format!("io_uring queue {q}: {e}"),
                _ => uring_on = regs.len() == queues.len(),
            }
        }
        for g in &queues {
            let _ = g.send(uring::Go::Leave); // ignored by threads already serving
        }
        drop(report_tx);
        if want.required && !uring_on {
            ch.stop();
            for h in handles {
                let _ = h.join();
            }
            ch.close();
            drop(kept); // the threads are joined
            return Err(fail(format!(
                "io_uring transport required ({}) but unavailable: {why}",
                want.why
            )));
        }
        ch.set_blocking()
            .map_err(|e| fail(format!("/dev/fuse: cannot make it blocking: {e}")))?;
        // With io_uring, one thread reads /dev/fuse (interrupts, forgets); else `threads`.
        let n = if uring_on { 1 } else { options.threads.max(2) };
        for i in 0..n {
            end.live.fetch_add(1, Ordering::AcqRel);
            let (ch, ctx, fs, end) = (ch.clone(), ctx.clone(), fs.clone(), end.clone());
            let h = std::thread::Builder::new()
                .name(format!("fuse-{i}"))
                .spawn(move || {
                    let r = worker(&ch, &ctx, &*fs);
                    finish(&ch, &ctx, &end, r);
                })
                .map_err(|e| fail(format!("cannot spawn a dispatch thread: {e}")))?;
            handles.push(h);
        }
        let chosen = if uring_on {
            Chosen {
                uring: true,
                threads: queues.len(),
                why: format!("{why}, {} queues", queues.len()),
            }
        } else {
            Chosen {
                uring: false,
                threads: n,
                why,
            }
        };
        Ok(Session {
            ch: Some(ch),
            mount,
            parking,
            fs,
            threads: handles,
            end,
            ended: None,
            chosen,
            kept,
        })
    }

    /// The transport in use and why it was chosen.
    pub fn transport(&self) -> &Chosen {
        &self.chosen
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
        let mut stopped_at = None;
        let mut aborted = false;
        while self.threads.iter().any(|h| !h.is_finished()) {
            let stopped = self.ch.as_ref().is_some_and(|ch| ch.is_stopped());
            if let (true, Some(ch)) = (stopped, &self.ch) {
                ch.kick();
                // A reader the signal cannot wake (the program gave the wake signal a handler
                // with SA_RESTART): after a second, abort the connection, which ends its read.
                let since = *stopped_at.get_or_insert_with(std::time::Instant::now);
                if !aborted && since.elapsed() > Duration::from_secs(1) {
                    aborted = true;
                    let done = self.mount.abort_connection();
                    eprintln!(
                        "revocable-fuse: readers of {} did not wake at stop: {}",
                        self.mount.path().display(),
                        if done {
                            "connection aborted through fusectl"
                        } else {
                            "cannot abort (is fusectl mounted?); waiting for the unmount"
                        }
                    );
                }
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
        // Every dispatch thread has exited: the kernel can no longer copy into these.
        self.kept.free();
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

/// Answers INIT; with `uring`, asks for FUSE over io_uring if the kernel offers it. Returns
/// whether it did.
fn handshake(ch: &Arc<Channel>, uring: bool) -> io::Result<bool> {
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
                flags,
            } => {
                if major != abi::KERNEL_VERSION {
                    reply.error(libc::EPROTO);
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("kernel FUSE major {major}"),
                    ));
                }
                // fuse_init_in: flags2 follows the first 16 bytes (with FUSE_INIT_EXT).
                let hl = std::mem::size_of::<abi::InHeader>();
                let flags2 = buf
                    .get(hl + 16..hl + 20)
                    .filter(|_| flags & abi::FUSE_INIT_EXT != 0 && n >= hl + 20)
                    .map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap_or_default()));
                let offered = flags2 & (uring::FUSE_OVER_IO_URING >> 32) as u32 != 0;
                let use_uring = uring && offered;
                let mut out = InitOut {
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
                if use_uring {
                    out.minor = abi::URING_MINOR_VERSION;
                    out.flags |= abi::FUSE_INIT_EXT;
                    out.unused[0] = (uring::FUSE_OVER_IO_URING >> 32) as u32; // flags2
                }
                reply.ok_pod(&out);
                return Ok(use_uring);
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
    serve(ctx, fs, req, reply);
}

/// Serves one decoded request whose answer goes to `reply` (either transport).
pub(crate) fn serve<F: Filesystem>(ctx: &Ctx, fs: &F, req: Request<'_>, reply: Reply) {
    match req.op {
        Op::Forget => reply.no_reply(),
        Op::Interrupt { target } => {
            // Answered now if parked, else remembered for when it parks (see `interrupt`). The
            // interrupt itself takes no answer: EAGAIN, "send it again", which libfuse answers
            // an unmatched one with, reaches the kernel only for requests read from /dev/fuse,
            // not for io_uring's.
            ctx.parking.interrupt(target);
            reply.no_reply();
        }
        Op::Init { .. } => reply.error(libc::EIO),
        Op::Destroy => reply.ok(&[]),
        Op::Malformed => reply.error(libc::EINVAL),
        Op::Unsupported(_) => reply.error(libc::ENOSYS),
        op => fs.request(ctx, &req.header, op, reply),
    }
}

fn worker<F: Filesystem>(ch: &Arc<Channel>, ctx: &Ctx, fs: &F) -> EndReason {
    let mut buf = vec![0u8; BUF_SIZE];
    let reader = ch.reader();
    loop {
        let n = match reader.receive(&mut buf) {
            Ok(Received::Request(n)) => n,
            Ok(Received::Stopped) => return EndReason::Stopped,
            Ok(Received::Ended) if ch.is_stopped() => return EndReason::Stopped,
            Ok(Received::Ended) => return EndReason::Disconnected,
            Err(e) => {
                eprintln!("devfs: /dev/fuse read failed: {e}");
                return EndReason::Failed;
            }
        };
        dispatch(ch, ctx, fs, &buf[..n]);
    }
}

/// A dispatch thread (of either transport) leaves for `reason`.
fn finish(ch: &Channel, ctx: &Ctx, end: &End, reason: EndReason) {
    // Record first, then make the other dispatch threads leave: they will see a stop, but the
    // first reason is the one that counts.
    end.reason
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(t: Transport, env: Option<&str>, param: Option<bool>) -> Result<(bool, bool), String> {
        t.decide(env, param)
            .map(|w| (w.uring, w.required))
            .map_err(|e| e.0)
    }

    #[test]
    fn transport_decisions() {
        // auto follows the module parameter, never required
        assert_eq!(want(Transport::Auto, None, Some(true)), Ok((true, false)));
        assert_eq!(want(Transport::Auto, None, Some(false)), Ok((false, false)));
        assert_eq!(want(Transport::Auto, None, None), Ok((false, false)));
        assert_eq!(
            want(Transport::Auto, Some(""), Some(true)),
            Ok((true, false))
        );
        assert_eq!(
            want(Transport::Auto, Some("auto"), Some(true)),
            Ok((true, false))
        );
        // the environment overrides auto, and only auto
        assert_eq!(
            want(Transport::Auto, Some("dev"), Some(true)),
            Ok((false, false))
        );
        assert_eq!(
            want(Transport::Auto, Some("uring"), Some(true)),
            Ok((true, true))
        );
        assert_eq!(
            want(Transport::Dev, Some("uring"), Some(true)),
            Ok((false, false))
        );
        let e = want(Transport::Auto, Some("uring"), Some(false)).unwrap_err();
        assert!(
            e.contains("REVOCABLE_FUSE_TRANSPORT=uring") && e.contains("enable_uring=N"),
            "{e}"
        );
        let e = want(Transport::Auto, Some("bogus"), Some(true)).unwrap_err();
        assert!(e.contains("unknown transport"), "{e}");
        // uring asked for explicitly: required, refused without the parameter
        assert_eq!(want(Transport::Uring, None, Some(true)), Ok((true, true)));
        let e = want(Transport::Uring, None, None).unwrap_err();
        assert!(e.contains("no FUSE over io_uring"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn transport_names_and_lines() {
        assert_eq!("auto".parse(), Ok(Transport::Auto));
        assert_eq!("uring".parse(), Ok(Transport::Uring));
        assert_eq!("io_uring".parse(), Ok(Transport::Uring));
        assert_eq!("dev".parse(), Ok(Transport::Dev));
        assert!("fuse".parse::<Transport>().is_err());
        let w = Transport::Auto.decide(None, Some(false)).unwrap();
        let c = Chosen {
            uring: false,
            threads: 2,
            why: w.why,
        };
        assert_eq!(
            c.to_string(),
            "/dev/fuse (enable_uring=N in /sys/module/fuse/parameters/enable_uring, 2 threads)"
        );
        let c = Chosen {
            uring: true,
            threads: 2,
            why: "fuse enable_uring=Y, 2 queues".into(),
        };
        assert_eq!(c.to_string(), "io_uring (fuse enable_uring=Y, 2 queues)");
    }
}
