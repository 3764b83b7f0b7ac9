//! TCP headers (RFC 9293).

use std::net::Ipv4Addr;

use super::ipv4::PROTO_TCP;
use super::{get_u16, get_u32, set_u16, set_u32, WireError};
use crate::csum;

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_WINDOW_SCALE: u8 = 3;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A view of a TCP segment. `new_checked` guarantees the data offset is at least 20
/// and the whole header (with options) fits the buffer.
#[derive(Debug)]
pub struct TcpSegment<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Views `buf` as TCP.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = usize::from(b[12] >> 4) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(TcpSegment { buf })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        get_u32(self.buf.as_ref(), 4)
    }

    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        get_u32(self.buf.as_ref(), 8)
    }

    /// Header length with options.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[12] >> 4) * 4
    }

    /// Flag byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }

    /// Advertised window, unscaled.
    pub fn window(&self) -> u16 {
        get_u16(self.buf.as_ref(), 14)
    }

    /// The shift of the window-scale option (RFC 7323), if the header has one.
    pub fn window_scale(&self) -> Option<u8> {
        let opts = self.options();
        let mut at = 0;
        while at < opts.len() {
            match opts[at] {
                OPT_END => return None,
                OPT_NOP => at += 1,
                kind => {
                    let len = usize::from(*opts.get(at + 1)?);
                    if len < 2 || at + len > opts.len() {
                        return None;
                    }
                    if kind == OPT_WINDOW_SCALE && len == 3 {
                        return Some(opts[at + 2]);
                    }
                    at += len;
                }
            }
        }
        None
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 16)
    }

    /// The options bytes.
    pub fn options(&self) -> &[u8] {
        &self.buf.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the source port (checksum not touched).
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buf.as_mut(), 0, port);
    }

    /// Sets the destination port (checksum not touched).
    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buf.as_mut(), 2, port);
    }

    /// Sets the sequence number (checksum not touched).
    pub fn set_seq(&mut self, seq: u32) {
        set_u32(self.buf.as_mut(), 4, seq);
    }

    /// Sets the acknowledgement number (checksum not touched).
    pub fn set_ack(&mut self, ack: u32) {
        set_u32(self.buf.as_mut(), 8, ack);
    }

    /// Writes the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buf.as_mut(), 16, value);
    }
}

/// Writes a bare 20-byte reset segment (no options, no payload, window 0) into
/// the start of `buf` with a valid checksum over the IPv4 pseudo-header.
pub fn emit_reset(
    buf: &mut [u8],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
) -> Result<(), WireError> {
    let seg = buf.get_mut(..MIN_HEADER_LEN).ok_or(WireError::Truncated)?;
    seg.fill(0);
    set_u16(seg, 0, src.1);
    set_u16(seg, 2, dst.1);
    set_u32(seg, 4, seq);
    seg[12] = (MIN_HEADER_LEN as u8 / 4) << 4;
    seg[13] = flags::RST;
    let pseudo = csum::pseudo_header_v4(src.0, dst.0, PROTO_TCP, MIN_HEADER_LEN as u16);
    let sum = !csum::fold(csum::sum(seg, pseudo));
    set_u16(seg, 16, sum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // SYN from port 40000 to 80, seq 1, with an MSS option (1460).
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xff,
        0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn parses_a_syn_with_options() {
        let tcp = TcpSegment::new_checked(&SYN[..]).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq(), 1);
        assert_eq!(tcp.flags(), flags::SYN);
        assert_eq!(tcp.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(tcp.window(), 0xffff);
        assert_eq!(tcp.window_scale(), None);
        assert!(tcp.payload().is_empty());
    }

    // A Linux SYN's options: MSS 1460, SACK permitted, timestamps, NOP, wscale 7.
    const LINUX_SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn finds_the_window_scale_among_other_options() {
        let tcp = TcpSegment::new_checked(&LINUX_SYN[..]).unwrap();
        assert_eq!(tcp.window(), 64240);
        assert_eq!(tcp.window_scale(), Some(7));
        let mut cut = LINUX_SYN;
        cut[38] = 4; // a length running past the header: no option is trusted
        assert_eq!(
            TcpSegment::new_checked(&cut[..]).unwrap().window_scale(),
            None
        );
    }

    #[test]
    fn emits_a_reset_with_a_valid_checksum() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 2, 100), Ipv4Addr::new(10, 0, 2, 11));
        let mut buf = [0xffu8; 24];
        emit_reset(&mut buf, (src, 1025), (dst, 80), 0x0102_0304).unwrap();
        let tcp = TcpSegment::new_checked(&buf[..20]).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (1025, 80));
        assert_eq!((tcp.seq(), tcp.ack(), tcp.window()), (0x0102_0304, 0, 0));
        assert_eq!(tcp.flags(), flags::RST);
        let pseudo = csum::pseudo_header_v4(src, dst, PROTO_TCP, 20);
        assert_eq!(csum::fold(csum::sum(&buf[..20], pseudo)), 0xffff);
        assert_eq!(buf[20..], [0xff; 4], "nothing written past the header");
        assert_eq!(
            emit_reset(&mut buf[..19], (src, 1), (dst, 1), 0),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn rejects_bad_offsets() {
        let mut bad = SYN;
        bad[12] = 0x40;
        assert_eq!(
            TcpSegment::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[12] = 0x70;
        assert_eq!(
            TcpSegment::new_checked(&bad[..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
