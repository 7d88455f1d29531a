//! Raw FUSE requests (the bytes a read of /dev/fuse returns) through the real dispatch path of a
//! devfs, with hot unplugs between them. Answers go to a pipe; checks: no panic, every answer
//! well framed with 0 or a negative errno, no request answered twice, and after the session ends
//! every request that takes an answer got exactly one and no file is left open.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use libfuzzer_sys::fuzz_target;
use revocable_devfs::control::Devices;
use revocable_devfs::fuse::session::dispatch;
use revocable_devfs::fuse::{Ctx, Filesystem};
use revocable_devfs::server::build;
use revocable_fuzz::{drain, pipe, Input, Requests};

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let devices = Devices::new();
    let fs = build(&devices);
    let (mut rx, ch) = pipe();
    let ctx = Ctx::detached(&ch);
    let mut reqs = Requests::default();
    let mut got = HashMap::new();
    while !inp.is_empty() {
        let Some(bytes) = reqs.next(&mut inp) else {
            continue;
        };
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
    reqs.assert_answered_once(&got);
    assert_eq!(fs.open_files(), 0);
    let st = fs.stats();
    assert_eq!(
        st.opens.load(Relaxed),
        st.releases.load(Relaxed) + st.releases_at_end.load(Relaxed)
    );
});
