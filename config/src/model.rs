//! The YAML configuration: what the operator writes, parsed and validated.
//!
//! Parsing (serde) catches shape errors; [`Config::validate`] catches meaning errors
//! (unknown port names, duplicate services, weights out of range). Every error is one
//! line that names the field, e.g. `services[0].real_servers[1].weight: 70000 is above 65535`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use lb_core::conn::Timeouts;
use lb_core::policy::{Policies, RpFilter};
use lb_core::route::Ipv4Cidr;
use lb_core::sched::SchedulerSpec;
use lb_core::service::{Carrier, ForwardMode, Protocol, TunnelSpec, TunnelType};
use lb_core::wire::MacAddr;
use serde::{Deserialize, Serialize};

use crate::forms::{
    self, CarrierForm, ForwardModeForm, PoliciesForm, ProtocolForm, RpFilterForm, TimeoutsForm,
    TunnelTypeForm,
};

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
    #[serde(default, with = "TimeoutsForm")]
    pub timeouts: Timeouts,
    /// Connection-table sizing.
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// Connection lifecycle policies (IPVS's sysctls of the same names).
    #[serde(default, with = "PoliciesForm")]
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
    #[serde(with = "forms::cidr")]
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
    #[serde(default, with = "RpFilterForm")]
    pub rp_filter: RpFilter,
    /// 802.1Q VLANs on the port, each an interface of its own named
    /// `<port>.<id>` (e.g. `client.100`) for routes, neighbours and local
    /// addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<VlanConfig>,
}

/// A VLAN on a port: its own address, subnet and reverse-path check; frames
/// for it carry its tag on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanConfig {
    /// VLAN id, 1..4094.
    pub id: u16,
    /// The director's address and subnet on the VLAN.
    #[serde(with = "forms::cidr")]
    pub address: Ipv4Cidr,
    /// MTU on the VLAN; absent = the port's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// As the port's `rp_filter`.
    #[serde(default, with = "RpFilterForm")]
    pub rp_filter: RpFilter,
}

/// An interface of the director: a port, or a VLAN on one. The ports come first
/// (in their order), then the VLANs of each port, so an interface's index is
/// the `PortId` the core knows it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// `name` of a port, `<port>.<id>` of a VLAN.
    pub name: String,
    /// Index of the port it is on.
    pub device: usize,
    /// The VLAN id of a VLAN interface.
    pub vlan: Option<u16>,
    /// Address and subnet.
    pub address: Ipv4Cidr,
    /// MTU.
    pub mtu: u16,
    /// Reverse-path check.
    pub rp_filter: RpFilter,
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
    #[serde(with = "forms::cidr")]
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
    #[serde(with = "forms::mac")]
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
    #[serde(with = "ProtocolForm")]
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
    #[serde(default = "default_forward", with = "ForwardModeForm")]
    pub forward: ForwardMode,
    /// How FullNAT TCP connections carry the client address to the real server:
    /// `none`, `toa`, `proxy-v1` or `proxy-v2`.
    #[serde(default, with = "CarrierForm")]
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
    #[serde(default, with = "forms::option_forward_mode")]
    pub forward: Option<ForwardMode>,
    /// Upper connection threshold (`-x`).
    #[serde(default)]
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`).
    #[serde(default)]
    pub lower_threshold: u32,
    /// Tunnel encapsulation for `forward: tunnel` (`ipvsadm --tun-type`):
    /// `ipip` (default) or `gue`.
    #[serde(default, with = "TunnelTypeForm")]
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
    /// The core the control thread runs on; absent = EAL's main lcore (where
    /// DPDK's own control threads run too). Never a forwarding worker's core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<usize>,
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
            core: None,
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

    /// Every interface: the ports, then the VLANs of each port.
    pub fn interfaces(&self) -> Vec<Interface> {
        let ports = self.ports.iter().enumerate().map(|(i, p)| Interface {
            name: p.name.clone(),
            device: i,
            vlan: None,
            address: p.address,
            mtu: p.mtu,
            rp_filter: p.rp_filter,
        });
        let vlans = self.ports.iter().enumerate().flat_map(|(i, p)| {
            p.vlans.iter().map(move |v| Interface {
                name: format!("{}.{}", p.name, v.id),
                device: i,
                vlan: Some(v.id),
                address: v.address,
                mtu: v.mtu.unwrap_or(p.mtu),
                rp_filter: v.rp_filter,
            })
        });
        ports.chain(vlans).collect()
    }

    /// The index of the interface (port, or VLAN `<port>.<id>`) called `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.interfaces().iter().position(|i| i.name == name)
    }

    /// The index of the port the interface called `name` is on.
    pub fn port_device(&self, name: &str) -> Option<usize> {
        self.interfaces()
            .into_iter()
            .find(|i| i.name == name)
            .map(|i| i.device)
    }
}

impl ServiceConfig {
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
pub(crate) mod tests {
    use super::*;

    /// A valid configuration the tests vary.
    pub(crate) const GOOD: &str = r#"
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

    /// [`GOOD`] with the first `replace` replaced by `by`, parsed.
    pub(crate) fn with(replace: &str, by: &str) -> Result<Config, ConfigError> {
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
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
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
}
