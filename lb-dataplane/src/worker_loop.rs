//! The poll loop of one forwarding core: RX bursts from every port and from the
//! rings of the other workers → `lb-core` → TX bursts (or the ring to the owning
//! worker), then timers and mailbox. No allocation, lock or syscall per packet.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use lb_core::ids::PortId;
use lb_core::stats::{DropReason, WorkerCounters};
use lb_core::time::Instant;
use lb_core::worker::{ConnListing, ListedConn, Verdict, Worker};

use crate::dpdk::{self, Consumer, Mbuf, MbufArray, Mempool, Producer, RxQueue, TxQueue};
use crate::shared::{Shared, WorkerRequest};

/// Empty polls in a row before an idle worker may sleep (when configured to).
const IDLE_POLLS_BEFORE_SLEEP: u32 = 1024;
/// Table slots a connection listing walks per turn of the loop: a few
/// microseconds, so a listing of millions of connections never holds up the
/// queues.
const LISTING_SLOTS_PER_TURN: usize = 1024;

/// What one worker thread owns.
pub struct WorkerRun<'p> {
    /// The worker's core state.
    pub worker: Worker,
    /// Its RX queue on every port, by port index.
    pub rx: Vec<RxQueue<'p>>,
    /// Its TX queue on every port, by port index.
    pub tx: Vec<TxQueue<'p>>,
    /// Rings to every other worker, by worker id (`None` at its own id).
    pub to_peers: Vec<Option<Producer>>,
    /// Rings from every other worker.
    pub from_peers: Vec<Consumer>,
    /// Port index of each DPDK port id (redirected mbufs carry the DPDK id).
    pub port_index: Vec<Option<PortId>>,
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

/// Frames on their way out of the worker: per-port TX bursts and per-peer
/// redirect bursts, flushed when full and at the end of every poll.
struct Outbound<'r, 'p> {
    tx_queues: &'r mut [TxQueue<'p>],
    tx: Vec<MbufArray>,
    peers: &'r mut [Option<Producer>],
    redirect: Vec<MbufArray>,
    /// Frames dropped this turn of the loop, freed together.
    dropped: MbufArray,
    counters: &'r WorkerCounters,
}

impl Outbound<'_, '_> {
    /// Acts on a verdict for `mbuf`: queue it for a port or a peer, or free it.
    #[inline]
    fn dispatch(&mut self, mbuf: Mbuf, verdict: Verdict) {
        match verdict {
            Verdict::Transmit(port) => {
                let i = port.index();
                if self.tx[i].is_full() {
                    flush_tx(&mut self.tx[i], &mut self.tx_queues[i], self.counters);
                }
                push_or_count(&mut self.tx[i], mbuf, self.counters, DropReason::TxFull);
            }
            Verdict::Redirect(owner) => {
                let i = owner.index();
                if self.redirect[i].is_full() {
                    flush_redirect(&mut self.redirect[i], &mut self.peers[i], self.counters);
                }
                push_or_count(
                    &mut self.redirect[i],
                    mbuf,
                    self.counters,
                    DropReason::RedirectRingFull,
                );
            }
            // Dropping the mbuf frees it; the core counted the reason.
            Verdict::Consumed | Verdict::Drop(_) => {
                if let Err(mbuf) = self.dropped.push(mbuf) {
                    self.free_dropped();
                    drop(mbuf);
                }
            }
        }
    }

    /// Frees the dropped frames in one call.
    fn free_dropped(&mut self) {
        self.dropped.clear();
    }

    /// Sends what is queued for the ports and the peers, and frees what was
    /// dropped, once per turn of the loop.
    fn flush(&mut self) {
        self.free_dropped();
        for (pending, queue) in self.tx.iter_mut().zip(self.tx_queues.iter_mut()) {
            flush_tx(pending, queue, self.counters);
        }
        for (pending, ring) in self.redirect.iter_mut().zip(self.peers.iter_mut()) {
            flush_redirect(pending, ring, self.counters);
        }
    }
}

/// Runs the worker until the director stops.
pub fn run(run: WorkerRun<'_>, shared: &Shared) {
    let WorkerRun {
        mut worker,
        mut rx,
        mut tx,
        mut to_peers,
        mut from_peers,
        port_index,
        pool,
        core,
        idle_sleep,
        inbox,
    } = run;
    let id = worker.id();
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            eprintln!("lb-director: worker {id}: could not pin to core {core}");
        }
    }
    if let Err(e) = dpdk::register_thread() {
        eprintln!("lb-director: worker {id}: {e}; mempool caches are bypassed");
    }
    let clock = shared.clock;
    let counters = worker.counters();
    let mut out = Outbound {
        tx: tx.iter().map(|_| MbufArray::new()).collect(),
        redirect: to_peers.iter().map(|_| MbufArray::new()).collect(),
        dropped: MbufArray::new(),
        tx_queues: &mut tx,
        peers: &mut to_peers,
        counters: &counters,
    };
    let mut generation = shared.published.generation();
    let mut burst = MbufArray::new();
    let mut idle_polls = 0u32;
    let mut listing: Option<Listing> = None;
    while !shared.stopping() {
        let now = clock.now();
        let published = shared.published.generation();
        if published != generation {
            worker.set_snapshot(shared.published.load(), now);
            generation = published;
        }
        let mut received = 0;
        for (port, queue) in rx.iter_mut().enumerate() {
            let n = queue.rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            received += n;
            let port = PortId(port as u16);
            let mut verdicts = [Verdict::Consumed; dpdk::BURST];
            worker.process_burst(now, port, &mut burst, &mut verdicts[..n]);
            // What the burst made the worker originate goes first: a reset for
            // the connection whose local port a new SYN took must reach the
            // server before that SYN.
            send_originated(&mut worker, &mut out, &pool, now);
            for (mbuf, verdict) in burst.drain().zip(verdicts) {
                out.dispatch(mbuf, verdict);
            }
        }
        for ring in from_peers.iter_mut() {
            received += ring.dequeue_burst(&mut burst);
            for mbuf in burst.drain() {
                let Some(port) = port_index.get(usize::from(mbuf.port())).copied().flatten() else {
                    counters.drops.inc(DropReason::Malformed);
                    continue;
                };
                process_redirected(&mut worker, &mut out, &pool, now, port, mbuf);
            }
        }
        send_originated(&mut worker, &mut out, &pool, now);
        out.flush();
        worker.poll(now);
        let listing_done = match &mut listing {
            Some((walk, _)) => worker.list_connections_step(now, walk, LISTING_SLOTS_PER_TURN),
            None => {
                if let Ok(request) = inbox.try_recv() {
                    listing = Some(start(request));
                }
                false
            }
        };
        if listing_done {
            if let Some((walk, reply)) = listing.take() {
                let _ = reply.send(walk.listed);
            }
        }
        if received == 0 && listing.is_none() && !idle_sleep.is_zero() {
            idle_polls += 1;
            if idle_polls >= IDLE_POLLS_BEFORE_SLEEP {
                std::thread::sleep(idle_sleep);
            }
        } else {
            idle_polls = 0;
        }
    }
    dpdk::unregister_thread();
}

/// Runs a frame another worker handed over through the core (multi-segment
/// mbufs are dropped: the core works on contiguous frames) and dispatches the
/// verdict after what it made the worker originate.
#[inline]
fn process_redirected(
    worker: &mut Worker,
    out: &mut Outbound<'_, '_>,
    pool: &Mempool,
    now: Instant,
    port: PortId,
    mut mbuf: Mbuf,
) {
    if !mbuf.is_contiguous() {
        out.counters.drops.inc(DropReason::Malformed);
        return;
    }
    let verdict = mbuf.with_frame(|frame| worker.process_redirected(now, port, frame));
    send_originated(worker, out, pool, now);
    out.dispatch(mbuf, verdict);
}

/// Queues every frame the worker originates (ARP requests, resets).
fn send_originated(worker: &mut Worker, out: &mut Outbound<'_, '_>, pool: &Mempool, now: Instant) {
    while worker.has_pending_transmit() {
        let Some(mut mbuf) = pool.alloc() else {
            break;
        };
        if let Some(port) = mbuf.with_frame(|frame| worker.poll_transmit(now, frame)) {
            out.dispatch(mbuf, Verdict::Transmit(port));
        }
    }
}

/// A connection listing the worker walks in slices between bursts, and where
/// its answer goes.
type Listing = (ConnListing, Sender<Vec<ListedConn>>);

fn start(request: WorkerRequest) -> Listing {
    match request {
        WorkerRequest::ListConnections {
            service,
            limit,
            reply,
        } => (ConnListing::new(service, limit), reply),
    }
}

fn push_or_count(
    pending: &mut MbufArray,
    mbuf: Mbuf,
    counters: &WorkerCounters,
    reason: DropReason,
) {
    // Callers flush a full array first, so this only fails if that flush could
    // not make room; the returned mbuf is then freed and counted.
    if pending.push(mbuf).is_err() {
        counters.drops.inc(reason);
    }
}

fn flush_tx(pending: &mut MbufArray, queue: &mut TxQueue<'_>, counters: &WorkerCounters) {
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

fn flush_redirect(pending: &mut MbufArray, ring: &mut Option<Producer>, counters: &WorkerCounters) {
    if pending.is_empty() {
        return;
    }
    if let Some(ring) = ring {
        ring.enqueue_burst(pending);
    }
    // Whatever the ring did not take is freed and counted.
    let left = pending.len();
    if left > 0 {
        counters
            .drops
            .add(DropReason::RedirectRingFull, left as u64);
        pending.clear();
    }
}
