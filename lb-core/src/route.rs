//! IPv4 routes: connected networks of the ports plus static routes, longest prefix
//! first.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::ids::PortId;

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

/// Where a destination is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port.
    pub port: PortId,
    /// The address whose MAC the frame goes to (the gateway, or the destination).
    pub via: Ipv4Addr,
}

#[derive(Clone, Debug)]
struct Route {
    net: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
    port: PortId,
}

/// A routing table, ordered by decreasing prefix length.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Adds a route; `gateway` `None` means directly connected.
    pub fn add(&mut self, net: Ipv4Cidr, gateway: Option<Ipv4Addr>, port: PortId) {
        let at = self
            .routes
            .iter()
            .position(|r| r.net.prefix < net.prefix)
            .unwrap_or(self.routes.len());
        self.routes.insert(at, Route { net, gateway, port });
    }

    /// The next hop for `dst`, by longest prefix match.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.routes
            .iter()
            .find(|r| r.net.contains(dst))
            .map(|r| NextHop {
                port: r.port,
                via: r.gateway.unwrap_or(dst),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let net: Ipv4Cidr = "10.0.1.1/24".parse().unwrap();
        assert!(net.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 0, 2, 1)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn cidr_text_round_trips_and_bad_text_is_named() {
        let net: Ipv4Cidr = "10.0.1.1/24".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.1.1/24");
        assert_eq!(
            "10.0.1.1/33".parse::<Ipv4Cidr>(),
            Err("'33' is not a prefix length 0..32".to_owned())
        );
        assert_eq!(
            "10.0.1.1".parse::<Ipv4Cidr>(),
            Err("'10.0.1.1' is not in ADDRESS/PREFIX form".to_owned())
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::default();
        t.add(
            "0.0.0.0/0".parse().unwrap(),
            Some(Ipv4Addr::new(10, 0, 1, 254)),
            PortId(0),
        );
        t.add("10.0.2.1/24".parse().unwrap(), None, PortId(1));
        t.add(
            "10.0.2.128/25".parse().unwrap(),
            Some(Ipv4Addr::new(10, 0, 2, 2)),
            PortId(1),
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 0, 2, 11)),
            Some(NextHop {
                port: PortId(1),
                via: Ipv4Addr::new(10, 0, 2, 11)
            })
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(10, 0, 2, 200)),
            Some(NextHop {
                port: PortId(1),
                via: Ipv4Addr::new(10, 0, 2, 2)
            })
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(192, 0, 2, 1)),
            Some(NextHop {
                port: PortId(0),
                via: Ipv4Addr::new(10, 0, 1, 254)
            })
        );
        assert_eq!(RouteTable::default().lookup(Ipv4Addr::LOCALHOST), None);
    }
}
