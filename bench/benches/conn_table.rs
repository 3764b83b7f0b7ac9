//! The connection table alone (issue 4): lookup-and-update throughput at 10
//! thousand and 10 million connections, and expiry cost per connection.
//!
//! * `lookup_update/<n>`: find a connection by its client tuple (visited in a
//!   scattered order over all `n`) and refresh its deadline, as every packet of
//!   an established flow does.
//! * `lookup_burst/<n>`: the same for a burst of `LOOKUP_BURST` tuples at once
//!   (`ConnTable::lookup_burst`), per lookup.
//! * `expire/<n>`: remove `n` connections whose deadline passed through the
//!   timer wheel (`ConnTable::expire`), per connection. The tables are built
//!   outside the timing.
//!
//! `LB_BENCH_CONNS=10000,1000000` overrides the lookup table sizes. The lookup
//! tables get transparent huge pages and the prefetch instruction as the
//! director gives them (see common/memory.rs; built with the `dpdk` feature);
//! `LB_BENCH_THP=0` leaves them on 4 KiB pages.

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

#[path = "common/memory.rs"]
mod memory;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lb_bench::fixtures::{self, Scatter};
use lb_core::conn::{ConnTable, LOOKUP_BURST};
use lb_core::time::Instant;

const SECOND: u64 = 1_000_000_000;

fn sizes() -> Vec<u64> {
    std::env::var("LB_BENCH_CONNS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 10_000_000])
}

fn filled(n: u64, expires: Instant) -> ConnTable {
    let template = fixtures::template_conn();
    let mut t = ConnTable::new(n as usize, 42, Instant(0));
    memory::back_with_huge_pages(t.memory_regions());
    if let Some(prefetch) = memory::prefetch() {
        t.set_prefetch(prefetch);
    }
    for i in 0..n as u32 {
        t.insert(fixtures::conn_n(&template, i, expires))
            .expect("insert");
    }
    t
}

fn lookup_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_update");
    g.throughput(Throughput::Elements(1));
    let template = fixtures::template_conn();
    for n in sizes() {
        let mut table = filled(n, Instant(100 * SECOND));
        let mut walk = Scatter::new(n);
        let now = Instant(SECOND);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let key = fixtures::conn_key(&template, walk.next());
                let (idx, _) = table.lookup(black_box(&key)).expect("present");
                table.get_mut(idx).expires = Instant(now.0 + 900 * SECOND);
            })
        });
    }
    g.finish();
}

fn lookup_burst(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_burst");
    g.throughput(Throughput::Elements(LOOKUP_BURST as u64));
    let template = fixtures::template_conn();
    for n in sizes() {
        let mut table = filled(n, Instant(100 * SECOND));
        let mut walk = Scatter::new(n);
        let now = Instant(SECOND);
        let mut keys = vec![fixtures::conn_key(&template, 0); LOOKUP_BURST];
        let mut found = vec![None; LOOKUP_BURST];
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                for key in &mut keys {
                    *key = fixtures::conn_key(&template, walk.next());
                }
                table.lookup_burst(black_box(&keys), &mut found);
                for hit in &found {
                    let (idx, _) = hit.expect("present");
                    table.get_mut(idx).expires = Instant(now.0 + 900 * SECOND);
                }
            })
        });
    }
    g.finish();
}

fn expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("expire");
    g.throughput(Throughput::Elements(1));
    let n = 100_000u64;
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(n);
                // Deadlines spread over one second, all past at `now`.
                let template = fixtures::template_conn();
                let mut table = ConnTable::new(chunk as usize, 7, Instant(0));
                for i in 0..chunk as u32 {
                    let at = Instant(SECOND + u64::from(i) * SECOND / chunk);
                    table.insert(fixtures::conn_n(&template, i, at)).unwrap();
                }
                let now = Instant(3 * SECOND);
                let start = StdInstant::now();
                let mut gone = 0u64;
                while !table.is_empty() {
                    table.expire(now, usize::MAX, |c| {
                        black_box(c);
                        gone += 1;
                    });
                }
                total += start.elapsed();
                assert_eq!(gone, chunk);
                left -= chunk;
            }
            total
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup_update, lookup_burst, expire
}
criterion_main!(benches);
