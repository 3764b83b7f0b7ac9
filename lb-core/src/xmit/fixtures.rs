//! Byte-level tests of every rewrite against fixtures built from scratch (as
//! Katran's and VPP's load-balancer tests do): the expected packet is written
//! out or assembled independently, with checksums computed over everything, and
//! compared with what the incremental rewrite produced.

use std::net::{IpAddr, Ipv4Addr};

use super::test_support::{checksums_valid, counters, fill_l4_checksum, packet, with_frame};
use super::*;
use crate::conn::{Conn, TcpState};
use crate::ids::{RealServerId, ServiceId};
use crate::time::Instant;
use crate::wire::ipv4::{emit_header, Ipv4Repr, PROTO_ICMP};

const CIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 11);
const DIR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);

fn conn(proto: u8, forward: ForwardMode) -> Conn {
    let fullnat = forward == ForwardMode::FullNat;
    Conn {
        proto,
        forward,
        state: TcpState::Established,
        output_seen: false,
        client: (IpAddr::V4(CIP), 40000),
        virt: (IpAddr::V4(VIP), 80),
        local: if fullnat {
            (IpAddr::V4(LIP), 1025)
        } else {
            (IpAddr::V4(CIP), 40000)
        },
        dest: (IpAddr::V4(RIP), if fullnat { 8080 } else { 80 }),
        service: (ServiceId(0), 1),
        real_server: (RealServerId(0), 2),
        expires: Instant(0),
        xmit: Default::default(),
        sides: Default::default(),
        window: Default::default(),
    }
}

fn path(carrier: Carrier, tunnel: TunnelSpec) -> Path<'static> {
    Path {
        carrier,
        tun_mss_clamp: false,
        tunnel,
        src: DIR,
        mtu: 1500,
        counters: counters(),
    }
}

/// A TCP segment built from scratch: header with `options`, checksums computed
/// over everything.
fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let hl = 20 + options.len();
    let mut p = vec![0u8; 20 + hl + payload.len()];
    let repr = Ipv4Repr {
        src: src.0,
        dst: dst.0,
        protocol: PROTO_TCP,
        payload_len: (hl + payload.len()) as u16,
        ttl: 64,
        tos: 0,
        ident: 0x1234,
        dont_fragment: true,
    };
    emit_header(&mut p, &repr).unwrap();
    let l4 = &mut p[20..];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[8..12].copy_from_slice(&ack.to_be_bytes());
    l4[12] = ((hl / 4) as u8) << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    l4[20..hl].copy_from_slice(options);
    l4[hl..].copy_from_slice(payload);
    fill_l4_checksum(&mut p);
    p
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

#[test]
fn nat_rewrites_the_destination_and_back_the_source() {
    let mut c = conn(PROTO_UDP, ForwardMode::Nat);
    c.dest.1 = 9001;
    let p = packet(PROTO_UDP, (CIP, 40000), (VIP, 80), b"hello", true);
    let (r, out) = with_frame(&p, |f| {
        to_server(&mut c, f, &path(Carrier::None, TunnelSpec::default()))
    });
    r.unwrap();
    assert_eq!(
        out,
        packet(PROTO_UDP, (CIP, 40000), (RIP, 9001), b"hello", true)
    );
    let reply = packet(PROTO_UDP, (RIP, 9001), (CIP, 40000), b"world", true);
    let (r, out) = with_frame(&reply, |f| {
        to_client(&mut c, f, &path(Carrier::None, TunnelSpec::default()))
    });
    r.unwrap();
    assert_eq!(
        out,
        packet(PROTO_UDP, (VIP, 80), (CIP, 40000), b"world", true)
    );
}

#[test]
fn dr_leaves_the_packet_alone() {
    let mut c = conn(PROTO_TCP, ForwardMode::Dr);
    let p = packet(PROTO_TCP, (CIP, 40000), (VIP, 80), b"GET /", false);
    let (r, out) = with_frame(&p, |f| {
        to_server(&mut c, f, &path(Carrier::None, TunnelSpec::default()))
    });
    r.unwrap();
    assert_eq!(out, p);
}

#[test]
fn ipip_encapsulation_matches_the_expected_bytes() {
    let mut c = conn(PROTO_UDP, ForwardMode::Tunnel);
    let inner = packet(PROTO_UDP, (CIP, 40000), (VIP, 80), b"hello", true);
    let (r, out) = with_frame(&inner, |f| {
        to_server(&mut c, f, &path(Carrier::None, TunnelSpec::default()))
    });
    r.unwrap();
    let mut expected = vec![
        0x45, 0x00, 0x00, 0x35, 0x12, 0x34, 0x40, 0x00, 0x40, 0x04, 0x10, 0x86, 0x0a, 0x00, 0x02,
        0x01, 0x0a, 0x00, 0x02, 0x0b,
    ];
    expected.extend_from_slice(&inner);
    assert_eq!(out, expected);
}

#[test]
fn gue_encapsulation_matches_the_expected_bytes() {
    let inner = packet(PROTO_UDP, (CIP, 40000), (VIP, 80), b"hello", true);
    let spec = TunnelSpec {
        kind: TunnelType::Gue,
        port: 6080,
    };
    let (r, out) = with_frame(&inner, |f| tun::encapsulate(f, spec, DIR, RIP, 1500, 5));
    r.unwrap();
    let mut expected = vec![
        0x45, 0x00, 0x00, 0x41, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x10, 0x6d, 0x0a, 0x00, 0x02,
        0x01, 0x0a, 0x00, 0x02, 0x0b, // outer IPv4
        0xc0, 0x05, 0x17, 0xc0, 0x00, 0x2d, 0x00, 0x00, // UDP 49157 -> 6080, no checksum
        0x00, 0x04, 0x00, 0x00, // GUE v0, protocol 4 (IPIP)
    ];
    expected.extend_from_slice(&inner);
    assert_eq!(out, expected);
}

#[test]
fn a_df_packet_too_big_for_the_tunnel_gets_fragmentation_needed() {
    let mut c = conn(PROTO_TCP, ForwardMode::Tunnel);
    let inner = packet(PROTO_TCP, (CIP, 40000), (VIP, 80), &[7u8; 1460], false);
    assert_eq!(inner.len(), 1500);
    let (r, _) = with_frame(&inner, |f| {
        to_server(&mut c, f, &path(Carrier::None, TunnelSpec::default()))
    });
    assert_eq!(
        r,
        Err(XmitError::TooBig {
            mtu: 1480,
            df: true
        })
    );
    let (target, out) = with_frame(&inner, |f| icmp::frag_needed(f, 1480));
    assert_eq!(target.unwrap(), CIP);
    let quote = &inner[..548];
    let mut expected = vec![0u8; 28 + quote.len()];
    emit_header(
        &mut expected,
        &Ipv4Repr {
            src: VIP,
            dst: CIP,
            protocol: PROTO_ICMP,
            payload_len: (8 + quote.len()) as u16,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_fragment: false,
        },
    )
    .unwrap();
    expected[20..28].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0x05, 0xc8]);
    expected[28..].copy_from_slice(quote);
    let sum = crate::csum::checksum(&expected[20..]);
    expected[22..24].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(out, expected);
}

#[test]
fn toa_goes_into_the_handshake_ack_and_client_toas_are_blanked() {
    let mut c = conn(PROTO_TCP, ForwardMode::FullNat);
    let p = path(Carrier::Toa, TunnelSpec::default());
    // The client's SYN carries a forged TOA: it leaves as NOPs.
    let forged = [254, 8, 0, 1, 1, 2, 3, 4];
    let syn = tcp(
        (CIP, 40000),
        (VIP, 80),
        SYN,
        100,
        0,
        &[MSS_1460, [1; 4]]
            .concat()
            .iter()
            .chain(&forged)
            .copied()
            .collect::<Vec<_>>(),
        b"",
    );
    let (r, out) = with_frame(&syn, |f| to_server(&mut c, f, &p));
    r.unwrap();
    let expected_opts: Vec<u8> = [&MSS_1460[..], &[1; 4], &[1; 8]].concat();
    assert_eq!(
        out,
        tcp((LIP, 1025), (RIP, 8080), SYN, 100, 0, &expected_opts, b"")
    );
    // The SYN-ACK's MSS is lowered by 8 on its way to the client.
    let synack = tcp(
        (RIP, 8080),
        (LIP, 1025),
        SYN | ACK,
        5000,
        101,
        &MSS_1460,
        b"",
    );
    let (r, out) = with_frame(&synack, |f| to_client(&mut c, f, &p));
    r.unwrap();
    assert_eq!(
        out,
        tcp(
            (VIP, 80),
            (CIP, 40000),
            SYN | ACK,
            5000,
            101,
            &[2, 4, 0x05, 0xac],
            b""
        )
    );
    // The ACK completing the handshake gets the client's address and port.
    let ack = tcp((CIP, 40000), (VIP, 80), ACK, 101, 5001, &[], b"");
    let (r, out) = with_frame(&ack, |f| to_server(&mut c, f, &p));
    r.unwrap();
    let toa = [254, 8, 0x9c, 0x40, 10, 0, 1, 2];
    assert_eq!(
        out,
        tcp((LIP, 1025), (RIP, 8080), ACK, 101, 5001, &toa, b"")
    );
    // Once only.
    let data = tcp((CIP, 40000), (VIP, 80), PSH_ACK, 101, 5001, &[], b"GET /");
    let (r, out) = with_frame(&data, |f| to_server(&mut c, f, &p));
    r.unwrap();
    assert_eq!(
        out,
        tcp((LIP, 1025), (RIP, 8080), PSH_ACK, 101, 5001, &[], b"GET /")
    );
}

#[test]
fn toa_waits_for_the_first_data_segment_when_the_ack_is_full() {
    let mut c = conn(PROTO_TCP, ForwardMode::FullNat);
    let p = path(Carrier::Toa, TunnelSpec::default());
    let syn = tcp((CIP, 40000), (VIP, 80), SYN, 100, 0, &MSS_1460, b"");
    with_frame(&syn, |f| to_server(&mut c, f, &p)).0.unwrap();
    // 36 option bytes: no room for 8 more.
    let full = [1u8; 36];
    let ack = tcp((CIP, 40000), (VIP, 80), ACK, 101, 5001, &full, b"");
    let (r, out) = with_frame(&ack, |f| to_server(&mut c, f, &p));
    r.unwrap();
    assert_eq!(
        out,
        tcp((LIP, 1025), (RIP, 8080), ACK, 101, 5001, &full, b"")
    );
    let data = tcp(
        (CIP, 40000),
        (VIP, 80),
        PSH_ACK,
        101,
        5001,
        &[1, 1, 1, 1],
        b"GET /",
    );
    let (r, out) = with_frame(&data, |f| to_server(&mut c, f, &p));
    r.unwrap();
    let opts = [1, 1, 1, 1, 254, 8, 0x9c, 0x40, 10, 0, 1, 2];
    assert_eq!(
        out,
        tcp(
            (LIP, 1025),
            (RIP, 8080),
            PSH_ACK,
            101,
            5001,
            &opts,
            b"GET /"
        )
    );
}

#[test]
fn proxy_v1_and_v2_headers() {
    let mut h = [0u8; 64];
    let n = proxy::header(false, (CIP, 40000), (VIP, 80), &mut h);
    assert_eq!(&h[..n], b"PROXY TCP4 10.0.1.2 10.0.1.100 40000 80\r\n");
    let n = proxy::header(true, (CIP, 40000), (VIP, 80), &mut h);
    assert_eq!(
        &h[..n],
        &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
            0x00, 0x0c, 10, 0, 1, 2, 10, 0, 1, 100, 0x9c, 0x40, 0x00, 0x50
        ][..]
    );
}

/// A whole PROXY connection: header in the first data segment (and in its
/// retransmission), sequence numbers shifted up afterwards, acknowledgements and
/// SACK edges shifted down.
fn proxy_connection(carrier: Carrier, header: &[u8]) {
    let n = header.len() as u32;
    let mut c = conn(PROTO_TCP, ForwardMode::FullNat);
    let p = path(carrier, TunnelSpec::default());
    let syn = tcp((CIP, 40000), (VIP, 80), SYN, 100, 0, &MSS_1460, b"");
    with_frame(&syn, |f| to_server(&mut c, f, &p)).0.unwrap();
    let synack = tcp(
        (RIP, 8080),
        (LIP, 1025),
        SYN | ACK,
        5000,
        101,
        &MSS_1460,
        b"",
    );
    let (r, out) = with_frame(&synack, |f| to_client(&mut c, f, &p));
    r.unwrap();
    let mss = (1460 - n as u16).to_be_bytes();
    assert_eq!(
        out,
        tcp(
            (VIP, 80),
            (CIP, 40000),
            SYN | ACK,
            5000,
            101,
            &[2, 4, mss[0], mss[1]],
            b""
        )
    );
    // The pure ACK before any data is not shifted.
    let ack = tcp((CIP, 40000), (VIP, 80), ACK, 101, 5001, &[], b"");
    let (r, out) = with_frame(&ack, |f| to_server(&mut c, f, &p));
    r.unwrap();
    assert_eq!(out, tcp((LIP, 1025), (RIP, 8080), ACK, 101, 5001, &[], b""));
    let first = tcp(
        (CIP, 40000),
        (VIP, 80),
        PSH_ACK,
        101,
        5001,
        &[],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let with_header = [header, b"GET / HTTP/1.0\r\n\r\n"].concat();
    let expected = tcp(
        (LIP, 1025),
        (RIP, 8080),
        PSH_ACK,
        101,
        5001,
        &[],
        &with_header,
    );
    for _ in 0..2 {
        // The retransmission gets the header again.
        let (r, out) = with_frame(&first, |f| to_server(&mut c, f, &p));
        r.unwrap();
        assert_eq!(out, expected);
        assert!(checksums_valid(&out));
    }
    let next = tcp((CIP, 40000), (VIP, 80), ACK, 119, 5001, &[], b"more");
    let (r, out) = with_frame(&next, |f| to_server(&mut c, f, &p));
    r.unwrap();
    assert_eq!(
        out,
        tcp((LIP, 1025), (RIP, 8080), ACK, 119 + n, 5001, &[], b"more")
    );
    // The server acknowledges everything and SACKs a later block.
    let sack = [1, 1, 5, 10, 0, 0, 0x01, 0x00, 0, 0, 0x01, 0x10];
    let reply = tcp(
        (RIP, 8080),
        (LIP, 1025),
        ACK,
        5001,
        123 + n,
        &sack,
        b"HTTP/1.0 200",
    );
    let (r, out) = with_frame(&reply, |f| to_client(&mut c, f, &p));
    r.unwrap();
    let edges = [(256 - n).to_be_bytes(), (272 - n).to_be_bytes()].concat();
    let sack_out = [&[1, 1, 5, 10][..], &edges].concat();
    assert_eq!(
        out,
        tcp(
            (VIP, 80),
            (CIP, 40000),
            ACK,
            5001,
            123,
            &sack_out,
            b"HTTP/1.0 200"
        )
    );
}

#[test]
fn proxy_v2_connection() {
    let mut h = [0u8; 64];
    let n = proxy::header(true, (CIP, 40000), (VIP, 80), &mut h);
    proxy_connection(Carrier::ProxyV2, &h[..n]);
}

#[test]
fn proxy_v1_connection_with_an_odd_header() {
    let header = b"PROXY TCP4 10.0.1.2 10.0.1.100 40000 80\r\n";
    assert_eq!(header.len() % 2, 1);
    proxy_connection(Carrier::ProxyV1, header);
}

#[test]
fn a_port_unreachable_from_the_server_is_translated_for_the_client() {
    for forward in [ForwardMode::FullNat, ForwardMode::Nat] {
        let c = conn(PROTO_UDP, forward);
        let (local, dest) = (v4(c.local).unwrap(), v4(c.dest).unwrap());
        // What the director sent the server, and the server's error about it.
        let sent = packet(PROTO_UDP, local, dest, b"ping", true);
        let error = icmp_error(RIP, local.0, 3, 3, &sent);
        let key = icmp::embedded_key(&error).unwrap();
        assert_eq!(key, c.server_key());
        let mut out = error.clone();
        assert_eq!(icmp::translate(&c, true, &mut out).unwrap(), CIP);
        // What the client sent, and the error it should see about it.
        let original = packet(PROTO_UDP, (CIP, 40000), (VIP, 80), b"ping", true);
        assert_eq!(out, icmp_error(VIP, CIP, 3, 3, &original), "{forward:?}");
    }
}

#[test]
fn an_error_from_the_client_is_translated_for_the_server() {
    let c = conn(PROTO_TCP, ForwardMode::FullNat);
    let reply = packet(PROTO_TCP, (VIP, 80), (CIP, 40000), b"data", false);
    let error = icmp_error(CIP, VIP, 3, 3, &reply[..28]);
    assert_eq!(icmp::embedded_key(&error).unwrap(), c.client_key());
    let mut out = error;
    assert_eq!(icmp::translate(&c, false, &mut out).unwrap(), RIP);
    let sent = packet(PROTO_TCP, (RIP, 8080), (LIP, 1025), b"data", false);
    assert_eq!(out, icmp_error(LIP, RIP, 3, 3, &sent[..28]));
}

/// An ICMP error quoting `quote`, built from scratch.
fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, t: u8, code: u8, quote: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 28 + quote.len()];
    emit_header(
        &mut p,
        &Ipv4Repr {
            src,
            dst,
            protocol: PROTO_ICMP,
            payload_len: (8 + quote.len()) as u16,
            ttl: 64,
            tos: 0,
            ident: 9,
            dont_fragment: false,
        },
    )
    .unwrap();
    p[20] = t;
    p[21] = code;
    p[28..].copy_from_slice(quote);
    let sum = crate::csum::checksum(&p[20..]);
    p[22..24].copy_from_slice(&sum.to_be_bytes());
    p
}

#[test]
fn later_fragments_get_addresses_only() {
    let c = conn(PROTO_UDP, ForwardMode::FullNat);
    let mut frag = packet(PROTO_UDP, (CIP, 1), (VIP, 2), &[0xab; 64], false);
    frag[6..8].copy_from_slice(&0x00b9u16.to_be_bytes()); // offset 1480, no MF
    Ipv4Packet::new_checked(&mut frag[..])
        .unwrap()
        .fill_checksum();
    let (r, out) = with_frame(&frag, |f| {
        fragment(&c, true, f, &path(Carrier::None, TunnelSpec::default()))
    });
    r.unwrap();
    let mut expected = frag.clone();
    expected[12..16].copy_from_slice(&LIP.octets());
    expected[16..20].copy_from_slice(&RIP.octets());
    Ipv4Packet::new_checked(&mut expected[..])
        .unwrap()
        .fill_checksum();
    assert_eq!(out, expected);
}

#[test]
fn mss_clamp_for_tunnels() {
    let syn = tcp((CIP, 40000), (VIP, 80), SYN, 100, 0, &MSS_1460, b"");
    let mut out = syn.clone();
    assert!(clamp_syn_mss(
        &mut out,
        tun::mss_for(TunnelSpec::default(), 1500)
    ));
    assert_eq!(
        out,
        tcp(
            (CIP, 40000),
            (VIP, 80),
            SYN,
            100,
            0,
            &[2, 4, 0x05, 0xa0],
            b""
        )
    );
}
