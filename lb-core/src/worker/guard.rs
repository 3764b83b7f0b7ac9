//! Checks a frame passes before any connection state is looked up or created:
//! whether it is addressed to the director at all (destination MAC), whether
//! its source could be genuine (martians, our own addresses, land, the
//! reverse path) and whether its IPv4 options are acceptable.
//!
//! Frames handed over by another worker passed these on the worker that
//! received them and are not checked again.

use std::net::{IpAddr, Ipv4Addr};

use crate::ids::PortId;
use crate::policy::{IpOptionsPolicy, RpFilter};
use crate::snapshot::{LocalKind, Snapshot};
use crate::stats::DropReason;
use crate::wire::ethernet;
use crate::wire::MacAddr;

/// Whether a frame with destination `dst` and `ethertype`, received on a port
/// whose MAC is `ours`, is for the director. As Linux's PACKET_HOST: unicast to
/// the port, and broadcast only for ARP. The director joins no IPv4 multicast
/// group; ND and VRRP groups will be accepted here when they are joined.
pub(super) fn check_mac(dst: MacAddr, ours: MacAddr, ethertype: u16) -> Result<(), DropReason> {
    if dst == ours {
        return Ok(());
    }
    if dst == MacAddr::BROADCAST && ethertype == ethernet::ETHERTYPE_ARP {
        return Ok(());
    }
    Err(DropReason::ForeignMac)
}

/// Source-address checks of an IPv4 packet from `src` to `dst` received on
/// `port`, in the order: martian, our own address, land, reverse path.
pub(super) fn check_source(
    snapshot: &Snapshot,
    port: PortId,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<(), DropReason> {
    let first = src.octets()[0];
    // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 reserved
    // (255.255.255.255 included).
    if first == 0 || first == 127 || first >= 224 {
        return Err(DropReason::MartianSource);
    }
    let Some(ingress) = snapshot.ports.get(port.index()) else {
        return Err(DropReason::Malformed);
    };
    let cidr = ingress.cidr;
    if cidr.prefix < 31 && cidr.contains(src) && u32::from(src) | cidr.mask() == u32::MAX {
        return Err(DropReason::MartianSource);
    }
    if snapshot.local_kind(IpAddr::V4(src)).is_some() {
        return Err(DropReason::OwnSource);
    }
    if src == dst {
        return Err(DropReason::LandPacket);
    }
    match ingress.rp_filter {
        RpFilter::Off => Ok(()),
        RpFilter::Loose => match snapshot.routes.lookup(src) {
            Some(_) => Ok(()),
            None => Err(DropReason::ReversePath),
        },
        RpFilter::Strict => match snapshot.routes.lookup(src) {
            Some(hop) if hop.port == port => Ok(()),
            _ => Err(DropReason::ReversePath),
        },
    }
}

/// Option types that change nothing on the path: end of list, no-op, router
/// alert (RFC 2113, which a director has no reason to act on).
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_ROUTER_ALERT: u8 = 148;

/// The IPv4 options policy for a packet with `header` (the whole IPv4 header,
/// options included) addressed to `dst`. Only packets to a VIP are subject to
/// the policy; a malformed option list is refused whatever the destination.
pub(super) fn check_options(
    snapshot: &Snapshot,
    header: &[u8],
    dst: Ipv4Addr,
) -> Result<(), DropReason> {
    let Some(options) = header.get(20..).filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    let harmless = walk_options(options)?;
    let to_vip = snapshot.local_kind(IpAddr::V4(dst)) == Some(LocalKind::Vip);
    match snapshot.policies.ip_options {
        _ if !to_vip => Ok(()),
        IpOptionsPolicy::Forward if harmless => Ok(()),
        _ => Err(DropReason::IpOptions),
    }
}

/// Walks an option list; whether every option is harmless. Zero or overlong
/// lengths make it malformed.
fn walk_options(options: &[u8]) -> Result<bool, DropReason> {
    let mut harmless = true;
    let mut at = 0;
    while at < options.len() {
        let kind = options[at];
        match kind {
            OPT_EOL => break,
            OPT_NOP => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*options.get(at + 1).ok_or(DropReason::MalformedOptions)?);
        if len < 2 || at + len > options.len() {
            return Err(DropReason::MalformedOptions);
        }
        // Record route (7), timestamp (68), loose (131) and strict (137) source
        // route, and everything not known, are refused.
        harmless &= kind == OPT_ROUTER_ALERT && len == 4;
        at += len;
    }
    Ok(harmless)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_lists() {
        assert_eq!(walk_options(&[1, 1, 1, 0]), Ok(true));
        assert_eq!(walk_options(&[148, 4, 0, 0]), Ok(true));
        assert_eq!(walk_options(&[7, 7, 4, 0, 0, 0, 0, 0]), Ok(false));
        assert_eq!(walk_options(&[131, 3, 4, 0]), Ok(false));
        assert_eq!(
            walk_options(&[68, 0, 0, 0]),
            Err(DropReason::MalformedOptions)
        );
        assert_eq!(
            walk_options(&[68, 12, 0, 0]),
            Err(DropReason::MalformedOptions)
        );
        assert_eq!(
            walk_options(&[1, 1, 1, 68]),
            Err(DropReason::MalformedOptions)
        );
        assert_eq!(walk_options(&[0, 99, 99, 99]), Ok(true));
    }

    #[test]
    fn mac_filter() {
        let ours = MacAddr([2, 0, 0, 0, 0, 1]);
        let v4 = ethernet::ETHERTYPE_IPV4;
        assert_eq!(check_mac(ours, ours, v4), Ok(()));
        assert_eq!(
            check_mac(MacAddr::BROADCAST, ours, ethernet::ETHERTYPE_ARP),
            Ok(())
        );
        assert!(check_mac(MacAddr::BROADCAST, ours, v4).is_err());
        assert!(check_mac(MacAddr([1, 0, 0x5e, 0, 0, 1]), ours, v4).is_err());
        assert!(check_mac(MacAddr([2, 0, 0, 0, 0, 2]), ours, v4).is_err());
    }
}
