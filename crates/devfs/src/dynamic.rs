//! Directories whose files come and go at run time (`net/`): the [`Dynamic`] source of their
//! names, and the inode table that gives each file a number of its own.
//!
//! Invariants:
//! - an inode number names one (directory, name, identity) for the whole session: a name taken by
//!   a new thing (a new identity, e.g. a re-created interface) gets a new number, so a kernel inode
//!   of the old one never reaches the new one;
//! - an entry leaves the table only when its file is gone from the source and no open file uses
//!   it, so the table stays as large as what is live or open (memory does not grow with churn).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::node::Node;

/// The source of a dynamic directory's files.
pub trait Dynamic: Send + Sync {
    /// The files now, as (name, identity) pairs; the identity changes when a new thing takes a
    /// name (an interface's ifindex).
    fn entries(&self) -> Vec<(String, u64)>;
    /// The node of file `name`.
    fn node(&self, name: &str) -> Arc<dyn Node>;
}

/// Inode numbers of dynamic files start here (the fixed tree uses small numbers).
pub const DYN_INO_BASE: u64 = 1 << 32;

/// One dynamic file the kernel may know.
pub(crate) struct DynEntry {
    pub(crate) parent: u64,
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) node: Arc<dyn Node>,
    open: usize,
}

/// The inode table of every dynamic directory.
#[derive(Default)]
pub(crate) struct DynTable {
    by_key: HashMap<(u64, String, u64), u64>,
    by_ino: HashMap<u64, DynEntry>,
    next: u64,
}

impl DynTable {
    /// The inode of `name` (identity `id`) in `parent`, made on first sight.
    pub(crate) fn ino(&mut self, parent: u64, name: &str, id: u64, d: &dyn Dynamic) -> u64 {
        if let Some(i) = self.by_key.get(&(parent, name.to_owned(), id)) {
            return *i;
        }
        let ino = DYN_INO_BASE + self.next;
        self.next += 1;
        self.by_key.insert((parent, name.to_owned(), id), ino);
        self.by_ino.insert(
            ino,
            DynEntry {
                parent,
                name: name.to_owned(),
                id,
                node: d.node(name),
                open: 0,
            },
        );
        ino
    }

    pub(crate) fn get(&self, ino: u64) -> Option<&DynEntry> {
        self.by_ino.get(&ino)
    }

    /// Forgets the entries of `parent` that are not `live` and not open.
    pub(crate) fn prune(&mut self, parent: u64, live: &HashSet<(String, u64)>) {
        let dead: Vec<u64> = self
            .by_ino
            .iter()
            .filter(|(_, e)| {
                e.parent == parent && e.open == 0 && !live.contains(&(e.name.clone(), e.id))
            })
            .map(|(i, _)| *i)
            .collect();
        for i in dead {
            if let Some(e) = self.by_ino.remove(&i) {
                self.by_key.remove(&(e.parent, e.name, e.id));
            }
        }
    }

    /// An open file of `ino` was made (`true`) or released (`false`).
    pub(crate) fn set_open(&mut self, ino: u64, opened: bool) {
        if let Some(e) = self.by_ino.get_mut(&ino) {
            if opened {
                e.open += 1;
            } else {
                e.open = e.open.saturating_sub(1);
            }
        }
    }

    /// Entries known now (for tests and the memory check).
    pub(crate) fn len(&self) -> usize {
        self.by_ino.len()
    }
}
