//! `lb-director`: the DPDK load balancer.
//!
//! Reads the YAML configuration, initialises DPDK (EAL, one mbuf pool, every port
//! with one RX and one TX queue per worker), starts one pinned poll-mode worker per
//! configured core and serves the control socket on the main thread until SIGTERM
//! or SIGINT.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lb_config::Config;
use lb_core::ids::WorkerId;
use lb_core::steer::Peers;
use lb_core::time::Instant;
use lb_core::wire::MacAddr;
use lb_core::worker::{Worker, WorkerSetup};

use lb_dataplane::clock::Clock;
use lb_dataplane::control::{ControlSocket, PortInfo, Reloader};
use lb_dataplane::dpdk::{self, Eal, Mempool, Port, PortConfig};
use lb_dataplane::metrics::MetricsServer;
use lb_dataplane::shared::{Mailboxes, Published, Shared};
use lb_dataplane::worker_loop::{self, WorkerRun};
use lb_dataplane::{cpu, hugepages};

/// Command line of the director.
#[derive(Debug, Parser)]
#[command(
    name = "lb-director",
    version,
    about = "DPDK L4 load balancer (LVS-style director)"
)]
struct Args {
    /// The YAML configuration file.
    #[arg(short, long)]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Control socket path, overriding `control.socket` of the configuration.
    #[arg(long)]
    socket: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match load_config(&args.config) {
        Ok(mut c) => {
            if let Some(socket) = &args.socket {
                c.control.socket.clone_from(socket);
            }
            c
        }
        Err(e) => {
            eprintln!("lb-director: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    match run(&config, &args.config, args.socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-director: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &PathBuf) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let config = Config::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // The snapshot build checks what needs the whole picture (schedulers per
    // real-server set), so a bad file fails here, before DPDK starts.
    let workers = usize::from(config.workers.count);
    lb_config::build_snapshot(&config, None, workers)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

/// Mbufs for every RX and TX descriptor of every queue, the bursts in flight, and
/// the per-core caches, rounded up to a power of two minus one (the ring size that
/// wastes nothing).
fn pool_size(config: &Config) -> u32 {
    let workers = u32::from(config.workers.count);
    let descriptors: u32 = config
        .ports
        .iter()
        .map(|p| (u32::from(p.rx_descriptors) + u32::from(p.tx_descriptors)) * workers)
        .sum();
    let in_flight = workers * (config.ports.len() as u32 + 2) * dpdk::BURST as u32;
    let caches = (workers + 1) * POOL_CACHE;
    (descriptors + in_flight + caches + 1024)
        .next_power_of_two()
        .max(8192)
        - 1
}

const POOL_CACHE: u32 = 256;

/// `MemAvailable` from /proc/meminfo in bytes (0 if unreadable: the automatic
/// sizing then falls back to its minimum).
fn memory_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
/// Steers FullNAT replies in hardware where the port can (rte_flow rules per local
/// address, validated first) and says which path every port with local addresses
/// uses; software steering (rings between workers) is always there underneath.
fn install_steering(config: &Config, ports: &[Port], workers: usize) {
    if workers < 2 {
        return;
    }
    let mask = lb_core::laddr::owner_mask(workers);
    for (i, (pc, port)) in config.ports.iter().zip(ports).enumerate() {
        let lips: Vec<std::net::Ipv4Addr> = config
            .local_addresses
            .iter()
            .filter(|l| config.port_device(&l.port) == Some(i))
            .filter_map(|l| match l.address {
                std::net::IpAddr::V4(a) => Some(a),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        if lips.is_empty() {
            continue;
        }
        let installed: Result<usize, _> = lips
            .iter()
            .map(|lip| port.steer_local_ports(*lip, mask, workers as u16))
            .sum();
        match installed {
            Ok(n) => eprintln!(
                "lb-director: port {}: FullNAT replies steered in hardware (rte_flow, {n} rules)",
                pc.name
            ),
            Err(e) => eprintln!(
                "lb-director: port {}: no rte_flow steering ({e}); replies reach their worker in software (rings)",
                pc.name
            ),
        }
    }
}

/// Slots of each ring between two workers.
const REDIRECT_RING_SLOTS: u32 = 1024;

/// Producer/consumer ends of one SPSC ring per ordered pair of workers:
/// `to[w][v]` is how worker `w` hands frames to worker `v`; `from[v]` lists the
/// rings worker `v` drains.
#[allow(clippy::type_complexity)]
fn redirect_rings(
    workers: usize,
) -> Result<(Vec<Vec<Option<dpdk::Producer>>>, Vec<Vec<dpdk::Consumer>>), String> {
    let mut to: Vec<Vec<Option<dpdk::Producer>>> = (0..workers)
        .map(|_| (0..workers).map(|_| None).collect())
        .collect();
    let mut from: Vec<Vec<dpdk::Consumer>> = (0..workers).map(|_| Vec::new()).collect();
    for (w, rings) in to.iter_mut().enumerate() {
        for (v, ring) in rings.iter_mut().enumerate().filter(|(v, _)| *v != w) {
            let (producer, consumer) = dpdk::spsc(
                &format!("lb_redirect_{w}_{v}"),
                REDIRECT_RING_SLOTS,
                dpdk::socket_id(),
            )
            .map_err(|e| e.to_string())?;
            *ring = Some(producer);
            from[v].push(consumer);
        }
    }
    Ok((to, from))
}

/// The configured EAL arguments, plus a `--file-prefix` unique to this process
/// when the configuration names none, so that directors (and test runs) on one
/// host never share DPDK runtime files.
fn eal_args(config: &Config) -> Vec<String> {
    let mut args = config.eal.clone();
    if !args
        .iter()
        .any(|a| a == "--file-prefix" || a.starts_with("--file-prefix="))
    {
        args.push(format!("--file-prefix=lb-director-{}", std::process::id()));
    }
    args
}

fn run(
    config: &Config,
    config_path: &std::path::Path,
    socket_override: Option<String>,
) -> Result<(), String> {
    let workers = usize::from(config.workers.count);
    let _eal = Eal::init(&eal_args(config)).map_err(|e| e.to_string())?;
    let pool = Mempool::new(
        "lb_mbufs",
        pool_size(config),
        POOL_CACHE,
        dpdk::DEFAULT_DATA_ROOM,
        dpdk::socket_id(),
    )
    .map_err(|e| e.to_string())?;

    let mut ports = Vec::with_capacity(config.ports.len());
    for (i, pc) in config.ports.iter().enumerate() {
        let id = Port::by_name(&pc.device).map_err(|e| format!("ports[{i}].device: {e}"))?;
        let port = Port::configure(
            id,
            PortConfig {
                rx_queues: workers as u16,
                tx_queues: workers as u16,
                rx_desc: pc.rx_descriptors,
                tx_desc: pc.tx_descriptors,
                mtu: None,
                rss: workers > 1,
            },
            &pool,
        )
        .map_err(|e| format!("ports[{i}] ({}): {e}", pc.device))?;
        eprintln!(
            "lb-director: port {} = {} (dpdk port {}, driver {}, mac {}, {} queue pairs)",
            pc.name,
            pc.device,
            port.id(),
            port.driver(),
            MacAddr(port.mac()),
            workers
        );
        ports.push(port);
    }

    install_steering(config, &ports, workers);
    let snapshot =
        Arc::new(lb_config::build_snapshot(config, None, workers).map_err(|e| e.to_string())?);
    let port_macs: Vec<MacAddr> = ports.iter().map(|p| MacAddr(p.mac())).collect();
    let conn_capacity = config.connections.capacity(workers, memory_available());
    eprintln!(
        "lb-director: connection table: {conn_capacity} connections per worker{}",
        if config.connections.per_worker.is_none() {
            " (sized from available memory)"
        } else {
            ""
        }
    );
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let mut cores = Vec::new();
    let mut cores_left = config.workers.cores.iter().copied();
    let peers = Arc::new(Peers::new(workers, seed.rotate_left(17)));
    let mut lb_workers: Vec<Worker> = (0..workers)
        .map(|w| {
            cores.push(cores_left.next());
            Worker::new(
                WorkerSetup {
                    id: WorkerId(w as u16),
                    port_macs: port_macs.clone(),
                    conn_capacity,
                    seed: seed.wrapping_add(w as u64),
                    peers: peers.clone(),
                },
                snapshot.clone(),
                Instant(0),
            )
        })
        .collect();
    for (w, worker) in lb_workers.iter_mut().enumerate() {
        worker.set_prefetch(cpu::prefetch);
        eprintln!(
            "lb-director: worker {w} connection table: {}",
            hugepages::back_with_huge_pages(worker.conn_memory_regions())
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let reload_requested = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload_requested.clone())
        .map_err(|e| format!("signal handler: {e}"))?;
    let mut reloader = Reloader {
        path: config_path.to_owned(),
        current: config.clone(),
        requested: reload_requested,
        socket_override,
    };
    let (mailboxes, inboxes) = Mailboxes::new(workers);
    let shared = Shared {
        published: Published::new(snapshot),
        worker_counters: lb_workers.iter().map(Worker::counters).collect(),
        conn_capacity,
        stop,
        mailboxes,
        peers: peers.clone(),
        clock: Clock::start(),
    };
    let socket = ControlSocket::bind(std::path::Path::new(&config.control.socket))?;
    let metrics = config
        .control
        .metrics
        .map(MetricsServer::bind)
        .transpose()?;
    let idle_sleep = Duration::from_micros(u64::from(config.workers.idle_sleep_us));

    let (mut to_peers, mut from_peers) = redirect_rings(workers)?;
    let mut port_index = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let id = usize::from(port.id());
        if port_index.len() <= id {
            port_index.resize(id + 1, None);
        }
        port_index[id] = Some(lb_core::ids::PortId(i as u16));
    }
    let mut runs = Vec::with_capacity(workers);
    for ((w, worker), inbox) in lb_workers.into_iter().enumerate().zip(inboxes) {
        let rx = ports
            .iter()
            .map(|p| p.rx_queue(w as u16))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let tx = ports
            .iter()
            .map(|p| p.tx_queue(w as u16))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        runs.push(WorkerRun {
            worker,
            rx,
            tx,
            to_peers: std::mem::take(&mut to_peers[w]),
            from_peers: std::mem::take(&mut from_peers[w]),
            port_index: port_index.clone(),
            pool: pool.clone(),
            core: cores[w],
            idle_sleep,
            inbox,
        });
    }
    let port_info: Vec<PortInfo<'_>> = config
        .ports
        .iter()
        .zip(&ports)
        .map(|(pc, port)| PortInfo {
            name: pc.name.clone(),
            device: pc.device.clone(),
            port,
        })
        .collect();
    eprintln!(
        "lb-director: {} services, {workers} workers, control socket {}",
        config.services.len(),
        config.control.socket
    );
    if let Some(addr) = metrics.as_ref().and_then(|m| m.local_addr().ok()) {
        eprintln!("lb-director: Prometheus metrics at http://{addr}/metrics");
    }
    std::thread::scope(|scope| {
        for run in runs {
            let shared = &shared;
            scope.spawn(move || worker_loop::run(run, shared));
        }
        if let Some(core) = config.control.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                eprintln!("lb-director: control thread: could not pin to core {core}");
            }
        }
        let served = socket.serve(&shared, &port_info, &mut reloader, metrics);
        // However the control thread ended, the workers stop with it.
        shared.stop.store(true, Ordering::Relaxed);
        served
    })?;
    eprintln!("lb-director: stopped");
    Ok(())
}
