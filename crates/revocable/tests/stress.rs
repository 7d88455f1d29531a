//! Poison-on-drop stress: readers assert the value is alive while they hold it; revokers race on
//! each resource; resources are recycled. At least 10^6 accesses (fewer under Miri).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::{counter, Poison};
use revocable::Revocable;

#[test]
fn poison_on_drop_stress() {
    const SLOTS: usize = 4;
    let target = if cfg!(miri) { 2_000 } else { 1_000_000 };
    let drops = counter();
    let created = AtomicUsize::new(SLOTS);
    let accesses = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    // The current generation of each slot; revokers swap in a fresh resource after revoking.
    let slots: Vec<RwLock<Arc<Revocable<Poison>>>> = (0..SLOTS)
        .map(|_| RwLock::new(Arc::new(Revocable::new(Poison::new(&drops)))))
        .collect();
    let winners = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..3 {
            let (slots, accesses, failed) = (&slots, &accesses, &failed);
            s.spawn(move || {
                let mut i = t;
                while accesses.load(Ordering::Relaxed) < target {
                    let r = Arc::clone(&slots[i % SLOTS].read().unwrap());
                    for _ in 0..64 {
                        match r.try_access() {
                            Some(g) => {
                                g.check();
                                if i % 97 == 0 {
                                    // nest a second resource inside
                                    let r2 = Arc::clone(&slots[(i + 1) % SLOTS].read().unwrap());
                                    if let Some(g2) = r2.try_access() {
                                        g2.check();
                                    };
                                }
                                if i % 4099 == 0 {
                                    std::thread::sleep(Duration::from_micros(50));
                                }
                                g.check();
                                accesses.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                        i = i.wrapping_add(1);
                    }
                }
            });
        }
        // Two revokers race on the same slot; each round, one of three revoke kinds.
        for k in 0..2 {
            let (slots, accesses, drops, created, winners) =
                (&slots, &accesses, &drops, &created, &winners);
            s.spawn(move || {
                let mut round = k;
                while accesses.load(Ordering::Relaxed) < target {
                    let slot = &slots[round % SLOTS];
                    let r = Arc::clone(&slot.read().unwrap());
                    let won = match round % 3 {
                        0 => r.revoke(),
                        1 => r
                            .revoke_timeout(Duration::from_secs(30))
                            .expect("no leaked guards here"),
                        _ => r.revoke_deferred(),
                    };
                    if won {
                        winners.fetch_add(1, Ordering::Relaxed);
                        let mut w = slot.write().unwrap();
                        if Arc::ptr_eq(&w, &r) {
                            *w = Arc::new(Revocable::new(Poison::new(drops)));
                            created.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if round % 3 != 2 {
                        assert!(r.try_access().is_none());
                    }
                    round += 1;
                    std::thread::yield_now();
                }
            });
        }
    });
    drop(slots);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        created.load(Ordering::SeqCst),
        "every value dropped exactly once"
    );
    assert!(winners.load(Ordering::Relaxed) > 0);
    eprintln!(
        "stress: {} accesses, {} failed (revoked), {} resources",
        accesses.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        created.load(Ordering::Relaxed)
    );
}
