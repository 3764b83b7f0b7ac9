//! `rr`: round robin over the servers that are available, as IPVS's ip_vs_rr.

use std::sync::Arc;

use super::{PerWorkerCursor, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Round robin; each worker keeps its own position.
#[derive(Debug)]
pub struct RoundRobin {
    last: PerWorkerCursor,
}

impl RoundRobin {
    /// A round robin for `workers` workers, each starting before the first server.
    pub fn new(workers: usize) -> Self {
        RoundRobin {
            last: PerWorkerCursor::new(workers),
        }
    }
}

impl Scheduler for RoundRobin {
    fn pick(&self, worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        // The cursor stores last pick + 1 so that 0 means "nothing picked yet".
        let start = self.last.get(worker) % n;
        (0..n)
            .map(|step| (start + step) % n)
            .find(|&i| dests[i].is_available())
            .inspect(|&i| {
                self.last.set(worker, i + 1);
            })
    }

    fn positions(&self) -> Option<Vec<u64>> {
        Some(self.last.values())
    }

    fn resume(&self, positions: &[u64]) {
        self.last.restore(positions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::dests;
    use std::net::Ipv4Addr;

    #[test]
    fn cycles_in_order_and_skips_quiescent_servers() {
        let servers = dests(&[1, 0, 5, 1]);
        let rr = RoundRobin::new(1);
        let flow = FlowKey::v4(6, Ipv4Addr::LOCALHOST, 1, Ipv4Addr::LOCALHOST, 2);
        let picks: Vec<_> = (0..6)
            .map(|_| rr.pick(WorkerId(0), &servers, &flow).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn none_when_all_quiescent() {
        let servers = dests(&[0, 0]);
        let flow = FlowKey::v4(6, Ipv4Addr::LOCALHOST, 1, Ipv4Addr::LOCALHOST, 2);
        assert_eq!(RoundRobin::new(1).pick(WorkerId(0), &servers, &flow), None);
    }
}
