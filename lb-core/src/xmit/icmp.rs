//! ICMP the forwarding path writes: fragmentation-needed for packets that no
//! longer fit once encapsulated, and the translation of errors about tracked
//! connections (RFC 5508-style: outer and embedded headers, every checksum).

use std::net::Ipv4Addr;

use super::{v4, Endpoint, XmitError, IP_AT};
use crate::conn::Conn;
use crate::csum::{self, Delta};
use crate::flow::FlowKey;
use crate::frame::Frame;
use crate::service::ForwardMode;
use crate::wire::icmp::{TYPE_DEST_UNREACHABLE, TYPE_TIME_EXCEEDED};
use crate::wire::ipv4::{emit_header, Ipv4Packet, Ipv4Repr, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::wire::{get_u16, set_u16};

/// Code of "fragmentation needed and DF set" under destination unreachable.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Parameter problem.
pub const TYPE_PARAMETER_PROBLEM: u8 = 12;
/// Source quench (deprecated, still an error about a packet).
pub const TYPE_SOURCE_QUENCH: u8 = 4;
/// Bytes of the offending packet quoted in an error (576 − 20 − 8, RFC 1812).
const MAX_QUOTE: usize = 548;

/// Whether an ICMP type is an error that quotes the offending packet.
pub fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        TYPE_DEST_UNREACHABLE | TYPE_TIME_EXCEEDED | TYPE_PARAMETER_PROBLEM | TYPE_SOURCE_QUENCH
    )
}

/// Code of "port unreachable" under destination unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;

/// Turns the IPv4 packet in `frame` into ICMP fragmentation-needed (type 3 code 4)
/// advertising `mtu`, from the packet's destination back to its source, and
/// returns that source (where the error goes).
pub fn frag_needed(frame: &mut Frame<'_>, mtu: u16) -> Result<Ipv4Addr, XmitError> {
    unreachable(frame, CODE_FRAG_NEEDED, mtu)
}

/// Turns the IPv4 packet in `frame` into ICMP destination unreachable with `code`
/// (and `mtu` for fragmentation-needed, else 0), from the packet's destination back
/// to its source, and returns that source (where the error goes).
pub fn unreachable(frame: &mut Frame<'_>, code: u8, mtu: u16) -> Result<Ipv4Addr, XmitError> {
    error(frame, TYPE_DEST_UNREACHABLE, code, mtu)
}

/// Turns the IPv4 packet in `frame` into ICMP time exceeded in transit (type 11
/// code 0), from the packet's destination back to its source, and returns that
/// source.
pub fn time_exceeded(frame: &mut Frame<'_>) -> Result<Ipv4Addr, XmitError> {
    error(frame, TYPE_TIME_EXCEEDED, 0, 0)
}

/// An ICMP error of `msg_type`/`code` quoting the packet in `frame`; `low` is
/// the low 16 bits of the second header word (the next-hop MTU of
/// fragmentation-needed).
fn error(frame: &mut Frame<'_>, msg_type: u8, code: u8, low: u16) -> Result<Ipv4Addr, XmitError> {
    let (src, dst, total) = {
        let ip = Ipv4Packet::new_checked(&frame.data()[IP_AT..])?;
        (ip.src(), ip.dst(), ip.total_len())
    };
    let quote = total.min(MAX_QUOTE);
    frame
        .set_len(IP_AT + quote)
        .map_err(|_| XmitError::Malformed)?;
    frame
        .insert_gap_front(IP_AT, 28)
        .map_err(|_| XmitError::NoRoom)?;
    let ip = &mut frame.data_mut()[IP_AT..];
    let repr = Ipv4Repr {
        src: dst,
        dst: src,
        protocol: PROTO_ICMP,
        payload_len: (8 + quote) as u16,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_fragment: false,
    };
    emit_header(ip, &repr)?;
    let icmp = &mut ip[20..28 + quote];
    icmp[..8].copy_from_slice(&[msg_type, code, 0, 0, 0, 0, 0, 0]);
    set_u16(icmp, 6, low);
    let sum = csum::checksum(icmp);
    set_u16(icmp, 2, sum);
    Ok(src)
}

/// The connection tuple an ICMP error is about: the flow key of the packet that
/// would answer the embedded one, i.e. the embedded packet's key reversed, which
/// the connection table indexes (client side: an error about a reply we sent the
/// client; server side: an error about a packet we sent the real server).
pub fn embedded_key(ip: &[u8]) -> Option<FlowKey> {
    let outer = Ipv4Packet::new_checked(ip).ok()?;
    let icmp = outer.payload();
    if icmp.len() < 8 + 20 + 4 {
        return None;
    }
    let inner = &icmp[8..];
    if inner[0] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(inner[0] & 0x0f) * 4;
    if hl < 20 || inner.len() < hl + 4 {
        return None;
    }
    let proto = inner[9];
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let at = |o: usize| Ipv4Addr::new(inner[o], inner[o + 1], inner[o + 2], inner[o + 3]);
    Some(FlowKey::v4(
        proto,
        at(16),
        get_u16(inner, hl + 2),
        at(12),
        get_u16(inner, hl),
    ))
}

/// Rewrites an ICMP error about `conn` for the other party: `to_client` when it
/// is about a packet sent to the real server. Returns where it now goes.
pub fn translate(conn: &Conn, to_client: bool, ip: &mut [u8]) -> Result<Ipv4Addr, XmitError> {
    embedded_key(ip).ok_or(XmitError::Malformed)?;
    let (client, virt, local, dest) = (
        v4(conn.client)?,
        v4(conn.virt)?,
        v4(conn.local)?,
        v4(conn.dest)?,
    );
    // Embedded (src, dst) and outer (src, dst) as the receiver expects them.
    let (emb_src, emb_dst, outer_src, outer_dst): (Endpoint, Endpoint, Option<Ipv4Addr>, Ipv4Addr) =
        if to_client {
            (client, virt, Some(virt.0), client.0)
        } else {
            let src = (conn.forward == ForwardMode::FullNat).then_some(local.0);
            (dest, local, src, dest.0)
        };
    let mut packet = Ipv4Packet::new_checked(&mut *ip)?;
    let mut outer_delta = Delta::default();
    let old_src = packet.src();
    let old_dst = packet.dst();
    let (header, icmp) = packet.split_mut();
    if let Some(src) = outer_src {
        outer_delta.addr(old_src, src);
        header[12..16].copy_from_slice(&src.octets());
    }
    outer_delta.addr(old_dst, outer_dst);
    header[16..20].copy_from_slice(&outer_dst.octets());
    set_u16(header, 10, outer_delta.apply(get_u16(header, 10)));

    let inner = &mut icmp[8..];
    let hl = usize::from(inner[0] & 0x0f) * 4;
    let proto = inner[9];
    let old = |o: usize, b: &[u8]| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
    let (old_esrc, old_edst) = (old(12, inner), old(16, inner));
    let mut ip_delta = Delta::default();
    let mut l4_delta = Delta::default();
    ip_delta.addr(old_esrc, emb_src.0);
    ip_delta.addr(old_edst, emb_dst.0);
    l4_delta.addr(old_esrc, emb_src.0);
    l4_delta.addr(old_edst, emb_dst.0);
    inner[12..16].copy_from_slice(&emb_src.0.octets());
    inner[16..20].copy_from_slice(&emb_dst.0.octets());
    set_u16(inner, 10, ip_delta.apply(get_u16(inner, 10)));
    let l4 = &mut inner[hl..];
    l4_delta.word(get_u16(l4, 0), emb_src.1);
    l4_delta.word(get_u16(l4, 2), emb_dst.1);
    set_u16(l4, 0, emb_src.1);
    set_u16(l4, 2, emb_dst.1);
    // The quoted transport checksum, when the quote reaches it.
    let csum_at = if proto == PROTO_TCP { 16 } else { 6 };
    if l4.len() >= csum_at + 2 {
        let old_sum = get_u16(l4, csum_at);
        if !(proto == PROTO_UDP && old_sum == 0) {
            let new = match l4_delta.apply(old_sum) {
                0 if proto == PROTO_UDP => 0xffff,
                s => s,
            };
            set_u16(l4, csum_at, new);
        }
    }
    // Errors are rare: the ICMP checksum is recomputed over the whole message.
    set_u16(icmp, 2, 0);
    let sum = csum::checksum(icmp);
    set_u16(icmp, 2, sum);
    Ok(outer_dst)
}
