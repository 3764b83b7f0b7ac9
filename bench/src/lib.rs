//! Benchmark support for the load balancer.
//!
//! * [`traffic`]: the traffic logic of `lb-pktgen` (clients, simulated real
//!   servers, validation, pacing), free of DPDK so it can be tested against an
//!   in-process `lb_core` worker.
//! * [`pkt`]: building and checking frames with `lb_core`'s wire views.
//! * [`plan`]: the address plan, read from the director's configuration.
//! * [`results`], [`hist`], [`svg`]: what runs report and how.
//! * [`fixtures`]: workers, configurations and frames for the micro-benchmarks.
//!
//! The binaries: `lb-pktgen` (the DPDK generator, `src/bin/lb-pktgen/`) and
//! `lb-bench-report` (tables and charts from saved results). See
//! `docs/benchmarks.md`.

pub mod fixtures;
pub mod hist;
pub mod pkt;
pub mod plan;
pub mod results;
pub mod svg;
pub mod traffic;
