//! From the validated configuration to the snapshot the workers forward with.

use std::time::Duration;

use lb_core::ids::PortId;
use lb_core::snapshot::{
    PortAddress, RealServerSpec, RouteSpec, ServiceSpec, Snapshot, SnapshotSpec,
};

use crate::model::{Config, ConfigError, ServiceConfig};

/// Validates `config` and builds a snapshot of it for `workers` workers,
/// carrying identities and counters over from `previous`.
pub fn build_snapshot(
    config: &Config,
    previous: Option<&Snapshot>,
    workers: usize,
) -> Result<Snapshot, ConfigError> {
    config.validate()?;
    Snapshot::build(&snapshot_spec(config), previous, workers).map_err(|e| {
        ConfigError::new(
            format!("services[{}].scheduler", e.service),
            e.error.to_string(),
        )
    })
}

/// `config` in the terms of lb-core: ports by index, defaults resolved. `config`
/// must be valid (a route or neighbour naming no port would go to port 0).
pub fn snapshot_spec(config: &Config) -> SnapshotSpec {
    let port_id = |name: &str| PortId(config.port_index(name).unwrap_or_default() as u16);
    SnapshotSpec {
        ports: config
            .interfaces()
            .iter()
            .map(|i| PortAddress {
                cidr: i.address,
                mtu: i.mtu,
                rp_filter: i.rp_filter,
                device: PortId(i.device as u16),
                vlan: i.vlan,
            })
            .collect(),
        routes: config
            .routes
            .iter()
            .map(|r| RouteSpec {
                destination: r.destination,
                via: r.via,
                port: port_id(&r.port),
            })
            .collect(),
        static_neighbours: config
            .neighbours
            .iter()
            .map(|n| (n.address, n.mac, port_id(&n.port)))
            .collect(),
        local_addresses: config.local_addresses.iter().map(|l| l.address).collect(),
        services: config.services.iter().map(service_spec).collect(),
        timeouts: config.timeouts.clone(),
        policies: config.policies,
    }
}

fn service_spec(sc: &ServiceConfig) -> ServiceSpec {
    ServiceSpec {
        protocol: sc.protocol,
        address: sc.address,
        port: sc.port,
        scheduler: sc.scheduler_spec(),
        established_timeout: sc
            .established_timeout
            .map(|t| Duration::from_secs(u64::from(t))),
        carrier: sc.carrier,
        tun_mss_clamp: sc.tun_mss_clamp,
        persistence_timeout: sc.persistence.unwrap_or(0),
        persistence_prefix: sc.persistence_prefix,
        real_servers: sc
            .real_servers
            .iter()
            .map(|rc| RealServerSpec {
                address: rc.address,
                port: rc.port.unwrap_or(sc.port),
                weight: rc.weight,
                forward: rc.forward.unwrap_or(sc.forward),
                upper_threshold: rc.upper_threshold,
                lower_threshold: rc.lower_threshold,
                tunnel: rc.tunnel_spec(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use lb_core::service::{ForwardMode, TunnelType};

    use super::*;
    use crate::model::tests::{with, GOOD};

    #[test]
    fn defaults_are_resolved_and_ports_are_named_by_index() {
        let config = with(
            "      - address: 10.0.2.12\n        weight: 3",
            "      - address: 10.0.2.12\n        weight: 3\n        port: 8080\n        forward: nat",
        )
        .unwrap();
        let spec = snapshot_spec(&config);
        assert_eq!(spec.ports.len(), 2);
        assert_eq!(spec.routes[0].port, PortId(0));
        assert_eq!(
            spec.local_addresses,
            ["10.0.2.100".parse::<IpAddr>().unwrap()]
        );
        let svc = &spec.services[0];
        assert_eq!(svc.scheduler.name, "rr");
        assert_eq!(svc.persistence_timeout, 0);
        assert_eq!(svc.established_timeout, None);
        let first = svc.real_servers[0];
        assert_eq!((first.port, first.weight), (80, 1));
        assert_eq!(first.forward, ForwardMode::FullNat);
        assert_eq!(first.tunnel.kind, TunnelType::Ipip);
        let second = svc.real_servers[1];
        assert_eq!((second.port, second.weight), (8080, 3));
        assert_eq!(second.forward, ForwardMode::Nat);
    }

    #[test]
    fn a_scheduler_that_refuses_its_servers_names_the_service() {
        // Validation builds the scheduler without servers; only the snapshot
        // finds that three slots cannot hold four servers.
        let text = GOOD
            .replace("scheduler: rr", "scheduler: mh\n    mh_table_size: 3")
            .replace(
                "        weight: 3\n",
                "        weight: 3\n      - address: 10.0.2.13\n      - address: 10.0.2.14\n",
            );
        let config = Config::from_yaml(&text).unwrap();
        let err = build_snapshot(&config, None, 1).unwrap_err().to_string();
        assert!(err.starts_with("services[0].scheduler: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(build_snapshot(&Config::from_yaml(GOOD).unwrap(), None, 1).is_ok());
    }
}
