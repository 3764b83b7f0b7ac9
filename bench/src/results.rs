//! Results of lb-pktgen runs: the JSON they are saved as, the human table, and
//! the comparison of a run against the same run with testpmd (the harness
//! ceiling).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::traffic::{Engine, Invalid, Mode};

/// Latency percentiles in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub samples: u64,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Connection-rate figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cps {
    /// Connections started in the measure phase.
    pub started: u64,
    /// Connections completed.
    pub completed: u64,
    /// Connections that timed out.
    pub failed: u64,
    /// Completed connections per second of the measure phase.
    pub per_second: f64,
    /// SYN to final ACK, median, microseconds.
    pub conn_time_p50_us: f64,
    /// SYN to final ACK, 99th percentile, microseconds.
    pub conn_time_p99_us: f64,
    /// Frames through the device under test per second (both directions).
    pub frames_per_second: f64,
}

/// Warm-up outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    /// Flows established.
    pub established: u64,
    /// Flows that were not.
    pub failed: u64,
    /// Seconds it took.
    pub seconds: f64,
}

/// One lb-pktgen run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Free-form label (`udp-64`, …).
    pub label: String,
    /// Device under test: `lb-director` or `testpmd`.
    pub dut: String,
    /// `throughput`, `latency` or `cps`.
    pub mode: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Frame size including FCS.
    pub frame_size: usize,
    /// Flows (throughput, latency) or connection window (cps).
    pub flows: u32,
    /// Servers echo data back.
    pub replies: bool,
    /// Target rate, packets or connections per second (0 = as fast as possible).
    pub target_rate: f64,
    /// Latency runs: what the flat-out probe forwarded (the target is a fraction of it).
    #[serde(default)]
    pub probe_max_pps: Option<f64>,
    /// Measure phase, seconds.
    pub seconds: f64,
    /// Data frames sent in the measure phase.
    pub tx: u64,
    /// Data frames received (server side, plus echoes on the client side).
    pub rx: u64,
    /// Data frames (and echoes) that never came back.
    pub lost: u64,
    /// `lost / (tx + echoes sent)`.
    pub loss_ratio: f64,
    /// Offered data frames per second.
    pub tx_pps: f64,
    /// Received data frames per second: what the device forwarded.
    pub rx_pps: f64,
    /// Frames per second the device forwarded on each link, everything counted.
    pub link_rx_pps: [f64; 2],
    /// Latency (latency runs).
    pub latency: Option<Latency>,
    /// Connection rate (cps runs).
    pub cps: Option<Cps>,
    /// Warm-up.
    pub warmup: Warmup,
    /// Invalid frames by reason.
    pub invalid: Invalid,
    /// Sum of `invalid`.
    pub invalid_total: u64,
    /// Late frames of recycled connection slots.
    pub stale: u64,
    /// Answers lb-pktgen could not send (link full).
    pub tx_dropped: u64,
    /// Packets the pacer could not send on time.
    pub pace_shortfall: u64,
    /// ARP requests lb-pktgen answered.
    pub arp_answered: u64,
    /// `(seconds, offered pps, received pps, connections/s)` per sample interval.
    pub timeline: Vec<(f64, f64, f64, f64)>,
    /// Latency CDF `(ns, fraction)`, thinned (latency runs).
    pub latency_cdf: Vec<(f64, f64)>,
    /// The director's status after the run (`lb-ctl status --json`), if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dut_status: Option<serde_json::Value>,
    /// The director's drops during the run, by reason (non-zero only).
    #[serde(default)]
    pub dut_drops: Vec<(String, u64)>,
    /// The host's 1-minute load average before and after the run (on a shared
    /// machine, anything above the two busy-polling processes is contention).
    #[serde(default)]
    pub loadavg: Option<(f64, f64)>,
    /// Why the run stopped early.
    pub error: Option<String>,
}

fn ns(ticks: u64, hz: u64) -> f64 {
    ticks as f64 * 1e9 / hz as f64
}

impl RunResult {
    /// The result of a finished engine.
    pub fn from_engine(engine: &Engine, label: &str, dut: &str) -> RunResult {
        let o = engine.options();
        let s = &engine.stats;
        let hz = engine.hz();
        let secs = s.measure_secs.max(1e-9);
        let (rx, expected) = (
            s.rx_server_measure + s.rx_client_measure,
            s.tx_measure + s.echoed_measure,
        );
        let cps_mode = o.mode == Mode::ConnectionRate;
        let lost = if cps_mode {
            0
        } else {
            expected.saturating_sub(rx)
        };
        let latency = (o.mode == Mode::Latency).then(|| {
            let h = &s.latency;
            Latency {
                samples: h.count(),
                min: ns(h.min(), hz),
                p50: ns(h.quantile(0.5), hz),
                p90: ns(h.quantile(0.9), hz),
                p99: ns(h.quantile(0.99), hz),
                p999: ns(h.quantile(0.999), hz),
                max: ns(h.max(), hz),
                mean: h.mean() * 1e9 / hz as f64,
            }
        });
        let cps = cps_mode.then(|| Cps {
            started: s.conns_started,
            completed: s.conns_completed,
            failed: s.conns_failed,
            per_second: s.conns_completed_in_measure as f64 / secs,
            conn_time_p50_us: ns(s.conn_time.quantile(0.5), hz) / 1e3,
            conn_time_p99_us: ns(s.conn_time.quantile(0.99), hz) / 1e3,
            frames_per_second: (s.rx_frames_measure[0] + s.rx_frames_measure[1]) as f64 / secs,
        });
        let mut timeline = Vec::new();
        for w in s.timeline.windows(2) {
            let (t0, tx0, rx0, c0) = w[0];
            let (t1, tx1, rx1, c1) = w[1];
            let dt = (t1 - t0).max(1e-9);
            timeline.push((
                t1,
                (tx1 - tx0) as f64 / dt,
                (rx1 - rx0) as f64 / dt,
                (c1 - c0) as f64 / dt,
            ));
        }
        let latency_cdf = if o.mode == Mode::Latency {
            let cdf = s.latency.cdf();
            let step = (cdf.len() / 200).max(1);
            cdf.iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i == cdf.len() - 1)
                .map(|(_, &(v, f))| (ns(v, hz), f))
                .collect()
        } else {
            Vec::new()
        };
        RunResult {
            label: label.to_owned(),
            dut: dut.to_owned(),
            mode: o.mode.name().to_owned(),
            proto: if o.proto == 6 { "tcp" } else { "udp" }.to_owned(),
            frame_size: o.size,
            flows: if cps_mode { o.window } else { o.flows },
            replies: o.replies,
            target_rate: o.rate,
            probe_max_pps: None,
            seconds: s.measure_secs,
            tx: s.tx_measure,
            rx,
            lost,
            loss_ratio: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            tx_pps: s.tx_measure as f64 / secs,
            rx_pps: rx as f64 / secs,
            link_rx_pps: [
                s.rx_frames_measure[0] as f64 / secs,
                s.rx_frames_measure[1] as f64 / secs,
            ],
            latency,
            cps,
            warmup: Warmup {
                established: s.warm_established,
                failed: s.warm_failed,
                seconds: s.warmup_secs,
            },
            invalid: s.invalid,
            invalid_total: s.invalid.total(),
            stale: s.stale,
            tx_dropped: s.tx_dropped[0] + s.tx_dropped[1],
            pace_shortfall: s.pace_shortfall,
            arp_answered: s.arp_answered,
            timeline,
            latency_cdf,
            dut_status: None,
            dut_drops: Vec::new(),
            loadavg: None,
            error: s.error.clone(),
        }
    }

    /// The headline figure: forwarded Mpps, connections/s or p99 latency (µs).
    pub fn headline(&self) -> (f64, &'static str) {
        match self.mode.as_str() {
            "cps" => (self.cps.as_ref().map_or(0.0, |c| c.per_second), "conn/s"),
            "latency" => (self.latency.as_ref().map_or(0.0, |l| l.p99 / 1e3), "µs p99"),
            _ => (self.rx_pps / 1e6, "Mpps"),
        }
    }

    /// A human-readable table of the run.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} {} {} {}B, {} {} ({}), dut {}, {:.2} s",
            self.label,
            self.mode,
            self.proto,
            self.frame_size,
            self.flows,
            if self.mode == "cps" {
                "in flight"
            } else {
                "flows"
            },
            if self.target_rate > 0.0 {
                format!("target {:.0}/s", self.target_rate)
            } else {
                "flat out".to_owned()
            },
            self.dut,
            self.seconds
        );
        let row = |t: &mut String, k: &str, v: String| {
            let _ = writeln!(t, "  {k:<24} {v}");
        };
        if self.mode != "cps" {
            row(
                &mut t,
                "offered",
                format!("{:.3} Mpps ({} frames)", self.tx_pps / 1e6, self.tx),
            );
            row(
                &mut t,
                "forwarded",
                format!(
                    "{:.3} Mpps ({} frames{})",
                    self.rx_pps / 1e6,
                    self.rx,
                    if self.replies {
                        ", both directions"
                    } else {
                        ""
                    }
                ),
            );
            row(
                &mut t,
                "lost",
                format!("{} ({:.4} %)", self.lost, self.loss_ratio * 100.0),
            );
            row(
                &mut t,
                "warm-up",
                format!(
                    "{} flows up, {} failed, {:.2} s",
                    self.warmup.established, self.warmup.failed, self.warmup.seconds
                ),
            );
        }
        if let Some(l) = &self.latency {
            row(
                &mut t,
                "latency (one way)",
                format!(
                    "p50 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.2} µs  ({} samples)",
                    l.p50 / 1e3,
                    l.p99 / 1e3,
                    l.p999 / 1e3,
                    l.max / 1e3,
                    l.samples
                ),
            );
        }
        if let Some(c) = &self.cps {
            row(
                &mut t,
                "connections",
                format!(
                    "{:.0}/s  ({} started, {} completed, {} failed)",
                    c.per_second, c.started, c.completed, c.failed
                ),
            );
            row(
                &mut t,
                "connection time",
                format!(
                    "p50 {:.1} µs  p99 {:.1} µs",
                    c.conn_time_p50_us, c.conn_time_p99_us
                ),
            );
            row(
                &mut t,
                "frames through dut",
                format!("{:.3} Mpps", c.frames_per_second / 1e6),
            );
        }
        row(
            &mut t,
            "invalid",
            format!("{} {:?}", self.invalid_total, self.invalid),
        );
        if self.stale + self.tx_dropped + self.pace_shortfall > 0 {
            row(
                &mut t,
                "other",
                format!(
                    "stale {}, answers not sent {}, pacer shortfall {}",
                    self.stale, self.tx_dropped, self.pace_shortfall
                ),
            );
        }
        if !self.dut_drops.is_empty() {
            let drops: Vec<String> = self
                .dut_drops
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            row(&mut t, "director drops", drops.join(", "));
        }
        if let Some((a, b)) = self.loadavg {
            row(&mut t, "host load average", format!("{a:.2} → {b:.2}"));
        }
        if let Some(e) = &self.error {
            row(&mut t, "error", e.clone());
        }
        t
    }
}

/// Our figure against the harness ceiling (the same run through testpmd).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Label of the run.
    pub label: String,
    /// What is compared.
    pub metric: String,
    /// lb-director's figure.
    pub ours: f64,
    /// testpmd's figure on the same harness.
    pub ceiling: f64,
    /// `ours / ceiling` (for latency: ceiling / ours, so higher is better).
    pub ratio: f64,
    /// Latency runs: our p99 minus the ceiling's, µs (the director's added latency).
    pub added_us: Option<f64>,
    /// Latency runs: our median minus the ceiling's, µs.
    pub added_p50_us: Option<f64>,
}

impl Comparison {
    /// Compares two runs of the same kind.
    pub fn of(ours: &RunResult, ceiling: &RunResult) -> Comparison {
        let (a, unit) = ours.headline();
        let (b, _) = ceiling.headline();
        let latency = ours.mode == "latency";
        let ratio = if latency {
            if a > 0.0 {
                b / a
            } else {
                0.0
            }
        } else if b > 0.0 {
            a / b
        } else {
            0.0
        };
        Comparison {
            label: ours.label.clone(),
            metric: unit.to_owned(),
            ours: a,
            ceiling: b,
            ratio,
            added_us: latency.then_some(a - b),
            added_p50_us: match (&ours.latency, &ceiling.latency) {
                (Some(x), Some(y)) => Some((x.p50 - y.p50) / 1e3),
                _ => None,
            },
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:<22} lb-director {:>12.3} {:<7} testpmd {:>12.3}  ratio {:.2}",
            self.label, self.ours, self.metric, self.ceiling, self.ratio
        );
        if let Some(added) = self.added_us {
            let _ = write!(s, "  added p99 {added:.2} µs");
        }
        if let Some(added) = self.added_p50_us {
            let _ = write!(s, ", p50 {added:.2} µs");
        }
        s
    }
}
