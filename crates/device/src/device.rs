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

use revocable::RevokeBatch;
use revocable_fops::Errno;

use crate::devres::Devres;

/// One release action of a binding, run at unbind in reverse order of creation.
enum Action {
    /// `devm_add_action`: a closure.
    Call(Box<dyn FnOnce() + Send>),
    /// A revocation (a `Devres`, a misc node's gate): consecutive ones are revoked as one batch.
    Revoke(Box<dyn Release>),
}

/// A release action that revokes a resource, so that a run of them can share one
/// [`RevokeBatch`] (one heavy barrier and one scan for the whole run).
pub(crate) trait Release: Send {
    /// Runs just before the batch's revocation, in release order (e.g. unlink a misc node).
    fn before(&mut self) {}
    /// Adds the revocable(s) to revoke to `batch`.
    fn push<'a>(&'a self, batch: &mut RevokeBatch<'a>);
    /// The one-by-one path's revocation: a single `revoke` of each revocable.
    fn revoke_alone(&self);
    /// Runs after the revocation returned (every value dropped), in release order: wake
    /// watchers, report.
    fn after(self: Box<Self>);
}

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
                release_all(&mut st, true);
                Err(e)
            }
        }
    }

    /// Unbinds: runs the driver's remove, then the release actions in reverse order (revoking
    /// device-managed resources: open files fail with `ENODEV`, sleepers are woken). `ENODEV`
    /// if not bound.
    ///
    /// Every run of consecutive revocations among the release actions — the device's
    /// [`Devres`] and its misc nodes' gates ([`BoundDevice::add_misc`]), with no
    /// [`add_action`](BoundDevice::add_action) closure between them — is revoked as one
    /// [`RevokeBatch`]: one heavy barrier and one scan for the whole run, each value dropped as
    /// soon as its own holders are gone, in reverse order of creation where holders allow it. A
    /// closure still runs with every resource created before it live, as in the kernel's devres.
    ///
    /// Waits for file operations running in the driver (never for sleepers). A file operation
    /// must therefore not bind or unbind its own device, or revoke its own resource.
    pub fn unbind(self: &Arc<Self>) -> Result<(), Errno> {
        self.unbind_with(true)
    }

    /// [`unbind`](Self::unbind) revoking each resource on its own, one heavy barrier and one scan
    /// each: the path before batching, kept as the benchmark's baseline. Same semantics.
    pub fn unbind_one_by_one(self: &Arc<Self>) -> Result<(), Errno> {
        self.unbind_with(false)
    }

    fn unbind_with(self: &Arc<Self>, batched: bool) -> Result<(), Errno> {
        let mut st = lock(&self.state);
        let Some(driver) = st.driver.clone() else {
            return Err(Errno::ENODEV);
        };
        driver.remove(&mut BoundDevice {
            dev: self,
            st: &mut st,
        });
        release_all(&mut st, batched);
        st.driver = None;
        *lock(&self.bound) = None;
        Ok(())
    }
}

/// Runs the binding's release actions in reverse order of creation; with `batched`, each run of
/// consecutive revocations shares one [`RevokeBatch`].
fn release_all(st: &mut DevState, batched: bool) {
    let mut actions = std::mem::take(&mut st.actions);
    while let Some(action) = actions.pop() {
        match action {
            Action::Call(f) => f(),
            Action::Revoke(mut r) if !batched => {
                r.before();
                r.revoke_alone();
                r.after();
            }
            Action::Revoke(first) => {
                let mut run = vec![first];
                while let Some(Action::Revoke(_)) = actions.last() {
                    if let Some(Action::Revoke(r)) = actions.pop() {
                        run.push(r);
                    }
                }
                run.iter_mut().for_each(|r| r.before());
                let mut batch = RevokeBatch::with_capacity(run.len());
                for r in &run {
                    r.push(&mut batch);
                }
                batch.revoke();
                run.into_iter().for_each(|r| r.after());
            }
        }
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

    /// Creates a device-managed resource, revoked at unbind (reverse order of creation, batched
    /// with its neighbours: see [`Device::unbind`]).
    pub fn devres<T: Send + Sync + 'static>(&mut self, data: T) -> Devres<T> {
        let d = Devres::new(data, self.st.generation);
        self.st
            .actions
            .push(Action::Revoke(Box::new(d.resource().clone())));
        d
    }

    /// Queues `action` to run at unbind (the kernel's `devm_add_action`), in reverse order with
    /// the other release actions.
    pub fn add_action(&mut self, action: impl FnOnce() + Send + 'static) {
        self.st.actions.push(Action::Call(Box::new(action)));
    }

    /// Deregisters `reg` at unbind (the kernel's `devm` misc registration), in reverse order with
    /// the other release actions; its gate is revoked in the same batch as neighbouring
    /// [`Devres`] (see [`Device::unbind`]). Same effect as
    /// `add_action(move || reg.deregister())`, with one barrier fewer.
    pub fn add_misc(&mut self, reg: crate::MiscRegistration) {
        self.st.actions.push(Action::Revoke(Box::new(reg)));
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

    /// A driver with `n` device-managed resources (drops logged) and no closures between them.
    struct Many(usize, Arc<M<Vec<String>>>);
    impl Driver for Many {
        fn name(&self) -> &str {
            "many"
        }
        fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
            let all: Vec<Devres<Tracked>> = (0..self.0)
                .map(|i| dev.devres(Tracked(i, self.1.clone())))
                .collect();
            dev.set_drvdata(Arc::new(all));
            Ok(())
        }
    }

    fn drops(log: &M<Vec<String>>) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    /// One batch for all the Devres: unheld values dropped in reverse order of creation at once,
    /// a held one when its holder leaves, and unbind returns only after that.
    #[test]
    fn unbind_batches_devres_in_reverse_order_where_holders_allow() {
        for batched in [true, false] {
            let log = Arc::new(M::new(Vec::new()));
            let dev = Device::new("m", "many");
            dev.bind(Arc::new(Many(10, log.clone()))).unwrap();
            let all = dev.drvdata::<Arc<Vec<Devres<Tracked>>>>().unwrap();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
            std::thread::scope(|s| {
                let all2 = all.clone();
                s.spawn(move || {
                    let g = all2[3].try_access().unwrap();
                    held_tx.send(()).unwrap();
                    rx.recv().unwrap();
                    assert_eq!(g.0, 3);
                });
                held_rx.recv().unwrap();
                let unbinder = s.spawn(|| {
                    if batched {
                        dev.unbind()
                    } else {
                        dev.unbind_one_by_one()
                    }
                });
                // Unheld members above the held one drop first (both paths); batched, the ones
                // below it do not wait for it either.
                let want = if batched { 9 } else { 6 };
                while drops(&log).len() < want {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                assert_eq!(drops(&log).len(), want, "batched={batched}");
                assert!(
                    !unbinder.is_finished(),
                    "unbind returned before the held drop"
                );
                tx.send(()).unwrap();
                unbinder.join().unwrap().unwrap();
            });
            let got = drops(&log);
            let expect: Vec<String> = if batched {
                [9, 8, 7, 6, 5, 4, 2, 1, 0, 3]
            } else {
                [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
            }
            .iter()
            .map(|i| format!("drop res{i}"))
            .collect();
            assert_eq!(got, expect, "batched={batched}");
            assert!(all.iter().all(|d| d.is_revoked()));
        }
    }
}
