//! What serde cannot check: references between sections, ranges, duplicates and
//! addresses the director must not own. Every error names its field.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use lb_core::conn::MAX_TIMEOUT_SECS;
use lb_core::sched;
use lb_core::service::{Carrier, ForwardMode, Protocol, TunnelType};

use crate::model::{Config, ConfigError, ServiceConfig, MAX_WEIGHT};

impl Config {
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
        if let Some(core) = self.control.core {
            if let Some(w) = self.workers.cores.iter().position(|&c| c == core) {
                return Err(ConfigError::new(
                    "control.core",
                    format!("{core} is worker {w}'s core; the control thread must not share it"),
                ));
            }
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
            let mut ids = HashSet::new();
            for (j, vlan) in port.vlans.iter().enumerate() {
                let field = |f: &str| format!("ports[{i}].vlans[{j}].{f}");
                if !(1..=4094).contains(&vlan.id) {
                    return Err(ConfigError::new(
                        field("id"),
                        format!("{} is not a VLAN id (1..4094)", vlan.id),
                    ));
                }
                if !ids.insert(vlan.id) {
                    return Err(ConfigError::new(
                        field("id"),
                        format!("duplicate VLAN {} on port '{}'", vlan.id, port.name),
                    ));
                }
                if let Some(mtu) = vlan.mtu.filter(|&m| m < 576 || m > port.mtu) {
                    return Err(ConfigError::new(
                        field("mtu"),
                        format!("{mtu} is not within 576..{} (the port's MTU)", port.mtu),
                    ));
                }
            }
        }
        let interfaces = self.interfaces();
        for (k, iface) in interfaces.iter().enumerate().skip(self.ports.len()) {
            if interfaces[..k].iter().any(|other| other.name == iface.name) {
                return Err(ConfigError::new(
                    "ports",
                    format!("interface name '{}' is used twice", iface.name),
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
        self.interfaces().into_iter().find_map(|p| {
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
            if t == 0 || t > MAX_TIMEOUT_SECS {
                return Err(ConfigError::new(
                    format!("{field}.established_timeout"),
                    format!("{t} is not within 1..={} seconds", MAX_TIMEOUT_SECS),
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
}

#[cfg(test)]
mod tests {
    use lb_core::policy::RpFilter;
    use lb_core::service::Carrier;

    use crate::model::tests::{with, GOOD};
    use crate::{Config, ConfigError};

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
    fn the_control_core_is_not_a_workers() {
        let text = GOOD.replace(
            "eal: [\"--no-huge\", \"-m\", \"512\"]\n",
            "eal: [\"--no-huge\", \"-m\", \"512\"]\nworkers: { count: 2, cores: [2, 3] }\ncontrol: { core: 3 }\n",
        );
        assert_ne!(text, GOOD);
        assert_eq!(
            Config::from_yaml(&text).unwrap_err().to_string(),
            "control.core: 3 is worker 1's core; the control thread must not share it"
        );
        let ok = text.replace("control: { core: 3 }", "control: { core: 0 }");
        assert_eq!(Config::from_yaml(&ok).unwrap().control.core, Some(0));
    }

    #[test]
    fn vlans_are_interfaces_of_their_own() {
        let vlans = "    address: 10.0.1.1/24\n    vlans:\n      - { id: 100, address: 10.0.3.1/24 }\n      - { id: 7, address: 10.0.4.1/24, mtu: 1400, rp_filter: loose }\n";
        let c = with("    address: 10.0.1.1/24\n", vlans).unwrap();
        let names: Vec<_> = c.interfaces().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["client", "server", "client.100", "client.7"]);
        assert_eq!(c.port_index("client.7"), Some(3));
        assert_eq!(c.port_device("client.7"), Some(0));
        let seven = &c.interfaces()[3];
        assert_eq!(
            (seven.vlan, seven.mtu, seven.rp_filter),
            (Some(7), 1400, RpFilter::Loose)
        );
        let bad = |vlan: &str| {
            with(
                "    address: 10.0.1.1/24\n",
                &format!("    address: 10.0.1.1/24\n    vlans:\n      - {{ id: 100, address: 10.0.3.1/24 }}\n      - {vlan}\n"),
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad("{ id: 4095, address: 10.0.4.1/24 }"),
            "ports[0].vlans[1].id: 4095 is not a VLAN id (1..4094)"
        );
        assert_eq!(
            bad("{ id: 100, address: 10.0.4.1/24 }"),
            "ports[0].vlans[1].id: duplicate VLAN 100 on port 'client'"
        );
        assert_eq!(
            bad("{ id: 8, address: 10.0.4.1/24, mtu: 9000 }"),
            "ports[0].vlans[1].mtu: 9000 is not within 576..1500 (the port's MTU)"
        );
        // A VIP may not be a VLAN's own address either.
        let text = GOOD
            .replacen("    address: 10.0.1.1/24\n", vlans, 1)
            .replacen("  - address: 10.0.1.100\n", "  - address: 10.0.3.1\n", 1);
        let err = Config::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("the address of port 'client.100'"), "{err}");
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
}
