//! The ChromeOS EC: the simulated controller ([`ec`]), its chardev driver ([`chardev`], a
//! `FileOperations` gated on the EC), and the device that binds them on a bus and registers the
//! misc node ([`device`]).
//!
//! Invariant: the chardev reaches the EC only through the fops replacement's access hook, so
//! after unbind no operation can touch it.

pub mod chardev;
pub mod device;
pub mod ec;
