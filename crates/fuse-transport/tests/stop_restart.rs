//! A program that gave the wake signal a handler with `SA_RESTART` (so a blocked `read(2)` on
//! `/dev/fuse` restarts instead of failing with EINTR): a stop while a client keeps the mount
//! busy cannot wake the dispatch threads by signal, so after a second the session aborts the
//! connection through fusectl and `join` returns. Its own test binary: the handler is
//! process-wide. Skips without `/dev/fuse` (fails under `CI`) or without fusectl mounted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revocable_fuse::abi::{self, Attr, AttrOut, InHeader, OpenOut};
use revocable_fuse::channel::wake_signal;
use revocable_fuse::testing::{fuse_available, temp_dir};
use revocable_fuse::{Ctx, Filesystem, Op, Options, Reply, Session, Transport};

/// Only a root directory that can be opened.
struct Root;

impl Filesystem for Root {
    fn request(&self, _: &Ctx, _: &InHeader, op: Op<'_>, reply: Reply) {
        match op {
            Op::Getattr {
                ino: abi::ROOT_ID, ..
            } => reply.ok_pod(&AttrOut {
                attr: Attr {
                    ino: abi::ROOT_ID,
                    mode: libc::S_IFDIR | 0o755,
                    nlink: 2,
                    ..Default::default()
                },
                ..Default::default()
            }),
            Op::Opendir { .. } => reply.ok_pod(&OpenOut::default()),
            Op::Releasedir { .. } => reply.ok(&[]),
            _ => reply.error(libc::ENOSYS),
        }
    }
    fn session_ended(&self) {}
}

extern "C" fn nothing(_: libc::c_int) {}

#[test]
fn stop_ends_even_when_the_wake_signal_restarts_reads() {
    if !fuse_available() {
        return;
    }
    let fusectl = std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("fusectl"))
        })
        .unwrap_or(false);
    if !fusectl {
        eprintln!("SKIP: fusectl is not mounted (mount -t fusectl none /sys/fs/fuse/connections)");
        return;
    }
    // SAFETY: a zeroed sigaction is valid; the handler does nothing (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = nothing as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(wake_signal(), &sa, std::ptr::null_mut()), 0);
    }
    let dir = temp_dir("fuse-stop-restart");
    let opts = Options {
        threads: 2,
        transport: Transport::Dev,
    };
    let mut s = Session::mount_with(&dir, Arc::new(Root), &opts).expect("mount");
    // An open directory keeps the connection alive past the (lazy) unmount of the stop.
    let held = std::fs::File::open(&dir).expect("open the mount's root");
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    s.stopper().stop();
    s.join();
    let took = t.elapsed();
    drop(held);
    let _ = std::fs::remove_dir(&dir);
    assert!(took < Duration::from_secs(10), "join took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "join returned after {took:?}: the signal did wake the readers, so this test tests nothing"
    );
}
