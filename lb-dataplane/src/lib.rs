//! The director's data plane: DPDK ports and queues, per-core poll loops around
//! `lb-core` workers, and the control thread. `main.rs` wires them together.

pub mod clock;
pub mod control;
pub mod cpu;
pub mod dpdk;
pub mod hugepages;
pub mod metrics;
pub mod shared;
pub mod worker_loop;
