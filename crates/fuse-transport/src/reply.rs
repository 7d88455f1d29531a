//! Replies: each request is answered exactly once, by whichever thread holds its [`Reply`].
//!
//! Invariant: a `Reply` is consumed by the call that answers; a `Reply` dropped unanswered answers
//! EIO, so no client ever waits forever for a request the server forgot.

use std::io::IoSlice;
use std::sync::Arc;

use super::abi::{OutHeader, Pod};
use super::channel::Channel;
use super::uring::Slot;

/// Where the answer goes: `/dev/fuse`, or the io_uring entry the request came in.
#[derive(Debug)]
enum Sink {
    Dev(Arc<Channel>),
    Ring(Arc<Slot>),
}

/// The right (and duty) to answer one request.
///
/// # Invariants
/// `done` is false until the single reply has been written.
#[derive(Debug)]
pub struct Reply {
    sink: Sink,
    unique: u64,
    done: bool,
}

impl Reply {
    pub(crate) fn new(ch: Arc<Channel>, unique: u64) -> Reply {
        Reply {
            sink: Sink::Dev(ch),
            unique,
            done: false,
        }
    }

    /// A reply to the request that io_uring put into `slot`.
    pub(crate) fn ring(slot: Arc<Slot>, unique: u64) -> Reply {
        Reply {
            sink: Sink::Ring(slot),
            unique,
            done: false,
        }
    }

    /// The request's `unique` id.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    fn send(&mut self, error: i32, parts: &[&[u8]]) {
        self.done = true;
        let ch = match &self.sink {
            Sink::Dev(ch) => ch,
            Sink::Ring(slot) => return slot.answer(self.unique, error, parts),
        };
        let len = std::mem::size_of::<OutHeader>() + parts.iter().map(|p| p.len()).sum::<usize>();
        let h = OutHeader {
            len: len as u32,
            error,
            unique: self.unique,
        };
        // The header and up to 3 parts on the stack (every reply here has at most 3 parts);
        // more go to the heap.
        let body = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| IoSlice::new(p));
        let mut small = [IoSlice::new(&[]); 4];
        small[0] = IoSlice::new(h.as_bytes());
        let mut n = 1;
        let mut big = Vec::new();
        for s in body {
            if n < small.len() {
                small[n] = s;
                n += 1;
            } else {
                if big.is_empty() {
                    big.extend_from_slice(&small);
                }
                big.push(s);
            }
        }
        let iov = if big.is_empty() {
            &small[..n]
        } else {
            &big[..]
        };
        // A failed reply means the connection is gone; the session loop sees that on its own.
        let _ = ch.send(iov);
    }

    /// Answers success with the concatenation of `parts` as the body.
    pub fn ok(mut self, parts: &[&[u8]]) {
        self.send(0, parts);
    }

    /// Answers success with one plain struct as the body.
    pub fn ok_pod<T: Pod>(self, body: &T) {
        self.ok(&[body.as_bytes()]);
    }

    /// For requests that take no answer (FORGET and INTERRUPT, which the kernel sends over
    /// `/dev/fuse` only; an io_uring entry must always be handed back, so there it answers
    /// ENOSYS).
    pub(crate) fn no_reply(mut self) {
        match self.sink {
            Sink::Dev(_) => self.done = true,
            Sink::Ring(_) => self.send(-libc::ENOSYS, &[]),
        }
    }

    /// Answers with a positive errno (sent negated, as the kernel expects).
    pub fn error(mut self, errno: i32) {
        self.send(-errno.abs(), &[]);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.done {
            self.send(-libc::EIO, &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn replies_with_few_and_many_parts_arrive_whole() {
        let (ch, mut r) = crate::testing::pipe_channel();
        for parts in [
            vec![&b"ab"[..], b"", b"c"],
            vec![&b"1"[..], b"22", b"", b"333", b"4444", b"55555"],
        ] {
            let want: Vec<u8> = parts.concat();
            Reply::new(ch.clone(), 9).ok(&parts);
            let mut b = vec![0u8; 16 + want.len()];
            r.read_exact(&mut b).unwrap();
            let h = OutHeader::read_from(&b).unwrap();
            assert_eq!((h.len as usize, h.error, h.unique), (b.len(), 0, 9));
            assert_eq!(&b[16..], &want[..]);
        }
    }
}
