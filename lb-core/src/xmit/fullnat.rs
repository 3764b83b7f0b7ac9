//! FullNAT: client CIP:cport → VIP:vport becomes LIP:lport → RIP:rport, and the
//! server's replies are translated back. TCP connections of a service with a
//! client-address carrier also get a TOA or a PROXY header ([`super::toa`],
//! [`super::proxy`]); client-sent TOAs are blanked on every segment.

use super::carrier::{INIT, PROXY, PROXY_SENT, PROXY_V1, PROXY_V2, TOA, TOA_PENDING};
use super::tcpopt::{self, seq_after};
use super::{ip_mut, proxy, rewrite_endpoints, toa, v4, Path, XmitError, IP_AT};
use crate::conn::Conn;
use crate::csum::Delta;
use crate::frame::Frame;
use crate::service::Carrier;
use crate::stats::ModeCounters;
use crate::wire::get_u32;
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP};
use crate::wire::tcp::flags::{ACK, SYN};

/// Client → server: source becomes the local address, destination the real
/// server; then the carrier's work on TCP segments.
pub fn to_server(conn: &mut Conn, frame: &mut Frame<'_>, path: &Path<'_>) -> Result<(), XmitError> {
    rewrite_endpoints(ip_mut(frame)?, Some(v4(conn.local)?), Some(v4(conn.dest)?))?;
    if conn.proto == PROTO_TCP {
        client_segment(conn, frame, path)?;
    }
    Ok(())
}

/// Server → client: source becomes the VIP, destination the client; then the
/// carrier's fixes (MSS in the SYN-ACK, acknowledgements after a PROXY header).
pub fn to_client(
    conn: &mut Conn,
    frame: &mut Frame<'_>,
    counters: &ModeCounters,
) -> Result<(), XmitError> {
    rewrite_endpoints(ip_mut(frame)?, Some(v4(conn.virt)?), Some(v4(conn.client)?))?;
    if conn.proto == PROTO_TCP && conn.xmit.flags & (TOA | PROXY) != 0 {
        server_segment(conn, frame, counters)?;
    }
    Ok(())
}

/// Offsets of the TCP segment in the frame's IPv4 packet: (IP header length,
/// total length); checked so that the TCP header lies inside.
/// The real server's acknowledgement `ack` in the client's sequence space: the
/// bytes of a PROXY header the director inserted are not the client's.
pub fn client_ack(conn: &Conn, ack: u32) -> u32 {
    let st = conn.xmit;
    if st.flags & PROXY_SENT != 0 {
        tcpopt::unshift(ack, st.seq, u32::from(st.delta))
    } else {
        ack
    }
}

fn tcp_bounds(ip: &[u8]) -> Result<(usize, usize), XmitError> {
    let p = Ipv4Packet::new_checked(ip)?;
    let l4 = p.payload();
    if l4.len() < 20 || tcpopt::header_len(l4) < 20 || tcpopt::header_len(l4) > l4.len() {
        return Err(XmitError::Malformed);
    }
    Ok((p.header_len(), p.total_len()))
}

fn client_segment(
    conn: &mut Conn,
    frame: &mut Frame<'_>,
    path: &Path<'_>,
) -> Result<(), XmitError> {
    let c = path.counters;
    let ip = ip_mut(frame)?;
    let (hl, total) = tcp_bounds(ip)?;
    let l4 = &mut ip[hl..total];
    let tcp_flags = l4[13];
    let seq = get_u32(l4, 4);
    let payload = l4.len() - tcpopt::header_len(l4);
    let mut d = Delta::default();
    let stripped = tcpopt::strip_toa(l4, &mut d);
    if stripped > 0 {
        c.toa_stripped.add(stripped as u64);
    }
    let st = &mut conn.xmit;
    if tcp_flags & (SYN | ACK) == SYN {
        if st.flags & INIT == 0 {
            st.flags = INIT
                | match path.carrier {
                    Carrier::None => 0,
                    Carrier::Toa => TOA | TOA_PENDING,
                    Carrier::ProxyV1 => PROXY_V1,
                    Carrier::ProxyV2 => PROXY_V2,
                };
            st.delta = match path.carrier {
                Carrier::None => 0,
                Carrier::Toa => tcpopt::TOA_LEN as u8,
                Carrier::ProxyV1 | Carrier::ProxyV2 => {
                    let mut h = [0u8; 64];
                    proxy::header(
                        path.carrier == Carrier::ProxyV2,
                        v4(conn.client)?,
                        v4(conn.virt)?,
                        &mut h,
                    ) as u8
                }
            };
        }
        st.seq = seq.wrapping_add(1);
        tcpopt::apply(l4, d);
        return Ok(());
    }
    if st.flags & PROXY != 0 {
        if payload > 0 && seq == st.seq {
            tcpopt::apply(l4, d);
            let mut h = [0u8; 64];
            let n = proxy::header(
                st.flags & PROXY_V2 != 0,
                v4(conn.client)?,
                v4(conn.virt)?,
                &mut h,
            );
            proxy::insert(frame, &h[..n], path.mtu)?;
            conn.xmit.flags |= PROXY_SENT;
            c.proxy_inserted.inc();
        } else if st.flags & PROXY_SENT != 0 && !seq_after(st.seq, seq) {
            tcpopt::set_seq(l4, seq.wrapping_add(u32::from(st.delta)), &mut d);
            tcpopt::apply(l4, d);
            c.proxy_seq_adjusted.inc();
        } else {
            tcpopt::apply(l4, d);
        }
        return Ok(());
    }
    tcpopt::apply(l4, d);
    if st.flags & TOA_PENDING != 0 && tcp_flags & ACK != 0 {
        let client = v4(conn.client)?;
        if toa::insert(frame, client, path.mtu)? {
            conn.xmit.flags &= !TOA_PENDING;
            c.toa_inserted.inc();
        } else {
            c.toa_no_room.inc();
            if payload > 0 {
                conn.xmit.flags &= !TOA_PENDING;
                c.toa_given_up.inc();
            }
        }
    }
    Ok(())
}

fn server_segment(
    conn: &mut Conn,
    frame: &mut Frame<'_>,
    counters: &ModeCounters,
) -> Result<(), XmitError> {
    let st = conn.xmit;
    let ip = &mut frame.data_mut()[IP_AT..];
    let (hl, total) = tcp_bounds(ip)?;
    let l4 = &mut ip[hl..total];
    let tcp_flags = l4[13];
    let mut d = Delta::default();
    if tcp_flags & (SYN | ACK) == SYN | ACK {
        // Leave room for what the carrier adds to the client's segments.
        let room = u16::from(st.delta);
        if tcpopt::edit_mss(l4, &mut d, |m| m.saturating_sub(room).max(536)).is_some() {
            counters.mss_lowered.inc();
        }
    }
    if st.flags & PROXY_SENT != 0 && tcp_flags & ACK != 0 {
        let (start, delta) = (st.seq, u32::from(st.delta));
        let ack = get_u32(l4, 8);
        let new = tcpopt::unshift(ack, start, delta);
        if new != ack {
            tcpopt::set_ack(l4, new, &mut d);
            counters.proxy_seq_adjusted.inc();
        }
        tcpopt::map_sack(l4, &mut d, |e| tcpopt::unshift(e, start, delta));
    }
    tcpopt::apply(l4, d);
    Ok(())
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
    use crate::xmit::test_support::{checksums_valid, counters, packet, with_frame};
    use crate::xmit::Path;

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
            xmit: Default::default(),
            sides: Default::default(),
            window: Default::default(),
        }
    }

    fn path() -> Path<'static> {
        Path {
            carrier: Carrier::None,
            tun_mss_clamp: false,
            tunnel: Default::default(),
            src: Ipv4Addr::new(10, 0, 2, 1),
            mtu: 1500,
            counters: counters(),
        }
    }

    #[test]
    fn tcp_to_server_matches_the_expected_bytes() {
        let mut c = conn(PROTO_TCP);
        let p = packet(PROTO_TCP, (CIP, 40000), (VIP, 80), b"GET /", false);
        let (r, p) = with_frame(&p, |f| to_server(&mut c, f, &path()));
        r.unwrap();
        // The same segment as the server should see it, built from scratch.
        let expected = packet(PROTO_TCP, (LIP, 1025), (RIP, 8080), b"GET /", false);
        assert_eq!(p, expected);
    }

    #[test]
    fn round_trip_restores_the_client_view_with_valid_checksums() {
        for (proto, with_csum) in [(PROTO_TCP, true), (PROTO_UDP, true), (PROTO_UDP, false)] {
            let mut c = conn(proto);
            let original = packet(proto, (CIP, 40000), (VIP, 80), b"hello", with_csum);
            let (r, p) = with_frame(&original, |f| to_server(&mut c, f, &path()));
            r.unwrap();
            assert!(checksums_valid(&p));
            assert_eq!(&p[12..20], &[10, 0, 2, 100, 10, 0, 2, 11]);
            // The server answers: swap endpoints as a server would.
            let reply = packet(proto, (RIP, 8080), (LIP, 1025), b"world", with_csum);
            let (r, reply) = with_frame(&reply, |f| to_client(&mut c, f, counters()));
            r.unwrap();
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
