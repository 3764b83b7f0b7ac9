//! The frames lb-pktgen sends and checks: Ethernet + IPv4 + TCP/UDP with valid
//! checksums, built and parsed with `lb_core`'s wire views and checksum helpers.
//!
//! Every payload lb-pktgen sends starts with a [`Tag`]: a magic byte, the phase
//! of the run that sent it, a flow (or connection slot) id and, when there is
//! room and the run wants it, the TSC at which the frame was built. Payload bytes
//! after the tag are zero, so checksums are computed over the headers and the
//! tag only (zeros add nothing to a one's-complement sum).

use std::net::Ipv4Addr;

use lb_core::csum;
use lb_core::wire::arp::{self, ArpPacket};
use lb_core::wire::ethernet::{self, EthernetFrame};
use lb_core::wire::ipv4::{emit_header, Ipv4Packet, Ipv4Repr, PROTO_TCP, PROTO_UDP};
use lb_core::wire::tcp::TcpSegment;
use lb_core::wire::udp::UdpDatagram;
use lb_core::wire::MacAddr;

/// Ethernet header length.
pub const ETH_LEN: usize = ethernet::HEADER_LEN;
/// IPv4 header length (lb-pktgen never sends options).
pub const IP_LEN: usize = 20;
/// TCP header length without options.
pub const TCP_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// The frame check sequence a NIC appends: frame sizes in benchmarks (64, 128,
/// … 1518) include it, the bytes in an mbuf do not.
pub const FCS_LEN: usize = 4;
/// Largest frame (with FCS) lb-pktgen builds.
pub const MAX_FRAME: usize = 1518;

/// First byte of every tag.
pub const TAG_MAGIC: u8 = 0xB5;
/// A tag without timestamp: magic, phase, id.
pub const TAG_LEN: usize = 6;
/// A tag with timestamp.
pub const TAG_TS_LEN: usize = 14;
/// Phase-byte flag: a timestamp follows the id.
const TAG_HAS_TS: u8 = 0x80;

/// The marker at the start of lb-pktgen's payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Which part of the run sent the frame (see `traffic::Phase`).
    pub phase: u8,
    /// Flow or connection-slot id.
    pub id: u32,
    /// TSC when the frame was built, for latency runs.
    pub tsc: Option<u64>,
}

impl Tag {
    /// Bytes the tag takes.
    pub fn len(&self) -> usize {
        if self.tsc.is_some() {
            TAG_TS_LEN
        } else {
            TAG_LEN
        }
    }

    /// Always false: a tag has at least the magic byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the tag into `out` (at least [`Tag::len`] bytes); returns its length.
    pub fn write(&self, out: &mut [u8]) -> usize {
        out[0] = TAG_MAGIC;
        out[1] = (self.phase & !TAG_HAS_TS) | if self.tsc.is_some() { TAG_HAS_TS } else { 0 };
        out[2..6].copy_from_slice(&self.id.to_be_bytes());
        if let Some(tsc) = self.tsc {
            out[6..14].copy_from_slice(&tsc.to_be_bytes());
        }
        self.len()
    }

    /// The tag at the start of `payload`, if there is a well-formed one.
    pub fn read(payload: &[u8]) -> Option<Tag> {
        if payload.len() < TAG_LEN || payload[0] != TAG_MAGIC {
            return None;
        }
        let id = u32::from_be_bytes([payload[2], payload[3], payload[4], payload[5]]);
        let tsc = if payload[1] & TAG_HAS_TS != 0 {
            let b: [u8; 8] = payload.get(6..14)?.try_into().ok()?;
            Some(u64::from_be_bytes(b))
        } else {
            None
        };
        Some(Tag {
            phase: payload[1] & !TAG_HAS_TS,
            id,
            tsc,
        })
    }
}

/// Every header field of a frame lb-pktgen builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// IP identification.
    pub ident: u16,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP sequence number (ignored for UDP).
    pub seq: u32,
    /// TCP acknowledgement number (ignored for UDP).
    pub ack: u32,
    /// TCP flags (ignored for UDP).
    pub flags: u8,
}

/// The L4 header length of `proto`.
pub fn l4_header_len(proto: u8) -> usize {
    if proto == PROTO_TCP {
        TCP_LEN
    } else {
        UDP_LEN
    }
}

/// Bytes in the mbuf (without FCS) of a frame with `payload_len` payload bytes.
pub fn frame_len(proto: u8, payload_len: usize) -> usize {
    ETH_LEN + IP_LEN + l4_header_len(proto) + payload_len
}

/// The payload length that makes a frame of `size` bytes including the FCS
/// (`None` if even an empty payload does not fit).
pub fn payload_for_size(proto: u8, size: usize) -> Option<usize> {
    size.checked_sub(FCS_LEN + ETH_LEN + IP_LEN + l4_header_len(proto))
}

/// Writes a complete frame into `buf`: headers from `h`, a payload of
/// `payload_len` bytes that starts with `head` and continues with zeros, and
/// valid IPv4 and L4 checksums. Returns the frame length.
///
/// # Panics
/// If `buf` is shorter than the frame or `head` longer than the payload.
pub fn build(buf: &mut [u8], h: &Headers, head: &[u8], payload_len: usize) -> usize {
    assert!(
        head.len() <= payload_len,
        "payload head longer than payload"
    );
    let l4_hdr = l4_header_len(h.proto);
    let l4_len = l4_hdr + payload_len;
    let total = ETH_LEN + IP_LEN + l4_len;
    let buf = &mut buf[..total];
    {
        let mut eth = EthernetFrame::new_checked(&mut buf[..]).expect("frame room");
        eth.set_dst(h.dst_mac);
        eth.set_src(h.src_mac);
        eth.set_ethertype(ethernet::ETHERTYPE_IPV4);
    }
    let repr = Ipv4Repr {
        src: h.src,
        dst: h.dst,
        protocol: h.proto,
        payload_len: l4_len as u16,
        ttl: h.ttl,
        tos: 0,
        ident: h.ident,
        dont_fragment: true,
    };
    emit_header(&mut buf[ETH_LEN..ETH_LEN + IP_LEN], &repr).expect("IPv4 header room");
    let l4 = &mut buf[ETH_LEN + IP_LEN..];
    l4[0..2].copy_from_slice(&h.sport.to_be_bytes());
    l4[2..4].copy_from_slice(&h.dport.to_be_bytes());
    let csum_at = if h.proto == PROTO_TCP {
        l4[4..8].copy_from_slice(&h.seq.to_be_bytes());
        l4[8..12].copy_from_slice(&h.ack.to_be_bytes());
        l4[12] = (TCP_LEN as u8 / 4) << 4;
        l4[13] = h.flags;
        l4[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        l4[18..20].fill(0);
        16
    } else {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        6
    };
    l4[csum_at..csum_at + 2].fill(0);
    l4[l4_hdr..l4_hdr + head.len()].copy_from_slice(head);
    l4[l4_hdr + head.len()..].fill(0);
    let pseudo = csum::pseudo_header_v4(h.src, h.dst, h.proto, l4_len as u16);
    // The zero tail adds nothing to the sum.
    let mut sum = !csum::fold(csum::sum(&l4[..l4_hdr + head.len()], pseudo));
    if h.proto == PROTO_UDP && sum == 0 {
        sum = 0xffff;
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&sum.to_be_bytes());
    total
}

/// Writes an Ethernet/ARP frame; returns its length.
pub fn build_arp(
    buf: &mut [u8],
    op: u16,
    dst_mac: MacAddr,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
) -> usize {
    let total = ETH_LEN + arp::PACKET_LEN;
    let buf = &mut buf[..total];
    let mut eth = EthernetFrame::new_checked(&mut buf[..]).expect("frame room");
    eth.set_dst(dst_mac);
    eth.set_src(sender.0);
    eth.set_ethertype(ethernet::ETHERTYPE_ARP);
    ArpPacket::emit(eth.payload_mut(), op, sender, target).expect("ARP room");
    total
}

/// An ARP packet as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInfo {
    /// Request or reply.
    pub op: u16,
    /// Sender MAC.
    pub sender_mac: MacAddr,
    /// Sender address.
    pub sender_ip: Ipv4Addr,
    /// Target address.
    pub target_ip: Ipv4Addr,
}

/// A TCP/UDP over IPv4 frame as received, with its checksums verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// IP protocol.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP sequence number (0 for UDP).
    pub seq: u32,
    /// TCP acknowledgement number (0 for UDP).
    pub ack: u32,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// Offset of the L4 payload in the frame.
    pub payload_at: usize,
    /// L4 payload length.
    pub payload_len: usize,
    /// The IPv4 header checksum is right.
    pub ip_csum_ok: bool,
    /// The TCP/UDP checksum is right (a UDP checksum of 0, "none", is not: lb-pktgen
    /// always sends one and the director must keep it).
    pub l4_csum_ok: bool,
}

/// What a received frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// ARP.
    Arp(ArpInfo),
    /// TCP or UDP over IPv4.
    Ip(IpInfo),
}

/// Why a received frame could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Truncated or inconsistent headers.
    Malformed,
    /// An ethertype or IP protocol lb-pktgen never sends.
    Foreign,
    /// An IPv4 fragment.
    Fragment,
}

/// Parses and checks a received frame.
pub fn parse(frame: &[u8]) -> Result<Parsed, ParseError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| ParseError::Malformed)?;
    match eth.ethertype() {
        ethernet::ETHERTYPE_ARP => {
            let a = ArpPacket::new_checked(eth.payload()).map_err(|_| ParseError::Malformed)?;
            Ok(Parsed::Arp(ArpInfo {
                op: a.operation(),
                sender_mac: a.sender_mac(),
                sender_ip: a.sender_ip(),
                target_ip: a.target_ip(),
            }))
        }
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| ParseError::Malformed)?;
            if ip.is_fragment() {
                return Err(ParseError::Fragment);
            }
            let proto = ip.protocol();
            let l4_at = ETH_LEN + ip.header_len();
            let (sport, dport, seq, ack, flags, l4_hdr, csum) = match proto {
                PROTO_TCP => {
                    let t =
                        TcpSegment::new_checked(ip.payload()).map_err(|_| ParseError::Malformed)?;
                    (
                        t.src_port(),
                        t.dst_port(),
                        t.seq(),
                        t.ack(),
                        t.flags(),
                        t.header_len(),
                        t.checksum(),
                    )
                }
                PROTO_UDP => {
                    let u = UdpDatagram::new_checked(ip.payload())
                        .map_err(|_| ParseError::Malformed)?;
                    if u.len() != ip.payload().len() {
                        return Err(ParseError::Malformed);
                    }
                    (u.src_port(), u.dst_port(), 0, 0, 0, UDP_LEN, u.checksum())
                }
                _ => return Err(ParseError::Foreign),
            };
            let l4_sum = csum::fold(csum::sum(ip.payload(), ip.pseudo_header_sum()));
            let l4_csum_ok = l4_sum == 0xffff && !(proto == PROTO_UDP && csum == 0);
            Ok(Parsed::Ip(IpInfo {
                dst_mac: eth.dst(),
                src_mac: eth.src(),
                src: ip.src(),
                dst: ip.dst(),
                ttl: ip.ttl(),
                proto,
                sport,
                dport,
                seq,
                ack,
                flags,
                payload_at: l4_at + l4_hdr,
                payload_len: ip.payload().len() - l4_hdr,
                ip_csum_ok: ip.verify_checksum(),
                l4_csum_ok,
            }))
        }
        _ => Err(ParseError::Foreign),
    }
}

/// The locally administered MAC lb-pktgen uses for an address it plays (a
/// client gateway or a real server): `02:b5` and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0xb5, o[0], o[1], o[2], o[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_core::wire::tcp::flags;

    fn headers(proto: u8) -> Headers {
        Headers {
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_mac: mac_for(Ipv4Addr::new(198, 18, 0, 254)),
            src: Ipv4Addr::new(198, 18, 128, 7),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            ttl: 64,
            ident: 9,
            proto,
            sport: 40000,
            dport: 80,
            seq: 0x1000,
            ack: 0x2000,
            flags: flags::ACK | flags::PSH,
        }
    }

    #[test]
    fn built_frames_parse_back_with_valid_checksums() {
        for proto in [PROTO_TCP, PROTO_UDP] {
            for size in [64, 65, 128, 1518] {
                let mut buf = [0xeeu8; 2048];
                let tag = Tag {
                    phase: 3,
                    id: 77,
                    tsc: (proto == PROTO_UDP).then_some(123_456_789),
                };
                let mut head = [0u8; TAG_TS_LEN];
                let n = tag.write(&mut head);
                let payload = payload_for_size(proto, size).unwrap();
                let len = build(&mut buf, &headers(proto), &head[..n], payload);
                assert_eq!(len + FCS_LEN, size);
                let Ok(Parsed::Ip(p)) = parse(&buf[..len]) else {
                    panic!("not parsed")
                };
                assert!(p.ip_csum_ok && p.l4_csum_ok, "{proto} {size}");
                assert_eq!((p.sport, p.dport, p.ttl), (40000, 80, 64));
                assert_eq!(p.payload_len, payload);
                let got = Tag::read(&buf[p.payload_at..p.payload_at + p.payload_len]).unwrap();
                assert_eq!(got, tag);
                if proto == PROTO_TCP {
                    assert_eq!((p.seq, p.ack, p.flags), (0x1000, 0x2000, 0x18));
                }
                // A flipped payload bit breaks the L4 checksum.
                buf[len - 1] ^= 1;
                let Ok(Parsed::Ip(p)) = parse(&buf[..len]) else {
                    panic!()
                };
                assert!(p.ip_csum_ok && !p.l4_csum_ok);
            }
        }
    }

    #[test]
    fn a_64_byte_tcp_frame_holds_a_short_tag() {
        assert_eq!(payload_for_size(PROTO_TCP, 64), Some(6));
        assert_eq!(payload_for_size(PROTO_UDP, 64), Some(18));
        assert_eq!(payload_for_size(PROTO_TCP, 50), None);
    }

    #[test]
    fn arp_round_trip() {
        let mut buf = [0u8; 64];
        let me = (
            mac_for(Ipv4Addr::new(198, 19, 1, 1)),
            Ipv4Addr::new(198, 19, 1, 1),
        );
        let len = build_arp(
            &mut buf,
            arp::OP_REQUEST,
            MacAddr::BROADCAST,
            me,
            (MacAddr::ZERO, Ipv4Addr::new(198, 19, 0, 1)),
        );
        let Ok(Parsed::Arp(a)) = parse(&buf[..len]) else {
            panic!()
        };
        assert_eq!(a.op, arp::OP_REQUEST);
        assert_eq!((a.sender_mac, a.sender_ip), me);
        assert_eq!(a.target_ip, Ipv4Addr::new(198, 19, 0, 1));
    }
}
