//! Linux heavy barrier: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, or the `mprotect` trick where
//! membarrier is unavailable.

use std::sync::{Mutex, Once};

#[cfg(test)]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::{AtomicU8, Ordering};

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

const UNSET: u8 = 0;
const MEMBARRIER: u8 = 1;
const MPROTECT: u8 = 2;

/// The chosen strategy; written once under `INIT`, read with Acquire by every heavy barrier.
static STRATEGY: AtomicU8 = AtomicU8::new(UNSET);
static INIT: Once = Once::new();
#[cfg(test)]
pub(super) static HEAVY_COUNT: AtomicU64 = AtomicU64::new(0);

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

pub(super) fn init() {
    INIT.call_once(|| {
        let mask = membarrier(MEMBARRIER_CMD_QUERY);
        let s = if mask >= 0
            && mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        {
            MEMBARRIER
        } else {
            MPROTECT
        };
        STRATEGY.store(s, Ordering::Release);
    });
}

pub(super) fn strategy() -> &'static str {
    init();
    match STRATEGY.load(Ordering::Acquire) {
        MEMBARRIER => "membarrier(PRIVATE_EXPEDITED)",
        _ => "mprotect",
    }
}

pub(super) fn heavy() {
    #[cfg(test)]
    HEAVY_COUNT.fetch_add(1, Ordering::Relaxed);
    init();
    if STRATEGY.load(Ordering::Acquire) == MEMBARRIER
        && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0
    {
        return;
    }
    mprotect_barrier();
}

/// A page whose protection we flip: downgrading the protection of a page that is present in the
/// TLB of other CPUs running this process forces the kernel to shoot it down with IPIs, and taking
/// an IPI is a full barrier on that CPU.
struct Page(*mut u8);
// SAFETY: the pointer is only used under the mutex below.
unsafe impl Send for Page {}

fn mprotect_barrier() {
    static PAGE: Mutex<Option<Page>> = Mutex::new(None);
    let mut page = PAGE.lock().unwrap_or_else(|e| e.into_inner());
    let p = match &*page {
        Some(p) => p.0,
        None => {
            // SAFETY: an anonymous private mapping of one page; checked for failure below.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                // No page, no IPIs: a fence is all that is left (documented fallback).
                core::sync::atomic::fence(Ordering::SeqCst);
                return;
            }
            *page = Some(Page(p.cast()));
            p.cast()
        }
    };
    // SAFETY: `p` is our own page of 4096 bytes; making it writable, touching it so it is present
    // in this CPU's TLB, then revoking access, is the documented IPI trick; nothing else uses it.
    unsafe {
        libc::mprotect(p.cast(), 4096, libc::PROT_READ | libc::PROT_WRITE);
        core::ptr::write_volatile(p, 1);
        libc::mprotect(p.cast(), 4096, libc::PROT_NONE);
    }
}
