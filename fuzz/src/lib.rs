//! Shared by the fuzz targets: a cursor that turns the fuzzer's bytes into choices, and the
//! kernel's bounds on what it sends.
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
    use revocable_devfs::fuse::abi::opcode::{READ, READDIR};
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
