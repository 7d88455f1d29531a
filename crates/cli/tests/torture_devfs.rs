//! `revocable torture --devfs` end to end: a short load run passes with balanced opens and
//! releases, and a client frozen with SIGSTOP is caught by the watchdog, named, and fails the run.
//!
//! Needs FUSE: without /dev/fuse the tests skip with a message, unless `CI` is set, in which case
//! they fail.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but /dev/fuse is missing: the devfs torture cannot run");
    }
    eprintln!("SKIP: /dev/fuse is missing (set CI=1 to make this a failure)");
    false
}

fn revocable() -> Command {
    Command::new(env!("CARGO_BIN_EXE_revocable"))
}

/// The number after `key` on the summary line that starts with `line` (after trimming).
fn field(out: &str, line: &str, key: &str) -> u64 {
    let l = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no `{line}` line in:\n{out}"));
    let rest = &l[l.find(key).unwrap_or_else(|| panic!("no `{key}` in {l}")) + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{key}` in {l}"))
}

#[test]
fn five_seconds_of_load_with_unplugs_passes_and_balances() {
    if !fuse_available() {
        return;
    }
    let out = revocable()
        .args(["torture", "--devfs", "--duration", "5", "--seed", "7"])
        .output()
        .expect("run revocable");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "torture --devfs failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("result            PASS"), "{stdout}");
    assert!(
        stderr.contains("torture --devfs:"),
        "no progress line: {stderr}"
    );
    let cycles = field(&stdout, "cycles", "cycles");
    // 1000/s requested for 5 s; a loaded 2-core machine may lag, but not by half.
    assert!(cycles >= 2500, "only {cycles} cycles:\n{stdout}");
    let opens = field(&stdout, "file handles", "opens");
    let releases = field(&stdout, "file handles", "releases");
    assert_eq!(opens, releases, "{stdout}");
    assert!(opens > 0);
    let unplugs = field(&stdout, "EC", "EC");
    assert!((30..=50).contains(&unplugs), "{unplugs} unplugs:\n{stdout}");
    assert!(field(&stdout, "expected errors", "ENODEV") > 0, "{stdout}");
    assert_eq!(field(&stdout, "unexpected", "unexpected"), 0, "{stdout}");
}

/// The first child process of `pid` (from /proc), waiting up to 10 s for one to appear.
fn first_child(pid: u32) -> u32 {
    let t = Instant::now();
    loop {
        let s =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = s.split_whitespace().next().and_then(|c| c.parse().ok()) {
            return c;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no client started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_frozen_client_is_caught_by_the_watchdog() {
    if !fuse_available() {
        return;
    }
    let child = revocable()
        .args([
            "torture",
            "--devfs",
            "--duration",
            "20",
            "--clients",
            "2",
            "--rate",
            "200",
            "--stall-ms",
            "1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run revocable");
    let client = first_child(child.id());
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on a process id we just read; SIGSTOP freezes it (the run kills it later).
    assert_eq!(unsafe { libc::kill(client as i32, libc::SIGSTOP) }, 0);
    let t = Instant::now();
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the watchdog took {:?}",
        t.elapsed()
    );
    assert!(stdout.contains("STUCK: client-"), "{stdout}");
    assert!(
        // "no heartbeat …", or "OPERATION in flight …" if it was frozen inside one.
        stdout.contains(&format!("(pid {client}): ")),
        "{stdout}"
    );
    assert!(stdout.contains("result            FAIL"), "{stdout}");
    // Even a run that ends early loses no file: what was open is released at unmount.
    assert!(stdout.contains(": balanced"), "{stdout}");
}
