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
//! 3. *CPU hop*: the revoker moves itself onto every CPU it may run on, one after another
//!    (`sched_setaffinity`), then restores its mask. To run on a CPU it must be switched in
//!    there, and a context switch is a full barrier (the scheduler's `smp_mb__after_spinlock`),
//!    so every thread that was running on that CPU has passed one, and one that was not running
//!    is not inside a read section's store→load window (it passed a barrier when it was switched
//!    out). That is the quiescent-state argument `MEMBARRIER_CMD_GLOBAL` itself rests on. A CPU
//!    the kernel refuses (`EINVAL`: offline, or outside the cgroup's cpuset) cannot run our
//!    threads either. ~tens of µs per CPU, more if a CPU is busy.
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

/// The CPU hop (see the module docs).
fn hop() -> Result<(), std::io::Error> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut saved: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    let size = core::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `saved` is a valid cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: sysconf has no preconditions.
    let configured = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as usize;
    let cpus = configured.min(libc::CPU_SETSIZE as usize);
    let mut visited = 0;
    let mut result = Ok(());
    for cpu in 0..cpus {
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { core::mem::zeroed() };
        // SAFETY: `cpu` < CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: `one` is a valid cpu_set_t of `size` bytes.
        if unsafe { libc::sched_setaffinity(0, size, &one) } == 0 {
            // The kernel migrates the caller before returning; make sure we did run there.
            for _ in 0..1000 {
                // SAFETY: no preconditions.
                if unsafe { libc::sched_getcpu() } == cpu as libc::c_int {
                    break;
                }
                // SAFETY: no preconditions.
                unsafe { libc::sched_yield() };
            }
            visited += 1;
            continue;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            result = Err(e);
            break;
        }
    }
    // SAFETY: `saved` is the mask we read above.
    unsafe { libc::sched_setaffinity(0, size, &saved) };
    if result.is_ok() && visited == 0 {
        result = Err(std::io::Error::other("no CPU accepted the revoker"));
    }
    result
}

fn give_up(e: std::io::Error) -> ! {
    eprintln!(
        "revocable: no heavy barrier is usable: membarrier is denied and so is moving the revoking \
         thread across CPUs (sched_setaffinity: {e}); readers cannot be fenced from the revoker \
         on this system. Build with the `fence-readers` feature of the `revocable` crate. Aborting."
    );
    std::process::abort();
}
