//! Test support (hidden from the docs): a [`TempNetns`] that skips a test when it cannot be made,
//! or fails it under `CI` (CI runs as root and must run the network-namespace tests).

use std::path::PathBuf;

use crate::net::netns::TempNetns;

/// A network namespace made for one test; deleted on drop (also when the test fails).
pub struct Netns(TempNetns);

impl Netns {
    /// A fresh namespace, or `None` (after saying why) when it cannot be made: not root, or no
    /// working `ip`.
    ///
    /// # Panics
    /// When it cannot be made and `CI` is set.
    pub fn new() -> Option<Netns> {
        match TempNetns::create("rvk-test") {
            Ok(ns) => Some(Netns(ns)),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("CI is set but the netns tests cannot run: {e}")
            }
            Err(e) => {
                eprintln!("SKIP: {e} (set CI=1 to make this a failure)");
                None
            }
        }
    }

    /// The namespace file (`/run/netns/NAME`).
    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    /// Runs `ip -n NAME ARGS…`.
    ///
    /// # Panics
    /// When `ip` fails (a test fixture).
    pub fn ip(&self, args: &[&str]) {
        if let Err(e) = self.0.ip(args) {
            panic!("{e}");
        }
    }
}
