//! The forwarding modes driven through `Worker` frame by frame: DR leaves the
//! packet alone (TTL included), TUN wraps it and answers DF packets that no
//! longer fit with ICMP fragmentation-needed, NAT translates ICMP errors, and
//! fragments follow their first fragment.

use std::net::Ipv4Addr;
use std::sync::Arc;

use lb_config::{build_snapshot, Config};
use lb_core::csum;
use lb_core::frame::Frame;
use lb_core::ids::{PortId, WorkerId};
use lb_core::stats::DropReason;
use lb_core::steer::Peers;
use lb_core::time::Instant;
use lb_core::wire::arp::{self, ArpPacket};
use lb_core::wire::ethernet::{self, EthernetFrame};
use lb_core::wire::ipv4::{emit_header, Ipv4Packet, Ipv4Repr, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use lb_core::wire::MacAddr;
use lb_core::worker::{Verdict, Worker, WorkerSetup};

const CLIENT: PortId = PortId(0);
const SERVER: PortId = PortId(1);
const DIR_MAC: [MacAddr; 2] = [MacAddr([2, 0, 0, 0, 1, 1]), MacAddr([2, 0, 0, 0, 2, 1])];
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 11]);
const CIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
const RS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 11);

fn config(forward: &str, extra: &str) -> String {
    format!(
        r#"
ports:
  - {{ name: client, device: d0, address: 10.0.1.1/24 }}
  - {{ name: server, device: d1, address: 10.0.2.1/24 }}
local_addresses:
  - {{ address: 10.0.2.100, port: server }}
services:
  - {{ address: 10.0.1.100, port: 80, protocol: tcp, forward: {forward},
      real_servers: [ {{ address: 10.0.2.11 {extra} }} ] }}
  - {{ address: 10.0.1.100, port: 53, protocol: udp, forward: {forward},
      real_servers: [ {{ address: 10.0.2.11 {extra} }} ] }}
"#
    )
}

fn worker(forward: &str, extra: &str) -> Worker {
    let config = Config::from_yaml(&config(forward, extra)).unwrap();
    let snapshot = Arc::new(build_snapshot(&config, None, 1).unwrap());
    let setup = WorkerSetup {
        id: WorkerId(0),
        port_macs: DIR_MAC.to_vec(),
        conn_capacity: 1024,
        seed: 7,
        peers: Arc::new(Peers::new(1, 0)),
    };
    let mut w = Worker::new(setup, snapshot, Instant(0));
    for (mac, ip, port, dir_ip) in [
        (RS_MAC, RS, SERVER, Ipv4Addr::new(10, 0, 2, 1)),
        (CLIENT_MAC, CIP, CLIENT, Ipv4Addr::new(10, 0, 1, 1)),
    ] {
        let mut a = [0u8; arp::PACKET_LEN];
        ArpPacket::emit(
            &mut a[..],
            arp::OP_REPLY,
            (mac, ip),
            (DIR_MAC[port.index()], dir_ip),
        )
        .unwrap();
        let frame = eth(DIR_MAC[port.index()], mac, ethernet::ETHERTYPE_ARP, &a);
        assert_eq!(run(&mut w, port, &frame).0, Verdict::Consumed);
    }
    w
}

fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    let mut e = EthernetFrame::new_checked(&mut f[..]).unwrap();
    e.set_dst(dst);
    e.set_src(src);
    e.set_ethertype(ethertype);
    e.payload_mut().copy_from_slice(payload);
    f
}

/// An IPv4 packet; `frag` = (more fragments, offset in bytes); the L4 checksum is
/// computed over `l4` when `l4_csum_at` is given.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8], frag: Option<(bool, u16)>) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    let repr = Ipv4Repr {
        src,
        dst,
        protocol: proto,
        payload_len: l4.len() as u16,
        ttl: 64,
        tos: 0,
        ident: 0x4242,
        dont_fragment: frag.is_none(),
    };
    emit_header(&mut p, &repr).unwrap();
    if let Some((mf, offset)) = frag {
        let v = (offset / 8) | if mf { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&v.to_be_bytes());
        Ipv4Packet::new_checked(&mut p[..]).unwrap().fill_checksum();
    }
    p[20..].copy_from_slice(l4);
    p
}

fn with_l4_checksum(mut p: Vec<u8>) -> Vec<u8> {
    let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
    let at = 20 + if ip.protocol() == PROTO_TCP { 16 } else { 6 };
    let pseudo = ip.pseudo_header_sum();
    p[at..at + 2].fill(0);
    let sum = !csum::fold(csum::sum(&p[20..], pseudo));
    p[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    p
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&1024u16.to_be_bytes());
    t[20..].copy_from_slice(payload);
    with_l4_checksum(ipv4(src.0, dst.0, PROTO_TCP, &t, None))
}

fn udp_header(src: u16, dst: u16, len: usize) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&src.to_be_bytes());
    u[2..4].copy_from_slice(&dst.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    u
}

/// Runs an IPv4 packet (or a whole frame) through the worker, in a buffer with
/// an mbuf's 128 bytes of headroom; returns the verdict and the frame as sent.
fn run(w: &mut Worker, port: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut room = vec![0u8; 128 + frame.len() + 128];
    room[128..128 + frame.len()].copy_from_slice(frame);
    let mut f = Frame::new(&mut room, 128, frame.len());
    let verdict = w.process(Instant(1), port, &mut f);
    (verdict, f.data().to_vec())
}

fn from_client(w: &mut Worker, ip: &[u8]) -> (Verdict, Vec<u8>) {
    run(
        w,
        CLIENT,
        &eth(DIR_MAC[0], CLIENT_MAC, ethernet::ETHERTYPE_IPV4, ip),
    )
}

fn from_server(w: &mut Worker, ip: &[u8]) -> (Verdict, Vec<u8>) {
    run(
        w,
        SERVER,
        &eth(DIR_MAC[1], RS_MAC, ethernet::ETHERTYPE_IPV4, ip),
    )
}

#[test]
fn dr_changes_only_the_mac() {
    let mut w = worker("dr", "");
    let syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    let (verdict, out) = from_client(&mut w, &syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_eq!(&out[14..], &syn[..], "L3 and L4 untouched, TTL included");
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!((e.src(), e.dst()), (DIR_MAC[1], RS_MAC));
    assert_eq!(w.counters().modes.dr_to_server.get(), 1);
}

#[test]
fn tunnel_wraps_and_answers_oversized_df_packets() {
    let mut w = worker("tunnel", "");
    let syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    let (verdict, out) = from_client(&mut w, &syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert!(outer.verify_checksum());
    assert_eq!(
        (outer.src(), outer.dst(), outer.protocol(), outer.ttl()),
        (Ipv4Addr::new(10, 0, 2, 1), RS, 4, 64)
    );
    assert_eq!(outer.payload(), &syn[..]);
    // A full-sized DF segment no longer fits: fragmentation-needed, MTU 1480.
    let big = tcp((CIP, 40000), (VIP, 80), 0x10, &[0u8; 1460]);
    let (verdict, out) = from_client(&mut w, &big);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.protocol()), (VIP, CIP, PROTO_ICMP));
    assert!(ip.verify_checksum());
    let icmp = ip.payload();
    assert_eq!(&icmp[..2], &[3, 4]);
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480);
    assert_eq!(csum::checksum(icmp), 0);
    assert_eq!(&icmp[8..28], &big[..20], "quotes the client's header");
    assert_eq!(w.counters().modes.icmp_frag_needed_sent.get(), 1);
}

#[test]
fn gue_tunnels_to_the_configured_port() {
    let mut w = worker("tunnel", ", tun_type: gue, tun_port: 6080");
    let syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    let (verdict, out) = from_client(&mut w, &syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(outer.protocol(), PROTO_UDP);
    let udp = outer.payload();
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6080);
    assert_eq!(&udp[8..12], &[0, 4, 0, 0]);
    assert_eq!(&udp[12..], &syn[..]);
}

#[test]
fn nat_port_unreachable_reaches_the_client_translated() {
    let mut w = worker("nat", "");
    let mut req = udp_header(40000, 53, 12);
    req.extend_from_slice(b"ping");
    let req = with_l4_checksum(ipv4(CIP, VIP, PROTO_UDP, &req, None));
    let (verdict, sent) = from_client(&mut w, &req);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    // The server's kernel answers port unreachable, to the client's address.
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&sent[14..14 + 28]);
    let sum = csum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    // The same error forged on the client's network, about what went to the
    // server: refused before it is translated.
    let forged = ipv4(Ipv4Addr::new(10, 0, 1, 254), VIP, PROTO_ICMP, &icmp, None);
    assert_eq!(
        from_client(&mut w, &forged).0,
        Verdict::Drop(DropReason::WrongSide)
    );
    let error = ipv4(RS, CIP, PROTO_ICMP, &icmp, None);
    let (verdict, out) = from_server(&mut w, &error);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (VIP, CIP));
    assert!(ip.verify_checksum());
    assert_eq!(csum::checksum(ip.payload()), 0);
    // Inside: what the client sent (TTL aside).
    let inner = &ip.payload()[8..];
    assert_eq!(&inner[12..20], &req[12..20]);
    assert_eq!(&inner[20..28], &req[20..28]);
    assert_eq!(w.counters().modes.icmp_to_client.get(), 1);
}

#[test]
fn fragments_follow_their_first_fragment() {
    let mut w = worker("fullnat", "");
    let mut first = udp_header(40000, 53, 8 + 32);
    first.extend_from_slice(&[0xaa; 16]);
    let first = ipv4(CIP, VIP, PROTO_UDP, &first, Some((true, 0)));
    let (verdict, out) = from_client(&mut w, &first);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (LIP, RS));
    let second = ipv4(CIP, VIP, PROTO_UDP, &[0xbb; 16], Some((false, 24)));
    let (verdict, out) = from_client(&mut w, &second);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.frag_offset()), (LIP, RS, 24));
    assert!(ip.verify_checksum());
    assert_eq!(ip.payload(), &[0xbb; 16]);
    // A fragment whose first fragment was never seen.
    let mut orphan = ipv4(CIP, VIP, PROTO_UDP, &[0xcc; 16], Some((false, 24)));
    orphan[4] = 0x99;
    Ipv4Packet::new_checked(&mut orphan[..])
        .unwrap()
        .fill_checksum();
    let (verdict, _) = from_client(&mut w, &orphan);
    assert_eq!(verdict, Verdict::Drop(DropReason::FragUnmatched));
    assert_eq!(w.counters().modes.frag_forwarded.get(), 1);
}

fn drops(w: &Worker, reason: DropReason) -> u64 {
    w.counters().drops.get(reason)
}

#[test]
fn frames_not_for_the_director_are_dropped_before_any_state() {
    let mut w = worker("fullnat", "");
    let syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    for dst in [
        MacAddr([2, 0, 0, 0, 9, 9]),
        MacAddr::BROADCAST,
        MacAddr([1, 0, 0x5e, 0, 0, 1]),
    ] {
        let frame = eth(dst, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &syn);
        assert_eq!(
            run(&mut w, CLIENT, &frame).0,
            Verdict::Drop(DropReason::ForeignMac)
        );
    }
    assert_eq!(drops(&w, DropReason::ForeignMac), 3);
    assert_eq!(w.connections().count(), 0);
}

#[test]
fn martian_own_and_land_sources_are_dropped() {
    let mut w = worker("fullnat", "");
    let cases = [
        (Ipv4Addr::new(0, 0, 0, 0), DropReason::MartianSource),
        (Ipv4Addr::new(127, 0, 0, 1), DropReason::MartianSource),
        (Ipv4Addr::new(224, 0, 0, 5), DropReason::MartianSource),
        (Ipv4Addr::new(240, 0, 0, 1), DropReason::MartianSource),
        (Ipv4Addr::BROADCAST, DropReason::MartianSource),
        (Ipv4Addr::new(10, 0, 1, 255), DropReason::MartianSource),
        (Ipv4Addr::new(10, 0, 1, 1), DropReason::OwnSource),
        (LIP, DropReason::OwnSource),
        (Ipv4Addr::new(10, 0, 2, 1), DropReason::OwnSource),
        (VIP, DropReason::OwnSource),
    ];
    for (src, reason) in cases {
        let syn = tcp((src, 40000), (VIP, 80), 0x02, b"");
        assert_eq!(from_client(&mut w, &syn).0, Verdict::Drop(reason), "{src}");
    }
    assert_eq!(w.connections().count(), 0);
}

#[test]
fn land_packets_are_dropped() {
    // The VIP as source is our own address; land is checked on what is left:
    // a packet from a client to itself.
    let mut w = worker("fullnat", "");
    let p = tcp((CIP, 80), (CIP, 80), 0x02, b"");
    assert_eq!(
        from_client(&mut w, &p).0,
        Verdict::Drop(DropReason::LandPacket)
    );
}

fn rpf_worker(mode: &str) -> Worker {
    let text = config("fullnat", "").replace(
        "address: 10.0.2.1/24 }",
        &format!("address: 10.0.2.1/24 }}\n  - {{ name: other, device: d2, address: 10.0.3.1/24, rp_filter: {mode} }}"),
    );
    let config = Config::from_yaml(&text).unwrap();
    let snapshot = Arc::new(build_snapshot(&config, None, 1).unwrap());
    let mut macs = DIR_MAC.to_vec();
    macs.push(MacAddr([2, 0, 0, 0, 3, 1]));
    let setup = WorkerSetup {
        id: WorkerId(0),
        port_macs: macs,
        conn_capacity: 1024,
        seed: 7,
        peers: Arc::new(Peers::new(1, 0)),
    };
    Worker::new(setup, snapshot, Instant(0))
}

#[test]
fn reverse_path_check_strict_loose_off() {
    let other = PortId(2);
    let mac = MacAddr([2, 0, 0, 0, 3, 1]);
    // A client address whose route points out of the client port, and one with
    // no route at all, arriving on the third port.
    let wrong_port = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    let no_route = tcp((Ipv4Addr::new(192, 0, 2, 7), 40000), (VIP, 80), 0x02, b"");
    let frame = |ip: &[u8]| eth(mac, CLIENT_MAC, ethernet::ETHERTYPE_IPV4, ip);
    let rpf = Verdict::Drop(DropReason::ReversePath);
    let mut w = rpf_worker("strict");
    assert_eq!(run(&mut w, other, &frame(&wrong_port)).0, rpf);
    assert_eq!(run(&mut w, other, &frame(&no_route)).0, rpf);
    let mut w = rpf_worker("loose");
    assert_ne!(run(&mut w, other, &frame(&wrong_port)).0, rpf);
    assert_eq!(run(&mut w, other, &frame(&no_route)).0, rpf);
    let mut w = rpf_worker("off");
    assert_ne!(run(&mut w, other, &frame(&no_route)).0, rpf);
    assert_eq!(w.counters().drops.get(DropReason::ReversePath), 0);
}

/// `ip` with IPv4 `options` inserted after the header (checksums redone).
fn with_options(ip: &[u8], options: &[u8]) -> Vec<u8> {
    let mut p = ip[..20].to_vec();
    p.extend_from_slice(options);
    p.extend_from_slice(&ip[20..]);
    p[0] = 0x40 | ((20 + options.len()) / 4) as u8;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    Ipv4Packet::new_checked(&mut p[..]).unwrap().fill_checksum();
    p
}

#[test]
fn ip_options_are_dropped_or_forwarded_by_policy() {
    let syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    let nops = with_options(&syn, &[1, 1, 1, 0]);
    let record_route = with_options(&syn, &[7, 7, 4, 0, 0, 0, 0, 0]);
    let garbage = with_options(&syn, &[68, 0, 0, 0]);
    let mut w = worker("fullnat", "");
    assert_eq!(
        from_client(&mut w, &nops).0,
        Verdict::Drop(DropReason::IpOptions)
    );
    assert_eq!(w.connections().count(), 0);
    let text = format!(
        "{}policies: {{ ip_options: forward }}\n",
        config("fullnat", "")
    );
    let snapshot = Arc::new(build_snapshot(&Config::from_yaml(&text).unwrap(), None, 1).unwrap());
    w.set_snapshot(snapshot, Instant(1));
    assert_eq!(
        from_client(&mut w, &record_route).0,
        Verdict::Drop(DropReason::IpOptions)
    );
    assert_eq!(
        from_client(&mut w, &garbage).0,
        Verdict::Drop(DropReason::MalformedOptions)
    );
    assert_eq!(from_client(&mut w, &nops).0, Verdict::Transmit(SERVER));
}

#[test]
fn ttl_one_gets_time_exceeded_and_leaves_no_state() {
    let mut w = worker("fullnat", "");
    let mut syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    syn[8] = 1;
    Ipv4Packet::new_checked(&mut syn[..])
        .unwrap()
        .fill_checksum();
    let (verdict, out) = from_client(&mut w, &syn);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.protocol()), (VIP, CIP, PROTO_ICMP));
    assert!(ip.verify_checksum());
    assert_eq!(&ip.payload()[..2], &[11, 0]);
    assert_eq!(csum::checksum(ip.payload()), 0);
    assert_eq!(&ip.payload()[8..], &syn[..]);
    assert_eq!(w.connections().count(), 0);
    assert_eq!(w.counters().conns_created.get(), 0);
    assert_eq!(
        w.free_local_ports(),
        worker("fullnat", "").free_local_ports()
    );
    assert_eq!(w.counters().defence.icmp_time_exceeded_sent.get(), 1);
    assert_eq!(drops(&w, DropReason::TtlExceeded), 1);
}

#[test]
fn trailing_bytes_are_trimmed() {
    let mut w = worker("fullnat", "");
    let mut d = udp_header(40000, 53, 100 - 20);
    d.extend_from_slice(&[7u8; 72]);
    let ip = ipv4(CIP, VIP, PROTO_UDP, &d, None);
    assert_eq!(ip.len(), 100);
    let mut frame = eth(DIR_MAC[0], CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &ip);
    frame.resize(514, 0xee);
    let (verdict, out) = run(&mut w, CLIENT, &frame);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_eq!(out.len(), 100 + 14);
}

#[test]
fn over_mtu_gets_frag_needed_with_df_and_is_dropped_without() {
    let mut w = worker("nat", "");
    let syn = tcp((CIP, 40000), (VIP, 80), 0x02, b"");
    assert_eq!(from_client(&mut w, &syn).0, Verdict::Transmit(SERVER));
    let big = tcp((CIP, 40000), (VIP, 80), 0x10, &[0u8; 1500]);
    let (verdict, out) = from_client(&mut w, &big);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.protocol()), (VIP, CIP, PROTO_ICMP));
    let icmp = ip.payload();
    assert_eq!(&icmp[..2], &[3, 4]);
    assert_eq!(&icmp[6..8], &1500u16.to_be_bytes());
    assert_eq!(csum::checksum(icmp), 0);
    assert_eq!(
        &icmp[8..28],
        &big[..20],
        "quotes the packet as the client sent it"
    );
    let mut no_df = big.clone();
    no_df[6] = 0;
    Ipv4Packet::new_checked(&mut no_df[..])
        .unwrap()
        .fill_checksum();
    assert_eq!(
        from_client(&mut w, &no_df).0,
        Verdict::Drop(DropReason::TooBig)
    );
    assert_eq!(drops(&w, DropReason::TooBig), 1);
}
