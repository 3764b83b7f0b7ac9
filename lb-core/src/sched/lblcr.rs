//! `lblcr`: locality-based least connections with replication, as IPVS's
//! ip_vs_lblcr.
//!
//! Each destination IP is mapped to a *set* of servers. A connection to a known
//! destination goes to the least loaded (`overhead / weight`, IPVS tie-breaking)
//! available member of its set. If there is none, or it is overloaded in IPVS's
//! sense (more active connections than its weight while some server has fewer than
//! half its weight), `wlc` chooses among all servers and the choice joins the set.
//! When a set of several servers has not changed for the expiry period, each use
//! drops its most loaded member (IPVS `ip_vs_dest_set_max`), so replication decays.
//! A new destination gets the `wlc` choice as its only member.
//!
//! State: the per-worker tables of [`super::lblc`] (see there for the design,
//! logical clock and expiry), with three words per entry: `dst tag (32) | last use
//! (16) | last change (16)`, then up to 8 members as 16-bit `index + 1` lanes in
//! two words, most recently added first (IPVS adds at the head of its list, which
//! decides ties). A set is capped at 8 servers (IPVS: unbounded): adding a ninth
//! first drops the most loaded member.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::lblc::{
    age, ipvs_overloaded, LocalityTables, BUCKET_BITS, EXPIRE, MAX_INDEX, STAMP_SHIFT, WAYS,
};
use super::wlc::wlc_pick;
use super::{weighted_greater, weighted_least, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Words per entry: header and two words of members.
const STRIDE: usize = 3;
/// Members a set can hold.
const MAX_MEMBERS: usize = 8;

/// A server set: 16-bit lanes of `index + 1`, compact from lane 0 (the head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Members(u128);

impl Members {
    fn one(idx: usize) -> Self {
        Members(idx as u128 + 1)
    }

    fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_MEMBERS)
            .map(move |k| (self.0 >> (16 * k)) as u16)
            .take_while(|&v| v != 0)
            .map(|v| usize::from(v) - 1)
    }

    fn len(self) -> usize {
        self.iter().count()
    }

    fn contains(self, idx: usize) -> bool {
        self.iter().any(|i| i == idx)
    }

    /// Adds `idx` at the head (the set must not be full).
    fn push_front(self, idx: usize) -> Self {
        Members((self.0 << 16) | (idx as u128 + 1))
    }

    /// Removes `idx`, keeping the order of the others.
    fn remove(self, idx: usize) -> Self {
        match self.iter().position(|i| i == idx) {
            Some(k) => {
                let low = self.0 & ((1u128 << (16 * k)) - 1);
                let high = self.0.checked_shr(16 * (k as u32 + 1)).unwrap_or(0);
                Members(low | (high << (16 * k)))
            }
            None => self,
        }
    }

    fn load(words: &[AtomicU64]) -> Self {
        Members(
            u128::from(words[1].load(Ordering::Relaxed))
                | (u128::from(words[2].load(Ordering::Relaxed)) << 64),
        )
    }

    fn store(self, words: &[AtomicU64]) {
        words[1].store(self.0 as u64, Ordering::Relaxed);
        words[2].store((self.0 >> 64) as u64, Ordering::Relaxed);
    }
}

/// Entry header: tag, last use, last change.
#[inline]
fn header(tag: u32, last_use: u16, last_mod: u16) -> u64 {
    (u64::from(tag) << 32) | (u64::from(last_use) << 16) | u64::from(last_mod)
}

/// IPVS `ip_vs_dest_set_max`: the member with the most `overhead / weight` among
/// those with a weight (the first such member unless a later one is strictly more
/// loaded).
fn set_max(dests: &[Arc<RealServer>], members: Members) -> Option<usize> {
    let mut most: Option<(usize, u64)> = None;
    for i in members.iter() {
        let Some(d) = dests.get(i) else { continue };
        if d.weight == 0 {
            continue;
        }
        let doh = d.overhead();
        match most {
            Some((m, moh)) if !weighted_greater(doh, d.weight, moh, dests[m].weight) => {}
            _ => most = Some((i, doh)),
        }
    }
    most.map(|(i, _)| i)
}

/// Locality-based least connections with replication, per-worker server sets.
#[derive(Debug)]
pub struct LocalityLeastConnReplicated {
    tables: LocalityTables,
}

impl LocalityLeastConnReplicated {
    /// Empty maps for `workers` workers.
    pub fn new(workers: usize) -> Self {
        LocalityLeastConnReplicated {
            tables: LocalityTables::new(workers, BUCKET_BITS, STRIDE, STAMP_SHIFT, EXPIRE),
        }
    }
}

impl Scheduler for LocalityLeastConnReplicated {
    fn pick(&self, worker: WorkerId, dests: &[Arc<RealServer>], flow: &FlowKey) -> Option<usize> {
        let t = &self.tables;
        let now = t.tick(worker);
        let (b, tag) = t.key(&flow.dst);
        let bucket = t.bucket(worker, b);
        let entries = || bucket.chunks_exact(STRIDE);
        let own = entries().position(|e| {
            Members::load(e).0 != 0 && (e[0].load(Ordering::Relaxed) >> 32) as u32 == tag
        });
        if let Some(w) = own {
            let e = &bucket[w * STRIDE..(w + 1) * STRIDE];
            let h = e[0].load(Ordering::Relaxed);
            let (last_use, mut last_mod) = ((h >> 16) as u16, h as u16);
            if !t.stale(now, last_use) {
                let mut members = Members::load(e);
                let dest = weighted_least(dests, members.iter(), RealServer::overhead);
                if members.len() > 1 && t.stale(now, last_mod) {
                    if let Some(m) = set_max(dests, members) {
                        members = members.remove(m);
                        last_mod = now;
                    }
                }
                if let Some(d) = dest.filter(|&d| !ipvs_overloaded(dests, &dests[d])) {
                    members.store(e);
                    e[0].store(header(tag, now, last_mod), Ordering::Relaxed);
                    return Some(d);
                }
                let d = wlc_pick(dests);
                if let Some(d) = d.filter(|&d| d <= MAX_INDEX && !members.contains(d)) {
                    if members.len() == MAX_MEMBERS {
                        let evict =
                            set_max(dests, members).unwrap_or(members.iter().last().unwrap_or(0));
                        members = members.remove(evict);
                    }
                    members = members.push_front(d);
                    last_mod = now;
                }
                members.store(e);
                e[0].store(header(tag, now, last_mod), Ordering::Relaxed);
                return d;
            }
        }
        // New (or stale) destination: the wlc choice alone.
        let d = wlc_pick(dests)?;
        if d <= MAX_INDEX {
            let w = own.unwrap_or_else(|| {
                (0..WAYS)
                    .max_by_key(|&w| {
                        let e = &bucket[w * STRIDE..(w + 1) * STRIDE];
                        if Members::load(e).0 == 0 {
                            u32::MAX
                        } else {
                            u32::from(age(now, (e[0].load(Ordering::Relaxed) >> 16) as u16))
                        }
                    })
                    .unwrap_or(0)
            });
            let e = &bucket[w * STRIDE..(w + 1) * STRIDE];
            Members::one(d).store(e);
            e[0].store(header(tag, now, now), Ordering::Relaxed);
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{dests, server, set_conns, to_dest};

    fn members_of(s: &LocalityLeastConnReplicated, worker: WorkerId, flow: &FlowKey) -> Vec<usize> {
        let (b, tag) = s.tables.key(&flow.dst);
        s.tables
            .bucket(worker, b)
            .chunks_exact(STRIDE)
            .find(|e| (e[0].load(Ordering::Relaxed) >> 32) as u32 == tag && Members::load(e).0 != 0)
            .map(|e| Members::load(e).iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn member_lanes() {
        let m = Members::one(4).push_front(7).push_front(0);
        assert_eq!(m.iter().collect::<Vec<_>>(), [0, 7, 4]);
        assert_eq!(m.remove(7).iter().collect::<Vec<_>>(), [0, 4]);
        assert_eq!(m.remove(0).iter().collect::<Vec<_>>(), [7, 4]);
        assert_eq!(m.remove(4).iter().collect::<Vec<_>>(), [0, 7]);
        let mut full = Members(0);
        for i in 0..MAX_MEMBERS {
            full = full.push_front(i);
        }
        assert_eq!(full.len(), MAX_MEMBERS);
        assert_eq!(full.remove(0).len(), MAX_MEMBERS - 1);
        assert_eq!(
            full.remove(7).iter().collect::<Vec<_>>(),
            [6, 5, 4, 3, 2, 1, 0]
        );
    }

    #[test]
    fn same_destination_same_set() {
        let servers = dests(&[1, 1, 1]);
        let s = LocalityLeastConnReplicated::new(1);
        let w = WorkerId(0);
        assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(0));
        set_conns(&servers[0], 1, 0);
        // wlc would prefer 1 or 2; the set {0} keeps the destination on 0.
        for _ in 0..5 {
            assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(0));
        }
        assert_eq!(members_of(&s, w, &to_dest(1)), [0]);
        assert_eq!(s.pick(w, &servers, &to_dest(2)), Some(1));
    }

    #[test]
    fn overloaded_set_grows_and_least_loaded_member_wins() {
        let servers = dests(&[2, 2, 2]);
        let s = LocalityLeastConnReplicated::new(1);
        let w = WorkerId(0);
        assert_eq!(s.pick(w, &servers, &to_dest(5)), Some(0));
        // Server 0 over its weight while server 2 is idle: wlc adds a server.
        set_conns(&servers[0], 3, 0);
        set_conns(&servers[1], 1, 0);
        assert_eq!(s.pick(w, &servers, &to_dest(5)), Some(2));
        assert_eq!(members_of(&s, w, &to_dest(5)), [2, 0]);
        // Now the least loaded member of {2, 0} is taken.
        set_conns(&servers[2], 2, 0);
        set_conns(&servers[0], 1, 0);
        assert_eq!(s.pick(w, &servers, &to_dest(5)), Some(0));
        set_conns(&servers[0], 2, 0); // tie 512/2 each: head of the set (2) wins
        assert_eq!(s.pick(w, &servers, &to_dest(5)), Some(2));
        // A member over its threshold is skipped.
        let servers = vec![server(0, 1, 1), server(1, 1, 0)];
        let s = LocalityLeastConnReplicated::new(1);
        assert_eq!(s.pick(w, &servers, &to_dest(5)), Some(0));
        set_conns(&servers[0], 0, 1);
        assert_eq!(s.pick(w, &servers, &to_dest(5)), Some(1));
        assert_eq!(members_of(&s, w, &to_dest(5)), [1, 0]);
        assert_eq!(s.pick(w, &dests(&[0, 0]), &to_dest(5)), None);
    }

    #[test]
    fn unchanged_sets_shrink_after_expiry() {
        let servers = dests(&[4, 4]);
        let mut s = LocalityLeastConnReplicated::new(1);
        s.tables = LocalityTables::new(1, 4, STRIDE, 0, 5);
        let w = WorkerId(0);
        assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(0)); // tick 1
        set_conns(&servers[0], 5, 0);
        set_conns(&servers[1], 1, 0);
        assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(1)); // tick 2: {1, 0}
                                                               // Keep the entry in use without changing the set.
        for _ in 0..5 {
            assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(1));
        }
        assert_eq!(members_of(&s, w, &to_dest(1)), [1, 0]);
        // Tick 8: more than 5 since the last change: the most loaded member (0) goes.
        assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(1));
        assert_eq!(members_of(&s, w, &to_dest(1)), [1]);
    }

    #[test]
    fn sets_are_capped() {
        let servers = dests(&[1; 10]);
        let s = LocalityLeastConnReplicated::new(1);
        let w = WorkerId(0);
        // Each round: every member over its weight, the next server idle.
        for round in 0..10 {
            assert_eq!(s.pick(w, &servers, &to_dest(1)), Some(round));
            set_conns(&servers[round], 2 + round as u64, 0);
        }
        // The most loaded members (7, then 8) were dropped to make room.
        assert_eq!(members_of(&s, w, &to_dest(1)), [9, 6, 5, 4, 3, 2, 1, 0]);
    }
}
