//! What a client of a devfs device file sees differently from a kernel character device, because
//! the kernel's FUSE client decides it before (or instead of) asking the server. Each test pins
//! what this kernel does; the README's "Differences from a kernel character device" gives the
//! reasons.

mod common;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::*;

fn exit_code(pid: libc::pid_t) -> i32 {
    let Some(st) = wait_pid(pid, Duration::from_secs(5)) else {
        kill_reap(pid);
        panic!("child did not finish");
    };
    assert!(libc::WIFEXITED(st), "status {st:#x}");
    libc::WEXITSTATUS(st)
}

/// A blocked read interrupted by a signal whose handler has `SA_RESTART`, or by SIGSTOP then
/// SIGCONT, returns EINTR: the server can only answer an interrupted request with an errno, and
/// the kernel refuses the restart codes (`ERESTARTSYS`) from a server. A kernel chardev's
/// `wait_event_interruptible` would restart the read in both cases.
#[test]
fn interrupted_read_is_eintr_even_with_sa_restart_or_sigstop() {
    let Some(m) = Mounted::new("diff-restart") else {
        return;
    };
    let path = CString::new(m.path("cros_ec").as_os_str().as_bytes()).unwrap();
    let pid = fork_child(|| {
        install_noop_handler(libc::SIGUSR1, libc::SA_RESTART);
        blocked_read(&path)
    });
    wait_parked(&m, 1);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    assert_eq!(exit_code(pid), libc::EINTR, "SA_RESTART handler");

    let pid = fork_child(|| blocked_read(&path));
    wait_parked(&m, 2);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(exit_code(pid), libc::EINTR, "SIGSTOP/SIGCONT");
}

/// Zero-length reads never reach the server: 0 at once, also after an unplug (a kernel
/// chardev's read runs its checks and gives ENODEV) and on an empty non-blocking event queue.
#[test]
fn zero_length_read_is_zero() {
    let Some(m) = Mounted::new("diff-zero") else {
        return;
    };
    let fd = ec_with_mask(&m, libc::O_RDONLY | libc::O_NONBLOCK, 1);
    assert_eq!(read(&fd, 1), Err(libc::EAGAIN));
    assert_eq!(read(&fd, 0), Ok(vec![]));
    m.control("unbind cros_ec\n").unwrap();
    assert_eq!(read(&fd, 1), Err(libc::ENODEV));
    assert_eq!(read(&fd, 0), Ok(vec![]));
}

/// FIONREAD is answered by the VFS for a regular file (size minus position), never by the
/// server: cros_ec reports its `st_size` whatever is queued (a kernel chardev without FIONREAD
/// gives ENOTTY).
#[test]
fn fionread_is_the_file_size() {
    let Some(m) = Mounted::new("diff-fionread") else {
        return;
    };
    let fd = ec_with_mask(&m, libc::O_RDONLY | libc::O_NONBLOCK, 1);
    let mut n: libc::c_int = -1;
    // SAFETY: FIONREAD writes one int through the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0);
    assert_eq!(
        n as u64,
        revocable_devfs::node::DEVICE_FILE_SIZE,
        "nothing is queued"
    );
}

/// mmap: MAP_SHARED fails with ENODEV (a direct-I/O FUSE file without the server's
/// `FUSE_DIRECT_IO_ALLOW_MMAP`); MAP_PRIVATE succeeds and its first touch reads the page through
/// the page cache, i.e. one read of the device (the kernel's cros_ec has no mmap: ENODEV). On
/// `revocable_test/consumer` (size 0) the touch is SIGBUS.
#[test]
fn mmap_shared_fails_private_reads_or_sigbus() {
    let Some(m) = Mounted::new("diff-mmap") else {
        return;
    };
    let ec = open(&m.path("cros_ec"), libc::O_RDONLY).unwrap();
    // SAFETY: mapping a file we opened; the result is checked and unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            ec.as_raw_fd(),
            0,
        )
    };
    assert_eq!((p, errno()), (libc::MAP_FAILED, libc::ENODEV));

    let touch = |path: CString| {
        fork_child(move || {
            // SAFETY: raw system calls in the child; the mapping is one page of an open file.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    return 100;
                }
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    fd,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return 101;
                }
                i32::from(std::ptr::read_volatile(p.cast::<u8>()))
            }
        })
    };
    let pid = touch(CString::new(m.path("cros_ec").as_os_str().as_bytes()).unwrap());
    assert_eq!(
        exit_code(pid),
        i32::from(b'1'),
        "the version text, via the page cache"
    );

    let prov = open(&m.path("revocable_test/provider"), libc::O_WRONLY).unwrap();
    write(&prov, b"abc").unwrap();
    let pid =
        touch(CString::new(m.path("revocable_test/consumer").as_os_str().as_bytes()).unwrap());
    let Some(st) = wait_pid(pid, Duration::from_secs(5)) else {
        kill_reap(pid);
        panic!("child did not finish");
    };
    assert!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGBUS,
        "status {st:#x}"
    );
}
