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
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use revocable_device::DeviceEvent;
use revocable_drivers::net::monitor::LinkMonitor;
use revocable_drivers::net::netdev::NetBus;

use crate::control::Devices;
use crate::dynamic::Dynamic;
use crate::fs::{DevFs, Entry, Kind, Stats};
use crate::fuse::{self as transport, Chosen, EndReason, MountError, Notifier, Session, Transport};
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
    gate: Arc<InvalGate>,
    inval: Option<JoinHandle<()>>,
}

/// How long a stop waits for a dentry invalidation in flight (see [`InvalGate`]).
pub const INVAL_DRAIN: Duration = Duration::from_secs(1);

/// Orders `net/`'s dentry invalidations before a stop.
///
/// The kernel runs `FUSE_NOTIFY_INVAL_ENTRY` under the directory's lock, taken uninterruptibly
/// (`fuse_reverse_inval_entry`), and a LOOKUP or READDIR of `net/` holds that lock shared until
/// the server answers it. A stop lets the dispatch threads leave with requests unread: with one
/// such request among them and an invalidation in flight, the invalidating thread, and the
/// session's close of `/dev/fuse` behind its write, would stay blocked until the connection is
/// aborted. So a stop closes the gate first, while the dispatch threads still serve: no
/// invalidation starts after that, and the stop waits (at most [`INVAL_DRAIN`]) for the one in
/// flight.
///
/// # Invariants
/// `in_flight` is true exactly while the invalidating thread is between [`enter`](Self::enter)
/// and [`leave`](Self::leave); once `closed`, `enter` fails.
#[derive(Debug, Default)]
struct InvalGate {
    state: Mutex<GateState>,
    left: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    in_flight: bool,
}

impl InvalGate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before an invalidation: false once the gate is closed (then skip it).
    fn enter(&self) -> bool {
        let mut st = self.state();
        if st.closed {
            return false;
        }
        st.in_flight = true;
        true
    }

    /// True once closed.
    fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// After an invalidation.
    fn leave(&self) {
        self.state().in_flight = false;
        self.left.notify_all();
    }

    /// Closes the gate and waits up to `bound` for an invalidation in flight; true if none is
    /// left in flight.
    fn close(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut st = self.state();
        st.closed = true;
        while st.in_flight {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .left
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Stops a [`Devfs`] from any thread (e.g. a signal-handling thread). Cloneable.
///
/// Blocking: with `net/`, up to [`INVAL_DRAIN`] while a dentry invalidation is in flight (see
/// [`InvalGate`]); otherwise it only flags the session and detaches the mount.
#[derive(Clone, Debug)]
pub struct Stopper {
    session: transport::Stopper,
    gate: Option<Arc<InvalGate>>,
}

impl Stopper {
    /// Ends `net/`'s invalidations, then removes the mount (lazily) and stops the dispatch
    /// threads. Idempotent.
    pub fn stop(&self) {
        if let Some(g) = &self.gate {
            // Not drained within the bound: stop anyway; the session's own fallback (a fusectl
            // abort) then frees the invalidating thread.
            let _ = g.close(INVAL_DRAIN);
        }
        self.session.stop();
    }
}

impl Net {
    fn shut(&mut self) {
        // The monitor first: no more events; then the invalidation thread.
        self.monitor = None;
        // Closing the gate is also what makes the thread leave (at its next idle tick).
        let _ = self.gate.close(INVAL_DRAIN);
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
/// None is sent once `gate` is closed, and the thread then leaves.
fn invalidate_removed(
    bus: &NetBus,
    notifier: Notifier,
    stats: Arc<Stats>,
    gate: Arc<InvalGate>,
) -> JoinHandle<()> {
    let rx = bus.bus().subscribe();
    std::thread::spawn(move || loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(DeviceEvent::Removed(name)) => {
                if !gate.enter() {
                    continue;
                }
                let sent = notifier.inval_entry(ino::NET, name.as_bytes()).is_ok();
                gate.leave();
                if sent {
                    stats.entry_invalidations.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) if !gate.is_closed() => {}
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

impl Drop for Devfs {
    /// A Devfs dropped while serving stops as [`Stopper::stop`] does: `net/`'s invalidations end
    /// first, then the session's drop stops and joins its threads.
    fn drop(&mut self) {
        if let Some(n) = &self.net {
            let _ = n.gate.close(INVAL_DRAIN);
        }
    }
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
                let gate = Arc::new(InvalGate::default());
                let inval = invalidate_removed(&bus, session.notifier(), stats, gate.clone());
                let b = bus.clone();
                match LinkMonitor::start(o.netns.as_deref(), move |ev| b.handle(ev)) {
                    Ok(m) => Some(Net {
                        bus,
                        monitor: Some(m),
                        gate,
                        inval: Some(inval),
                    }),
                    Err(e) => {
                        let mut n = Net {
                            bus,
                            monitor: None,
                            gate,
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

    /// Stops the session from another thread (see [`Stopper`]).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            session: self.session.stopper(),
            gate: self.net.as_ref().map(|n| n.gate.clone()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_lets_no_invalidation_start() {
        let g = InvalGate::default();
        assert!(g.enter());
        g.leave();
        assert!(g.close(Duration::ZERO), "nothing in flight: closed at once");
        assert!(!g.enter());
        assert!(g.close(Duration::ZERO), "idempotent");
    }

    #[test]
    fn closing_waits_for_the_invalidation_in_flight() {
        let g = Arc::new(InvalGate::default());
        assert!(g.enter());
        let g2 = g.clone();
        let closer = std::thread::spawn(move || g2.close(Duration::from_secs(10)));
        let start = Instant::now();
        while !g.state().closed {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the closer never ran"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !closer.is_finished(),
            "the close waits while one is in flight"
        );
        g.leave();
        assert!(closer.join().unwrap(), "drained");
        assert!(!g.enter());
    }

    #[test]
    fn closing_gives_up_after_its_bound() {
        let g = InvalGate::default();
        assert!(g.enter());
        let start = Instant::now();
        assert!(!g.close(Duration::from_millis(50)), "still in flight");
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(!g.enter(), "closed all the same");
    }
}
