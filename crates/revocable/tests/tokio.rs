//! `revoke_async` and owned guards on real tokio runtimes.
#![cfg(not(miri))] // tokio's I/O driver and timers are outside what Miri runs here

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use revocable::Revocable;

/// A backend that records its drop; every access checks it is still alive.
struct Backend {
    alive: AtomicBool,
    dropped: Arc<AtomicBool>,
}

impl Backend {
    fn new(dropped: &Arc<AtomicBool>) -> Self {
        Backend {
            alive: AtomicBool::new(true),
            dropped: Arc::clone(dropped),
        }
    }
    fn check(&self) {
        assert!(self.alive.load(Ordering::SeqCst), "use after drop");
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// 10,000 tasks hold owned guards across sleeps and yields on a multi-thread runtime while
/// `revoke_async` runs: every guard is gone before it resolves, and no task gets an access after.
#[test]
fn ten_thousand_tasks_hold_owned_guards_across_awaits_while_revoke_async_runs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let dropped = Arc::new(AtomicBool::new(false));
        let r = Arc::new(Revocable::new(Backend::new(&dropped)));
        let live_guards = Arc::new(AtomicUsize::new(0));
        let resolved = Arc::new(AtomicBool::new(false));
        let (after, before) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for i in 0..10_000u64 {
            let (r, live, resolved) = (r.clone(), live_guards.clone(), resolved.clone());
            let (after, before) = (after.clone(), before.clone());
            tasks.push(tokio::spawn(async move {
                for round in 0..3u64 {
                    let Some(g) = r.try_access_owned() else {
                        after.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    assert!(
                        !resolved.load(Ordering::SeqCst),
                        "access after revoke_async"
                    );
                    before.fetch_add(1, Ordering::SeqCst);
                    live.fetch_add(1, Ordering::SeqCst);
                    g.check();
                    if (i + round) % 2 == 0 {
                        tokio::time::sleep(Duration::from_millis(1 + (i % 5))).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    g.check(); // still alive after the await, possibly on another worker
                    live.fetch_sub(1, Ordering::SeqCst);
                    drop(g);
                    tokio::task::yield_now().await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(r.revoke_async().await);
        assert_eq!(
            live_guards.load(Ordering::SeqCst),
            0,
            "a guard outlived revoke_async"
        );
        assert!(dropped.load(Ordering::SeqCst), "resolved before the drop");
        resolved.store(true, Ordering::SeqCst);
        assert!(r.try_access_owned().is_none());
        for t in tasks {
            t.await.unwrap();
        }
        assert!(before.load(Ordering::SeqCst) > 0);
    });
}

/// A current-thread runtime whose only holder is another task: `revoke_async` must yield to it.
#[test]
fn current_thread_runtime_with_the_holder_in_another_task_does_not_deadlock() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let dropped = Arc::new(AtomicBool::new(false));
        let r = Arc::new(Revocable::new(Backend::new(&dropped)));
        let g = r.try_access_owned().unwrap();
        let holder = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            g.check();
        });
        let revoke = tokio::time::timeout(Duration::from_secs(10), r.revoke_async());
        assert_eq!(revoke.await, Ok(true));
        assert!(dropped.load(Ordering::SeqCst));
        holder.await.unwrap();
    });
}

/// A thread-bound guard held across an await by another branch of the same task (`join!`) is
/// not a self-wait: `revoke_async` resolves once that branch lets go.
#[test]
fn thread_bound_guard_in_a_joined_branch_is_not_a_self_wait() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = Revocable::new(5);
        // join! polls the branches in order: the access is taken before the revocation starts.
        let (seen, won) = tokio::join!(
            async {
                let g = r.try_access().unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                *g
            },
            r.revoke_async()
        );
        assert!(won);
        assert_eq!(seen, 5);
    });
}

/// Sync and async revokers racing on a multi-thread runtime, with holders: one winner, and all
/// return after the drop.
#[test]
fn racing_sync_and_async_revokers_on_a_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for _ in 0..200 {
        rt.block_on(async {
            let dropped = Arc::new(AtomicBool::new(false));
            let r = Arc::new(Revocable::new(Backend::new(&dropped)));
            let wins = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for k in 0..6 {
                let (r, wins, dropped) = (r.clone(), wins.clone(), dropped.clone());
                tasks.push(tokio::spawn(async move {
                    match k % 3 {
                        0 => {
                            if let Some(g) = r.try_access_owned() {
                                tokio::task::yield_now().await;
                                g.check();
                            }
                        }
                        1 => {
                            let won = r.revoke_async().await;
                            assert!(dropped.load(Ordering::SeqCst));
                            wins.fetch_add(usize::from(won), Ordering::SeqCst);
                        }
                        _ => {
                            let won = tokio::task::spawn_blocking(move || {
                                let won = r.revoke();
                                assert!(dropped.load(Ordering::SeqCst));
                                won
                            })
                            .await
                            .unwrap();
                            wins.fetch_add(usize::from(won), Ordering::SeqCst);
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(wins.load(Ordering::SeqCst), 1);
        });
    }
}
