//! The non-blocking API, which both builds provide (`std` and `--no-default-features`, where the
//! crate is `no_std` and readers use a rundown counter).

mod common;

use std::sync::atomic::Ordering;

use common::{counter, iters, Poison};
use revocable::Revocable;

#[test]
fn access_then_deferred_revoke() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access().unwrap();
    g.check();
    assert!(r.revoke_deferred());
    assert!(!r.revoke_deferred());
    assert!(r.is_revoked());
    assert!(r.try_access().is_none());
    assert_eq!(r.access_or(19).err(), Some(19));
    assert_eq!(r.try_access_with(|p| p.check()), None);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(g);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(r);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn deferred_revoke_races_last_holder() {
    for _ in 0..iters(2000) {
        let drops = counter();
        let r = Revocable::new(Poison::new(&drops));
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..20 {
                    if let Some(g) = r.try_access() {
                        g.check();
                    }
                }
            });
            r.revoke_deferred();
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn owner_drop_and_into_inner() {
    let drops = counter();
    drop(Revocable::new(Poison::new(&drops)));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let r = Revocable::new(5);
    assert_eq!(r.into_inner(), Some(5));
}
