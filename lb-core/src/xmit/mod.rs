//! Forwarding rewrites, one module per mode. Each works on the frame of a tracked
//! connection (IPv4 after Ethernet) and updates every checksum it affects
//! incrementally (RFC 1624); none recomputes over the payload, except a PROXY v1
//! header of odd length, once per connection.
//!
//! | mode | client → server | server → client |
//! |---|---|---|
//! | DR | nothing (the worker sets the real server's MAC) | not seen |
//! | TUN | IPIP or GUE encapsulation ([`tun`]) | not seen |
//! | NAT | destination → RIP:rport | source → VIP:vport |
//! | FullNAT | source → LIP:lport, destination → RIP:rport, TOA or PROXY ([`toa`], [`proxy`]) | source → VIP:vport, destination → CIP:cport, MSS and ack/SACK fixes |

pub mod dr;
pub mod fullnat;
pub mod icmp;
pub mod nat;
pub mod proxy;
pub mod tcpopt;
pub mod toa;
pub mod tun;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::conn::Conn;
use crate::csum::Delta;
use crate::frame::Frame;
use crate::service::{Carrier, ForwardMode, TunnelSpec, TunnelType};
use crate::stats::ModeCounters;
use crate::wire::ethernet;
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::wire::{get_u16, set_u16, WireError};

/// Offset of the IPv4 header in a frame (after Ethernet).
pub const IP_AT: usize = ethernet::HEADER_LEN;

/// Bits of [`crate::conn::XmitState::flags`].
pub mod carrier {
    /// The state was set up from the service on the client's SYN.
    pub const INIT: u8 = 1;
    /// The connection carries the client address as a TOA.
    pub const TOA: u8 = 2;
    /// The TOA has not been inserted yet.
    pub const TOA_PENDING: u8 = 4;
    /// The connection carries a PROXY v1 header.
    pub const PROXY_V1: u8 = 8;
    /// The connection carries a PROXY v2 header.
    pub const PROXY_V2: u8 = 16;
    /// The PROXY header went out: sequence numbers are shifted from now on.
    pub const PROXY_SENT: u8 = 32;
    /// Either PROXY version.
    pub const PROXY: u8 = PROXY_V1 | PROXY_V2;
}

/// Why a packet could not be rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmitError {
    /// The packet is not the TCP/UDP over IPv4 the connection says.
    Malformed,
    /// The forwarding mode or address family is not implemented yet.
    Unsupported,
    /// The buffer has no head- or tailroom for what must be inserted.
    NoRoom,
    /// The packet would exceed the egress MTU; `mtu` is what the sender may use.
    /// With `df` the worker answers ICMP fragmentation-needed, else it drops.
    TooBig {
        /// The MTU left for the original packet.
        mtu: u16,
        /// Whether the original packet had DF set.
        df: bool,
    },
}

impl fmt::Display for XmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmitError::Malformed => f.write_str("malformed packet"),
            XmitError::Unsupported => f.write_str("unsupported forwarding"),
            XmitError::NoRoom => f.write_str("no room in the buffer"),
            XmitError::TooBig { mtu, .. } => write!(f, "too big (mtu {mtu})"),
        }
    }
}

impl std::error::Error for XmitError {}

impl From<WireError> for XmitError {
    fn from(_: WireError) -> Self {
        XmitError::Malformed
    }
}

/// What a rewrite needs to know besides the connection: the service's and real
/// server's settings and the egress the packet leaves by.
#[derive(Clone, Copy, Debug)]
pub struct Path<'a> {
    /// The service's client-address carrier (FullNAT TCP).
    pub carrier: Carrier,
    /// Clamp the MSS of SYNs to tunnelled servers.
    pub tun_mss_clamp: bool,
    /// The real server's tunnel encapsulation.
    pub tunnel: TunnelSpec,
    /// The director's address on the egress port (outer source of tunnels).
    pub src: Ipv4Addr,
    /// The egress port's MTU.
    pub mtu: usize,
    /// Where to count what was done.
    pub counters: &'a ModeCounters,
}

/// Rewrites a client → server packet of `conn` for its forwarding mode.
pub fn to_server(conn: &mut Conn, frame: &mut Frame<'_>, path: &Path<'_>) -> Result<(), XmitError> {
    let c = path.counters;
    match conn.forward {
        ForwardMode::FullNat => {
            fullnat::to_server(conn, frame, path)?;
            c.fullnat_to_server.inc();
        }
        ForwardMode::Nat => {
            nat::to_server(conn, ip_mut(frame)?)?;
            c.nat_to_server.inc();
        }
        ForwardMode::Dr => {
            dr::to_server(conn, ip_mut(frame)?)?;
            c.dr_to_server.inc();
        }
        ForwardMode::Tunnel => {
            if path.tun_mss_clamp && conn.proto == PROTO_TCP {
                let mss = tun::mss_for(path.tunnel, path.mtu);
                if clamp_syn_mss(ip_mut(frame)?, mss) {
                    c.tun_mss_clamped.inc();
                }
            }
            let dst = v4(conn.dest)?.0;
            let entropy = conn.client.1 ^ (v4(conn.client)?.0.to_bits() as u16);
            tun::encapsulate(frame, path.tunnel, path.src, dst, path.mtu, entropy)?;
            match path.tunnel.kind {
                TunnelType::Ipip => c.tun_ipip_to_server.inc(),
                TunnelType::Gue => c.tun_gue_to_server.inc(),
            }
        }
    }
    Ok(())
}

/// Rewrites a server → client packet of `conn` for its forwarding mode.
pub fn to_client(conn: &mut Conn, frame: &mut Frame<'_>, path: &Path<'_>) -> Result<(), XmitError> {
    match conn.forward {
        ForwardMode::FullNat => {
            fullnat::to_client(conn, frame, path.counters)?;
            path.counters.fullnat_to_client.inc();
        }
        ForwardMode::Nat => {
            nat::to_client(conn, ip_mut(frame)?)?;
            path.counters.nat_to_client.inc();
        }
        // Replies of DR and TUN connections never pass the director.
        ForwardMode::Dr | ForwardMode::Tunnel => return Err(XmitError::Unsupported),
    }
    Ok(())
}

/// Rewrites a non-first fragment of `conn`: addresses only (its transport header
/// and checksum travel in the first fragment), or the tunnel encapsulation.
pub fn fragment(
    conn: &Conn,
    to_server: bool,
    frame: &mut Frame<'_>,
    path: &Path<'_>,
) -> Result<(), XmitError> {
    let (src, dst) = match (conn.forward, to_server) {
        (ForwardMode::FullNat, true) => (Some(v4(conn.local)?.0), Some(v4(conn.dest)?.0)),
        (ForwardMode::FullNat, false) => (Some(v4(conn.virt)?.0), Some(v4(conn.client)?.0)),
        (ForwardMode::Nat, true) => (None, Some(v4(conn.dest)?.0)),
        (ForwardMode::Nat, false) => (Some(v4(conn.virt)?.0), None),
        (ForwardMode::Dr, true) => (None, None),
        (ForwardMode::Tunnel, true) => {
            let dst = v4(conn.dest)?.0;
            let entropy = conn.client.1 ^ (v4(conn.client)?.0.to_bits() as u16);
            return tun::encapsulate(frame, path.tunnel, path.src, dst, path.mtu, entropy);
        }
        (ForwardMode::Dr | ForwardMode::Tunnel, false) => return Err(XmitError::Unsupported),
    };
    let mut ip = Ipv4Packet::new_checked(ip_mut(frame)?)?;
    if let Some(a) = src {
        ip.set_src(a);
    }
    if let Some(a) = dst {
        ip.set_dst(a);
    }
    Ok(())
}

/// The IPv4 bytes of a frame.
pub(crate) fn ip_mut<'f>(frame: &'f mut Frame<'_>) -> Result<&'f mut [u8], XmitError> {
    frame
        .data_mut()
        .get_mut(IP_AT..)
        .ok_or(XmitError::Malformed)
}

/// Lowers the MSS option of a TCP SYN to `mss`; whether it changed.
pub fn clamp_syn_mss(ip: &mut [u8], mss: u16) -> bool {
    let Ok(mut packet) = Ipv4Packet::new_checked(&mut *ip) else {
        return false;
    };
    if packet.protocol() != PROTO_TCP {
        return false;
    }
    let l4 = packet.payload_mut();
    if l4.len() < 20
        || l4[13] & crate::wire::tcp::flags::SYN == 0
        || tcpopt::header_len(l4) > l4.len()
    {
        return false;
    }
    let mut d = Delta::default();
    let changed = tcpopt::edit_mss(l4, &mut d, |m| m.min(mss)).is_some();
    if changed {
        tcpopt::apply(l4, d);
    }
    changed
}

/// An IPv4 address and port.
pub type Endpoint = (Ipv4Addr, u16);

/// The IPv4 endpoint of a connection's `(IpAddr, port)`.
pub(crate) fn v4(endpoint: (IpAddr, u16)) -> Result<Endpoint, XmitError> {
    match endpoint.0 {
        IpAddr::V4(a) => Ok((a, endpoint.1)),
        IpAddr::V6(_) => Err(XmitError::Unsupported),
    }
}

/// Rewrites the source and/or destination endpoint of an IPv4 TCP or UDP packet,
/// folding all changes into the IP and L4 checksums at once. A UDP checksum of 0
/// ("none") stays 0; a computed 0 is sent as 0xFFFF.
pub fn rewrite_endpoints(
    ip: &mut [u8],
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
) -> Result<(), XmitError> {
    let mut packet = Ipv4Packet::new_checked(&mut *ip)?;
    let proto = packet.protocol();
    let csum_at = match proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return Err(XmitError::Malformed),
    };
    let (old_src, old_dst) = (packet.src(), packet.dst());
    let (header, l4) = packet.split_mut();
    if l4.len() < csum_at + 2 {
        return Err(XmitError::Malformed);
    }
    let mut ip_delta = Delta::default();
    let mut l4_delta = Delta::default();
    if let Some((addr, port)) = src {
        ip_delta.addr(old_src, addr);
        l4_delta.addr(old_src, addr);
        l4_delta.word(get_u16(l4, 0), port);
        header[12..16].copy_from_slice(&addr.octets());
        set_u16(l4, 0, port);
    }
    if let Some((addr, port)) = dst {
        ip_delta.addr(old_dst, addr);
        l4_delta.addr(old_dst, addr);
        l4_delta.word(get_u16(l4, 2), port);
        header[16..20].copy_from_slice(&addr.octets());
        set_u16(l4, 2, port);
    }
    set_u16(header, 10, ip_delta.apply(get_u16(header, 10)));
    let old_l4 = get_u16(l4, csum_at);
    let new_l4 = if proto == PROTO_UDP && old_l4 == 0 {
        0
    } else {
        match l4_delta.apply(old_l4) {
            0 if proto == PROTO_UDP => 0xffff,
            sum => sum,
        }
    };
    set_u16(l4, csum_at, new_l4);
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Packet fixtures with valid checksums.

    use std::net::Ipv4Addr;

    use crate::csum;
    use crate::wire::ipv4::{emit_header, Ipv4Packet, Ipv4Repr, PROTO_TCP, PROTO_UDP};

    /// Runs `f` on a frame holding `ip` behind a zeroed Ethernet header, with
    /// 128 bytes of headroom (as an mbuf) and 256 of tailroom; returns `f`'s result
    /// and the IPv4 bytes afterwards.
    pub(crate) fn with_frame<R>(
        ip: &[u8],
        f: impl FnOnce(&mut crate::frame::Frame<'_>) -> R,
    ) -> (R, Vec<u8>) {
        let mut room = vec![0u8; 128 + 14 + ip.len() + 256];
        room[128 + 14..128 + 14 + ip.len()].copy_from_slice(ip);
        let mut frame = crate::frame::Frame::new(&mut room, 128, 14 + ip.len());
        let r = f(&mut frame);
        let out = frame.data()[14..].to_vec();
        (r, out)
    }

    /// Counters for tests.
    pub(crate) fn counters() -> &'static crate::stats::ModeCounters {
        Box::leak(Box::default())
    }

    /// An IPv4 TCP (flags SYN|ACK) or UDP packet with valid checksums.
    pub(crate) fn packet(
        proto: u8,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        payload: &[u8],
        udp_checksum: bool,
    ) -> Vec<u8> {
        let l4_header = if proto == PROTO_TCP { 20 } else { 8 };
        let l4_len = l4_header + payload.len();
        let mut p = vec![0u8; 20 + l4_len];
        let repr = Ipv4Repr {
            src: src.0,
            dst: dst.0,
            protocol: proto,
            payload_len: l4_len as u16,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            dont_fragment: true,
        };
        emit_header(&mut p, &repr).unwrap();
        let l4 = &mut p[20..];
        l4[0..2].copy_from_slice(&src.1.to_be_bytes());
        l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
        if proto == PROTO_TCP {
            l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
            l4[8..12].copy_from_slice(&2000u32.to_be_bytes());
            l4[12] = 0x50;
            l4[13] = 0x12;
            l4[14..16].copy_from_slice(&8192u16.to_be_bytes());
        } else {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        l4[l4_header..].copy_from_slice(payload);
        if proto == PROTO_TCP || udp_checksum {
            fill_l4_checksum(&mut p);
        }
        p
    }

    /// Recomputes the TCP/UDP checksum of `p` from scratch.
    pub(crate) fn fill_l4_checksum(p: &mut [u8]) {
        let proto = p[9];
        let at = 20 + if proto == PROTO_TCP { 16 } else { 6 };
        p[at..at + 2].fill(0);
        let sum = full_l4_checksum(p);
        let sum = if proto == PROTO_UDP && sum == 0 {
            0xffff
        } else {
            sum
        };
        p[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }

    /// The L4 checksum of `p` computed over everything, with the checksum field as is
    /// (0 when the packet's checksum is valid).
    pub(crate) fn full_l4_checksum(p: &[u8]) -> u16 {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        !csum::fold(csum::sum(ip.payload(), ip.pseudo_header_sum()))
    }

    /// Whether the IP and L4 checksums of `p` are valid.
    pub(crate) fn checksums_valid(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let udp_without = ip.protocol() == PROTO_UDP && p[26..28] == [0, 0];
        ip.verify_checksum() && (udp_without || full_l4_checksum(p) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use proptest::prelude::*;

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        (any::<u32>(), any::<u16>()).prop_map(|(a, p)| (Ipv4Addr::from(a), p))
    }

    proptest! {
        /// Incremental updates after any rewrite equal a full recompute.
        #[test]
        fn rewrite_keeps_checksums_equal_to_a_recompute(
            tcp in any::<bool>(),
            udp_checksum in any::<bool>(),
            src in endpoint(), dst in endpoint(),
            new_src in proptest::option::of(endpoint()),
            new_dst in proptest::option::of(endpoint()),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
            let mut p = packet(proto, src, dst, &payload, udp_checksum);
            rewrite_endpoints(&mut p, new_src, new_dst).unwrap();
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            prop_assert!(ip.verify_checksum());
            let mut recomputed = p.clone();
            if tcp || udp_checksum {
                fill_l4_checksum(&mut recomputed);
            }
            let mut header = p.clone();
            Ipv4Packet::new_checked(&mut header[..]).unwrap().fill_checksum();
            prop_assert_eq!(&p[10..12], &header[10..12]);
            prop_assert_eq!(&p, &recomputed);
            if !tcp && !udp_checksum {
                prop_assert_eq!(&p[26..28], &[0u8, 0][..]);
            }
        }
    }
}

#[cfg(test)]
mod fixtures;
