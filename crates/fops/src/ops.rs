//! The `FileOperations` trait a driver implements, and what its operations receive.
//!
//! Invariant (the driver's side of the blocking contract): an operation never sleeps waiting for
//! something that may never happen (data, an event). When it would, it returns `EAGAIN`, and its
//! `poll` reports readiness and registers the caller's waiter on the driver's [`WaitQueue`].
//! The file layer then sleeps *outside* the resource gate, so revoking never waits for a sleeper.
//! Bounded waits (a command to hardware with a timeout) may happen inside an operation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::errno::Errno;
use crate::ioctl::IoctlArg;
use crate::poll::PollEvents;
use crate::resource::ResourceSet;
use crate::wait::{WaitQueue, Waiter};

/// Flags an open file carries (Linux `O_*` values).
///
/// # Examples
///
/// ```
/// use revocable_fops::OpenFlags;
/// let f = OpenFlags::O_RDWR | OpenFlags::O_NONBLOCK;
/// assert!(f.readable() && f.writable() && f.nonblocking());
/// assert!(!OpenFlags::O_WRONLY.readable());
/// assert_eq!(f.bits(), 0o4002);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct OpenFlags(u32);

impl OpenFlags {
    /// Read only (access mode 0).
    pub const O_RDONLY: OpenFlags = OpenFlags(0);
    /// Write only.
    pub const O_WRONLY: OpenFlags = OpenFlags(1);
    /// Read and write.
    pub const O_RDWR: OpenFlags = OpenFlags(2);
    /// Mask of the access mode.
    pub const O_ACCMODE: OpenFlags = OpenFlags(3);
    /// Append.
    pub const O_APPEND: OpenFlags = OpenFlags(0o2000);
    /// Non-blocking: operations that would block return `EAGAIN`.
    pub const O_NONBLOCK: OpenFlags = OpenFlags(0o4000);
    /// Synchronous writes.
    pub const O_SYNC: OpenFlags = OpenFlags(0o4010000);
    /// Close on exec.
    pub const O_CLOEXEC: OpenFlags = OpenFlags(0o2000000);
    /// Flags `fcntl(F_SETFL)` may change.
    pub const SETFL_MASK: OpenFlags = OpenFlags(0o2000 | 0o4000);

    /// From raw bits (all bits are kept).
    pub const fn from_bits(bits: u32) -> Self {
        OpenFlags(bits)
    }
    /// Raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// True if every bit of `other` is set.
    pub const fn contains(self, other: OpenFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// The access mode bits.
    pub const fn access_mode(self) -> u32 {
        self.0 & 3
    }
    /// Opened for reading (`O_RDONLY` or `O_RDWR`).
    pub const fn readable(self) -> bool {
        matches!(self.access_mode(), 0 | 2)
    }
    /// Opened for writing (`O_WRONLY` or `O_RDWR`).
    pub const fn writable(self) -> bool {
        matches!(self.access_mode(), 1 | 2)
    }
    /// `O_NONBLOCK` set.
    pub const fn nonblocking(self) -> bool {
        self.0 & Self::O_NONBLOCK.0 != 0
    }
}

impl std::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | rhs.0)
    }
}

/// `whence` of an `llseek`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Whence {
    /// `SEEK_SET` (0).
    Set,
    /// `SEEK_CUR` (1).
    Cur,
    /// `SEEK_END` (2).
    End,
    /// `SEEK_DATA` (3).
    Data,
    /// `SEEK_HOLE` (4).
    Hole,
}

impl Whence {
    /// From the raw value; `EINVAL` for anything else.
    ///
    /// ```
    /// use revocable_fops::{Whence, Errno};
    /// assert_eq!(Whence::from_raw(1), Ok(Whence::Cur));
    /// assert_eq!(Whence::from_raw(9), Err(Errno::EINVAL));
    /// ```
    pub const fn from_raw(raw: i32) -> Result<Whence, Errno> {
        match raw {
            0 => Ok(Whence::Set),
            1 => Ok(Whence::Cur),
            2 => Ok(Whence::End),
            3 => Ok(Whence::Data),
            4 => Ok(Whence::Hole),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// The kernel's `fixed_size_llseek`: seek within `[0, size]` (`size` for `SEEK_END`).
///
/// `EINVAL` for a result below 0 or above `size`, or for `SEEK_DATA`/`SEEK_HOLE`.
///
/// ```
/// use revocable_fops::{fixed_size_llseek, Whence, Errno};
/// assert_eq!(fixed_size_llseek(10, 100, -5, Whence::Cur), Ok(5));
/// assert_eq!(fixed_size_llseek(0, 100, 0, Whence::End), Ok(100));
/// assert_eq!(fixed_size_llseek(0, 100, -1, Whence::Set), Err(Errno::EINVAL));
/// assert_eq!(fixed_size_llseek(0, 100, i64::MAX, Whence::End), Err(Errno::EINVAL));
/// ```
pub fn fixed_size_llseek(pos: u64, size: u64, offset: i64, whence: Whence) -> Result<u64, Errno> {
    let base: i128 = match whence {
        Whence::Set => 0,
        Whence::Cur => pos as i128,
        Whence::End => size as i128,
        Whence::Data | Whence::Hole => return Err(Errno::EINVAL),
    };
    let new = base + offset as i128;
    if new < 0 || new > size as i128 {
        return Err(Errno::EINVAL);
    }
    Ok(new as u64)
}

/// A set of file operations (for [`FileOperations::RESOURCE_FREE`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OpSet(u8);

impl OpSet {
    /// No operation.
    pub const EMPTY: OpSet = OpSet(0);
    /// `read`.
    pub const READ: OpSet = OpSet(1);
    /// `write`.
    pub const WRITE: OpSet = OpSet(2);
    /// `poll`.
    pub const POLL: OpSet = OpSet(4);
    /// `ioctl`.
    pub const IOCTL: OpSet = OpSet(8);
    /// `llseek`.
    pub const LLSEEK: OpSet = OpSet(16);
    /// `flush`.
    pub const FLUSH: OpSet = OpSet(32);

    /// Union (usable in consts).
    pub const fn with(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }
    /// True if every op of `other` is in the set.
    pub const fn contains(self, other: OpSet) -> bool {
        self.0 & other.0 == other.0
    }
}

/// What `poll` gets to register a waiter on the driver's wait queues (the kernel's `poll_table`).
///
/// Empty when the caller only wants the current mask.
#[derive(Clone, Copy, Debug)]
pub struct PollTable<'a>(Option<&'a Waiter>);

impl<'a> PollTable<'a> {
    /// A table that registers `waiter` (or nothing).
    pub fn new(waiter: Option<&'a Waiter>) -> Self {
        PollTable(waiter)
    }
    /// The kernel's `poll_wait`: registers the caller's waiter on `queue`, if there is one.
    pub fn wait(&self, queue: &WaitQueue) {
        if let Some(w) = self.0 {
            queue.register(w);
        }
    }
    /// The waiter, if any.
    pub fn waiter(&self) -> Option<&'a Waiter> {
        self.0
    }
}

/// The driver's side of an open file (the kernel's `struct file`): flags, position, private data.
///
/// # Invariants
///
/// `private` is the value the driver's `open` returned, for the whole life of the open file; it
/// is dropped after `release`.
#[derive(Debug)]
pub struct File<P> {
    flags: AtomicU32,
    pos: AtomicU64,
    private: P,
}

impl<P> File<P> {
    pub(crate) fn new(flags: OpenFlags, private: P) -> Self {
        File {
            flags: AtomicU32::new(flags.bits()),
            pos: AtomicU64::new(0),
            private,
        }
    }
    /// Current flags.
    #[inline]
    pub fn flags(&self) -> OpenFlags {
        // Flags are independent words; no other memory is published through them.
        OpenFlags(self.flags.load(Ordering::Relaxed))
    }
    /// `fcntl(F_SETFL)`: changes only `O_APPEND` and `O_NONBLOCK`.
    pub fn set_flags(&self, flags: OpenFlags) {
        let mask = OpenFlags::SETFL_MASK.bits();
        let _ = self
            .flags
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some((f & !mask) | (flags.bits() & mask))
            });
    }
    /// True if operations that would block return `EAGAIN`.
    #[inline]
    pub fn is_nonblocking(&self) -> bool {
        self.flags().nonblocking()
    }
    /// The file position (used by `read`/`write` without explicit offset, and `llseek`).
    #[inline]
    pub fn pos(&self) -> u64 {
        self.pos.load(Ordering::Relaxed)
    }
    pub(crate) fn set_pos(&self, pos: u64) {
        // The position is a value, not a publication of other memory: Relaxed is enough, and
        // concurrent position users get one of their values (documented on `OpenFile`).
        self.pos.store(pos, Ordering::Relaxed)
    }
    /// The driver's private data.
    #[inline]
    pub fn private(&self) -> &P {
        &self.private
    }
}

/// The operations a driver implements (the kernel's `struct file_operations`).
///
/// Every gated operation receives `view`: `Some` of what the access hook
/// ([`access`](Self::access)) made of the file's resources while they are held, or `None` when
/// the operation is declared resource-free in [`RESOURCE_FREE`](Self::RESOURCE_FREE) (it then
/// runs without taking access, before and after revoke). `release` gets `None` when the
/// resources are gone.
///
/// Defaults match the kernel's behaviour for a missing operation: `read`/`write` → `EINVAL`,
/// `ioctl` → `ENOTTY`, `llseek` → `ESPIPE`, `poll` → [`PollEvents::DEFAULT`], `flush`/`release`
/// do nothing.
///
/// Blocking: see the module docs. An operation that would block returns `EAGAIN` whatever the
/// file's `O_NONBLOCK`; the file layer turns that into a wait when the caller may block.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use revocable_fops::*;
///
/// /// A device whose resource is a greeting.
/// struct Hello;
/// impl FileOperations for Hello {
///     type Private = ();
///     type Resources = Arc<Resource<String>>;
///     type View<'a> = &'a str;
///     fn access<'a>(&'a self, res: &'a String) -> Result<&'a str, Errno> { Ok(res) }
///     fn open(&self, _: &str, _: OpenFlags) -> Result<(), Errno> { Ok(()) }
///     fn read(&self, v: Option<&str>, _: &File<()>, buf: &mut [u8], off: &mut u64)
///         -> Result<usize, Errno> {
///         let s = v.ok_or(Errno::ENODEV)?.as_bytes();
///         let start = usize::try_from(*off).unwrap_or(usize::MAX).min(s.len());
///         let n = buf.len().min(s.len() - start);
///         buf[..n].copy_from_slice(&s[start..start + n]);
///         *off += n as u64;
///         Ok(n)
///     }
/// }
///
/// let res = Resource::new("hello".to_string());
/// let f = OpenFile::open(Arc::new(Hello), res.clone(), OpenFlags::O_RDONLY).unwrap();
/// let mut buf = [0u8; 8];
/// assert_eq!(f.read(&mut buf, Wait::NonBlocking), Ok(5));
/// res.revoke();
/// assert_eq!(f.read(&mut buf, Wait::NonBlocking), Err(Errno::ENODEV));
/// assert_eq!(f.poll(None), PollEvents::REVOKED);
/// ```
pub trait FileOperations: Send + Sync + Sized + 'static {
    /// Per-open private data, made by `open`.
    type Private: Send + Sync + 'static;
    /// The resources every open file of this driver is gated on (`()` for none).
    type Resources: ResourceSet;
    /// What an operation sees of the resources while it holds access.
    type View<'a>;
    /// Operations that never touch the resources: they skip the gate and get `view == None`.
    const RESOURCE_FREE: OpSet = OpSet::EMPTY;

    /// The access hook (the kernel's `rops->try_access`): turns "the resources are present" into
    /// the driver's per-operation view, or refuses with an errno (returned by the operation).
    fn access<'a>(
        &'a self,
        res: <Self::Resources as ResourceSet>::Refs<'a>,
    ) -> Result<Self::View<'a>, Errno>;

    /// Opens: returns the per-open private data. Runs only while the resources are present.
    fn open(&self, view: Self::View<'_>, flags: OpenFlags) -> Result<Self::Private, Errno>;

    /// Reads at `*offset`, advancing it by the bytes read.
    fn read(
        &self,
        view: Option<Self::View<'_>>,
        file: &File<Self::Private>,
        buf: &mut [u8],
        offset: &mut u64,
    ) -> Result<usize, Errno> {
        let _ = (view, file, buf, offset);
        Err(Errno::EINVAL)
    }

    /// Writes at `*offset`, advancing it by the bytes written.
    fn write(
        &self,
        view: Option<Self::View<'_>>,
        file: &File<Self::Private>,
        buf: &[u8],
        offset: &mut u64,
    ) -> Result<usize, Errno> {
        let _ = (view, file, buf, offset);
        Err(Errno::EINVAL)
    }

    /// Reports readiness and registers `table`'s waiter on the queues that will signal a change.
    fn poll(
        &self,
        view: Option<Self::View<'_>>,
        file: &File<Self::Private>,
        table: PollTable<'_>,
    ) -> PollEvents {
        let _ = (view, file, table);
        PollEvents::DEFAULT
    }

    /// Handles an ioctl; unknown commands must return `ENOTTY`.
    fn ioctl(
        &self,
        view: Option<Self::View<'_>>,
        file: &File<Self::Private>,
        cmd: u32,
        arg: IoctlArg<'_>,
    ) -> Result<i64, Errno> {
        let _ = (view, file, cmd, arg);
        Err(Errno::ENOTTY)
    }

    /// Computes a new position (the layer stores it); see [`fixed_size_llseek`].
    fn llseek(
        &self,
        view: Option<Self::View<'_>>,
        file: &File<Self::Private>,
        offset: i64,
        whence: Whence,
    ) -> Result<u64, Errno> {
        let _ = (view, file, offset, whence);
        Err(Errno::ESPIPE)
    }

    /// Called at each `close` of a descriptor of the file.
    fn flush(&self, view: Option<Self::View<'_>>, file: &File<Self::Private>) -> Result<(), Errno> {
        let _ = (view, file);
        Ok(())
    }

    /// Called exactly once per successful open, when the last reference to the file goes,
    /// whether or not the resources are still there (`view` is `None` if they are not).
    fn release(&self, view: Option<Self::View<'_>>, file: &File<Self::Private>) {
        let _ = (view, file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_setfl_changes_only_mask() {
        let f = File::new(OpenFlags::O_RDONLY, ());
        f.set_flags(OpenFlags::O_NONBLOCK | OpenFlags::O_WRONLY);
        assert!(f.is_nonblocking());
        assert_eq!(f.flags().access_mode(), 0);
        f.set_flags(OpenFlags::O_RDONLY);
        assert!(!f.is_nonblocking());
    }

    #[test]
    fn llseek_bounds_never_overflow() {
        for (pos, size, off, wh) in [
            (u64::MAX, u64::MAX, i64::MAX, Whence::Cur),
            (0, 0, i64::MIN, Whence::End),
            (5, 10, 0, Whence::Data),
        ] {
            assert_eq!(fixed_size_llseek(pos, size, off, wh), Err(Errno::EINVAL));
        }
        assert_eq!(
            fixed_size_llseek(u64::MAX, u64::MAX, 0, Whence::Cur),
            Ok(u64::MAX)
        );
        for raw in [-1, 5, i32::MAX] {
            assert_eq!(Whence::from_raw(raw), Err(Errno::EINVAL));
        }
    }

    #[test]
    fn opset() {
        const S: OpSet = OpSet::READ.with(OpSet::LLSEEK);
        assert!(S.contains(OpSet::LLSEEK));
        assert!(!S.contains(OpSet::IOCTL));
        assert!(S.contains(OpSet::EMPTY));
    }
}
