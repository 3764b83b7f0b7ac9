//! `lblc`: locality-based least connections, as IPVS's ip_vs_lblc.
//!
//! Each destination IP is mapped to a server. A connection to a known destination
//! goes to its server unless that server is unavailable (quiescent or over its
//! thresholds) or IPVS's `is_overloaded` holds (its active connections exceed its
//! weight while some server has fewer active connections than half its weight);
//! then — or for a new destination — `wlc` chooses and the mapping is updated.
//!
//! # State: per-worker direct-mapped tables
//!
//! IPVS keeps one chained hash table per service under a lock, with entries
//! allocated per new destination and garbage-collected by a timer (idle 6 minutes
//! once more than 16K entries; idle 24 hours otherwise). Here each worker owns a
//! [`LocalityTables`] table: 4096 buckets of 2 ways of fixed-size entries made of
//! `AtomicU64` words, on its own allocation behind a cache-padded header. Only the
//! owning worker touches its table, so the atomics are plain relaxed loads and
//! stores (they only provide `&self` mutability without `unsafe`); nothing is
//! allocated or locked per packet. An `lblc` entry is one word: `dst tag (32) |
//! server index + 1 (16) | last use (16)`. The tag is the IPv4 address itself
//! (exact) or a 32-bit fingerprint of an IPv6 address.
//!
//! Expiry: `pick` gets no clock, so time is counted in scheduling decisions made by
//! the worker for this service (its logical clock), in units of 256 decisions. An
//! entry unused for 2^15 units (about 8.4 million new connections on that worker)
//! is stale and ignored, standing in for IPVS's 24-hour expiry; when both ways of
//! a bucket are taken the least recently used one is replaced, standing in for
//! IPVS's garbage collection of a full table. (The 16-bit stamps wrap: an entry
//! idle for 2^16–2^16+2^15 units may look fresh again; it is only a locality hint,
//! checked for availability and overload like any other.)
//!
//! Consequences of per-worker state: the same destination may be mapped to a
//! different server on each worker (clients of one destination reach several
//! workers through RSS), and the map starts empty whenever the scheduler is rebuilt
//! for a new server set.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::wlc::wlc_pick;
use super::{addr_fold, hash_32, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// log2 of the number of buckets per worker table.
pub(super) const BUCKET_BITS: u32 = 12;
/// Entries per bucket.
pub(super) const WAYS: usize = 2;
/// log2 of scheduling decisions per stamp unit.
pub(super) const STAMP_SHIFT: u32 = 8;
/// Stamp units after which an unused entry is stale (lblc) or a server set may
/// shrink (lblcr).
pub(super) const EXPIRE: u16 = 1 << 15;

/// One worker's table.
#[derive(Debug)]
struct WorkerTable {
    /// Scheduling decisions made so far by this worker (its logical clock).
    clock: AtomicU64,
    /// `buckets * WAYS * stride` words.
    words: Box<[AtomicU64]>,
}

/// One fixed-size table per worker, each used by that worker only.
#[derive(Debug)]
pub(super) struct LocalityTables {
    per_worker: Box<[CachePadded<WorkerTable>]>,
    bucket_bits: u32,
    /// Words per entry.
    stride: usize,
    /// log2 of decisions per stamp unit.
    stamp_shift: u32,
    /// Staleness threshold, in stamp units.
    pub(super) expire: u16,
}

impl LocalityTables {
    /// Tables of `2^bucket_bits` buckets of [`WAYS`] entries of `stride` words for
    /// `workers` workers.
    pub(super) fn new(
        workers: usize,
        bucket_bits: u32,
        stride: usize,
        stamp_shift: u32,
        expire: u16,
    ) -> Self {
        let words = (1usize << bucket_bits) * WAYS * stride;
        LocalityTables {
            per_worker: (0..workers.max(1))
                .map(|_| {
                    CachePadded::new(WorkerTable {
                        clock: AtomicU64::new(0),
                        words: (0..words).map(|_| AtomicU64::new(0)).collect(),
                    })
                })
                .collect(),
            bucket_bits,
            stride,
            stamp_shift,
            expire,
        }
    }

    /// Advances the worker's logical clock by one decision; the current stamp.
    #[inline]
    pub(super) fn tick(&self, worker: WorkerId) -> u16 {
        let clock = &self.per_worker[worker.index()].clock;
        let now = clock.load(Ordering::Relaxed).wrapping_add(1);
        clock.store(now, Ordering::Relaxed);
        (now >> self.stamp_shift) as u16
    }

    /// Bucket and tag of a destination address.
    #[inline]
    pub(super) fn key(&self, addr: &IpAddr) -> (usize, u32) {
        let bucket = match self.bucket_bits {
            0 => 0,
            bits => hash_32(addr_fold(addr), bits) as usize,
        };
        let tag = match addr {
            IpAddr::V4(a) => u32::from(*a),
            IpAddr::V6(a) => {
                let o = a.octets();
                let w = |i: usize| {
                    u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                };
                (w(0) ^ w(1).rotate_left(7) ^ w(2).rotate_left(14) ^ w(3).rotate_left(21))
                    .wrapping_mul(0x9E37_79B1)
            }
        };
        (bucket, tag)
    }

    /// The `WAYS * stride` words of `bucket` in the worker's table.
    #[inline]
    pub(super) fn bucket(&self, worker: WorkerId, bucket: usize) -> &[AtomicU64] {
        let len = WAYS * self.stride;
        &self.per_worker[worker.index()].words[bucket * len..(bucket + 1) * len]
    }

    /// Whether an entry stamped `then` is stale at `now`.
    #[inline]
    pub(super) fn stale(&self, now: u16, then: u16) -> bool {
        now.wrapping_sub(then) > self.expire
    }
}

/// Age of a stamp, for choosing the least recently used way.
#[inline]
pub(super) fn age(now: u16, then: u16) -> u16 {
    now.wrapping_sub(then)
}

/// IPVS `is_overloaded` of ip_vs_lblc / ip_vs_lblcr: `dest` has more active
/// connections than its weight and some server has fewer than half its weight.
pub(super) fn ipvs_overloaded(dests: &[Arc<RealServer>], dest: &RealServer) -> bool {
    dest.counters.active() > u64::from(dest.weight)
        && dests
            .iter()
            .any(|d| d.counters.active() * 2 < u64::from(d.weight))
}

/// Largest server index an entry can hold.
pub(super) const MAX_INDEX: usize = u16::MAX as usize - 1;

/// Locality-based least connections with per-worker destination maps.
#[derive(Debug)]
pub struct LocalityLeastConn {
    tables: LocalityTables,
}

/// Packs an lblc entry.
#[inline]
fn entry(tag: u32, idx: usize, stamp: u16) -> u64 {
    (u64::from(tag) << 32) | ((idx as u64 + 1) << 16) | u64::from(stamp)
}

impl LocalityLeastConn {
    /// Empty maps for `workers` workers.
    pub fn new(workers: usize) -> Self {
        LocalityLeastConn {
            tables: LocalityTables::new(workers, BUCKET_BITS, 1, STAMP_SHIFT, EXPIRE),
        }
    }
}

impl Scheduler for LocalityLeastConn {
    fn pick(&self, worker: WorkerId, dests: &[Arc<RealServer>], flow: &FlowKey) -> Option<usize> {
        let t = &self.tables;
        let now = t.tick(worker);
        let (b, tag) = t.key(&flow.dst);
        let ways = t.bucket(worker, b);
        let mut slot = None;
        for (w, cell) in ways.iter().enumerate() {
            let e = cell.load(Ordering::Relaxed);
            let idx1 = (e >> 16) as u16;
            if idx1 != 0 && (e >> 32) as u32 == tag {
                slot = Some(w);
                if !t.stale(now, e as u16) {
                    cell.store(entry(tag, usize::from(idx1) - 1, now), Ordering::Relaxed);
                    let idx = usize::from(idx1) - 1;
                    if let Some(d) = dests.get(idx) {
                        if d.is_available() && !ipvs_overloaded(dests, d) {
                            return Some(idx);
                        }
                    }
                }
                break;
            }
        }
        let idx = wlc_pick(dests)?;
        if idx <= MAX_INDEX {
            // The destination's own entry, else a free way, else the least
            // recently used one.
            let w = slot.unwrap_or_else(|| {
                (0..WAYS)
                    .max_by_key(|&w| {
                        let e = ways[w].load(Ordering::Relaxed);
                        if (e >> 16) as u16 == 0 {
                            u32::MAX
                        } else {
                            u32::from(age(now, e as u16))
                        }
                    })
                    .unwrap_or(0)
            });
            ways[w].store(entry(tag, idx, now), Ordering::Relaxed);
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{dests, server, set_conns, to_dest};

    #[test]
    fn same_destination_same_server() {
        let servers = dests(&[1, 1, 1]);
        let lblc = LocalityLeastConn::new(1);
        // Destination 1 → server 0 (all idle, wlc picks the first).
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(1)), Some(0));
        // Load server 0 a little: wlc would now choose server 1, but locality wins.
        set_conns(&servers[0], 1, 0);
        for _ in 0..10 {
            assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(1)), Some(0));
        }
        // A new destination goes by wlc.
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(2)), Some(1));
        set_conns(&servers[1], 1, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(2)), Some(1));
        // Other sources to the same destination too.
        let mut flow = to_dest(2);
        flow.src = "203.0.113.5".parse().unwrap();
        assert_eq!(lblc.pick(WorkerId(0), &servers, &flow), Some(1));
    }

    #[test]
    fn reassigns_when_overloaded_and_someone_is_idle() {
        let servers = dests(&[2, 2]);
        let lblc = LocalityLeastConn::new(1);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(9)), Some(0));
        // active 3 > weight 2, but server 1 is not below half its weight.
        set_conns(&servers[0], 3, 0);
        set_conns(&servers[1], 1, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(9)), Some(0));
        // Server 1 idle (0 * 2 < 2): server 0 counts as overloaded; wlc picks 1
        // and the destination now sticks to it.
        set_conns(&servers[1], 0, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(9)), Some(1));
        set_conns(&servers[0], 0, 0);
        set_conns(&servers[1], 1, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(9)), Some(1));
    }

    #[test]
    fn unavailable_server_is_replaced() {
        let servers = vec![server(0, 1, 2), server(1, 1, 0)];
        let lblc = LocalityLeastConn::new(1);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(3)), Some(0));
        set_conns(&servers[0], 0, 2); // over its threshold
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(3)), Some(1));
        set_conns(&servers[0], 0, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(3)), Some(1));
        let quiet = dests(&[0]);
        assert_eq!(lblc.pick(WorkerId(0), &quiet, &to_dest(3)), None);
    }

    #[test]
    fn workers_have_their_own_maps_and_entries_expire() {
        let servers = dests(&[1, 1]);
        let mut lblc = LocalityLeastConn::new(2);
        lblc.tables = LocalityTables::new(2, 4, 1, 0, 10);
        set_conns(&servers[0], 1, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(1)), Some(1));
        set_conns(&servers[0], 0, 0);
        assert_eq!(lblc.pick(WorkerId(1), &servers, &to_dest(1)), Some(0));
        set_conns(&servers[1], 1, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(1)), Some(1));
        // Unused for more than 10 decisions: stale, rescheduled by wlc.
        for n in 0..11 {
            lblc.pick(WorkerId(0), &servers, &to_dest(1000 + n));
        }
        assert_eq!(lblc.pick(WorkerId(0), &servers, &to_dest(1)), Some(0));
    }

    #[test]
    fn full_buckets_evict_the_least_recently_used() {
        let servers = dests(&[1, 1, 1]);
        let mut lblc = LocalityLeastConn::new(1);
        // One bucket of two ways: three destinations compete.
        lblc.tables = LocalityTables::new(1, 0, 1, 0, u16::MAX);
        let pick = |n| lblc.pick(WorkerId(0), &servers, &to_dest(n));
        assert_eq!(pick(1), Some(0));
        set_conns(&servers[0], 1, 0);
        assert_eq!(pick(2), Some(1));
        set_conns(&servers[1], 1, 0);
        assert_eq!(pick(1), Some(0)); // refreshes 1; 2 is now the oldest
        assert_eq!(pick(3), Some(2)); // evicts 2
        set_conns(&servers[2], 1, 0);
        assert_eq!(pick(1), Some(0));
        assert_eq!(pick(3), Some(2));
        // Destination 2 was forgotten: wlc chooses again (its old server 1 would
        // still have been kept: nobody is below half its weight).
        set_conns(&servers[0], 2, 0);
        set_conns(&servers[1], 3, 0);
        assert_eq!(pick(2), Some(2));
    }

    #[test]
    fn ipv6_destinations() {
        let servers = dests(&[1, 1]);
        let lblc = LocalityLeastConn::new(1);
        let mut a = to_dest(1);
        a.dst = "2001:db8::1".parse().unwrap();
        let mut b = a;
        b.dst = "2001:db8:0:1::".parse().unwrap(); // same fold, different address
        assert_eq!(lblc.pick(WorkerId(0), &servers, &a), Some(0));
        set_conns(&servers[0], 1, 0);
        assert_eq!(lblc.pick(WorkerId(0), &servers, &b), Some(1));
        assert_eq!(lblc.pick(WorkerId(0), &servers, &a), Some(0));
    }
}
