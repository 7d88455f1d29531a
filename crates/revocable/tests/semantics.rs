//! One test per semantic of the core contract (DESIGN.md) and per kernel-series defect
//! (KERNEL_SERIES.md, defects 2–4 and 8; defect 1 is a unit test that counts heavy barriers).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{counter, iters, Poison};
use revocable::Revocable;

/// Long enough never to expire on a healthy run, short enough that a failure does not stall.
const LONG: Duration = Duration::from_secs(10);

#[test]
fn revoke_returns_after_the_value_is_dropped() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    assert!(r.revoke());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(r.is_revoked());
    assert!(r.try_access().is_none());
    drop(r);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the Revocable's own drop must not drop again"
    );
}

#[test]
fn guard_keeps_value_alive_and_holders_may_sleep() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access().unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| r.revoke());
        while !r.is_revoked() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 5 } else { 50 }));
        assert!(!t.is_finished(), "revoke must wait for the holder");
        assert!(
            r.try_access().is_none(),
            "new accesses fail while revocation waits"
        );
        g.check();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(g);
        assert!(t.join().unwrap());
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn revoking_a_never_waits_for_holders_of_b() {
    let a = Revocable::new(1);
    let b = Revocable::new(2);
    let gb = b.try_access().unwrap();
    assert!(a.revoke_timeout(LONG).unwrap());
    assert_eq!(*gb, 2);
    drop(gb);
    assert!(b.revoke());
}

#[test]
fn nesting_same_resource_deeply_and_out_of_order() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let depth = if cfg!(miri) { 40 } else { 300 };
    let mut guards: Vec<_> = (0..depth).map(|_| r.try_access().unwrap()).collect();
    // Drop every other guard first (holes), then take more, then the rest.
    let mut kept = Vec::new();
    for (i, g) in guards.drain(..).enumerate() {
        if i % 2 == 0 {
            kept.push(g);
        }
    }
    for _ in 0..depth / 2 {
        kept.push(r.try_access().unwrap());
    }
    for g in &kept {
        g.check();
    }
    // From another thread: a holder's own revoke_timeout is a self-wait, which panics.
    let err = std::thread::scope(|s| {
        s.spawn(|| r.revoke_timeout(Duration::from_millis(10)).unwrap_err())
            .join()
            .unwrap()
    });
    assert_eq!(err.remaining(), kept.len());
    while let Some(g) = kept.pop() {
        g.check();
        if kept.len() % 3 == 0 && !kept.is_empty() {
            drop(kept.remove(0));
        }
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the last guard out drops the value"
    );
}

#[test]
fn nesting_many_resources() {
    let drops = counter();
    let n = if cfg!(miri) { 20 } else { 200 };
    let rs: Vec<_> = (0..n)
        .map(|_| Revocable::new(Poison::new(&drops)))
        .collect();
    let guards: Vec<_> = rs.iter().map(|r| r.try_access().unwrap()).collect();
    // Revoke the ones whose guards we do not hold any more, in an interleaved order.
    let mut guards: Vec<_> = guards.into_iter().map(Some).collect();
    for i in (0..n).rev().step_by(2) {
        guards[i] = None;
        assert!(rs[i].revoke_timeout(LONG).unwrap());
    }
    for (i, g) in guards.iter().enumerate() {
        if let Some(g) = g {
            g.check();
            assert!(rs[i].try_access().is_some());
        }
    }
    assert_eq!(drops.load(Ordering::SeqCst), n / 2);
    drop(guards);
    for r in &rs {
        r.revoke();
    }
    assert_eq!(drops.load(Ordering::SeqCst), n);
}

#[test]
fn a_panic_while_holding_releases_the_guard() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    std::thread::scope(|s| {
        let res = s
            .spawn(|| {
                let _g = r.try_access().unwrap();
                panic!("holder panics");
            })
            .join();
        assert!(res.is_err());
    });
    assert!(r.revoke_timeout(LONG).unwrap());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

struct PanicOnDrop(Arc<AtomicUsize>);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("T::drop panics");
    }
}

/// Documented outcome: the panic propagates out of the revoke that dropped the value, and the
/// Revocable is fully revoked (no access, other revokers return, no second drop).
#[test]
fn a_panic_in_drop_does_not_leave_it_half_revoked() {
    let drops = counter();
    let r = Revocable::new(PanicOnDrop(Arc::clone(&drops)));
    let res = catch_unwind(AssertUnwindSafe(|| r.revoke()));
    assert!(
        res.is_err(),
        "the panic propagates to the revoker that dropped the value"
    );
    assert!(r.is_revoked());
    assert!(r.try_access().is_none());
    assert!(
        !r.revoke_timeout(LONG).unwrap(),
        "a second revoke returns at once"
    );
    assert!(!r.revoke());
    drop(r);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn revoke_timeout_leaves_revocation_in_progress() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access().unwrap();
    let t0 = Instant::now();
    let err = std::thread::scope(|s| {
        s.spawn(|| r.revoke_timeout(Duration::from_millis(20)).unwrap_err())
            .join()
            .unwrap()
    });
    assert!(t0.elapsed() >= Duration::from_millis(20));
    assert_eq!(err.remaining(), 1);
    assert!(err.waited() >= Duration::from_millis(20));
    assert!(r.is_revoked());
    assert!(r.try_access().is_none());
    g.check();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(g);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the last holder drops the value"
    );
    assert!(!r.revoke_timeout(Duration::from_millis(1)).unwrap());
}

#[test]
fn revoke_timeout_report_names_thread_and_duration() {
    let r = Revocable::new(0u8);
    let (held, release) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("stuck-holder".into())
            .spawn_scoped(s, || {
                let _g = r.try_access().unwrap();
                held.wait();
                release.wait();
            })
            .unwrap();
        held.wait();
        let err = r.revoke_timeout(Duration::from_millis(30)).unwrap_err();
        let h = &err.holders()[0];
        assert_eq!(h.thread_name(), Some("stuck-holder"));
        match h.os_tid() {
            Some(tid) => assert_eq!(h.thread_id(), format!("tid {tid}")),
            None => assert_eq!(h.thread_id(), "unknown thread"), // Miri: no gettid
        }
        assert!(h.held_for() >= Duration::from_millis(30));
        assert!(!h.thread_exited());
        let text = err.to_string();
        assert!(text.contains("1 holder remaining"), "{text}");
        assert!(text.contains("'stuck-holder'"), "{text}");
        if cfg!(feature = "track-holders") {
            assert!(h.held_for_is_exact());
            let loc = h.location().expect("location tracked");
            assert!(loc.file().ends_with("semantics.rs"), "{loc}");
            assert!(text.contains("semantics.rs:"), "{text}");
        } else {
            assert!(text.contains("at least"), "{text}");
        }
        release.wait();
    });
    assert!(r.revoke_timeout(LONG).is_ok() || r.is_revoked());
}

#[test]
fn revoke_deferred_never_blocks_and_the_last_holder_drops() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let (g1, g2) = (r.try_access().unwrap(), r.try_access().unwrap());
    let other = Barrier::new(2);
    let done = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let g3 = r.try_access().unwrap();
            other.wait();
            done.wait();
            g3.check();
            drop(g3);
        });
        other.wait();
        assert!(r.revoke_deferred());
        assert!(!r.revoke_deferred());
        assert!(r.try_access().is_none());
        drop(g1);
        g2.check();
        drop(g2);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "a holder on another thread remains"
        );
        done.wait();
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the last holder, on the other thread, dropped it"
    );
}

#[test]
fn revoke_deferred_without_holders_drops_at_once() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    assert!(r.revoke_deferred());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_synchronous_revoke_after_a_deferred_one_waits_for_the_drop() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let g = r.try_access().unwrap();
    assert!(r.revoke_deferred());
    std::thread::scope(|s| {
        let t = s.spawn(|| r.revoke());
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 5 } else { 30 }));
        assert!(!t.is_finished());
        drop(g);
        assert!(!t.join().unwrap());
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn into_inner_returns_the_value_unless_revoked() {
    assert_eq!(
        Revocable::new(String::from("x")).into_inner().as_deref(),
        Some("x")
    );
    let r = Revocable::new(String::from("y"));
    r.revoke_deferred();
    assert_eq!(r.into_inner(), None);
}

#[test]
fn size_is_t_plus_at_most_64_bytes() {
    use std::mem::size_of;
    assert!(size_of::<Revocable<u8>>() <= size_of::<u8>() + 64);
    assert!(size_of::<Revocable<[u8; 4096]>>() <= 4096 + 64);
    assert!(size_of::<Revocable<String>>() <= size_of::<String>() + 64);
}

/// Defect 2: the access token lived in a shared handle; two threads overwrote each other's and
/// revoke hung. Here every access owns its token: threads sharing one `&Revocable` interleave and
/// nest freely, and revoke completes.
#[test]
fn defect2_each_access_owns_its_token() {
    let r = Revocable::new(7u64);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let a = r.try_access();
                    let b = r.try_access();
                    drop(a); // out of order on purpose
                    drop(b);
                    if r.is_revoked() {
                        break;
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 2 } else { 30 }));
        assert!(r.revoke_timeout(LONG).unwrap(), "revoke must not hang");
        stop.store(true, Ordering::Relaxed);
    });
}

/// Defect 3: taking a handle raced with revoke and freeing of the provider. Here taking an
/// access *is* the race-free check: every access either fails or finds the value alive, and the
/// value outlives it, however the threads interleave with revoke. (Freeing the `Revocable` itself
/// while accesses run is ruled out by the borrow checker: the `Arc` below keeps it alive.)
#[test]
fn defect3_taking_access_is_safe_against_concurrent_revoke() {
    for _ in 0..iters(300) {
        let drops = counter();
        let r = Arc::new(Revocable::new(Poison::new(&drops)));
        let start = Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..3 {
                let r = Arc::clone(&r);
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for _ in 0..iters(50) {
                        if let Some(g) = r.try_access() {
                            g.check();
                        }
                    }
                });
            }
            start.wait();
            r.revoke();
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

/// Defect 4: revoke was not idempotent. Exactly one of many concurrent revokers gets `true`, and
/// every one of them returns only after the value is dropped.
#[test]
fn defect4_revoke_is_idempotent_and_every_caller_waits() {
    for _ in 0..iters(50) {
        let drops = counter();
        let r = Revocable::new(Poison::new(&drops));
        let g = r.try_access().unwrap();
        let winners = AtomicUsize::new(0);
        let go = Barrier::new(5);
        std::thread::scope(|s| {
            for i in 0..4 {
                let (r, drops, winners, go) = (&r, &drops, &winners, &go);
                s.spawn(move || {
                    go.wait();
                    let won = match i % 3 {
                        0 => r.revoke(),
                        1 => r.revoke_timeout(LONG).unwrap(),
                        _ => {
                            let won = r.revoke_deferred();
                            r.revoke() || won
                        }
                    };
                    winners.fetch_add(usize::from(won), Ordering::SeqCst);
                    assert_eq!(drops.load(Ordering::SeqCst), 1, "returned before the drop");
                });
            }
            go.wait();
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 5 }));
            g.check();
            drop(g);
        });
        assert_eq!(winners.load(Ordering::SeqCst), 1);
    }
}

/// Defect 8: a leaked read section made revoke hang forever. A leaked guard still blocks
/// `revoke` (it may have lent `&T` out), but `revoke_timeout` reports it — even after its thread
/// exited — and `revoke_deferred` returns at once.
#[test]
fn defect8_a_leaked_access_is_reported_not_a_silent_hang() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("leaker".into())
            .spawn_scoped(s, || std::mem::forget(r.try_access().unwrap()))
            .unwrap()
            .join()
            .unwrap();
    });
    let err = r.revoke_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(err.remaining(), 1);
    let h = &err.holders()[0];
    assert_eq!(h.thread_name(), Some("leaker"));
    assert!(
        h.thread_exited(),
        "the holder's thread exited: the record was kept, not cleared"
    );
    assert!(err.to_string().contains("leaked guard"), "{err}");
    assert!(!r.revoke_deferred(), "already revoking");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "a leaked access keeps the value"
    );
    drop(r); // `&mut self` proves no live borrow: the owner's drop frees it
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A leaked guard of a resource that is then moved and dropped must not make a *later* resource
/// wait: announcements carry unique ids, not addresses.
#[test]
fn a_leaked_guard_does_not_haunt_later_resources() {
    for _ in 0..iters(100) {
        let r = Box::new(Revocable::new(1u64));
        std::mem::forget(r.try_access().unwrap());
        drop(r);
        let r2 = Box::new(Revocable::new(2u64)); // likely the same address
        assert!(r2.revoke_timeout(LONG).unwrap());
    }
}

#[test]
fn auto_traits_match_the_contract() {
    fn send<X: Send>() {}
    fn sync<X: Sync>() {}
    fn error<X: std::error::Error + Send + Sync + 'static>() {}
    send::<Revocable<std::sync::mpsc::Sender<u8>>>(); // Send, !Sync payload
    sync::<Revocable<u64>>();
    sync::<revocable::RevocableGuard<'static, u64>>();
    error::<revocable::RevokeTimeout>();
}

#[test]
fn revoke_by_a_thread_holding_the_same_resource_panics_instead_of_hanging() {
    let drops = counter();
    let r = Revocable::new(Poison::new(&drops));
    let res = catch_unwind(AssertUnwindSafe(|| {
        let _g = r.try_access().unwrap();
        r.revoke()
    }));
    let msg = res.unwrap_err();
    let msg = msg
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| msg.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("");
    assert!(msg.contains("would wait for itself"), "{msg}");
    // The guard dropped during unwinding and, revocation having been handed over, dropped T.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(r.try_access().is_none());
    assert!(!r.revoke());
}

#[test]
fn several_holders_leaving_together_after_a_deferred_revoke_drop_once() {
    for _ in 0..iters(200) {
        let drops = counter();
        let r = Revocable::new(Poison::new(&drops));
        let (held, go) = (Barrier::new(4), Barrier::new(4));
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let g = r.try_access().unwrap();
                    held.wait();
                    go.wait();
                    g.check();
                });
            }
            held.wait();
            assert!(r.revoke_deferred());
            go.wait();
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

/// CPU time this thread has used, from /proc (clock ticks, usually 10 ms).
#[cfg(target_os = "linux")]
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap() // utime + stime
}

/// A storm of failing accesses (a poll loop after unplug) must not make a waiting revoker spin.
#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn failing_accesses_do_not_make_a_waiting_revoker_spin() {
    let r = Revocable::new(0u64);
    let g = r.try_access().unwrap();
    let stop = AtomicBool::new(false);
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let revoker = s.spawn(|| {
            let before = thread_cpu_ticks();
            assert!(r.revoke());
            thread_cpu_ticks() - before
        });
        while !r.is_revoked() {
            std::thread::yield_now();
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if r.try_access().is_none() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(g);
        let ticks = revoker.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(failed.load(Ordering::Relaxed) > 1000);
        assert!(
            ticks <= 5,
            "the waiting revoker used {ticks} ticks of CPU during the storm"
        );
    });
}

/// The last holder drops the value after a deferred revoke while a second revoker waits: the
/// drop's panic comes out of that guard's drop, and the waiter returns normally. Which of the
/// two drops the value is a race (a waiter that has not yet parked looks once itself, and then
/// it drops and panics), so a round the waiter won is checked for one drop and run again with
/// a longer head start for the waiter (bounded).
#[test]
fn a_panic_in_drop_by_the_last_holder_after_a_deferred_revoke() {
    let mut head_start = Duration::from_millis(if cfg!(miri) { 2 } else { 20 });
    for _ in 0..6 {
        let drops = counter();
        let r = Revocable::new(PanicOnDrop(Arc::clone(&drops)));
        let g = r.try_access().unwrap();
        assert!(r.revoke_deferred());
        let holder_dropped = std::thread::scope(|s| {
            let waiter = s.spawn(|| r.revoke_timeout(LONG));
            std::thread::sleep(head_start);
            let res = catch_unwind(AssertUnwindSafe(|| drop(g)));
            let waited = waiter.join();
            match res {
                Err(_) => {
                    assert!(
                        !waited.expect("only one drop panics").unwrap(),
                        "a waiting revoker returns normally"
                    );
                    true
                }
                Ok(()) => {
                    assert!(waited.is_err(), "the value was dropped, by the waiter");
                    false
                }
            }
        });
        assert!(r.try_access().is_none());
        drop(r);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        if holder_dropped {
            return;
        }
        head_start *= 4;
    }
    panic!("the waiter dropped the value in every round: the last holder never did");
}

/// A guard leaked by a thread that then exited blocks `revoke()` for good (it may have lent `&T`
/// out); the blocked revoker is left behind on purpose.
#[cfg(not(miri))]
#[test]
fn revoke_waits_for_a_guard_leaked_by_an_exited_thread() {
    let r: &'static Revocable<u8> = Box::leak(Box::new(Revocable::new(1)));
    std::thread::spawn(move || std::mem::forget(r.try_access().unwrap()))
        .join()
        .unwrap();
    let revoker = std::thread::spawn(move || r.revoke());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !revoker.is_finished(),
        "revoke must keep waiting for the leaked access"
    );
    assert!(r.is_revoked());
    assert!(r.try_access().is_none());
}
