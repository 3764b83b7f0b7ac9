//! Builders shared by the worker tests: a two-port FullNAT director (client
//! port 0, server port 1, two real servers), frames as the wire carries them,
//! and a runner that passes a frame through `Worker::process`.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use lb_config::{build_snapshot, Config};
use lb_core::csum;
use lb_core::frame::Frame;
use lb_core::ids::{PortId, WorkerId};
use lb_core::steer::Peers;
use lb_core::time::Instant;
use lb_core::wire::arp::{self, ArpPacket};
use lb_core::wire::ethernet::{self, EthernetFrame};
use lb_core::wire::ipv4::{emit_header, Ipv4Packet, Ipv4Repr, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use lb_core::wire::tcp::{flags, TcpSegment};
use lb_core::wire::MacAddr;
use lb_core::worker::{Burst, Verdict, Worker, WorkerSetup};

pub const CONFIG: &str = r#"
ports:
  - { name: client, device: d0, address: 10.0.1.1/24 }
  - { name: server, device: d1, address: 10.0.2.1/24 }
local_addresses:
  - { address: 10.0.2.100, port: server }
timeouts: { established: 30, time_wait: 2, close: 1, udp: 5 }
services:
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: rr
    real_servers:
      - { address: 10.0.2.11 }
      - { address: 10.0.2.12 }
  - address: 10.0.1.100
    port: 53
    protocol: udp
    scheduler: rr
    real_servers:
      - { address: 10.0.2.11, port: 5353 }
"#;

pub const CLIENT: PortId = PortId(0);
pub const SERVER: PortId = PortId(1);
pub const DIR_MAC: [MacAddr; 2] = [MacAddr([2, 0, 0, 0, 1, 1]), MacAddr([2, 0, 0, 0, 2, 1])];
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
pub const RS1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 11]);
pub const RS2_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 12]);
pub const CIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
pub const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const RS1: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 11);
pub const RS2: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 12);

pub fn secs(s: u64) -> Instant {
    Instant(s * 1_000_000_000)
}

pub fn worker() -> Worker {
    worker_from(CONFIG)
}

pub fn worker_from(text: &str) -> Worker {
    worker_sized(text, 1024)
}

/// A worker of a one-worker director configured by `text`, with room for
/// `conn_capacity` connections.
pub fn worker_sized(text: &str, conn_capacity: usize) -> Worker {
    let config = Config::from_yaml(text).unwrap();
    let snapshot = Arc::new(build_snapshot(&config, None, 1).unwrap());
    let setup = WorkerSetup {
        id: WorkerId(0),
        port_macs: DIR_MAC.to_vec(),
        conn_capacity,
        seed: 7,
        peers: Arc::new(Peers::new(1, 0)),
    };
    Worker::new(setup, snapshot, secs(0))
}

pub fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    let mut e = EthernetFrame::new_checked(&mut f[..]).unwrap();
    e.set_dst(dst);
    e.set_src(src);
    e.set_ethertype(ethertype);
    e.payload_mut().copy_from_slice(payload);
    f
}

pub fn arp_frame(op: u16, sender: (MacAddr, Ipv4Addr), target: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut a = [0u8; arp::PACKET_LEN];
    ArpPacket::emit(&mut a[..], op, sender, target).unwrap();
    let dst = if op == arp::OP_REQUEST {
        MacAddr::BROADCAST
    } else {
        target.0
    };
    eth(dst, sender.0, ethernet::ETHERTYPE_ARP, &a)
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    let repr = Ipv4Repr {
        src,
        dst,
        protocol: proto,
        payload_len: l4.len() as u16,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: true,
    };
    emit_header(&mut p, &repr).unwrap();
    p[20..].copy_from_slice(l4);
    if proto != PROTO_ICMP {
        let at = 20 + if proto == PROTO_TCP { 16 } else { 6 };
        let pseudo = csum::pseudo_header_v4(src, dst, proto, l4.len() as u16);
        let sum = !csum::fold(csum::sum(&p[20..], pseudo));
        p[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    } else {
        let sum = csum::checksum(&p[20..]);
        p[22..24].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), tcp_flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_seq(src, dst, tcp_flags, (0, 0), payload)
}

/// A TCP segment with sequence and acknowledgement numbers `(seq, ack)`.
pub fn tcp_seq(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    tcp_flags: u8,
    (seq, ack): (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 0x50;
    t[13] = tcp_flags;
    t[14..16].copy_from_slice(&1024u16.to_be_bytes());
    t[20..].copy_from_slice(payload);
    ipv4(src.0, dst.0, PROTO_TCP, &t)
}

pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&src.1.to_be_bytes());
    u[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let len = u.len() as u16;
    u[4..6].copy_from_slice(&len.to_be_bytes());
    u[8..].copy_from_slice(payload);
    ipv4(src.0, dst.0, PROTO_UDP, &u)
}

/// Runs a frame through the worker; returns the verdict and the frame as sent.
/// Head- and tailroom around test frames, as an mbuf has.
pub const ROOM: usize = 128;

pub fn run(w: &mut Worker, now: Instant, port: PortId, bytes: Vec<u8>) -> (Verdict, Vec<u8>) {
    let len = bytes.len();
    let mut buffer = vec![0u8; ROOM + len + ROOM];
    buffer[ROOM..ROOM + len].copy_from_slice(&bytes);
    let mut frame = Frame::new(&mut buffer, ROOM, len);
    let verdict = w.process(now, port, &mut frame);
    let out = frame.data().to_vec();
    (verdict, out)
}

pub fn assert_checksums_valid(frame: &[u8]) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum(), "IP checksum");
    let l4 = csum::fold(csum::sum(ip.payload(), ip.pseudo_header_sum()));
    assert_eq!(l4, 0xffff, "L4 checksum");
}

pub fn resolve_servers(w: &mut Worker) {
    resolve_servers_at(w, secs(0));
}

/// Feeds the worker ARP replies from both servers and the client at `now`.
pub fn resolve_servers_at(w: &mut Worker, now: Instant) {
    for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC)] {
        let reply = arp_frame(
            arp::OP_REPLY,
            (mac, ip),
            (DIR_MAC[1], Ipv4Addr::new(10, 0, 2, 1)),
        );
        assert_eq!(run(w, now, SERVER, reply).0, Verdict::Consumed);
    }
    let reply = arp_frame(
        arp::OP_REPLY,
        (CLIENT_MAC, CIP),
        (DIR_MAC[0], Ipv4Addr::new(10, 0, 1, 1)),
    );
    assert_eq!(run(w, now, CLIENT, reply).0, Verdict::Consumed);
}

pub fn worker_with(extra: &str) -> Worker {
    let mut w = worker_from(&format!("{CONFIG}{extra}"));
    resolve_servers(&mut w);
    w
}

pub fn client_segment(cport: u16, tcp_flags: u8) -> Vec<u8> {
    eth(
        DIR_MAC[0],
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, cport), (VIP, 80), tcp_flags, b""),
    )
}

/// The real server and local port of a SYN the director sent (untagged
/// `sent`), and the server's SYN-ACK to it.
pub fn synack_for(sent: &[u8]) -> (Ipv4Addr, u16, Vec<u8>) {
    let ip = Ipv4Packet::new_checked(&sent[14..]).unwrap();
    let (rs, lport) = (
        ip.dst(),
        TcpSegment::new_checked(ip.payload()).unwrap().src_port(),
    );
    let mac = if rs == RS1 { RS1_MAC } else { RS2_MAC };
    let synack = eth(
        DIR_MAC[1],
        mac,
        ethernet::ETHERTYPE_IPV4,
        &tcp((rs, 80), (LIP, lport), flags::SYN | flags::ACK, b""),
    );
    (rs, lport, synack)
}

/// Sends the handshake of a client connection; returns the server it went to and
/// the local port.
pub fn handshake(w: &mut Worker, now: Instant, cport: u16) -> (Ipv4Addr, u16) {
    let (_, out) = run(w, now, CLIENT, client_segment(cport, flags::SYN));
    let (rs, lport, synack) = synack_for(&out);
    assert_eq!(run(w, now, SERVER, synack).0, Verdict::Transmit(CLIENT));
    run(w, now, CLIENT, client_segment(cport, flags::ACK));
    (rs, lport)
}

/// `n` workers of one director configured by `text`. Only worker 0 hears the
/// ARP replies of the servers and the client; the others learn them from it.
pub fn workers_sharing(text: &str, n: u16) -> Vec<Worker> {
    let config = Config::from_yaml(text).unwrap();
    let snapshot = Arc::new(build_snapshot(&config, None, usize::from(n)).unwrap());
    let peers = Arc::new(Peers::new(usize::from(n), 5));
    let mut workers: Vec<Worker> = (0..n)
        .map(|w| {
            let setup = WorkerSetup {
                id: WorkerId(w),
                port_macs: DIR_MAC.to_vec(),
                conn_capacity: 1024,
                seed: 7,
                peers: peers.clone(),
            };
            Worker::new(setup, snapshot.clone(), secs(0))
        })
        .collect();
    resolve_servers(&mut workers[0]);
    for w in &mut workers[1..] {
        w.poll(secs(0));
    }
    workers
}

/// Frames in buffers with room around them, as a burst.
pub struct Frames(pub Vec<(Vec<u8>, usize, usize)>);

impl Frames {
    pub fn new(frames: &[Vec<u8>]) -> Self {
        Frames(
            frames
                .iter()
                .map(|bytes| {
                    let mut buffer = vec![0u8; ROOM + bytes.len() + ROOM];
                    buffer[ROOM..ROOM + bytes.len()].copy_from_slice(bytes);
                    (buffer, ROOM, bytes.len())
                })
                .collect(),
        )
    }

    /// Frame `i` as it is now.
    pub fn bytes(&self, i: usize) -> &[u8] {
        let (buffer, head, len) = &self.0[i];
        &buffer[*head..*head + *len]
    }
}

impl Burst for Frames {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn data(&self, i: usize) -> &[u8] {
        self.bytes(i)
    }

    fn with_frame<R>(&mut self, i: usize, f: impl FnOnce(&mut Frame<'_>) -> R) -> R {
        let (buffer, head, len) = &mut self.0[i];
        let mut frame = Frame::new(buffer, *head, *len);
        let result = f(&mut frame);
        (*head, *len) = (frame.head(), frame.len());
        result
    }
}
