//! In-process fixtures shared by the micro-benchmarks and the tests: a
//! director configuration of any size, `lb_core` workers built from it, client
//! frames, and established flows.
//!
//! Everything that depends on `lb_core`'s constructor signatures lives here, so
//! a change there is fixed in one place.

use std::net::Ipv4Addr;
use std::sync::Arc;

use lb_config::Config;
use lb_core::frame::Frame;
use lb_core::ids::{PortId, WorkerId};
use lb_core::steer::Peers;
use lb_core::time::Instant;
use lb_core::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use lb_core::wire::tcp::flags;
use lb_core::wire::MacAddr;
use lb_core::worker::{Verdict, Worker, WorkerSetup};

use crate::pkt::{self, Headers};

/// The director's MACs on the client and server ports.
pub const DUT_MACS: [MacAddr; 2] = [
    MacAddr([0x02, 0xd0, 0, 0, 0, 0]),
    MacAddr([0x02, 0xd0, 0, 0, 0, 1]),
];
/// The client gateway of [`config_yaml`].
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The VIP of [`config_yaml`] (TCP port 80, UDP port 53).
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// First client address used by [`client_frame`].
pub const CLIENT_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 128, 0);
/// Client addresses [`client_frame`] cycles through.
pub const CLIENTS: u32 = 4096;
/// Local ports per local address (1024..=65535 for one worker).
pub const PORTS_PER_LIP: usize = 65536 - 1024;

/// The `i`-th real server address.
pub fn rip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 1, 0)) + 1 + i as u32)
}

/// The `i`-th local address.
pub fn lip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 128, 0)) + 1 + i as u32)
}

/// A one-worker FullNAT configuration in the benchmark's address plan: a TCP
/// (port 80) and a UDP (port 53) service on [`VIP`] with `servers` real servers
/// scheduled by `scheduler`, `lips` local addresses, static neighbours for the
/// gateway and every real server (so no frame waits for ARP).
pub fn config_yaml(scheduler: &str, servers: usize, lips: usize) -> String {
    config_yaml_weighted(scheduler, servers, lips, 1)
}

/// [`config_yaml`] with every real server at `weight`.
pub fn config_yaml_weighted(scheduler: &str, servers: usize, lips: usize, weight: u32) -> String {
    let mut y = String::new();
    y.push_str(
        "ports:\n  - { name: client, device: d0, address: 198.18.0.1/24 }\n  - { name: server, device: d1, address: 198.19.0.1/16 }\n",
    );
    y.push_str("routes:\n  - { destination: 0.0.0.0/0, via: 198.18.0.254, port: client }\n");
    y.push_str("neighbours:\n");
    y.push_str(&format!(
        "  - {{ address: {GATEWAY}, mac: \"{}\", port: client }}\n",
        pkt::mac_for(GATEWAY)
    ));
    for i in 0..servers {
        y.push_str(&format!(
            "  - {{ address: {}, mac: \"{}\", port: server }}\n",
            rip(i),
            pkt::mac_for(rip(i))
        ));
    }
    y.push_str("local_addresses:\n");
    for i in 0..lips {
        y.push_str(&format!("  - {{ address: {}, port: server }}\n", lip(i)));
    }
    for (proto, port) in [("tcp", 80), ("udp", 53)] {
        if proto == "tcp" {
            y.push_str("services:\n");
        }
        y.push_str(&format!(
            "  - address: {VIP}\n    port: {port}\n    protocol: {proto}\n    scheduler: {scheduler}\n    forward: fullnat\n    real_servers:\n"
        ));
        for i in 0..servers {
            y.push_str(&format!(
                "      - {{ address: {}, port: 8080, weight: {weight} }}\n",
                rip(i)
            ));
        }
    }
    y
}

/// Parses [`config_yaml`].
pub fn config(scheduler: &str, servers: usize, lips: usize) -> Config {
    Config::from_yaml(&config_yaml(scheduler, servers, lips)).expect("fixture configuration")
}

/// Parses [`config_yaml_weighted`].
pub fn config_weighted(scheduler: &str, servers: usize, lips: usize, weight: u32) -> Config {
    Config::from_yaml(&config_yaml_weighted(scheduler, servers, lips, weight))
        .expect("fixture configuration")
}

/// Expires every connection of `worker`: moves `now` past every timeout and
/// polls until the table is empty. Slots, index entries and local ports go
/// back to their free lists, so later connections reuse warm memory.
pub fn expire_all(worker: &mut Worker, now: &mut Instant) {
    *now = Instant(now.0 + 100_000 * 1_000_000_000);
    let counters = worker.counters();
    while counters.conns_live.get() > 0 {
        worker.poll(*now);
    }
}

/// A worker (id 0 of 1) for `config` with room for `capacity` connections.
pub fn worker(config: &Config, capacity: usize) -> Worker {
    let snapshot = Arc::new(lb_config::build_snapshot(config, None, 1).expect("snapshot"));
    let setup = WorkerSetup {
        id: WorkerId(0),
        port_macs: DUT_MACS.to_vec(),
        conn_capacity: capacity,
        seed: 0x5eed,
        peers: Arc::new(Peers::new(1, 0x5eed)),
    };
    Worker::new(setup, snapshot, Instant(0))
}

/// The client endpoint of flow `i`: [`CLIENTS`] addresses × ports from 1024.
pub fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(u32::from(CLIENT_BASE) + i % CLIENTS),
        1024 + (i / CLIENTS) as u16,
    )
}

/// Flows [`client`] can name (4096 addresses × 64512 ports).
pub const MAX_FLOWS: u64 = CLIENTS as u64 * 64512;

/// A 64-byte (with FCS) client → VIP frame of flow `i` into `buf`; returns its
/// length. TCP frames carry `tcp_flags`.
pub fn client_frame(buf: &mut [u8], proto: u8, i: u32, tcp_flags: u8) -> usize {
    let (cip, cport) = client(i);
    let h = Headers {
        dst_mac: DUT_MACS[0],
        src_mac: pkt::mac_for(GATEWAY),
        src: cip,
        dst: VIP,
        ttl: 64,
        ident: 1,
        proto,
        sport: cport,
        dport: if proto == PROTO_TCP { 80 } else { 53 },
        seq: 1,
        ack: 1,
        flags: tcp_flags,
    };
    let payload = pkt::payload_for_size(proto, 64).expect("64-byte frame");
    pkt::build(buf, &h, &[pkt::TAG_MAGIC, 2, 0, 0, 0, 0], payload)
}

/// Runs one frame through `worker` on the client port.
pub fn process(worker: &mut Worker, now: Instant, frame: &mut [u8]) -> Verdict {
    let len = frame.len();
    let mut f = Frame::new(frame, 0, len);
    worker.process(now, PortId(0), &mut f)
}

/// 64-byte frames, refilled in place, as a burst for [`Worker::process_burst`].
#[derive(Debug)]
pub struct FrameBurst {
    buffers: Vec<[u8; 64]>,
    lens: Vec<usize>,
}

impl FrameBurst {
    /// `n` frames.
    pub fn new(n: usize) -> Self {
        FrameBurst {
            buffers: vec![[0; 64]; n],
            lens: vec![0; n],
        }
    }

    /// Rewrites every frame with `write`, which returns its length.
    pub fn refill(&mut self, mut write: impl FnMut(&mut [u8; 64]) -> usize) {
        for (buf, len) in self.buffers.iter_mut().zip(&mut self.lens) {
            *len = write(buf);
        }
    }
}

impl lb_core::worker::Burst for FrameBurst {
    fn len(&self) -> usize {
        self.buffers.len()
    }

    fn data(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.lens[i]]
    }

    fn with_frame<R>(&mut self, i: usize, f: impl FnOnce(&mut Frame<'_>) -> R) -> R {
        let len = self.lens[i];
        let mut frame = Frame::new(&mut self.buffers[i], 0, len);
        let result = f(&mut frame);
        self.lens[i] = frame.len();
        result
    }
}

/// Local addresses needed for `flows` FullNAT connections on one worker.
pub fn lips_for(flows: u64) -> usize {
    (flows as usize).div_ceil(PORTS_PER_LIP).max(1)
}

/// A worker with `flows` established TCP (or UDP) FullNAT connections: one SYN
/// (or datagram) per flow fed through [`Worker::process`].
///
/// # Panics
/// If a flow is not forwarded.
pub fn established(proto: u8, flows: u64, servers: usize) -> Worker {
    established_after(proto, flows, servers, |_| {})
}

/// [`established`], with `prepare` run on the empty worker first (to advise its
/// table's memory, say).
pub fn established_after(
    proto: u8,
    flows: u64,
    servers: usize,
    prepare: impl FnOnce(&Worker),
) -> Worker {
    assert!(flows <= MAX_FLOWS);
    let config = config("rr", servers, lips_for(flows));
    let mut w = worker(&config, flows as usize);
    prepare(&w);
    let mut buf = [0u8; 128];
    let tcp_flags = if proto == PROTO_UDP { 0 } else { flags::SYN };
    for i in 0..flows as u32 {
        let len = client_frame(&mut buf, proto, i, tcp_flags);
        let v = process(&mut w, Instant(1), &mut buf[..len]);
        assert_eq!(v, Verdict::Transmit(PortId(1)), "flow {i}");
    }
    w
}

/// Workers `0..workers` of one director for `config`, sharing one [`Peers`]
/// (as the dataplane builds them), each with room for `capacity` connections.
pub fn workers(config: &Config, workers: usize, capacity: usize) -> Vec<Worker> {
    let snapshot = Arc::new(lb_config::build_snapshot(config, None, workers).expect("snapshot"));
    let peers = Arc::new(Peers::new(workers, 0x5eed));
    (0..workers)
        .map(|w| {
            let setup = WorkerSetup {
                id: WorkerId(w as u16),
                port_macs: DUT_MACS.to_vec(),
                conn_capacity: capacity,
                seed: 0x5eed ^ w as u64,
                peers: peers.clone(),
            };
            Worker::new(setup, snapshot.clone(), Instant(0))
        })
        .collect()
}

/// Two workers of one director with `flows` established FullNAT flows of
/// `proto` spread over them as RSS would (flow `i` on worker `i % 2`), and the
/// 64-byte server → client reply frame of every flow worker 0 owns (each
/// addressed to the local address and port worker 0 chose, so its owner is
/// computable from the port: [`lb_core::laddr::port_owner`]), and their length.
///
/// # Panics
/// If a flow is not forwarded.
pub fn established_pair(
    proto: u8,
    flows: u64,
    servers: usize,
) -> (Vec<Worker>, Vec<[u8; 64]>, usize) {
    assert!(flows <= MAX_FLOWS);
    let config = config("rr", servers, lips_for(flows));
    let mut ws = workers(&config, 2, flows as usize);
    let mut buf = [0u8; 128];
    let tcp_flags = if proto == PROTO_UDP { 0 } else { flags::SYN };
    for i in 0..flows as u32 {
        let len = client_frame(&mut buf, proto, i, tcp_flags);
        let v = process(&mut ws[i as usize % 2], Instant(1), &mut buf[..len]);
        assert_eq!(v, Verdict::Transmit(PortId(1)), "flow {i}");
    }
    let mut frame_len = 0;
    let replies = ws[0]
        .connections()
        .map(|c| {
            let ip = |a: std::net::IpAddr| match a {
                std::net::IpAddr::V4(v4) => v4,
                std::net::IpAddr::V6(_) => unreachable!("IPv4 fixture"),
            };
            let (rs, rs_port) = (ip(c.dest.0), c.dest.1);
            let (la, lport) = (ip(c.local.0), c.local.1);
            let h = Headers {
                dst_mac: DUT_MACS[1],
                src_mac: pkt::mac_for(rs),
                src: rs,
                dst: la,
                ttl: 64,
                ident: 1,
                proto,
                sport: rs_port,
                dport: lport,
                seq: 1,
                ack: 1,
                flags: if proto == PROTO_TCP { flags::ACK } else { 0 },
            };
            let payload = pkt::payload_for_size(proto, 64).expect("64-byte frame");
            let mut f = [0u8; 64];
            let len = pkt::build(&mut f, &h, &[pkt::TAG_MAGIC, 2, 0, 0, 0, 0], payload);
            assert!(len <= 64);
            frame_len = len;
            f
        })
        .collect();
    (ws, replies, frame_len)
}

/// Runs one frame through `worker` on the server port.
pub fn process_server(worker: &mut Worker, now: Instant, frame: &mut [u8]) -> Verdict {
    let len = frame.len();
    let mut f = Frame::new(frame, 0, len);
    worker.process(now, PortId(1), &mut f)
}

/// Runs a frame another worker received on the server port and handed over
/// through `owner`.
pub fn process_redirected_server(owner: &mut Worker, now: Instant, frame: &mut [u8]) -> Verdict {
    let len = frame.len();
    let mut f = Frame::new(frame, 0, len);
    owner.process_redirected(now, PortId(1), &mut f)
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A FullNAT TCP connection record as the director makes it, taken from a
/// worker that forwarded one SYN (so every field is what `lb_core` fills in).
pub fn template_conn() -> lb_core::conn::Conn {
    let w = established(PROTO_TCP, 1, 1);
    let conn = w.connections().next().expect("one connection").clone();
    conn
}

/// Connection `i` made from `template`: its own client and local endpoints
/// (distinct for every `i < 2^32`), expiring at `expires`.
pub fn conn_n(template: &lb_core::conn::Conn, i: u32, expires: Instant) -> lb_core::conn::Conn {
    use std::net::IpAddr;
    let mut c = template.clone();
    let (cip, cport) = (
        Ipv4Addr::from(u32::from(CLIENT_BASE).wrapping_add(i >> 16)),
        (i & 0xffff) as u16,
    );
    c.client = (IpAddr::V4(cip), cport);
    c.local = (IpAddr::V4(lip((i >> 16) as usize)), (i & 0xffff) as u16);
    c.expires = expires;
    c
}

/// The client-side key of [`conn_n`]`(template, i, _)`, without building the record.
#[inline]
pub fn conn_key(template: &lb_core::conn::Conn, i: u32) -> lb_core::flow::FlowKey {
    let mut key = template.client_key();
    key.src = std::net::IpAddr::V4(Ipv4Addr::from(u32::from(CLIENT_BASE).wrapping_add(i >> 16)));
    key.sport = (i & 0xffff) as u16;
    key
}

/// Writes frame after frame of established flows: a 64-byte TCP ACK template
/// whose client address and port are patched per flow, with both checksums
/// updated incrementally (what a NIC would have handed over).
#[derive(Clone, Debug)]
pub struct FlowFrames {
    template: [u8; 64],
    len: usize,
}

impl FlowFrames {
    /// Frames of `proto` (TCP with ACK, or UDP).
    pub fn new(proto: u8) -> FlowFrames {
        let mut template = [0u8; 64];
        let tcp_flags = if proto == PROTO_TCP { flags::ACK } else { 0 };
        let len = client_frame(&mut template, proto, 0, tcp_flags);
        FlowFrames { template, len }
    }

    /// Writes the frame of flow `i` into `out`; returns its length.
    #[inline]
    pub fn write(&self, out: &mut [u8; 64], i: u32) -> usize {
        use lb_core::csum::Delta;
        *out = self.template;
        let (cip, cport) = client(i);
        let (base_ip, base_port) = client(0);
        let mut ip = Delta::default();
        ip.addr(base_ip, cip);
        let mut l4 = ip;
        l4.word(base_port, cport);
        let at = pkt::ETH_LEN;
        out[at + 12..at + 16].copy_from_slice(&cip.octets());
        let ip_sum = u16::from_be_bytes([out[at + 10], out[at + 11]]);
        out[at + 10..at + 12].copy_from_slice(&ip.apply(ip_sum).to_be_bytes());
        let l4_at = at + pkt::IP_LEN;
        out[l4_at..l4_at + 2].copy_from_slice(&cport.to_be_bytes());
        let csum_at = l4_at + if out[at + 9] == PROTO_TCP { 16 } else { 6 };
        let sum = u16::from_be_bytes([out[csum_at], out[csum_at + 1]]);
        out[csum_at..csum_at + 2].copy_from_slice(&l4.apply(sum).to_be_bytes());
        self.len
    }
}

/// A walk over `0..n` that visits every index once per lap in a scattered
/// order (a stride coprime to `n`), so consecutive lookups hit unrelated
/// table buckets and cache lines, as traffic from many flows does.
#[derive(Clone, Copy, Debug)]
pub struct Scatter {
    n: u64,
    stride: u64,
    at: u64,
}

impl Scatter {
    /// A walk over `0..n`.
    pub fn new(n: u64) -> Scatter {
        let n = n.max(1);
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        // About 0.618 n, nudged until coprime with n.
        let mut stride = (n as f64 * 0.618_033_988_75) as u64 | 1;
        while gcd(stride, n) != 1 {
            stride += 2;
        }
        Scatter {
            n,
            stride: stride % n.max(2),
            at: 0,
        }
    }

    /// The next index.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u32 {
        let i = self.at;
        self.at += self.stride;
        if self.at >= self.n {
            self.at -= self.n;
        }
        i as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_frames_are_valid_and_distinct() {
        for proto in [PROTO_TCP, PROTO_UDP] {
            let frames = FlowFrames::new(proto);
            let mut buf = [0u8; 64];
            for i in [0u32, 1, 4095, 4096, 1_000_000] {
                let len = frames.write(&mut buf, i);
                let mut fresh = [0u8; 64];
                let tcp_flags = if proto == PROTO_TCP { flags::ACK } else { 0 };
                let want = client_frame(&mut fresh, proto, i, tcp_flags);
                assert_eq!(&buf[..len], &fresh[..want], "{proto} flow {i}");
            }
        }
    }

    #[test]
    fn scatter_visits_everything_once() {
        for n in [1u64, 2, 7, 1000, 4096] {
            let mut s = Scatter::new(n);
            let mut seen = vec![false; n as usize];
            for _ in 0..n {
                let i = s.next() as usize;
                assert!(!seen[i], "{n}: {i} twice");
                seen[i] = true;
            }
        }
    }

    #[test]
    fn replies_reach_their_owner_directly_or_redirected() {
        for proto in [PROTO_UDP, PROTO_TCP] {
            let (mut ws, replies, len) = established_pair(proto, 1000, 4);
            assert_eq!(replies.len(), 500);
            let (w0, w1) = ws.split_at_mut(1);
            for r in &replies {
                let mut f = *r;
                assert_eq!(
                    process_server(&mut w0[0], Instant(2), &mut f[..len]),
                    Verdict::Transmit(PortId(0))
                );
                let mut f = *r;
                assert_eq!(
                    process_server(&mut w1[0], Instant(2), &mut f[..len]),
                    Verdict::Redirect(WorkerId(0))
                );
                assert_eq!(
                    process_redirected_server(&mut w0[0], Instant(2), &mut f[..len]),
                    Verdict::Transmit(PortId(0))
                );
            }
        }
    }

    #[test]
    fn established_flows_are_in_the_table() {
        let w = established(PROTO_TCP, 70_000, 4);
        assert_eq!(w.connections().count(), 70_000);
        let c = template_conn();
        assert_ne!(
            conn_n(&c, 1, Instant(5)).client_key(),
            conn_n(&c, 2, Instant(5)).client_key()
        );
        for i in [0, 1, 70_000, 9_999_999] {
            assert_eq!(conn_key(&c, i), conn_n(&c, i, Instant(0)).client_key());
        }
    }
}
