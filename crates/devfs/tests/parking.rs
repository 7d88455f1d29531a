//! Parked reads through the real request path (no mount): a handle scripted call by call shows
//! that a retry may wake its own file (as the fops layer does when it arms a revoke watch on a
//! resource already revoked), that a wake arriving during a retry is neither lost nor made to
//! wait for the retry, that a RELEASE during a retry still answers the read being retried (and a
//! read that would park after it), that reads are retried in the order they parked, that an
//! interrupt during a read's first try or a retry answers the read as it parks, and that a driver
//! panicking in a retry does not strand the reads parked meanwhile.
//!
//! Each case dispatches from a thread of its own and waits for answers with a deadline, so a
//! regression (a self-deadlock, a lost wake) fails the test instead of hanging it.

mod wire;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use revocable_devfs::fs::{DevFs, Entry, Kind};
use revocable_devfs::fuse::abi::{opcode, InterruptIn, OpenIn, OpenOut, Pod, ReadIn, ReleaseIn};
use revocable_devfs::fuse::session::dispatch;
use revocable_devfs::fuse::Ctx;
use revocable_devfs::node::{Handle, Node, NodeResult, OpenMode, Waker};
use wire::{request, Wire};

const FILE: u64 = 10;
const DEADLINE: Duration = Duration::from_secs(10);

/// What the scripted handle's `n`th read (from 1) at `offset` does, given the file's waker.
type Script = dyn Fn(u32, u64, &Waker) -> NodeResult<Vec<u8>> + Send + Sync;

/// A file whose every open shares one scripted handle.
struct Scripted {
    script: Box<Script>,
    calls: Mutex<u32>,
    waker: Mutex<Option<Waker>>,
    releases: Mutex<u32>,
}

impl Handle for Scripted {
    fn open_mode(&self) -> OpenMode {
        OpenMode::Stream
    }
    fn read(&self, offset: u64, _size: u32, _flags: u32) -> NodeResult<Vec<u8>> {
        let n = {
            let mut c = self.calls.lock().unwrap();
            *c += 1;
            *c
        };
        let waker = self.waker.lock().unwrap().clone().expect("a waker");
        (self.script)(n, offset, &waker)
    }
    fn set_waker(&self, waker: Waker) {
        *self.waker.lock().unwrap() = Some(waker);
    }
    fn release(&self) {
        *self.releases.lock().unwrap() += 1;
    }
}

struct File(Arc<Scripted>);

impl Node for File {
    fn mode(&self) -> u32 {
        libc::S_IFCHR | 0o444
    }
    fn open(&self, _flags: u32) -> NodeResult<Arc<dyn Handle>> {
        Ok(self.0.clone())
    }
}

struct Fixture {
    fs: Arc<DevFs>,
    handle: Arc<Scripted>,
    w: Wire,
    ctx: Ctx,
    fh: u64,
}

impl Fixture {
    /// A file system with one scripted file, opened once.
    fn open(
        script: impl Fn(u32, u64, &Waker) -> NodeResult<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        let handle = Arc::new(Scripted {
            script: Box::new(script),
            calls: Mutex::new(0),
            waker: Mutex::new(None),
            releases: Mutex::new(0),
        });
        let fs = Arc::new(DevFs::new(vec![Entry {
            ino: FILE,
            parent: 1,
            name: "f",
            kind: Kind::File(Arc::new(File(handle.clone()))),
        }]));
        let mut w = Wire::new();
        let ctx = Ctx::detached(&w.ch);
        let open = OpenIn {
            flags: libc::O_RDONLY as u32,
            open_flags: 0,
        };
        dispatch(
            &w.ch,
            &ctx,
            &*fs,
            &request(opcode::OPEN, 2, FILE, open.as_bytes()),
        );
        let m = w.messages();
        assert_eq!((m.len(), m[0].0.error), (1, 0), "OPEN");
        let fh = OpenOut::read_from(&m[0].1).unwrap().fh;
        Fixture {
            fs,
            handle,
            w,
            ctx,
            fh,
        }
    }

    /// Dispatches one request from a new thread, which may stay inside a scripted read.
    fn send(&self, op: u32, unique: u64, body: Vec<u8>) -> JoinHandle<()> {
        let (fs, ch, ctx) = (self.fs.clone(), self.w.ch.clone(), self.ctx.clone());
        std::thread::spawn(move || dispatch(&ch, &ctx, &*fs, &request(op, unique, FILE, &body)))
    }

    /// A READ whose offset is its `unique`, so the script can tell reads apart.
    fn read(&self, unique: u64) -> JoinHandle<()> {
        let r = ReadIn {
            fh: self.fh,
            offset: unique,
            size: 64,
            ..Default::default()
        };
        self.send(opcode::READ, unique, r.as_bytes().to_vec())
    }

    fn interrupt(&self, unique: u64, target: u64) -> JoinHandle<()> {
        let i = InterruptIn { unique: target };
        self.send(opcode::INTERRUPT, unique, i.as_bytes().to_vec())
    }

    fn release(&self, unique: u64) -> JoinHandle<()> {
        let r = ReleaseIn {
            fh: self.fh,
            ..Default::default()
        };
        self.send(opcode::RELEASE, unique, r.as_bytes().to_vec())
    }

    /// Waits until `n` answers arrived (or the deadline passed): (unique, error, body) each.
    fn answers(&mut self, n: usize) -> Vec<(u64, i32, Vec<u8>)> {
        let start = std::time::Instant::now();
        let mut all = Vec::new();
        while all.len() < n && start.elapsed() < DEADLINE {
            all.extend(
                self.w
                    .messages()
                    .into_iter()
                    .map(|(h, b)| (h.unique, h.error, b)),
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        all
    }

    fn calls(&self) -> u32 {
        *self.handle.calls.lock().unwrap()
    }
}

/// Joins `t`, failing (not hanging) if it does not finish by the deadline.
fn join(t: JoinHandle<()>, what: &str) {
    let start = std::time::Instant::now();
    while !t.is_finished() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not return: deadlock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t.join().expect(what);
}

/// A gate a scripted read stops at: the read says it arrived, then waits to be let go.
struct Gate {
    arrived: Mutex<Sender<()>>,
    go: Mutex<Receiver<()>>,
}

fn gate() -> (Arc<Gate>, Receiver<()>, Sender<()>) {
    let (arrived_tx, arrived) = channel();
    let (go, go_rx) = channel();
    let g = Arc::new(Gate {
        arrived: Mutex::new(arrived_tx),
        go: Mutex::new(go_rx),
    });
    (g, arrived, go)
}

/// A file whose every read would block, its `k`th read stopping at a gate first.
fn always_blocking_gated_at(k: u32) -> (Fixture, Receiver<()>, Sender<()>) {
    let (g, arrived, go) = gate();
    let f = Fixture::open(move |n, _, _| {
        if n == k {
            g.pass();
        }
        Err(libc::EAGAIN)
    });
    (f, arrived, go)
}

impl Gate {
    fn pass(&self) {
        self.arrived.lock().unwrap().send(()).unwrap();
        self.go
            .lock()
            .unwrap()
            .recv_timeout(DEADLINE)
            .expect("let go");
    }
}

/// The deadlock the suite once hit when a net interface went away under a parked `cat`: the retry
/// of a parked read calls the file's waker from inside the read (fops arms a revoke watch on a
/// resource already revoked and wakes at once). The wake must not wait for the retry it is part
/// of; the retry goes round again and answers the read.
#[test]
fn a_retry_that_wakes_its_own_file_goes_round_again() {
    let mut f = Fixture::open(|n, _, waker| match n {
        1 => Err(libc::EAGAIN),
        2 => {
            waker();
            Err(libc::EAGAIN)
        }
        _ => Err(libc::ENODEV),
    });
    let t = f.read(4);
    let a = f.answers(1);
    join(t, "READ");
    assert_eq!(a, vec![(4, -libc::ENODEV, vec![])]);
    assert_eq!(
        f.calls(),
        3,
        "parked, retried, retried again after the wake"
    );
    assert_eq!(f.ctx.parked(), 0);
}

/// A wake from another thread while a retry is under way returns at once (it does not wait for
/// the retry), and is not lost: the retry that missed the data goes round once more.
#[test]
fn a_wake_during_a_retry_returns_at_once_and_is_not_lost() {
    let (g, arrived, go) = gate();
    let g2 = g.clone();
    let mut f = Fixture::open(move |n, _, _| match n {
        1 => Err(libc::EAGAIN),
        2 => {
            g2.pass();
            Err(libc::EAGAIN)
        }
        _ => Ok(b"data".to_vec()),
    });
    let t = f.read(4);
    arrived.recv_timeout(DEADLINE).expect("the retry");
    let waker = f.handle.waker.lock().unwrap().clone().unwrap();
    let w = std::thread::spawn(move || waker());
    join(w, "a wake during a retry");
    go.send(()).unwrap();
    let a = f.answers(1);
    join(t, "READ");
    assert_eq!(a, vec![(4, 0, b"data".to_vec())]);
    assert_eq!(f.calls(), 3);
}

/// A RELEASE while a retry is under way: the read being retried, which still would block, is
/// answered with the release's EBADF by the retrying thread, and the handle is released once.
#[test]
fn a_release_during_a_retry_answers_the_read_being_retried() {
    let (mut f, arrived, go) = always_blocking_gated_at(2);
    let t = f.read(4);
    arrived.recv_timeout(DEADLINE).expect("the retry");
    let r = f.release(6);
    join(r, "RELEASE");
    assert_eq!(f.answers(1), vec![(6, 0, vec![])], "RELEASE first");
    go.send(()).unwrap();
    let a = f.answers(1);
    join(t, "READ");
    assert_eq!(a, vec![(4, -libc::EBADF, vec![])]);
    assert_eq!(*f.handle.releases.lock().unwrap(), 1);
    assert_eq!(f.ctx.parked(), 0);
    assert_eq!(f.fs.open_files(), 0);
}

/// A read that fails to park because a RELEASE came first (between its failed read and its
/// parking) is answered with EBADF at once, not parked on a closed file.
#[test]
fn a_read_that_would_park_after_the_release_is_answered_ebadf() {
    let (mut f, arrived, go) = always_blocking_gated_at(1);
    let t = f.read(4);
    arrived.recv_timeout(DEADLINE).expect("the first read");
    join(f.release(6), "RELEASE");
    go.send(()).unwrap();
    join(t, "READ");
    let a = f.answers(2);
    assert_eq!(a, vec![(6, 0, vec![]), (4, -libc::EBADF, vec![])]);
    assert_eq!(f.calls(), 1, "a closed file's read is not retried");
    assert_eq!(f.ctx.parked(), 0);
    assert_eq!(
        f.fs.stats()
            .parked_reads
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// Three reads park; one wake retries them in the order they parked (the driver sees their
/// offsets in that order) and answers each with its own data.
#[test]
fn parked_reads_are_retried_in_the_order_they_parked() {
    let ready = Arc::new(Mutex::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (ready2, seen2) = (ready.clone(), seen.clone());
    let mut f = Fixture::open(move |_, offset, _| {
        if !*ready2.lock().unwrap() {
            return Err(libc::EAGAIN);
        }
        seen2.lock().unwrap().push(offset);
        Ok(offset.to_string().into_bytes())
    });
    for u in [4, 6, 8] {
        join(f.read(u), "READ");
    }
    assert_eq!(f.ctx.parked(), 3);
    *ready.lock().unwrap() = true;
    let waker = f.handle.waker.lock().unwrap().clone().unwrap();
    waker();
    assert_eq!(*seen.lock().unwrap(), vec![4, 6, 8]);
    let a = f.answers(3);
    assert_eq!(
        a,
        vec![
            (4, 0, b"4".to_vec()),
            (6, 0, b"6".to_vec()),
            (8, 0, b"8".to_vec())
        ]
    );
}

/// An INTERRUPT that arrives while its read is being retried (taken out of the parking table, not
/// parked again yet) finds nothing parked: it takes no answer and is remembered, and the read is
/// answered EINTR as it parks again, with no second INTERRUPT (over io_uring the kernel never
/// sends one: an EAGAIN answer to it fails with ENOENT there). A later wake does not answer the
/// read a second time, nor retry it.
#[test]
fn an_interrupt_during_a_retry_answers_the_read_as_it_parks_again() {
    let f = interrupted_during_read(2);
    assert_eq!(f.calls(), 2, "an interrupted read is not retried");
}

/// An INTERRUPT that arrives during a read's first try (before it ever parked) is remembered: the
/// read, finding no data, is answered EINTR as it parks, is not counted as parked, and is never
/// retried.
#[test]
fn an_interrupt_during_the_first_read_answers_it_as_it_parks() {
    let f = interrupted_during_read(1);
    assert_eq!(f.calls(), 1, "never retried");
    let parked =
        f.fs.stats()
            .parked_reads
            .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(parked, 0, "not counted as parked");
}

/// Read 4 on a file that never has data, interrupted while its `call`th driver read runs: the
/// INTERRUPT takes no answer, the read is answered EINTR once (a later wake answers nothing), and
/// nothing stays parked.
fn interrupted_during_read(call: u32) -> Fixture {
    let (mut f, arrived, go) = always_blocking_gated_at(call);
    let t = f.read(4);
    arrived.recv_timeout(DEADLINE).expect("the gated read");
    join(f.interrupt(6, 4), "INTERRUPT");
    assert_eq!(f.w.messages().len(), 0, "the INTERRUPT takes no answer");
    go.send(()).unwrap();
    join(t, "READ");
    assert_eq!(f.answers(1), vec![(4, -libc::EINTR, vec![])]);
    assert_eq!(f.ctx.parked(), 0);
    let waker = f.handle.waker.lock().unwrap().clone().unwrap();
    waker();
    assert_eq!(f.w.messages().len(), 0, "answered once");
    f
}

/// An INTERRUPT of a read already parked answers it EINTR at once; the INTERRUPT itself takes no
/// answer.
#[test]
fn an_interrupt_of_a_parked_read_answers_it_at_once() {
    let mut f = Fixture::open(|_, _, _| Err(libc::EAGAIN));
    join(f.read(4), "READ");
    assert_eq!(f.ctx.parked(), 1);
    join(f.interrupt(6, 4), "INTERRUPT");
    assert_eq!(f.answers(1), vec![(4, -libc::EINTR, vec![])]);
    assert_eq!(f.ctx.parked(), 0);
}

/// A driver panicking in a retry loses that round's read (answered EIO as its reply drops), but a
/// read parked during that retry is still retried by the same runner, not stranded until some
/// later wake, and the panic does not unwind into the thread that called the waker (in a driver,
/// that is a wake-up loop that still has other files to wake).
#[test]
fn a_panic_in_a_retry_does_not_strand_the_reads_parked_meanwhile() {
    let (g, arrived, go) = gate();
    let g2 = g.clone();
    let mut f = Fixture::open(move |n, offset, _| match (n, offset) {
        (1, _) => Err(libc::EAGAIN),
        (2, 4) => {
            g2.pass();
            panic!("driver bug in the retry of read 4");
        }
        (_, 6) if n == 3 => Err(libc::EAGAIN),
        _ => Ok(b"six".to_vec()),
    });
    let (tx, done) = channel();
    let waker = f.handle.waker.lock().unwrap().clone().unwrap();
    let t = f.read(4);
    arrived.recv_timeout(DEADLINE).expect("the retry");
    // Read 6 parks while read 4's retry runs; its wake only asks the runner to go round again.
    join(f.read(6), "READ 6");
    let w = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker()));
        tx.send(r.is_err()).unwrap();
    });
    join(w, "a wake during the retry");
    assert!(!done.try_recv().unwrap(), "that wake did not run the retry");
    go.send(()).unwrap();
    join(t, "READ 4, whose retry panicked");
    let mut a = f.answers(2);
    a.sort();
    assert_eq!(a, vec![(4, -libc::EIO, vec![]), (6, 0, b"six".to_vec())]);
    assert_eq!(f.ctx.parked(), 0);
}
