//! Sans-IO load-balancer core.
//!
//! Everything here works on byte slices and a caller-supplied clock: no DPDK, no
//! threads, no syscalls. The data plane feeds frames in with [`worker::Worker`] and
//! acts on the verdicts it returns.

#![forbid(unsafe_code)]

pub mod conn;
pub mod csum;
pub mod flow;
pub mod frag;
pub mod frame;
pub mod ids;
pub mod laddr;
pub mod meta;
pub mod neigh;
pub mod persist;
pub mod policy;
pub mod ratelimit;
pub mod route;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod stats;
pub mod steer;
pub mod time;
pub mod wire;
pub mod worker;
pub mod xmit;
