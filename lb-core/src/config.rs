//! The YAML configuration: what the operator writes, parsed and validated.
//!
//! Parsing (serde) catches shape errors; [`Config::validate`] catches meaning errors
//! (unknown port names, duplicate services, weights out of range). Every error is one
//! line that names the field, e.g. `services[0].real_servers[1].weight: 70000 is above 65535`.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::conn::Timeouts;
use crate::sched::{self, SchedulerSpec};
use crate::service::{Carrier, ForwardMode, Protocol, TunnelSpec, TunnelType};
use crate::wire::MacAddr;

/// Largest weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// A configuration error: the field's path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the offending field, e.g. `services[0].port`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// An IPv4 network in CIDR notation (`10.0.1.1/24` keeps the host part: for a port
/// it is the director's own address on that link).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask as a 32-bit value.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not in ADDRESS/PREFIX form"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("'{prefix}' is not a prefix length 0..32"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn serialize_mac<S: Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(mac)
}

fn deserialize_mac<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|_| serde::de::Error::custom(format!("'{s}' is not a MAC address")))
}

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Arguments for DPDK's EAL (`--vdev …`, `--file-prefix …`, `-l …`).
    #[serde(default)]
    pub eal: Vec<String>,
    /// Forwarding workers.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// The director's ports.
    pub ports: Vec<PortConfig>,
    /// Static routes (connected routes come from the ports' addresses).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Static neighbours.
    #[serde(default)]
    pub neighbours: Vec<NeighbourConfig>,
    /// FullNAT local addresses (LIPs).
    #[serde(default)]
    pub local_addresses: Vec<LocalAddressConfig>,
    /// Virtual services.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// Connection timeouts per state.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Connection-table sizing.
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// Connection lifecycle policies (IPVS's sysctls of the same names).
    #[serde(default)]
    pub policies: Policies,
    /// Control socket.
    #[serde(default)]
    pub control: ControlConfig,
}

/// Worker threads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Number of forwarding workers (one RX and one TX queue each on every port).
    #[serde(default = "default_workers")]
    pub count: u16,
    /// CPU cores to pin workers to, in worker order; empty = no pinning.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Microseconds a worker sleeps after a run of empty polls; 0 (the default)
    /// polls without pause, as a production director should. Labs that share few
    /// cores with their kernel traffic set it so the worker leaves them room.
    #[serde(default)]
    pub idle_sleep_us: u32,
}

fn default_workers() -> u16 {
    1
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            count: default_workers(),
            cores: Vec::new(),
            idle_sleep_us: 0,
        }
    }
}

/// One director port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name used elsewhere in the config.
    pub name: String,
    /// DPDK device name: a PCI address or a vdev name (`net_af_packet0`).
    pub device: String,
    /// The director's own address and subnet on this link.
    pub address: Ipv4Cidr,
    /// MTU of the link.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// RX descriptors per queue.
    #[serde(default = "default_desc")]
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    #[serde(default = "default_desc")]
    pub tx_descriptors: u16,
    /// Reverse-path check of packets arriving on this port: `strict` (the
    /// default: the route back to the source leaves by this port), `loose` (any
    /// route back exists) or `off`.
    #[serde(default)]
    pub rp_filter: RpFilter,
}

/// How a port checks the source of what it receives against the routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilter {
    /// The route to the source must point out of the receiving port.
    #[default]
    Strict,
    /// Some route to the source must exist.
    Loose,
    /// No check.
    Off,
}

/// What happens to packets with IPv4 options addressed to a VIP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpOptionsPolicy {
    /// Drop every packet with options (counted as `ip_options`).
    #[default]
    Drop,
    /// Forward packets whose options are all known to be harmless (EOL, NOP,
    /// router alert); record route, timestamp, source routes and anything
    /// unknown are still dropped.
    Forward,
}

fn default_mtu() -> u16 {
    1500
}

fn default_desc() -> u16 {
    1024
}

/// A static route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination network.
    pub destination: Ipv4Cidr,
    /// Gateway; absent = directly connected.
    #[serde(default)]
    pub via: Option<Ipv4Addr>,
    /// Egress port name.
    pub port: String,
}

/// A static neighbour entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    /// Neighbour address.
    pub address: Ipv4Addr,
    /// Its MAC.
    #[serde(serialize_with = "serialize_mac", deserialize_with = "deserialize_mac")]
    pub mac: MacAddr,
    /// Port it is reached through.
    pub port: String,
}

/// A FullNAT local address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAddressConfig {
    /// The address.
    pub address: IpAddr,
    /// Port it lives on.
    pub port: String,
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Virtual IP.
    pub address: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
    /// Scheduler name (ipvsadm `-s`).
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// Scheduler flags (ipvsadm `-b`).
    #[serde(default)]
    pub scheduler_flags: Vec<String>,
    /// Maglev table size for the `mh` scheduler (a prime; default 65537).
    #[serde(default)]
    pub mh_table_size: Option<u32>,
    /// Established-state timeout for this service's TCP connections, overriding
    /// `timeouts.established` (seconds).
    #[serde(default)]
    pub established_timeout: Option<u32>,
    /// Persistence timeout in seconds (ipvsadm `-p`); absent = not persistent.
    #[serde(default)]
    pub persistence: Option<u32>,
    /// Persistence netmask prefix (ipvsadm `-M`), 0..=32.
    #[serde(default = "default_persistence_prefix")]
    pub persistence_prefix: u8,
    /// Default forwarding mode for real servers that do not set one.
    #[serde(default = "default_forward")]
    pub forward: ForwardMode,
    /// How FullNAT TCP connections carry the client address to the real server:
    /// `none`, `toa`, `proxy-v1` or `proxy-v2`.
    #[serde(default)]
    pub carrier: Carrier,
    /// Clamp the MSS of client SYNs forwarded to tunnelled real servers so that
    /// full-sized segments still fit the egress MTU once encapsulated.
    #[serde(default)]
    pub tun_mss_clamp: bool,
    /// Real servers.
    #[serde(default)]
    pub real_servers: Vec<RealServerConfig>,
}

fn default_scheduler() -> String {
    SchedulerSpec::default().name
}

fn default_persistence_prefix() -> u8 {
    32
}

fn default_forward() -> ForwardMode {
    ForwardMode::FullNat
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConfig {
    /// Address.
    pub address: IpAddr,
    /// Port; absent = the virtual port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Weight 0..=65535.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Forwarding mode; absent = the service's.
    #[serde(default)]
    pub forward: Option<ForwardMode>,
    /// Upper connection threshold (`-x`).
    #[serde(default)]
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`).
    #[serde(default)]
    pub lower_threshold: u32,
    /// Tunnel encapsulation for `forward: tunnel` (`ipvsadm --tun-type`):
    /// `ipip` (default) or `gue`.
    #[serde(default)]
    pub tun_type: TunnelType,
    /// GUE destination port (`ipvsadm --tun-port`); required with `tun_type: gue`.
    #[serde(default)]
    pub tun_port: Option<u16>,
}

impl RealServerConfig {
    /// The tunnel encapsulation this server is reached with.
    pub fn tunnel_spec(&self) -> TunnelSpec {
        TunnelSpec {
            kind: self.tun_type,
            port: match self.tun_type {
                TunnelType::Ipip => 0,
                TunnelType::Gue => self.tun_port.unwrap_or(0),
            },
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// Connection-table sizing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Connections each worker can hold; absent = sized from available memory
    /// (see [`ConnectionsConfig::capacity`]).
    #[serde(default)]
    pub per_worker: Option<u32>,
}

/// Memory budgeted per connection when sizing from available memory: the record
/// (120 bytes), its two index entries and timer links, with room for the index's
/// power-of-two rounding.
pub const BYTES_PER_CONNECTION_BUDGET: u64 = 256;
/// Share of available memory the connection tables may take when sized
/// automatically.
pub const AUTO_MEMORY_SHARE_PERCENT: u64 = 25;
/// Bounds of an automatically sized table, per worker.
pub const AUTO_CAPACITY_RANGE: (u64, u64) = (1 << 16, 1 << 24);

impl ConnectionsConfig {
    /// Connections per worker: the configured number, or a quarter of
    /// `available_bytes` divided over `workers` at
    /// [`BYTES_PER_CONNECTION_BUDGET`] each, within [`AUTO_CAPACITY_RANGE`].
    pub fn capacity(&self, workers: usize, available_bytes: u64) -> usize {
        match self.per_worker {
            Some(n) => n as usize,
            None => {
                let share = available_bytes / 100 * AUTO_MEMORY_SHARE_PERCENT;
                let each = share / BYTES_PER_CONNECTION_BUDGET / workers.max(1) as u64;
                each.clamp(AUTO_CAPACITY_RANGE.0, AUTO_CAPACITY_RANGE.1) as usize
            }
        }
    }
}

/// Connection lifecycle policies, as IPVS's sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    /// A connection whose real server was removed dies on its next packet
    /// (`expire_nodest_conn`); otherwise its packets are dropped until it times out.
    pub expire_nodest_conn: bool,
    /// A SYN on a TIME_WAIT or CLOSE entry is scheduled afresh (`conn_reuse_mode`).
    pub conn_reuse: bool,
    /// A persistence template whose real server is quiescent (weight 0) is
    /// invalidated (`expire_quiescent_template`).
    pub expire_quiescent_template: bool,
    /// Packets with IPv4 options to a VIP: `drop` (default) or `forward` the
    /// known-harmless ones. Malformed option lists are always dropped.
    pub ip_options: IpOptionsPolicy,
    /// TCP segments of NAT and FullNAT connections must fall within the
    /// sequence window Linux conntrack would accept (`tcp_out_of_window`);
    /// `false` forwards them as conntrack's `tcp_be_liberal` does.
    pub tcp_window_check: bool,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            expire_nodest_conn: true,
            conn_reuse: true,
            expire_quiescent_template: false,
            ip_options: IpOptionsPolicy::Drop,
            tcp_window_check: true,
        }
    }
}

/// The control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Path of the Unix socket lb-ctl talks to.
    #[serde(default = "default_socket")]
    pub socket: String,
    /// Address of the Prometheus `/metrics` endpoint (HTTP), e.g.
    /// `127.0.0.1:9100`; absent = no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// Where lb-ctl and the director meet when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "/run/lb-director/ctl.sock";

fn default_socket() -> String {
    DEFAULT_SOCKET.to_owned()
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: default_socket(),
            metrics: None,
        }
    }
}

impl Config {
    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
        config.validate()?;
        Ok(config)
    }

    /// The index of the port called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// Checks everything serde cannot: references, ranges, duplicates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers.count == 0 {
            return Err(ConfigError::new("workers.count", "must be at least 1"));
        }
        if !self.workers.cores.is_empty()
            && self.workers.cores.len() != usize::from(self.workers.count)
        {
            return Err(ConfigError::new(
                "workers.cores",
                format!(
                    "lists {} cores for {} workers",
                    self.workers.cores.len(),
                    self.workers.count
                ),
            ));
        }
        if self.ports.is_empty() {
            return Err(ConfigError::new("ports", "at least one port is required"));
        }
        let mut names = HashSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            if !names.insert(port.name.as_str()) {
                return Err(ConfigError::new(
                    format!("ports[{i}].name"),
                    format!("duplicate port name '{}'", port.name),
                ));
            }
            if port.mtu < 576 {
                return Err(ConfigError::new(
                    format!("ports[{i}].mtu"),
                    format!("{} is below the IPv4 minimum of 576", port.mtu),
                ));
            }
        }
        let known_port = |field: String, name: &str| {
            if self.port_index(name).is_some() {
                Ok(())
            } else {
                Err(ConfigError::new(field, format!("no port named '{name}'")))
            }
        };
        for (i, r) in self.routes.iter().enumerate() {
            known_port(format!("routes[{i}].port"), &r.port)?;
        }
        for (i, n) in self.neighbours.iter().enumerate() {
            known_port(format!("neighbours[{i}].port"), &n.port)?;
        }
        for (i, l) in self.local_addresses.iter().enumerate() {
            known_port(format!("local_addresses[{i}].port"), &l.port)?;
            if !l.address.is_ipv4() {
                return Err(ConfigError::new(
                    format!("local_addresses[{i}].address"),
                    "IPv6 local addresses are not supported yet",
                ));
            }
        }
        if self
            .connections
            .per_worker
            .is_some_and(|n| n == 0 || n > (1 << 30))
        {
            return Err(ConfigError::new(
                "connections.per_worker",
                "must be between 1 and 2^30",
            ));
        }
        self.timeouts
            .validate()
            .map_err(|(state, problem)| ConfigError::new(format!("timeouts.{state}"), problem))?;
        let mut keys = HashSet::new();
        for (i, svc) in self.services.iter().enumerate() {
            let field = format!("services[{i}]");
            if !keys.insert((svc.protocol, svc.address, svc.port)) {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "duplicate service {} {}:{}",
                        svc.protocol.upper_name(),
                        svc.address,
                        svc.port
                    ),
                ));
            }
            svc.validate(&field, !self.local_addresses.is_empty())?;
        }
        self.validate_addresses()
    }

    /// Refuses addresses the director must never own or answer ARP for: martians,
    /// and a VIP or local address that is also another party's address.
    fn validate_addresses(&self) -> Result<(), ConfigError> {
        let v4 = |ip: IpAddr| match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        };
        let real_servers = || {
            self.services
                .iter()
                .flat_map(|s| s.real_servers.iter().filter_map(|r| v4(r.address)))
        };
        for (i, l) in self.local_addresses.iter().enumerate() {
            let Some(a) = v4(l.address) else { continue };
            let field = format!("local_addresses[{i}].address");
            if let Some(why) = self.unownable(a) {
                return Err(ConfigError::new(field, format!("{a} is {why}")));
            }
            if real_servers().any(|r| r == a) {
                return Err(ConfigError::new(
                    field,
                    format!("{a} is also a real server's address"),
                ));
            }
            if self.services.iter().any(|s| s.address == l.address) {
                return Err(ConfigError::new(field, format!("{a} is also a VIP")));
            }
        }
        for (i, svc) in self.services.iter().enumerate() {
            let Some(a) = v4(svc.address) else { continue };
            let field = format!("services[{i}].address");
            if let Some(why) = self.unownable(a) {
                return Err(ConfigError::new(field, format!("{a} is {why}")));
            }
            if real_servers().any(|r| r == a) {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "{a} is also a real server's address (the director would answer ARP for it)"
                    ),
                ));
            }
            for (j, rs) in svc.real_servers.iter().enumerate() {
                let Some(r) = v4(rs.address) else { continue };
                if let Some(why) = martian(r, Martian::REMOTE) {
                    return Err(ConfigError::new(
                        format!("services[{i}].real_servers[{j}].address"),
                        format!("{r} is {why}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Why the director cannot own `a` (as a VIP or a local address): a martian
    /// class, or a clash with a port.
    fn unownable(&self, a: Ipv4Addr) -> Option<String> {
        martian(a, Martian::OWNED)
            .map(str::to_owned)
            .or_else(|| self.port_conflict(a))
    }

    /// Why `a` clashes with a port: it is the port's own address or its subnet's
    /// broadcast address.
    fn port_conflict(&self, a: Ipv4Addr) -> Option<String> {
        self.ports.iter().find_map(|p| {
            if p.address.addr == a {
                Some(format!("the address of port '{}'", p.name))
            } else if p.address.prefix < 31
                && u32::from(a) == u32::from(p.address.addr) | !p.address.mask()
            {
                Some(format!(
                    "the broadcast address of port '{}' ({})",
                    p.name, p.address
                ))
            } else {
                None
            }
        })
    }
}

/// Which martian classes a check refuses.
#[derive(Clone, Copy)]
struct Martian {
    this_network: bool,
    class_e: bool,
}

impl Martian {
    /// For addresses the director owns (VIPs, local addresses).
    const OWNED: Martian = Martian {
        this_network: false,
        class_e: true,
    };
    /// For addresses the director sends to (real servers).
    const REMOTE: Martian = Martian {
        this_network: true,
        class_e: false,
    };
}

/// Why `a` can be no host's unicast address, if it cannot.
fn martian(a: Ipv4Addr, classes: Martian) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_broadcast() {
        Some("the broadcast address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.is_loopback() {
        Some("a loopback address")
    } else if classes.this_network && a.octets()[0] == 0 {
        Some("in 0.0.0.0/8 (this network)")
    } else if classes.class_e && a.octets()[0] >= 240 {
        Some("a reserved (class E) address")
    } else {
        None
    }
}

impl ServiceConfig {
    /// Validates one service; `field` is its path (`services[3]`).
    pub fn validate(&self, field: &str, have_local_addresses: bool) -> Result<(), ConfigError> {
        if !self.address.is_ipv4() {
            return Err(ConfigError::new(
                format!("{field}.address"),
                "IPv6 services are not supported yet",
            ));
        }
        if self.port == 0 {
            return Err(ConfigError::new(format!("{field}.port"), "must not be 0"));
        }
        if let Some(t) = self.established_timeout {
            if t == 0 || t > crate::conn::MAX_TIMEOUT_SECS {
                return Err(ConfigError::new(
                    format!("{field}.established_timeout"),
                    format!(
                        "{t} is not within 1..={} seconds",
                        crate::conn::MAX_TIMEOUT_SECS
                    ),
                ));
            }
        }
        if self.persistence_prefix > 32 {
            return Err(ConfigError::new(
                format!("{field}.persistence_prefix"),
                format!("{} is above 32", self.persistence_prefix),
            ));
        }
        sched::build(&self.scheduler_spec(), &[], 1)
            .map_err(|e| ConfigError::new(format!("{field}.scheduler"), e.to_string()))?;
        if self.carrier != Carrier::None && self.protocol != Protocol::Tcp {
            return Err(ConfigError::new(
                format!("{field}.carrier"),
                "client-address carriers (toa, proxy-v1, proxy-v2) need a tcp service",
            ));
        }
        let mut seen = HashSet::new();
        for (j, rs) in self.real_servers.iter().enumerate() {
            let rs_field = format!("{field}.real_servers[{j}]");
            if !rs.address.is_ipv4() {
                return Err(ConfigError::new(
                    format!("{rs_field}.address"),
                    "IPv6 real servers are not supported yet",
                ));
            }
            if rs.weight > MAX_WEIGHT {
                return Err(ConfigError::new(
                    format!("{rs_field}.weight"),
                    format!("{} is above {MAX_WEIGHT}", rs.weight),
                ));
            }
            if rs.port == Some(0) {
                return Err(ConfigError::new(
                    format!("{rs_field}.port"),
                    "must not be 0",
                ));
            }
            if rs.lower_threshold > rs.upper_threshold && rs.upper_threshold != 0 {
                return Err(ConfigError::new(
                    format!("{rs_field}.lower_threshold"),
                    "is above upper_threshold",
                ));
            }
            let forward = rs.forward.unwrap_or(self.forward);
            if forward == ForwardMode::FullNat && !have_local_addresses {
                return Err(ConfigError::new(
                    format!("{rs_field}.forward"),
                    "fullnat needs at least one entry in local_addresses",
                ));
            }
            if matches!(forward, ForwardMode::Dr | ForwardMode::Tunnel)
                && rs.port.is_some_and(|p| p != self.port)
            {
                return Err(ConfigError::new(
                    format!("{rs_field}.port"),
                    "dr and tunnel forward to the virtual port; only nat and fullnat map ports",
                ));
            }
            if rs.tun_type == TunnelType::Gue && rs.tun_port.unwrap_or(0) == 0 {
                return Err(ConfigError::new(
                    format!("{rs_field}.tun_port"),
                    "tun_type gue needs a tun_port (1..65535)",
                ));
            }
            if (rs.tun_type != TunnelType::Ipip || rs.tun_port.is_some())
                && forward != ForwardMode::Tunnel
            {
                return Err(ConfigError::new(
                    format!("{rs_field}.tun_type"),
                    "tun_type and tun_port apply to forward: tunnel only",
                ));
            }
            if !seen.insert((rs.address, rs.port.unwrap_or(self.port))) {
                return Err(ConfigError::new(
                    format!("{rs_field}.address"),
                    format!("duplicate real server {}", rs.address),
                ));
            }
        }
        Ok(())
    }

    /// The scheduler name and flags.
    pub fn scheduler_spec(&self) -> SchedulerSpec {
        SchedulerSpec {
            name: self.scheduler.clone(),
            flags: self.scheduler_flags.clone(),
            mh_table_size: self.mh_table_size,
        }
    }
}

/// Turns a serde_yaml_ng error into one line naming the field.
fn yaml_error(e: serde_yaml_ng::Error) -> ConfigError {
    let text = e.to_string();
    // serde_yaml_ng prints "path: problem at line L column C"; keep it on one line.
    let line = text.lines().next().unwrap_or("invalid YAML").to_owned();
    match line.split_once(": ") {
        Some((path, problem)) if !path.contains(' ') => ConfigError::new(path, problem),
        _ => ConfigError::new("", line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
eal: ["--no-huge", "-m", "512"]
ports:
  - name: client
    device: net_af_packet0
    address: 10.0.1.1/24
  - name: server
    device: net_af_packet1
    address: 10.0.2.1/24
routes:
  - destination: 0.0.0.0/0
    via: 10.0.1.254
    port: client
local_addresses:
  - address: 10.0.2.100
    port: server
services:
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: rr
    real_servers:
      - address: 10.0.2.11
      - address: 10.0.2.12
        weight: 3
"#;

    fn with(replace: &str, by: &str) -> Result<Config, ConfigError> {
        assert!(GOOD.contains(replace), "fixture lacks {replace:?}");
        Config::from_yaml(&GOOD.replacen(replace, by, 1))
    }

    #[test]
    fn parses_the_sample() {
        let c = Config::from_yaml(GOOD).unwrap();
        assert_eq!(c.ports[0].address.to_string(), "10.0.1.1/24");
        assert_eq!(c.services[0].real_servers[1].weight, 3);
        assert_eq!(c.services[0].real_servers[0].weight, 1);
        assert_eq!(c.services[0].forward, ForwardMode::FullNat);
        assert_eq!(c.workers.count, 1);
        assert_eq!(c.timeouts, Timeouts::default());
    }

    #[test]
    fn every_shipped_sample_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                Config::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "weight: 3",
                "weight: 70000",
                "services[0].real_servers[1].weight: 70000 is above 65535",
            ),
            (
                "port: client\n",
                "port: nowhere\n",
                "routes[0].port: no port named 'nowhere'",
            ),
            (
                "scheduler: rr",
                "scheduler: nope",
                "services[0].scheduler: unknown scheduler 'nope'",
            ),
            (
                "address: 10.0.1.1/24",
                "address: 10.0.1.1/33",
                "ports[0]: '33' is not a prefix length 0..32 at line 4",
            ),
            (
                "    protocol: tcp",
                "    protocol: sctp",
                "services[0].protocol: unknown variant `sctp`",
            ),
            (
                "    scheduler: rr",
                "    schedular: rr",
                "services[0]: unknown field `schedular`",
            ),
            ("port: 80", "port: 0", "services[0].port: must not be 0"),
            (
                "- address: 10.0.2.12",
                "- address: 10.0.2.11",
                "services[0].real_servers[1].address: duplicate real server 10.0.2.11",
            ),
        ];
        for (from, to, expected) in cases {
            let err = with(from, to).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
            assert!(!err.contains('\n'), "{err:?} is not one line");
        }
    }

    #[test]
    fn fullnat_without_local_addresses_is_rejected() {
        let text = GOOD.replace(
            "local_addresses:\n  - address: 10.0.2.100\n    port: server\n",
            "",
        );
        let err = Config::from_yaml(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("services[0].real_servers[0].forward: fullnat needs"),
            "{err}"
        );
    }

    #[test]
    fn metrics_address() {
        let c = Config::from_yaml(&format!("{GOOD}control:\n  metrics: 127.0.0.1:9100\n")).unwrap();
        assert_eq!(c.control.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(Config::from_yaml(GOOD).unwrap().control.metrics, None);
        let err = Config::from_yaml(&format!("{GOOD}control:\n  metrics: localhost\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("control.metrics: "), "{err}");
    }

    #[test]
    fn forwarding_mode_options_are_checked() {
        let w = "        weight: 3";
        let err = |to: &str| with(w, to).unwrap_err().to_string();
        let cases = [
            (
                "        weight: 3\n        forward: tunnel\n        tun_type: gue",
                "services[0].real_servers[1].tun_port: tun_type gue needs",
            ),
            (
                "        weight: 3\n        tun_type: gue\n        tun_port: 1",
                "services[0].real_servers[1].tun_type: tun_type and tun_port apply",
            ),
            (
                "        weight: 3\n        forward: dr\n        port: 81",
                "services[0].real_servers[1].port: dr and tunnel",
            ),
        ];
        for (to, expected) in cases {
            let e = err(to);
            assert!(
                e.starts_with(expected),
                "{e:?} should start with {expected:?}"
            );
        }
        let e = with("    protocol: tcp", "    protocol: udp\n    carrier: toa")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("services[0].carrier:"), "{e}");
        let c = with(w, "        weight: 3\n        forward: tunnel\n        tun_type: gue\n        tun_port: 6080")
            .unwrap();
        assert_eq!(c.services[0].real_servers[1].tunnel_spec().port, 6080);
        let c = with(
            "    protocol: tcp",
            "    protocol: tcp\n    carrier: proxy-v2",
        )
        .unwrap();
        assert_eq!(c.services[0].carrier, Carrier::ProxyV2);
    }

    #[test]
    fn connection_tables_are_sized_from_memory_unless_configured() {
        let auto = ConnectionsConfig::default();
        // 24 GiB available, 2 workers: a quarter at 256 B each, halved.
        assert_eq!(
            auto.capacity(2, 24 << 30),
            ((24u64 << 30) / 100 * 25 / 256 / 2) as usize
        );
        assert_eq!(auto.capacity(1, 1 << 20), 1 << 16, "at least 64 Ki");
        assert_eq!(auto.capacity(1, 1 << 50), 1 << 24, "at most 16 Mi");
        let fixed = ConnectionsConfig {
            per_worker: Some(1000),
        };
        assert_eq!(fixed.capacity(4, 1 << 40), 1000);
    }

    #[test]
    fn martian_and_conflicting_addresses_are_refused() {
        let lip = |a: &str| with("  - address: 10.0.2.100", &format!("  - address: {a}"));
        let vip = |a: &str| with("  - address: 10.0.1.100", &format!("  - address: {a}"));
        let rs = |a: &str| {
            with(
                "      - address: 10.0.2.11",
                &format!("      - address: {a}"),
            )
        };
        let msg = |r: Result<Config, ConfigError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(lip("127.0.0.1")),
            "local_addresses[0].address: 127.0.0.1 is a loopback address"
        );
        assert_eq!(
            msg(vip("224.0.0.5")),
            "services[0].address: 224.0.0.5 is a multicast address"
        );
        assert_eq!(
            msg(lip("10.0.2.255")),
            "local_addresses[0].address: 10.0.2.255 is the broadcast address of port 'server' (10.0.2.1/24)"
        );
        let refused = [
            (
                lip("0.0.0.0"),
                "local_addresses[0].address: 0.0.0.0 is the unspecified",
            ),
            (
                lip("255.255.255.255"),
                "local_addresses[0].address: 255.255.255.255 is the broadcast",
            ),
            (
                lip("239.1.1.1"),
                "local_addresses[0].address: 239.1.1.1 is a multicast",
            ),
            (
                lip("240.0.0.1"),
                "local_addresses[0].address: 240.0.0.1 is a reserved (class E)",
            ),
            (
                lip("10.0.2.11"),
                "local_addresses[0].address: 10.0.2.11 is also a real server's",
            ),
            (
                lip("10.0.2.1"),
                "local_addresses[0].address: 10.0.2.1 is the address of port 'server'",
            ),
            (
                lip("10.0.1.100"),
                "local_addresses[0].address: 10.0.1.100 is also a VIP",
            ),
            (
                vip("0.0.0.0"),
                "services[0].address: 0.0.0.0 is the unspecified",
            ),
            (
                vip("255.255.255.255"),
                "services[0].address: 255.255.255.255 is the broadcast",
            ),
            (
                vip("127.0.0.1"),
                "services[0].address: 127.0.0.1 is a loopback",
            ),
            (
                vip("10.0.1.1"),
                "services[0].address: 10.0.1.1 is the address of port 'client'",
            ),
            (
                vip("10.0.1.255"),
                "services[0].address: 10.0.1.255 is the broadcast address of port 'client'",
            ),
            (
                vip("10.0.2.12"),
                "services[0].address: 10.0.2.12 is also a real server's address",
            ),
            (
                rs("0.1.2.3"),
                "services[0].real_servers[0].address: 0.1.2.3 is in 0.0.0.0/8",
            ),
            (
                rs("127.0.0.2"),
                "services[0].real_servers[0].address: 127.0.0.2 is a loopback",
            ),
            (
                rs("224.0.0.1"),
                "services[0].real_servers[0].address: 224.0.0.1 is a multicast",
            ),
            (
                rs("255.255.255.255"),
                "services[0].real_servers[0].address: 255.255.255.255 is the broadcast",
            ),
        ];
        for (result, expected) in refused {
            let e = msg(result);
            assert!(
                e.starts_with(expected),
                "{e:?} should start with {expected:?}"
            );
        }
        // The VIP's own subnet and a LIP on the client side are fine.
        vip("10.0.1.200").unwrap();
        lip("10.0.1.50").unwrap();
    }

    #[test]
    fn cidr_contains() {
        let net: Ipv4Cidr = "10.0.1.1/24".parse().unwrap();
        assert!(net.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 0, 2, 1)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
