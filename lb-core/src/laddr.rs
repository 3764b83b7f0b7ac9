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
    free: VecDeque<u16>,
}

/// One worker's ports on every local address.
#[derive(Debug)]
pub struct LocalPortPool {
    worker: WorkerId,
    workers: usize,
    addrs: Vec<AddrPorts>,
    next: usize,
}

impl LocalPortPool {
    /// The pool of `worker` (of `workers`) over `addrs`.
    pub fn new(worker: WorkerId, workers: usize, addrs: &[IpAddr]) -> Self {
        let mut pool = LocalPortPool {
            worker,
            workers,
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
        let free: VecDeque<u16> = (FIRST_PORT..=u16::MAX)
            .filter(|p| p & mask == self.worker.0)
            .collect();
        AddrPorts { addr, free }
    }

    /// Takes a local address and port, round robin over the addresses.
    pub fn allocate(&mut self) -> Option<(IpAddr, u16)> {
        let n = self.addrs.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if let Some(port) = self.addrs[i].free.pop_front() {
                self.next = (i + 1) % n;
                return Some((self.addrs[i].addr, port));
            }
        }
        None
    }

    /// Returns a port taken with [`LocalPortPool::allocate`]. Ports go to the back of
    /// the queue so a just-closed tuple is reused as late as possible.
    pub fn release(&mut self, addr: IpAddr, port: u16) {
        if let Some(p) = self.addrs.iter_mut().find(|p| p.addr == addr) {
            p.free.push_back(port);
        }
    }

    /// Free ports over all addresses.
    pub fn available(&self) -> usize {
        self.addrs.iter().map(|p| p.free.len()).sum()
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
            .map(|w| LocalPortPool::new(WorkerId(w as u16), workers, &[lip(100)]))
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
        let mut pool = LocalPortPool::new(WorkerId(0), 1, &[lip(100), lip(101)]);
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
        let mut pool = LocalPortPool::new(WorkerId(1), 2, &[lip(100)]);
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
}
