//! The fops replacement against a test driver: every operation before and after revoke, races
//! with revoke, blocked sleepers woken by revoke, resource-free ops, several resources, bad input.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use revocable_fops::ioctl::{io, ior, iow, IoctlArg};
use revocable_fops::*;

const GET: u32 = ior(b'T', 1, 4);
const SET: u32 = iow(b'T', 2, 4);
const PING: u32 = io(b'T', 3);

/// Shared bookkeeping the test inspects (outside the revocable resource).
#[derive(Default)]
struct Stats {
    in_flight: AtomicUsize,
    dropped_while_in_flight: AtomicUsize,
    after_revoke_with_view: AtomicUsize,
    revoked: AtomicBool,
    opens: AtomicUsize,
    releases: AtomicUsize,
    releases_with_view: AtomicUsize,
}

/// The resource: a device with a register.
struct Dev {
    reg: AtomicUsize,
    stats: Arc<Stats>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.stats.in_flight.load(SeqCst) != 0 {
            self.stats.dropped_while_in_flight.fetch_add(1, SeqCst);
        }
    }
}

struct Priv {
    queue: Mutex<VecDeque<u8>>,
    wq: WaitQueue,
}

struct Drv {
    stats: Arc<Stats>,
}

impl Drv {
    /// Marks a view in use for the duration of an op; flags use after revoke.
    fn enter(&self, v: &Option<&Dev>) -> Option<InFlight<'_>> {
        v.as_ref()?;
        self.stats.in_flight.fetch_add(1, SeqCst);
        if self.stats.revoked.load(SeqCst) {
            self.stats.after_revoke_with_view.fetch_add(1, SeqCst);
        }
        Some(InFlight(&self.stats))
    }
}

struct InFlight<'a>(&'a Stats);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

impl FileOperations for Drv {
    type Private = Priv;
    type Resources = Arc<Resource<Dev>>;
    type View<'a> = &'a Dev;
    const RESOURCE_FREE: OpSet = OpSet::LLSEEK;

    fn access<'a>(&'a self, res: &'a Dev) -> Result<&'a Dev, Errno> {
        if res.reg.load(SeqCst) == 666 {
            return Err(Errno::EIO); // the hook refuses: device in an error state
        }
        Ok(res)
    }
    fn open(&self, _: &Dev, _: OpenFlags) -> Result<Priv, Errno> {
        self.stats.opens.fetch_add(1, SeqCst);
        Ok(Priv {
            queue: Mutex::new(VecDeque::new()),
            wq: WaitQueue::new(),
        })
    }
    fn read(
        &self,
        v: Option<&Dev>,
        f: &File<Priv>,
        buf: &mut [u8],
        off: &mut u64,
    ) -> Result<usize, Errno> {
        let _g = self.enter(&v).ok_or(Errno::ENODEV)?;
        let mut q = f.private().queue.lock().unwrap();
        if q.is_empty() {
            return Err(Errno::EAGAIN);
        }
        let mut n = 0;
        while n < buf.len() {
            match q.pop_front() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        *off += n as u64;
        Ok(n)
    }
    fn write(
        &self,
        v: Option<&Dev>,
        f: &File<Priv>,
        buf: &[u8],
        off: &mut u64,
    ) -> Result<usize, Errno> {
        let _g = self.enter(&v).ok_or(Errno::ENODEV)?;
        f.private().queue.lock().unwrap().extend(buf);
        f.private().wq.wake_all();
        *off += buf.len() as u64;
        Ok(buf.len())
    }
    fn poll(&self, v: Option<&Dev>, f: &File<Priv>, pt: PollTable<'_>) -> PollEvents {
        let Some(_g) = self.enter(&v) else {
            return PollEvents::POLLERR;
        };
        pt.wait(&f.private().wq);
        let mut m = PollEvents::POLLOUT | PollEvents::POLLWRNORM;
        if !f.private().queue.lock().unwrap().is_empty() {
            m |= PollEvents::POLLIN | PollEvents::POLLRDNORM;
        }
        m
    }
    fn ioctl(
        &self,
        v: Option<&Dev>,
        _: &File<Priv>,
        cmd: u32,
        mut arg: IoctlArg<'_>,
    ) -> Result<i64, Errno> {
        let _g = self.enter(&v).ok_or(Errno::ENODEV)?;
        let dev = v.ok_or(Errno::ENODEV)?;
        match cmd {
            GET => {
                let val = dev.reg.load(SeqCst) as u32;
                arg.data(4)?.copy_from_slice(&val.to_le_bytes());
                Ok(0)
            }
            SET => {
                let mut b = [0u8; 4];
                b.copy_from_slice(arg.data(4)?);
                let val = u32::from_le_bytes(b);
                if val > 1000 {
                    return Err(Errno::EINVAL);
                }
                dev.reg.store(val as usize, SeqCst);
                Ok(0)
            }
            PING => Ok(arg.raw() as i64 + 1),
            _ => Err(Errno::ENOTTY),
        }
    }
    fn llseek(&self, v: Option<&Dev>, f: &File<Priv>, off: i64, w: Whence) -> Result<u64, Errno> {
        assert!(v.is_none(), "llseek is resource-free");
        fixed_size_llseek(f.pos(), 100, off, w)
    }
    fn flush(&self, v: Option<&Dev>, _: &File<Priv>) -> Result<(), Errno> {
        let _g = self.enter(&v).ok_or(Errno::ENODEV)?;
        Ok(())
    }
    fn release(&self, v: Option<&Dev>, _: &File<Priv>) {
        self.stats.releases.fetch_add(1, SeqCst);
        if v.is_some() {
            self.stats.releases_with_view.fetch_add(1, SeqCst);
        }
    }
}

fn setup() -> (Arc<Stats>, Arc<Drv>, Arc<Resource<Dev>>) {
    let stats = Arc::new(Stats::default());
    let drv = Arc::new(Drv {
        stats: stats.clone(),
    });
    let res = Resource::new(Dev {
        reg: AtomicUsize::new(7),
        stats: stats.clone(),
    });
    (stats, drv, res)
}

fn revoke(stats: &Stats, res: &Resource<Dev>) {
    assert!(res.revoke());
    stats.revoked.store(true, SeqCst);
}

fn ioctl_get(f: &OpenFile<impl FileObject + ?Sized>) -> Result<u32, Errno> {
    let mut b = [0u8; 4];
    f.ioctl(GET, IoctlArg::with_data(0, &mut b))?;
    Ok(u32::from_le_bytes(b))
}

#[test]
fn every_op_before_and_after_revoke() {
    let (stats, drv, res) = setup();
    let f = OpenFile::open(drv.clone(), res.clone(), OpenFlags::O_RDWR)
        .unwrap()
        .erase();
    let mut buf = [0u8; 8];
    // before
    assert_eq!(f.read(&mut buf, Wait::NonBlocking), Err(Errno::EAGAIN));
    assert_eq!(f.poll(None), PollEvents::POLLOUT | PollEvents::POLLWRNORM);
    assert_eq!(f.write(b"abc", Wait::NonBlocking), Ok(3));
    assert!(f
        .poll(None)
        .contains(PollEvents::POLLIN | PollEvents::POLLRDNORM));
    assert_eq!(f.read_at(&mut buf, 0, Wait::NonBlocking), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(ioctl_get(&f), Ok(7));
    assert_eq!(f.ioctl(PING, IoctlArg::value(41)), Ok(42));
    assert_eq!(f.llseek(5, Whence::Set), Ok(5));
    assert_eq!(f.pos(), 5);
    assert_eq!(f.flush(), Ok(()));
    // after
    revoke(&stats, &res);
    assert_eq!(f.read(&mut buf, Wait::NonBlocking), Err(Errno::ENODEV));
    assert_eq!(f.write(b"x", Wait::NonBlocking), Err(Errno::ENODEV));
    assert_eq!(f.ioctl(PING, IoctlArg::value(1)), Err(Errno::ENODEV));
    assert_eq!(f.flush(), Ok(()), "close succeeds on a gone device");
    assert_eq!(
        f.poll(None),
        PollEvents::POLLIN | PollEvents::POLLERR | PollEvents::POLLHUP
    );
    assert_eq!(
        f.llseek(1, Whence::Cur),
        Ok(6),
        "resource-free op still works"
    );
    assert!(f.is_revoked());
    assert_eq!(
        OpenFile::open(drv, res, OpenFlags::O_RDWR).unwrap_err(),
        Errno::ENODEV
    );
    assert_eq!(stats.opens.load(SeqCst), 1);
    assert_eq!(stats.releases.load(SeqCst), 0);
    let f2 = f.clone();
    assert!(!f.release());
    assert_eq!(stats.releases.load(SeqCst), 0);
    assert!(f2.release());
    assert_eq!(stats.releases.load(SeqCst), 1);
    assert_eq!(stats.releases_with_view.load(SeqCst), 0);
    assert_eq!(stats.after_revoke_with_view.load(SeqCst), 0);
}

#[test]
fn release_gets_view_when_live() {
    let (stats, drv, res) = setup();
    let f = OpenFile::open(drv, res.clone(), OpenFlags::O_RDONLY).unwrap();
    drop(f);
    assert_eq!(stats.releases.load(SeqCst), 1);
    assert_eq!(stats.releases_with_view.load(SeqCst), 1);
    // The file's reference to the resource went with it.
    assert_eq!(Arc::strong_count(&res), 1);
}

#[test]
fn bad_input_never_panics() {
    let (_stats, drv, res) = setup();
    let f = OpenFile::open(drv.clone(), res.clone(), OpenFlags::O_RDONLY).unwrap();
    assert_eq!(f.ioctl(0xdead_beef, IoctlArg::value(0)), Err(Errno::ENOTTY));
    assert_eq!(
        f.ioctl(io(0, 0), IoctlArg::value(u64::MAX)),
        Err(Errno::ENOTTY)
    );
    assert_eq!(f.ioctl(GET, IoctlArg::value(0)), Err(Errno::EFAULT));
    let mut short = [0u8; 3];
    assert_eq!(
        f.ioctl(SET, IoctlArg::with_data(0, &mut short)),
        Err(Errno::EFAULT)
    );
    let mut big = 5000u32.to_le_bytes();
    assert_eq!(
        f.ioctl(SET, IoctlArg::with_data(0, &mut big)),
        Err(Errno::EINVAL)
    );
    assert_eq!(f.llseek(-1, Whence::Set), Err(Errno::EINVAL));
    assert_eq!(f.llseek(i64::MAX, Whence::End), Err(Errno::EINVAL));
    assert_eq!(f.llseek(i64::MIN, Whence::Cur), Err(Errno::EINVAL));
    assert_eq!(f.llseek(0, Whence::Hole), Err(Errno::EINVAL));
    assert_eq!(
        f.write(b"x", Wait::NonBlocking),
        Err(Errno::EBADF),
        "O_RDONLY"
    );
    let w = OpenFile::open(drv, res, OpenFlags::O_WRONLY).unwrap();
    assert_eq!(w.read(&mut [0u8; 1], Wait::NonBlocking), Err(Errno::EBADF));
    assert_eq!(w.write(&[], Wait::NonBlocking), Ok(0));
}

#[test]
fn access_hook_can_refuse() {
    let (_stats, drv, res) = setup();
    let f = OpenFile::open(drv.clone(), res.clone(), OpenFlags::O_RDWR).unwrap();
    let mut v = 666u32.to_le_bytes();
    assert_eq!(f.ioctl(SET, IoctlArg::with_data(0, &mut v)), Ok(0));
    assert_eq!(ioctl_get(&f), Err(Errno::EIO));
    assert_eq!(f.poll(None), PollEvents::REVOKED);
    assert_eq!(
        OpenFile::open(drv, res, OpenFlags::O_RDWR).unwrap_err(),
        Errno::EIO
    );
}

#[test]
fn nonblocking_flag_and_cancel() {
    let (_stats, drv, res) = setup();
    let f = OpenFile::open(drv, res, OpenFlags::O_RDONLY | OpenFlags::O_NONBLOCK).unwrap();
    let w = Waiter::new();
    assert_eq!(f.read(&mut [0u8; 1], Wait::Block(&w)), Err(Errno::EAGAIN));
    f.set_flags(OpenFlags::O_RDONLY);
    assert!(!f.flags().nonblocking());
    let c = w.canceller();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        c.cancel();
    });
    assert_eq!(f.read(&mut [0u8; 1], Wait::Block(&w)), Err(Errno::EINTR));
    t.join().unwrap();
    assert_eq!(
        f.read(&mut [0u8; 1], Wait::Block(&w)),
        Err(Errno::EINTR),
        "sticky"
    );
    assert_eq!(f.poll_wait(PollEvents::POLLIN, &w, None), Err(Errno::EINTR));
}

#[test]
fn blocked_read_woken_by_data_then_by_revoke() {
    let (stats, drv, res) = setup();
    let f = OpenFile::open(drv, res.clone(), OpenFlags::O_RDWR)
        .unwrap()
        .erase();
    // Woken by data.
    let r = f.clone();
    let t = thread::spawn(move || {
        let w = Waiter::new();
        let mut b = [0u8; 4];
        r.read(&mut b, Wait::Block(&w)).map(|n| b[..n].to_vec())
    });
    thread::sleep(Duration::from_millis(20));
    f.write(b"hi", Wait::NonBlocking).unwrap();
    assert_eq!(t.join().unwrap(), Ok(b"hi".to_vec()));
    // Woken by revoke: several readers and pollers asleep; revoke returns promptly.
    let (tx, rx) = mpsc::channel();
    for i in 0..4 {
        let r = f.clone();
        let tx = tx.clone();
        thread::spawn(move || {
            let w = Waiter::new();
            let res = if i % 2 == 0 {
                r.read(&mut [0u8; 4], Wait::Block(&w))
                    .map(|_| PollEvents::EMPTY)
            } else {
                r.poll_wait(PollEvents::POLLIN, &w, None)
            };
            tx.send((i, res)).unwrap();
        });
    }
    thread::sleep(Duration::from_millis(50));
    assert!(rx.try_recv().is_err(), "all four are asleep");
    let t0 = Instant::now();
    revoke(&stats, &res);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "revoke did not wait for sleepers"
    );
    for _ in 0..4 {
        let (i, r) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("sleeper woken");
        if i % 2 == 0 {
            assert_eq!(r, Err(Errno::ENODEV));
        } else {
            assert_eq!(
                r,
                Ok(PollEvents::POLLIN | PollEvents::POLLERR | PollEvents::POLLHUP)
            );
        }
    }
    assert_eq!(stats.after_revoke_with_view.load(SeqCst), 0);
}

#[test]
fn armed_waiter_notified_on_data_and_on_revoke() {
    let (stats, drv, res) = setup();
    let f = OpenFile::open(drv, res.clone(), OpenFlags::O_RDWR).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let w = Waiter::with_notify(move || {
        h.fetch_add(1, SeqCst);
    });
    let mut b = [0u8; 4];
    assert_eq!(f.read(&mut b, Wait::Arm(&w)), Err(Errno::EAGAIN));
    assert_eq!(hits.load(SeqCst), 0);
    f.write(b"z", Wait::NonBlocking).unwrap();
    assert_eq!(hits.load(SeqCst), 1, "parked request notified");
    assert_eq!(f.read(&mut b, Wait::Arm(&w)), Ok(1));
    assert_eq!(f.read(&mut b, Wait::Arm(&w)), Err(Errno::EAGAIN));
    revoke(&stats, &res);
    assert_eq!(hits.load(SeqCst), 2, "revoke notifies the parked request");
    assert_eq!(f.read(&mut b, Wait::Arm(&w)), Err(Errno::ENODEV));
}

/// Runs `f` on a thread; fails (instead of hanging) if it does not finish within `secs`.
fn within(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => h.join().unwrap(), // propagate its panic
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: a wakeup was lost"),
    }
}

#[test]
fn ping_pong_never_loses_a_wakeup() {
    within(60, || {
        let (_stats, drv, res) = setup();
        let a = OpenFile::open(drv.clone(), res.clone(), OpenFlags::O_RDWR)
            .unwrap()
            .erase();
        let b = OpenFile::open(drv, res, OpenFlags::O_RDWR).unwrap().erase();
        let (a2, b2) = (a.clone(), b.clone());
        // Each side blocks reading its own file, then writes to the other one.
        let t = thread::spawn(move || {
            let w = Waiter::new();
            for i in 0..3000u32 {
                let mut x = [0u8; 1];
                assert_eq!(b2.read(&mut x, Wait::Block(&w)), Ok(1));
                assert_eq!(x[0], i as u8);
                a2.write(&x, Wait::NonBlocking).unwrap();
            }
        });
        let w = Waiter::new();
        for i in 0..3000u32 {
            b.write(&[i as u8], Wait::NonBlocking).unwrap();
            let mut x = [0u8; 1];
            assert_eq!(a.read(&mut x, Wait::Block(&w)), Ok(1));
            assert_eq!(x[0], i as u8);
        }
        t.join().unwrap();
        assert!(w.registrations() <= 2, "waiter registrations stay bounded");
    });
}

#[test]
fn blocked_reader_vs_revoke_at_random_times() {
    within(60, || {
        for round in 0..200u64 {
            let (stats, drv, res) = setup();
            let f = OpenFile::open(drv, res.clone(), OpenFlags::O_RDWR).unwrap();
            let r = f.clone();
            let t = thread::spawn(move || r.read(&mut [0u8; 1], Wait::Block(&Waiter::new())));
            // Revoke anywhere from before the reader starts to after it sleeps.
            for _ in 0..(round * 37) % 2000 {
                std::hint::spin_loop();
            }
            revoke(&stats, &res);
            assert_eq!(t.join().unwrap(), Err(Errno::ENODEV));
        }
    });
}

#[test]
fn concurrent_ops_race_revoke() {
    within(120, || {
        for round in 0..20 {
            let (stats, drv, res) = setup();
            let f = OpenFile::open(drv, res.clone(), OpenFlags::O_RDWR)
                .unwrap()
                .erase();
            let issued = Arc::new(AtomicUsize::new(0));
            let answered = Arc::new(AtomicUsize::new(0));
            let mut ts = Vec::new();
            for t in 0..4 {
                let f = f.clone();
                let (issued, answered) = (issued.clone(), answered.clone());
                ts.push(thread::spawn(move || {
                    let w = Waiter::new();
                    let mut enodev = 0;
                    while enodev < 50 {
                        issued.fetch_add(1, SeqCst);
                        let r: Result<(), Errno> = match t {
                            0 => f.write(b"ab", Wait::NonBlocking).map(drop),
                            1 => f.read(&mut [0u8; 1], Wait::Block(&w)).map(drop),
                            2 => ioctl_get(&f).map(drop),
                            _ => {
                                if f.poll(None).contains(PollEvents::POLLERR) {
                                    Err(Errno::ENODEV)
                                } else {
                                    Ok(())
                                }
                            }
                        };
                        answered.fetch_add(1, SeqCst);
                        match r {
                            Ok(()) | Err(Errno::EAGAIN) => {}
                            Err(Errno::ENODEV) => enodev += 1,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                }));
            }
            thread::sleep(Duration::from_millis(5 + round % 5));
            revoke(&stats, &res);
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(issued.load(SeqCst), answered.load(SeqCst), "no op lost");
            assert_eq!(stats.after_revoke_with_view.load(SeqCst), 0);
            assert_eq!(stats.dropped_while_in_flight.load(SeqCst), 0);
            assert_eq!(stats.releases.load(SeqCst), 0);
            drop(f);
            assert_eq!(stats.releases.load(SeqCst), 1, "release exactly once");
        }
    });
}

/// Two resources on one file: an EC and a per-board calibration, either may go.
struct Two;
impl FileOperations for Two {
    type Private = ();
    type Resources = (Arc<Resource<u32>>, Arc<Resource<String>>);
    type View<'a> = (u32, &'a str);
    fn access<'a>(&'a self, (a, b): (&'a u32, &'a String)) -> Result<(u32, &'a str), Errno> {
        Ok((*a, b.as_str()))
    }
    fn open(&self, _: (u32, &str), _: OpenFlags) -> Result<(), Errno> {
        Ok(())
    }
    fn ioctl(
        &self,
        v: Option<(u32, &str)>,
        _: &File<()>,
        _: u32,
        _: IoctlArg<'_>,
    ) -> Result<i64, Errno> {
        let (a, b) = v.ok_or(Errno::ENODEV)?;
        Ok(a as i64 + b.len() as i64)
    }
}

#[test]
fn two_resources_either_revoked() {
    for which in 0..2 {
        let a = Resource::new(40u32);
        let b = Resource::new("xy".to_string());
        let f = OpenFile::open(Arc::new(Two), (a.clone(), b.clone()), OpenFlags::O_RDONLY).unwrap();
        assert_eq!(f.ioctl(0, IoctlArg::value(0)), Ok(42));
        let w = Waiter::new();
        f.watch_revoke(&w);
        if which == 0 {
            a.revoke();
        } else {
            b.revoke();
        }
        assert!(w.is_woken(), "watchers of either resource are woken");
        assert_eq!(f.ioctl(0, IoctlArg::value(0)), Err(Errno::ENODEV));
        assert_eq!(f.poll(None), PollEvents::REVOKED);
        // The other one is not held by the failed accesses: it revokes at once.
        let t0 = Instant::now();
        if which == 0 {
            b.revoke();
        } else {
            a.revoke();
        }
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}

/// A driver whose wait queue lives inside the resource: dropping it at revoke wakes sleepers.
struct Inner;
struct InnerDev {
    wq: WaitQueue,
}
impl FileOperations for Inner {
    type Private = ();
    type Resources = Arc<Resource<InnerDev>>;
    type View<'a> = &'a InnerDev;
    const RESOURCE_FREE: OpSet = OpSet::READ;
    fn access<'a>(&'a self, d: &'a InnerDev) -> Result<&'a InnerDev, Errno> {
        Ok(d)
    }
    fn open(&self, _: &InnerDev, _: OpenFlags) -> Result<(), Errno> {
        Ok(())
    }
    fn read(
        &self,
        _: Option<&InnerDev>,
        _: &File<()>,
        _: &mut [u8],
        _: &mut u64,
    ) -> Result<usize, Errno> {
        Err(Errno::EAGAIN) // resource-free, never has data
    }
    fn poll(&self, v: Option<&InnerDev>, _: &File<()>, pt: PollTable<'_>) -> PollEvents {
        if let Some(d) = v {
            pt.wait(&d.wq);
        }
        PollEvents::EMPTY
    }
}

#[test]
fn resource_free_blocking_read_ends_with_enodev() {
    let res = Resource::new(InnerDev {
        wq: WaitQueue::new(),
    });
    let f = OpenFile::open(Arc::new(Inner), res.clone(), OpenFlags::O_RDONLY).unwrap();
    let r = f.clone();
    let t = thread::spawn(move || r.read(&mut [0u8; 1], Wait::Block(&Waiter::new())));
    thread::sleep(Duration::from_millis(30));
    res.revoke();
    assert_eq!(t.join().unwrap(), Err(Errno::ENODEV));
    // A non-blocking attempt still reaches the (resource-free) driver op.
    assert_eq!(f.read(&mut [0u8; 1], Wait::NonBlocking), Err(Errno::EAGAIN));
}

/// The bare path: `Permanent` resources, never revoked.
#[test]
fn permanent_resources_are_the_bare_path() {
    struct Bare;
    impl FileOperations for Bare {
        type Private = ();
        type Resources = Permanent<u64>;
        type View<'a> = u64;
        fn access(&self, v: &u64) -> Result<u64, Errno> {
            Ok(*v)
        }
        fn open(&self, _: u64, _: OpenFlags) -> Result<(), Errno> {
            Ok(())
        }
        fn ioctl(
            &self,
            v: Option<u64>,
            _: &File<()>,
            _: u32,
            _: IoctlArg<'_>,
        ) -> Result<i64, Errno> {
            Ok(v.ok_or(Errno::ENODEV)? as i64)
        }
    }
    let f = OpenFile::open(Arc::new(Bare), Permanent::new(9), OpenFlags::O_RDONLY).unwrap();
    assert_eq!(f.ioctl(0, IoctlArg::value(0)), Ok(9));
    assert!(!f.is_revoked());
    // Defaults for missing ops match the kernel.
    assert_eq!(f.read(&mut [0u8; 1], Wait::NonBlocking), Err(Errno::EINVAL));
    assert_eq!(f.llseek(0, Whence::Set), Err(Errno::ESPIPE));
    assert_eq!(f.poll(None), PollEvents::DEFAULT);
}

#[test]
fn armed_request_always_notified_when_revoke_races_arming() {
    within(60, || {
        for round in 0..300u64 {
            let (stats, drv, res) = setup();
            let f = OpenFile::open(drv, res.clone(), OpenFlags::O_RDWR).unwrap();
            let (tx, rx) = mpsc::channel();
            let w = Arc::new(Waiter::with_notify(move || {
                let _ = tx.send(());
            }));
            let r2 = res.clone();
            let st = stats.clone();
            let revoker = thread::spawn(move || {
                for _ in 0..(round * 53) % 3000 {
                    std::hint::spin_loop();
                }
                revoke(&st, &r2);
            });
            match f.read(&mut [0u8; 1], Wait::Arm(&w)) {
                // Armed before the revoke: the notification must come.
                Err(Errno::EAGAIN) => rx
                    .recv_timeout(Duration::from_secs(5))
                    .expect("parked request notified of the revoke"),
                // Revoked first: answered at once.
                Err(Errno::ENODEV) => {}
                r => panic!("unexpected {r:?}"),
            }
            revoker.join().unwrap();
            assert_eq!(f.read(&mut [0u8; 1], Wait::Arm(&w)), Err(Errno::ENODEV));
        }
    });
}

#[test]
fn random_ioctls_never_panic() {
    let (_stats, drv, res) = setup();
    let f = OpenFile::open(drv, res, OpenFlags::O_RDWR).unwrap().erase();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..20_000 {
        let r = next();
        let cmd = match r % 4 {
            0 => GET,
            1 => SET,
            2 => PING,
            _ => (r >> 8) as u32,
        };
        let len = (next() % 9) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let arg = if next() % 3 == 0 {
            IoctlArg::value(next())
        } else {
            IoctlArg::with_data(next(), &mut buf)
        };
        match f.ioctl(cmd, arg) {
            Ok(_) => {}
            Err(e) => assert!(
                [Errno::ENOTTY, Errno::EFAULT, Errno::EINVAL].contains(&e),
                "cmd {cmd:#x}: {e}"
            ),
        }
        let whence = (next() % 8) as i32 - 1;
        match Whence::from_raw(whence) {
            Ok(w) => match f.llseek(next() as i64, w) {
                Ok(p) => assert!(p <= 100),
                Err(e) => assert_eq!(e, Errno::EINVAL),
            },
            Err(e) => assert_eq!(e, Errno::EINVAL),
        }
    }
}

/// A driver whose ioctl parks inside the driver until told to go on (a bounded hardware wait),
/// and whose read is resource-free and does the same.
struct Parking {
    entered: Mutex<mpsc::Sender<()>>,
    go: Mutex<mpsc::Receiver<()>>,
}
impl FileOperations for Parking {
    type Private = ();
    type Resources = Arc<Resource<u32>>;
    type View<'a> = u32;
    const RESOURCE_FREE: OpSet = OpSet::READ;
    fn access(&self, v: &u32) -> Result<u32, Errno> {
        Ok(*v)
    }
    fn open(&self, _: u32, _: OpenFlags) -> Result<(), Errno> {
        Ok(())
    }
    fn ioctl(&self, v: Option<u32>, _: &File<()>, _: u32, _: IoctlArg<'_>) -> Result<i64, Errno> {
        let v = v.ok_or(Errno::ENODEV)?;
        self.entered.lock().unwrap().send(()).unwrap();
        self.go.lock().unwrap().recv().unwrap();
        Ok(v as i64)
    }
    fn read(
        &self,
        v: Option<u32>,
        _: &File<()>,
        _: &mut [u8],
        _: &mut u64,
    ) -> Result<usize, Errno> {
        assert!(v.is_none(), "resource-free: no access taken");
        self.entered.lock().unwrap().send(()).unwrap();
        self.go.lock().unwrap().recv().unwrap();
        Ok(0)
    }
}

fn parking() -> (Arc<Parking>, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (etx, erx) = mpsc::channel();
    let (gtx, grx) = mpsc::channel();
    let p = Arc::new(Parking {
        entered: Mutex::new(etx),
        go: Mutex::new(grx),
    });
    (p, erx, gtx)
}

/// Defect 5 of the kernel series: per-open context on a global list under a global mutex. Here,
/// revoking one device never waits for an operation in flight on another device's file.
#[test]
fn no_global_lock_between_files() {
    let (drv, entered, go) = parking();
    let a = Resource::new(1u32);
    let b = Resource::new(2u32);
    let fa = OpenFile::open(drv.clone(), a.clone(), OpenFlags::O_RDONLY).unwrap();
    let fb = OpenFile::open(drv, b.clone(), OpenFlags::O_RDONLY).unwrap();
    let t = thread::spawn(move || fb.ioctl(0, IoctlArg::value(0)));
    entered.recv().unwrap(); // file B's ioctl is inside the driver, holding B
    let t0 = Instant::now();
    assert!(a.revoke(), "revoking A does not wait for B's holder");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(fa.ioctl(0, IoctlArg::value(0)), Err(Errno::ENODEV));
    // B's revoke waits for its in-flight op, which then completes normally.
    let b2 = b.clone();
    let rb = thread::spawn(move || b2.revoke());
    thread::sleep(Duration::from_millis(30));
    assert!(
        !rb.is_finished(),
        "revoke waits for the op running in the driver"
    );
    go.send(()).unwrap();
    assert_eq!(t.join().unwrap(), Ok(2));
    assert!(rb.join().unwrap());
}

/// Defect 6: every wrapped op took access, even ops that never touch the resource. A
/// resource-free op holds nothing, so it never delays a revoke.
#[test]
fn resource_free_op_never_delays_revoke() {
    let (drv, entered, go) = parking();
    let r = Resource::new(3u32);
    let f = OpenFile::open(drv, r.clone(), OpenFlags::O_RDONLY).unwrap();
    let f2 = f.clone();
    let t = thread::spawn(move || f2.read(&mut [0u8; 1], Wait::NonBlocking));
    entered.recv().unwrap(); // the resource-free read is inside the driver
    let t0 = Instant::now();
    assert!(r.revoke());
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "not delayed by the resource-free op"
    );
    go.send(()).unwrap();
    assert_eq!(t.join().unwrap(), Ok(0));
    // And it keeps working after the revoke.
    let f3 = f.clone();
    let t = thread::spawn(move || f3.read(&mut [0u8; 1], Wait::NonBlocking));
    entered.recv().unwrap();
    go.send(()).unwrap();
    assert_eq!(t.join().unwrap(), Ok(0));
}
