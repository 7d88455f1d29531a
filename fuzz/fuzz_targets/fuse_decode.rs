//! The transport alone (`revocable-fuse`, no devfs): raw FUSE requests through `dispatch` to a
//! file system that answers some requests at once and parks the others, answering them from the
//! parking table later (or leaving them to be answered EIO when dropped). Checks: no panic, every
//! answer well framed with 0 or a negative errno, and every request that takes an answer gets
//! exactly one.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use revocable_fuse::abi::InHeader;
use revocable_fuse::session::dispatch;
use revocable_fuse::{Ctx, Filesystem, Op, Parked, Reply};
use revocable_fuzz::{drain, pipe, Input, Requests};

/// Parks every request whose id is a multiple of 3, answers the others at once.
#[derive(Default)]
struct Parker {
    parked: Mutex<Vec<Arc<Parked>>>,
}

impl Filesystem for Parker {
    fn request(&self, ctx: &Ctx, h: &InHeader, _op: Op<'_>, reply: Reply) {
        if h.unique % 3 == 0 {
            let p = ctx.park(reply);
            self.parked.lock().unwrap().push(p);
        } else {
            reply.error(libc::ENOSYS);
        }
    }
    fn session_ended(&self) {}
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let fs = Parker::default();
    let (mut rx, ch) = pipe();
    let ctx = Ctx::detached(&ch);
    let mut reqs = Requests::default();
    let mut got = HashMap::new();
    while !inp.is_empty() {
        let Some(bytes) = reqs.next(&mut inp) else {
            continue;
        };
        dispatch(&ch, &ctx, &fs, &bytes);
        if inp.byte().unwrap_or(0) & 1 == 0 {
            // Answer the oldest parked request, if still pending.
            let p = fs.parked.lock().unwrap().pop();
            if let Some(r) = p.and_then(|p| p.take()) {
                r.ok(&[]);
            }
        }
        drain(&mut rx, &mut got);
    }
    // What is still parked is answered EIO when its reply drops.
    fs.parked.lock().unwrap().clear();
    drop(ctx);
    drain(&mut rx, &mut got);
    reqs.assert_answered_once(&got);
});
