//! revocable-drivers: the drivers, above the device model and below any file system, and the
//! file interface they export.
//!
//! - [`node`]: what a driver exports — [`node::Node`] (a file that can be opened) and
//!   [`node::Handle`] (an open file, non-blocking, with a waker for parked reads and pollers).
//! - [`fops_node`]: any `revocable-fops` open file (a misc device behind the fops replacement) as
//!   a [`node::Handle`].
//! - [`cros_ec`]: the simulated ChromeOS EC and its chardev, protected as the kernel series'
//!   patches 6/7 and 7/7 do it.
//! - [`revocable_test`]: the kselftest device (`provider`, `consumer`).
//! - [`net`]: network interfaces as devices, from rtnetlink: a link monitor, a `net` bus and the
//!   `netdev` driver.
//! - [`probe`]: the probe of a misc-device driver gated on a device-managed resource.
//!
//! A file system (devfs) places nodes in its tree; adding a driver touches no transport code.
//!
//! Invariant: no `Handle` method blocks, and `release` runs exactly once per successful `open`.

pub mod cros_ec;
pub mod fops_node;
pub mod net;
pub mod node;
pub mod probe;
pub mod revocable_test;
#[doc(hidden)]
pub mod testing;
