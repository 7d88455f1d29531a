//! The small trait the checker tortures, implemented for the real [`Revocable`].
//!
//! Anything that offers the four operations of the core contract over a [`Payload`] can be
//! tortured; [`crate::broken`] implements it with deliberate bugs to prove the checker catches them.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use revocable::{Revocable, RevocableGuard, RevokeTimeout, SendGuard};

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
    /// A guard that may be held across `.await` and dropped on another thread.
    type SendGuard<'a>: Deref<Target = Payload> + Send
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
    /// Access through a Send guard, or `None` once revoked.
    fn try_access_send(&self) -> Option<Self::SendGuard<'_>>;
    /// Revokes and waits for the drop; `true` for the call that revoked.
    fn revoke(&self) -> bool;
    /// Revokes and resolves after the drop, without blocking; `true` for the call that revoked.
    fn revoke_async(&self) -> impl Future<Output = bool> + Send + '_;
    /// Revokes without waiting; `true` for the call that revoked.
    fn revoke_deferred(&self) -> bool;
    /// Revokes and waits at most `timeout` for the drop.
    fn revoke_timeout(&self, timeout: Duration) -> Result<bool, Self::Timeout>;

    /// Revokes every member of `batch` together (`timeout`: `None` waits for every drop,
    /// `Some(d)` gives up after `d`; `deferred` waits for none); per member, whether this call
    /// won it, or `Err` if the wait expired. The default revokes them one by one (for
    /// implementations without batches).
    fn revoke_batch(
        batch: &[&Self],
        deferred: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>, Self::Timeout> {
        let start = std::time::Instant::now();
        // Every member is revoked even after one times out, as a batch does.
        let mut first_err = None;
        let mut won = Vec::with_capacity(batch.len());
        for r in batch {
            let res = match (deferred, timeout) {
                (true, _) => Ok(r.revoke_deferred()),
                (false, None) => Ok(r.revoke()),
                (false, Some(d)) => r.revoke_timeout(d.saturating_sub(start.elapsed())),
            };
            match res {
                Ok(w) => won.push(w),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(won), Err)
    }
}

impl Subject for Revocable<Payload> {
    type Guard<'a> = RevocableGuard<'a, Payload>;
    type SendGuard<'a> = SendGuard<'a, Payload>;
    type Timeout = RevokeTimeout;
    const NAME: &'static str = "Revocable";

    fn new(data: Payload) -> Self {
        Revocable::new(data)
    }
    fn try_access(&self) -> Option<Self::Guard<'_>> {
        Revocable::try_access(self)
    }
    fn try_access_send(&self) -> Option<Self::SendGuard<'_>> {
        Revocable::try_access_send(self)
    }
    fn revoke_async(&self) -> impl Future<Output = bool> + Send + '_ {
        Revocable::revoke_async(self)
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
    fn revoke_batch(
        batch: &[&Self],
        deferred: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>, RevokeTimeout> {
        let mut b = revocable::RevokeBatch::with_capacity(batch.len());
        for r in batch {
            b.push(*r);
        }
        match (deferred, timeout) {
            (true, _) => Ok(b.revoke_deferred()),
            (false, None) => Ok(b.revoke()),
            (false, Some(d)) => b.revoke_timeout(d),
        }
    }
}
