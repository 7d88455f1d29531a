//! Unit tests that need the crate's internals.

use std::time::Duration;

use crate::{barrier, registry, Revocable};

/// Defect 1: creating a resource issued a grace period. Creating (and dropping, and accessing) a
/// resource must issue no heavy barrier; only a revoke does.
#[test]
fn defect1_creating_a_resource_costs_no_grace_period() {
    // Other tests run in parallel threads and may revoke; measure in a loop until a quiet window.
    for _ in 0..500 {
        let before = barrier::heavy_calls();
        for i in 0..1000 {
            let r = Revocable::new(i);
            assert_eq!(*r.try_access().unwrap(), i);
        }
        if barrier::heavy_calls() == before {
            let r = Revocable::new(0);
            r.revoke();
            assert!(
                barrier::heavy_calls() > before,
                "revoke asks for the heavy barrier"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("new/try_access kept issuing heavy barriers");
}

/// Counts return to baseline: after every access ends, no slot announces the resource.
#[test]
fn announcements_return_to_baseline() {
    let r = Revocable::new(1);
    let id = r.id();
    {
        let _a = r.try_access().unwrap();
        let _b = r.try_access().unwrap();
        assert_eq!(registry::count(id), 2);
    }
    assert_eq!(registry::count(id), 0);
    assert!(r.revoke());
    assert!(r.try_access().is_none());
    assert_eq!(
        registry::count(id),
        0,
        "a failed access leaves nothing behind"
    );
}

/// Held by the tests that start many threads or count claimed lines, so that one's threads do
/// not show up in the other's counts (tests of one binary run in parallel).
static MANY_THREADS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn many_threads() -> std::sync::MutexGuard<'static, ()> {
    MANY_THREADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads come and go: records of exited threads are reused, so the registry stays bounded.
#[test]
fn records_of_exited_threads_are_reused() {
    let _serial = many_threads();
    let r = Revocable::new(0u32);
    let n = if cfg!(miri) { 10 } else { 200 };
    let (_, before) = registry::record_stats();
    for _ in 0..n {
        std::thread::scope(|s| {
            s.spawn(|| assert!(r.try_access().is_some()));
        });
    }
    let (_, after) = registry::record_stats();
    // Other tests run concurrently and may own a few records; 200 exited threads must not add 200.
    assert!(after < before + 16, "records grew from {before} to {after}");
    assert!(r.revoke_timeout(Duration::from_secs(30)).unwrap());
}

/// A batch of many resources asks for one heavy barrier, not one per member.
#[test]
fn a_batch_asks_for_one_heavy_barrier() {
    let rs: Vec<Revocable<u32>> = (0..100).map(Revocable::new).collect();
    // Other tests run in parallel threads and may revoke; measure until a quiet window.
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(1));
        let before = barrier::heavy_calls();
        let mut b = crate::RevokeBatch::new();
        rs.iter().for_each(|r| {
            b.push(r);
        });
        let fresh: Vec<Revocable<u32>> = (0..100).map(Revocable::new).collect();
        let mut b2 = crate::RevokeBatch::new();
        fresh.iter().for_each(|r| {
            b2.push(r);
        });
        assert!(b2.revoke().iter().all(|&w| w));
        if barrier::heavy_calls() == before + 1 {
            drop(b);
            return;
        }
    }
    panic!("a batch of 100 never asked for exactly one heavy barrier");
}

/// The scan finds announcements in every place a thread can make one: inline slots, overflow
/// chunks of a deep nest, and lines of many threads across blocks.
#[test]
fn scan_sees_inline_overflow_and_many_lines() {
    let _serial = many_threads();
    let r = Revocable::new(5u8);
    let other = Revocable::new(6u8);
    let id = r.id();
    let depth = if cfg!(miri) { 20 } else { 100 };
    let mut gs = Vec::new();
    for i in 0..depth {
        gs.push(if i % 3 == 0 {
            other.try_access().unwrap()
        } else {
            r.try_access().unwrap()
        });
    }
    let mine = (0..depth).filter(|i| i % 3 != 0).count();
    assert_eq!(registry::count(id), mine);
    let set = registry::TagSet::new(&[id, other.id()]);
    let mut counts = [0u32; 2];
    registry::count_set(&set, &mut counts);
    assert_eq!(counts, [mine as u32, (depth - mine) as u32]);
    let threads = if cfg!(miri) { 3 } else { 150 };
    let go = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let _g = r.try_access().unwrap();
                go.wait(); // all hold
                go.wait(); // counted
            });
        }
        go.wait();
        assert_eq!(registry::count(id), mine + threads);
        go.wait();
    });
    drop(gs);
    assert_eq!(registry::count(id), 0);
    let (_, claimed) = registry::record_stats();
    assert!(claimed >= 1);
}

#[test]
fn tag_set_finds_members_only() {
    let tags: Vec<u64> = (1..=1000u64).map(|i| i << 8).collect();
    let set = registry::TagSet::new(&tags);
    for (i, &t) in tags.iter().enumerate() {
        assert_eq!(set.index(t), Some(i));
    }
    for t in [1u64, 255, 1001 << 8, u64::MAX] {
        assert_eq!(set.index(t), None);
    }
}

/// Concurrent revokers share heavy barriers: over many concurrent revokes, fewer barriers are
/// issued than requested, and none of them returns early (see `tests/batch.rs` for exactness).
#[cfg(all(target_os = "linux", not(miri), not(feature = "fence-readers")))]
#[test]
fn concurrent_revokers_share_barriers() {
    for _attempt in 0..20 {
        let (calls0, issued0) = (barrier::heavy_calls(), barrier::heavy_count());
        let shared0 = barrier::shared_count();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..2000 {
                        let r = Revocable::new(i);
                        r.revoke_deferred();
                    }
                });
            }
        });
        let calls = barrier::heavy_calls() - calls0;
        let issued = barrier::heavy_count() - issued0;
        if barrier::shared_count() > shared0 && issued < calls {
            return;
        }
    }
    panic!("8000 concurrent revokes never shared a heavy barrier");
}

/// The Send-guard pool grows to the most guards held at once, then is reused: holding 10,000
/// guards again, on other threads, claims no new line; nothing grows per thread.
#[test]
fn send_guard_pool_is_reused_across_threads() {
    let _serial = many_threads();
    let n = if cfg!(miri) { 200 } else { 10_000 };
    let r = Revocable::new(0u32);
    let hold = || {
        std::thread::scope(|s| {
            s.spawn(|| {
                let gs: Vec<_> = (0..n).map(|_| r.try_access_send().unwrap()).collect();
                assert_eq!(registry::count(r.id()), n);
                drop(gs);
            });
        })
    };
    hold();
    let (_, first) = registry::record_stats();
    assert!(
        crate::pool::depot_len() >= n - 64,
        "exited threads flush their magazines"
    );
    for _ in 0..3 {
        hold();
    }
    let (_, later) = registry::record_stats();
    // Slack: the depot refills a little early (it keeps half a magazine in reserve), and tests
    // running in parallel hold thread lines and cache slots in their magazines.
    assert!(
        later <= first + 12,
        "pool lines grew from {first} to {later} for the same peak"
    );
    assert_eq!(registry::count(r.id()), 0);
}

/// Guards taken on one thread and dropped on another move slots between magazines through the
/// depot, without losing or duplicating one (a duplicated slot would let one guard's drop
/// retract another's announcement).
#[test]
fn send_slots_migrate_between_threads_without_loss() {
    let _serial = many_threads();
    let n = if cfg!(miri) { 100 } else { 5_000 };
    let r = Revocable::new(1u8);
    // Rendezvous: at most one guard in flight (taken by the sender, not yet received).
    let (tx, rx) = std::sync::mpsc::sync_channel(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..n {
                tx.send(r.try_access_send().unwrap()).unwrap();
            }
            drop(tx);
        });
        let mut kept = Vec::new();
        // By value: a failed assertion drops `rx`, so the sender fails instead of blocking.
        for (i, g) in rx.into_iter().enumerate() {
            if i % 3 == 0 {
                kept.push(g);
            } else {
                drop(g);
            }
            // Every kept guard is still announced: no slot was handed out twice.
            let c = registry::count(r.id());
            assert!(
                (kept.len()..=kept.len() + 1).contains(&c),
                "{c} announced, {} kept",
                kept.len()
            );
        }
        assert_eq!(registry::count(r.id()), kept.len());
    });
    assert_eq!(registry::count(r.id()), 0);
}

/// A woken or completed future leaves nothing in the waker table.
#[test]
fn waker_table_is_empty_after_futures_finish() {
    use core::future::Future;
    use core::task::{Context, Poll, Waker};
    let r = Revocable::new(2);
    let g = r.try_access().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = core::pin::pin!(r.revoke_async());
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
    let mut lost = Box::pin(r.revoke_async());
    assert_eq!(lost.as_mut().poll(&mut cx), Poll::Pending);
    drop(g);
    assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(true));
    assert_eq!(lost.as_mut().poll(&mut cx), Poll::Ready(false));
    let r2 = Revocable::new(3);
    let g2 = r2.try_access().unwrap();
    let mut dropped_early = Box::pin(r2.revoke_async());
    assert_eq!(dropped_early.as_mut().poll(&mut cx), Poll::Pending);
    drop(dropped_early);
    drop(g2);
    assert_eq!(
        crate::wakers::registered_for(r.id()) + crate::wakers::registered_for(r2.id()),
        0
    );
}

/// Issue 10, item 4: a guard kept in a `thread_local!` (destroyed during thread teardown) no
/// longer leaves the thread's line behind: the line is handed back after every Rust
/// thread-local is gone, so thousands of such threads cost nothing afterwards.
#[test]
fn guard_in_a_thread_local_is_handed_back_with_its_thread() {
    use std::cell::RefCell;
    use std::sync::OnceLock;
    static RES: OnceLock<Revocable<u64>> = OnceLock::new();
    std::thread_local! {
        static KEPT: RefCell<Option<crate::RevocableGuard<'static, u64>>> =
            const { RefCell::new(None) };
    }
    let _serial = many_threads();
    let r = RES.get_or_init(|| Revocable::new(9));
    let n = if cfg!(miri) { 5 } else { 20_000 };
    let (_, before) = registry::record_stats();
    for _ in 0..n {
        std::thread::spawn(|| {
            let g = RES.get().unwrap().try_access().unwrap();
            KEPT.with(|k| *k.borrow_mut() = Some(g));
        })
        .join()
        .unwrap();
    }
    let (_, after) = registry::record_stats();
    assert!(
        after <= before + 2,
        "claimed lines grew from {before} to {after}"
    );
    assert_eq!(registry::count(r.id()), 0);
    assert!(r.revoke_timeout(Duration::from_secs(5)).is_ok());
}

/// A line whose thread never handed it back (orphaned) is reclaimed by the sweep once the
/// thread is gone and the line is zero; one still announcing something (a leaked guard) is kept.
#[test]
#[cfg(not(miri))] // the sweep cannot ask whether a thread exists under Miri: it keeps the line
fn orphaned_lines_are_swept_once_their_thread_is_gone() {
    let _serial = many_threads();
    let r = Revocable::new(1u8);
    let (_, start) = registry::record_stats();
    std::thread::scope(|s| {
        s.spawn(|| {
            drop(r.try_access().unwrap());
            // As if the exit handling never ran (a line claimed after the last destructor pass).
            registry::forget_exit_for_tests();
        });
        s.spawn(|| {
            std::mem::forget(r.try_access().unwrap());
            registry::forget_exit_for_tests();
        });
    });
    // A joined thread may linger in the kernel for a moment: sweep until it is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        registry::sweep_orphans();
        let (_, now) = registry::record_stats();
        if now <= start + 1 || std::time::Instant::now() > deadline {
            assert_eq!(
                now,
                start + 1,
                "the clean orphan is reclaimed, the leaked one kept"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(registry::count(r.id()), 1, "the leaked announcement stays");
    // Reported as exited once the kernel has let the thread go.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !r.holders()[0].thread_exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let h = r.holders();
    assert!(h[0].thread_exited() && !h[0].thread_exiting(), "{}", h[0]);
}

/// Issue 10, item 5: a deep nest costs overflow slots only while it lasts. Unwound, the line is
/// no longer flagged (scans skip its chunks); rebuilt, it reuses the same slots; nests built and
/// unwound in any order keep the capacity within twice the deepest nest.
#[test]
fn deep_nest_reuses_its_slots_and_stops_costing_scans_once_unwound() {
    let depth = if cfg!(miri) { 100 } else { 8_000 };
    let r = Revocable::new(0u32);
    let mut gs: Vec<_> = (0..depth).map(|_| r.try_access().unwrap()).collect();
    assert_eq!(registry::count(r.id()), depth);
    let (flagged, cap) = registry::local_overflow();
    assert!(flagged);
    assert!(
        cap >= depth - registry::INLINE && cap <= 2 * depth,
        "capacity {cap}"
    );
    // Unwind out of order: every third first, then the rest from the top.
    let mut i = 0;
    gs.retain(|_| {
        i += 1;
        i % 3 != 0
    });
    assert!(registry::local_overflow().0);
    drop(gs);
    assert_eq!(registry::count(r.id()), 0);
    assert_eq!(
        registry::local_overflow(),
        (false, cap),
        "unflagged, slots kept for reuse"
    );
    for _ in 0..3 {
        let gs: Vec<_> = (0..depth).map(|_| r.try_access().unwrap()).collect();
        assert_eq!(
            registry::local_overflow(),
            (true, cap),
            "the same slots again"
        );
        drop(gs);
    }
    assert!(r.revoke_timeout(Duration::from_secs(5)).is_ok());
}

/// Threads that only drop guards taken elsewhere (`spawn(move || drop(guard))`) hand the slots
/// they cached back at exit: the pool does not grow with the number of such threads.
#[test]
fn put_only_threads_hand_their_slots_back() {
    let _serial = many_threads();
    let r = std::sync::Arc::new(Revocable::new(0u8));
    let run = |n: usize| {
        for _ in 0..n {
            let g = r.try_access_owned().unwrap();
            std::thread::spawn(move || drop(g)).join().unwrap();
        }
    };
    run(50);
    let (_, first) = registry::record_stats();
    run(if cfg!(miri) { 20 } else { 400 });
    let (_, later) = registry::record_stats();
    assert!(
        later <= first + 2,
        "pool lines grew from {first} to {later}"
    );
}

/// Replacing or removing a waker drops the old one outside the table's lock: a waker that owns
/// the last reference to a future holding a Send guard of a resource under async revocation
/// would otherwise wake the table from inside it (a self-deadlock).
#[test]
fn a_waker_dropped_by_the_table_may_wake_the_table() {
    use core::future::Future;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    struct HoldsGuard(#[allow(dead_code)] Mutex<Option<crate::OwnedGuard<u8>>>);
    impl Wake for HoldsGuard {
        fn wake(self: Arc<Self>) {}
    }
    // 'static: the future moves to a watchdog-bounded thread below.
    static R: std::sync::OnceLock<Arc<Revocable<u8>>> = std::sync::OnceLock::new();
    let r = R.get_or_init(|| Arc::new(Revocable::new(3u8)));
    let holder = Arc::new(HoldsGuard(Mutex::new(r.try_access_owned())));
    let w1 = Waker::from(holder.clone());
    drop(holder); // the waker holds the only reference to the guard now
    let mut f = Box::pin(r.revoke_async());
    assert_eq!(
        f.as_mut().poll(&mut Context::from_waker(&w1)),
        Poll::Pending
    );
    drop(w1); // the table's clone is the last one
              // A re-poll with another waker replaces (drops) the table's clone: the guard's drop wakes
              // the table. It must not deadlock, and the future then finds the last access gone.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let w2 = Waker::noop();
        let mut cx = Context::from_waker(w2);
        let mut done = f.as_mut().poll(&mut cx);
        if done.is_pending() {
            done = f.as_mut().poll(&mut cx);
        }
        tx.send(done).unwrap();
    });
    let done = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no deadlock");
    assert_eq!(done, Poll::Ready(true));
}

/// A thread that exits while a report holds its line's owner lock (a `RevokeTimeout` being
/// built elsewhere): with an access still announced, the line is orphaned and every later
/// report says the thread is exiting or exited, never live (it did not wait for the lock, so
/// the orphaned bit is its one record).
#[test]
fn exit_during_a_report_is_still_reported_as_exit() {
    let _serial = many_threads();
    // A static: the leaked guard keeps it from ever being dropped (and Miri sees no leak).
    static R: std::sync::OnceLock<Revocable<u8>> = std::sync::OnceLock::new();
    let r = R.get_or_init(|| Revocable::new(5));
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        std::mem::forget(r.try_access().unwrap());
        tx.send(registry::TestLine::of_this_thread()).unwrap();
        go_rx.recv().unwrap();
    });
    let line = rx.recv().unwrap();
    let report_lock = line.lock_owner();
    go_tx.send(()).unwrap();
    t.join().unwrap();
    drop(report_lock);
    assert_eq!(
        line.state(),
        (true, true),
        "a leaked guard keeps its line, orphaned"
    );
    let h = r.holders();
    assert_eq!(h.len(), 1);
    assert!(
        h[0].thread_exited() || h[0].thread_exiting(),
        "an exited thread reported live: {}",
        h[0]
    );
}

/// A free line whose owner lock is taken (a report still copying the owner of a line handed
/// back since it looked, or, in a fork's child, a lock a parent thread held at the fork, which
/// stays taken for good) is skipped by new threads rather than waited for.
#[test]
fn registration_skips_a_free_line_whose_owner_lock_is_taken() {
    let _serial = many_threads();
    let r = &Revocable::new(7u8);
    // A line handed back: its thread ran one access and exited. Another test's thread may claim
    // it before we take its lock; once we hold the lock and it is still free, none can.
    let (line, taken) = (0..100)
        .find_map(|_| {
            let line = std::thread::scope(|s| {
                s.spawn(|| {
                    drop(r.try_access().unwrap());
                    registry::TestLine::of_this_thread()
                })
                .join()
                .unwrap()
            });
            let taken = line.lock_owner();
            (line.state() == (false, false)).then_some((line, taken))
        })
        .expect("a handed-back line stays free for a moment");
    let skips = registry::CLAIM_LOCK_SKIPS.load(std::sync::atomic::Ordering::Relaxed);
    let (lines, _) = registry::record_stats();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let stop_rx = std::sync::Mutex::new(stop_rx);
    std::thread::scope(|s| {
        // Moved in, so that a failing assertion unwinds them before the scope joins its threads.
        let (taken, stop_tx) = (taken, stop_tx);
        // Threads that register and stay, one at a time, until the registry grows: the claim
        // that grew it found every line taken, so it passed our free line, whose lock is taken.
        // Bounded: a block's worth of threads more than there were lines forces a new block.
        let mut alive = 0;
        while registry::record_stats().0 == lines && alive <= lines + 64 {
            let (tx, stop_rx) = (tx.clone(), &stop_rx);
            s.spawn(move || {
                drop(r.try_access().unwrap());
                tx.send(registry::TestLine::of_this_thread()).unwrap();
                let _ = stop_rx.lock().unwrap().recv();
            });
            alive += 1;
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a thread's registration waited for a taken owner lock");
            // No claim, of this test or another, can return the line while we hold its lock.
            assert!(
                !got.is(line),
                "a thread was given a line whose owner lock is taken"
            );
        }
        // The claim that grew the registry may have found the line's bit set by another
        // thread's momentary claim, whose count of the pass lands a moment later: poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while registry::CLAIM_LOCK_SKIPS.load(std::sync::atomic::Ordering::Relaxed) == skips
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        assert!(
            registry::CLAIM_LOCK_SKIPS.load(std::sync::atomic::Ordering::Relaxed) > skips,
            "no claim passed the free line with a taken lock ({alive} threads registered)"
        );
        // Passed and left free (a passing claim may hold its bit for a moment: poll).
        while line.state() != (false, false) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(
            line.state(),
            (false, false),
            "the line was passed, and left free"
        );
        drop(stop_tx);
        drop(taken);
    });
}

/// A report that finds a holder's owner lock taken for longer than any holder keeps it (in a
/// fork's child: a lock a parent thread held at the fork) names the owner as unknown after a
/// bounded wait rather than waiting for good.
#[test]
fn a_report_does_not_wait_for_good_for_a_taken_owner_lock() {
    let _serial = many_threads();
    let r = &Revocable::new(8u8);
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let g = r.try_access().unwrap();
            tx.send(registry::TestLine::of_this_thread()).unwrap();
            let _ = go_rx.recv();
            drop(g);
        });
        let line = rx.recv().unwrap();
        let taken = line.lock_owner();
        let (report_tx, report_rx) = std::sync::mpsc::channel();
        s.spawn(move || report_tx.send(r.holders()).unwrap());
        let report = report_rx.recv_timeout(Duration::from_secs(10));
        // Released before any assertion, so that a failure cannot leave the scope waiting.
        drop((taken, go_tx));
        let h = report.expect("a report waited for good for a taken owner lock");
        assert_eq!(h.len(), 1);
        assert!(
            h[0].thread_id() == registry::UNKNOWN_OWNER
                && !h[0].is_send_guard()
                && !h[0].thread_exited(),
            "{}",
            h[0]
        );
    });
}

/// Spawns a thread in `s` that holds two nested accesses to `r` until the returned sender is
/// dropped; returns its line.
fn two_nested_holders<'s, T: Send + Sync>(
    s: &'s std::thread::Scope<'s, '_>,
    r: &'s Revocable<T>,
) -> (registry::TestLine, std::sync::mpsc::Sender<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    s.spawn(move || {
        let outer = r.try_access().unwrap();
        let inner = r.try_access().unwrap();
        tx.send(registry::TestLine::of_this_thread()).unwrap();
        let _ = go_rx.recv();
        drop((inner, outer));
    });
    (rx.recv().unwrap(), go_tx)
}

/// A report waits for a line's owner lock once per line, not once per announcement: two
/// nested accesses on a line whose lock stays taken are both named unknown after one wait.
#[test]
fn a_report_waits_once_per_line_for_a_taken_owner_lock() {
    let _serial = many_threads();
    let r = &Revocable::new(9u8);
    std::thread::scope(|s| {
        let (line, go_tx) = two_nested_holders(s, r);
        let taken = line.lock_owner();
        let waits = registry::REPORT_WAITS_RUN_OUT.load(std::sync::atomic::Ordering::Relaxed);
        let h = r.holders();
        let waited =
            registry::REPORT_WAITS_RUN_OUT.load(std::sync::atomic::Ordering::Relaxed) - waits;
        drop((taken, go_tx));
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(
            h.iter().all(|h| h.thread_id() == registry::UNKNOWN_OWNER),
            "{h:?}"
        );
        assert_eq!(waited, 1, "waits that ran out for one line's lock");
    });
}

/// A line whose lock outlasted the report's wait still gets one try per further holder: when
/// the lock is free by then, the next holder is named by its thread.
#[test]
fn a_report_names_a_further_holder_once_a_stuck_lock_is_free() {
    use std::sync::atomic::Ordering::{Relaxed, Release};
    let _serial = many_threads();
    let r = &Revocable::new(11u8);
    std::thread::scope(|s| {
        let (line, go_tx) = two_nested_holders(s, r);
        let taken = line.lock_owner();
        let waits = registry::REPORT_WAITS_RUN_OUT.load(Relaxed);
        registry::REPORT_HOLD_AFTER_RUN_OUT.store(true, Release);
        let report = s.spawn(|| r.holders());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while registry::REPORT_WAITS_RUN_OUT.load(Relaxed) == waits
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        drop(taken);
        registry::REPORT_HOLD_AFTER_RUN_OUT.store(false, Release);
        let h = report.join().unwrap();
        drop(go_tx);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[0].thread_id(), registry::UNKNOWN_OWNER, "{h:?}");
        assert!(
            h[1].thread_id() != registry::UNKNOWN_OWNER && !h[1].is_send_guard(),
            "{h:?}"
        );
    });
}

/// A Send guard's pool line needs no owner lock to be named: a report names it while that lock
/// is taken, without waiting.
#[test]
fn a_report_names_a_send_guard_while_its_pool_lines_are_locked() {
    let _serial = many_threads();
    let r = Revocable::new(10u8);
    let g = r.try_access_send().unwrap();
    let taken = registry::lock_pool_owners();
    assert!(!taken.is_empty(), "no pool line to lock");
    let waits = registry::REPORT_WAITS_RUN_OUT.load(std::sync::atomic::Ordering::Relaxed);
    let h = r.holders();
    let waited = registry::REPORT_WAITS_RUN_OUT.load(std::sync::atomic::Ordering::Relaxed) - waits;
    drop(taken);
    drop(g);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].is_send_guard(), "{}", h[0]);
    assert_eq!(waited, 0, "a report waited for a pool line's lock");
}

/// A thread that exits with nothing announced while a report holds its line's owner lock waits
/// for the report (which holds it only to copy the owner) and hands its line back, rather than
/// orphaning a clean line that only a sweep, and only where the OS can say the thread is gone
/// (not under Miri), would reclaim.
#[test]
fn exit_during_a_report_hands_a_clean_line_back() {
    let _serial = many_threads();
    let r = &Revocable::new(6u8);
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let t = s.spawn(move || {
            drop(r.try_access().unwrap());
            tx.send(registry::TestLine::of_this_thread()).unwrap();
            go_rx.recv().unwrap();
        });
        let line = rx.recv().unwrap();
        let report_lock = line.lock_owner();
        let misses = registry::EXIT_LOCK_MISSES.load(std::sync::atomic::Ordering::Relaxed);
        go_tx.send(()).unwrap();
        // Hold the lock until the thread's exit handling has found it taken, as a slow report
        // would (bounded: an exit that never tries fails the test below).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while registry::EXIT_LOCK_MISSES.load(std::sync::atomic::Ordering::Relaxed) == misses
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        drop(report_lock);
        t.join().unwrap();
        let (claimed, orphaned) = line.state();
        // Another test's thread may have claimed the line since; it is never left orphaned.
        assert!(!orphaned, "a clean line was orphaned (claimed: {claimed})");
    });
}
