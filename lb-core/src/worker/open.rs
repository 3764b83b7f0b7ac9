//! Opening a connection for a packet no connection has: the service, the real
//! server (the persistence template's or the scheduler's pick), the local port,
//! the table entry and the counters. Nothing is taken for a packet that cannot
//! be forwarded; when ports or slots run out, the oldest half-open connection
//! makes room (see [`super::halfopen`]).

use std::net::IpAddr;
use std::time::Duration;

use super::{gauge_for, modes, side_port, ConnEventKind, L4Info, Worker};
use crate::conn::{Conn, InsertError, SidePorts, TcpState, TcpWindow};
use crate::flow::FlowKey;
use crate::persist::{self, TemplateKey};
use crate::service::{ForwardMode, Service};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::ipv4::PROTO_TCP;
use crate::wire::tcp::flags;

impl Worker {
    /// Creates the connection for the first packet `info`; when no local port or
    /// slot is left, the oldest half-open connection makes room first.
    pub(super) fn open_connection(
        &mut self,
        now: Instant,
        info: &L4Info,
    ) -> Result<u32, DropReason> {
        match self.new_connection(now, info) {
            Err(DropReason::NoLocalPort | DropReason::TableFull)
                if self.evict_oldest_half_open() =>
            {
                self.new_connection(now, info)
            }
            result => result,
        }
    }

    /// The real server (index in the service) for a new connection: the one of the
    /// client's persistence template if the service is persistent and the template
    /// is still valid, else the scheduler's pick (recorded as the new template).
    fn schedule(&self, now: Instant, service: &Service, key: &FlowKey) -> Option<usize> {
        let template = match (
            service.persistence_timeout,
            persist::v4(key.src),
            persist::v4(key.dst),
        ) {
            (0, _, _) | (_, None, _) | (_, _, None) => None,
            (_, Some(client), Some(vip)) => Some(TemplateKey::new(
                key.proto,
                client,
                service.persistence_prefix,
                vip,
                key.dport,
            )),
        };
        let Some(template) = template else {
            return service.scheduler.pick(self.id, &service.real_servers, key);
        };
        let timeout = Duration::from_secs(u64::from(service.persistence_timeout));
        let templates = &self.peers.templates;
        let kept = templates.lookup(&template, now).and_then(|id| {
            let i = service.real_servers.iter().position(|d| d.id == id)?;
            let dest = &service.real_servers[i];
            // IPVS invalidates a template whose server left the service, and (with
            // expire_quiescent_template) one whose server is quiescent.
            let quiescent = dest.weight == 0 && self.snapshot.policies.expire_quiescent_template;
            (!quiescent).then_some(i)
        });
        let pick = match kept {
            Some(i) => i,
            None => service
                .scheduler
                .pick(self.id, &service.real_servers, key)?,
        };
        templates.store(&template, service.real_servers[pick].id, now, timeout);
        Some(pick)
    }

    fn new_connection(&mut self, now: Instant, info: &L4Info) -> Result<u32, DropReason> {
        let key = &info.key;
        let snapshot = &self.snapshot;
        let Some(service) = snapshot.service(key.proto, key.dst, key.dport) else {
            return Err(match snapshot.local_kind(key.dst) {
                Some(_) => DropReason::NoService,
                None => DropReason::NotLocal,
            });
        };
        if key.proto == PROTO_TCP
            && info.seg.flags & (flags::SYN | flags::ACK | flags::RST) != flags::SYN
        {
            return Err(DropReason::NoConnection);
        }
        // Refused before any state: no scheduler step, persistence template,
        // local port, entry or counter for a packet that cannot be forwarded.
        let expires_here = |forward| modes::decrements_ttl(forward) && info.ttl <= 1;
        if !service.real_servers.is_empty()
            && service.real_servers.iter().all(|d| expires_here(d.forward))
        {
            return Err(DropReason::TtlExceeded);
        }
        let pick = self.schedule(now, service, key).ok_or(DropReason::NoDest)?;
        let dest = &service.real_servers[pick];
        if expires_here(dest.forward) {
            // A service mixing modes: known only once the server is picked.
            return Err(DropReason::TtlExceeded);
        }
        let local = match dest.forward {
            ForwardMode::FullNat => self.local_ports.allocate().ok_or(DropReason::NoLocalPort)?,
            _ => (key.src, key.sport),
        };
        let state = if key.proto == PROTO_TCP {
            TcpState::None
        } else {
            TcpState::Established
        };
        let conn = Conn {
            proto: key.proto,
            forward: dest.forward,
            state,
            output_seen: false,
            client: (key.src, key.sport),
            virt: (key.dst, key.dport),
            local,
            dest: (dest.addr, dest.port),
            service: (service.id, service.serial),
            real_server: (dest.id, dest.serial),
            expires: now + snapshot.timeouts.tcp(TcpState::None),
            xmit: Default::default(),
            window: TcpWindow::default(),
            sides: SidePorts {
                client: SidePorts::UNKNOWN,
                server: match dest.addr {
                    IpAddr::V4(a) => snapshot
                        .routes
                        .lookup(a)
                        .map_or(SidePorts::UNKNOWN, |hop| side_port(hop.port)),
                    IpAddr::V6(_) => SidePorts::UNKNOWN,
                },
            },
        };
        match self.conns.insert(conn) {
            Ok(idx) => {
                if dest.forward == ForwardMode::Nat && self.peers.workers() > 1 {
                    let conn = self.conns.get(idx);
                    self.peers.record_owner(&conn.server_key(), self.id);
                }
                let dc = dest.counters.worker(self.id);
                dc.conns.inc();
                gauge_for(dc, state).inc();
                service.counters.worker(self.id).conns.inc();
                self.counters.conns_created.inc();
                self.counters.conns_live.inc();
                self.events
                    .record(ConnEventKind::Opened, self.conns.get(idx));
                Ok(idx)
            }
            Err(e) => {
                if dest.forward == ForwardMode::FullNat {
                    self.local_ports.release(local.0, local.1);
                }
                Err(match e {
                    InsertError::Full => DropReason::TableFull,
                    InsertError::Exists => DropReason::NoLocalPort,
                })
            }
        }
    }
}
