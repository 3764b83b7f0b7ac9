//! What software steering costs: a FullNAT reply (real server → local address)
//! processed by the worker that owns its connection, against the same reply
//! landing on the other worker first, which finds nothing in its table, computes
//! the owner from the local port and returns `Verdict::Redirect(owner)`; the
//! owner then runs `Worker::process_redirected`. Two `lb_core` workers of one
//! director share one `Arc<Peers>`; flows are established on both (flow `i` on
//! worker `i % 2`, as RSS spreads them), and the replies of worker 0's flows are
//! visited in a scattered order.
//!
//! * `redirect/local/<flows>`: the reply through its owner's `process`.
//! * `redirect/redirected/<flows>`: the other worker's `process` (a miss and the
//!   owner computation), then the owner's `process_redirected`: the lb-core CPU
//!   cost of a redirected packet.
//! * `redirect/miss_only/<flows>`: the first half alone.
//! * `redirect/frame_copy`: the 64-byte frame copy every iteration above does
//!   (subtract it).
//! * `ring/spsc_hop/32` (with the `dpdk` feature): a 32-mbuf burst through the
//!   DPDK SPSC ring the dataplane hands redirected mbufs over on
//!   (`lb_dataplane::dpdk::spsc`: `enqueue_burst` + `dequeue_burst`), on one
//!   thread; criterion's element rate is per mbuf.
//! * `ring/spsc_pingpong/32`: the burst to a second thread and back on a second
//!   ring (two hops across threads, cache lines moving between cores; the EAL
//!   runs with `--lcores 0@(0-1)` so the second thread can run on the other CPU).
//!
//! `LB_BENCH_FLOWS=1000,65536` overrides the flow counts (default 1 thousand,
//! 65536 — the pktgen runs' flow count — and 1 million).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb_bench::fixtures::{self, Scatter};
use lb_core::ids::{PortId, WorkerId};
use lb_core::time::Instant;
use lb_core::wire::ipv4::PROTO_UDP;
use lb_core::worker::Verdict;

fn flow_counts() -> Vec<u64> {
    std::env::var("LB_BENCH_FLOWS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 65_536, 1_000_000])
}

fn redirect(c: &mut Criterion) {
    let mut g = c.benchmark_group("redirect");
    g.throughput(Throughput::Elements(1));
    for flows in flow_counts() {
        let (mut ws, replies, len) = fixtures::established_pair(PROTO_UDP, flows, 8);
        let (owner, other) = ws.split_at_mut(1);
        let (owner, other) = (&mut owner[0], &mut other[0]);
        let n = replies.len() as u64;
        let mut buf = [0u8; 64];

        let mut walk = Scatter::new(n);
        g.bench_function(BenchmarkId::new("local", flows), |b| {
            b.iter(|| {
                buf = replies[walk.next() as usize];
                let v = fixtures::process_server(owner, Instant(2), black_box(&mut buf[..len]));
                debug_assert_eq!(v, Verdict::Transmit(PortId(0)));
                black_box(v)
            })
        });

        let mut walk = Scatter::new(n);
        g.bench_function(BenchmarkId::new("redirected", flows), |b| {
            b.iter(|| {
                buf = replies[walk.next() as usize];
                let v = fixtures::process_server(other, Instant(2), black_box(&mut buf[..len]));
                debug_assert_eq!(v, Verdict::Redirect(WorkerId(0)));
                let v = fixtures::process_redirected_server(
                    owner,
                    Instant(2),
                    black_box(&mut buf[..len]),
                );
                debug_assert_eq!(v, Verdict::Transmit(PortId(0)));
                black_box(v)
            })
        });

        let mut walk = Scatter::new(n);
        g.bench_function(BenchmarkId::new("miss_only", flows), |b| {
            b.iter(|| {
                buf = replies[walk.next() as usize];
                black_box(fixtures::process_server(
                    other,
                    Instant(2),
                    black_box(&mut buf[..len]),
                ))
            })
        });

        // The verdict checks above are debug-only; the fixture's test checks
        // them, this that the redirected runs really redirected.
        assert!(owner.counters().redirects_in.get() > 0);
        assert!(owner.counters().redirects_in.get() <= other.counters().redirects_out.get());

        if flows == *flow_counts().last().unwrap_or(&0) {
            let mut walk = Scatter::new(n);
            g.bench_function("frame_copy", |b| {
                b.iter(|| {
                    buf = replies[walk.next() as usize];
                    black_box(&mut buf[..len]);
                })
            });
        }
    }
    g.finish();
}

#[cfg(feature = "dpdk")]
mod ring {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use criterion::{BenchmarkId, Criterion, Throughput};
    use lb_dataplane::dpdk::{socket_id, spsc, Eal, MbufArray, Mempool, BURST, DEFAULT_DATA_ROOM};

    /// Removes the EAL's runtime directory for our file prefix, even on panic.
    struct RuntimeDirGuard(PathBuf);

    impl Drop for RuntimeDirGuard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn ring(c: &mut Criterion) {
        let prefix = format!("bench-ring-{}", std::process::id());
        let _dir = RuntimeDirGuard(PathBuf::from("/var/run/dpdk").join(&prefix));
        let args: Vec<String> = [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--file-prefix",
            &prefix,
            // Lcore 0 on CPU 0 or 1 (not pinned to CPU 0 as `-l 0` would): the
            // ping-pong thread inherits the CPU set and must be able to run
            // beside it.
            "--lcores",
            "0@(0-1)",
            "--log-level",
            "*:warning",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let eal = match Eal::init(&args) {
            Ok(eal) => eal,
            Err(e) => {
                eprintln!("ring benchmarks skipped: rte_eal_init: {e}");
                return;
            }
        };
        {
            let pool = Mempool::new("bench_ring_pool", 1023, 0, DEFAULT_DATA_ROOM, socket_id())
                .expect("mempool");
            let mut g = c.benchmark_group("ring");
            g.throughput(Throughput::Elements(BURST as u64));

            // One hop on one thread: what the producer and the consumer each do.
            let (mut tx, mut rx) = spsc("bench_hop", 1024, socket_id()).expect("ring");
            let mut burst = MbufArray::new();
            assert_eq!(pool.alloc_bulk(&mut burst), BURST);
            g.bench_function(BenchmarkId::new("spsc_hop", BURST), |b| {
                b.iter(|| {
                    let sent = tx.enqueue_burst(&mut burst);
                    let got = rx.dequeue_burst(&mut burst);
                    debug_assert_eq!((sent, got), (BURST, BURST));
                    got
                })
            });
            drop((tx, rx));

            // Two hops across threads: to a second thread and back.
            let (mut to_peer, mut peer_in) = spsc("bench_ping", 1024, socket_id()).expect("ring");
            let (mut peer_out, mut from_peer) =
                spsc("bench_pong", 1024, socket_id()).expect("ring");
            let stop = Arc::new(AtomicBool::new(false));
            let peer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut held = MbufArray::new();
                    while !stop.load(Ordering::Relaxed) {
                        if peer_in.dequeue_burst(&mut held) > 0 {
                            while !held.is_empty() {
                                peer_out.enqueue_burst(&mut held);
                            }
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                })
            };
            g.bench_function(BenchmarkId::new("spsc_pingpong", BURST), |b| {
                b.iter(|| {
                    while to_peer.enqueue_burst(&mut burst) == 0 {}
                    while !burst.is_full() {
                        from_peer.dequeue_burst(&mut burst);
                    }
                })
            });
            stop.store(true, Ordering::Relaxed);
            peer.join().expect("peer thread");
            g.finish();
            drop((to_peer, from_peer, burst, pool));
        }
        drop(eal);
    }
}

#[cfg(feature = "dpdk")]
fn ring(c: &mut Criterion) {
    ring::ring(c);
}

#[cfg(not(feature = "dpdk"))]
fn ring(_: &mut Criterion) {
    eprintln!("ring benchmarks need the dpdk feature");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = redirect, ring
}
criterion_main!(benches);
