//! The cros_ec chardev through real files: version read, event mask and injected events,
//! blocking and non-blocking reads, poll, READMEM, XCMD (header and fixed-size forms), bad ioctls.

mod common;

use std::time::{Duration, Instant};

use common::*;
use revocable_devfs::cros_ec::chardev::{
    IOCEVENTMASK, IOCRDMEM, IOCXCMD, IOCXCMD_FIXED, READMEM_SIZE, XCMD_HEADER,
};
use revocable_devfs::cros_ec::ec::{cmd, res};

#[test]
fn version_read_then_eof() {
    let Some(m) = Mounted::new("ec-version") else {
        return;
    };
    let fd = open(&m.path("cros_ec"), libc::O_RDONLY).unwrap();
    let v = String::from_utf8(read(&fd, 4096).unwrap()).unwrap();
    let lines: Vec<_> = v.lines().collect();
    assert_eq!(lines.len(), 4, "{v:?}");
    assert_eq!(lines[0], "1.0.0");
    assert_eq!(lines[3], "read-write");
    assert!(v.ends_with('\n'));
    assert_eq!(read(&fd, 4096).unwrap(), b"", "EOF after the version");
    // `cat` sees the same text once. (As with the kernel driver, the whole text comes from the
    // first read only: a reader with a tiny first buffer gets a prefix, then EOF.)
    let out = std::process::Command::new("cat")
        .arg(m.path("cros_ec"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), v);
    // A short read gets a prefix; seeking is not supported (stream file).
    let fd = open(&m.path("cros_ec"), libc::O_RDONLY).unwrap();
    assert_eq!(read(&fd, 3).unwrap(), b"1.0");
}

#[test]
fn events_masked_nonblocking_and_blocking() {
    let Some(m) = Mounted::new("ec-events") else {
        return;
    };
    let fd = ec_with_mask(&m, libc::O_RDONLY | libc::O_NONBLOCK, (1 << 1) | (1 << 3));
    assert_eq!(read(&fd, 64), Err(libc::EAGAIN));
    m.control("event cros_ec 2 aa\n").unwrap(); // not in the mask: dropped
    m.control("event cros_ec 3 0102\nevent cros_ec 1\n")
        .unwrap();
    assert_eq!(
        read(&fd, 0).unwrap(),
        b"",
        "zero-length read consumes nothing"
    );
    assert_eq!(read(&fd, 64).unwrap(), [3, 1, 2]);
    assert_eq!(read(&fd, 64).unwrap(), [1]);
    assert_eq!(read(&fd, 64), Err(libc::EAGAIN));
    // Truncation to the read length.
    m.control("event cros_ec 3 0a0b0c\n").unwrap();
    assert_eq!(read(&fd, 2).unwrap(), [3, 0x0a]);
    assert_eq!(
        read(&fd, 64),
        Err(libc::EAGAIN),
        "the rest of a truncated event is gone"
    );

    // A blocking read is woken by an event injected later.
    let bfd = ec_with_mask(&m, libc::O_RDONLY, 1 << 5);
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        (read(&bfd, 64), t0.elapsed())
    });
    let stats = m.fs.stats().clone();
    m.wait_until("reader parked", || {
        stats.parked_reads.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    std::thread::sleep(Duration::from_millis(50));
    m.control("event cros_ec 5 ff\n").unwrap();
    let (r, took) = t.join().unwrap();
    assert_eq!(r.unwrap(), [5, 0xff]);
    assert!(
        took >= Duration::from_millis(40),
        "the read really blocked ({took:?})"
    );
}

#[test]
fn poll_reports_queued_events() {
    let Some(m) = Mounted::new("ec-poll") else {
        return;
    };
    let fd = ec_with_mask(&m, libc::O_RDONLY, 1 << 4);
    assert_eq!(poll1(&fd, libc::POLLIN, 50), 0);
    let t = std::thread::spawn({
        let p = m.path("control");
        move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(p, "event cros_ec 4 01\n").unwrap();
        }
    });
    let t0 = Instant::now();
    let r = poll1(&fd, libc::POLLIN, 5000);
    t.join().unwrap();
    assert_eq!(
        r & (libc::POLLIN | libc::POLLRDNORM),
        libc::POLLIN,
        "revents {r:#x}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(read(&fd, 8).unwrap(), [4, 1]);
    assert_eq!(poll1(&fd, libc::POLLIN, 0), 0);
}

fn readmem(fd: &std::os::fd::OwnedFd, offset: u32, bytes: u32) -> Result<(i32, Vec<u8>), i32> {
    let mut b = vec![0u8; READMEM_SIZE];
    b[..4].copy_from_slice(&offset.to_le_bytes());
    b[4..8].copy_from_slice(&bytes.to_le_bytes());
    let r = ioctl_buf(fd, IOCRDMEM, &mut b)?;
    Ok((r, b[8..8 + r as usize].to_vec()))
}

fn xcmd_fixed(
    fd: &std::os::fd::OwnedFd,
    command: u32,
    params: &[u8],
    insize: u32,
) -> Result<(i32, u32, Vec<u8>), i32> {
    let mut b = vec![0u8; XCMD_HEADER + 248];
    b[4..8].copy_from_slice(&command.to_le_bytes());
    b[8..12].copy_from_slice(&(params.len() as u32).to_le_bytes());
    b[12..16].copy_from_slice(&insize.to_le_bytes());
    b[16..20].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
    b[20..20 + params.len()].copy_from_slice(params);
    let r = ioctl_buf(fd, IOCXCMD_FIXED, &mut b)?;
    let result = u32::from_le_bytes(b[16..20].try_into().unwrap());
    Ok((r, result, b[20..20 + r as usize].to_vec()))
}

#[test]
fn readmem_and_commands() {
    let Some(m) = Mounted::new("ec-ioctl") else {
        return;
    };
    let fd = open(&m.path("cros_ec"), libc::O_RDWR).unwrap();
    assert_eq!(readmem(&fd, 0x20, 2).unwrap(), (2, b"EC".to_vec()));
    assert_eq!(readmem(&fd, 0, 255).unwrap().0, 255);
    assert_eq!(
        readmem(&fd, 0x40, 0).unwrap().1,
        b"revocable-ec",
        "string mode"
    );
    assert_eq!(readmem(&fd, 250, 10), Err(libc::EINVAL));
    assert_eq!(readmem(&fd, 255, 1), Err(libc::EINVAL));

    let (n, result, data) = xcmd_fixed(&fd, cmd::HELLO, &0xa0b0_c0d0u32.to_le_bytes(), 4).unwrap();
    assert_eq!((n, result), (4, res::SUCCESS));
    assert_eq!(data, 0xa1b2_c3d4u32.to_le_bytes());
    let (n, result, data) = xcmd_fixed(&fd, cmd::GET_VERSION, &[], 100).unwrap();
    assert_eq!((n, result), (100, res::SUCCESS));
    assert!(data.starts_with(b"revocable_v1.0.0-ro\0"));
    assert_eq!(
        xcmd_fixed(&fd, 0x4242, &[], 0).unwrap().1,
        res::INVALID_COMMAND
    );
    assert_eq!(
        xcmd_fixed(&fd, cmd::HELLO, &[], 249),
        Err(libc::EINVAL),
        "oversize insize"
    );

    // Header form (the kernel number): runs commands without payload, rejects oversize.
    let mut h = [0u8; XCMD_HEADER];
    h[4..8].copy_from_slice(&0x4242u32.to_le_bytes());
    assert_eq!(ioctl_buf(&fd, IOCXCMD, &mut h), Ok(0));
    assert_eq!(
        u32::from_le_bytes(h[16..20].try_into().unwrap()),
        res::INVALID_COMMAND
    );
    h[8..12].copy_from_slice(&100_000u32.to_le_bytes());
    assert_eq!(ioctl_buf(&fd, IOCXCMD, &mut h), Err(libc::EINVAL));
    h[8..12].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(
        ioctl_buf(&fd, IOCXCMD, &mut h),
        Err(libc::EFAULT),
        "payload unreachable in header form"
    );
}

#[test]
fn bad_ioctls() {
    let Some(m) = Mounted::new("ec-badioctl") else {
        return;
    };
    let fd = open(&m.path("cros_ec"), libc::O_RDWR).unwrap();
    // Another type: ENOTTY (TCGETS reaches the driver on a FUSE regular file).
    let mut b = [0u8; 64];
    assert_eq!(ioctl_buf(&fd, 0x5401, &mut b), Err(libc::ENOTTY));
    assert_eq!(ioctl_val(&fd, 0x0000_ab02, 0), Err(libc::ENOTTY));
    // Right type, unknown number or wrong size: ENOTTY.
    assert_eq!(ioctl_val(&fd, 0x0000_ec09, 0), Err(libc::ENOTTY));
    assert_eq!(ioctl_buf(&fd, 0xc008_ec01, &mut b), Err(libc::ENOTTY));
    // EVENTMASK is a value ioctl.
    assert_eq!(ioctl_val(&fd, IOCEVENTMASK, 0), Ok(0));
}

#[test]
fn fcntl_nonblock_changes_are_honoured() {
    let Some(m) = Mounted::new("ec-fcntl") else {
        return;
    };
    let fd = ec_with_mask(&m, libc::O_RDONLY | libc::O_NONBLOCK, 1 << 2);
    assert_eq!(read(&fd, 8), Err(libc::EAGAIN));
    // Clear O_NONBLOCK after open: reads block again (the server sees the new flags).
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_SETFL, 0) };
    let t = std::thread::spawn(move || read(&fd, 8));
    let stats = m.fs.stats().clone();
    m.wait_until("reader parked", || {
        stats.parked_reads.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    m.control("event cros_ec 2 07\n").unwrap();
    assert_eq!(t.join().unwrap().unwrap(), [2, 7]);
}
