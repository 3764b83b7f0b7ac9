//! Forwarding rewrites, one module per mode. Each works on the IPv4 packet (the
//! bytes after Ethernet) of a tracked connection and updates every checksum it
//! affects incrementally (RFC 1624); none recomputes over the payload.

pub mod dr;
pub mod fullnat;
pub mod nat;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::conn::Conn;
use crate::csum::Delta;
use crate::service::ForwardMode;
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::wire::{get_u16, set_u16, WireError};

/// Why a packet could not be rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmitError {
    /// The packet is not the TCP/UDP over IPv4 the connection says.
    Malformed,
    /// The forwarding mode or address family is not implemented yet.
    Unsupported,
}

impl fmt::Display for XmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmitError::Malformed => f.write_str("malformed packet"),
            XmitError::Unsupported => f.write_str("unsupported forwarding"),
        }
    }
}

impl std::error::Error for XmitError {}

impl From<WireError> for XmitError {
    fn from(_: WireError) -> Self {
        XmitError::Malformed
    }
}

/// Rewrites a client → server packet of `conn` for its forwarding mode.
pub fn to_server(conn: &Conn, ip: &mut [u8]) -> Result<(), XmitError> {
    match conn.forward {
        ForwardMode::FullNat => fullnat::to_server(conn, ip),
        ForwardMode::Nat => nat::to_server(conn, ip),
        ForwardMode::Dr => dr::to_server(conn, ip),
        ForwardMode::Tunnel => Err(XmitError::Unsupported),
    }
}

/// Rewrites a server → client packet of `conn` for its forwarding mode.
pub fn to_client(conn: &Conn, ip: &mut [u8]) -> Result<(), XmitError> {
    match conn.forward {
        ForwardMode::FullNat => fullnat::to_client(conn, ip),
        ForwardMode::Nat => nat::to_client(conn, ip),
        // Replies of DR and TUN connections never pass the director.
        ForwardMode::Dr | ForwardMode::Tunnel => Err(XmitError::Unsupported),
    }
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
