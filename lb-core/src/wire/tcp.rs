//! TCP headers (RFC 9293).

use super::{get_u16, get_u32, set_u16, set_u32, WireError};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

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
        assert!(tcp.payload().is_empty());
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
