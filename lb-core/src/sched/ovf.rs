//! `ovf`: weighted overflow, as IPVS's ip_vs_ovf.
//!
//! New connections go to the available server with the highest weight (first in
//! list order among equals) as long as its active connections do not exceed its
//! weight (IPVS skips a server when `active > weight`); then they overflow to the
//! next highest weight.

use std::sync::Arc;

use super::Scheduler;
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Weighted overflow (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if best.is_some_and(|(_, hw)| d.weight <= hw) {
                continue;
            }
            if d.is_available() && d.counters.active() <= u64::from(d.weight) {
                best = Some((i, d.weight));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn pick(servers: &[Arc<RealServer>]) -> Option<usize> {
        WeightedOverflow.pick(WorkerId(0), servers, &client(1))
    }

    #[test]
    fn overflows_when_active_exceeds_weight() {
        let servers = dests(&[2, 3, 3]);
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[1], 3, 100); // active == weight: still taken
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[1], 4, 0); // active > weight: next in line
        assert_eq!(pick(&servers), Some(2));
        set_conns(&servers[2], 4, 0);
        assert_eq!(pick(&servers), Some(0));
        set_conns(&servers[0], 3, 0);
        assert_eq!(pick(&servers), None);
        set_conns(&servers[1], 3, 0);
        assert_eq!(pick(&servers), Some(1));
    }

    #[test]
    fn never_picks_quiescent_or_overloaded() {
        let servers = vec![server(0, 0, 0), server(1, 9, 1), server(2, 1, 0)];
        set_conns(&servers[1], 0, 1);
        assert_eq!(pick(&servers), Some(2));
        assert_eq!(pick(&dests(&[0])), None);
    }
}
