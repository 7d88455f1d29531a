//! Client processes and the connection: a blocked client killed with SIGKILL goes away promptly
//! and the server keeps serving; SIGINT interrupts a blocked read (EINTR with a handler, death by
//! the signal without one: Ctrl-C on a blocked reader returns to the shell); a kernel-side
//! connection abort through fusectl ends the server cleanly, releasing what was open; a second
//! devfs on the same directory is refused.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use common::*;
use revocable_devfs::fuse::EndReason;
use revocable_devfs::server::Devfs;

#[test]
fn sigkill_of_blocked_client_is_prompt_and_harmless() {
    let Some(m) = Mounted::new("kill") else {
        return;
    };
    let path = CString::new(m.path("cros_ec").as_os_str().as_bytes()).unwrap();
    let pid = fork_child(|| blocked_read(&path));
    wait_parked(&m, 1);
    let t = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let st = wait_pid(pid, Duration::from_secs(5));
    if st.is_none() {
        kill_reap(pid);
        panic!("SIGKILLed client still blocked after 5 s");
    }
    let st = st.unwrap();
    assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // The server is undisturbed.
    assert_eq!(
        std::fs::read_to_string(m.path("control")).unwrap(),
        "cros_ec bound\nrevocable_test bound\n"
    );
    let fd = ec_with_mask(&m, libc::O_RDONLY | libc::O_NONBLOCK, 1);
    m.control("event cros_ec 0 01\n").unwrap();
    assert_eq!(read(&fd, 8).unwrap(), [0, 1]);
    drop(fd);
    let stats = m.fs.stats().clone();
    m.wait_until("killed client's file released", || {
        stats.opens.load(SeqCst) == stats.releases.load(SeqCst)
    });
    assert_eq!(m.fs.open_files(), 0);
}

#[test]
fn sigint_interrupts_blocked_read() {
    let Some(m) = Mounted::new("sigint") else {
        return;
    };
    let path = CString::new(m.path("cros_ec").as_os_str().as_bytes()).unwrap();
    // With a handler (no SA_RESTART): read returns EINTR.
    let pid = fork_child(|| {
        install_noop_handler(libc::SIGINT, 0);
        blocked_read(&path)
    });
    wait_parked(&m, 1);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let Some(st) = wait_pid(pid, Duration::from_secs(5)) else {
        kill_reap(pid);
        panic!("SIGINT did not interrupt the blocked read");
    };
    assert!(libc::WIFEXITED(st), "status {st:#x}");
    assert_eq!(libc::WEXITSTATUS(st), libc::EINTR);
    // Default disposition (Ctrl-C on a blocked reader): the process dies of SIGINT, promptly.
    let pid = fork_child(|| {
        // SAFETY: restoring the default disposition in the child.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        blocked_read(&path)
    });
    wait_parked(&m, 2);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let Some(st) = wait_pid(pid, Duration::from_secs(5)) else {
        kill_reap(pid);
        panic!("Ctrl-C did not end the blocked reader");
    };
    assert!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGINT,
        "status {st:#x}"
    );
    let stats = m.fs.stats().clone();
    m.wait_until("both files released", || {
        stats.opens.load(SeqCst) == stats.releases.load(SeqCst)
    });
}

fn fusectl_dir() -> Option<std::path::PathBuf> {
    let d = std::path::Path::new("/sys/fs/fuse/connections");
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|s| s.contains(" fusectl "))
        .unwrap_or(false);
    if !mounted {
        let (src, tgt, ty) = (c"fusectl", c"/sys/fs/fuse/connections", c"fusectl");
        // SAFETY: valid NUL-terminated strings; mounting fusectl at its standard place.
        if unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) } != 0
        {
            return None;
        }
    }
    Some(d.to_path_buf())
}

#[test]
fn fusectl_abort_ends_server_cleanly() {
    let Some(mut m) = Mounted::new("abort") else {
        return;
    };
    let Some(ctl) = fusectl_dir() else {
        assert!(std::env::var_os("CI").is_none(), "CI: cannot mount fusectl");
        eprintln!("SKIP: fusectl not available (needs root)");
        return;
    };
    let md = std::fs::metadata(&m.dir).unwrap();
    use std::os::unix::fs::MetadataExt;
    let conn = libc::minor(md.dev());
    let abort = ctl.join(conn.to_string()).join("abort");
    assert!(abort.exists(), "{} missing", abort.display());
    let fd = ec_with_mask(&m, libc::O_RDONLY, 1);
    let reader = std::thread::spawn(move || (read(&fd, 8), fd));
    let extra = open(&m.path("control"), libc::O_RDONLY).unwrap();
    wait_parked(&m, 1);
    std::fs::write(&abort, "1").unwrap();
    let (r, fd) = reader.join().unwrap();
    assert_eq!(
        r,
        Err(libc::ECONNABORTED),
        "blocked op fails with ECONNABORTED"
    );
    assert_eq!(read(&extra, 8), Err(libc::ENOTCONN), "later ops: ENOTCONN");
    let stop = m.fs.stopper();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        stop.stop();
    });
    assert_eq!(m.fs.join(), EndReason::Disconnected);
    let stats = m.fs.stats().clone();
    let (o, r, e) = (
        stats.opens.load(SeqCst),
        stats.releases.load(SeqCst),
        stats.releases_at_end.load(SeqCst),
    );
    assert_eq!((o, r + e), (2, 2), "released at session end: {e}");
    drop((fd, extra));
}

#[test]
fn stop_frees_blocked_clients_before_join() {
    let Some(mut m) = Mounted::new("stop") else {
        return;
    };
    let fd = ec_with_mask(&m, libc::O_RDONLY, 1);
    let other = open(&m.path("control"), libc::O_RDONLY).unwrap();
    let reader = std::thread::spawn(move || (read(&fd, 8), fd));
    wait_parked(&m, 1);
    m.fs.stopper().stop();
    let t = Instant::now();
    let (r, fd) = reader.join().unwrap();
    assert_eq!(r, Err(libc::ENODEV), "parked read answered at stop");
    assert!(t.elapsed() < Duration::from_secs(2));
    // The connection is gone: later operations fail at once instead of hanging.
    assert!(read(&other, 8).is_err());
    assert_eq!(m.fs.join(), EndReason::Stopped);
    let stats = m.fs.stats().clone();
    assert_eq!(
        stats.opens.load(SeqCst),
        stats.releases.load(SeqCst) + stats.releases_at_end.load(SeqCst)
    );
    drop((fd, other));
}

/// A second devfs on a directory a devfs is mounted at is refused with one line, and the first
/// keeps serving: stacked, the first one's unmount (`MNT_DETACH` of the path) would take the
/// top mount, the second's, with it.
#[test]
fn a_second_devfs_on_the_same_directory_is_refused() {
    let Some(m) = Mounted::new("twice") else {
        return;
    };
    let err = Devfs::mount(&m.dir, 2).expect_err("a second devfs mounted on the first");
    let msg = err.to_string();
    assert!(
        msg.contains("is mounted there already") && !msg.contains('\n'),
        "{msg}"
    );
    assert!(std::fs::read_to_string(m.path("control"))
        .unwrap()
        .contains("cros_ec bound"));
}
