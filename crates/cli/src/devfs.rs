//! `revocable devfs MOUNTPOINT [--threads N] [--transport auto|uring|dev] [--net]`: serve the
//! device file system until SIGINT/SIGTERM/SIGHUP or an external unmount, then exit 0 with the
//! mount gone (files still open are released by the server). With `--net`, also `net/IFNAME`
//! per network interface; if the interfaces cannot be followed, one line and exit status 1.
//!
//! Invariant: SIGINT, SIGTERM and SIGHUP (a closed terminal) are blocked in every thread and
//! taken by one `sigwait` thread, so no signal handler runs inside the server and the stop is an
//! ordinary function call. SIGINT and SIGHUP are left alone where the process started with them
//! ignored (`nohup`, a script's background job): a blocked signal is queued even when ignored,
//! so waiting for them would undo what the caller asked for.

use std::path::PathBuf;
use std::process::ExitCode;

use revocable_devfs::fuse::{EndReason, Transport};
use revocable_devfs::server::{default_threads, Devfs, NetOptions, Options};

/// Arguments of `revocable devfs`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory to mount the device file system on.
    pub mountpoint: PathBuf,
    /// Number of FUSE dispatch threads on the /dev/fuse transport, 2 to 256 [default: one per
    /// CPU, at least 2] (io_uring has one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=256))]
    pub threads: Option<u16>,
    /// FUSE transport: `auto` (io_uring when the fuse module's enable_uring is Y, else
    /// /dev/fuse; REVOCABLE_FUSE_TRANSPORT=uring|dev overrides), `uring` or `dev`.
    #[arg(long, default_value = "auto")]
    pub transport: Transport,
    /// Also serve MOUNTPOINT/net/IFNAME for every network interface of the server's network
    /// namespace, following the kernel's link notifications (rtnetlink).
    #[arg(long)]
    pub net: bool,
}

/// Blocks SIGTERM, and SIGINT and SIGHUP unless they are ignored, in the calling thread (and
/// the threads it spawns later); returns the set for `sigwait`.
pub(crate) fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t and sigaction are plain data, zero is a valid value of both;
    // sigemptyset/sigaddset initialise the set; sigaction with a null new action only reads the
    // current one; pthread_sigmask only reads the set.
    unsafe {
        let ignored = |sig: libc::c_int| {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        for sig in [libc::SIGINT, libc::SIGHUP] {
            if !ignored(sig) {
                libc::sigaddset(&mut set, sig);
            }
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the stop signals of `set` (blocked by [`block_stop_signals`]); `None` if
/// `sigwait` fails.
pub(crate) fn wait_for_stop_signal(set: &libc::sigset_t) -> Option<libc::c_int> {
    let mut sig: libc::c_int = 0;
    // SAFETY: set is an initialised sigset_t; sig is a valid out-pointer.
    (unsafe { libc::sigwait(set, &mut sig) } == 0).then_some(sig)
}

/// What the signal thread and the mounting thread tell each other.
#[derive(Default)]
struct StopState {
    /// Set once the mount serves.
    stopper: Option<revocable_devfs::server::Stopper>,
    /// A stop signal arrived (before the mount served: the mounting thread stops it at once).
    signalled: bool,
    /// The mount attempt returned, either way.
    mount_done: bool,
}

/// How long a stop signal that arrives before the mount serves waits for the mount attempt to
/// return (then the process exits with status 1: the attempt hangs, e.g. in `stat` of a mount
/// point whose FUSE server is stopped).
const STOP_BEFORE_MOUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn lock(s: &std::sync::Mutex<StopState>) -> std::sync::MutexGuard<'_, StopState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the stop signals of `set` from the start, mounting included.
fn signal_thread(set: libc::sigset_t, state: std::sync::Arc<std::sync::Mutex<StopState>>) {
    std::thread::spawn(move || {
        let Some(sig) = wait_for_stop_signal(&set) else {
            return;
        };
        {
            let mut s = lock(&state);
            s.signalled = true;
            if let Some(stop) = &s.stopper {
                eprintln!("revocable devfs: signal {sig}, unmounting");
                stop.stop();
                return;
            }
        }
        eprintln!("revocable devfs: signal {sig} before the mount served; giving up");
        let t = std::time::Instant::now();
        while t.elapsed() < STOP_BEFORE_MOUNT_WAIT {
            if lock(&state).mount_done {
                return; // the mounting thread stops what it mounted
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::process::exit(1);
    });
}

/// Entry point of `revocable devfs`.
pub fn run(args: Args) -> ExitCode {
    let set = block_stop_signals();
    let state = std::sync::Arc::new(std::sync::Mutex::new(StopState::default()));
    signal_thread(set, state.clone());
    let options = Options {
        net: args.net.then(NetOptions::default),
        transport: args.transport,
    };
    let threads = args.threads.map_or_else(default_threads, usize::from);
    let mounted = Devfs::mount_with(&args.mountpoint, threads, &options);
    {
        let mut s = lock(&state);
        s.mount_done = true;
        if let Ok(fs) = &mounted {
            s.stopper = Some(fs.stopper());
            if s.signalled {
                fs.stopper().stop();
            }
        }
    }
    let mut fs = match mounted {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("revocable devfs: {e}");
            return ExitCode::from(1);
        }
    };
    // SAFETY: set is an initialised sigset_t.
    let ctrl_c = unsafe { libc::sigismember(&set, libc::SIGINT) } == 1;
    eprintln!("revocable devfs: transport: {}", fs.transport());
    eprintln!(
        "revocable devfs: serving {}: cros_ec, revocable_test/{{provider,consumer}}, control{}; {} to stop",
        fs.mountpoint().display(),
        if args.net { ", net/" } else { "" },
        if ctrl_c { "Ctrl-C" } else { "SIGTERM" }
    );
    let reason = fs.join();
    let st = fs.stats();
    use std::sync::atomic::Ordering::Relaxed;
    eprintln!(
        "revocable devfs: {} (opens {}, releases {} + {} at session end)",
        match reason {
            EndReason::Stopped => "stopped",
            EndReason::Disconnected => "unmounted or aborted",
            EndReason::Failed => "failed",
        },
        st.opens.load(Relaxed),
        st.releases.load(Relaxed),
        st.releases_at_end.load(Relaxed)
    );
    if reason == EndReason::Failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_bounded() {
        let p = |argv: &[&str]| crate::parse_args::<Args>("devfs", argv);
        assert_eq!(p(&["/mnt"]).unwrap().threads, None);
        assert_eq!(p(&["/mnt", "--threads", "4"]).unwrap().threads, Some(4));
        for bad in ["0", "1", "257", "100000", "-1", "four"] {
            assert!(p(&["/mnt", "--threads", bad]).is_err(), "--threads {bad}");
        }
    }
}
