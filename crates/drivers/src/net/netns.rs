//! [`TempNetns`]: a network namespace made with `ip netns add` for one run (a test, the demo)
//! and deleted when dropped, so that interfaces are created and deleted without touching the
//! host's.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace `PREFIX-PID-N`, deleted on drop.
#[derive(Debug)]
pub struct TempNetns {
    name: String,
}

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl TempNetns {
    /// Creates the namespace. Blocking: runs `ip netns add`.
    ///
    /// # Errors
    /// Not root (`EPERM`), or `ip` missing or failing (its message).
    pub fn create(prefix: &str) -> io::Result<TempNetns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "creating a network namespace needs root",
            ));
        }
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_ip(&["netns", "add", &name])?;
        Ok(TempNetns { name })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, for `setns` or `nsenter --net` (`/run/netns/NAME`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NAME ARGS…` inside the namespace. Blocking.
    ///
    /// # Errors
    /// `ip`'s failure, with its message.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ip(&all)
    }
}

impl Drop for TempNetns {
    fn drop(&mut self) {
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}
