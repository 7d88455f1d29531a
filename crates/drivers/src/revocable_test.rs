//! The kselftest device `revocable_test`: `provider` (write-only) and `consumer` (read-only).
//!
//! Writing a string to `provider` creates a provider whose resource is that string (one trailing
//! newline is dropped, so `echo` works) and makes `consumer` appear; writing `resource_gone`
//! revokes it; closing the provider file that created it revokes it and removes `consumer`.
//! Each open of `consumer` takes a consumer handle (a reference to the provider). A read at one of
//! four offsets runs one of the kernel's access forms, as the series' kselftest module does:
//!
//! | offset | kernel form | here |
//! |---|---|---|
//! | `0` | `revocable_try_access` … `revocable_withdraw_access` | `try_access` + guard drop |
//! | `0x1234` | `REVOCABLE_TRY_ACCESS_WITH` | `try_access_with` |
//! | `0x5678` | `REVOCABLE_TRY_ACCESS_SCOPED` (v6 on, merged v7) | `match try_access()` block |
//! | `0x9abc` | `DEFINE_REVOCABLE` (follow-up to v7) | a handle made for the read, `access_or` |
//!
//! Each returns the string, or `(null)` once revoked. Other offsets read as end of file, so
//! `cat consumer` prints the resource once.
//!
//! Invariant: `current` is the provider made by the provider file `owner` (an open-file id); it
//! is revoked before it is replaced or removed, so no consumer ever sees a stale string.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use revocable::Revocable;

use crate::node::{Handle, Node, NodeResult, OpenMode};

/// The offset whose read uses `REVOCABLE_TRY_ACCESS_WITH` (`try_access_with`).
pub const WITH_OFFSET: u64 = 0x1234;
/// The offset whose read uses `REVOCABLE_TRY_ACCESS_SCOPED` (a scope around `try_access`).
pub const SCOPED_OFFSET: u64 = 0x5678;
/// The offset whose read uses `DEFINE_REVOCABLE` (a consumer handle made and dropped by the read).
pub const DEFINE_OFFSET: u64 = 0x9abc;
/// Every offset that reads the resource, in the order the kselftest tries them.
pub const ACCESS_OFFSETS: [u64; 4] = [0, WITH_OFFSET, SCOPED_OFFSET, DEFINE_OFFSET];
/// The string that revokes the provider's resource.
pub const RESOURCE_GONE: &str = "resource_gone";
/// What a consumer reads after revocation.
pub const NULL_TEXT: &str = "(null)";

struct Current {
    owner: u64,
    rev: Arc<Revocable<String>>,
}

/// The device: shared by the two nodes.
///
/// # Invariants
/// `current` is `Some` exactly while the consumer file exists.
#[derive(Default)]
pub struct RevocableTest {
    current: Mutex<Option<Current>>,
    next_owner: AtomicU64,
    unbound: AtomicBool,
}

impl std::fmt::Debug for RevocableTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocableTest")
            .field("bound", &self.is_bound())
            .finish()
    }
}

impl RevocableTest {
    /// A bound device with no provider yet.
    pub fn new() -> Arc<RevocableTest> {
        Arc::new(RevocableTest::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True unless unbound through `control`.
    pub fn is_bound(&self) -> bool {
        !self.unbound.load(Ordering::Acquire)
    }

    /// Unbinds: revokes the current resource, removes `consumer`; opens fail with ENODEV until
    /// [`bind`](Self::bind). Returns false if already unbound.
    pub fn unbind(&self) -> bool {
        if self.unbound.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Some(c) = self.lock().take() {
            c.rev.revoke();
        }
        true
    }

    /// Binds again. Returns false if already bound.
    pub fn bind(&self) -> bool {
        self.unbound.swap(false, Ordering::AcqRel)
    }

    /// The `provider` node.
    pub fn provider_node(self: &Arc<Self>) -> Arc<dyn Node> {
        Arc::new(ProviderNode(self.clone()))
    }

    /// The `consumer` node.
    pub fn consumer_node(self: &Arc<Self>) -> Arc<dyn Node> {
        Arc::new(ConsumerNode(self.clone()))
    }
}

struct ProviderNode(Arc<RevocableTest>);
struct ProviderFile {
    dev: Arc<RevocableTest>,
    id: u64,
}

impl Node for ProviderNode {
    fn mode(&self) -> u32 {
        libc::S_IFREG | 0o200
    }
    fn open(&self, _flags: u32) -> NodeResult<Arc<dyn Handle>> {
        if !self.0.is_bound() {
            return Err(libc::ENODEV);
        }
        let id = self.0.next_owner.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(ProviderFile {
            dev: self.0.clone(),
            id,
        }))
    }
}

impl Handle for ProviderFile {
    fn open_mode(&self) -> OpenMode {
        OpenMode::Positioned
    }
    fn read(&self, _offset: u64, _size: u32, _flags: u32) -> NodeResult<Vec<u8>> {
        Err(libc::EBADF)
    }
    fn write(&self, _offset: u64, data: &[u8]) -> NodeResult<usize> {
        if !self.dev.is_bound() {
            return Err(libc::ENODEV);
        }
        let text = std::str::from_utf8(data).map_err(|_| libc::EINVAL)?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let mut cur = self.dev.lock();
        if text == RESOURCE_GONE {
            // Revoke, but keep the provider (and `consumer`) until the provider file closes.
            match cur.as_ref() {
                Some(c) => {
                    c.rev.revoke();
                }
                None => return Err(libc::ENODEV),
            }
        } else {
            if let Some(old) = cur.take() {
                old.rev.revoke();
            }
            *cur = Some(Current {
                owner: self.id,
                rev: Arc::new(Revocable::new(text.to_string())),
            });
        }
        Ok(data.len())
    }
    fn release(&self) {
        let mut cur = self.dev.lock();
        if cur.as_ref().is_some_and(|c| c.owner == self.id) {
            if let Some(c) = cur.take() {
                c.rev.revoke();
            }
        }
    }
}

struct ConsumerNode(Arc<RevocableTest>);
struct ConsumerFile {
    rev: Arc<Revocable<String>>,
}

impl Node for ConsumerNode {
    fn mode(&self) -> u32 {
        libc::S_IFREG | 0o444
    }
    fn present(&self) -> bool {
        self.0.lock().is_some()
    }
    fn open(&self, _flags: u32) -> NodeResult<Arc<dyn Handle>> {
        if !self.0.is_bound() {
            return Err(libc::ENODEV);
        }
        match self.0.lock().as_ref() {
            Some(c) => Ok(Arc::new(ConsumerFile { rev: c.rev.clone() })),
            None => Err(libc::ENOENT),
        }
    }
}

impl ConsumerFile {
    /// The read the kselftest module does, by offset.
    fn text(&self, offset: u64) -> Option<String> {
        match offset {
            0 => {
                // try_access / withdraw: the guard is dropped at the end of the statement.
                let g = self.rev.try_access();
                Some(
                    g.as_deref()
                        .cloned()
                        .unwrap_or_else(|| NULL_TEXT.to_string()),
                )
            }
            WITH_OFFSET => Some(
                self.rev
                    .try_access_with(|s| s.clone())
                    .unwrap_or_else(|| NULL_TEXT.to_string()),
            ),
            // The scoped form: the body runs in both cases, with the resource or without it.
            SCOPED_OFFSET => Some(match self.rev.try_access() {
                Some(res) => res.clone(),
                None => NULL_TEXT.to_string(),
            }),
            DEFINE_OFFSET => {
                // DEFINE_REVOCABLE: a consumer handle that lives for this scope only, then one
                // access through it; both are released when the scope ends.
                let handle = Arc::clone(&self.rev);
                let text = match handle.access_or(()) {
                    Ok(res) => res.clone(),
                    Err(()) => NULL_TEXT.to_string(),
                };
                Some(text)
            }
            _ => None,
        }
    }
}

impl Handle for ConsumerFile {
    fn open_mode(&self) -> OpenMode {
        OpenMode::Positioned
    }
    fn read(&self, offset: u64, size: u32, _flags: u32) -> NodeResult<Vec<u8>> {
        let mut t = self
            .text(offset)
            .map(String::into_bytes)
            .unwrap_or_default();
        t.truncate(size as usize);
        Ok(t)
    }
    fn release(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_consumer_lifecycle() {
        let dev = RevocableTest::new();
        let (p, c) = (dev.provider_node(), dev.consumer_node());
        assert!(!c.present());
        let pf = p.open(libc::O_WRONLY as u32).unwrap();
        assert_eq!(pf.write(0, b"12345678").unwrap(), 8);
        assert!(c.present());
        let cf = c.open(0).unwrap();
        for off in ACCESS_OFFSETS {
            assert_eq!(cf.read(off, 64, 0).unwrap(), b"12345678", "offset {off:#x}");
        }
        assert_eq!(cf.read(8, 64, 0).unwrap(), b"");
        assert_eq!(cf.read(0x5679, 64, 0).unwrap(), b"");
        pf.write(0, b"resource_gone\n").unwrap();
        for off in ACCESS_OFFSETS {
            assert_eq!(cf.read(off, 64, 0).unwrap(), b"(null)", "offset {off:#x}");
        }
        pf.release();
        assert!(!c.present());
        assert_eq!(c.open(0).err(), Some(libc::ENOENT));
        cf.release();
    }

    #[test]
    fn unbind_revokes_and_blocks_opens() {
        let dev = RevocableTest::new();
        let pf = dev.provider_node().open(0).unwrap();
        pf.write(0, b"abc\n").unwrap();
        let cf = dev.consumer_node().open(0).unwrap();
        assert!(dev.unbind());
        assert!(!dev.unbind());
        assert_eq!(cf.read(0, 10, 0).unwrap(), b"(null)");
        assert_eq!(dev.provider_node().open(0).err(), Some(libc::ENODEV));
        assert_eq!(pf.write(0, b"x").err(), Some(libc::ENODEV));
        assert!(dev.bind());
        assert!(dev.provider_node().open(0).is_ok());
    }
}
