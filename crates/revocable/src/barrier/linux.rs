//! Linux: the heavy barrier, with run-time fallbacks. Readers never change: whichever strategy
//! is in use, it makes every thread of the process pass a full barrier, so the reader's light
//! barrier stays a compiler fence (a reader-side flag check was measured at ~0.5 ns per access
//! here, a 40% slowdown; see the `fence-readers` feature for readers that fence themselves).
//!
//! Chosen once at the first registration, and degraded at run time if a command starts failing
//! (a seccomp filter installed later):
//!
//! 1. `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (Linux ≥ 4.14): IPIs to the CPUs running
//!    this process; ~µs.
//! 2. `membarrier(MEMBARRIER_CMD_GLOBAL)` (Linux ≥ 4.3, the former `MEMBARRIER_CMD_SHARED`):
//!    every thread of every process passes a barrier (the kernel waits for an RCU grace period);
//!    ~ms. This is what liburcu's membarrier flavour uses.
//! 3. *CPU hop*: the revoker moves itself onto every configured CPU and every CPU that a
//!    thread of the process may run on (the union of their affinity masks, from
//!    `/proc/self/task`), one after another (`sched_setaffinity`, checked with `sched_getcpu`),
//!    then restores its mask. A CPU the kernel refuses is skipped unless a thread's mask, read
//!    again, still allows it (without `/proc`, it is taken to run none of our threads). To run on a CPU it must be switched in
//!    there, and a context switch is a full barrier (the scheduler's `smp_mb__after_spinlock`),
//!    so every thread that was running on that CPU has passed one, and one that was not running
//!    is not inside a read section's store→load window (it passed a barrier when it was switched
//!    out). That is the quiescent-state argument `MEMBARRIER_CMD_GLOBAL` itself rests on. If one
//!    of those CPUs is refused to the revoker (threads of one process in different cpusets),
//!    those threads cannot be fenced: the process stops with a message. ~tens of µs per CPU,
//!    more if a CPU is busy; a CPU monopolised by a `SCHED_FIFO` thread with RT throttling off
//!    never lets the revoker in, and the revoke waits for it.
//!
//! If even `sched_setaffinity` is denied there is no barrier we can trust: the process stops with
//! a message (never silently unsound).
//!
//! There is deliberately no `mprotect` TLB-shoot-down fallback: it relies on the kernel sending
//! IPIs for a TLB flush, which arm64 (broadcast TLBI) and recent x86 kernels on AMD (INVLPGB) do
//! not do, so it would silently stop being a barrier exactly where it is needed.

use core::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1 << 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// The strategy in use: only ever moves down the list (1 → 2 → 3).
static MODE: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = 0;
const PRIVATE: u8 = 1;
const GLOBAL: u8 = 2;
const HOP: u8 = 3;

static INIT: Once = Once::new();

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// Chooses the strategy (once per process).
pub(super) fn init() {
    INIT.call_once(|| {
        let mask = membarrier(MEMBARRIER_CMD_QUERY);
        let mode = if mask >= 0
            && mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        {
            PRIVATE
        } else if mask >= 0 && mask & MEMBARRIER_CMD_GLOBAL != 0 {
            GLOBAL
        } else {
            HOP
        };
        // Relaxed: the Once publishes it to every later caller of `init`.
        MODE.store(mode, Ordering::Relaxed);
    });
}

/// Degrades to `to` (never upgrades) after a command failed.
fn degrade(to: u8) {
    MODE.fetch_max(to, Ordering::Relaxed);
}

/// The strategy in use, for diagnostics.
pub(super) fn strategy() -> &'static str {
    init();
    match MODE.load(Ordering::Relaxed) {
        PRIVATE => "membarrier(PRIVATE_EXPEDITED)",
        GLOBAL => "membarrier(GLOBAL) (PRIVATE_EXPEDITED unavailable)",
        _ => "CPU hop via sched_setaffinity (membarrier unavailable)",
    }
}

pub(super) fn heavy() {
    init();
    loop {
        match MODE.load(Ordering::Relaxed) {
            PRIVATE => {
                // Registered and supported: the kernel documents no failure for this command
                // then, but a seccomp filter installed since may deny it.
                if membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 {
                    return;
                }
                degrade(GLOBAL);
            }
            GLOBAL => {
                if membarrier(MEMBARRIER_CMD_GLOBAL) == 0 {
                    return;
                }
                degrade(HOP);
            }
            _ => {
                if let Err(e) = hop() {
                    give_up(e);
                }
                return;
            }
        }
    }
}

/// The CPU hop (see the module docs): visits every CPU that some thread of the process may run
/// on, as the union of the threads' affinity masks (a thread whose mask excludes a CPU cannot be
/// running there; one whose mask changes meanwhile migrates, which is a context switch). A CPU
/// in that union that the kernel refuses to us (threads in different cpusets) is an error: its
/// threads could not be fenced.
fn hop() -> Result<(), std::io::Error> {
    let size = core::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut saved: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `saved` is a valid cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The CPUs to visit: every one the threads' masks allow (where /proc tells), and every
    // configured one besides, since a thread whose mask just changed may still be running where
    // its old mask allowed (the kernel updates the mask before it moves the thread).
    let threads = threads_cpus().ok();
    // SAFETY: sysconf has no preconditions.
    let configured = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as usize;
    let mut result = Ok(());
    for cpu in (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| c < configured || threads.as_ref().is_some_and(|t| is_set(c, t)))
    {
        match visit(cpu, size) {
            Ok(()) => {}
            // Refused (offline, or outside our cpuset): fatal only if a thread of ours may run
            // there, asked again now (it may have gone offline since the first read). Without
            // /proc, a refused CPU is taken to run none of our threads.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if threads_cpus().is_ok_and(|t| is_set(cpu, &t)) {
                    result = Err(e);
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // SAFETY: `saved` is the mask we read above.
    unsafe { libc::sched_setaffinity(0, size, &saved) };
    result
}

/// Runs the calling thread on `cpu` (the kernel migrates the caller before `sched_setaffinity`
/// returns; checked with `sched_getcpu`).
fn visit(cpu: usize, size: usize) -> Result<(), std::io::Error> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut one: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: `one` is a valid cpu_set_t of `size` bytes.
    if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for _ in 0..1000 {
        // SAFETY: no preconditions.
        if unsafe { libc::sched_getcpu() } == cpu as libc::c_int {
            return Ok(());
        }
        // SAFETY: no preconditions.
        unsafe { libc::sched_yield() };
    }
    Err(std::io::Error::other(format!("never ran on CPU {cpu}")))
}

/// Whether `cpu` (< CPU_SETSIZE) is in `set`.
fn is_set(cpu: usize, set: &libc::cpu_set_t) -> bool {
    // SAFETY: `cpu` < CPU_SETSIZE.
    unsafe { libc::CPU_ISSET(cpu, set) }
}

/// The union of the affinity masks of every thread of the process (`/proc/self/task`). Threads
/// started after this read start after the caller's state change, and see it.
fn threads_cpus() -> Result<libc::cpu_set_t, std::io::Error> {
    let size = core::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut all: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: as above.
        let mut mask: libc::cpu_set_t = unsafe { core::mem::zeroed() };
        // SAFETY: `mask` is a valid cpu_set_t of `size` bytes.
        if unsafe { libc::sched_getaffinity(tid, size, &mut mask) } != 0 {
            continue; // the thread exited meanwhile
        }
        for c in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: `c` < CPU_SETSIZE.
            unsafe {
                if libc::CPU_ISSET(c, &mask) {
                    libc::CPU_SET(c, &mut all);
                }
            }
        }
    }
    Ok(all)
}

fn give_up(e: std::io::Error) -> ! {
    eprintln!(
        "revocable: no heavy barrier is usable: membarrier is denied and the revoking thread \
         cannot visit every CPU a thread of this process may run on (sched_setaffinity: {e}); \
         readers cannot be fenced from the revoker on this system. Build with the \
         `fence-readers` feature of the `revocable` crate. Aborting."
    );
    std::process::abort();
}
