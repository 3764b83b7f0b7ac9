//! The control thread: the Unix control socket (one JSON request and one JSON
//! response per line, see docs/control-protocol.md), runtime edits and reloads,
//! statistics (zero baselines and rate estimation) and the Prometheus endpoint.
//!
//! The control thread keeps the desired [`Config`] as the source of truth. Every
//! change (an edit batch from lb-ctl, a reload of the file) is applied to a copy,
//! validated, built into a new immutable [`Snapshot`] carrying identities and
//! counters over from the one in force, and published to every worker at once;
//! only then does the copy become the running configuration. Workers are never
//! blocked: they pick the snapshot up at their next poll, and the control thread
//! only reads their counters.
//!
//! The thread runs a single-threaded tokio runtime and sleeps in epoll until a
//! client, the sampling timer or a signal needs it. Every control-socket client
//! and every metrics connection is its own task (see [`client`] and
//! [`metrics::http`]), bounded in request size and in time, so a slow or idle
//! client never delays another. The state that answers requests (the
//! [`Reloader`], the [`StatsBook`], [`Shared`], the ports) belongs to one task
//! only, the event loop of [`ControlSocket::serve`]: client tasks hand it their
//! parsed requests over a channel, and it answers them one at a time in arrival
//! order, which keeps every edit atomic and serialized without a lock.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lb_config::api::{
    Command, ConnView, Edit, PortView, RealServerView, Response, ServiceKey, ServiceView,
    StatusView, WorkerView, DEFAULT_CONNECTION_LIMIT,
};
use lb_config::edit::EditError;
use lb_config::Config;
use lb_core::service::Protocol;
use lb_core::snapshot::Snapshot;
use lb_core::wire::MacAddr;
use lb_core::worker::ListedConn;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::dpdk::Port;
use crate::metrics::http::RenderRequest;
use crate::metrics::{self, MetricsServer, StatsBook, SAMPLE_INTERVAL};
use crate::shared::Shared;

pub mod client;

use client::{Limits, Pending};

/// Keeps the running configuration and changes it: edits from lb-ctl, and the
/// configuration file again on `lb-ctl reload` and SIGHUP.
#[derive(Debug)]
pub struct Reloader {
    /// The configuration file.
    pub path: PathBuf,
    /// The configuration in force (the file plus runtime edits).
    pub current: Config,
    /// Set by SIGHUP.
    pub requested: Arc<AtomicBool>,
    /// The control socket given on the command line, which wins over the file's.
    pub socket_override: Option<String>,
}

impl Reloader {
    /// Reads, validates and publishes the file, which replaces the running
    /// configuration (runtime edits included); on any error nothing changes.
    /// Settings that shape DPDK resources (EAL, ports, workers, table size, the
    /// control section) need a restart and are refused here.
    pub fn reload(&mut self, shared: &Shared) -> Result<u64, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("{}: cannot read: {e}", self.path.display()))?;
        let mut next =
            Config::from_yaml(&text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if let Some(socket) = &self.socket_override {
            next.control.socket = socket.clone();
        }
        let restart_only = [
            ("eal", next.eal != self.current.eal),
            ("workers", next.workers != self.current.workers),
            ("ports", next.ports != self.current.ports),
            ("connections", next.connections != self.current.connections),
            ("control", next.control != self.current.control),
        ];
        if let Some((field, _)) = restart_only.iter().find(|(_, changed)| *changed) {
            return Err(format!(
                "{}: {field}: changes need a restart; nothing was applied",
                self.path.display()
            ));
        }
        self.publish(shared, next)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Applies `edits` to a copy of the running configuration and publishes it:
    /// all of them, or on the first error none.
    pub fn apply(&mut self, shared: &Shared, edits: &[Edit]) -> Result<u64, EditError> {
        let mut next = self.current.clone();
        next.apply_edits(edits)?;
        self.publish(shared, next).map_err(|message| EditError {
            edit: None,
            message,
        })
    }

    /// Builds the snapshot of `next` from the one in force, publishes it and makes
    /// `next` the running configuration.
    fn publish(&mut self, shared: &Shared, next: Config) -> Result<u64, String> {
        let previous = shared.published.load();
        let snapshot = lb_config::build_snapshot(&next, Some(&previous), previous.workers)
            .map_err(|e| next.describe_error(&e))?;
        let generation = snapshot.generation;
        shared.published.publish(Arc::new(snapshot));
        self.current = next;
        Ok(generation)
    }
}

/// A port as the control thread reports it.
#[derive(Debug)]
pub struct PortInfo<'p> {
    /// Configured name.
    pub name: String,
    /// DPDK device name.
    pub device: String,
    /// The DPDK port.
    pub port: &'p Port,
}

/// The bound control socket; the file is removed on drop.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// Requests queued for the state owner; a client whose request does not fit
/// waits in its own task.
const QUEUE: usize = 64;

impl ControlSocket {
    /// Binds `path` with mode 0600 (root only). The socket is bound under a
    /// temporary name, restricted, then renamed into place, so it is never
    /// reachable with looser permissions.
    pub fn bind(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("control.socket: cannot create {}: {e}", dir.display()))?;
        }
        let staging = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging)
            .map_err(|e| format!("control.socket: cannot bind {}: {e}", staging.display()))?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&staging, path))
            .map_err(|e| format!("control.socket: cannot install {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control.socket: {e}"))?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves requests, SIGHUP reloads, statistics sampling and the metrics
    /// endpoint until SIGTERM or SIGINT. Fails only when the runtime cannot be set
    /// up; the caller then stops the director.
    pub fn serve(
        &self,
        shared: &Shared,
        ports: &[PortInfo<'_>],
        reloader: &mut Reloader,
        metrics: Option<MetricsServer>,
    ) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("control: cannot start the runtime: {e}"))?;
        let control = Control {
            shared,
            ports,
            reloader,
            book: StatsBook::default(),
        };
        let listener = self
            .listener
            .try_clone()
            .map_err(|e| format!("control.socket: {e}"))?;
        runtime.block_on(control.run(listener, metrics))
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the control thread's state owner works with.
struct Control<'a, 'p> {
    shared: &'a Shared,
    ports: &'a [PortInfo<'p>],
    reloader: &'a mut Reloader,
    book: StatsBook,
}

impl Control<'_, '_> {
    /// The control thread's event loop: the one task that owns the state. It
    /// accepts clients (each then runs as its own task), answers their parsed
    /// requests one at a time in arrival order, samples statistics and handles
    /// signals; between events the thread sleeps in epoll.
    async fn run(
        mut self,
        listener: UnixListener,
        metrics: Option<MetricsServer>,
    ) -> Result<(), String> {
        use tokio::signal::unix::{signal, SignalKind};
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| format!("control.socket: {e}"))?;
        let listen = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
        let (mut hangup, mut terminate, mut interrupt) = (
            listen(SignalKind::hangup())?,
            listen(SignalKind::terminate())?,
            listen(SignalKind::interrupt())?,
        );
        let (requests_tx, mut requests) = mpsc::channel::<Pending>(QUEUE);
        let (renders_tx, mut renders) = mpsc::channel::<RenderRequest>(QUEUE);
        if let Some(server) = metrics {
            tokio::spawn(server.serve(renders_tx));
        }
        let mut sampling = tokio::time::interval(SAMPLE_INTERVAL);
        sampling.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A SIGHUP that arrived before the handlers above were installed.
        self.reload_if_requested();
        while !self.shared.stopping() {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => self.reload_if_requested(),
                at = sampling.tick() => {
                    self.book.sample(&self.shared.published.load(), at.into_std());
                    self.shared.published.reap();
                }
                Some(pending) = requests.recv() => {
                    let _ = pending.reply.send(self.answer(pending.command));
                }
                Some(reply) = renders.recv() => {
                    let _ = reply.send(self.metrics_text());
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let owner = requests_tx.clone();
                        tokio::spawn(async move {
                            if let Err(e) = client::serve(stream, owner, Limits::CONTROL).await {
                                eprintln!("lb-director: control: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of descriptors, typically: let clients finish first.
                        eprintln!("lb-director: control: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        Ok(())
    }

    /// Reloads the file if SIGHUP asked for it (the signal-hook flag is set by
    /// the same signal that wakes the loop).
    fn reload_if_requested(&mut self) {
        if self.reloader.requested.swap(false, Ordering::Relaxed) {
            match self.reloader.reload(self.shared) {
                Ok(g) => eprintln!("lb-director: SIGHUP: configuration generation {g} in force"),
                Err(e) => eprintln!("lb-director: SIGHUP: {e}"),
            }
        }
    }

    fn answer(&mut self, command: Command) -> Response {
        let shared = self.shared;
        match command {
            Command::Reload => match self.reloader.reload(shared) {
                Ok(generation) => Response::Reloaded { generation },
                Err(message) => Response::error(message),
            },
            Command::Apply { edits } => match self.reloader.apply(shared, &edits) {
                Ok(generation) => Response::Applied { generation },
                Err(e) => Response::Error {
                    message: e.message,
                    edit: e.edit,
                },
            },
            Command::ListServices => Response::Services {
                conn_capacity: self.conn_capacity(),
                services: service_views(&shared.published.load(), Some(&self.book)),
            },
            Command::Zero { service } => {
                let snapshot = shared.published.load();
                if let Some(key) = service {
                    if snapshot
                        .service(key.protocol.number(), key.address, key.port)
                        .is_none()
                    {
                        return Response::error(format!("no service {key}"));
                    }
                }
                self.book.zero(&snapshot, service);
                Response::Zeroed
            }
            Command::ListConnections { service, limit } => {
                let limit = limit.unwrap_or(DEFAULT_CONNECTION_LIMIT);
                match list_connections(shared, service, limit) {
                    Ok(connections) => Response::Connections { connections },
                    Err(message) => Response::error(message),
                }
            }
            Command::GetConfig => Response::Config {
                config: Box::new(self.reloader.current.clone()),
            },
            Command::Status => Response::Status(status_view(shared, self.ports)),
        }
    }

    fn conn_capacity(&self) -> u64 {
        (self.shared.conn_capacity * self.shared.worker_counters.len()) as u64
    }

    /// The Prometheus exposition of every counter (raw: `-Z` does not touch them).
    fn metrics_text(&self) -> String {
        let status = status_view(self.shared, self.ports);
        let services = service_views(&self.shared.published.load(), None);
        metrics::render(&status, &services)
    }
}

/// Connections of every worker (ipvsadm `-L -c`), asked of the workers through
/// their mailboxes: they answer between polls, never in the middle of a burst.
fn list_connections(
    shared: &Shared,
    service: Option<ServiceKey>,
    limit: u64,
) -> Result<Vec<ConnView>, String> {
    let filter = service.map(|k| (k.protocol.number(), k.address, k.port));
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let listed = shared.connections(filter, limit)?;
    let mut views: Vec<ConnView> = listed.iter().filter_map(conn_view).collect();
    views.extend(template_views(shared, filter));
    views.truncate(limit);
    Ok(views)
}

/// Persistence templates, listed as IPVS lists them: client port 0, state NONE
/// (UDP for UDP services), the virtual service and the real server they pin.
fn template_views(shared: &Shared, filter: Option<(u8, IpAddr, u16)>) -> Vec<ConnView> {
    let snapshot = shared.published.load();
    let now = shared.clock.now();
    let mut views = Vec::new();
    let persistent = snapshot.services().filter(|s| {
        s.persistence_timeout > 0
            && filter.is_none_or(|key| key == (s.protocol.number(), s.vip, s.vport))
    });
    for service in persistent {
        for template in shared.peers.templates.list(service.vport, now) {
            let Some(dest) = service
                .real_servers
                .iter()
                .find(|d| d.id == template.real_server)
            else {
                continue;
            };
            let client = SocketAddr::new(IpAddr::V4(template.client), 0);
            views.push(ConnView {
                protocol: service.protocol,
                state: match service.protocol {
                    Protocol::Tcp => "NONE".to_owned(),
                    Protocol::Udp => "UDP".to_owned(),
                },
                expires_ms: u64::try_from(template.remaining.as_millis()).unwrap_or(u64::MAX),
                client,
                virtual_address: SocketAddr::new(service.vip, service.vport),
                local: client,
                destination: SocketAddr::new(dest.addr, dest.port),
                forward: dest.forward,
                worker: 0,
            });
        }
    }
    views
}

fn conn_view(c: &ListedConn) -> Option<ConnView> {
    let protocol = Protocol::from_number(c.conn.proto)?;
    let at = |(addr, port)| SocketAddr::new(addr, port);
    Some(ConnView {
        protocol,
        state: match protocol {
            Protocol::Tcp => c.conn.state.name().to_owned(),
            Protocol::Udp => "UDP".to_owned(),
        },
        expires_ms: u64::try_from(c.remaining.as_millis()).unwrap_or(u64::MAX),
        client: at(c.conn.client),
        virtual_address: at(c.conn.virt),
        local: at(c.conn.local),
        destination: at(c.conn.dest),
        forward: c.conn.forward,
        worker: c.worker.0,
    })
}

/// Director-wide status: every worker's counters and every port's.
fn status_view(shared: &Shared, ports: &[PortInfo<'_>]) -> StatusView {
    StatusView {
        generation: shared.published.generation(),
        workers: shared
            .worker_counters
            .iter()
            .enumerate()
            .map(|(id, c)| WorkerView {
                id: id as u16,
                rx_packets: c.rx_packets.get(),
                rx_bytes: c.rx_bytes.get(),
                tx_packets: c.tx_packets.get(),
                tx_bytes: c.tx_bytes.get(),
                arp_replies: c.arp_replies.get(),
                arp_requests: c.arp_requests.get(),
                icmp_echo_replies: c.icmp_echo_replies.get(),
                conns_created: c.conns_created.get(),
                conns_expired: c.conns_expired.get(),
                conns_live: c.conns_live.get(),
                redirects_out: c.redirects_out.get(),
                redirects_in: c.redirects_in.get(),
                conn_capacity: shared.conn_capacity as u64,
                drops: c.drops.iter().map(|(l, n)| (l.to_owned(), n)).collect(),
                modes: c.modes.iter().map(|(l, n)| (l.to_owned(), n)).collect(),
                defence: c.defence.iter().map(|(l, n)| (l.to_owned(), n)).collect(),
            })
            .collect(),
        ports: ports.iter().map(port_view).collect(),
    }
}

fn port_view(p: &PortInfo<'_>) -> PortView {
    let stats = p.port.stats().unwrap_or_default();
    PortView {
        name: p.name.clone(),
        device: p.device.clone(),
        mac: MacAddr(p.port.mac()).to_string(),
        rx_packets: stats.ipackets,
        tx_packets: stats.opackets,
        rx_bytes: stats.ibytes,
        tx_bytes: stats.obytes,
        rx_missed: stats.imissed,
        rx_errors: stats.ierrors,
        tx_errors: stats.oerrors,
        rx_nombuf: stats.rx_nombuf,
        xstats: p.port.xstats().unwrap_or_default(),
    }
}

/// Every service of `snapshot` with counters summed over the workers: as listed
/// (since the last zero, with rates) when `book` is given, raw otherwise.
pub fn service_views(snapshot: &Snapshot, book: Option<&StatsBook>) -> Vec<ServiceView> {
    let shown = |serial, totals| match book {
        Some(b) => b.shown(serial, totals),
        None => totals,
    };
    let rates = |serial| book.map(|b| b.rates(serial)).unwrap_or_default();
    snapshot
        .services()
        .map(|s| ServiceView {
            protocol: s.protocol,
            address: s.vip,
            port: s.vport,
            scheduler: s.scheduler_spec.name.clone(),
            scheduler_flags: s.scheduler_spec.flags.clone(),
            persistence: (s.persistence_timeout > 0).then_some(s.persistence_timeout),
            persistence_prefix: s.persistence_prefix,
            stats: shown(s.serial, s.counters.totals()),
            rates: rates(s.serial),
            real_servers: s
                .real_servers
                .iter()
                .map(|d| RealServerView {
                    address: d.addr,
                    port: d.port,
                    forward: d.forward,
                    weight: d.weight,
                    upper_threshold: d.upper_threshold,
                    lower_threshold: d.lower_threshold,
                    active: d.counters.active(),
                    inactive: d.counters.inactive(),
                    stats: shown(d.serial, d.counters.totals()),
                    rates: rates(d.serial),
                })
                .collect(),
        })
        .collect()
}
