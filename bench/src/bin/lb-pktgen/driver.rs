//! The poll loop that moves mbufs between the two memif links and the traffic
//! engine: one thread, both links, no allocation per packet.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lb_bench::traffic::{Action, Engine, Link};
use lb_dataplane::dpdk::{self, Mbuf, MbufArray, Mempool, Port, RxQueue, TxQueue};

/// Waits until every port's link is up (the memif peer connected).
pub fn wait_links(ports: &[Port], timeout: Duration, stop: &AtomicBool) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let up: Vec<bool> = ports
            .iter()
            .map(|p| p.link().map(|l| l.up).unwrap_or(false))
            .collect();
        if up.iter().all(|u| *u) {
            return Ok(());
        }
        if start.elapsed() > timeout || stop.load(Ordering::Relaxed) {
            let down: Vec<String> = up
                .iter()
                .enumerate()
                .filter(|(_, u)| !**u)
                .map(|(i, _)| format!("net_memif{i}"))
                .collect();
            return Err(format!(
                "link of {} not up after {:.1} s: is the device under test running with the same memif sockets?",
                down.join(" and "),
                timeout.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Answers held while a link's ring is full (a slow device under test must
/// not make lb-pktgen drop the packets of a conversation).
const BACKLOG: usize = 8192;

/// Keeps the ports open without polling them until every link is down (the
/// device under test closed its side), `stop`, or `limit`.
pub fn hold(ports: &[Port], limit: Duration, stop: &AtomicBool) {
    let start = Instant::now();
    while start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
        let any_up = ports
            .iter()
            .any(|p| p.link().map(|l| l.up).unwrap_or(false));
        if !any_up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One link's queues and the frames waiting to go out: the next burst, then
/// the backlog behind it.
struct LinkIo<'p> {
    rx: RxQueue<'p>,
    tx: TxQueue<'p>,
    pending: MbufArray,
    backlog: VecDeque<Mbuf>,
}

impl LinkIo<'_> {
    /// Sends what the ring takes, oldest first; returns whether all went.
    fn flush(&mut self) -> bool {
        loop {
            while !self.pending.is_full() {
                match self.backlog.pop_front() {
                    Some(m) => {
                        if let Err(m) = self.pending.push(m) {
                            self.backlog.push_front(m);
                            break;
                        }
                    }
                    None => break,
                }
            }
            if self.pending.is_empty() {
                return true;
            }
            let before = self.pending.len();
            let sent = self.tx.try_tx_burst(&mut self.pending);
            if sent < before {
                return false;
            }
        }
    }
}

/// The queue of a frame on a link with `queues` queue pairs: a hash of its IPv4
/// addresses and L4 ports (so every frame of a flow takes one queue, as RSS
/// would spread them); anything else (ARP) on queue 0. memif has no RSS: the
/// sender picks the ring.
fn queue_of(frame: &[u8], queues: usize) -> usize {
    const ETH: usize = 14;
    if queues <= 1 || frame.len() < ETH + 24 || frame[12..14] != [0x08, 0x00] {
        return 0;
    }
    let ihl = usize::from(frame[ETH] & 0x0f) * 4;
    let mut h: u64 = 0;
    for &b in &frame[ETH + 12..ETH + 20] {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    if frame.len() >= ETH + ihl + 4 {
        for &b in &frame[ETH + ihl..ETH + ihl + 4] {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    ((h >> 32) as usize) % queues
}

/// Both links of the generator, each with one or more queue pairs.
pub struct Io<'p> {
    /// `links[link][queue]`.
    links: [Vec<LinkIo<'p>>; 2],
    pool: Mempool,
    reserve: MbufArray,
    rx: MbufArray,
    burst: usize,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io").field("burst", &self.burst).finish()
    }
}

impl<'p> Io<'p> {
    /// Queues `0..queues` of each port: `ports[0]` is the client link, `ports[1]`
    /// the server link.
    pub fn new(
        ports: &'p [Port],
        pool: &Mempool,
        burst: usize,
        queues: u16,
    ) -> Result<Io<'p>, String> {
        let link = |p: &'p Port| -> Result<Vec<LinkIo<'p>>, String> {
            (0..queues.max(1))
                .map(|q| {
                    Ok(LinkIo {
                        rx: p.rx_queue(q).map_err(|e| e.to_string())?,
                        tx: p.tx_queue(q).map_err(|e| e.to_string())?,
                        pending: MbufArray::new(),
                        backlog: VecDeque::with_capacity(BACKLOG),
                    })
                })
                .collect()
        };
        Ok(Io {
            links: [link(&ports[0])?, link(&ports[1])?],
            pool: pool.clone(),
            reserve: MbufArray::new(),
            rx: MbufArray::new(),
            burst: burst.clamp(1, dpdk::BURST),
        })
    }

    /// Queues `mbuf` on `link` behind what is waiting; only an answer that
    /// finds the backlog full is dropped (and counted).
    fn send(&mut self, engine: &mut Engine, link: Link, mbuf: Mbuf) {
        let queues = &mut self.links[link.index()];
        let q = queue_of(mbuf.data(), queues.len());
        let l = &mut queues[q];
        if l.backlog.is_empty() && l.pending.len() < self.burst {
            if let Err(m) = l.pending.push(mbuf) {
                drop(m);
                engine.note_tx_dropped(link, 1);
            }
            return;
        }
        if l.backlog.len() < BACKLOG {
            l.backlog.push_back(mbuf);
        } else {
            drop(mbuf);
            engine.note_tx_dropped(link, 1);
        }
    }

    /// Between two runs: sends what is queued, then receives and frees whatever
    /// still arrives (late frames of the previous run) for `quiet`.
    pub fn settle(&mut self, quiet: Duration) {
        let start = Instant::now();
        while start.elapsed() < quiet {
            for l in self.links.iter_mut().flatten() {
                l.flush();
                l.rx.rx_burst(&mut self.rx);
                self.rx.clear();
            }
        }
    }

    /// Runs `engine` to its end (or until `stop`).
    pub fn drive(&mut self, engine: &mut Engine, stop: &AtomicBool) {
        let mut polls = 0u32;
        while !engine.done() {
            polls = polls.wrapping_add(1);
            if polls % 1024 == 0 && stop.load(Ordering::Relaxed) {
                engine.abort("interrupted", dpdk::rdtsc());
                break;
            }
            engine.tick(dpdk::rdtsc());
            let queues = self.links[0].len();
            for (link, q) in [Link::Server, Link::Client]
                .into_iter()
                .flat_map(|link| (0..queues).map(move |q| (link, q)))
            {
                let l = &mut self.links[link.index()][q];
                let n = l.rx.rx_burst(&mut self.rx);
                if n == 0 {
                    continue;
                }
                let now = dpdk::rdtsc();
                let mut rx = std::mem::take(&mut self.rx);
                for mut mbuf in rx.drain() {
                    let action = if mbuf.is_contiguous() {
                        mbuf.with_frame(|frame| engine.handle(link, now, frame))
                    } else {
                        Action::Drop
                    };
                    if let Action::Send(out) = action {
                        self.send(engine, out, mbuf);
                    }
                }
                self.rx = rx;
            }
            // New frames only when nothing waits: a full link slows the generator
            // down instead of piling frames up.
            let waiting = self.links.iter().flatten().any(|l| !l.backlog.is_empty());
            let room = if waiting {
                0
            } else {
                self.links
                    .iter()
                    .flatten()
                    .map(|l| l.pending.spare())
                    .min()
                    .unwrap_or(0)
                    .min(self.burst)
            };
            let now = dpdk::rdtsc();
            let wanted = engine.wanted(now, room);
            for _ in 0..wanted {
                if self.reserve.is_empty() && self.pool.alloc_bulk(&mut self.reserve) == 0 {
                    break;
                }
                let Some(mut mbuf) = self.reserve.pop() else {
                    break;
                };
                match mbuf.with_frame(|frame| engine.generate(now, frame)) {
                    Some(link) => {
                        let queues = &mut self.links[link.index()];
                        let q = queue_of(mbuf.data(), queues.len());
                        let l = &mut queues[q];
                        // `room` guarantees space: generated frames are never dropped.
                        if let Err(m) = l.pending.push(mbuf) {
                            drop(m);
                            engine.note_tx_dropped(link, 1);
                        }
                    }
                    None => {
                        let _ = self.reserve.push(mbuf);
                        break;
                    }
                }
            }
            for l in self.links.iter_mut().flatten() {
                if !l.pending.is_empty() || !l.backlog.is_empty() {
                    l.flush();
                }
            }
        }
        // Whatever is still queued goes out (or is freed).
        for l in self.links.iter_mut().flatten() {
            for _ in 0..1000 {
                if l.flush() {
                    break;
                }
            }
            l.pending.clear();
            l.backlog.clear();
        }
    }
}
