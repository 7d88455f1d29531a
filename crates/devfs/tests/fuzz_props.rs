//! Property tests (the in-CI half of the fuzzing): arbitrary ioctl numbers and argument bytes,
//! read sizes and offsets, write bytes, `control` lines and raw FUSE requests go to the real
//! decoders and drivers in-process, with hot unplugs mixed in. Properties: nothing panics, every
//! failure is an errno from the documented set, outputs respect the sizes asked for, and every
//! FUSE request is answered exactly once.
//!
//! The same entry points are driven by the cargo-fuzz targets in `/fuzz` for long runs.

use std::collections::HashMap;
use std::sync::Arc;

mod wire;
use wire::Wire;

use proptest::prelude::*;
use revocable_devfs::control::{parse, Devices};
use revocable_devfs::cros_ec::chardev::{
    IOCEVENTMASK, IOCRDMEM, IOCXCMD, IOCXCMD_FIXED, IOC_TYPE, READMEM_SIZE, XCMD_FIXED_DATA,
    XCMD_HEADER,
};
use revocable_devfs::cros_ec::ec::Event;
use revocable_devfs::fuse::abi::{self, opcode, InHeader, Pod};
use revocable_devfs::fuse::session::dispatch;
use revocable_devfs::fuse::{Ctx, Filesystem};
use revocable_devfs::node::Handle;
use revocable_devfs::server::build;
use revocable_fops::ioctl::{ioc_size, IoctlArg};
use revocable_fops::{Errno, Wait};

/// The kernel never sends more than this in one READ (max_pages × page size, generously).
const MAX_READ: u32 = 128 * 1024;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        // Shrinking is for failures only; keep the normal run fast.
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// An ioctl number: mostly of the EC's type, with real command numbers and random
/// direction/size/number fields, sometimes anything.
fn ioctl_cmd() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => prop::sample::select(vec![IOCXCMD, IOCRDMEM, IOCEVENTMASK, IOCXCMD_FIXED]),
        2 => (0u32..4, 0u32..0x4000, 0u32..8).prop_map(|(dir, size, nr)| {
            (dir << 30) | (size << 16) | (u32::from(IOC_TYPE) << 8) | nr
        }),
        1 => any::<u32>(),
    ]
}

/// A buffer for an ioctl: usually the command's size with the header fields biased to small and
/// boundary values, sometimes shorter or longer.
fn ioctl_buf(cmd: u32) -> impl Strategy<Value = Vec<u8>> {
    let size = ioc_size(cmd);
    let field = prop_oneof![0u32..=8, 240u32..=260, Just(u32::MAX), any::<u32>()];
    (
        prop::collection::vec(field, 5),
        prop::collection::vec(any::<u8>(), 0..=size + 16),
        0usize..=size + 16,
        any::<bool>(),
    )
        .prop_map(move |(fields, noise, len, exact)| {
            let len = if exact { size } else { len };
            let mut b = noise;
            b.resize(len, 0);
            for (i, f) in fields.iter().enumerate() {
                if let Some(s) = b.get_mut(i * 4..i * 4 + 4) {
                    s.copy_from_slice(&f.to_le_bytes());
                }
            }
            b
        })
}

/// One action on an open cros_ec file, or on the device.
#[derive(Clone, Debug)]
enum Action {
    Ioctl(u32, u64, Vec<u8>),
    Read(u64, u32, bool),
    Write(Vec<u8>),
    Poll,
    Unplug,
    Replug,
    Event(u8, Vec<u8>),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => ioctl_cmd().prop_flat_map(|c| (Just(c), any::<u64>(), ioctl_buf(c)))
            .prop_map(|(c, a, b)| Action::Ioctl(c, a, b)),
        3 => (any::<u64>(), 0u32..=MAX_READ, any::<bool>()).prop_map(|(o, s, nb)| Action::Read(o, s, nb)),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Action::Write),
        1 => Just(Action::Poll),
        1 => Just(Action::Unplug),
        1 => Just(Action::Replug),
        2 => (0u8..40, prop::collection::vec(any::<u8>(), 0..24)).prop_map(|(t, p)| Action::Event(t, p)),
    ]
}

const IOCTL_ERRORS: &[i32] = &[libc::ENOTTY, libc::EINVAL, libc::EFAULT, libc::ENODEV];

proptest! {
    #![proptest_config(config())]

    /// The FUSE-facing handle of cros_ec (what the server calls for READ/WRITE/IOCTL/POLL).
    #[test]
    fn cros_ec_handle_never_panics_and_fails_cleanly(
        flags in prop_oneof![Just(libc::O_RDWR as u32), Just((libc::O_RDWR | libc::O_NONBLOCK) as u32), any::<u32>()],
        actions in prop::collection::vec(action(), 1..24),
    ) {
        let devices = Devices::new();
        let node = devices.cros_ec.node();
        let mut handles: Vec<Arc<dyn Handle>> = Vec::new();
        if let Ok(h) = node.open(flags) {
            handles.push(h);
        }
        for a in actions {
            for h in &handles {
                match &a {
                    Action::Ioctl(cmd, arg, input) => {
                        let out_size = ioc_size(*cmd) as u32;
                        match h.ioctl(*cmd, *arg, input, out_size) {
                            Ok((r, out)) => {
                                prop_assert!(r >= 0);
                                prop_assert!(out.len() <= out_size as usize);
                            }
                            Err(e) => prop_assert!(IOCTL_ERRORS.contains(&e), "ioctl {cmd:#x}: errno {e}"),
                        }
                    }
                    Action::Read(off, size, nb) => {
                        let f = if *nb { libc::O_NONBLOCK as u32 } else { 0 };
                        match h.read(*off, *size, f) {
                            Ok(d) => prop_assert!(d.len() <= *size as usize),
                            // EBADF: opened write-only.
                            Err(e) => prop_assert!([libc::EAGAIN, libc::ENODEV, libc::EBADF].contains(&e), "read: errno {e}"),
                        }
                    }
                    Action::Write(d) => {
                        let r = h.write(0, d);
                        prop_assert!(matches!(r, Err(libc::EINVAL) | Err(libc::ENODEV) | Err(libc::EBADF)), "write: {r:?}");
                    }
                    Action::Poll => {
                        let _ = h.poll(true);
                        let _ = h.poll(false);
                    }
                    _ => {}
                }
            }
            match a {
                Action::Unplug => { devices.cros_ec.unbind(); }
                Action::Replug => {
                    devices.cros_ec.bind();
                    match node.open(flags) {
                        Ok(h) => handles.push(h),
                        Err(e) => prop_assert!([libc::ENODEV, libc::EINVAL].contains(&e), "open: {e}"),
                    }
                }
                Action::Event(t, p) => {
                    let r = devices.cros_ec.raise_event(&Event { typ: t, payload: p });
                    prop_assert!(matches!(r, Ok(_) | Err(Errno::EINVAL) | Err(Errno::ENODEV)), "event: {r:?}");
                }
                _ => {}
            }
        }
        for h in &handles {
            h.release();
        }
        // After release every operation fails cleanly.
        for h in &handles {
            prop_assert_eq!(h.read(0, 16, 0).err(), Some(libc::EBADF));
        }
    }

    /// The fops layer directly, with buffers shorter or longer than the command's size.
    #[test]
    fn cros_ec_ioctl_decoding_with_any_buffer(
        cmd in ioctl_cmd(),
        arg in any::<u64>(),
        buf in prop::collection::vec(any::<u8>(), 0..400),
        with_data in any::<bool>(),
        unplugged in any::<bool>(),
    ) {
        let devices = Devices::new();
        let f = devices.cros_ec.open(libc::O_RDWR as u32).expect("open a bound EC");
        if unplugged {
            devices.cros_ec.unbind();
        }
        let mut b = buf.clone();
        let r = if with_data {
            f.ioctl(cmd, IoctlArg::with_data(arg, &mut b))
        } else {
            f.ioctl(cmd, IoctlArg::value(arg))
        };
        match r {
            Ok(v) => {
                prop_assert!(!unplugged, "an ioctl succeeded after unplug");
                prop_assert!((0..=i64::from(XCMD_FIXED_DATA as u32).max(255)).contains(&v), "ioctl returned {v}");
            }
            Err(e) => {
                prop_assert!(IOCTL_ERRORS.contains(&e.raw()), "ioctl {cmd:#x}: {e:?}");
                if with_data && cmd != IOCEVENTMASK && ioc_size(cmd) > buf.len() && !unplugged
                    && [IOCXCMD, IOCRDMEM, IOCXCMD_FIXED].contains(&cmd)
                {
                    prop_assert_eq!(e, Errno::EFAULT);
                }
            }
        }
        // The buffer never changes length and bytes past the command's struct are untouched.
        prop_assert_eq!(b.len(), buf.len());
        let used = match cmd {
            IOCXCMD => XCMD_HEADER,
            IOCXCMD_FIXED => XCMD_HEADER + XCMD_FIXED_DATA,
            IOCRDMEM => READMEM_SIZE,
            _ => 0,
        };
        if b.len() > used {
            prop_assert_eq!(&b[used..], &buf[used..]);
        }
        let mut rb = vec![0u8; 300];
        match f.read(&mut rb, Wait::NonBlocking) {
            Ok(n) => prop_assert!(n <= rb.len()),
            Err(e) => prop_assert!([Errno::EAGAIN, Errno::ENODEV].contains(&e), "read: {e:?}"),
        }
    }

    /// `control`: arbitrary bytes, and lines built from its words.
    #[test]
    fn control_lines_never_panic(
        raw in prop::collection::vec(any::<u8>(), 0..200),
        words in prop::collection::vec(
            prop_oneof![
                Just("bind".to_string()), Just("unbind".to_string()), Just("event".to_string()),
                Just("cros_ec".to_string()), Just("revocable_test".to_string()), Just("\n".to_string()),
                "[0-9]{1,4}", "[0-9a-fA-F]{0,40}", "\\PC{0,8}",
            ],
            0..16,
        ),
    ) {
        let d = Devices::new();
        let r = d.run_text(&raw);
        prop_assert!(matches!(r, Ok(()) | Err(libc::EINVAL) | Err(libc::ENODEV)), "{r:?}");
        let text = words.join(" ");
        for l in text.lines() {
            let _ = parse(l);
        }
        let r = d.run_text(text.as_bytes());
        prop_assert!(matches!(r, Ok(()) | Err(libc::EINVAL) | Err(libc::ENODEV)), "{r:?}");
        let listing = d.listing();
        prop_assert_eq!(listing.lines().count(), 2);
    }
}

/// One generated FUSE request: opcode, node, body (before the request size fix-up).
fn fuse_request() -> impl Strategy<Value = (u32, u64, Vec<u8>, u32)> {
    let op = prop_oneof![
        8 => prop::sample::select(vec![
            opcode::LOOKUP, opcode::GETATTR, opcode::SETATTR, opcode::OPEN, opcode::READ,
            opcode::WRITE, opcode::FLUSH, opcode::RELEASE, opcode::FSYNC, opcode::OPENDIR,
            opcode::READDIR, opcode::RELEASEDIR, opcode::STATFS, opcode::ACCESS, opcode::IOCTL,
            opcode::POLL, opcode::INIT, opcode::INTERRUPT, opcode::FORGET, opcode::BATCH_FORGET,
            opcode::DESTROY,
        ]),
        1 => any::<u32>(),
    ];
    let fields = prop::collection::vec(
        prop_oneof![0u64..4, 1u64..8, Just(u64::MAX), any::<u64>()],
        8,
    );
    (
        op,
        prop_oneof![1u64..8, any::<u64>()],
        fields,
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u8>(),
    )
        .prop_map(|(op, node, fields, tail, cut)| {
            let mut body: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
            body.extend_from_slice(&tail);
            // Sometimes short: the decoder must call it malformed.
            let keep = if cut < 32 {
                usize::from(cut)
            } else {
                body.len()
            };
            body.truncate(keep);
            (op, node, body, u32::from(cut))
        })
}

/// Caps the size fields the kernel bounds (READ/READDIR size), as the kernel would.
fn kernel_bounds(op: u32, body: &mut [u8]) {
    if op == opcode::READ || op == opcode::READDIR {
        // fuse_read_in: fh u64, offset u64, size u32 at byte 16.
        if let Some(s) = body.get_mut(16..20) {
            let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) % (MAX_READ + 1);
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Sequences of FUSE requests through the real dispatch path of a devfs, with unplugs: each
    /// request is answered exactly once (FORGET never, INTERRUPT only when malformed), with 0 or a negative errno,
    /// and after the session ends nothing is left unanswered or open.
    #[test]
    fn fuse_requests_are_answered_exactly_once(
        reqs in prop::collection::vec(fuse_request(), 1..32),
        unplug_at in prop::collection::vec(any::<bool>(), 32),
    ) {
        let devices = Devices::new();
        let fs = build(&devices);
        let mut wire = Wire::new();
        let ctx = Ctx::detached(&wire.ch);
        let mut expect: HashMap<u64, u32> = HashMap::new();
        let mut optional: HashMap<u64, u32> = HashMap::new();
        let mut got: HashMap<u64, Vec<i32>> = HashMap::new();
        for (i, (op, node, mut body, _)) in reqs.into_iter().enumerate() {
            kernel_bounds(op, &mut body);
            let unique = 2 * (i as u64 + 1);
            let h = InHeader {
                len: (std::mem::size_of::<InHeader>() + body.len()) as u32,
                opcode: op,
                unique,
                nodeid: node,
                ..Default::default()
            };
            let mut bytes = h.as_bytes().to_vec();
            bytes.extend_from_slice(&body);
            if op == opcode::INTERRUPT {
                // Takes no answer, unless malformed (EINVAL).
                optional.insert(unique, op);
            } else if op != opcode::FORGET && op != opcode::BATCH_FORGET {
                expect.insert(unique, op);
            }
            dispatch(&wire.ch, &ctx, &fs, &bytes);
            if unplug_at[i % unplug_at.len()] {
                if devices.cros_ec.is_bound() { devices.cros_ec.unbind(); } else { devices.cros_ec.bind(); }
            }
            for (u, e) in wire.answers() {
                got.entry(u).or_default().push(e);
            }
        }
        fs.session_ended();
        drop(ctx);
        for (u, e) in wire.answers() {
            got.entry(u).or_default().push(e);
        }
        for (u, errs) in &got {
            if optional.contains_key(u) {
                prop_assert_eq!(errs, &vec![-libc::EINVAL], "INTERRUPT {} answered", u);
                continue;
            }
            prop_assert!(expect.contains_key(u), "answer to unknown request {u}");
            prop_assert_eq!(errs.len(), 1, "request {} (opcode {}) answered {:?}", u, expect[u], errs);
            prop_assert!((-4095..=0).contains(&errs[0]), "errno {}", errs[0]);
        }
        for (u, op) in &expect {
            prop_assert!(got.contains_key(u), "request {u} (opcode {op}) never answered");
        }
        prop_assert_eq!(fs.open_files(), 0);
        let st = fs.stats();
        use std::sync::atomic::Ordering::Relaxed;
        prop_assert_eq!(
            st.opens.load(Relaxed),
            st.releases.load(Relaxed) + st.releases_at_end.load(Relaxed)
        );
    }
}

/// A request as the kernel frames it.
fn request(op: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let h = InHeader {
        len: (std::mem::size_of::<InHeader>() + body.len()) as u32,
        opcode: op,
        unique,
        nodeid,
        ..Default::default()
    };
    let mut b = h.as_bytes().to_vec();
    b.extend_from_slice(body);
    b
}

/// The harness above drives the real path: a scripted session through `dispatch` sees the
/// version text, a parked read answered by the unplug, and a balanced release.
#[test]
fn dispatch_serves_a_scripted_session() {
    use revocable_devfs::fuse::abi::{OpenIn, OpenOut, ReadIn, ReleaseIn};
    use revocable_devfs::server::ino;
    let devices = Devices::new();
    let fs = build(&devices);
    let mut wire = Wire::new();
    let ctx = Ctx::detached(&wire.ch);
    let open = OpenIn {
        flags: libc::O_RDWR as u32,
        open_flags: 0,
    };
    dispatch(
        &wire.ch,
        &ctx,
        &fs,
        &request(opcode::OPEN, 2, ino::CROS_EC, open.as_bytes()),
    );
    let m = wire.messages();
    assert_eq!((m.len(), m[0].0.error), (1, 0));
    let fh = OpenOut::read_from(&m[0].1).unwrap().fh;
    let read = ReadIn {
        fh,
        size: 64,
        ..Default::default()
    };
    dispatch(
        &wire.ch,
        &ctx,
        &fs,
        &request(opcode::READ, 4, ino::CROS_EC, read.as_bytes()),
    );
    let m = wire.messages();
    assert!(m[0].1.starts_with(b"1.0.0\n"), "{:?}", m[0].1);
    // An event mask, then a blocking read: parked until the unplug answers it with ENODEV.
    let ioctl = abi::IoctlIn {
        fh,
        cmd: IOCEVENTMASK,
        arg: 2,
        ..Default::default()
    }
    .as_bytes()
    .to_vec();
    dispatch(
        &wire.ch,
        &ctx,
        &fs,
        &request(opcode::IOCTL, 6, ino::CROS_EC, &ioctl),
    );
    assert_eq!(wire.answers(), vec![(6, 0)]);
    dispatch(
        &wire.ch,
        &ctx,
        &fs,
        &request(opcode::READ, 8, ino::CROS_EC, read.as_bytes()),
    );
    assert_eq!(wire.answers(), vec![], "the read must park");
    assert_eq!(ctx.parked(), 1);
    devices.cros_ec.unbind();
    assert_eq!(wire.answers(), vec![(8, -libc::ENODEV)]);
    let rel = ReleaseIn {
        fh,
        ..Default::default()
    };
    dispatch(
        &wire.ch,
        &ctx,
        &fs,
        &request(opcode::RELEASE, 10, ino::CROS_EC, rel.as_bytes()),
    );
    assert_eq!(wire.answers(), vec![(10, 0)]);
    assert_eq!(fs.open_files(), 0);
    // Garbage: a short header is ignored, a short body is EINVAL, an unknown opcode ENOSYS.
    dispatch(&wire.ch, &ctx, &fs, &[1, 2, 3]);
    dispatch(
        &wire.ch,
        &ctx,
        &fs,
        &request(opcode::READ, 12, ino::CROS_EC, &[1]),
    );
    dispatch(&wire.ch, &ctx, &fs, &request(9999, 14, 1, &[]));
    assert_eq!(
        wire.answers(),
        vec![(12, -libc::EINVAL), (14, -libc::ENOSYS)]
    );
}

#[test]
fn the_ioctl_struct_sizes_match_the_abi() {
    // Guards the generators above: they rely on these sizes.
    assert_eq!(ioc_size(IOCXCMD), XCMD_HEADER);
    assert_eq!(ioc_size(IOCXCMD_FIXED), XCMD_HEADER + XCMD_FIXED_DATA);
    assert_eq!(ioc_size(IOCRDMEM), READMEM_SIZE);
    assert_eq!(std::mem::size_of::<InHeader>(), 40);
    assert_eq!(abi::ROOT_ID, 1);
}
