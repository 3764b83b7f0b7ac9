//! `dh`: destination hashing, as IPVS's ip_vs_dh.
//!
//! A static 256-bucket table is filled once per server set: IPVS's
//! `ip_vs_dh_reassign` assigns bucket `i` to server `i mod n`, in list order and
//! regardless of weight (weights only gate availability; `sh` is the weighted
//! one). A connection goes to the bucket `hash_32(dst_ip, 8)`; if that server is
//! unavailable (quiescent or overloaded) there is no fallback: `None`.

use std::sync::Arc;

use super::{addr_fold, hash_32, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// log2 of the bucket count (IPVS `CONFIG_IP_VS_DH_TAB_BITS`).
const TAB_BITS: u32 = 8;
/// Bucket count.
const TAB_SIZE: usize = 1 << TAB_BITS;

/// Destination hashing over a fixed 256-bucket table.
#[derive(Debug)]
pub struct DestinationHashing {
    /// Server index per bucket (`u16::MAX`: no servers).
    buckets: Box<[u16; TAB_SIZE]>,
}

impl DestinationHashing {
    /// The table for `dests` (more than 65535 servers: the first 65535 only).
    pub fn new(dests: &[Arc<RealServer>]) -> Self {
        let n = dests.len().min(usize::from(u16::MAX));
        let mut buckets = Box::new([u16::MAX; TAB_SIZE]);
        if n > 0 {
            for (i, b) in buckets.iter_mut().enumerate() {
                *b = (i % n) as u16;
            }
        }
        DestinationHashing { buckets }
    }

    /// The bucket a destination address hashes to.
    #[inline]
    fn bucket(flow: &FlowKey) -> usize {
        hash_32(addr_fold(&flow.dst), TAB_BITS) as usize
    }
}

impl Scheduler for DestinationHashing {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], flow: &FlowKey) -> Option<usize> {
        let i = usize::from(self.buckets[Self::bucket(flow)]);
        dests.get(i).filter(|d| d.is_available()).map(|_| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{dests, server, set_conns, to_dest};

    #[test]
    fn stable_per_destination_and_tiled_in_list_order() {
        let servers = dests(&[1, 2, 3]);
        let dh = DestinationHashing::new(&servers);
        let mut counts = [0usize; 3];
        for b in dh.buckets.iter() {
            counts[usize::from(*b)] += 1;
        }
        // 256 = 3 * 85 + 1: round robin over the list, weights ignored (as IPVS).
        assert_eq!(counts, [86, 85, 85]);
        for n in 0..1000 {
            let flow = to_dest(n);
            let first = dh.pick(WorkerId(0), &servers, &flow).unwrap();
            assert_eq!(
                first,
                dh.buckets[DestinationHashing::bucket(&flow)] as usize
            );
            // Same destination, any source: same server.
            let mut other = flow;
            other.src = "203.0.113.9".parse().unwrap();
            other.sport = 1234;
            assert_eq!(dh.pick(WorkerId(0), &servers, &other), Some(first));
        }
    }

    #[test]
    fn unavailable_owner_means_none() {
        let servers = vec![server(0, 1, 0), server(1, 0, 0), server(2, 1, 1)];
        set_conns(&servers[2], 1, 0);
        let dh = DestinationHashing::new(&servers);
        let mut seen = [0usize; 3];
        let mut none = 0;
        for n in 0..3000 {
            match dh.pick(WorkerId(0), &servers, &to_dest(n)) {
                Some(i) => seen[i] += 1,
                None => none += 1,
            }
        }
        assert!(seen[0] > 0 && none > 0);
        assert_eq!((seen[1], seen[2]), (0, 0));
        assert_eq!(
            DestinationHashing::new(&[]).pick(WorkerId(0), &[], &to_dest(1)),
            None
        );
    }
}
