//! The immutable configuration workers forward with.
//!
//! The control plane builds a new [`Snapshot`] from a [`Config`] off the packet path
//! and publishes it atomically; workers load it once per burst. Building from the
//! previous snapshot keeps the identity (slot id and serial) and the counters of
//! every service and real server that is still configured, so connections and
//! statistics carry across edits.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::config::{Config, ConfigError, Ipv4Cidr, Policies, RpFilter};
use crate::conn::Timeouts;
use crate::ids::{PortId, RealServerId, ServiceId};
use crate::route::RouteTable;
use crate::sched;
use crate::service::{DestCounters, Protocol, RealServer, Service, ServiceCounters};
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

/// A port's layer-3 identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAddress {
    /// The director's address and subnet on the port.
    pub cidr: Ipv4Cidr,
    /// Link MTU.
    pub mtu: u16,
    /// Reverse-path check of what arrives on the port.
    pub rp_filter: RpFilter,
}

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
    /// Builds a snapshot of `config` for `workers` workers, carrying identities and
    /// counters over from `previous`.
    pub fn build(
        config: &Config,
        previous: Option<&Snapshot>,
        workers: usize,
    ) -> Result<Snapshot, ConfigError> {
        config.validate()?;
        let port_id = |name: &str| PortId(config.port_index(name).unwrap_or_default() as u16);
        let ports: Vec<PortAddress> = config
            .ports
            .iter()
            .map(|p| PortAddress {
                cidr: p.address,
                mtu: p.mtu,
                rp_filter: p.rp_filter,
            })
            .collect();
        let mut routes = RouteTable::default();
        for (i, p) in ports.iter().enumerate() {
            routes.add(p.cidr, None, PortId(i as u16));
        }
        for r in &config.routes {
            routes.add(r.destination, r.via, port_id(&r.port));
        }
        let mut local = HashMap::new();
        for (i, p) in ports.iter().enumerate() {
            local.insert(IpAddr::V4(p.cidr.addr), LocalKind::Port(PortId(i as u16)));
        }
        for l in &config.local_addresses {
            local.insert(l.address, LocalKind::LocalAddress);
        }
        for s in &config.services {
            local.entry(s.address).or_insert(LocalKind::Vip);
        }

        let mut builder = Registry::new(previous);
        let mut services = Vec::new();
        let mut service_index = HashMap::new();
        let mut real_servers = Vec::new();
        for (i, sc) in config.services.iter().enumerate() {
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
                let port = rc.port.unwrap_or(sc.port);
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
                    forward: rc.forward.unwrap_or(sc.forward),
                    upper_threshold: rc.upper_threshold,
                    lower_threshold: rc.lower_threshold,
                    tunnel: rc.tunnel_spec(),
                    counters: rcounters,
                }));
            }
            let scheduler_spec = sc.scheduler_spec();
            let scheduler = sched::build(&scheduler_spec, &dests, workers)
                .map_err(|e| ConfigError::new(format!("services[{i}].scheduler"), e.to_string()))?;
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
                established_timeout: sc
                    .established_timeout
                    .map(|t| std::time::Duration::from_secs(u64::from(t))),
                carrier: sc.carrier,
                tun_mss_clamp: sc.tun_mss_clamp,
                persistence_timeout: sc.persistence.unwrap_or(0),
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
            static_neighbours: config
                .neighbours
                .iter()
                .map(|n| (n.address, n.mac, port_id(&n.port)))
                .collect(),
            local_addresses: config.local_addresses.iter().map(|l| l.address).collect(),
            timeouts: config.timeouts.clone(),
            policies: config.policies,
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
ports:
  - { name: client, device: d0, address: 10.0.1.1/24 }
  - { name: server, device: d1, address: 10.0.2.1/24 }
local_addresses:
  - { address: 10.0.2.100, port: server }
services:
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: rr
    real_servers:
      - { address: 10.0.2.11 }
      - { address: 10.0.2.12, port: 8080 }
"#;

    fn build(text: &str, previous: Option<&Snapshot>) -> Snapshot {
        Snapshot::build(&Config::from_yaml(text).unwrap(), previous, 2).unwrap()
    }

    #[test]
    fn an_edited_service_keeps_its_place_in_the_rotation() {
        let first = build(CONFIG, None);
        let vip: IpAddr = "10.0.1.100".parse().unwrap();
        let flow = crate::flow::FlowKey::v4(
            6,
            "10.0.1.2".parse().unwrap(),
            1,
            "10.0.1.100".parse().unwrap(),
            80,
        );
        let svc = first.service(6, vip, 80).unwrap();
        let w = crate::ids::WorkerId(1);
        assert_eq!(svc.scheduler.pick(w, &svc.real_servers, &flow), Some(0));
        // A server is added: rr continues with the second server, not the first.
        let edited = CONFIG.replace(
            "      - { address: 10.0.2.12, port: 8080 }",
            "      - { address: 10.0.2.12, port: 8080 }\n      - { address: 10.0.2.13 }",
        );
        let second = build(&edited, Some(&first));
        let svc = second.service(6, vip, 80).unwrap();
        let picks: Vec<_> = (0..3)
            .map(|_| svc.scheduler.pick(w, &svc.real_servers, &flow).unwrap())
            .collect();
        assert_eq!(picks, [1, 2, 0]);
        // Worker 0 had not picked yet: it still starts at the first server.
        assert_eq!(
            svc.scheduler
                .pick(crate::ids::WorkerId(0), &svc.real_servers, &flow),
            Some(0)
        );
    }

    #[test]
    fn indexes_services_and_local_addresses() {
        let s = build(CONFIG, None);
        let vip: IpAddr = "10.0.1.100".parse().unwrap();
        let svc = s.service(6, vip, 80).unwrap();
        assert_eq!(svc.real_servers.len(), 2);
        assert_eq!(svc.real_servers[1].port, 8080);
        assert_eq!(svc.real_servers[0].port, 80);
        assert!(s.service(17, vip, 80).is_none());
        assert_eq!(s.local_kind(vip), Some(LocalKind::Vip));
        assert_eq!(
            s.local_kind("10.0.2.1".parse().unwrap()),
            Some(LocalKind::Port(PortId(1)))
        );
        assert_eq!(
            s.local_kind("10.0.2.100".parse().unwrap()),
            Some(LocalKind::LocalAddress)
        );
        let d = &svc.real_servers[0];
        assert!(Arc::ptr_eq(s.real_server(d.id, d.serial).unwrap(), d));
        assert!(s.real_server(d.id, d.serial + 1000).is_none());
    }

    #[test]
    fn edits_keep_identity_and_counters_of_what_stays() {
        let first = build(CONFIG, None);
        let vip: IpAddr = "10.0.1.100".parse().unwrap();
        let kept = first.service(6, vip, 80).unwrap().real_servers[0].clone();
        let removed = first.service(6, vip, 80).unwrap().real_servers[1].clone();
        let edited = CONFIG.replace(
            "{ address: 10.0.2.12, port: 8080 }",
            "{ address: 10.0.2.13, weight: 5 }",
        );
        let second = build(&edited, Some(&first));
        assert_eq!(second.generation, first.generation + 1);
        let svc = second.service(6, vip, 80).unwrap();
        let again = &svc.real_servers[0];
        assert_eq!((again.id, again.serial), (kept.id, kept.serial));
        assert!(Arc::ptr_eq(&again.counters, &kept.counters));
        assert!(second.real_server(removed.id, removed.serial).is_none());
        let added = &svc.real_servers[1];
        assert_ne!(
            added.id, removed.id,
            "a freed slot is not reused by the next snapshot"
        );
        // One more snapshot later the freed slot may be reused, with a new serial.
        let third = build(&edited.replace("10.0.2.13", "10.0.2.14"), Some(&second));
        let newest = &third.service(6, vip, 80).unwrap().real_servers[1];
        assert!(third.real_server(removed.id, removed.serial).is_none());
        assert!(third.real_server(added.id, added.serial).is_none());
        assert!(third.real_server(newest.id, newest.serial).is_some());
    }
}
