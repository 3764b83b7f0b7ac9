//! Schedulers: choose a real server for a new connection, with Linux IPVS semantics.
//!
//! A scheduler is built off the packet path for one service's current set of real
//! servers (rebuilt whenever that set changes) and published inside the snapshot.
//! `pick` runs on workers: any state it mutates is per worker (one cache-padded cell
//! per worker) so workers never contend.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

mod rr;

/// Chooses a real server for new connections of one service.
pub trait Scheduler: Send + Sync + fmt::Debug {
    /// The index in `dests` of the server that takes the new connection `flow`,
    /// or `None` when no server is available. `dests` is the slice the scheduler
    /// was built for.
    fn pick(&self, worker: WorkerId, dests: &[Arc<RealServer>], flow: &FlowKey) -> Option<usize>;
}

/// A scheduler as configured: its name and flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSpec {
    /// ipvsadm scheduler name (`rr`, `wrr`, `wlc`, …).
    pub name: String,
    /// Scheduler flags (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`).
    #[serde(default)]
    pub flags: Vec<String>,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec {
            name: "wlc".to_owned(),
            flags: Vec::new(),
        }
    }
}

/// Why a scheduler could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No scheduler has that name.
    UnknownScheduler(String),
    /// The scheduler does not take that flag.
    UnknownFlag {
        /// Scheduler name.
        scheduler: String,
        /// The offending flag.
        flag: String,
    },
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::UnknownScheduler(name) => write!(f, "unknown scheduler '{name}'"),
            SchedError::UnknownFlag { scheduler, flag } => {
                write!(f, "scheduler '{scheduler}' has no flag '{flag}'")
            }
        }
    }
}

impl std::error::Error for SchedError {}

/// Names of every scheduler `build` knows.
pub const SCHEDULERS: &[&str] = &["rr"];

/// Builds the scheduler `spec` names for `dests` on `workers` workers.
pub fn build(
    spec: &SchedulerSpec,
    dests: &[Arc<RealServer>],
    workers: usize,
) -> Result<Box<dyn Scheduler>, SchedError> {
    let _ = dests;
    let no_flags = |spec: &SchedulerSpec| match spec.flags.first() {
        Some(flag) => Err(SchedError::UnknownFlag {
            scheduler: spec.name.clone(),
            flag: flag.clone(),
        }),
        None => Ok(()),
    };
    match spec.name.as_str() {
        "rr" => {
            no_flags(spec)?;
            Ok(Box::new(rr::RoundRobin::new(workers)))
        }
        other => Err(SchedError::UnknownScheduler(other.to_owned())),
    }
}

/// One cursor per worker, each on its own cache line.
#[derive(Debug)]
pub(crate) struct PerWorkerCursor {
    cells: Box<[crossbeam_utils::CachePadded<std::sync::atomic::AtomicUsize>]>,
}

impl PerWorkerCursor {
    pub(crate) fn new(workers: usize) -> Self {
        PerWorkerCursor {
            cells: (0..workers.max(1)).map(|_| Default::default()).collect(),
        }
    }

    /// The worker's cursor value.
    pub(crate) fn get(&self, worker: WorkerId) -> usize {
        self.cells[worker.index()].load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the worker's cursor; only that worker calls this.
    pub(crate) fn set(&self, worker: WorkerId, value: usize) {
        self.cells[worker.index()].store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use crate::ids::RealServerId;
    use crate::service::{DestCounters, ForwardMode, RealServer};

    /// Real servers 10.0.0.1.. with the given weights, on one worker.
    pub(crate) fn dests(weights: &[u32]) -> Vec<Arc<RealServer>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| {
                Arc::new(RealServer {
                    id: RealServerId(i as u32),
                    serial: 0,
                    addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                    port: 80,
                    weight,
                    forward: ForwardMode::FullNat,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    counters: Arc::new(DestCounters::new(1)),
                })
            })
            .collect()
    }
}
