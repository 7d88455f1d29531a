//! The device model for revocable devices: devices and drivers, `bind` → probe and `unbind` →
//! remove, device-managed resources ([`Devres<T>`]) revoked at unbind in reverse order of
//! creation, a [`Bus`] to find and (un)bind devices by name, and the misc registry
//! ([`MiscRegistry`]) whose `open` applies the fops replacement before the driver's own open.
//!
//! Hot-unplug, end to end: `unbind` runs the driver's remove, then releases in reverse: the misc
//! registration (no new open of the name; opens in progress finish first), then the devres
//! resources (open files fail with `ENODEV`, blocked readers and pollers are woken). Consecutive
//! revocations — `Devres` and misc gates registered with [`BoundDevice::add_misc`] — are revoked
//! as one [`revocable::RevokeBatch`]: one heavy barrier and one scan for the whole run, not one
//! per resource. A re-bind creates fresh resources; files opened before keep failing, they never
//! see the new instance.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use revocable_device::*;
//! use revocable_fops::*;
//!
//! /// The driver: probe creates the device's state and its misc node.
//! struct EcDriver { misc: MiscRegistry }
//! struct EcFops;
//! impl FileOperations for EcFops {
//!     type Private = ();
//!     type Resources = Arc<Resource<u32>>;
//!     type View<'a> = u32;
//!     fn access(&self, fw: &u32) -> Result<u32, Errno> { Ok(*fw) }
//!     fn open(&self, _: u32, _: OpenFlags) -> Result<(), Errno> { Ok(()) }
//!     fn ioctl(&self, fw: Option<u32>, _: &File<()>, _: u32, _: ioctl::IoctlArg<'_>)
//!         -> Result<i64, Errno> { Ok(fw.ok_or(Errno::ENODEV)? as i64) }
//! }
//! impl Driver for EcDriver {
//!     fn name(&self) -> &str { "cros-ec" }
//!     fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
//!         let fw = dev.devres(dev.generation() as u32);
//!         let reg = self.misc.register(MiscDevice {
//!             name: "cros_ec".into(), minor: MISC_DYNAMIC_MINOR, fops: Arc::new(EcFops),
//!             resources: fw.resource().clone(), parent: Some(dev.device().clone()),
//!         })?;
//!         dev.add_misc(reg); // deregistered at unbind, its gate revoked with the Devres
//!         Ok(())
//!     }
//! }
//!
//! let misc = MiscRegistry::new();
//! let bus = Bus::new();
//! bus.register_driver(Arc::new(EcDriver { misc: misc.clone() })).unwrap();
//! bus.add_device(Device::new("cros_ec", "cros-ec")).unwrap();
//! let old = misc.open("cros_ec", OpenFlags::O_RDWR).unwrap();
//! assert_eq!(old.ioctl(0, ioctl::IoctlArg::value(0)), Ok(1));
//! bus.unbind("cros_ec").unwrap();                      // hot-unplug
//! assert_eq!(old.ioctl(0, ioctl::IoctlArg::value(0)), Err(Errno::ENODEV));
//! assert_eq!(misc.open("cros_ec", OpenFlags::O_RDWR).unwrap_err(), Errno::ENODEV);
//! bus.bind("cros_ec").unwrap();                        // re-plug: a fresh instance
//! let new = misc.open("cros_ec", OpenFlags::O_RDWR).unwrap();
//! assert_eq!(new.ioctl(0, ioctl::IoctlArg::value(0)), Ok(2));
//! assert_eq!(old.ioctl(0, ioctl::IoctlArg::value(0)), Err(Errno::ENODEV));
//! ```

#![warn(missing_docs)]

mod bus;
mod device;
mod devres;
mod misc;

pub use bus::{Bus, DeviceEvent, DeviceInfo};
pub use device::{BoundDevice, Device, Driver};
pub use devres::Devres;
pub use misc::{
    MiscDevice, MiscEvent, MiscInfo, MiscRegistration, MiscRegistry, MINOR_MAX, MISC_DYNAMIC_FIRST,
    MISC_DYNAMIC_MINOR, NAME_MAX,
};
