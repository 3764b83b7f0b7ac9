//! `fo`: weighted failover, as IPVS's ip_vs_fo.
//!
//! Every new connection goes to the available server with the highest weight; the
//! first in list order among equals.

use std::sync::Arc;

use super::Scheduler;
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Weighted failover (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if best.is_some_and(|(_, hw)| d.weight <= hw) {
                continue;
            }
            if d.is_available() {
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
        WeightedFailover.pick(WorkerId(0), servers, &client(1))
    }

    #[test]
    fn highest_weight_first_on_ties_then_fails_over() {
        let servers = vec![
            server(0, 5, 0),
            server(1, 9, 2),
            server(2, 9, 0),
            server(3, 1, 0),
        ];
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[1], 2, 0); // over its threshold
        assert_eq!(pick(&servers), Some(2));
        let servers = vec![server(0, 5, 0), server(1, 0, 0)];
        assert_eq!(pick(&servers), Some(0));
        assert_eq!(pick(&dests(&[0])), None);
    }
}
