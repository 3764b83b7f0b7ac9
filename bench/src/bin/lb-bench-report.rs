//! `lb-bench-report`: turns saved benchmark results into the comparison table,
//! Markdown tables and SVG charts of `docs/benchmarks.md`.
//!
//! ```text
//! lb-bench-report --runs target/bench-results/pktgen --criterion target/criterion \
//!     --memory target/bench-results/conn_memory.json --svg-dir docs/bench \
//!     --markdown target/bench-results/results.md
//! ```
//!
//! Runs are lb-pktgen JSON files named `<dut>-<label>.json` with `<dut>` one of
//! `director` and `testpmd`; runs with the same label are compared (ours, the
//! ceiling, the ratio).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use lb_bench::results::{Comparison, RunResult};
use lb_bench::svg::{BarChart, LineChart};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "lb-bench-report",
    about = "Tables and charts from benchmark results"
)]
struct Args {
    /// Directory of lb-pktgen JSON results (`director-<label>.json`, `testpmd-<label>.json`).
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Criterion's output directory (`target/criterion`).
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// `conn_memory.json` written by the conn_memory benchmark.
    #[arg(long)]
    memory: Option<PathBuf>,
    /// Where to write the SVG charts.
    #[arg(long)]
    svg_dir: Option<PathBuf>,
    /// Where to write the Markdown tables.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// One line describing the machine, for chart subtitles.
    #[arg(long, default_value = "")]
    machine: String,
    /// Print `--fraction` × the best forwarded rate (pps) of this run
    /// (`<dut>-<label>`, e.g. `director-udp-64`) among `--runs`, and exit.
    #[arg(long)]
    best_rate: Option<String>,
    /// Fraction for `--best-rate`.
    #[arg(long, default_value_t = 1.0)]
    fraction: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn subtitle(args: &Args, extra: &str) -> Option<String> {
    let s = [args.machine.as_str(), extra]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("; ");
    (!s.is_empty()).then_some(s)
}

fn write_svg(args: &Args, name: &str, svg: String) -> Result<(), String> {
    if let Some(dir) = &args.svg_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(name);
        std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("lb-bench-report: wrote {}", path.display());
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(which) = &args.best_rate {
        let dir = args.runs.as_ref().ok_or("--best-rate needs --runs")?;
        let pairs = load_runs(dir)?;
        let (dut, label) = which
            .split_once('-')
            .ok_or_else(|| format!("--best-rate {which}: expected <dut>-<label>"))?;
        let runs = pairs
            .get(label)
            .ok_or_else(|| format!("no runs labelled {label}"))?;
        let best = match dut {
            "director" => &runs.0,
            "testpmd" => &runs.1,
            _ => {
                return Err(format!(
                    "--best-rate {which}: dut must be director or testpmd"
                ))
            }
        };
        let best = best
            .as_ref()
            .ok_or_else(|| format!("no {dut} run labelled {label}"))?;
        println!("{:.0}", (best.best.rx_pps * args.fraction).max(1.0));
        return Ok(());
    }
    let mut md = String::new();
    if let Some(dir) = &args.runs {
        pktgen_report(args, dir, &mut md)?;
    }
    if let Some(dir) = &args.criterion {
        criterion_report(args, dir, &mut md)?;
    }
    if let Some(path) = &args.memory {
        memory_report(path, &mut md)?;
    }
    print!("{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The best round of one run, and the headline figure of every round.
#[derive(Debug)]
struct Rounds {
    best: RunResult,
    all: Vec<f64>,
}

impl Rounds {
    fn add(&mut self, r: RunResult) {
        let (v, _) = r.headline();
        self.all.push(v);
        let (b, _) = self.best.headline();
        // Higher is better, except latency.
        let better = if r.mode == "latency" { v < b } else { v > b };
        if better {
            self.best = r;
        }
    }

    /// "best of N (others: …)" when there was more than one round.
    fn note(&self) -> String {
        if self.all.len() < 2 {
            return String::new();
        }
        let (b, unit) = self.best.headline();
        let digits = if unit == "conn/s" { 0 } else { 3 };
        let others: Vec<String> = self
            .all
            .iter()
            .filter(|v| **v != b)
            .map(|v| format!("{v:.digits$}"))
            .collect();
        if others.is_empty() {
            format!("best of {}", self.all.len())
        } else {
            format!("best of {} (others {})", self.all.len(), others.join(", "))
        }
    }
}

/// Runs by label: (director, testpmd).
type Pairs = BTreeMap<String, (Option<Rounds>, Option<Rounds>)>;

/// Loads `<dut>-<label>.json` and `<dut>-<label>.r<N>.json` files.
fn load_runs(dir: &Path) -> Result<Pairs, String> {
    let mut pairs = Pairs::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(mut stem) = name.strip_suffix(".json") else {
            continue;
        };
        if let Some((base, round)) = stem.rsplit_once(".r") {
            if round.chars().all(|c| c.is_ascii_digit()) {
                stem = base;
            }
        }
        let (dut, label) = match stem.split_once('-') {
            Some(("director", l)) => (0, l),
            Some(("testpmd", l)) => (1, l),
            _ => continue,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        let r: RunResult = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        let entry = pairs.entry(label.to_owned()).or_default();
        let slot = if dut == 0 { &mut entry.0 } else { &mut entry.1 };
        match slot {
            Some(rounds) => rounds.add(r),
            None => {
                let (v, _) = r.headline();
                *slot = Some(Rounds {
                    best: r,
                    all: vec![v],
                });
            }
        }
    }
    Ok(pairs)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

fn pktgen_report(args: &Args, dir: &Path, md: &mut String) -> Result<(), String> {
    let rounds = load_runs(dir)?;
    let pairs: BTreeMap<String, (Option<RunResult>, Option<RunResult>)> = rounds
        .iter()
        .map(|(k, (a, b))| {
            (
                k.clone(),
                (
                    a.as_ref().map(|r| r.best.clone()),
                    b.as_ref().map(|r| r.best.clone()),
                ),
            )
        })
        .collect();
    let _ = writeln!(md, "### Through the harness: lb-director vs testpmd\n");
    let _ = writeln!(
        md,
        "| run | mode | metric | lb-director | testpmd (ceiling) | ratio | lb-director loss | director drops | invalid (ours/testpmd) | load avg | rounds (lb-director; testpmd) |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---|---:|---|---|");
    for (label, (ours, ceiling)) in &pairs {
        let Some(o) = ours else { continue };
        let (a, unit) = o.headline();
        let (b, ratio, added) = match ceiling {
            Some(c) => {
                let cmp = Comparison::of(o, c);
                println!("{}", cmp.line());
                (
                    Some(cmp.ceiling),
                    Some(cmp.ratio),
                    cmp.added_us.zip(cmp.added_p50_us),
                )
            }
            None => (None, None, None),
        };
        let digits = if unit == "conn/s" { 0 } else { 3 };
        let mut ratio_s = fmt_opt(ratio, 2);
        if let Some((p99, p50)) = added {
            let _ = write!(ratio_s, " (adds {p99:.2} µs at p99, {p50:.2} µs at p50)");
        }
        let notes = rounds.get(label).map_or(String::new(), |(a, b)| {
            format!(
                "{}; {}",
                a.as_ref().map_or(String::new(), Rounds::note),
                b.as_ref().map_or(String::new(), Rounds::note)
            )
        });
        let _ = writeln!(
            md,
            "| {label} | {} {} {}B{} | {unit} | {a:.digits$} | {} | {ratio_s} | {} | {} | {}/{} | {} | {notes} |",
            o.mode,
            o.proto,
            o.frame_size,
            if o.replies { " echo" } else { "" },
            fmt_opt(b, digits),
            if o.mode == "cps" {
                o.cps
                    .as_ref()
                    .map_or("–".into(), |c| format!("{} failed", c.failed))
            } else {
                format!("{:.4} %", o.loss_ratio * 100.0)
            },
            if o.dut_drops.is_empty() {
                "–".to_owned()
            } else {
                o.dut_drops
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            o.invalid_total,
            ceiling.as_ref().map_or(0, |c| c.invalid_total),
            [Some(o), ceiling.as_ref()]
                .iter()
                .flatten()
                .filter_map(|r| r.loadavg.map(|(a, b)| format!("{a:.1}–{b:.1}")))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    let _ = writeln!(md);

    // Latency details.
    let lat: Vec<_> = pairs
        .iter()
        .filter(|(_, (o, _))| o.as_ref().is_some_and(|o| o.latency.is_some()))
        .collect();
    if !lat.is_empty() {
        let _ = writeln!(
            md,
            "| latency run | dut | rate (Mpps) | p50 µs | p99 µs | p99.9 µs | max µs | samples |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
        for (label, (o, c)) in &lat {
            for r in [o, c].into_iter().flatten() {
                if let Some(l) = &r.latency {
                    let _ = writeln!(
                        md,
                        "| {label} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                        r.dut,
                        r.target_rate / 1e6,
                        l.p50 / 1e3,
                        l.p99 / 1e3,
                        l.p999 / 1e3,
                        l.max / 1e3,
                        l.samples
                    );
                }
            }
        }
        let _ = writeln!(md);
    }

    // Charts.
    let bars = |mode: &str, pick: fn(&RunResult) -> f64| {
        let mut cats = Vec::new();
        let mut ours = Vec::new();
        let mut ceil = Vec::new();
        for (label, (o, c)) in &pairs {
            let Some(o) = o else { continue };
            if o.mode != mode {
                continue;
            }
            cats.push(label.clone());
            ours.push(pick(o));
            ceil.push(c.as_ref().map_or(f64::NAN, pick));
        }
        (cats, ours, ceil)
    };
    let (cats, ours, ceil) = bars("throughput", |r| r.rx_pps / 1e6);
    if !cats.is_empty() {
        write_svg(
            args,
            "pktgen-throughput.svg",
            BarChart {
                title: "Forwarded Mpps through net_memif, one worker, FullNAT".into(),
                subtitle: subtitle(args, "testpmd io = harness ceiling"),
                unit: "Mpps".into(),
                categories: cats,
                series: vec![("lb-director".into(), ours), ("testpmd io".into(), ceil)],
            }
            .render(),
        )?;
    }
    let (cats, ours, ceil) = bars("cps", |r| {
        r.cps.as_ref().map_or(0.0, |c| c.per_second / 1e3)
    });
    if !cats.is_empty() {
        write_svg(
            args,
            "pktgen-cps.svg",
            BarChart {
                title: "Complete TCP connections per second (7 packets each)".into(),
                subtitle: subtitle(args, "one worker"),
                unit: "thousand connections/s".into(),
                categories: cats,
                series: vec![("lb-director".into(), ours), ("testpmd io".into(), ceil)],
            }
            .render(),
        )?;
    }
    for (label, (o, c)) in &lat {
        let mut series = Vec::new();
        let mut cats = Vec::new();
        let mut vals: Vec<Vec<f64>> = Vec::new();
        for r in [o, c].into_iter().flatten() {
            series.push((
                r.dut.clone(),
                r.latency_cdf
                    .iter()
                    .map(|&(ns, f)| (ns / 1e3, f))
                    .collect::<Vec<_>>(),
            ));
            if let Some(l) = &r.latency {
                cats.push(r.dut.clone());
                vals.push(vec![l.p50 / 1e3, l.p99 / 1e3, l.p999 / 1e3]);
            }
        }
        let rate = o.as_ref().map_or(0.0, |o| o.target_rate / 1e6);
        write_svg(
            args,
            &format!("pktgen-{label}-cdf.svg"),
            LineChart {
                title: format!("One-way latency CDF at {rate:.2} Mpps ({label})"),
                subtitle: subtitle(args, ""),
                x_label: "latency (µs, log scale)".into(),
                y_label: "fraction of frames".into(),
                log_x: true,
                y_max: Some(1.0),
                series,
            }
            .render(),
        )?;
        let names = ["p50", "p99", "p99.9"];
        write_svg(
            args,
            &format!("pktgen-{label}.svg"),
            BarChart {
                title: format!("One-way latency at {rate:.2} Mpps ({label})"),
                subtitle: subtitle(args, ""),
                unit: "µs".into(),
                categories: names.iter().map(|s| (*s).to_owned()).collect(),
                series: cats
                    .iter()
                    .zip(&vals)
                    .map(|(c, v)| (c.clone(), v.clone()))
                    .collect(),
            }
            .render(),
        )?;
    }
    Ok(())
}

/// `full_id` → (mean ns, median ns) of every criterion benchmark under `dir`.
fn load_criterion(dir: &Path) -> BTreeMap<String, (f64, f64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let read = |f: &str| -> Option<serde_json::Value> {
                        serde_json::from_str(&std::fs::read_to_string(p.join(f)).ok()?).ok()
                    };
                    if let (Some(b), Some(est)) = (read("benchmark.json"), read("estimates.json")) {
                        let id = b["full_id"].as_str().unwrap_or_default().to_owned();
                        let mean = est["mean"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                        let median = est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                        out.insert(id, (mean, median));
                    }
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out
}

fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.1} ns")
    }
}

fn criterion_report(args: &Args, dir: &Path, md: &mut String) -> Result<(), String> {
    let c = load_criterion(dir);
    if c.is_empty() {
        return Ok(());
    }
    let get = |id: &str| c.get(id).map(|v| v.1);
    let prep = get("worker_process/frame_prep").unwrap_or(0.0);
    let _ = writeln!(md, "### lb-core micro-benchmarks (criterion, median)\n");
    let _ = writeln!(
        md,
        "`Worker::process` on established 64-byte flows; the net figure subtracts the frame preparation ({:.1} ns: template copy and checksum patch).\n",
        prep
    );
    let _ = writeln!(md, "| benchmark | flows | per packet | net of frame prep |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let mut datapath = Vec::new();
    for (id, &(_, median)) in &c {
        if let Some(rest) = id.strip_prefix("worker_process/") {
            if let Some((proto, flows)) = rest.split_once('/') {
                let _ = writeln!(
                    md,
                    "| {proto} | {flows} | {} | {} |",
                    fmt_ns(median),
                    fmt_ns(median - prep)
                );
                if proto == "tcp" {
                    let n: f64 = flows.parse().unwrap_or(0.0);
                    datapath.push((n, flows.to_owned(), median - prep));
                }
            }
        }
    }
    let _ = writeln!(md);
    datapath.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !datapath.is_empty() {
        write_svg(
            args,
            "micro-datapath.svg",
            BarChart {
                title: "Worker::process per packet, established TCP flows (net)".into(),
                subtitle: subtitle(
                    args,
                    "parse + lookup + FullNAT rewrite + route; target < 50 ns at 1M",
                ),
                unit: "ns / packet".into(),
                categories: datapath.iter().map(|d| format!("{} flows", d.1)).collect(),
                series: vec![("lb-core".into(), datapath.iter().map(|d| d.2).collect())],
            }
            .render(),
        )?;
    }

    // Schedulers.
    let mut servers: Vec<String> = Vec::new();
    let mut scheds: Vec<String> = Vec::new();
    for id in c.keys() {
        if let Some(rest) = id.strip_prefix("new_conn/") {
            if let Some((s, n)) = rest.split_once('/') {
                if !scheds.contains(&s.to_owned()) {
                    scheds.push(s.to_owned());
                }
                if !servers.contains(&n.to_owned()) {
                    servers.push(n.to_owned());
                }
            }
        }
    }
    servers.sort_by_key(|s| s.parse::<u64>().unwrap_or(0));
    let order = lb_core::sched::SCHEDULERS;
    scheds.sort_by_key(|s| order.iter().position(|o| o == s).unwrap_or(usize::MAX));
    if !scheds.is_empty() {
        let _ = write!(md, "| scheduler |");
        for n in &servers {
            let _ = write!(
                md,
                " new connection, {n} servers | pick alone, {n} servers |"
            );
        }
        let _ = writeln!(md);
        let _ = write!(md, "|---|");
        for _ in &servers {
            let _ = write!(md, "---:|---:|");
        }
        let _ = writeln!(md);
        for s in &scheds {
            let _ = write!(md, "| {s} |");
            for n in &servers {
                let _ = write!(
                    md,
                    " {} | {} |",
                    get(&format!("new_conn/{s}/{n}")).map_or("–".into(), fmt_ns),
                    get(&format!("pick/{s}/{n}")).map_or("–".into(), fmt_ns)
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
        write_svg(
            args,
            "micro-schedulers.svg",
            BarChart {
                title: "New connection (SYN through Worker::process) per scheduler".into(),
                subtitle: subtitle(args, "FullNAT, steady state (table slots reused)"),
                unit: "ns / connection".into(),
                categories: scheds.clone(),
                series: servers
                    .iter()
                    .map(|n| {
                        (
                            format!("{n} servers"),
                            scheds
                                .iter()
                                .map(|s| get(&format!("new_conn/{s}/{n}")).unwrap_or(f64::NAN))
                                .collect(),
                        )
                    })
                    .collect(),
            }
            .render(),
        )?;
    }
    let _ = writeln!(md, "| other | median |");
    let _ = writeln!(md, "|---|---:|");
    for (id, &(_, median)) in &c {
        if id.starts_with("maglev_build/")
            || id.starts_with("csum/")
            || id.starts_with("lookup_update/")
            || id.starts_with("expire/")
        {
            let _ = writeln!(md, "| {id} | {} |", fmt_ns(median));
        }
    }
    let _ = writeln!(md);
    Ok(())
}

fn memory_report(path: &Path, md: &mut String) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        md,
        "### Connection table at {} connections\n",
        v["connections"].as_u64().unwrap_or(0)
    );
    let _ = writeln!(md, "| measure | value |");
    let _ = writeln!(md, "|---|---:|");
    let _ = writeln!(md, "| `Conn` record | {} B |", f("conn_record_bytes"));
    let _ = writeln!(
        md,
        "| RSS per connection, table alone | {:.1} B (target ≤ 160 B) |",
        f("table_bytes_per_conn")
    );
    let _ = writeln!(
        md,
        "| RSS per connection, whole worker | {:.1} B |",
        f("worker_bytes_per_conn")
    );
    let _ = writeln!(md, "| insert | {:.1} ns |", f("insert_ns_per_conn"));
    let _ = writeln!(
        md,
        "| expire (all due) | {:.1} ns |",
        f("expire_ns_per_conn")
    );
    let _ = writeln!(
        md,
        "| SYN through `Worker::process` (table filling) | {:.1} ns |",
        f("syn_ns_per_conn")
    );
    let _ = writeln!(md);
    Ok(())
}
