//! UDP headers (RFC 768).

use super::{get_u16, set_u16, WireError};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram. `new_checked` guarantees that the length field covers
/// the header and fits the buffer.
#[derive(Debug)]
pub struct UdpDatagram<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Views `buf` as UDP.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(get_u16(b, 4));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(UdpDatagram { buf })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    /// Length of header and payload.
    pub fn len(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 4))
    }

    /// Whether the datagram carries no payload.
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    /// Checksum field (0 = none).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    /// Sets the source port (checksum not touched).
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buf.as_mut(), 0, port);
    }

    /// Sets the destination port (checksum not touched).
    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buf.as_mut(), 2, port);
    }

    /// Writes the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buf.as_mut(), 6, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_length() {
        let bytes = [
            0x30, 0x39, 0x00, 0x35, 0x00, 0x0a, 0x12, 0x34, b'h', b'i', 0, 0,
        ];
        let udp = UdpDatagram::new_checked(&bytes[..]).unwrap();
        assert_eq!(udp.src_port(), 12345);
        assert_eq!(udp.dst_port(), 53);
        assert_eq!(udp.payload(), b"hi");
        let mut short = bytes;
        short[5] = 0x20;
        assert_eq!(
            UdpDatagram::new_checked(&short[..]).unwrap_err(),
            WireError::Truncated
        );
        short[5] = 0x04;
        assert_eq!(
            UdpDatagram::new_checked(&short[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
