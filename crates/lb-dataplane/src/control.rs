//! The control thread's socket: one JSON request and one JSON response per line
//! (see docs/control-protocol.md). The control thread only reads what workers
//! publish (counters) and publishes snapshots; it never blocks a worker.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lb_core::api::{
    Command, PortView, RealServerView, Request, Response, ServiceView, StatusView, WorkerView,
    VERSION,
};
use lb_core::config::Config;
use lb_core::snapshot::Snapshot;
use lb_core::wire::MacAddr;

use crate::dpdk::Port;
use crate::shared::Shared;

/// Applies the configuration file again: on `lb-ctl reload` and on SIGHUP.
#[derive(Debug)]
pub struct Reloader {
    /// The configuration file.
    pub path: PathBuf,
    /// The configuration in force.
    pub current: Config,
    /// Set by SIGHUP.
    pub requested: Arc<AtomicBool>,
    /// The control socket given on the command line, which wins over the file's.
    pub socket_override: Option<String>,
}

impl Reloader {
    /// Reads, validates and publishes the file; on any error nothing changes.
    /// Settings that shape DPDK resources (EAL, ports, workers, table size, the
    /// control socket) need a restart and are refused here.
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
        let previous = shared.published.load();
        let snapshot = Snapshot::build(&next, Some(&previous), previous.workers)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
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

    /// Serves requests (and SIGHUP reloads) until the director stops.
    pub fn serve(&self, shared: &Shared, ports: &[PortInfo<'_>], reloader: &mut Reloader) {
        while !shared.stopping() {
            if reloader.requested.swap(false, Ordering::Relaxed) {
                match reloader.reload(shared) {
                    Ok(g) => {
                        eprintln!("lb-director: SIGHUP: configuration generation {g} in force")
                    }
                    Err(e) => eprintln!("lb-director: SIGHUP: {e}"),
                }
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = handle(stream, shared, ports, reloader) {
                        eprintln!("lb-director: control: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    eprintln!("lb-director: control: accept: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn handle(
    stream: UnixStream,
    shared: &Shared,
    ports: &[PortInfo<'_>],
    reloader: &mut Reloader,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Error {
            message: format!("malformed request: {e}"),
        },
        Ok(r) if r.version != VERSION => Response::Error {
            message: format!(
                "protocol version {} not supported (this director speaks {VERSION})",
                r.version
            ),
        },
        Ok(r) => answer(r.command, shared, ports, reloader),
    };
    let mut text = serde_json::to_string(&response).map_err(std::io::Error::other)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())
}

fn answer(
    command: Command,
    shared: &Shared,
    ports: &[PortInfo<'_>],
    reloader: &mut Reloader,
) -> Response {
    match command {
        Command::Reload => match reloader.reload(shared) {
            Ok(generation) => Response::Reloaded { generation },
            Err(message) => Response::Error { message },
        },
        Command::ListServices => {
            let snapshot = shared.published.load();
            Response::Services {
                conn_capacity: (shared.conn_capacity * shared.worker_counters.len()) as u64,
                services: services(&snapshot),
            }
        }
        Command::Status => Response::Status(StatusView {
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
                    drops: c.drops.iter().map(|(l, n)| (l.to_owned(), n)).collect(),
                })
                .collect(),
            ports: ports.iter().map(port_view).collect(),
        }),
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
    }
}

/// Every service of `snapshot` with summed counters.
pub fn services(snapshot: &Snapshot) -> Vec<ServiceView> {
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
            stats: s.counters.totals(),
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
                    stats: d.counters.totals(),
                })
                .collect(),
        })
        .collect()
}
