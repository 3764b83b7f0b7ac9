//! Statistics on the control thread: what `lb-ctl -L --stats/--rate` shows and the
//! Prometheus `/metrics` endpoint.
//!
//! * [`StatsBook`] samples the service and real-server counters every two seconds
//!   and keeps IPVS-style rate estimates (an exponentially weighted moving average
//!   with weight 1/4 over 2-second samples), plus the baselines that make `-Z`
//!   work without ever writing a counter a worker owns: a zeroed counter is listed
//!   as its value minus the value it had when zeroed.
//! * [`render`] writes the Prometheus text exposition (format 0.0.4) of the raw,
//!   monotonic counters.
//! * [`MetricsServer`] (in [`http`]) is a minimal HTTP/1.1 responder for
//!   `GET /metrics` on the control thread's tokio runtime.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lb_config::api::{Rates, ServiceKey, ServiceView, StatusView};
use lb_core::service::TrafficTotals;
use lb_core::snapshot::Snapshot;

pub mod http;

pub use http::MetricsServer;

/// How often counters are sampled for rates (IPVS's estimator period).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Rate estimates and zero baselines of every service and real server, keyed by
/// the object's serial (unique over the director's life, kept across edits).
#[derive(Debug, Default)]
pub struct StatsBook {
    entries: HashMap<u32, Entry>,
    last_sample: Option<Instant>,
}

#[derive(Debug, Default)]
struct Entry {
    baseline: TrafficTotals,
    last: TrafficTotals,
    /// cps, in_pps, out_pps, in_bps, out_bps.
    rates: [f64; 5],
}

fn fields(t: &TrafficTotals) -> [u64; 5] {
    [
        t.conns,
        t.in_packets,
        t.out_packets,
        t.in_bytes,
        t.out_bytes,
    ]
}

impl StatsBook {
    /// Samples every counter of `snapshot`; forgets objects that are gone.
    pub fn sample(&mut self, snapshot: &Snapshot, now: Instant) {
        let elapsed = self
            .last_sample
            .map(|t| now.duration_since(t).as_secs_f64())
            .filter(|s| *s > 0.0);
        self.last_sample = Some(now);
        let mut seen = Vec::new();
        for s in snapshot.services() {
            seen.push((s.serial, s.counters.totals()));
            for d in &s.real_servers {
                seen.push((d.serial, d.counters.totals()));
            }
        }
        let mut next = HashMap::with_capacity(seen.len());
        for (serial, totals) in seen {
            let entry = match self.entries.remove(&serial) {
                Some(mut e) => {
                    if let Some(secs) = elapsed {
                        let now = fields(&totals);
                        let last = fields(&e.last);
                        for ((rate, n), l) in e.rates.iter_mut().zip(now).zip(last) {
                            let instant = n.saturating_sub(l) as f64 / secs;
                            *rate += (instant - *rate) / 4.0;
                        }
                    }
                    e.last = totals;
                    e
                }
                // A new object: its counters started at zero, its rates are
                // estimated from the next sample on.
                None => Entry {
                    last: totals,
                    ..Entry::default()
                },
            };
            next.insert(serial, entry);
        }
        self.entries = next;
    }

    /// Zeroes what is listed for `service` (and its real servers), or for every
    /// service: baselines become the current counters, rates start over.
    pub fn zero(&mut self, snapshot: &Snapshot, service: Option<ServiceKey>) {
        for s in snapshot.services() {
            if service
                .is_some_and(|k| (k.protocol, k.address, k.port) != (s.protocol, s.vip, s.vport))
            {
                continue;
            }
            let objects = std::iter::once((s.serial, s.counters.totals())).chain(
                s.real_servers
                    .iter()
                    .map(|d| (d.serial, d.counters.totals())),
            );
            for (serial, totals) in objects {
                let e = self.entries.entry(serial).or_default();
                e.baseline = totals;
                e.last = totals;
                e.rates = [0.0; 5];
            }
        }
    }

    /// `totals` of object `serial` as listed: minus its baseline.
    pub fn shown(&self, serial: u32, totals: TrafficTotals) -> TrafficTotals {
        let Some(e) = self.entries.get(&serial) else {
            return totals;
        };
        let b = &e.baseline;
        TrafficTotals {
            conns: totals.conns.saturating_sub(b.conns),
            in_packets: totals.in_packets.saturating_sub(b.in_packets),
            out_packets: totals.out_packets.saturating_sub(b.out_packets),
            in_bytes: totals.in_bytes.saturating_sub(b.in_bytes),
            out_bytes: totals.out_bytes.saturating_sub(b.out_bytes),
        }
    }

    /// The rate estimates of object `serial`.
    pub fn rates(&self, serial: u32) -> Rates {
        let Some(e) = self.entries.get(&serial) else {
            return Rates::default();
        };
        let r = e.rates.map(|x| x.max(0.0).round() as u64);
        Rates {
            cps: r[0],
            in_pps: r[1],
            out_pps: r[2],
            in_bps: r[3],
            out_bps: r[4],
        }
    }
}

// ------------------------------------------------------------------ exposition

/// One metric family: its samples must be written together.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The `service` label: `tcp/10.0.1.100:80`.
pub fn service_label(s: &ServiceView) -> String {
    let proto = match s.protocol {
        lb_core::service::Protocol::Tcp => "tcp",
        lb_core::service::Protocol::Udp => "udp",
    };
    format!("{proto}/{}", SocketAddr::new(s.address, s.port))
}

/// The Prometheus text exposition of `status` and `services` (raw counters).
pub fn render(status: &StatusView, services: &[ServiceView]) -> String {
    let mut out = String::with_capacity(8192);
    Family::new(
        &mut out,
        "lb_config_generation",
        "gauge",
        "Generation of the configuration in force.",
    )
    .sample("lb_config_generation", &[], status.generation);

    type Traffic = fn(&TrafficTotals) -> u64;
    let traffic: [(&str, &str, Traffic); 5] = [
        ("connections_total", "Connections scheduled", |t| t.conns),
        (
            "in_packets_total",
            "Packets client to server (IP packets)",
            |t| t.in_packets,
        ),
        (
            "out_packets_total",
            "Packets server to client (IP packets)",
            |t| t.out_packets,
        ),
        (
            "in_bytes_total",
            "Bytes client to server (IP total length)",
            |t| t.in_bytes,
        ),
        (
            "out_bytes_total",
            "Bytes server to client (IP total length)",
            |t| t.out_bytes,
        ),
    ];
    let labels: Vec<String> = services.iter().map(service_label).collect();
    for (suffix, help, get) in traffic {
        let name = format!("lb_service_{suffix}");
        let mut f = Family::new(&mut out, &name, "counter", &format!("{help}, per service."));
        for (s, label) in services.iter().zip(&labels) {
            f.sample(&name, &[("service", label)], get(&s.stats));
        }
    }
    for (suffix, help, get) in traffic {
        let name = format!("lb_real_server_{suffix}");
        let mut f = Family::new(
            &mut out,
            &name,
            "counter",
            &format!("{help}, per real server."),
        );
        for (s, label) in services.iter().zip(&labels) {
            for d in &s.real_servers {
                let rs = SocketAddr::new(d.address, d.port).to_string();
                f.sample(
                    &name,
                    &[("service", label), ("real_server", &rs)],
                    get(&d.stats),
                );
            }
        }
    }
    type RsGauge = fn(&lb_config::api::RealServerView) -> u64;
    let rs_gauges: [(&str, &str, RsGauge); 3] = [
        (
            "lb_real_server_active_connections",
            "Connections in an active state (ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK).",
            |d| d.active,
        ),
        (
            "lb_real_server_inactive_connections",
            "Connections in any other state.",
            |d| d.inactive,
        ),
        (
            "lb_real_server_weight",
            "Scheduling weight (0 = quiescent).",
            |d| u64::from(d.weight),
        ),
    ];
    for (name, help, get) in rs_gauges {
        let mut f = Family::new(&mut out, name, "gauge", help);
        for (s, label) in services.iter().zip(&labels) {
            for d in &s.real_servers {
                let rs = SocketAddr::new(d.address, d.port).to_string();
                f.sample(name, &[("service", label), ("real_server", &rs)], get(d));
            }
        }
    }

    type WorkerCounter = fn(&lb_config::api::WorkerView) -> u64;
    let worker_counters: [(&str, &str, &str, WorkerCounter); 13] = [
        (
            "lb_worker_rx_packets_total",
            "counter",
            "Frames received.",
            |w| w.rx_packets,
        ),
        (
            "lb_worker_rx_bytes_total",
            "counter",
            "Bytes received.",
            |w| w.rx_bytes,
        ),
        (
            "lb_worker_tx_packets_total",
            "counter",
            "Frames sent.",
            |w| w.tx_packets,
        ),
        ("lb_worker_tx_bytes_total", "counter", "Bytes sent.", |w| {
            w.tx_bytes
        }),
        (
            "lb_worker_arp_replies_total",
            "counter",
            "ARP replies sent.",
            |w| w.arp_replies,
        ),
        (
            "lb_worker_arp_requests_total",
            "counter",
            "ARP requests sent.",
            |w| w.arp_requests,
        ),
        (
            "lb_worker_icmp_echo_replies_total",
            "counter",
            "ICMP echo replies sent.",
            |w| w.icmp_echo_replies,
        ),
        (
            "lb_worker_connections_created_total",
            "counter",
            "Connections created.",
            |w| w.conns_created,
        ),
        (
            "lb_worker_connections_expired_total",
            "counter",
            "Connections expired.",
            |w| w.conns_expired,
        ),
        (
            "lb_worker_redirects_out_total",
            "counter",
            "Frames handed to the worker owning their connection.",
            |w| w.redirects_out,
        ),
        (
            "lb_worker_redirects_in_total",
            "counter",
            "Frames other workers handed to this one.",
            |w| w.redirects_in,
        ),
        (
            "lb_worker_connections",
            "gauge",
            "Connections in the worker's table.",
            |w| w.conns_live,
        ),
        (
            "lb_worker_connection_capacity",
            "gauge",
            "Capacity of the worker's connection table.",
            |w| w.conn_capacity,
        ),
    ];
    for (name, kind, help, get) in worker_counters {
        let mut f = Family::new(&mut out, name, kind, help);
        for w in &status.workers {
            f.sample(name, &[("worker", &w.id.to_string())], get(w));
        }
    }
    {
        let name = "lb_worker_drops_total";
        let mut f = Family::new(&mut out, name, "counter", "Frames dropped, by reason.");
        for w in &status.workers {
            let id = w.id.to_string();
            for (reason, n) in &w.drops {
                f.sample(name, &[("worker", &id), ("reason", reason)], *n);
            }
        }
    }

    type WorkerEvents = fn(&lb_config::api::WorkerView) -> &[(String, u64)];
    let worker_events: [(&str, &str, WorkerEvents); 2] = [
        (
            "lb_worker_mode_events_total",
            "What the forwarding modes did: packets sent per mode, client-address \
             carriers, ICMP, fragments.",
            |w| &w.modes,
        ),
        (
            "lb_worker_defence_events_total",
            "What the defences against hostile traffic did: ICMP time exceeded, \
             half-open connections shortened, evicted and reset.",
            |w| &w.defence,
        ),
    ];
    for (name, help, events) in worker_events {
        let mut f = Family::new(&mut out, name, "counter", help);
        for w in &status.workers {
            let id = w.id.to_string();
            for (event, n) in events(w) {
                f.sample(name, &[("worker", &id), ("event", event)], *n);
            }
        }
    }

    type PortCounter = fn(&lb_config::api::PortView) -> u64;
    let port_counters: [(&str, &str, PortCounter); 8] = [
        (
            "lb_port_rx_packets_total",
            "Packets received by the device.",
            |p| p.rx_packets,
        ),
        (
            "lb_port_tx_packets_total",
            "Packets sent by the device.",
            |p| p.tx_packets,
        ),
        (
            "lb_port_rx_bytes_total",
            "Bytes received by the device.",
            |p| p.rx_bytes,
        ),
        ("lb_port_tx_bytes_total", "Bytes sent by the device.", |p| {
            p.tx_bytes
        }),
        (
            "lb_port_rx_missed_total",
            "Packets dropped by the device for lack of RX descriptors.",
            |p| p.rx_missed,
        ),
        ("lb_port_rx_errors_total", "Receive errors.", |p| {
            p.rx_errors
        }),
        ("lb_port_tx_errors_total", "Transmit errors.", |p| {
            p.tx_errors
        }),
        (
            "lb_port_rx_nombuf_total",
            "RX mbuf allocation failures.",
            |p| p.rx_nombuf,
        ),
    ];
    for (name, help, get) in port_counters {
        let mut f = Family::new(&mut out, name, "counter", help);
        for p in &status.ports {
            f.sample(name, &[("port", &p.name), ("device", &p.device)], get(p));
        }
    }
    {
        let name = "lb_port_xstats_total";
        let mut f = Family::new(
            &mut out,
            name,
            "counter",
            "The driver's extended statistics (rte_eth_xstats), by name.",
        );
        for p in &status.ports {
            for (xstat, n) in &p.xstats {
                f.sample(name, &[("port", &p.name), ("xstat", xstat)], *n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_config::api::{PortView, RealServerView, WorkerView};
    use lb_config::Config;
    use lb_core::service::{ForwardMode, Protocol};

    fn services() -> Vec<ServiceView> {
        vec![ServiceView {
            protocol: Protocol::Udp,
            address: "10.0.1.100".parse().unwrap(),
            port: 9000,
            scheduler: "rr".into(),
            scheduler_flags: vec![],
            persistence: None,
            persistence_prefix: 32,
            stats: TrafficTotals {
                conns: 1,
                in_packets: 10,
                out_packets: 9,
                in_bytes: 1280,
                out_bytes: 999,
            },
            rates: Rates::default(),
            real_servers: vec![RealServerView {
                address: "10.0.2.11".parse().unwrap(),
                port: 9000,
                forward: ForwardMode::FullNat,
                weight: 2,
                upper_threshold: 0,
                lower_threshold: 0,
                active: 0,
                inactive: 1,
                stats: TrafficTotals {
                    conns: 1,
                    in_packets: 10,
                    out_packets: 9,
                    in_bytes: 1280,
                    out_bytes: 999,
                },
                rates: Rates::default(),
            }],
        }]
    }

    fn status() -> StatusView {
        StatusView {
            generation: 7,
            workers: vec![WorkerView {
                id: 0,
                rx_packets: 5,
                rx_bytes: 500,
                tx_packets: 4,
                tx_bytes: 400,
                arp_replies: 1,
                arp_requests: 2,
                icmp_echo_replies: 0,
                conns_created: 3,
                conns_expired: 1,
                conns_live: 2,
                redirects_out: 0,
                redirects_in: 0,
                conn_capacity: 65536,
                drops: vec![("no_service".into(), 6), ("malformed".into(), 0)],
                modes: vec![("fullnat_to_server".into(), 4)],
                defence: vec![("halfopen_evicted".into(), 9)],
            }],
            ports: vec![PortView {
                name: "client".into(),
                device: "net_af_packet0".into(),
                mac: "02:00:00:00:00:01".into(),
                rx_packets: 11,
                tx_packets: 12,
                rx_bytes: 13,
                tx_bytes: 14,
                rx_missed: 0,
                rx_errors: 0,
                tx_errors: 0,
                rx_nombuf: 0,
                xstats: vec![("rx_good_packets".into(), 11)],
            }],
        }
    }

    #[test]
    fn exposition_has_stable_names_and_labels() {
        let text = render(&status(), &services());
        for line in [
            "lb_config_generation 7",
            "lb_worker_defence_events_total{worker=\"0\",event=\"halfopen_evicted\"} 9",
            "lb_service_in_packets_total{service=\"udp/10.0.1.100:9000\"} 10",
            "lb_service_in_bytes_total{service=\"udp/10.0.1.100:9000\"} 1280",
            "lb_service_out_bytes_total{service=\"udp/10.0.1.100:9000\"} 999",
            "lb_real_server_connections_total{service=\"udp/10.0.1.100:9000\",real_server=\"10.0.2.11:9000\"} 1",
            "lb_real_server_weight{service=\"udp/10.0.1.100:9000\",real_server=\"10.0.2.11:9000\"} 2",
            "lb_real_server_inactive_connections{service=\"udp/10.0.1.100:9000\",real_server=\"10.0.2.11:9000\"} 1",
            "lb_worker_rx_packets_total{worker=\"0\"} 5",
            "lb_worker_connections{worker=\"0\"} 2",
            "lb_worker_connection_capacity{worker=\"0\"} 65536",
            "lb_worker_drops_total{worker=\"0\",reason=\"no_service\"} 6",
            "lb_worker_drops_total{worker=\"0\",reason=\"malformed\"} 0",
            "lb_worker_mode_events_total{worker=\"0\",event=\"fullnat_to_server\"} 4",
            "lb_port_rx_packets_total{port=\"client\",device=\"net_af_packet0\"} 11",
            "lb_port_xstats_total{port=\"client\",xstat=\"rx_good_packets\"} 11",
            "# TYPE lb_service_connections_total counter",
            "# TYPE lb_worker_connections gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to the family declared just before it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_owned();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, family, "{line}");
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    const CONFIG: &str = r#"
ports:
  - { name: client, device: d0, address: 10.0.1.1/24 }
services:
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    forward: nat
    real_servers:
      - { address: 10.0.2.11 }
"#;

    #[test]
    fn zero_and_rates() {
        use lb_core::ids::WorkerId;
        let config = Config::from_yaml(CONFIG).unwrap();
        let snapshot = lb_config::build_snapshot(&config, None, 1).unwrap();
        let svc = snapshot.services().next().unwrap().clone();
        let c = svc.counters.worker(WorkerId(0));
        let mut book = StatsBook::default();
        let t0 = Instant::now();
        book.sample(&snapshot, t0);
        c.in_packets.add(1000);
        c.in_bytes.add(100_000);
        c.conns.add(10);
        book.sample(&snapshot, t0 + SAMPLE_INTERVAL);
        // 500 packets/s for 2 s, weighted 1/4 into a rate that was 0.
        let r = book.rates(svc.serial);
        assert_eq!((r.in_pps, r.in_bps, r.cps), (125, 12_500, 1));
        assert_eq!(
            book.shown(svc.serial, svc.counters.totals()).in_packets,
            1000
        );
        book.zero(&snapshot, None);
        assert_eq!(
            book.shown(svc.serial, svc.counters.totals()),
            TrafficTotals::default()
        );
        assert_eq!(book.rates(svc.serial), Rates::default());
        c.in_packets.add(7);
        assert_eq!(book.shown(svc.serial, svc.counters.totals()).in_packets, 7);
        // The raw counter is untouched.
        assert_eq!(svc.counters.totals().in_packets, 1007);
        // Zeroing another service leaves this one alone.
        book.zero(
            &snapshot,
            Some(ServiceKey {
                protocol: Protocol::Udp,
                address: svc.vip,
                port: 80,
            }),
        );
        assert_eq!(book.shown(svc.serial, svc.counters.totals()).in_packets, 7);
    }
}
