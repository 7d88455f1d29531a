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
        let mut iov = Vec::with_capacity(parts.len() + 1);
        iov.push(IoSlice::new(h.as_bytes()));
        iov.extend(
            parts
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| IoSlice::new(p)),
        );
        // A failed reply means the connection is gone; the session loop sees that on its own.
        let _ = ch.send(&iov);
    }

    /// Answers success with the concatenation of `parts` as the body.
    pub fn ok(mut self, parts: &[&[u8]]) {
        self.send(0, parts);
    }

    /// Answers success with one plain struct as the body.
    pub fn ok_pod<T: Pod>(self, body: &T) {
        self.ok(&[body.as_bytes()]);
    }

    /// For requests that take no answer (FORGET, which the kernel sends over `/dev/fuse`
    /// only; an io_uring entry must always be handed back, so there it answers ENOSYS).
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
