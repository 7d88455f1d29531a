//! Parked requests and FUSE_INTERRUPT.
//!
//! A request that must wait (a blocking read, say) is *parked*: its [`Reply`] goes into a
//! [`Parked`] slot registered under its `unique`, and the dispatch thread moves on. Later, exactly
//! one party takes the reply out of the slot: the thread that completes or retries the request
//! (data arrived, device unplugged → ENODEV, file closed → its errno), the interrupt handler
//! (→ EINTR), or session teardown; or nobody ever puts it there, when `park` finds the request
//! already interrupted and answers EINTR itself.
//!
//! An interrupt can arrive before its request is parked: the kernel sends `FUSE_INTERRUPT` as
//! soon as the request reached the server, which may not have started it yet (it waits in a ring
//! entry, or one `/dev/fuse` thread read it and another read its interrupt before the first
//! dispatched it) or may still be running it (a read that found no data
//! and is about to park, or one taken out for a retry). Such an interrupt is remembered, and the
//! request is answered `EINTR` when it parks. Answering the interrupt `EAGAIN` instead, which asks
//! the kernel to send it again, works only over `/dev/fuse`: over io_uring the kernel looks the
//! target up among the requests read from `/dev/fuse` (`fuse_dev_do_write` searches the device's
//! own processing list; a ring request sits in its queue's), finds nothing, fails the reply with
//! `ENOENT` and never sends the interrupt again, leaving the client deaf to further signals and
//! SIGKILL waiting in `request_wait_answer` until the request completes.
//!
//! Invariants: the slot is emptied at most once (under its mutex) and the registry entry is
//! removed by whoever empties it, so each parked request gets exactly one answer; an interrupt
//! either takes a parked slot's reply under the table lock or is remembered under it, and `park`
//! consults the memory under the same lock, so an interrupt is never lost between the two (a slot
//! whose reply another thread is taking, to retry it, counts as not parked). Lock order: the
//! table, then a slot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::reply::Reply;

/// At most this many interrupts of requests not parked are remembered: the latest unmatched ones,
/// the oldest going first. A remembered interrupt whose request never parks (it was answered
/// meanwhile, the common case) stays until pushed out; it matches nothing else, as the kernel
/// never reuses a request id within a connection. Look-up is a set's; using up a match also
/// scans the order (at most this long), under the table lock, once per interrupted park.
pub const INTERRUPT_MEMORY_LEN: usize = 1024;

/// The table of parked requests, by `unique`, and the interrupts that came before their request
/// parked.
#[derive(Debug, Default)]
pub struct Parking {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    parked: HashMap<u64, Weak<Parked>>,
    /// Interrupted requests not parked when their interrupt came: the set, and its order of
    /// arrival (oldest first; the same members).
    interrupted: HashSet<u64>,
    order: VecDeque<u64>,
}

/// A parked request: its reply waits here until completed, interrupted or torn down.
///
/// # Invariants
/// `reply` is `Some` from `park` until exactly one party empties it (`take`, or `Parking`'s
/// interrupt under the table lock), and never `Some` in a slot `park` answered EINTR; while
/// `Some`, `parking` has an entry for `unique` pointing at this slot.
#[derive(Debug)]
pub struct Parked {
    unique: u64,
    reply: Mutex<Option<Reply>>,
    parking: Weak<Parking>,
}

impl Parking {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `reply`; the returned slot is how the completer finds it again. If the request was
    /// interrupted before it parked, it is answered `EINTR` now instead, and the slot is empty.
    pub fn park(self: &Arc<Self>, reply: Reply) -> Arc<Parked> {
        let unique = reply.unique();
        let p = Arc::new(Parked {
            unique,
            reply: Mutex::new(None),
            parking: Arc::downgrade(self),
        });
        let mut t = self.table();
        if t.interrupted.remove(&unique) {
            t.order.retain(|u| *u != unique);
            drop(t);
            reply.error(libc::EINTR);
            return p;
        }
        *p.reply.lock().unwrap_or_else(|e| e.into_inner()) = Some(reply);
        t.parked.insert(unique, Arc::downgrade(&p));
        p
    }

    /// Handles FUSE_INTERRUPT for `unique`: answers the parked request with EINTR and returns true,
    /// or returns false when no such request is parked; it is then remembered (see
    /// [`INTERRUPT_MEMORY_LEN`]), so that the request is answered EINTR if it parks later. The
    /// interrupt itself takes no answer either way.
    pub fn interrupt(&self, unique: u64) -> bool {
        let reply = {
            let mut t = self.table();
            let slot = t.parked.get(&unique).and_then(Weak::upgrade);
            // Taken under the table lock: a slot whose reply another thread is taking out (to
            // retry it) has none here, and the interrupt is remembered for its next park. The
            // upgraded slot may be the last reference and drop here, under the lock: safe only
            // because its reply is None by then, so its Drop does not take the table lock.
            let r = slot.and_then(|p| p.reply.lock().unwrap_or_else(|e| e.into_inner()).take());
            if r.is_some() {
                t.parked.remove(&unique);
            } else {
                t.remember(unique);
            }
            r
        };
        match reply {
            Some(r) => {
                r.error(libc::EINTR);
                true
            }
            None => false,
        }
    }

    /// Interrupts remembered (see [`INTERRUPT_MEMORY_LEN`]): of requests not parked yet, and
    /// stale ones of requests answered without parking.
    pub fn interrupted_unparked(&self) -> usize {
        self.table().order.len()
    }

    /// Answers every parked request with `errno` (session teardown).
    pub fn fail_all(&self, errno: i32) {
        let all: Vec<_> = self.table().parked.values().cloned().collect();
        for p in all.iter().filter_map(Weak::upgrade) {
            if let Some(r) = p.take() {
                r.error(errno);
            }
        }
    }

    /// Number of requests parked right now.
    pub fn len(&self) -> usize {
        self.table().parked.len()
    }

    /// True when nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    /// Remembers an interrupt of `unique` (not parked), forgetting the oldest beyond the bound.
    fn remember(&mut self, unique: u64) {
        if !self.interrupted.insert(unique) {
            return;
        }
        self.order.push_back(unique);
        while self.order.len() > INTERRUPT_MEMORY_LEN {
            if let Some(old) = self.order.pop_front() {
                self.interrupted.remove(&old);
            }
        }
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
            parking.table().parked.remove(&self.unique);
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
        // The completer wins: the interrupt finds nothing (remembered, matching nothing later).
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
    fn an_interrupt_before_the_park_answers_the_park() {
        let (ch, mut r) = pipe_channel();
        let parking = Arc::new(Parking::default());
        // The interrupt comes while the request is still being served (not parked).
        assert!(!parking.interrupt(46));
        assert_eq!(parking.interrupted_unparked(), 1);
        let p = parking.park(Reply::new(ch.clone(), 46));
        let h = next_reply(&mut r);
        assert_eq!(
            (h.unique, h.error),
            (46, -libc::EINTR),
            "answered at the park"
        );
        assert!(!p.is_pending() && p.take().is_none(), "an empty slot");
        assert!(parking.is_empty());
        assert_eq!(parking.interrupted_unparked(), 0, "used up");
        // Another request parks normally.
        let q = parking.park(Reply::new(ch, 48));
        assert!(q.is_pending());
        assert_eq!(parking.len(), 1);
    }

    #[test]
    fn remembered_interrupts_are_bounded() {
        let mut t = Table::default();
        for u in 0..(INTERRUPT_MEMORY_LEN as u64 + 10) {
            t.remember(u);
        }
        assert_eq!(t.order.len(), INTERRUPT_MEMORY_LEN);
        assert_eq!(t.interrupted.len(), INTERRUPT_MEMORY_LEN);
        assert_eq!(t.order.front(), Some(&10), "the oldest went");
        assert!(!t.interrupted.contains(&9) && t.interrupted.contains(&10));
        t.remember(5000);
        t.remember(5000);
        assert_eq!(t.order.iter().filter(|u| **u == 5000).count(), 1);
        assert_eq!(t.order.len(), t.interrupted.len());
    }

    /// The window a review found: an interrupt while another thread is taking the slot's reply
    /// out (to retry the request) finds the slot in the table but empty. It must be remembered, so
    /// that the retry's re-park answers EINTR.
    #[test]
    fn an_interrupt_while_the_reply_is_being_taken_is_remembered() {
        let (ch, mut r) = pipe_channel();
        let parking = Arc::new(Parking::default());
        let p = parking.park(Reply::new(ch, 50));
        // The first half of take(): the reply is out, the table entry not yet removed.
        let reply = p.reply.lock().unwrap().take().unwrap();
        assert!(!parking.interrupt(50));
        p.unpark();
        // The retry would still block: it parks again, and the remembered interrupt answers.
        let again = parking.park(reply);
        assert_eq!(next_reply(&mut r).error, -libc::EINTR);
        assert!(!again.is_pending());
        assert!(parking.is_empty());
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
