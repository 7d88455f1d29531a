//! revocable-fuse: a small FUSE transport written from the kernel ABI
//! (`include/uapi/linux/fuse.h`, protocol 7.31): mount, request loop with several dispatch
//! threads, replies that can be parked and answered later from any thread, FUSE_INTERRUPT → EINTR
//! for parked requests, poll notification, restricted ioctl. It knows nothing of devices: a file
//! system implements [`Filesystem`] and is served by a [`Session`].
//!
//! Modules: [`abi`] (the kernel's structs), [`mount`] (mount(2) or `fusermount3`), [`channel`]
//! (the `/dev/fuse` fd), [`request`] (decoding), [`reply`], [`interrupt`] (parked replies),
//! [`notify`] (poll wake-ups), [`session`] (INIT, dispatch threads, orderly end).
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
#[doc(hidden)]
pub mod testing;
pub mod uring;

pub use interrupt::Parked;
pub use mount::{Mount, MountError};
pub use notify::Notifier;
pub use reply::Reply;
pub use request::Op;
pub use session::{Chosen, Ctx, EndReason, Filesystem, Options, Session, Stopper, Transport};
