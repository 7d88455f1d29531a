//! A bus: the set of devices and drivers, binding by name, and device events.
//!
//! Invariant: device and driver names are unique on a bus; the bus's table locks are held only to
//! look up or change the tables, never across a probe or remove (those hold the device's lock).

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};

use revocable_fops::Errno;

use crate::device::{Device, Driver};

/// A change on a bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The device was added.
    Added(String),
    /// The device bound to a driver (the driver's name).
    Bound(String, String),
    /// The device unbound (hot-unplug).
    Unbound(String),
    /// The device was removed from the bus.
    Removed(String),
}

/// One device's state, for listings (`cros_ec bound`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device name.
    pub name: String,
    /// Driver it binds to.
    pub compatible: String,
    /// The bound driver, if any.
    pub driver: Option<String>,
}

impl DeviceInfo {
    /// `"bound"` or `"unbound"`.
    pub fn state(&self) -> &'static str {
        if self.driver.is_some() {
            "bound"
        } else {
            "unbound"
        }
    }
}

/// Devices and drivers; bind/unbind by device name.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use revocable_device::*;
/// use revocable_fops::Errno;
///
/// struct Drv;
/// impl Driver for Drv {
///     fn name(&self) -> &str { "ec" }
///     fn probe(&self, _: &mut BoundDevice<'_>) -> Result<(), Errno> { Ok(()) }
/// }
/// let bus = Bus::new();
/// let events = bus.subscribe();
/// bus.register_driver(Arc::new(Drv)).unwrap();
/// bus.add_device(Device::new("cros_ec", "ec")).unwrap(); // probes: a driver matches
/// assert_eq!(bus.devices()[0].state(), "bound");
/// bus.unbind("cros_ec").unwrap();
/// assert_eq!(bus.unbind("cros_ec"), Err(Errno::ENODEV));
/// assert_eq!(bus.bind("nope"), Err(Errno::ENODEV));
/// bus.bind("cros_ec").unwrap();
/// let ev: Vec<_> = events.try_iter().collect();
/// assert_eq!(ev.last(), Some(&DeviceEvent::Bound("cros_ec".into(), "ec".into())));
/// ```
#[derive(Default)]
pub struct Bus {
    devices: RwLock<BTreeMap<String, Arc<Device>>>,
    drivers: RwLock<BTreeMap<String, Arc<dyn Driver>>>,
    listeners: Mutex<Vec<Sender<DeviceEvent>>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("devices", &self.devices())
            .finish()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Table updates are single inserts/removes: a panic cannot leave them half-done.
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Receives every later event (until the receiver is dropped).
    pub fn subscribe(&self) -> Receiver<DeviceEvent> {
        let (tx, rx) = channel();
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    fn emit(&self, ev: DeviceEvent) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| l.send(ev.clone()).is_ok());
    }

    /// Registers a driver and binds it to every unbound matching device (probe errors are not
    /// fatal: that device stays unbound). `EEXIST` if the name is taken.
    pub fn register_driver(&self, drv: Arc<dyn Driver>) -> Result<(), Errno> {
        {
            let mut d = write(&self.drivers);
            if d.contains_key(drv.name()) {
                return Err(Errno::EEXIST);
            }
            d.insert(drv.name().to_owned(), drv.clone());
        }
        let matching: Vec<_> = read(&self.devices)
            .values()
            .filter(|d| d.compatible() == drv.name())
            .cloned()
            .collect();
        for dev in matching {
            if dev.bind(drv.clone()).is_ok() {
                self.emit(DeviceEvent::Bound(dev.name().into(), drv.name().into()));
            }
        }
        Ok(())
    }

    /// Adds a device and binds it if a matching driver is registered (a probe error leaves it
    /// unbound). `EEXIST` if the name is taken.
    pub fn add_device(&self, dev: Arc<Device>) -> Result<(), Errno> {
        {
            let mut d = write(&self.devices);
            if d.contains_key(dev.name()) {
                return Err(Errno::EEXIST);
            }
            d.insert(dev.name().to_owned(), dev.clone());
        }
        self.emit(DeviceEvent::Added(dev.name().into()));
        let _ = self.bind(dev.name());
        Ok(())
    }

    /// Unbinds (if bound) and removes a device. `ENODEV` if unknown.
    pub fn remove_device(&self, name: &str) -> Result<(), Errno> {
        let dev = write(&self.devices).remove(name).ok_or(Errno::ENODEV)?;
        if dev.unbind().is_ok() {
            self.emit(DeviceEvent::Unbound(name.into()));
        }
        self.emit(DeviceEvent::Removed(name.into()));
        Ok(())
    }

    /// The device called `name`.
    pub fn device(&self, name: &str) -> Option<Arc<Device>> {
        read(&self.devices).get(name).cloned()
    }

    /// Every device and its state, sorted by name.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        read(&self.devices)
            .values()
            .map(|d| DeviceInfo {
                name: d.name().into(),
                compatible: d.compatible().into(),
                driver: d.driver_name(),
            })
            .collect()
    }

    /// Binds device `name` to its matching driver. `ENODEV` for an unknown device or no matching
    /// driver, `EBUSY` if already bound, or the probe's error.
    pub fn bind(&self, name: &str) -> Result<(), Errno> {
        let dev = self.device(name).ok_or(Errno::ENODEV)?;
        let drv = read(&self.drivers)
            .get(dev.compatible())
            .cloned()
            .ok_or(Errno::ENODEV)?;
        dev.bind(drv.clone())?;
        self.emit(DeviceEvent::Bound(name.into(), drv.name().into()));
        Ok(())
    }

    /// Unbinds device `name` (hot-unplug). `ENODEV` if unknown or not bound.
    pub fn unbind(&self, name: &str) -> Result<(), Errno> {
        let dev = self.device(name).ok_or(Errno::ENODEV)?;
        dev.unbind()?;
        self.emit(DeviceEvent::Unbound(name.into()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::BoundDevice;

    struct Flaky(bool);
    impl Driver for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn probe(&self, _: &mut BoundDevice<'_>) -> Result<(), Errno> {
            if self.0 {
                Err(Errno::EIO)
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn lifecycle_and_errors() {
        let bus = Bus::new();
        let ev = bus.subscribe();
        bus.add_device(Device::new("a", "flaky")).unwrap(); // no driver yet: stays unbound
        assert_eq!(bus.add_device(Device::new("a", "x")), Err(Errno::EEXIST));
        assert_eq!(bus.bind("a"), Err(Errno::ENODEV), "no matching driver");
        bus.register_driver(Arc::new(Flaky(false))).unwrap(); // binds "a"
        assert_eq!(
            bus.register_driver(Arc::new(Flaky(true))),
            Err(Errno::EEXIST)
        );
        assert_eq!(bus.bind("a"), Err(Errno::EBUSY));
        bus.remove_device("a").unwrap();
        assert_eq!(bus.remove_device("a"), Err(Errno::ENODEV));
        assert!(bus.devices().is_empty());
        let evs: Vec<_> = ev.try_iter().collect();
        assert_eq!(
            evs,
            [
                DeviceEvent::Added("a".into()),
                DeviceEvent::Bound("a".into(), "flaky".into()),
                DeviceEvent::Unbound("a".into()),
                DeviceEvent::Removed("a".into()),
            ]
        );
        // A probe error leaves the device listed, unbound.
        let bus = Bus::new();
        bus.register_driver(Arc::new(Flaky(true))).unwrap();
        bus.add_device(Device::new("b", "flaky")).unwrap();
        assert_eq!(bus.devices()[0].state(), "unbound");
        assert_eq!(bus.bind("b"), Err(Errno::EIO));
        assert_eq!(bus.unbind("b"), Err(Errno::ENODEV));
    }
}
