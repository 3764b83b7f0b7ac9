//! The one parse of a received frame.
//!
//! [`PacketMeta::parse`] validates every header the director will read (the
//! Ethernet header and up to two VLAN tags, the IPv4 header with its checksum,
//! the TCP or UDP header of an unfragmented packet or a first fragment, the
//! ICMP type) and records what later stages need: offsets, addresses, ports,
//! flags, the fragment fields and the flow key. Everything after it works from
//! the record and re-wraps header views at known offsets; nothing parses the
//! frame again to decide what to do with it.

use std::net::Ipv4Addr;

use crate::conn::SegmentSeq;
use crate::flow::FlowKey;
use crate::stats::DropReason;
use crate::wire::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_VLAN};
use crate::wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::wire::tcp::TcpSegment;
use crate::wire::udp::UdpDatagram;
use crate::wire::{get_u16, MacAddr};

/// EtherType of an 802.1ad service tag (the outer tag of QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;

/// What the parse found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// VLAN ids of the tags, outer first (0 where absent).
    pub vlans: [u16; 2],
    /// Bytes of the link header: 14, plus 4 per VLAN tag.
    pub l2_len: u8,
    /// The EtherType after the tags.
    pub ethertype: u16,
    /// The IPv4 packet, for IPv4 frames.
    pub ipv4: Option<Ipv4Meta>,
}

/// What the parse found in an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Meta {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub proto: u8,
    /// Time to live.
    pub ttl: u8,
    /// Header length in bytes (20 without options).
    pub header_len: u8,
    /// Total length: header and payload, without the link's padding.
    pub total_len: u16,
    /// Identification, for fragments.
    pub ident: u16,
    /// Fragment offset in bytes; with `more_fragments`, whether this is a fragment.
    pub frag_offset: u16,
    /// More fragments follow.
    pub more_fragments: bool,
    /// The transport header, when the packet has one (not a non-first fragment).
    pub l4: L4Meta,
}

/// The transport header of an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Meta {
    /// TCP: ports and what the segment says of its sequence space.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags, sequence, acknowledgement, window, payload length.
        seg: SegmentSeq,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP type and code.
    Icmp {
        /// Message type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
    /// No transport header here: a non-first fragment, or a protocol the
    /// director does not look into.
    None,
}

impl PacketMeta {
    /// Parses `frame`; the error is the drop reason of a frame that cannot be
    /// handled at all.
    pub fn parse(frame: &[u8]) -> Result<PacketMeta, DropReason> {
        let eth = ethernet::EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
        let mut meta = PacketMeta {
            dst_mac: eth.dst(),
            vlans: [0; 2],
            l2_len: ethernet::HEADER_LEN as u8,
            ethertype: eth.ethertype(),
            ipv4: None,
        };
        let mut tags = 0;
        while matches!(meta.ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ) {
            let at = usize::from(meta.l2_len);
            if tags == meta.vlans.len() {
                return Err(DropReason::UnsupportedEthertype);
            }
            if frame.len() < at + VLAN_TAG_LEN {
                return Err(DropReason::Malformed);
            }
            // The tag control field: priority and DEI above the 12-bit VLAN id;
            // the EtherType of what is inside follows it.
            meta.vlans[tags] = get_u16(frame, at) & 0x0fff;
            meta.ethertype = get_u16(frame, at + 2);
            meta.l2_len += VLAN_TAG_LEN as u8;
            tags += 1;
        }
        if meta.ethertype == ETHERTYPE_IPV4 {
            meta.ipv4 = Some(Ipv4Meta::parse(&frame[usize::from(meta.l2_len)..])?);
        }
        Ok(meta)
    }

    /// Whether the frame carries a VLAN tag.
    pub fn is_tagged(&self) -> bool {
        usize::from(self.l2_len) > ethernet::HEADER_LEN
    }

    /// Whether this is an ARP frame.
    pub fn is_arp(&self) -> bool {
        self.ethertype == ETHERTYPE_ARP
    }
}

impl Ipv4Meta {
    fn parse(bytes: &[u8]) -> Result<Ipv4Meta, DropReason> {
        let ip = Ipv4Packet::new_checked(bytes).map_err(|_| DropReason::Malformed)?;
        if !ip.verify_checksum() {
            return Err(DropReason::Malformed);
        }
        let frag_offset = ip.frag_offset() as u16;
        let proto = ip.protocol();
        let l4 = if frag_offset != 0 {
            L4Meta::None
        } else {
            L4Meta::parse(proto, ip.payload(), ip.more_fragments())?
        };
        Ok(Ipv4Meta {
            src: ip.src(),
            dst: ip.dst(),
            proto,
            ttl: ip.ttl(),
            header_len: ip.header_len() as u8,
            total_len: ip.total_len() as u16,
            ident: ip.ident(),
            frag_offset,
            more_fragments: ip.more_fragments(),
            l4,
        })
    }

    /// Whether the packet is a fragment.
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }

    /// The flow key of a TCP or UDP packet (of its first fragment).
    pub fn flow_key(&self) -> Option<FlowKey> {
        let (sport, dport) = match self.l4 {
            L4Meta::Tcp { sport, dport, .. } | L4Meta::Udp { sport, dport } => (sport, dport),
            L4Meta::Icmp { .. } | L4Meta::None => return None,
        };
        Some(FlowKey::v4(self.proto, self.src, sport, self.dst, dport))
    }

    /// What a TCP segment says of its sequence space (zeros for anything else).
    pub fn segment(&self) -> SegmentSeq {
        match self.l4 {
            L4Meta::Tcp { seg, .. } => seg,
            _ => SegmentSeq::default(),
        }
    }
}

impl L4Meta {
    /// The transport header at the start of `payload`. A first fragment too short
    /// for the header (someone fragmented inside it) is malformed; the UDP length
    /// of a first fragment covers the whole datagram, not this fragment.
    fn parse(proto: u8, payload: &[u8], first_fragment: bool) -> Result<L4Meta, DropReason> {
        Ok(match proto {
            PROTO_TCP => {
                let tcp = TcpSegment::new_checked(payload).map_err(|_| DropReason::Malformed)?;
                L4Meta::Tcp {
                    sport: tcp.src_port(),
                    dport: tcp.dst_port(),
                    seg: SegmentSeq::of(&tcp),
                }
            }
            PROTO_UDP if first_fragment => match payload {
                [s0, s1, d0, d1, _, _, _, _, ..] => L4Meta::Udp {
                    sport: u16::from_be_bytes([*s0, *s1]),
                    dport: u16::from_be_bytes([*d0, *d1]),
                },
                _ => return Err(DropReason::Malformed),
            },
            PROTO_UDP => {
                let udp = UdpDatagram::new_checked(payload).map_err(|_| DropReason::Malformed)?;
                L4Meta::Udp {
                    sport: udp.src_port(),
                    dport: udp.dst_port(),
                }
            }
            PROTO_ICMP => match payload {
                [msg_type, code, ..] => L4Meta::Icmp {
                    msg_type: *msg_type,
                    code: *code,
                },
                _ => return Err(DropReason::Malformed),
            },
            _ => L4Meta::None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::flags;

    /// 10.0.1.2:40000 → 10.0.1.100:80, a SYN (seq 1, window 0xffff) with an MSS
    /// option, behind an Ethernet header.
    fn tcp_syn() -> Vec<u8> {
        let mut f = vec![
            2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2, 0x08, 0x00, // Ethernet
            0x45, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 1, 2,
            10, 0, 1, 100, // IPv4, checksum filled below
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0,
            0x02, 0x04, 0x05, 0xb4, // TCP with MSS 1460
        ];
        let sum = crate::csum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        f
    }

    fn tagged(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
        let mut out = frame[..12].to_vec();
        for &(tpid, vid) in tags {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&(0x2000 | vid).to_be_bytes()); // priority 1
        }
        out.extend_from_slice(&frame[12..]);
        out
    }

    #[test]
    fn parses_a_tcp_syn() {
        let meta = PacketMeta::parse(&tcp_syn()).unwrap();
        assert_eq!(
            (meta.l2_len, meta.ethertype, meta.vlans),
            (14, 0x0800, [0, 0])
        );
        let ip = meta.ipv4.unwrap();
        assert_eq!((ip.header_len, ip.total_len, ip.ttl), (20, 44, 64));
        assert!(!ip.is_fragment());
        assert_eq!(
            ip.flow_key(),
            Some(FlowKey::v4(
                PROTO_TCP,
                Ipv4Addr::new(10, 0, 1, 2),
                40000,
                Ipv4Addr::new(10, 0, 1, 100),
                80
            ))
        );
        let seg = ip.segment();
        assert_eq!(
            (seg.flags, seg.seq, seg.window, seg.payload_len),
            (flags::SYN, 1, 0xffff, 0)
        );
    }

    #[test]
    fn one_and_two_vlan_tags_move_the_network_header() {
        let plain = tcp_syn();
        let one = tagged(&plain, &[(ETHERTYPE_VLAN, 100)]);
        let meta = PacketMeta::parse(&one).unwrap();
        assert_eq!(
            (meta.l2_len, meta.vlans, meta.ethertype),
            (18, [100, 0], 0x0800)
        );
        assert!(meta.is_tagged());
        assert_eq!(meta.ipv4, PacketMeta::parse(&plain).unwrap().ipv4);
        let two = tagged(&plain, &[(ETHERTYPE_QINQ, 7), (ETHERTYPE_VLAN, 4095)]);
        let meta = PacketMeta::parse(&two).unwrap();
        assert_eq!((meta.l2_len, meta.vlans), (22, [7, 4095]));
        assert!(meta.ipv4.is_some());
        let three = tagged(
            &plain,
            &[
                (ETHERTYPE_QINQ, 1),
                (ETHERTYPE_VLAN, 2),
                (ETHERTYPE_VLAN, 3),
            ],
        );
        assert_eq!(
            PacketMeta::parse(&three),
            Err(DropReason::UnsupportedEthertype)
        );
    }

    #[test]
    fn every_truncation_is_refused_without_a_panic() {
        for frame in [tcp_syn(), tagged(&tcp_syn(), &[(ETHERTYPE_VLAN, 5)])] {
            for len in 0..frame.len() {
                let cut = &frame[..len];
                let parsed = PacketMeta::parse(cut);
                // The TCP options end the frame: every shorter frame lacks some
                // header byte the parse needs.
                assert_eq!(parsed, Err(DropReason::Malformed), "length {len}");
            }
            assert!(PacketMeta::parse(&frame).is_ok());
        }
    }

    #[test]
    fn bad_ipv4_headers_and_tcp_offsets_are_malformed() {
        let good = tcp_syn();
        let mut bad_sum = good.clone();
        bad_sum[25] ^= 1;
        let mut short_ihl = good.clone();
        short_ihl[14] = 0x44;
        let mut bad_offset = good.clone();
        bad_offset[46] = 0x40; // data offset 4
        for frame in [bad_sum, short_ihl, bad_offset] {
            assert_eq!(PacketMeta::parse(&frame), Err(DropReason::Malformed));
        }
    }

    #[test]
    fn non_first_fragments_have_no_transport_header() {
        let mut f = tcp_syn();
        f[20..22].copy_from_slice(&0x2001u16.to_be_bytes()); // MF, offset 8
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = crate::csum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        let ip = PacketMeta::parse(&f).unwrap().ipv4.unwrap();
        assert!(ip.is_fragment());
        assert_eq!((ip.frag_offset, ip.l4), (8, L4Meta::None));
        assert_eq!(ip.flow_key(), None);
    }
}
