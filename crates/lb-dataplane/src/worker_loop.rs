//! The poll loop of one forwarding core: RX bursts from every port → `lb-core` →
//! TX bursts, then timers. No allocation, lock or syscall per packet.

use std::time::Duration;

use lb_core::ids::PortId;
use lb_core::stats::{DropReason, WorkerCounters};
use lb_core::worker::{Verdict, Worker};

use crate::clock::Clock;
use crate::dpdk::{self, Mbuf, MbufArray, Mempool, RxQueue, TxQueue};
use crate::shared::{Shared, WorkerRequest};
use crossbeam_channel::Receiver;

/// Empty polls in a row before an idle worker may sleep (when configured to).
const IDLE_POLLS_BEFORE_SLEEP: u32 = 1024;

/// What one worker thread owns.
pub struct WorkerRun<'p> {
    /// The worker's core state.
    pub worker: Worker,
    /// Its RX queue on every port, by port id.
    pub rx: Vec<RxQueue<'p>>,
    /// Its TX queue on every port, by port id.
    pub tx: Vec<TxQueue<'p>>,
    /// Pool for frames the worker originates.
    pub pool: Mempool,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Sleep after a run of empty polls (zero: never sleep).
    pub idle_sleep: Duration,
    /// Requests from the control thread.
    pub inbox: Receiver<WorkerRequest>,
}

impl std::fmt::Debug for WorkerRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRun")
            .field("worker", &self.worker.id())
            .field("ports", &self.rx.len())
            .field("core", &self.core)
            .finish()
    }
}

/// Runs the worker until the director stops.
pub fn run(mut run: WorkerRun<'_>, shared: &Shared) {
    let id = run.worker.id();
    if let Some(core) = run.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            eprintln!("lb-director: worker {id}: could not pin to core {core}");
        }
    }
    if let Err(e) = dpdk::register_thread() {
        eprintln!("lb-director: worker {id}: {e}; mempool caches are bypassed");
    }
    let clock = Clock::start();
    let counters = run.worker.counters();
    let mut generation = shared.published.generation();
    let mut rx = MbufArray::new();
    let mut tx: Vec<MbufArray> = run.tx.iter().map(|_| MbufArray::new()).collect();
    let mut idle_polls = 0u32;
    while !shared.stopping() {
        let now = clock.now();
        let published = shared.published.generation();
        if published != generation {
            run.worker.set_snapshot(shared.published.load(), now);
            generation = published;
        }
        let mut received = 0;
        for (port, queue) in run.rx.iter_mut().enumerate() {
            received += queue.rx_burst(&mut rx);
            for mut mbuf in rx.drain() {
                let verdict = if mbuf.is_contiguous() {
                    mbuf.with_frame(|frame| run.worker.process(now, PortId(port as u16), frame))
                } else {
                    counters.drops.inc(DropReason::Malformed);
                    Verdict::Drop(DropReason::Malformed)
                };
                if let Verdict::Transmit(out) = verdict {
                    enqueue(
                        &mut tx[out.index()],
                        &mut run.tx[out.index()],
                        mbuf,
                        &counters,
                    );
                }
            }
        }
        while run.worker.has_pending_transmit() {
            let Some(mut mbuf) = run.pool.alloc() else {
                break;
            };
            if let Some(out) = mbuf.with_frame(|frame| run.worker.poll_transmit(frame)) {
                enqueue(
                    &mut tx[out.index()],
                    &mut run.tx[out.index()],
                    mbuf,
                    &counters,
                );
            }
        }
        for (pending, queue) in tx.iter_mut().zip(run.tx.iter_mut()) {
            flush(pending, queue, &counters);
        }
        run.worker.poll(now);
        if let Ok(request) = run.inbox.try_recv() {
            answer(&run.worker, now, request);
        }
        if received == 0 && !run.idle_sleep.is_zero() {
            idle_polls += 1;
            if idle_polls >= IDLE_POLLS_BEFORE_SLEEP {
                std::thread::sleep(run.idle_sleep);
            }
        } else {
            idle_polls = 0;
        }
    }
    dpdk::unregister_thread();
}

fn answer(worker: &Worker, now: lb_core::time::Instant, request: WorkerRequest) {
    match request {
        WorkerRequest::ListConnections {
            service,
            limit,
            reply,
        } => {
            // The control thread may have given up waiting; nothing to do then.
            let _ = reply.send(worker.list_connections(now, service, limit));
        }
    }
}

fn enqueue(
    pending: &mut MbufArray,
    queue: &mut TxQueue<'_>,
    mbuf: Mbuf,
    counters: &WorkerCounters,
) {
    if pending.is_full() {
        flush(pending, queue, counters);
    }
    // After a flush the array is empty, so the push cannot fail; if it somehow
    // did, the returned mbuf is dropped (freed) and counted.
    if pending.push(mbuf).is_err() {
        counters.drops.inc(DropReason::TxFull);
    }
}

fn flush(pending: &mut MbufArray, queue: &mut TxQueue<'_>, counters: &WorkerCounters) {
    if pending.is_empty() {
        return;
    }
    // The driver accepts a prefix of the burst: remember the lengths to count
    // exactly the bytes it took.
    let mut lengths = [0usize; dpdk::BURST];
    for (len, mbuf) in lengths.iter_mut().zip(pending.as_slice()) {
        *len = mbuf.len();
    }
    let (sent, dropped) = queue.tx_burst(pending);
    counters.tx_packets.add(sent as u64);
    counters
        .tx_bytes
        .add(lengths[..sent].iter().sum::<usize>() as u64);
    if dropped > 0 {
        counters.drops.add(DropReason::TxFull, dropped as u64);
    }
}
