//! Ports of the kernel series' KUnit suite `revocable_test`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use common::{counter, iters, Poison};
use revocable::Revocable;

#[test]
fn basic() {
    let r = Revocable::new(0x1234_5678u32);
    let g = r.try_access().expect("live resource");
    assert_eq!(*g, 0x1234_5678);
}

#[test]
fn revocation() {
    let r = Revocable::new(String::from("res"));
    assert_eq!(r.try_access().as_deref().map(String::as_str), Some("res"));
    assert!(r.revoke());
    assert!(r.try_access().is_none());
}

/// The scoped forms: the body sees the resource before revoke and "NULL" after; the early-return
/// forms return their error after revoke.
#[test]
fn try_access_macro() {
    let r = Revocable::new(42);
    let scoped = |r: &Revocable<i32>| match r.try_access() {
        Some(v) => *v,
        None => -1,
    };
    fn or_return_err(r: &Revocable<i32>) -> Result<i32, &'static str> {
        let v = r.access_or("ENODEV")?;
        Ok(*v + 1)
    }
    fn or_skip(r: &Revocable<i32>, ran: &AtomicBool) {
        if let Some(v) = r.try_access() {
            ran.store(*v == 42, Ordering::Relaxed);
        }
    }
    let ran = AtomicBool::new(false);
    assert_eq!(scoped(&r), 42);
    assert_eq!(r.try_access_with(|v| *v), Some(42));
    assert_eq!(or_return_err(&r), Ok(43));
    or_skip(&r, &ran);
    assert!(ran.load(Ordering::Relaxed));

    r.revoke();
    ran.store(false, Ordering::Relaxed);
    assert_eq!(scoped(&r), -1);
    assert_eq!(r.try_access_with(|v| *v), None);
    assert_eq!(or_return_err(&r), Err("ENODEV"));
    or_skip(&r, &ran);
    assert!(
        !ran.load(Ordering::Relaxed),
        "skipped body must not run after revoke"
    );
}

/// A consumer inside its section blocks the revoke; a consumer entering after revoke gets None.
#[test]
fn concurrent_access() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let inside = Barrier::new(2);
    let revoked = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = r.try_access().unwrap();
            inside.wait();
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !revoked.load(Ordering::SeqCst),
                "revoke returned while a consumer was inside"
            );
            g.check();
            drop(g);
        });
        inside.wait();
        assert!(r.revoke());
        revoked.store(true, Ordering::SeqCst);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(r.try_access().is_none(), "late consumer must get None");
    });
}

/// Handles (accesses) being created while the provider is revoked: each either fails or sees a
/// live value for its whole duration.
#[test]
fn handle_lifetime_races_revoke() {
    for _ in 0..iters(200) {
        let drops = counter();
        let r = Revocable::new(Poison::new(&drops));
        let ok = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..iters(200) {
                        if let Some(g) = r.try_access() {
                            g.check();
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            r.revoke();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }
}
