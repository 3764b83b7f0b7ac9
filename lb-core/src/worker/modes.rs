//! The forwarding modes' side of the worker: egress selection and transmission,
//! ICMP errors (translation, fragmentation-needed) and IP fragments.
//!
//! Kept apart from `worker.rs` so the connection-tracking path and the
//! forwarding path can change independently; this is a child module, so it sees
//! the worker's private state.

use std::net::{IpAddr, Ipv4Addr};

use super::{count, Origin, Verdict, Worker, IP_AT};
use crate::conn::{Conn, Side};
use crate::frag::FragKey;
use crate::frame::Frame;
use crate::ids::PortId;
use crate::meta::Ipv4Meta;
use crate::route::NextHop;
use crate::service::{Carrier, ForwardMode, Service};
use crate::snapshot::Snapshot;
use crate::stats::{DropReason, ModeCounters};
use crate::time::Instant;
use crate::wire::ethernet::EthernetFrame;
use crate::wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::xmit::{self, XmitError};

/// What the worker does after a rewrite failed.
pub(super) fn xmit_drop(e: XmitError) -> DropReason {
    match e {
        XmitError::Malformed => DropReason::Malformed,
        XmitError::Unsupported => DropReason::UnsupportedProtocol,
        XmitError::NoRoom => DropReason::NoRoom,
        XmitError::TooBig { .. } => DropReason::TooBig,
    }
}

/// The rewrite context for a packet of `conn` leaving by `hop`.
pub(super) fn path<'a>(
    snapshot: &Snapshot,
    service: Option<&Service>,
    conn: &Conn,
    hop: NextHop,
    counters: &'a ModeCounters,
) -> xmit::Path<'a> {
    let egress = snapshot.ports[hop.port.index()];
    let tunnel = snapshot
        .real_server(conn.real_server.0, conn.real_server.1)
        .map(|d| d.tunnel)
        .unwrap_or_default();
    xmit::Path {
        carrier: service.map_or(Carrier::None, |s| s.carrier),
        tun_mss_clamp: service.is_some_and(|s| s.tun_mss_clamp),
        tunnel,
        src: egress.cidr.addr,
        mtu: usize::from(egress.mtu),
        counters,
    }
}

/// Whether packets of a mode are routed (TTL decremented) or delivered as they
/// came: DR changes only the MAC and TUN wraps the packet untouched, as IPVS does.
pub(super) fn decrements_ttl(forward: ForwardMode) -> bool {
    matches!(forward, ForwardMode::Nat | ForwardMode::FullNat)
}

impl Worker {
    /// The rest of `forward` once the connection's state is updated: rewrite the
    /// packet for its mode and send it to `target`.
    pub(super) fn transmit_conn(
        &mut self,
        now: Instant,
        idx: u32,
        side: Side,
        frame: &mut Frame<'_>,
    ) -> Result<Verdict, DropReason> {
        let snapshot = &self.snapshot;
        let conn = self.conns.get_mut(idx);
        let target = match side {
            // Every mode delivers to the real server's address: rewritten into the
            // packet for NAT and FullNAT, the outer header for TUN, only the next
            // hop for DR.
            Side::Client => conn.dest.0,
            Side::Server => conn.client.0,
        };
        let IpAddr::V4(target) = target else {
            return Err(DropReason::UnsupportedProtocol);
        };
        let hop = snapshot.routes.lookup(target).ok_or(DropReason::NoRoute)?;
        let service = snapshot.service_by_id(conn.service.0, conn.service.1);
        let path = path(
            snapshot,
            service.map(|s| &**s),
            conn,
            hop,
            &self.counters.modes,
        );
        let decrement = decrements_ttl(conn.forward);
        if conn.forward != ForwardMode::Tunnel {
            // Checked before the rewrite, so that fragmentation-needed quotes the
            // packet as its sender wrote it. Tunnels check the encapsulated size.
            let ip = Ipv4Packet::new_checked(&frame.data()[IP_AT..])
                .map_err(|_| DropReason::Malformed)?;
            if ip.total_len() > path.mtu {
                let e = XmitError::TooBig {
                    mtu: path.mtu as u16,
                    df: ip.dont_fragment(),
                };
                return self.xmit_failed(now, frame, e);
            }
        }
        let result = match side {
            Side::Client => xmit::to_server(conn, frame, &path),
            Side::Server => xmit::to_client(conn, frame, &path),
        };
        match result {
            Ok(()) => self.transmit(now, frame, hop, decrement),
            Err(e) => self.xmit_failed(now, frame, e),
        }
    }

    /// A rewrite refused the packet: a DF packet too big for the egress becomes
    /// ICMP fragmentation-needed for its sender; anything else is dropped.
    pub(super) fn xmit_failed(
        &mut self,
        now: Instant,
        frame: &mut Frame<'_>,
        e: XmitError,
    ) -> Result<Verdict, DropReason> {
        let XmitError::TooBig { mtu, df: true } = e else {
            return Err(xmit_drop(e));
        };
        if !self.icmp_errors.take(now) {
            return Err(DropReason::IcmpRateLimited);
        }
        let target = xmit::icmp::frag_needed(frame, mtu).map_err(xmit_drop)?;
        self.counters.modes.icmp_frag_needed_sent.inc();
        self.route(now, frame, target, false)
    }

    /// Routes to `target` and transmits, decrementing the TTL if `decrement`.
    pub(super) fn route(
        &mut self,
        now: Instant,
        frame: &mut Frame<'_>,
        target: Ipv4Addr,
        decrement: bool,
    ) -> Result<Verdict, DropReason> {
        let hop = self
            .snapshot
            .routes
            .lookup(target)
            .ok_or(DropReason::NoRoute)?;
        self.transmit(now, frame, hop, decrement)
    }

    /// Fills in the MACs for `hop` (decrementing the TTL first if `decrement`).
    pub(super) fn transmit(
        &mut self,
        now: Instant,
        frame: &mut Frame<'_>,
        hop: NextHop,
        decrement: bool,
    ) -> Result<Verdict, DropReason> {
        let mac = self
            .neighbour_mac(hop, now)
            .ok_or(DropReason::NeighUnresolved)?;
        let data = frame.data_mut();
        if decrement {
            let mut ip =
                Ipv4Packet::new_checked(&mut data[IP_AT..]).map_err(|_| DropReason::Malformed)?;
            let ttl = ip.ttl();
            if ttl <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            ip.set_ttl(ttl - 1);
        }
        let mut eth =
            EthernetFrame::new_checked(&mut data[..]).map_err(|_| DropReason::Malformed)?;
        eth.set_dst(mac);
        eth.set_src(self.mac_of(hop.port).ok_or(DropReason::NoRoute)?);
        Ok(Verdict::Transmit(hop.port))
    }

    /// An ICMP error (destination unreachable, time exceeded, parameter problem,
    /// source quench): if it is about a tracked NAT or FullNAT connection, it is
    /// translated for the other party and forwarded.
    pub(super) fn icmp_error(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
        origin: Origin,
    ) -> Result<Verdict, DropReason> {
        let ip = &frame.data()[IP_AT..];
        let packet = Ipv4Packet::new_checked(ip).map_err(|_| DropReason::Malformed)?;
        if crate::csum::checksum(packet.payload()) != 0 {
            return Err(DropReason::Malformed);
        }
        let key = xmit::icmp::embedded_key(ip).ok_or(DropReason::IcmpUnsupported)?;
        let Some((idx, side)) = self.conns.lookup(&key) else {
            if origin == Origin::Port {
                if let Some(owner) = self.reply_owner(&key).filter(|o| *o != self.id) {
                    return Ok(Verdict::Redirect(owner));
                }
            }
            return Err(DropReason::IcmpNoConnection);
        };
        let conn = self.conns.get(idx);
        // An error about what the director sent one side comes from that side's
        // network; from the other, it is forged into the connection.
        if conn
            .sides
            .expected(side)
            .is_some_and(|p| p != super::side_port(port))
        {
            return Err(DropReason::WrongSide);
        }
        if !conn.replies_through_director() {
            // DR and TUN: an error from the client about a reply the server sent
            // it directly goes to that server unchanged, as IPVS does: with its
            // MAC for DR, encapsulated for TUN. Nothing else of theirs is ours.
            if side != Side::Client {
                return Err(DropReason::IcmpUnsupported);
            }
            return self.icmp_to_direct_server(now, idx, frame);
        }
        // The embedded packet is one we sent: to the real server when its reverse
        // is the connection's server-side tuple.
        let to_client = side == Side::Server;
        let ip = xmit::ip_mut(frame).map_err(xmit_drop)?;
        let target = xmit::icmp::translate(conn, to_client, ip).map_err(xmit_drop)?;
        if to_client {
            self.counters.modes.icmp_to_client.inc();
        } else {
            self.counters.modes.icmp_to_server.inc();
        }
        self.route(now, frame, target, true)
    }

    /// Sends an ICMP error from the client to the DR or TUN server of `idx`.
    fn icmp_to_direct_server(
        &mut self,
        now: Instant,
        idx: u32,
        frame: &mut Frame<'_>,
    ) -> Result<Verdict, DropReason> {
        let snapshot = &self.snapshot;
        let conn = self.conns.get(idx);
        let IpAddr::V4(target) = conn.dest.0 else {
            return Err(DropReason::UnsupportedProtocol);
        };
        let hop = snapshot.routes.lookup(target).ok_or(DropReason::NoRoute)?;
        if conn.forward == ForwardMode::Tunnel {
            let service = snapshot.service_by_id(conn.service.0, conn.service.1);
            let path = path(
                snapshot,
                service.map(|s| &**s),
                conn,
                hop,
                &self.counters.modes,
            );
            xmit::tun::encapsulate(
                frame,
                path.tunnel,
                path.src,
                target,
                path.mtu,
                conn.client.1,
            )
            .map_err(xmit_drop)?;
        }
        self.counters.modes.icmp_to_server.inc();
        self.transmit(now, frame, hop, false)
    }

    /// An IPv4 fragment: see [`crate::frag`] for the policy.
    pub(super) fn on_fragment(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &mut Frame<'_>,
        origin: Origin,
        ip: &Ipv4Meta,
    ) -> Result<Verdict, DropReason> {
        let proto = ip.proto;
        let fkey = FragKey {
            src: ip.src,
            dst: ip.dst,
            ident: ip.ident,
            proto,
        };
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return Err(DropReason::Fragment);
        }
        if ip.frag_offset != 0 {
            let (idx, side) = self
                .frags
                .lookup(&fkey, now)
                .ok_or(DropReason::FragUnmatched)?;
            return self.forward_fragment(now, port, idx, side, frame, fkey);
        }
        // The first fragment: the parse found its ports (and its TCP header).
        let key = ip.flow_key().ok_or(DropReason::Malformed)?;
        let info = super::L4Info::new(ip, key, port);
        let (idx, side) = match self.conns.lookup(&info.key) {
            Some(found) => found,
            None => {
                if origin == Origin::Port {
                    if let Some(owner) = self.reply_owner(&info.key).filter(|o| *o != self.id) {
                        return Ok(Verdict::Redirect(owner));
                    }
                }
                match self.open_connection(now, &info) {
                    Ok(idx) => (idx, Side::Client),
                    Err(DropReason::TtlExceeded) => return self.reject_ttl(now, frame),
                    Err(reason) => return Err(reason),
                }
            }
        };
        if self.frags.learn(fkey, idx, side, now) {
            self.counters.modes.frag_evicted.inc();
        }
        self.counters.modes.frag_first.inc();
        self.forward(now, idx, side, info, frame)
    }

    /// A non-first fragment of a datagram whose first fragment went to `idx`.
    fn forward_fragment(
        &mut self,
        now: Instant,
        port: PortId,
        idx: u32,
        side: Side,
        frame: &mut Frame<'_>,
        fkey: FragKey,
    ) -> Result<Verdict, DropReason> {
        let snapshot = &self.snapshot;
        let conn = self.conns.get(idx);
        // The slot may have been reused since: the addresses must still match.
        let (from, to) = match side {
            Side::Client => (conn.client.0, conn.virt.0),
            Side::Server => (conn.dest.0, conn.local.0),
        };
        if conn.proto != fkey.proto || from != IpAddr::V4(fkey.src) || to != IpAddr::V4(fkey.dst) {
            return Err(DropReason::FragUnmatched);
        }
        if conn
            .sides
            .expected(side)
            .is_some_and(|p| p != super::side_port(port))
        {
            return Err(DropReason::WrongSide);
        }
        let Some(dest) = snapshot.real_server(conn.real_server.0, conn.real_server.1) else {
            return Err(DropReason::DestRemoved);
        };
        let service = snapshot.service_by_id(conn.service.0, conn.service.1);
        let bytes = frame.len().saturating_sub(IP_AT) as u64;
        count(
            dest.counters.worker(self.id),
            service.map(|s| s.counters.worker(self.id)),
            bytes,
            side == Side::Client,
        );
        let target = match side {
            Side::Client => conn.dest.0,
            Side::Server => conn.client.0,
        };
        let IpAddr::V4(target) = target else {
            return Err(DropReason::UnsupportedProtocol);
        };
        let hop = snapshot.routes.lookup(target).ok_or(DropReason::NoRoute)?;
        let path = path(
            snapshot,
            service.map(|s| &**s),
            conn,
            hop,
            &self.counters.modes,
        );
        let decrement = decrements_ttl(conn.forward);
        match xmit::fragment(conn, side == Side::Client, frame, &path) {
            Ok(()) => {
                self.counters.modes.frag_forwarded.inc();
                self.transmit(now, frame, hop, decrement)
            }
            Err(e) => self.xmit_failed(now, frame, e),
        }
    }
}
