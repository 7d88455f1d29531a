//! The EC device: bound (a live [`Resource<CrosEc>`]) or unbound. Unbind is the hot unplug: it
//! revokes the resource, so every open `cros_ec` file fails with `ENODEV`, blocked readers and
//! pollers are woken, and new opens fail with `ENODEV` until the device is bound again (which
//! makes a fresh EC; old files stay revoked).
//!
//! Invariant: the misc node exists exactly while the device is bound, and the EC resource is
//! revoked before `unbind` returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use revocable_device::{BoundDevice, Bus, Device, Driver, MiscRegistry};
use revocable_fops::{Errno, OpenFile, OpenFlags, Resource};

use super::chardev::CrosEcChardev;
use super::ec::{CrosEc, Event};
use crate::fops_node::FopsHandle;
use crate::node::{Handle, Node, NodeResult};
use crate::probe::register_gated_misc;

/// The device name (bus and misc node).
pub const NAME: &str = "cros_ec";
/// The driver name the device is compatible with.
pub const DRIVER: &str = "cros-ec";

/// The platform driver: probe creates the EC as a device-managed resource, registers the misc
/// device `cros_ec` gated on it (the series' 6/7: `miscdevice` with a revocable), and queues the
/// deregistration; unbind then deregisters the node and revokes the EC, in that order.
#[derive(Debug)]
pub struct CrosEcDriver {
    misc: MiscRegistry,
    fops: Arc<CrosEcChardev>,
}

impl Driver for CrosEcDriver {
    fn name(&self) -> &str {
        DRIVER
    }
    fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
        // The event source (`control`) reaches the EC through the device's drvdata, like the EC
        // core does.
        register_gated_misc(dev, &self.misc, NAME, &self.fops, CrosEc::default())
    }
}

/// The simulated EC's device on its bus, and the misc registry serving its chardev.
///
/// # Invariants
/// `device` is on `bus`, whose `cros-ec` driver registers `cros_ec` in `misc` while bound.
#[derive(Debug)]
pub struct CrosEcDevice {
    bus: Bus,
    misc: MiscRegistry,
    device: Arc<Device>,
}

impl CrosEcDevice {
    /// A bus with the EC driver and a bound EC device.
    ///
    /// ```
    /// use revocable_drivers::cros_ec::device::CrosEcDevice;
    /// let d = CrosEcDevice::new();
    /// assert!(d.is_bound());
    /// assert!(d.unbind().is_some());
    /// assert!(d.open(0).is_err());
    /// assert!(d.bind());
    /// assert!(d.open(0).is_ok());
    /// ```
    pub fn new() -> Arc<CrosEcDevice> {
        let bus = Bus::new();
        let misc = MiscRegistry::new();
        let drv = Arc::new(CrosEcDriver {
            misc: misc.clone(),
            fops: Arc::new(CrosEcChardev),
        });
        let device = Device::new(NAME, DRIVER);
        // Neither can fail on a fresh bus: the names are free.
        let _ = bus.register_driver(drv);
        let _ = bus.add_device(device.clone());
        Arc::new(CrosEcDevice { bus, misc, device })
    }

    /// The misc registry serving `cros_ec`.
    pub fn misc(&self) -> &MiscRegistry {
        &self.misc
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// True while bound.
    pub fn is_bound(&self) -> bool {
        self.device.is_bound()
    }

    /// Binds (probe: a fresh EC); false if already bound or the probe failed.
    pub fn bind(&self) -> bool {
        self.bus.bind(NAME).is_ok()
    }

    /// Unbinds (hot unplug): deregisters the node and revokes the EC; returns how long that took
    /// (waiting for operations in flight, then waking sleepers), or `None` if already unbound.
    pub fn unbind(&self) -> Option<Duration> {
        let t = Instant::now();
        self.bus.unbind(NAME).ok()?;
        Some(t.elapsed())
    }

    /// Raises an MKBP event on the EC; returns the number of open files that saw it.
    ///
    /// # Errors
    /// `ENODEV` when unbound, `EINVAL` for a type above 31 or a payload above 16 bytes.
    pub fn raise_event(&self, ev: &Event) -> Result<usize, Errno> {
        let r: Arc<Resource<CrosEc>> = self.device.drvdata().ok_or(Errno::ENODEV)?;
        let g = r.try_access().ok_or(Errno::ENODEV)?;
        g.raise_event(ev).map_err(|()| Errno::EINVAL)
    }

    /// Opens the chardev through the misc registry (`misc_open` with the fops replacement).
    ///
    /// # Errors
    /// `ENODEV` when unbound (or revoked under the open).
    pub fn open(&self, flags: u32) -> Result<OpenFile, Errno> {
        self.misc.open(NAME, OpenFlags::from_bits(flags))
    }

    /// The `cros_ec` file node.
    pub fn node(self: &Arc<Self>) -> Arc<dyn Node> {
        Arc::new(CrosEcNode(self.clone()))
    }
}

struct CrosEcNode(Arc<CrosEcDevice>);

impl Node for CrosEcNode {
    fn mode(&self) -> u32 {
        libc::S_IFREG | 0o666
    }
    fn size(&self) -> u64 {
        crate::node::DEVICE_FILE_SIZE
    }
    fn open(&self, flags: u32) -> NodeResult<Arc<dyn Handle>> {
        let f = self.0.open(flags).map_err(|e| e.raw())?;
        Ok(Arc::new(FopsHandle::new(f)))
    }
}
