//! TOA (TCP Option Address, kind 254, length 8): the client's port and IPv4
//! address in a TCP option, for FullNAT real servers with a TOA module.
//!
//! The option goes into the client → server ACK that completes the handshake, or
//! into the first data segment when that ACK has no room (40 option bytes at most,
//! the egress MTU, the buffer's headroom). A TOA the client sent itself is blanked
//! with NOPs on every segment, so a client cannot spoof its address.

use std::net::Ipv4Addr;

use super::tcpopt::{self, KIND_TOA, TOA_LEN};
use super::{XmitError, IP_AT};
use crate::csum::Delta;
use crate::frame::Frame;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{get_u16, set_u16};

/// The option bytes for `client`.
pub fn option(client: (Ipv4Addr, u16)) -> [u8; TOA_LEN] {
    let mut o = [0u8; TOA_LEN];
    o[0] = KIND_TOA;
    o[1] = TOA_LEN as u8;
    o[2..4].copy_from_slice(&client.1.to_be_bytes());
    o[4..8].copy_from_slice(&client.0.octets());
    o
}

/// Appends a TOA for `client` to the options of the TCP segment in `frame`.
/// `Ok(false)` when it does not fit: the header would exceed 60 bytes, the packet
/// `mtu`, or the buffer has no headroom left.
pub fn insert(
    frame: &mut Frame<'_>,
    client: (Ipv4Addr, u16),
    mtu: usize,
) -> Result<bool, XmitError> {
    let (ip_hl, total, tcp_hl) = {
        let ip = Ipv4Packet::new_checked(&frame.data()[IP_AT..])?;
        let l4 = ip.payload();
        if l4.len() < 20 || tcpopt::header_len(l4) > l4.len() {
            return Err(XmitError::Malformed);
        }
        (ip.header_len(), ip.total_len(), tcpopt::header_len(l4))
    };
    if tcp_hl + TOA_LEN > 60 || total + TOA_LEN > mtu || frame.head() < TOA_LEN {
        return Ok(false);
    }
    // Drop Ethernet padding, then open the gap by moving the headers forward.
    frame
        .set_len(IP_AT + total)
        .map_err(|_| XmitError::Malformed)?;
    let at = IP_AT + ip_hl + tcp_hl;
    frame
        .insert_gap_front(at, TOA_LEN)
        .map_err(|_| XmitError::NoRoom)?;
    let opt = option(client);
    let data = frame.data_mut();
    data[at..at + TOA_LEN].copy_from_slice(&opt);
    let ip = &mut data[IP_AT..];
    let new_total = (total + TOA_LEN) as u16;
    set_u16(
        ip,
        10,
        crate::csum::update16(get_u16(ip, 10), total as u16, new_total),
    );
    set_u16(ip, 2, new_total);
    let l4 = &mut ip[ip_hl..usize::from(new_total)];
    let mut d = Delta::default();
    // Data offset grows by two words; the pseudo-header length by eight bytes.
    let old_word = get_u16(l4, 12);
    l4[12] += (TOA_LEN as u8 / 4) << 4;
    d.word(old_word, get_u16(l4, 12));
    d.word((total - ip_hl) as u16, (total - ip_hl + TOA_LEN) as u16);
    for w in opt.chunks_exact(2) {
        d.word(0, u16::from_be_bytes([w[0], w[1]]));
    }
    tcpopt::apply(l4, d);
    Ok(true)
}
