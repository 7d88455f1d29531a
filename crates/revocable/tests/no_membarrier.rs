//! Issue 10, item 7: without membarrier the process falls back at run time, never aborts.
//!
//! A real seccomp filter (built with `seccompiler`, no hand-written BPF) makes
//! `membarrier(2)` fail with `EPERM`, as old container profiles and sandboxes do:
//! * in a child process, from the start (the first registration finds it denied);
//! * in this process, after revokes have used it (a filter installed at run time).
//!
//! Each phase then revokes resources under concurrent readers that check every value they
//! hold, and the barrier strategy is reported. Runs without the libtest harness: the filter
//! applies to every thread of the process, so nothing else may run here.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use revocable::Revocable;

#[cfg(not(miri))]
const PHASE: &str = "REVOCABLE_NO_MEMBARRIER_PHASE";

/// A value that poisons itself when dropped.
#[cfg_attr(miri, allow(dead_code))]
struct Checked {
    alive: AtomicBool,
    drops: Arc<AtomicUsize>,
}

impl Drop for Checked {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(not(miri))]
fn deny_membarrier() -> Result<(), String> {
    install(vec![])
}

/// Denies only the private expedited commands (`MEMBARRIER_CMD_PRIVATE_EXPEDITED` and its
/// registration), as a profile that allows the older `MEMBARRIER_CMD_GLOBAL` would.
#[cfg(not(miri))]
fn deny_private_expedited() -> Result<(), String> {
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
    let cmd_is = |v: u64| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| e.to_string())
    };
    install(vec![cmd_is(1 << 3)?, cmd_is(1 << 4)?])
}

/// Makes `membarrier` calls matching `rules` (all of them if empty) fail with `EPERM`, in every
/// thread of the process.
#[cfg(not(miri))]
fn install(rules: Vec<seccompiler::SeccompRule>) -> Result<(), String> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let filter = SeccompFilter::new(
        // An empty rule list: every membarrier call matches, whatever its arguments.
        [(libc::SYS_membarrier, rules)].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH
            .try_into()
            .map_err(|e| format!("{e:?}"))?,
    )
    .map_err(|e| e.to_string())?;
    let prog: BpfProgram = filter.try_into().map_err(|e| format!("{e:?}"))?;
    seccompiler::apply_filter_all_threads(&prog).map_err(|e| e.to_string())
}

#[cfg(not(miri))]
/// `membarrier(MEMBARRIER_CMD_QUERY)` fails (the filter is in force).
fn membarrier_denied() -> bool {
    // SAFETY: membarrier takes integers only.
    unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) < 0 }
}

#[cfg(not(miri))]
/// Revokes `rounds` resources, each while two readers hammer it; returns the accesses seen.
fn workload(rounds: usize) -> usize {
    let seen = AtomicUsize::new(0);
    for _ in 0..rounds {
        let drops = Arc::new(AtomicUsize::new(0));
        let r = Revocable::new(Checked {
            alive: AtomicBool::new(true),
            drops: drops.clone(),
        });
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while let Some(v) = r.try_access() {
                        assert!(v.alive.load(Ordering::SeqCst), "use after drop");
                        std::hint::spin_loop();
                        assert!(v.alive.load(Ordering::SeqCst), "use after drop");
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            std::thread::sleep(Duration::from_micros(200));
            assert!(r.revoke());
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "revoke returned after the drop"
            );
        });
        assert!(r.try_access().is_none());
    }
    seen.into_inner()
}

#[cfg(not(miri))]
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    if cfg!(miri) || !cfg!(target_os = "linux") {
        println!("no_membarrier: skipped (needs Linux and real system calls)");
        return;
    }
    #[cfg(not(miri))]
    run();
}

#[cfg(not(miri))]
fn run() {
    if std::env::var(PHASE).as_deref() == Ok("global") {
        deny_private_expedited().expect("installing the filter worked in the parent");
        let seen = workload(50);
        let strategy = revocable::barrier_strategy();
        println!(
            "  private expedited denied: 50 revokes under readers ({seen} accesses) via {strategy}"
        );
        assert!(strategy.contains("GLOBAL"), "{strategy}");
        return;
    }
    if std::env::var(PHASE).as_deref() == Ok("from-start") {
        deny_membarrier().expect("installing the filter worked in the parent");
        assert!(membarrier_denied());
        let seen = workload(200);
        let strategy = revocable::barrier_strategy();
        println!(
            "  denied from the start: 200 revokes under readers ({seen} accesses) via {strategy}"
        );
        assert!(strategy.contains("CPU hop"), "{strategy}");
        return;
    }

    // Probe in a child first: where seccomp cannot be used, say so (and fail in CI).
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new(&exe)
        .env(PHASE, "from-start")
        .status()
        .expect("spawning the child phase");
    if !status.success() {
        if deny_probe_fails() && !in_ci() {
            println!("no_membarrier: skipped: a seccomp filter cannot be installed here");
            return;
        }
        panic!("the phase with membarrier denied from the start failed: {status}");
    }
    let status = Command::new(&exe)
        .env(PHASE, "global")
        .status()
        .expect("spawning the child phase");
    assert!(
        status.success(),
        "the phase with only MEMBARRIER_CMD_GLOBAL failed: {status}"
    );

    let seen = workload(50);
    let before = revocable::barrier_strategy();
    println!("  before the filter: 50 revokes ({seen} accesses) via {before}");
    deny_membarrier().expect("installing a seccomp filter");
    assert!(membarrier_denied());
    let seen = workload(200);
    let after = revocable::barrier_strategy();
    println!("  denied at run time: 200 revokes under readers ({seen} accesses) via {after}");
    assert!(after.contains("CPU hop"), "{after}");
    println!("test result: ok. 3 passed; 0 failed (no_membarrier)");
}

/// Whether installing a filter fails in a throwaway child (no seccomp here).
#[cfg(not(miri))]
fn deny_probe_fails() -> bool {
    // SAFETY: fork in a process whose other threads have all been joined; the child only
    // installs a filter and exits.
    match unsafe { libc::fork() } {
        0 => {
            let code = if deny_membarrier().is_ok() { 0 } else { 1 };
            // SAFETY: exiting the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        -1 => true,
        pid => {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            !(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0)
        }
    }
}
