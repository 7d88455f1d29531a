//! Device-managed resources (`devm_*`, Rust-for-Linux's `Devres<T>`): revoked when the device
//! unbinds.
//!
//! Invariant: a [`Devres<T>`] is created only through a [`BoundDevice`](crate::BoundDevice)
//! (during probe), and its revocation is queued on that binding: it runs at unbind, or when the
//! probe fails, in reverse order of creation with the binding's other release actions. A handle
//! kept after unbind only ever sees a revoked resource; a re-bind creates a new one.

use std::sync::Arc;

use revocable::RevocableGuard;
use revocable_fops::{Errno, Resource, Waiter};

/// A resource owned by a device binding, revoked when the device unbinds.
///
/// Clones share the resource. [`resource`](Self::resource) gives the
/// [`Resource`] to gate open files on.
///
/// # Invariants
///
/// The resource is revoked by the release action queued at creation, when its binding ends;
/// `generation` is the binding's, so two bindings never share a `Devres`.
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
///     fn name(&self) -> &str { "demo" }
///     fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
///         let regs: Devres<u32> = dev.devres(0x1234);
///         dev.set_drvdata(regs);
///         Ok(())
///     }
/// }
///
/// let dev = Device::new("demo0", "demo");
/// dev.bind(Arc::new(Drv)).unwrap();
/// let regs: Devres<u32> = dev.drvdata::<Devres<u32>>().unwrap();
/// assert_eq!(regs.try_access().map(|g| *g), Some(0x1234));
/// dev.unbind().unwrap();
/// assert!(regs.try_access().is_none());
/// ```
pub struct Devres<T> {
    res: Arc<Resource<T>>,
    generation: u64,
}

impl<T> Clone for Devres<T> {
    fn clone(&self) -> Self {
        Devres {
            res: self.res.clone(),
            generation: self.generation,
        }
    }
}

impl<T> std::fmt::Debug for Devres<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devres")
            .field("generation", &self.generation)
            .field("revoked", &self.res.is_revoked())
            .finish()
    }
}

impl<T: Send + Sync + 'static> Devres<T> {
    pub(crate) fn new(data: T, generation: u64) -> Self {
        Devres {
            res: Resource::new(data),
            generation,
        }
    }

    /// The resource, to gate open files on (`FileOperations::Resources`).
    pub fn resource(&self) -> &Arc<Resource<T>> {
        &self.res
    }

    /// Access, `None` once the device unbound.
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        self.res.try_access()
    }

    /// Access or `ENODEV`.
    pub fn access(&self) -> Result<RevocableGuard<'_, T>, Errno> {
        self.res.try_access().ok_or(Errno::ENODEV)
    }

    /// True once the device unbound.
    pub fn is_revoked(&self) -> bool {
        self.res.is_revoked()
    }

    /// The binding generation that created it (see [`Device::generation`](crate::Device::generation)).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Wakes `waiter` when the resource is revoked (one-shot).
    pub fn watch_revoke(&self, waiter: &Waiter) {
        self.res.watch_revoke(waiter)
    }
}

impl<T: Send + Sync + 'static> crate::device::Release for Arc<Resource<T>> {
    fn push<'a>(&'a self, batch: &mut revocable::RevokeBatch<'a>) {
        batch.push(self.revocable());
    }
    fn revoke_alone(&self) {
        self.revocable().revoke();
    }
    fn after(self: Box<Self>) {
        // Sleepers never hold access, so waking them after the drop loses nothing; they retry
        // and fail with ENODEV (as `Resource::revoke` does).
        self.wake_watchers();
    }
}
