//! `net/IFNAME` through a real mount, following real interfaces: veth pairs created and deleted
//! with `ip` inside a network namespace the test creates and deletes (the host's interfaces are
//! never touched), under open readers and pollers. Needs root, `ip` and `/dev/fuse`: skips with a
//! message otherwise, fails under `CI`.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering::SeqCst;

use common::*;
use revocable_devfs::server::{NetOptions, Options};
use revocable_drivers::testing::Netns;

fn mount(tag: &str, ns: &Netns) -> Option<Mounted> {
    let m = Mounted::with_options(
        tag,
        &Options {
            net: Some(NetOptions {
                netns: Some(ns.path()),
            }),
            ..Options::default()
        },
    )?;
    m.wait_until("net/lo", || m.path("net/lo").exists());
    Some(m)
}

fn listing(m: &Mounted) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(m.path("net"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn text(r: Result<Vec<u8>, i32>) -> String {
    String::from_utf8(r.expect("read")).unwrap()
}

/// A blocked read in a thread; returns the join handle (the fd comes back with the result).
fn blocked_read(fd: OwnedFd) -> std::thread::JoinHandle<(Result<Vec<u8>, i32>, OwnedFd)> {
    std::thread::spawn(move || (read(&fd, 256), fd))
}

#[test]
fn net_files_follow_real_interfaces() {
    let Some(ns) = Netns::new() else { return };
    let Some(m) = mount("net-follow", &ns) else {
        return;
    };
    assert_eq!(listing(&m), ["lo"]);
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    m.wait_until("net/va", || m.path("net/va").exists());
    assert_eq!(listing(&m), ["lo", "va", "vb"], "each live entry once");

    // First read at once; a blocked reader wakes with the new state when the link comes up.
    let fd = open(&m.path("net/va"), libc::O_RDONLY).expect("open net/va");
    let first = text(read(&fd, 256));
    assert!(first.starts_with("operstate down "), "{first}");
    let poller = open(&m.path("net/va"), libc::O_RDONLY | libc::O_NONBLOCK).unwrap();
    text(read(&poller, 256));
    assert_eq!(read(&poller, 256), Err(libc::EAGAIN));
    assert_eq!(poll1(&poller, libc::POLLIN, 0), 0);
    let reader = blocked_read(fd);
    wait_parked(&m, 1);
    ns.ip(&["link", "set", "vb", "up"]);
    ns.ip(&["link", "set", "va", "up"]);
    let (r, fd) = reader.join().unwrap();
    assert_ne!(text(r), first, "woken with the new state");
    assert_ne!(poll1(&poller, libc::POLLIN, 5000) & libc::POLLIN, 0);

    // Delete under a blocked reader and a poller: both wake, the file reads ENODEV, the node
    // leaves the directory and lookups fail.
    // Let the link settle (coming up is several changes): read until 100 ms pass without one.
    while poll1(&fd, libc::POLLIN, 100) != 0 {
        read(&fd, 256).unwrap();
    }
    while read(&poller, 256).is_ok() {}
    let parked_before = m.fs.stats().parked_reads.load(SeqCst);
    let old_ino = std::fs::metadata(m.path("net/va")).unwrap().ino();
    let reader = blocked_read(fd);
    wait_parked(&m, parked_before + 1);
    ns.ip(&["link", "del", "va"]);
    // The kernel reports the link going down before it reports it gone: the reader may wake
    // with that last state; the next read gives ENODEV (at once: the deletion follows).
    let (r, fd) = reader.join().unwrap();
    if let Ok(l) = r {
        assert!(l.starts_with(b"operstate down "), "{l:?}");
        assert_eq!(read(&fd, 256), Err(libc::ENODEV));
    } else {
        assert_eq!(r, Err(libc::ENODEV));
    }
    assert_ne!(poll1(&poller, libc::POLLIN, 5000), 0);
    m.wait_until("ENODEV for the poller", || {
        read(&poller, 256) == Err(libc::ENODEV)
    });
    m.wait_until("net/va gone", || listing(&m) == ["lo"]);
    assert_eq!(
        open(&m.path("net/va"), libc::O_RDONLY).err(),
        Some(libc::ENOENT)
    );
    let stats = m.fs.stats().clone();
    m.wait_until("dentries invalidated", || {
        stats.entry_invalidations.load(SeqCst) >= 2
    });

    // Re-created under the same name: a new file (new inode); the old file stays revoked.
    ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    m.wait_until("net/va again", || m.path("net/va").exists());
    assert_ne!(std::fs::metadata(m.path("net/va")).unwrap().ino(), old_ino);
    assert_eq!(read(&fd, 256), Err(libc::ENODEV));
    let fresh = open(&m.path("net/va"), libc::O_RDONLY).unwrap();
    assert!(text(read(&fresh, 256)).starts_with("operstate "));
    drop((fd, poller, fresh));
    m.wait_until("all released", || {
        stats.opens.load(SeqCst) == stats.releases.load(SeqCst)
    });
}

/// 100 interfaces (50 veth pairs) created and deleted in a loop while a client reads each and
/// another is blocked in it: every blocked reader wakes with ENODEV, opens = releases, nothing
/// stays parked, and the server keeps inodes only for what is live.
#[test]
fn hundred_interfaces_under_clients() {
    let Some(ns) = Netns::new() else { return };
    let Some(m) = mount("net-hundred", &ns) else {
        return;
    };
    let stats = m.fs.stats().clone();
    let mut rss_after_warmup = 0;
    for i in 0..50 {
        if i == 10 {
            rss_after_warmup = rss_kib();
        }
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        let (pa, pb) = (m.path(&format!("net/{a}")), m.path(&format!("net/{b}")));
        m.wait_until("the pair", || pa.exists() && pb.exists());
        let fa = open(&pa, libc::O_RDONLY).unwrap();
        let fb = open(&pb, libc::O_RDONLY | libc::O_NONBLOCK).unwrap();
        assert!(read(&fa, 256).is_ok() && read(&fb, 256).is_ok());
        let before = stats.parked_reads.load(SeqCst);
        let reader = blocked_read(fa);
        wait_parked(&m, before + 1);
        ns.ip(&["link", "del", &a]);
        let (r, fa) = reader.join().unwrap();
        if r.is_ok() {
            // Woken by the last state change before the deletion.
            assert_eq!(read(&fa, 256), Err(libc::ENODEV), "{a}");
        } else {
            assert_eq!(r, Err(libc::ENODEV), "{a}");
        }
        m.wait_until("b revoked too", || read(&fb, 256) == Err(libc::ENODEV));
        drop((fa, fb));
    }
    m.wait_until("only lo left", || listing(&m) == ["lo"]);
    m.wait_until("opens = releases", || {
        stats.opens.load(SeqCst) == stats.releases.load(SeqCst)
    });
    assert_eq!(m.fs.open_files(), 0);
    assert_eq!(m.fs.dynamic_inodes(), 1, "only lo keeps an inode");
    assert!(stats.entry_invalidations.load(SeqCst) >= 100);
    // Server and clients share this process: a leak per interface would show here.
    let growth = rss_kib().saturating_sub(rss_after_warmup);
    assert!(
        growth < 4096,
        "RSS grew {growth} KiB over 40 interface pairs"
    );
}

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}
