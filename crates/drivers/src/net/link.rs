//! An interface's state as the kernel reports it in an rtnetlink link message.

use netlink_packet_route::link::{LinkAttribute, LinkMessage, State};

/// The state a `netdev` file reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// `IFLA_OPERSTATE`, named as in `/sys/class/net/*/operstate` (`up`, `down`, `unknown`, …).
    pub operstate: &'static str,
    /// `IFLA_CARRIER` (absent on some link types).
    pub carrier: Option<bool>,
    /// `IFLA_MTU`.
    pub mtu: u32,
    /// `IFLA_STATS64` counters.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

impl LinkState {
    /// The line a read returns, newline-terminated:
    ///
    /// ```
    /// use revocable_drivers::net::link::LinkState;
    /// let s = LinkState { operstate: "up", carrier: Some(true), mtu: 1500, ..Default::default() };
    /// assert_eq!(
    ///     s.line(),
    ///     "operstate up carrier 1 mtu 1500 rx_packets 0 rx_bytes 0 tx_packets 0 tx_bytes 0\n"
    /// );
    /// ```
    pub fn line(&self) -> String {
        let carrier = match self.carrier {
            Some(true) => "1",
            Some(false) => "0",
            None => "-",
        };
        format!(
            "operstate {} carrier {carrier} mtu {} rx_packets {} rx_bytes {} tx_packets {} tx_bytes {}\n",
            self.operstate, self.mtu, self.rx_packets, self.rx_bytes, self.tx_packets, self.tx_bytes
        )
    }
}

/// An interface: index, name and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `ifindex`.
    pub index: u32,
    /// `IFLA_IFNAME`.
    pub name: String,
    /// The state.
    pub state: LinkState,
}

fn operstate(s: &State) -> &'static str {
    match s {
        State::Up => "up",
        State::Down => "down",
        State::LowerLayerDown => "lowerlayerdown",
        State::Dormant => "dormant",
        State::Testing => "testing",
        State::NotPresent => "notpresent",
        _ => "unknown",
    }
}

/// The interface a link message describes; `None` without a name (never sent by the kernel for
/// RTM_NEWLINK, but the parser does not trust it).
pub fn from_message(msg: &LinkMessage) -> Option<LinkInfo> {
    let mut name = None;
    let mut state = LinkState {
        operstate: "unknown",
        ..Default::default()
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::OperState(s) => state.operstate = operstate(s),
            LinkAttribute::Carrier(c) => state.carrier = Some(*c != 0),
            LinkAttribute::Mtu(m) => state.mtu = *m,
            LinkAttribute::Stats64(s) => {
                state.rx_packets = s.rx_packets;
                state.rx_bytes = s.rx_bytes;
                state.tx_packets = s.tx_packets;
                state.tx_bytes = s.tx_bytes;
            }
            _ => {}
        }
    }
    Some(LinkInfo {
        index: msg.header.index,
        name: name?,
        state,
    })
}
