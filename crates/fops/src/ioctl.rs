//! Linux ioctl command numbers (`_IO`, `_IOR`, `_IOW`, `_IOWR`) and the argument an ioctl gets.
//!
//! Invariant: an [`IoctlArg`] never lets a driver read or write outside the buffer the caller
//! provided; asking for more than was provided is `EFAULT`, as a failed `copy_from_user` is.

use crate::errno::Errno;

/// Direction bits of an ioctl number: none.
pub const IOC_NONE: u32 = 0;
/// Direction bits: the caller writes (user → driver).
pub const IOC_WRITE: u32 = 1;
/// Direction bits: the caller reads (driver → user).
pub const IOC_READ: u32 = 2;
/// Largest argument size an ioctl number can encode (14 bits).
pub const IOC_SIZE_MAX: usize = (1 << 14) - 1;

/// Builds an ioctl number (the kernel's `_IOC`); a size over [`IOC_SIZE_MAX`] is a compile error
/// in a `const` and a panic otherwise (a programming error, never input).
///
/// ```
/// use revocable_fops::ioctl::{ioc, iowr, io, ioc_nr, ioc_type, ioc_size, ioc_dir, IOC_READ, IOC_WRITE};
/// const XCMD: u32 = iowr(0xEC, 0, 20);
/// assert_eq!(XCMD, 0xC014_EC00);
/// assert_eq!(io(0xEC, 2), 0xEC02);
/// assert_eq!((ioc_dir(XCMD), ioc_type(XCMD), ioc_nr(XCMD), ioc_size(XCMD)),
///            (IOC_READ | IOC_WRITE, 0xEC, 0, 20));
/// ```
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size <= IOC_SIZE_MAX, "ioctl argument size too large");
    assert!(dir <= 3, "ioctl direction out of range");
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}
/// `_IO(ty, nr)`: no argument buffer (the argument is a value).
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}
/// `_IOR(ty, nr, size)`: the driver fills `size` bytes.
pub const fn ior(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ, ty, nr, size)
}
/// `_IOW(ty, nr, size)`: the driver reads `size` bytes.
pub const fn iow(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_WRITE, ty, nr, size)
}
/// `_IOWR(ty, nr, size)`: both.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size)
}
/// Direction bits of `cmd`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    cmd >> 30
}
/// Type (magic) byte of `cmd`.
pub const fn ioc_type(cmd: u32) -> u8 {
    (cmd >> 8) as u8
}
/// Number byte of `cmd`.
pub const fn ioc_nr(cmd: u32) -> u8 {
    cmd as u8
}
/// Argument size encoded in `cmd`.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> 16) & 0x3fff) as usize
}

/// The argument of one ioctl call: the raw value and, when the caller supplied one, the in/out
/// data buffer (what FUSE's restricted ioctl copies: `_IOC_SIZE(cmd)` bytes).
///
/// # Examples
///
/// ```
/// use revocable_fops::{ioctl::IoctlArg, Errno};
///
/// let mut buf = [0u8; 8];
/// let mut arg = IoctlArg::with_data(0, &mut buf);
/// arg.data(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
/// assert_eq!(arg.data(16).unwrap_err(), Errno::EFAULT);
/// assert_eq!(IoctlArg::value(7).data(1).unwrap_err(), Errno::EFAULT);
/// ```
#[derive(Debug)]
pub struct IoctlArg<'a> {
    value: u64,
    data: Option<&'a mut [u8]>,
}

impl<'a> IoctlArg<'a> {
    /// An argument that is a plain value (`_IO` commands, or a pointer the driver may not follow).
    pub fn value(value: u64) -> Self {
        IoctlArg { value, data: None }
    }
    /// An argument with a data buffer.
    pub fn with_data(value: u64, data: &'a mut [u8]) -> Self {
        IoctlArg {
            value,
            data: Some(data),
        }
    }
    /// The raw argument value.
    pub fn raw(&self) -> u64 {
        self.value
    }
    /// Length of the data buffer (0 if none).
    pub fn len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }
    /// True if there is no data buffer or it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first `len` bytes of the data buffer; `EFAULT` if the caller supplied fewer.
    pub fn data(&mut self, len: usize) -> Result<&mut [u8], Errno> {
        match &mut self.data {
            Some(d) if d.len() >= len => Ok(&mut d[..len]),
            _ => Err(Errno::EFAULT),
        }
    }
    /// The whole data buffer (possibly empty).
    pub fn all(&mut self) -> &mut [u8] {
        self.data.as_deref_mut().unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_numbers() {
        // Values of well-known Linux ioctls.
        assert_eq!(iowr(0xEC, 0, 20), 0xc014_ec00);
        assert_eq!(iowr(0xEC, 1, 263), 0xc107_ec01);
        assert_eq!(io(0xEC, 2), 0x0000_ec02);
        assert_eq!(ior(b'T', 0x13, 8), 0x8008_5413);
        for cmd in [iow(1, 2, 3), ior(0xff, 0xff, IOC_SIZE_MAX)] {
            assert_eq!(
                ioc(ioc_dir(cmd), ioc_type(cmd), ioc_nr(cmd), ioc_size(cmd)),
                cmd
            );
        }
    }

    #[test]
    fn arg_bounds() {
        let mut a = IoctlArg::value(3);
        assert_eq!(a.raw(), 3);
        assert!(a.is_empty());
        assert_eq!(a.all().len(), 0);
        assert_eq!(a.data(0).map(|d| d.len()), Err(Errno::EFAULT));
        let mut b = [9u8; 2];
        let mut a = IoctlArg::with_data(0, &mut b);
        assert_eq!(a.data(0).map(|d| d.len()), Ok(0));
        assert_eq!(a.data(2).map(|d| d.len()), Ok(2));
        assert_eq!(a.data(3).map(|d| d.len()), Err(Errno::EFAULT));
    }
}
