//! Interfaces: a port, or an 802.1Q VLAN on a port with its own addresses.
//!
//! A tagged frame is matched to its VLAN interface and loses its tag at
//! ingress, so everything after works on an untagged frame and on interface
//! indexes (routes, neighbours, the sides of connections); a frame leaving by a
//! VLAN interface gets its tag back at egress, as a NIC's VLAN offload does.

use super::{Verdict, Worker};
use crate::frame::Frame;
use crate::ids::PortId;
use crate::meta::{PacketMeta, VLAN_TAG_LEN};
use crate::stats::DropReason;
use crate::wire::ethernet::ETHERTYPE_VLAN;
use crate::wire::{set_u16, MacAddr};

/// Where a tag sits: after the two MAC addresses.
const TAG_AT: usize = 12;

impl Worker {
    /// The interface of a frame received on port `device`, and the VLAN tag it
    /// had (now removed). Frames for a VLAN the port does not carry, and frames
    /// with two tags, are dropped as `unknown_vlan`.
    pub(super) fn ingress(
        &self,
        device: PortId,
        frame: &mut Frame<'_>,
        meta: &PacketMeta,
    ) -> Result<(PortId, Option<u16>), DropReason> {
        if !meta.is_tagged() {
            return Ok((device, None));
        }
        if meta.vlans[1] != 0 {
            return Err(DropReason::UnknownVlan);
        }
        let vid = meta.vlans[0];
        let iface = self
            .snapshot
            .interface(device, Some(vid))
            .ok_or(DropReason::UnknownVlan)?;
        frame
            .remove_front(TAG_AT, VLAN_TAG_LEN)
            .map_err(|_| DropReason::Malformed)?;
        Ok((iface, Some(vid)))
    }

    /// Sends a frame out of interface `iface`: with its VLAN tag, out of its port.
    pub(super) fn egress(
        &self,
        frame: &mut Frame<'_>,
        iface: PortId,
    ) -> Result<Verdict, DropReason> {
        let interface = self
            .snapshot
            .ports
            .get(iface.index())
            .ok_or(DropReason::NoRoute)?;
        if let Some(vid) = interface.vlan {
            push_tag(frame, vid)?;
        }
        Ok(Verdict::Transmit(interface.device))
    }

    /// The MAC of interface `iface` (its port's).
    pub(super) fn mac_of(&self, iface: PortId) -> Option<MacAddr> {
        let device = self.snapshot.ports.get(iface.index())?.device;
        self.port_macs.get(device.index()).copied()
    }
}

/// Puts an 802.1Q tag with VLAN `vid` (priority 0) back in front of the
/// EtherType.
pub(super) fn push_tag(frame: &mut Frame<'_>, vid: u16) -> Result<(), DropReason> {
    frame
        .insert_gap_front(TAG_AT, VLAN_TAG_LEN)
        .map_err(|_| DropReason::NoRoom)?;
    let data = frame.data_mut();
    set_u16(data, TAG_AT, ETHERTYPE_VLAN);
    set_u16(data, TAG_AT + 2, vid & 0x0fff);
    Ok(())
}
