//! Linux errno values as a Rust error type.
//!
//! Invariant: an [`Errno`] always holds a value in `1..=4095`, the range Linux reserves for error
//! numbers (`-4095..=-1` as a system call's return value), so it converts 1:1 to and from the raw
//! number a FUSE reply or a `std::io::Error` carries.

use core::fmt;
use core::num::NonZeroU16;

/// A Linux error number (`ENODEV`, `EINVAL`, …), the error type of every file operation.
///
/// # Invariants
///
/// The value is in `1..=4095` (Linux `MAX_ERRNO`).
///
/// # Examples
///
/// ```
/// use revocable_fops::Errno;
///
/// assert_eq!(Errno::ENODEV.raw(), 19);
/// assert_eq!(Errno::from_raw(25), Some(Errno::ENOTTY));
/// assert_eq!(Errno::from_raw(0), None);
/// assert_eq!(Errno::EINVAL.to_string(), "EINVAL (Invalid argument)");
/// let io: std::io::Error = Errno::EAGAIN.into();
/// assert_eq!(io.raw_os_error(), Some(11));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(NonZeroU16);

/// The largest error number Linux uses (`MAX_ERRNO`).
pub const MAX_ERRNO: i32 = 4095;

macro_rules! errnos {
    ($($name:ident = $val:literal, $text:literal;)*) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($val), "): ", $text, ".")]
                pub const $name: Errno = Errno(match NonZeroU16::new($val) {
                    Some(v) => v,
                    None => panic!("errno 0"),
                });
            )*

            /// The symbolic name (`"ENODEV"`), or `None` for a number this table does not name.
            pub const fn name(self) -> Option<&'static str> {
                match self.0.get() {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The C library's message for this error (`"No such device"`), or `None` if unnamed.
            pub const fn description(self) -> Option<&'static str> {
                match self.0.get() {
                    $($val => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    ENODEV = 19, "No such device";
    ENOTDIR = 20, "Not a directory";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    ENFILE = 23, "Too many open files in system";
    EMFILE = 24, "Too many open files";
    ENOTTY = 25, "Inappropriate ioctl for device";
    EFBIG = 27, "File too large";
    ENOSPC = 28, "No space left on device";
    ESPIPE = 29, "Illegal seek";
    EROFS = 30, "Read-only file system";
    EPIPE = 32, "Broken pipe";
    ERANGE = 34, "Numerical result out of range";
    EDEADLK = 35, "Resource deadlock avoided";
    ENAMETOOLONG = 36, "File name too long";
    ENOSYS = 38, "Function not implemented";
    ENODATA = 61, "No data available";
    ETIME = 62, "Timer expired";
    EOVERFLOW = 75, "Value too large for defined data type";
    EMSGSIZE = 90, "Message too long";
    EOPNOTSUPP = 95, "Operation not supported";
    ECONNABORTED = 103, "Software caused connection abort";
    ENOTCONN = 107, "Transport endpoint is not connected";
    ETIMEDOUT = 110, "Connection timed out";
    ECANCELED = 125, "Operation canceled";
}

impl Errno {
    /// `EWOULDBLOCK` is `EAGAIN` on Linux.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// `EDEADLOCK` is `EDEADLK` on Linux.
    pub const EDEADLOCK: Errno = Errno::EDEADLK;

    /// The errno for a raw positive number, `None` outside `1..=4095`.
    ///
    /// Accepts numbers this table does not name (they display as `errno N`).
    pub const fn from_raw(raw: i32) -> Option<Errno> {
        if raw < 1 || raw > MAX_ERRNO {
            return None;
        }
        // The range check above makes the cast lossless and the value non-zero.
        match NonZeroU16::new(raw as u16) {
            Some(v) => Some(Errno(v)),
            None => None,
        }
    }

    /// Decodes a kernel-style return value: `-4095..=-1` is an error, anything else is not.
    ///
    /// ```
    /// use revocable_fops::Errno;
    /// assert_eq!(Errno::from_ret(-19), Some(Errno::ENODEV));
    /// assert_eq!(Errno::from_ret(5), None);
    /// ```
    pub const fn from_ret(ret: i64) -> Option<Errno> {
        if ret < 0 && ret >= -(MAX_ERRNO as i64) {
            Errno::from_raw((-ret) as i32)
        } else {
            None
        }
    }

    /// The positive raw number (`ENODEV` → 19), as `errno` holds it.
    pub const fn raw(self) -> i32 {
        self.0.get() as i32
    }

    /// The negative kernel-style return value (`ENODEV` → -19).
    pub const fn to_ret(self) -> i64 {
        -(self.0.get() as i64)
    }

    /// The errno carried by an I/O error, `EIO` when it carries none (or one out of range).
    pub fn from_io(err: &std::io::Error) -> Errno {
        err.raw_os_error()
            .and_then(Errno::from_raw)
            .unwrap_or(Errno::EIO)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.raw()),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.description()) {
            (Some(n), Some(d)) => write!(f, "{n} ({d})"),
            _ => write!(f, "errno {}", self.raw()),
        }
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.raw())
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno::from_io(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux() {
        let table = [
            (Errno::EPERM, 1),
            (Errno::EINTR, 4),
            (Errno::EIO, 5),
            (Errno::EBADF, 9),
            (Errno::EAGAIN, 11),
            (Errno::EFAULT, 14),
            (Errno::EBUSY, 16),
            (Errno::ENODEV, 19),
            (Errno::EINVAL, 22),
            (Errno::ENOTTY, 25),
            (Errno::ESPIPE, 29),
            (Errno::ENOSYS, 38),
            (Errno::ECONNABORTED, 103),
            (Errno::ENOTCONN, 107),
        ];
        for (e, raw) in table {
            assert_eq!(e.raw(), raw);
            assert_eq!(Errno::from_raw(raw), Some(e));
            assert_eq!(e.to_ret(), -(raw as i64));
        }
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    }

    #[test]
    fn matches_libc_messages_via_io_error() {
        // std formats OS errors with strerror; our table must agree with the C library.
        for raw in [1, 4, 11, 14, 19, 22, 25, 29] {
            let e = Errno::from_raw(raw).unwrap();
            let io = std::io::Error::from_raw_os_error(raw).to_string();
            assert!(io.starts_with(e.description().unwrap()), "{io} vs {e}");
            assert_eq!(Errno::from_io(&std::io::Error::from(e)), e);
        }
    }

    #[test]
    fn out_of_range_is_rejected() {
        for raw in [i32::MIN, -1, 0, 4096, i32::MAX] {
            assert_eq!(Errno::from_raw(raw), None);
        }
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret(-4096), None);
        assert_eq!(Errno::from_ret(i64::MIN), None);
        assert_eq!(Errno::from_ret(-4095).map(Errno::raw), Some(4095));
        let unnamed = Errno::from_raw(4000).unwrap();
        assert_eq!(unnamed.name(), None);
        assert_eq!(unnamed.to_string(), "errno 4000");
        assert_eq!(format!("{unnamed:?}"), "Errno(4000)");
        let other = std::io::Error::other("x");
        assert_eq!(Errno::from_io(&other), Errno::EIO);
    }
}
