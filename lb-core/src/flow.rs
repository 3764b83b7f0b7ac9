//! The 5-tuple that identifies a flow in one direction.

use std::net::{IpAddr, Ipv4Addr};

/// Source and destination of a TCP or UDP flow, in the direction it was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

impl FlowKey {
    /// An IPv4 flow key.
    pub fn v4(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        FlowKey {
            proto,
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            sport,
            dport,
        }
    }

    /// The same flow seen from the other end.
    pub fn reversed(&self) -> Self {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}
