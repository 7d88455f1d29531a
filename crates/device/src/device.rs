//! Devices, drivers, and binding: `bind` runs the driver's probe, `unbind` its remove and then
//! the binding's release actions (devres revocation) in reverse order of creation.
//!
//! Invariants:
//! - bind and unbind of one device are serialized by the device's own lock (the kernel's
//!   `device_lock`); no file operation takes it, so unbinding never waits for a sleeper, only for
//!   operations running in the driver (through the revocation of its resources);
//! - a device is bound iff its probe returned `Ok` and no unbind ran since; each bind starts a new
//!   generation whose resources are never shared with another.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use revocable_fops::Errno;

use crate::devres::Devres;

type Action = Box<dyn FnOnce() + Send>;

/// What a driver does with a device (the kernel's `struct device_driver`).
///
/// `probe` sets the device up: it creates device-managed resources ([`BoundDevice::devres`]),
/// registers interfaces (a misc device), and queues their teardown
/// ([`BoundDevice::add_action`]). `remove` runs first at unbind, before the queued actions.
pub trait Driver: Send + Sync + 'static {
    /// The driver's name; a device binds to the driver whose name is its `compatible`.
    fn name(&self) -> &str;
    /// Binds to `dev`. On error, everything queued so far is released (reverse order).
    fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno>;
    /// Unbinds from `dev` (before its device-managed resources are released).
    fn remove(&self, dev: &mut BoundDevice<'_>) {
        let _ = dev;
    }
}

struct DevState {
    driver: Option<Arc<dyn Driver>>,
    drvdata: Option<Box<dyn Any + Send + Sync>>,
    actions: Vec<Action>,
    generation: u64,
}

/// A device (the kernel's `struct device`): a name, what driver it is compatible with, and its
/// binding.
///
/// # Invariants
///
/// `state.driver` is `Some` iff bound; `state.actions` holds the current binding's release
/// actions in creation order (empty while unbound); `bound` mirrors `state.driver`'s name and is
/// updated under the state lock.
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
///     fn name(&self) -> &str { "d" }
///     fn probe(&self, _: &mut BoundDevice<'_>) -> Result<(), Errno> { Ok(()) }
/// }
/// let dev = Device::new("d0", "d");
/// assert_eq!(dev.unbind(), Err(Errno::ENODEV));
/// dev.bind(Arc::new(Drv)).unwrap();
/// assert_eq!(dev.bind(Arc::new(Drv)), Err(Errno::EBUSY));
/// assert_eq!(dev.driver_name().as_deref(), Some("d"));
/// dev.unbind().unwrap();
/// assert!(!dev.is_bound());
/// ```
pub struct Device {
    name: String,
    compatible: String,
    state: Mutex<DevState>,
    /// The bound driver's name, readable without waiting for a probe or remove in progress.
    bound: Mutex<Option<String>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("compatible", &self.compatible)
            .field("bound", &self.is_bound())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A driver that panicked in probe/remove leaves the state as the unwinding left it: the
    // binding fields are updated only after the driver call returns, so they stay consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Device {
    /// A new, unbound device.
    pub fn new(name: impl Into<String>, compatible: impl Into<String>) -> Arc<Device> {
        Arc::new(Device {
            name: name.into(),
            compatible: compatible.into(),
            state: Mutex::new(DevState {
                driver: None,
                drvdata: None,
                actions: Vec::new(),
                generation: 0,
            }),
            bound: Mutex::new(None),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver name this device binds to.
    pub fn compatible(&self) -> &str {
        &self.compatible
    }

    /// True while bound.
    ///
    /// Does not wait for a bind or unbind in progress (reports the state before it).
    pub fn is_bound(&self) -> bool {
        lock(&self.bound).is_some()
    }

    /// The bound driver's name (does not wait for a bind or unbind in progress).
    pub fn driver_name(&self) -> Option<String> {
        lock(&self.bound).clone()
    }

    /// Number of binds attempted so far (the current binding's generation while bound).
    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// A clone of the driver data set by probe, if it has type `T`.
    pub fn drvdata<T: Any + Clone>(&self) -> Option<T> {
        lock(&self.state)
            .drvdata
            .as_ref()
            .and_then(|d| d.downcast_ref::<T>())
            .cloned()
    }

    /// Binds `driver`: runs its probe. `EBUSY` if already bound; the probe's error otherwise
    /// (then every release action it queued has run, in reverse order).
    pub fn bind(self: &Arc<Self>, driver: Arc<dyn Driver>) -> Result<(), Errno> {
        let mut st = lock(&self.state);
        if st.driver.is_some() {
            return Err(Errno::EBUSY);
        }
        st.generation += 1;
        let mut bound = BoundDevice {
            dev: self,
            st: &mut st,
        };
        match driver.probe(&mut bound) {
            Ok(()) => {
                *lock(&self.bound) = Some(driver.name().to_owned());
                st.driver = Some(driver);
                Ok(())
            }
            Err(e) => {
                release_all(&mut st);
                Err(e)
            }
        }
    }

    /// Unbinds: runs the driver's remove, then the release actions in reverse order (revoking
    /// device-managed resources: open files fail with `ENODEV`, sleepers are woken). `ENODEV`
    /// if not bound.
    ///
    /// Waits for file operations running in the driver (never for sleepers). A file operation
    /// must therefore not bind or unbind its own device, or revoke its own resource.
    pub fn unbind(self: &Arc<Self>) -> Result<(), Errno> {
        let mut st = lock(&self.state);
        let Some(driver) = st.driver.clone() else {
            return Err(Errno::ENODEV);
        };
        driver.remove(&mut BoundDevice {
            dev: self,
            st: &mut st,
        });
        release_all(&mut st);
        st.driver = None;
        *lock(&self.bound) = None;
        Ok(())
    }
}

fn release_all(st: &mut DevState) {
    while let Some(action) = st.actions.pop() {
        action();
    }
    st.drvdata = None;
}

/// A device during probe or remove (the kernel's `Device<Bound>`): the device lock is held.
pub struct BoundDevice<'a> {
    dev: &'a Arc<Device>,
    st: &'a mut DevState,
}

impl std::fmt::Debug for BoundDevice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundDevice")
            .field("name", &self.dev.name)
            .field("generation", &self.st.generation)
            .finish()
    }
}

impl BoundDevice<'_> {
    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        self.dev
    }

    /// This binding's generation.
    pub fn generation(&self) -> u64 {
        self.st.generation
    }

    /// Creates a device-managed resource, revoked at unbind (reverse order of creation).
    pub fn devres<T: Send + Sync + 'static>(&mut self, data: T) -> Devres<T> {
        let d = Devres::new(data, self.st.generation);
        let res = d.resource().clone();
        self.st.actions.push(Box::new(move || {
            res.revoke();
        }));
        d
    }

    /// Queues `action` to run at unbind (the kernel's `devm_add_action`), in reverse order with
    /// the other release actions.
    pub fn add_action(&mut self, action: impl FnOnce() + Send + 'static) {
        self.st.actions.push(Box::new(action));
    }

    /// Sets the driver data (dropped at unbind, after the release actions).
    pub fn set_drvdata<T: Any + Send + Sync>(&mut self, data: T) {
        self.st.drvdata = Some(Box::new(data));
    }

    /// The driver data, if it has type `T`.
    pub fn drvdata<T: Any>(&self) -> Option<&T> {
        self.st.drvdata.as_ref().and_then(|d| d.downcast_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as M;

    struct Tracked(usize, Arc<M<Vec<String>>>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(format!("drop res{}", self.0));
        }
    }

    struct Log(Arc<M<Vec<String>>>, bool);
    impl Driver for Log {
        fn name(&self) -> &str {
            "log"
        }
        fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
            for i in 0..3 {
                let _res = dev.devres(Tracked(i, self.0.clone()));
                let l = self.0.clone();
                dev.add_action(move || l.lock().unwrap().push(format!("action{i}")));
            }
            if self.1 {
                return Err(Errno::EIO);
            }
            Ok(())
        }
        fn remove(&self, dev: &mut BoundDevice<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("remove gen{}", dev.generation()));
        }
    }

    #[test]
    fn unbind_releases_in_reverse_order() {
        let log = Arc::new(M::new(Vec::new()));
        let dev = Device::new("x", "log");
        dev.bind(Arc::new(Log(log.clone(), false))).unwrap();
        assert!(log.lock().unwrap().is_empty());
        dev.unbind().unwrap();
        let got = log.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                "remove gen1",
                "action2",
                "drop res2",
                "action1",
                "drop res1",
                "action0",
                "drop res0",
            ]
        );
    }

    #[test]
    fn failed_probe_releases_and_stays_unbound() {
        let log = Arc::new(M::new(Vec::new()));
        let dev = Device::new("x", "log");
        assert_eq!(dev.bind(Arc::new(Log(log.clone(), true))), Err(Errno::EIO));
        assert!(!dev.is_bound());
        assert_eq!(log.lock().unwrap().len(), 6, "no remove, all actions");
        assert_eq!(dev.unbind(), Err(Errno::ENODEV));
    }
}
