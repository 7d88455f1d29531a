//! The assembled device file system: the tree, its devices, and a running FUSE session.
//!
//! ```text
//! MOUNTPOINT/cros_ec                   the EC chardev (misc device, fops replacement)
//! MOUNTPOINT/revocable_test/provider   kselftest provider (write-only)
//! MOUNTPOINT/revocable_test/consumer   kselftest consumer (read-only; present while a provider exists)
//! MOUNTPOINT/control                   device states; bind/unbind/event commands
//! ```
//!
//! Invariant: inode numbers are fixed ([`ino`]); the devices outlive the session.

use std::path::Path;
use std::sync::Arc;

use crate::control::Devices;
use crate::fs::{DevFs, Entry, Kind, Stats};
use crate::fuse::{EndReason, MountError, Session, Stopper};

/// Fixed inode numbers.
pub mod ino {
    /// `/`.
    pub const ROOT: u64 = 1;
    /// `/cros_ec`.
    pub const CROS_EC: u64 = 2;
    /// `/revocable_test`.
    pub const REVOCABLE_TEST: u64 = 3;
    /// `/revocable_test/provider`.
    pub const PROVIDER: u64 = 4;
    /// `/revocable_test/consumer`.
    pub const CONSUMER: u64 = 5;
    /// `/control`.
    pub const CONTROL: u64 = 6;
}

/// The file system for `devices`.
pub fn build(devices: &Devices) -> DevFs {
    let t = &devices.revocable_test;
    DevFs::new(vec![
        Entry {
            ino: ino::CROS_EC,
            parent: ino::ROOT,
            name: "cros_ec",
            kind: Kind::File(devices.cros_ec.node()),
        },
        Entry {
            ino: ino::REVOCABLE_TEST,
            parent: ino::ROOT,
            name: "revocable_test",
            kind: Kind::Dir,
        },
        Entry {
            ino: ino::PROVIDER,
            parent: ino::REVOCABLE_TEST,
            name: "provider",
            kind: Kind::File(t.provider_node()),
        },
        Entry {
            ino: ino::CONSUMER,
            parent: ino::REVOCABLE_TEST,
            name: "consumer",
            kind: Kind::File(t.consumer_node()),
        },
        Entry {
            ino: ino::CONTROL,
            parent: ino::ROOT,
            name: "control",
            kind: Kind::File(devices.control_node()),
        },
    ])
}

/// Default number of dispatch threads.
pub const DEFAULT_THREADS: usize = 4;

/// A mounted, serving devfs.
///
/// ```no_run
/// use revocable_devfs::server::Devfs;
/// let mut d = Devfs::mount(std::path::Path::new("/mnt/dev"), 4).unwrap();
/// let stop = d.stopper();
/// std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_secs(1)); stop.stop() });
/// d.join();
/// ```
#[derive(Debug)]
pub struct Devfs {
    session: Session<DevFs>,
    devices: Devices,
}

impl Devfs {
    /// Mounts at `mountpoint` with `threads` dispatch threads and fresh devices.
    ///
    /// # Errors
    /// A one-line [`MountError`] (no /dev/fuse, no permission, bad mount point).
    pub fn mount(mountpoint: &Path, threads: usize) -> Result<Devfs, MountError> {
        let devices = Devices::new();
        let fs = Arc::new(build(&devices));
        let session = Session::mount(mountpoint, fs, threads)?;
        Ok(Devfs { session, devices })
    }

    /// The devices (for programmatic bind/unbind/events).
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// The counters (opens, releases, parked reads, …).
    pub fn stats(&self) -> &Arc<Stats> {
        self.session.fs().stats()
    }

    /// Files open right now.
    pub fn open_files(&self) -> usize {
        self.session.fs().open_files()
    }

    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        self.session.mountpoint()
    }

    /// Stops the session from another thread.
    pub fn stopper(&self) -> Stopper {
        self.session.stopper()
    }

    /// Waits for the end of the session and tears it down (releases files still open).
    pub fn join(&mut self) -> EndReason {
        self.session.join()
    }
}
