//! Network interfaces as devices, driven by the kernel's own hot-plug events.
//!
//! - [`link`]: an interface's state as rtnetlink reports it, and the line `netdev` files read.
//! - [`monitor`]: [`monitor::LinkMonitor`], an rtnetlink socket (through `netlink-sys` and
//!   `netlink-packet-route`; no hand-written message parsing) that dumps the interfaces of a
//!   network namespace and then reports each link notification.
//! - [`netdev`]: [`netdev::NetBus`], a `net` bus with one device per interface, and the `netdev`
//!   driver serving each as a misc device gated on a revocable link resource: deleting the
//!   interface unbinds it, so open files get `ENODEV` and blocked readers and pollers wake.
//! - [`netns`]: [`netns::TempNetns`], a network namespace made for one run and deleted after it.

pub mod link;
pub mod monitor;
pub mod netdev;
pub mod netns;
