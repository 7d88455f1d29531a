//! io_uring and splice(2) clients of `cros_ec` see what read(2) sees where the kernel lets them:
//! data, a blocked read woken by an event, `ENODEV` after an unplug (also for a read already
//! waiting). Device files report `st_size` 4096 (`DEVICE_FILE_SIZE`): with 0 the kernel answered
//! every one of these reads with end of file before asking the server. What the kernel makes
//! different is pinned too (see the README's "Differences from a kernel character device").

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use io_uring::{opcode, types, IoUring};
use revocable_devfs::cros_ec::chardev::IOCEVENTMASK;
use revocable_devfs::node::DEVICE_FILE_SIZE;

/// One io_uring read in flight on its own ring; the buffer lives as long as the request.
struct UringRead {
    ring: IoUring,
    buf: Vec<u8>,
    done: Option<i32>,
}

impl UringRead {
    /// Submits a read of `len` bytes at the file position (offset -1).
    fn submit(fd: &OwnedFd, len: usize) -> UringRead {
        let mut ring = IoUring::new(2).expect("io_uring_setup");
        let mut buf = vec![0u8; len];
        let e = opcode::Read::new(types::Fd(fd.as_raw_fd()), buf.as_mut_ptr(), len as u32)
            .offset(u64::MAX)
            .build()
            .user_data(7);
        // SAFETY: the fd is open and `buf` is owned by the returned value, which waits for the
        // completion (or drops the ring, cancelling the request) before freeing it.
        unsafe { ring.submission().push(&e).expect("submission queue full") };
        ring.submit().expect("io_uring_enter");
        UringRead {
            ring,
            buf,
            done: None,
        }
    }

    /// The result once completed within `timeout`: the bytes, or the errno.
    fn wait(&mut self, timeout: Duration) -> Option<Result<Vec<u8>, i32>> {
        let t = Instant::now();
        while self.done.is_none() {
            if let Some(c) = self.ring.completion().next() {
                assert_eq!(c.user_data(), 7);
                self.done = Some(c.result());
                break;
            }
            if t.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let r = self.done?;
        Some(if r < 0 {
            Err(-r)
        } else {
            Ok(self.buf[..r as usize].to_vec())
        })
    }
}

impl Drop for UringRead {
    fn drop(&mut self) {
        // Dropping the ring cancels a request still in flight; wait for it so that `buf` is
        // not freed under the kernel (a request parked in the server is answered at unmount).
        if self.done.is_none() {
            let _ = self.wait(Duration::from_secs(5));
        }
    }
}

fn uring(fd: &OwnedFd, len: usize) -> Result<Vec<u8>, i32> {
    UringRead::submit(fd, len)
        .wait(Duration::from_secs(5))
        .expect("io_uring read did not complete")
}

/// splice(2) from `fd` into a pipe, then the bytes from the pipe.
fn splice(fd: &OwnedFd, len: usize) -> Result<Vec<u8>, i32> {
    let mut p = [0; 2];
    // SAFETY: p is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: plain syscall on open fds; null offsets use the file position.
    let n = unsafe {
        libc::splice(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            w.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            0,
        )
    };
    if n < 0 {
        return Err(errno());
    }
    read(&r, n as usize)
}

fn ec_events(m: &Mounted, flags: i32) -> OwnedFd {
    let fd = open(&m.path("cros_ec"), flags).expect("open cros_ec");
    ioctl_val(&fd, IOCEVENTMASK, 1 << 4).expect("EVENTMASK");
    fd
}

#[test]
fn device_files_report_one_page() {
    let Some(m) = Mounted::new("aio-size") else {
        return;
    };
    let md = std::fs::metadata(m.path("cros_ec")).unwrap();
    assert_eq!(md.len(), DEVICE_FILE_SIZE);
    // A reader that sizes its buffer from st_size still reads exactly the device's answer.
    let text = std::fs::read(m.path("cros_ec")).unwrap();
    assert!(text.starts_with(b"1.0.0\n"), "{text:?}");
}

/// io_uring: an event (buffer of the event's size), a read waiting for the next event, and
/// `ENODEV` both for a read waiting at the unplug and for one submitted after it.
#[test]
fn io_uring_sees_data_wakeups_and_enodev() {
    let Some(m) = Mounted::new("aio-uring") else {
        return;
    };
    let fd = ec_events(&m, libc::O_RDONLY);
    m.control("event cros_ec 4 0102\n").unwrap();
    assert_eq!(uring(&fd, 3), Ok(vec![4, 1, 2]));

    let mut waiting = UringRead::submit(&fd, 2);
    assert_eq!(
        waiting.wait(Duration::from_millis(100)),
        None,
        "no event yet"
    );
    m.control("event cros_ec 4 09\n").unwrap();
    assert_eq!(waiting.wait(Duration::from_secs(5)), Some(Ok(vec![4, 9])));

    let mut waiting = UringRead::submit(&fd, 8);
    assert_eq!(waiting.wait(Duration::from_millis(100)), None);
    m.control("unbind cros_ec\n").unwrap();
    assert_eq!(
        waiting.wait(Duration::from_secs(5)),
        Some(Err(libc::ENODEV)),
        "a waiting io_uring read is woken by the unplug"
    );
    assert_eq!(uring(&fd, 8), Err(libc::ENODEV));
    assert_eq!(read(&fd, 8), Err(libc::ENODEV));
}

/// splice(2) (and sendfile, which splices): the version text, `EAGAIN` on a non-blocking file
/// without an event, an event, a blocked splice woken by an event, and `ENODEV` after unplug.
#[test]
fn splice_sees_data_eagain_and_enodev() {
    let Some(m) = Mounted::new("aio-splice") else {
        return;
    };
    let ver = open(&m.path("cros_ec"), libc::O_RDONLY).unwrap();
    let text = splice(&ver, 4096).unwrap();
    assert!(text.starts_with(b"1.0.0\n"), "{text:?}");

    let nb = ec_events(&m, libc::O_RDONLY | libc::O_NONBLOCK);
    assert_eq!(splice(&nb, 64), Err(libc::EAGAIN));
    m.control("event cros_ec 4 0102\n").unwrap();
    assert_eq!(splice(&nb, 64), Ok(vec![4, 1, 2]));

    let blk = ec_events(&m, libc::O_RDONLY);
    let t = std::thread::spawn(move || (splice(&blk, 64), blk));
    std::thread::sleep(Duration::from_millis(100));
    m.control("event cros_ec 4 07\n").unwrap();
    let (r, _blk) = t.join().unwrap();
    assert_eq!(r, Ok(vec![4, 7]));

    let gone = ec_events(&m, libc::O_RDONLY);
    m.control("unbind cros_ec\n").unwrap();
    assert_eq!(splice(&gone, 64), Err(libc::ENODEV));
}

/// The kernel splices a FUSE file through the page cache: after a short read it shrinks the
/// file size to the bytes read, so a second splice on the same open file sees end of file where
/// read(2) sees the next event. Pinned here; documented in the README.
#[test]
fn second_splice_after_a_short_read_is_eof() {
    let Some(m) = Mounted::new("aio-splice2") else {
        return;
    };
    let fd = ec_events(&m, libc::O_RDONLY | libc::O_NONBLOCK);
    m.control("event cros_ec 4 01\nevent cros_ec 4 02\n")
        .unwrap();
    assert_eq!(splice(&fd, 64), Ok(vec![4, 1]));
    assert_eq!(
        splice(&fd, 64),
        Ok(vec![]),
        "page-cache splice: end of file"
    );
    assert_eq!(
        read(&fd, 64),
        Ok(vec![4, 2]),
        "read(2) still sees the event"
    );
}

/// io_uring never reports `EAGAIN` for a FUSE file: without `FMODE_NOWAIT` it waits for poll
/// readiness instead, also with `O_NONBLOCK`. And it continues a short read of a regular file
/// until the buffer is full, so a buffer larger than the event completes only at the next
/// readiness (here: the unplug), with the bytes read so far.
#[test]
fn io_uring_waits_instead_of_eagain_and_fills_the_buffer() {
    let Some(m) = Mounted::new("aio-uring-nb") else {
        return;
    };
    let nb = ec_events(&m, libc::O_RDONLY | libc::O_NONBLOCK);
    assert_eq!(read(&nb, 8), Err(libc::EAGAIN));
    let mut waiting = UringRead::submit(&nb, 8);
    assert_eq!(waiting.wait(Duration::from_millis(200)), None, "no EAGAIN");
    m.control("event cros_ec 4 0102\n").unwrap();
    assert_eq!(
        waiting.wait(Duration::from_millis(200)),
        None,
        "3 of 8 bytes: the read goes on"
    );
    m.control("unbind cros_ec\n").unwrap();
    assert_eq!(
        waiting.wait(Duration::from_secs(5)),
        Some(Ok(vec![4, 1, 2]))
    );
}

/// POSIX AIO: glibc runs `pread` on a helper thread and, on a stream's ESPIPE, `read`; a
/// synchronous read is never clipped to the file size, so it sees what read(2) sees.
fn posix_aio_read(fd: &OwnedFd, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    // SAFETY: an all-zero aiocb is a valid starting value.
    let mut cb: libc::aiocb = unsafe { std::mem::zeroed() };
    cb.aio_fildes = fd.as_raw_fd();
    cb.aio_buf = buf.as_mut_ptr().cast();
    cb.aio_nbytes = len;
    // SAFETY: cb and buf outlive the request: we wait for its completion below.
    assert_eq!(unsafe { libc::aio_read(&mut cb) }, 0);
    let t = Instant::now();
    // SAFETY: cb is the submitted control block.
    while unsafe { libc::aio_error(&cb) } == libc::EINPROGRESS {
        assert!(t.elapsed() < Duration::from_secs(5), "aio_read hangs");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: as above.
    let err = unsafe { libc::aio_error(&cb) };
    // SAFETY: the request completed; aio_return collects it once.
    let r = unsafe { libc::aio_return(&mut cb) };
    if r < 0 {
        return Err(err);
    }
    buf.truncate(r as usize);
    Ok(buf)
}

#[test]
fn posix_aio_sees_data_and_enodev() {
    let Some(m) = Mounted::new("aio-posix") else {
        return;
    };
    let fd = open(&m.path("cros_ec"), libc::O_RDONLY).unwrap();
    let text = posix_aio_read(&fd, 64).unwrap();
    assert!(text.starts_with(b"1.0.0\n"), "{text:?}");
    m.control("unbind cros_ec\n").unwrap();
    assert_eq!(posix_aio_read(&fd, 64), Err(libc::ENODEV));
}
