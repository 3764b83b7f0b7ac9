//! The immutable configuration workers forward with.
//!
//! The control plane builds a new [`Snapshot`] from a [`SnapshotSpec`] (the
//! validated configuration, in the terms workers use) off the packet path and
//! publishes it atomically; workers load it once per burst. Building from the
//! previous snapshot keeps the identity (slot id and serial) and the counters of
//! every service and real server that is still configured, so connections and
//! statistics carry across edits.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;

use crate::conn::Timeouts;
use crate::ids::{PortId, RealServerId, ServiceId};
use crate::policy::{Policies, RpFilter};
use crate::route::{Ipv4Cidr, RouteTable};
use crate::sched::{self, SchedError, SchedulerSpec};
use crate::service::{
    Carrier, DestCounters, ForwardMode, Protocol, RealServer, Service, ServiceCounters, TunnelSpec,
};
use crate::wire::MacAddr;

/// What a local address is to the director.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalKind {
    /// The director's own address on a port.
    Port(PortId),
    /// A virtual service address.
    Vip,
    /// A FullNAT local address.
    LocalAddress,
}

/// An interface's layer-3 identity: a port, or a VLAN on a port. Interfaces are
/// indexed by `PortId` everywhere in the core (routes, neighbours, the sides of
/// connections); the ports come first, so a port's interface index is its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAddress {
    /// The director's address and subnet on the interface.
    pub cidr: Ipv4Cidr,
    /// Link MTU.
    pub mtu: u16,
    /// Reverse-path check of what arrives on the interface.
    pub rp_filter: RpFilter,
    /// The port the interface is on (itself, for a port).
    pub device: PortId,
    /// The 802.1Q VLAN id of a VLAN interface; `None` for the port itself.
    pub vlan: Option<u16>,
}

/// What a snapshot is built from: the configuration with its references resolved
/// (ports by index) and its defaults applied. The caller validates it; building
/// only fails when a scheduler cannot be built for its servers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotSpec {
    /// Per port, indexed by `PortId`.
    pub ports: Vec<PortAddress>,
    /// Static routes; the ports' connected networks are added to them.
    pub routes: Vec<RouteSpec>,
    /// Static neighbours.
    pub static_neighbours: Vec<(Ipv4Addr, MacAddr, PortId)>,
    /// FullNAT local addresses.
    pub local_addresses: Vec<IpAddr>,
    /// Virtual services.
    pub services: Vec<ServiceSpec>,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Connection lifecycle policies.
    pub policies: Policies,
}

/// A static route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination network.
    pub destination: Ipv4Cidr,
    /// Gateway; `None` = directly connected.
    pub via: Option<Ipv4Addr>,
    /// Egress port.
    pub port: PortId,
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// tcp or udp.
    pub protocol: Protocol,
    /// Virtual IP.
    pub address: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Scheduler and its flags.
    pub scheduler: SchedulerSpec,
    /// Established-state timeout of this service's TCP connections, overriding
    /// the global one.
    pub established_timeout: Option<Duration>,
    /// How FullNAT TCP connections carry the client address.
    pub carrier: Carrier,
    /// Clamp the MSS of SYNs to tunnelled real servers.
    pub tun_mss_clamp: bool,
    /// Persistence timeout in seconds; 0 = not persistent.
    pub persistence_timeout: u32,
    /// Persistence netmask prefix.
    pub persistence_prefix: u8,
    /// Real servers.
    pub real_servers: Vec<RealServerSpec>,
}

/// A real server of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealServerSpec {
    /// Address.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Weight.
    pub weight: u32,
    /// Forwarding mode.
    pub forward: ForwardMode,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold.
    pub lower_threshold: u32,
    /// Tunnel encapsulation for [`ForwardMode::Tunnel`].
    pub tunnel: TunnelSpec,
}

/// Why a snapshot could not be built: the scheduler of a service refused its
/// servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// Index of the service in [`SnapshotSpec::services`].
    pub service: usize,
    /// What the scheduler said.
    pub error: SchedError,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {}: {}", self.service, self.error)
    }
}

impl std::error::Error for BuildError {}

/// Identity of a service across snapshots.
type ServiceKey = (Protocol, IpAddr, u16);

/// One published configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every publication.
    pub generation: u64,
    /// Number of workers the counters are sized for.
    pub workers: usize,
    /// Per port, indexed by `PortId`.
    pub ports: Vec<PortAddress>,
    /// Routes.
    pub routes: RouteTable,
    /// Static neighbours.
    pub static_neighbours: Vec<(Ipv4Addr, MacAddr, PortId)>,
    /// FullNAT local addresses.
    pub local_addresses: Vec<IpAddr>,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Connection lifecycle policies.
    pub policies: Policies,
    services: Vec<Option<Arc<Service>>>,
    service_index: HashMap<(u8, IpAddr, u16), ServiceId>,
    real_servers: Vec<Option<Arc<RealServer>>>,
    local: HashMap<IpAddr, LocalKind>,
    next_serial: u32,
}

impl Snapshot {
    /// Builds a snapshot of `spec` for `workers` workers, carrying identities and
    /// counters over from `previous`.
    pub fn build(
        spec: &SnapshotSpec,
        previous: Option<&Snapshot>,
        workers: usize,
    ) -> Result<Snapshot, BuildError> {
        let ports = spec.ports.clone();
        let mut routes = RouteTable::default();
        for (i, p) in ports.iter().enumerate() {
            routes.add(p.cidr, None, PortId(i as u16));
        }
        for r in &spec.routes {
            routes.add(r.destination, r.via, r.port);
        }
        let mut local = HashMap::new();
        for (i, p) in ports.iter().enumerate() {
            local.insert(IpAddr::V4(p.cidr.addr), LocalKind::Port(PortId(i as u16)));
        }
        for &l in &spec.local_addresses {
            local.insert(l, LocalKind::LocalAddress);
        }
        for s in &spec.services {
            local.entry(s.address).or_insert(LocalKind::Vip);
        }

        let mut builder = Registry::new(previous);
        let mut services = Vec::new();
        let mut service_index = HashMap::new();
        let mut real_servers = Vec::new();
        for (i, sc) in spec.services.iter().enumerate() {
            let key: ServiceKey = (sc.protocol, sc.address, sc.port);
            let old_service = previous.and_then(|p| p.service_by_key(key));
            let (id, serial, counters) = match old_service {
                Some(s) => (s.id, s.serial, s.counters.clone()),
                None => (
                    ServiceId(builder.service_slot()),
                    builder.serial(),
                    Arc::new(ServiceCounters::new(workers)),
                ),
            };
            let mut dests = Vec::with_capacity(sc.real_servers.len());
            for rc in &sc.real_servers {
                let port = rc.port;
                let old = old_service.and_then(|s| {
                    s.real_servers
                        .iter()
                        .find(|d| (d.addr, d.port) == (rc.address, port))
                });
                let (rid, rserial, rcounters) = match old {
                    Some(d) => (d.id, d.serial, d.counters.clone()),
                    None => (
                        RealServerId(builder.real_server_slot()),
                        builder.serial(),
                        Arc::new(DestCounters::new(workers)),
                    ),
                };
                dests.push(Arc::new(RealServer {
                    id: rid,
                    serial: rserial,
                    addr: rc.address,
                    port,
                    weight: rc.weight,
                    forward: rc.forward,
                    upper_threshold: rc.upper_threshold,
                    lower_threshold: rc.lower_threshold,
                    tunnel: rc.tunnel,
                    counters: rcounters,
                }));
            }
            let scheduler_spec = sc.scheduler.clone();
            let scheduler = sched::build(&scheduler_spec, &dests, workers)
                .map_err(|error| BuildError { service: i, error })?;
            // An edited service keeps its place in the rotation.
            if let Some(positions) = old_service
                .filter(|s| s.scheduler_spec.name == scheduler_spec.name)
                .and_then(|s| s.scheduler.positions())
            {
                scheduler.resume(&positions);
            }
            for d in &dests {
                place(&mut real_servers, d.id.index(), d.clone());
            }
            let service = Arc::new(Service {
                id,
                serial,
                protocol: sc.protocol,
                vip: sc.address,
                vport: sc.port,
                scheduler_spec,
                scheduler,
                established_timeout: sc.established_timeout,
                carrier: sc.carrier,
                tun_mss_clamp: sc.tun_mss_clamp,
                persistence_timeout: sc.persistence_timeout,
                persistence_prefix: sc.persistence_prefix,
                real_servers: dests,
                counters,
            });
            service_index.insert((sc.protocol.number(), sc.address, sc.port), id);
            place(&mut services, id.index(), service);
        }

        Ok(Snapshot {
            generation: previous.map_or(1, |p| p.generation + 1),
            workers,
            ports,
            routes,
            static_neighbours: spec.static_neighbours.clone(),
            local_addresses: spec.local_addresses.clone(),
            timeouts: spec.timeouts.clone(),
            policies: spec.policies,
            services,
            service_index,
            real_servers,
            local,
            next_serial: builder.next_serial,
        })
    }

    fn service_by_key(&self, key: ServiceKey) -> Option<&Arc<Service>> {
        self.service(key.0.number(), key.1, key.2)
    }

    /// The service for `proto` traffic to `vip:vport`.
    #[inline]
    pub fn service(&self, proto: u8, vip: IpAddr, vport: u16) -> Option<&Arc<Service>> {
        let id = self.service_index.get(&(proto, vip, vport))?;
        self.services[id.index()].as_ref()
    }

    /// The service in slot `id` if it still has `serial`.
    #[inline]
    pub fn service_by_id(&self, id: ServiceId, serial: u32) -> Option<&Arc<Service>> {
        self.services
            .get(id.index())?
            .as_ref()
            .filter(|s| s.serial == serial)
    }

    /// The real server in slot `id` if it still has `serial`.
    #[inline]
    pub fn real_server(&self, id: RealServerId, serial: u32) -> Option<&Arc<RealServer>> {
        self.real_servers
            .get(id.index())?
            .as_ref()
            .filter(|d| d.serial == serial)
    }

    /// Every service, in slot order.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> + '_ {
        self.services.iter().flatten()
    }

    /// The interface of a frame received on port `device`, tagged with `vlan`
    /// (`None` when untagged).
    #[inline]
    pub fn interface(&self, device: PortId, vlan: Option<u16>) -> Option<PortId> {
        match vlan {
            None => Some(device),
            Some(_) => self
                .ports
                .iter()
                .position(|p| p.device == device && p.vlan == vlan)
                .map(|i| PortId(i as u16)),
        }
    }

    /// What `addr` is to the director, if it is one of its addresses.
    #[inline]
    pub fn local_kind(&self, addr: IpAddr) -> Option<LocalKind> {
        self.local.get(&addr).copied()
    }
}

fn place<T>(slots: &mut Vec<Option<T>>, index: usize, value: T) {
    if slots.len() <= index {
        slots.resize_with(index + 1, || None);
    }
    slots[index] = Some(value);
}

/// Hands out slot ids not used by anything carried over from the previous snapshot.
struct Registry {
    services_used: Vec<bool>,
    real_servers_used: Vec<bool>,
    next_serial: u32,
}

impl Registry {
    fn new(previous: Option<&Snapshot>) -> Self {
        // Slots of the previous snapshot stay reserved for the objects that keep them;
        // an object that goes away frees its slot only in the snapshot after next, so
        // a slot never changes owner between two consecutive snapshots.
        let mut services_used = Vec::new();
        let mut real_servers_used = Vec::new();
        if let Some(p) = previous {
            services_used = p.services.iter().map(Option::is_some).collect();
            real_servers_used = p.real_servers.iter().map(Option::is_some).collect();
        }
        Registry {
            services_used,
            real_servers_used,
            next_serial: previous.map_or(1, |p| p.next_serial),
        }
    }

    fn service_slot(&mut self) -> u32 {
        take_slot(&mut self.services_used)
    }

    fn real_server_slot(&mut self) -> u32 {
        take_slot(&mut self.real_servers_used)
    }

    fn serial(&mut self) -> u32 {
        let s = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        s
    }
}

fn take_slot(used: &mut Vec<bool>) -> u32 {
    let i = used.iter().position(|u| !u).unwrap_or_else(|| {
        used.push(false);
        used.len() - 1
    });
    used[i] = true;
    i as u32
}
