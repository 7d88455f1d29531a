//! `revocable devfs` and its stop signals: SIGHUP (a closed terminal) stops it like SIGTERM,
//! status 0 and the mount gone; started with SIGHUP ignored (`nohup`), a SIGHUP leaves it
//! serving; a stop signal ends it while its mount attempt hangs (on a directory whose FUSE
//! server is stopped). Skips without `/dev/fuse`; fails under `CI`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use revocable_devfs::fuse::testing::{fuse_available, temp_dir};

mod common;
use common::signal;

/// Starts `revocable devfs DIR`, SIGHUP ignored if `nohup`; returns once it serves `control`.
fn serve(dir: &std::path::Path, nohup: bool) -> Child {
    serve_with(dir, nohup, None)
}

/// As [`serve`], with `REVOCABLE_FUSE_TRANSPORT=transport` if given.
fn serve_with(dir: &std::path::Path, nohup: bool, transport: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revocable"));
    cmd.arg("devfs").arg(dir).stderr(Stdio::null());
    if let Some(t) = transport {
        cmd.env("REVOCABLE_FUSE_TRANSPORT", t);
    }
    if nohup {
        // SAFETY: signal(2) is async-signal-safe, as a pre_exec hook must be.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("run revocable devfs");
    common::wait_served(&mut child, &dir.join("control"), "the mount never served");
    child
}

/// Whether `dir` is a mount point of this mount namespace now.
fn mounted(dir: &std::path::Path) -> bool {
    let dir = dir.to_str().expect("temp dirs are UTF-8");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(dir))
}

#[test]
fn sighup_stops_devfs_and_unmounts() {
    if !fuse_available() {
        return;
    }
    let dir = temp_dir("cli-sighup");
    let mut child = serve(&dir, false);
    signal(&child, libc::SIGHUP);
    let status = child.wait().expect("wait");
    let left = mounted(&dir);
    let _ = std::fs::remove_dir(&dir);
    assert!(status.success(), "{status}");
    assert!(!left, "mount left behind");
}

#[test]
fn under_nohup_a_sighup_leaves_devfs_serving() {
    if !fuse_available() {
        return;
    }
    let dir = temp_dir("cli-nohup");
    let mut child = serve(&dir, true);
    signal(&child, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    let still = child.try_wait().expect("try_wait").is_none();
    let state = std::fs::read_to_string(dir.join("control"));
    signal(&child, libc::SIGTERM);
    let status = child.wait().expect("wait");
    let _ = std::fs::remove_dir(&dir);
    assert!(still, "a SIGHUP stopped devfs under nohup: {status}");
    assert!(state.is_ok_and(|s| s.contains("cros_ec")));
    assert!(status.success(), "{status}");
}

/// The stopped server serves over `/dev/fuse`: its request stays queued in the kernel, where a
/// fatal signal ends the waiting client. Over io_uring the kernel hands the request to the
/// stopped server's ring at once, and then waits for the answer uninterruptibly (FUSE's rule for
/// a request already in user space): no signal, SIGKILL included, ends that client until the
/// server runs again (seen while writing this test; README, devfs).
#[test]
fn a_stop_signal_ends_a_mount_attempt_that_hangs() {
    if !fuse_available() {
        return;
    }
    let dir = temp_dir("cli-hung");
    let mut first = serve_with(&dir, false, Some("dev"));
    signal(&first, libc::SIGSTOP);
    // The second one's first look at the mount point waits for the stopped server.
    let mut second = Command::new(env!("CARGO_BIN_EXE_revocable"))
        .arg("devfs")
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("run revocable devfs");
    std::thread::sleep(Duration::from_millis(300));
    let hung = second.try_wait().expect("try_wait").is_none();
    signal(&second, libc::SIGINT);
    let t = Instant::now();
    let status = loop {
        if let Some(st) = second.try_wait().expect("try_wait") {
            break Some(st);
        }
        if t.elapsed() > Duration::from_secs(10) {
            // Let the stopped server answer first: the attempt may not be killable before.
            signal(&first, libc::SIGCONT);
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    signal(&first, libc::SIGCONT);
    signal(&first, libc::SIGTERM);
    let first_status = first.wait().expect("wait");
    let _ = std::fs::remove_dir(&dir);
    assert!(
        hung,
        "the second mount attempt did not wait for the stopped server"
    );
    let status = status.expect("a SIGINT did not end a hung mount attempt within 10 s");
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(first_status.success(), "{first_status}");
}
