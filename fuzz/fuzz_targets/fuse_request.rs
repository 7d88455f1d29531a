//! Raw FUSE requests (the bytes a read of /dev/fuse returns) through the real dispatch path of a
//! devfs, with hot unplugs between them. Answers go to a pipe; checks: no panic, every answer
//! well framed with 0 or a negative errno, no request answered twice, and after the session ends
//! every request that takes an answer got exactly one and no file is left open.
#![no_main]

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use revocable_devfs::control::Devices;
use revocable_devfs::fuse::abi::{opcode, InHeader, OutHeader, Pod};
use revocable_devfs::fuse::channel::Channel;
use revocable_devfs::fuse::request::Request;
use revocable_devfs::fuse::session::dispatch;
use revocable_devfs::fuse::{Ctx, Filesystem};
use revocable_devfs::server::build;
use revocable_fuzz::{kernel_bounds, Input};

fn pipe() -> (std::fs::File, Arc<Channel>) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
        0
    );
    // SAFETY: both fds are fresh and owned by us from here on.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on our own pipe: room for every answer of one input.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
    (
        std::fs::File::from(r),
        Arc::new(Channel::new(w).expect("eventfd")),
    )
}

fn drain(rx: &mut std::fs::File, got: &mut HashMap<u64, u32>) {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = rx.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let mut at = 0;
    while at < all.len() {
        let h = OutHeader::read_from(&all[at..]).expect("whole answer header");
        assert!(
            h.len as usize >= std::mem::size_of::<OutHeader>() && at + h.len as usize <= all.len()
        );
        if h.unique != 0 {
            assert!((-4095..=0).contains(&h.error), "errno {}", h.error);
            *got.entry(h.unique).or_default() += 1;
            assert_eq!(got[&h.unique], 1, "request {} answered twice", h.unique);
        }
        at += h.len as usize;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let devices = Devices::new();
    let fs = build(&devices);
    let (mut rx, ch) = pipe();
    let ctx = Ctx::detached(&ch);
    let mut expect = Vec::new();
    let mut got = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    while !inp.is_empty() {
        let len = usize::from(inp.u16() % 1024);
        let mut bytes = inp.bytes(len).to_vec();
        kernel_bounds(&mut bytes);
        if let Some(r) = Request::parse(&bytes) {
            let h: InHeader = r.header;
            // The kernel never reuses a unique while its request is pending; skip such inputs.
            if !seen.insert(h.unique) || h.unique == 0 {
                continue;
            }
            if h.opcode != opcode::FORGET && h.opcode != opcode::BATCH_FORGET {
                expect.push(h.unique);
            }
        }
        dispatch(&ch, &ctx, &fs, &bytes);
        if inp.byte().unwrap_or(0) & 3 == 0 {
            if devices.cros_ec.is_bound() {
                devices.cros_ec.unbind();
            } else {
                devices.cros_ec.bind();
            }
        }
        drain(&mut rx, &mut got);
    }
    fs.session_ended();
    drop(ctx);
    drain(&mut rx, &mut got);
    for u in &expect {
        assert_eq!(
            got.get(u),
            Some(&1),
            "request {u} not answered exactly once"
        );
    }
    assert_eq!(fs.open_files(), 0);
    let st = fs.stats();
    assert_eq!(
        st.opens.load(Relaxed),
        st.releases.load(Relaxed) + st.releases_at_end.load(Relaxed)
    );
});
