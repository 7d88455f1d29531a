//! The kernel FUSE ABI (`include/uapi/linux/fuse.h`), protocol 7.31: the request and reply structs
//! this server uses, written from the published layout.
//!
//! Invariant: every struct here is `#[repr(C)]`, made only of fixed-width integers, and has no
//! implicit padding (the kernel pads every struct to 64 bits explicitly), so any byte pattern of the
//! right length is a valid value ([`Pod`]). The size of each struct is checked at compile time.

/// Major protocol version spoken by this server.
pub const KERNEL_VERSION: u32 = 7;
/// Minor protocol version spoken by this server (the kernel adapts down to it).
pub const KERNEL_MINOR_VERSION: u32 = 31;
/// Minor version announced when FUSE over io_uring is negotiated (7.42 brought it).
pub const URING_MINOR_VERSION: u32 = 42;
/// The node id of the root directory.
pub const ROOT_ID: u64 = 1;
/// Bit set in the `unique` of an INTERRUPT request (and of the reply to it).
pub const INT_REQ_BIT: u64 = 1;

/// Request opcodes (`enum fuse_opcode`), the subset this server names.
#[allow(missing_docs)]
pub mod opcode {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const ACCESS: u32 = 34;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const POLL: u32 = 40;
    pub const BATCH_FORGET: u32 = 42;
}

/// Notification codes (`enum fuse_notify_code`), sent in `OutHeader::error` with `unique == 0`.
pub const NOTIFY_POLL: i32 = 1;
/// Notification code: drop a directory entry from the kernel's dentry cache.
pub const NOTIFY_INVAL_ENTRY: i32 = 3;

/// `fuse_open_out::open_flags`: bypass the page cache.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
/// `fuse_open_out::open_flags`: the file is not seekable.
pub const FOPEN_NONSEEKABLE: u32 = 1 << 2;
/// `fuse_open_out::open_flags`: stream-like file, no file position (reads run in parallel).
pub const FOPEN_STREAM: u32 = 1 << 4;

/// `fuse_getattr_in::getattr_flags`: `fh` names the open file the attributes are asked for.
pub const GETATTR_FH: u32 = 1 << 0;
/// INIT flag: big writes.
pub const FUSE_BIG_WRITES: u32 = 1 << 5;
/// INIT flag: `flags2` holds the upper 32 bits of the flags.
pub const FUSE_INIT_EXT: u32 = 1 << 30;
/// `fuse_poll_in::flags`: the kernel wants a NOTIFY_POLL when the file becomes ready.
pub const POLL_SCHEDULE_NOTIFY: u32 = 1 << 0;
/// `fuse_ioctl_in::flags`: unrestricted ioctl (CUSE only; refused here).
pub const IOCTL_UNRESTRICTED: u32 = 1 << 1;
/// `fuse_ioctl_in::flags`: the ioctl is on a directory.
pub const IOCTL_DIR: u32 = 1 << 4;

/// Plain-old-data: may be read from, and viewed as, raw bytes.
///
/// # Safety
/// Implementors are `#[repr(C)]`, contain only integer fields and have no padding bytes, so that
/// every byte pattern of `size_of::<Self>()` bytes is a valid value and every byte is initialised.
pub unsafe trait Pod: Copy + Sized {
    /// Reads `Self` from the start of `bytes`; `None` when `bytes` is too short.
    fn read_from(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < core::mem::size_of::<Self>() {
            return None;
        }
        // SAFETY: the slice holds at least size_of::<Self>() readable bytes; read_unaligned needs no
        // alignment; by the trait's contract every byte pattern is a valid Self.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// Views `self` as its bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: by the trait's contract Self has no padding, so all size_of::<Self>() bytes behind
        // the reference are initialised; the slice borrows self and so cannot outlive it.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }
}

macro_rules! pod {
    ($($(#[$m:meta])* $name:ident ($size:expr) { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub struct $name { $(pub $field: $ty),* }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
        // SAFETY: repr(C), integer fields only, size equal to the sum of the fields (checked above
        // against the kernel's size, which has explicit padding fields), hence no padding.
        unsafe impl Pod for $name {}
    )*};
}

pod! {
    /// `struct fuse_in_header`: starts every request.
    InHeader(40) { len: u32, opcode: u32, unique: u64, nodeid: u64, uid: u32, gid: u32, pid: u32,
        total_extlen: u16, padding: u16 }
    /// `struct fuse_out_header`: starts every reply and notification.
    OutHeader(16) { len: u32, error: i32, unique: u64 }
    /// `struct fuse_init_in` (the first 16 bytes; newer kernels send more, which is ignored).
    InitIn(16) { major: u32, minor: u32, max_readahead: u32, flags: u32 }
    /// `struct fuse_init_out` as of 7.31.
    InitOut(64) { major: u32, minor: u32, max_readahead: u32, flags: u32, max_background: u16,
        congestion_threshold: u16, max_write: u32, time_gran: u32, max_pages: u16,
        map_alignment: u16, unused: [u32; 8] }
    /// `struct fuse_attr`.
    Attr(88) { ino: u64, size: u64, blocks: u64, atime: u64, mtime: u64, ctime: u64,
        atimensec: u32, mtimensec: u32, ctimensec: u32, mode: u32, nlink: u32, uid: u32, gid: u32,
        rdev: u32, blksize: u32, flags: u32 }
    /// `struct fuse_entry_out`: reply to LOOKUP.
    EntryOut(128) { nodeid: u64, generation: u64, entry_valid: u64, attr_valid: u64,
        entry_valid_nsec: u32, attr_valid_nsec: u32, attr: Attr }
    /// `struct fuse_attr_out`: reply to GETATTR/SETATTR.
    AttrOut(104) { attr_valid: u64, attr_valid_nsec: u32, dummy: u32, attr: Attr }
    /// `struct fuse_getattr_in`.
    GetattrIn(16) { getattr_flags: u32, dummy: u32, fh: u64 }
    /// `struct fuse_open_in`.
    OpenIn(8) { flags: u32, open_flags: u32 }
    /// `struct fuse_open_out`.
    OpenOut(16) { fh: u64, open_flags: u32, backing_id: u32 }
    /// `struct fuse_release_in`.
    ReleaseIn(24) { fh: u64, flags: u32, release_flags: u32, lock_owner: u64 }
    /// `struct fuse_read_in`.
    ReadIn(40) { fh: u64, offset: u64, size: u32, read_flags: u32, lock_owner: u64, flags: u32,
        padding: u32 }
    /// `struct fuse_write_in` (the data follows it).
    WriteIn(40) { fh: u64, offset: u64, size: u32, write_flags: u32, lock_owner: u64, flags: u32,
        padding: u32 }
    /// `struct fuse_write_out`.
    WriteOut(8) { size: u32, padding: u32 }
    /// `struct fuse_interrupt_in`.
    InterruptIn(8) { unique: u64 }
    /// `struct fuse_ioctl_in` (the input data follows it).
    IoctlIn(32) { fh: u64, flags: u32, cmd: u32, arg: u64, in_size: u32, out_size: u32 }
    /// `struct fuse_ioctl_out` (the output data follows it).
    IoctlOut(16) { result: i32, flags: u32, in_iovs: u32, out_iovs: u32 }
    /// `struct fuse_poll_in`.
    PollIn(24) { fh: u64, kh: u64, flags: u32, events: u32 }
    /// `struct fuse_poll_out`.
    PollOut(8) { revents: u32, padding: u32 }
    /// `struct fuse_notify_poll_wakeup_out`.
    NotifyPollWakeupOut(8) { kh: u64 }
    /// `struct fuse_notify_inval_entry_out` (the name and a NUL follow).
    NotifyInvalEntryOut(16) { parent: u64, namelen: u32, flags: u32 }
    /// `struct fuse_kstatfs` wrapped as `fuse_statfs_out`.
    StatfsOut(80) { blocks: u64, bfree: u64, bavail: u64, files: u64, ffree: u64, bsize: u32,
        namelen: u32, frsize: u32, padding: u32, spare: [u32; 6] }
    /// `struct fuse_dirent` header (the name follows, padded to 8 bytes).
    DirentHeader(24) { ino: u64, off: u64, namelen: u32, typ: u32 }
}

/// Size of a directory entry with a name of `namelen` bytes, padded to 8 bytes.
pub const fn dirent_size(namelen: usize) -> usize {
    (core::mem::size_of::<DirentHeader>() + namelen + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_bytes() {
        let h = OutHeader {
            len: 16,
            error: -2,
            unique: 0x1122_3344_5566_7788,
        };
        let back = OutHeader::read_from(h.as_bytes()).unwrap();
        assert_eq!(h, back);
        assert!(OutHeader::read_from(&[0u8; 15]).is_none());
    }

    #[test]
    fn dirent_padding() {
        assert_eq!(dirent_size(1), 32);
        assert_eq!(dirent_size(8), 32);
        assert_eq!(dirent_size(9), 40);
    }
}
