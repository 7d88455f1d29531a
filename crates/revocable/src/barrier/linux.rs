//! Linux: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` as the heavy barrier.
//!
//! membarrier exists since Linux 4.14 and is allowed by common seccomp profiles. Where it is not
//! usable, no heavy barrier can be trusted, so the process stops with a message naming the cargo
//! feature `fence-readers` (readers then issue a real fence and need no heavy barrier). A run-time
//! switch was measured instead: checking a flag on the read path cost ~0.5 ns per access here, a
//! 40% slowdown for every user to serve a kernel nobody should run.
//!
//! There is deliberately no `mprotect` TLB-shoot-down fallback: it relies on the kernel sending
//! IPIs for a TLB flush, which arm64 (broadcast TLBI) and recent x86 kernels on AMD (INVLPGB) do
//! not do, so it would silently stop being a barrier exactly where it is needed.

use std::sync::Once;

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

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

fn give_up(what: &str) -> ! {
    let err = std::io::Error::last_os_error();
    eprintln!(
        "revocable: {what} ({err}): readers cannot be fenced from the revoker on this system; \
         build with the `fence-readers` feature of the `revocable` crate. Aborting."
    );
    std::process::abort();
}

/// Registers with membarrier (once per process); aborts if it is unusable.
pub(super) fn init() {
    INIT.call_once(|| {
        let mask = membarrier(MEMBARRIER_CMD_QUERY);
        if mask < 0 || mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED == 0 {
            give_up("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is not supported");
        }
        if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 {
            give_up("membarrier registration failed");
        }
    });
}

pub(super) fn heavy() {
    init();
    // Registered and supported: the kernel documents no failure for this command then. Retry a
    // transient one briefly; a barrier we cannot issue would make the protocol unsound.
    for _ in 0..100 {
        if membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 {
            return;
        }
        std::thread::yield_now();
    }
    give_up("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) keeps failing");
}
