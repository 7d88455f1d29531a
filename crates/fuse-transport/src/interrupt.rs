//! Parked requests and FUSE_INTERRUPT.
//!
//! A request that must wait (a blocking read, say) is *parked*: its [`Reply`] goes into a
//! [`Parked`] slot registered under its `unique`, and the dispatch thread moves on. Later, exactly
//! one of three parties takes the reply out of the slot: the thread that completes the request
//! (data arrived, device unplugged → ENODEV), the interrupt handler (→ EINTR), or session teardown.
//!
//! Invariant: the slot is emptied at most once (under its mutex) and the registry entry is removed
//! by whoever empties it, so each parked request gets exactly one answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::reply::Reply;

/// The table of parked requests, by `unique`.
#[derive(Debug, Default)]
pub struct Parking {
    table: Mutex<HashMap<u64, Weak<Parked>>>,
}

/// A parked request: its reply waits here until completed, interrupted or torn down.
///
/// # Invariants
/// `reply` is `Some` until exactly one `take` empties it; while `Some`, `parking` has an entry for
/// `unique` pointing at this slot.
#[derive(Debug)]
pub struct Parked {
    unique: u64,
    reply: Mutex<Option<Reply>>,
    parking: Weak<Parking>,
}

impl Parking {
    /// Parks `reply`; the returned slot is how the completer finds it again.
    pub fn park(self: &Arc<Self>, reply: Reply) -> Arc<Parked> {
        let unique = reply.unique();
        let p = Arc::new(Parked {
            unique,
            reply: Mutex::new(Some(reply)),
            parking: Arc::downgrade(self),
        });
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(unique, Arc::downgrade(&p));
        p
    }

    /// Handles FUSE_INTERRUPT for `unique`: answers the parked request with EINTR and returns true,
    /// or returns false when no such request is parked (not parked yet, or already answered).
    pub fn interrupt(&self, unique: u64) -> bool {
        let p = self
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&unique)
            .and_then(Weak::upgrade);
        match p.and_then(|p| p.take()) {
            Some(r) => {
                r.error(libc::EINTR);
                true
            }
            None => false,
        }
    }

    /// Answers every parked request with `errno` (session teardown).
    pub fn fail_all(&self, errno: i32) {
        let all: Vec<_> = self
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for p in all.iter().filter_map(Weak::upgrade) {
            if let Some(r) = p.take() {
                r.error(errno);
            }
        }
    }

    /// Number of requests parked right now.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Parked {
    /// Takes the reply out, if nobody did yet; the taker must answer it.
    pub fn take(&self) -> Option<Reply> {
        let r = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
        if r.is_some() {
            self.unpark();
        }
        r
    }

    /// Removes this request from the table interrupts are looked up in.
    fn unpark(&self) {
        if let Some(parking) = self.parking.upgrade() {
            parking
                .table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.unique);
        }
    }

    /// True while the request still waits for its answer.
    pub fn is_pending(&self) -> bool {
        self.reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // A slot dropped while still holding its reply: the Reply's own Drop answers EIO; make sure
        // the table entry goes too.
        if self.reply.get_mut().map(|r| r.is_some()).unwrap_or(false) {
            self.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{OutHeader, Pod};
    use crate::testing::pipe_channel;
    use std::io::Read;

    fn next_reply(r: &mut std::fs::File) -> OutHeader {
        let mut b = [0u8; 16];
        r.read_exact(&mut b).unwrap();
        OutHeader::read_from(&b).unwrap()
    }

    #[test]
    fn parked_reply_is_answered_exactly_once() {
        let (ch, mut r) = pipe_channel();
        let parking = Arc::new(Parking::default());
        let p = parking.park(Reply::new(ch.clone(), 42));
        assert_eq!(parking.len(), 1);
        // The interrupt wins: EINTR, and the completer finds nothing to answer.
        assert!(parking.interrupt(42));
        assert!(!parking.interrupt(42));
        assert!(p.take().is_none());
        assert!(parking.is_empty());
        let h = next_reply(&mut r);
        assert_eq!((h.unique, h.error, h.len), (42, -libc::EINTR, 16));
        // The completer wins: the interrupt finds nothing (the server then answers it EAGAIN).
        let p = parking.park(Reply::new(ch.clone(), 44));
        p.take().unwrap().ok(&[b"data"]);
        assert!(!parking.interrupt(44));
        let h = next_reply(&mut r);
        assert_eq!((h.unique, h.error, h.len), (44, 0, 20));
        let mut d = [0u8; 4];
        r.read_exact(&mut d).unwrap();
        assert_eq!(&d, b"data");
    }

    #[test]
    fn teardown_and_dropped_replies_answer() {
        let (ch, mut r) = pipe_channel();
        let parking = Arc::new(Parking::default());
        let _a = parking.park(Reply::new(ch.clone(), 1));
        let _b = parking.park(Reply::new(ch.clone(), 2));
        parking.fail_all(libc::ENODEV);
        let mut got = [next_reply(&mut r), next_reply(&mut r)].map(|h| (h.unique, h.error));
        got.sort();
        assert_eq!(got, [(1, -libc::ENODEV), (2, -libc::ENODEV)]);
        // A reply nobody answered answers EIO when dropped.
        drop(Reply::new(ch.clone(), 3));
        let h = next_reply(&mut r);
        assert_eq!((h.unique, h.error), (3, -libc::EIO));
        // A parked slot dropped with its reply still inside: EIO, and the table forgets it.
        drop(parking.park(Reply::new(ch, 4)));
        assert_eq!(next_reply(&mut r).error, -libc::EIO);
        assert!(parking.is_empty());
    }
}
