//! Per-thread announcement slots: the reader side of the protocol (hazard-pointer style).
//!
//! Every thread that ever takes an access owns one *line*: a 64-byte cache line of [`INLINE`]
//! slots. A reader *announces* an access by writing the resource's id (see [`crate::id`]) into its
//! next free slot, and *retracts* it by writing zero. Nobody else writes a slot, so the read path is
//! plain stores to memory no other core is writing: no atomic read-modify-write, no shared cache
//! line. A revoker *scans* every line for its id (or, for a batch, for any of a set of ids). Memory
//! is O(1) per resource and O(threads × depth) in all; a revoke waits only for the slots carrying
//! its own id.
//!
//! # Layout: a scan that streams
//! Lines live in [`Block`]s of [`BLOCK_LINES`] contiguous lines (4 KiB), so a scan reads contiguous
//! memory with independent loads that the prefetcher can stream, instead of chasing a pointer per
//! thread. Everything a scan does not need per slot — owner names, overflow pointers,
//! `track-holders` metadata — lives in a separate cold array beside each block. A bitmask per block
//! says which lines are claimed: a scan skips unclaimed lines (all zero by invariant) without
//! touching them. Lines of threads that nest deeper than [`INLINE`] accesses grow overflow chunks;
//! a second bitmask marks those lines, so a scan follows overflow pointers only where one exists.
//!
//! A line is claimed by setting its bit in `used` and handed back (bit cleared) by its thread at
//! exit (a pthread-key destructor, after every Rust thread-local), for the next new thread —
//! unless one of its slots is still in use (a leaked guard, or an access held by a later C
//! destructor): the line is then *orphaned*, still claimed with its announcements intact (a
//! leaked guard may have lent `&T` to another thread), and reclaimed by [`sweep_orphans`] once
//! its thread is gone and its slots are zero. The `orphaned` bit is the one record that a line's
//! thread ran (or will never run) its exit handling: reports read "exiting" or "exited" from
//! it, never from the owner data, whose lock thread exit only waits for a while (a report may
//! hold it).
//!
//! # Invariants
//! * Only the owning thread writes a line's slots (and its overflow chunks); scanners only load.
//!   A *pooled* line (see [`crate::pool`]) belongs to no thread: each of its slots is written only
//!   by whoever holds that slot (the guard that took it from the pool), and ownership of a slot
//!   passes with the guard, through whatever synchronisation moved the guard.
//! * A non-zero slot holds the id of a resource that this thread accessed and whose access has not
//!   been retracted.
//! * A line whose `used` bit is clear has every slot (inline and overflow) zero. The owner sets the
//!   bit before its first announcement and clears it only after checking every slot is zero.
//! * The list of blocks and each line's chain of overflow chunks only grow; nodes are `'static`.

use crate::barrier;
use crate::sync::{fence, AtomicPtr, AtomicU64, Mutex, MutexGuard, Ordering};
use core::ptr;

/// Slots in a thread's line: one 64-byte cache line. Two under loom, so that its models reach
/// the overflow path with few accesses.
#[cfg(not(loom))]
pub(crate) const INLINE: usize = 8;
#[cfg(loom)]
pub(crate) const INLINE: usize = 2;
/// Slots per overflow chunk, for nesting deeper than [`INLINE`].
const CHUNK: usize = 16;
/// Lines per block: one bit each in the block's masks. Small under loom, whose atomics are costly.
#[cfg(not(loom))]
const BLOCK_LINES: usize = 64;
#[cfg(loom)]
const BLOCK_LINES: usize = 4;

/// Who owns (or owned) a line, for `RevokeTimeout` reports.
#[derive(Clone, Debug, Default)]
pub(crate) struct Owner {
    pub(crate) name: Option<String>,
    pub(crate) id: String,
    pub(crate) os_tid: Option<i64>,
    /// The line belongs to the Send-guard pool ([`crate::pool`]), not to a thread.
    pub(crate) pooled: bool,
}

/// Where and when a slot's access was taken (feature `track-holders`); zero-sized otherwise.
pub(crate) struct Meta {
    #[cfg(feature = "track-holders")]
    loc: AtomicPtr<core::panic::Location<'static>>,
    #[cfg(feature = "track-holders")]
    since_ns: AtomicU64,
}

impl Meta {
    fn new() -> Self {
        Meta {
            #[cfg(feature = "track-holders")]
            loc: AtomicPtr::new(ptr::null_mut()),
            #[cfg(feature = "track-holders")]
            since_ns: AtomicU64::new(0),
        }
    }
}

/// One thread's inline slots: what the read path touches, and what a scan streams over.
#[repr(C, align(64))]
pub(crate) struct Line {
    slots: [AtomicU64; INLINE],
}

/// Everything about a line that only its owner, registration and reports touch.
struct Cold {
    overflow: AtomicPtr<Chunk>,
    owner: Mutex<Owner>,
    meta: [Meta; INLINE],
    /// The owner's index of its overflow slots (only the owner locks it, so it never waits).
    deep: Mutex<Deep>,
}

/// The owner's view of a line's overflow slots, for O(1) amortised deep announcements.
///
/// Invariants: `slots` lists every overflow slot of the line's chunk chain, in chain order;
/// `live` counts the owner's deep announcements not yet retracted (so the overflow slots are all
/// zero when it is 0); `cursor` indexes the slot most recently taken.
#[derive(Default)]
struct Deep {
    slots: Vec<(&'static AtomicU64, &'static Meta)>,
    cursor: usize,
    live: usize,
}

struct Chunk {
    slots: [AtomicU64; CHUNK],
    meta: [Meta; CHUNK],
    next: AtomicPtr<Chunk>,
}

/// [`BLOCK_LINES`] contiguous lines, the masks that let a scan skip, and the cold data beside.
///
/// Invariant: bit `i` of `used` is set iff line `i` is claimed (owned or orphaned); bit `i` of
/// `overflowed` is set whenever an overflow slot of line `i` may be non-zero: the owner sets it
/// before a deep announcement and clears it when its last deep access ends (its chunks are
/// kept, for the line's next deep nest and next owners, but no longer scanned).
#[repr(C)]
struct Block {
    lines: [Line; BLOCK_LINES],
    used: AtomicU64,
    overflowed: AtomicU64,
    /// Lines whose thread ran, or will never run, its exit handling with the line still claimed:
    /// an access still announced, a line registered after the thread's last destructor pass (or
    /// without a pthread key), an exit that found the line's locks taken for too long, and in a
    /// fork's child the lines of threads that do not exist there. Reclaimed by
    /// [`sweep_orphans`] once the thread is gone and the line is all zero.
    orphaned: AtomicU64,
    /// Lines claimed for the Send-guard pool (set once, never cleared: pooled lines stay).
    pooled: AtomicU64,
    next: AtomicPtr<Block>,
    cold: Box<[Cold]>,
}

/// A thread's claim: its line and that line's cold data (both `'static`).
#[derive(Clone, Copy)]
struct Claim {
    block: &'static Block,
    index: usize,
}

impl Claim {
    fn line(self) -> &'static Line {
        &self.block.lines[self.index]
    }
    fn cold(self) -> &'static Cold {
        &self.block.cold[self.index]
    }
    fn bit(self) -> u64 {
        1 << self.index
    }
    /// Whether the line belongs to the Send-guard pool (its `pooled` bit, loaded with `order`).
    fn is_pooled(self, order: Ordering) -> bool {
        self.block.pooled.load(order) & self.bit() != 0
    }
}

/// The list of all blocks ever created (newest first).
pub(crate) struct Registry {
    head: AtomicPtr<Block>,
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

/// What `LOCAL` points to before this thread has a line (and after it gave it back): a line with
/// every slot busy, so the fast path needs no null check — it finds no free slot and falls into
/// `announce_deep`, which registers. It is in no block, so scans never see it, and nothing ever
/// writes to it.
#[cfg(not(loom))]
static SENTINEL: Line = Line {
    slots: [const { AtomicU64::new(u64::MAX) }; INLINE],
};
#[cfg(not(loom))]
fn sentinel() -> &'static Line {
    &SENTINEL
}
#[cfg(loom)]
fn sentinel() -> &'static Line {
    loom::lazy_static! {
        static ref SENTINEL: Line = Line {
            slots: core::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        };
    }
    &SENTINEL
}

#[cfg(not(loom))]
std::thread_local! {
    /// The fast path's pointer to this thread's line, or to the sentinel (no destructor, so
    /// always accessible; const-initialised, so no lazy-init check).
    static LOCAL: core::cell::Cell<*const Line> =
        const { core::cell::Cell::new(&raw const SENTINEL) };
    /// This thread's claim (the line's block and index). No destructor either: the line is
    /// handed back by [`exit`] (see [`on_thread_exit`]), and every path, including those run
    /// from thread-exit destructors, can read it.
    static CLAIM: core::cell::Cell<Option<Claim>> = const { core::cell::Cell::new(None) };
    /// Set once this thread's line was handed back at exit: a line claimed after that (an
    /// access from a later destructor) is orphaned from birth, see [`sweep_orphans`].
    static EXITED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    /// Bumped each time this thread claims a line (see [`DEEP`]).
    static GENERATION: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}
#[cfg(loom)]
loom::thread_local! {
    static LOCAL: core::cell::Cell<*const Line> = core::cell::Cell::new(sentinel());
    static CLAIM: core::cell::Cell<Option<Claim>> = core::cell::Cell::new(None);
    static EXITED: core::cell::Cell<bool> = core::cell::Cell::new(false);
    static GENERATION: core::cell::Cell<u64> = core::cell::Cell::new(0);
    /// loom has no pthread keys: a thread-local destructor stands in for [`on_thread_exit`].
    static EXIT: Exit = Exit;
}

/// Hands this thread's line back at exit (under loom, where it replaces the pthread key).
#[cfg(loom)]
struct Exit;
#[cfg(loom)]
impl Drop for Exit {
    fn drop(&mut self) {
        exit();
    }
}

/// Arranges for [`exit`] to run when this thread exits; `false` where it cannot.
///
/// A pthread key's destructor, not a Rust thread-local's: glibc runs key destructors after
/// every Rust thread-local destructor (which run through `__cxa_thread_atexit_impl`), so a guard
/// kept in a `thread_local!` has been dropped by then and the line is handed back clean. An access
/// from a C library's own key destructor that runs after ours registers again, and setting the
/// key from inside the destructor pass makes glibc run ours once more (up to
/// `PTHREAD_DESTRUCTOR_ITERATIONS` passes; a line claimed after that is orphaned from birth).
#[cfg(all(unix, not(loom)))]
pub(crate) fn arm_exit() -> bool {
    static KEY: std::sync::OnceLock<Option<libc::pthread_key_t>> = std::sync::OnceLock::new();
    unsafe extern "C" fn on_thread_exit(_: *mut libc::c_void) {
        exit();
    }
    let key = KEY.get_or_init(|| {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: a valid out-pointer and a destructor with the C ABI that never unwinds (`exit`
        // does not panic: it only loads, stores and locks a mutex whose poisoning it ignores).
        (unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } == 0).then_some(k)
    });
    match key {
        // SAFETY: the key exists; any non-null value makes glibc call the destructor at exit.
        Some(k) => unsafe {
            libc::pthread_setspecific(*k, ptr::dangling_mut::<libc::c_void>()) == 0
        },
        // Out of keys (PTHREAD_KEYS_MAX): nothing runs at this thread's exit.
        None => false,
    }
}
#[cfg(all(not(unix), not(loom)))]
pub(crate) fn arm_exit() -> bool {
    /// Elsewhere a thread-local destructor has to do.
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            exit();
        }
    }
    std::thread_local! { static EXIT: Exit = const { Exit }; }
    EXIT.try_with(|_| ()).is_ok()
}
#[cfg(loom)]
pub(crate) fn arm_exit() -> bool {
    EXIT.try_with(|_| ()).is_ok()
}

/// Thread exit: hands this thread's cached Send-guard slots and its line back (see [`release`]).
fn exit() {
    let _ = EXITED.try_with(|e| e.set(true));
    crate::pool::flush();
    if let Some(c) = CLAIM.try_with(core::cell::Cell::take).ok().flatten() {
        release(c);
    }
    // Not under loom: it cannot ask whether a thread exists (the sweep would keep every line),
    // and its thread-local destructors may run after the model's statics are gone.
    #[cfg(not(loom))]
    sweep_orphans();
}

/// This thread's line cannot be handed back at its exit: mark it orphaned now, so that it is
/// reclaimed once the thread is gone.
fn orphan_now() {
    if let Some(c) = local_claim() {
        orphan(c);
    }
}

/// Marks a line orphaned: its thread has run, or will never run, its exit handling (in a fork's
/// child: does not exist). The bit is the one record of that: reports read it to say "exiting"
/// or "exited".
/// Relaxed: the bit orders nothing; the sweep's Acquire test of the slots does.
fn orphan(c: Claim) {
    c.block.orphaned.fetch_or(c.bit(), Ordering::Relaxed);
}

/// An announcement in place: which slot to clear when the access ends.
pub(crate) struct Token {
    slot: &'static AtomicU64,
    /// [`DEEP`] for an overflow slot, whose retract must tell the owner's [`Deep`] (see
    /// [`deep_retracted`]); 0 otherwise. A mask, so that the guard's drop folds it into the one
    /// test it already makes of the resource's state (`Revocable::leave`): no extra branch.
    pub(crate) deep: u64,
}

/// [`Token::deep`] of an overflow slot: a bit above the resource's state bits; above it, the
/// thread's claim generation ([`GENERATION`]) when the slot was taken, so that a retract after
/// the thread moved to another line (its exit handling ran, then a later destructor registered
/// again) does not touch the new line's bookkeeping.
pub(crate) const DEEP: u64 = 1 << 9;
/// Shift of the claim generation in [`Token::deep`].
pub(crate) const DEEP_GEN_SHIFT: u32 = 10;

impl Block {
    fn new() -> Self {
        Block {
            lines: core::array::from_fn(|_| Line {
                slots: core::array::from_fn(|_| AtomicU64::new(0)),
            }),
            used: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            orphaned: AtomicU64::new(0),
            pooled: AtomicU64::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            cold: (0..BLOCK_LINES)
                .map(|_| Cold {
                    overflow: AtomicPtr::new(ptr::null_mut()),
                    owner: Mutex::new(Owner::default()),
                    meta: core::array::from_fn(|_| Meta::new()),
                    deep: Mutex::new(Deep::default()),
                })
                .collect(),
        }
    }

    /// Lines claimed now (a snapshot; see the invariant for why skipping the others is sound).
    #[inline]
    fn used(&self) -> u64 {
        // Relaxed: a line claimed by a reader whose announcement the revoker's heavy barrier made
        // visible was claimed earlier in that reader's program order, so the claim is visible too
        // (the same barrier pair orders it).
        self.used.load(Ordering::Relaxed)
    }
}

impl Claim {
    /// Appends at least `n` overflow slots to the line's chunk chain and to `deep` (owner only).
    fn grow(self, deep: &mut Deep, n: usize) {
        // The chain's last link: after the last chunk, or the line's head pointer.
        // Walking the chain costs a load per chunk, once per doubling: O(1) amortised.
        let mut link = &self.cold().overflow;
        loop {
            // Acquire: pairs with the Release publication below.
            let c = link.load(Ordering::Acquire);
            if c.is_null() {
                break;
            }
            // SAFETY: chunks are never freed and are initialised before publication.
            link = &unsafe { &*c }.next;
        }
        for _ in 0..n.div_ceil(CHUNK) {
            let c: &'static Chunk = Box::leak(Box::new(Chunk {
                slots: core::array::from_fn(|_| AtomicU64::new(0)),
                meta: core::array::from_fn(|_| Meta::new()),
                next: AtomicPtr::new(ptr::null_mut()),
            }));
            // Only the owner appends, so a plain Release store publishes it.
            link.store(c as *const Chunk as *mut Chunk, Ordering::Release);
            deep.slots.extend(c.slots.iter().zip(&c.meta));
            link = &c.next;
        }
    }

    /// Whether every slot of the line (inline and overflow) is zero, each loaded with `order`.
    fn is_zero(self, order: Ordering) -> bool {
        let mut zero = true;
        self.for_each_slot(|s, _| zero &= s.load(order) == 0);
        zero
    }

    /// Calls `f` on every slot and its metadata (reports and the owner: not the fast scan).
    fn for_each_slot(self, mut f: impl FnMut(&'static AtomicU64, &'static Meta)) {
        for (s, m) in self.line().slots.iter().zip(&self.cold().meta) {
            f(s, m);
        }
        for_each_overflow(self.cold(), |chunk| {
            for (s, m) in chunk.slots.iter().zip(&chunk.meta) {
                f(s, m);
            }
        });
    }
}

fn for_each_overflow(cold: &'static Cold, mut f: impl FnMut(&'static Chunk)) {
    let mut c = cold.overflow.load(Ordering::Acquire);
    while !c.is_null() {
        // SAFETY: chunks are never freed and are initialised before publication.
        let chunk: &'static Chunk = unsafe { &*c };
        f(chunk);
        c = chunk.next.load(Ordering::Acquire);
    }
}

/// This thread's line, or the sentinel if it has none yet.
#[inline(always)]
fn local() -> &'static Line {
    // SAFETY: LOCAL only ever holds the sentinel or a 'static line owned by this thread.
    unsafe { &*LOCAL.with(|c| c.get()) }
}

/// This thread's claim, if it has a line.
fn local_claim() -> Option<Claim> {
    CLAIM.try_with(core::cell::Cell::get).ok().flatten()
}

#[cold]
#[inline(never)]
fn register() -> Claim {
    barrier::init();
    crate::fork::arm();
    // Built before the claim: the owner lock is held no longer than the store.
    let me = current_owner();
    let (claim, mut owner) = claim_line();
    *owner = me;
    drop(owner);
    LOCAL.with(|c| c.set(claim.line()));
    let _ = CLAIM.try_with(|c| c.set(Some(claim)));
    let _ = GENERATION.try_with(|g| g.set(g.get().wrapping_add(1)));
    if !arm_exit() || EXITED.try_with(core::cell::Cell::get).unwrap_or(true) {
        // An access after this thread's exit handling ran: the line may never be handed back by
        // it, so the sweep reclaims it once the thread is gone.
        orphan_now();
    }
    claim
}

/// Finds a free line (setting its bit) or adds a block; returns it with its owner lock held.
///
/// A free line whose owner lock is taken is skipped, not waited for: a report may still hold
/// the lock of a line handed back since it looked (briefly), and in a fork's child a lock that
/// a parent thread held at the fork stays taken for good, so waiting there would hang the
/// child's thread. The skipped line stays free for a later claim.
fn claim_line() -> (Claim, MutexGuard<'static, Owner>) {
    let reg = registry();
    let mut p = reg.head.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: blocks are never freed.
        let block: &'static Block = unsafe { &*p };
        // Lines of this block found free but with their owner lock taken.
        let mut skipped = 0u64;
        let mut used = block.used.load(Ordering::Relaxed);
        while used | skipped != FULL {
            let index = (!(used | skipped)).trailing_zeros() as usize;
            // Acquire: the previous owner's last writes (slots all zero) happen before ours
            // (the owner lock, taken next and released by the hand-back, orders them too).
            match block.used.compare_exchange_weak(
                used,
                used | 1 << index,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let claim = Claim { block, index };
                    if let Some(owner) = try_lock(&claim.cold().owner) {
                        return (claim, owner);
                    }
                    // Relaxed: we wrote nothing to the line; the next claimer's Acquire pairs
                    // with the previous owner's Release, which this RMW continues.
                    used = block.used.fetch_and(!claim.bit(), Ordering::Relaxed) & !claim.bit();
                    skipped |= claim.bit();
                    #[cfg(test)]
                    CLAIM_LOCK_SKIPS.fetch_add(1, Ordering::Relaxed);
                }
                Err(u) => used = u,
            }
        }
        p = block.next.load(Ordering::Relaxed);
    }
    let block: &'static Block = Box::leak(Box::new(Block::new()));
    // Line 0 is ours before anyone can see the block.
    block.used.store(1, Ordering::Relaxed);
    let claim = Claim { block, index: 0 };
    let owner = claim.cold().owner.lock().unwrap_or_else(|e| e.into_inner());
    let mut head = reg.head.load(Ordering::Relaxed);
    loop {
        block.next.store(head, Ordering::Relaxed);
        // Release: publishes the block's initialised fields to scanners (Acquire on head).
        match reg.head.compare_exchange_weak(
            head,
            block as *const Block as *mut Block,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => return (claim, owner),
            Err(h) => head = h,
        }
    }
}

/// Who this thread is, from the OS only: `std::thread::current()` panics once the thread's
/// Rust thread-locals are destroyed, and an access may come from a later destructor (a C
/// library's per-thread cleanup). The name is the OS thread name, which std sets from the
/// `Builder` name (the kernel keeps its first 15 bytes).
fn current_owner() -> Owner {
    let tid = os_tid();
    Owner {
        name: os_thread_name(),
        id: tid.map_or_else(|| String::from("unknown thread"), |t| format!("tid {t}")),
        os_tid: tid,
        pooled: false,
    }
}

#[cfg(unix)]
fn os_thread_name() -> Option<String> {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: `buf` is writable for its whole length, which we pass; the call NUL-terminates.
    let r = unsafe { libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return None;
    }
    // SAFETY: NUL-terminated by pthread_getname_np on success.
    let name = unsafe { core::ffi::CStr::from_ptr(buf.as_ptr()) };
    let name = name.to_string_lossy();
    (!name.is_empty()).then(|| name.into_owned())
}
#[cfg(not(unix))]
fn os_thread_name() -> Option<String> {
    None
}

/// Whether the thread `tid` of this process still exists (`tgkill` with signal 0); `None` where
/// that cannot be asked (no tid, Miri, loom): the sweep then keeps an orphaned line.
fn thread_alive(tid: Option<i64>) -> Option<bool> {
    #[cfg(all(target_os = "linux", not(miri), not(loom)))]
    if let Some(tid) = tid {
        // SAFETY: signal 0 only checks that the thread exists; no signal is sent.
        let r = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, 0) };
        // SAFETY: reading this thread's errno.
        return Some(r == 0 || unsafe { *libc::__errno_location() } != libc::ESRCH);
    }
    let _ = tid;
    None
}

/// Reclaims orphaned lines whose thread is gone and whose slots are all zero (an access that
/// outlived the thread's exit handling has ended). Lines still announcing something keep their
/// announcements: their thread exited inside an access, i.e. a leaked guard.
#[cfg_attr(loom, allow(dead_code))] // loom's exit handling does not sweep (see `exit`)
pub(crate) fn sweep_orphans() {
    for_each_block(|block| {
        let orphans = block.orphaned.load(Ordering::Relaxed);
        for index in bits(orphans) {
            let c = Claim { block, index };
            let Some(owner) = try_lock(&c.cold().owner) else {
                continue; // another sweep has it (or, in a fork's child, a thread that is gone)
            };
            if block.orphaned.load(Ordering::Relaxed) & c.bit() == 0
                || thread_alive(owner.os_tid) != Some(false)
            {
                continue;
            }
            // Acquire: the thread's last retract (it is gone) happens before we reuse the line.
            if !c.is_zero(Ordering::Acquire) {
                continue; // a leaked guard: keep its announcement
            }
            // try_lock: in the child of a fork, a lock its holder took in the parent stays taken;
            // such a line is never reclaimed (it stays orphaned), rather than deadlocking here.
            let Some(deep) = try_lock(&c.cold().deep) else {
                continue;
            };
            hand_back(c, owner, deep);
        }
    });
}

/// Hands an all-zero line back for the next thread to claim: its bookkeeping reset and every
/// mask bit cleared, `used` last. The caller holds the line's two locks (passed in).
fn hand_back(c: Claim, mut owner: MutexGuard<'_, Owner>, mut deep: MutexGuard<'_, Deep>) {
    *owner = Owner::default();
    deep.live = 0;
    drop(deep);
    c.block.orphaned.fetch_and(!c.bit(), Ordering::Relaxed);
    c.block.overflowed.fetch_and(!c.bit(), Ordering::Release);
    drop(owner);
    // Release: the line's last writes (all slots zero) happen before the next owner's Acquire
    // claim (and before its lock of `owner`, just released).
    c.block.used.fetch_and(!c.bit(), Ordering::Release);
}

/// `try_lock`, seeing through poisoning.
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

fn os_tid() -> Option<i64> {
    #[cfg(all(target_os = "linux", not(miri)))]
    // SAFETY: gettid has no arguments and no side effects.
    return Some(unsafe { libc::syscall(libc::SYS_gettid) } as i64);
    #[cfg(not(all(target_os = "linux", not(miri))))]
    None
}

/// Thread exit: hand the line back, or orphan it with its announcements intact: an access still
/// in progress (held by a later destructor, or leaked) keeps the line until the sweep finds the
/// thread gone and the line zero.
fn release(c: Claim) {
    let _ = LOCAL.try_with(|l| l.set(sentinel()));
    // Relaxed: our own slots; only we write them.
    if !c.is_zero(Ordering::Relaxed) {
        return orphan(c);
    }
    // A report holds these locks only while it copies the owner: wait a little for it rather
    // than orphan a clean line, which the sweep can reclaim only where the OS says whether a
    // thread exists (not under Miri, nor off Linux).
    let locks = retry_for(LOCK_WAIT, || {
        let got = try_lock(&c.cold().owner).zip(try_lock(&c.cold().deep));
        #[cfg(test)]
        if got.is_none() {
            EXIT_LOCK_MISSES.fetch_add(1, Ordering::Relaxed);
        }
        got
    });
    match locks {
        Some((owner, deep)) => hand_back(c, owner, deep),
        None => orphan(c),
    }
}

/// Calls `attempt` until it returns `Some`: at least once, then for about `wait` (a few yields,
/// then 1 ms sleeps, which also let a holder of a lower scheduling class run on this CPU; the
/// last sleep may run over by ~1 ms plus timer slack); `None` once `wait` has passed. For the
/// line locks, which their holders keep only briefly but which, in a fork's child, stay taken
/// for good when a parent thread held them at the fork: every wait for one must be bounded.
fn retry_for<R>(wait: std::time::Duration, mut attempt: impl FnMut() -> Option<R>) -> Option<R> {
    let mut start = None;
    for tries in 0.. {
        if let Some(r) = attempt() {
            return Some(r);
        }
        let since = *start.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= wait {
            break;
        }
        if tries < 16 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    None
}

/// Tests: how often a claim skipped a free line whose owner lock was taken.
#[cfg(test)]
pub(crate) static CLAIM_LOCK_SKIPS: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// Tests: how often a report's bounded wait for a holder's owner lock ran out.
#[cfg(test)]
pub(crate) static REPORT_WAITS_RUN_OUT: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// Tests: while set, a report whose wait ran out stays there (up to 10 s) before it goes on.
#[cfg(test)]
pub(crate) static REPORT_HOLD_AFTER_RUN_OUT: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
fn hold_after_run_out() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while REPORT_HOLD_AFTER_RUN_OUT.load(Ordering::Acquire) && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
    }
}

/// Tests: how often thread exit found a line's locks taken.
#[cfg(test)]
pub(crate) static EXIT_LOCK_MISSES: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// How long thread exit and reports keep trying for a line's locks: far longer than a holder
/// keeps them while it runs. Past it, exit leaves the line orphaned (the sweep reclaims it where
/// the OS says whether a thread exists) and a report names the owner as unknown. Zero (one try)
/// under loom: `retry_for` yields and sleeps through the OS, which loom does not model, so one
/// try stands for a wait that ran out.
#[cfg(not(loom))]
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
#[cfg(loom)]
const LOCK_WAIT: std::time::Duration = std::time::Duration::ZERO;

/// Announces an access to resource `id` by this thread; ends with the reader's light barrier.
///
/// Takes the lowest free slot. There is deliberately no "next free slot" counter: a counter would
/// be loaded, then stored, by every access and its release, making each access wait for the
/// previous one's store to be forwarded. Here the loads of our own slots only feed predictable
/// branches, so consecutive accesses do not depend on each other at all.
#[inline(always)]
#[cfg_attr(feature = "track-holders", track_caller)]
pub(crate) fn announce(id: u64) -> Token {
    let line = local();
    // The common case, a first (non-nested) access, is straight-line code: every taken branch
    // costs a cycle on the read path.
    let first = &line.slots[0];
    // Our own slot: only we write it, so this reads our own last store.
    if first.load(Ordering::Relaxed) == 0 {
        return claim(first, 0, id);
    }
    core::hint::cold_path();
    for (i, slot) in line.slots.iter().enumerate().skip(1) {
        if slot.load(Ordering::Relaxed) == 0 {
            return claim(slot, i, id);
        }
    }
    announce_deep(line, id)
}

/// Writes `id` into the free inline `slot` (index `i`), then the light barrier.
#[inline(always)]
#[cfg_attr(feature = "track-holders", track_caller)]
fn claim(slot: &'static AtomicU64, _i: usize, id: u64) -> Token {
    #[cfg(feature = "track-holders")]
    if let Some(c) = local_claim() {
        track(&c.cold().meta[_i]);
    }
    publish(slot, id)
}

#[inline(always)]
fn publish(slot: &'static AtomicU64, id: u64) -> Token {
    // Relaxed: ordering against the revoked-flag load comes from the barrier pair (light here,
    // heavy in the revoker), see `barrier`.
    slot.store(id, Ordering::Relaxed);
    barrier::light();
    Token { slot, deep: 0 }
}

/// Slow path: this thread has no line yet (`line` is the sentinel), or it nests deeper than the
/// inline slots.
///
/// Deep announcements are O(1) amortised: the owner keeps an index of its overflow slots and
/// searches from the slot it took last (where a nest that unwinds and rebuilds finds its free
/// slot at once), and when every slot is busy it doubles them, so a full search is paid for by
/// as many announcements. The line's `overflowed` bit is set before the announcement (so scans
/// look at the chunks) and cleared when the last deep access ends ([`deep_retracted`]).
#[cold]
#[inline(never)]
#[cfg_attr(feature = "track-holders", track_caller)]
fn announce_deep(line: &'static Line, id: u64) -> Token {
    let c = if ptr::eq(line, sentinel()) {
        register()
    } else {
        local_claim().expect("a thread whose LOCAL is a line has its CLAIM")
    };
    if let Some((i, s)) = c
        .line()
        .slots
        .iter()
        .enumerate()
        .find(|(_, s)| s.load(Ordering::Relaxed) == 0)
    {
        return claim(s, i, id);
    }
    let mut d = c.cold().deep.lock().unwrap_or_else(|e| e.into_inner());
    let n = d.slots.len();
    let free = (0..n)
        .map(|k| (d.cursor + k) % n)
        .find(|&i| d.slots[i].0.load(Ordering::Relaxed) == 0);
    let i = match free {
        Some(i) => i,
        None => {
            c.grow(&mut d, n.max(CHUNK));
            n
        }
    };
    d.cursor = i;
    d.live += 1;
    let (slot, _meta) = d.slots[i];
    drop(d);
    // Before the announcement in program order, so a scan that sees it sees the bit (the barrier
    // pair orders both, as for `used`).
    let bit = c.bit();
    if c.block.overflowed.load(Ordering::Relaxed) & bit == 0 {
        c.block.overflowed.fetch_or(bit, Ordering::Relaxed);
    }
    track(_meta);
    let mut t = publish(slot, id);
    let generation = GENERATION.try_with(core::cell::Cell::get).unwrap_or(0);
    t.deep = DEEP | (generation << DEEP_GEN_SHIFT);
    t
}

/// The owner retracted a deep announcement: when it was the last, no overflow slot is non-zero
/// any more, so scans may skip the chunks again.
#[cold]
#[inline(never)]
pub(crate) fn deep_retracted(generation: u64) {
    // After the thread's exit handling the slot's line is gone from CLAIM (orphaned, or released
    // once every slot was zero), possibly replaced by a newer line: nothing to tell either (the
    // orphaned line keeps its flag until the sweep reclaims it).
    let Some(c) = local_claim() else {
        return;
    };
    if GENERATION.try_with(core::cell::Cell::get).ok() != Some(generation) {
        return;
    }
    let mut d = c.cold().deep.lock().unwrap_or_else(|e| e.into_inner());
    debug_assert!(d.live > 0, "a deep retract without its announcement");
    d.live = d.live.saturating_sub(1);
    if d.live == 0 {
        // Only the owner writes its overflow slots, and all are zero now: nothing to miss.
        // Release: a scan that reads the cleared bit skips our slots, so the bit must carry our
        // retracts' ordering (their Release stores) to its Acquire fence instead.
        c.block.overflowed.fetch_and(!c.bit(), Ordering::Release);
    }
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
    // Release: every use of the resource in this access happens before a scanner that sees zero
    // (the scanner's Acquire fence after its Relaxed loads, see `scan`).
    t.slot.store(0, Ordering::Release);
    barrier::light();
}

/// Whether this thread holds (or leaked) an access to `id`.
pub(crate) fn held_here(id: u64) -> bool {
    let line = local();
    if ptr::eq(line, sentinel()) {
        return false;
    }
    if line.slots.iter().any(|s| s.load(Ordering::Relaxed) == id) {
        return true;
    }
    let Some(c) = local_claim() else {
        return false;
    };
    let mut held = false;
    for_each_overflow(c.cold(), |chunk| {
        held |= chunk.slots.iter().any(|s| s.load(Ordering::Relaxed) == id);
    });
    held
}

/// Streams over every claimed slot and calls `f` with each non-zero value. Ends with an Acquire
/// fence: every retract (Release) this scan saw as zero happens before the caller's next step.
#[inline]
fn scan(mut f: impl FnMut(u64)) {
    for_each_block(|block| {
        let used = block.used();
        if used == FULL {
            // Every line claimed (the common case with many threads): a straight pass, one
            // branch per group of lines instead of one bit-scan and branch per line.
            for group in block.lines.chunks(GROUP) {
                let any = group.iter().fold(0, |a, l| a | line_or(l));
                if any != 0 {
                    group.iter().for_each(|l| line_each(l, &mut f));
                }
            }
        } else {
            for i in bits(used) {
                line_each(&block.lines[i], &mut f);
            }
        }
        for i in bits(block.overflowed.load(Ordering::Acquire) & block.used()) {
            for_each_overflow(&block.cold[i], |chunk| {
                for s in &chunk.slots {
                    let x = s.load(Ordering::Relaxed);
                    if x != 0 {
                        f(x);
                    }
                }
            });
        }
    });
    // Acquire: pairs with `retract`'s Release: a load above that read a retract's zero
    // synchronises with it through this fence (release store -> relaxed load -> acquire fence).
    // A slot that already holds a later announcement of the same thread is not in the retract's
    // release sequence; on the hardware we target the store order of one thread is preserved
    // anyway (the same caveat as per-slot Acquire loads had).
    fence(Ordering::Acquire);
}

/// A block's `used` mask with every line claimed.
const FULL: u64 = u64::MAX >> (64 - BLOCK_LINES);
/// Lines checked together by a scan of a full block (`GROUP * INLINE` independent loads per branch).
const GROUP: usize = 4;

/// The OR of a line's slots: independent Relaxed loads, no branch.
#[inline(always)]
fn line_or(l: &Line) -> u64 {
    l.slots.iter().fold(0, |a, s| a | s.load(Ordering::Relaxed))
}

/// Calls `f` with each non-zero slot of a line (most lines are all zero: OR them first).
#[inline(always)]
fn line_each(l: &Line, f: &mut impl FnMut(u64)) {
    let v: [u64; INLINE] = core::array::from_fn(|k| l.slots[k].load(Ordering::Relaxed));
    if v.iter().fold(0, |a, &x| a | x) != 0 {
        v.iter().filter(|&&x| x != 0).for_each(|&x| f(x));
    }
}

/// One slot of a pooled line, handed out by [`crate::pool`] to a Send guard.
///
/// Invariant: the slot is in a line claimed for the pool (never released), and zero whenever no
/// guard holds it.
#[derive(Clone, Copy)]
pub(crate) struct PoolSlot {
    slot: &'static AtomicU64,
    #[cfg(feature = "track-holders")]
    meta: &'static Meta,
}

impl PoolSlot {
    /// Announces an access to `id` in this slot; ends with the reader's light barrier.
    #[inline(always)]
    #[cfg_attr(feature = "track-holders", track_caller)]
    pub(crate) fn announce(self, id: u64) -> Token {
        #[cfg(feature = "track-holders")]
        track(self.meta);
        publish(self.slot, id)
    }

    /// The announcement this slot carries while a guard holds it.
    #[inline(always)]
    pub(crate) fn token(self) -> Token {
        Token {
            slot: self.slot,
            deep: 0,
        }
    }
}

/// The owner of every Send-guard pool line.
fn pool_owner() -> Owner {
    Owner {
        name: None,
        id: String::from("Send-guard pool"),
        os_tid: None,
        pooled: true,
    }
}

/// A report's name for a holder whose line's owner record stayed locked through its wait.
pub(crate) const UNKNOWN_OWNER: &str = "unknown thread (its line's record stayed locked)";

/// Claims a line for the Send-guard pool and appends its [`INLINE`] slots to `out`. The line is
/// claimed for good: it is scanned like any thread's line and reported as pooled.
#[cold]
pub(crate) fn claim_pool_line(out: &mut Vec<PoolSlot>) {
    barrier::init();
    crate::fork::arm();
    let (claim, mut owner) = claim_line();
    // Release: a report that sees this bit (Acquire) skips the owner lock, and so must see every
    // write the line's previous owner made before its hand-back (its retracted slots), which
    // this thread's Acquire claim and its lock of `owner` saw.
    claim.block.pooled.fetch_or(claim.bit(), Ordering::Release);
    *owner = pool_owner();
    drop(owner);
    for i in 0..INLINE {
        out.push(PoolSlot {
            slot: &claim.line().slots[i],
            #[cfg(feature = "track-holders")]
            meta: &claim.cold().meta[i],
        });
    }
}

/// Counts the announcements of `id` in all lines.
pub(crate) fn count(id: u64) -> usize {
    let mut n = 0;
    scan(|x| n += usize::from(x == id));
    n
}

/// Counts, in one scan, the announcements of every id in `set`: `counts[set.index(id)]`.
pub(crate) fn count_set(set: &TagSet, counts: &mut [u32]) {
    counts.iter_mut().for_each(|c| *c = 0);
    scan(|x| {
        if let Some(i) = set.index(x) {
            counts[i] += 1;
        }
    });
}

/// A set of resource ids with a dense index each: an open-addressing table sized to a power of
/// two at least twice the number of ids (so a probe for an absent id ends at the first gap after
/// ~1.5 slots on average). Ids are never zero, so zero marks an empty bucket.
pub(crate) struct TagSet {
    keys: Vec<u64>,
    vals: Vec<u32>,
    mask: usize,
}

impl TagSet {
    /// The set of `tags` (distinct, non-zero); `tags[i]` gets index `i`.
    pub(crate) fn new(tags: &[u64]) -> Self {
        let cap = (tags.len() * 2).next_power_of_two().max(2);
        let mut set = TagSet {
            keys: vec![0; cap],
            vals: vec![0; cap],
            mask: cap - 1,
        };
        for (i, &t) in tags.iter().enumerate() {
            debug_assert!(t != 0);
            let mut b = Self::hash(t) & set.mask;
            while set.keys[b] != 0 {
                b = (b + 1) & set.mask;
            }
            set.keys[b] = t;
            set.vals[b] = i as u32;
        }
        set
    }

    #[inline]
    fn hash(t: u64) -> usize {
        // Fibonacci hashing: ids are sequential (shifted), so spread them over the table.
        (t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
    }

    /// The index of `t`, if it is in the set.
    #[inline]
    pub(crate) fn index(&self, t: u64) -> Option<usize> {
        let mut b = Self::hash(t) & self.mask;
        loop {
            let k = self.keys[b];
            if k == t {
                return Some(self.vals[b] as usize);
            }
            if k == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
    }
}

/// One remaining holder, as seen by a scan.
pub(crate) struct Seen {
    pub(crate) owner: Owner,
    /// The owner ran its exit handling (the line is orphaned): "exiting" while it still exists.
    pub(crate) exited: bool,
    /// The owner finished its exit handling and no longer exists: a leaked guard.
    pub(crate) gone: bool,
    #[cfg_attr(not(feature = "track-holders"), allow(dead_code))]
    pub(crate) since: Option<(std::time::Duration, &'static core::panic::Location<'static>)>,
}

/// Describes every announcement of `id` (for `RevokeTimeout`).
pub(crate) fn holders(id: u64) -> Vec<Seen> {
    let mut out = Vec::new();
    for_each_claim(|c| {
        // The line's owner lock stayed taken through one wait already: do not wait again.
        let mut stuck = false;
        c.for_each_slot(|s, _m| {
            if s.load(Ordering::Acquire) == id {
                // The orphaned bit, not a field of the owner: thread exit does not wait long for
                // the owner lock (a report may hold it), so the bit is all it may have set. Read
                // under that lock, as `hand_back` clears it, so the two describe one owner; and
                // the slot again, since the line may have changed hands while we waited.
                // Bounded: in a fork's child the lock may be one a parent thread held, and once
                // per line: a line whose lock outlasted one wait gets one more try per holder.
                // A pool line needs no lock: its owner is a constant, and its bit is set once,
                // after its claim, and never cleared. Acquire: pairs with the Release that sets
                // it, so the re-check below sees the retracted slots of the line's owner before
                // the pool (which the lock gave us on the other path); with a Relaxed load a
                // stale announcement of that thread was named a Send guard (a loom model below).
                let pooled = c.is_pooled(Ordering::Acquire);
                let locked = if pooled {
                    None
                } else if stuck {
                    try_lock(&c.cold().owner)
                } else {
                    let got = retry_for(LOCK_WAIT, || try_lock(&c.cold().owner));
                    #[cfg(test)]
                    if got.is_none() {
                        REPORT_WAITS_RUN_OUT.fetch_add(1, Ordering::Relaxed);
                        hold_after_run_out();
                    }
                    got
                };
                stuck |= locked.is_none() && !pooled;
                if s.load(Ordering::Acquire) != id {
                    return;
                }
                let orphaned = || c.block.orphaned.load(Ordering::Relaxed) & c.bit() != 0;
                let (owner, exited, known) = match locked {
                    Some(g) => (g.clone(), orphaned(), true),
                    None if pooled => (pool_owner(), false, true),
                    None => (
                        Owner {
                            id: String::from(UNKNOWN_OWNER),
                            ..Owner::default()
                        },
                        orphaned(),
                        false,
                    ),
                };
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
                // Unknown (Miri): an orphaned line's thread counts as gone, as before the sweep;
                // but not when the owner itself is unknown: then it is said to be exiting.
                let gone = exited && known && thread_alive(owner.os_tid) != Some(true);
                out.push(Seen {
                    owner,
                    exited,
                    gone,
                    since,
                });
            }
        });
    });
    out
}

fn for_each_block(mut f: impl FnMut(&'static Block)) {
    // Acquire: pairs with the Release push in `claim_line`.
    let mut p = registry().head.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: blocks are never freed.
        let b: &'static Block = unsafe { &*p };
        f(b);
        p = b.next.load(Ordering::Relaxed);
    }
}

fn for_each_claim(mut f: impl FnMut(Claim)) {
    for_each_block(|block| {
        for index in bits(block.used()) {
            f(Claim { block, index });
        }
    });
}

/// The indexes of the set bits of `mask`, lowest first.
#[inline(always)]
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// In the child of a `fork` (see [`crate::fork`]): every thread line but this thread's is a
/// phantom; zero its slots and orphan it (the sweep reclaims it: its thread does not exist
/// here). Pooled lines are kept. Atomics only: async-signal-safe. The owner mutexes are left
/// alone (a thread may have held one at the fork).
#[cfg(all(unix, not(loom), not(miri)))]
pub(crate) fn forget_other_threads() {
    let mine = local_claim();
    for_each_block(|block| {
        for index in bits(block.used()) {
            let c = Claim { block, index };
            // Relaxed suffices: the child reads nothing through the bit, it only needs to see
            // every bit set, and it does: lines are claimed for the pool under the depot lock,
            // which the fork's prepare handler takes.
            if mine.is_some_and(|m| ptr::eq(m.line(), c.line())) || c.is_pooled(Ordering::Relaxed) {
                continue;
            }
            c.for_each_slot(|s, _| s.store(0, Ordering::Relaxed));
            block.overflowed.fetch_and(!c.bit(), Ordering::Release);
            orphan(c);
        }
    });
}

/// Tests: this thread's line (registering the thread if needed), to watch its exit from another
/// thread.
#[cfg(all(test, not(loom)))]
#[derive(Clone, Copy)]
pub(crate) struct TestLine(Claim);

#[cfg(all(test, not(loom)))]
impl TestLine {
    pub(crate) fn of_this_thread() -> TestLine {
        TestLine(local_claim().unwrap_or_else(register))
    }
    /// Whether both name the same line.
    pub(crate) fn is(self, other: TestLine) -> bool {
        ptr::eq(self.0.block, other.0.block) && self.0.index == other.0.index
    }
    /// Takes the lock a report holds while it copies the line's owner.
    pub(crate) fn lock_owner(self) -> MutexGuard<'static, Owner> {
        self.0
            .cold()
            .owner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
    /// (claimed, orphaned)
    pub(crate) fn state(self) -> (bool, bool) {
        let bit = self.0.bit();
        (
            self.0.block.used() & bit != 0,
            self.0.block.orphaned.load(Ordering::Relaxed) & bit != 0,
        )
    }
}

/// Tests: takes the owner lock of every pooled line (as a report holds one while it copies
/// the owner), waiting for none.
#[cfg(all(test, not(loom)))]
pub(crate) fn lock_pool_owners() -> Vec<MutexGuard<'static, Owner>> {
    let mut out = Vec::new();
    for_each_claim(|c| {
        if c.is_pooled(Ordering::Acquire) {
            out.extend(try_lock(&c.cold().owner));
        }
    });
    out
}

/// Tests: orphans this thread's line and forgets it, as if its exit handling never ran.
#[cfg(all(test, not(loom)))]
pub(crate) fn forget_exit_for_tests() {
    orphan_now();
    let _ = CLAIM.try_with(|c| c.set(None));
    let _ = LOCAL.try_with(|l| l.set(sentinel()));
}

/// Tests: whether this thread's line is flagged as having live overflow announcements, and how
/// many overflow slots it owns.
#[cfg(all(test, not(loom)))]
pub(crate) fn local_overflow() -> (bool, usize) {
    let c = local_claim().expect("registered");
    let flagged = c.block.overflowed.load(Ordering::Relaxed) & c.bit() != 0;
    let cap = c.cold().deep.lock().unwrap().slots.len();
    (flagged, cap)
}

/// Lines in the registry, and how many are claimed (tests and diagnostics).
#[cfg(all(test, not(loom)))]
pub(crate) fn record_stats() -> (usize, usize) {
    let (mut all, mut claimed) = (0, 0);
    for_each_block(|b| {
        all += BLOCK_LINES;
        claimed += b.used().count_ones() as usize;
    });
    (all, claimed)
}

/// loom models of the line claim (`RUSTFLAGS="--cfg loom" cargo test -p revocable --release
/// --lib`): in-crate, since a report's hold of a free line's owner lock cannot be staged
/// through the public API at a point loom can interleave.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;

    /// Two threads claim lines while a third holds the owner lock of a free line (a report that
    /// looked before the line was handed back) and reads under it, as a report does: the
    /// claims never wait for that lock, the lines they get are distinct, and a claim that took
    /// and gave back the locked line loses no other thread's bit.
    #[test]
    fn claims_pass_a_free_line_whose_owner_lock_is_held() {
        model_passing(|| {
            // Line 0 claimed and handed back, as a thread's exit does.
            let (line, owner) = claim_line();
            hand_back(line, owner, lock(&line.cold().deep));
            let reporter = loom::thread::spawn(move || report_hold(line));
            let claimers: Vec<_> = (0..2)
                .map(|_| {
                    loom::thread::spawn(|| {
                        let (c, owner) = claim_line();
                        drop(owner);
                        (c.block as *const Block as usize, c.index)
                    })
                })
                .collect();
            let got: Vec<_> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
            reporter.join().unwrap();
            assert_ne!(got[0], got[1], "two claims were given one line");
            let mut claimed = 0;
            for_each_block(|b| claimed += b.used().count_ones());
            assert_eq!(claimed, 2, "a claim's bit was lost");
        });
    }

    /// The claim that takes a line after another claim passed it (its lock taken by a report
    /// just after the hand-back) still synchronises with the line's previous owner, so the new
    /// owner reads none of the previous owner's announcements. Two orderings give it: the
    /// claim's Acquire on `used`, whose release sequence (the hand-back's) the passing claim's
    /// Relaxed give-back continues, and the owner lock, which the hand-back releases and every
    /// claim takes. With the lock modelled, weakening one of the atomics alone no longer fails
    /// this model (it did while loom saw only the atomics); a give-back as a load then a store
    /// fails the model above.
    #[test]
    fn a_claim_after_a_pass_synchronises_with_the_previous_owner() {
        model_passing(|| {
            let (line, owner) = claim_line();
            drop(owner);
            let previous = loom::thread::spawn(move || {
                hold_5_then_hand_back(line);
                // A report takes the owner lock of the line now free.
                report_hold(line);
            });
            let other = loom::thread::spawn(|| drop(claim_line()));
            let skips = CLAIM_LOCK_SKIPS.load(core::sync::atomic::Ordering::Relaxed);
            let (c, owner) = claim_line();
            drop(owner);
            if ptr::eq(c.line(), line.line()) {
                if CLAIM_LOCK_SKIPS.load(core::sync::atomic::Ordering::Relaxed) > skips {
                    GOT_THE_LINE_AFTER_A_PASS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                }
                for s in &c.line().slots {
                    assert_eq!(
                        s.load(Ordering::Relaxed),
                        0,
                        "the previous owner's slot seen"
                    );
                }
            }
            other.join().unwrap();
            previous.join().unwrap();
        });
        assert!(
            GOT_THE_LINE_AFTER_A_PASS.load(core::sync::atomic::Ordering::Relaxed) > 0,
            "no explored interleaving gave main the previous owner's line after a pass"
        );
    }

    /// How often main's claim in the model above got the previous owner's line while another
    /// claim passed a held line.
    static GOT_THE_LINE_AFTER_A_PASS: core::sync::atomic::AtomicUsize =
        core::sync::atomic::AtomicUsize::new(0);

    /// A report that finds a stale announcement on a line that has since become a pool line
    /// does not name a Send guard: a thread announces 5, retracts it and hands its line back,
    /// another claims that line for the pool, and a report looks for 5 meanwhile. The report
    /// may name the thread (it held 5 while the report looked), never the pool (checked: a
    /// Relaxed `pooled` bit, set or loaded, fails it).
    #[test]
    fn a_report_names_no_pool_holder_for_a_stale_announcement() {
        loom::model(|| {
            let (line, owner) = claim_line();
            drop(owner);
            let previous = loom::thread::spawn(move || hold_5_then_hand_back(line));
            let pool = loom::thread::spawn(|| claim_pool_line(&mut Vec::new()));
            for h in holders(5) {
                assert!(
                    !h.owner.pooled,
                    "a Send guard named for a stale announcement"
                );
            }
            previous.join().unwrap();
            pool.join().unwrap();
        });
    }

    /// A report's hold of `line`'s owner lock, with a point inside it where the claims may
    /// run: loom schedules another thread only before an operation that conflicts with one of
    /// theirs, which neither the unlock nor a load of `used` is (found by counting skips), and
    /// an RMW that changes nothing is.
    fn report_hold(line: Claim) {
        if let Some(g) = try_lock(&line.cold().owner) {
            let _ = line.block.used.fetch_or(0, Ordering::Relaxed);
            drop(g);
        }
    }

    /// The line's owner announces resource 5, retracts it and hands the line back.
    fn hold_5_then_hand_back(line: Claim) {
        let slot = &line.line().slots[0];
        slot.store(5, Ordering::Relaxed);
        slot.store(0, Ordering::Release);
        hand_back(line, lock(&line.cold().owner), lock(&line.cold().deep));
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap()
    }

    /// One model at a time, so that each counts only its own passes.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Runs `f` under loom and fails if no explored interleaving passed a held line: such a
    /// model would pass without testing the pass.
    fn model_passing(f: impl Fn() + Sync + Send + 'static) {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let before = CLAIM_LOCK_SKIPS.load(core::sync::atomic::Ordering::Relaxed);
        loom::model(f);
        assert!(
            CLAIM_LOCK_SKIPS.load(core::sync::atomic::Ordering::Relaxed) > before,
            "no explored interleaving passed a held line"
        );
    }
}
