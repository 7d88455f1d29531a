//! Unsolicited notifications to the kernel: `FUSE_NOTIFY_POLL` wakes the pollers that registered
//! a poll handle (`kh`) with `FUSE_POLL_SCHEDULE_NOTIFY`; `FUSE_NOTIFY_INVAL_ENTRY` drops a name
//! from the kernel's dentry cache.
//!
//! Invariant: a notification carries `unique == 0` and the notify code in the error field.

use std::io::{self, IoSlice};
use std::sync::Weak;

use super::abi::{
    NotifyInvalEntryOut, NotifyPollWakeupOut, OutHeader, Pod, NOTIFY_INVAL_ENTRY, NOTIFY_POLL,
};
use super::channel::Channel;

/// A handle for sending notifications; cheap to clone. It holds the channel weakly, so that it
/// never keeps a finished connection open.
#[derive(Clone, Debug)]
pub struct Notifier {
    ch: Weak<Channel>,
}

impl Notifier {
    pub(crate) fn new(ch: Weak<Channel>) -> Notifier {
        Notifier { ch }
    }

    /// Wakes the kernel pollers waiting on poll handle `kh`; the kernel then polls again.
    ///
    /// # Errors
    /// When the connection is gone (ENODEV) or the kernel refuses the notification.
    pub fn poll_wakeup(&self, kh: u64) -> io::Result<()> {
        let body = NotifyPollWakeupOut { kh };
        let h = OutHeader {
            len: (std::mem::size_of::<OutHeader>() + std::mem::size_of::<NotifyPollWakeupOut>())
                as u32,
            error: NOTIFY_POLL,
            unique: 0,
        };
        let ch = self
            .ch
            .upgrade()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
        ch.send(&[IoSlice::new(h.as_bytes()), IoSlice::new(body.as_bytes())])
    }

    /// Drops the entry `name` of directory `parent` from the kernel's dentry cache (the file left
    /// the directory). Blocking: the kernel takes the directory's lock, so never call this while
    /// serving a request on that directory (a dispatch thread); call it from another thread.
    ///
    /// # Errors
    /// When the connection is gone (ENODEV), the name is longer than 255 bytes (ENAMETOOLONG), or
    /// the kernel refuses the notification (ENOENT when it has no such entry cached).
    pub fn inval_entry(&self, parent: u64, name: &[u8]) -> io::Result<()> {
        if name.len() > 255 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        let body = NotifyInvalEntryOut {
            parent,
            namelen: name.len() as u32,
            flags: 0,
        };
        let h = OutHeader {
            len: (std::mem::size_of::<OutHeader>()
                + std::mem::size_of::<NotifyInvalEntryOut>()
                + name.len()
                + 1) as u32,
            error: NOTIFY_INVAL_ENTRY,
            unique: 0,
        };
        let ch = self
            .ch
            .upgrade()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
        ch.send(&[
            IoSlice::new(h.as_bytes()),
            IoSlice::new(body.as_bytes()),
            IoSlice::new(name),
            IoSlice::new(&[0]),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    #[test]
    fn poll_wakeup_layout_and_dead_channel() {
        let (ch, mut r) = crate::testing::pipe_channel();
        let n = Notifier::new(Arc::downgrade(&ch));
        n.poll_wakeup(0xabc).unwrap();
        let mut b = [0u8; 24];
        r.read_exact(&mut b).unwrap();
        let h = OutHeader::read_from(&b).unwrap();
        assert_eq!((h.len, h.error, h.unique), (24, NOTIFY_POLL, 0));
        assert_eq!(u64::from_le_bytes(b[16..].try_into().unwrap()), 0xabc);
        n.inval_entry(7, b"veth0").unwrap();
        let mut b = [0u8; 16 + 16 + 6];
        r.read_exact(&mut b).unwrap();
        let h = OutHeader::read_from(&b).unwrap();
        assert_eq!((h.len, h.error, h.unique), (38, NOTIFY_INVAL_ENTRY, 0));
        let e = NotifyInvalEntryOut::read_from(&b[16..]).unwrap();
        assert_eq!((e.parent, e.namelen, e.flags), (7, 5, 0));
        assert_eq!(&b[32..], b"veth0\0");
        assert_eq!(
            n.inval_entry(7, &[b'x'; 256]).unwrap_err().raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
        drop(ch);
        assert_eq!(
            n.poll_wakeup(1).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }
}
