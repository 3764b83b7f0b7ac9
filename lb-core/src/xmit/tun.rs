//! Tunnelling (ipvsadm `-i`, "Tunnel"): the client's packet, untouched, inside an
//! outer IPv4 header from the director to the real server — IPIP (RFC 2003,
//! protocol 4) or GUE (UDP, a 4-byte version-0 GUE header carrying protocol 4,
//! as Linux `ip fou add port N gue` decapsulates and IPVS `--tun-type gue` sends).
//!
//! The outer header copies TOS and DF from the inner one, takes TTL 64 and the
//! inner identification. A DF packet that no longer fits the egress MTU is
//! refused with `TooBig` carrying the MTU left for the inner packet, which the
//! worker turns into ICMP fragmentation-needed for the client; the director does
//! not fragment, so a non-DF packet that does not fit is dropped and counted.

use std::net::Ipv4Addr;

use super::{XmitError, IP_AT};
use crate::frame::Frame;
use crate::service::{TunnelSpec, TunnelType};
use crate::wire::ipv4::{emit_header, Ipv4Packet, Ipv4Repr, PROTO_IPIP, PROTO_UDP};
use crate::wire::set_u16;

/// Length of the GUE header (version 0, no options).
pub const GUE_HEADER_LEN: usize = 4;
/// First port of the range GUE source ports are picked from (flow entropy).
const GUE_SPORT_BASE: u16 = 49152;

/// Wraps the IPv4 packet in `frame` for `spec`, from `src` to `dst`. `entropy`
/// picks the GUE source port, so one flow keeps one port (for ECMP and RSS).
pub fn encapsulate(
    frame: &mut Frame<'_>,
    spec: TunnelSpec,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: usize,
    entropy: u16,
) -> Result<(), XmitError> {
    let (inner_len, tos, ident, df) = {
        let ip = Ipv4Packet::new_checked(&frame.data()[IP_AT..])?;
        (ip.total_len(), ip.tos(), ip.ident(), ip.dont_fragment())
    };
    let overhead = spec.overhead();
    if inner_len + overhead > mtu {
        return Err(XmitError::TooBig {
            mtu: mtu.saturating_sub(overhead) as u16,
            df,
        });
    }
    frame
        .set_len(IP_AT + inner_len)
        .map_err(|_| XmitError::Malformed)?;
    frame
        .insert_gap_front(IP_AT, overhead)
        .map_err(|_| XmitError::NoRoom)?;
    let outer = &mut frame.data_mut()[IP_AT..];
    let protocol = match spec.kind {
        TunnelType::Ipip => PROTO_IPIP,
        TunnelType::Gue => PROTO_UDP,
    };
    let repr = Ipv4Repr {
        src,
        dst,
        protocol,
        payload_len: (inner_len + overhead - 20) as u16,
        ttl: 64,
        tos,
        ident,
        dont_fragment: df,
    };
    emit_header(outer, &repr)?;
    if spec.kind == TunnelType::Gue {
        let udp = &mut outer[20..32];
        set_u16(udp, 0, GUE_SPORT_BASE | (entropy & 0x3fff));
        set_u16(udp, 2, spec.port);
        set_u16(udp, 4, (8 + GUE_HEADER_LEN + inner_len) as u16);
        set_u16(udp, 6, 0); // no checksum (allowed for UDP over IPv4)
        udp[8..12].copy_from_slice(&[0, PROTO_IPIP, 0, 0]);
    }
    Ok(())
}

/// The largest MSS a tunnelled TCP segment can carry without exceeding `mtu`
/// (IPv4 and TCP headers without options).
pub fn mss_for(spec: TunnelSpec, mtu: usize) -> u16 {
    mtu.saturating_sub(spec.overhead() + 40).max(536) as u16
}
