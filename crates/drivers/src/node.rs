//! What a driver exports to a file system: [`Node`]s (files that can be opened) and the
//! [`Handle`]s of open files, in a non-blocking form a file system can park and resume.
//!
//! Invariant: no `Handle` method blocks; a read that would block returns `EAGAIN`, and the handle
//! calls its [`Waker`] whenever a parked read or a poller might make progress (data queued, device
//! revoked). `release` is called exactly once per successful `open`.

use std::sync::Arc;

/// Called by a handle when readiness may have changed. Cheap, callable from any thread, and safe
/// to call spuriously. A handle may call it from inside its own `read` (as the fops layer does when
/// it arms a revoke watch on a resource already revoked); the file system then retries once more,
/// so such a wake must mean the next read no longer returns `EAGAIN` for the same cause, or the
/// retries never end.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Result of a node operation: a positive errno on failure.
pub type NodeResult<T> = Result<T, i32>;

/// `st_size` of a stream device file (see [`Node::size`]): one page, as a sysfs attribute
/// reports. Large enough for any single read the drivers answer, small enough that a reader that
/// sizes its buffer from `st_size` (Rust's `fs::read`, Python's `read()`) allocates little.
pub const DEVICE_FILE_SIZE: u64 = 4096;

/// How a file system opens a file. Both are uncached (every read and write reaches the driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// No file position: offsets are meaningless, reads run in parallel (a chardev opened with
    /// `stream_open`). devfs opens it `FOPEN_DIRECT_IO | FOPEN_STREAM`.
    Stream,
    /// Offsets reach the driver (a debugfs file). devfs opens it `FOPEN_DIRECT_IO`.
    Positioned,
}

/// An open file as a file system (devfs) drives it.
pub trait Handle: Send + Sync {
    /// How the file is opened.
    fn open_mode(&self) -> OpenMode;
    /// Reads up to `size` bytes at `offset` without blocking (`EAGAIN` when it would block); `flags`
    /// are the file's current open(2)/fcntl flags (`O_NONBLOCK`). A handle that returns `EAGAIN`
    /// for a blocking caller must call its waker when the read may succeed.
    fn read(&self, offset: u64, size: u32, flags: u32) -> NodeResult<Vec<u8>>;
    /// Writes `data` at `offset`; returns the bytes consumed.
    fn write(&self, offset: u64, data: &[u8]) -> NodeResult<usize> {
        let _ = (offset, data);
        Err(libc::EINVAL)
    }
    /// A restricted ioctl: `input` holds `_IOC_SIZE` bytes for `_IOW` commands, the answer may hold
    /// up to `out_size` bytes; returns the ioctl's return value and the output bytes.
    fn ioctl(&self, cmd: u32, arg: u64, input: &[u8], out_size: u32) -> NodeResult<(i32, Vec<u8>)> {
        let _ = (cmd, arg, input, out_size);
        Err(libc::ENOTTY)
    }
    /// Current poll mask (Linux `POLL*` bits); with `arm`, the waker is called at the next change.
    fn poll(&self, arm: bool) -> u32 {
        let _ = arm;
        (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32
    }
    /// Installs the waker (once, right after open).
    fn set_waker(&self, waker: Waker) {
        let _ = waker;
    }
    /// The file is closed (last close, or session end). Called exactly once.
    fn release(&self);
}

/// A file in the tree.
pub trait Node: Send + Sync {
    /// File mode (type and permission bits).
    fn mode(&self) -> u32;
    /// `st_size`. 0 by default (what a kernel chardev and a debugfs file report). A device file
    /// served as a stream reports [`DEVICE_FILE_SIZE`] instead: the kernel ends an asynchronous
    /// (io_uring, AIO) or page-cache (splice, sendfile) read at the file size before asking the
    /// server, so with 0 those clients would see end of file where read(2) sees data or `ENODEV`.
    fn size(&self) -> u64 {
        0
    }
    /// False while the file does not exist (e.g. `revocable_test/consumer` before a provider).
    fn present(&self) -> bool {
        true
    }
    /// Opens the file with open(2) `flags`.
    fn open(&self, flags: u32) -> NodeResult<Arc<dyn Handle>>;
}
