//! `mh`: Maglev hashing, as IPVS's ip_vs_mh (Eisenbud et al., NSDI 2016, §3.4).
//!
//! Built off the packet path: every server with a weight gets a preference list
//! over the `M` slots (`M` prime), `offset = h1(server) mod M`, `skip = h2(server)
//! mod (M - 1) + 1`, `permutation[j] = (offset + j * skip) mod M`, and servers take
//! turns claiming their next preferred empty slot until the table is full. The
//! hashes are IPVS's: `hsiphash` (SipHash-1-3 on 64-bit kernels) of `port +
//! ip_fold` keyed with IPVS's fixed keys, so with equal weights and `M` = 4093 the
//! table is the one Linux builds for the same server list.
//!
//! Weighted turns: IPVS lets each server claim `(weight / gcd) >> rshift` slots in a
//! row per round, where `rshift` truncates big weights (weights 1 and 100 end up
//! 1 : 50). Here turns are interleaved by stride scheduling instead — the next turn
//! goes to the server with the smallest `(claimed + 1) / weight`, first in list
//! order on ties — so every server owns its weight's share of the slots to within
//! one slot. With equal weights both orders are plain round robin in list order.
//!
//! Lookup hashes the source address (and the source port with `mh-port`). With
//! `mh-fallback` an unavailable owner makes it rehash with offsets `ihash, ihash +
//! 1, …` (IPVS `ip_vs_mh_get_fallback`) until an available owner turns up;
//! without it, `None`. Table entries are `u16` server indexes.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::{addr_fold, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Default lookup table size: the prime 65537 (Katran, the Maglev paper).
pub const MH_DEFAULT_TABLE_SIZE: u32 = 65537;
/// Largest table size accepted (`u16` entries: 32 MiB at most).
pub const MH_MAX_TABLE_SIZE: u32 = 1 << 24;

/// Marks a slot no server owns (only when no server has a weight).
const EMPTY: u16 = u16::MAX;

/// IPVS `generate_hash_secret`: the keys of `h1` and `h2`.
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);

/// SipHash-`c`-`d` of `data` with key `(k0, k1)` (little-endian words).
fn siphash(c: usize, d: usize, (k0, k1): (u64, u64), data: &[u8]) -> u64 {
    let mut v = [
        0x736f_6d65_7073_6575 ^ k0,
        0x646f_7261_6e64_6f6d ^ k1,
        0x6c79_6765_6e65_7261 ^ k0,
        0x7465_6462_7974_6573 ^ k1,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let compress = |m: u64, v: &mut [u64; 4]| {
        v[3] ^= m;
        for _ in 0..c {
            round(v);
        }
        v[0] ^= m;
    };
    let mut chunks = data.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        compress(u64::from_le_bytes(w), &mut v);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let b = u64::from_le_bytes(last) | ((data.len() as u64) << 56);
    compress(b, &mut v);
    v[2] ^= 0xff;
    for _ in 0..d {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// IPVS `ip_vs_mh_hashkey`: `hsiphash(offset + port + ip_fold)`, which on 64-bit
/// kernels is SipHash-1-3 of the 4-byte value truncated to 32 bits.
#[inline]
fn hashkey(fold: u32, port: u16, key: (u64, u64), offset: u32) -> u32 {
    let v = offset.wrapping_add(u32::from(port)).wrapping_add(fold);
    siphash(1, 3, key, &v.to_le_bytes()) as u32
}

fn is_prime(n: u32) -> bool {
    let n = u64::from(n);
    n >= 2 && (2..).take_while(|d: &u64| d * d <= n).all(|d| n % d != 0)
}

/// One server's claim on the next slot, ordered so that the max-heap pops the
/// server due first: smallest `next / weight`, then lowest index.
#[derive(Debug, PartialEq, Eq)]
struct Turn {
    /// Slots claimed so far + 1.
    next: u64,
    weight: u64,
    idx: usize,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        let mine = u128::from(self.next) * u128::from(other.weight);
        let theirs = u128::from(other.next) * u128::from(self.weight);
        theirs.cmp(&mine).then(other.idx.cmp(&self.idx))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Maglev consistent hashing over a prime-sized lookup table.
#[derive(Debug)]
pub struct Maglev {
    /// Owner (server index) of each slot.
    table: Box<[u16]>,
    /// Slots each server owns (0 for servers without weight).
    slots: Box<[u32]>,
    /// `mh-fallback`: rehash when the owner is unavailable.
    fallback: bool,
    /// `mh-port`: hash the source port too.
    port: bool,
}

impl Maglev {
    /// Builds the `size`-slot table for `dests`. `size` must be a prime no larger
    /// than [`MH_MAX_TABLE_SIZE`] and at least the number of servers.
    pub fn new(
        dests: &[Arc<RealServer>],
        size: u32,
        fallback: bool,
        port: bool,
    ) -> Result<Self, String> {
        if !(3..=MH_MAX_TABLE_SIZE).contains(&size) || !is_prime(size) {
            return Err(format!(
                "mh_table_size {size} must be a prime between 3 and {MH_MAX_TABLE_SIZE}"
            ));
        }
        if dests.len() > size as usize || dests.len() >= usize::from(EMPTY) {
            return Err(format!(
                "{} real servers do not fit a {size}-slot table",
                dests.len()
            ));
        }
        let m = size as usize;
        let mut table = vec![EMPTY; m].into_boxed_slice();
        let mut slots = vec![0u32; dests.len()].into_boxed_slice();
        // (next preferred slot, skip) per server.
        let mut perm: Vec<(usize, usize)> = dests
            .iter()
            .map(|d| {
                let fold = addr_fold(&d.addr);
                let offset = hashkey(fold, d.port, HASH1, 0) % size;
                let skip = hashkey(fold, d.port, HASH2, 0) % (size - 1) + 1;
                (offset as usize, skip as usize)
            })
            .collect();
        let mut turns: BinaryHeap<Turn> = dests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.weight > 0)
            .map(|(idx, d)| Turn {
                next: 1,
                weight: u64::from(d.weight),
                idx,
            })
            .collect();
        if !turns.is_empty() {
            for _ in 0..m {
                let Some(mut turn) = turns.peek_mut() else {
                    break;
                };
                let (pos, skip) = &mut perm[turn.idx];
                while table[*pos] != EMPTY {
                    *pos += *skip;
                    if *pos >= m {
                        *pos -= m;
                    }
                }
                table[*pos] = turn.idx as u16;
                slots[turn.idx] += 1;
                turn.next += 1;
            }
        }
        Ok(Maglev {
            table,
            slots,
            fallback,
            port,
        })
    }

    /// The table size `M`.
    pub fn table_size(&self) -> usize {
        self.table.len()
    }

    /// The slot a lookup key hashes to with `offset`.
    #[inline]
    fn slot(&self, fold: u32, port: u16, offset: u32) -> usize {
        (hashkey(fold, port, HASH1, offset) % self.table.len() as u32) as usize
    }
}

impl Scheduler for Maglev {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], flow: &FlowKey) -> Option<usize> {
        let fold = addr_fold(&flow.src);
        let port = if self.port { flow.sport } else { 0 };
        let ihash = self.slot(fold, port, 0);
        let owner = |slot: usize| {
            let i = usize::from(self.table[slot]);
            dests.get(i).map(|d| (i, d.is_available()))
        };
        match owner(ihash)? {
            (i, true) => return Some(i),
            (_, false) if !self.fallback => return None,
            (_, false) => {}
        }
        // IPVS may rehash up to M times; stop at once when no server that owns
        // slots is available (the answer would be None anyway).
        let any = dests
            .iter()
            .zip(self.slots.iter())
            .any(|(d, &s)| s > 0 && d.is_available());
        if !any {
            return None;
        }
        let m = self.table.len();
        for offset in 0..m {
            let roffset = ((offset + ihash) % m) as u32;
            if let (i, true) = owner(self.slot(fold, port, roffset))? {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn owners_by_addr(mh: &Maglev, servers: &[Arc<RealServer>]) -> Vec<std::net::IpAddr> {
        mh.table
            .iter()
            .map(|&i| servers[usize::from(i)].addr)
            .collect()
    }

    #[test]
    fn siphash_reference_vectors() {
        // SipHash-2-4 paper vectors, key 00..0f.
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        assert_eq!(siphash(2, 4, key, &[]), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash(2, 4, key, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn equal_servers_own_equal_shares() {
        let servers = dests(&[1; 10]);
        let mh = Maglev::new(&servers, MH_DEFAULT_TABLE_SIZE, false, false).unwrap();
        assert!(mh.table.iter().all(|&e| e != EMPTY));
        let ideal = f64::from(MH_DEFAULT_TABLE_SIZE) / 10.0;
        for &s in mh.slots.iter() {
            assert!(
                (f64::from(s) - ideal).abs() / ideal < 0.01,
                "{:?}",
                mh.slots
            );
        }
        assert_eq!(mh.slots.iter().sum::<u32>(), MH_DEFAULT_TABLE_SIZE);
    }

    #[test]
    fn removing_one_of_ten_moves_few_slots() {
        let servers = dests(&[1; 10]);
        let full = Maglev::new(&servers, MH_DEFAULT_TABLE_SIZE, false, false).unwrap();
        let before = owners_by_addr(&full, &servers);
        let mut worst = 0.0f64;
        for removed in 0..servers.len() {
            let mut rest = servers.clone();
            rest.remove(removed);
            let mh = Maglev::new(&rest, MH_DEFAULT_TABLE_SIZE, false, false).unwrap();
            let after = owners_by_addr(&mh, &rest);
            let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            let forced = full.slots[removed] as usize;
            let m = MH_DEFAULT_TABLE_SIZE as f64;
            let frac = changed as f64 / m;
            eprintln!(
                "mh: removing server {removed} of 10 moved {changed} of {m} slots ({:.2}%), \
                 {forced} were its own, excess {} ({:.2}%)",
                frac * 100.0,
                changed - forced,
                (changed - forced) as f64 / m * 100.0
            );
            // Every slot of the removed server moves; the rest barely.
            assert!(changed >= forced);
            assert!(frac <= 0.12, "{frac}");
            worst = worst.max(frac);
        }
        eprintln!("mh: worst disruption {:.2}%", worst * 100.0);
    }

    #[test]
    fn weights_respected_within_one_percent() {
        let servers = dests(&[1, 2, 3, 4]);
        let mh = Maglev::new(&servers, MH_DEFAULT_TABLE_SIZE, false, false).unwrap();
        for (d, &s) in servers.iter().zip(mh.slots.iter()) {
            let ideal = f64::from(MH_DEFAULT_TABLE_SIZE) * f64::from(d.weight) / 10.0;
            assert!((f64::from(s) - ideal).abs() <= 1.0, "{:?}", mh.slots);
        }
        // Weights far apart (IPVS's rshift would turn 1 : 100 into 1 : 50).
        let servers = dests(&[1, 100, 0]);
        let mh = Maglev::new(&servers, MH_DEFAULT_TABLE_SIZE, false, false).unwrap();
        assert_eq!(mh.slots[2], 0);
        let ratio = f64::from(mh.slots[1]) / f64::from(mh.slots[0]);
        assert!((ratio - 100.0).abs() < 1.0, "{:?}", mh.slots);
    }

    #[test]
    fn lookups_are_stable_and_spread() {
        let servers = dests(&[1; 4]);
        let mh = Maglev::new(&servers, 4093, false, false).unwrap();
        let mut seen = [0usize; 4];
        for n in 0..4000 {
            let flow = client(n);
            let i = mh.pick(WorkerId(0), &servers, &flow).unwrap();
            let mut other = flow;
            other.sport = 7;
            assert_eq!(mh.pick(WorkerId(0), &servers, &other), Some(i));
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        // mh-port: the port changes the slot.
        let mh = Maglev::new(&servers, 4093, false, true).unwrap();
        let mut flow = client(3);
        let distinct: std::collections::HashSet<_> = (0..32)
            .map(|p| {
                flow.sport = 2000 + p;
                mh.pick(WorkerId(0), &servers, &flow).unwrap()
            })
            .collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn fallback_moves_only_clients_of_unavailable_servers() {
        let servers = vec![
            server(0, 1, 0),
            server(1, 1, 2),
            server(2, 1, 0),
            server(3, 1, 0),
        ];
        let plain = Maglev::new(&servers, 251, false, false).unwrap();
        let fb = Maglev::new(&servers, 251, true, false).unwrap();
        let owner: Vec<_> = (0..3000)
            .map(|n| plain.pick(WorkerId(0), &servers, &client(n)).unwrap())
            .collect();
        set_conns(&servers[1], 2, 0); // server 1 over its threshold
        let mut moved = 0;
        for (n, &o) in owner.iter().enumerate() {
            let flow = client(n as u32);
            let p = plain.pick(WorkerId(0), &servers, &flow);
            let f = fb.pick(WorkerId(0), &servers, &flow).unwrap();
            assert_ne!(f, 1);
            if o == 1 {
                assert_eq!(p, None);
                moved += 1;
            } else {
                assert_eq!((p, f), (Some(o), o));
            }
        }
        assert!(moved > 0);
        // Nothing available.
        let quiet = dests(&[0, 0]);
        let fb = Maglev::new(&quiet, 251, true, false).unwrap();
        assert_eq!(fb.pick(WorkerId(0), &quiet, &client(1)), None);
        let all_over = vec![server(0, 1, 1)];
        set_conns(&all_over[0], 1, 0);
        let fb = Maglev::new(&all_over, 251, true, false).unwrap();
        assert_eq!(fb.pick(WorkerId(0), &all_over, &client(1)), None);
    }

    #[test]
    fn quiescent_servers_own_no_slots() {
        let servers = dests(&[0, 3, 0]);
        let mh = Maglev::new(&servers, 251, false, false).unwrap();
        assert_eq!(&mh.slots[..], &[0, 251, 0]);
        for n in 0..100 {
            assert_eq!(mh.pick(WorkerId(0), &servers, &client(n)), Some(1));
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        let servers = dests(&[1]);
        for size in [0, 1, 2, 9, 65536, 4_294_967_291] {
            assert!(Maglev::new(&servers, size, false, false).is_err(), "{size}");
        }
        assert!(is_prime(65537) && is_prime(4093) && !is_prime(65535));
        let mh = Maglev::new(&servers, 65521, false, false).unwrap();
        assert_eq!(mh.table_size(), 65521);
    }
}
