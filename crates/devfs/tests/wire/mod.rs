//! A pipe standing in for `/dev/fuse`, for tests that drive the real `dispatch` path in-process.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use revocable_devfs::fuse::abi::{InHeader, OutHeader, Pod};
use revocable_devfs::fuse::channel::Channel;

/// A pipe standing in for /dev/fuse: the server's answers arrive on `rx`.
pub struct Wire {
    pub ch: Arc<Channel>,
    rx: std::fs::File,
}

impl Wire {
    pub fn new() -> Wire {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array of two ints.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
        // SAFETY: both fds are fresh and owned by us from here on.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own pipe; a larger pipe holds every answer of one case.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
        Wire {
            ch: Arc::new(Channel::new(w).expect("channel")),
            rx: std::fs::File::from(r),
        }
    }

    /// Reads every answer sent so far: (unique, error) for each, checking the framing.
    pub fn answers(&mut self) -> Vec<(u64, i32)> {
        self.messages()
            .into_iter()
            .map(|(h, _)| (h.unique, h.error))
            .collect()
    }

    /// Reads every answer sent so far, with its body.
    pub fn messages(&mut self) -> Vec<(OutHeader, Vec<u8>)> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match self.rx.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("pipe read: {e}"),
            }
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < all.len() {
            let h = OutHeader::read_from(&all[at..]).expect("a whole answer header");
            assert!(h.len as usize >= std::mem::size_of::<OutHeader>());
            assert!(at + h.len as usize <= all.len(), "truncated answer");
            if h.unique != 0 {
                // unique 0 is a notification (poll wake-up), not an answer.
                let body = all[at + std::mem::size_of::<OutHeader>()..at + h.len as usize].to_vec();
                out.push((h, body));
            }
            at += h.len as usize;
        }
        out
    }
}

/// A request as the kernel frames it: header (`len` fixed up) and body.
pub fn request(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let h = InHeader {
        len: (std::mem::size_of::<InHeader>() + body.len()) as u32,
        opcode,
        unique,
        nodeid,
        ..Default::default()
    };
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}
