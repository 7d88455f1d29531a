//! Shared by the CLI's integration tests: waiting for a `revocable devfs` child to serve, and
//! signalling it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Waits (up to 10 s) until `path` exists under the mount of `child`; else, or if `child` exits
/// first, kills it and panics with `what`.
pub fn wait_served(child: &mut Child, path: &Path, what: &str) {
    let t = Instant::now();
    while !path.exists() {
        if t.elapsed() > Duration::from_secs(10) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}
