//! What the devfs benches share: a /dev/zero-like driver served as a FUSE file, gated on a
//! `Resource` (the fops replacement) or on `Permanent` (the bare path).
#![allow(dead_code)]

use std::sync::Arc;

use revocable_devfs::fops_node::FopsHandle;
use revocable_devfs::fs::{DevFs, Entry, Kind};
use revocable_devfs::node::{Handle, Node, NodeResult};
use revocable_fops::{Errno, File, FileOperations, OpenFile, OpenFlags, Permanent, Resource};

/// Bytes per read.
pub const BLOCK: usize = 64;

/// A /dev/zero-like driver whose data lives in its resource set `R`.
pub struct Zero<R>(std::marker::PhantomData<R>);

macro_rules! zero_ops {
    ($r:ty) => {
        impl FileOperations for Zero<$r> {
            type Private = ();
            type Resources = $r;
            type View<'a> = &'a [u8; BLOCK];
            fn access<'a>(&'a self, d: &'a [u8; BLOCK]) -> Result<&'a [u8; BLOCK], Errno> {
                Ok(d)
            }
            fn open(&self, _: &[u8; BLOCK], _: OpenFlags) -> Result<(), Errno> {
                Ok(())
            }
            fn read(
                &self,
                v: Option<&[u8; BLOCK]>,
                _: &File<()>,
                buf: &mut [u8],
                _: &mut u64,
            ) -> Result<usize, Errno> {
                let d = v.ok_or(Errno::ENODEV)?;
                let n = buf.len().min(BLOCK);
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
        }
    };
}
zero_ops!(Arc<Resource<[u8; BLOCK]>>);
zero_ops!(Permanent<[u8; BLOCK]>);

pub type Opener = Box<dyn Fn(u32) -> Result<OpenFile, Errno> + Send + Sync>;
pub struct FopsNode(pub Opener);
impl Node for FopsNode {
    fn mode(&self) -> u32 {
        libc::S_IFREG | 0o444
    }
    fn open(&self, flags: u32) -> NodeResult<Arc<dyn Handle>> {
        Ok(Arc::new(FopsHandle::new(
            (self.0)(flags).map_err(Errno::raw)?,
        )))
    }
}

/// A file system with one file, `name` (inode 2), reading `BLOCK` bytes of 7s per read,
/// gated on a `Resource` when `gated`.
pub fn one_file(name: &'static str, gated: bool) -> DevFs {
    DevFs::new(vec![Entry {
        ino: 2,
        parent: 1,
        name,
        kind: Kind::File(Arc::new(FopsNode(opener(gated)))),
    }])
}

/// Opens the zero driver, gated on a fresh `Resource` or bare on `Permanent`.
pub fn opener(gated: bool) -> Opener {
    if gated {
        let res = Resource::new([7u8; BLOCK]);
        Box::new(move |f| {
            Ok(OpenFile::open(
                Arc::new(Zero::<Arc<Resource<[u8; BLOCK]>>>(Default::default())),
                res.clone(),
                OpenFlags::from_bits(f),
            )?
            .erase())
        })
    } else {
        let perm = Permanent::new([7u8; BLOCK]);
        Box::new(move |f| {
            Ok(OpenFile::open(
                Arc::new(Zero::<Permanent<[u8; BLOCK]>>(Default::default())),
                perm.clone(),
                OpenFlags::from_bits(f),
            )?
            .erase())
        })
    }
}

/// True when /dev/fuse exists; else prints a SKIP line and returns false, or exits 1 under CI.
pub fn fuse_or_skip() -> bool {
    if std::path::Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        eprintln!("CI is set but /dev/fuse is missing");
        std::process::exit(1);
    }
    println!("SKIP: /dev/fuse is missing; the devfs benchmarks need FUSE");
    false
}
