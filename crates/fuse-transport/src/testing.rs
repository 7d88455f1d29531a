//! Helpers for tests that mount for real, here and in the crates above (hidden from the docs).

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::channel::Channel;

/// A channel whose "kernel side" is a pipe: what is sent to it can be read back from the file.
///
/// # Panics
/// When no pipe can be made (a test fixture).
pub fn pipe_channel() -> (Arc<Channel>, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and owned by us.
    let (r, w) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    };
    (Arc::new(Channel::new(w).expect("eventfd")), r)
}

/// True when FUSE is usable; otherwise prints why and returns false (the test then skips), or,
/// when the `CI` environment variable is set, panics: CI must never skip a FUSE test.
pub fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but /dev/fuse is missing: FUSE tests cannot run");
    }
    eprintln!("SKIP: /dev/fuse is missing (set CI=1 to make this a failure)");
    false
}

/// Makes a fresh directory `PREFIX-XXXXXX` under the system temp dir.
///
/// # Panics
/// When the directory cannot be made (a test fixture: there is nothing better to do).
pub fn temp_dir(prefix: &str) -> PathBuf {
    let t = CString::new(format!(
        "{}/{prefix}-XXXXXX",
        std::env::temp_dir().display()
    ))
    .expect("no NUL in the temp dir path");
    let mut b = t.into_bytes_with_nul();
    // SAFETY: b is a writable NUL-terminated template.
    let p = unsafe { libc::mkdtemp(b.as_mut_ptr().cast()) };
    assert!(!p.is_null(), "mkdtemp: {}", std::io::Error::last_os_error());
    b.pop();
    PathBuf::from(String::from_utf8(b).expect("the temp dir path is UTF-8"))
}
