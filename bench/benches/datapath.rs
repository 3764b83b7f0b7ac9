//! lb-core's per-packet cost: parse + connection lookup + FullNAT rewrite +
//! route and neighbour, through `Worker::process` and in bursts of 32 through
//! `Worker::process_burst`, on established flows; and the checksum primitives
//! the rewrite uses.
//!
//! Every iteration writes the next flow's 64-byte frame from a template (client
//! address and port patched, checksums updated incrementally) and processes it.
//! Flows are visited in a scattered order over all of them, so the connection
//! table is touched as traffic from that many flows would touch it. The frame
//! preparation alone is measured too (`frame_prep`) and is subtracted in the
//! report.
//!
//! `LB_BENCH_FLOWS=1000,1000000` overrides the flow counts (default 1 thousand,
//! 1 million and 10 million; 10 million takes about 2 GB and a few seconds to
//! build).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

#[path = "common/memory.rs"]
mod memory;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb_bench::fixtures::{self, FlowFrames, Scatter};
use lb_core::csum::{self, Delta};
use lb_core::ids::PortId;
use lb_core::time::Instant;
use lb_core::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use lb_core::worker::Verdict;

const BURST: usize = 32;
use lb_core::xmit;

fn flow_counts() -> Vec<u64> {
    std::env::var("LB_BENCH_FLOWS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 1_000_000, 10_000_000])
}

fn worker_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("worker_process");
    g.throughput(Throughput::Elements(1));
    for (proto, name) in [(PROTO_TCP, "tcp"), (PROTO_UDP, "udp")] {
        for flows in flow_counts() {
            // UDP only at the middle size: the path differs little.
            if proto == PROTO_UDP && flows != 1_000_000 && flow_counts().len() > 1 {
                continue;
            }
            let mut worker = fixtures::established(proto, flows, 16);
            let frames = FlowFrames::new(proto);
            let mut walk = Scatter::new(flows);
            let mut buf = [0u8; 64];
            let len = frames.write(&mut buf, 0);
            assert_eq!(
                fixtures::process(&mut worker, Instant(2), &mut buf[..len]),
                Verdict::Transmit(PortId(1))
            );
            g.bench_function(BenchmarkId::new(name, flows), |b| {
                b.iter(|| {
                    let len = frames.write(&mut buf, walk.next());
                    black_box(fixtures::process(
                        &mut worker,
                        Instant(2),
                        black_box(&mut buf[..len]),
                    ))
                })
            });
        }
    }
    // Bursts of 32 through the pipeline, per packet, on a table set up as the
    // director's is (hugepages, prefetch: see common/memory.rs).
    for flows in flow_counts() {
        let mut worker = fixtures::established_after(PROTO_TCP, flows, 16, |w| {
            memory::back_with_huge_pages(w.conn_memory_regions())
        });
        if let Some(prefetch) = memory::prefetch() {
            worker.set_prefetch(prefetch);
        }
        let frames = FlowFrames::new(PROTO_TCP);
        let mut walk = Scatter::new(flows);
        let mut burst = fixtures::FrameBurst::new(BURST);
        let mut verdicts = [Verdict::Consumed; BURST];
        burst.refill(|buf| frames.write(buf, walk.next()));
        worker.process_burst(Instant(2), PortId(0), &mut burst, &mut verdicts);
        assert!(verdicts.iter().all(|v| *v == Verdict::Transmit(PortId(1))));
        g.throughput(Throughput::Elements(BURST as u64));
        g.bench_function(BenchmarkId::new("tcp_burst32", flows), |b| {
            b.iter(|| {
                burst.refill(|buf| frames.write(buf, walk.next()));
                worker.process_burst(Instant(2), PortId(0), &mut burst, &mut verdicts);
                black_box(&verdicts);
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    // The frame preparation included above, alone.
    let frames = FlowFrames::new(PROTO_TCP);
    let mut walk = Scatter::new(1_000_000);
    let mut buf = [0u8; 64];
    g.bench_function("frame_prep", |b| {
        b.iter(|| {
            let len = frames.write(&mut buf, walk.next());
            black_box(&mut buf[..len]);
        })
    });
    g.finish();
}

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("csum");
    g.throughput(Throughput::Elements(1));
    let a = Ipv4Addr::new(198, 18, 128, 7);
    let b = Ipv4Addr::new(198, 19, 255, 1);
    g.bench_function("update16", |bn| {
        bn.iter(|| csum::update16(black_box(0x1234), black_box(40000), black_box(1025)))
    });
    g.bench_function("update_addr", |bn| {
        bn.iter(|| csum::update_addr(black_box(0x1234), black_box(a), black_box(b)))
    });
    g.bench_function("delta_fullnat", |bn| {
        // Two addresses and two ports, folded once: what a FullNAT rewrite does.
        bn.iter(|| {
            let mut d = Delta::default();
            d.addr(black_box(a), black_box(b));
            d.addr(black_box(b), black_box(a));
            d.word(black_box(40000), black_box(1025));
            d.word(black_box(80), black_box(8080));
            d.apply(black_box(0x1234))
        })
    });
    let mut frame = [0u8; 64];
    let len = fixtures::client_frame(&mut frame, PROTO_TCP, 7, 0x10);
    let ip = &mut frame[14..len];
    let views = [
        (Some((b, 1025)), Some((Ipv4Addr::new(198, 19, 1, 1), 8080))),
        (Some((a, 40000)), Some((Ipv4Addr::new(198, 18, 0, 100), 80))),
    ];
    let mut flip = 0;
    g.bench_function("rewrite_endpoints_tcp", |bn| {
        // One FullNAT rewrite per iteration, alternating between two views so
        // every call changes the packet.
        bn.iter(|| {
            flip ^= 1;
            let (src, dst) = views[flip];
            xmit::rewrite_endpoints(black_box(&mut *ip), src, dst).unwrap();
        })
    });
    for n in [40usize, 1480] {
        let data = vec![0xa5u8; n];
        g.bench_function(BenchmarkId::new("full_checksum", n), |bn| {
            bn.iter(|| csum::checksum(black_box(&data)))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = worker_process, checksums
}
criterion_main!(benches);
