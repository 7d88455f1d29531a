//! Mounting and unmounting: `mount(2)` with an open `/dev/fuse` when we may (root or
//! `CAP_SYS_ADMIN`), else through `fusermount3` (which passes the `/dev/fuse` fd back over a Unix
//! socket, `_FUSE_COMMFD`).
//!
//! Invariant: a [`Mount`] is unmounted at most once (lazy unmount, so open files never block it);
//! dropping it unmounts if nobody did.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a mount was made, which decides how it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountMethod {
    /// `mount(2)` by this process.
    Direct,
    /// The setuid helper `fusermount3`.
    Fusermount,
}

/// A mounted FUSE file system.
///
/// # Invariants
/// `unmounted` turns true exactly once, by the call that unmounts.
#[derive(Debug)]
pub struct Mount {
    path: PathBuf,
    method: MountMethod,
    unmounted: AtomicBool,
    /// The connection's number in fusectl (`/sys/fs/fuse/connections/N`): the minor of the
    /// mount's device, read right after mounting (`None` if it could not be read).
    conn: Option<u32>,
}

/// Why mounting failed, with a one-line explanation for the user.
#[derive(Debug)]
pub struct MountError(pub String);

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for MountError {}

fn cstr(p: &Path) -> Result<CString, MountError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| MountError(format!("{}: path contains a NUL byte", p.display())))
}

/// Finds `fusermount3` on `PATH`.
pub fn find_fusermount() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("fusermount3"))
        .find(|p| p.is_file())
}

impl Mount {
    /// Mounts a FUSE file system named `fsname` at `mountpoint`; returns the mount and the
    /// `/dev/fuse` channel fd (non-blocking, close-on-exec).
    ///
    /// # Errors
    /// A one-line [`MountError`] when `/dev/fuse` is missing, the mount point is not a directory, or
    /// the process may neither mount nor run `fusermount3`, or a FUSE file system is mounted
    /// there already (a live one: stacking on it would make an unmount of either take the top
    /// one; a dead one: its server has gone and the directory answers `ENOTCONN`).
    pub fn new(mountpoint: &Path, fsname: &str) -> Result<(Mount, OwnedFd), MountError> {
        let md = std::fs::metadata(mountpoint).map_err(|e| {
            MountError(if e.raw_os_error() == Some(libc::ENOTCONN) {
                format!(
                    "mount point {}: {e}: a FUSE file system whose server has gone is still \
                     mounted there or above it; unmount it first (umount -l, or fusermount3 -uz \
                     as another user)",
                    mountpoint.display()
                )
            } else {
                format!("mount point {}: {e}", mountpoint.display())
            })
        })?;
        if !md.is_dir() {
            return Err(MountError(format!(
                "mount point {} is not a directory",
                mountpoint.display()
            )));
        }
        let path = std::fs::canonicalize(mountpoint)
            .map_err(|e| MountError(format!("mount point {}: {e}", mountpoint.display())))?;
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let Some((fstype, source)) = fuse_mounted_at(&info, &path, dev_numbers(md.dev())) {
            return Err(MountError(format!(
                "mount point {0}: a FUSE file system ({fstype}, {source}) is mounted there \
                 already; stop it or unmount it first (umount {0})",
                path.display()
            )));
        }
        if !Path::new("/dev/fuse").exists() {
            return Err(MountError(
                "/dev/fuse is missing: load the fuse module (modprobe fuse); in a container, give it the device (docker run --device /dev/fuse)".into(),
            ));
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            match Self::mount_direct(&path, fsname) {
                Ok(fd) => return Ok((Mount::made(path, MountMethod::Direct), fd)),
                Err(e) if find_fusermount().is_none() => return Err(e),
                Err(_) => {}
            }
        }
        match find_fusermount() {
            Some(helper) => {
                let fd = Self::mount_fusermount(&helper, &path, fsname)?;
                Ok((Mount::made(path, MountMethod::Fusermount), fd))
            }
            None => Err(MountError(format!(
                "cannot mount {}: not root and fusermount3 is not installed (install the fuse3 package)",
                path.display()
            ))),
        }
    }

    fn made(path: PathBuf, method: MountMethod) -> Mount {
        // Not stat(2) of the mount point: that would wait for INIT, which comes later.
        let conn = connection_of(&path);
        Mount {
            path,
            method,
            unmounted: AtomicBool::new(false),
            conn,
        }
    }

    /// Aborts the connection through fusectl (`/sys/fs/fuse/connections/N/abort`, where the
    /// fusectl file system is mounted): every request waiting on the server fails with
    /// `ECONNABORTED`, and every reader of `/dev/fuse` returns `ENODEV`. The last resort of a
    /// stop whose readers cannot be woken otherwise. True if the abort was written.
    pub fn abort_connection(&self) -> bool {
        let Some(n) = self.conn else { return false };
        std::fs::write(format!("/sys/fs/fuse/connections/{n}/abort"), b"1").is_ok()
    }

    fn mount_direct(path: &Path, fsname: &str) -> Result<OwnedFd, MountError> {
        let dev = CString::new("/dev/fuse").expect("static path");
        // SAFETY: dev is a valid NUL-terminated string; open has no other preconditions.
        let raw = unsafe {
            libc::open(
                dev.as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(MountError(format!("cannot open /dev/fuse: {e}")));
        }
        // SAFETY: raw is a freshly opened fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let opts = format!(
            "fd={},rootmode=40755,user_id={uid},group_id={gid},allow_other,default_permissions",
            fd.as_raw_fd()
        );
        let src =
            CString::new(fsname).map_err(|_| MountError("file system name contains NUL".into()))?;
        let fstype = CString::new(format!("fuse.{fsname}"))
            .map_err(|_| MountError("file system name contains NUL".into()))?;
        let target = cstr(path)?;
        let data = CString::new(opts).expect("no NUL in formatted options");
        // SAFETY: all pointers are valid NUL-terminated strings living across the call.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(MountError(format!("mount {} failed: {e}", path.display())));
        }
        Ok(fd)
    }

    fn mount_fusermount(helper: &Path, path: &Path, fsname: &str) -> Result<OwnedFd, MountError> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds has room for the two descriptors socketpair writes.
        if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } != 0 {
            return Err(MountError(format!(
                "socketpair: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: ours is a valid fd; setting FD_CLOEXEC keeps it out of the helper.
        unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        let status = Command::new(helper)
            .arg("-o")
            .arg(format!(
                "fsname={fsname},subtype={fsname},default_permissions"
            ))
            .arg("--")
            .arg(path)
            .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
            .status()
            .map_err(|e| MountError(format!("cannot run {}: {e}", helper.display())))?;
        drop(theirs);
        if !status.success() {
            return Err(MountError(format!(
                "{} failed to mount {} ({status})",
                helper.display(),
                path.display()
            )));
        }
        let fd = recv_fd(&ours)
            .map_err(|e| MountError(format!("fusermount3 gave no /dev/fuse fd: {e}")))?;
        // SAFETY: fd is valid; set non-blocking and close-on-exec as the direct path does.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
        Ok(fd)
    }

    /// The mount point (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the mount was made.
    pub fn method(&self) -> MountMethod {
        self.method
    }

    /// Lazily unmounts (`MNT_DETACH` / `fusermount3 -u -z`); true for the call that did it. An
    /// already removed mount (external `umount`) is not an error.
    pub fn unmount(&self) -> bool {
        if self.unmounted.swap(true, Ordering::AcqRel) {
            return false;
        }
        match self.method {
            MountMethod::Direct => {
                if let Ok(p) = cstr(&self.path) {
                    // SAFETY: p is a valid NUL-terminated path.
                    unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
                }
            }
            MountMethod::Fusermount => {
                if let Some(h) = find_fusermount() {
                    let _ = Command::new(h)
                        .arg("-u")
                        .arg("-z")
                        .arg("-q")
                        .arg(&self.path)
                        .status();
                }
            }
        }
        true
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// The fusectl number of the FUSE mount at `path` (the minor of its device; the kernel names a
/// connection by it), from the last line of `/proc/self/mountinfo` mounted there.
fn connection_of(path: &Path) -> Option<u32> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_connection(&info, path)
}

/// The last line of `mountinfo` that mounts a file system at `path` (the latest mounted there,
/// usually the top one), or with `fuse_only` the last that mounts a FUSE file system there.
fn line_at<'a>(mountinfo: &'a str, path: &Path, fuse_only: bool) -> Option<&'a str> {
    // mountinfo escapes space, tab, newline and backslash in paths as octal.
    let mut want = String::new();
    for c in path.to_str()?.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => want.push_str(&format!("\\{:03o}", c as u32)),
            c => want.push(c),
        }
    }
    mountinfo
        .lines()
        .rev()
        .find(|l| l.split_whitespace().nth(4) == Some(want.as_str()) && (!fuse_only || is_fuse(l)))
}

fn is_fuse(mountinfo_line: &str) -> bool {
    mountinfo_line
        .split(" - ")
        .nth(1)
        .is_some_and(|rest| rest.starts_with("fuse"))
}

/// `(major, minor)` of a `dev_t`.
fn dev_numbers(dev: u64) -> (u32, u32) {
    (libc::major(dev), libc::minor(dev))
}

/// The (file system type, source) of the mount at `path` whose device is `dev` (what `stat` of
/// `path` gives: the top mount there; the last line at the path is not always it, a mount can be
/// moved there or beneath), if it is a FUSE file system.
fn fuse_mounted_at(mountinfo: &str, path: &Path, dev: (u32, u32)) -> Option<(String, String)> {
    let want = format!("{}:{}", dev.0, dev.1);
    let top = mountinfo.lines().find(|l| {
        l.split_whitespace().nth(2) == Some(want.as_str())
            && line_at(l, path, false).is_some()
            && is_fuse(l)
    })?;
    let mut rest = top.split(" - ").nth(1)?.split_whitespace();
    Some((rest.next()?.to_string(), rest.next()?.to_string()))
}

fn parse_connection(mountinfo: &str, path: &Path) -> Option<u32> {
    line_at(mountinfo, path, true)?
        .split_whitespace()
        .nth(2)?
        .split_once(':')?
        .1
        .parse()
        .ok()
}

/// Receives one fd sent with `SCM_RIGHTS` over `sock`.
fn recv_fd(sock: &OwnedFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsg carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain old data; zero is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg points at live buffers (iov, cbuf) sized as declared.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR reads within msg_control.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no control message",
        ));
    }
    // SAFETY: cmsg is non-null and points into cbuf, which recvmsg initialised.
    let (level, typ) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    if level != libc::SOL_SOCKET || typ != libc::SCM_RIGHTS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected control message",
        ));
    }
    // SAFETY: an SCM_RIGHTS message carries at least one int after its header, inside cbuf.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
    // SAFETY: the kernel installed fd in our table for us; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_number_from_mountinfo() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            40 22 0:45 / /tmp/my\\040dir rw,nosuid - fuse.revocable revocable rw\n\
            41 22 0:50 / /tmp/other rw - fuse.revocable revocable rw\n\
            42 40 0:47 / /tmp/my\\040dir rw - fuse.revocable revocable rw\n\
            43 22 0:51 / /tmp/plain rw - tmpfs tmpfs rw\n";
        // The last mount on the path wins (mounted on top).
        assert_eq!(parse_connection(info, Path::new("/tmp/my dir")), Some(47));
        assert_eq!(parse_connection(info, Path::new("/tmp/other")), Some(50));
        assert_eq!(parse_connection(info, Path::new("/tmp/plain")), None);
        assert_eq!(parse_connection(info, Path::new("/tmp/none")), None);
        // The mount whose device `stat` gives: a FUSE one refuses a new mount; a FUSE mount
        // under another file system at the same path does not.
        let devfs = Some(("fuse.revocable".to_string(), "revocable".to_string()));
        let f = |p: &str, dev| fuse_mounted_at(info, Path::new(p), (0, dev));
        assert_eq!(f("/tmp/my dir", 47), devfs);
        assert_eq!(f("/tmp/other", 50), devfs);
        assert_eq!(f("/tmp/plain", 51), None);
        assert_eq!(f("/tmp/none", 47), None);
        assert_eq!(f("/tmp/other", 52), None);
        assert_eq!(dev_numbers(0x801), (8, 1));
    }

    #[test]
    fn bad_mount_points_give_one_line_errors() {
        let e = Mount::new(Path::new("/nonexistent/devfs"), "t").unwrap_err();
        assert!(e.0.starts_with("mount point /nonexistent/devfs:"), "{e}");
        let e = Mount::new(Path::new("/proc/self/status"), "t").unwrap_err();
        assert!(e.0.contains("is not a directory"), "{e}");
        assert!(!e.0.contains('\n'));
    }
}
