//! revocable-devfs: a FUSE file system that serves the drivers' files to real processes, with
//! hot unplug: the simulated ChromeOS EC chardev `cros_ec` (protected by the fops replacement of
//! the misc registry, as the kernel series' patches 6/7 and 7/7 do), the kselftest device
//! `revocable_test` (both in `revocable-drivers`), and a `control` file to unbind, bind and
//! inject EC events. The transport is `revocable-fuse`.
//!
//! ```text
//! MOUNTPOINT/cros_ec                   EC chardev: version read, MKBP events, poll, ioctls
//! MOUNTPOINT/revocable_test/provider   kselftest provider (write a string / `resource_gone`)
//! MOUNTPOINT/revocable_test/consumer   kselftest consumer (offsets 0, 0x1234, 0x5678, 0x9abc)
//! MOUNTPOINT/control                   `cros_ec bound` …; `unbind NAME`, `bind NAME`,
//!                                      `event cros_ec TYPE HEX`
//! MOUNTPOINT/net/IFNAME                with `--net`: one file per network interface
//! ```
//!
//! Modules: [`fs`] (the tree, open files, parking of blocking reads; a
//! [`revocable_fuse::Filesystem`]), [`dynamic`] (directories whose files come and go),
//! [`control`], and [`server`] (everything assembled:
//! [`server::Devfs`]). For convenience the transport is re-exported as [`fuse`] and the drivers'
//! modules as [`node`], [`fops_node`], [`cros_ec`] and [`revocable_test`].
//!
//! Invariant across the crate: every FUSE request is answered exactly once, every open file is
//! released exactly once (by RELEASE or at session end), and nothing a client can send makes the
//! server panic.
//!
//! ```no_run
//! use revocable_devfs::server::Devfs;
//! let mut fs = Devfs::mount(std::path::Path::new("/tmp/dev"), 4)?;
//! fs.devices().cros_ec.unbind(); // hot unplug: open files now fail with ENODEV
//! fs.stopper().stop();
//! fs.join();
//! # Ok::<(), revocable_devfs::fuse::MountError>(())
//! ```

pub mod control;
pub mod dynamic;
pub mod fs;
pub mod server;

pub use revocable_drivers::{cros_ec, fops_node, node, revocable_test};
pub use revocable_fuse as fuse;
