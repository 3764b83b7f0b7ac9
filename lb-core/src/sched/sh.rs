//! `sh`: source hashing, as IPVS's ip_vs_sh.
//!
//! A static 256-bucket table is tiled as IPVS's `ip_vs_sh_reassign` does: walking
//! the buckets in order, each server (in list order, cycling) takes `weight`
//! consecutive buckets (at least one, so a quiescent server still owns buckets and
//! its clients get no server unless `sh-fallback` is set). A connection goes to
//! bucket `hash_32(src_port + src_ip, 8)` (the port only with `sh-port`, else 0).
//! With `sh-fallback` an unavailable owner makes IPVS probe `(offset +
//! hash_32(..)) & 255` for offsets `ihash, ihash + 1, …` (`ip_vs_sh_get_fallback`);
//! without it, `None`.

use std::sync::Arc;

use super::{addr_fold, hash_32, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// log2 of the bucket count (IPVS `CONFIG_IP_VS_SH_TAB_BITS`).
const TAB_BITS: u32 = 8;
/// Bucket count.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// Bucket index mask.
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;

/// Source hashing over a fixed, weight-tiled 256-bucket table.
#[derive(Debug)]
pub struct SourceHashing {
    /// Server index per bucket (`u16::MAX`: no servers).
    buckets: Box<[u16; TAB_SIZE]>,
    /// `sh-fallback`: probe other buckets when the owner is unavailable.
    fallback: bool,
    /// `sh-port`: hash the source port too.
    port: bool,
}

impl SourceHashing {
    /// The table for `dests` (more than 65535 servers: the first 65535 only).
    pub fn new(dests: &[Arc<RealServer>], fallback: bool, port: bool) -> Self {
        let n = dests.len().min(usize::from(u16::MAX));
        let mut buckets = Box::new([u16::MAX; TAB_SIZE]);
        if n > 0 {
            let (mut d, mut count) = (0usize, 0u32);
            for b in buckets.iter_mut() {
                *b = d as u16;
                count += 1;
                if count >= dests[d].weight {
                    d = (d + 1) % n;
                    count = 0;
                }
            }
        }
        SourceHashing {
            buckets,
            fallback,
            port,
        }
    }

    /// IPVS `ip_vs_sh_hashkey`.
    #[inline]
    fn hashkey(key: u32, offset: u32) -> usize {
        (offset.wrapping_add(hash_32(key, TAB_BITS)) & TAB_MASK) as usize
    }
}

impl Scheduler for SourceHashing {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], flow: &FlowKey) -> Option<usize> {
        let port = if self.port { u32::from(flow.sport) } else { 0 };
        let key = port.wrapping_add(addr_fold(&flow.src));
        let ihash = Self::hashkey(key, 0);
        let available = |b: usize| {
            let i = usize::from(self.buckets[b]);
            dests.get(i).map(|d| (i, d.is_available()))
        };
        match available(ihash)? {
            (i, true) => Some(i),
            (_, false) if !self.fallback => None,
            (_, false) => {
                for offset in 0..TAB_SIZE as u32 {
                    let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
                    if let (i, true) = available(Self::hashkey(key, roffset))? {
                        return Some(i);
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn counts(sh: &SourceHashing, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for b in sh.buckets.iter() {
            c[usize::from(*b)] += 1;
        }
        c
    }

    #[test]
    fn weight_tiled_table_as_ipvs() {
        // A, B B, C C C, A, … : 42 full cycles (252 buckets) then A B B C.
        let servers = dests(&[1, 2, 3]);
        let sh = SourceHashing::new(&servers, false, false);
        assert_eq!(&sh.buckets[..8], &[0, 1, 1, 2, 2, 2, 0, 1]);
        assert_eq!(counts(&sh, 3), [43, 86, 127]);
        // A quiescent server still takes one bucket per cycle.
        let sh = SourceHashing::new(&dests(&[2, 0]), false, false);
        assert_eq!(&sh.buckets[..6], &[0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn stable_per_source_and_weighted() {
        let servers = dests(&[1, 3]);
        let sh = SourceHashing::new(&servers, false, false);
        let mut seen = [0usize; 2];
        for n in 0..20_000 {
            let flow = client(n);
            let i = sh.pick(WorkerId(0), &servers, &flow).unwrap();
            let mut other = flow;
            other.sport = 1;
            other.dst = "192.0.2.99".parse().unwrap();
            assert_eq!(sh.pick(WorkerId(0), &servers, &other), Some(i));
            seen[i] += 1;
        }
        // Clients spread roughly 1:3, as the table (64 : 192 buckets).
        let share = seen[1] as f64 / 20_000.0;
        assert!((0.70..0.80).contains(&share), "{seen:?}");
    }

    #[test]
    fn sh_port_hashes_the_source_port() {
        let servers = dests(&[1, 1, 1, 1]);
        let sh = SourceHashing::new(&servers, false, true);
        let mut flow = client(5);
        let picks: std::collections::HashSet<_> = (0..64)
            .map(|p| {
                flow.sport = 1000 + p;
                sh.pick(WorkerId(0), &servers, &flow).unwrap()
            })
            .collect();
        assert!(picks.len() > 1);
        // The key is port + address, as IPVS: (addr - 1, port + 1) collides.
        let a = client(5);
        let mut b = client(4);
        b.sport = a.sport + 1;
        assert_eq!(
            sh.pick(WorkerId(0), &servers, &a),
            sh.pick(WorkerId(0), &servers, &b)
        );
    }

    #[test]
    fn fallback_only_moves_clients_of_unavailable_servers() {
        let servers = vec![
            server(0, 1, 0),
            server(1, 1, 1),
            server(2, 0, 0),
            server(3, 1, 0),
        ];
        set_conns(&servers[1], 0, 1);
        let plain = SourceHashing::new(&servers, false, false);
        let fb = SourceHashing::new(&servers, true, false);
        let (mut none, mut moved) = (0, 0);
        for n in 0..5000 {
            let flow = client(n);
            let owner = usize::from(plain.buckets[SourceHashing::hashkey(addr_fold(&flow.src), 0)]);
            let p = plain.pick(WorkerId(0), &servers, &flow);
            let f = fb.pick(WorkerId(0), &servers, &flow).unwrap();
            assert!(f == 0 || f == 3);
            if owner == 1 || owner == 2 {
                assert_eq!(p, None);
                none += 1;
                moved += 1;
            } else {
                assert_eq!(p, Some(owner));
                assert_eq!(f, owner);
            }
        }
        assert!(none > 0 && moved > 0);
        // Nothing available: None even with fallback.
        let servers = dests(&[0, 0]);
        let fb = SourceHashing::new(&servers, true, false);
        assert_eq!(fb.pick(WorkerId(0), &servers, &client(1)), None);
    }
}
