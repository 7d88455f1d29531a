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

fn bound(m: &Mounted) -> bool {
    std::fs::read_to_string(m.path("control"))
        .unwrap()
        .starts_with("cros_ec bound\n")
}

/// A `control` write(2) of 64 KiB or more (the kernel would split it into several FUSE writes)
/// fails with EFBIG before any line runs, valid or not; one just under the bound runs whole.
#[test]
fn control_write_larger_than_one_fuse_write() {
    let Some(m) = Mounted::new("cl-bigctl") else {
        return;
    };
    let ctl = open(&m.path("control"), libc::O_WRONLY).expect("open control");
    // 100 KiB: a valid first line, blank lines, a malformed line in the second piece.
    let mut text = b"unbind cros_ec\n".to_vec();
    text.resize(100 * 1024, b'\n');
    text.extend_from_slice(b"bogus\n");
    assert_eq!(write(&ctl, &text), Err(libc::EFBIG));
    assert!(bound(&m), "no line of the refused write ran");
    // 100 KiB, every line valid, one spanning the 64 KiB boundary: refused whole as well.
    let mut text = vec![b'\n'; 64 * 1024 - 5];
    text.extend_from_slice(b"unbind cros_ec\n");
    text.resize(100 * 1024, b'\n');
    assert_eq!(write(&ctl, &text), Err(libc::EFBIG));
    assert!(bound(&m));
    // Exactly 64 KiB: the first piece could be followed by more, so it is refused too.
    text.truncate(64 * 1024);
    assert_eq!(write(&ctl, &text), Err(libc::EFBIG));
    assert!(bound(&m));
    // 64 KiB - 1 from one buffer is one request: all lines run, or none.
    let mut text = vec![b'\n'; 64 * 1024 - 1 - 15];
    text.extend_from_slice(b"unbind cros_ec\n");
    assert_eq!(write(&ctl, &text), Ok(64 * 1024 - 1));
    assert!(!bound(&m), "the last line ran");
    let mut bad = text.clone();
    bad[0..6].copy_from_slice(b"bogus\n");
    m.control("bind cros_ec\n").unwrap();
    assert_eq!(write(&ctl, &bad), Err(libc::EINVAL));
    assert!(bound(&m), "a malformed line anywhere: nothing ran");
    // pwrite on a stream: ESPIPE, from the VFS.
    // SAFETY: the buffer is readable for its length.
    let r = unsafe { libc::pwrite(ctl.as_raw_fd(), b"x\n".as_ptr().cast(), 2, 0) };
    assert_eq!((r, errno()), (-1, libc::ESPIPE));
}

/// The residual case documented in the README: a writev(2) whose segments span more than 32
/// pages is split by page count below 64 KiB. Its first piece runs alone; the later pieces
/// arrive at an offset other than 0 and are refused, and writev returns a short count.
#[test]
fn control_writev_split_by_page_count() {
    let Some(m) = Mounted::new("cl-writev") else {
        return;
    };
    let ctl = open(&m.path("control"), libc::O_WRONLY).expect("open control");
    let page = 4096;
    let nseg = 40;
    let mut mem = vec![0u8; page * (nseg + 1)];
    let base = mem.as_ptr().align_offset(page);
    let mut iov = Vec::new();
    for i in 0..nseg {
        let at = base + i * page;
        let seg: &[u8] = match i {
            0 => b"unbind cros_ec\n",
            i if i == nseg - 1 => b"bogus\n",
            _ => b"\n",
        };
        mem[at..at + seg.len()].copy_from_slice(seg);
        iov.push(libc::iovec {
            iov_base: mem[at..].as_mut_ptr().cast(),
            iov_len: seg.len(),
        });
    }
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    // SAFETY: every iovec points into `mem`, which outlives the call.
    let r = unsafe { libc::writev(ctl.as_raw_fd(), iov.as_ptr(), iov.len() as i32) };
    assert!(
        r > 0 && (r as usize) < total,
        "writev returned {r} of {total}"
    );
    assert!(!bound(&m), "the first piece ran alone");
}
