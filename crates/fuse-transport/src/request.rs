//! Decoding requests: the raw bytes read from `/dev/fuse` become an [`Op`] borrowing the buffer.
//!
//! Invariant: decoding never panics on malformed input; a request too short for its opcode's
//! struct decodes to [`Op::Malformed`] (answered EINVAL).

use super::abi::{self, opcode, InHeader, Pod};

/// The largest READ/READDIR size served: the kernel's default of 32 pages (we do not negotiate
/// `FUSE_MAX_PAGES`), so a genuine request never asks for more. Clamping here keeps a corrupt or
/// hostile request from making the server allocate gigabytes for one reply (found by fuzzing).
pub const MAX_READ: u32 = 32 * 4096;

/// One decoded file system operation (the opcodes the file system sees; INIT, INTERRUPT, FORGET
/// and DESTROY are handled by the session itself).
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Op<'a> {
    Lookup {
        parent: u64,
        name: &'a [u8],
    },
    /// GETATTR; `fh` is the open file it is asked through (`FUSE_GETATTR_FH`), if any.
    Getattr {
        ino: u64,
        fh: Option<u64>,
    },
    Setattr {
        ino: u64,
    },
    Open {
        ino: u64,
        flags: u32,
    },
    Read {
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        flags: u32,
    },
    Write {
        ino: u64,
        fh: u64,
        offset: u64,
        data: &'a [u8],
        flags: u32,
    },
    Flush {
        ino: u64,
        fh: u64,
    },
    Release {
        ino: u64,
        fh: u64,
        flags: u32,
    },
    Fsync {
        ino: u64,
    },
    Opendir {
        ino: u64,
        flags: u32,
    },
    Readdir {
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
    },
    Releasedir {
        ino: u64,
        fh: u64,
    },
    Statfs,
    Access {
        ino: u64,
    },
    Ioctl {
        ino: u64,
        fh: u64,
        flags: u32,
        cmd: u32,
        arg: u64,
        input: &'a [u8],
        out_size: u32,
    },
    Poll {
        ino: u64,
        fh: u64,
        kh: u64,
        flags: u32,
        events: u32,
    },
    /// Session-level: INIT.
    Init {
        major: u32,
        minor: u32,
        max_readahead: u32,
        flags: u32,
    },
    /// Session-level: INTERRUPT of the request `target`.
    Interrupt {
        target: u64,
    },
    /// Session-level: FORGET / BATCH_FORGET (no reply).
    Forget,
    /// Session-level: DESTROY.
    Destroy,
    /// A known opcode with a body too short for it.
    Malformed,
    /// An opcode this server does not implement (answered ENOSYS).
    Unsupported(u32),
}

/// A request: its header and decoded operation.
#[derive(Debug)]
pub struct Request<'a> {
    /// The request header (caller's uid/gid/pid, `unique`, node id).
    pub header: InHeader,
    /// The operation.
    pub op: Op<'a>,
}

fn body<T: Pod>(b: &[u8]) -> Option<(T, &[u8])> {
    let v = T::read_from(b)?;
    Some((v, &b[core::mem::size_of::<T>()..]))
}

fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

impl<'a> Request<'a> {
    /// Decodes the `n` bytes at the start of `buf`; `None` if even the header is incomplete.
    pub fn parse(buf: &'a [u8]) -> Option<Request<'a>> {
        let header = InHeader::read_from(buf)?;
        let len = (header.len as usize).min(buf.len());
        let b = buf.get(core::mem::size_of::<InHeader>()..len)?;
        let ino = header.nodeid;
        let op = (|| -> Option<Op<'a>> {
            Some(match header.opcode {
                opcode::LOOKUP => Op::Lookup {
                    parent: ino,
                    name: cstr(b),
                },
                opcode::GETATTR => Op::Getattr {
                    ino,
                    // A body too short for `fuse_getattr_in` (protocol < 7.9) asks by inode only.
                    fh: body::<abi::GetattrIn>(b)
                        .filter(|(g, _)| g.getattr_flags & abi::GETATTR_FH != 0)
                        .map(|(g, _)| g.fh),
                },
                opcode::SETATTR => Op::Setattr { ino },
                opcode::OPEN => {
                    let (o, _) = body::<abi::OpenIn>(b)?;
                    Op::Open {
                        ino,
                        flags: o.flags,
                    }
                }
                opcode::READ => {
                    let (r, _) = body::<abi::ReadIn>(b)?;
                    Op::Read {
                        ino,
                        fh: r.fh,
                        offset: r.offset,
                        size: r.size.min(MAX_READ),
                        flags: r.flags,
                    }
                }
                opcode::WRITE => {
                    let (w, rest) = body::<abi::WriteIn>(b)?;
                    let data = rest.get(..w.size as usize)?;
                    Op::Write {
                        ino,
                        fh: w.fh,
                        offset: w.offset,
                        data,
                        flags: w.flags,
                    }
                }
                opcode::FLUSH => Op::Flush {
                    ino,
                    fh: u64::read_from(b)?,
                },
                opcode::RELEASE | opcode::RELEASEDIR => {
                    let (r, _) = body::<abi::ReleaseIn>(b)?;
                    if header.opcode == opcode::RELEASE {
                        Op::Release {
                            ino,
                            fh: r.fh,
                            flags: r.flags,
                        }
                    } else {
                        Op::Releasedir { ino, fh: r.fh }
                    }
                }
                opcode::FSYNC => Op::Fsync { ino },
                opcode::OPENDIR => {
                    let (o, _) = body::<abi::OpenIn>(b)?;
                    Op::Opendir {
                        ino,
                        flags: o.flags,
                    }
                }
                opcode::READDIR => {
                    let (r, _) = body::<abi::ReadIn>(b)?;
                    Op::Readdir {
                        ino,
                        fh: r.fh,
                        offset: r.offset,
                        size: r.size.min(MAX_READ),
                    }
                }
                opcode::STATFS => Op::Statfs,
                opcode::ACCESS => Op::Access { ino },
                opcode::IOCTL => {
                    let (i, rest) = body::<abi::IoctlIn>(b)?;
                    let input = rest.get(..i.in_size as usize)?;
                    Op::Ioctl {
                        ino,
                        fh: i.fh,
                        flags: i.flags,
                        cmd: i.cmd,
                        arg: i.arg,
                        input,
                        out_size: i.out_size,
                    }
                }
                opcode::POLL => {
                    let (p, _) = body::<abi::PollIn>(b)?;
                    Op::Poll {
                        ino,
                        fh: p.fh,
                        kh: p.kh,
                        flags: p.flags,
                        events: p.events,
                    }
                }
                opcode::INIT => {
                    let (i, _) = body::<abi::InitIn>(b)?;
                    Op::Init {
                        major: i.major,
                        minor: i.minor,
                        max_readahead: i.max_readahead,
                        flags: i.flags,
                    }
                }
                opcode::INTERRUPT => Op::Interrupt {
                    target: body::<abi::InterruptIn>(b)?.0.unique,
                },
                opcode::FORGET | opcode::BATCH_FORGET => Op::Forget,
                opcode::DESTROY => Op::Destroy,
                other => Op::Unsupported(other),
            })
        })()
        .unwrap_or(Op::Malformed);
        Some(Request { header, op })
    }
}

// SAFETY: u64 is plain old data: 8 initialised bytes, every pattern valid, no padding.
unsafe impl Pod for u64 {}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(opcode: u32, body: &[u8]) -> Vec<u8> {
        let h = InHeader {
            len: (40 + body.len()) as u32,
            opcode,
            unique: 7,
            nodeid: 3,
            ..Default::default()
        };
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn decodes_lookup_and_read() {
        let b = req(opcode::LOOKUP, b"cros_ec\0");
        let r = Request::parse(&b).unwrap();
        assert!(matches!(
            r.op,
            Op::Lookup {
                parent: 3,
                name: b"cros_ec"
            }
        ));
        let ri = abi::ReadIn {
            fh: 9,
            offset: 5,
            size: 100,
            ..Default::default()
        };
        let b = req(opcode::READ, ri.as_bytes());
        assert!(matches!(
            Request::parse(&b).unwrap().op,
            Op::Read {
                fh: 9,
                offset: 5,
                size: 100,
                ..
            }
        ));
    }

    #[test]
    fn short_bodies_are_malformed_not_panics() {
        let b = req(opcode::READ, &[1, 2, 3]);
        assert!(matches!(Request::parse(&b).unwrap().op, Op::Malformed));
        let wi = abi::WriteIn {
            size: 1000,
            ..Default::default()
        };
        let b = req(opcode::WRITE, wi.as_bytes());
        assert!(matches!(Request::parse(&b).unwrap().op, Op::Malformed));
        assert!(Request::parse(&[0u8; 10]).is_none());
    }
}
