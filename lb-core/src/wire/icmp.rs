//! ICMPv4 (RFC 792).

use super::{get_u16, set_u16, WireError};
use crate::csum;

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;

/// A view of an ICMP message.
#[derive(Debug)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Views `buf` as ICMP.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpPacket { buf })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    /// Whether the checksum over the whole message is valid.
    pub fn verify_checksum(&self) -> bool {
        csum::checksum(self.buf.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets type and code, updating the checksum incrementally.
    pub fn set_type_code(&mut self, msg_type: u8, code: u8) {
        let b = self.buf.as_mut();
        let old = get_u16(b, 0);
        b[0] = msg_type;
        b[1] = code;
        let sum = csum::update16(get_u16(b, 2), old, u16::from_be_bytes([msg_type, code]));
        set_u16(b, 2, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_to_reply_keeps_checksum_valid() {
        let mut msg = [8u8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g'];
        let sum = csum::checksum(&msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut icmp = IcmpPacket::new_checked(&mut msg[..]).unwrap();
        assert!(icmp.verify_checksum());
        icmp.set_type_code(TYPE_ECHO_REPLY, 0);
        assert_eq!(icmp.msg_type(), TYPE_ECHO_REPLY);
        assert!(icmp.verify_checksum());
    }
}
