//! FullNAT: client CIP:cport → VIP:vport becomes LIP:lport → RIP:rport, and the
//! server's replies are translated back.

use super::{rewrite_endpoints, v4, XmitError};
use crate::conn::Conn;

/// Client → server: source becomes the local address, destination the real server.
pub fn to_server(conn: &Conn, ip: &mut [u8]) -> Result<(), XmitError> {
    rewrite_endpoints(ip, Some(v4(conn.local)?), Some(v4(conn.dest)?))
}

/// Server → client: source becomes the VIP, destination the client.
pub fn to_client(conn: &Conn, ip: &mut [u8]) -> Result<(), XmitError> {
    rewrite_endpoints(ip, Some(v4(conn.virt)?), Some(v4(conn.client)?))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::conn::TcpState;
    use crate::ids::{RealServerId, ServiceId};
    use crate::service::ForwardMode;
    use crate::time::Instant;
    use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
    use crate::xmit::test_support::{checksums_valid, packet};

    const CIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
    const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
    const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 11);

    fn conn(proto: u8) -> Conn {
        Conn {
            proto,
            forward: ForwardMode::FullNat,
            state: TcpState::Established,
            output_seen: false,
            client: (IpAddr::V4(CIP), 40000),
            virt: (IpAddr::V4(VIP), 80),
            local: (IpAddr::V4(LIP), 1025),
            dest: (IpAddr::V4(RIP), 8080),
            service: (ServiceId(0), 1),
            real_server: (RealServerId(0), 2),
            expires: Instant(0),
        }
    }

    #[test]
    fn tcp_to_server_matches_the_expected_bytes() {
        let c = conn(PROTO_TCP);
        let mut p = packet(PROTO_TCP, (CIP, 40000), (VIP, 80), b"GET /", false);
        to_server(&c, &mut p).unwrap();
        // The same segment as the server should see it, built from scratch.
        let expected = packet(PROTO_TCP, (LIP, 1025), (RIP, 8080), b"GET /", false);
        assert_eq!(p, expected);
    }

    #[test]
    fn round_trip_restores_the_client_view_with_valid_checksums() {
        for (proto, with_csum) in [(PROTO_TCP, true), (PROTO_UDP, true), (PROTO_UDP, false)] {
            let c = conn(proto);
            let original = packet(proto, (CIP, 40000), (VIP, 80), b"hello", with_csum);
            let mut p = original.clone();
            to_server(&c, &mut p).unwrap();
            assert!(checksums_valid(&p));
            assert_eq!(&p[12..20], &[10, 0, 2, 100, 10, 0, 2, 11]);
            // The server answers: swap endpoints as a server would.
            let mut reply = packet(proto, (RIP, 8080), (LIP, 1025), b"world", with_csum);
            to_client(&c, &mut reply).unwrap();
            assert!(checksums_valid(&reply));
            assert_eq!(
                reply,
                packet(proto, (VIP, 80), (CIP, 40000), b"world", with_csum)
            );
            if !with_csum {
                assert_eq!(&reply[26..28], &[0, 0]);
            }
        }
    }
}
