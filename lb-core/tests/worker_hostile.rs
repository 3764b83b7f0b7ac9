//! Hostile traffic against a FullNAT director: blind injection into a live
//! connection's sequence space, and SYN floods that would take every local port
//! or table slot.

use std::net::{IpAddr, Ipv4Addr};

use lb_core::conn::TcpState;
use lb_core::frame::Frame;
use lb_core::stats::DropReason;
use lb_core::time::Instant;
use lb_core::wire::ethernet::{self, EthernetFrame};
use lb_core::wire::ipv4::Ipv4Packet;
use lb_core::wire::tcp::{flags, TcpSegment};
use lb_core::worker::{Verdict, Worker};

mod common;
use common::*;

const CLIENT_ISN: u32 = 1_000;
const SERVER_ISN: u32 = 7_000_000;

fn from_client(cport: u16, tcp_flags: u8, seq_ack: (u32, u32), payload: &[u8]) -> Vec<u8> {
    from_client_at((CIP, cport), tcp_flags, seq_ack, payload)
}

fn from_client_at(
    client: (Ipv4Addr, u16),
    tcp_flags: u8,
    seq_ack: (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp_seq(client, (VIP, 80), tcp_flags, seq_ack, payload),
    )
}

fn from_server(rs: Ipv4Addr, lport: u16, tcp_flags: u8, seq_ack: (u32, u32)) -> Vec<u8> {
    let mac = if rs == RS1 { RS1_MAC } else { RS2_MAC };
    eth(
        DIR_MAC[1],
        mac,
        ethernet::ETHERTYPE_IPV4,
        &tcp_seq((rs, 80), (LIP, lport), tcp_flags, seq_ack, b""),
    )
}

/// A handshake with real sequence numbers; returns the server and local port.
fn handshake(w: &mut Worker, now: Instant, cport: u16) -> (Ipv4Addr, u16) {
    let syn = from_client(cport, flags::SYN, (CLIENT_ISN, 0), b"");
    let (verdict, out) = run(w, now, CLIENT, syn);
    assert_eq!(verdict, Verdict::Transmit(SERVER));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    let (rs, lport) = (
        ip.dst(),
        TcpSegment::new_checked(ip.payload()).unwrap().src_port(),
    );
    let synack = from_server(
        rs,
        lport,
        flags::SYN | flags::ACK,
        (SERVER_ISN, CLIENT_ISN + 1),
    );
    assert_eq!(run(w, now, SERVER, synack).0, Verdict::Transmit(CLIENT));
    let ack = from_client(cport, flags::ACK, (CLIENT_ISN + 1, SERVER_ISN + 1), b"");
    assert_eq!(run(w, now, CLIENT, ack).0, Verdict::Transmit(SERVER));
    (rs, lport)
}

fn state_of(w: &Worker, cport: u16) -> Option<TcpState> {
    w.connections()
        .find(|c| c.client.1 == cport)
        .map(|c| c.state)
}

fn drops(w: &Worker, reason: DropReason) -> u64 {
    w.counters().drops.get(reason)
}

#[test]
fn blind_resets_and_data_outside_the_window_leave_the_connection_alone() {
    let mut w = worker_with("");
    let now = secs(1);
    let (rs, lport) = handshake(&mut w, now, 40000);
    let (c, s) = (CLIENT_ISN + 1, SERVER_ISN + 1);
    let forged = [
        (
            CLIENT,
            from_client(40000, flags::RST, (c.wrapping_add(1 << 30), 0), b""),
        ),
        (
            CLIENT,
            from_client(40000, flags::RST, (c.wrapping_sub(1 << 20), 0), b""),
        ),
        (
            CLIENT,
            from_client(40000, flags::ACK, (c.wrapping_add(1 << 29), s), b"evil"),
        ),
        (
            CLIENT,
            from_client(40000, flags::ACK, (c, s.wrapping_add(1 << 25)), b"evil"),
        ),
        (
            SERVER,
            from_server(
                rs,
                lport,
                flags::RST | flags::ACK,
                (s.wrapping_add(1 << 31), c),
            ),
        ),
        (
            SERVER,
            from_server(rs, lport, flags::ACK, (s, c.wrapping_sub(1 << 24))),
        ),
    ];
    let n = forged.len() as u64;
    for (port, frame) in forged {
        assert_eq!(
            run(&mut w, now, port, frame).0,
            Verdict::Drop(DropReason::TcpOutOfWindow)
        );
    }
    assert_eq!(drops(&w, DropReason::TcpOutOfWindow), n);
    assert_eq!(state_of(&w, 40000), Some(TcpState::Established));
    // The connection still carries data both ways.
    let data = from_client(40000, flags::ACK | flags::PSH, (c, s), b"GET /");
    assert_eq!(run(&mut w, now, CLIENT, data).0, Verdict::Transmit(SERVER));
    let reply = from_server(rs, lport, flags::ACK, (s, c + 5));
    assert_eq!(run(&mut w, now, SERVER, reply).0, Verdict::Transmit(CLIENT));
    // A reset in the window is the client's own: it closes the connection.
    let rst = from_client(40000, flags::RST, (c + 5, 0), b"");
    assert_eq!(run(&mut w, now, CLIENT, rst).0, Verdict::Transmit(SERVER));
    assert_eq!(state_of(&w, 40000), Some(TcpState::Close));
}

#[test]
fn the_window_check_can_be_turned_off() {
    let mut w = worker_with("policies: { tcp_window_check: false }\n");
    let now = secs(1);
    handshake(&mut w, now, 40000);
    let rst = from_client(
        40000,
        flags::RST,
        (CLIENT_ISN.wrapping_add(1 << 30), 0),
        b"",
    );
    assert_eq!(run(&mut w, now, CLIENT, rst).0, Verdict::Transmit(SERVER));
    assert_eq!(drops(&w, DropReason::TcpOutOfWindow), 0);
}

/// A flood SYN from a spoofed client-network source.
fn flood_syn(i: u8) -> Vec<u8> {
    let src = (Ipv4Addr::new(10, 0, 1, 50 + i), 1000 + u16::from(i));
    from_client_at(src, flags::SYN, (u32::from(i) << 20, 0), b"")
}

/// The reset the worker originates next (after the ARP requests it asked at
/// start), as (source, destination, seq).
fn next_reset(w: &mut Worker, now: Instant) -> ((Ipv4Addr, u16), (Ipv4Addr, u16), u32) {
    let bytes = loop {
        let mut buf = [0u8; 256];
        let mut frame = Frame::new(&mut buf, 64, 0);
        assert_eq!(w.poll_transmit(now, &mut frame), Some(SERVER));
        let bytes = frame.data().to_vec();
        if EthernetFrame::new_checked(&bytes[..]).unwrap().ethertype() == ethernet::ETHERTYPE_IPV4 {
            break bytes;
        }
    };
    assert_checksums_valid(&bytes);
    let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(eth.src(), DIR_MAC[1]);
    assert!(eth.dst() == RS1_MAC || eth.dst() == RS2_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpSegment::new_checked(ip.payload()).unwrap();
    assert_eq!(tcp.flags(), flags::RST);
    (
        (ip.src(), tcp.src_port()),
        (ip.dst(), tcp.dst_port()),
        tcp.seq(),
    )
}

#[test]
fn a_syn_flood_gives_way_to_new_clients_and_the_servers_are_told() {
    let mut w = worker_sized(CONFIG, 8);
    resolve_servers(&mut w);
    let now = secs(1);
    for i in 0..8 {
        assert_eq!(
            run(&mut w, now, CLIENT, flood_syn(i)).0,
            Verdict::Transmit(SERVER)
        );
    }
    let first = w
        .connections()
        .find(|c| c.client.1 == 1000)
        .unwrap()
        .clone();
    // The table is full of half-open entries: a new client takes the oldest's place.
    handshake(&mut w, now, 40000);
    assert_eq!(w.counters().defence.halfopen_evicted.get(), 1);
    assert_eq!(state_of(&w, 40000), Some(TcpState::Established));
    assert_eq!(state_of(&w, 1000), None);
    // The evicted entry's server half is reset with the sequence it expects.
    let (from, to, seq) = next_reset(&mut w, now);
    assert_eq!((IpAddr::V4(from.0), from.1), first.local);
    assert_eq!((IpAddr::V4(to.0), to.1), first.dest);
    assert_eq!(seq, 1);
    assert!(!w.has_pending_transmit());
    assert_eq!(w.counters().defence.halfopen_reset_sent.get(), 1);
    // Established connections are never evicted: with only those left, a SYN
    // finds the table full.
    let mut w = worker_sized(CONFIG, 1);
    resolve_servers(&mut w);
    handshake(&mut w, now, 40000);
    assert_eq!(
        run(&mut w, now, CLIENT, flood_syn(1)).0,
        Verdict::Drop(DropReason::TableFull)
    );
    assert_eq!(state_of(&w, 40000), Some(TcpState::Established));
}

#[test]
fn half_open_entries_expire_early_under_pressure_and_reset_the_server() {
    let mut w = worker_sized(CONFIG, 8);
    resolve_servers(&mut w);
    for i in 0..7 {
        run(&mut w, secs(1), CLIENT, flood_syn(i));
    }
    // The seventh entry filled the table to seven eighths: it got the short
    // timeout, the others the 60 s of SYN_RECV.
    assert_eq!(w.counters().defence.halfopen_short_timeout.get(), 1);
    w.poll(secs(4));
    assert_eq!(w.connections().count(), 6);
    assert_eq!(state_of(&w, 1006), None);
    let (_, _, seq) = next_reset(&mut w, secs(4));
    assert_eq!(seq, (6 << 20) + 1);
}
