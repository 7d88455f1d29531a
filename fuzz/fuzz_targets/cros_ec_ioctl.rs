//! cros_ec's ioctl/read/write/poll decoding under arbitrary input, with hot unplugs: the bytes
//! are a program of operations on open files (the FUSE-facing handles the server calls, and the
//! fops layer directly with buffers of any length). Checks: no panic, every failure an errno from
//! the documented set, outputs within the sizes asked for.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use revocable_devfs::control::Devices;
use revocable_devfs::cros_ec::chardev::{IOCEVENTMASK, IOCRDMEM, IOCXCMD, IOCXCMD_FIXED, IOC_TYPE};
use revocable_devfs::cros_ec::ec::Event;
use revocable_devfs::node::Handle;
use revocable_fops::ioctl::{ioc_size, IoctlArg};
use revocable_fops::{Errno, Wait};
use revocable_fuzz::{Input, MAX_READ};

const IOCTL_ERRORS: &[i32] = &[
    libc::ENOTTY,
    libc::EINVAL,
    libc::EFAULT,
    libc::ENODEV,
    libc::EBADF,
];

fn cmd(inp: &mut Input<'_>) -> u32 {
    match inp.byte().unwrap_or(0) % 4 {
        0 => [IOCXCMD, IOCRDMEM, IOCEVENTMASK, IOCXCMD_FIXED]
            [usize::from(inp.byte().unwrap_or(0) % 4)],
        1 => {
            // The EC's type with any direction, size and number.
            let x = inp.u32();
            (x & 0xC000_00FF & !0xFF00) | (x & 0x3FFF_0000) | (u32::from(IOC_TYPE) << 8)
        }
        _ => inp.u32(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let devices = Devices::new();
    let node = devices.cros_ec.node();
    let flags = inp.u32();
    let mut handles: Vec<Arc<dyn Handle>> = node.open(flags).into_iter().collect();
    let direct = devices
        .cros_ec
        .open(libc::O_RDWR as u32)
        .expect("a fresh EC is bound");
    while let Some(op) = inp.byte() {
        match op % 10 {
            0..=2 => {
                let c = cmd(&mut inp);
                let arg = inp.u64();
                let len = usize::from(inp.u16() % 512);
                let input = inp.bytes(len).to_vec();
                let out_size = if op & 0x80 != 0 {
                    inp.u32() % 0x4000
                } else {
                    ioc_size(c) as u32
                };
                for h in &handles {
                    match h.ioctl(c, arg, &input, out_size) {
                        Ok((r, out)) => assert!(r >= 0 && out.len() <= out_size as usize),
                        Err(e) => assert!(IOCTL_ERRORS.contains(&e), "ioctl {c:#x}: errno {e}"),
                    }
                }
            }
            3 => {
                // The fops layer with a buffer of any length (short ones must give EFAULT).
                let c = cmd(&mut inp);
                let arg = inp.u64();
                let len = usize::from(inp.u16() % 512);
                let mut b = inp.bytes(len).to_vec();
                let before = b.clone();
                let r = if op & 0x80 != 0 {
                    direct.ioctl(c, IoctlArg::value(arg))
                } else {
                    direct.ioctl(c, IoctlArg::with_data(arg, &mut b))
                };
                match r {
                    Ok(v) => assert!((0..=255).contains(&v), "ioctl {c:#x} returned {v}"),
                    Err(e) => assert!(IOCTL_ERRORS.contains(&e.raw()), "ioctl {c:#x}: {e:?}"),
                }
                assert_eq!(b.len(), before.len());
            }
            4 => {
                let (off, size, nb) = (inp.u64(), inp.u32() % (MAX_READ + 1), op & 0x80 != 0);
                for h in &handles {
                    let f = if nb { libc::O_NONBLOCK as u32 } else { 0 };
                    match h.read(off, size, f) {
                        Ok(d) => assert!(d.len() <= size as usize),
                        Err(e) => assert!(
                            [libc::EAGAIN, libc::ENODEV, libc::EBADF].contains(&e),
                            "read: {e}"
                        ),
                    }
                }
                let mut b = vec![0u8; (size % 4096) as usize];
                match direct.read(&mut b, Wait::NonBlocking) {
                    Ok(n) => assert!(n <= b.len()),
                    Err(e) => assert!([Errno::EAGAIN, Errno::ENODEV].contains(&e), "read: {e:?}"),
                }
            }
            5 => {
                let len = usize::from(inp.byte().unwrap_or(0));
                let d = inp.bytes(len).to_vec();
                for h in &handles {
                    let r = h.write(inp.u64(), &d);
                    assert!(
                        matches!(r, Err(libc::EINVAL | libc::ENODEV | libc::EBADF)),
                        "write: {r:?}"
                    );
                }
            }
            6 => {
                for h in &handles {
                    let _ = h.poll(op & 0x80 != 0);
                }
            }
            7 => {
                devices.cros_ec.unbind();
            }
            8 => {
                devices.cros_ec.bind();
                match node.open(inp.u32()) {
                    Ok(h) => handles.push(h),
                    Err(e) => assert!([libc::ENODEV, libc::EINVAL].contains(&e), "open: {e}"),
                }
                if handles.len() > 8 {
                    handles.remove(0).release();
                }
            }
            _ => {
                let typ = inp.byte().unwrap_or(0);
                let len = usize::from(inp.byte().unwrap_or(0) % 32);
                let payload = inp.bytes(len).to_vec();
                let r = devices.cros_ec.raise_event(&Event { typ, payload });
                assert!(
                    matches!(r, Ok(_) | Err(Errno::EINVAL) | Err(Errno::ENODEV)),
                    "event: {r:?}"
                );
            }
        }
    }
    for h in &handles {
        h.release();
    }
});
