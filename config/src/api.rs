//! The control protocol between `lb-ctl` and the director: versioned JSON, one
//! request and one response per line over the Unix control socket. See
//! `docs/control-protocol.md`.
//!
//! These are plain data types; the director fills them from snapshots and counters,
//! `lb-ctl` formats them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use lb_core::service::{ForwardMode, Protocol, TrafficTotals};
use serde::{Deserialize, Serialize};
pub use serde_yaml_ng::Mapping;

use crate::forms::{ForwardModeForm, ProtocolForm, TrafficTotalsForm};
use crate::model::{Config, RealServerConfig, ServiceConfig};

/// Protocol version spoken by this build.
pub const VERSION: u32 = 1;

/// A request from lb-ctl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version of the client.
    pub version: u32,
    /// What is asked.
    #[serde(flatten)]
    pub command: Command,
}

/// The commands the director understands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Services, real servers and their counters (since the last zero) and rates.
    ListServices,
    /// Director-wide status: workers, ports, counters.
    Status,
    /// Re-read the configuration file and apply it atomically. The file replaces
    /// the running configuration, runtime edits included.
    Reload,
    /// Apply edits to the running configuration as one atomic change: all of them
    /// or, on the first error, none.
    Apply {
        /// The edits, applied in order to a copy of the running configuration.
        edits: Vec<Edit>,
    },
    /// Zero the service and real-server counters as listed (ipvsadm `-Z`): the
    /// director remembers a baseline; the workers' counters (and `/metrics`) keep
    /// counting.
    Zero {
        /// Only this service and its real servers; all when absent.
        #[serde(default)]
        service: Option<ServiceKey>,
    },
    /// Connections in the workers' tables (ipvsadm `-L -c`).
    ListConnections {
        /// Only connections to this service.
        #[serde(default)]
        service: Option<ServiceKey>,
        /// At most this many (default [`DEFAULT_CONNECTION_LIMIT`]).
        #[serde(default)]
        limit: Option<u64>,
    },
    /// The running configuration (the YAML model, runtime edits included).
    GetConfig,
}

/// Connections listed when a request names no limit.
pub const DEFAULT_CONNECTION_LIMIT: u64 = 100_000;

/// A virtual service's identity: protocol, virtual address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    /// tcp or udp.
    #[serde(with = "ProtocolForm")]
    pub protocol: Protocol,
    /// Virtual IP.
    pub address: IpAddr,
    /// Virtual port.
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    /// `TCP 10.0.1.100:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.upper_name(),
            SocketAddr::new(self.address, self.port)
        )
    }
}

/// One change to the running configuration. Field names in `set` maps are the
/// YAML names of `docs/configuration.md`; a `null` value resets a field to its
/// default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    /// Add a service (ipvsadm `-A`); it must not exist yet.
    AddService {
        /// The service, real servers included, as in the YAML file.
        service: ServiceConfig,
    },
    /// Change settings of a service (ipvsadm `-E`).
    EditService {
        /// Which service.
        service: ServiceKey,
        /// Fields to set (any service field but `address`, `port`, `protocol` and
        /// `real_servers`), e.g. `{"scheduler": "wrr", "persistence": 300}`.
        set: Mapping,
    },
    /// Remove a service and its real servers (ipvsadm `-D`).
    DeleteService {
        /// Which service.
        service: ServiceKey,
    },
    /// Remove every service (ipvsadm `-C`).
    Clear,
    /// Add a real server to a service (ipvsadm `-a`); it must not exist yet.
    AddRealServer {
        /// The service.
        service: ServiceKey,
        /// The real server, as in the YAML file.
        server: RealServerConfig,
    },
    /// Change settings of a real server (ipvsadm `-e`).
    EditRealServer {
        /// The service.
        service: ServiceKey,
        /// The real server's address.
        address: IpAddr,
        /// Its port; absent = the virtual port.
        #[serde(default)]
        port: Option<u16>,
        /// Fields to set (any real-server field but `address` and `port`), e.g.
        /// `{"weight": 3, "forward": "nat"}`.
        set: Mapping,
    },
    /// Remove a real server from a service (ipvsadm `-d`).
    DeleteRealServer {
        /// The service.
        service: ServiceKey,
        /// The real server's address.
        address: IpAddr,
        /// Its port; absent = the virtual port.
        #[serde(default)]
        port: Option<u16>,
    },
    /// ipvsadm `--set tcp tcpfin udp`: the ESTABLISHED, FIN_WAIT and UDP
    /// timeouts in seconds; 0 leaves a value unchanged.
    SetTimeouts {
        /// ESTABLISHED.
        tcp: u32,
        /// FIN_WAIT.
        tcpfin: u32,
        /// UDP.
        udp: u32,
    },
    /// Set one timeout by its name in `timeouts` (`time_wait`, `syn_recv`, …;
    /// `tcp` and `tcpfin` are aliases of `established` and `fin_wait`).
    SetTimeout {
        /// The state (field) name.
        state: String,
        /// Seconds.
        seconds: u32,
    },
    /// Add a FullNAT local address (DPVS `--add-laddr`).
    AddLocalAddress {
        /// The address.
        address: IpAddr,
        /// The director port it lives on; absent = the port whose subnet holds it.
        #[serde(default)]
        port: Option<String>,
    },
    /// Remove a FullNAT local address (DPVS `--del-laddr`).
    DeleteLocalAddress {
        /// The address.
        address: IpAddr,
    },
}

impl Edit {
    /// The snake_case name of the edit, as in the protocol.
    pub fn name(&self) -> &'static str {
        match self {
            Edit::AddService { .. } => "add_service",
            Edit::EditService { .. } => "edit_service",
            Edit::DeleteService { .. } => "delete_service",
            Edit::Clear => "clear",
            Edit::AddRealServer { .. } => "add_real_server",
            Edit::EditRealServer { .. } => "edit_real_server",
            Edit::DeleteRealServer { .. } => "delete_real_server",
            Edit::SetTimeouts { .. } => "set_timeouts",
            Edit::SetTimeout { .. } => "set_timeout",
            Edit::AddLocalAddress { .. } => "add_local_address",
            Edit::DeleteLocalAddress { .. } => "delete_local_address",
        }
    }
}

/// The director's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The command failed; nothing was changed.
    Error {
        /// One line saying why.
        message: String,
        /// For [`Command::Apply`]: the index of the edit that failed, when one did
        /// (absent when the combined result was rejected).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit: Option<usize>,
    },
    /// Answer to [`Command::ListServices`].
    Services {
        /// Connection-table capacity over all workers.
        conn_capacity: u64,
        /// Every service.
        services: Vec<ServiceView>,
    },
    /// Answer to [`Command::Status`].
    Status(StatusView),
    /// Answer to [`Command::Reload`]: the configuration now in force.
    Reloaded {
        /// Its generation.
        generation: u64,
    },
    /// Answer to [`Command::Apply`]: every edit is in force.
    Applied {
        /// The generation of the published configuration.
        generation: u64,
    },
    /// Answer to [`Command::Zero`].
    Zeroed,
    /// Answer to [`Command::ListConnections`].
    Connections {
        /// The connections, in no particular order.
        connections: Vec<ConnView>,
    },
    /// Answer to [`Command::GetConfig`].
    Config {
        /// The running configuration.
        config: Box<Config>,
    },
}

impl Response {
    /// An error without an edit index.
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            edit: None,
        }
    }
}

/// Rates as IPVS's estimator computes them: an exponentially weighted moving
/// average over 2-second samples (per second).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second, client → server.
    pub in_pps: u64,
    /// Packets per second, server → client.
    pub out_pps: u64,
    /// Bytes per second, client → server.
    pub in_bps: u64,
    /// Bytes per second, server → client.
    pub out_bps: u64,
}

/// A connection as listed (ipvsadm `-L -c`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    /// tcp or udp.
    #[serde(with = "ProtocolForm")]
    pub protocol: Protocol,
    /// IPVS state name (`ESTABLISHED`, `TIME_WAIT`, …; `UDP` for UDP).
    pub state: String,
    /// Milliseconds until it expires unless traffic refreshes it.
    pub expires_ms: u64,
    /// The client.
    pub client: SocketAddr,
    /// The virtual service address.
    #[serde(rename = "virtual")]
    pub virtual_address: SocketAddr,
    /// The source the real server sees: the local address (LIP:lport) for
    /// FullNAT, the client otherwise.
    pub local: SocketAddr,
    /// The real server.
    pub destination: SocketAddr,
    /// Forwarding mode.
    #[serde(with = "ForwardModeForm")]
    pub forward: ForwardMode,
    /// The worker whose table holds it.
    pub worker: u16,
}

/// A service as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// TCP or UDP.
    #[serde(with = "ProtocolForm")]
    pub protocol: Protocol,
    /// Virtual IP.
    pub address: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Scheduler name.
    pub scheduler: String,
    /// Scheduler flags.
    pub scheduler_flags: Vec<String>,
    /// Persistence timeout, if persistent.
    pub persistence: Option<u32>,
    /// Persistence netmask prefix.
    pub persistence_prefix: u8,
    /// Traffic through the service (since the last zero).
    #[serde(with = "TrafficTotalsForm")]
    pub stats: TrafficTotals,
    /// Rates of that traffic.
    #[serde(default)]
    pub rates: Rates,
    /// Real servers.
    pub real_servers: Vec<RealServerView>,
}

/// A real server as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealServerView {
    /// Address.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding mode.
    #[serde(with = "ForwardModeForm")]
    pub forward: ForwardMode,
    /// Weight.
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// Active connections.
    pub active: u64,
    /// Inactive connections.
    pub inactive: u64,
    /// Traffic to and from the server (since the last zero).
    #[serde(with = "TrafficTotalsForm")]
    pub stats: TrafficTotals,
    /// Rates of that traffic.
    #[serde(default)]
    pub rates: Rates,
}

/// Director-wide status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// Configuration generation in force.
    pub generation: u64,
    /// Per-worker counters.
    pub workers: Vec<WorkerView>,
    /// Per-port counters.
    pub ports: Vec<PortView>,
}

/// One worker's counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Worker id.
    pub id: u16,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// ICMP echo replies sent.
    pub icmp_echo_replies: u64,
    /// Connections created.
    pub conns_created: u64,
    /// Connections expired.
    pub conns_expired: u64,
    /// Connections in the table now.
    pub conns_live: u64,
    /// Frames handed to the worker owning their connection.
    #[serde(default)]
    pub redirects_out: u64,
    /// Frames other workers handed to this one.
    #[serde(default)]
    pub redirects_in: u64,
    /// Capacity of the worker's connection table.
    #[serde(default)]
    pub conn_capacity: u64,
    /// Drops by reason label.
    pub drops: Vec<(String, u64)>,
    /// What the forwarding modes did (packets sent per mode, carriers, ICMP,
    /// fragments), by label.
    #[serde(default)]
    pub modes: Vec<(String, u64)>,
    /// What the defences against hostile traffic did (ICMP time exceeded,
    /// half-open connections shortened, evicted and reset), by label.
    #[serde(default)]
    pub defence: Vec<(String, u64)>,
}

/// One port's identity and counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortView {
    /// Configured name.
    pub name: String,
    /// DPDK device.
    pub device: String,
    /// MAC address.
    pub mac: String,
    /// Packets received by the device.
    pub rx_packets: u64,
    /// Packets sent by the device.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device dropped for lack of RX descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// The driver's extended statistics (`rte_eth_xstats`), by name.
    #[serde(default)]
    pub xstats: Vec<(String, u64)>,
}
