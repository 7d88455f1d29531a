//! The simulated ChromeOS Embedded Controller: version strings, the 255-byte memory map, a host
//! command interpreter (`EC_CMD_HELLO`, `EC_CMD_GET_VERSION`, `EC_CMD_READ_MEMMAP`,
//! `EC_CMD_GET_PROTOCOL_INFO`) and an MKBP event source whose listeners are the open chardev files.
//!
//! Invariant: the memory map is immutable after creation; listeners are held weakly, so a file
//! that went away without unregistering is simply skipped (and pruned).

use std::sync::{Mutex, Weak};

/// Size of the EC memory map (`EC_MEMMAP_SIZE`).
pub const MEMMAP_SIZE: usize = 255;
/// Offset of the "EC" identification bytes in the memory map (`EC_MEMMAP_ID`).
pub const MEMMAP_ID: usize = 0x20;
/// Largest request payload the simulated EC accepts (an LPC host packet of 256 bytes minus the
/// 8-byte request header).
pub const MAX_REQUEST: u32 = 248;
/// Largest response payload the simulated EC returns.
pub const MAX_RESPONSE: u32 = 248;
/// Largest MKBP event payload (the EC's `ec_response_get_next_data` union).
pub const MAX_EVENT_PAYLOAD: usize = 16;
/// Event types are bits of a 32-bit mask.
pub const MAX_EVENT_TYPE: u8 = 31;

/// Host command numbers the simulated EC implements.
pub mod cmd {
    /// `EC_CMD_HELLO`: params `u32 in_data`, response `u32 out_data = in_data + 0x01020304`.
    pub const HELLO: u32 = 0x0001;
    /// `EC_CMD_GET_VERSION`: response `{char ro[32]; char rw[32]; char reserved[32]; u32 current_image}`.
    pub const GET_VERSION: u32 = 0x0002;
    /// `EC_CMD_READ_MEMMAP`: params `{u8 offset; u8 size}`, response the bytes.
    pub const READ_MEMMAP: u32 = 0x0007;
    /// `EC_CMD_GET_PROTOCOL_INFO`: response `{u32 versions; u16 max_request; u16 max_response; u32 flags}`.
    pub const GET_PROTOCOL_INFO: u32 = 0x000B;
}

/// EC result codes (`enum ec_status`), the subset used here.
pub mod res {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// Unknown command.
    pub const INVALID_COMMAND: u32 = 1;
    /// Bad parameters.
    pub const INVALID_PARAM: u32 = 3;
    /// Unsupported command version.
    pub const INVALID_VERSION: u32 = 6;
    /// The request is shorter than the command's parameters.
    pub const REQUEST_TRUNCATED: u32 = 13;
    /// The response does not fit in `insize`.
    pub const RESPONSE_TOO_BIG: u32 = 14;
}

/// Which firmware image the EC runs (`enum ec_current_image`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    /// `EC_IMAGE_UNKNOWN`.
    Unknown = 0,
    /// `EC_IMAGE_RO`.
    ReadOnly = 1,
    /// `EC_IMAGE_RW`.
    ReadWrite = 2,
}

impl Image {
    /// The name the chardev's version read prints.
    pub fn name(self) -> &'static str {
        match self {
            Image::Unknown => "unknown",
            Image::ReadOnly => "read-only",
            Image::ReadWrite => "read-write",
        }
    }
}

/// One MKBP event: type and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Event type (`EC_MKBP_EVENT_*`), `0..=31`.
    pub typ: u8,
    /// Payload bytes, at most [`MAX_EVENT_PAYLOAD`].
    pub payload: Vec<u8>,
}

/// Something that receives MKBP events (an open chardev file).
pub trait EventListener: Send + Sync {
    /// Called for every event the EC raises, from the raising thread.
    fn on_event(&self, ev: &Event);
}

/// The outcome of a host command: EC result code and response bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdResponse {
    /// `enum ec_status` value.
    pub result: u32,
    /// Response payload (empty unless `result == SUCCESS`).
    pub data: Vec<u8>,
}

/// A simulated EC.
///
/// # Invariants
/// `memmap` never changes; `listeners` holds weak references only.
pub struct CrosEc {
    ro_version: String,
    rw_version: String,
    image: Image,
    memmap: [u8; MEMMAP_SIZE],
    listeners: Mutex<Vec<Weak<dyn EventListener>>>,
}

impl std::fmt::Debug for CrosEc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrosEc")
            .field("ro", &self.ro_version)
            .field("rw", &self.rw_version)
            .finish()
    }
}

impl Default for CrosEc {
    fn default() -> Self {
        CrosEc::new(
            "revocable_v1.0.0-ro",
            "revocable_v1.0.0-rw",
            Image::ReadWrite,
        )
    }
}

fn fixed32(s: &str) -> [u8; 32] {
    let mut b = [0u8; 32];
    let n = s.len().min(31);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    b
}

impl CrosEc {
    /// A new EC with these version strings (truncated to 31 bytes) and running image.
    ///
    /// ```
    /// use revocable_drivers::cros_ec::ec::{CrosEc, Image};
    /// let ec = CrosEc::new("ro-1", "rw-1", Image::ReadWrite);
    /// assert_eq!(ec.version_text(), "1.0.0\nro-1\nrw-1\nread-write\n");
    /// ```
    pub fn new(ro: &str, rw: &str, image: Image) -> CrosEc {
        let mut memmap = [0u8; MEMMAP_SIZE];
        // Fill with a recognisable pattern: byte i holds i (the "temperature sensors" region etc.).
        for (i, b) in memmap.iter_mut().enumerate() {
            *b = i as u8;
        }
        memmap[MEMMAP_ID] = b'E';
        memmap[MEMMAP_ID + 1] = b'C';
        // A NUL-terminated string region for string-mode reads (bytes == 0).
        let s = b"revocable-ec\0";
        memmap[0x40..0x40 + s.len()].copy_from_slice(s);
        let ro = String::from_utf8_lossy(&fixed32(ro))
            .trim_end_matches('\0')
            .to_string();
        let rw = String::from_utf8_lossy(&fixed32(rw))
            .trim_end_matches('\0')
            .to_string();
        CrosEc {
            ro_version: ro,
            rw_version: rw,
            image,
            memmap,
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// The chardev's legacy version text: `"1.0.0\n" RO "\n" RW "\n" IMAGE "\n"`.
    pub fn version_text(&self) -> String {
        format!(
            "1.0.0\n{}\n{}\n{}\n",
            self.ro_version,
            self.rw_version,
            self.image.name()
        )
    }

    /// Reads the memory map like the LPC `cmd_readmem`: `bytes` bytes at `offset`, or with
    /// `bytes == 0` the NUL-terminated string at `offset` (without the NUL).
    ///
    /// # Errors
    /// `None` when the range leaves the map (the chardev answers EINVAL).
    ///
    /// ```
    /// use revocable_drivers::cros_ec::ec::CrosEc;
    /// let ec = CrosEc::default();
    /// assert_eq!(ec.read_mem(0x20, 2).unwrap(), b"EC");
    /// assert_eq!(ec.read_mem(0x40, 0).unwrap(), b"revocable-ec");
    /// assert!(ec.read_mem(250, 10).is_none());
    /// ```
    pub fn read_mem(&self, offset: u32, bytes: u32) -> Option<Vec<u8>> {
        let (off, n) = (offset as usize, bytes as usize);
        if off >= MEMMAP_SIZE {
            return None;
        }
        if n == 0 {
            let end = self.memmap[off..]
                .iter()
                .position(|&b| b == 0)
                .map_or(MEMMAP_SIZE, |p| off + p);
            return Some(self.memmap[off..end].to_vec());
        }
        self.memmap
            .get(off..off.checked_add(n)?)
            .map(<[u8]>::to_vec)
    }

    /// Runs host command `command` (version `version`) with parameters `params`, allowing at most
    /// `insize` response bytes.
    ///
    /// ```
    /// use revocable_drivers::cros_ec::ec::{cmd, res, CrosEc};
    /// let ec = CrosEc::default();
    /// let r = ec.command(cmd::HELLO, 0, &0xa0b0c0d0u32.to_le_bytes(), 4);
    /// assert_eq!(r.result, res::SUCCESS);
    /// assert_eq!(r.data, 0xa1b2c3d4u32.to_le_bytes());
    /// assert_eq!(ec.command(0x7777, 0, &[], 0).result, res::INVALID_COMMAND);
    /// ```
    pub fn command(&self, command: u32, version: u32, params: &[u8], insize: u32) -> CmdResponse {
        let fail = |result| CmdResponse {
            result,
            data: Vec::new(),
        };
        let data = match command {
            cmd::HELLO => {
                if version != 0 {
                    return fail(res::INVALID_VERSION);
                }
                let Some(p) = params.get(..4) else {
                    return fail(res::REQUEST_TRUNCATED);
                };
                let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                v.wrapping_add(0x0102_0304).to_le_bytes().to_vec()
            }
            cmd::GET_VERSION => {
                let mut d = Vec::with_capacity(100);
                d.extend_from_slice(&fixed32(&self.ro_version));
                d.extend_from_slice(&fixed32(&self.rw_version));
                d.extend_from_slice(&[0u8; 32]);
                d.extend_from_slice(&(self.image as u32).to_le_bytes());
                d
            }
            cmd::READ_MEMMAP => {
                let Some(p) = params.get(..2) else {
                    return fail(res::REQUEST_TRUNCATED);
                };
                match self.read_mem(u32::from(p[0]), u32::from(p[1])) {
                    Some(d) if p[1] != 0 => d,
                    _ => return fail(res::INVALID_PARAM),
                }
            }
            cmd::GET_PROTOCOL_INFO => {
                let mut d = Vec::with_capacity(12);
                d.extend_from_slice(&(1u32 << 3).to_le_bytes());
                d.extend_from_slice(&(MAX_REQUEST as u16).to_le_bytes());
                d.extend_from_slice(&(MAX_RESPONSE as u16).to_le_bytes());
                d.extend_from_slice(&0u32.to_le_bytes());
                d
            }
            _ => return fail(res::INVALID_COMMAND),
        };
        if data.len() > insize as usize {
            return fail(res::RESPONSE_TOO_BIG);
        }
        CmdResponse {
            result: res::SUCCESS,
            data,
        }
    }

    /// Registers an MKBP listener (held weakly).
    pub fn add_listener(&self, l: Weak<dyn EventListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(l);
    }

    /// Unregisters a listener (by identity), pruning dead ones.
    pub fn remove_listener(&self, l: &Weak<dyn EventListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| x.strong_count() > 0 && !Weak::ptr_eq(x, l));
    }

    /// Number of live listeners.
    pub fn listeners(&self) -> usize {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.strong_count() > 0)
            .count()
    }

    /// Raises an MKBP event: every live listener's `on_event` runs (outside the listener lock).
    ///
    /// # Errors
    /// `Err(())` when the type exceeds [`MAX_EVENT_TYPE`] or the payload [`MAX_EVENT_PAYLOAD`].
    #[allow(clippy::result_unit_err)]
    pub fn raise_event(&self, ev: &Event) -> Result<usize, ()> {
        if ev.typ > MAX_EVENT_TYPE || ev.payload.len() > MAX_EVENT_PAYLOAD {
            return Err(());
        }
        let live: Vec<_> = {
            let mut g = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            g.retain(|l| l.strong_count() > 0);
            g.iter().filter_map(Weak::upgrade).collect()
        };
        for l in &live {
            l.on_event(ev);
        }
        Ok(live.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Count(Mutex<Vec<Event>>);
    impl EventListener for Count {
        fn on_event(&self, ev: &Event) {
            self.0.lock().unwrap().push(ev.clone());
        }
    }

    #[test]
    fn version_command_layout() {
        let ec = CrosEc::new("ro", "rw", Image::ReadOnly);
        let r = ec.command(cmd::GET_VERSION, 0, &[], 200);
        assert_eq!(r.result, res::SUCCESS);
        assert_eq!(r.data.len(), 100);
        assert_eq!(&r.data[..3], b"ro\0");
        assert_eq!(&r.data[32..35], b"rw\0");
        assert_eq!(u32::from_le_bytes(r.data[96..100].try_into().unwrap()), 1);
        assert_eq!(
            ec.command(cmd::GET_VERSION, 0, &[], 99).result,
            res::RESPONSE_TOO_BIG
        );
        assert_eq!(
            ec.command(cmd::HELLO, 0, &[1, 2], 4).result,
            res::REQUEST_TRUNCATED
        );
    }

    #[test]
    fn memmap_bounds() {
        let ec = CrosEc::default();
        assert_eq!(ec.read_mem(0, 255).unwrap().len(), 255);
        assert!(ec.read_mem(1, 255).is_none());
        assert!(ec.read_mem(255, 1).is_none());
        assert!(ec.read_mem(u32::MAX, u32::MAX).is_none());
        assert_eq!(ec.command(cmd::READ_MEMMAP, 0, &[0x20, 2], 10).data, b"EC");
    }

    #[test]
    fn events_reach_live_listeners_only() {
        let ec = CrosEc::default();
        let a = Arc::new(Count(Mutex::new(Vec::new())));
        let aw: Weak<dyn EventListener> = Arc::downgrade(&a) as Weak<dyn EventListener>;
        ec.add_listener(aw.clone());
        {
            let b: Arc<dyn EventListener> = Arc::new(Count(Mutex::new(Vec::new())));
            ec.add_listener(Arc::downgrade(&b));
        }
        let ev = Event {
            typ: 3,
            payload: vec![1, 2],
        };
        assert_eq!(ec.raise_event(&ev), Ok(1));
        assert_eq!(a.0.lock().unwrap().as_slice(), &[ev]);
        assert!(ec
            .raise_event(&Event {
                typ: 32,
                payload: vec![]
            })
            .is_err());
        assert!(ec
            .raise_event(&Event {
                typ: 1,
                payload: vec![0; 17]
            })
            .is_err());
        ec.remove_listener(&aw);
        assert_eq!(ec.listeners(), 0);
    }
}
