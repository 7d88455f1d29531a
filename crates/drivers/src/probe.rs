//! The probe both misc-device drivers run, written once.

use std::sync::Arc;

use revocable_device::{BoundDevice, MiscDevice, MiscRegistry, MISC_DYNAMIC_MINOR};
use revocable_fops::{Errno, FileOperations, Resource};

/// Makes `data` a device-managed resource of `dev` (revoked at unbind), registers the misc device
/// `name` in `misc` with `fops` gated on it (the series' 6/7: a `miscdevice` with a revocable),
/// queues the deregistration (unbind: node gone first, then the resource revoked), and stores the
/// resource as the device's drvdata, for whatever feeds the device from outside (EC events, link
/// changes).
///
/// # Errors
/// The misc registration's: `EEXIST` for a name in use, `EINVAL` for an invalid name.
pub fn register_gated_misc<T, D>(
    dev: &mut BoundDevice<'_>,
    misc: &MiscRegistry,
    name: &str,
    fops: &Arc<D>,
    data: T,
) -> Result<(), Errno>
where
    T: Send + Sync + 'static,
    D: FileOperations<Resources = Arc<Resource<T>>>,
{
    let res = dev.devres(data).resource().clone();
    let reg = misc.register(MiscDevice {
        name: name.into(),
        minor: MISC_DYNAMIC_MINOR,
        fops: fops.clone(),
        resources: res.clone(),
        parent: Some(dev.device().clone()),
    })?;
    // Deregistered at unbind; its gate is revoked in the same batch as the Devres above.
    dev.add_misc(reg);
    dev.set_drvdata(res);
    Ok(())
}
