//! Poll event masks with the Linux `__poll_t` bit values.
//!
//! Invariant: a [`PollEvents`] is a plain bit set; each constant is the bit Linux uses, so a mask
//! goes unchanged into a FUSE poll reply. It is never an errno (the kernel series once returned an
//! errno inside a `__poll_t`: a distinct type makes that impossible).

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};

/// A set of poll events (`POLLIN`, `POLLOUT`, …) with Linux bit values.
///
/// # Examples
///
/// ```
/// use revocable_fops::PollEvents;
///
/// let m = PollEvents::POLLIN | PollEvents::POLLRDNORM;
/// assert_eq!(m.bits(), 0x41);
/// assert!(m.contains(PollEvents::POLLIN));
/// assert!(!m.intersects(PollEvents::POLLOUT | PollEvents::POLLERR));
/// assert_eq!(PollEvents::REVOKED.bits(), 0x1 | 0x8 | 0x10);
/// assert_eq!(format!("{m:?}"), "POLLIN|POLLRDNORM");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PollEvents(u32);

const NAMES: [(u32, &str); 12] = [
    (0x0001, "POLLIN"),
    (0x0002, "POLLPRI"),
    (0x0004, "POLLOUT"),
    (0x0008, "POLLERR"),
    (0x0010, "POLLHUP"),
    (0x0020, "POLLNVAL"),
    (0x0040, "POLLRDNORM"),
    (0x0080, "POLLRDBAND"),
    (0x0100, "POLLWRNORM"),
    (0x0200, "POLLWRBAND"),
    (0x0400, "POLLMSG"),
    (0x2000, "POLLRDHUP"),
];

impl PollEvents {
    /// No event.
    pub const EMPTY: PollEvents = PollEvents(0);
    /// Data to read.
    pub const POLLIN: PollEvents = PollEvents(0x0001);
    /// Urgent data / exceptional condition.
    pub const POLLPRI: PollEvents = PollEvents(0x0002);
    /// Writing will not block.
    pub const POLLOUT: PollEvents = PollEvents(0x0004);
    /// Error condition.
    pub const POLLERR: PollEvents = PollEvents(0x0008);
    /// Hang up: the other side (here: the device) is gone.
    pub const POLLHUP: PollEvents = PollEvents(0x0010);
    /// Invalid request (file not open).
    pub const POLLNVAL: PollEvents = PollEvents(0x0020);
    /// Normal data to read.
    pub const POLLRDNORM: PollEvents = PollEvents(0x0040);
    /// Priority band data to read.
    pub const POLLRDBAND: PollEvents = PollEvents(0x0080);
    /// Normal data may be written.
    pub const POLLWRNORM: PollEvents = PollEvents(0x0100);
    /// Priority data may be written.
    pub const POLLWRBAND: PollEvents = PollEvents(0x0200);
    /// Unused on Linux, kept for completeness.
    pub const POLLMSG: PollEvents = PollEvents(0x0400);
    /// Peer closed its writing half.
    pub const POLLRDHUP: PollEvents = PollEvents(0x2000);

    /// What a revoked file reports: `POLLIN | POLLERR | POLLHUP`, so that readers wake and read
    /// the error (`ENODEV`).
    pub const REVOKED: PollEvents = PollEvents(0x0001 | 0x0008 | 0x0010);
    /// What a file without a `poll` operation reports (the kernel's `DEFAULT_POLLMASK`).
    pub const DEFAULT: PollEvents = PollEvents(0x0001 | 0x0004 | 0x0040 | 0x0100);
    /// The events a waiter always wakes for, whatever it asked for (error, hang-up, invalid).
    pub const ALWAYS: PollEvents = PollEvents(0x0008 | 0x0010 | 0x0020);

    /// The set for raw bits; unknown bits are kept (they pass through to the caller unchanged).
    pub const fn from_bits(bits: u32) -> PollEvents {
        PollEvents(bits)
    }
    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// True if every bit of `other` is set.
    pub const fn contains(self, other: PollEvents) -> bool {
        self.0 & other.0 == other.0
    }
    /// True if any bit of `other` is set.
    pub const fn intersects(self, other: PollEvents) -> bool {
        self.0 & other.0 != 0
    }
    /// Union.
    pub const fn union(self, other: PollEvents) -> PollEvents {
        PollEvents(self.0 | other.0)
    }
}

impl BitOr for PollEvents {
    type Output = PollEvents;
    fn bitor(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 | rhs.0)
    }
}
impl BitOrAssign for PollEvents {
    fn bitor_assign(&mut self, rhs: PollEvents) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for PollEvents {
    type Output = PollEvents;
    fn bitand(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 & rhs.0)
    }
}
impl BitAndAssign for PollEvents {
    fn bitand_assign(&mut self, rhs: PollEvents) {
        self.0 &= rhs.0;
    }
}
impl Not for PollEvents {
    type Output = PollEvents;
    fn not(self) -> PollEvents {
        PollEvents(!self.0)
    }
}

impl fmt::Debug for PollEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("(empty)");
        }
        let mut rest = self.0;
        let mut first = true;
        for (bit, name) in NAMES {
            if rest & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_values() {
        assert_eq!(PollEvents::POLLIN.bits(), 0x1);
        assert_eq!(PollEvents::POLLOUT.bits(), 0x4);
        assert_eq!(PollEvents::POLLERR.bits(), 0x8);
        assert_eq!(PollEvents::POLLHUP.bits(), 0x10);
        assert_eq!(PollEvents::POLLRDNORM.bits(), 0x40);
        assert_eq!(PollEvents::POLLWRNORM.bits(), 0x100);
        assert_eq!(PollEvents::POLLRDHUP.bits(), 0x2000);
        assert_eq!(PollEvents::DEFAULT.bits(), 0x145);
    }

    #[test]
    fn set_ops_and_debug() {
        let mut m = PollEvents::EMPTY;
        assert!(m.is_empty());
        m |= PollEvents::POLLOUT;
        m |= PollEvents::from_bits(0x8000);
        assert_eq!(format!("{m:?}"), "POLLOUT|0x8000");
        m &= !PollEvents::POLLOUT;
        assert_eq!(m.bits(), 0x8000);
        assert_eq!(format!("{:?}", PollEvents::EMPTY), "(empty)");
        assert!(PollEvents::REVOKED.contains(PollEvents::POLLHUP | PollEvents::POLLIN));
    }
}
