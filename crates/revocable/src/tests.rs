//! Unit tests that need the crate's internals.

use std::time::Duration;

use crate::{barrier, registry, Revocable};

/// Defect 1: creating a resource issued a grace period. Creating (and dropping, and accessing) a
/// resource must issue no heavy barrier; only a revoke does.
#[test]
fn defect1_creating_a_resource_costs_no_grace_period() {
    // Other tests run in parallel threads and may revoke; measure in a loop until a quiet window.
    for _ in 0..50 {
        let before = barrier::heavy_count();
        for i in 0..1000 {
            let r = Revocable::new(i);
            assert_eq!(*r.try_access().unwrap(), i);
        }
        if barrier::heavy_count() == before {
            let r = Revocable::new(0);
            r.revoke();
            if cfg!(all(target_os = "linux", not(miri))) {
                assert!(
                    barrier::heavy_count() > before,
                    "revoke issues the heavy barrier"
                );
            }
            return;
        }
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

/// Threads come and go: records of exited threads are reused, so the registry stays bounded.
#[test]
fn records_of_exited_threads_are_reused() {
    let r = Revocable::new(0u32);
    let n = if cfg!(miri) { 10 } else { 200 };
    let (before, _) = registry::record_stats();
    for _ in 0..n {
        std::thread::scope(|s| {
            s.spawn(|| assert!(r.try_access().is_some()));
        });
    }
    let (after, _) = registry::record_stats();
    // Other tests run concurrently and may own a few records; 200 exited threads must not add 200.
    assert!(after < before + 16, "records grew from {before} to {after}");
    assert!(r.revoke_timeout(Duration::from_secs(30)).unwrap());
}
