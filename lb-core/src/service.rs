//! The service model as workers see it: virtual services, their real servers and
//! the counters that outlive configuration edits.
//!
//! Objects here are immutable once published in a [`crate::snapshot::Snapshot`];
//! an edit builds new ones. What must survive an edit (counters, connection counts,
//! the overload flag) lives behind an `Arc` the control plane carries over.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::ids::{RealServerId, ServiceId, WorkerId};
use crate::sched::{Scheduler, SchedulerSpec};
use crate::stats::{Counter, Gauge};

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// The protocol for an IP protocol number, if it is one a service can have.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// `TCP` / `UDP`, as ipvsadm prints it.
    pub fn upper_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// How packets reach a real server (ipvsadm `-g`, `-i`, `-m`, and DPVS's FullNAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    /// Direct routing: only the destination MAC changes.
    Dr,
    /// IP-in-IP (or GUE) tunnelling.
    Tunnel,
    /// Destination NAT; the real server routes replies back through the director.
    Nat,
    /// Source and destination NAT through a local address.
    FullNat,
}

impl ForwardMode {
    /// The name in ipvsadm's `Forward` column.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMode::Dr => "Route",
            ForwardMode::Tunnel => "Tunnel",
            ForwardMode::Nat => "Masq",
            ForwardMode::FullNat => "FullNat",
        }
    }
}

/// The encapsulation of a tunnelled real server (ipvsadm `--tun-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// IP in IP (RFC 2003, protocol 4): 20 bytes of overhead.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (GUE, version 0) carrying IPIP: outer IPv4, UDP
    /// and a 4-byte GUE header, 32 bytes of overhead.
    Gue,
}

/// How a tunnelled real server is reached: the encapsulation and, for GUE, the
/// UDP destination port (`ipvsadm --tun-type gue --tun-port N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelSpec {
    /// Encapsulation.
    pub kind: TunnelType,
    /// GUE destination port (0 for IPIP).
    pub port: u16,
}

impl TunnelSpec {
    /// Bytes the encapsulation adds in front of the inner IPv4 packet.
    pub fn overhead(&self) -> usize {
        match self.kind {
            TunnelType::Ipip => 20,
            TunnelType::Gue => 32,
        }
    }
}

/// How a FullNAT service tells the real server the client's address, which the
/// source NAT hides (DPVS's TOA and PROXY protocol options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// Nothing: the real server sees the local address.
    #[default]
    None,
    /// TCP option 254 (length 8: port, IPv4 address) in the ACK that completes the
    /// handshake (or the first data segment when that ACK has no room).
    Toa,
    /// A PROXY protocol v1 (text) header at the start of the client's stream.
    ProxyV1,
    /// A PROXY protocol v2 (binary, 28 bytes for IPv4) header at the start of the
    /// client's stream.
    ProxyV2,
}

/// Counters of one real server on one worker.
#[derive(Debug, Default)]
pub struct DestWorkerCounters {
    /// Connections in an active state (ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK).
    pub active: Gauge,
    /// Connections in any other state.
    pub inactive: Gauge,
    /// Connections ever scheduled to this server.
    pub conns: Counter,
    /// Packets client → server.
    pub in_packets: Counter,
    /// Packets server → client.
    pub out_packets: Counter,
    /// Bytes client → server.
    pub in_bytes: Counter,
    /// Bytes server → client.
    pub out_bytes: Counter,
}

/// Sums of [`DestWorkerCounters`] over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Connections ever scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub in_packets: u64,
    /// Packets server → client.
    pub out_packets: u64,
    /// Bytes client → server.
    pub in_bytes: u64,
    /// Bytes server → client.
    pub out_bytes: u64,
}

impl TrafficTotals {
    /// Adds another total into this one.
    pub fn accumulate(&mut self, other: &TrafficTotals) {
        self.conns += other.conns;
        self.in_packets += other.in_packets;
        self.out_packets += other.out_packets;
        self.in_bytes += other.in_bytes;
        self.out_bytes += other.out_bytes;
    }
}

/// Traffic and connection counters on every worker, one cache line each so that
/// workers never write the same line. Kept across configuration edits.
#[derive(Debug)]
pub struct TrafficCells {
    per_worker: Box<[CachePadded<DestWorkerCounters>]>,
}

impl TrafficCells {
    /// Counters for `workers` workers.
    pub fn new(workers: usize) -> Self {
        TrafficCells {
            per_worker: (0..workers).map(|_| CachePadded::default()).collect(),
        }
    }

    /// The counters written by `worker`.
    #[inline]
    pub fn worker(&self, worker: WorkerId) -> &DestWorkerCounters {
        &self.per_worker[worker.index()]
    }

    /// Active connections summed over workers. Each worker's share may be stale by
    /// the packets it is processing right now (at most one burst).
    pub fn active(&self) -> u64 {
        self.per_worker.iter().map(|w| w.active.get()).sum()
    }

    /// Inactive connections summed over workers.
    pub fn inactive(&self) -> u64 {
        self.per_worker.iter().map(|w| w.inactive.get()).sum()
    }

    /// Traffic totals summed over workers.
    pub fn totals(&self) -> TrafficTotals {
        let mut t = TrafficTotals::default();
        for w in self.per_worker.iter() {
            t.accumulate(&TrafficTotals {
                conns: w.conns.get(),
                in_packets: w.in_packets.get(),
                out_packets: w.out_packets.get(),
                in_bytes: w.in_bytes.get(),
                out_bytes: w.out_bytes.get(),
            });
        }
        t
    }
}

/// Per-service counters on every worker.
pub type ServiceCounters = TrafficCells;

/// A real server's counters on every worker, plus its overload mark.
#[derive(Debug)]
pub struct DestCounters {
    cells: TrafficCells,
    overloaded: AtomicBool,
}

impl std::ops::Deref for DestCounters {
    type Target = TrafficCells;

    fn deref(&self) -> &TrafficCells {
        &self.cells
    }
}

impl DestCounters {
    /// Counters for `workers` workers.
    pub fn new(workers: usize) -> Self {
        DestCounters {
            cells: TrafficCells::new(workers),
            overloaded: AtomicBool::new(false),
        }
    }

    /// Whether the server is marked overloaded by its connection thresholds.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Sets the overload mark (any worker may; the last writer wins, as in IPVS).
    pub fn set_overloaded(&self, overloaded: bool) {
        if self.overloaded.load(Ordering::Relaxed) != overloaded {
            self.overloaded.store(overloaded, Ordering::Relaxed);
        }
    }
}

/// A real server of one service, immutable inside a snapshot.
#[derive(Debug)]
pub struct RealServer {
    /// Registry slot of this server.
    pub id: RealServerId,
    /// Changes whenever the slot is reused, so old connections can tell.
    pub serial: u32,
    /// The server's address.
    pub addr: IpAddr,
    /// The server's port (may differ from the virtual port).
    pub port: u16,
    /// Scheduling weight, 0..=65535; 0 means quiescent.
    pub weight: u32,
    /// How packets reach this server.
    pub forward: ForwardMode,
    /// Upper connection threshold (`-x`); 0 = none.
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`); 0 = none.
    pub lower_threshold: u32,
    /// Encapsulation when `forward` is [`ForwardMode::Tunnel`].
    pub tunnel: TunnelSpec,
    /// Counters shared with earlier and later versions of this server.
    pub counters: Arc<DestCounters>,
}

impl RealServer {
    /// Whether the server can take new connections: weight above zero and not
    /// overloaded. Applies IPVS's threshold hysteresis as a side effect: a server
    /// becomes overloaded at `active + inactive >= upper` and clears below `lower`
    /// (or below three quarters of `upper` when `lower` is unset).
    pub fn is_available(&self) -> bool {
        if self.weight == 0 {
            return false;
        }
        if self.upper_threshold == 0 {
            return true;
        }
        let conns = self.counters.active() + self.counters.inactive();
        let upper = u64::from(self.upper_threshold);
        let lower = if self.lower_threshold != 0 {
            u64::from(self.lower_threshold)
        } else {
            upper * 3 / 4
        };
        let overloaded = if self.counters.is_overloaded() {
            conns >= lower
        } else {
            conns >= upper
        };
        self.counters.set_overloaded(overloaded);
        !overloaded
    }

    /// IPVS's overhead: `active * 256 + inactive`, what lc-style schedulers compare.
    pub fn overhead(&self) -> u64 {
        self.counters.active() * 256 + self.counters.inactive()
    }
}

/// A virtual service, immutable inside a snapshot.
pub struct Service {
    /// Registry slot of this service.
    pub id: ServiceId,
    /// Changes whenever the slot is reused.
    pub serial: u32,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Virtual IP.
    pub vip: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// The scheduler's name and flags, as configured.
    pub scheduler_spec: SchedulerSpec,
    /// The scheduler, built for the current set of real servers.
    pub scheduler: Box<dyn Scheduler>,
    /// Established-state timeout overriding the global one.
    pub established_timeout: Option<std::time::Duration>,
    /// Client-address carrier of the service's FullNAT TCP connections.
    pub carrier: Carrier,
    /// Clamp the MSS of client SYNs to what fits a tunnelled real server's
    /// egress MTU after encapsulation.
    pub tun_mss_clamp: bool,
    /// Persistence timeout in seconds (0 = not persistent).
    pub persistence_timeout: u32,
    /// Persistence netmask (`-M`), as a prefix length.
    pub persistence_prefix: u8,
    /// Real servers in configuration order.
    pub real_servers: Vec<Arc<RealServer>>,
    /// Counters shared with earlier and later versions of this service.
    pub counters: Arc<ServiceCounters>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("protocol", &self.protocol)
            .field("vip", &self.vip)
            .field("vport", &self.vport)
            .field("scheduler", &self.scheduler_spec.name)
            .field("real_servers", &self.real_servers.len())
            .finish()
    }
}
