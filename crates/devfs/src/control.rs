//! The `control` file: reading lists each device and its state (`cros_ec bound`), one per line;
//! writing `unbind NAME`, `bind NAME` or `event cros_ec TYPE HEX` (TYPE decimal, HEX the payload
//! bytes, may be empty or omitted) acts on the devices. Several lines may be written at once;
//! every line is checked before any runs, then they run in order and the first failure stops
//! the write with its error.
//!
//! Errors: a line that could not run whatever the devices' state fails the write before any
//! line runs: `EINVAL` for a malformed line or an event out of range (TYPE above 31, more than
//! 16 payload bytes) or for a device without events, `ENODEV` for an unknown device name. A line
//! that fails because of the devices' state, an event to an unbound EC (`ENODEV`), stops the
//! write there, the lines before it having run. `EFBIG` for a write(2) that does not fit in one
//! FUSE request (then nothing of it runs; see below).
//!
//! One write(2) is one FUSE request only up to the `max_write` the session negotiated
//! ([`MAX_WRITE`], 64 KiB): the kernel sends a larger write(2) as several WRITE requests, the
//! first of exactly `max_write` bytes, each parsed alone. `control` is opened as a stream
//! (`FOPEN_STREAM`), so the kernel numbers the pieces of each write(2) from offset 0; the file
//! refuses, with `EFBIG`, a piece of `max_write` bytes or more (the write(2) may go on) and a piece
//! at an offset other than 0 (it continues an earlier piece). The kernel stops a write(2) at its
//! first refused piece, so a write(2) of 64 KiB or more from one buffer fails with `EFBIG` before
//! any line runs, and one of less is a single request whose lines run all or none. (The kernel
//! also splits a vectored write whose segments span more than 32 pages; its first piece then
//! runs alone, the rest is refused, and writev(2) returns a short count.)
//!
//! Reads: as a stream, every read(2) arrives at offset 0, so an open file keeps its own position
//! in the listing taken at its first read; `cat control` prints it once.
//!
//! Invariant: a write whose lines all pass [`Devices::check`] runs them in order up to the first
//! that fails; one with a line that does not pass runs none. No line is half-applied.

use std::sync::{Arc, Mutex};

use crate::cros_ec::device::CrosEcDevice;
use crate::cros_ec::ec::{Event, MAX_EVENT_PAYLOAD, MAX_EVENT_TYPE};
use crate::fuse::session::MAX_WRITE;
use crate::node::{Handle, Node, NodeResult, OpenMode};
use crate::revocable_test::RevocableTest;

/// A parsed control command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `bind NAME`.
    Bind(String),
    /// `unbind NAME`.
    Unbind(String),
    /// `event NAME TYPE HEX`.
    Event(String, Event),
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parses one line (without its newline); `Ok(None)` for a blank line.
///
/// ```
/// use revocable_devfs::control::{parse, Command};
/// assert_eq!(parse("unbind cros_ec"), Ok(Some(Command::Unbind("cros_ec".into()))));
/// let Ok(Some(Command::Event(n, ev))) = parse("event cros_ec 1 0a0b") else { panic!() };
/// assert_eq!((n.as_str(), ev.typ, ev.payload), ("cros_ec", 1, vec![10, 11]));
/// assert_eq!(parse("frobnicate"), Err(libc::EINVAL));
/// assert_eq!(parse("event cros_ec 1 zz"), Err(libc::EINVAL));
/// ```
///
/// # Errors
/// `EINVAL` for a malformed line.
pub fn parse(line: &str) -> Result<Option<Command>, i32> {
    let w: Vec<&str> = line.split_whitespace().collect();
    Ok(Some(match w.as_slice() {
        [] => return Ok(None),
        ["bind", name] => Command::Bind((*name).into()),
        ["unbind", name] => Command::Unbind((*name).into()),
        ["event", name, typ, rest @ ..] if rest.len() <= 1 => {
            let typ: u8 = typ.parse().map_err(|_| libc::EINVAL)?;
            let payload = match rest {
                [h] => hex(h).ok_or(libc::EINVAL)?,
                _ => Vec::new(),
            };
            Command::Event((*name).into(), Event { typ, payload })
        }
        _ => return Err(libc::EINVAL),
    }))
}

/// A device `control` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `cros_ec`.
    CrosEc,
    /// `revocable_test`.
    RevocableTest,
}

/// What a checked [`Command`] does (see [`Devices::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Bind the device (a fresh instance; nothing if bound).
    Bind(Target),
    /// Unbind the device (nothing if unbound).
    Unbind(Target),
    /// Queue an MKBP event on the EC (in range).
    EcEvent(&'a Event),
}

/// The devices `control` acts on.
#[derive(Clone, Debug)]
pub struct Devices {
    /// The EC.
    pub cros_ec: Arc<CrosEcDevice>,
    /// The kselftest device.
    pub revocable_test: Arc<RevocableTest>,
}

impl Devices {
    /// Fresh, bound devices.
    pub fn new() -> Devices {
        Devices {
            cros_ec: CrosEcDevice::new(),
            revocable_test: RevocableTest::new(),
        }
    }

    /// The listing `control` reads as.
    pub fn listing(&self) -> String {
        let st = |b: bool| if b { "bound" } else { "unbound" };
        format!(
            "cros_ec {}\nrevocable_test {}\n",
            st(self.cros_ec.is_bound()),
            st(self.revocable_test.is_bound())
        )
    }

    /// Resolves `cmd` to what it does, if it could run in some state of the devices: the one
    /// place that knows the device names and the event limits ([`run_text`](Self::run_text)
    /// resolves every line before it runs any).
    ///
    /// # Errors
    /// `ENODEV` for an unknown device, `EINVAL` for an event to a device without events or an
    /// event out of range (type above [`MAX_EVENT_TYPE`], payload over [`MAX_EVENT_PAYLOAD`]).
    pub fn check(cmd: &Command) -> Result<Action<'_>, i32> {
        let target = |n: &str| match n {
            "cros_ec" => Ok(Target::CrosEc),
            "revocable_test" => Ok(Target::RevocableTest),
            _ => Err(libc::ENODEV),
        };
        match cmd {
            Command::Bind(n) => Ok(Action::Bind(target(n)?)),
            Command::Unbind(n) => Ok(Action::Unbind(target(n)?)),
            Command::Event(n, ev) => match target(n)? {
                Target::CrosEc
                    if ev.typ <= MAX_EVENT_TYPE && ev.payload.len() <= MAX_EVENT_PAYLOAD =>
                {
                    Ok(Action::EcEvent(ev))
                }
                _ => Err(libc::EINVAL),
            },
        }
    }

    /// Runs one command (bind/unbind are idempotent).
    ///
    /// # Errors
    /// Those of [`check`](Self::check), and `ENODEV` for an event to an unbound EC.
    pub fn run(&self, cmd: &Command) -> Result<(), i32> {
        self.apply(Self::check(cmd)?)
    }

    fn apply(&self, action: Action<'_>) -> Result<(), i32> {
        // What bind and unbind return (whether they changed anything, how long a revoke
        // took) is not the writer's business: both are idempotent here.
        match action {
            Action::Bind(Target::CrosEc) => {
                let _ = self.cros_ec.bind();
            }
            Action::Unbind(Target::CrosEc) => {
                let _ = self.cros_ec.unbind();
            }
            Action::Bind(Target::RevocableTest) => {
                let _ = self.revocable_test.bind();
            }
            Action::Unbind(Target::RevocableTest) => {
                let _ = self.revocable_test.unbind();
            }
            Action::EcEvent(ev) => {
                return self
                    .cros_ec
                    .raise_event(ev)
                    .map(|_| ())
                    .map_err(|e| e.raw())
            }
        }
        Ok(())
    }

    /// Checks every line of `text` ([`parse`], [`check`](Self::check)), then runs them in order.
    ///
    /// # Errors
    /// The first line's error that does not parse or check (then none runs; `EINVAL` for
    /// non-UTF-8 text), else the first failing line's (the lines before it ran).
    pub fn run_text(&self, text: &[u8]) -> Result<(), i32> {
        let text = std::str::from_utf8(text).map_err(|_| libc::EINVAL)?;
        let cmds = text.lines().map(parse).collect::<Result<Vec<_>, _>>()?;
        let actions = cmds
            .iter()
            .flatten()
            .map(Devices::check)
            .collect::<Result<Vec<_>, _>>()?;
        actions.into_iter().try_for_each(|a| self.apply(a))
    }

    /// The `control` node.
    pub fn control_node(&self) -> Arc<dyn Node> {
        Arc::new(ControlNode(self.clone()))
    }
}

impl Default for Devices {
    fn default() -> Self {
        Devices::new()
    }
}

struct ControlNode(Devices);

/// An open `control`.
///
/// # Invariants
/// `listing` is `None` until the first read, then the listing taken then and the position in it.
struct ControlFile {
    devices: Devices,
    listing: Mutex<Option<(Vec<u8>, usize)>>,
}

impl Node for ControlNode {
    fn mode(&self) -> u32 {
        libc::S_IFREG | 0o644
    }
    fn open(&self, _flags: u32) -> NodeResult<Arc<dyn Handle>> {
        Ok(Arc::new(ControlFile {
            devices: self.0.clone(),
            listing: Mutex::new(None),
        }))
    }
}

/// Whether a WRITE piece at `offset` of `len` bytes is a whole write(2) (see the module docs).
///
/// # Errors
/// `EFBIG` for a piece that may be (`len >= MAX_WRITE`) or is (`offset != 0`) part of a larger
/// write(2).
pub fn whole_write(offset: u64, len: usize) -> Result<(), i32> {
    if offset != 0 || len >= MAX_WRITE {
        Err(libc::EFBIG)
    } else {
        Ok(())
    }
}

impl Handle for ControlFile {
    fn open_mode(&self) -> OpenMode {
        OpenMode::Stream
    }
    fn read(&self, _offset: u64, size: u32, _flags: u32) -> NodeResult<Vec<u8>> {
        let mut l = self.listing.lock().unwrap_or_else(|e| e.into_inner());
        let (text, pos) = l.get_or_insert_with(|| (self.devices.listing().into_bytes(), 0));
        let start = (*pos).min(text.len());
        let end = start.saturating_add(size as usize).min(text.len());
        *pos = end;
        Ok(text[start..end].to_vec())
    }
    fn write(&self, offset: u64, data: &[u8]) -> NodeResult<usize> {
        whole_write(offset, data.len())?;
        self.devices.run_text(data)?;
        Ok(data.len())
    }
    fn release(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_and_errors() {
        let d = Devices::new();
        assert_eq!(d.listing(), "cros_ec bound\nrevocable_test bound\n");
        assert_eq!(d.run_text(b"unbind cros_ec\n"), Ok(()));
        assert_eq!(d.listing(), "cros_ec unbound\nrevocable_test bound\n");
        assert_eq!(d.run_text(b"event cros_ec 1 00\n"), Err(libc::ENODEV));
        assert_eq!(d.run_text(b"bind cros_ec\nevent cros_ec 1 00"), Ok(()));
        assert_eq!(d.run_text(b"unbind nosuch"), Err(libc::ENODEV));
        assert_eq!(d.run_text(b"unbind"), Err(libc::EINVAL));
        assert_eq!(d.run_text(b"unbind a b"), Err(libc::EINVAL));
        assert_eq!(d.run_text(b"event cros_ec 300 00"), Err(libc::EINVAL));
        assert_eq!(d.run_text(b"event cros_ec 32 00"), Err(libc::EINVAL));
        assert_eq!(d.run_text(b"event cros_ec 1 0"), Err(libc::EINVAL));
        assert_eq!(d.run_text(&[0xff, 0xfe]), Err(libc::EINVAL));
        // A line that could not run in any state, anywhere: nothing runs.
        assert_eq!(d.run_text(b"unbind cros_ec\nbogus"), Err(libc::EINVAL));
        assert!(d.cros_ec.is_bound());
        for (text, err) in [
            (
                &b"unbind revocable_test\nevent cros_ec 32 00"[..],
                libc::EINVAL,
            ),
            (
                b"unbind revocable_test\nevent cros_ec 1 000102030405060708090a0b0c0d0e0f10",
                libc::EINVAL,
            ),
            (b"unbind cros_ec\nevent revocable_test 1 00", libc::EINVAL),
            (b"unbind cros_ec\nunbind nosuch", libc::ENODEV),
            (b"unbind cros_ec\nevent nosuch 1", libc::ENODEV),
        ] {
            assert_eq!(
                d.run_text(text),
                Err(err),
                "{}",
                String::from_utf8_lossy(text)
            );
            assert_eq!(
                d.listing(),
                "cros_ec bound\nrevocable_test bound\n",
                "a line ran"
            );
        }
        // 16 payload bytes and type 31 are in range.
        assert_eq!(
            d.run_text(b"event cros_ec 31 000102030405060708090a0b0c0d0e0f"),
            Ok(())
        );
        // A failure of the devices' state stops the write there, after the lines before it.
        assert_eq!(
            d.run_text(b"unbind cros_ec\nevent cros_ec 1 00\nunbind revocable_test"),
            Err(libc::ENODEV)
        );
        assert_eq!(d.listing(), "cros_ec unbound\nrevocable_test bound\n");
    }

    #[test]
    fn pieces_of_a_split_write_are_refused() {
        let d = Devices::new();
        let f = d.control_node().open(libc::O_RDWR as u32).unwrap();
        assert_eq!(f.write(0, b"unbind cros_ec\n"), Ok(15));
        assert!(!d.cros_ec.is_bound());
        let mut big = b"bind cros_ec\n".to_vec();
        big.resize(MAX_WRITE, b'\n');
        assert_eq!(f.write(0, &big), Err(libc::EFBIG));
        assert_eq!(f.write(15, b"bind cros_ec\n"), Err(libc::EFBIG));
        assert!(!d.cros_ec.is_bound(), "nothing of a refused piece ran");
        big.truncate(MAX_WRITE - 1);
        assert_eq!(f.write(0, &big), Ok(MAX_WRITE - 1));
        assert!(d.cros_ec.is_bound());
        // Reads keep their own position: the listing once, then end of file.
        let r = d.control_node().open(0).unwrap();
        assert_eq!(r.read(0, 8, 0).unwrap(), b"cros_ec ");
        assert_eq!(
            r.read(0, 4096, 0).unwrap(),
            b"bound\nrevocable_test bound\n"
        );
        assert_eq!(r.read(0, 4096, 0).unwrap(), b"");
    }
}
