//! Unsolicited notifications to the kernel: `FUSE_NOTIFY_POLL` wakes the pollers that registered
//! a poll handle (`kh`) with `FUSE_POLL_SCHEDULE_NOTIFY`.
//!
//! Invariant: a notification carries `unique == 0` and the notify code in the error field.

use std::io::{self, IoSlice};
use std::sync::Weak;

use super::abi::{NotifyPollWakeupOut, OutHeader, Pod, NOTIFY_POLL};
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::Arc;

    #[test]
    fn poll_wakeup_layout_and_dead_channel() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds are fresh and owned by us.
        let (mut r, w) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                OwnedFd::from_raw_fd(fds[1]),
            )
        };
        let ch = Arc::new(Channel::new(w).unwrap());
        let n = Notifier::new(Arc::downgrade(&ch));
        n.poll_wakeup(0xabc).unwrap();
        let mut b = [0u8; 24];
        r.read_exact(&mut b).unwrap();
        let h = OutHeader::read_from(&b).unwrap();
        assert_eq!((h.len, h.error, h.unique), (24, NOTIFY_POLL, 0));
        assert_eq!(u64::from_le_bytes(b[16..].try_into().unwrap()), 0xabc);
        drop(ch);
        assert_eq!(
            n.poll_wakeup(1).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }
}
