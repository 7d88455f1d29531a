//! Adapter from a fops-layer open file ([`revocable_fops::OpenFile`]) to the FUSE layer's
//! [`Handle`]: reads that would block arm a notify-mode [`Waiter`] whose callback is the FUSE
//! file's waker, so a parked request is retried when data arrives or the device is revoked.
//!
//! Invariant: each handle owns one waiter, made when the waker is installed and shared by every
//! parked read and poll of the file (so it is re-armed with `Waiter::rearm`, never `reset`); the
//! fops file is released (its `release` runs) exactly when `Handle::release` is called.

use std::sync::{Mutex, OnceLock};

use revocable_fops::ioctl::{ioc_dir, ioc_size, IoctlArg, IOC_READ, IOC_WRITE};
use revocable_fops::{OpenFile, OpenFlags, Wait, Waiter};

use crate::node::{Handle, NodeResult, OpenMode, Waker};

/// An open misc-device file served over FUSE.
///
/// # Invariants
/// `file` is `Some` until `release` takes it; `waiter` is set once by `set_waker`.
pub struct FopsHandle {
    file: Mutex<Option<OpenFile>>,
    waiter: OnceLock<Waiter>,
}

impl std::fmt::Debug for FopsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FopsHandle").finish()
    }
}

impl FopsHandle {
    /// Wraps an open fops file.
    pub fn new(file: OpenFile) -> FopsHandle {
        FopsHandle {
            file: Mutex::new(Some(file)),
            waiter: OnceLock::new(),
        }
    }

    fn file(&self) -> NodeResult<OpenFile> {
        // Cloning the handle (an Arc) keeps the lock out of the driver call.
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(libc::EBADF)
    }

    fn sync_flags(file: &OpenFile, flags: u32) {
        let want = OpenFlags::from_bits(flags);
        if file.flags().nonblocking() != want.nonblocking() {
            file.set_flags(want);
        }
    }
}

impl Handle for FopsHandle {
    fn open_mode(&self) -> OpenMode {
        OpenMode::Stream
    }

    fn read(&self, _offset: u64, size: u32, flags: u32) -> NodeResult<Vec<u8>> {
        let file = self.file()?;
        Self::sync_flags(&file, flags);
        let mut buf = vec![0u8; size as usize];
        let wait = match self.waiter.get() {
            Some(w) => Wait::Arm(w),
            None => Wait::NonBlocking,
        };
        let n = file.read(&mut buf, wait).map_err(|e| e.raw())?;
        buf.truncate(n);
        Ok(buf)
    }

    fn write(&self, _offset: u64, data: &[u8]) -> NodeResult<usize> {
        self.file()?
            .write(data, Wait::NonBlocking)
            .map_err(|e| e.raw())
    }

    fn ioctl(&self, cmd: u32, arg: u64, input: &[u8], out_size: u32) -> NodeResult<(i32, Vec<u8>)> {
        let file = self.file()?;
        let size = ioc_size(cmd);
        let dir = ioc_dir(cmd);
        let r = if dir & (IOC_READ | IOC_WRITE) != 0 && size > 0 {
            let mut buf = vec![0u8; size];
            let n = input.len().min(size);
            buf[..n].copy_from_slice(&input[..n]);
            let r = file.ioctl(cmd, IoctlArg::with_data(arg, &mut buf));
            buf.truncate(out_size as usize);
            r.map(|v| (v, buf))
        } else {
            file.ioctl(cmd, IoctlArg::value(arg))
                .map(|v| (v, Vec::new()))
        };
        match r {
            Ok((v, out)) => Ok((i32::try_from(v).unwrap_or(i32::MAX), out)),
            Err(e) => Err(e.raw()),
        }
    }

    fn poll(&self, arm: bool) -> u32 {
        let Ok(file) = self.file() else {
            return libc::POLLNVAL as u32;
        };
        let w = if arm { self.waiter.get() } else { None };
        if let Some(w) = w {
            // Re-arm: a waiter woken earlier would not run its callback again. Keep the
            // registrations: a read parked on this file relies on them too.
            w.rearm();
        }
        file.poll(w).bits()
    }

    fn set_waker(&self, waker: Waker) {
        let _ = self.waiter.set(Waiter::with_notify(move || waker()));
    }

    fn release(&self) {
        let f = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(f);
    }
}
