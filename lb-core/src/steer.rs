//! What workers share to act as one director: who owns a reply, and which
//! neighbours were learned. Both are lock-free; neither is on the per-packet path of
//! a packet that hits its worker's own table.
//!
//! * **FullNAT replies** need nothing shared: the owner of a local port is
//!   computable ([`crate::laddr::port_owner`]).
//! * **NAT replies** (real server → client) carry no local port, so the worker that
//!   creates a NAT connection records itself in [`Peers`]'s owner hints, a fixed
//!   table of atomic words keyed by a hash of the reply tuple. A worker that misses
//!   its own table looks the hint up and hands the packet to the owner. Hints are
//!   overwritten, never locked: a collision at worst sends a reply to a worker
//!   that does not know it, which drops it as it would any unknown packet.
//! * **Persistence templates** ([`crate::persist`]) map a client to its real
//!   server for every worker.
//! * **Neighbours**: a worker that learns a MAC posts it to every other worker's
//!   inbox (a bounded lock-free queue); workers drain their inbox once per poll.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::flow::FlowKey;
use crate::ids::{PortId, WorkerId};
use crate::persist::Templates;
use crate::wire::MacAddr;

/// Owner-hint slots (8 bytes each): 8 MiB, ample for millions of NAT flows.
pub const OWNER_HINT_SLOTS: usize = 1 << 20;
/// Neighbour updates a worker can have waiting.
const NEIGH_INBOX: usize = 256;

/// A neighbour learned by one worker, for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighUpdate {
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// The port it was seen on.
    pub port: PortId,
}

/// State shared by all workers of a director.
#[derive(Debug)]
pub struct Peers {
    workers: usize,
    seed: u64,
    owner_hints: Box<[AtomicU64]>,
    neigh_inboxes: Box<[ArrayQueue<NeighUpdate>]>,
    /// Persistence templates.
    pub templates: Templates,
}

impl Peers {
    /// Shared state for `workers` workers; `seed` keys the hint hash.
    pub fn new(workers: usize, seed: u64) -> Self {
        Peers {
            workers: workers.max(1),
            seed,
            // A lone worker owns everything and needs no hints.
            owner_hints: (0..if workers > 1 { OWNER_HINT_SLOTS } else { 1 })
                .map(|_| AtomicU64::new(0))
                .collect(),
            neigh_inboxes: (0..workers.max(1))
                .map(|_| ArrayQueue::new(NEIGH_INBOX))
                .collect(),
            templates: Templates::new(seed.rotate_left(23)),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    fn hint_slot(&self, key: &FlowKey) -> (usize, u64) {
        let addr = |a: IpAddr| match a {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => {
                let v = u128::from(v6);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        let a = addr(key.src).rotate_left(32) ^ addr(key.dst) ^ self.seed;
        let b = (u64::from(key.sport) << 24) ^ (u64::from(key.dport) << 8) ^ u64::from(key.proto);
        let full = u128::from(a) * u128::from(b ^ 0x9e37_79b9_7f4a_7c15);
        let h = (full as u64) ^ ((full >> 64) as u64);
        // Low bits pick the slot; the top 48 bits are the tag stored beside the owner.
        (h as usize & (self.owner_hints.len() - 1), h >> 16)
    }

    /// Records that `owner` holds the connection whose replies have tuple `key`.
    pub fn record_owner(&self, key: &FlowKey, owner: WorkerId) {
        let (slot, tag) = self.hint_slot(key);
        let word = (tag << 16) | (u64::from(owner.0) + 1);
        self.owner_hints[slot].store(word, Ordering::Relaxed);
    }

    /// The worker recorded for replies with tuple `key`, if any.
    pub fn owner_of(&self, key: &FlowKey) -> Option<WorkerId> {
        let (slot, tag) = self.hint_slot(key);
        let word = self.owner_hints[slot].load(Ordering::Relaxed);
        let owner = word & 0xffff;
        (owner != 0 && word >> 16 == tag).then(|| WorkerId((owner - 1) as u16))
    }

    /// Tells every worker but `from` about a neighbour. A full inbox loses the
    /// update; that worker resolves the neighbour itself when it needs it.
    pub fn announce_neighbour(&self, from: WorkerId, update: NeighUpdate) {
        for (w, inbox) in self.neigh_inboxes.iter().enumerate() {
            if w != from.index() {
                let _ = inbox.push(update);
            }
        }
    }

    /// The next neighbour update for `worker`.
    pub fn next_neighbour(&self, worker: WorkerId) -> Option<NeighUpdate> {
        self.neigh_inboxes[worker.index()].pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cport: u16) -> FlowKey {
        FlowKey::v4(
            6,
            Ipv4Addr::new(10, 0, 2, 11),
            80,
            Ipv4Addr::new(10, 0, 1, 2),
            cport,
        )
    }

    #[test]
    fn owner_hints_round_trip_and_miss_cleanly() {
        let peers = Peers::new(4, 99);
        assert_eq!(peers.owner_of(&key(1)), None);
        for cport in 0..1000 {
            peers.record_owner(&key(cport), WorkerId(cport % 4));
        }
        let found = (0..1000u16)
            .filter(|&c| peers.owner_of(&key(c)) == Some(WorkerId(c % 4)))
            .count();
        assert_eq!(found, 1000);
        assert_eq!(peers.owner_of(&key(5000)), None);
    }

    #[test]
    fn neighbour_updates_reach_every_other_worker() {
        let peers = Peers::new(3, 1);
        let update = NeighUpdate {
            ip: Ipv4Addr::new(10, 0, 2, 11),
            mac: MacAddr([2, 0, 0, 0, 0, 11]),
            port: PortId(1),
        };
        peers.announce_neighbour(WorkerId(1), update);
        assert_eq!(peers.next_neighbour(WorkerId(0)), Some(update));
        assert_eq!(peers.next_neighbour(WorkerId(1)), None);
        assert_eq!(peers.next_neighbour(WorkerId(2)), Some(update));
        assert_eq!(peers.next_neighbour(WorkerId(2)), None);
    }
}
