//! The `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` system call, the baseline for `revoke()`.
//!
//! An asymmetric-fence revoke issues one process-wide memory barrier; its cost is the floor a
//! revoke with no holders is compared against. The process must register once
//! (`MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`) before using the command.

use std::io;

const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// Registers this process for private expedited membarrier (idempotent).
///
/// ```
/// # if cfg!(target_os = "linux") {
/// revocable_bench::membarrier::register().unwrap();
/// revocable_bench::membarrier::private_expedited().unwrap();
/// # }
/// ```
pub fn register() -> io::Result<()> {
    membarrier(CMD_REGISTER_PRIVATE_EXPEDITED)
}

/// Issues one private expedited membarrier (a full fence on every CPU running this process).
pub fn private_expedited() -> io::Result<()> {
    membarrier(CMD_PRIVATE_EXPEDITED)
}

#[cfg(target_os = "linux")]
fn membarrier(cmd: libc::c_int) -> io::Result<()> {
    // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no user memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
fn membarrier(_cmd: libc::c_int) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "membarrier is Linux-only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn register_then_barrier() {
        super::register().unwrap();
        super::private_expedited().unwrap();
    }
}
