//! Hot unplug under real clients: blocked readers and pollers are woken (ENODEV /
//! POLLERR|POLLHUP) within a bound, later operations and opens fail with ENODEV, a re-bind serves
//! new opens while old descriptors stay dead, and every open is released exactly once — also
//! after a lazy unmount with files still open.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use revocable_devfs::cros_ec::chardev::{IOCEVENTMASK, IOCRDMEM, READMEM_SIZE};
use revocable_devfs::fuse::EndReason;

const WAKE_BOUND: Duration = Duration::from_secs(2);

#[test]
fn unplug_wakes_blocked_clients_then_rebind() {
    let Some(m) = Mounted::new("unplug") else {
        return;
    };
    let readers = 3;
    let pollers = 2;
    let go = Arc::new(Barrier::new(readers + pollers + 1));
    let mut threads = Vec::new();
    for _ in 0..readers {
        let fd = ec_with_mask(&m, libc::O_RDONLY, 1 << 1);
        let go = go.clone();
        threads.push(std::thread::spawn(move || {
            go.wait();
            let r = read(&fd, 64);
            (r.map(|_| 0).unwrap_or_else(|e| e), Instant::now(), fd)
        }));
    }
    for _ in 0..pollers {
        let fd = ec_with_mask(&m, libc::O_RDONLY, 1 << 1);
        let go = go.clone();
        threads.push(std::thread::spawn(move || {
            go.wait();
            let r = poll1(&fd, libc::POLLIN, 10_000);
            (i32::from(r), Instant::now(), fd)
        }));
    }
    go.wait();
    let stats = m.fs.stats().clone();
    m.wait_until("readers parked", || {
        stats.parked_reads.load(SeqCst) >= readers as u64
    });
    std::thread::sleep(Duration::from_millis(100)); // let the pollers reach the server
    let t0 = Instant::now();
    m.control("unbind cros_ec\n").unwrap();
    let mut fds = Vec::new();
    for (i, t) in threads.into_iter().enumerate() {
        let (r, at, fd) = t.join().unwrap();
        let delay = at.saturating_duration_since(t0);
        assert!(delay < WAKE_BOUND, "client {i} woke after {delay:?}");
        if i < readers {
            assert_eq!(r, libc::ENODEV, "reader {i}");
        } else {
            let ev = r as i16;
            assert_eq!(
                ev & (libc::POLLERR | libc::POLLHUP),
                libc::POLLERR | libc::POLLHUP,
                "poller {i}: {ev:#x}"
            );
        }
        fds.push(fd);
    }
    assert_eq!(
        std::fs::read_to_string(m.path("control")).unwrap(),
        "cros_ec unbound\nrevocable_test bound\n"
    );
    // Every later operation on the old files fails; so does open.
    let old = &fds[0];
    assert_eq!(read(old, 8), Err(libc::ENODEV));
    assert_eq!(ioctl_val(old, IOCEVENTMASK, 1), Err(libc::ENODEV));
    let mut b = vec![0u8; READMEM_SIZE];
    assert_eq!(ioctl_buf(old, IOCRDMEM, &mut b), Err(libc::ENODEV));
    assert_eq!(
        poll1(old, libc::POLLIN, 0) & (libc::POLLERR | libc::POLLHUP),
        libc::POLLERR | libc::POLLHUP
    );
    assert_eq!(
        open(&m.path("cros_ec"), libc::O_RDWR).err(),
        Some(libc::ENODEV)
    );
    assert_eq!(
        m.control("event cros_ec 1 00\n")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENODEV)
    );
    // Re-plug: new opens work, old descriptors stay dead.
    m.control("bind cros_ec\n").unwrap();
    let new = open(&m.path("cros_ec"), libc::O_RDWR).unwrap();
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    b[..4].copy_from_slice(&0x20u32.to_le_bytes());
    assert_eq!(ioctl_buf(&new, IOCRDMEM, &mut b), Ok(2));
    assert_eq!(read(old, 8), Err(libc::ENODEV));
    drop(fds);
    drop(new);
    m.wait_until("every open released", || {
        stats.opens.load(SeqCst) == stats.releases.load(SeqCst) && m.fs.open_files() == 0
    });
}

#[test]
fn releases_after_lazy_umount() {
    let Some(mut m) = Mounted::new("lazy") else {
        return;
    };
    let fds: Vec<_> = (0..5)
        .map(|i| {
            if i % 2 == 0 {
                ec_with_mask(&m, libc::O_RDONLY, 1)
            } else {
                open(&m.path("control"), libc::O_RDONLY).unwrap()
            }
        })
        .collect();
    let close_early = open(&m.path("cros_ec"), libc::O_RDONLY).unwrap();
    drop(close_early);
    let stats = m.fs.stats().clone();
    m.wait_until("first release", || stats.releases.load(SeqCst) == 1);
    let c = std::ffi::CString::new(m.dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is a valid path; a lazy unmount of our own mount.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
    drop(fds); // the last close: its RELEASE never reaches the server; the connection ends
    let stop = m.fs.stopper();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        stop.stop();
    });
    let reason = m.fs.join();
    assert_eq!(
        reason,
        EndReason::Disconnected,
        "the kernel ended the session"
    );
    let (o, r, e) = (
        stats.opens.load(SeqCst),
        stats.releases.load(SeqCst),
        stats.releases_at_end.load(SeqCst),
    );
    assert_eq!(o, 6);
    assert_eq!(
        r + e,
        o,
        "each open released exactly once ({r} by RELEASE, {e} at session end)"
    );
    assert_eq!(m.fs.open_files(), 0);
    drop(watchdog); // detached; it only stops an already ended session
}

#[test]
fn external_umount_ends_session() {
    let Some(mut m) = Mounted::new("extumount") else {
        return;
    };
    assert!(m.path("control").exists());
    let c = std::ffi::CString::new(m.dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is a valid path; an ordinary unmount of our own idle mount.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), 0) }, 0);
    let stop = m.fs.stopper();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        stop.stop();
    });
    assert_eq!(m.fs.join(), EndReason::Disconnected);
    assert!(!m.path("control").exists(), "mount gone");
}
