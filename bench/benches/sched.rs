//! The cost of a new connection per scheduler, and of building a Maglev table.
//!
//! * `new_conn/<sched>/<servers>`: a SYN of a new flow through
//!   `Worker::process` — service lookup, scheduling, local-port allocation,
//!   connection insert, FullNAT rewrite, route — with 10 and 1000 real servers
//!   (weight 65535 each, so `ovf` never runs out). Steady state: the worker's
//!   table was filled and emptied once before timing, and is emptied again
//!   (outside the timing) whenever it holds [`CAPACITY`] connections, so new
//!   connections reuse warm slots as in a director that has been running;
//!   connection counts grow from 0 to [`CAPACITY`] within each lap, which is
//!   what `lc`-style schedulers weigh.
//! * `pick/<sched>/<servers>`: the scheduler's `pick` alone.
//! * `maglev_build/65537/1000`: `Maglev::new` for M = 65537 and 1000 servers.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb_bench::fixtures;
use lb_core::flow::FlowKey;
use lb_core::ids::{PortId, WorkerId};
use lb_core::sched::{Maglev, SCHEDULERS};
use lb_core::time::Instant;
use lb_core::wire::ipv4::PROTO_TCP;
use lb_core::wire::tcp::flags;
use lb_core::worker::{Verdict, Worker};

/// Connections per lap.
const CAPACITY: u64 = 1 << 18;
/// Weight of every real server.
const WEIGHT: u32 = 65535;

fn server_counts() -> Vec<usize> {
    std::env::var("LB_BENCH_SERVERS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 1000])
}

/// Sends `n` SYNs of new flows from `*next`; returns how many were not forwarded.
fn syns(worker: &mut Worker, now: Instant, next: &mut u32, n: u64) -> u64 {
    let mut buf = [0u8; 64];
    let mut refused = 0;
    for _ in 0..n {
        let len = fixtures::client_frame(&mut buf, PROTO_TCP, *next, flags::SYN);
        *next = (*next + 1) % (fixtures::MAX_FLOWS as u32);
        let v = fixtures::process(worker, now, &mut buf[..len]);
        refused += u64::from(v != Verdict::Transmit(PortId(1)));
        black_box(v);
    }
    refused
}

fn new_connection(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_conn");
    g.throughput(Throughput::Elements(1));
    for &servers in &server_counts() {
        for &sched in SCHEDULERS {
            let config =
                fixtures::config_weighted(sched, servers, fixtures::lips_for(CAPACITY), WEIGHT);
            let mut worker = fixtures::worker(&config, CAPACITY as usize);
            let mut now = Instant(1_000_000_000);
            let mut next = 0u32;
            // Touch every page of the table once.
            let refused = syns(&mut worker, now, &mut next, CAPACITY);
            assert_eq!(refused, 0, "{sched}/{servers}: SYNs refused");
            fixtures::expire_all(&mut worker, &mut now);
            let mut live = 0u64;
            let mut refused = 0u64;
            g.bench_function(BenchmarkId::new(sched, servers), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        if live == CAPACITY {
                            fixtures::expire_all(&mut worker, &mut now);
                            live = 0;
                        }
                        let n = left.min(CAPACITY - live);
                        let start = StdInstant::now();
                        refused += syns(&mut worker, now, &mut next, n);
                        total += start.elapsed();
                        live += n;
                        left -= n;
                    }
                    total
                })
            });
            assert_eq!(refused, 0, "{sched}/{servers}: SYNs refused");
        }
    }
    g.finish();
}

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    g.throughput(Throughput::Elements(1));
    for &servers in &server_counts() {
        for &sched in SCHEDULERS {
            let config = fixtures::config_weighted(sched, servers, 1, WEIGHT);
            let snapshot = lb_config::build_snapshot(&config, None, 1).unwrap();
            let service = snapshot
                .service(PROTO_TCP, IpAddr::V4(fixtures::VIP), 80)
                .unwrap()
                .clone();
            let mut i = 0u32;
            g.bench_function(BenchmarkId::new(sched, servers), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    let (cip, cport) = fixtures::client(i);
                    let key = FlowKey::v4(PROTO_TCP, cip, cport, fixtures::VIP, 80);
                    black_box(service.scheduler.pick(
                        WorkerId(0),
                        &service.real_servers,
                        black_box(&key),
                    ))
                })
            });
        }
    }
    g.finish();
}

fn maglev_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    g.sample_size(10);
    let config = fixtures::config("mh", 1000, 1);
    let snapshot = lb_config::build_snapshot(&config, None, 1).unwrap();
    let service = snapshot
        .service(PROTO_TCP, IpAddr::V4(fixtures::VIP), 80)
        .unwrap()
        .clone();
    assert_eq!(service.real_servers.len(), 1000);
    g.bench_function(BenchmarkId::new("65537", 1000), |b| {
        b.iter(|| Maglev::new(black_box(&service.real_servers), 65537, false, false).unwrap())
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = new_connection, pick, maglev_build
}
criterion_main!(benches);
