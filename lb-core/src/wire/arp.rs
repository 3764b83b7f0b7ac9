//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use super::{get_u16, set_u16, MacAddr, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request.
pub const OP_REQUEST: u16 = 1;
/// ARP reply.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Views `buf` as ARP, checking length and that it is Ethernet/IPv4.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if get_u16(b, 0) != 1 || get_u16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Malformed);
        }
        Ok(ArpPacket { buf })
    }

    /// Operation (request or reply).
    pub fn operation(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        mac_at(self.buf.as_ref(), 8)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ip_at(self.buf.as_ref(), 14)
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        mac_at(self.buf.as_ref(), 18)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ip_at(self.buf.as_ref(), 24)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes a complete Ethernet/IPv4 ARP packet into `buf` (at least [`PACKET_LEN`]).
    pub fn emit(
        mut buf: T,
        operation: u16,
        sender: (MacAddr, Ipv4Addr),
        target: (MacAddr, Ipv4Addr),
    ) -> Result<Self, WireError> {
        let b = buf.as_mut();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        set_u16(b, 0, 1);
        set_u16(b, 2, 0x0800);
        b[4] = 6;
        b[5] = 4;
        set_u16(b, 6, operation);
        b[8..14].copy_from_slice(&sender.0 .0);
        b[14..18].copy_from_slice(&sender.1.octets());
        b[18..24].copy_from_slice(&target.0 .0);
        b[24..28].copy_from_slice(&target.1.octets());
        Ok(ArpPacket { buf })
    }
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 10.0.0.1? Tell 10.0.0.2 (from 02:00:00:00:00:02).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 10, 0,
        0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];

    #[test]
    fn parses_a_request() {
        let arp = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(arp.operation(), OP_REQUEST);
        assert_eq!(arp.sender_mac(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(arp.sender_ip(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(arp.target_ip(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn emit_round_trips() {
        let mut buf = [0u8; 28];
        ArpPacket::emit(
            &mut buf[..],
            OP_REQUEST,
            (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(10, 0, 0, 2)),
            (MacAddr::ZERO, Ipv4Addr::new(10, 0, 0, 1)),
        )
        .unwrap();
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn rejects_non_ipv4_arp() {
        let mut bad = REQUEST;
        bad[2] = 0x86;
        assert_eq!(
            ArpPacket::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
