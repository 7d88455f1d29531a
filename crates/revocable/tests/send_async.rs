//! Send guards and `revoke_async`, driven by hand (no runtime): runs under Miri.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{counter, Poison};
use revocable::{OwnedGuard, Revocable, RevokeAsync, SendGuard};

/// A waker that counts its wakes.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn waker() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn assert_send<S: Send>() {}
fn assert_sync<S: Sync>() {}
fn assert_unpin<S: Unpin>() {}

#[test]
fn guards_and_the_future_are_send_when_t_is_send_and_sync() {
    assert_send::<SendGuard<'static, String>>();
    assert_send::<OwnedGuard<String>>();
    assert_sync::<OwnedGuard<String>>();
    assert_send::<RevokeAsync<'static, String>>();
    assert_unpin::<RevokeAsync<'static, String>>();
}

#[test]
fn send_guard_dropped_on_another_thread_ends_the_access() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    std::thread::scope(|s| {
        let g = r.try_access_send().unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        s.spawn(move || {
            rx.recv().unwrap();
            g.check();
            drop(g);
        });
        s.spawn(|| {
            // Blocks until the other thread drops the guard.
            assert!(r.revoke());
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "revoke waits for the moved guard"
        );
        tx.send(()).unwrap();
    });
    assert!(r.try_access_send().is_none());
}

#[test]
fn owned_guard_keeps_the_revocable_alive_and_fails_after_revoke() {
    let drops = counter();
    let r = Arc::new(Revocable::new(Poison::new(&drops)));
    let g = r.try_access_owned().unwrap();
    let weak = Arc::downgrade(&r);
    assert!(r.revoke_deferred());
    assert!(r.try_access_owned().is_none());
    drop(r); // the guard's Arc keeps it alive
    assert!(weak.upgrade().is_some());
    let t = std::thread::spawn(move || {
        g.check();
        drop(g); // last holder: drops the value, then the Revocable
    });
    t.join().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(weak.upgrade().is_none());
}

#[test]
fn timeout_report_names_a_send_guard() {
    let r = Revocable::new(3);
    let g = r.try_access_send().unwrap();
    let err = r.revoke_timeout(Duration::from_millis(1)).unwrap_err();
    assert_eq!(err.remaining(), 1);
    assert!(err.holders()[0].is_send_guard());
    assert!(err.to_string().contains("Send guard"), "{err}");
    drop(g);
}

#[test]
fn many_send_guards_held_by_one_thread() {
    let n = common::iters(10_000);
    let r = Revocable::new(1u8);
    let guards: Vec<_> = (0..n).map(|_| r.try_access_send().unwrap()).collect();
    assert_eq!(r.holders().len(), n);
    let err = r.revoke_timeout(Duration::ZERO).unwrap_err();
    assert_eq!(err.remaining(), n);
    drop(guards); // the last one drops the value
    assert!(r.holders().is_empty());
}

#[test]
fn revoke_async_without_holders_resolves_at_first_poll() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let (wakes, w) = waker();
    let mut cx = Context::from_waker(&w);
    let mut f = pin!(r.revoke_async());
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(true));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    // Later revokers, of every kind, lose.
    assert_eq!(pin!(r.revoke_async()).poll(&mut cx), Poll::Ready(false));
    assert!(!r.revoke());
}

#[test]
fn last_holder_wakes_the_waiting_future_which_drops_the_value() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access_send().unwrap();
    let g2 = r.try_access().unwrap();
    let (wakes, w) = waker();
    let mut cx = Context::from_waker(&w);
    let mut f = pin!(r.revoke_async());
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
    assert!(r.try_access().is_none());
    std::thread::scope(|s| {
        s.spawn(move || drop(g)); // not the last one: may wake, the future stays pending
    });
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
    let before = wakes.0.load(Ordering::SeqCst);
    g2.check();
    drop(g2);
    assert!(
        wakes.0.load(Ordering::SeqCst) > before,
        "the last holder wakes the future"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "the future drops the value, not the holder"
    );
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(true));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn losing_future_waits_for_the_drop_by_a_sync_revoker() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access().unwrap();
    let (wakes, w) = waker();
    let mut cx = Context::from_waker(&w);
    std::thread::scope(|s| {
        let won = s.spawn(|| r.revoke());
        while r.try_access().is_some() {
            std::thread::yield_now();
        }
        let mut f = pin!(r.revoke_async());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        drop(g);
        assert!(won.join().unwrap());
        assert!(
            wakes.0.load(Ordering::SeqCst) > 0,
            "the dropper wakes the future"
        );
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(false));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn sync_revoker_waits_for_a_drop_by_the_future() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access_send().unwrap();
    let (_, w) = waker();
    let mut cx = Context::from_waker(&w);
    let mut f = pin!(r.revoke_async());
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
    std::thread::scope(|s| {
        let lost = s.spawn(|| {
            let won = r.revoke();
            (won, drops.load(Ordering::SeqCst))
        });
        drop(g);
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(true));
        assert_eq!(
            lost.join().unwrap(),
            (false, 1),
            "returns only after the drop"
        );
    });
}

#[test]
fn dropping_the_future_hands_the_drop_to_the_last_holder() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access_send().unwrap();
    let (_, w) = waker();
    let mut cx = Context::from_waker(&w);
    {
        let mut f = pin!(r.revoke_async());
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
    }
    assert!(r.try_access().is_none(), "revocation stays in progress");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    std::thread::scope(|s| {
        s.spawn(move || drop(g));
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the last holder dropped it"
    );
}

#[test]
fn dropping_the_future_after_the_last_holder_left_drops_the_value() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access().unwrap();
    let (_, w) = waker();
    let mut cx = Context::from_waker(&w);
    let mut f = Box::pin(r.revoke_async());
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
    drop(g); // wakes the future, which is never polled again
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(f);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn an_unpolled_future_does_nothing() {
    let r = Revocable::new(1);
    drop(r.revoke_async());
    assert!(r.try_access().is_some());
}

/// Racing synchronous, deferred and asynchronous revokers: exactly one wins, and every waiting
/// one returns only after the drop.
#[test]
fn racing_sync_and_async_revokers_have_one_winner() {
    for _ in 0..common::iters(200) {
        let drops = counter();
        let r = Revocable::new(Poison::new(&drops));
        let wins = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let holder = s.spawn(|| {
                if let Some(g) = r.try_access_send() {
                    std::thread::yield_now();
                    g.check();
                }
            });
            for k in 0..3 {
                let (r, wins, drops) = (&r, &wins, &drops);
                s.spawn(move || {
                    let won = if k == 0 {
                        r.revoke()
                    } else {
                        block_on(r.revoke_async())
                    };
                    assert_eq!(drops.load(Ordering::SeqCst), 1);
                    wins.fetch_add(usize::from(won), Ordering::SeqCst);
                });
            }
            holder.join().unwrap();
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1);
    }
}

/// A minimal executor: parks the thread until woken.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let w = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&w);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
