//! `revocable devfs --transport`: the first line names the transport and why, the mount serves,
//! SIGTERM ends it with status 0; `uring` where the kernel allows it (else one line and status
//! 1); an unknown name is a usage error. Skips without `/dev/fuse`; fails under `CI`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;

use revocable_devfs::fuse::testing::{fuse_available, temp_dir};
use revocable_devfs::fuse::uring;

/// Runs `revocable devfs DIR --transport T`; returns its first stderr line (the transport) once
/// the mount serves `control`, after stopping it with SIGTERM and checking status 0.
fn first_line(transport: &str) -> String {
    let dir = temp_dir("cli-transport");
    let mut child = Command::new(env!("CARGO_BIN_EXE_revocable"))
        .arg("devfs")
        .arg(&dir)
        .arg("--transport")
        .arg(transport)
        .env_remove("REVOCABLE_FUSE_TRANSPORT")
        .stderr(Stdio::piped())
        .spawn()
        .expect("run revocable devfs");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("first line");
    common::wait_served(
        &mut child,
        &dir.join("control"),
        &format!("{transport}: the mount never served; first line: {line}"),
    );
    let state = std::fs::read_to_string(dir.join("control")).expect("read control");
    common::signal(&child, libc::SIGTERM);
    let status = child.wait().expect("wait");
    let _ = std::fs::remove_dir(&dir);
    assert!(status.success(), "{transport}: {status}");
    assert!(state.contains("cros_ec"), "{state}");
    line.trim_end().to_string()
}

#[test]
fn devfs_says_which_transport_serves() {
    if !fuse_available() {
        return;
    }
    assert_eq!(
        first_line("dev"),
        format!(
            "revocable devfs: transport: /dev/fuse (asked for, {} threads)",
            revocable_devfs::server::default_threads()
        )
    );
    let auto = first_line("auto");
    if uring::enabled() == Some(true) {
        let l = first_line("uring");
        assert!(
            l.starts_with("revocable devfs: transport: io_uring (asked for, fuse enable_uring=Y, "),
            "{l}"
        );
        assert!(auto.contains("io_uring (fuse enable_uring=Y"), "{auto}");
    } else {
        assert!(auto.contains("/dev/fuse ("), "{auto}");
        let dir = temp_dir("cli-transport");
        let out = Command::new(env!("CARGO_BIN_EXE_revocable"))
            .arg("devfs")
            .arg(&dir)
            .args(["--transport", "uring"])
            .env_remove("REVOCABLE_FUSE_TRANSPORT")
            .output()
            .expect("run revocable devfs");
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(out.status.code(), Some(1));
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("io_uring transport required"), "{e}");
    }
}

#[test]
fn unknown_transport_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_revocable"))
        .args(["devfs", "/nonexistent", "--transport", "carrier-pigeon"])
        .output()
        .expect("run revocable devfs");
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("unknown transport"), "{e}");
}
