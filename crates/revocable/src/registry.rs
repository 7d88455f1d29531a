//! Per-thread announcement slots: the reader side of the protocol (hazard-pointer style).
//!
//! Every thread that ever takes an access owns one [`Record`]: a cache-line-aligned block of slots.
//! A reader *announces* an access by writing the resource's id (see [`crate::id`]) into its next free
//! slot, and *retracts* it by writing zero. Nobody else writes a slot, so the read path is plain
//! stores to memory no other core is writing: no atomic read-modify-write, no shared cache line.
//! A revoker *scans* every record for its id. Memory is O(1) per resource and O(threads × depth) in
//! all; a revoke waits only for the slots carrying its own id.
//!
//! Records are never freed: a thread that exits hands its record back (status `FREE`) for the next
//! new thread, unless one of its slots is still in use — only a leaked guard (`mem::forget`,
//! `Box::leak`) can do that, since guards are `!Send` — in which case the record is `ABANDONED` with
//! its announcements intact: the leaked guard may have lent `&T` to another thread.
//!
//! # Invariants
//! * Only the owning thread writes a record's slots; scanners only load them.
//! * A non-zero slot holds the id of a resource that this thread accessed and whose access has not
//!   been retracted.
//! * The list of records and each record's chain of overflow chunks only grow; nodes are `'static`.

use core::ptr;
use std::sync::Mutex;

use crate::barrier;
use crate::sync::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// Slots in the record itself: one 64-byte line.
pub(crate) const INLINE: usize = 8;
/// Slots per overflow chunk, for nesting deeper than [`INLINE`].
const CHUNK: usize = 16;

const OWNED: u8 = 0;
const FREE: u8 = 1;
const ABANDONED: u8 = 2;

/// Who owns (or owned) a record, for `RevokeTimeout` reports.
#[derive(Clone, Debug, Default)]
pub(crate) struct Owner {
    pub(crate) name: Option<String>,
    pub(crate) id: String,
    pub(crate) os_tid: Option<i64>,
    pub(crate) exited: bool,
}

/// Where and when a slot's access was taken (feature `track-holders`); zero-sized otherwise.
pub(crate) struct Meta {
    #[cfg(feature = "track-holders")]
    loc: AtomicPtr<core::panic::Location<'static>>,
    #[cfg(feature = "track-holders")]
    since_ns: AtomicU64,
}

impl Meta {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Meta {
            #[cfg(feature = "track-holders")]
            loc: AtomicPtr::new(ptr::null_mut()),
            #[cfg(feature = "track-holders")]
            since_ns: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Meta {
            #[cfg(feature = "track-holders")]
            loc: AtomicPtr::new(ptr::null_mut()),
            #[cfg(feature = "track-holders")]
            since_ns: AtomicU64::new(0),
        }
    }
}

/// One thread's announcement slots. See the module docs for the invariants.
#[repr(C, align(128))]
pub(crate) struct Record {
    slots: [AtomicU64; INLINE],
    overflow: AtomicPtr<Chunk>,
    next: AtomicPtr<Record>,
    status: AtomicU8,
    owner: Mutex<Owner>,
    meta: [Meta; INLINE],
}

struct Chunk {
    slots: [AtomicU64; CHUNK],
    meta: [Meta; CHUNK],
    next: AtomicPtr<Chunk>,
}

/// The list of all records ever created.
pub(crate) struct Registry {
    head: AtomicPtr<Record>,
}

#[cfg(not(loom))]
fn registry() -> &'static Registry {
    static R: Registry = Registry {
        head: AtomicPtr::new(ptr::null_mut()),
    };
    &R
}
#[cfg(loom)]
fn registry() -> &'static Registry {
    loom::lazy_static! {
        static ref R: Registry = Registry { head: AtomicPtr::new(ptr::null_mut()) };
    }
    &R
}

/// Releases this thread's record when the thread exits.
struct Handle(core::cell::Cell<*const Record>);

impl Drop for Handle {
    fn drop(&mut self) {
        let p = self.0.get();
        if !p.is_null() {
            // SAFETY: records are 'static (invariant), and this thread owns it.
            unsafe { release(&*p) };
        }
    }
}

/// What `LOCAL` points to before this thread has a record (and after it gave it back): a record
/// with every inline slot busy, so the fast path needs no null check — it finds no free slot and
/// falls into `announce_deep`, which registers. It is not in the registry, so scans never see it,
/// and nothing ever writes to it.
#[cfg(not(loom))]
static SENTINEL: Record = Record {
    slots: [const { AtomicU64::new(u64::MAX) }; INLINE],
    overflow: AtomicPtr::new(ptr::null_mut()),
    next: AtomicPtr::new(ptr::null_mut()),
    status: AtomicU8::new(OWNED),
    owner: Mutex::new(Owner {
        name: None,
        id: String::new(),
        os_tid: None,
        exited: false,
    }),
    meta: [const { Meta::new() }; INLINE],
};
#[cfg(not(loom))]
fn sentinel() -> &'static Record {
    &SENTINEL
}
#[cfg(loom)]
fn sentinel() -> &'static Record {
    loom::lazy_static! {
        static ref SENTINEL: Record = {
            let r = Record::new(OWNED);
            for s in &r.slots {
                s.store(u64::MAX, Ordering::Relaxed);
            }
            r
        };
    }
    &SENTINEL
}

#[cfg(not(loom))]
std::thread_local! {
    /// The fast path's pointer to this thread's record, or to the sentinel (no destructor, so
    /// always accessible; const-initialised, so no lazy-init check).
    static LOCAL: core::cell::Cell<*const Record> =
        const { core::cell::Cell::new(&raw const SENTINEL) };
    static HANDLE: Handle = const { Handle(core::cell::Cell::new(ptr::null())) };
}
#[cfg(loom)]
loom::thread_local! {
    static LOCAL: core::cell::Cell<*const Record> = core::cell::Cell::new(sentinel());
    static HANDLE: Handle = Handle(core::cell::Cell::new(ptr::null()));
}

/// An announcement in place: which slot to clear when the access ends.
pub(crate) struct Token {
    slot: &'static AtomicU64,
}

impl Record {
    fn new(status: u8) -> Self {
        Self {
            slots: core::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicPtr::new(ptr::null_mut()),
            next: AtomicPtr::new(ptr::null_mut()),
            status: AtomicU8::new(status),
            owner: Mutex::new(Owner::default()),
            meta: core::array::from_fn(|_| Meta::new()),
        }
    }

    /// Slot `i` and its metadata, allocating overflow chunks on the way if `grow` (owner only).
    fn slot(&'static self, i: usize, grow: bool) -> Option<(&'static AtomicU64, &'static Meta)> {
        if i < INLINE {
            return Some((&self.slots[i], &self.meta[i]));
        }
        let mut j = i - INLINE;
        let mut link = &self.overflow;
        loop {
            // Acquire: pairs with the Release publication below, so a chunk's slots are initialised.
            let mut c = link.load(Ordering::Acquire);
            if c.is_null() {
                if !grow {
                    return None;
                }
                let fresh = Box::new(Chunk {
                    slots: core::array::from_fn(|_| AtomicU64::new(0)),
                    meta: core::array::from_fn(|_| Meta::new()),
                    next: AtomicPtr::new(ptr::null_mut()),
                });
                c = Box::into_raw(fresh);
                // Only the owner appends, so a plain Release store publishes it.
                link.store(c, Ordering::Release);
            }
            // SAFETY: chunks are never freed (invariant) and were initialised before publication.
            let chunk: &'static Chunk = unsafe { &*c };
            if j < CHUNK {
                return Some((&chunk.slots[j], &chunk.meta[j]));
            }
            j -= CHUNK;
            link = &chunk.next;
        }
    }

    /// Calls `f` on every slot and its metadata (scanners and the owner).
    fn for_each_slot(&'static self, mut f: impl FnMut(&'static AtomicU64, &'static Meta)) {
        for (s, m) in self.slots.iter().zip(&self.meta) {
            f(s, m);
        }
        let mut c = self.overflow.load(Ordering::Acquire);
        while !c.is_null() {
            // SAFETY: chunks are never freed and are initialised before publication.
            let chunk: &'static Chunk = unsafe { &*c };
            for (s, m) in chunk.slots.iter().zip(&chunk.meta) {
                f(s, m);
            }
            c = chunk.next.load(Ordering::Acquire);
        }
    }
}

/// This thread's record, or the sentinel if it has none yet.
#[inline(always)]
fn local() -> &'static Record {
    // SAFETY: LOCAL only ever holds the sentinel or a 'static record owned by this thread.
    unsafe { &*LOCAL.with(|c| c.get()) }
}

#[cold]
#[inline(never)]
fn register() -> &'static Record {
    barrier::init();
    let reg = registry();
    let mut p = reg.head.load(Ordering::Acquire);
    let rec: &'static Record = loop {
        if p.is_null() {
            let rec: &'static Record = Box::leak(Box::new(Record::new(OWNED)));
            let mut head = reg.head.load(Ordering::Relaxed);
            loop {
                rec.next.store(head, Ordering::Relaxed);
                // Release: publishes the record's initialised fields to scanners (Acquire on head).
                match reg.head.compare_exchange_weak(
                    head,
                    rec as *const Record as *mut Record,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
            break rec;
        }
        // SAFETY: records are never freed.
        let r: &'static Record = unsafe { &*p };
        // Acquire: the previous owner's last writes (slots all zero) happen before ours.
        if r.status.load(Ordering::Relaxed) == FREE
            && r.status
                .compare_exchange(FREE, OWNED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            break r;
        }
        p = r.next.load(Ordering::Relaxed);
    };
    *rec.owner.lock().unwrap_or_else(|e| e.into_inner()) = current_owner();
    LOCAL.with(|c| c.set(rec));
    // If the thread is already tearing down its thread-locals, the record can't be handed back at
    // exit: it stays OWNED (never reused, scanned by every revoke). Only code that accesses a
    // resource from a TLS destructor that runs after ours pays this, once per thread: a thread
    // pool doing so on every thread grows the registry (known limitation).
    let _ = HANDLE.try_with(|h| h.0.set(rec));
    rec
}

fn current_owner() -> Owner {
    let t = std::thread::current();
    Owner {
        name: t.name().map(str::to_owned),
        id: format!("{:?}", t.id()),
        os_tid: os_tid(),
        exited: false,
    }
}

fn os_tid() -> Option<i64> {
    #[cfg(all(target_os = "linux", not(miri)))]
    // SAFETY: gettid has no arguments and no side effects.
    return Some(unsafe { libc::syscall(libc::SYS_gettid) } as i64);
    #[cfg(not(all(target_os = "linux", not(miri))))]
    None
}

/// Thread exit: hand the record back, or abandon it with its (leaked) announcements intact.
fn release(rec: &'static Record) {
    let _ = LOCAL.try_with(|c| c.set(sentinel()));
    let mut busy = false;
    rec.for_each_slot(|s, _| busy |= s.load(Ordering::Relaxed) != 0);
    let mut owner = rec.owner.lock().unwrap_or_else(|e| e.into_inner());
    if busy {
        owner.exited = true;
        drop(owner);
        rec.status.store(ABANDONED, Ordering::Release);
    } else {
        *owner = Owner::default();
        drop(owner);
        // Release: our last writes happen before the next owner's Acquire claim.
        rec.status.store(FREE, Ordering::Release);
    }
}

/// Announces an access to resource `id` by this thread; ends with the reader's light barrier.
///
/// Takes the lowest free slot. There is deliberately no "next free slot" counter: a counter would
/// be loaded, then stored, by every access and its release, making each access wait for the
/// previous one's store to be forwarded. Here the loads of our own slots only feed predictable
/// branches, so consecutive accesses do not depend on each other at all.
#[inline(always)]
#[cfg_attr(feature = "track-holders", track_caller)]
pub(crate) fn announce(id: u64) -> Token {
    let rec = local();
    // The common case, a first (non-nested) access, is straight-line code: every taken branch
    // costs a cycle on the read path.
    let first = &rec.slots[0];
    // Our own slot: only we write it, so this reads our own last store.
    if first.load(Ordering::Relaxed) == 0 {
        return claim(first, &rec.meta[0], id);
    }
    core::hint::cold_path();
    for (slot, meta) in rec.slots.iter().zip(&rec.meta).skip(1) {
        if slot.load(Ordering::Relaxed) == 0 {
            return claim(slot, meta, id);
        }
    }
    announce_deep(rec, id)
}

/// Writes `id` into the free `slot`, then the light barrier.
#[inline(always)]
#[cfg_attr(feature = "track-holders", track_caller)]
fn claim(slot: &'static AtomicU64, meta: &'static Meta, id: u64) -> Token {
    track(meta);
    // Relaxed: ordering against the revoked-flag load comes from the barrier pair (light here,
    // heavy in the revoker), see `barrier`.
    slot.store(id, Ordering::Relaxed);
    barrier::light();
    Token { slot }
}

/// Slow path: this thread has no record yet (`rec` is the sentinel), or it nests deeper than the
/// inline slots. Takes the lowest free slot, growing only when all are busy, so that live
/// accesses, not the history of drops, bound the slots in use.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "track-holders", track_caller)]
fn announce_deep(rec: &'static Record, id: u64) -> Token {
    let rec = if ptr::eq(rec, sentinel()) {
        register()
    } else {
        rec
    };
    let mut idx = 0;
    let (slot, meta) = loop {
        let (s, m) = rec
            .slot(idx, true)
            .expect("growing slot lookup always succeeds");
        if s.load(Ordering::Relaxed) == 0 {
            break (s, m);
        }
        idx += 1;
    };
    claim(slot, meta, id)
}

#[inline(always)]
#[cfg_attr(feature = "track-holders", track_caller)]
fn track(_meta: &Meta) {
    #[cfg(feature = "track-holders")]
    {
        let loc = core::panic::Location::caller();
        _meta
            .loc
            .store(loc as *const _ as *mut _, Ordering::Relaxed);
        _meta.since_ns.store(now_ns(), Ordering::Relaxed);
    }
}

#[cfg(feature = "track-holders")]
fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

#[cfg(feature = "track-holders")]
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Retracts an announcement; ends with the reader's light barrier.
#[inline(always)]
pub(crate) fn retract(t: &Token) {
    // Release: every use of the resource in this access happens before a scanner that sees zero.
    t.slot.store(0, Ordering::Release);
    barrier::light();
}

/// Whether this thread holds (or leaked) an access to `id`.
pub(crate) fn held_here(id: u64) -> bool {
    let rec = local();
    if ptr::eq(rec, sentinel()) {
        return false;
    }
    let mut held = false;
    rec.for_each_slot(|s, _| held |= s.load(Ordering::Relaxed) == id);
    held
}

/// Counts the announcements of `id` in all records.
pub(crate) fn count(id: u64) -> usize {
    let mut n = 0;
    for_each_record(|rec| {
        // Acquire: pairs with `retract`'s Release, see there.
        rec.for_each_slot(|s, _| n += usize::from(s.load(Ordering::Acquire) == id));
    });
    n
}

/// One remaining holder, as seen by a scan.
pub(crate) struct Seen {
    pub(crate) owner: Owner,
    #[cfg_attr(not(feature = "track-holders"), allow(dead_code))]
    pub(crate) since: Option<(std::time::Duration, &'static core::panic::Location<'static>)>,
}

/// Describes every announcement of `id` (for `RevokeTimeout`).
pub(crate) fn holders(id: u64) -> Vec<Seen> {
    let mut out = Vec::new();
    for_each_record(|rec| {
        rec.for_each_slot(|s, _m| {
            if s.load(Ordering::Acquire) == id {
                let owner = rec.owner.lock().unwrap_or_else(|e| e.into_inner()).clone();
                #[cfg(feature = "track-holders")]
                let since = {
                    let loc = _m.loc.load(Ordering::Relaxed);
                    let ns = _m.since_ns.load(Ordering::Relaxed);
                    (!loc.is_null()).then(|| {
                        // SAFETY: only `&'static Location`s are ever stored.
                        let loc: &'static core::panic::Location<'static> = unsafe { &*loc };
                        (
                            std::time::Duration::from_nanos(now_ns().saturating_sub(ns)),
                            loc,
                        )
                    })
                };
                #[cfg(not(feature = "track-holders"))]
                let since = None;
                out.push(Seen { owner, since });
            }
        });
    });
    out
}

fn for_each_record(mut f: impl FnMut(&'static Record)) {
    // Acquire: pairs with the Release push in `register`.
    let mut p = registry().head.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: records are never freed.
        let r: &'static Record = unsafe { &*p };
        f(r);
        p = r.next.load(Ordering::Relaxed);
    }
}

/// Records in the registry, and how many are owned by live threads (tests and diagnostics).
#[cfg(all(test, not(loom)))]
pub(crate) fn record_stats() -> (usize, usize) {
    let (mut all, mut owned) = (0, 0);
    for_each_record(|r| {
        all += 1;
        owned += usize::from(r.status.load(Ordering::Relaxed) == OWNED);
    });
    (all, owned)
}
