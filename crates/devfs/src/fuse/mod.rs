//! A small FUSE transport written from the kernel ABI (`include/uapi/linux/fuse.h`): mount,
//! request loop with several dispatch threads, replies that can be parked and answered later from
//! any thread, FUSE_INTERRUPT → EINTR for parked requests, poll notification, restricted ioctl.
//!
//! Invariant: every request read from `/dev/fuse` is answered exactly once (or, for FORGET, never),
//! by whoever holds its [`Reply`].

pub mod abi;
pub mod channel;
pub mod interrupt;
pub mod mount;
pub mod notify;
pub mod reply;
pub mod request;
pub mod session;

pub use interrupt::Parked;
pub use mount::{Mount, MountError};
pub use notify::Notifier;
pub use reply::Reply;
pub use request::Op;
pub use session::{Ctx, EndReason, Filesystem, Session, Stopper};
