//! Real hot-plug: network interfaces created and deleted with `ip` inside a network namespace
//! this test creates (and deletes; the host's interfaces are never touched), followed by
//! [`LinkMonitor`] and served by [`NetBus`]. Needs root and `ip`: otherwise skips with a message,
//! or fails under `CI` (CI runs as root and must run these).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use revocable_drivers::net::monitor::LinkMonitor;
use revocable_drivers::net::netdev::NetBus;
use revocable_drivers::testing::Netns;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn monitor(ns: &Netns) -> (Arc<NetBus>, LinkMonitor) {
    let net = NetBus::new();
    let n = net.clone();
    let mon = LinkMonitor::start(Some(&ns.path()), move |ev| n.handle(ev)).expect("monitor");
    wait_for("lo from the dump", || net.names() == ["lo"]);
    (net, mon)
}

/// A veth pair plugged, a link brought up under a waiting reader (woken with the new state), and
/// the pair deleted under the open file (woken, then ENODEV); a pair re-created under the same
/// names is new to old files.
#[test]
fn veth_plug_state_change_and_unplug() {
    let Some(ns) = Netns::new() else { return };
    let (net, _mon) = monitor(&ns);
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    wait_for("va and vb", || net.names() == ["lo", "va", "vb"]);

    let f = net.open("va", 0).expect("open va");
    let (tx, rx) = mpsc::channel();
    f.set_waker(Arc::new(move || {
        let _ = tx.send(());
    }));
    let first = String::from_utf8(f.read(0, 256, 0).unwrap()).unwrap();
    assert!(first.starts_with("operstate down "), "{first}");
    assert_eq!(
        f.read(0, 256, 0),
        Err(libc::EAGAIN),
        "a blocking reader waits"
    );
    f.poll(true);
    ns.ip(&["link", "set", "vb", "up"]);
    ns.ip(&["link", "set", "va", "up"]);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("woken by the change");
    let t = Instant::now();
    let second = loop {
        match f.read(0, 256, 0) {
            Ok(l) => break String::from_utf8(l).unwrap(),
            Err(libc::EAGAIN) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("read after the change: {e}"),
        }
    };
    assert_ne!(second, first);
    // Both ends up: the kernel may report intermediate states first; the last one is up.
    let mut last = second;
    wait_for("va up", || {
        if let Ok(l) = f.read(0, 256, 0) {
            last = String::from_utf8(l).unwrap();
        }
        last.starts_with("operstate up ")
    });

    f.poll(true);
    while rx.try_recv().is_ok() {}
    ns.ip(&["link", "del", "va"]);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("woken by the unplug");
    wait_for("ENODEV after the unplug", || {
        f.read(0, 256, 0) == Err(libc::ENODEV)
    });
    wait_for("va and vb gone", || net.names() == ["lo"]);
    assert_eq!(net.open("va", 0).err(), Some(libc::ENODEV));

    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    wait_for("va again", || net.names() == ["lo", "va", "vb"]);
    assert_eq!(f.read(0, 256, 0), Err(libc::ENODEV), "old file: old device");
    let g = net.open("va", 0).expect("open the new va");
    assert!(g.read(0, 256, 0).unwrap().starts_with(b"operstate "));
    f.release();
    g.release();
}

/// 100 interfaces (50 veth pairs) created and deleted while a file of each is open: every file
/// ends revoked and released, and the bus ends with only `lo`.
#[test]
fn hundred_interfaces_come_and_go() {
    let Some(ns) = Netns::new() else { return };
    let (net, _mon) = monitor(&ns);
    for i in 0..50 {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        wait_for("the pair", || {
            let n = net.names();
            n.contains(&a) && n.contains(&b)
        });
        let f = net.open(&a, libc::O_NONBLOCK as u32).expect("open");
        assert!(f.read(0, 256, 0).is_ok());
        ns.ip(&["link", "del", &a]);
        wait_for("ENODEV", || f.read(0, 256, 0) == Err(libc::ENODEV));
        f.release();
    }
    wait_for("only lo left", || net.names() == ["lo"]);
}
