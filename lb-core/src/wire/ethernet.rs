//! Ethernet II frames.

use super::{get_u16, set_u16, MacAddr, WireError};

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// A view of an Ethernet II frame.
#[derive(Debug)]
pub struct EthernetFrame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Views `buf` as a frame, checking that the header fits.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buf })
    }

    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[0..6]);
        MacAddr(m)
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[6..12]);
        MacAddr(m)
    }

    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buf.as_ref(), 12)
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buf.as_mut()[0..6].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buf.as_mut()[6..12].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        set_u16(self.buf.as_mut(), 12, ethertype);
    }

    /// The bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_fields() {
        let mut bytes = [0u8; 20];
        let mut f = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        f.set_dst(MacAddr::BROADCAST);
        f.set_src(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(ETHERTYPE_ARP);
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.payload().len(), 6);
        assert_eq!(&bytes[12..14], &[0x08, 0x06]);
    }

    #[test]
    fn short_frame_is_truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
