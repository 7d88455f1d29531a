//! Deliberately broken revocables, to prove that the torture catches real bugs.
//!
//! Hidden from the documentation: never use these for anything but torturing the checker.
//! Both are safe code on top of a `Mutex<Option<Arc<Payload>>>`:
//! - [`SkipWait`]: revoke unpublishes the payload and returns at once, without waiting for the
//!   holders; the payload is dropped when the last guard goes. Caught by the pipe count and by
//!   "revoke returned before the drop".
//! - [`EarlyDrop`]: revoke drops the payload (its drop effects: poison, drop count) at once, under
//!   its holders, and returns. Caught by the readers' poison check.
//!
//! # Invariants
//! `slot` is `Some` until the first revoke call takes it; only that call returns `true`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::payload::Payload;
use crate::subject::Subject;

/// What a [`Broken`] revocable gets wrong.
pub trait Flaw: Send + Sync + 'static {
    /// Whether revoke runs the drop at once instead of leaving it to the last holder.
    const EARLY_DROP: bool;
    /// Name shown in reports.
    const NAME: &'static str;
}

/// Flaw: revoke does not wait for holders.
#[derive(Debug)]
pub enum SkipWaitFlaw {}
impl Flaw for SkipWaitFlaw {
    const EARLY_DROP: bool = false;
    const NAME: &'static str = "broken(skip-wait)";
}

/// Flaw: revoke drops the data under its holders.
#[derive(Debug)]
pub enum EarlyDropFlaw {}
impl Flaw for EarlyDropFlaw {
    const EARLY_DROP: bool = true;
    const NAME: &'static str = "broken(early-drop)";
}

/// A revocable with flaw `F`.
pub struct Broken<F: Flaw> {
    slot: Mutex<Option<Arc<Payload>>>,
    _flaw: PhantomData<F>,
}

/// Revoke does not wait for holders.
pub type SkipWait = Broken<SkipWaitFlaw>;
/// Revoke drops the payload under its holders.
pub type EarlyDrop = Broken<EarlyDropFlaw>;

/// Guard of a [`Broken`] revocable: a reference count on the payload.
pub struct BrokenGuard(Arc<Payload>);

impl Deref for BrokenGuard {
    type Target = Payload;
    fn deref(&self) -> &Payload {
        &self.0
    }
}

/// Never produced (broken revokes never time out), but the trait needs a type.
#[derive(Debug)]
pub struct NeverTimesOut;

impl fmt::Display for NeverTimesOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broken revocable: no holder information")
    }
}

impl<F: Flaw> Broken<F> {
    fn take(&self) -> bool {
        let taken = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match taken {
            None => false,
            Some(p) => {
                if F::EARLY_DROP {
                    p.simulate_drop();
                }
                // SkipWait: the payload is dropped by whoever drops the last reference, maybe a
                // holder much later; this call returns now either way.
                drop(p);
                true
            }
        }
    }
}

impl<F: Flaw> Subject for Broken<F> {
    type Guard<'a> = BrokenGuard;
    type SendGuard<'a> = BrokenGuard;
    type Timeout = NeverTimesOut;
    const NAME: &'static str = F::NAME;

    fn new(data: Payload) -> Self {
        Self {
            slot: Mutex::new(Some(Arc::new(data))),
            _flaw: PhantomData,
        }
    }
    fn try_access(&self) -> Option<BrokenGuard> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().map(|p| BrokenGuard(Arc::clone(p)))
    }
    fn try_access_send(&self) -> Option<BrokenGuard> {
        self.try_access()
    }
    fn revoke(&self) -> bool {
        self.take()
    }
    fn revoke_async(&self) -> impl std::future::Future<Output = bool> + Send + '_ {
        std::future::ready(self.take())
    }
    fn revoke_deferred(&self) -> bool {
        self.take()
    }
    fn revoke_timeout(&self, _timeout: Duration) -> Result<bool, NeverTimesOut> {
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_wait_returns_before_the_drop() {
        let (p, log) = Payload::new(0);
        let b = SkipWait::new(p);
        let g = b.try_access().unwrap();
        assert!(b.revoke());
        assert!(!b.revoke());
        assert!(b.try_access().is_none());
        assert_eq!(
            log.drops(),
            0,
            "the flaw: revoke returned while a holder remains"
        );
        assert_eq!(g.check(0), Ok(()));
        drop(g);
        assert_eq!(log.drops(), 1);
    }

    #[test]
    fn early_drop_poisons_under_the_holder() {
        let (p, log) = Payload::new(0);
        let b = EarlyDrop::new(p);
        let g = b.try_access().unwrap();
        assert!(b.revoke());
        assert!(
            g.check(0).is_err(),
            "the flaw: the holder sees a dropped payload"
        );
        drop(g);
        assert_eq!(log.drops(), 1);
    }
}
