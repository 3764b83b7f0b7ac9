//! State shared between the control thread and the workers, all of it lock-free on
//! the workers' side.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use lb_core::snapshot::Snapshot;
use lb_core::stats::WorkerCounters;

/// The published configuration: an atomically swapped snapshot plus its
/// generation, which workers compare once per poll (a plain load of a line that is
/// written only on publication) before touching the snapshot's reference count.
#[derive(Debug)]
pub struct Published {
    snapshot: ArcSwap<Snapshot>,
    generation: AtomicU64,
}

impl Published {
    /// Publishes `first`.
    pub fn new(first: Arc<Snapshot>) -> Self {
        Published {
            generation: AtomicU64::new(first.generation),
            snapshot: ArcSwap::new(first),
        }
    }

    /// Makes `next` the snapshot every worker picks up on its next poll.
    pub fn publish(&self, next: Arc<Snapshot>) {
        let generation = next.generation;
        self.snapshot.store(next);
        self.generation.store(generation, Ordering::Release);
    }

    /// The generation in force.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The snapshot in force.
    pub fn load(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}

/// Everything the control thread and the workers share.
#[derive(Debug)]
pub struct Shared {
    /// The configuration in force.
    pub published: Published,
    /// Every worker's counters, by worker id.
    pub worker_counters: Vec<Arc<WorkerCounters>>,
    /// Connection capacity per worker.
    pub conn_capacity: usize,
    /// Set by SIGTERM/SIGINT: everyone winds down.
    pub stop: Arc<AtomicBool>,
}

impl Shared {
    /// Whether the director is stopping.
    #[inline]
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
