//! FullNAT local addresses and the worker's slice of their ports.
//!
//! Every worker owns the ports whose low bits equal its id (`port & mask == id`,
//! with `mask` one less than the worker count rounded up to a power of two), so the
//! worker that owns a FullNAT reply is computable from its destination port alone:
//! that is what lets RSS-less NICs steer replies in software and lets rte_flow rules
//! match on masked ports.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::ids::WorkerId;

/// First port handed out (below it are well-known and registered-service ports).
pub const FIRST_PORT: u16 = 1024;

/// The mask that selects the owner bits of a local port for `workers` workers.
pub fn owner_mask(workers: usize) -> u16 {
    (workers.max(1).next_power_of_two() - 1) as u16
}

/// The worker that owns local port `port`.
pub fn port_owner(port: u16, workers: usize) -> WorkerId {
    WorkerId(port & owner_mask(workers))
}

#[derive(Debug)]
struct AddrPorts {
    addr: IpAddr,
    /// Ports in hand-out order. A port reserved while queued keeps its place
    /// and is skipped when it comes up (see [`LocalPortPool::reserve`]).
    free: VecDeque<u16>,
    /// Ports of the worker's slice on this address, free or not.
    slice: usize,
    /// Ports held by a connection.
    in_use: PortSet,
    /// Ports in `free`.
    queued: PortSet,
    /// Ports in `free` that are in use (reserved), to be skipped.
    stale: usize,
}

impl AddrPorts {
    fn available(&self) -> usize {
        self.free.len() - self.stale
    }

    fn pop(&mut self) -> Option<u16> {
        while let Some(port) = self.free.pop_front() {
            self.queued.set(port, false);
            if self.in_use.get(port) {
                self.stale -= 1;
                continue;
            }
            self.in_use.set(port, true);
            return Some(port);
        }
        None
    }
}

/// One bit per port number.
#[derive(Debug)]
struct PortSet(Box<[u64]>);

impl PortSet {
    fn new() -> Self {
        PortSet(vec![0; 65536 / 64].into_boxed_slice())
    }

    fn get(&self, port: u16) -> bool {
        self.0[usize::from(port / 64)] & (1 << (port % 64)) != 0
    }

    fn set(&mut self, port: u16, on: bool) {
        let word = &mut self.0[usize::from(port / 64)];
        if on {
            *word |= 1 << (port % 64);
        } else {
            *word &= !(1 << (port % 64));
        }
    }
}

/// One worker's ports on every local address.
#[derive(Debug)]
pub struct LocalPortPool {
    worker: WorkerId,
    workers: usize,
    /// Round keys of the permutation that orders each fresh address's ports.
    keys: [u64; ROUNDS],
    addrs: Vec<AddrPorts>,
    next: usize,
}

impl LocalPortPool {
    /// The pool of `worker` (of `workers`) over `addrs`; `seed` (random per
    /// process) keys the order ports are handed out in.
    pub fn new(worker: WorkerId, workers: usize, addrs: &[IpAddr], seed: u64) -> Self {
        let mut s = seed ^ 0x6a09_e667_f3bc_c908;
        let keys = std::array::from_fn(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(s)
        });
        let mut pool = LocalPortPool {
            worker,
            workers,
            keys,
            addrs: Vec::new(),
            next: 0,
        };
        pool.set_addresses(addrs);
        pool
    }

    /// Follows a change of the local address set: pools of addresses that stay are
    /// kept as they are (ports in use stay in use), new addresses get full pools.
    /// Ports of removed addresses are forgotten; their connections run out normally.
    pub fn set_addresses(&mut self, addrs: &[IpAddr]) {
        let mut old = std::mem::take(&mut self.addrs);
        for &addr in addrs {
            let kept = old
                .iter()
                .position(|p| p.addr == addr)
                .map(|i| old.swap_remove(i));
            let entry = kept.unwrap_or_else(|| self.fresh(addr));
            self.addrs.push(entry);
        }
        self.next = 0;
    }

    fn fresh(&self, addr: IpAddr) -> AddrPorts {
        let mask = owner_mask(self.workers);
        // Skip the worker-id offsets a smaller mask would give to absent workers.
        let slice: Vec<u16> = (FIRST_PORT..=u16::MAX)
            .filter(|p| p & mask == self.worker.0)
            .collect();
        // Handed out in a keyed pseudo-random order, not counting up: a port in
        // use says nothing about which ports are in use next to it, so a forger
        // cannot aim at other clients' connections by guessing.
        let n = slice.len() as u32;
        let free: VecDeque<u16> = (0..n)
            .map(|i| slice[permute(i, n, &self.keys) as usize])
            .collect();
        let mut queued = PortSet::new();
        for &port in &free {
            queued.set(port, true);
        }
        AddrPorts {
            addr,
            free,
            slice: n as usize,
            in_use: PortSet::new(),
            queued,
            stale: 0,
        }
    }

    /// Whether `port` is in this worker's slice.
    fn owns(&self, port: u16) -> bool {
        port >= FIRST_PORT && port_owner(port, self.workers) == self.worker
    }

    /// Takes a local address and port, round robin over the addresses.
    pub fn allocate(&mut self) -> Option<(IpAddr, u16)> {
        let n = self.addrs.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if let Some(port) = self.addrs[i].pop() {
                self.next = (i + 1) % n;
                return Some((self.addrs[i].addr, port));
            }
        }
        None
    }

    /// Returns a port taken with [`LocalPortPool::allocate`]. Ports go to the back of
    /// the queue so a just-closed tuple is reused as late as possible.
    pub fn release(&mut self, addr: IpAddr, port: u16) {
        let Some(p) = self.addrs.iter_mut().find(|p| p.addr == addr) else {
            return;
        };
        if !p.in_use.get(port) {
            return; // never taken, or returned already
        }
        p.in_use.set(port, false);
        if p.queued.get(port) {
            // Reserved while still queued: its place in the queue is good again.
            p.stale -= 1;
        } else {
            p.queued.set(port, true);
            p.free.push_back(port);
        }
    }

    /// Claims a given port of the worker's slice on `addr`, for a connection
    /// that comes with its local port (one imported from another director);
    /// false if the address is not a local address, the port is not this
    /// worker's or it is in use. O(1): a queued port keeps its place and is
    /// skipped when it comes up.
    pub fn reserve(&mut self, addr: IpAddr, port: u16) -> bool {
        if !self.owns(port) {
            return false;
        }
        let Some(p) = self.addrs.iter_mut().find(|p| p.addr == addr) else {
            return false;
        };
        if p.in_use.get(port) {
            return false;
        }
        p.in_use.set(port, true);
        if p.queued.get(port) {
            p.stale += 1;
        }
        true
    }

    /// Free ports over all addresses.
    pub fn available(&self) -> usize {
        self.addrs.iter().map(AddrPorts::available).sum()
    }

    /// Ports of the worker's slice over all addresses, free or in use.
    pub fn capacity(&self) -> usize {
        self.addrs.iter().map(|p| p.slice).sum()
    }
}

/// Feistel rounds of the port permutation.
const ROUNDS: usize = 4;

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A keyed permutation of `0..n`: a balanced Feistel network over the smallest
/// even bit width that holds `n`, cycle-walking until the value falls in range.
fn permute(i: u32, n: u32, keys: &[u64; ROUNDS]) -> u32 {
    let bits = (32 - n.saturating_sub(1).leading_zeros())
        .max(2)
        .next_multiple_of(2);
    let half = bits / 2;
    let mask = (1u32 << half) - 1;
    let mut x = i;
    loop {
        let (mut l, mut r) = (x >> half, x & mask);
        for key in keys {
            let f = (mix(u64::from(r) ^ key) as u32) & mask;
            (l, r) = (r, l ^ f);
        }
        x = (l << half) | r;
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn lip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 2, last))
    }

    #[test]
    fn workers_own_disjoint_ports_and_the_owner_is_computable() {
        let workers = 3;
        let pools: Vec<_> = (0..workers)
            .map(|w| LocalPortPool::new(WorkerId(w as u16), workers, &[lip(100)], 7))
            .collect();
        let total: usize = pools.iter().map(|p| p.available()).sum();
        // Mask 3: owner bits 0..=2 are used, 3 is nobody's.
        assert_eq!(total, (65536 - 1024) / 4 * 3);
        for (w, mut pool) in pools.into_iter().enumerate() {
            for _ in 0..100 {
                let (_, port) = pool.allocate().unwrap();
                assert_eq!(port_owner(port, workers), WorkerId(w as u16));
            }
        }
    }

    #[test]
    fn allocation_rotates_addresses_and_ports_come_back() {
        let mut pool = LocalPortPool::new(WorkerId(0), 1, &[lip(100), lip(101)], 7);
        let before = pool.available();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_ne!(a.0, b.0);
        pool.release(a.0, a.1);
        pool.release(b.0, b.1);
        assert_eq!(pool.available(), before);
    }

    #[test]
    fn exhaustion_and_address_changes() {
        let mut pool = LocalPortPool::new(WorkerId(1), 2, &[lip(100)], 7);
        let n = pool.available();
        let taken: Vec<_> = (0..n).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(pool.allocate(), None);
        pool.set_addresses(&[lip(100), lip(101)]);
        assert_eq!(
            pool.available(),
            n,
            "kept address stays exhausted, new one is full"
        );
        pool.release(taken[0].0, taken[0].1);
        assert_eq!(pool.available(), n + 1);
    }

    proptest::proptest! {
        /// Ports come out distinct, owned by the worker, not in sequence, and
        /// the whole slice is handed out before the pool runs dry.
        #[test]
        fn ports_are_a_keyed_permutation_of_the_slice(
            seed in proptest::prelude::any::<u64>(),
            workers in 1usize..6,
            w in 0u16..6,
        ) {
            let w = w % workers as u16;
            let mut pool = LocalPortPool::new(WorkerId(w), workers, &[lip(100)], seed);
            let n = pool.available();
            let mask = owner_mask(workers);
            let expected = (FIRST_PORT..=u16::MAX).filter(|p| p & mask == w).count();
            proptest::prop_assert_eq!(n, expected);
            let mut seen = vec![false; 65536];
            let mut ports = Vec::with_capacity(n);
            while let Some((_, port)) = pool.allocate() {
                proptest::prop_assert!(port >= FIRST_PORT);
                proptest::prop_assert_eq!(port_owner(port, workers), WorkerId(w));
                proptest::prop_assert!(!std::mem::replace(&mut seen[port as usize], true));
                ports.push(port);
            }
            proptest::prop_assert_eq!(ports.len(), n);
            let step = mask + 1;
            let sequential = ports
                .windows(2)
                .filter(|p| p[1].wrapping_sub(p[0]) == step)
                .count();
            proptest::prop_assert!(sequential < n / 100 + 2, "{} sequential steps", sequential);
        }
    }

    #[test]
    fn reserved_ports_are_never_handed_out_until_released() {
        let mut pool = LocalPortPool::new(WorkerId(1), 2, &[lip(100)], 7);
        let n = pool.available();
        assert!(pool.reserve(lip(100), 2001));
        assert!(!pool.reserve(lip(100), 2001), "already in use");
        assert!(!pool.reserve(lip(100), 2000), "worker 0's port");
        assert!(!pool.reserve(lip(100), 1023), "below the first port");
        assert!(!pool.reserve(lip(101), 2003), "not a local address");
        assert_eq!(pool.available(), n - 1);
        let taken = pool.allocate().unwrap();
        assert!(pool.reserve(lip(100), 2003) || taken.1 == 2003);
        pool.release(taken.0, taken.1);
        pool.release(taken.0, taken.1); // a second release changes nothing
        pool.release(lip(100), 2001);
        let mut seen = vec![0u8; 65536];
        while let Some((_, port)) = pool.allocate() {
            seen[usize::from(port)] += 1;
        }
        assert!(seen.iter().all(|&k| k <= 1), "no port handed out twice");
        assert_eq!(seen[2001], 1, "the released reservation came back");
        assert_eq!(seen[2003], u8::from(taken.1 == 2003));
        assert_eq!(pool.available(), 0);
    }

    #[test]
    fn the_order_depends_on_the_seed() {
        let first = |seed| {
            let mut pool = LocalPortPool::new(WorkerId(0), 1, &[lip(100)], seed);
            (0..8)
                .map(|_| pool.allocate().unwrap().1)
                .collect::<Vec<_>>()
        };
        assert_ne!(first(1), first(2));
        assert_eq!(first(3), first(3));
    }
}
