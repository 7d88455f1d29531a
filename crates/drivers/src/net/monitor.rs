//! [`LinkMonitor`]: the interfaces of a network namespace and their changes, from rtnetlink.
//!
//! Invariant: the handler first sees one [`LinkEvent::New`] per existing interface (the dump),
//! then every change in order; after an overrun of the socket (`ENOBUFS`) it sees a fresh dump,
//! so it never keeps a state older than the kernel's. Malformed messages are skipped, never
//! trusted.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::link::{from_message, LinkInfo};

/// A change of the interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// An interface exists (first seen, or its state changed): `RTM_NEWLINK`.
    New(LinkInfo),
    /// An interface is gone: `RTM_DELLINK`.
    Del {
        /// Its `ifindex`.
        index: u32,
        /// Its name.
        name: String,
    },
}

/// How often the monitor thread checks for a stop while no message arrives.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A thread reading rtnetlink link notifications. Stops (and joins) on drop.
#[derive(Debug)]
pub struct LinkMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LinkMonitor {
    /// Opens an rtnetlink socket in the network namespace `netns` (a file such as
    /// `/run/netns/NAME`; `None`: the caller's), subscribes to link notifications, dumps the
    /// existing interfaces, and calls `on_event` from its own thread for each, then for every
    /// change, until the monitor is dropped. Only the monitor's thread enters `netns`.
    ///
    /// Blocking: returns once the socket is subscribed (events from then on are not missed).
    ///
    /// # Errors
    /// The namespace cannot be opened or entered (`EPERM` without `CAP_SYS_ADMIN`), or the
    /// socket cannot be made.
    pub fn start(
        netns: Option<&Path>,
        mut on_event: impl FnMut(LinkEvent) + Send + 'static,
    ) -> io::Result<LinkMonitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(1);
        let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("netlink-links".into())
            .spawn(move || {
                let sock = match open(netns.as_deref()) {
                    Ok(sock) => {
                        let _ = tx.send(Ok(()));
                        sock
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                run(&sock, &s, &mut on_event);
            })?;
        match rx.recv() {
            Ok(Ok(())) => Ok(LinkMonitor {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("netlink monitor thread died"))
            }
        }
    }
}

impl Drop for LinkMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(netns: Option<&Path>) -> io::Result<Socket> {
    if let Some(p) = netns {
        let f = std::fs::File::open(p)?;
        // SAFETY: setns on an fd we own; CLONE_NEWNET moves only this thread (the monitor's).
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.add_membership(libc::RTNLGRP_LINK)?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL_INTERVAL.as_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt with a valid timeval of the size passed.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    request_dump(&sock)?;
    Ok(sock)
}

fn request_dump(sock: &Socket) -> io::Result<()> {
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    msg.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    sock.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
    Ok(())
}

fn run(sock: &Socket, stop: &AtomicBool, on_event: &mut impl FnMut(LinkEvent)) {
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Acquire) {
        let n = match sock.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // Overrun: notifications were lost; the kernel's state is the truth again.
                let _ = request_dump(sock);
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                eprintln!("netlink-links: receive failed ({e}); no longer following interfaces");
                return;
            }
        };
        let mut at = 0;
        while at < n {
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..n]) else {
                break;
            };
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                    if let Some(info) = from_message(&m) {
                        on_event(LinkEvent::New(info));
                    }
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                    if let Some(info) = from_message(&m) {
                        on_event(LinkEvent::Del {
                            index: info.index,
                            name: info.name,
                        });
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            at += len.next_multiple_of(4);
        }
    }
}
