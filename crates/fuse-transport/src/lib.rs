//! revocable-fuse: a small FUSE transport written from the kernel ABI
//! (`include/uapi/linux/fuse.h`, protocol 7.31; 7.42 for FUSE over io_uring): mount, request
//! loops, replies that can be parked and answered later from any thread, FUSE_INTERRUPT → EINTR
//! for parked requests, poll notification, restricted ioctl. It knows nothing of devices: a file
//! system implements [`Filesystem`] and is served by a [`Session`], over one of two transports
//! ([`Transport`]):
//!
//! - FUSE over io_uring ([`uring`]; kernel ≥ 6.14 with the fuse module's `enable_uring` on): one
//!   request queue per CPU, each served by a thread pinned to it, through the `io-uring` crate;
//! - `/dev/fuse` ([`channel`]): dispatch threads blocked in `read(2)`, one woken per request.
//!
//! Modules: [`abi`] (the kernel's structs), [`mount`] (mount(2) or `fusermount3`), [`channel`]
//! (the `/dev/fuse` fd), [`uring`] (the io_uring queues), [`request`] (decoding), [`reply`],
//! [`interrupt`] (parked replies), [`notify`] (poll wake-ups), [`session`] (INIT, transport
//! choice, dispatch threads, orderly end).
//!
//! Invariant: every request read from `/dev/fuse` or fetched into an io_uring entry is answered
//! exactly once (or, for FORGET, never), by whoever holds its [`Reply`].

pub mod abi;
pub mod channel;
pub mod interrupt;
pub mod mount;
pub mod notify;
pub mod reply;
pub mod request;
pub mod session;
#[doc(hidden)]
pub mod testing;
pub mod uring;

pub use interrupt::Parked;
pub use mount::{Mount, MountError};
pub use notify::Notifier;
pub use reply::Reply;
pub use request::Op;
pub use session::{Chosen, Ctx, EndReason, Filesystem, Options, Session, Stopper, Transport};
