//! Memory per connection at 10 million connections (issue 4: at most 160 bytes
//! all included), measured as the growth of the process's resident set, plus
//! insert and expiry cost per connection at that size.
//!
//! Two measurements:
//! * the connection table alone (`ConnTable` with the capacity it is filled to:
//!   slab, index, timer links, free list);
//! * a whole worker (`Worker::new` with that capacity, filled by SYNs through
//!   `Worker::process`): the table plus local-port pools, neighbours, counters.
//!
//! Prints a table and writes `conn_memory.json` into `$LB_BENCH_RESULTS`
//! (default `target/bench-results`). `LB_BENCH_MEM_CONNS` overrides the count.
//! Not a criterion benchmark: one filled table is the measurement.

use std::hint::black_box;
use std::time::Instant as StdInstant;

use lb_bench::fixtures;
use lb_core::conn::{Conn, ConnTable};
use lb_core::time::Instant;
use lb_core::wire::ipv4::PROTO_TCP;

const SECOND: u64 = 1_000_000_000;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument other than ours skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"conn_memory".contains(a.as_str()))
    {
        return;
    }
    let n: u64 = std::env::var("LB_BENCH_MEM_CONNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);

    // The table alone.
    let template = fixtures::template_conn();
    let rss0 = fixtures::rss_bytes();
    let start = StdInstant::now();
    let mut table = ConnTable::new(n as usize, 42, Instant(0));
    for i in 0..n as u32 {
        let at = Instant(SECOND + u64::from(i) * SECOND / n);
        table
            .insert(fixtures::conn_n(&template, i, at))
            .expect("insert");
    }
    let insert_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let rss1 = fixtures::rss_bytes();
    let table_bytes = (rss1.saturating_sub(rss0)) as f64 / n as f64;
    let start = StdInstant::now();
    let mut gone = 0u64;
    while !table.is_empty() {
        table.expire(Instant(3 * SECOND), usize::MAX, |c| {
            black_box(c);
            gone += 1;
        });
    }
    let expire_ns = start.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(gone, n);
    drop(table);

    // A whole worker.
    let rss2 = fixtures::rss_bytes();
    let start = StdInstant::now();
    let worker = fixtures::established(PROTO_TCP, n, 16);
    let syn_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let rss3 = fixtures::rss_bytes();
    let worker_bytes = (rss3.saturating_sub(rss2)) as f64 / n as f64;
    drop(black_box(worker));

    let record = size_of::<Conn>();
    println!("connections                  {n}");
    println!("Conn record                  {record} B");
    println!(
        "table RSS per connection     {table_bytes:.1} B  (target <= 160 B; {:.0} MiB in all)",
        (rss1 - rss0) as f64 / 1048576.0
    );
    println!(
        "worker RSS per connection    {worker_bytes:.1} B  ({:.0} MiB in all)",
        (rss3 - rss2) as f64 / 1048576.0
    );
    println!("insert                       {insert_ns:.1} ns/connection");
    println!("expire (all due)             {expire_ns:.1} ns/connection");
    println!("SYN through Worker::process  {syn_ns:.1} ns/connection (new flow, table filling up)");
    let json = serde_json::json!({
        "connections": n,
        "conn_record_bytes": record,
        "table_bytes_per_conn": table_bytes,
        "worker_bytes_per_conn": worker_bytes,
        "insert_ns_per_conn": insert_ns,
        "expire_ns_per_conn": expire_ns,
        "syn_ns_per_conn": syn_ns,
    });
    let dir = std::env::var("LB_BENCH_RESULTS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-results").to_owned()
    });
    let _ = std::fs::create_dir_all(&dir);
    let path = format!("{dir}/conn_memory.json");
    if let Err(e) = std::fs::write(&path, format!("{json:#}\n")) {
        eprintln!("conn_memory: cannot write {path}: {e}");
    }
}
