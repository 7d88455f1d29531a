//! Issue 10: every way a program can trip the core, one test per behaviour.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use revocable::Revocable;

static TLS_DTOR_RESOURCE: std::sync::OnceLock<Revocable<u64>> = std::sync::OnceLock::new();
static TLS_DTOR_SEEN: AtomicUsize = AtomicUsize::new(0);

/// A C library's per-thread cleanup: a `pthread_key_create` destructor, created after std's own
/// keys, so it runs after every Rust thread-local of the thread was destroyed.
unsafe extern "C" fn c_cleanup(_: *mut libc::c_void) {
    let r = TLS_DTOR_RESOURCE
        .get()
        .expect("set before the thread starts");
    if let Some(v) = r.try_access() {
        TLS_DTOR_SEEN.fetch_add(*v as usize, Ordering::SeqCst);
    }
}

#[test]
#[cfg(not(miri))]
fn access_from_a_c_thread_exit_destructor_works() {
    TLS_DTOR_RESOURCE.get_or_init(|| Revocable::new(1));
    for touch_first in [false, true] {
        let before = TLS_DTOR_SEEN.load(Ordering::SeqCst);
        std::thread::spawn(move || {
            if touch_first {
                // The thread already has a line: its Rust-side destructor ran before the C one.
                drop(TLS_DTOR_RESOURCE.get().unwrap().try_access());
            }
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: a valid out-pointer and a destructor with the C ABI.
            let created = unsafe { libc::pthread_key_create(&mut key, Some(c_cleanup)) };
            assert_eq!(created, 0);
            // SAFETY: any non-null value makes the destructor run at thread exit.
            let set = unsafe { libc::pthread_setspecific(key, std::ptr::dangling_mut()) };
            assert_eq!(set, 0);
        })
        .join()
        .unwrap();
        assert_eq!(
            TLS_DTOR_SEEN.load(Ordering::SeqCst),
            before + 1,
            "touch_first={touch_first}"
        );
    }
    // And the resource can still be revoked at once: nothing was left announced.
    let r = TLS_DTOR_RESOURCE.get().unwrap();
    assert!(r.revoke_timeout(Duration::from_secs(5)).is_ok());
}

/// A value whose `Drop` revokes its own resource with `how`.
struct RevokesItself {
    me: std::sync::Weak<Revocable<RevokesItself>>,
    how: fn(&Revocable<RevokesItself>),
    drops: Arc<AtomicUsize>,
}

impl Drop for RevokesItself {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if let Some(r) = self.me.upgrade() {
            (self.how)(&r);
        }
    }
}

fn revokes_itself(
    how: fn(&Revocable<RevokesItself>),
) -> (Arc<Revocable<RevokesItself>>, Arc<AtomicUsize>) {
    let drops = common::counter();
    let d = drops.clone();
    let r = Arc::new_cyclic(|me| {
        Revocable::new(RevokesItself {
            me: me.clone(),
            how,
            drops: d,
        })
    });
    (r, drops)
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn assert_in_drop_panic(f: impl FnOnce()) {
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("must panic");
    let text = panic_text(p);
    assert!(text.contains("inside the value's own Drop"), "{text}");
}

#[test]
fn t_drop_that_revokes_itself_panics_instead_of_hanging() {
    let hows: [fn(&Revocable<RevokesItself>); 4] = [
        |r| {
            r.revoke();
        },
        |r| {
            let _ = r.revoke_timeout(Duration::from_secs(3600));
        },
        |r| {
            let _ = r.revoke_timeout(Duration::MAX);
        },
        |r| {
            let mut b = revocable::RevokeBatch::new();
            b.push(r);
            b.revoke();
        },
    ];
    for how in hows {
        // Reached through a synchronous revoke.
        let (r, drops) = revokes_itself(how);
        assert_in_drop_panic(|| {
            r.revoke();
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(r.try_access().is_none());
        assert!(!r.revoke(), "fully revoked: later revokers return at once");

        // Reached through a deferred revoke: the last holder's guard drop runs T::drop and gets
        // the panic; nobody hangs.
        let (r, drops) = revokes_itself(how);
        let g = r.try_access().unwrap();
        assert!(r.revoke_deferred());
        assert_in_drop_panic(move || drop(g));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(!r.revoke());
    }
}

#[test]
fn t_drop_that_revokes_itself_deferred_is_fine() {
    let (r, drops) = revokes_itself(|r| assert!(!r.revoke_deferred()));
    assert!(r.revoke());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

fn assert_holding_panic(f: impl FnOnce()) {
    let t = std::time::Instant::now();
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("must panic");
    assert!(panic_text(p).contains("still holds an access"));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "failed at once, not after the timeout"
    );
}

#[test]
fn revoke_timeout_by_a_holder_panics_whatever_the_timeout() {
    for d in [
        Duration::MAX,
        Duration::from_secs(3600),
        Duration::from_millis(1),
    ] {
        let r = Revocable::new(5);
        let g = r.try_access().unwrap();
        assert_holding_panic(|| {
            let _ = r.revoke_timeout(d);
        });
        assert!(r.try_access().is_none(), "revocation stays in progress");
        drop(g); // the last holder drops the value
        assert!(!r.revoke());
        // A batch too.
        let r = Revocable::new(6);
        let g = r.try_access().unwrap();
        assert_holding_panic(|| {
            let mut b = revocable::RevokeBatch::new();
            b.push(&r);
            let _ = b.revoke_timeout(d);
        });
        drop(g);
    }
}

#[test]
fn a_loser_waiting_for_a_drop_while_holding_panics() {
    let r = Revocable::new(7);
    let g = r.try_access().unwrap();
    assert!(r.revoke_deferred());
    assert_holding_panic(|| {
        let _ = r.revoke_timeout(Duration::MAX);
    });
    drop(g);
}
