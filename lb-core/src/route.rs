//! IPv4 routes: connected networks of the ports plus static routes, longest prefix
//! first.

use std::net::Ipv4Addr;

use crate::config::Ipv4Cidr;
use crate::ids::PortId;

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
