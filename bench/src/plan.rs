//! The address plan of a benchmark, taken from the director's own YAML
//! configuration so that lb-pktgen and the director can never disagree: the
//! director's port addresses (ARP targets), the client gateway, the services
//! (VIPs, ports, real servers) and the FullNAT local addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use lb_config::Config;
use lb_core::service::{ForwardMode, Protocol};
use lb_core::wire::ipv4::{PROTO_TCP, PROTO_UDP};

/// One virtual service as lb-pktgen drives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// Virtual address.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
    /// Real servers: address and port.
    pub real_servers: Vec<(Ipv4Addr, u16)>,
}

/// Everything lb-pktgen needs to know about the director's configuration.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The director's address on the client link (port 0).
    pub client_dut_ip: Ipv4Addr,
    /// The director's address on the server link (port 1).
    pub server_dut_ip: Ipv4Addr,
    /// The gateway the director routes clients through (lb-pktgen plays it).
    pub gateway: Ipv4Addr,
    /// Services, in configuration order.
    pub services: Vec<Service>,
    /// FullNAT local addresses.
    pub lips: Vec<Ipv4Addr>,
    /// Index of every real-server address over all services.
    pub rip_index: HashMap<Ipv4Addr, u16>,
    /// Every real-server address, by index.
    pub rips: Vec<Ipv4Addr>,
    lip_index: HashMap<Ipv4Addr, u16>,
}

impl Plan {
    /// The plan of `config`: port 0 is the client link, port 1 the server link,
    /// the gateway is the `via` of the first route out of port 0 (or `.254` of its
    /// network). Only IPv4 FullNAT services are taken.
    pub fn from_config(config: &Config) -> Result<Plan, String> {
        if config.ports.len() != 2 {
            return Err(format!(
                "lb-pktgen needs a configuration with exactly two ports (client, server); it has {}",
                config.ports.len()
            ));
        }
        let client_port = &config.ports[0];
        let server_port = &config.ports[1];
        let gateway = config
            .routes
            .iter()
            .find(|r| r.port == client_port.name)
            .and_then(|r| r.via)
            .unwrap_or_else(|| {
                let net = u32::from(client_port.address.addr) & client_port.address.mask();
                Ipv4Addr::from(net | 254)
            });
        let mut services = Vec::new();
        let mut rips = Vec::new();
        let mut rip_index = HashMap::new();
        for s in &config.services {
            let IpAddr::V4(vip) = s.address else { continue };
            let mut real_servers = Vec::new();
            for rs in &s.real_servers {
                let IpAddr::V4(addr) = rs.address else {
                    continue;
                };
                if rs.forward.unwrap_or(s.forward) != ForwardMode::FullNat {
                    continue;
                }
                real_servers.push((addr, rs.port.unwrap_or(s.port)));
                rip_index.entry(addr).or_insert_with(|| {
                    rips.push(addr);
                    (rips.len() - 1) as u16
                });
            }
            if real_servers.is_empty() {
                continue;
            }
            services.push(Service {
                proto: match s.protocol {
                    Protocol::Tcp => PROTO_TCP,
                    Protocol::Udp => PROTO_UDP,
                },
                vip,
                vport: s.port,
                real_servers,
            });
        }
        let lips: Vec<Ipv4Addr> = config
            .local_addresses
            .iter()
            .filter_map(|l| match l.address {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .collect();
        let lip_index = lips
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, i as u16))
            .collect();
        Ok(Plan {
            client_dut_ip: client_port.address.addr,
            server_dut_ip: server_port.address.addr,
            gateway,
            services,
            lips,
            rip_index,
            rips,
            lip_index,
        })
    }

    /// The services of protocol `proto`.
    pub fn services_for(&self, proto: u8) -> Vec<Service> {
        self.services
            .iter()
            .filter(|s| s.proto == proto)
            .cloned()
            .collect()
    }

    /// The index of a FullNAT local address.
    pub fn lip(&self, addr: Ipv4Addr) -> Option<u16> {
        self.lip_index.get(&addr).copied()
    }

    /// The index of a real-server address.
    pub fn rip(&self, addr: Ipv4Addr) -> Option<u16> {
        self.rip_index.get(&addr).copied()
    }
}
