//! Test support (hidden from the docs): a network namespace made for one test with `ip netns
//! add` and deleted when dropped, so that tests create and delete interfaces without touching
//! the host's.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace made for one test; deleted on drop (also when the test fails).
pub struct Netns {
    name: String,
}

fn cannot_run(why: &str) -> Option<Netns> {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but the netns tests cannot run: {why}");
    }
    eprintln!("SKIP: {why} (set CI=1 to make this a failure)");
    None
}

impl Netns {
    /// A fresh namespace `rvk-test-PID-N`, or `None` (after saying why) when it cannot be made:
    /// not root, or no working `ip`.
    ///
    /// # Panics
    /// When it cannot be made and `CI` is set: CI runs as root and must run these tests.
    pub fn new() -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return cannot_run("not root");
        }
        let name = format!(
            "rvk-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match Command::new("ip").args(["netns", "add", &name]).status() {
            Ok(s) if s.success() => Some(Netns { name }),
            Ok(s) => cannot_run(&format!("`ip netns add` failed: {s}")),
            Err(e) => cannot_run(&format!("`ip` not runnable: {e}")),
        }
    }

    /// The namespace file, for `setns` (`/run/netns/NAME`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NETNS ARGS…` and asserts it succeeded.
    ///
    /// # Panics
    /// When `ip` fails (a test fixture).
    pub fn ip(&self, args: &[&str]) {
        let st = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .status()
            .expect("run ip");
        assert!(st.success(), "ip -n {} {args:?}: {st}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
