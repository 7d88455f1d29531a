//! `revocable devfs MOUNTPOINT --net` end to end, run with `nsenter --net` inside a network
//! namespace the test creates and deletes (only its network namespace: the mount stays visible
//! here): `net/lo` is served, a veth pair created in the namespace appears, a deleted one
//! disappears, and SIGTERM ends the server with status 0 and the mount gone. Needs root, `ip`,
//! `nsenter` and `/dev/fuse`: skips with a message otherwise, fails under `CI`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use revocable_devfs::fuse::testing::{fuse_available, temp_dir};
use revocable_drivers::testing::Netns;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn devfs_net_follows_interfaces_and_stops_cleanly() {
    if !fuse_available() {
        return;
    }
    let Some(ns) = Netns::new() else { return };
    let dir = temp_dir("cli-net");
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg(env!("CARGO_BIN_EXE_revocable"))
        .arg("devfs")
        .arg(&dir)
        .arg("--net")
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsenter");
    let net = dir.join("net");
    common::wait_served(&mut child, &net.join("lo"), "net/lo never appeared");
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    wait_for("net/va", || net.join("va").exists());
    // One read: the state line (a second read would wait for the link to change).
    let mut buf = [0u8; 256];
    let n =
        std::io::Read::read(&mut std::fs::File::open(net.join("va")).unwrap(), &mut buf).unwrap();
    assert!(buf[..n].starts_with(b"operstate "), "{:?}", &buf[..n]);
    ns.ip(&["link", "del", "va"]);
    wait_for("net/va gone", || !net.join("va").exists());
    common::signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("net/"), "{stderr}");
    assert!(!dir.join("control").exists(), "mount gone");
    let _ = std::fs::remove_dir(&dir);
}

/// `revocable demo --net` passes: its clients all see ENODEV, the node leaves, opens balance.
#[test]
fn demo_net_passes() {
    if !fuse_available() {
        return;
    }
    // Only to skip (or fail under CI) where a namespace cannot be made; the demo makes its own.
    let Some(probe) = Netns::new() else { return };
    drop(probe);
    let out = Command::new(env!("CARGO_BIN_EXE_revocable"))
        .args(["demo", "--net"])
        .output()
        .expect("run revocable demo --net");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("No such device").count(), 3, "{stdout}");
    assert!(stdout.contains("net/veth0 is gone"), "{stdout}");
    assert!(stdout.contains("balanced"), "{stdout}");
}
