//! The per-core entry point: one [`Worker`] per forwarding core takes frames with
//! the current time and says what to do with them.
//!
//! A worker owns its connection table, its slice of local ports and its neighbour
//! table; it reads the shared, immutable [`Snapshot`] and writes only its own
//! counters. It never allocates, locks or blocks per packet.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::conn::{
    next_state, Conn, ConnTable, Direction, SegmentSeq, Side, SidePorts, TcpEvent, TcpState,
};
use crate::flow::FlowKey;
use crate::frame::Frame;
use crate::ids::{PortId, WorkerId};
use crate::laddr::port_owner;
use crate::laddr::LocalPortPool;
use crate::meta::{Ipv4Meta, L4Meta, PacketMeta};
use crate::neigh::NeighTable;
use crate::ratelimit::{TokenBucket, ICMP_ERRORS_PER_SECOND, ICMP_ERROR_BURST};
use crate::route::NextHop;
use crate::service::{DestWorkerCounters, ForwardMode};
use crate::snapshot::{LocalKind, Snapshot};
use crate::stats::{DropReason, WorkerCounters};
use crate::steer::{NeighUpdate, Peers};
use crate::time::Instant;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::icmp::{self, IcmpPacket};
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP};
use crate::wire::tcp::flags;
use crate::wire::MacAddr;
use crate::xmit;

mod burst;
mod events;
mod guard;
mod halfopen;
mod modes;
mod open;
mod originate;
mod vlan;

use burst::Found;
pub use burst::{Burst, MAX_BURST};
use events::Events;
pub use events::{CloseReason, ConnEvent, ConnEventKind};
use originate::{Originated, Outbox};

/// What the caller does with a frame after [`Worker::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame, rewritten in place, out of this port (on the worker's queue).
    Transmit(PortId),
    /// The frame was consumed (e.g. an ARP reply that was learned); free it.
    Consumed,
    /// Drop the frame; the reason has been counted.
    Drop(DropReason),
    /// The frame belongs to a connection of another worker: hand it over (on the
    /// SPSC ring to that worker), which processes it with
    /// [`Worker::process_redirected`].
    Redirect(WorkerId),
}

/// Expiry work per [`Worker::poll`]: enough to keep up with a million connections
/// expiring per second at a few thousand polls per second, small enough that a
/// mass expiry never delays forwarding by more than a few microseconds.
pub const EXPIRE_BUDGET: usize = 256;
/// Ethernet + IPv4 offset.
const IP_AT: usize = ethernet::HEADER_LEN;
/// Neighbour entries per worker.
const NEIGH_CAPACITY: usize = 4096;

/// Sizing and identity of one worker.
#[derive(Clone, Debug)]
pub struct WorkerSetup {
    /// This worker.
    pub id: WorkerId,
    /// MAC of every port, indexed by `PortId`.
    pub port_macs: Vec<MacAddr>,
    /// Connections the worker can track.
    pub conn_capacity: usize,
    /// Seed for the connection hash (random per process).
    pub seed: u64,
    /// What all workers of the director share.
    pub peers: Arc<Peers>,
}

/// One forwarding worker's state.
#[derive(Debug)]
pub struct Worker {
    id: WorkerId,
    snapshot: Arc<Snapshot>,
    port_macs: Vec<MacAddr>,
    conns: ConnTable,
    local_ports: LocalPortPool,
    neigh: NeighTable,
    outbox: Outbox,
    events: Events,
    counters: Arc<WorkerCounters>,
    peers: Arc<Peers>,
    frags: crate::frag::FragTable,
    /// Budget for the ICMP errors this worker originates.
    icmp_errors: TokenBucket,
}

/// A connection as listed by [`Worker::list_connections`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedConn {
    /// The connection.
    pub conn: Conn,
    /// Time left before it expires.
    pub remaining: Duration,
    /// The worker that owns it.
    pub worker: WorkerId,
}

/// A listing of a worker's connections in progress (see
/// [`Worker::list_connections_step`]).
#[derive(Debug)]
pub struct ConnListing {
    service: Option<(u8, IpAddr, u16)>,
    limit: usize,
    cursor: Option<u32>,
    /// What was listed so far.
    pub listed: Vec<ListedConn>,
}

impl ConnListing {
    /// A listing of up to `limit` connections, of one service `(protocol, vip,
    /// vport)` or of all.
    pub fn new(service: Option<(u8, IpAddr, u16)>, limit: usize) -> Self {
        ConnListing {
            service,
            limit,
            cursor: Some(0),
            listed: Vec::new(),
        }
    }
}

/// Where a frame came from: a port, or another worker that handed it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Port,
    Peer,
}

/// Parsed facts about a TCP/UDP packet that the forwarding path needs.
#[derive(Clone, Copy, Debug)]
struct L4Info {
    key: FlowKey,
    ip_len: usize,
    ttl: u8,
    /// The port the frame arrived on (also for frames handed over by a peer).
    port: PortId,
    /// What a TCP segment says of its sequence space (zeros for UDP).
    seg: SegmentSeq,
}

impl L4Info {
    /// What a TCP/UDP packet (or first fragment) with flow `key`, arriving on
    /// `port`, brings to the forwarding path.
    fn new(ip: &Ipv4Meta, key: FlowKey, port: PortId) -> Self {
        L4Info {
            key,
            ip_len: usize::from(ip.total_len),
            ttl: ip.ttl,
            port,
            seg: ip.segment(),
        }
    }
}

impl Worker {
    /// A worker forwarding with `snapshot`.
    pub fn new(setup: WorkerSetup, snapshot: Arc<Snapshot>, now: Instant) -> Self {
        let mut neigh = NeighTable::new(NEIGH_CAPACITY);
        for &(ip, mac, port) in &snapshot.static_neighbours {
            neigh.add_static(ip, mac, port);
        }
        let mut worker = Worker {
            id: setup.id,
            local_ports: LocalPortPool::new(
                setup.id,
                snapshot.workers,
                &snapshot.local_addresses,
                setup.seed,
            ),
            conns: ConnTable::new(setup.conn_capacity, setup.seed, now),
            snapshot,
            port_macs: setup.port_macs,
            neigh,
            outbox: Outbox::new(),
            events: Events::new(0),
            counters: Arc::new(WorkerCounters::default()),
            peers: setup.peers,
            frags: crate::frag::FragTable::new(setup.seed),
            icmp_errors: TokenBucket::new(ICMP_ERRORS_PER_SECOND, ICMP_ERROR_BURST, now),
        };
        worker.resolve_next_hops(now);
        worker
    }

    /// Asks for the MAC of every real server's next hop before traffic needs it,
    /// so the first packet of the first connection is not dropped waiting for ARP.
    fn resolve_next_hops(&mut self, now: Instant) {
        let snapshot = self.snapshot.clone();
        let targets = snapshot
            .services()
            .flat_map(|s| s.real_servers.iter())
            .filter_map(|d| match d.addr {
                IpAddr::V4(a) => snapshot.routes.lookup(a),
                IpAddr::V6(_) => None,
            });
        for hop in targets {
            self.neighbour_mac(hop, now);
        }
    }

    /// The MAC of a next hop if known; queues an ARP request when one is due.
    fn neighbour_mac(&mut self, hop: NextHop, now: Instant) -> Option<MacAddr> {
        let resolution = self.neigh.resolve(hop.via, hop.port, now);
        if resolution.send_request {
            self.outbox.push(Originated::ArpRequest {
                port: hop.port,
                target: hop.via,
            });
        }
        resolution.mac
    }

    /// This worker's id.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// The worker's counters, for the control thread.
    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.counters.clone()
    }

    /// The snapshot the worker forwards with.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Switches to a newly published snapshot (off the per-packet path: the caller
    /// checks for a new generation once per burst).
    pub fn set_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant) {
        if snapshot.local_addresses != self.snapshot.local_addresses {
            self.local_ports.set_addresses(&snapshot.local_addresses);
        }
        for &(ip, mac, port) in &snapshot.static_neighbours {
            self.neigh.add_static(ip, mac, port);
        }
        self.snapshot = snapshot;
        self.resolve_next_hops(now);
    }

    /// Local ports this worker has free over all local addresses.
    pub fn free_local_ports(&self) -> usize {
        self.local_ports.available()
    }

    /// Lets burst lookups prefetch with `prefetch` (the data plane's prefetch
    /// instruction; see [`ConnTable::set_prefetch`]).
    pub fn set_prefetch(&mut self, prefetch: fn(usize)) {
        self.conns.set_prefetch(prefetch);
    }

    /// The memory the connection table keeps for its lifetime (for the OS layer
    /// to back with huge pages).
    pub fn conn_memory_regions(&self) -> impl Iterator<Item = crate::conn::MemoryRegion> {
        self.conns.memory_regions()
    }

    /// The live connections (for listings; walks the whole table).
    pub fn connections(&self) -> impl Iterator<Item = &Conn> + '_ {
        self.conns.iter()
    }

    /// Up to `limit` live connections, optionally only those of the service
    /// `(protocol, vip, vport)`, each with the time it has left: the whole walk
    /// at once, for tests and tools. The data plane walks in slices with
    /// [`Worker::list_connections_step`].
    pub fn list_connections(
        &self,
        now: Instant,
        service: Option<(u8, IpAddr, u16)>,
        limit: usize,
    ) -> Vec<ListedConn> {
        let mut listing = ConnListing::new(service, limit);
        while !self.list_connections_step(now, &mut listing, usize::MAX) {}
        listing.listed
    }

    /// Walks the next `slots` table slots of `listing`; whether the listing is
    /// complete. A control operation between polls: it allocates, and a slice
    /// of a few hundred slots keeps the worker away from its queues for
    /// microseconds, not for a walk of the whole table.
    pub fn list_connections_step(
        &self,
        now: Instant,
        listing: &mut ConnListing,
        slots: usize,
    ) -> bool {
        let Some(from) = listing.cursor else {
            return true;
        };
        let ConnListing {
            service,
            limit,
            listed,
            ..
        } = listing;
        listing.cursor = self.conns.walk(from, slots, |c| {
            let wanted = service.is_none_or(|(proto, vip, vport)| {
                (c.proto, c.virt.0, c.virt.1) == (proto, vip, vport)
            });
            if wanted && listed.len() < *limit {
                listed.push(ListedConn {
                    conn: c.clone(),
                    remaining: c.expires.saturating_since(now),
                    worker: self.id,
                });
            }
        });
        if listing.listed.len() >= listing.limit {
            listing.cursor = None;
        }
        listing.cursor.is_none()
    }

    /// Handles a frame another worker received on `port` and handed over because
    /// this worker owns its connection. It is never handed on again.
    pub fn process_redirected(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
    ) -> Verdict {
        self.counters.redirects_in.inc();
        let meta = PacketMeta::parse(frame.data());
        self.handle(now, port, frame, Origin::Peer, meta, None)
    }

    fn handle(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
        origin: Origin,
        meta: Result<PacketMeta, DropReason>,
        hint: Option<Found>,
    ) -> Verdict {
        let result = meta.and_then(|meta| {
            let (iface, tag) = self.ingress(port, frame, &meta)?;
            match self.dispatch(now, iface, frame, origin, &meta, hint)? {
                Verdict::Transmit(out) => self.egress(frame, out),
                Verdict::Redirect(owner) => {
                    // The owner looks at the frame as it came in.
                    if let Some(vid) = tag {
                        vlan::push_tag(frame, vid)?;
                    }
                    Ok(Verdict::Redirect(owner))
                }
                verdict => Ok(verdict),
            }
        });
        match result {
            Ok(Verdict::Redirect(owner)) => {
                self.counters.redirects_out.inc();
                Verdict::Redirect(owner)
            }
            Ok(verdict) => verdict,
            Err(reason) => {
                self.counters.drops.inc(reason);
                Verdict::Drop(reason)
            }
        }
    }

    /// Timer work: expires due connections, at most [`EXPIRE_BUDGET`] per call;
    /// and takes in neighbours other workers learned.
    pub fn poll(&mut self, now: Instant) {
        while let Some(u) = self.peers.next_neighbour(self.id) {
            self.neigh.learn(u.ip, u.mac, u.port, now);
        }
        let Worker {
            id,
            snapshot,
            conns,
            local_ports,
            counters,
            outbox,
            events,
            ..
        } = self;
        conns.expire(now, EXPIRE_BUDGET, |conn| {
            release(*id, snapshot, local_ports, counters, outbox, conn);
            events.record(ConnEventKind::Closed(CloseReason::Expired), conn);
        });
    }

    fn dispatch(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
        origin: Origin,
        meta: &PacketMeta,
        hint: Option<Found>,
    ) -> Result<Verdict, DropReason> {
        if origin == Origin::Port {
            let ours = self.mac_of(port).ok_or(DropReason::Malformed)?;
            guard::check_mac(meta.dst_mac, ours, meta.ethertype)?;
        }
        match meta.ipv4 {
            Some(ip) => self.on_ipv4(now, port, frame, origin, &ip, hint),
            None if meta.is_arp() => self.on_arp(now, port, frame),
            None => Err(DropReason::UnsupportedEthertype),
        }
    }

    fn on_arp(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
    ) -> Result<Verdict, DropReason> {
        let data = frame.data_mut();
        let packet = ArpPacket::new_checked(&data[IP_AT..]).map_err(|_| DropReason::Malformed)?;
        let (op, sender_mac, sender_ip, target_ip) = (
            packet.operation(),
            packet.sender_mac(),
            packet.sender_ip(),
            packet.target_ip(),
        );
        // An interface's own address is answered on that interface only (Linux's
        // arp_ignore=1), so a VLAN's address does not leak into the untagged
        // network; VIPs and local addresses are answered wherever asked.
        let ours = match self.snapshot.local_kind(IpAddr::V4(target_ip)) {
            Some(LocalKind::Port(iface)) => iface == port,
            Some(_) => true,
            None => false,
        };
        if (ours || op == arp::OP_REPLY) && !sender_ip.is_unspecified() {
            self.neigh.learn(sender_ip, sender_mac, port, now);
            self.peers.announce_neighbour(
                self.id,
                NeighUpdate {
                    ip: sender_ip,
                    mac: sender_mac,
                    port,
                },
            );
        }
        match op {
            arp::OP_REQUEST if ours => {
                let mac = self.mac_of(port).ok_or(DropReason::Malformed)?;
                let mut eth =
                    EthernetFrame::new_checked(&mut data[..]).map_err(|_| DropReason::Malformed)?;
                eth.set_dst(sender_mac);
                eth.set_src(mac);
                ArpPacket::emit(
                    &mut eth.payload_mut()[..arp::PACKET_LEN],
                    arp::OP_REPLY,
                    (mac, target_ip),
                    (sender_mac, sender_ip),
                )
                .map_err(|_| DropReason::Malformed)?;
                self.counters.arp_replies.inc();
                Ok(Verdict::Transmit(port))
            }
            arp::OP_REPLY => Ok(Verdict::Consumed),
            _ => Err(DropReason::IgnoredForeign),
        }
    }

    fn on_ipv4(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
        origin: Origin,
        ip: &Ipv4Meta,
        hint: Option<Found>,
    ) -> Result<Verdict, DropReason> {
        let (src, dst, proto) = (ip.src, ip.dst, ip.proto);
        if origin == Origin::Port {
            guard::check_source(&self.snapshot, port, src, dst)?;
            let header = &frame.data()[IP_AT..IP_AT + usize::from(ip.header_len)];
            guard::check_options(&self.snapshot, header, dst)?;
        }
        // Ethernet padding and trailing bytes never travel on with the packet.
        frame
            .set_len(IP_AT + usize::from(ip.total_len))
            .map_err(|_| DropReason::Malformed)?;
        if ip.is_fragment() {
            return self.on_fragment(now, port, frame, origin, ip);
        }
        let (sport, dport) = match ip.l4 {
            L4Meta::Tcp { sport, dport, .. } | L4Meta::Udp { sport, dport } => (sport, dport),
            L4Meta::Icmp { msg_type, .. } => {
                return self.on_icmp(now, port, frame, dst, msg_type, origin)
            }
            L4Meta::None => {
                return Err(match self.snapshot.local_kind(IpAddr::V4(dst)) {
                    Some(_) => DropReason::UnsupportedProtocol,
                    None => DropReason::NotLocal,
                })
            }
        };
        let info = L4Info::new(ip, FlowKey::v4(proto, src, sport, dst, dport), port);
        if let Some((idx, side)) = Found::or_lookup(hint, &self.conns, &info.key) {
            if !self.starts_afresh(idx, side, &info) {
                return self.forward(now, idx, side, info, frame);
            }
            self.remove_conn(idx, CloseReason::Removed);
        } else if origin == Origin::Port {
            if let Some(owner) = self.reply_owner(&info.key).filter(|o| *o != self.id) {
                return Ok(Verdict::Redirect(owner));
            }
        }
        let idx = match self.open_connection(now, &info) {
            Ok(idx) => idx,
            Err(DropReason::NoDest) => return self.reject_no_dest(now, frame),
            Err(DropReason::TtlExceeded) => return self.reject_ttl(now, frame),
            Err(reason) => return Err(reason),
        };
        self.forward(now, idx, Side::Client, info, frame)
    }

    /// Removes a connection before it expires, undoing what it holds.
    fn remove_conn(&mut self, idx: u32, reason: CloseReason) {
        let conn = self.conns.remove(idx);
        release(
            self.id,
            &self.snapshot,
            &mut self.local_ports,
            &self.counters,
            &mut self.outbox,
            &conn,
        );
        self.events.record(ConnEventKind::Closed(reason), &conn);
    }

    /// The worker that owns the connection of a reply this worker does not know:
    /// by local port for FullNAT (to a local address), by owner hint for NAT (to
    /// an address that is not the director's).
    fn reply_owner(&self, key: &FlowKey) -> Option<WorkerId> {
        match self.snapshot.local_kind(key.dst) {
            Some(LocalKind::LocalAddress) => Some(port_owner(key.dport, self.peers.workers())),
            None => self.peers.owner_of(key),
            Some(_) => None,
        }
    }

    /// No real server can take a new connection: as IPVS, tell the client with
    /// ICMP port unreachable (and count the drop under `no_dest`, or under
    /// `icmp_rate_limited` when the worker's ICMP budget is spent).
    fn reject_no_dest(
        &mut self,
        now: Instant,
        frame: &mut Frame<'_>,
    ) -> Result<Verdict, DropReason> {
        if !self.icmp_errors.take(now) {
            return Err(DropReason::IcmpRateLimited);
        }
        // The client's packet is consumed here, answered rather than forwarded.
        self.counters.drops.inc(DropReason::NoDest);
        let target = xmit::icmp::unreachable(frame, xmit::icmp::CODE_PORT_UNREACHABLE, 0)
            .map_err(|_| DropReason::NoDest)?;
        self.counters.icmp_unreachable_sent.inc();
        self.route(now, frame, target, false)
    }

    /// A routed packet whose TTL would expire: answered with ICMP time exceeded
    /// (within the worker's ICMP budget) and counted under `ttl_exceeded`.
    fn reject_ttl(&mut self, now: Instant, frame: &mut Frame<'_>) -> Result<Verdict, DropReason> {
        if !self.icmp_errors.take(now) {
            return Err(DropReason::IcmpRateLimited);
        }
        self.counters.drops.inc(DropReason::TtlExceeded);
        let target = xmit::icmp::time_exceeded(frame).map_err(|_| DropReason::TtlExceeded)?;
        self.counters.defence.icmp_time_exceeded_sent.inc();
        self.route(now, frame, target, false)
    }

    /// IPVS `conn_reuse_mode`: a new SYN on a connection in TIME_WAIT or CLOSE is a
    /// new connection, scheduled afresh.
    fn starts_afresh(&self, idx: u32, side: Side, info: &L4Info) -> bool {
        let conn = self.conns.get(idx);
        let tcp_flags = info.seg.flags;
        self.snapshot.policies.conn_reuse
            && side == Side::Client
            && conn
                .sides
                .expected(side)
                .is_none_or(|p| p == side_port(info.port))
            && conn.proto == PROTO_TCP
            && tcp_flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
            && matches!(conn.state, TcpState::TimeWait | TcpState::Close)
    }

    fn forward(
        &mut self,
        now: Instant,
        idx: u32,
        side: Side,
        info: L4Info,
        frame: &mut Frame<'_>,
    ) -> Result<Verdict, DropReason> {
        // A tuple is only as good as the network it comes from: a packet forged
        // with another side's addresses must not enter the connection.
        if !self
            .conns
            .get_mut(idx)
            .sides
            .admit(side, side_port(info.port))
        {
            return Err(DropReason::WrongSide);
        }
        if modes::decrements_ttl(self.conns.get(idx).forward) && info.ttl <= 1 {
            return self.reject_ttl(now, frame);
        }
        let snapshot = &self.snapshot;
        let conn = self.conns.get_mut(idx);
        if conn.proto == PROTO_TCP && conn.replies_through_director() {
            // Blind injection and resets need the sequence window to land.
            let mut seg = info.seg;
            if side == Side::Server {
                seg.ack = xmit::fullnat::client_ack(conn, seg.ack);
            }
            if conn.window.track(side, &seg).is_err() && snapshot.policies.tcp_window_check {
                return Err(DropReason::TcpOutOfWindow);
            }
        }
        let Some(dest) = snapshot.real_server(conn.real_server.0, conn.real_server.1) else {
            // The real server is gone. With expire_nodest_conn the connection dies
            // now; without, its packets are dropped until it times out.
            if snapshot.policies.expire_nodest_conn {
                self.remove_conn(idx, CloseReason::Removed);
            }
            return Err(DropReason::DestRemoved);
        };
        let dc = dest.counters.worker(self.id);
        let mut state = conn.state;
        if conn.proto == PROTO_TCP {
            let dir = match side {
                Side::Client if conn.replies_through_director() || conn.output_seen => {
                    Direction::Input
                }
                Side::Client => Direction::InputOnly,
                Side::Server => {
                    conn.output_seen = true;
                    Direction::Output
                }
            };
            if let Some(event) = TcpEvent::from_flags(info.seg.flags) {
                let next = next_state(state, dir, event);
                if next != state {
                    gauge_for(dc, state).dec();
                    gauge_for(dc, next).inc();
                    state = next;
                }
            }
        }
        let service = snapshot.service_by_id(conn.service.0, conn.service.1);
        let mut timeout = match (conn.proto, state) {
            (PROTO_TCP, TcpState::Established) => service
                .and_then(|s| s.established_timeout)
                .unwrap_or_else(|| snapshot.timeouts.tcp(TcpState::Established)),
            (PROTO_TCP, state) => snapshot.timeouts.tcp(state),
            _ => snapshot.timeouts.udp(),
        };
        let bytes = info.ip_len as u64;
        count(
            dc,
            service.map(|s| s.counters.worker(self.id)),
            bytes,
            side == Side::Client,
        );
        let (is_tcp, changed) = (conn.proto == PROTO_TCP, state != conn.state);
        if is_tcp && state.is_half_open() {
            timeout = self.half_open_timeout(timeout);
        }
        if changed {
            self.conns.set_state(idx, state);
            self.events
                .record(ConnEventKind::StateChanged, self.conns.get(idx));
        }
        let expires = now + timeout;
        self.conns.set_expires(idx, expires);
        self.transmit_conn(now, idx, side, frame)
    }

    fn on_icmp(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
        dst: Ipv4Addr,
        msg_type: u8,
        origin: Origin,
    ) -> Result<Verdict, DropReason> {
        if xmit::icmp::is_error(msg_type) {
            // Errors about tracked connections, from either side, wherever they
            // are addressed (a NAT server's go to the client's address).
            return self.icmp_error(now, port, frame, origin);
        }
        if self.snapshot.local_kind(IpAddr::V4(dst)).is_none() {
            return Err(DropReason::NotLocal);
        }
        let data = frame.data_mut();
        let (eth_bytes, rest) = data.split_at_mut(IP_AT);
        let mut ip = Ipv4Packet::new_checked(&mut rest[..]).map_err(|_| DropReason::Malformed)?;
        let mut icmp =
            IcmpPacket::new_checked(ip.payload_mut()).map_err(|_| DropReason::Malformed)?;
        if icmp.msg_type() != icmp::TYPE_ECHO_REQUEST || icmp.code() != 0 {
            return Err(DropReason::IcmpUnsupported);
        }
        if !icmp.verify_checksum() {
            return Err(DropReason::Malformed);
        }
        icmp.set_type_code(icmp::TYPE_ECHO_REPLY, 0);
        ip.swap_addresses();
        ip.set_ttl(64);
        let mut eth =
            EthernetFrame::new_checked(&mut eth_bytes[..]).map_err(|_| DropReason::Malformed)?;
        let sender = eth.src();
        eth.set_dst(sender);
        eth.set_src(self.mac_of(port).ok_or(DropReason::Malformed)?);
        self.counters.icmp_echo_replies.inc();
        Ok(Verdict::Transmit(port))
    }
}

/// A port index as a connection records it.
fn side_port(port: PortId) -> u8 {
    u8::try_from(port.0).map_or(SidePorts::UNKNOWN - 1, |p| p.min(SidePorts::UNKNOWN - 1))
}

fn gauge_for(counters: &DestWorkerCounters, state: TcpState) -> &crate::stats::Gauge {
    if state.is_active() {
        &counters.active
    } else {
        &counters.inactive
    }
}

fn count(
    dest: &DestWorkerCounters,
    service: Option<&DestWorkerCounters>,
    bytes: u64,
    inbound: bool,
) {
    for c in std::iter::once(dest).chain(service) {
        if inbound {
            c.in_packets.inc();
            c.in_bytes.add(bytes);
        } else {
            c.out_packets.inc();
            c.out_bytes.add(bytes);
        }
    }
}

/// Undoes what a connection holds: its local port, its place in the counters,
/// and for a half-open TCP connection the real server's half (a reset, so the
/// server does not hold the handshake while the port serves another client).
fn release(
    id: WorkerId,
    snapshot: &Snapshot,
    local_ports: &mut LocalPortPool,
    counters: &WorkerCounters,
    outbox: &mut Outbox,
    conn: &Conn,
) {
    if conn.state.is_half_open() {
        if let Some(reset) = Originated::reset_for(conn) {
            outbox.push(reset);
        }
    }
    if conn.forward == ForwardMode::FullNat {
        local_ports.release(conn.local.0, conn.local.1);
    }
    if let Some(dest) = snapshot.real_server(conn.real_server.0, conn.real_server.1) {
        gauge_for(dest.counters.worker(id), conn.state).dec();
    }
    counters.conns_expired.inc();
    counters.conns_live.dec();
}
