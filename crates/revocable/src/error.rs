//! [`RevokeTimeout`]: what a stuck unplug looks like to the person debugging it.

use core::fmt;
use core::panic::Location;
use core::time::Duration;
use std::string::String;
use std::vec::Vec;

/// `revoke_timeout` gave up waiting; revocation stays in progress.
///
/// New accesses already fail, and the resource is dropped when the last holder leaves (as with
/// [`Revocable::revoke_deferred`](crate::Revocable::revoke_deferred)). The error lists the holders
/// that were still inside an access when the time ran out.
///
/// ```
/// use std::time::Duration;
/// use revocable::Revocable;
///
/// let r = Revocable::new(5);
/// let guard = r.try_access().unwrap();
/// // Another thread revokes (a holder's own revoke_timeout would be a self-wait: it panics).
/// let err = std::thread::scope(|s| {
///     s.spawn(|| r.revoke_timeout(Duration::from_millis(10)).unwrap_err()).join().unwrap()
/// });
/// assert_eq!(err.remaining(), 1);
/// assert!(err.to_string().contains("1 holder"));
/// assert!(r.try_access().is_none()); // revocation is in progress
/// drop(guard); // the last holder leaves: the value is dropped now
/// ```
#[derive(Debug, Clone)]
pub struct RevokeTimeout {
    pub(crate) waited: Duration,
    pub(crate) holders: Vec<Holder>,
    /// For a [`RevokeBatch`](crate::RevokeBatch): push indexes of the members still held.
    pub(crate) members: Vec<usize>,
}

/// One access that was still held when a `revoke_timeout` expired.
#[derive(Debug, Clone)]
pub struct Holder {
    pub(crate) thread_name: Option<String>,
    pub(crate) thread_id: String,
    pub(crate) os_tid: Option<i64>,
    pub(crate) exited: bool,
    pub(crate) exiting: bool,
    pub(crate) send_guard: bool,
    pub(crate) held_for: Duration,
    pub(crate) exact: bool,
    pub(crate) location: Option<&'static Location<'static>>,
    pub(crate) member: Option<usize>,
}

impl RevokeTimeout {
    /// How many accesses were still held.
    pub fn remaining(&self) -> usize {
        self.holders.len()
    }

    /// The holders, one entry per access (a thread nesting two accesses appears twice).
    pub fn holders(&self) -> &[Holder] {
        &self.holders
    }

    /// How long the revoker waited.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// From a [`RevokeBatch`](crate::RevokeBatch): the push indexes of the members whose value
    /// was still held (and is dropped by its last holder), in push order. Empty for a single
    /// resource's revoke.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    pub(crate) fn empty(waited: Duration) -> Self {
        RevokeTimeout {
            waited,
            holders: Vec::new(),
            members: Vec::new(),
        }
    }

    /// This report, as one about batch member(s) `members`.
    pub(crate) fn for_members(mut self, members: &[usize]) -> Self {
        if let [i] = members {
            for h in &mut self.holders {
                h.member = Some(*i);
            }
        }
        self.members = members.to_vec();
        self
    }

    pub(crate) fn merge(&mut self, other: RevokeTimeout) {
        self.holders.extend(other.holders);
        self.members.extend(other.members);
    }
}

impl Holder {
    /// The holding thread's name, if it has one.
    pub fn thread_name(&self) -> Option<&str> {
        self.thread_name.as_deref()
    }

    /// The holding thread, as `tid N` (its kernel thread id; what `gdb` and `/proc` show).
    ///
    /// Not the Rust `ThreadId`: the crate records who owns its slots without asking std for the
    /// current thread, which panics during thread teardown, where accesses are allowed too.
    /// Otherwise: `Send-guard pool` for a Send guard; `unknown thread` where the kernel's thread
    /// id cannot be asked (Miri, not Linux); `unknown thread (its line's record stayed locked)`
    /// when the record stayed locked through the report's ~50 ms wait (the lock's holder, which
    /// is a report, registration or thread exit, kept off its CPU that long, or in a `fork`'s
    /// child a lock that another thread of the parent held at the fork). A report waits once
    /// per record (a thread's, within one report): that thread's further holders get one more
    /// try each, without a wait.
    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// The kernel's thread id (`gettid`), where known: what `gdb` and `/proc` show.
    pub fn os_tid(&self) -> Option<i64> {
        self.os_tid
    }

    /// The thread has exited: the access was leaked (`mem::forget`, `Box::leak`) and will never end.
    pub fn thread_exited(&self) -> bool {
        self.exited
    }

    /// The thread is exiting: its exit handling has run, but the access is still held by code
    /// running during its teardown (a later thread-exit destructor). It ends when that code
    /// lets go.
    pub fn thread_exiting(&self) -> bool {
        self.exiting
    }

    /// The access is a [`SendGuard`](crate::SendGuard) or [`OwnedGuard`](crate::OwnedGuard): it
    /// belongs to no thread (it may be held by a suspended task anywhere), so the thread fields
    /// name the Send-guard pool instead.
    pub fn is_send_guard(&self) -> bool {
        self.send_guard
    }

    /// How long the access has been held. Exact with the `track-holders` feature; otherwise a lower
    /// bound (the time since the revoke began), see [`Holder::held_for_is_exact`].
    pub fn held_for(&self) -> Duration {
        self.held_for
    }

    /// Whether [`Holder::held_for`] is exact (`track-holders`) or a lower bound.
    pub fn held_for_is_exact(&self) -> bool {
        self.exact
    }

    /// Where the access was taken (`#[track_caller]`), with the `track-holders` feature.
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.location
    }

    /// From a [`RevokeBatch`](crate::RevokeBatch): the push index of the member this access holds.
    pub fn member(&self) -> Option<usize> {
        self.member
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.member {
            write!(f, "member {i}: ")?;
        }
        if self.send_guard {
            f.write_str("a Send guard (SendGuard/OwnedGuard, held by no particular thread)")?;
        } else {
            f.write_str("thread ")?;
            if let Some(n) = &self.thread_name {
                write!(f, "'{n}' ")?;
            }
            write!(f, "({})", self.thread_id)?;
        }
        if self.exited {
            f.write_str(" [exited: leaked guard]")?;
        } else if self.exiting {
            f.write_str(" [exiting: held by code running during the thread's teardown]")?;
        }
        let ms = self.held_for.as_secs_f64() * 1e3;
        if self.exact {
            write!(f, " held access for {ms:.1} ms")?;
        } else {
            write!(f, " held access for at least {ms:.1} ms")?;
        }
        if let Some(l) = self.location {
            write!(f, ", taken at {}:{}:{}", l.file(), l.line(), l.column())?;
        }
        Ok(())
    }
}

impl fmt::Display for RevokeTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.holders.len();
        write!(
            f,
            "revoke timed out after {:.1} ms with {n} holder{} remaining",
            self.waited.as_secs_f64() * 1e3,
            if n == 1 { "" } else { "s" }
        )?;
        for (i, h) in self.holders.iter().enumerate() {
            write!(f, "{} {h}", if i == 0 { ":" } else { ";" })?;
        }
        if n == 0 {
            f.write_str(" (the value's drop is in progress in another thread)")?;
        }
        if self.members.len() > 1 || (self.members.len() == 1 && n == 0) {
            write!(f, " (batch members still held: {:?})", self.members)?;
        }
        Ok(())
    }
}

impl std::error::Error for RevokeTimeout {}
