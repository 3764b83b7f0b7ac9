//! `lb-pktgen`: a DPDK packet generator for benchmarking lb-director (or any
//! forwarder in its seat) over two `net_memif` links on the same host.
//!
//! It connects as the memif client to the device under test's client-side and
//! server-side links, plays the clients on one and the real servers on the
//! other, and runs one measurement (throughput, latency or connection rate; see
//! `lb_bench::traffic`). It prints a table and can save JSON and an SVG chart.
//!
//! ```text
//! lb-pktgen --config config/examples/bench-fullnat.yaml \
//!     --client-socket /tmp/lb-bench/client.sock --server-socket /tmp/lb-bench/server.sock \
//!     --mode throughput --proto udp --size 64 --flows 65536 --duration 5 --json out.json
//! ```
//!
//! All DPDK access goes through `lb_dataplane::dpdk`; there is no `unsafe` here.

mod driver;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use lb_bench::plan::Plan;
use lb_bench::results::RunResult;
use lb_bench::svg::LineChart;
use lb_bench::traffic::{Dut, Engine, Mode, Options};
use lb_config::Config;
use lb_core::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use lb_dataplane::dpdk::{self, Eal, Mempool, Port, PortConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Throughput,
    Latency,
    Cps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DutArg {
    /// lb-director: FullNAT rewrites expected, MACs learned through ARP.
    Director,
    /// A pass-through forwarder such as `dpdk-testpmd --forward-mode=io`.
    Testpmd,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "lb-pktgen",
    version,
    about = "DPDK packet generator for lb-director over net_memif",
    args_override_self = true
)]
struct Args {
    /// The director's YAML configuration (addresses, services, local addresses).
    #[arg(long)]
    config: PathBuf,
    /// memif socket of the director's client-side port (port 0).
    #[arg(long)]
    client_socket: String,
    /// memif socket of the director's server-side port (port 1).
    #[arg(long)]
    server_socket: String,
    /// What sits between the links.
    #[arg(long, value_enum, default_value = "director")]
    dut: DutArg,
    /// Measurement.
    #[arg(long, value_enum, default_value = "throughput")]
    mode: ModeArg,
    /// Transport (connection-rate runs are always TCP).
    #[arg(long, value_enum, default_value = "udp")]
    proto: ProtoArg,
    /// Frame size in bytes including the 4-byte FCS (64..=1518).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Flows for throughput and latency runs.
    #[arg(long, default_value_t = 65536)]
    flows: u32,
    /// Distinct client addresses.
    #[arg(long, default_value_t = 256)]
    clients: u32,
    /// First client address (default depends on mode and protocol, so that runs
    /// against one director never share tuples).
    #[arg(long)]
    client_base: Option<Ipv4Addr>,
    /// Target rate: packets/s (throughput, latency) or connections/s (cps); 0 =
    /// as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Latency runs without --rate: run at this fraction of the rate a flat-out
    /// probe forwards.
    #[arg(long, default_value_t = 0.5)]
    fraction: f64,
    /// Length of the flat-out probe of latency runs, seconds.
    #[arg(long, default_value_t = 1.0)]
    probe_duration: f64,
    /// Measure phase, seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Longest ARP resolution and warm-up, seconds.
    #[arg(long, default_value_t = 10.0)]
    warmup_timeout: f64,
    /// Connections (cps) or handshakes (warm-up) in flight.
    #[arg(long, default_value_t = 4096)]
    window: u32,
    /// A connection without progress for this long fails, seconds.
    #[arg(long, default_value_t = 1.0)]
    conn_timeout: f64,
    /// Servers echo every data frame (bidirectional throughput).
    #[arg(long)]
    replies: bool,
    /// Queue pairs per memif link (as many as the device under test has
    /// workers); frames are spread over them by a hash of their addresses and
    /// ports, as RSS would.
    #[arg(long, default_value_t = 1)]
    queues: u16,
    /// Frames per RX/TX burst (1..=32).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// CPU core for the generator (the EAL main lcore).
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Use hugepages (else `--no-huge -m <mem>`).
    #[arg(long)]
    huge: bool,
    /// Memory in MB without hugepages.
    #[arg(long, default_value_t = 512)]
    mem: u32,
    /// DPDK file prefix (default: lb-pktgen-<pid>).
    #[arg(long)]
    file_prefix: Option<String>,
    /// Extra EAL argument (repeatable).
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal: Vec<String>,
    /// The director's control socket: its status is saved with the results.
    #[arg(long)]
    dut_socket: Option<PathBuf>,
    /// Label of the run in reports.
    #[arg(long)]
    label: Option<String>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a chart (timeline, or latency CDF) here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Seconds to wait for both memif links to come up.
    #[arg(long, default_value_t = 10.0)]
    link_timeout: f64,
    /// Run several measurements over the same links: one per line of FILE,
    /// `<json path> <options…>`, the options overriding the command line's
    /// (`#` starts a comment line).
    #[arg(long)]
    cases: Option<PathBuf>,
    /// After the last measurement, touch this file.
    #[arg(long)]
    done_file: Option<PathBuf>,
    /// After the last measurement, keep the links until the device under test
    /// closes them (or SIGTERM, or this many seconds): DPDK 22.11's memif
    /// unmaps a peer's shared memory while the other side may still be polling
    /// it, so the side that stops polling first must be the one to disconnect.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(results) => {
            if results.iter().any(|r| r.error.is_some()) {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("lb-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The measurements to make: `(json path, arguments)` per case.
fn cases(args: &Args) -> Result<Vec<(Option<PathBuf>, Args)>, String> {
    let Some(file) = &args.cases else {
        return Ok(vec![(args.json.clone(), Args::parse())]);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let base: Vec<String> = std::env::args().collect();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let json = words.next().map(PathBuf::from);
        let argv = base.iter().cloned().chain(words.map(str::to_owned));
        let case =
            Args::try_parse_from(argv).map_err(|e| format!("{}:{}: {e}", file.display(), n + 1))?;
        out.push((json, case));
    }
    Ok(out)
}

fn load_plan(path: &Path) -> Result<Plan, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let config = Config::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Plan::from_config(&config).map_err(|e| format!("{}: {e}", path.display()))
}

fn eal_args(args: &Args) -> Vec<String> {
    let mut eal = vec![
        "-l".to_owned(),
        args.core.to_string(),
        "--no-pci".to_owned(),
        format!(
            "--file-prefix={}",
            args.file_prefix
                .clone()
                .unwrap_or_else(|| format!("lb-pktgen-{}", std::process::id()))
        ),
        "--vdev".to_owned(),
        format!("net_memif0,role=client,socket={}", args.client_socket),
        "--vdev".to_owned(),
        format!("net_memif1,role=client,socket={}", args.server_socket),
    ];
    if !args.huge {
        eal.extend([
            "--no-huge".to_owned(),
            "-m".to_owned(),
            args.mem.to_string(),
        ]);
    }
    eal.extend(args.eal.iter().cloned());
    eal
}

fn options(args: &Args) -> Options {
    let mode = match args.mode {
        ModeArg::Throughput => Mode::Throughput,
        ModeArg::Latency => Mode::Latency,
        ModeArg::Cps => Mode::ConnectionRate,
    };
    let proto = match (mode, args.proto) {
        (Mode::ConnectionRate, _) | (_, ProtoArg::Tcp) => PROTO_TCP,
        (_, ProtoArg::Udp) => PROTO_UDP,
    };
    // Separate client ranges per kind of run: 198.18.128.0/19 TCP flows,
    // .160.0/19 UDP flows, .192.0/18 connection-rate clients.
    let default_base = match (mode, proto) {
        (Mode::ConnectionRate, _) => Ipv4Addr::new(198, 18, 192, 0),
        (_, PROTO_TCP) => Ipv4Addr::new(198, 18, 128, 0),
        _ => Ipv4Addr::new(198, 18, 160, 0),
    };
    Options {
        mode,
        proto,
        size: args.size,
        flows: args.flows,
        clients: args.clients,
        client_base: args.client_base.unwrap_or(default_base),
        port_base: 1024,
        rate: args.rate,
        duration: args.duration,
        warmup_timeout: args.warmup_timeout,
        drain: 0.3,
        window: args.window,
        replies: args.replies,
        timestamps: mode == Mode::Latency,
        dut: match args.dut {
            DutArg::Director => Dut::Director,
            DutArg::Testpmd => Dut::Passthrough,
        },
        conn_timeout: args.conn_timeout,
        sample_interval: 0.1,
    }
}

fn run(args: &Args) -> Result<Vec<RunResult>, String> {
    let plan = load_plan(&args.config)?;
    let cases = cases(args)?;
    // Check every case before DPDK starts.
    for (_, case) in &cases {
        Engine::new(options(case), plan.clone(), 1_000_000_000, 0)?;
    }
    let burst = args.burst.clamp(1, dpdk::BURST);

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| format!("signal: {e}"))?;
    }
    let _eal = Eal::init(&eal_args(args)).map_err(|e| e.to_string())?;
    let pool = Mempool::new(
        "pktgen_mbufs",
        // Two RX rings, two backlogs, bursts in flight.
        32767,
        256,
        dpdk::DEFAULT_DATA_ROOM,
        dpdk::socket_id(),
    )
    .map_err(|e| e.to_string())?;
    let mut ports = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(args.link_timeout);
    for name in ["net_memif0", "net_memif1"] {
        let id = Port::by_name(name).map_err(|e| e.to_string())?;
        let cfg = PortConfig {
            rx_queues: args.queues.max(1),
            tx_queues: args.queues.max(1),
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            rss: false,
        };
        // A memif client fails to start while the server's socket is not there
        // yet: try again until the link timeout.
        let port = loop {
            match Port::configure(id, cfg, &pool) {
                Ok(port) => break port,
                Err(e) if std::time::Instant::now() >= deadline || stop.load(Relaxed) => {
                    return Err(format!(
                        "{name}: {e} (is the device under test running with the same memif socket?)"
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        ports.push(port);
    }
    driver::wait_links(&ports, Duration::from_secs_f64(args.link_timeout), &stop)?;
    let mut results = Vec::new();
    {
        let mut io = driver::Io::new(&ports, &pool, burst, args.queues)?;
        for (json, case) in &cases {
            if stop.load(Relaxed) {
                break;
            }
            let result = measure(case, &plan, &mut io, &stop)?;
            // Late frames of this run must not count against the next one.
            io.settle(Duration::from_millis(100));
            print!("{}", result.table());
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
                std::fs::write(path, text + "\n")
                    .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
            }
            if let Some(path) = &case.svg {
                std::fs::write(path, chart(&result))
                    .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
            }
            results.push(result);
        }
    }
    if let Some(path) = &args.done_file {
        std::fs::write(path, "done\n")
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    if args.hold > 0.0 {
        driver::hold(&ports, Duration::from_secs_f64(args.hold), &stop);
    }
    drop(ports);
    Ok(results)
}

/// One measurement over the open links.
fn measure(
    args: &Args,
    plan: &Plan,
    io: &mut driver::Io<'_>,
    stop: &AtomicBool,
) -> Result<RunResult, String> {
    let hz = dpdk::tsc_hz();
    let mut opts = options(args);
    let dut_name = match args.dut {
        DutArg::Director => "lb-director",
        DutArg::Testpmd => "testpmd",
    };
    let label = args.label.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-{}",
            opts.mode.name(),
            if opts.proto == PROTO_TCP {
                "tcp"
            } else {
                "udp"
            },
            opts.size
        )
    });
    let load_before = loadavg();
    let status_before = args.dut_socket.as_deref().and_then(|p| dut_status(p).ok());
    let mut probe_max = None;
    if opts.mode == Mode::Latency && opts.rate <= 0.0 {
        let probe = Options {
            mode: Mode::Throughput,
            timestamps: false,
            duration: args.probe_duration,
            ..opts.clone()
        };
        let mut engine = Engine::new(probe, plan.clone(), hz, dpdk::rdtsc())?;
        io.drive(&mut engine, stop);
        let r = RunResult::from_engine(&engine, &label, dut_name);
        if let Some(e) = &r.error {
            print!("{}", r.table());
            return Err(format!("probe run failed: {e}"));
        }
        eprintln!(
            "lb-pktgen: probe forwarded {:.3} Mpps; latency at {:.0} % = {:.0} pps",
            r.rx_pps / 1e6,
            args.fraction * 100.0,
            r.rx_pps * args.fraction
        );
        probe_max = Some(r.rx_pps);
        opts.rate = (r.rx_pps * args.fraction).max(1.0);
        io.settle(Duration::from_millis(100));
    }
    let mut engine = Engine::new(opts, plan.clone(), hz, dpdk::rdtsc())?;
    io.drive(&mut engine, stop);
    let mut result = RunResult::from_engine(&engine, &label, dut_name);
    result.probe_max_pps = probe_max;
    if let Some(sock) = &args.dut_socket {
        result.dut_status = dut_status(sock).ok();
        if let (Some(before), Some(after)) = (&status_before, &result.dut_status) {
            result.dut_drops = drop_delta(before, after);
        }
    }
    result.loadavg = load_before.zip(loadavg());
    Ok(result)
}

/// The run's chart: the latency CDF of latency runs, else rates over time.
fn chart(r: &RunResult) -> String {
    let subtitle = Some(format!(
        "{} {} {}B, {} flows, dut {}",
        r.mode, r.proto, r.frame_size, r.flows, r.dut
    ));
    if !r.latency_cdf.is_empty() {
        return LineChart {
            title: format!("{}: one-way latency CDF", r.label),
            subtitle,
            x_label: "latency (µs, log scale)".into(),
            y_label: "fraction of frames".into(),
            log_x: true,
            y_max: Some(1.0),
            series: vec![(
                r.dut.clone(),
                r.latency_cdf.iter().map(|&(ns, f)| (ns / 1e3, f)).collect(),
            )],
        }
        .render();
    }
    type Sample = (f64, f64, f64, f64);
    let (name, pick): (&str, fn(&Sample) -> f64) = if r.mode == "cps" {
        ("connections/s (thousands)", |p| p.3 / 1e3)
    } else {
        ("Mpps", |p| p.2 / 1e6)
    };
    let mut series = vec![(
        format!("{} received", r.dut),
        r.timeline
            .iter()
            .map(|p| (p.0, pick(p)))
            .collect::<Vec<_>>(),
    )];
    if r.mode != "cps" {
        series.push((
            "offered".to_owned(),
            r.timeline.iter().map(|p| (p.0, p.1 / 1e6)).collect(),
        ));
    }
    LineChart {
        title: format!("{}: rate over time", r.label),
        subtitle,
        x_label: "seconds".into(),
        y_label: name.into(),
        log_x: false,
        y_max: None,
        series,
    }
    .render()
}

/// The director's `status` answer, as JSON.
fn dut_status(path: &Path) -> Result<serde_json::Value, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let request = serde_json::json!({
        "version": lb_config::api::VERSION,
        "command": "status",
    });
    writeln!(stream, "{request}").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| e.to_string())
}

/// The 1-minute load average.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Drops by reason summed over workers, as `(reason, count)` pairs.
fn drops(status: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for w in status["workers"].as_array().into_iter().flatten() {
        for d in w["drops"].as_array().into_iter().flatten() {
            if let (Some(k), Some(n)) = (d[0].as_str(), d[1].as_u64()) {
                *out.entry(k.to_owned()).or_insert(0) += n;
            }
        }
    }
    out
}

/// Non-zero drop counts between two status answers.
fn drop_delta(before: &serde_json::Value, after: &serde_json::Value) -> Vec<(String, u64)> {
    let before = drops(before);
    drops(after)
        .into_iter()
        .map(|(k, n)| {
            let d = n.saturating_sub(before.get(&k).copied().unwrap_or(0));
            (k, d)
        })
        .filter(|(_, d)| *d > 0)
        .collect()
}
