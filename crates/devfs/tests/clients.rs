//! What real clients do to device files, beyond read/write/ioctl/poll: `fstat` and
//! `lseek(SEEK_END)` of a file kept open across an unplug, large `control` writes, asynchronous
//! and zero-copy reads. Through a real mount (skips without `/dev/fuse`, fails under `CI`), plus
//! in-process checks of the request path where the kernel's choice of request must be pinned.

mod common;
mod wire;

use std::os::fd::{AsRawFd, OwnedFd};

use common::*;
use revocable_devfs::control::Devices;
use revocable_devfs::fuse::abi::{self, opcode, AttrOut, GetattrIn, OpenIn, OpenOut, Pod};
use revocable_devfs::fuse::session::dispatch;
use revocable_devfs::fuse::{Ctx, Filesystem};
use revocable_devfs::server::{build, ino};
use wire::{request, Wire};

fn fstat(fd: &OwnedFd) -> Result<libc::stat, i32> {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out-pointer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(st)
    }
}

fn lseek(fd: &OwnedFd, off: i64, whence: i32) -> Result<i64, i32> {
    // SAFETY: lseek on an open fd has no memory preconditions.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off, whence) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// `fstat` of an open file succeeds whatever the tree says now: the consumer after its provider
/// closed (the node left the directory) answers as an unlinked file, nlink 0; `lseek(SEEK_END)`,
/// which the kernel asks with `FUSE_GETATTR_FH`, answers from the open file; the path is gone.
#[test]
fn fstat_of_file_open_across_unplug() {
    let Some(m) = Mounted::new("cl-fstat") else {
        return;
    };
    let p = open(&m.path("revocable_test/provider"), libc::O_WRONLY).expect("open provider");
    write(&p, b"abc").expect("write provider");
    let c = open(&m.path("revocable_test/consumer"), libc::O_RDONLY).expect("open consumer");
    let before = fstat(&c).expect("fstat before");
    assert_eq!(before.st_mode, libc::S_IFREG | 0o444);
    assert_eq!(before.st_nlink, 1);
    drop(p);
    m.wait_until("consumer removed", || {
        !m.path("revocable_test/consumer").exists()
    });
    let after = fstat(&c).expect("fstat of a consumer open across its removal");
    assert_eq!(after.st_ino, before.st_ino);
    assert_eq!(after.st_mode, libc::S_IFREG | 0o444);
    assert_eq!(after.st_nlink, 0, "a removed file reads as unlinked");
    assert_eq!(lseek(&c, 0, libc::SEEK_END), Ok(0));
    assert_eq!(pread(&c, 16, 0).unwrap(), b"(null)");
    assert_eq!(
        std::fs::metadata(m.path("revocable_test/consumer"))
            .err()
            .and_then(|e| e.raw_os_error()),
        Some(libc::ENOENT)
    );

    // The EC after an unplug: its node stays, the open file answers fstat, I/O fails.
    let ec = open(&m.path("cros_ec"), libc::O_RDWR).expect("open cros_ec");
    m.control("unbind cros_ec\n").expect("unbind");
    let st = fstat(&ec).expect("fstat of cros_ec after unplug");
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
    assert_eq!(read(&ec, 64), Err(libc::ENODEV));
}

/// GETATTR with `FUSE_GETATTR_FH` answers from the open file named by `fh`, even when the node id
/// in the header names nothing in the tree.
#[test]
fn getattr_with_fh_answers_from_the_open_file() {
    let devices = Devices::new();
    let fs = build(&devices);
    let mut w = Wire::new();
    let ctx = Ctx::detached(&w.ch);
    let open_in = OpenIn {
        flags: libc::O_RDONLY as u32,
        open_flags: 0,
    };
    dispatch(
        &w.ch,
        &ctx,
        &fs,
        &request(opcode::OPEN, 2, ino::CONTROL, open_in.as_bytes()),
    );
    let msgs = w.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0.error, 0);
    let fh = OpenOut::read_from(&msgs[0].1).expect("open reply").fh;

    let getattr = |w: &mut Wire, flags: u32, nodeid: u64| {
        let g = GetattrIn {
            getattr_flags: flags,
            dummy: 0,
            fh,
        };
        dispatch(
            &w.ch,
            &ctx,
            &fs,
            &request(opcode::GETATTR, 4, nodeid, g.as_bytes()),
        );
        let msgs = w.messages();
        assert_eq!(msgs.len(), 1);
        (msgs[0].0.error, AttrOut::read_from(&msgs[0].1))
    };
    let (err, out) = getattr(&mut w, abi::GETATTR_FH, 999);
    assert_eq!(err, 0);
    let attr = out.expect("attr reply").attr;
    assert_eq!(attr.ino, ino::CONTROL);
    assert_eq!(attr.mode, libc::S_IFREG | 0o644);
    // Without the flag the node id counts, and 999 is nothing.
    assert_eq!(getattr(&mut w, 0, 999).0, -libc::ENOENT);
    fs.session_ended();
}
