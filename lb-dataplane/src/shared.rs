//! State shared between the control thread and the workers, all of it lock-free on
//! the workers' side.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use lb_core::snapshot::Snapshot;
use lb_core::stats::WorkerCounters;
use lb_core::steer::Peers;
use lb_core::worker::ListedConn;

use crate::clock::Clock;

/// The published configuration: an atomically swapped snapshot plus its
/// generation, which workers compare once per poll (a plain load of a line that is
/// written only on publication) before touching the snapshot's reference count.
#[derive(Debug)]
pub struct Published {
    snapshot: ArcSwap<Snapshot>,
    generation: AtomicU64,
    retired: Retired<Snapshot>,
}

impl Published {
    /// Publishes `first`.
    pub fn new(first: Arc<Snapshot>) -> Self {
        Published {
            generation: AtomicU64::new(first.generation),
            snapshot: ArcSwap::new(first),
            retired: Retired::default(),
        }
    }

    /// Makes `next` the snapshot every worker picks up on its next poll. The one
    /// it replaces is kept until every worker has moved on (see [`Retired`]).
    pub fn publish(&self, next: Arc<Snapshot>) {
        let generation = next.generation;
        let previous = self.snapshot.swap(next);
        self.generation.store(generation, Ordering::Release);
        self.retired.retire(previous);
    }

    /// Frees the replaced snapshots no worker holds any more. The control
    /// thread calls it periodically.
    pub fn reap(&self) {
        self.retired.reap();
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

/// Values replaced on the control thread and still held by workers. A worker
/// that moves to a new snapshot only drops its reference to the old one; the
/// last reference, and with it the freeing of the old snapshot's services and
/// tables, stays here on the control thread. Only the control thread locks it.
#[derive(Debug)]
pub struct Retired<T>(Mutex<Vec<Arc<T>>>);

impl<T> Default for Retired<T> {
    fn default() -> Self {
        Retired(Mutex::new(Vec::new()))
    }
}

impl<T> Retired<T> {
    /// Keeps `old` until nobody else holds it.
    pub fn retire(&self, old: Arc<T>) {
        let mut retired = self.0.lock().unwrap_or_else(|e| e.into_inner());
        retired.push(old);
        retired.retain(|t| Arc::strong_count(t) > 1);
    }

    /// Drops what nobody else holds any more.
    pub fn reap(&self) {
        let mut retired = self.0.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|t| Arc::strong_count(t) > 1);
    }

    /// Values still kept.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request the control thread puts in a worker's mailbox. Workers look at their
/// mailbox once per poll (one atomic load when it is empty) and answer between
/// polls, so a request never interrupts a burst.
#[derive(Debug)]
pub enum WorkerRequest {
    /// List connections (optionally of one service `(protocol, vip, vport)`).
    ListConnections {
        /// Service filter.
        service: Option<(u8, IpAddr, u16)>,
        /// Most connections to return.
        limit: usize,
        /// Where to send them.
        reply: Sender<Vec<ListedConn>>,
    },
}

/// The control side of every worker's mailbox.
#[derive(Debug)]
pub struct Mailboxes {
    senders: Vec<Sender<WorkerRequest>>,
}

impl Mailboxes {
    /// Mailboxes for `workers` workers: the control side and each worker's inbox.
    pub fn new(workers: usize) -> (Mailboxes, Vec<Receiver<WorkerRequest>>) {
        let (senders, receivers) = (0..workers).map(|_| crossbeam_channel::bounded(4)).unzip();
        (Mailboxes { senders }, receivers)
    }
}

/// How long the control thread waits for a worker's answer.
const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Requests to workers.
    pub mailboxes: Mailboxes,
    /// What the workers share among themselves (persistence templates, …).
    pub peers: Arc<Peers>,
    /// The clock every worker uses, so that shared state with deadlines (the
    /// persistence templates) means the same instant to all of them.
    pub clock: Clock,
}

impl Shared {
    /// Whether the director is stopping.
    #[inline]
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Up to `limit` connections from every worker (optionally of one service),
    /// asked of all workers at once and gathered as they answer.
    pub fn connections(
        &self,
        service: Option<(u8, IpAddr, u16)>,
        limit: usize,
    ) -> Result<Vec<ListedConn>, String> {
        let mut pending = Vec::with_capacity(self.mailboxes.senders.len());
        for (worker, mailbox) in self.mailboxes.senders.iter().enumerate() {
            let (reply, answer) = crossbeam_channel::bounded(1);
            mailbox
                .try_send(WorkerRequest::ListConnections {
                    service,
                    limit,
                    reply,
                })
                .map_err(|_| format!("worker {worker} is busy with earlier requests"))?;
            pending.push((worker, answer));
        }
        let mut all = Vec::new();
        for (worker, answer) in pending {
            let mut listed = answer
                .recv_timeout(WORKER_REPLY_TIMEOUT)
                .map_err(|_| format!("worker {worker} did not answer"))?;
            all.append(&mut listed);
        }
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_reference_to_a_replaced_value_is_dropped_by_the_reaper() {
        let retired = Retired::default();
        let old = Arc::new(7u32);
        let held_by_worker = old.clone();
        retired.retire(old);
        retired.reap();
        assert_eq!(retired.len(), 1, "a worker still holds it");
        drop(held_by_worker); // the worker moved on: not freed there
        assert_eq!(retired.len(), 1);
        retired.reap();
        assert!(retired.is_empty());
        retired.retire(Arc::new(8)); // nobody else holds it: freed at once
        assert!(retired.is_empty());
    }
}
