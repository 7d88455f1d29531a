//! The `cros_ec` chardev driver (the kernel's `cros_ec_chardev`), as [`FileOperations`].
//!
//! User-visible behaviour, as the kernel driver's:
//! - `read` with event mask 0 (legacy): at position 0 the version text
//!   `"1.0.0\n" RO "\n" RW "\n" IMAGE "\n"`, then end of file;
//! - `read` with a non-zero mask: one queued MKBP event, 1 type byte + payload (truncated to the
//!   read length); `EAGAIN` when none is queued (the file layer blocks the caller unless
//!   `O_NONBLOCK`); a zero-length read returns 0 after the same checks and dequeues nothing;
//! - `poll`: `POLLIN | POLLRDNORM` while an event is queued;
//! - ioctls of type 0xEC: [`IOCXCMD`], [`IOCXCMD_FIXED`], [`IOCRDMEM`], [`IOCEVENTMASK`];
//!   other commands → `ENOTTY`; sizes above the EC's maximum → `EINVAL`.
//!
//! The driver never keeps the EC: every operation gets it from the access hook (the series'
//! patch 7/7), so after unplug each operation fails with `ENODEV` from the fops replacement.
//!
//! Invariant: an open file's event queue holds at most [`MAX_QUEUE_BYTES`] bytes (1 + payload per
//! event), only of types in its mask at the time the event was raised; its wait queue is woken
//! after every enqueue, outside the queue lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use revocable_fops::ioctl::{io, ioc_type, iowr, IoctlArg};
use revocable_fops::{
    Errno, File, FileOperations, OpenFlags, PollEvents, PollTable, Resource, WaitQueue,
};

use super::ec::{CrosEc, Event, EventListener, MAX_REQUEST, MAX_RESPONSE, MEMMAP_SIZE};

/// The ioctl type of the EC chardev.
pub const IOC_TYPE: u8 = 0xEC;
/// Size of `struct cros_ec_command` without payload: `{u32 version, command, outsize, insize, result}`.
pub const XCMD_HEADER: usize = 20;
/// Payload capacity of the fixed-size XCMD variant (= the EC's maximum request/response).
pub const XCMD_FIXED_DATA: usize = MAX_REQUEST as usize;
/// Size of `struct cros_ec_readmem`: `{u32 offset, bytes; u8 buffer[255]}`.
pub const READMEM_SIZE: usize = 8 + MEMMAP_SIZE;
/// `CROS_EC_DEV_IOCXCMD = _IOWR(0xEC, 0, struct cros_ec_command)` (0xc014ec00), the kernel number.
/// Through FUSE only the 20-byte header travels, so only commands without parameters and without
/// response data can run in this form; a non-zero `outsize` or `insize` fails with `EFAULT` (the
/// payload is not reachable), sizes above the EC maximum with `EINVAL`.
pub const IOCXCMD: u32 = iowr(IOC_TYPE, 0, XCMD_HEADER);
/// `CROS_EC_DEV_IOCRDMEM = _IOWR(0xEC, 1, struct cros_ec_readmem)` (0xc107ec01), the kernel number.
pub const IOCRDMEM: u32 = iowr(IOC_TYPE, 1, READMEM_SIZE);
/// `CROS_EC_DEV_IOCEVENTMASK = _IO(0xEC, 2)` (0x0000ec02), the kernel number: the argument value
/// is the new event mask.
pub const IOCEVENTMASK: u32 = io(IOC_TYPE, 2);
/// Our fixed-size XCMD: `_IOWR(0xEC, 3, struct cros_ec_command_fixed)` = 0xc10cec03, where
/// `struct cros_ec_command_fixed { u32 version, command, outsize, insize, result; u8 data[248]; }`
/// (268 bytes). Same semantics as the kernel's XCMD: `data[..outsize]` are the parameters, the
/// response is written to `data`, `result` gets the EC status, the return value is the number of
/// response bytes.
pub const IOCXCMD_FIXED: u32 = iowr(IOC_TYPE, 3, XCMD_HEADER + XCMD_FIXED_DATA);
/// The per-file event queue bound (the kernel's `CROS_MAX_EVENT_LEN`, one page).
pub const MAX_QUEUE_BYTES: usize = 4096;

/// Per-open state: event mask, queued events, readers' wait queue.
///
/// # Invariants
/// `queued_bytes` is the sum of `1 + payload.len()` over `events`.
#[derive(Debug, Default)]
pub struct EcFile {
    mask: AtomicU64,
    events: Mutex<(VecDeque<Event>, usize)>,
    wait: WaitQueue,
}

impl EcFile {
    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Event>, usize)> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of queued events.
    pub fn queued(&self) -> usize {
        self.lock().0.len()
    }
}

impl EventListener for EcFile {
    fn on_event(&self, ev: &Event) {
        // Relaxed: the mask is a standalone word; a racing EVENTMASK may or may not see this event.
        if self.mask.load(Ordering::Relaxed) & (1u64 << ev.typ) == 0 {
            return;
        }
        {
            let mut q = self.lock();
            let size = 1 + ev.payload.len();
            if q.1 + size > MAX_QUEUE_BYTES {
                return;
            }
            q.1 += size;
            q.0.push_back(ev.clone());
        }
        self.wait.wake_all();
    }
}

/// The private data of an open `cros_ec` file: its state, also registered (weakly) on the EC.
#[derive(Debug, Clone)]
pub struct EcFileRef(pub Arc<EcFile>);

/// The chardev driver. Its resource is the EC itself (`Resource<CrosEc>`): unplug revokes it.
#[derive(Debug, Default)]
pub struct CrosEcChardev;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl CrosEcChardev {
    fn xcmd(ec: &CrosEc, mut arg: IoctlArg<'_>, fixed: bool) -> Result<i64, Errno> {
        let len = if fixed {
            XCMD_HEADER + XCMD_FIXED_DATA
        } else {
            XCMD_HEADER
        };
        let buf = arg.data(len)?;
        let (version, command, outsize, insize) = (
            u32_at(buf, 0),
            u32_at(buf, 4),
            u32_at(buf, 8),
            u32_at(buf, 12),
        );
        if outsize > MAX_REQUEST || insize > MAX_RESPONSE {
            return Err(Errno::EINVAL);
        }
        if !fixed && (outsize > 0 || insize > 0) {
            return Err(Errno::EFAULT);
        }
        let params = buf[XCMD_HEADER..XCMD_HEADER + outsize as usize].to_vec();
        let r = ec.command(command, version, &params, insize);
        buf[16..20].copy_from_slice(&r.result.to_le_bytes());
        buf[XCMD_HEADER..XCMD_HEADER + r.data.len()].copy_from_slice(&r.data);
        Ok(r.data.len() as i64)
    }

    fn readmem(ec: &CrosEc, mut arg: IoctlArg<'_>) -> Result<i64, Errno> {
        let buf = arg.data(READMEM_SIZE)?;
        let data = ec
            .read_mem(u32_at(buf, 0), u32_at(buf, 4))
            .ok_or(Errno::EINVAL)?;
        buf[8..8 + data.len()].copy_from_slice(&data);
        Ok(data.len() as i64)
    }
}

impl FileOperations for CrosEcChardev {
    type Private = EcFileRef;
    type Resources = Arc<Resource<CrosEc>>;
    type View<'a> = &'a CrosEc;

    fn access<'a>(&'a self, ec: &'a CrosEc) -> Result<&'a CrosEc, Errno> {
        Ok(ec)
    }

    fn open(&self, ec: &CrosEc, _flags: OpenFlags) -> Result<EcFileRef, Errno> {
        let f = Arc::new(EcFile::default());
        let l: Arc<dyn EventListener> = f.clone();
        ec.add_listener(Arc::downgrade(&l));
        Ok(EcFileRef(f))
    }

    fn read(
        &self,
        ec: Option<&CrosEc>,
        file: &File<EcFileRef>,
        buf: &mut [u8],
        offset: &mut u64,
    ) -> Result<usize, Errno> {
        let ec = ec.ok_or(Errno::ENODEV)?;
        let st = &file.private().0;
        if st.mask.load(Ordering::Relaxed) != 0 {
            let mut q = st.lock();
            if q.0.is_empty() {
                return Err(Errno::EAGAIN);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let ev = q.0.pop_front().ok_or(Errno::EAGAIN)?;
            q.1 -= 1 + ev.payload.len();
            drop(q);
            let n = buf.len().min(1 + ev.payload.len());
            buf[0] = ev.typ;
            buf[1..n].copy_from_slice(&ev.payload[..n - 1]);
            return Ok(n);
        }
        if *offset != 0 {
            return Ok(0);
        }
        let text = ec.version_text();
        let n = buf.len().min(text.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        *offset = n as u64;
        Ok(n)
    }

    fn poll(
        &self,
        _ec: Option<&CrosEc>,
        file: &File<EcFileRef>,
        table: PollTable<'_>,
    ) -> PollEvents {
        let st = &file.private().0;
        table.wait(&st.wait);
        if st.queued() > 0 {
            PollEvents::POLLIN | PollEvents::POLLRDNORM
        } else {
            PollEvents::EMPTY
        }
    }

    fn ioctl(
        &self,
        ec: Option<&CrosEc>,
        file: &File<EcFileRef>,
        cmd: u32,
        arg: IoctlArg<'_>,
    ) -> Result<i64, Errno> {
        if ioc_type(cmd) != IOC_TYPE {
            return Err(Errno::ENOTTY);
        }
        let ec = ec.ok_or(Errno::ENODEV)?;
        match cmd {
            IOCXCMD => Self::xcmd(ec, arg, false),
            IOCXCMD_FIXED => Self::xcmd(ec, arg, true),
            IOCRDMEM => Self::readmem(ec, arg),
            IOCEVENTMASK => {
                file.private().0.mask.store(arg.raw(), Ordering::Relaxed);
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn release(&self, ec: Option<&CrosEc>, file: &File<EcFileRef>) {
        if let Some(ec) = ec {
            let l: Arc<dyn EventListener> = file.private().0.clone();
            let w: Weak<dyn EventListener> = Arc::downgrade(&l);
            ec.remove_listener(&w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_ioctl_numbers() {
        assert_eq!(IOCXCMD, 0xc014_ec00);
        assert_eq!(IOCRDMEM, 0xc107_ec01);
        assert_eq!(IOCEVENTMASK, 0x0000_ec02);
        assert_eq!(IOCXCMD_FIXED, 0xc10c_ec03);
    }

    #[test]
    fn queue_is_bounded_and_masked() {
        let f = EcFile::default();
        f.on_event(&Event {
            typ: 1,
            payload: vec![],
        });
        assert_eq!(f.queued(), 0, "mask 0 drops everything");
        f.mask.store(1 << 1, Ordering::Relaxed);
        f.on_event(&Event {
            typ: 2,
            payload: vec![],
        });
        assert_eq!(f.queued(), 0);
        for _ in 0..1000 {
            f.on_event(&Event {
                typ: 1,
                payload: vec![0; 15],
            });
        }
        assert_eq!(f.queued(), MAX_QUEUE_BYTES / 16);
    }
}
