//! The assembled device file system: the tree, its devices, and a running FUSE session.
//!
//! ```text
//! MOUNTPOINT/cros_ec                   the EC chardev (misc device, fops replacement)
//! MOUNTPOINT/revocable_test/provider   kselftest provider (write-only)
//! MOUNTPOINT/revocable_test/consumer   kselftest consumer (read-only; present while a provider exists)
//! MOUNTPOINT/control                   device states; bind/unbind/event commands
//! MOUNTPOINT/net/IFNAME                with --net: one file per network interface (netdev)
//! ```
//!
//! Invariant: inode numbers of the fixed tree are fixed ([`ino`]); `net/` files get theirs from
//! [`crate::dynamic`]; the devices outlive the session.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use revocable_device::DeviceEvent;
use revocable_drivers::net::monitor::LinkMonitor;
use revocable_drivers::net::netdev::NetBus;

use crate::control::Devices;
use crate::dynamic::Dynamic;
use crate::fs::{DevFs, Entry, Kind, Stats};
use crate::fuse::{Chosen, EndReason, MountError, Notifier, Session, Stopper, Transport};
use crate::node::Node;

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
    /// `/net` (with `--net`).
    pub const NET: u64 = 7;
}

/// `net/`: the interfaces of a [`NetBus`], each file identified by its ifindex.
struct NetDir(Arc<NetBus>);

impl Dynamic for NetDir {
    fn entries(&self) -> Vec<(String, u64)> {
        self.0
            .interfaces()
            .into_iter()
            .map(|(n, i)| (n, u64::from(i)))
            .collect()
    }
    fn node(&self, name: &str) -> Arc<dyn Node> {
        self.0.node(name)
    }
}

/// The file system for `devices`.
pub fn build(devices: &Devices) -> DevFs {
    build_with(devices, None)
}

/// The file system for `devices`, with `net/` serving the interfaces of `net` if given.
pub fn build_with(devices: &Devices, net: Option<&Arc<NetBus>>) -> DevFs {
    let t = &devices.revocable_test;
    let mut entries = vec![
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
    ];
    if let Some(net) = net {
        entries.push(Entry {
            ino: ino::NET,
            parent: ino::ROOT,
            name: "net",
            kind: Kind::Dynamic(Arc::new(NetDir(net.clone()))),
        });
    }
    DevFs::new(entries)
}

/// What to serve besides the fixed tree.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve `net/IFNAME` for the network interfaces of a namespace (`revocable devfs --net`).
    pub net: Option<NetOptions>,
    /// The FUSE transport (`revocable devfs --transport`); [`Transport::Auto`] by default.
    pub transport: Transport,
}

/// Where `net/` takes its interfaces from.
#[derive(Clone, Debug, Default)]
pub struct NetOptions {
    /// A network namespace file (`/run/netns/NAME`); `None`: the server's own namespace.
    pub netns: Option<PathBuf>,
}

/// `net/` while served: the bus, the rtnetlink monitor feeding it, and the thread that drops
/// removed interfaces from the kernel's dentry cache.
struct Net {
    bus: Arc<NetBus>,
    monitor: Option<LinkMonitor>,
    stop: Arc<AtomicBool>,
    inval: Option<JoinHandle<()>>,
}

impl Net {
    fn shut(&mut self) {
        // The monitor first: no more events; then the invalidation thread.
        self.monitor = None;
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.inval.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.shut();
    }
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("interfaces", &self.bus.names())
            .finish()
    }
}

/// For each interface removed from `bus`, invalidates `net/NAME` in the kernel's dentry cache.
/// Runs outside the dispatch threads (the kernel takes the directory's lock for it).
fn invalidate_removed(
    bus: &NetBus,
    notifier: Notifier,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let rx = bus.bus().subscribe();
    std::thread::spawn(move || loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(DeviceEvent::Removed(name)) => {
                if notifier.inval_entry(ino::NET, name.as_bytes()).is_ok() {
                    stats.entry_invalidations.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Acquire) => {}
            Err(_) => return,
        }
    })
}

/// Default number of `/dev/fuse` dispatch threads on a 2-CPU machine (see [`default_threads`]).
pub const DEFAULT_THREADS: usize = 2;

/// Default number of `/dev/fuse` dispatch threads: one per CPU, at least 2. Measured on 2 CPUs
/// (`cargo bench -p revocable-devfs --bench peers` with `PEERS_DEV_THREADS`): 2 threads served
/// ~20 % more 64-byte reads/s with one client than 4, with a p99 latency a third as long (each
/// idle thread is one more cold cache for the kernel's first-in-first-out wake-up to land on).
/// The io_uring transport has one thread per CPU whatever this says.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(DEFAULT_THREADS, |n| n.get().max(2))
}

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
    net: Option<Net>,
}

impl Devfs {
    /// Mounts at `mountpoint` with `threads` dispatch threads and fresh devices.
    ///
    /// # Errors
    /// A one-line [`MountError`] (no /dev/fuse, no permission, bad mount point).
    pub fn mount(mountpoint: &Path, threads: usize) -> Result<Devfs, MountError> {
        Devfs::mount_with(mountpoint, threads, &Options::default())
    }

    /// Mounts as [`mount`](Self::mount) does, with `options` (`net/`). With `net`, the
    /// interfaces are followed from the kernel's link notifications: `net/IFNAME` appears when an
    /// interface is created and leaves the directory (and the kernel's dentry cache) when it is
    /// deleted, which unbinds its device (open files: `ENODEV`, blocked readers woken).
    ///
    /// # Errors
    /// A one-line [`MountError`]: mounting is impossible, or the network namespace or the
    /// rtnetlink socket cannot be opened (nothing stays mounted then).
    pub fn mount_with(
        mountpoint: &Path,
        threads: usize,
        options: &Options,
    ) -> Result<Devfs, MountError> {
        let devices = Devices::new();
        let bus = options.net.as_ref().map(|_| NetBus::new());
        let fs = Arc::new(build_with(&devices, bus.as_ref()));
        let stats = fs.stats().clone();
        let mut session = Session::mount_with(
            mountpoint,
            fs,
            &crate::fuse::Options {
                threads,
                transport: options.transport,
            },
        )?;
        let net = match (bus, &options.net) {
            (Some(bus), Some(o)) => {
                let stop = Arc::new(AtomicBool::new(false));
                let inval = invalidate_removed(&bus, session.notifier(), stats, stop.clone());
                let b = bus.clone();
                match LinkMonitor::start(o.netns.as_deref(), move |ev| b.handle(ev)) {
                    Ok(m) => Some(Net {
                        bus,
                        monitor: Some(m),
                        stop,
                        inval: Some(inval),
                    }),
                    Err(e) => {
                        let mut n = Net {
                            bus,
                            monitor: None,
                            stop,
                            inval: Some(inval),
                        };
                        n.shut();
                        session.stopper().stop();
                        session.join();
                        return Err(MountError(format!(
                            "--net: cannot follow the network interfaces: {e}"
                        )));
                    }
                }
            }
            _ => None,
        };
        Ok(Devfs {
            session,
            devices,
            net,
        })
    }

    /// The network interfaces served under `net/`, if `--net`.
    pub fn net(&self) -> Option<&Arc<NetBus>> {
        self.net.as_ref().map(|n| &n.bus)
    }

    /// Dynamic (`net/`) files the server keeps an inode for now: the live ones and the open ones.
    pub fn dynamic_inodes(&self) -> usize {
        self.session.fs().dynamic_inodes()
    }

    /// The FUSE transport in use, and why it was chosen.
    pub fn transport(&self) -> &Chosen {
        self.session.transport()
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
        let r = self.session.join();
        if let Some(n) = &mut self.net {
            n.shut();
        }
        r
    }
}
