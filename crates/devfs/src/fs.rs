//! The FUSE file system: a tree of fixed directories, dynamic directories (whose files come and
//! go, see [`crate::dynamic`]) and [`Node`]s, a table of open files, and the parking of blocking
//! reads and pollers.
//!
//! Invariants:
//! - every successful OPEN inserts one entry in the open-file table and every entry leaves it
//!   exactly once, by RELEASE or at session end, and that remover calls `Handle::release`;
//! - a read that would block on a file opened without `O_NONBLOCK` is parked on its open file and
//!   retried by the file's waker; each parked read is answered once (data, error, EINTR by the
//!   interrupt handler, or the close's errno: `EBADF` at RELEASE, `ENODEV` at session end);
//! - a poller that asked for notification has its poll handle stored on the open file and is
//!   notified on every wake of that file.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dynamic::{DynTable, Dynamic, DYN_INO_BASE};
use crate::fuse::abi::{
    self, Attr, AttrOut, DirentHeader, EntryOut, IoctlOut, OpenOut, Pod, PollOut, StatfsOut,
    WriteOut,
};
use crate::fuse::{Ctx, Filesystem, Op, Parked, Reply};
use crate::node::{Handle, Node, OpenMode};

/// What a tree entry is.
#[derive(Clone)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A file served by a node.
    File(Arc<dyn Node>),
    /// A directory whose files come and go (see [`crate::dynamic`]).
    Dynamic(Arc<dyn Dynamic>),
}

/// One entry of the fixed tree.
#[derive(Clone)]
pub struct Entry {
    /// Inode number (1 is the root).
    pub ino: u64,
    /// Parent inode number.
    pub parent: u64,
    /// Name in the parent.
    pub name: &'static str,
    /// Directory or file.
    pub kind: Kind,
}

/// Counters the tests and the demo read.
#[derive(Debug, Default)]
pub struct Stats {
    /// Successful opens of files (not directories).
    pub opens: AtomicU64,
    /// Releases of files, from RELEASE requests.
    pub releases: AtomicU64,
    /// Releases run by the server at session end (files still open then).
    pub releases_at_end: AtomicU64,
    /// Reads that were parked at least once.
    pub parked_reads: AtomicU64,
    /// Poll notifications sent.
    pub poll_notifies: AtomicU64,
    /// Dentry invalidations sent for files that left a dynamic directory.
    pub entry_invalidations: AtomicU64,
}

struct PendingRead {
    parked: Arc<Parked>,
    offset: u64,
    size: u32,
    flags: u32,
}

/// The reads parked on one open file, and who is retrying them.
///
/// Retries run without the lock held: a driver's read may call the file's waker synchronously
/// (the fops layer does, when it arms a revoke watch on a resource already revoked), and that
/// waker comes back here. One thread at a time retries (the *runner*), so the reads are retried
/// in the order they parked; a wake that arrives meanwhile only sets `again`, and the runner
/// retries once more before it stops, so no wake is lost. A driver that panics in a retry loses
/// the reads of that round (each is answered `EIO` as its reply drops; the panic hook has printed
/// the panic); the runner still finishes its rounds, so the reads parked meanwhile are retried,
/// and the panic goes no further: a wake runs on whatever thread called the waker (a driver's, a
/// revoke's, another file's wake-up loop), which must not unwind for this file's driver.
///
/// # Invariants
/// - `queue` holds only reads parked on this file and not being retried now; a read being
///   retried is held by the runner alone;
/// - `again` is false while `running` is false;
/// - once `closed` is `Some(errno)`, nothing is added to `queue`: a read that would be is answered
///   with `errno` instead.
#[derive(Default)]
struct Waiters {
    queue: VecDeque<PendingRead>,
    running: bool,
    again: bool,
    closed: Option<i32>,
}

/// An open file.
///
/// # Invariants
/// `waiters` holds only reads parked on this file (see [`Waiters`]); `kh` is the kernel's poll
/// handle once a poll asked for notification.
struct OpenFile {
    ino: u64,
    node: Arc<dyn Node>,
    handle: Arc<dyn Handle>,
    waiters: Mutex<Waiters>,
    kh: Mutex<Option<u64>>,
    ctx: Ctx,
}

impl OpenFile {
    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the file closed, runs the driver's release, then answers every request that was
    /// parked on this file with `errno` (the file is gone, so nothing else will). The queue is
    /// emptied before the release, so a wake the release fires retries nothing; reads a runner
    /// holds now are answered by that runner with `errno` too (see [`Waiters`]).
    fn close(&self, errno: i32) {
        let queue = {
            let mut w = self.waiters();
            w.closed = Some(errno);
            std::mem::take(&mut w.queue)
        };
        self.handle.release();
        fail(queue, errno);
    }

    /// The close's errno, once the file is closed.
    fn closed(&self) -> Option<i32> {
        self.waiters().closed
    }

    fn do_read(&self, offset: u64, size: u32, flags: u32) -> Result<Vec<u8>, i32> {
        let mut d = self.handle.read(offset, size, flags)?;
        d.truncate(size as usize);
        Ok(d)
    }

    /// Parks `reply` for a read that would block and returns true, unless the file is closed
    /// (the read is then answered with the close's errno) or the read was interrupted before or
    /// as it parked (answered EINTR, by the park or by the interrupt); then this returns false.
    fn park_read(&self, reply: Reply, offset: u64, size: u32, flags: u32) -> bool {
        let mut w = self.waiters();
        if let Some(errno) = w.closed {
            drop(w);
            reply.error(errno);
            return false;
        }
        // Drop reads answered meanwhile by an interrupt, so the queue stays short.
        w.queue.retain(|p| p.parked.is_pending());
        let parked = self.ctx.park(reply);
        if !parked.is_pending() {
            // Interrupted before or as it parked: already answered EINTR.
            return false;
        }
        w.queue.push_back(PendingRead {
            parked,
            offset,
            size,
            flags,
        });
        true
    }

    /// Retries the parked reads in order and notifies the poller. Never blocks on a retry in
    /// progress: if another thread (or this one, from inside a retried read) is the runner, this
    /// only asks it to go round once more.
    fn wake(&self, stats: &Stats) {
        {
            let mut w = self.waiters();
            if w.running {
                w.again = true;
                return;
            }
            w.running = true;
            loop {
                w.again = false;
                let batch = std::mem::take(&mut w.queue);
                drop(w);
                // A driver that panics in a retry must not leave the file without a runner: the
                // round's reads are lost (answered EIO as they drop), the rounds go on.
                let keep: VecDeque<_> =
                    catch_unwind(AssertUnwindSafe(|| self.retry(batch))).unwrap_or_default();
                w = self.waiters();
                if let Some(errno) = w.closed {
                    drop(w);
                    fail(keep, errno);
                    w = self.waiters();
                } else {
                    // Reads parked during the retry came after the kept ones.
                    let later = std::mem::replace(&mut w.queue, keep);
                    w.queue.extend(later);
                }
                if !w.again {
                    w.running = false;
                    break;
                }
            }
        }
        let kh = *self.kh.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kh) = kh {
            stats.poll_notifies.fetch_add(1, Ordering::Relaxed);
            let _ = self.ctx.notifier().poll_wakeup(kh);
        }
    }

    /// Retries `batch` in order, without the lock; returns the reads that still would block. Once
    /// the file is closed the rest are answered with the close's errno instead of reaching the
    /// driver after its release.
    fn retry(&self, batch: VecDeque<PendingRead>) -> VecDeque<PendingRead> {
        let mut keep = VecDeque::with_capacity(batch.len());
        for p in batch {
            // Take the reply first: an interrupted read (reply already taken) must not consume
            // data.
            let Some(reply) = p.parked.take() else {
                continue;
            };
            if let Some(errno) = self.closed() {
                reply.error(errno);
                continue;
            }
            match self.do_read(p.offset, p.size, p.flags) {
                Err(libc::EAGAIN) => {
                    let parked = self.ctx.park(reply);
                    // Not if the park answered it EINTR (interrupted during the retry).
                    if parked.is_pending() {
                        keep.push_back(PendingRead { parked, ..p });
                    }
                }
                Ok(d) => reply.ok(&[&d]),
                Err(e) => reply.error(e),
            }
        }
        keep
    }
}

/// Answers each of `reads` not answered yet (by an interrupt) with `errno`.
fn fail(reads: VecDeque<PendingRead>, errno: i32) {
    for p in reads {
        if let Some(r) = p.parked.take() {
            r.error(errno);
        }
    }
}

const SHARDS: usize = 16;

/// The device file system served over FUSE.
///
/// # Invariants
/// `files[fh % SHARDS]` holds the open file `fh` from its OPEN until its RELEASE or session end.
pub struct DevFs {
    entries: Vec<Entry>,
    dynamic: Mutex<DynTable>,
    files: [Mutex<HashMap<u64, Arc<OpenFile>>>; SHARDS],
    next_fh: AtomicU64,
    stats: Arc<Stats>,
    time: u64,
    uid: u32,
    gid: u32,
}

impl std::fmt::Debug for DevFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevFs")
            .field("entries", &self.entries.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn secs_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DevFs {
    /// A file system serving `entries` (directories and files; the root, inode 1, is implicit).
    pub fn new(entries: Vec<Entry>) -> DevFs {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        DevFs {
            entries,
            dynamic: Mutex::new(DynTable::default()),
            files: Default::default(),
            next_fh: AtomicU64::new(1),
            stats: Arc::new(Stats::default()),
            time: secs_now(),
            uid,
            gid,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Dynamic files the inode table holds now (live or open).
    pub fn dynamic_inodes(&self) -> usize {
        self.dyn_table().len()
    }

    /// Number of files open right now.
    pub fn open_files(&self) -> usize {
        self.files
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    fn entry(&self, ino: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.ino == ino)
    }

    fn is_dir(&self, ino: u64) -> bool {
        ino == abi::ROOT_ID
            || matches!(
                self.entry(ino),
                Some(Entry {
                    kind: Kind::Dir | Kind::Dynamic(_),
                    ..
                })
            )
    }

    fn dyn_table(&self) -> std::sync::MutexGuard<'_, DynTable> {
        self.dynamic.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source of dynamic directory `ino`.
    fn dynamic_dir(&self, ino: u64) -> Option<&Arc<dyn Dynamic>> {
        match self.entry(ino) {
            Some(Entry {
                kind: Kind::Dynamic(d),
                ..
            }) => Some(d),
            _ => None,
        }
    }

    /// Whether dynamic file `ino` is still in its directory, and its node (also when gone).
    fn dyn_node(&self, ino: u64) -> Option<(bool, Arc<dyn Node>)> {
        let (parent, name, id, node) = {
            let t = self.dyn_table();
            let e = t.get(ino)?;
            (e.parent, e.name.clone(), e.id, e.node.clone())
        };
        let live = self
            .dynamic_dir(parent)
            .is_some_and(|d| d.entries().iter().any(|(n, i)| *n == name && *i == id));
        Some((live, node))
    }

    /// LOOKUP in a dynamic directory: the current file of that name, with its inode; forgets
    /// files that are gone and not open.
    fn dyn_lookup(&self, parent: u64, d: &Arc<dyn Dynamic>, name: &[u8]) -> Option<Attr> {
        let live = d.entries();
        let mut t = self.dyn_table();
        t.prune(parent, &live.iter().cloned().collect());
        let (n, id) = live.iter().find(|(n, _)| n.as_bytes() == name)?;
        let ino = t.ino(parent, n, *id, d.as_ref());
        let node = t.get(ino)?.node.clone();
        drop(t);
        Some(self.make_attr(ino, node.mode(), 1, node.size()))
    }

    fn present(&self, ino: u64) -> bool {
        match self.entry(ino) {
            Some(Entry {
                kind: Kind::File(n),
                ..
            }) => n.present(),
            Some(_) => true,
            None => ino == abi::ROOT_ID,
        }
    }

    /// Attributes of a tree entry that exists now (what LOOKUP answers).
    fn attr(&self, ino: u64) -> Option<Attr> {
        if !self.present(ino) {
            return None;
        }
        if self.is_dir(ino) {
            return Some(self.make_attr(ino, libc::S_IFDIR | 0o755, 2, 0));
        }
        match &self.entry(ino)?.kind {
            Kind::File(n) => Some(self.make_attr(ino, n.mode(), 1, n.size())),
            Kind::Dir | Kind::Dynamic(_) => Some(self.make_attr(ino, libc::S_IFDIR | 0o755, 2, 0)),
        }
    }

    /// Attributes for GETATTR. The kernel asks only for inodes it holds: a file removed from the
    /// tree (`revocable_test/consumer` after its provider closed) but still open answers as an
    /// unlinked file does, with `nlink` 0, as `fstat` of an open kernel chardev always succeeds.
    /// With `fh` (`FUSE_GETATTR_FH`) the answer comes from that open file, whatever the tree says.
    fn getattr(&self, ino: u64, fh: Option<u64>) -> Option<Attr> {
        if let Some(f) = fh.and_then(|fh| self.file(fh)) {
            let nlink = u32::from(f.node.present());
            return Some(self.make_attr(f.ino, f.node.mode(), nlink, f.node.size()));
        }
        if ino >= DYN_INO_BASE {
            let (live, node) = self.dyn_node(ino)?;
            return Some(self.make_attr(ino, node.mode(), u32::from(live), node.size()));
        }
        if let Some(a) = self.attr(ino) {
            return Some(a);
        }
        match &self.entry(ino)?.kind {
            Kind::File(n) => Some(self.make_attr(ino, n.mode(), 0, n.size())),
            Kind::Dir | Kind::Dynamic(_) => None,
        }
    }

    fn make_attr(&self, ino: u64, mode: u32, nlink: u32, size: u64) -> Attr {
        Attr {
            ino,
            mode,
            nlink,
            size,
            uid: self.uid,
            gid: self.gid,
            blksize: 4096,
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            ..Default::default()
        }
    }

    fn children(&self, ino: u64) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| e.parent == ino && e.ino != ino && self.present(e.ino))
    }

    fn shard(&self, fh: u64) -> &Mutex<HashMap<u64, Arc<OpenFile>>> {
        &self.files[(fh as usize) % SHARDS]
    }

    fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.shard(fh)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
    }

    /// The node OPEN of `ino` opens: a present file of the tree or a live dynamic file.
    fn open_node(&self, ino: u64) -> Result<Arc<dyn Node>, i32> {
        if ino >= DYN_INO_BASE {
            return match self.dyn_node(ino) {
                Some((true, node)) => Ok(node),
                _ => Err(libc::ENOENT),
            };
        }
        match self.entry(ino) {
            Some(Entry {
                kind: Kind::File(n),
                ..
            }) if n.present() => Ok(n.clone()),
            Some(Entry {
                kind: Kind::Dir | Kind::Dynamic(_),
                ..
            }) => Err(libc::EISDIR),
            _ => Err(libc::ENOENT),
        }
    }

    fn open(&self, ctx: &Ctx, ino: u64, flags: u32, reply: Reply) {
        let node = match self.open_node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let handle = match node.open(flags) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let open_flags = match handle.open_mode() {
            OpenMode::Stream => abi::FOPEN_DIRECT_IO | abi::FOPEN_STREAM,
            OpenMode::Positioned => abi::FOPEN_DIRECT_IO,
        };
        let file = Arc::new(OpenFile {
            ino,
            node,
            handle: handle.clone(),
            waiters: Mutex::new(Waiters::default()),
            kh: Mutex::new(None),
            ctx: ctx.clone(),
        });
        let weak: Weak<OpenFile> = Arc::downgrade(&file);
        let stats = self.stats.clone();
        handle.set_waker(Arc::new(move || {
            if let Some(f) = weak.upgrade() {
                f.wake(&stats);
            }
        }));
        if ino >= DYN_INO_BASE {
            self.dyn_table().set_open(ino, true);
        }
        self.shard(fh)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, file);
        self.stats.opens.fetch_add(1, Ordering::Relaxed);
        reply.ok_pod(&OpenOut {
            fh,
            open_flags,
            backing_id: 0,
        });
    }

    fn release(&self, fh: u64) {
        let f = self
            .shard(fh)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
        if let Some(f) = f {
            if f.ino >= DYN_INO_BASE {
                self.dyn_table().set_open(f.ino, false);
            }
            self.stats.releases.fetch_add(1, Ordering::Relaxed);
            f.close(libc::EBADF);
        }
    }

    fn read(&self, file: &Arc<OpenFile>, offset: u64, size: u32, flags: u32, reply: Reply) {
        match file.do_read(offset, size, flags) {
            Err(libc::EAGAIN) if flags & libc::O_NONBLOCK as u32 == 0 => {
                if file.park_read(reply, offset, size, flags) {
                    self.stats.parked_reads.fetch_add(1, Ordering::Relaxed);
                    // Data may have arrived between the failed read and the parking: retry once.
                    file.wake(&self.stats);
                }
            }
            Ok(d) => reply.ok(&[&d]),
            Err(e) => reply.error(e),
        }
    }

    /// READDIR. Each entry carries a cookie (`off`) and a listing continues after the cookie the
    /// kernel passes back. In the fixed tree the cookie is the position; in a dynamic directory it
    /// is the file's inode number, which only grows, so a file added during a listing comes after
    /// the rest, a removed one is skipped, and every file live throughout a listing is listed
    /// exactly once, however the directory changes between the READDIR calls.
    fn readdir(&self, ino: u64, offset: u64, size: u32, reply: Reply) {
        let mut all: Vec<(u64, u64, String, u32)> = vec![
            (1, ino, ".".into(), libc::DT_DIR as u32),
            (2, 1, "..".into(), libc::DT_DIR as u32),
        ];
        if let Some(d) = self.dynamic_dir(ino) {
            let live = d.entries();
            let mut t = self.dyn_table();
            t.prune(ino, &live.iter().cloned().collect());
            let mut files: Vec<(u64, u64, String, u32)> = live
                .iter()
                .map(|(n, id)| {
                    let i = t.ino(ino, n, *id, d.as_ref());
                    (i, i, n.clone(), u32::from(libc::DT_REG))
                })
                .collect();
            files.sort();
            all.extend(files);
        } else {
            for e in self.children(ino) {
                let t = if matches!(e.kind, Kind::Dir | Kind::Dynamic(_)) {
                    libc::DT_DIR
                } else {
                    libc::DT_REG
                };
                all.push((all.len() as u64 + 1, e.ino, e.name.into(), u32::from(t)));
            }
        }
        let mut out = Vec::new();
        for (cookie, ino, name, typ) in all.into_iter().filter(|e| e.0 > offset) {
            let sz = abi::dirent_size(name.len());
            if out.len() + sz > size as usize {
                break;
            }
            let h = DirentHeader {
                ino,
                off: cookie,
                namelen: name.len() as u32,
                typ,
            };
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.resize(out.len().next_multiple_of(8), 0);
        }
        reply.ok(&[&out]);
    }
}

impl Filesystem for DevFs {
    fn request(&self, ctx: &Ctx, _h: &abi::InHeader, op: Op<'_>, reply: Reply) {
        match op {
            Op::Lookup { parent, name } => {
                let found = match self.dynamic_dir(parent) {
                    Some(d) => self.dyn_lookup(parent, d, name),
                    None => self
                        .children(parent)
                        .find(|e| e.name.as_bytes() == name)
                        .and_then(|e| self.attr(e.ino)),
                };
                match found {
                    Some(attr) => reply.ok_pod(&EntryOut {
                        nodeid: attr.ino,
                        attr,
                        ..Default::default()
                    }),
                    None => reply.error(libc::ENOENT),
                }
            }
            Op::Getattr { ino, fh } => match self.getattr(ino, fh) {
                Some(attr) => reply.ok_pod(&AttrOut {
                    attr,
                    ..Default::default()
                }),
                None => reply.error(libc::ENOENT),
            },
            Op::Setattr { ino } => match self.getattr(ino, None) {
                Some(attr) => reply.ok_pod(&AttrOut {
                    attr,
                    ..Default::default()
                }),
                None => reply.error(libc::ENOENT),
            },
            Op::Open { ino, flags } => self.open(ctx, ino, flags, reply),
            Op::Read {
                fh,
                offset,
                size,
                flags,
                ..
            } => match self.file(fh) {
                Some(f) => self.read(&f, offset, size, flags, reply),
                None => reply.error(libc::EBADF),
            },
            Op::Write {
                fh, offset, data, ..
            } => match self.file(fh).map(|f| f.handle.write(offset, data)) {
                Some(Ok(n)) => reply.ok_pod(&WriteOut {
                    size: n as u32,
                    padding: 0,
                }),
                Some(Err(e)) => reply.error(e),
                None => reply.error(libc::EBADF),
            },
            Op::Ioctl {
                fh,
                flags,
                cmd,
                arg,
                input,
                out_size,
                ..
            } => {
                if flags & (abi::IOCTL_UNRESTRICTED | abi::IOCTL_DIR) != 0 {
                    return reply.error(libc::ENOTTY);
                }
                match self
                    .file(fh)
                    .map(|f| f.handle.ioctl(cmd, arg, input, out_size))
                {
                    Some(Ok((result, mut out))) => {
                        out.truncate(out_size as usize);
                        let h = IoctlOut {
                            result,
                            flags: 0,
                            in_iovs: 0,
                            out_iovs: 0,
                        };
                        reply.ok(&[h.as_bytes(), &out]);
                    }
                    Some(Err(e)) => reply.error(e),
                    None => reply.error(libc::EBADF),
                }
            }
            Op::Poll {
                fh,
                kh,
                flags,
                events,
                ..
            } => match self.file(fh) {
                Some(f) => {
                    if flags & abi::POLL_SCHEDULE_NOTIFY != 0 {
                        *f.kh.lock().unwrap_or_else(|e| e.into_inner()) = Some(kh);
                    }
                    let always = (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u32;
                    let revents =
                        f.handle.poll(flags & abi::POLL_SCHEDULE_NOTIFY != 0) & (events | always);
                    reply.ok_pod(&PollOut {
                        revents,
                        padding: 0,
                    });
                }
                None => reply.error(libc::EBADF),
            },
            Op::Release { fh, .. } => {
                self.release(fh);
                reply.ok(&[]);
            }
            Op::Flush { .. } | Op::Fsync { .. } | Op::Access { .. } => reply.ok(&[]),
            Op::Opendir { ino, .. } => {
                if self.is_dir(ino) {
                    reply.ok_pod(&OpenOut {
                        fh: 0,
                        open_flags: 0,
                        backing_id: 0,
                    })
                } else {
                    reply.error(libc::ENOTDIR)
                }
            }
            Op::Readdir {
                ino, offset, size, ..
            } => self.readdir(ino, offset, size, reply),
            Op::Releasedir { .. } => reply.ok(&[]),
            Op::Statfs => reply.ok_pod(&StatfsOut {
                bsize: 4096,
                namelen: 255,
                frsize: 4096,
                ..Default::default()
            }),
            _ => reply.error(libc::ENOSYS),
        }
    }

    fn session_ended(&self) {
        for shard in &self.files {
            let all: Vec<_> = shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for (_, f) in all {
                self.stats.releases_at_end.fetch_add(1, Ordering::Relaxed);
                f.close(libc::ENODEV);
            }
        }
    }
}
