//! File operations for revocable devices: the driver interface, open files, and the *fops
//! replacement* that gates every operation through the file's revocable resources.
//!
//! A driver implements [`FileOperations`]. Opening a file ([`OpenFile::open`]) binds it to a
//! [`ResourceSet`] (one or several [`Resource`]s, each a core `Revocable<T>` plus a revoke wait
//! queue) and the driver's access hook ([`FileOperations::access`], the kernel's `rops`). The
//! context lives in the open file: no global list, no global lock, one access per operation.
//!
//! After any resource of a file is revoked:
//!
//! | operation | result |
//! |---|---|
//! | open | `ENODEV` |
//! | read, write, ioctl, llseek | `ENODEV` |
//! | flush (`close`) | `Ok`, the driver is not called |
//! | poll | `POLLIN | POLLERR | POLLHUP` |
//! | an op in [`FileOperations::RESOURCE_FREE`] | runs as before (no gate) |
//! | a blocked read/write/poll | woken, returns `ENODEV` (poll: the mask above) |
//! | release | runs exactly once, with `view == None` |
//!
//! # Blocking
//!
//! A driver operation never sleeps waiting for data: it returns `EAGAIN`, and its `poll`
//! registers the caller's [`Waiter`] on a [`WaitQueue`] the driver wakes. The file layer holds
//! access only while the driver runs; it waits *after* dropping it, registered on the driver's
//! queues and on every resource's revoke queue. Hence:
//!
//! - `revoke()` never waits for a sleeper, only for operations running in the driver;
//! - a sleeper is woken by the revoke and returns `ENODEV`;
//! - [`Wait::Block`] sleeps the calling thread (thread-per-request servers); the waiter's
//!   [`Canceller`] interrupts it with `EINTR` (`FUSE_INTERRUPT`);
//! - [`Wait::Arm`] never sleeps: it arms the waiter and returns `EAGAIN`; the waiter's notify
//!   callback runs when the operation may proceed or the device is revoked (event-driven servers
//!   park the request without a thread and retry it then);
//! - `O_NONBLOCK` files return `EAGAIN` in every mode.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use revocable_fops::*;
//!
//! struct Counter;
//! impl FileOperations for Counter {
//!     type Private = ();
//!     type Resources = Arc<Resource<u64>>;
//!     type View<'a> = u64;
//!     const RESOURCE_FREE: OpSet = OpSet::LLSEEK;
//!     fn access(&self, v: &u64) -> Result<u64, Errno> { Ok(*v) }
//!     fn open(&self, _: u64, _: OpenFlags) -> Result<(), Errno> { Ok(()) }
//!     fn ioctl(&self, v: Option<u64>, _: &File<()>, cmd: u32, _: ioctl::IoctlArg<'_>)
//!         -> Result<i64, Errno> {
//!         match cmd {
//!             1 => Ok(v.ok_or(Errno::ENODEV)? as i64),
//!             _ => Err(Errno::ENOTTY),
//!         }
//!     }
//!     fn llseek(&self, _: Option<u64>, _: &File<()>, off: i64, w: Whence) -> Result<u64, Errno> {
//!         fixed_size_llseek(0, 100, off, w)
//!     }
//! }
//!
//! let res = Resource::new(42);
//! let drv = Arc::new(Counter);
//! let f = OpenFile::open(drv.clone(), res.clone(), OpenFlags::O_RDWR).unwrap();
//! assert_eq!(f.ioctl(1, ioctl::IoctlArg::value(0)), Ok(42));
//! assert_eq!(f.ioctl(2, ioctl::IoctlArg::value(0)), Err(Errno::ENOTTY));
//! res.revoke();
//! assert_eq!(f.ioctl(1, ioctl::IoctlArg::value(0)), Err(Errno::ENODEV));
//! assert_eq!(f.llseek(10, Whence::Set), Ok(10)); // resource-free: still works
//! assert_eq!(OpenFile::open(drv, res, OpenFlags::O_RDWR).unwrap_err(), Errno::ENODEV);
//! ```

#![warn(missing_docs)]

mod errno;
mod file;
pub mod ioctl;
mod ops;
mod poll;
mod resource;
mod wait;

pub use errno::{Errno, MAX_ERRNO};
pub use file::{FileObject, GatedFile, OpenFile, Wait};
pub use ops::{fixed_size_llseek, File, FileOperations, OpSet, OpenFlags, PollTable, Whence};
pub use poll::PollEvents;
pub use resource::{Permanent, Resource, ResourceSet};
pub use revocable::{Revocable, RevocableGuard, RevokeTimeout};
pub use wait::{Canceller, WaitOutcome, WaitQueue, Waiter};
