//! A dynamic directory through the real request path (no mount, no network): a listing read one
//! entry per READDIR while files are added and removed between the calls lists every file that
//! lives throughout exactly once; a removed name's LOOKUP is ENOENT; a name taken by a new thing
//! gets a new inode; an open file of a removed name keeps answering GETATTR (nlink 0).

mod wire;

use std::sync::{Arc, Mutex};

use revocable_devfs::control::Devices;
use revocable_devfs::dynamic::Dynamic;
use revocable_devfs::fs::{DevFs, Entry, Kind};
use revocable_devfs::fuse::abi::{
    opcode, AttrOut, DirentHeader, EntryOut, GetattrIn, OpenIn, OpenOut, Pod, ReadIn,
};
use revocable_devfs::fuse::session::dispatch;
use revocable_devfs::fuse::{Ctx, Filesystem};
use revocable_devfs::node::Node;
use wire::{request, Wire};

const DIR: u64 = 10;

/// Names (with identities) set by the test; every file is the `control` node (any node does).
struct Names {
    now: Mutex<Vec<(String, u64)>>,
    node: Arc<dyn Node>,
}

impl Dynamic for Names {
    fn entries(&self) -> Vec<(String, u64)> {
        self.now.lock().unwrap().clone()
    }
    fn node(&self, _name: &str) -> Arc<dyn Node> {
        self.node.clone()
    }
}

struct Fixture {
    fs: DevFs,
    names: Arc<Names>,
    w: Wire,
    ctx: Ctx,
    unique: u64,
}

impl Fixture {
    fn new(initial: &[&str]) -> Fixture {
        let names = Arc::new(Names {
            now: Mutex::new(initial.iter().map(|n| (n.to_string(), 1)).collect()),
            node: Devices::new().control_node(),
        });
        let fs = DevFs::new(vec![Entry {
            ino: DIR,
            parent: 1,
            name: "dyn",
            kind: Kind::Dynamic(names.clone()),
        }]);
        let w = Wire::new();
        let ctx = Ctx::detached(&w.ch);
        Fixture {
            fs,
            names,
            w,
            ctx,
            unique: 2,
        }
    }

    /// Sends one request; returns (error, body) of its answer.
    fn ask(&mut self, op: u32, nodeid: u64, body: &[u8]) -> (i32, Vec<u8>) {
        self.unique += 2;
        dispatch(
            &self.w.ch,
            &self.ctx,
            &self.fs,
            &request(op, self.unique, nodeid, body),
        );
        let mut m = self.w.messages();
        assert_eq!(m.len(), 1);
        let (h, b) = m.remove(0);
        (h.error, b)
    }

    /// One READDIR of at most one entry after `offset`: (cookie, name), or None at the end.
    fn next_entry(&mut self, offset: u64) -> Option<(u64, String)> {
        let r = ReadIn {
            offset,
            size: 40,
            ..Default::default()
        };
        let (e, b) = self.ask(opcode::READDIR, DIR, r.as_bytes());
        assert_eq!(e, 0);
        let h = DirentHeader::read_from(&b)?;
        let name = String::from_utf8(b[24..24 + h.namelen as usize].to_vec()).unwrap();
        Some((h.off, name))
    }

    fn lookup(&mut self, name: &str) -> Result<u64, i32> {
        let (e, b) = self.ask(opcode::LOOKUP, DIR, format!("{name}\0").as_bytes());
        if e != 0 {
            return Err(-e);
        }
        Ok(EntryOut::read_from(&b).unwrap().nodeid)
    }

    fn set(&self, names: &[(&str, u64)]) {
        *self.names.now.lock().unwrap() = names.iter().map(|(n, i)| (n.to_string(), *i)).collect();
    }
}

#[test]
fn listing_while_the_directory_changes() {
    let mut f = Fixture::new(&["a", "b", "c", "d"]);
    let mut seen = Vec::new();
    let mut off = 0;
    let mut step = 0;
    while let Some((cookie, name)) = f.next_entry(off) {
        seen.push(name);
        off = cookie;
        step += 1;
        // Between calls: remove one file, add others, re-create one under a new identity.
        match step {
            3 => f.set(&[("a", 1), ("c", 1), ("d", 1), ("e", 1)]),
            4 => f.set(&[("a", 1), ("c", 1), ("d", 1), ("e", 1), ("b", 2)]),
            _ => {}
        }
        assert!(step < 20, "listing does not end: {seen:?}");
    }
    // "." and ".." first; a, c, d live throughout: exactly once each; b removed before its turn
    // is skipped; e and the new b are newer, so they come after the rest, once each.
    assert_eq!(seen, [".", "..", "a", "c", "d", "e", "b"]);
    f.fs.session_ended();
}

#[test]
fn lookup_open_and_getattr_of_removed_and_recreated_names() {
    let mut f = Fixture::new(&["a"]);
    let a1 = f.lookup("a").unwrap();
    let open = OpenIn {
        flags: libc::O_RDONLY as u32,
        open_flags: 0,
    };
    let (e, b) = f.ask(opcode::OPEN, a1, open.as_bytes());
    assert_eq!(e, 0);
    let fh = OpenOut::read_from(&b).unwrap().fh;
    f.set(&[]);
    assert_eq!(f.lookup("a"), Err(libc::ENOENT));
    assert_eq!(f.ask(opcode::OPEN, a1, open.as_bytes()).0, -libc::ENOENT);
    // The open file still answers GETATTR, by inode and by fh: an unlinked file.
    let g = GetattrIn::default();
    let (e, b) = f.ask(opcode::GETATTR, a1, g.as_bytes());
    assert_eq!(e, 0);
    assert_eq!(AttrOut::read_from(&b).unwrap().attr.nlink, 0);
    f.set(&[("a", 2)]);
    let a2 = f.lookup("a").unwrap();
    assert_ne!(a2, a1, "a new thing under the old name gets a new inode");
    let g = GetattrIn {
        getattr_flags: revocable_devfs::fuse::abi::GETATTR_FH,
        dummy: 0,
        fh,
    };
    let (e, b) = f.ask(opcode::GETATTR, a1, g.as_bytes());
    assert_eq!(e, 0);
    assert_eq!(AttrOut::read_from(&b).unwrap().attr.ino, a1);
    f.fs.session_ended();
    assert_eq!(f.fs.open_files(), 0);
}
