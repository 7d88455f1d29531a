//! One open file, one waiter (a [`FopsHandle`] arms the same notify waiter for every blocked read
//! and every poll of the file): a poll of the file must not take away the registration a parked
//! read relies on. A reader parks, a poller polls the same file over and over (never reading),
//! and events arrive one at a time; every event must wake the reader. Before the waiter was
//! re-armed without unregistering, an event landing inside a poll's re-arming was seen by the
//! poll alone and the reader stayed parked with the event queued.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use revocable_drivers::cros_ec::chardev::IOCEVENTMASK;
use revocable_drivers::cros_ec::device::CrosEcDevice;
use revocable_drivers::cros_ec::ec::Event;

const EVENTS: usize = 10_000;
/// How long the reader may stay parked with an event queued before that counts as a lost wake.
const LOST_AFTER: Duration = Duration::from_secs(2);

#[test]
fn a_poll_of_the_file_does_not_unarm_a_parked_read() {
    let d = CrosEcDevice::new();
    let h = d.node().open(libc::O_RDWR as u32).expect("open");
    // The version text first, as a reader of the kernel's chardev sees it; then events only.
    assert!(h.read(0, 64, 0).is_ok());
    h.ioctl(IOCEVENTMASK, 1 << 1, &[], 0).expect("event mask");
    let wakes = Arc::new((Mutex::new(0u64), Condvar::new()));
    let w = wakes.clone();
    h.set_waker(Arc::new(move || {
        *w.0.lock().unwrap() += 1;
        w.1.notify_all();
    }));
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (h, done) = (h.clone(), done.clone());
        std::thread::spawn(move || {
            let mut polls = 0u64;
            while !done.load(Ordering::Relaxed) {
                h.poll(true);
                polls += 1;
            }
            polls
        })
    };
    let mut lost = None;
    'events: for i in 0..EVENTS {
        // The reader parks (the read arms the waiter), then the event comes.
        let seen = *wakes.0.lock().unwrap();
        match h.read(0, 64, 0) {
            Err(libc::EAGAIN) => {}
            other => panic!("event {i}: the queue should be empty, got {other:?}"),
        }
        d.raise_event(&Event {
            typ: 1,
            payload: vec![i as u8],
        })
        .expect("raise");
        let start = Instant::now();
        let mut n = wakes.0.lock().unwrap();
        while *n == seen {
            let left = LOST_AFTER.saturating_sub(start.elapsed());
            if left.is_zero() {
                lost = Some(i);
                break 'events;
            }
            n = wakes.1.wait_timeout(n, left).unwrap().0;
        }
        drop(n);
        // Woken: the retry gets the event.
        match h.read(0, 64, 0) {
            Ok(b) => assert!(!b.is_empty(), "event {i}: an empty event"),
            other => panic!("event {i}: woken, but the read got {other:?}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    let polls = poller.join().unwrap();
    if let Some(i) = lost {
        let queued = h.read(0, 64, libc::O_NONBLOCK as u32).is_ok();
        panic!(
            "event {i} of {EVENTS} did not wake the parked read within {LOST_AFTER:?} \
             (event still queued: {queued}; {polls} polls ran)"
        );
    }
    assert!(polls > 0);
    h.release();
}
