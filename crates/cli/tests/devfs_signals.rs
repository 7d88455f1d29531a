//! `revocable devfs` and its stop signals: SIGHUP (a closed terminal) stops it like SIGTERM,
//! status 0 and the mount gone; started with SIGHUP ignored (`nohup`), a SIGHUP leaves it
//! serving. Skips without `/dev/fuse`; fails under `CI`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use revocable_devfs::fuse::testing::{fuse_available, temp_dir};

/// Starts `revocable devfs DIR`, SIGHUP ignored if `nohup`; returns once it serves `control`.
fn serve(dir: &std::path::Path, nohup: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_revocable"));
    cmd.arg("devfs").arg(dir).stderr(Stdio::null());
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
    let t = Instant::now();
    while !dir.join("control").exists() {
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the mount never served");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
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
