//! Frames the worker originates itself, queued until the caller asks for them
//! with [`Worker::poll_transmit`]: ARP requests for next hops, and resets that
//! tell a real server a half-open connection the director gave up is gone.
//!
//! The caller drains the queue right after the packet that queued a frame, before
//! that packet's own verdict is sent: a reset for the connection whose port a new
//! SYN takes over reaches the real server before the SYN does.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use super::{Worker, IP_AT};
use crate::conn::Conn;
use crate::frame::Frame;
use crate::ids::PortId;
use crate::time::Instant;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::ipv4::{self, Ipv4Repr, PROTO_TCP};
use crate::wire::tcp;
use crate::wire::MacAddr;

/// Frames waiting to be originated; more are not queued (an ARP request is asked
/// again by the next packet, a reset is lost and the server times out).
pub(super) const PENDING: usize = 256;

/// A frame the worker will originate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Originated {
    /// Who has `target`? Asked out of `port`.
    ArpRequest { port: PortId, target: Ipv4Addr },
    /// A reset from the peer the real server sees to the real server.
    Reset {
        from: (Ipv4Addr, u16),
        to: (Ipv4Addr, u16),
        seq: u32,
    },
}

impl Originated {
    /// The reset that ends the real server's half of `conn`, if the director can
    /// say it: the server's replies come back through the director (NAT, FullNAT;
    /// in DR and TUN they do not and the server times out on its own), and the
    /// client's SYN was seen, so the reset carries the sequence the server expects.
    pub(super) fn reset_for(conn: &Conn) -> Option<Originated> {
        if conn.proto != PROTO_TCP || !conn.replies_through_director() {
            return None;
        }
        let (IpAddr::V4(from), IpAddr::V4(to)) = (conn.local.0, conn.dest.0) else {
            return None;
        };
        Some(Originated::Reset {
            from: (from, conn.local.1),
            to: (to, conn.dest.1),
            seq: conn.window.client_next()?,
        })
    }
}

/// The bounded queue of frames to originate.
#[derive(Debug)]
pub(super) struct Outbox(VecDeque<Originated>);

impl Outbox {
    pub(super) fn new() -> Self {
        Outbox(VecDeque::with_capacity(PENDING))
    }

    /// Queues `frame`; returns whether there was room.
    pub(super) fn push(&mut self, frame: Originated) -> bool {
        let room = self.0.len() < PENDING;
        if room {
            self.0.push_back(frame);
        }
        room
    }
}

impl Worker {
    /// Whether [`Worker::poll_transmit`] has a frame to write.
    pub fn has_pending_transmit(&self) -> bool {
        !self.outbox.0.is_empty()
    }

    /// Writes the next frame the worker originates into `frame`, an empty buffer,
    /// and says which port it goes out of. Frames that cannot be built now (no
    /// route, next hop not resolved) are skipped.
    pub fn poll_transmit(&mut self, now: Instant, frame: &mut Frame<'_>) -> Option<PortId> {
        while let Some(next) = self.outbox.0.pop_front() {
            let port = match next {
                Originated::ArpRequest { port, target } => {
                    self.write_arp_request(frame, port, target)
                }
                Originated::Reset { from, to, seq } => self.write_reset(now, frame, from, to, seq),
            };
            if let Some(iface) = port {
                return match self.egress(frame, iface) {
                    Ok(super::Verdict::Transmit(device)) => Some(device),
                    _ => None,
                };
            }
        }
        None
    }

    fn write_arp_request(
        &mut self,
        frame: &mut Frame<'_>,
        port: PortId,
        target: Ipv4Addr,
    ) -> Option<PortId> {
        let mac = self.mac_of(port)?;
        let sender_ip = self.snapshot.ports[port.index()].cidr.addr;
        frame.set_len(ethernet::HEADER_LEN + arp::PACKET_LEN).ok()?;
        let mut eth = EthernetFrame::new_checked(frame.data_mut()).ok()?;
        eth.set_dst(MacAddr::BROADCAST);
        eth.set_src(mac);
        eth.set_ethertype(ethernet::ETHERTYPE_ARP);
        ArpPacket::emit(
            eth.payload_mut(),
            arp::OP_REQUEST,
            (mac, sender_ip),
            (MacAddr::ZERO, target),
        )
        .ok()?;
        self.counters.arp_requests.inc();
        Some(port)
    }

    fn write_reset(
        &mut self,
        now: Instant,
        frame: &mut Frame<'_>,
        from: (Ipv4Addr, u16),
        to: (Ipv4Addr, u16),
        seq: u32,
    ) -> Option<PortId> {
        let segment_at = IP_AT + ipv4::MIN_HEADER_LEN;
        frame.set_len(segment_at + tcp::MIN_HEADER_LEN).ok()?;
        let data = frame.data_mut();
        let repr = Ipv4Repr {
            src: from.0,
            dst: to.0,
            protocol: PROTO_TCP,
            payload_len: tcp::MIN_HEADER_LEN as u16,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_fragment: true,
        };
        ipv4::emit_header(&mut data[IP_AT..], &repr).ok()?;
        tcp::emit_reset(&mut data[segment_at..], from, to, seq).ok()?;
        EthernetFrame::new_checked(&mut data[..])
            .ok()?
            .set_ethertype(ethernet::ETHERTYPE_IPV4);
        match self.route(now, frame, to.0, false) {
            Ok(super::Verdict::Transmit(port)) => {
                self.counters.defence.halfopen_reset_sent.inc();
                Some(port)
            }
            _ => None,
        }
    }
}
