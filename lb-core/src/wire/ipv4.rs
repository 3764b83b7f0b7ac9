//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::{get_u16, set_u16, WireError};
use crate::csum;

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP-in-IP.
pub const PROTO_IPIP: u8 = 4;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. `new_checked` guarantees version 4, a header length of
/// at least 20 bytes, and a total length that covers the header and fits the buffer
/// (trailing Ethernet padding is allowed and ignored by [`Ipv4Packet::payload`]).
#[derive(Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Views `buf` as an IPv4 packet.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        let total_len = usize::from(get_u16(b, 2));
        if header_len < MIN_HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[0] & 0x0f) * 4
    }

    /// Type of service / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Total length of header and payload.
    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 2))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buf.as_ref(), 4)
    }

    /// Don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        get_u16(self.buf.as_ref(), 6) & FLAG_DF != 0
    }

    /// Whether this is a fragment (more fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buf.as_ref(), 6) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    /// Offset of this fragment's data in the datagram, in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 6) & FRAG_OFFSET_MASK) * 8
    }

    /// Whether more fragments follow (MF).
    pub fn more_fragments(&self) -> bool {
        get_u16(self.buf.as_ref(), 6) & FLAG_MF != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[8]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[9]
    }

    /// Header checksum.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 10)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = self.buf.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.buf.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Whether the header checksum is valid.
    pub fn verify_checksum(&self) -> bool {
        csum::header_is_intact(&self.buf.as_ref()[..self.header_len()])
    }

    /// The payload (up to the total length; Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len()]
    }

    /// The partial pseudo-header sum for this packet's L4 checksum.
    pub fn pseudo_header_sum(&self) -> u32 {
        let l4_len = (self.total_len() - self.header_len()) as u16;
        csum::pseudo_header_v4(self.src(), self.dst(), self.protocol(), l4_len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the source address, updating the header checksum incrementally.
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        let old = self.src();
        self.buf.as_mut()[12..16].copy_from_slice(&addr.octets());
        self.set_checksum(csum::update_addr(self.checksum(), old, addr));
    }

    /// Sets the destination address, updating the header checksum incrementally.
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        let old = self.dst();
        self.buf.as_mut()[16..20].copy_from_slice(&addr.octets());
        self.set_checksum(csum::update_addr(self.checksum(), old, addr));
    }

    /// Sets the TTL, updating the header checksum incrementally.
    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buf.as_mut();
        let old = u16::from_be_bytes([b[8], b[9]]);
        b[8] = ttl;
        let new = u16::from_be_bytes([b[8], b[9]]);
        let sum = csum::update16(self.checksum(), old, new);
        self.set_checksum(sum);
    }

    /// Writes the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buf.as_mut(), 10, value);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let sum = csum::checksum(&self.buf.as_ref()[..hl]);
        self.set_checksum(sum);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        &mut self.buf.as_mut()[hl..tl]
    }

    /// Splits into the header and the payload, both writable, for rewrites that
    /// touch the IP header and the L4 header together.
    pub fn split_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let (hl, tl) = (self.header_len(), self.total_len());
        let (head, rest) = self.buf.as_mut()[..tl].split_at_mut(hl);
        (head, rest)
    }

    /// Swaps source and destination (the checksum is unchanged by a swap).
    pub fn swap_addresses(&mut self) {
        let b = self.buf.as_mut();
        let mut src = [0u8; 4];
        src.copy_from_slice(&b[12..16]);
        b.copy_within(16..20, 12);
        b[16..20].copy_from_slice(&src);
    }
}

/// Fields of a new IPv4 header without options, for [`emit_header`].
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// TOS byte.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_fragment: bool,
}

/// Writes a 20-byte header with a valid checksum at the start of `buf`.
pub fn emit_header(buf: &mut [u8], repr: &Ipv4Repr) -> Result<(), WireError> {
    if buf.len() < MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let total = repr
        .payload_len
        .checked_add(MIN_HEADER_LEN as u16)
        .ok_or(WireError::Malformed)?;
    buf[0] = 0x45;
    buf[1] = repr.tos;
    set_u16(buf, 2, total);
    set_u16(buf, 4, repr.ident);
    set_u16(buf, 6, if repr.dont_fragment { FLAG_DF } else { 0 });
    buf[8] = repr.ttl;
    buf[9] = repr.protocol;
    set_u16(buf, 10, 0);
    buf[12..16].copy_from_slice(&repr.src.octets());
    buf[16..20].copy_from_slice(&repr.dst.octets());
    let sum = csum::checksum(&buf[..MIN_HEADER_LEN]);
    set_u16(buf, 10, sum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73 (payload zeros).
    fn fixture() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        p.resize(0x73 + 6, 0); // with 6 bytes of trailing padding
        p
    }

    #[test]
    fn parses_fields_and_ignores_padding() {
        let bytes = fixture();
        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.total_len(), 0x73);
        assert_eq!(ip.payload().len(), 0x73 - 20);
        assert_eq!(ip.protocol(), PROTO_UDP);
        assert!(ip.dont_fragment());
        assert!(!ip.is_fragment());
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst(), Ipv4Addr::new(192, 168, 0, 199));
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut bytes = fixture();
        bytes[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut bytes = fixture();
        bytes[2] = 0xff;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut bytes = fixture();
        bytes[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn setters_keep_the_checksum_valid() {
        let mut bytes = fixture();
        let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        ip.set_src(Ipv4Addr::new(10, 0, 0, 1));
        ip.set_dst(Ipv4Addr::new(10, 9, 8, 7));
        ip.set_ttl(63);
        assert!(ip.verify_checksum());
        ip.swap_addresses();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src(), Ipv4Addr::new(10, 9, 8, 7));
    }

    #[test]
    fn emitted_header_is_valid() {
        let mut buf = [0u8; 28];
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(1, 2, 3, 4),
            dst: Ipv4Addr::new(5, 6, 7, 8),
            protocol: PROTO_ICMP,
            payload_len: 8,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_fragment: false,
        };
        emit_header(&mut buf, &repr).unwrap();
        let ip = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), 28);
    }
}
