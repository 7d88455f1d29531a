//! FUSE over io_uring (kernel ≥ 6.14, fuse module parameter `enable_uring`): one request queue
//! per CPU, served by a dispatch thread pinned to that CPU, through the `io-uring` crate.
//!
//! The kernel ABI (`include/uapi/linux/fuse.h`, `fs/fuse/dev_uring.c`): after INIT negotiated
//! `FUSE_OVER_IO_URING`, each queue (`qid` = CPU number; the kernel has one per *possible* CPU
//! and uses the ring only once every queue has an entry) registers ring entries with
//! `FUSE_IO_URING_CMD_REGISTER`: an `IORING_OP_URING_CMD` on the `/dev/fuse` fd, in a 128-byte
//! SQE whose command area holds a `fuse_uring_cmd_req` and whose `addr`/`len` name two iovecs:
//! the entry's headers (`fuse_uring_req_header`: the in/out header, the per-opcode struct, and
//! `fuse_uring_ent_in_out` with the payload size) and its payload buffer (at least the largest
//! request or reply payload). The command completes when the kernel put a request into the
//! entry; `FUSE_IO_URING_CMD_COMMIT_AND_FETCH` (with the request's `unique` as `commit_id`)
//! hands the reply back and re-arms the entry in one submission. A request goes to the queue of
//! the CPU its caller runs on. INIT, `FUSE_INTERRUPT`, FORGET and notifications still travel
//! over `/dev/fuse`, which one ordinary dispatch thread keeps reading.
//!
//! A parked reply ([`crate::Ctx::park`]) keeps its entry until it is answered, possibly from
//! another thread; the queue then registers a fresh entry so that it never runs out. The
//! answering thread writes the reply into the entry and hands the entry to the queue's thread
//! (a list and an eventfd the thread reads through its ring), because the kernel wants every
//! command of a ring submitted by the ring's own task.
//!
//! Invariant: every request fetched into an entry is committed exactly once, by the queue's
//! thread, after exactly one [`Reply`] wrote its answer there (see [`Slot`]).

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::abi::{InHeader, OutHeader, Pod};
use super::channel::Channel;
use super::reply::Reply;
use super::request::Request;
use super::session::{serve, Ctx, EndReason, Filesystem, MAX_WRITE};

/// `FUSE_IO_URING_CMD_REGISTER`.
pub const CMD_REGISTER: u32 = 1;
/// `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`.
pub const CMD_COMMIT_AND_FETCH: u32 = 2;
/// INIT flag (64-bit flags; bit 9 of `flags2`): the server speaks FUSE over io_uring.
pub const FUSE_OVER_IO_URING: u64 = 1 << 41;
/// The kernel module parameter that allows it.
pub const ENABLE_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Ring entries each queue registers at the start (more are added while requests are parked).
///
/// The kernel (6.18) hands a request that finds no free entry on its CPU's queue to an entry only
/// when that queue next commits a reply (`FUSE_IO_URING_CMD_COMMIT_AND_FETCH`); an entry
/// registered later does not take it. So more requests arriving on one CPU at once than it has
/// free entries, all of which are then parked, wait for the next reply committed on that CPU. With
/// 8, the devfs bench's unplug run (20 readers blocking at once) hung in 4 of 8 runs; with 32, in
/// none of 8. A larger depth narrows this; only the kernel can close it (README, transport).
pub const QUEUE_DEPTH: usize = 32;
const IN_OUT_SZ: usize = 128;
const OP_IN_SZ: usize = 128;
const HEADER_LEN: usize = std::mem::size_of::<InHeader>();
/// `user_data` of the read of the queue's wake eventfd (slots use their index).
const WAKE: u64 = u64::MAX;
/// `user_data` of the poll of the channel's stop eventfd.
const STOP: u64 = u64::MAX - 1;

/// `struct fuse_uring_ent_in_out`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct EntInOut {
    flags: u64,
    commit_id: u64,
    payload_sz: u32,
    padding: u32,
    reserved: u64,
}

/// `struct fuse_uring_req_header`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ReqHeader {
    in_out: [u8; IN_OUT_SZ],
    op_in: [u8; OP_IN_SZ],
    ent: EntInOut,
}
const _: () = assert!(std::mem::size_of::<EntInOut>() == 32);
const _: () = assert!(std::mem::size_of::<ReqHeader>() == 288);

/// `struct fuse_uring_cmd_req`, in the first 24 bytes of the SQE's 80-byte command area.
fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

/// Sets `sqe->len` (offset 24 of the SQE), which the `io-uring` crate's `UringCmd80` builder
/// does not expose and FUSE's REGISTER requires (the iovec count, 2).
fn with_len(e: squeue::Entry128, len: u32) -> squeue::Entry128 {
    const _: () = assert!(std::mem::size_of::<squeue::Entry128>() == 128);
    // SAFETY: Entry128 is #[repr(C)] around the kernel's 64-byte `io_uring_sqe` followed by 64
    // command bytes (the crate asserts both sizes); all of it is plain integers, so viewing it
    // as bytes and back is valid for any byte values. `len` is the u32 at offset 24 of
    // `io_uring_sqe` (after opcode, flags, ioprio, fd, off, addr).
    unsafe {
        let mut raw: [u8; 128] = std::mem::transmute(e);
        raw[24..28].copy_from_slice(&len.to_ne_bytes());
        std::mem::transmute::<[u8; 128], squeue::Entry128>(raw)
    }
}

// Slot states.
const ARMED: u8 = 0; // registered or re-armed: the kernel owns the buffers
const SERVING: u8 = 1; // the queue thread runs the handler
const DONE: u8 = 2; // answered while SERVING: the queue thread commits after the handler
const AWAY: u8 = 3; // the handler returned unanswered (parked): the answerer hands it back

/// One ring entry: the buffers the kernel fills with a request and reads the reply from.
///
/// # Invariants
/// `header`, `payload` and `iov` never move (the slot lives in an `Arc`, the payload in a
/// `Box`). Who may touch the buffers follows `state`: the kernel while ARMED; the queue thread
/// from the fetch completion until it stores SERVING and makes the [`Reply`]; then only that
/// reply's answer (once), which ends with DONE (seen by the queue thread when the handler
/// returns) or, if the state is AWAY, with handing the slot to the queue's `ready` list; then the
/// queue thread, which commits (the kernel reads the reply) and sets ARMED again.
pub struct Slot {
    queue: Arc<QueueShared>,
    idx: u32,
    state: AtomicU8,
    commit_id: AtomicU64,
    header: UnsafeCell<ReqHeader>,
    payload: UnsafeCell<Box<[u8]>>,
    iov: UnsafeCell<[libc::iovec; 2]>,
}

// SAFETY: the UnsafeCell fields are accessed by one party at a time, as the type's invariant
// describes; hand-overs go through `state` (Release/Acquire) or the `ready` mutex.
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw pointers in `iov` point into the slot itself.
unsafe impl Send for Slot {}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("qid", &self.queue.qid)
            .field("idx", &self.idx)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

/// What a queue's thread shares with the threads that answer parked requests.
#[derive(Debug)]
struct QueueShared {
    qid: u16,
    /// Slots answered while AWAY, to be committed by the queue thread.
    ready: Mutex<Vec<Arc<Slot>>>,
    /// Written to wake the queue thread (it keeps a read of it in flight on its ring).
    wake: OwnedFd,
}

impl Slot {
    fn new(queue: Arc<QueueShared>, idx: u32, payload: usize) -> Arc<Slot> {
        let s = Arc::new(Slot {
            queue,
            idx,
            state: AtomicU8::new(ARMED),
            commit_id: AtomicU64::new(0),
            header: UnsafeCell::new(ReqHeader {
                in_out: [0; IN_OUT_SZ],
                op_in: [0; OP_IN_SZ],
                ent: EntInOut::default(),
            }),
            payload: UnsafeCell::new(vec![0u8; payload].into_boxed_slice()),
            iov: UnsafeCell::new(
                [libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                }; 2],
            ),
        });
        // SAFETY: the slot is new and not shared yet: we are the only party touching it.
        unsafe {
            let iov = &mut *s.iov.get();
            iov[0] = libc::iovec {
                iov_base: s.header.get().cast(),
                iov_len: std::mem::size_of::<ReqHeader>(),
            };
            let p = &mut *s.payload.get();
            iov[1] = libc::iovec {
                iov_base: p.as_mut_ptr().cast(),
                iov_len: p.len(),
            };
        }
        s
    }

    fn register_sqe(&self, fd: RawFd) -> squeue::Entry128 {
        let e = opcode::UringCmd80::new(types::Fd(fd), CMD_REGISTER)
            .cmd(cmd_req(0, self.queue.qid))
            .addr(Some(self.iov.get() as u64))
            .build()
            .user_data(u64::from(self.idx));
        with_len(e, 2)
    }

    fn commit_sqe(&self, fd: RawFd) -> squeue::Entry128 {
        opcode::UringCmd80::new(types::Fd(fd), CMD_COMMIT_AND_FETCH)
            .cmd(cmd_req(
                self.commit_id.load(Ordering::Relaxed),
                self.queue.qid,
            ))
            .build()
            .user_data(u64::from(self.idx))
    }

    /// Writes the answer to the request in this slot (`error` ≤ 0, body `parts`) and hands the
    /// slot to the queue thread for the commit. Called once, by the slot's [`Reply`].
    pub(crate) fn answer(self: &Arc<Self>, unique: u64, error: i32, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // SAFETY: by the type's invariant the reply owns the buffers until it changes `state`
        // below; nobody else reads or writes them meanwhile.
        unsafe {
            let payload = &mut *self.payload.get();
            let (error, len) = if len > payload.len() {
                (-libc::EIO, 0) // larger than any request may ask for: refuse, do not truncate
            } else {
                let mut at = 0;
                for p in parts {
                    payload[at..at + p.len()].copy_from_slice(p);
                    at += p.len();
                }
                (error, len)
            };
            let h = &mut *self.header.get();
            let oh = OutHeader {
                len: (std::mem::size_of::<OutHeader>() + len) as u32,
                error,
                unique,
            };
            h.in_out[..std::mem::size_of::<OutHeader>()].copy_from_slice(oh.as_bytes());
            h.ent.payload_sz = len as u32;
        }
        // AcqRel: Release publishes the buffer writes to the queue thread (which Acquires the
        // state after the handler); Acquire on failure sees the AWAY it stored.
        match self
            .state
            .compare_exchange(SERVING, DONE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(_) => {
                // AWAY: the handler returned long ago; the mutex orders our writes before the
                // queue thread's commit.
                self.queue
                    .ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(self.clone());
                let one: u64 = 1;
                // SAFETY: 8 bytes from a valid u64 to our eventfd.
                unsafe { libc::write(self.queue.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
    }
}

/// The CPUs the kernel keeps a queue for (`/sys/devices/system/cpu/possible`, e.g. `0-1`).
pub fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
                .max()
        })
        .map(|m| m + 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The value of the fuse module's `enable_uring` parameter: `Some(true)` for `Y`, `None` when
/// the kernel has no such parameter (no FUSE over io_uring).
pub fn enabled() -> Option<bool> {
    std::fs::read_to_string(ENABLE_PARAM)
        .ok()
        .map(|s| s.trim() == "Y")
}

fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data, zeroed is an empty set; CPU_SET writes within it;
    // sched_setaffinity(0) affects only the calling thread. Failure (offline CPU) is harmless.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// What the session tells a queue thread once INIT is done.
pub(crate) enum Go {
    /// INIT negotiated io_uring: register and serve.
    Serve,
    /// Not used: leave.
    Leave,
}

/// A queue thread's report after registering: `Ok` or why it could not.
pub(crate) type Registered = Result<(), String>;

/// Everything a queue thread needs.
pub(crate) struct QueueArgs<F: Filesystem> {
    pub qid: usize,
    pub ch: Arc<Channel>,
    pub ctx: Ctx,
    pub fs: Arc<F>,
    /// Queue threads still serving (for the end: see [`run_queue`]).
    pub running: Arc<AtomicUsize>,
    /// Reports ring creation (before INIT), then registration (after `Go::Serve`).
    pub report: mpsc::Sender<(usize, Registered)>,
    pub go: mpsc::Receiver<Go>,
    /// Where the thread leaves its ring buffers when it is done (see [`Kept`]).
    pub keep: Arc<Kept>,
}

/// Ring buffers of queue threads that have finished, freed only when the session is joined.
///
/// After a ring is closed, the kernel may still complete a command of it as task work of the
/// thread that submitted it, copying a request into that entry's buffers; once the thread has
/// exited, such work runs in a kernel thread and copies nothing. So the buffers must outlive
/// the thread, not just the ring: the session drops them after joining its threads.
#[derive(Default)]
pub(crate) struct Kept(Mutex<Vec<Box<dyn Send>>>);

impl Kept {
    fn keep(&self, what: Box<dyn Send>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(what);
    }

    /// Frees what was kept: only once the threads that kept it have exited.
    pub(crate) fn free(&self) {
        drop(std::mem::take(
            &mut *self.0.lock().unwrap_or_else(|e| e.into_inner()),
        ));
    }
}

type Ring = IoUring<squeue::Entry128, cqueue::Entry>;

fn new_ring(entries: u32) -> io::Result<Ring> {
    // Single issuer + deferred task work: completions are processed when this thread asks for
    // them (in submit_and_wait), not by interrupting it. Older kernels: plain ring.
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| IoUring::builder().build(entries))
}

/// Whether a queue thread submits its replies with one `io_uring_enter` and then waits for the
/// next request with another (the default), rather than both in one call
/// (`REVOCABLE_FUSE_URING_JOINED=1`, kept for comparison: `PEERS_URING_ENV` in the peers bench).
///
/// Split is faster although it makes one more system call per request: the commit wakes the
/// client, which on the queue's own CPU (where the kernel queued its request) preempts this
/// thread on its return to user space, issues its next request and blocks; the wait that follows
/// then finds that request already there. In one call, the thread goes to sleep after the commit
/// and the client's next request must wake it: on this machine a sleep and a wake-up cost more
/// than the extra system call (peers bench, README: ~0.5 µs less latency, ~0.2 µs less CPU on
/// each side per read).
fn split_submit() -> bool {
    std::env::var_os("REVOCABLE_FUSE_URING_JOINED").is_none_or(|v| v.is_empty() || v == "0")
}

/// Pushes `e`, submitting first if the submission queue is full.
fn push(ring: &mut Ring, e: &squeue::Entry128) -> io::Result<()> {
    loop {
        // SAFETY: every entry pushed here references memory that outlives its completion: the
        // slots' buffers (kept in `slots` until the ring is dropped, which cancels what is in
        // flight) and the wake buffer (likewise kept until the ring is dropped).
        if unsafe { ring.submission().push(e) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// The body of a queue thread: create the ring (report), wait for INIT, register (report),
/// then serve until stopped or disconnected.
///
/// At the end, parked requests are answered (ENODEV) and committed before the ring goes: each
/// queue thread answers every parked request ([`crate::interrupt::Parking::fail_all`] is
/// idempotent), then keeps committing what lands in its `ready` list until all queue threads
/// did the same (bounded by a second).
///
/// Returns `None` when it never served (then it did not count itself in `live`), else why it
/// ended (it counted itself in `live` before reporting its registration).
pub(crate) fn run_queue<F: Filesystem>(a: QueueArgs<F>, live: &AtomicUsize) -> Option<EndReason> {
    pin_to(a.qid);
    let fd = a.ch.raw_fd();
    let depth = QUEUE_DEPTH;
    let mut ring = match new_ring(256) {
        Ok(r) => r,
        Err(e) => {
            let _ = a.report.send((a.qid, Err(format!("io_uring_setup: {e}"))));
            return None;
        }
    };
    // SAFETY: eventfd has no memory preconditions.
    let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if e < 0 {
        let _ = a.report.send((
            a.qid,
            Err(format!("eventfd: {}", io::Error::last_os_error())),
        ));
        return None;
    }
    let shared = Arc::new(QueueShared {
        qid: a.qid as u16,
        ready: Mutex::new(Vec::new()),
        // SAFETY: e is a fresh fd that nothing else owns.
        wake: unsafe { OwnedFd::from_raw_fd(e) },
    });
    let _ = a.report.send((a.qid, Ok(())));
    match a.go.recv() {
        Ok(Go::Serve) => {}
        _ => return None,
    }
    let payload = MAX_WRITE.max(32 * page_size());
    let mut slots: Vec<Arc<Slot>> = (0..depth)
        .map(|i| Slot::new(shared.clone(), i as u32, payload))
        .collect();
    let mut wake_buf = Box::new(0u64);
    let wake_read = |buf: &mut u64| {
        squeue::Entry128::from(
            opcode::Read::new(
                types::Fd(shared.wake.as_raw_fd()),
                (buf as *mut u64).cast(),
                8,
            )
            .build()
            .user_data(WAKE),
        )
    };
    let setup = (|| -> io::Result<()> {
        for s in &slots {
            push(&mut ring, &s.register_sqe(fd))?;
        }
        push(&mut ring, &wake_read(&mut wake_buf))?;
        let stop = opcode::PollAdd::new(types::Fd(a.ch.stop_fd()), libc::POLLIN as u32)
            .build()
            .user_data(STOP);
        push(&mut ring, &stop.into())?;
        ring.submit()?;
        // A REGISTER that fails completes at once; one that works stays in flight.
        for c in ring.completion() {
            if c.result() < 0 && c.user_data() < slots.len() as u64 {
                return Err(io::Error::from_raw_os_error(-c.result()));
            }
        }
        Ok(())
    })();
    if let Err(e) = setup {
        let _ = a
            .report
            .send((a.qid, Err(format!("FUSE_IO_URING_CMD_REGISTER: {e}"))));
        drop(ring);
        a.keep.keep(Box::new((slots, wake_buf)));
        return None;
    }
    a.running.fetch_add(1, Ordering::AcqRel);
    live.fetch_add(1, Ordering::AcqRel);
    let _ = a.report.send((a.qid, Ok(())));
    drop(a.report);

    let mut buf = vec![0u8; payload + IN_OUT_SZ + OP_IN_SZ];
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(64);
    // Entries with a command in flight (registered or committed, no completion yet).
    let mut in_kernel = slots.len();
    let mut dead = 0usize;
    let mut stop = false;
    let split = split_submit();
    let mut served = false;
    let reason = 'serve: loop {
        if split && served {
            // Hand the replies over before waiting (see split_submit).
            if let Err(e) = ring.submit() {
                if !matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) {
                    eprintln!("devfs: io_uring queue {}: {e}", a.qid);
                    break EndReason::Failed;
                }
            }
        }
        served = false;
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) => {}
            Err(e) => {
                eprintln!("devfs: io_uring queue {}: {e}", a.qid);
                break EndReason::Failed;
            }
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            match ud {
                WAKE if res < 0 && res != -libc::EINTR && res != -libc::EAGAIN => {
                    // Without its wake-up the queue could never commit a parked reply.
                    eprintln!(
                        "devfs: io_uring queue {}: eventfd read: {}",
                        a.qid,
                        io::Error::from_raw_os_error(-res)
                    );
                    break 'serve EndReason::Failed;
                }
                WAKE => {
                    let r = push(&mut ring, &wake_read(&mut wake_buf))
                        .and_then(|()| commit_ready(&mut ring, &shared, fd));
                    match r {
                        Ok(n) => in_kernel += n,
                        Err(e) => {
                            eprintln!("devfs: io_uring queue {}: {e}", a.qid);
                            break 'serve EndReason::Failed;
                        }
                    }
                }
                // Serve the rest of this batch first: its requests are fetched already.
                STOP => stop = true,
                i => {
                    let Some(slot) = slots.get(i as usize).cloned() else {
                        continue;
                    };
                    in_kernel -= 1;
                    if res < 0 {
                        // ENOTCONN / ECANCELED: the connection is going away.
                        dead += 1;
                        continue;
                    }
                    served = true;
                    match serve_slot(&slot, &a.ctx, &*a.fs, &mut buf) {
                        Served::Answered => {
                            if let Err(e) = push(&mut ring, &slot.commit_sqe(fd)) {
                                eprintln!("devfs: io_uring queue {}: {e}", a.qid);
                                break 'serve EndReason::Failed;
                            }
                            in_kernel += 1;
                        }
                        Served::Parked => {
                            // Keep the queue as deep as before: a fresh entry replaces this one.
                            let s = Slot::new(shared.clone(), slots.len() as u32, payload);
                            if push(&mut ring, &s.register_sqe(fd)).is_ok() {
                                slots.push(s);
                                in_kernel += 1;
                            }
                        }
                    }
                }
            }
        }
        if stop {
            break EndReason::Stopped;
        }
        if dead > 0 && in_kernel == 0 {
            break if a.ch.is_stopped() {
                EndReason::Stopped
            } else {
                EndReason::Disconnected
            };
        }
    };
    // The end: answer every parked request, commit ours, until every queue thread did.
    a.ctx.parking.fail_all(libc::ENODEV);
    let _ = commit_ready(&mut ring, &shared, fd).and_then(|_| ring.submit());
    a.running.fetch_sub(1, Ordering::AcqRel);
    let t = Instant::now();
    while a.running.load(Ordering::Acquire) > 0 && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(1));
        let _ = commit_ready(&mut ring, &shared, fd).and_then(|_| ring.submit());
    }
    let _ = commit_ready(&mut ring, &shared, fd).and_then(|_| ring.submit());
    // Dropping the ring cancels the entries still waiting for a request; their buffers must
    // outlive this thread (see Kept).
    drop(ring);
    a.keep.keep(Box::new((slots, wake_buf)));
    Some(reason)
}

/// Queues a commit for every slot answered away from the queue thread; returns how many.
fn commit_ready(ring: &mut Ring, q: &QueueShared, fd: RawFd) -> io::Result<usize> {
    let ready = std::mem::take(&mut *q.ready.lock().unwrap_or_else(|e| e.into_inner()));
    for s in &ready {
        s.state.store(ARMED, Ordering::Relaxed);
        push(ring, &s.commit_sqe(fd))?;
    }
    Ok(ready.len())
}

enum Served {
    Answered,
    Parked,
}

/// Serves the request the kernel put into `slot`: copies it out as contiguous bytes (what a
/// `/dev/fuse` read would give) into `buf`, so that the handler borrows nothing the reply
/// writes, and runs it.
fn serve_slot<F: Filesystem>(slot: &Arc<Slot>, ctx: &Ctx, fs: &F, buf: &mut [u8]) -> Served {
    // SAFETY: the fetch completed, so by the type's invariant the queue thread (us) owns the
    // buffers until it creates the reply below.
    let n = unsafe {
        let h = &*slot.header.get();
        let payload = &*slot.payload.get();
        let psz = (h.ent.payload_sz as usize).min(payload.len());
        let ih = InHeader::read_from(&h.in_out).unwrap_or_default();
        let op_sz = (ih.len as usize)
            .saturating_sub(HEADER_LEN + psz)
            .min(OP_IN_SZ);
        buf[..HEADER_LEN].copy_from_slice(&h.in_out[..HEADER_LEN]);
        buf[HEADER_LEN..HEADER_LEN + op_sz].copy_from_slice(&h.op_in[..op_sz]);
        buf[HEADER_LEN + op_sz..HEADER_LEN + op_sz + psz].copy_from_slice(&payload[..psz]);
        slot.commit_id.store(ih.unique, Ordering::Relaxed);
        HEADER_LEN + op_sz + psz
    };
    slot.state.store(SERVING, Ordering::Relaxed);
    let unique = slot.commit_id.load(Ordering::Relaxed);
    let reply = Reply::ring(slot.clone(), unique);
    match Request::parse(&buf[..n]) {
        Some(req) => serve(ctx, fs, req, reply),
        None => reply.error(libc::EIO),
    }
    // AcqRel: Acquire sees the reply's buffer writes (DONE); Release publishes AWAY.
    match slot
        .state
        .compare_exchange(SERVING, AWAY, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => Served::Parked,
        Err(_) => {
            slot.state.store(ARMED, Ordering::Relaxed);
            Served::Answered
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_sqe_layout() {
        let (r, _w) = {
            let mut fds = [0; 2];
            // SAFETY: fds has room for two descriptors.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: both fds are fresh and owned by us.
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
        };
        let q = Arc::new(QueueShared {
            qid: 3,
            ready: Mutex::new(Vec::new()),
            wake: r,
        });
        let s = Slot::new(q, 5, 4096);
        let e = s.register_sqe(9);
        // SAFETY: Entry128 is 128 bytes of plain integers (see with_len).
        let raw: [u8; 128] = unsafe { std::mem::transmute(e) };
        assert_eq!(raw[0], io_uring::opcode::UringCmd80::CODE); // opcode
        assert_eq!(i32::from_ne_bytes(raw[4..8].try_into().unwrap()), 9); // fd
        assert_eq!(
            u64::from_ne_bytes(raw[16..24].try_into().unwrap()),
            s.iov.get() as u64
        ); // addr
        assert_eq!(u32::from_ne_bytes(raw[24..28].try_into().unwrap()), 2); // len
        assert_eq!(u64::from_ne_bytes(raw[32..40].try_into().unwrap()), 5); // user_data
                                                                            // cmd area at 48: fuse_uring_cmd_req { flags, commit_id, qid }
        assert_eq!(u16::from_ne_bytes(raw[64..66].try_into().unwrap()), 3);
        // SAFETY: the slot is not registered anywhere; reading its own iovecs.
        let iov = unsafe { &*s.iov.get() };
        assert_eq!((iov[0].iov_len, iov[1].iov_len), (288, 4096));
    }

    #[test]
    fn possible_cpus_is_sane() {
        let n = possible_cpus();
        assert!((1..=8192).contains(&n), "{n}");
    }
}
