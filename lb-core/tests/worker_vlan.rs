//! VLAN interfaces: a client network on VLAN 100 of the client port, with its
//! own address; tagged frames are answered and forwarded as on a port of their
//! own, and what leaves by the VLAN carries its tag.

use std::net::Ipv4Addr;

use lb_core::stats::DropReason;
use lb_core::wire::arp::{self, ArpPacket};
use lb_core::wire::ethernet::{self, EthernetFrame};
use lb_core::wire::ipv4::Ipv4Packet;
use lb_core::wire::tcp::flags;
use lb_core::wire::MacAddr;
use lb_core::worker::{Verdict, Worker};

mod common;
use common::*;

const VLAN_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
const VLAN_DIR: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);

fn vlan_worker() -> Worker {
    let text = CONFIG.replace(
        "  - { name: client, device: d0, address: 10.0.1.1/24 }\n",
        "  - name: client\n    device: d0\n    address: 10.0.1.1/24\n    vlans:\n      - { id: 100, address: 10.0.3.1/24 }\n",
    );
    assert_ne!(text, CONFIG, "the sample's client port line changed");
    let mut w = worker_from(&text);
    resolve_servers(&mut w);
    w
}

/// `frame` with an 802.1Q tag for `vid` after the MACs.
fn tagged(mut frame: Vec<u8>, vid: u16) -> Vec<u8> {
    let tag = [0x81, 0x00, (vid >> 8) as u8, vid as u8];
    frame.splice(12..12, tag);
    frame
}

/// The VLAN id of a tagged frame and the frame without the tag.
fn untag(frame: &[u8]) -> (Option<u16>, Vec<u8>) {
    if frame[12..14] != [0x81, 0x00] {
        return (None, frame.to_vec());
    }
    let vid = u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff;
    let mut plain = frame[..12].to_vec();
    plain.extend_from_slice(&frame[16..]);
    (Some(vid), plain)
}

#[test]
fn arp_on_a_vlan_is_answered_on_that_vlan() {
    let mut w = vlan_worker();
    let request = tagged(
        arp_frame(
            arp::OP_REQUEST,
            (CLIENT_MAC, VLAN_CLIENT),
            (MacAddr::ZERO, VLAN_DIR),
        ),
        100,
    );
    let (verdict, out) = run(&mut w, secs(1), CLIENT, request);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let (vid, plain) = untag(&out);
    assert_eq!(vid, Some(100));
    let eth = EthernetFrame::new_checked(&plain[..]).unwrap();
    assert_eq!((eth.dst(), eth.src()), (CLIENT_MAC, DIR_MAC[0]));
    let reply = ArpPacket::new_checked(eth.payload()).unwrap();
    assert_eq!(
        (reply.operation(), reply.sender_ip(), reply.target_ip()),
        (arp::OP_REPLY, VLAN_DIR, VLAN_CLIENT)
    );
    // The VLAN's address is not answered untagged, nor the port's on the VLAN.
    for (frame, what) in [
        (
            arp_frame(
                arp::OP_REQUEST,
                (CLIENT_MAC, CIP),
                (MacAddr::ZERO, VLAN_DIR),
            ),
            "untagged",
        ),
        (
            tagged(
                arp_frame(
                    arp::OP_REQUEST,
                    (CLIENT_MAC, VLAN_CLIENT),
                    (MacAddr::ZERO, Ipv4Addr::new(10, 0, 1, 1)),
                ),
                100,
            ),
            "port address on the VLAN",
        ),
    ] {
        assert_eq!(
            run(&mut w, secs(1), CLIENT, frame).0,
            Verdict::Drop(DropReason::IgnoredForeign),
            "{what}"
        );
    }
    // An address nobody has: no answer either.
    let wrong = tagged(
        arp_frame(
            arp::OP_REQUEST,
            (CLIENT_MAC, VLAN_CLIENT),
            (MacAddr::ZERO, Ipv4Addr::new(10, 0, 3, 77)),
        ),
        100,
    );
    assert_eq!(
        run(&mut w, secs(1), CLIENT, wrong).0,
        Verdict::Drop(DropReason::IgnoredForeign)
    );
}

#[test]
fn a_connection_from_a_vlan_is_forwarded_and_its_replies_go_back_tagged() {
    let mut w = vlan_worker();
    // The client on the VLAN introduces itself (its ARP request).
    let hello = tagged(
        arp_frame(
            arp::OP_REQUEST,
            (CLIENT_MAC, VLAN_CLIENT),
            (MacAddr::ZERO, VLAN_DIR),
        ),
        100,
    );
    run(&mut w, secs(1), CLIENT, hello);
    let syn = tagged(
        eth(
            DIR_MAC[0],
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &tcp((VLAN_CLIENT, 40000), (VIP, 80), flags::SYN, b""),
        ),
        100,
    );
    let (verdict, out) = run(&mut w, secs(1), CLIENT, syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_eq!(untag(&out).0, None, "the server network is untagged");
    assert_checksums_valid(&out);
    let (_, _, synack) = synack_for(&out);
    let (verdict, out) = run(&mut w, secs(1), SERVER, synack);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let (vid, plain) = untag(&out);
    assert_eq!(vid, Some(100));
    assert_checksums_valid(&plain);
    let ip = Ipv4Packet::new_checked(&plain[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (VIP, VLAN_CLIENT));
    // The connection's client side is the VLAN: the same tuple untagged is
    // from elsewhere.
    let untagged = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((VLAN_CLIENT, 40000), (VIP, 80), flags::ACK, b""),
    );
    assert!(matches!(
        run(&mut w, secs(1), CLIENT, untagged).0,
        Verdict::Drop(_)
    ));
}

#[test]
fn frames_for_other_vlans_or_with_two_tags_are_dropped() {
    let mut w = vlan_worker();
    let syn = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((VLAN_CLIENT, 40000), (VIP, 80), flags::SYN, b""),
    );
    for frame in [
        tagged(syn.clone(), 200),
        tagged(tagged(syn.clone(), 100), 100),
    ] {
        assert_eq!(
            run(&mut w, secs(1), CLIENT, frame).0,
            Verdict::Drop(DropReason::UnknownVlan)
        );
    }
    // VLAN 100 is the client port's, not the server port's.
    assert_eq!(
        run(&mut w, secs(1), SERVER, tagged(syn, 100)).0,
        Verdict::Drop(DropReason::UnknownVlan)
    );
}
