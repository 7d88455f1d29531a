//! Device model: unbind with open files and operations in flight, bind/unbind loops with racing
//! openers, re-bind isolation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use revocable_device::*;
use revocable_fops::ioctl::IoctlArg;
use revocable_fops::*;

#[derive(Default)]
struct Stats {
    opens: AtomicUsize,
    releases: AtomicUsize,
    live_instances: AtomicUsize,
    in_driver: AtomicUsize,
    dropped_with_op_in_driver: AtomicUsize,
}

/// The device's state, created per binding.
struct EchoDev {
    generation: u64,
    data: Mutex<Vec<u8>>,
    readable: WaitQueue,
    stats: Arc<Stats>,
}

impl Drop for EchoDev {
    fn drop(&mut self) {
        self.stats.live_instances.fetch_sub(1, SeqCst);
        if self.stats.in_driver.load(SeqCst) != 0 {
            self.stats.dropped_with_op_in_driver.fetch_add(1, SeqCst);
        }
    }
}

struct EchoFops {
    stats: Arc<Stats>,
}

struct Busy<'a>(&'a Stats);
impl<'a> Busy<'a> {
    fn new(s: &'a Stats) -> Self {
        s.in_driver.fetch_add(1, SeqCst);
        Busy(s)
    }
}
impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_driver.fetch_sub(1, SeqCst);
    }
}

impl FileOperations for EchoFops {
    type Private = u64; // the generation the file was opened on
    type Resources = Arc<Resource<EchoDev>>;
    type View<'a> = &'a EchoDev;
    fn access<'a>(&'a self, d: &'a EchoDev) -> Result<&'a EchoDev, Errno> {
        Ok(d)
    }
    fn open(&self, d: &EchoDev, _: OpenFlags) -> Result<u64, Errno> {
        self.stats.opens.fetch_add(1, SeqCst);
        Ok(d.generation)
    }
    fn read(
        &self,
        v: Option<&EchoDev>,
        f: &File<u64>,
        buf: &mut [u8],
        _: &mut u64,
    ) -> Result<usize, Errno> {
        let d = v.ok_or(Errno::ENODEV)?;
        let _b = Busy::new(&self.stats);
        assert_eq!(
            d.generation,
            *f.private(),
            "a file never sees another instance"
        );
        let mut data = d.data.lock().unwrap();
        if data.is_empty() {
            return Err(Errno::EAGAIN);
        }
        let n = buf.len().min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        data.drain(..n);
        Ok(n)
    }
    fn write(
        &self,
        v: Option<&EchoDev>,
        f: &File<u64>,
        buf: &[u8],
        _: &mut u64,
    ) -> Result<usize, Errno> {
        let d = v.ok_or(Errno::ENODEV)?;
        let _b = Busy::new(&self.stats);
        assert_eq!(d.generation, *f.private());
        d.data.lock().unwrap().extend_from_slice(buf);
        d.readable.wake_all();
        Ok(buf.len())
    }
    fn poll(&self, v: Option<&EchoDev>, _: &File<u64>, pt: PollTable<'_>) -> PollEvents {
        let Some(d) = v else {
            return PollEvents::POLLERR;
        };
        pt.wait(&d.readable);
        if d.data.lock().unwrap().is_empty() {
            PollEvents::POLLOUT
        } else {
            PollEvents::POLLIN | PollEvents::POLLOUT
        }
    }
    fn ioctl(
        &self,
        v: Option<&EchoDev>,
        f: &File<u64>,
        cmd: u32,
        _: IoctlArg<'_>,
    ) -> Result<i64, Errno> {
        let d = v.ok_or(Errno::ENODEV)?;
        let _b = Busy::new(&self.stats);
        assert_eq!(d.generation, *f.private());
        match cmd {
            0 => Ok(d.generation as i64),
            1 => {
                // A bounded wait inside the driver (a command to hardware): unbind waits for it.
                thread::sleep(Duration::from_millis(2));
                Ok(d.generation as i64)
            }
            _ => Err(Errno::ENOTTY),
        }
    }
    fn release(&self, _: Option<&EchoDev>, _: &File<u64>) {
        self.stats.releases.fetch_add(1, SeqCst);
    }
}

struct EchoDriver {
    misc: MiscRegistry,
    stats: Arc<Stats>,
    fail_probe: AtomicBool,
}

impl Driver for EchoDriver {
    fn name(&self) -> &str {
        "echo"
    }
    fn probe(&self, dev: &mut BoundDevice<'_>) -> Result<(), Errno> {
        self.stats.live_instances.fetch_add(1, SeqCst);
        let state = dev.devres(EchoDev {
            generation: dev.generation(),
            data: Mutex::new(Vec::new()),
            readable: WaitQueue::new(),
            stats: self.stats.clone(),
        });
        if self.fail_probe.load(SeqCst) {
            return Err(Errno::EIO);
        }
        let reg = self.misc.register(MiscDevice {
            name: dev.device().name().to_owned(),
            minor: MISC_DYNAMIC_MINOR,
            fops: Arc::new(EchoFops {
                stats: self.stats.clone(),
            }),
            resources: state.resource().clone(),
            parent: Some(dev.device().clone()),
        })?;
        dev.add_action(move || reg.deregister());
        dev.set_drvdata(state);
        Ok(())
    }
}

fn setup() -> (Bus, MiscRegistry, Arc<Stats>, Arc<EchoDriver>) {
    let bus = Bus::new();
    let misc = MiscRegistry::new();
    let stats = Arc::new(Stats::default());
    let drv = Arc::new(EchoDriver {
        misc: misc.clone(),
        stats: stats.clone(),
        fail_probe: AtomicBool::new(false),
    });
    bus.register_driver(drv.clone()).unwrap();
    bus.add_device(Device::new("echo0", "echo")).unwrap();
    (bus, misc, stats, drv)
}

#[test]
fn unbind_with_open_files_and_ops_in_flight() {
    let (bus, misc, stats, _drv) = setup();
    let misc_events = misc.subscribe();
    let files: Vec<OpenFile> = (0..4)
        .map(|_| misc.open("echo0", OpenFlags::O_RDWR).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut busy = Vec::new();
    // Two blocked readers, one blocked poller, two threads hammering ioctls.
    for (i, f) in files.iter().enumerate() {
        let f = f.clone();
        let tx = tx.clone();
        let stop = stop.clone();
        let h = thread::spawn(move || {
            let w = Waiter::new();
            let r = match i {
                0 | 1 => f.read(&mut [0u8; 8], Wait::Block(&w)).map(|_| ()),
                2 => f.poll_wait(PollEvents::POLLIN, &w, None).map(|m| {
                    assert!(m.contains(PollEvents::POLLERR | PollEvents::POLLHUP));
                }),
                _ => {
                    // Until the unbind fails an ioctl; `stop` only bounds a broken unbind (set
                    // once the results are in, never before: a hammer not scheduled between the
                    // unbind and a stop set right after it would report Ok).
                    let mut r = Ok(());
                    while !stop.load(SeqCst) {
                        match f.ioctl(1, IoctlArg::value(0)) {
                            Ok(_) => {}
                            Err(e) => {
                                r = Err(e);
                                break;
                            }
                        }
                    }
                    r
                }
            };
            tx.send((i, r)).unwrap();
        });
        busy.push(h);
    }
    thread::sleep(Duration::from_millis(50));
    assert!(rx.try_recv().is_err());
    let t0 = Instant::now();
    bus.unbind("echo0").unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "unbind took {took:?}");
    let results: Vec<_> = (0..4)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)))
        .collect();
    stop.store(true, SeqCst);
    for res in results {
        let (i, r) = res.expect("woken by unbind");
        match i {
            2 => assert_eq!(r, Ok(())),
            _ => assert_eq!(r, Err(Errno::ENODEV), "thread {i}"),
        }
    }
    for h in busy {
        h.join().unwrap();
    }
    assert_eq!(stats.dropped_with_op_in_driver.load(SeqCst), 0);
    assert_eq!(
        stats.live_instances.load(SeqCst),
        0,
        "instance dropped at unbind"
    );
    assert_eq!(
        misc.open("echo0", OpenFlags::O_RDWR).unwrap_err(),
        Errno::ENODEV
    );
    assert!(misc_events
        .try_iter()
        .any(|e| matches!(e, MiscEvent::Deregistered(i) if i.name == "echo0")));
    assert_eq!(bus.devices()[0].state(), "unbound");
    assert_eq!(stats.releases.load(SeqCst), 0);
    drop(files);
    assert_eq!(
        stats.releases.load(SeqCst),
        4,
        "release once per open, after unbind"
    );
}

#[test]
fn rebind_isolation() {
    let (bus, misc, stats, drv) = setup();
    let old = misc.open("echo0", OpenFlags::O_RDWR).unwrap();
    assert_eq!(old.ioctl(0, IoctlArg::value(0)), Ok(1));
    old.write(b"old", Wait::NonBlocking).unwrap();
    bus.unbind("echo0").unwrap();
    // A failing probe leaves the device unbound and cleans up after itself.
    drv.fail_probe.store(true, SeqCst);
    assert_eq!(bus.bind("echo0"), Err(Errno::EIO));
    assert_eq!(stats.live_instances.load(SeqCst), 0);
    assert_eq!(
        misc.open("echo0", OpenFlags::O_RDWR).unwrap_err(),
        Errno::ENODEV
    );
    drv.fail_probe.store(false, SeqCst);
    bus.bind("echo0").unwrap();
    assert_eq!(bus.bind("echo0"), Err(Errno::EBUSY));
    let new = misc.open("echo0", OpenFlags::O_RDWR).unwrap();
    assert_eq!(new.ioctl(0, IoctlArg::value(0)), Ok(3));
    assert_eq!(
        new.read(&mut [0u8; 8], Wait::NonBlocking),
        Err(Errno::EAGAIN),
        "fresh state"
    );
    // The old file keeps failing: it never reaches the new instance.
    assert_eq!(old.ioctl(0, IoctlArg::value(0)), Err(Errno::ENODEV));
    assert_eq!(
        old.read(&mut [0u8; 8], Wait::NonBlocking),
        Err(Errno::ENODEV)
    );
    assert_eq!(old.write(b"x", Wait::NonBlocking), Err(Errno::ENODEV));
    assert_eq!(old.poll(None), PollEvents::REVOKED);
    let devres: Devres<EchoDev> = bus.device("echo0").unwrap().drvdata().unwrap();
    assert_eq!(devres.generation(), 3);
    assert_eq!(stats.live_instances.load(SeqCst), 1);
}

#[test]
fn bind_unbind_loop_with_racing_openers() {
    let (bus, misc, stats, _drv) = setup();
    bus.unbind("echo0").unwrap(); // setup bound it
    let bus = Arc::new(bus);
    let stop = Arc::new(AtomicBool::new(false));
    let ok_ops = Arc::new(AtomicUsize::new(0));
    let mut openers = Vec::new();
    for t in 0..3 {
        let misc = misc.clone();
        let stop = stop.clone();
        let ok_ops = ok_ops.clone();
        openers.push(thread::spawn(move || {
            let mut kept: Vec<OpenFile> = Vec::new();
            let w = Waiter::new();
            while !stop.load(SeqCst) {
                match misc.open("echo0", OpenFlags::O_RDWR) {
                    Ok(f) => {
                        match f.ioctl(0, IoctlArg::value(0)) {
                            Ok(_) => {
                                ok_ops.fetch_add(1, SeqCst);
                            }
                            Err(e) => assert_eq!(e, Errno::ENODEV),
                        }
                        if t == 2 {
                            // A reader that may block; unbind must wake it.
                            let _ = f.write(b"x", Wait::NonBlocking);
                            match f.read(&mut [0u8; 1], Wait::Block(&w)) {
                                Ok(_) | Err(Errno::ENODEV) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                        // Keep some files open across unbinds.
                        if kept.len() < 8 {
                            kept.push(f);
                        }
                    }
                    Err(e) => assert_eq!(e, Errno::ENODEV),
                }
                for f in &kept {
                    let _ = f.poll(None);
                }
                if kept.len() == 8 {
                    kept.clear();
                }
            }
        }));
    }
    let t0 = Instant::now();
    for i in 0..1000 {
        bus.bind("echo0").unwrap();
        if i % 4 == 0 {
            thread::yield_now(); // let openers in while bound
        }
        bus.unbind("echo0").unwrap();
        if i % 250 == 249 {
            eprintln!("bind/unbind {} cycles, {:?}", i + 1, t0.elapsed());
        }
    }
    stop.store(true, SeqCst);
    for o in openers {
        o.join().unwrap();
    }
    assert_eq!(stats.dropped_with_op_in_driver.load(SeqCst), 0);
    assert_eq!(stats.live_instances.load(SeqCst), 0);
    assert_eq!(
        stats.opens.load(SeqCst),
        stats.releases.load(SeqCst),
        "every open released exactly once"
    );
    assert!(misc.list().is_empty());
    assert!(stats.opens.load(SeqCst) > 0, "openers raced the loop");
    eprintln!(
        "opens {}, ops that reached a live device {}",
        stats.opens.load(SeqCst),
        ok_ops.load(SeqCst)
    );
}

/// A driver whose open is slow (it talks to hardware).
struct SlowOpen {
    entered: Arc<AtomicBool>,
    opened: Arc<AtomicBool>,
}
impl FileOperations for SlowOpen {
    type Private = ();
    type Resources = ();
    type View<'a> = ();
    fn access(&self, _: ()) -> Result<(), Errno> {
        Ok(())
    }
    fn open(&self, _: (), _: OpenFlags) -> Result<(), Errno> {
        self.entered.store(true, SeqCst);
        thread::sleep(Duration::from_millis(150));
        self.opened.store(true, SeqCst);
        Ok(())
    }
    fn read(&self, _: Option<()>, _: &File<()>, _: &mut [u8], _: &mut u64) -> Result<usize, Errno> {
        Ok(0)
    }
}

#[test]
fn deregister_waits_for_opens_in_progress() {
    let misc = MiscRegistry::new();
    let opened = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let reg = misc
        .register(MiscDevice {
            name: "slow".into(),
            minor: MISC_DYNAMIC_MINOR,
            fops: Arc::new(SlowOpen {
                entered: entered.clone(),
                opened: opened.clone(),
            }),
            resources: (),
            parent: None,
        })
        .unwrap();
    let m = misc.clone();
    let opener = thread::spawn(move || m.open("slow", OpenFlags::O_RDONLY));
    while !entered.load(SeqCst) {
        thread::sleep(Duration::from_millis(1)); // the open is in the driver
    }
    reg.deregister();
    // The open that was in progress finished before deregister returned.
    assert!(
        opened.load(SeqCst),
        "deregister returned while an open was running"
    );
    let f = opener
        .join()
        .unwrap()
        .expect("the open in progress completes");
    assert_eq!(
        f.read(&mut [0u8; 1], Wait::NonBlocking),
        Ok(0),
        "its file stays usable"
    );
    assert_eq!(
        misc.open("slow", OpenFlags::O_RDONLY).unwrap_err(),
        Errno::ENODEV
    );
    // The name is free again.
    let again = misc.register(MiscDevice {
        name: "slow".into(),
        minor: MISC_DYNAMIC_MINOR,
        fops: Arc::new(SlowOpen { entered, opened }),
        resources: (),
        parent: None,
    });
    assert!(again.is_ok());
}
