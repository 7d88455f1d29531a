//! The misc device registry (the kernel's `struct miscdevice`, `misc_register`, `misc_open`).
//!
//! Invariants:
//! - names and minors are unique among registered devices;
//! - `open` runs the fops replacement (gate on the device's resources + the access hook) before
//!   the driver's own `open`, inside an access to the registration itself; deregistration first
//!   unlinks the device (no new lookup finds it), then revokes the registration, which waits for
//!   the opens in progress: after [`MiscRegistration::deregister`] returns no open of that device
//!   is running or can start. Files already open are untouched (their resources decide).

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock, Weak};

use revocable::Revocable;
use revocable_fops::{Errno, FileOperations, OpenFile, OpenFlags, ResourceSet, Waiter};

use crate::device::Device;

/// Ask for a dynamically allocated minor (the kernel's `MISC_DYNAMIC_MINOR`).
pub const MISC_DYNAMIC_MINOR: u32 = 255;
/// First dynamically allocated minor.
pub const MISC_DYNAMIC_FIRST: u32 = 256;
/// Largest minor (20 bits, the kernel's `MINORMASK`).
pub const MINOR_MAX: u32 = (1 << 20) - 1;
/// Longest device name accepted.
pub const NAME_MAX: usize = 255;

/// A misc device to register (the kernel's `struct miscdevice`).
///
/// `resources` (with the driver's access hook, [`FileOperations::access`]) are applied at every
/// open before the driver's `open`; use `()` as `D::Resources` for a device without them.
pub struct MiscDevice<D: FileOperations> {
    /// Node name (no `/`, not empty, not `.`/`..`, at most [`NAME_MAX`] bytes).
    pub name: String,
    /// A fixed minor below 255, or [`MISC_DYNAMIC_MINOR`].
    pub minor: u32,
    /// The driver's file operations.
    pub fops: Arc<D>,
    /// What every open file is gated on.
    pub resources: D::Resources,
    /// The parent device, if any.
    pub parent: Option<Arc<Device>>,
}

/// A registered misc device, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscInfo {
    /// Node name.
    pub name: String,
    /// Minor number.
    pub minor: u32,
    /// Parent device name.
    pub parent: Option<String>,
}

/// A change in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MiscEvent {
    /// A device was registered.
    Registered(MiscInfo),
    /// A device was deregistered (unplugged): its name no longer opens.
    Deregistered(MiscInfo),
}

trait Opener: Send + Sync {
    fn open(&self, flags: OpenFlags) -> Result<OpenFile, Errno>;
    fn is_revoked(&self) -> bool;
    fn watch_revoke(&self, w: &Waiter);
}

struct TypedOpener<D: FileOperations> {
    fops: Arc<D>,
    res: D::Resources,
}

impl<D: FileOperations> Opener for TypedOpener<D> {
    fn open(&self, flags: OpenFlags) -> Result<OpenFile, Errno> {
        OpenFile::open(self.fops.clone(), self.res.clone(), flags).map(OpenFile::erase)
    }
    fn is_revoked(&self) -> bool {
        self.res.is_revoked()
    }
    fn watch_revoke(&self, w: &Waiter) {
        self.res.watch_revoke(w)
    }
}

struct Entry {
    info: MiscInfo,
    /// Access held by every open in progress; revoked at deregistration.
    live: Revocable<()>,
    opener: Box<dyn Opener>,
}

#[derive(Default)]
struct Table {
    by_name: BTreeMap<String, Arc<Entry>>,
    by_minor: BTreeMap<u32, Arc<Entry>>,
}

#[derive(Default)]
struct Inner {
    table: RwLock<Table>,
    listeners: Mutex<Vec<Sender<MiscEvent>>>,
}

impl Inner {
    fn emit(&self, ev: MiscEvent) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| l.send(ev.clone()).is_ok());
    }
}

/// The misc registry: register devices, open them by name or minor, list them, watch changes.
///
/// # Invariants
///
/// `by_name` and `by_minor` hold the same entries; an entry leaves both (under the table lock)
/// before its `live` revocable is revoked. Clones share one registry.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use revocable_device::*;
/// use revocable_fops::*;
///
/// struct Null;
/// impl FileOperations for Null {
///     type Private = ();
///     type Resources = Arc<Resource<()>>;
///     type View<'a> = ();
///     fn access(&self, _: &()) -> Result<(), Errno> { Ok(()) }
///     fn open(&self, _: (), _: OpenFlags) -> Result<(), Errno> { Ok(()) }
///     fn read(&self, _: Option<()>, _: &File<()>, _: &mut [u8], _: &mut u64)
///         -> Result<usize, Errno> { Ok(0) }
/// }
///
/// let misc = MiscRegistry::new();
/// let res = Resource::new(());
/// let reg = misc.register(MiscDevice {
///     name: "null0".into(), minor: MISC_DYNAMIC_MINOR, fops: Arc::new(Null),
///     resources: res.clone(), parent: None,
/// }).unwrap();
/// assert_eq!(reg.minor(), MISC_DYNAMIC_FIRST);
/// let f = misc.open("null0", OpenFlags::O_RDONLY).unwrap();
/// assert_eq!(f.read(&mut [0u8; 4], Wait::NonBlocking), Ok(0));
/// res.revoke();
/// assert_eq!(f.read(&mut [0u8; 4], Wait::NonBlocking), Err(Errno::ENODEV));
/// assert_eq!(misc.open("null0", OpenFlags::O_RDONLY).unwrap_err(), Errno::ENODEV);
/// reg.deregister();
/// assert_eq!(misc.open("null0", OpenFlags::O_RDONLY).unwrap_err(), Errno::ENODEV);
/// assert!(misc.list().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct MiscRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MiscRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiscRegistry")
            .field("devices", &self.list())
            .finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

impl MiscRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a device (`misc_register`). Errors: `EINVAL` for a bad name or a fixed minor
    /// ≥ 255, `EEXIST` for a taken name, `EBUSY` for a taken minor (or none left).
    pub fn register<D: FileOperations>(
        &self,
        dev: MiscDevice<D>,
    ) -> Result<MiscRegistration, Errno> {
        if !valid_name(&dev.name) || (dev.minor > MISC_DYNAMIC_MINOR) {
            return Err(Errno::EINVAL);
        }
        let entry = {
            let mut t = self.inner.table.write().unwrap_or_else(|p| p.into_inner());
            if t.by_name.contains_key(&dev.name) {
                return Err(Errno::EEXIST);
            }
            let minor = if dev.minor == MISC_DYNAMIC_MINOR {
                // Lowest free dynamic minor: walk the taken ones in order.
                let mut m = MISC_DYNAMIC_FIRST;
                for &taken in t.by_minor.range(MISC_DYNAMIC_FIRST..).map(|(k, _)| k) {
                    if taken != m {
                        break;
                    }
                    m += 1;
                }
                if m > MINOR_MAX {
                    return Err(Errno::EBUSY);
                }
                m
            } else {
                if t.by_minor.contains_key(&dev.minor) {
                    return Err(Errno::EBUSY);
                }
                dev.minor
            };
            let entry = Arc::new(Entry {
                info: MiscInfo {
                    name: dev.name.clone(),
                    minor,
                    parent: dev.parent.as_ref().map(|p| p.name().to_owned()),
                },
                live: Revocable::new(()),
                opener: Box::new(TypedOpener {
                    fops: dev.fops,
                    res: dev.resources,
                }),
            });
            t.by_name.insert(dev.name, entry.clone());
            t.by_minor.insert(minor, entry.clone());
            entry
        };
        self.inner.emit(MiscEvent::Registered(entry.info.clone()));
        Ok(MiscRegistration {
            registry: Arc::downgrade(&self.inner),
            entry: Some(entry),
        })
    }

    fn open_entry(entry: Option<Arc<Entry>>, flags: OpenFlags) -> Result<OpenFile, Errno> {
        let entry = entry.ok_or(Errno::ENODEV)?;
        // Held across the driver's open so that deregistration waits for it.
        let _live = entry.live.try_access().ok_or(Errno::ENODEV)?;
        entry.opener.open(flags)
    }

    /// Opens device `name` (`misc_open`): `ENODEV` if not registered (or being deregistered, or
    /// its resources are revoked); otherwise the access hook's or the driver's result.
    pub fn open(&self, name: &str, flags: OpenFlags) -> Result<OpenFile, Errno> {
        let e = self.read().by_name.get(name).cloned();
        Self::open_entry(e, flags)
    }

    /// Opens the device with `minor`.
    pub fn open_minor(&self, minor: u32, flags: OpenFlags) -> Result<OpenFile, Errno> {
        let e = self.read().by_minor.get(&minor).cloned();
        Self::open_entry(e, flags)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.inner.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Registered devices, by name.
    pub fn list(&self) -> Vec<MiscInfo> {
        self.read()
            .by_name
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// The device called `name`, if registered.
    pub fn info(&self, name: &str) -> Option<MiscInfo> {
        self.read().by_name.get(name).map(|e| e.info.clone())
    }

    /// True if device `name` is registered and its resources are live.
    pub fn is_live(&self, name: &str) -> bool {
        self.read()
            .by_name
            .get(name)
            .is_some_and(|e| !e.opener.is_revoked() && !e.live.is_revoked())
    }

    /// Registers `waiter` to be woken when device `name`'s resources are revoked (one-shot);
    /// `ENODEV` if not registered.
    pub fn watch_revoke(&self, name: &str, waiter: &Waiter) -> Result<(), Errno> {
        let e = self
            .read()
            .by_name
            .get(name)
            .cloned()
            .ok_or(Errno::ENODEV)?;
        e.opener.watch_revoke(waiter);
        Ok(())
    }

    /// Receives every later registration and deregistration.
    pub fn subscribe(&self) -> Receiver<MiscEvent> {
        let (tx, rx) = channel();
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }
}

/// A registered misc device; deregisters when dropped (or by
/// [`deregister`](Self::deregister)).
pub struct MiscRegistration {
    registry: Weak<Inner>,
    entry: Option<Arc<Entry>>,
}

impl std::fmt::Debug for MiscRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiscRegistration")
            .field("info", &self.entry.as_ref().map(|e| &e.info))
            .finish()
    }
}

impl MiscRegistration {
    /// The minor number.
    pub fn minor(&self) -> u32 {
        self.entry.as_ref().map_or(0, |e| e.info.minor)
    }
    /// The name.
    pub fn name(&self) -> &str {
        self.entry.as_ref().map_or("", |e| e.info.name.as_str())
    }
    /// Deregisters (`misc_deregister`): after it returns, no open of this device runs or starts.
    pub fn deregister(mut self) {
        self.do_deregister();
    }

    fn do_deregister(&mut self) {
        self.unlink();
        if let Some(entry) = &self.entry {
            // Waits for opens in progress; later ones fail with ENODEV.
            entry.live.revoke();
        }
        self.report();
    }

    /// Removes the entry from the table: no new lookup finds the device.
    fn unlink(&mut self) {
        let Some(entry) = &self.entry else {
            return;
        };
        if let Some(reg) = self.registry.upgrade() {
            let mut t = reg.table.write().unwrap_or_else(|p| p.into_inner());
            // Remove only our own entry (the name cannot have been reused while we hold it).
            if t.by_name
                .get(&entry.info.name)
                .is_some_and(|e| Arc::ptr_eq(e, entry))
            {
                t.by_name.remove(&entry.info.name);
                t.by_minor.remove(&entry.info.minor);
            }
        }
    }

    /// After the gate's revocation: forget the entry and tell the listeners.
    fn report(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        if let Some(reg) = self.registry.upgrade() {
            reg.emit(MiscEvent::Deregistered(entry.info.clone()));
        }
    }
}

impl crate::device::Release for MiscRegistration {
    fn before(&mut self) {
        self.unlink();
    }
    fn push<'a>(&'a self, batch: &mut revocable::RevokeBatch<'a>) {
        if let Some(entry) = &self.entry {
            batch.push(&entry.live);
        }
    }
    fn revoke_alone(&self) {
        if let Some(entry) = &self.entry {
            entry.live.revoke();
        }
    }
    fn after(mut self: Box<Self>) {
        self.report();
    }
}

impl Drop for MiscRegistration {
    fn drop(&mut self) {
        self.do_deregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revocable_fops::{File, Resource};

    struct Nop;
    impl FileOperations for Nop {
        type Private = ();
        type Resources = ();
        type View<'a> = ();
        fn access(&self, _: ()) -> Result<(), Errno> {
            Ok(())
        }
        fn open(&self, _: (), _: OpenFlags) -> Result<(), Errno> {
            Ok(())
        }
        fn read(
            &self,
            _: Option<()>,
            _: &File<()>,
            _: &mut [u8],
            _: &mut u64,
        ) -> Result<usize, Errno> {
            Ok(0)
        }
    }

    fn dev(name: &str, minor: u32) -> MiscDevice<Nop> {
        MiscDevice {
            name: name.into(),
            minor,
            fops: Arc::new(Nop),
            resources: (),
            parent: None,
        }
    }

    #[test]
    fn names_and_minors() {
        let m = MiscRegistry::new();
        let ev = m.subscribe();
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert_eq!(
                m.register(dev(bad, MISC_DYNAMIC_MINOR)).unwrap_err(),
                Errno::EINVAL
            );
        }
        assert_eq!(
            m.register(dev(&"x".repeat(256), 1)).unwrap_err(),
            Errno::EINVAL
        );
        assert_eq!(m.register(dev("big", 300)).unwrap_err(), Errno::EINVAL);
        let a = m.register(dev("a", MISC_DYNAMIC_MINOR)).unwrap();
        let b = m.register(dev("b", MISC_DYNAMIC_MINOR)).unwrap();
        let c = m.register(dev("c", 7)).unwrap();
        assert_eq!((a.minor(), b.minor(), c.minor()), (256, 257, 7));
        assert_eq!(m.register(dev("a", 8)).unwrap_err(), Errno::EEXIST);
        assert_eq!(m.register(dev("d", 7)).unwrap_err(), Errno::EBUSY);
        a.deregister();
        let d = m.register(dev("d", MISC_DYNAMIC_MINOR)).unwrap();
        assert_eq!(d.minor(), 256, "freed minor reused");
        assert!(m.open_minor(257, OpenFlags::O_RDONLY).is_ok());
        assert_eq!(
            m.open_minor(999, OpenFlags::O_RDONLY).unwrap_err(),
            Errno::ENODEV
        );
        assert_eq!(
            m.list().iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["b", "c", "d"]
        );
        drop((b, c, d));
        assert!(m.list().is_empty());
        let evs: Vec<_> = ev.try_iter().collect();
        assert_eq!(evs.len(), 8);
        assert!(matches!(&evs[3], MiscEvent::Deregistered(i) if i.name == "a"));
    }

    #[test]
    fn watch_and_liveness() {
        struct G;
        impl FileOperations for G {
            type Private = ();
            type Resources = Arc<Resource<()>>;
            type View<'a> = ();
            fn access(&self, _: &()) -> Result<(), Errno> {
                Ok(())
            }
            fn open(&self, _: (), _: OpenFlags) -> Result<(), Errno> {
                Ok(())
            }
        }
        let m = MiscRegistry::new();
        let r = Resource::new(());
        let _reg = m
            .register(MiscDevice {
                name: "g".into(),
                minor: MISC_DYNAMIC_MINOR,
                fops: Arc::new(G),
                resources: r.clone(),
                parent: Some(Device::new("parent0", "x")),
            })
            .unwrap();
        assert_eq!(m.info("g").unwrap().parent.as_deref(), Some("parent0"));
        assert!(m.is_live("g"));
        let w = Waiter::new();
        m.watch_revoke("g", &w).unwrap();
        assert_eq!(m.watch_revoke("nope", &w), Err(Errno::ENODEV));
        r.revoke();
        assert!(w.is_woken());
        assert!(!m.is_live("g"));
    }
}
