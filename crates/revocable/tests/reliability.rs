//! Issue 10: every way a program can trip the core, one test per behaviour.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use revocable::Revocable;

#[cfg(not(miri))]
static TLS_DTOR_RESOURCE: std::sync::OnceLock<Revocable<u64>> = std::sync::OnceLock::new();
#[cfg(not(miri))]
static TLS_DTOR_SEEN: AtomicUsize = AtomicUsize::new(0);

/// A C library's per-thread cleanup: a `pthread_key_create` destructor, created after std's own
/// keys, so it runs after every Rust thread-local of the thread was destroyed.
#[cfg(not(miri))]
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
    // (Miri runs far slower than the clock: the bound is for real runs.)
    assert!(
        cfg!(miri) || t.elapsed() < Duration::from_secs(5),
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

/// Issue 10, item 8: after a deferred revoke, `drop_barrier` waits for the last holder's drop
/// (and times out while a holder stays); `pending_drops` counts the value until then.
#[test]
fn drop_barrier_waits_for_deferred_drops() {
    let drops = common::counter();
    let r = Arc::new(Revocable::new(common::Poison::new(&drops)));
    let g = r.try_access_owned().unwrap();
    assert!(r.revoke_deferred());
    assert!(revocable::pending_drops() >= 1);
    assert!(
        !revocable::drop_barrier(Some(Duration::from_millis(20))),
        "still held"
    );
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop(g);
    });
    assert!(revocable::drop_barrier(Some(Duration::from_secs(30))));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    t.join().unwrap();
}

/// A drop barrier from inside a revoked value's own drop would wait for itself: it panics.
#[test]
fn drop_barrier_inside_t_drop_panics() {
    let (r, _) = revokes_itself(|_| {
        revocable::drop_barrier(None);
    });
    assert_in_drop_panic(|| {
        r.revoke();
    });
}

/// What happens at process exit, in a child process: with a holder still inside its access,
/// a deferred revoke's `T::drop` never runs unless the program calls `drop_barrier` first.
#[test]
#[cfg(not(miri))]
fn process_exit_skips_pending_drops_unless_drop_barrier() {
    const CHILD: &str = "REVOCABLE_EXIT_CHILD";
    if let Ok(mode) = std::env::var(CHILD) {
        struct Marker(String);
        impl Drop for Marker {
            fn drop(&mut self) {
                println!("T::drop ran for {}", self.0);
            }
        }
        let r = Arc::new(Revocable::new(Marker(mode.clone())));
        let g = r.try_access_owned().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(g);
        });
        r.revoke_deferred();
        if mode == "barrier" {
            assert!(revocable::drop_barrier(Some(Duration::from_secs(30))));
        }
        std::process::exit(0); // the holder thread is still sleeping unless we waited
    }
    for (mode, ran) in [("plain", false), ("barrier", true)] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "process_exit_skips_pending_drops_unless_drop_barrier",
                "--nocapture",
            ])
            .env(CHILD, mode)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.contains(&format!("T::drop ran for {mode}")),
            ran,
            "{mode}: {text}"
        );
    }
}

#[cfg(not(miri))]
static SIG_A: std::sync::OnceLock<Revocable<u64>> = std::sync::OnceLock::new();
#[cfg(not(miri))]
static SIG_B: std::sync::OnceLock<Revocable<u64>> = std::sync::OnceLock::new();
#[cfg(not(miri))]
static SIG_SEEN: AtomicUsize = AtomicUsize::new(0);
#[cfg(not(miri))]
static SIG_BAD: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(miri))]
extern "C" fn on_signal(_: libc::c_int) {
    // Only what the docs promise is async-signal-safe: accesses by a registered thread, nested
    // within its inline slots (the interrupted code holds up to 3 here, the handler 2).
    for r in [SIG_A.get(), SIG_B.get()].into_iter().flatten() {
        if let Some(v) = r.try_access() {
            if *v != 42 {
                SIG_BAD.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(w) = r.try_access() {
                SIG_SEEN.fetch_add(usize::from(*w == 42), Ordering::Relaxed);
            }
        }
    }
}

/// Issue 10, item 9: accesses from a signal handler, under a storm of signals landing anywhere
/// in the interrupted thread's own accesses (announce, check, retract, nested), never corrupt its
/// slots: afterwards both resources revoke at once and nothing is left announced.
#[test]
#[cfg(not(miri))]
fn accesses_from_a_signal_handler_under_a_signal_storm() {
    SIG_A.get_or_init(|| Revocable::new(42));
    SIG_B.get_or_init(|| Revocable::new(42));
    // SAFETY: installs a handler with the C ABI that only does what the crate documents as
    // async-signal-safe; the sigaction struct is fully initialised.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let a = SIG_A.get().unwrap();
            drop(a.try_access()); // registered before any signal arrives
                                  // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
            let mut loops = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let g1 = a.try_access().unwrap();
                let g2 = SIG_B.get().unwrap().try_access().unwrap();
                let g3 = a.try_access().unwrap();
                assert_eq!(*g1 + *g2 + *g3, 126);
                drop(g2); // out of order
                drop(g1);
                drop(g3);
                loops += 1;
            }
            loops
        })
    };
    let tid = rx.recv().unwrap() as libc::pthread_t;
    let storm = if cfg!(debug_assertions) {
        20_000
    } else {
        100_000
    };
    for i in 0..storm {
        // SAFETY: the worker thread is alive until we set `stop` and join it below.
        unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        if i % 64 == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let loops = worker.join().unwrap();
    assert!(loops > 0);
    assert!(
        SIG_SEEN.load(Ordering::Relaxed) > 0,
        "the handler took accesses"
    );
    assert_eq!(SIG_BAD.load(Ordering::Relaxed), 0);
    for r in [SIG_A.get().unwrap(), SIG_B.get().unwrap()] {
        assert!(r.holders().is_empty(), "nothing left announced");
        assert_eq!(
            r.revoke_timeout(Duration::from_secs(5))
                .map_err(|e| e.to_string()),
            Ok(true)
        );
    }
}

/// A thread that holds an access to `r` until the returned sender is used (or dropped).
#[cfg(not(miri))]
fn hold_in_a_thread(
    r: &Arc<Revocable<common::Poison>>,
) -> (std::thread::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let r = r.clone();
    let holder = std::thread::spawn(move || {
        let g = r.try_access().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        g.check();
    });
    held_rx.recv().unwrap();
    (holder, release_tx)
}

/// Runs `child` in a forked child process (which then `_exit`s); whether it returned `true`.
/// `child` must do only what a child of a multi-threaded process may: no locks another thread
/// of the parent could have held.
#[cfg(not(miri))]
fn in_a_fork_child(child: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child runs `child` and exits with `_exit`, without running the parent's
    // destructors or atexit handlers.
    match unsafe { libc::fork() } {
        0 => {
            let ok = child();
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
    }
}

/// Issue 10, item 6: `fork()` while another thread holds a guard. In the child that thread does
/// not exist: its announcement is dropped, and the child's revoke returns at once (in the parent
/// the holder is still there, and the value still alive).
#[test]
#[cfg(not(miri))]
fn fork_child_revoke_ignores_the_parents_other_threads() {
    let drops = common::counter();
    let r = Arc::new(Revocable::new(common::Poison::new(&drops)));
    let (holder, release) = hold_in_a_thread(&r);
    let ok = in_a_fork_child(|| {
        let t = std::time::Instant::now();
        matches!(r.revoke_timeout(Duration::from_secs(5)), Ok(true))
            && drops.load(Ordering::SeqCst) == 1
            && t.elapsed() < Duration::from_secs(2)
    });
    assert!(ok, "the child's revoke did not return at once");
    // In the parent nothing changed: the holder still holds it.
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(r.try_access().is_some());
    release.send(()).unwrap();
    holder.join().unwrap();
    assert!(r.revoke());
}

#[cfg(not(miri))]
static DEEP_A: std::sync::OnceLock<Revocable<common::Poison>> = std::sync::OnceLock::new();
#[cfg(not(miri))]
static DEEP_B: std::sync::OnceLock<Revocable<common::Poison>> = std::sync::OnceLock::new();
/// 1: the destructor holds B's deep guard alone; 2: main finished its revoke attempt.
#[cfg(not(miri))]
static STEP: AtomicUsize = AtomicUsize::new(0);
#[cfg(not(miri))]
static REVOKE_RESULT: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(miri))]
type Held = Vec<revocable::RevocableGuard<'static, common::Poison>>;

/// A later pthread key's destructor: it owns 9 nested guards of A (8 inline + 1 overflow in the
/// thread's first line, which our exit handler orphaned because it was busy).
#[cfg(not(miri))]
unsafe extern "C" fn later_cleanup(p: *mut libc::c_void) {
    // SAFETY: set below from Box::into_raw.
    let a_guards: Box<Held> = unsafe { Box::from_raw(p.cast()) };
    let b = DEEP_B.get().unwrap();
    // A new line (the thread registers again): 9 nested accesses of B, the 9th in overflow.
    let mut bs: Held = (0..9).map(|_| b.try_access().unwrap()).collect();
    let b9 = bs.pop().unwrap();
    drop(bs); // B's inline accesses end; only the overflow one remains
    drop(a_guards); // A's overflow guard retracts: deep_retracted() decrements the NEW line's `live`
    STEP.store(1, Ordering::SeqCst);
    while STEP.load(Ordering::SeqCst) != 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let dropped_while_held = REVOKE_RESULT.load(Ordering::SeqCst) == 1;
    assert!(
        !dropped_while_held,
        "revoke(B) returned while B's overflow guard is held"
    );
    b9.check(); // use after drop if the bug hit
    drop(b9);
}

/// Found by review: a deep guard of a line the thread left (its exit handling orphaned it) must
/// not touch the bookkeeping of the line it registered next.
#[test]
#[cfg(not(miri))]
fn deep_guard_from_an_orphaned_line_leaves_the_new_lines_flag_alone() {
    let drops = common::counter();
    DEEP_A.get_or_init(|| Revocable::new(common::Poison::new(&drops)));
    DEEP_B.get_or_init(|| Revocable::new(common::Poison::new(&drops)));
    // Our pthread key exists (created at the first registration) before the later key.
    drop(DEEP_A.get().unwrap().try_access());
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: valid out-pointer, C-ABI destructor.
    let created = unsafe { libc::pthread_key_create(&mut key, Some(later_cleanup)) };
    assert_eq!(created, 0);
    let t = std::thread::spawn(move || {
        let a = DEEP_A.get().unwrap();
        let held: Held = (0..9).map(|_| a.try_access().unwrap()).collect();
        let p = Box::into_raw(Box::new(held)).cast();
        // SAFETY: the key exists; the box is reclaimed by its destructor.
        unsafe { libc::pthread_setspecific(key, p) };
    });
    while STEP.load(Ordering::SeqCst) != 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = DEEP_B
        .get()
        .unwrap()
        .revoke_timeout(Duration::from_millis(300));
    REVOKE_RESULT.store(if r.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
    STEP.store(2, Ordering::SeqCst);
    t.join().unwrap();
    assert!(
        r.is_err(),
        "revoke(B) completed (value dropped) while the thread still held B in an overflow slot"
    );
}

/// The forking thread revoked (deferred) a value another thread holds; in the child that holder
/// does not exist, and a waiting revoke there finishes the drop itself. Found by review.
#[test]
#[cfg(not(miri))]
fn fork_child_finishes_a_deferred_revoke_whose_holder_was_another_thread() {
    let drops = common::counter();
    let r = Arc::new(Revocable::new(common::Poison::new(&drops)));
    let (holder, release) = hold_in_a_thread(&r);
    assert!(r.revoke_deferred());
    let ok = in_a_fork_child(|| {
        matches!(r.revoke_timeout(Duration::from_secs(5)), Ok(false))
            && drops.load(Ordering::SeqCst) == 1
    });
    release.send(()).unwrap();
    holder.join().unwrap();
    assert!(
        ok,
        "the child's revoke of a value held only by a phantom thread did not finish"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "in the parent, the holder dropped it"
    );
}

/// A thread nests deeper than the inline slots in a loop (its `deep` mutex is held for a good
/// part of the time). Fork; in the child, a thread that takes an access and exits runs the
/// sweep, which locks the phantom line's `deep` mutex: left locked by the fork.
/// Found by review: locks a parent thread held at the fork stay taken in the child; its thread
/// exits must not wait for them.
#[test]
#[cfg(not(miri))]
fn fork_while_another_thread_nests_deep_then_a_child_thread_exits() {
    let r = Arc::new(Revocable::new(7u64));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let nester = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let gs: Vec<_> = (0..12).map(|_| r.try_access().unwrap()).collect();
                drop(gs);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let mut hung = 0;
    for _ in 0..20 {
        // SAFETY: the child spawns one thread, joins it and _exits.
        match unsafe { libc::fork() } {
            0 => {
                let r2 = r.clone();
                let t = std::thread::spawn(move || drop(r2.try_access()));
                t.join().ok();
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(0) }
            }
            -1 => panic!("fork failed"),
            pid => {
                let start = std::time::Instant::now();
                let mut status = 0;
                loop {
                    // SAFETY: our child.
                    let w = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                    if w == pid {
                        break;
                    }
                    if start.elapsed() > Duration::from_secs(2) {
                        hung += 1;
                        // SAFETY: our child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        // SAFETY: our child.
                        unsafe { libc::waitpid(pid, &mut status, 0) };
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    nester.join().unwrap();
    assert_eq!(hung, 0, "fork children hung at a thread exit");
}

struct RevokesSibling(Arc<Revocable<u32>>);
impl Drop for RevokesSibling {
    fn drop(&mut self) {
        // A waiting revoke of another member of the batch that is dropping us.
        let _ = self.0.revoke_timeout(Duration::from_secs(3));
    }
}

/// Found by review: a batch member's `T::drop` that waits for a sibling member, which the same
/// batch drops only after it, is a self-wait too.
#[test]
fn batch_member_drop_that_revokes_a_sibling_member_panics() {
    let b = Arc::new(Revocable::new(5u32));
    let a = Revocable::new(RevokesSibling(b.clone()));
    let t = std::time::Instant::now();
    assert_in_drop_panic(|| {
        let mut batch = revocable::RevokeBatch::new();
        batch.push(&a);
        batch.push(&*b);
        batch.revoke();
    });
    assert!(
        cfg!(miri) || t.elapsed() < Duration::from_secs(1),
        "failed at once"
    );
    assert!(b.try_access().is_none() && a.try_access().is_none());
}

/// A value whose `Drop` revokes its children together in a batch.
struct RevokesChildrenInABatch(Arc<Revocable<u32>>, Arc<Revocable<u32>>);
impl Drop for RevokesChildrenInABatch {
    fn drop(&mut self) {
        let mut batch = revocable::RevokeBatch::new();
        batch.push(&*self.0);
        batch.push(&*self.1);
        assert_eq!(batch.revoke(), [true, true]);
    }
}

/// Found by review: a batch run from inside a revoked value's `T::drop` waiting for a member that
/// another thread holds is an ordinary wait, not a self-wait.
#[test]
fn batch_inside_a_drop_waits_for_members_held_elsewhere() {
    let (a, b) = (
        Arc::new(Revocable::new(1u32)),
        Arc::new(Revocable::new(2u32)),
    );
    let parent = Revocable::new(RevokesChildrenInABatch(a.clone(), b.clone()));
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = {
        let a = a.clone();
        std::thread::spawn(move || {
            let g = a.try_access().unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(*g, 1);
        })
    };
    held_rx.recv().unwrap();
    assert!(parent.revoke());
    assert!(a.try_access().is_none() && b.try_access().is_none());
    holder.join().unwrap();
}

/// Drops `b` only after a revoke of it returns (which waits for `b`'s drop).
struct WaitsForSibling(Arc<Revocable<u32>>);
impl Drop for WaitsForSibling {
    fn drop(&mut self) {
        assert!(!self.0.revoke(), "the batch won it");
    }
}

/// Found by review: in a deferred batch, a member's `T::drop` waiting for a sibling that another
/// thread holds is not a self-wait: that holder drops it.
#[test]
fn deferred_batch_member_drop_waits_for_a_sibling_held_elsewhere() {
    let b = Arc::new(Revocable::new(2u32));
    let a = Revocable::new(WaitsForSibling(b.clone()));
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = {
        let b = b.clone();
        std::thread::spawn(move || {
            let g = b.try_access().unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(*g, 2);
        })
    };
    held_rx.recv().unwrap();
    let mut batch = revocable::RevokeBatch::new();
    batch.push(&a);
    batch.push(&*b);
    assert_eq!(batch.revoke_deferred(), [true, true]);
    holder.join().unwrap();
    assert!(b.try_access().is_none());
}
