//! `RevokeBatch`: per member, exactly the semantics of the single revokes (issue 8).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{counter, iters, Poison};
use revocable::{Revocable, RevokeBatch};

const LONG: Duration = Duration::from_secs(10);

fn nap() {
    std::thread::sleep(Duration::from_millis(if cfg!(miri) { 5 } else { 30 }));
}

#[test]
fn empty_batch_is_fine() {
    assert!(RevokeBatch::new().revoke().is_empty());
    assert!(RevokeBatch::new().revoke_deferred().is_empty());
    assert!(RevokeBatch::new()
        .revoke_timeout(Duration::ZERO)
        .unwrap()
        .is_empty());
    assert!(RevokeBatch::new().is_empty());
}

#[test]
fn every_member_is_revoked_and_dropped_before_revoke_returns() {
    let drops = counter();
    let rs: Vec<Revocable<Poison>> = (0..50)
        .map(|_| Revocable::new(Poison::new(&drops)))
        .collect();
    let mut b = RevokeBatch::with_capacity(rs.len());
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(b.push(r), i);
    }
    assert_eq!(b.len(), 50);
    assert_eq!(b.revoke(), vec![true; 50]);
    assert_eq!(drops.load(Ordering::SeqCst), 50);
    assert!(rs
        .iter()
        .all(|r| r.is_revoked() && r.try_access().is_none()));
    drop(rs);
    assert_eq!(drops.load(Ordering::SeqCst), 50, "no second drop");
}

#[test]
fn duplicates_win_once_and_drop_once() {
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let b = Revocable::new(Poison::new(&drops));
    let mut batch = RevokeBatch::new();
    batch.push(&a);
    batch.push(&b);
    batch.push(&a);
    batch.push(&a);
    assert_eq!(batch.revoke(), [true, true, false, false]);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    let mut again = RevokeBatch::new();
    again.push(&b);
    again.push(&b);
    assert_eq!(again.revoke_deferred(), [false, false]);
}

#[test]
fn already_revoked_members_report_false() {
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let b = Revocable::new(Poison::new(&drops));
    a.revoke();
    let mut batch = RevokeBatch::new();
    batch.push(&a);
    batch.push(&b);
    assert_eq!(
        batch.revoke_timeout(LONG).unwrap(),
        [false, true],
        "only b is won here"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn members_of_different_types() {
    let s = Revocable::new(String::from("regs"));
    let v = Revocable::new(vec![1u8, 2, 3]);
    let big = Revocable::new([7u64; 32]);
    let unit = Revocable::new(());
    let mut batch = RevokeBatch::new();
    batch.push(&s);
    batch.push(&v);
    batch.push(&big);
    batch.push(&unit);
    assert_eq!(batch.revoke(), [true; 4]);
    assert!(s.try_access().is_none() && v.try_access().is_none());
    assert!(big.try_access().is_none() && unit.try_access().is_none());
}

/// A held member never delays the drop of an unheld one, and the batch returns only after the
/// held one's drop, which comes after its holder leaves.
#[test]
fn a_held_member_does_not_delay_the_others() {
    let drops_a = counter();
    let drops_b = counter();
    let a = Revocable::new(Poison::new(&drops_a));
    let b = Revocable::new(Poison::new(&drops_b));
    let c = Revocable::new(Poison::new(&drops_a));
    let go = Barrier::new(2);
    std::thread::scope(|s| {
        let holder = s.spawn(|| {
            let g = b.try_access().unwrap();
            go.wait();
            while drops_a.load(Ordering::SeqCst) < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            g.check();
            nap();
            assert_eq!(
                drops_b.load(Ordering::SeqCst),
                0,
                "b dropped under its holder"
            );
            drop(g);
        });
        go.wait();
        let mut batch = RevokeBatch::new();
        batch.push(&a);
        batch.push(&b);
        batch.push(&c);
        assert_eq!(batch.revoke(), [true; 3]);
        assert_eq!(
            drops_b.load(Ordering::SeqCst),
            1,
            "returned before b's drop"
        );
        holder.join().unwrap();
    });
}

/// Several members held by several threads that leave in any order: the batch wakes for each.
#[test]
fn holders_leaving_one_by_one_wake_the_batch() {
    let drops = counter();
    let rs: Vec<Revocable<Poison>> = (0..4)
        .map(|_| Revocable::new(Poison::new(&drops)))
        .collect();
    let go = Barrier::new(5);
    std::thread::scope(|s| {
        for (i, r) in rs.iter().enumerate() {
            let go = &go;
            s.spawn(move || {
                let g = r.try_access().unwrap();
                go.wait();
                std::thread::sleep(
                    Duration::from_millis(if cfg!(miri) { 2 } else { 10 }) * (4 - i) as u32,
                );
                g.check();
            });
        }
        go.wait();
        let mut batch = RevokeBatch::new();
        rs.iter().for_each(|r| {
            batch.push(r);
        });
        assert_eq!(batch.revoke(), [true; 4]);
        assert_eq!(drops.load(Ordering::SeqCst), 4);
    });
}

/// A member held by a leaked guard: the others still drop; the timeout report names the member
/// and its holder.
#[test]
fn a_leaked_member_is_named_and_the_others_still_drop() {
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let leaked = Revocable::new(Poison::new(&drops));
    let c = Revocable::new(Poison::new(&drops));
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(leaked.try_access().unwrap()));
    });
    let mut batch = RevokeBatch::new();
    batch.push(&a);
    batch.push(&leaked);
    batch.push(&c);
    let err = batch.revoke_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(err.members(), [1]);
    assert_eq!(err.remaining(), 1);
    assert_eq!(err.holders()[0].member(), Some(1));
    assert!(err.holders()[0].thread_exited());
    let text = err.to_string();
    assert!(text.contains("member 1"), "{text}");
    assert_eq!(drops.load(Ordering::SeqCst), 2, "a and c dropped");
    assert!(leaked.try_access().is_none());
}

/// A member held by another thread past the deadline: revocation stays in progress and the
/// last holder drops it.
#[test]
fn timed_out_batch_hands_held_members_to_their_last_holder() {
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let b = Revocable::new(Poison::new(&drops));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let go = Barrier::new(2);
    std::thread::scope(|s| {
        let (b, go) = (&b, &go);
        s.spawn(move || {
            let g = b.try_access().unwrap();
            go.wait();
            rx.recv().unwrap();
            g.check();
        });
        go.wait();
        let mut batch = RevokeBatch::new();
        batch.push(&a);
        batch.push(b);
        let err = batch.revoke_timeout(Duration::from_millis(10)).unwrap_err();
        assert_eq!(err.members(), [1]);
        assert!(!err.holders()[0].thread_exited());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(b.try_access().is_none());
        tx.send(()).unwrap();
    });
    assert_eq!(drops.load(Ordering::SeqCst), 2, "the holder dropped b");
}

#[test]
fn deferred_batch_drops_unheld_at_once_and_held_at_their_last_leave() {
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let b = Revocable::new(Poison::new(&drops));
    let g = b.try_access().unwrap();
    let mut batch = RevokeBatch::new();
    batch.push(&a);
    batch.push(&b);
    assert_eq!(batch.revoke_deferred(), [true, true]);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "a dropped before returning"
    );
    g.check();
    drop(g);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "b dropped by its last holder"
    );
}

/// The same-thread self-wait check applies to every member: a panic, not a hang; the members
/// are still revoked and each is dropped when its last holder leaves.
#[test]
fn batch_revoke_by_a_holder_of_a_member_panics() {
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let b = Revocable::new(Poison::new(&drops));
    let g = b.try_access().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| {
        let mut batch = RevokeBatch::new();
        batch.push(&a);
        batch.push(&b);
        batch.revoke()
    }))
    .unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .copied()
        .unwrap_or_default()
        .to_owned()
        + err.downcast_ref::<String>().map_or("", String::as_str);
    assert!(msg.contains("wait for itself"), "{msg}");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(b.try_access().is_none());
    drop(g);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

/// Batches racing single revokers (sync, deferred, timed) and readers: exactly one winner per
/// resource, every waiting caller returns after each of its members' drops, no access after it.
#[test]
fn batches_race_single_revokers_and_readers() {
    const N: usize = 6;
    for round in 0..iters(200) {
        let drops: Arc<Vec<Arc<AtomicUsize>>> = Arc::new((0..N).map(|_| counter()).collect());
        let rs: Arc<Vec<Revocable<Poison>>> = Arc::new(
            drops
                .iter()
                .map(|d| Revocable::new(Poison::new(d)))
                .collect(),
        );
        let wins = Arc::new(Mutex::new(vec![0usize; N]));
        let start = Arc::new(Barrier::new(4));
        let mut ts = Vec::new();
        for who in 0..3 {
            let (rs, wins, drops, start) = (rs.clone(), wins.clone(), drops.clone(), start.clone());
            ts.push(std::thread::spawn(move || {
                start.wait();
                let mode = (who + round) % 3;
                let won: Vec<(usize, bool)> = match mode {
                    0 => {
                        let mut b = RevokeBatch::new();
                        for r in rs.iter().rev() {
                            b.push(r);
                        }
                        (0..N).rev().zip(b.revoke()).collect()
                    }
                    1 => (0..N)
                        .step_by(2)
                        .map(|i| (i, rs[i].revoke_timeout(LONG).unwrap()))
                        .collect(),
                    _ => {
                        let mut b = RevokeBatch::new();
                        for r in rs.iter().skip(1) {
                            b.push(r);
                        }
                        (1..N).zip(b.revoke_deferred()).collect()
                    }
                };
                for &(i, _) in &won {
                    assert!(rs[i].try_access().is_none(), "access after revoke");
                    if mode != 2 {
                        assert_eq!(drops[i].load(Ordering::SeqCst), 1, "returned before a drop");
                    }
                }
                let mut w = wins.lock().unwrap();
                for (i, won) in won {
                    w[i] += usize::from(won);
                }
            }));
        }
        let reader = {
            let rs = rs.clone();
            std::thread::spawn(move || {
                start.wait();
                for k in 0..iters(2000) {
                    if let Some(g) = rs[k % N].try_access() {
                        g.check();
                    }
                }
            })
        };
        for t in ts {
            t.join().unwrap();
        }
        reader.join().unwrap();
        let w = wins.lock().unwrap();
        assert!(w.iter().all(|&n| n == 1), "winners per resource: {w:?}");
        assert!(drops.iter().all(|d| d.load(Ordering::SeqCst) == 1));
    }
}

/// Concurrent revokes of distinct resources from many threads: each returns only after its
/// own value's drop (barriers may be shared between them).
#[test]
fn concurrent_revokers_sharing_barriers_stay_exact() {
    let n = if cfg!(miri) { 2 } else { 4 };
    let per = iters(2000);
    let bad = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                for i in 0..per {
                    let drops = counter();
                    let r = Revocable::new(Poison::new(&drops));
                    let g = r.try_access().unwrap();
                    drop(g);
                    let won = if i % 2 == 0 {
                        r.revoke()
                    } else {
                        r.revoke_deferred()
                    };
                    if !won || drops.load(Ordering::SeqCst) != 1 || r.try_access().is_some() {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

/// A panic in one member's `T::drop` leaves no member half-revoked: the others are dropped (or
/// handed to their last holder), later revokers of each return, and the panic propagates.
#[test]
fn a_panicking_drop_leaves_no_member_half_revoked() {
    struct Boom;
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("boom in T::drop");
        }
    }
    let drops = counter();
    let a = Revocable::new(Poison::new(&drops));
    let boom = Revocable::new(Boom);
    let c = Revocable::new(Poison::new(&drops));
    let held = Revocable::new(Poison::new(&drops));
    let go = Barrier::new(2);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (held_ref, go_ref) = (&held, &go);
        s.spawn(move || {
            let g = held_ref.try_access().unwrap();
            go_ref.wait();
            rx.recv().unwrap();
            g.check();
        });
        go.wait();
        for deferred in [false, true] {
            let err = catch_unwind(AssertUnwindSafe(|| {
                let mut batch = RevokeBatch::new();
                batch.push(&a);
                batch.push(&boom);
                batch.push(&c);
                batch.push(&held);
                if deferred {
                    batch.revoke_deferred()
                } else {
                    batch.revoke()
                }
            }));
            if !deferred {
                let p = err.unwrap_err();
                assert_eq!(p.downcast_ref::<&str>(), Some(&"boom in T::drop"));
                assert_eq!(drops.load(Ordering::SeqCst), 2, "a and c dropped");
                // Every member is complete: a later revoke returns (no "drop in progress").
                assert!(!boom.revoke_timeout(LONG).unwrap());
                assert!(!c.revoke_timeout(LONG).unwrap());
            } else {
                // Already revoked: nothing left to drop, nothing panics.
                assert_eq!(err.unwrap(), [false; 4]);
            }
        }
        assert!(held.try_access().is_none());
        tx.send(()).unwrap();
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        3,
        "the held one dropped by its holder"
    );
    assert!(!held.revoke_timeout(LONG).unwrap());
}
