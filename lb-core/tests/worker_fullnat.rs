//! A FullNAT connection driven through `Worker` frame by frame, as the data plane
//! would: ARP, neighbour resolution, the TCP handshake, data, teardown and expiry.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use lb_config::{build_snapshot, Config};
use lb_core::conn::TcpState;
use lb_core::csum;
use lb_core::frame::Frame;
use lb_core::ids::WorkerId;
use lb_core::snapshot::Snapshot;
use lb_core::stats::DropReason;
use lb_core::time::Instant;
use lb_core::wire::arp::{self, ArpPacket};
use lb_core::wire::ethernet::{self, EthernetFrame};
use lb_core::wire::ipv4::{Ipv4Packet, PROTO_ICMP};
use lb_core::wire::tcp::{flags, TcpSegment};
use lb_core::wire::MacAddr;
use lb_core::worker::{Verdict, Worker};

mod common;
use common::*;

#[test]
fn answers_arp_for_vip_and_ignores_other_addresses() {
    let mut w = worker();
    let req = arp_frame(arp::OP_REQUEST, (CLIENT_MAC, CIP), (MacAddr::ZERO, VIP));
    let (verdict, out) = run(&mut w, secs(0), CLIENT, req);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (CLIENT_MAC, DIR_MAC[0]));
    let a = ArpPacket::new_checked(e.payload()).unwrap();
    assert_eq!(a.operation(), arp::OP_REPLY);
    assert_eq!((a.sender_mac(), a.sender_ip()), (DIR_MAC[0], VIP));
    assert_eq!((a.target_mac(), a.target_ip()), (CLIENT_MAC, CIP));

    let other = arp_frame(
        arp::OP_REQUEST,
        (CLIENT_MAC, CIP),
        (MacAddr::ZERO, Ipv4Addr::new(10, 0, 1, 77)),
    );
    assert_eq!(
        run(&mut w, secs(0), CLIENT, other).0,
        Verdict::Drop(DropReason::IgnoredForeign)
    );
    assert_eq!(w.counters().drops.get(DropReason::IgnoredForeign), 1);
    assert_eq!(w.counters().arp_replies.get(), 1);
}

#[test]
fn answers_ping_to_the_vip() {
    let mut w = worker();
    let echo = ipv4(CIP, VIP, PROTO_ICMP, &[8, 0, 0, 0, 0, 7, 0, 1, b'x', b'y']);
    let (verdict, out) = run(
        &mut w,
        secs(0),
        CLIENT,
        eth(DIR_MAC[0], CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &echo),
    );
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (VIP, CIP));
    assert!(ip.verify_checksum());
    assert_eq!(ip.payload()[0], 0);
    assert_eq!(csum::checksum(ip.payload()), 0);
    assert_eq!(
        EthernetFrame::new_checked(&out[..]).unwrap().dst(),
        CLIENT_MAC
    );
}

#[test]
fn next_hops_are_resolved_ahead_and_traffic_waits_for_them() {
    let mut w = worker();
    // Real servers are resolved ahead of traffic: one request each at start.
    let mut buf = [0u8; 128];
    for rs in [RS1, RS2] {
        let mut frame = Frame::new(&mut buf, 16, 0);
        assert_eq!(w.poll_transmit(secs(0), &mut frame), Some(SERVER));
        let e = EthernetFrame::new_checked(frame.data()).unwrap();
        assert_eq!(e.dst(), MacAddr::BROADCAST);
        let a = ArpPacket::new_checked(e.payload()).unwrap();
        assert_eq!(
            (a.operation(), a.sender_ip(), a.target_ip()),
            (arp::OP_REQUEST, Ipv4Addr::new(10, 0, 2, 1), rs)
        );
    }
    let mut frame = Frame::new(&mut buf, 16, 0);
    assert_eq!(w.poll_transmit(secs(0), &mut frame), None);
    assert!(!w.has_pending_transmit());
    // Until the answer comes, traffic to the server is dropped (and counted).
    let syn = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40000), (VIP, 80), flags::SYN, b""),
    );
    let (verdict, _) = run(&mut w, secs(0), CLIENT, syn.clone());
    assert_eq!(verdict, Verdict::Drop(DropReason::NeighUnresolved));
    // The server answers; the client's retransmitted SYN goes through on the same connection.
    let reply = arp_frame(
        arp::OP_REPLY,
        (RS1_MAC, RS1),
        (DIR_MAC[1], Ipv4Addr::new(10, 0, 2, 1)),
    );
    run(&mut w, secs(0), SERVER, reply);
    let (verdict, out) = run(&mut w, secs(1), CLIENT, syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_eq!(EthernetFrame::new_checked(&out[..]).unwrap().dst(), RS1_MAC);
    assert_eq!(w.connections().count(), 1);
}

#[test]
fn a_fullnat_tcp_connection_end_to_end() {
    let mut w = worker();
    resolve_servers(&mut w);
    let t0 = secs(10);
    let syn = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40000), (VIP, 80), flags::SYN, b""),
    );
    let (verdict, out) = run(&mut w, t0, CLIENT, syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_checksums_valid(&out);
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!((e.src(), e.dst()), (DIR_MAC[1], RS1_MAC));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.ttl()), (LIP, RS1, 63));
    let seg = TcpSegment::new_checked(ip.payload()).unwrap();
    let lport = seg.src_port();
    assert!(lport >= 1024);
    assert_eq!(seg.dst_port(), 80);

    // SYN-ACK from the server comes back as from the VIP.
    let synack = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((RS1, 80), (LIP, lport), flags::SYN | flags::ACK, b""),
    );
    let (verdict, out) = run(&mut w, t0, SERVER, synack);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    assert_checksums_valid(&out);
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (VIP, CIP));
    let seg = TcpSegment::new_checked(ip.payload()).unwrap();
    assert_eq!((seg.src_port(), seg.dst_port()), (80, 40000));
    assert_eq!(
        EthernetFrame::new_checked(&out[..]).unwrap().dst(),
        CLIENT_MAC
    );

    let ack = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp(
            (CIP, 40000),
            (VIP, 80),
            flags::ACK,
            b"GET / HTTP/1.0\r\n\r\n",
        ),
    );
    let (verdict, out) = run(&mut w, t0, CLIENT, ack);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_checksums_valid(&out);
    assert_eq!(w.connections().next().unwrap().state, TcpState::Established);

    // A second client connection goes to the second server (rr).
    let syn2 = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40001), (VIP, 80), flags::SYN, b""),
    );
    let (_, out) = run(&mut w, t0, CLIENT, syn2);
    assert_eq!(Ipv4Packet::new_checked(&out[14..]).unwrap().dst(), RS2);
    assert_eq!(w.connections().count(), 2);

    // Teardown: FIN from client, FIN from server, last ACK: TIME_WAIT, then expiry.
    for (port, frame) in [
        (
            CLIENT,
            eth(
                DIR_MAC[0],
                CLIENT_MAC,
                ethernet::ETHERTYPE_IPV4,
                &tcp((CIP, 40000), (VIP, 80), flags::FIN | flags::ACK, b""),
            ),
        ),
        (
            SERVER,
            eth(
                DIR_MAC[1],
                RS1_MAC,
                ethernet::ETHERTYPE_IPV4,
                &tcp((RS1, 80), (LIP, lport), flags::FIN | flags::ACK, b""),
            ),
        ),
        (
            CLIENT,
            eth(
                DIR_MAC[0],
                CLIENT_MAC,
                ethernet::ETHERTYPE_IPV4,
                &tcp((CIP, 40000), (VIP, 80), flags::ACK, b""),
            ),
        ),
    ] {
        assert!(matches!(
            run(&mut w, t0, port, frame).0,
            Verdict::Transmit(_)
        ));
    }
    let state = w.connections().find(|c| c.client.1 == 40000).unwrap().state;
    assert_eq!(state, TcpState::TimeWait);
    w.poll(t0 + Duration::from_millis(2100));
    assert!(
        w.connections().all(|c| c.client.1 != 40000),
        "TIME_WAIT entry expired after 2 s"
    );
    assert_eq!(w.connections().count(), 1);
    assert_eq!(w.counters().conns_expired.get(), 1);

    // A stray ACK for the expired connection is dropped, not scheduled.
    let stray = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40000), (VIP, 80), flags::ACK, b""),
    );
    assert_eq!(
        run(&mut w, t0 + Duration::from_secs(3), CLIENT, stray).0,
        Verdict::Drop(DropReason::NoConnection)
    );
}

#[test]
fn udp_flows_are_translated_and_expire() {
    let mut w = worker();
    resolve_servers(&mut w);
    let q = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &udp((CIP, 5000), (VIP, 53), b"query"),
    );
    let (verdict, out) = run(&mut w, secs(1), CLIENT, q);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    assert_checksums_valid(&out);
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (LIP, RS1));
    let lport = u16::from_be_bytes([ip.payload()[0], ip.payload()[1]]);
    assert_eq!(u16::from_be_bytes([ip.payload()[2], ip.payload()[3]]), 5353);
    let r = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &udp((RS1, 5353), (LIP, lport), b"answer"),
    );
    let (verdict, out) = run(&mut w, secs(1), SERVER, r);
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    assert_checksums_valid(&out);
    w.poll(secs(7));
    assert_eq!(w.connections().count(), 0);
}

#[test]
fn unknown_services_and_garbage_are_dropped_and_counted() {
    let mut w = worker();
    resolve_servers(&mut w);
    let cases = [
        (
            tcp((CIP, 1), (VIP, 81), flags::SYN, b""),
            DropReason::NoService,
        ),
        (
            tcp((CIP, 1), (Ipv4Addr::new(192, 0, 2, 1), 80), flags::SYN, b""),
            DropReason::NotLocal,
        ),
        (
            tcp((CIP, 1), (VIP, 80), flags::ACK, b""),
            DropReason::NoConnection,
        ),
    ];
    for (packet, reason) in cases {
        let f = eth(DIR_MAC[0], CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &packet);
        assert_eq!(run(&mut w, secs(0), CLIENT, f).0, Verdict::Drop(reason));
        assert_eq!(w.counters().drops.get(reason), 1);
    }
    let mut bad_csum = tcp((CIP, 1), (VIP, 80), flags::SYN, b"");
    bad_csum[10] ^= 0xff;
    let f = eth(DIR_MAC[0], CLIENT_MAC, ethernet::ETHERTYPE_IPV4, &bad_csum);
    assert_eq!(
        run(&mut w, secs(0), CLIENT, f).0,
        Verdict::Drop(DropReason::Malformed)
    );
    // Every truncation of a valid frame is dropped without a panic.
    let good = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 2), (VIP, 80), flags::SYN, b"abc"),
    );
    for len in 0..good.len() {
        let (verdict, _) = run(&mut w, secs(0), CLIENT, good[..len].to_vec());
        assert!(
            matches!(verdict, Verdict::Drop(_)),
            "length {len}: {verdict:?}"
        );
    }
}

#[test]
fn expiry_returns_local_ports_and_listing_shows_time_left() {
    let mut w = worker_with("");
    let free = w.free_local_ports();
    for cport in 0..10 {
        handshake(&mut w, secs(1), 50_000 + cport);
    }
    assert_eq!(w.free_local_ports(), free - 10);
    let listed = w.list_connections(secs(11), None, 100);
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|l| l.conn.state == TcpState::Established));
    assert!(listed
        .iter()
        .all(|l| l.remaining == Duration::from_secs(20)));
    let vip = std::net::IpAddr::V4(VIP);
    assert_eq!(w.list_connections(secs(11), Some((6, vip, 80)), 3).len(), 3);
    assert!(w
        .list_connections(secs(11), Some((17, vip, 53)), 100)
        .is_empty());
    // established: 30 s in this config; poll past it in several bounded steps.
    for t in 31..40 {
        w.poll(secs(t));
    }
    assert_eq!(w.connections().count(), 0);
    assert_eq!(w.free_local_ports(), free);
}

#[test]
fn per_service_established_timeout_overrides_the_global_one() {
    let mut w = worker_with("");
    let text = CONFIG.replace(
        "    scheduler: rr\n    real_servers:\n      - { address: 10.0.2.11 }",
        "    scheduler: rr\n    established_timeout: 5\n    real_servers:\n      - { address: 10.0.2.11 }",
    );
    assert_ne!(text, CONFIG);
    let config = Config::from_yaml(&text).unwrap();
    let next = build_snapshot(&config, Some(w.snapshot()), 1).unwrap();
    w.set_snapshot(Arc::new(next), secs(0));
    handshake(&mut w, secs(1), 40_000);
    let listed = w.list_connections(secs(1), None, 10);
    assert_eq!(listed[0].remaining, Duration::from_secs(5));
    w.poll(secs(7));
    assert_eq!(w.connections().count(), 0);
}

#[test]
fn a_syn_on_time_wait_schedules_afresh_unless_reuse_is_off() {
    for reuse in [true, false] {
        let mut w = worker_with(&format!("policies: {{ conn_reuse: {reuse} }}\n"));
        let (first, lport) = handshake(&mut w, secs(1), 40_000);
        let mac = if first == RS1 { RS1_MAC } else { RS2_MAC };
        for (port, frame) in [
            (CLIENT, client_segment(40_000, flags::FIN | flags::ACK)),
            (
                SERVER,
                eth(
                    DIR_MAC[1],
                    mac,
                    ethernet::ETHERTYPE_IPV4,
                    &tcp((first, 80), (LIP, lport), flags::FIN | flags::ACK, b""),
                ),
            ),
            (CLIENT, client_segment(40_000, flags::ACK)),
        ] {
            run(&mut w, secs(1), port, frame);
        }
        assert_eq!(w.connections().next().unwrap().state, TcpState::TimeWait);
        let (_, out) = run(&mut w, secs(1), CLIENT, client_segment(40_000, flags::SYN));
        let rs = Ipv4Packet::new_checked(&out[14..]).unwrap().dst();
        let state = w.connections().next().unwrap().state;
        if reuse {
            assert_ne!(rs, first, "rescheduled by rr to the other server");
            assert_eq!(state, TcpState::SynRecv);
            assert_eq!(w.counters().conns_created.get(), 2);
        } else {
            assert_eq!(rs, first);
            assert_eq!(state, TcpState::SynRecv);
            assert_eq!(w.counters().conns_created.get(), 1);
        }
    }
}

#[test]
fn connections_of_a_removed_server_die_or_linger_by_policy() {
    for expire in [true, false] {
        let mut w = worker_with(&format!("policies: {{ expire_nodest_conn: {expire} }}\n"));
        let (rs, _) = handshake(&mut w, secs(1), 40_000);
        assert_eq!(rs, RS1);
        let text = format!(
            "{}policies: {{ expire_nodest_conn: {expire} }}\n",
            CONFIG.replace(
                "      - { address: 10.0.2.11 }\n      - { address: 10.0.2.12 }",
                "      - { address: 10.0.2.12 }"
            )
        );
        let config = Config::from_yaml(&text).unwrap();
        let next = build_snapshot(&config, Some(w.snapshot()), 1).unwrap();
        w.set_snapshot(Arc::new(next), secs(1));
        let (verdict, _) = run(&mut w, secs(2), CLIENT, client_segment(40_000, flags::ACK));
        assert_eq!(verdict, Verdict::Drop(DropReason::DestRemoved));
        assert_eq!(w.connections().count(), usize::from(!expire));
    }
}

/// Two workers sharing one director: replies that land on the wrong worker are
/// handed to the owner, and neighbours learned by one are known to the other.
#[test]
fn replies_reach_the_owning_worker_and_neighbours_are_shared() {
    let text = CONFIG.replace(
        "    port: 53\n    protocol: udp\n    scheduler: rr\n",
        "    port: 53\n    protocol: udp\n    scheduler: rr\n    forward: nat\n",
    );
    let mut workers = workers_sharing(&text, 2);

    // FullNAT: the SYN arrives at worker 1, which takes a local port it owns.
    let (verdict, out) = run(
        &mut workers[1],
        secs(1),
        CLIENT,
        client_segment(40_000, flags::SYN),
    );
    assert_eq!(
        verdict,
        Verdict::Transmit(SERVER),
        "worker 1 knows the server's MAC"
    );
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    let lport = TcpSegment::new_checked(ip.payload()).unwrap().src_port();
    assert_eq!(lport & 1, 1, "worker 1 owns the odd local ports");
    let synack = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((RS1, 80), (LIP, lport), flags::SYN | flags::ACK, b""),
    );
    // The SYN-ACK lands on worker 0, which hands it over.
    let (verdict, frame) = run(&mut workers[0], secs(1), SERVER, synack);
    assert_eq!(verdict, Verdict::Redirect(WorkerId(1)));
    let mut bytes = frame;
    let len = bytes.len();
    let verdict =
        workers[1].process_redirected(secs(1), SERVER, &mut Frame::new(&mut bytes, 0, len));
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    assert_eq!(Ipv4Packet::new_checked(&bytes[14..]).unwrap().src(), VIP);
    assert_eq!(workers[0].counters().redirects_out.get(), 1);
    assert_eq!(workers[1].counters().redirects_in.get(), 1);

    // NAT: a UDP flow created by worker 0; the reply, to the client's address,
    // lands on worker 1, which finds the owner through the hint.
    let q = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &udp((CIP, 5000), (VIP, 53), b"q"),
    );
    assert_eq!(
        run(&mut workers[0], secs(1), CLIENT, q).0,
        Verdict::Transmit(SERVER)
    );
    let r = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &udp((RS1, 5353), (CIP, 5000), b"r"),
    );
    let (verdict, frame) = run(&mut workers[1], secs(1), SERVER, r);
    assert_eq!(verdict, Verdict::Redirect(WorkerId(0)));
    let mut bytes = frame;
    let len = bytes.len();
    let verdict =
        workers[0].process_redirected(secs(1), SERVER, &mut Frame::new(&mut bytes, 0, len));
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&bytes[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (VIP, CIP));

    // A redirected frame that the receiver does not know is dropped, not bounced.
    let stray = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((RS1, 80), (LIP, 1025), flags::ACK, b""),
    );
    let mut bytes = stray;
    let len = bytes.len();
    let verdict =
        workers[0].process_redirected(secs(1), SERVER, &mut Frame::new(&mut bytes, 0, len));
    assert!(matches!(verdict, Verdict::Drop(_)));
}

fn snapshot_of(text: &str, workers: usize) -> Arc<Snapshot> {
    Arc::new(build_snapshot(&Config::from_yaml(text).unwrap(), None, workers).unwrap())
}

/// The server a client SYN from `cport` is sent to.
fn server_for(w: &mut Worker, now: Instant, cport: u16) -> Ipv4Addr {
    let (verdict, out) = run(w, now, CLIENT, client_segment(cport, flags::SYN));
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    Ipv4Packet::new_checked(&out[14..]).unwrap().dst()
}

#[test]
fn persistence_keeps_a_client_on_one_server_across_workers_until_it_expires() {
    let text = CONFIG.replace(
        "    scheduler: rr\n    real_servers:\n      - { address: 10.0.2.11 }",
        "    scheduler: rr\n    persistence: 300\n    persistence_prefix: 24\n    real_servers:\n      - { address: 10.0.2.11 }",
    );
    let mut workers = workers_sharing(&text, 2);
    let first = server_for(&mut workers[0], secs(1), 40_000);
    for cport in 40_001..40_050 {
        let w = usize::from(cport % 2);
        assert_eq!(
            server_for(&mut workers[w], secs(2), cport),
            first,
            "port {cport}"
        );
    }
    // 300 s after the last use the template is gone and rr moves on.
    resolve_servers_at(&mut workers[0], secs(302));
    let later = server_for(&mut workers[0], secs(303), 41_000);
    assert_ne!(later, first);
}

#[test]
fn no_available_server_answers_icmp_port_unreachable() {
    let text = CONFIG.replace(
        "      - { address: 10.0.2.11 }\n      - { address: 10.0.2.12 }",
        "      - { address: 10.0.2.11, weight: 0 }\n      - { address: 10.0.2.12, weight: 0 }",
    );
    let mut w = worker_with("");
    w.set_snapshot(snapshot_of(&text, 1), secs(0));
    let syn = client_segment(40_000, flags::SYN);
    let (verdict, out) = run(&mut w, secs(1), CLIENT, syn.clone());
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.protocol()), (VIP, CIP, PROTO_ICMP));
    assert!(ip.verify_checksum());
    let icmp = ip.payload();
    assert_eq!((icmp[0], icmp[1]), (3, 3));
    assert_eq!(csum::checksum(icmp), 0);
    // The quoted packet is the client's SYN as sent.
    assert_eq!(&icmp[8..8 + 28], &syn[14..14 + 28]);
    assert_eq!(w.counters().drops.get(DropReason::NoDest), 1);
    assert_eq!(w.counters().icmp_unreachable_sent.get(), 1);
    assert_eq!(w.connections().count(), 0);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let text = CONFIG.replace(
        "      - { address: 10.0.2.11 }\n      - { address: 10.0.2.12 }",
        "      - { address: 10.0.2.11, weight: 0 }",
    );
    let mut w = worker_with("");
    w.set_snapshot(snapshot_of(&text, 1), secs(0));
    let verdicts: Vec<Verdict> = (0..300)
        .map(|i| {
            run(
                &mut w,
                secs(1),
                CLIENT,
                client_segment(40_000 + i, flags::SYN),
            )
            .0
        })
        .collect();
    let sent = verdicts
        .iter()
        .filter(|v| **v == Verdict::Transmit(CLIENT))
        .count();
    assert_eq!(sent, lb_core::ratelimit::ICMP_ERROR_BURST as usize);
    // Each packet counts once: answered (no_dest) or suppressed (rate limited).
    assert_eq!(w.counters().drops.get(DropReason::NoDest), 100);
    assert_eq!(w.counters().drops.get(DropReason::IcmpRateLimited), 200);
    // A second later the budget is back.
    let (verdict, _) = run(&mut w, secs(2), CLIENT, client_segment(41_000, flags::SYN));
    assert_eq!(verdict, Verdict::Transmit(CLIENT));
}

#[test]
fn a_packet_matching_a_tuple_from_the_wrong_port_is_dropped_and_the_connection_kept() {
    // Without the reverse-path check (which would catch these forgeries first),
    // so that the connection's own side check is what refuses them.
    let text = CONFIG
        .replace("10.0.1.1/24 }", "10.0.1.1/24, rp_filter: off }")
        .replace("10.0.2.1/24 }", "10.0.2.1/24, rp_filter: off }");
    let mut w = worker_from(&text);
    resolve_servers(&mut w);
    let t0 = secs(10);
    let syn = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40000), (VIP, 80), flags::SYN, b""),
    );
    let (verdict, out) = run(&mut w, t0, CLIENT, syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    let lport = TcpSegment::new_checked(ip.payload()).unwrap().src_port();
    // A forged reply from the server's address, arriving from the client network.
    let forged = eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((RS1, 80), (LIP, lport), flags::RST, b""),
    );
    assert_eq!(
        run(&mut w, t0, CLIENT, forged).0,
        Verdict::Drop(DropReason::WrongSide)
    );
    // A forged client packet from the server network.
    let forged = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40000), (VIP, 80), flags::ACK, b"x"),
    );
    assert_eq!(
        run(&mut w, t0, SERVER, forged).0,
        Verdict::Drop(DropReason::WrongSide)
    );
    assert_eq!(w.counters().drops.get(DropReason::WrongSide), 2);
    let conn = w.connections().next().unwrap();
    assert_eq!(conn.state, TcpState::SynRecv);
    // The real reply, on the server port, still goes through.
    let synack = eth(
        DIR_MAC[1],
        RS1_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((RS1, 80), (LIP, lport), flags::SYN | flags::ACK, b""),
    );
    assert_eq!(run(&mut w, t0, SERVER, synack).0, Verdict::Transmit(CLIENT));
}
