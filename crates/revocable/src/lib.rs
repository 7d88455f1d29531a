//! TEMPORARY lock-based implementation of the fixed public API, so that the layers above can build
//! while the asymmetric-fence implementation is written. Replaced before issue 2 is resolved.
#![allow(missing_docs)]
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use std::mem::ManuallyDrop;
use std::cell::UnsafeCell;
use std::marker::PhantomData;

pub struct Revocable<T> {
    st: Mutex<(usize, bool, bool)>, // holders, revoked, dropped
    cv: Condvar,
    data: UnsafeCell<ManuallyDrop<T>>,
}
// SAFETY: temporary; T is only shared by & and dropped once.
unsafe impl<T: Send> Send for Revocable<T> {}
// SAFETY: temporary; T is only shared by & and dropped once.
unsafe impl<T: Send + Sync> Sync for Revocable<T> {}

pub struct RevocableGuard<'a, T> { rev: &'a Revocable<T>, _p: PhantomData<*const ()> }
impl<T> std::ops::Deref for RevocableGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: temporary; holder count keeps T alive.
        unsafe { &*self.rev.data.get() }
    }
}
impl<T> Drop for RevocableGuard<'_, T> {
    fn drop(&mut self) {
        let mut g = self.rev.st.lock().unwrap();
        g.0 -= 1;
        if g.0 == 0 && g.1 && !g.2 {
            g.2 = true;
            // SAFETY: temporary; last holder after revoke.
            unsafe { ManuallyDrop::drop(&mut *self.rev.data.get()) };
        }
        self.rev.cv.notify_all();
    }
}

#[derive(Debug)]
pub struct RevokeTimeout { pub holders: usize }
impl std::fmt::Display for RevokeTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "revoke timed out: {} holders", self.holders) }
}
impl std::error::Error for RevokeTimeout {}

impl<T> Revocable<T> {
    pub fn new(data: T) -> Self { Self { st: Mutex::new((0, false, false)), cv: Condvar::new(), data: UnsafeCell::new(ManuallyDrop::new(data)) } }
    pub fn try_access(&self) -> Option<RevocableGuard<'_, T>> {
        let mut g = self.st.lock().unwrap();
        if g.1 { return None; }
        g.0 += 1;
        Some(RevocableGuard { rev: self, _p: PhantomData })
    }
    pub fn try_access_with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> { self.try_access().map(|g| f(&g)) }
    pub fn access_or<E>(&self, err: E) -> Result<RevocableGuard<'_, T>, E> { self.try_access().ok_or(err) }
    pub fn is_revoked(&self) -> bool { self.st.lock().unwrap().1 }
    pub fn revoke(&self) -> bool { self.revoke_timeout(Duration::MAX).unwrap() }
    pub fn revoke_timeout(&self, timeout: Duration) -> Result<bool, RevokeTimeout> {
        let won = self.revoke_deferred();
        let g = self.st.lock().unwrap();
        let (g, r) = self.cv.wait_timeout_while(g, timeout, |s| !s.2).unwrap();
        if r.timed_out() && !g.2 { return Err(RevokeTimeout { holders: g.0 }); }
        Ok(won)
    }
    pub fn revoke_deferred(&self) -> bool {
        let mut g = self.st.lock().unwrap();
        if g.1 { return false; }
        g.1 = true;
        if g.0 == 0 { g.2 = true;
            // SAFETY: temporary; no holders.
            unsafe { ManuallyDrop::drop(&mut *self.data.get()) }; }
        self.cv.notify_all();
        true
    }
}
impl<T> Drop for Revocable<T> {
    fn drop(&mut self) {
        if !self.st.get_mut().unwrap().2 {
            // SAFETY: temporary; not dropped yet, &mut self.
            unsafe { ManuallyDrop::drop(self.data.get_mut()) };
        }
    }
}
