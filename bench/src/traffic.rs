//! lb-pktgen's traffic logic, free of DPDK like `lb-core`: the simulated clients
//! on the client link, the simulated real servers on the server link, the
//! validation of everything that comes back, pacing and counters.
//!
//! The driver (the `lb-pktgen` binary, or a unit test wiring an
//! `lb_core::worker::Worker` in between) moves frames: it hands every received
//! frame to [`Engine::handle`] (which may rewrite it in place into the answer and
//! say where to send it), asks [`Engine::wanted`] how many new frames to build
//! and fills them with [`Engine::generate`], and calls [`Engine::tick`] once per
//! loop. Time is the TSC (or any monotonic counter at `hz` ticks per second).
//!
//! # Runs
//!
//! * **Throughput** and **latency**: `flows` client flows (client address ×
//!   port, spread over the VIPs of the protocol). Warm-up establishes every
//!   flow through the director (TCP: SYN → SYN-ACK → ACK; UDP: one datagram),
//!   then the measure phase sends data round robin over the flows, paced to
//!   `rate` or flat out. The simulated servers sink the data, or echo it when
//!   `replies` is set. Latency runs put the TSC in every payload and the server
//!   side records the one-way latency (same clock on both links).
//! * **Connection rate**: up to `window` connections in flight, each a complete
//!   exchange — client SYN, server SYN-ACK, client ACK carrying the request,
//!   server response, client FIN, server FIN-ACK, client ACK — 4 packets in and
//!   3 out through the director. A connection that makes no progress for
//!   `conn_timeout` counts as failed.
//!
//! # What is checked
//!
//! Every IPv4 frame: IP and L4 checksums, TTL (decremented once by a director,
//! untouched by a pass-through), MACs, and addresses and ports against the
//! plan: on the server link the source must be a local address and the
//! destination a real server of the flow's service on its port (FullNAT), and
//! each flow must stay on the local address, local port and real server it got
//! first; on the client link the source must be the flow's VIP and port and the
//! destination the flow's client. Tags must be intact. Anything wrong is counted
//! in [`Invalid`] and dropped.

use std::net::Ipv4Addr;

use lb_core::frame::Frame;
use lb_core::wire::arp;
use lb_core::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use lb_core::wire::tcp::flags;
use lb_core::wire::MacAddr;

use crate::hist::Histogram;
use crate::pkt::{self, Headers, IpInfo, Parsed, Tag};
use crate::plan::{Plan, Service};

/// Frames per burst the engine hands out at most per [`Engine::wanted`].
pub const BURST: usize = 32;
/// TTL of every frame lb-pktgen sends.
pub const TTL: u8 = 64;
/// The MAC lb-pktgen sends to when the device under test does not answer ARP
/// (a pass-through such as testpmd).
pub const PASSTHROUGH_MAC: MacAddr = MacAddr([0x02, 0xb5, 0, 0, 0, 0xfe]);
/// Sequence-number space per flow or connection slot: ISN = id << 12, so the
/// id of any segment is recovered from its acknowledgement number.
const ISN_SHIFT: u32 = 12;
/// Largest flow count / connection window (ids must fit 32 - ISN_SHIFT bits).
pub const MAX_IDS: u32 = 1 << (32 - ISN_SHIFT);

/// One of the two links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Towards the director's client-side port (port 0): lb-pktgen plays the clients.
    Client = 0,
    /// Towards the director's server-side port (port 1): lb-pktgen plays the real servers.
    Server = 1,
}

impl Link {
    /// 0 or 1.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What to do with a frame [`Engine::handle`] has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// It was rewritten into an answer: send it on this link.
    Send(Link),
    /// Free it.
    Drop,
}

/// The kind of run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Established flows, forwarded packets per second and loss.
    Throughput,
    /// Like throughput with timestamps: one-way latency percentiles.
    Latency,
    /// Complete TCP connections per second.
    ConnectionRate,
}

impl Mode {
    /// Name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Throughput => "throughput",
            Mode::Latency => "latency",
            Mode::ConnectionRate => "cps",
        }
    }
}

/// What sits between the two links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dut {
    /// lb-director, FullNAT: addresses are rewritten, the TTL drops by one, MACs
    /// are learned through ARP.
    Director,
    /// A pass-through forwarder (testpmd `io`): frames come out unchanged.
    Passthrough,
}

/// The phases of a run, in order; the number is what the tag's phase byte holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Learning the director's MACs through ARP.
    Resolve = 0,
    /// Establishing the flows.
    Warmup = 1,
    /// Measuring.
    Measure = 2,
    /// Sending stopped; waiting for what is still in flight.
    Drain = 3,
    /// Finished.
    Done = 4,
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Kind of run.
    pub mode: Mode,
    /// `PROTO_TCP` or `PROTO_UDP` (connection-rate runs are TCP).
    pub proto: u8,
    /// Frame size including the 4-byte FCS (64 … 1518).
    pub size: usize,
    /// Flows (throughput, latency).
    pub flows: u32,
    /// Distinct client addresses.
    pub clients: u32,
    /// First client address.
    pub client_base: Ipv4Addr,
    /// First client port.
    pub port_base: u16,
    /// Packets (or connections) per second; 0 = as fast as possible.
    pub rate: f64,
    /// Length of the measure phase, seconds.
    pub duration: f64,
    /// Longest warm-up (and ARP resolution), seconds.
    pub warmup_timeout: f64,
    /// Drain time after the measure phase, seconds.
    pub drain: f64,
    /// Connections in flight (connection rate), handshakes in flight (warm-up).
    pub window: u32,
    /// The simulated servers echo data (bidirectional throughput).
    pub replies: bool,
    /// Put the TSC in payloads and record latency.
    pub timestamps: bool,
    /// The device under test.
    pub dut: Dut,
    /// A connection without progress for this long fails, seconds.
    pub conn_timeout: f64,
    /// Timeline resolution, seconds.
    pub sample_interval: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Throughput,
            proto: PROTO_UDP,
            size: 64,
            flows: 1024,
            clients: 256,
            client_base: Ipv4Addr::new(198, 18, 128, 0),
            port_base: 1024,
            rate: 0.0,
            duration: 2.0,
            warmup_timeout: 5.0,
            drain: 0.2,
            window: 4096,
            replies: false,
            timestamps: false,
            dut: Dut::Director,
            conn_timeout: 1.0,
            sample_interval: 0.1,
        }
    }
}

/// Invalid frames by what was wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invalid {
    /// Unparseable, truncated, or a kind of frame lb-pktgen never sends.
    pub malformed: u64,
    /// Bad IPv4 header checksum.
    pub ip_checksum: u64,
    /// Bad TCP/UDP checksum.
    pub l4_checksum: u64,
    /// Wrong TTL.
    pub ttl: u64,
    /// Wrong source or destination MAC.
    pub mac: u64,
    /// Unexpected source or destination address or port.
    pub address: u64,
    /// Missing or damaged payload tag.
    pub tag: u64,
    /// A flow moved to another local address, local port or real server.
    pub binding: u64,
    /// A TCP segment that does not fit the connection's state (flags, numbers).
    pub protocol: u64,
}

impl Invalid {
    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.ip_checksum
            + self.l4_checksum
            + self.ttl
            + self.mac
            + self.address
            + self.tag
            + self.binding
            + self.protocol
    }
}

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Data frames (or connections, for connection rate) sent in the measure phase.
    pub tx_measure: u64,
    /// Measure-phase data frames that reached the server side.
    pub rx_server_measure: u64,
    /// Measure-phase echoes that reached the client side (`replies`).
    pub rx_client_measure: u64,
    /// Echoes the servers sent for measure-phase data.
    pub echoed_measure: u64,
    /// Every IPv4 frame received on each link during the measure phase.
    pub rx_frames_measure: [u64; 2],
    /// Every frame sent on each link during the measure phase.
    pub tx_frames_measure: [u64; 2],
    /// Frames received per link, whole run.
    pub rx_frames: [u64; 2],
    /// Frames sent per link, whole run.
    pub tx_frames: [u64; 2],
    /// Answers the driver could not send (link full).
    pub tx_dropped: [u64; 2],
    /// ARP requests answered.
    pub arp_answered: u64,
    /// ARP requests lb-pktgen sent.
    pub arp_sent: u64,
    /// Flows established in warm-up.
    pub warm_established: u64,
    /// Flows that did not get established in warm-up.
    pub warm_failed: u64,
    /// Warm-up length, seconds.
    pub warmup_secs: f64,
    /// Measure phase length, seconds (as run).
    pub measure_secs: f64,
    /// Connections started in the measure phase.
    pub conns_started: u64,
    /// Connections completed (started in the measure phase).
    pub conns_completed: u64,
    /// Connections completed within the measure phase.
    pub conns_completed_in_measure: u64,
    /// Connections that timed out.
    pub conns_failed: u64,
    /// Frames for a connection slot that has moved on (late after a timeout).
    pub stale: u64,
    /// Packets the pacer could not send on time (the link or lb-pktgen was too slow).
    pub pace_shortfall: u64,
    /// What was wrong with invalid frames.
    pub invalid: Invalid,
    /// One-way latency, client link to server link, in ticks.
    pub latency: Histogram,
    /// SYN to final ACK, in ticks.
    pub conn_time: Histogram,
    /// `(seconds since measure start, tx_measure, rx counted, conns completed)`.
    pub timeline: Vec<(f64, u64, u64, u64)>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Idle,
    SynSent,
    ReqSent,
    FinSent,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    state: SlotState,
    cip: Ipv4Addr,
    cport: u16,
    svc: u16,
    start: u64,
    last: u64,
    measured: bool,
}

/// Per-flow warm-up state.
const FLOW_IDLE: u8 = 0;
const FLOW_SENT: u8 = 1;
const FLOW_UP: u8 = 2;
/// No binding recorded yet.
const UNBOUND: u64 = u64::MAX;

/// The traffic engine of one run.
#[derive(Debug)]
pub struct Engine {
    opts: Options,
    plan: Plan,
    services: Vec<Service>,
    /// Real-server port per real-server index, per service.
    rs_ports: Vec<Vec<Option<u16>>>,
    hz: u64,
    phase: Phase,
    phase_start: u64,
    dut_mac: [Option<MacAddr>; 2],
    gw_mac: MacAddr,
    ident: u16,
    payload_len: usize,
    // Flows (throughput, latency).
    flow_state: Vec<u8>,
    flow_time: Vec<u64>,
    flow_srv_seq: Vec<u32>,
    binding: Vec<u64>,
    warm_cursor: u32,
    warm_inflight: u32,
    next_flow: u32,
    // Connection slots.
    slots: Vec<Slot>,
    free: Vec<u32>,
    next_tuple: u64,
    last_scan: u64,
    // Pacing.
    pace_start: u64,
    paced: u64,
    // Resolution.
    arp_due: u64,
    arp_queue: Vec<(Link, Ipv4Addr, Ipv4Addr)>,
    next_sample: u64,
    /// Counters; read them after [`Phase::Done`].
    pub stats: Stats,
}

fn secs_to_ticks(s: f64, hz: u64) -> u64 {
    (s.max(0.0) * hz as f64) as u64
}

impl Engine {
    /// An engine for `opts` over `plan`, with a clock of `hz` ticks per second,
    /// starting at `now`.
    pub fn new(opts: Options, plan: Plan, hz: u64, now: u64) -> Result<Engine, String> {
        let proto = if opts.mode == Mode::ConnectionRate {
            PROTO_TCP
        } else {
            opts.proto
        };
        let services = plan.services_for(proto);
        if services.is_empty() {
            return Err(format!(
                "the configuration has no FullNAT {} service",
                if proto == PROTO_TCP { "TCP" } else { "UDP" }
            ));
        }
        let payload_len = pkt::payload_for_size(proto, opts.size)
            .filter(|_| opts.size <= pkt::MAX_FRAME)
            .ok_or_else(|| format!("frame size {} is outside 64..=1518", opts.size))?;
        let tag_len = if opts.timestamps {
            pkt::TAG_TS_LEN
        } else {
            pkt::TAG_LEN
        };
        if payload_len < tag_len {
            return Err(format!(
                "{}-byte {} frames have {payload_len} payload bytes, the tag needs {tag_len}{}",
                opts.size,
                if proto == PROTO_TCP { "TCP" } else { "UDP" },
                if opts.timestamps {
                    " (latency runs need 72-byte TCP frames or UDP)"
                } else {
                    ""
                }
            ));
        }
        let flows = opts.flows.max(1);
        if opts.mode != Mode::ConnectionRate && flows > MAX_IDS {
            return Err(format!("at most {MAX_IDS} flows"));
        }
        let span = u32::from(u16::MAX - opts.port_base) + 1;
        let clients = opts.clients.max(1);
        if opts.mode != Mode::ConnectionRate
            && u64::from(flows) > u64::from(clients) * u64::from(span)
        {
            return Err(format!(
                "{flows} flows need more than {clients} client addresses × {span} ports"
            ));
        }
        let window = opts.window.clamp(1, MAX_IDS);
        let rs_ports = services
            .iter()
            .map(|s| {
                let mut ports = vec![None; plan.rips.len()];
                for (addr, port) in &s.real_servers {
                    if let Some(i) = plan.rip(*addr) {
                        ports[usize::from(i)] = Some(*port);
                    }
                }
                ports
            })
            .collect();
        let is_flows = opts.mode != Mode::ConnectionRate;
        let n = if is_flows { flows as usize } else { 0 };
        let slots = if is_flows { 0 } else { window as usize };
        let mut engine = Engine {
            gw_mac: pkt::mac_for(plan.gateway),
            dut_mac: [None; 2],
            services,
            rs_ports,
            hz: hz.max(1),
            phase: Phase::Resolve,
            phase_start: now,
            ident: 0,
            payload_len,
            flow_state: vec![FLOW_IDLE; n],
            flow_time: vec![0; n],
            flow_srv_seq: vec![0; n],
            binding: vec![UNBOUND; n],
            warm_cursor: 0,
            warm_inflight: 0,
            next_flow: 0,
            slots: vec![
                Slot {
                    state: SlotState::Idle,
                    cip: Ipv4Addr::UNSPECIFIED,
                    cport: 0,
                    svc: 0,
                    start: 0,
                    last: 0,
                    measured: false,
                };
                slots
            ],
            free: (0..slots as u32).rev().collect(),
            next_tuple: 0,
            last_scan: now,
            pace_start: now,
            paced: 0,
            arp_due: now,
            arp_queue: Vec::new(),
            next_sample: 0,
            stats: Stats::default(),
            plan,
            opts: Options {
                proto,
                flows,
                clients,
                window,
                ..opts
            },
        };
        if engine.opts.dut == Dut::Passthrough {
            engine.dut_mac = [Some(PASSTHROUGH_MAC); 2];
            engine.enter(Self::after_resolve(engine.opts.mode), now);
        }
        Ok(engine)
    }

    fn after_resolve(mode: Mode) -> Phase {
        if mode == Mode::ConnectionRate {
            Phase::Measure
        } else {
            Phase::Warmup
        }
    }

    /// The phase the run is in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the run is over.
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The options in force (after clamping).
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The director's MAC on each link, once learned.
    pub fn dut_macs(&self) -> [Option<MacAddr>; 2] {
        self.dut_mac
    }

    /// Ticks per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// Ends the run at once (e.g. on a signal), keeping what was counted.
    pub fn abort(&mut self, why: &str, now: u64) {
        if self.phase == Phase::Measure {
            self.stats.measure_secs = (now - self.phase_start) as f64 / self.hz as f64;
        }
        self.stats.error.get_or_insert_with(|| why.to_owned());
        self.phase = Phase::Done;
    }

    fn enter(&mut self, phase: Phase, now: u64) {
        match (self.phase, phase) {
            (Phase::Warmup, _) => {
                self.stats.warmup_secs = (now - self.phase_start) as f64 / self.hz as f64;
                let up = self.flow_state.iter().filter(|&&s| s == FLOW_UP).count() as u64;
                self.stats.warm_established = up;
                self.stats.warm_failed = u64::from(self.opts.flows) - up;
            }
            (Phase::Measure, _) => {
                self.stats.measure_secs = (now - self.phase_start) as f64 / self.hz as f64;
                self.sample(now);
            }
            _ => {}
        }
        if phase == Phase::Measure {
            self.pace_start = now;
            self.paced = 0;
            self.next_sample = now;
            self.sample(now);
        }
        self.phase = phase;
        self.phase_start = now;
    }

    fn sample(&mut self, now: u64) {
        let t = if self.stats.timeline.is_empty() {
            0.0
        } else {
            now.saturating_sub(self.pace_start) as f64 / self.hz as f64
        };
        let rx = self.stats.rx_server_measure + self.stats.rx_client_measure;
        self.stats.timeline.push((
            t,
            self.stats.tx_measure,
            rx,
            self.stats.conns_completed_in_measure,
        ));
        self.next_sample = now + secs_to_ticks(self.opts.sample_interval, self.hz);
    }

    /// Phase changes, timeouts, sampling. Call once per loop.
    pub fn tick(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.phase_start);
        match self.phase {
            Phase::Resolve => {
                if self.dut_mac.iter().all(Option::is_some) {
                    self.enter(Self::after_resolve(self.opts.mode), now);
                } else if elapsed > secs_to_ticks(self.opts.warmup_timeout, self.hz) {
                    let missing: Vec<&str> = [("client", 0), ("server", 1)]
                        .iter()
                        .filter(|(_, i)| self.dut_mac[*i].is_none())
                        .map(|(n, _)| *n)
                        .collect();
                    self.abort(
                        &format!(
                            "the device under test did not answer ARP on the {} link (is it lb-director with this configuration?)",
                            missing.join(" and ")
                        ),
                        now,
                    );
                }
            }
            Phase::Warmup => {
                let all_up = self.flow_state.iter().all(|&s| s == FLOW_UP);
                if all_up || elapsed > secs_to_ticks(self.opts.warmup_timeout, self.hz) {
                    self.enter(Phase::Measure, now);
                }
            }
            Phase::Measure => {
                if now >= self.next_sample {
                    self.sample(now);
                }
                self.expire_slots(now);
                if elapsed >= secs_to_ticks(self.opts.duration, self.hz) {
                    self.enter(Phase::Drain, now);
                }
            }
            Phase::Drain => {
                self.expire_slots(now);
                let idle = self.free.len() == self.slots.len();
                let limit = if self.opts.mode == Mode::ConnectionRate {
                    self.opts.conn_timeout + self.opts.drain
                } else {
                    self.opts.drain
                };
                if (self.opts.mode == Mode::ConnectionRate && idle)
                    || elapsed > secs_to_ticks(limit, self.hz)
                {
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    fn expire_slots(&mut self, now: u64) {
        if self.slots.is_empty() || now - self.last_scan < self.hz / 100 {
            return;
        }
        self.last_scan = now;
        let timeout = secs_to_ticks(self.opts.conn_timeout, self.hz);
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.state != SlotState::Idle && now.saturating_sub(s.last) > timeout {
                s.state = SlotState::Idle;
                if s.measured {
                    self.stats.conns_failed += 1;
                }
                self.free.push(i as u32);
            }
        }
    }

    /// How many new frames the engine wants to send now, at most `room`.
    pub fn wanted(&mut self, now: u64, room: usize) -> usize {
        let room = room.min(BURST);
        match self.phase {
            Phase::Resolve => {
                if self.arp_queue.is_empty() && now >= self.arp_due {
                    self.queue_arp();
                    self.arp_due = now + self.hz / 10;
                }
                self.arp_queue.len().min(room)
            }
            Phase::Warmup => {
                if self.warm_inflight >= self.opts.window {
                    // Retries of lost warm-up packets are found by the scan.
                    return room.min(4);
                }
                room.min((self.opts.window - self.warm_inflight) as usize)
            }
            Phase::Measure => {
                let limit = if self.opts.mode == Mode::ConnectionRate {
                    room.min(self.free.len())
                } else {
                    room
                };
                self.paced_budget(now, limit)
            }
            Phase::Drain | Phase::Done => 0,
        }
    }

    fn paced_budget(&mut self, now: u64, limit: usize) -> usize {
        if self.opts.rate <= 0.0 {
            return limit;
        }
        let elapsed = now.saturating_sub(self.pace_start) as f64 / self.hz as f64;
        let allowed = (elapsed * self.opts.rate) as u64;
        let backlog = allowed.saturating_sub(self.paced);
        let cap = 4 * BURST as u64;
        if backlog > cap {
            self.stats.pace_shortfall += backlog - cap;
            self.paced = allowed - cap;
        }
        (allowed.saturating_sub(self.paced) as usize).min(limit)
    }

    fn queue_arp(&mut self) {
        if self.dut_mac[Link::Client.index()].is_none() {
            self.arp_queue
                .push((Link::Client, self.plan.gateway, self.plan.client_dut_ip));
        }
        if self.dut_mac[Link::Server.index()].is_none() {
            // One request from every real server: the director answers and learns
            // them all, so it need not resolve them itself.
            for &rip in &self.plan.rips {
                self.arp_queue
                    .push((Link::Server, rip, self.plan.server_dut_ip));
            }
        }
    }

    /// Builds the next frame into `frame` (an empty mbuf) and says which link it
    /// goes out of; `None` when there is nothing to send after all.
    pub fn generate(&mut self, now: u64, frame: &mut Frame<'_>) -> Option<Link> {
        let link = match self.phase {
            Phase::Resolve => {
                let (link, sender, target) = self.arp_queue.pop()?;
                let len = pkt::ETH_LEN + arp::PACKET_LEN;
                frame.set_len(len).ok()?;
                pkt::build_arp(
                    frame.data_mut(),
                    arp::OP_REQUEST,
                    MacAddr::BROADCAST,
                    (pkt::mac_for(sender), sender),
                    (MacAddr::ZERO, target),
                );
                self.stats.arp_sent += 1;
                link
            }
            Phase::Warmup => self.generate_warmup(now, frame)?,
            Phase::Measure => {
                let link = if self.opts.mode == Mode::ConnectionRate {
                    self.generate_syn(now, frame)?
                } else {
                    self.generate_data(now, frame)?
                };
                self.paced += 1;
                self.stats.tx_measure += 1;
                link
            }
            Phase::Drain | Phase::Done => return None,
        };
        self.count_tx(link);
        Some(link)
    }

    fn count_tx(&mut self, link: Link) {
        self.stats.tx_frames[link.index()] += 1;
        if self.phase == Phase::Measure {
            self.stats.tx_frames_measure[link.index()] += 1;
        }
    }

    /// The driver could not send `n` answers on `link`.
    pub fn note_tx_dropped(&mut self, link: Link, n: u64) {
        self.stats.tx_dropped[link.index()] += n;
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    fn flow_tuple(&self, flow: u32) -> (Ipv4Addr, u16, usize) {
        let clients = self.opts.clients;
        let cip = Ipv4Addr::from(u32::from(self.opts.client_base).wrapping_add(flow % clients));
        let cport = self.opts.port_base + (flow / clients) as u16;
        (cip, cport, flow as usize % self.services.len())
    }

    fn flow_of(&self, cip: Ipv4Addr, cport: u16) -> Option<u32> {
        let a = u32::from(cip).wrapping_sub(u32::from(self.opts.client_base));
        if a >= self.opts.clients || cport < self.opts.port_base {
            return None;
        }
        let f = u32::from(cport - self.opts.port_base) * self.opts.clients + a;
        (f < self.opts.flows).then_some(f)
    }

    /// Headers of a client → VIP frame.
    fn client_headers(
        &mut self,
        cip: Ipv4Addr,
        cport: u16,
        svc: usize,
        seq: u32,
        ack: u32,
        tcp_flags: u8,
    ) -> Headers {
        let ident = self.next_ident();
        let s = &self.services[svc];
        Headers {
            dst_mac: self.dut_mac[0].unwrap_or(PASSTHROUGH_MAC),
            src_mac: self.gw_mac,
            src: cip,
            dst: s.vip,
            ttl: TTL,
            ident,
            proto: self.opts.proto,
            sport: cport,
            dport: s.vport,
            seq,
            ack,
            flags: tcp_flags,
        }
    }

    fn generate_warmup(&mut self, now: u64, frame: &mut Frame<'_>) -> Option<Link> {
        let flows = self.opts.flows;
        let retry = self.hz / 5;
        // Bounded scan for a flow that needs its first (or a repeated) packet.
        for _ in 0..256 {
            let f = self.warm_cursor;
            self.warm_cursor = (self.warm_cursor + 1) % flows;
            let i = f as usize;
            let due = match self.flow_state[i] {
                FLOW_IDLE => {
                    if self.warm_inflight >= self.opts.window {
                        continue;
                    }
                    self.warm_inflight += 1;
                    true
                }
                FLOW_SENT => now.saturating_sub(self.flow_time[i]) > retry,
                _ => false,
            };
            if !due {
                continue;
            }
            self.flow_state[i] = FLOW_SENT;
            self.flow_time[i] = now;
            let (cip, cport, svc) = self.flow_tuple(f);
            if self.opts.proto == PROTO_TCP {
                let h = self.client_headers(cip, cport, svc, f << ISN_SHIFT, 0, flags::SYN);
                let len = pkt::frame_len(PROTO_TCP, 0);
                frame.set_len(len).ok()?;
                pkt::build(frame.data_mut(), &h, &[], 0);
            } else {
                let tag = Tag {
                    phase: Phase::Warmup as u8,
                    id: f,
                    tsc: None,
                };
                self.build_data(frame, cip, cport, svc, f, tag)?;
            }
            return Some(Link::Client);
        }
        None
    }

    fn build_data(
        &mut self,
        frame: &mut Frame<'_>,
        cip: Ipv4Addr,
        cport: u16,
        svc: usize,
        flow: u32,
        tag: Tag,
    ) -> Option<()> {
        let isn = flow << ISN_SHIFT;
        let srv = self.flow_srv_seq.get(flow as usize).copied().unwrap_or(0);
        let h = self.client_headers(
            cip,
            cport,
            svc,
            isn.wrapping_add(1),
            srv.wrapping_add(1),
            flags::ACK | flags::PSH,
        );
        let mut head = [0u8; pkt::TAG_TS_LEN];
        let n = tag.write(&mut head);
        let len = pkt::frame_len(self.opts.proto, self.payload_len);
        frame.set_len(len).ok()?;
        pkt::build(frame.data_mut(), &h, &head[..n], self.payload_len);
        Some(())
    }

    fn generate_data(&mut self, now: u64, frame: &mut Frame<'_>) -> Option<Link> {
        let f = self.next_flow;
        self.next_flow = (self.next_flow + 1) % self.opts.flows;
        let (cip, cport, svc) = self.flow_tuple(f);
        let tag = Tag {
            phase: Phase::Measure as u8,
            id: f,
            tsc: self.opts.timestamps.then_some(now),
        };
        self.build_data(frame, cip, cport, svc, f, tag)?;
        Some(Link::Client)
    }

    fn generate_syn(&mut self, now: u64, frame: &mut Frame<'_>) -> Option<Link> {
        let slot = self.free.pop()?;
        let k = self.next_tuple;
        self.next_tuple += 1;
        let clients = u64::from(self.opts.clients);
        let span = u64::from(u16::MAX - self.opts.port_base) + 1;
        let cip =
            Ipv4Addr::from(u32::from(self.opts.client_base).wrapping_add((k % clients) as u32));
        let cport = self.opts.port_base + ((k / clients) % span) as u16;
        let svc = (k % self.services.len() as u64) as usize;
        self.slots[slot as usize] = Slot {
            state: SlotState::SynSent,
            cip,
            cport,
            svc: svc as u16,
            start: now,
            last: now,
            measured: true,
        };
        self.stats.conns_started += 1;
        let h = self.client_headers(cip, cport, svc, slot << ISN_SHIFT, 0, flags::SYN);
        let len = pkt::frame_len(PROTO_TCP, 0);
        frame.set_len(len).ok()?;
        pkt::build(frame.data_mut(), &h, &[], 0);
        Some(Link::Client)
    }

    /// Handles a frame received on `link` at `now`: validates and counts it, and
    /// rewrites it in place into the answer when one is due.
    pub fn handle(&mut self, link: Link, now: u64, frame: &mut Frame<'_>) -> Action {
        self.stats.rx_frames[link.index()] += 1;
        let parsed = match pkt::parse(frame.data()) {
            Ok(p) => p,
            Err(_) => {
                self.stats.invalid.malformed += 1;
                return Action::Drop;
            }
        };
        match parsed {
            Parsed::Arp(a) => self.on_arp(link, frame, a),
            Parsed::Ip(p) => {
                if self.phase == Phase::Measure {
                    self.stats.rx_frames_measure[link.index()] += 1;
                }
                if !self.check_common(link, &p) {
                    return Action::Drop;
                }
                let action = match link {
                    Link::Server => self.on_server(now, frame, &p),
                    Link::Client => self.on_client(now, frame, &p),
                };
                if let Action::Send(l) = action {
                    self.count_tx(l);
                }
                action
            }
        }
    }

    fn on_arp(&mut self, link: Link, frame: &mut Frame<'_>, a: pkt::ArpInfo) -> Action {
        let dut_ip = match link {
            Link::Client => self.plan.client_dut_ip,
            Link::Server => self.plan.server_dut_ip,
        };
        if a.op == arp::OP_REPLY {
            if a.sender_ip == dut_ip && self.opts.dut == Dut::Director {
                self.dut_mac[link.index()] = Some(a.sender_mac);
            }
            return Action::Drop;
        }
        if a.op != arp::OP_REQUEST {
            return Action::Drop;
        }
        // The director asks for the gateway (client link) or a real server.
        let ours = match link {
            Link::Client => a.target_ip == self.plan.gateway,
            Link::Server => self.plan.rip(a.target_ip).is_some(),
        };
        if !ours {
            return Action::Drop;
        }
        if a.sender_ip == dut_ip && self.opts.dut == Dut::Director {
            self.dut_mac[link.index()].get_or_insert(a.sender_mac);
        }
        let me = (pkt::mac_for(a.target_ip), a.target_ip);
        pkt::build_arp(
            frame.data_mut(),
            arp::OP_REPLY,
            a.sender_mac,
            me,
            (a.sender_mac, a.sender_ip),
        );
        self.stats.arp_answered += 1;
        self.count_tx(link);
        Action::Send(link)
    }

    /// Checksums, TTL and MACs.
    fn check_common(&mut self, link: Link, p: &IpInfo) -> bool {
        let inv = &mut self.stats.invalid;
        if !p.ip_csum_ok {
            inv.ip_checksum += 1;
            return false;
        }
        if !p.l4_csum_ok {
            inv.l4_checksum += 1;
            return false;
        }
        if p.proto != self.opts.proto {
            inv.address += 1;
            return false;
        }
        let director = self.opts.dut == Dut::Director;
        let want_ttl = if director { TTL - 1 } else { TTL };
        if p.ttl != want_ttl {
            inv.ttl += 1;
            return false;
        }
        let macs_ok = match (link, director) {
            (Link::Server, true) => {
                p.dst_mac == pkt::mac_for(p.dst) && Some(p.src_mac) == self.dut_mac[1]
            }
            (Link::Server, false) => p.dst_mac == PASSTHROUGH_MAC && p.src_mac == self.gw_mac,
            (Link::Client, true) => p.dst_mac == self.gw_mac && Some(p.src_mac) == self.dut_mac[0],
            (Link::Client, false) => {
                p.dst_mac == PASSTHROUGH_MAC && p.src_mac == pkt::mac_for(p.src)
            }
        };
        if !macs_ok {
            inv.mac += 1;
            return false;
        }
        true
    }

    /// Whether a frame on the server link is addressed as the director should
    /// address it: from a local address to a real server of service `svc` (any
    /// service when `None`) on its port; for a pass-through, the original tuple.
    fn server_view_ok(&self, p: &IpInfo, svc: Option<usize>) -> bool {
        match self.opts.dut {
            Dut::Director => {
                let Some(rip) = self.plan.rip(p.dst) else {
                    return false;
                };
                if self.plan.lip(p.src).is_none() {
                    return false;
                }
                let port_ok = |s: usize| self.rs_ports[s][usize::from(rip)] == Some(p.dport);
                match svc {
                    Some(s) => port_ok(s),
                    None => (0..self.services.len()).any(port_ok),
                }
            }
            Dut::Passthrough => {
                self.services.iter().enumerate().any(|(i, s)| {
                    svc.is_none_or(|x| x == i) && s.vip == p.dst && s.vport == p.dport
                })
            }
        }
    }

    fn on_server(&mut self, now: u64, frame: &mut Frame<'_>, p: &IpInfo) -> Action {
        let is_tcp = p.proto == PROTO_TCP;
        let syn = is_tcp && p.flags & flags::SYN != 0;
        let fin = is_tcp && p.flags & flags::FIN != 0;
        let rst = is_tcp && p.flags & flags::RST != 0;
        if rst {
            self.stats.invalid.protocol += 1;
            return Action::Drop;
        }
        if p.payload_len > 0 {
            let payload = &frame.data()[p.payload_at..p.payload_at + p.payload_len];
            let Some(tag) = Tag::read(payload) else {
                self.stats.invalid.tag += 1;
                return Action::Drop;
            };
            if !self.on_server_data(now, p, tag) {
                return Action::Drop;
            }
            let echo = self.opts.mode == Mode::ConnectionRate || self.opts.replies;
            if !echo {
                return Action::Drop;
            }
            if tag.phase == Phase::Measure as u8 && self.opts.mode != Mode::ConnectionRate {
                self.stats.echoed_measure += 1;
            }
            let mut head = [0u8; pkt::TAG_TS_LEN];
            let n = tag.write(&mut head);
            let (seq, ack) = (p.ack, p.seq.wrapping_add(p.payload_len as u32));
            self.server_answer(
                frame,
                p,
                seq,
                ack,
                flags::ACK | flags::PSH,
                &head[..n],
                p.payload_len,
            );
            return Action::Send(Link::Server);
        }
        if !self.server_view_ok(p, None) {
            self.stats.invalid.address += 1;
            return Action::Drop;
        }
        if syn {
            // Stateless SYN-ACK: the server's ISN is derived from the client's.
            let isn = p.seq ^ 0x5a5a_0000;
            self.server_answer(
                frame,
                p,
                isn,
                p.seq.wrapping_add(1),
                flags::SYN | flags::ACK,
                &[],
                0,
            );
            return Action::Send(Link::Server);
        }
        if fin {
            let ack = p.seq.wrapping_add(1);
            self.server_answer(frame, p, p.ack, ack, flags::FIN | flags::ACK, &[], 0);
            return Action::Send(Link::Server);
        }
        // A pure ACK (handshake or final): nothing to answer.
        Action::Drop
    }

    /// Checks and counts a data frame on the server link; false if invalid.
    fn on_server_data(&mut self, now: u64, p: &IpInfo, tag: Tag) -> bool {
        let cps = self.opts.mode == Mode::ConnectionRate;
        let limit = if cps {
            self.opts.window
        } else {
            self.opts.flows
        };
        if tag.id >= limit || tag.phase > Phase::Drain as u8 {
            self.stats.invalid.tag += 1;
            return false;
        }
        let svc = if cps {
            None
        } else {
            Some(tag.id as usize % self.services.len())
        };
        if !self.server_view_ok(p, svc) {
            self.stats.invalid.address += 1;
            return false;
        }
        if !cps {
            let f = tag.id as usize;
            match self.opts.dut {
                Dut::Director => {
                    let lip = self.plan.lip(p.src).unwrap_or(0);
                    let rip = self.plan.rip(p.dst).unwrap_or(0);
                    let b = (u64::from(lip) << 32) | (u64::from(p.sport) << 16) | u64::from(rip);
                    if self.binding[f] == UNBOUND {
                        self.binding[f] = b;
                    } else if self.binding[f] != b {
                        self.stats.invalid.binding += 1;
                        return false;
                    }
                }
                Dut::Passthrough => {
                    let (cip, cport, _) = self.flow_tuple(tag.id);
                    if (p.src, p.sport) != (cip, cport) {
                        self.stats.invalid.address += 1;
                        return false;
                    }
                }
            }
            if tag.phase == Phase::Warmup as u8
                && self.opts.proto == PROTO_UDP
                && self.flow_state[f] != FLOW_UP
            {
                self.flow_state[f] = FLOW_UP;
                self.warm_inflight = self.warm_inflight.saturating_sub(1);
            }
        }
        if tag.phase == Phase::Measure as u8 && !cps {
            self.stats.rx_server_measure += 1;
            if let Some(tsc) = tag.tsc {
                self.stats.latency.record(now.saturating_sub(tsc));
            }
        }
        true
    }

    /// Rewrites `frame` into the server's answer to `p`.
    #[allow(clippy::too_many_arguments)]
    fn server_answer(
        &mut self,
        frame: &mut Frame<'_>,
        p: &IpInfo,
        seq: u32,
        ack: u32,
        tcp_flags: u8,
        head: &[u8],
        payload_len: usize,
    ) {
        let h = Headers {
            dst_mac: self.dut_mac[1].unwrap_or(PASSTHROUGH_MAC),
            src_mac: pkt::mac_for(p.dst),
            src: p.dst,
            dst: p.src,
            ttl: TTL,
            ident: self.next_ident(),
            proto: p.proto,
            sport: p.dport,
            dport: p.sport,
            seq,
            ack,
            flags: tcp_flags,
        };
        let len = pkt::frame_len(p.proto, payload_len);
        // The answer is never longer than the frame it replaces.
        if frame.set_len(len).is_ok() {
            pkt::build(frame.data_mut(), &h, head, payload_len);
        }
    }

    fn on_client(&mut self, now: u64, frame: &mut Frame<'_>, p: &IpInfo) -> Action {
        if self.opts.mode == Mode::ConnectionRate {
            return self.on_client_conn(now, frame, p);
        }
        // Throughput and latency: SYN-ACKs in warm-up, echoes of data.
        let Some(f) = self.flow_of(p.dst, p.dport) else {
            self.stats.invalid.address += 1;
            return Action::Drop;
        };
        let (_, _, svc) = self.flow_tuple(f);
        let s = &self.services[svc];
        if (p.src, p.sport) != (s.vip, s.vport) {
            self.stats.invalid.address += 1;
            return Action::Drop;
        }
        if p.payload_len > 0 {
            let payload = &frame.data()[p.payload_at..p.payload_at + p.payload_len];
            match Tag::read(payload) {
                Some(tag) if tag.id == f => {
                    if tag.phase == Phase::Measure as u8 {
                        self.stats.rx_client_measure += 1;
                    }
                }
                _ => self.stats.invalid.tag += 1,
            }
            return Action::Drop;
        }
        let i = f as usize;
        if p.flags & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK {
            if p.ack != (f << ISN_SHIFT).wrapping_add(1) {
                self.stats.invalid.protocol += 1;
                return Action::Drop;
            }
            if self.flow_state[i] != FLOW_UP {
                self.flow_state[i] = FLOW_UP;
                self.warm_inflight = self.warm_inflight.saturating_sub(1);
            }
            self.flow_srv_seq[i] = p.seq;
            let (cip, cport) = (p.dst, p.dport);
            let h = self.client_headers(cip, cport, svc, p.ack, p.seq.wrapping_add(1), flags::ACK);
            let len = pkt::frame_len(PROTO_TCP, 0);
            if frame.set_len(len).is_err() {
                return Action::Drop;
            }
            pkt::build(frame.data_mut(), &h, &[], 0);
            return Action::Send(Link::Client);
        }
        self.stats.invalid.protocol += 1;
        Action::Drop
    }

    fn on_client_conn(&mut self, now: u64, frame: &mut Frame<'_>, p: &IpInfo) -> Action {
        let id = p.ack.wrapping_sub(1) >> ISN_SHIFT;
        let Some(slot) = self.slots.get(id as usize).copied() else {
            self.stats.invalid.protocol += 1;
            return Action::Drop;
        };
        if slot.state == SlotState::Idle || (slot.cip, slot.cport) != (p.dst, p.dport) {
            // A late frame of a connection this slot no longer runs.
            if self.flow_tuple_in_range(p.dst) {
                self.stats.stale += 1;
            } else {
                self.stats.invalid.address += 1;
            }
            return Action::Drop;
        }
        let s = &self.services[usize::from(slot.svc)];
        if (p.src, p.sport) != (s.vip, s.vport) {
            self.stats.invalid.address += 1;
            return Action::Drop;
        }
        let isn = id << ISN_SHIFT;
        let req = self.payload_len as u32;
        let svc = usize::from(slot.svc);
        let (cip, cport) = (slot.cip, slot.cport);
        let fl = p.flags;
        let (next, seq, ack, out_flags, with_req) = match slot.state {
            SlotState::SynSent
                if fl & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK
                    && p.ack == isn.wrapping_add(1) =>
            {
                (
                    SlotState::ReqSent,
                    isn.wrapping_add(1),
                    p.seq.wrapping_add(1),
                    flags::ACK | flags::PSH,
                    true,
                )
            }
            SlotState::ReqSent
                if fl & (flags::SYN | flags::FIN | flags::RST) == 0
                    && p.payload_len == req as usize
                    && p.ack == isn.wrapping_add(1 + req) =>
            {
                let payload = &frame.data()[p.payload_at..p.payload_at + p.payload_len];
                if Tag::read(payload).is_none_or(|t| t.id != id) {
                    self.stats.invalid.tag += 1;
                    return Action::Drop;
                }
                (
                    SlotState::FinSent,
                    isn.wrapping_add(1 + req),
                    p.seq.wrapping_add(req),
                    flags::FIN | flags::ACK,
                    false,
                )
            }
            SlotState::FinSent
                if fl & (flags::FIN | flags::ACK) == flags::FIN | flags::ACK
                    && p.ack == isn.wrapping_add(2 + req) =>
            {
                (
                    SlotState::Idle,
                    isn.wrapping_add(2 + req),
                    p.seq.wrapping_add(1),
                    flags::ACK,
                    false,
                )
            }
            _ => {
                self.stats.invalid.protocol += 1;
                return Action::Drop;
            }
        };
        let h = self.client_headers(cip, cport, svc, seq, ack, out_flags);
        let payload = if with_req { self.payload_len } else { 0 };
        if frame.set_len(pkt::frame_len(PROTO_TCP, payload)).is_err() {
            return Action::Drop;
        }
        let mut head = [0u8; pkt::TAG_LEN];
        let n = if with_req {
            Tag {
                phase: self.phase.min(Phase::Drain) as u8,
                id,
                tsc: None,
            }
            .write(&mut head)
        } else {
            0
        };
        pkt::build(frame.data_mut(), &h, &head[..n], payload);
        let s = &mut self.slots[id as usize];
        s.state = next;
        s.last = now;
        if next == SlotState::Idle {
            if s.measured {
                self.stats.conns_completed += 1;
                if self.phase == Phase::Measure {
                    self.stats.conns_completed_in_measure += 1;
                }
                self.stats.conn_time.record(now.saturating_sub(s.start));
            }
            self.free.push(id);
        }
        Action::Send(Link::Client)
    }

    fn flow_tuple_in_range(&self, cip: Ipv4Addr) -> bool {
        u32::from(cip).wrapping_sub(u32::from(self.opts.client_base)) < self.opts.clients
    }
}
