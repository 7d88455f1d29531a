//! Shared by the fuzz targets: a cursor that turns the fuzzer's bytes into choices, the kernel's
//! bounds on what it sends, and a pipe standing in for `/dev/fuse` with a checker of the answers.
//!
//! Invariant: reading past the end of the input yields zeros, so every input is a valid program.

/// The kernel never sends a READ larger than this (max_pages × page size, generously).
pub const MAX_READ: u32 = 128 * 1024;

/// The fuzzer's bytes, consumed front to back.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The next `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    /// The next byte, or `None` at the end.
    pub fn byte(&mut self) -> Option<u8> {
        self.bytes(1).first().copied()
    }
    /// The next little-endian integer of `N` bytes (zero-padded at the end).
    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }
    /// The next u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }
    /// The next u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }
    /// The next u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }
}

/// Caps the READ/READDIR size of a raw request to what the kernel sends.
pub fn kernel_bounds(bytes: &mut [u8]) {
    use revocable_fuse::abi::opcode::{READ, READDIR};
    if bytes.len() < 8 {
        return;
    }
    let opcode = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if opcode == READ || opcode == READDIR {
        // fuse_in_header is 40 bytes; fuse_read_in: fh u64, offset u64, size u32.
        if let Some(s) = bytes.get_mut(56..60) {
            let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) % (MAX_READ + 1);
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// A pipe standing in for `/dev/fuse`: the reading end, and a channel writing answers into it.
pub fn pipe() -> (
    std::fs::File,
    std::sync::Arc<revocable_fuse::channel::Channel>,
) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
        0
    );
    // SAFETY: both fds are fresh and owned by us from here on.
    let (r, w) = unsafe {
        (
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0]),
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: fcntl on our own pipe: room for every answer of one input.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
    (
        std::fs::File::from(r),
        std::sync::Arc::new(revocable_fuse::channel::Channel::new(w).expect("eventfd")),
    )
}

/// Reads every answer sent so far and counts it in `got` (by request id), checking the framing,
/// the errno range and that no request is answered twice.
pub fn drain(rx: &mut std::fs::File, got: &mut std::collections::HashMap<u64, u32>) {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = std::io::Read::read(rx, &mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let mut at = 0;
    while at < all.len() {
        let h = <revocable_fuse::abi::OutHeader as revocable_fuse::abi::Pod>::read_from(&all[at..])
            .expect("whole answer header");
        assert!(
            h.len as usize >= std::mem::size_of::<revocable_fuse::abi::OutHeader>()
                && at + h.len as usize <= all.len()
        );
        if h.unique != 0 {
            assert!((-4095..=0).contains(&h.error), "errno {}", h.error);
            *got.entry(h.unique).or_default() += 1;
            assert_eq!(got[&h.unique], 1, "request {} answered twice", h.unique);
        }
        at += h.len as usize;
    }
}

/// The raw requests of an input and the ids that must be answered.
#[derive(Default)]
pub struct Requests {
    seen: std::collections::HashSet<u64>,
    /// Ids of the requests fed so far that take an answer (all but FORGET).
    pub expect: Vec<u64>,
}

impl Requests {
    /// The next raw request of `inp` (READ sizes capped as the kernel caps them); `None` for one
    /// the kernel never sends (id 0, or an id reused while pending), which the caller skips.
    pub fn next(&mut self, inp: &mut Input<'_>) -> Option<Vec<u8>> {
        use revocable_fuse::abi::opcode::{BATCH_FORGET, FORGET};
        let len = usize::from(inp.u16() % 1024);
        let mut bytes = inp.bytes(len).to_vec();
        kernel_bounds(&mut bytes);
        if let Some(r) = revocable_fuse::request::Request::parse(&bytes) {
            let h = r.header;
            if !self.seen.insert(h.unique) || h.unique == 0 {
                return None;
            }
            if h.opcode != FORGET && h.opcode != BATCH_FORGET {
                self.expect.push(h.unique);
            }
        }
        Some(bytes)
    }

    /// Panics unless every request that takes an answer got exactly one (counted by [`drain`]).
    pub fn assert_answered_once(&self, got: &std::collections::HashMap<u64, u32>) {
        for u in &self.expect {
            assert_eq!(
                got.get(u),
                Some(&1),
                "request {u} not answered exactly once"
            );
        }
    }
}
