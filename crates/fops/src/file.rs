//! Open files and the fops replacement: every operation gated through the file's own resources.
//!
//! Invariants:
//! - the replacement context (driver, resources, access hook) lives in the open file itself: an
//!   operation touches no global list and no lock, takes one access per resource set and drops it
//!   before returning (O(1) per operation);
//! - nothing reaches the driver with a view after a resource of the file is revoked: the view
//!   exists only inside a successful `try_access`;
//! - a sleeping operation holds no access: the file layer drops the gate before it waits, and it
//!   registers on the resources' revoke queues before it checks, so a revoke always wakes it;
//! - `release` runs exactly once per successful open, when the last [`OpenFile`] handle goes,
//!   revoked or not; afterwards the replacement context is dropped (the original driver
//!   operations are all that remain, and no handle can reach them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::Errno;
use crate::ioctl::IoctlArg;
use crate::ops::{File, FileOperations, OpSet, OpenFlags, PollTable, Whence};
use crate::poll::PollEvents;
use crate::resource::ResourceSet;
use crate::wait::{WaitOutcome, Waiter};

/// How an operation that would block behaves.
///
/// A file opened (or set) `O_NONBLOCK` always behaves as [`Wait::NonBlocking`].
#[derive(Clone, Copy, Debug)]
pub enum Wait<'a> {
    /// Return `EAGAIN`.
    NonBlocking,
    /// Sleep on the waiter until the operation can proceed (then retry), the waiter is cancelled
    /// (`EINTR`), or a resource is revoked (`ENODEV`). For a thread-per-request server.
    Block(&'a Waiter),
    /// Do not sleep: arm the waiter (it is woken, or its notify callback runs, when the operation
    /// may proceed or a resource is revoked) and return `EAGAIN`. For an event-driven server that
    /// parks the request and retries it when notified. The waiter may be shared by every parked
    /// operation and poll of a file: arming re-arms it with [`Waiter::rearm`], which keeps the
    /// registrations the others made.
    Arm(&'a Waiter),
}

/// An open file as the layers above see it (the VFS side of `struct file_operations`).
///
/// Object safe, so [`OpenFile`] can hold any driver's file; implemented by [`GatedFile`].
pub trait FileObject: Send + Sync {
    /// Reads at `*offset`.
    fn read_at(&self, buf: &mut [u8], offset: &mut u64, wait: Wait<'_>) -> Result<usize, Errno>;
    /// Writes at `*offset`.
    fn write_at(&self, buf: &[u8], offset: &mut u64, wait: Wait<'_>) -> Result<usize, Errno>;
    /// Current readiness; with a waiter, also arms it for the next change (and for revoke).
    fn poll(&self, waiter: Option<&Waiter>) -> PollEvents;
    /// An ioctl.
    fn ioctl(&self, cmd: u32, arg: IoctlArg<'_>) -> Result<i64, Errno>;
    /// Seeks; returns the new position.
    fn llseek(&self, offset: i64, whence: Whence) -> Result<u64, Errno>;
    /// `close` of one descriptor.
    fn flush(&self) -> Result<(), Errno>;
    /// The open file's flags.
    fn flags(&self) -> OpenFlags;
    /// `fcntl(F_SETFL)`.
    fn set_flags(&self, flags: OpenFlags);
    /// The file position.
    fn pos(&self) -> u64;
    /// Sets the file position (for `read`/`write` without offset).
    fn set_pos(&self, pos: u64);
    /// True if any resource of the file is revoked.
    fn is_revoked(&self) -> bool;
    /// Registers `waiter` to be woken when a resource of the file is revoked.
    fn watch_revoke(&self, waiter: &Waiter);
}

/// One open file of driver `D`: the driver's [`File`] plus the replacement context.
///
/// # Invariants
///
/// `res` is the resource set the file was opened with and is never replaced; `release` ran iff
/// the value is being dropped (see `Drop`).
pub struct GatedFile<D: FileOperations> {
    driver: Arc<D>,
    res: D::Resources,
    file: File<D::Private>,
}

impl<D: FileOperations> std::fmt::Debug for GatedFile<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatedFile")
            .field("driver", &std::any::type_name::<D>())
            .field("flags", &self.file.flags())
            .field("revoked", &self.res.is_revoked())
            .finish()
    }
}

/// Runs `$body` with `$v` bound to the view (`Some`) while access is held, or `None` for a
/// resource-free op; evaluates to `Err(ENODEV)` when revoked, or the hook's error.
macro_rules! gate {
    ($self:ident, $op:expr, |$v:ident| $body:expr) => {{
        if D::RESOURCE_FREE.contains($op) {
            let $v = None;
            $body
        } else {
            match $self.res.try_access() {
                None => Err(Errno::ENODEV),
                Some(guard) => match $self.driver.access(D::Resources::refs(&guard)) {
                    Ok(view) => {
                        let $v = Some(view);
                        $body
                    }
                    Err(e) => Err(e),
                },
            }
        }
    }};
}

impl<D: FileOperations> GatedFile<D> {
    /// Opens a file of `driver` gated on `res`: `ENODEV` if a resource is already revoked, the
    /// hook's or the driver's error if they refuse.
    pub fn open(driver: Arc<D>, res: D::Resources, flags: OpenFlags) -> Result<Self, Errno> {
        let private = {
            let guard = res.try_access().ok_or(Errno::ENODEV)?;
            let view = driver.access(D::Resources::refs(&guard))?;
            driver.open(view, flags)?
        };
        Ok(GatedFile {
            driver,
            res,
            file: File::new(flags, private),
        })
    }

    /// The driver's side of the file.
    pub fn file(&self) -> &File<D::Private> {
        &self.file
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<D> {
        &self.driver
    }

    /// The resources the file is gated on.
    pub fn resources(&self) -> &D::Resources {
        &self.res
    }

    #[inline]
    fn read_once(&self, buf: &mut [u8], offset: &mut u64) -> Result<usize, Errno> {
        gate!(self, OpSet::READ, |v| self
            .driver
            .read(v, &self.file, buf, offset))
    }

    #[inline]
    fn write_once(&self, buf: &[u8], offset: &mut u64) -> Result<usize, Errno> {
        gate!(self, OpSet::WRITE, |v| self
            .driver
            .write(v, &self.file, buf, offset))
    }

    fn poll_inner(&self, waiter: Option<&Waiter>) -> PollEvents {
        if let Some(w) = waiter {
            // Before the check: a revoke after this point finds the registration.
            self.res.watch_revoke(w);
        }
        let r: Result<PollEvents, Errno> = gate!(self, OpSet::POLL, |v| Ok(self.driver.poll(
            v,
            &self.file,
            PollTable::new(waiter)
        )));
        // Revoked, or the hook refused: readers wake and read the error.
        r.unwrap_or(PollEvents::REVOKED)
    }

    /// The blocking model, entered after a first attempt of `op` returned `EAGAIN`: if the
    /// caller may wait, arm the waiter through `poll` (outside the gate), then sleep or return
    /// per `wait`, and retry `op` when woken.
    #[cold]
    #[inline(never)]
    fn blocking<R>(
        &self,
        wait: Wait<'_>,
        interest: PollEvents,
        mut op: impl FnMut() -> Result<R, Errno>,
    ) -> Result<R, Errno> {
        let mut ready_retries = 0u32;
        loop {
            let w = match wait {
                Wait::NonBlocking => return Err(Errno::EAGAIN),
                Wait::Block(w) | Wait::Arm(w) => w,
            };
            if self.file.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            if self.res.is_revoked() {
                // A resource-free op would wait for a device that is gone.
                return Err(Errno::ENODEV);
            }
            if w.is_cancelled() {
                return Err(Errno::EINTR);
            }
            match wait {
                // Shared by the file's parked operations and polls: keep their registrations.
                Wait::Arm(_) => w.rearm(),
                _ => w.reset(),
            }
            let mask = self.poll_inner(Some(w));
            if mask.intersects(interest | PollEvents::ALWAYS) && ready_retries < 2 {
                // Became ready (or revoked) between the try and the arming: retry now. Bounded, so
                // a driver whose poll and read disagree makes us sleep rather than spin.
                ready_retries += 1;
            } else {
                match wait {
                    Wait::Arm(_) => return Err(Errno::EAGAIN),
                    _ => match w.wait(None) {
                        WaitOutcome::Woken => ready_retries = 0,
                        WaitOutcome::Cancelled => return Err(Errno::EINTR),
                        // No deadline was given.
                        WaitOutcome::TimedOut => return Err(Errno::EAGAIN),
                    },
                }
            }
            match op() {
                Err(Errno::EAGAIN) => {}
                r => return r,
            }
        }
    }
}

impl<D: FileOperations> FileObject for GatedFile<D> {
    #[inline(always)]
    fn read_at(&self, buf: &mut [u8], offset: &mut u64, wait: Wait<'_>) -> Result<usize, Errno> {
        if !self.file.flags().readable() {
            return Err(Errno::EBADF);
        }
        match self.read_once(buf, offset) {
            Err(Errno::EAGAIN) => {}
            r => return r,
        }
        self.blocking(wait, PollEvents::POLLIN | PollEvents::POLLRDNORM, || {
            self.read_once(buf, offset)
        })
    }

    #[inline(always)]
    fn write_at(&self, buf: &[u8], offset: &mut u64, wait: Wait<'_>) -> Result<usize, Errno> {
        if !self.file.flags().writable() {
            return Err(Errno::EBADF);
        }
        match self.write_once(buf, offset) {
            Err(Errno::EAGAIN) => {}
            r => return r,
        }
        self.blocking(wait, PollEvents::POLLOUT | PollEvents::POLLWRNORM, || {
            self.write_once(buf, offset)
        })
    }

    fn poll(&self, waiter: Option<&Waiter>) -> PollEvents {
        self.poll_inner(waiter)
    }

    #[inline(always)]
    fn ioctl(&self, cmd: u32, arg: IoctlArg<'_>) -> Result<i64, Errno> {
        gate!(self, OpSet::IOCTL, |v| self
            .driver
            .ioctl(v, &self.file, cmd, arg))
    }

    fn llseek(&self, offset: i64, whence: Whence) -> Result<u64, Errno> {
        let pos = gate!(self, OpSet::LLSEEK, |v| self
            .driver
            .llseek(v, &self.file, offset, whence))?;
        self.file.set_pos(pos);
        Ok(pos)
    }

    fn flush(&self) -> Result<(), Errno> {
        // `close(2)` returns flush's error. Once the device is gone there is nothing left to
        // flush, and a close that fails would only confuse the caller: succeed without the driver.
        if !D::RESOURCE_FREE.contains(OpSet::FLUSH) && self.res.is_revoked() {
            return Ok(());
        }
        match gate!(self, OpSet::FLUSH, |v| self.driver.flush(v, &self.file)) {
            Err(Errno::ENODEV) if self.res.is_revoked() => Ok(()),
            r => r,
        }
    }

    fn flags(&self) -> OpenFlags {
        self.file.flags()
    }

    fn set_flags(&self, flags: OpenFlags) {
        self.file.set_flags(flags)
    }

    fn pos(&self) -> u64 {
        self.file.pos()
    }

    fn set_pos(&self, pos: u64) {
        self.file.set_pos(pos)
    }

    fn is_revoked(&self) -> bool {
        self.res.is_revoked()
    }

    fn watch_revoke(&self, waiter: &Waiter) {
        self.res.watch_revoke(waiter)
    }
}

impl<D: FileOperations> Drop for GatedFile<D> {
    fn drop(&mut self) {
        // Release runs inside an access section when the resources are still there, so the
        // driver may tear down per-file state that lives in them (e.g. unregister a notifier).
        match self.res.try_access() {
            Some(guard) => {
                let view = self.driver.access(D::Resources::refs(&guard)).ok();
                self.driver.release(view, &self.file);
            }
            None => self.driver.release(None, &self.file),
        }
        // The replacement context (`res`) is dropped with the file, after release.
    }
}

/// A handle to an open file; clones share the file. `release` runs when the last handle goes.
///
/// `OpenFile` (the default parameter) holds any driver's file behind `dyn FileObject`;
/// `OpenFile<GatedFile<D>>` is the statically dispatched form with the same methods.
///
/// Position: [`read`](Self::read)/[`write`](Self::write) use and advance the file position;
/// concurrent position users on one file race like threads sharing a stream descriptor (each op
/// is whole, the final position is one of theirs). [`read_at`](Self::read_at) and
/// [`write_at`](Self::write_at) take an explicit offset (what FUSE passes).
///
/// # Examples
///
/// Blocking read woken by revoke (see also [`FileOperations`]):
///
/// ```
/// use std::sync::Arc;
/// use revocable_fops::*;
///
/// struct Empty; // never has data
/// impl FileOperations for Empty {
///     type Private = ();
///     type Resources = Arc<Resource<()>>;
///     type View<'a> = ();
///     fn access(&self, _: &()) -> Result<(), Errno> { Ok(()) }
///     fn open(&self, _: (), _: OpenFlags) -> Result<(), Errno> { Ok(()) }
///     fn read(&self, _: Option<()>, _: &File<()>, _: &mut [u8], _: &mut u64)
///         -> Result<usize, Errno> { Err(Errno::EAGAIN) }
///     fn poll(&self, _: Option<()>, _: &File<()>, _: PollTable<'_>) -> PollEvents {
///         PollEvents::EMPTY
///     }
/// }
///
/// let res = Resource::new(());
/// let f: OpenFile = OpenFile::open(Arc::new(Empty), res.clone(), OpenFlags::O_RDONLY)
///     .unwrap()
///     .erase();
/// let reader = std::thread::spawn(move || {
///     let w = Waiter::new();
///     f.read(&mut [0u8; 4], Wait::Block(&w))
/// });
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// res.revoke(); // returns at once: the reader sleeps outside the gate
/// assert_eq!(reader.join().unwrap(), Err(Errno::ENODEV));
/// ```
pub struct OpenFile<F: ?Sized = dyn FileObject> {
    inner: Arc<F>,
}

impl<F: ?Sized> Clone for OpenFile<F> {
    fn clone(&self) -> Self {
        OpenFile {
            inner: self.inner.clone(),
        }
    }
}

impl<F: ?Sized> std::fmt::Debug for OpenFile<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFile")
            .field("handles", &Arc::strong_count(&self.inner))
            .finish()
    }
}

impl<D: FileOperations> OpenFile<GatedFile<D>> {
    /// Opens a file of `driver` with its operations replaced by gated ones bound to `res`.
    pub fn open(driver: Arc<D>, res: D::Resources, flags: OpenFlags) -> Result<Self, Errno> {
        Ok(OpenFile {
            inner: Arc::new(GatedFile::open(driver, res, flags)?),
        })
    }

    /// The typed open file (driver, private data, resources).
    pub fn gated(&self) -> &GatedFile<D> {
        &self.inner
    }

    /// The type-erased handle.
    pub fn erase(self) -> OpenFile {
        OpenFile { inner: self.inner }
    }
}

impl<F: FileObject + ?Sized> OpenFile<F> {
    /// Reads at the file position and advances it.
    pub fn read(&self, buf: &mut [u8], wait: Wait<'_>) -> Result<usize, Errno> {
        let mut off = self.inner.pos();
        let r = self.inner.read_at(buf, &mut off, wait);
        if r.is_ok() {
            self.inner.set_pos(off);
        }
        r
    }
    /// Reads at `offset` (`pread`); the file position is unchanged.
    #[inline(always)]
    pub fn read_at(&self, buf: &mut [u8], offset: u64, wait: Wait<'_>) -> Result<usize, Errno> {
        let mut off = offset;
        self.inner.read_at(buf, &mut off, wait)
    }
    /// Writes at the file position and advances it.
    pub fn write(&self, buf: &[u8], wait: Wait<'_>) -> Result<usize, Errno> {
        let mut off = self.inner.pos();
        let r = self.inner.write_at(buf, &mut off, wait);
        if r.is_ok() {
            self.inner.set_pos(off);
        }
        r
    }
    /// Writes at `offset` (`pwrite`); the file position is unchanged.
    pub fn write_at(&self, buf: &[u8], offset: u64, wait: Wait<'_>) -> Result<usize, Errno> {
        let mut off = offset;
        self.inner.write_at(buf, &mut off, wait)
    }
    /// Current readiness; with a waiter, arms it for the next change and for revoke.
    /// A revoked file reports [`PollEvents::REVOKED`].
    pub fn poll(&self, waiter: Option<&Waiter>) -> PollEvents {
        self.inner.poll(waiter)
    }
    /// Blocks until one of `interest` (or `POLLERR`/`POLLHUP`/`POLLNVAL`) is ready, `waiter` is
    /// cancelled (`EINTR`), or `timeout` passes (`Ok(EMPTY)`). Returns the ready events
    /// restricted to `interest` plus the always-reported ones, like `poll(2)`'s `revents`.
    pub fn poll_wait(
        &self,
        interest: PollEvents,
        waiter: &Waiter,
        timeout: Option<Duration>,
    ) -> Result<PollEvents, Errno> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if waiter.is_cancelled() {
                return Err(Errno::EINTR);
            }
            waiter.reset();
            let hit = self.inner.poll(Some(waiter)) & (interest | PollEvents::ALWAYS);
            if !hit.is_empty() {
                waiter.reset();
                return Ok(hit);
            }
            match waiter.wait(deadline) {
                WaitOutcome::Woken => {}
                WaitOutcome::Cancelled => return Err(Errno::EINTR),
                WaitOutcome::TimedOut => return Ok(PollEvents::EMPTY),
            }
        }
    }
    /// An ioctl.
    #[inline(always)]
    pub fn ioctl(&self, cmd: u32, arg: IoctlArg<'_>) -> Result<i64, Errno> {
        self.inner.ioctl(cmd, arg)
    }
    /// Seeks; returns and stores the new position.
    pub fn llseek(&self, offset: i64, whence: Whence) -> Result<u64, Errno> {
        self.inner.llseek(offset, whence)
    }
    /// `close` of one descriptor (the file stays open while handles remain). Succeeds without
    /// calling the driver once the device is revoked.
    pub fn flush(&self) -> Result<(), Errno> {
        self.inner.flush()
    }
    /// The file's flags.
    pub fn flags(&self) -> OpenFlags {
        self.inner.flags()
    }
    /// `fcntl(F_SETFL)`: changes `O_NONBLOCK` and `O_APPEND`.
    pub fn set_flags(&self, flags: OpenFlags) {
        self.inner.set_flags(flags)
    }
    /// The file position.
    pub fn pos(&self) -> u64 {
        self.inner.pos()
    }
    /// True if any resource of the file is revoked.
    pub fn is_revoked(&self) -> bool {
        self.inner.is_revoked()
    }
    /// Registers `waiter` to be woken when a resource of the file is revoked (one-shot).
    pub fn watch_revoke(&self, waiter: &Waiter) {
        self.inner.watch_revoke(waiter)
    }
    /// Drops this handle; returns true if it was the only one, so that `release` ran in this
    /// call. (When two last handles are dropped concurrently both may return false; `release`
    /// still runs exactly once, in the later drop.)
    pub fn release(mut self) -> bool {
        let unique = Arc::get_mut(&mut self.inner).is_some();
        drop(self);
        unique
    }

    /// Number of handles to this open file.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}
