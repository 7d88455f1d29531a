//! The small trait the checker tortures, implemented for the real [`Revocable`].
//!
//! Anything that offers the four operations of the core contract over a [`Payload`] can be
//! tortured; [`crate::broken`] implements it with deliberate bugs to prove the checker catches them.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use revocable::{Revocable, RevocableGuard, RevokeTimeout};

use crate::payload::Payload;

/// A revocable container of a [`Payload`], as the torture sees it.
///
/// Contract checked by the torture: a guard keeps the payload alive; `revoke` and an `Ok` from
/// `revoke_timeout` return only after the payload was dropped; exactly one call per object returns
/// `true` (or `Ok(true)`); after any revoke call returns, `try_access` returns `None`.
///
/// ```
/// use revocable::Revocable;
/// use revocable_torture::{payload::Payload, Subject};
/// let (p, log) = Payload::new(0);
/// let r = <Revocable<Payload> as Subject>::new(p);
/// assert!(Subject::try_access(&r).is_some());
/// assert!(Subject::revoke(&r));
/// assert_eq!(log.drops(), 1);
/// ```
pub trait Subject: Send + Sync + Sized + 'static {
    /// Proof of access: keeps the payload alive while it exists.
    type Guard<'a>: Deref<Target = Payload>
    where
        Self: 'a;
    /// Error of an expired `revoke_timeout`; its `Display` names the holders.
    type Timeout: fmt::Display;
    /// Short name shown in reports.
    const NAME: &'static str;

    /// Wraps a payload.
    fn new(data: Payload) -> Self;
    /// Access, or `None` once revoked.
    fn try_access(&self) -> Option<Self::Guard<'_>>;
    /// Revokes and waits for the drop; `true` for the call that revoked.
    fn revoke(&self) -> bool;
    /// Revokes without waiting; `true` for the call that revoked.
    fn revoke_deferred(&self) -> bool;
    /// Revokes and waits at most `timeout` for the drop.
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, Self::Timeout>;
}

impl Subject for Revocable<Payload> {
    type Guard<'a> = RevocableGuard<'a, Payload>;
    type Timeout = RevokeTimeout;
    const NAME: &'static str = "Revocable";

    fn new(data: Payload) -> Self {
        Revocable::new(data)
    }
    fn try_access(&self) -> Option<Self::Guard<'_>> {
        Revocable::try_access(self)
    }
    fn revoke(&self) -> bool {
        Revocable::revoke(self)
    }
    fn revoke_deferred(&self) -> bool {
        Revocable::revoke_deferred(self)
    }
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, RevokeTimeout> {
        Revocable::revoke_timeout(self, timeout)
    }
}
