//! The fragment policy: forward, don't reassemble.
//!
//! Only the first fragment of an IPv4 datagram carries the TCP/UDP ports. The
//! worker forwards it like any packet of its flow (creating the connection if it
//! is new) and remembers, in this map, which connection and direction the
//! datagram `(src, dst, identification, protocol)` belongs to. Later fragments
//! of the datagram are found here and get the same treatment at layer 3 (address
//! rewrite or encapsulation, same real server); their transport checksum needs no
//! change since it travels in the first fragment, which was fixed for the whole
//! datagram. The real server (or client) reassembles.
//!
//! The map is direct-mapped: a fixed array of [`FRAG_SLOTS`] entries indexed by a
//! keyed hash, preallocated, never growing. A first fragment overwrites whatever
//! its slot held (counted as an eviction when the old entry was still live).
//! Entries live [`FRAG_LIFETIME`]. A non-first fragment with no entry — it came
//! before its first fragment, or the entry was evicted or expired — is dropped
//! and counted (`frag_unmatched`): the director never buffers fragments.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::conn::Side;
use crate::time::Instant;

/// Entries of a worker's fragment map (a power of two).
pub const FRAG_SLOTS: usize = 4096;
/// How long an entry stays usable after its first fragment.
pub const FRAG_LIFETIME: Duration = Duration::from_secs(2);

/// Identifies the fragments of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP identification.
    pub ident: u16,
    /// IP protocol.
    pub proto: u8,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: FragKey,
    conn: u32,
    side: Side,
    expires: Instant,
}

/// A worker's fragment map.
#[derive(Debug)]
pub struct FragTable {
    slots: Box<[Option<Slot>]>,
    seed: u64,
}

impl FragTable {
    /// An empty map; `seed` keys the hash.
    pub fn new(seed: u64) -> Self {
        FragTable {
            slots: vec![None; FRAG_SLOTS].into_boxed_slice(),
            seed: seed | 1,
        }
    }

    fn slot(&self, key: &FragKey) -> usize {
        let a = (u64::from(key.src.to_bits()) << 32) | u64::from(key.dst.to_bits());
        let b = (u64::from(key.ident) << 8) | u64::from(key.proto);
        let h = (a ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(self.seed);
        let h = h ^ (h >> 29);
        (h.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 40) as usize & (FRAG_SLOTS - 1)
    }

    /// Remembers that the datagram `key` belongs to connection `conn`, seen from
    /// `side`. Returns whether a live entry was evicted.
    pub fn learn(&mut self, key: FragKey, conn: u32, side: Side, now: Instant) -> bool {
        let i = self.slot(&key);
        let evicted = self.slots[i].is_some_and(|s| s.key != key && s.expires > now);
        self.slots[i] = Some(Slot {
            key,
            conn,
            side,
            expires: now + FRAG_LIFETIME,
        });
        evicted
    }

    /// The connection and side of a datagram whose first fragment was seen.
    pub fn lookup(&self, key: &FragKey, now: Instant) -> Option<(u32, Side)> {
        self.slots[self.slot(key)]
            .filter(|s| s.key == *key && s.expires > now)
            .map(|s| (s.conn, s.side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(10, 0, 1, 2),
            dst: Ipv4Addr::new(10, 0, 1, 100),
            ident,
            proto: 17,
        }
    }

    #[test]
    fn learns_finds_and_forgets() {
        let mut t = FragTable::new(7);
        let now = Instant(1_000);
        assert_eq!(t.lookup(&key(1), now), None);
        assert!(!t.learn(key(1), 5, Side::Client, now));
        assert_eq!(t.lookup(&key(1), now), Some((5, Side::Client)));
        assert_eq!(t.lookup(&key(2), now), None);
        assert_eq!(t.lookup(&key(1), now + FRAG_LIFETIME), None);
    }

    #[test]
    fn a_colliding_datagram_evicts_a_live_entry() {
        let mut t = FragTable::new(7);
        let now = Instant(0);
        let first = key(1);
        let i = t.slot(&first);
        let other = (2..u16::MAX).map(key).find(|k| t.slot(k) == i).unwrap();
        t.learn(first, 1, Side::Client, now);
        assert!(t.learn(other, 2, Side::Server, now));
        assert_eq!(t.lookup(&first, now), None);
        assert_eq!(t.lookup(&other, now), Some((2, Side::Server)));
    }
}
