//! PROXY protocol headers (v1 text, v2 binary) at the start of the client's TCP
//! stream, for FullNAT real servers behind nginx `proxy_protocol`, haproxy
//! `accept-proxy` and the like.
//!
//! The header goes in front of the payload of the client's first data segment
//! (and again into any retransmission of it). From then on client → server
//! sequence numbers move up by the header's length and server → client
//! acknowledgements and SACK edges move down by it ([`super::tcpopt::unshift`]).

use std::io::Write;
use std::net::Ipv4Addr;

use super::{XmitError, IP_AT};
use crate::csum::{self, Delta};
use crate::frame::Frame;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{get_u16, set_u16};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];
/// Length of a v2 header for TCP over IPv4.
pub const V2_LEN: usize = 28;
/// Longest v1 header for TCP over IPv4.
pub const V1_MAX_LEN: usize = 56;

/// Writes the header for a connection from `src` to `dst` into `out` and returns
/// its length.
pub fn header(v2: bool, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), out: &mut [u8; 64]) -> usize {
    if v2 {
        out[..12].copy_from_slice(&V2_SIGNATURE);
        out[12] = 0x21; // version 2, PROXY
        out[13] = 0x11; // AF_INET, STREAM
        out[14..16].copy_from_slice(&12u16.to_be_bytes());
        out[16..20].copy_from_slice(&src.0.octets());
        out[20..24].copy_from_slice(&dst.0.octets());
        out[24..26].copy_from_slice(&src.1.to_be_bytes());
        out[26..28].copy_from_slice(&dst.1.to_be_bytes());
        V2_LEN
    } else {
        let mut w = &mut out[..];
        // Cannot fail: the longest IPv4 header is 56 bytes.
        let _ = write!(w, "PROXY TCP4 {} {} {} {}\r\n", src.0, dst.0, src.1, dst.1);
        64 - w.len()
    }
}

/// Inserts `header` in front of the payload of the TCP segment in `frame`.
/// A packet that would exceed `mtu` is refused with `TooBig` (the worker answers
/// a DF packet with ICMP fragmentation-needed, so the client sends less).
pub fn insert(frame: &mut Frame<'_>, header: &[u8], mtu: usize) -> Result<(), XmitError> {
    let n = header.len();
    let (ip_hl, total, tcp_hl, df) = {
        let ip = Ipv4Packet::new_checked(&frame.data()[IP_AT..])?;
        let l4 = ip.payload();
        if l4.len() < 20 || super::tcpopt::header_len(l4) > l4.len() {
            return Err(XmitError::Malformed);
        }
        (
            ip.header_len(),
            ip.total_len(),
            super::tcpopt::header_len(l4),
            ip.dont_fragment(),
        )
    };
    if total + n > mtu {
        return Err(XmitError::TooBig {
            mtu: (mtu - n) as u16,
            df,
        });
    }
    frame
        .set_len(IP_AT + total)
        .map_err(|_| XmitError::Malformed)?;
    let at = IP_AT + ip_hl + tcp_hl;
    if frame.head() >= n {
        frame.insert_gap_front(at, n)
    } else {
        frame.insert_gap(at, n)
    }
    .map_err(|_| XmitError::NoRoom)?;
    let data = frame.data_mut();
    data[at..at + n].copy_from_slice(header);
    let ip = &mut data[IP_AT..];
    let new_total = (total + n) as u16;
    set_u16(
        ip,
        10,
        csum::update16(get_u16(ip, 10), total as u16, new_total),
    );
    set_u16(ip, 2, new_total);
    if n % 2 == 0 {
        // The payload moves by an even number of bytes: its words keep their sum.
        let l4 = &mut ip[ip_hl..usize::from(new_total)];
        let mut d = Delta::default();
        d.word((total - ip_hl) as u16, (total - ip_hl + n) as u16);
        for w in header.chunks_exact(2) {
            d.word(0, u16::from_be_bytes([w[0], w[1]]));
        }
        super::tcpopt::apply(l4, d);
    } else {
        // An odd shift changes every word of the payload: recompute (once per
        // connection, and only for v1 headers of odd length).
        let mut packet = Ipv4Packet::new_checked(&mut ip[..usize::from(new_total)])?;
        let pseudo = packet.pseudo_header_sum();
        let l4 = packet.payload_mut();
        set_u16(l4, super::tcpopt::CSUM_AT, 0);
        let sum = !csum::fold(csum::sum(l4, pseudo));
        set_u16(l4, super::tcpopt::CSUM_AT, sum);
    }
    Ok(())
}
