//! The `net` bus and the `netdev` driver: one device per network interface, each served as a
//! misc device named after the interface and gated on a revocable [`Link`].
//!
//! A file's first read returns the interface's state line at once ([`LinkState::line`]); each
//! later read returns the line again only after the link changed, and otherwise would block
//! (`EAGAIN`: the file system parks a blocking reader; `O_NONBLOCK` readers get `EAGAIN`). Poll
//! reports `POLLIN | POLLRDNORM` while a change is unread. Deleting the interface removes its
//! device: the node is deregistered, the link revoked (open files: `ENODEV`, sleepers woken). An
//! interface created again under the same name is a new device with a new link; old files never
//! see it.
//!
//! Invariant: [`NetBus`] holds exactly the interfaces of the last dump plus later notifications,
//! keyed by `ifindex`; a device's name is its interface's name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use revocable_device::{BoundDevice, Bus, Device, Driver, MiscRegistry};
use revocable_fops::{
    Errno, File, FileOperations, OpenFlags, PollEvents, PollTable, Resource, WaitQueue,
};

use super::link::{LinkInfo, LinkState};
use super::monitor::LinkEvent;
use crate::fops_node::FopsHandle;
use crate::node::{Handle, Node, NodeResult, DEVICE_FILE_SIZE};
use crate::probe::register_gated_misc;

/// The driver name the interface devices are compatible with.
pub const DRIVER: &str = "netdev";

/// The resource of a bound interface: its state and a change counter, and the open files to
/// wake on a change.
#[derive(Debug, Default)]
pub struct Link {
    state: Mutex<(LinkState, u64)>,
    files: Mutex<Vec<Weak<NetFile>>>,
}

impl Link {
    /// The current state and its generation (incremented by every change).
    pub fn get(&self) -> (LinkState, u64) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a new state; wakes the open files when it differs.
    pub fn update(&self, s: LinkState) {
        {
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 == s && g.1 > 0 {
                return;
            }
            g.0 = s;
            g.1 += 1;
        }
        let live: Vec<_> = {
            let mut f = self.files.lock().unwrap_or_else(|e| e.into_inner());
            f.retain(|w| w.strong_count() > 0);
            f.iter().filter_map(Weak::upgrade).collect()
        };
        for f in live {
            f.wait.wake_all();
        }
    }
}

/// Per-open state: the generation last read, and the readers' wait queue.
#[derive(Debug, Default)]
pub struct NetFile {
    seen: Mutex<Option<u64>>,
    wait: WaitQueue,
}

/// The private data of an open `netdev` file.
#[derive(Debug, Clone)]
pub struct NetFileRef(pub Arc<NetFile>);

/// The chardev of an interface.
#[derive(Debug, Default)]
pub struct NetdevChardev;

impl FileOperations for NetdevChardev {
    type Private = NetFileRef;
    type Resources = Arc<Resource<Link>>;
    type View<'a> = &'a Link;

    fn access<'a>(&'a self, link: &'a Link) -> Result<&'a Link, Errno> {
        Ok(link)
    }

    fn open(&self, link: &Link, _flags: OpenFlags) -> Result<NetFileRef, Errno> {
        let f = Arc::new(NetFile::default());
        link.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&f));
        Ok(NetFileRef(f))
    }

    fn read(
        &self,
        link: Option<&Link>,
        file: &File<NetFileRef>,
        buf: &mut [u8],
        _offset: &mut u64,
    ) -> Result<usize, Errno> {
        let link = link.ok_or(Errno::ENODEV)?;
        let (state, gen) = link.get();
        let mut seen = file
            .private()
            .0
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *seen == Some(gen) {
            return Err(Errno::EAGAIN);
        }
        *seen = Some(gen);
        let line = state.line();
        let n = buf.len().min(line.len());
        buf[..n].copy_from_slice(&line.as_bytes()[..n]);
        Ok(n)
    }

    fn poll(
        &self,
        link: Option<&Link>,
        file: &File<NetFileRef>,
        table: PollTable<'_>,
    ) -> PollEvents {
        let f = &file.private().0;
        table.wait(&f.wait);
        let unread = match link {
            Some(l) => *f.seen.lock().unwrap_or_else(|e| e.into_inner()) != Some(l.get().1),
            None => false,
        };
        if unread {
            PollEvents::POLLIN | PollEvents::POLLRDNORM
        } else {
            PollEvents::EMPTY
        }
    }

    fn release(&self, _link: Option<&Link>, _file: &File<NetFileRef>) {}
}

/// The `netdev` driver: probe makes the link resource (device-managed, revoked at unbind) and
/// registers the interface's misc device gated on it; unbind deregisters, then revokes.
#[derive(Debug)]
struct NetdevDriver {
    misc: MiscRegistry,
    fops: Arc<NetdevChardev>,
}

impl Driver for NetdevDriver {
    fn name(&self) -> &str {
        DRIVER
    }
    fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
        let name = dev.device().name().to_owned();
        register_gated_misc(dev, &self.misc, &name, &self.fops, Link::default())
    }
}

/// The `net` bus: one device per interface, bound to the `netdev` driver.
///
/// ```
/// use revocable_drivers::net::link::{LinkInfo, LinkState};
/// use revocable_drivers::net::monitor::LinkEvent;
/// use revocable_drivers::net::netdev::NetBus;
/// let net = NetBus::new();
/// let up = LinkState { operstate: "up", ..Default::default() };
/// net.handle(LinkEvent::New(LinkInfo { index: 7, name: "veth0".into(), state: up }));
/// assert_eq!(net.names(), ["veth0"]);
/// let f = net.open("veth0", 0).unwrap();
/// net.handle(LinkEvent::Del { index: 7, name: "veth0".into() });
/// assert!(net.names().is_empty());
/// assert!(net.open("veth0", 0).is_err());
/// drop(f);
/// ```
///
/// # Invariants
/// Between events, `by_index` maps the ifindex of every interface with a bound device on `bus` to
/// its name; during one, an interface leaves the map before its device is removed and enters it
/// after its device is added. Only [`handle`](NetBus::handle) changes it, one event at a time
/// (`handling`), holding it only for the map's own updates: a device's add and unbind (which
/// revokes, waits for readers and runs their wake-ups) run without it, so a listing never waits
/// for them and a wake-up may list.
#[derive(Debug)]
pub struct NetBus {
    bus: Bus,
    misc: MiscRegistry,
    by_index: Mutex<HashMap<u32, String>>,
    handling: Mutex<()>,
}

impl NetBus {
    /// An empty bus with the `netdev` driver registered.
    pub fn new() -> Arc<NetBus> {
        let bus = Bus::new();
        let misc = MiscRegistry::new();
        // Cannot fail on a fresh bus: the name is free.
        let _ = bus.register_driver(Arc::new(NetdevDriver {
            misc: misc.clone(),
            fops: Arc::new(NetdevChardev),
        }));
        Arc::new(NetBus {
            bus,
            misc,
            by_index: Mutex::new(HashMap::new()),
            handling: Mutex::new(()),
        })
    }

    /// The device bus (subscribe to it for `Added`/`Removed` events).
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    fn remove(&self, name: &str) {
        // Unbind first (deregister the node, revoke the link), then forget the device.
        let _ = self.bus.remove_device(name);
    }

    /// Applies one link event: a new interface becomes a bound device, a known one gets its new
    /// state (a renamed one is removed and added again), a deleted one is removed. Events are
    /// applied one at a time, in the order of the calls (the kernel sends them under rtnl, in
    /// order); a listing ([`interfaces`](Self::interfaces)) during an event sees the interface
    /// before or after it, never waits for the unbind.
    pub fn handle(&self, ev: LinkEvent) {
        let _one = self.handling.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            LinkEvent::New(LinkInfo { index, name, state }) => {
                let renamed = {
                    let mut idx = self.index();
                    if idx.get(&index).is_some_and(|n| *n != name) {
                        idx.remove(&index)
                    } else {
                        None
                    }
                };
                if let Some(old) = renamed {
                    self.remove(&old);
                }
                if !self.index().contains_key(&index) {
                    // An interface of that name from before (a missed DELLINK) goes first.
                    let stale = {
                        let mut idx = self.index();
                        let stale = idx.iter().find(|(_, n)| **n == name).map(|(i, _)| *i);
                        stale.and_then(|i| idx.remove(&i))
                    };
                    if stale.is_some() {
                        self.remove(&name);
                    }
                    if self
                        .bus
                        .add_device(Device::new(name.clone(), DRIVER))
                        .is_err()
                    {
                        return;
                    }
                    self.index().insert(index, name.clone());
                }
                let link: Option<Arc<Resource<Link>>> =
                    self.bus.device(&name).and_then(|d| d.drvdata());
                if let Some(l) = link {
                    if let Some(g) = l.try_access() {
                        g.update(state);
                    }
                }
            }
            LinkEvent::Del { index, name } => {
                let known = self.index().remove(&index).unwrap_or(name);
                self.remove(&known);
            }
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        self.by_index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The interfaces now, as (name, ifindex), sorted by name. A name re-created by a new
    /// interface normally comes with a new ifindex.
    pub fn interfaces(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self.index().iter().map(|(i, n)| (n.clone(), *i)).collect();
        v.sort();
        v
    }

    /// Names of the interfaces now, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index().values().cloned().collect();
        v.sort();
        v
    }

    /// Opens the interface's file (`misc_open` with the fops replacement), as a
    /// [`Handle`].
    ///
    /// # Errors
    /// `ENODEV` for an interface that does not exist (or is being deleted).
    pub fn open(&self, name: &str, flags: u32) -> NodeResult<Arc<dyn Handle>> {
        let f = self
            .misc
            .open(name, OpenFlags::from_bits(flags))
            .map_err(|e| e.raw())?;
        Ok(Arc::new(FopsHandle::new(f)))
    }

    /// The file node of interface `name` (it opens whatever interface bears the name then).
    pub fn node(self: &Arc<Self>, name: &str) -> Arc<dyn Node> {
        Arc::new(NetdevNode {
            net: self.clone(),
            name: name.into(),
        })
    }
}

struct NetdevNode {
    net: Arc<NetBus>,
    name: String,
}

impl Node for NetdevNode {
    fn mode(&self) -> u32 {
        libc::S_IFREG | 0o444
    }
    fn size(&self) -> u64 {
        DEVICE_FILE_SIZE
    }
    fn present(&self) -> bool {
        self.net.misc.is_live(&self.name)
    }
    fn open(&self, flags: u32) -> NodeResult<Arc<dyn Handle>> {
        self.net.open(&self.name, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(index: u32, name: &str, operstate: &'static str) -> LinkEvent {
        LinkEvent::New(LinkInfo {
            index,
            name: name.into(),
            state: LinkState {
                operstate,
                mtu: 1500,
                ..Default::default()
            },
        })
    }

    #[test]
    fn reads_block_until_a_change_and_fail_after_delete() {
        let net = NetBus::new();
        net.handle(info(3, "eth0", "down"));
        let f = net.open("eth0", libc::O_NONBLOCK as u32).unwrap();
        let first = f.read(0, 256, libc::O_NONBLOCK as u32).unwrap();
        assert!(first.starts_with(b"operstate down "), "{first:?}");
        assert_eq!(f.read(0, 256, libc::O_NONBLOCK as u32), Err(libc::EAGAIN));
        assert_eq!(f.poll(false) & libc::POLLIN as u32, 0);
        net.handle(info(3, "eth0", "down"));
        assert_eq!(f.read(0, 256, 0), Err(libc::EAGAIN), "no change, no line");
        net.handle(info(3, "eth0", "up"));
        assert_ne!(f.poll(false) & libc::POLLIN as u32, 0);
        let second = f.read(0, 256, 0).unwrap();
        assert!(second.starts_with(b"operstate up "), "{second:?}");
        net.handle(LinkEvent::Del {
            index: 3,
            name: "eth0".into(),
        });
        assert_eq!(f.read(0, 256, 0), Err(libc::ENODEV));
        // Re-created under the same name: a new device; the old file stays revoked.
        net.handle(info(9, "eth0", "up"));
        assert_eq!(f.read(0, 256, 0), Err(libc::ENODEV));
        let g = net.open("eth0", 0).unwrap();
        assert!(g.read(0, 256, 0).is_ok());
        f.release();
        g.release();
    }

    #[test]
    fn renames_and_missed_deletes() {
        let net = NetBus::new();
        net.handle(info(3, "a", "up"));
        net.handle(info(3, "b", "up"));
        assert_eq!(net.names(), ["b"]);
        net.handle(info(4, "b", "up"));
        assert_eq!(net.names(), ["b"]);
        net.handle(LinkEvent::Del {
            index: 4,
            name: "b".into(),
        });
        assert!(net.names().is_empty());
    }

    /// An interface's deletion wakes its blocked readers from inside the event (the unbind's
    /// revoke runs their wake-ups); a wake-up that lists the interfaces, as devfs's `net/`
    /// listing does, must not wait for the event that runs it. Bounded: a regression fails.
    #[test]
    fn a_wake_up_during_a_delete_may_list_the_interfaces() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Weak;
        let net = NetBus::new();
        net.handle(info(3, "eth0", "up"));
        let f = net.open("eth0", 0).unwrap();
        assert!(f.read(0, 256, 0).is_ok(), "the first line");
        let listed = Arc::new(AtomicBool::new(false));
        let (weak, l) = (Arc::downgrade(&net), listed.clone());
        f.set_waker(Arc::new(move || {
            if let Some(net) = Weak::upgrade(&weak) {
                // During the delete: the interface has already left the listing.
                if !net.interfaces().iter().any(|(n, _)| n == "eth0") {
                    l.store(true, Ordering::SeqCst);
                }
            }
        }));
        assert_eq!(f.read(0, 256, 0), Err(libc::EAGAIN), "blocked, waker armed");
        let n = net.clone();
        let t = std::thread::spawn(move || {
            n.handle(LinkEvent::Del {
                index: 3,
                name: "eth0".into(),
            })
        });
        let start = std::time::Instant::now();
        while !t.is_finished() {
            assert!(
                start.elapsed().as_secs() < 10,
                "the delete did not return: deadlock"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        t.join().unwrap();
        assert!(listed.load(Ordering::SeqCst), "the wake-up ran and listed");
        assert_eq!(f.read(0, 256, 0), Err(libc::ENODEV));
        f.release();
    }
}
