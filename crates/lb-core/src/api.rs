//! The control protocol between `lb-ctl` and the director: versioned JSON, one
//! request and one response per line over the Unix control socket. See
//! `docs/control-protocol.md`.
//!
//! These are plain data types; the director fills them from snapshots and counters,
//! `lb-ctl` formats them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::service::{ForwardMode, Protocol, TrafficTotals};

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
    /// Services, real servers and their counters.
    ListServices,
    /// Director-wide status: workers, ports, counters.
    Status,
    /// Re-read the configuration file and apply it atomically.
    Reload,
}

/// The director's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The command failed; nothing was changed.
    Error {
        /// One line saying why.
        message: String,
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
}

/// A service as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// TCP or UDP.
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
    /// Traffic through the service.
    pub stats: TrafficTotals,
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
    /// Traffic to and from the server.
    pub stats: TrafficTotals,
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
    /// Drops by reason label.
    pub drops: Vec<(String, u64)>,
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
}
