//! `sed`: shortest expected delay, as IPVS's ip_vs_sed.
//!
//! Picks the available server with the smallest `(active + 1) / weight` (inactive
//! connections are ignored), with `wlc`'s IPVS tie-breaking: the earlier server
//! wins unless a later one is strictly better.

use std::sync::Arc;

use super::{weighted_least, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Shortest expected delay (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct ShortestExpectedDelay;

/// `sed`'s expected overhead of one more connection.
#[inline]
pub(crate) fn sed_overhead(d: &RealServer) -> u64 {
    d.counters.active() + 1
}

impl Scheduler for ShortestExpectedDelay {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        weighted_least(dests, 0..dests.len(), sed_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn pick(servers: &[Arc<RealServer>]) -> Option<usize> {
        ShortestExpectedDelay.pick(WorkerId(0), servers, &client(1))
    }

    #[test]
    fn least_expected_delay_with_ipvs_ties() {
        let servers = dests(&[1, 3]);
        // Idle: 1/1 vs 1/3 → the heavier server.
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[1], 2, 0); // 3/3 = 1/1: tie, the first wins
        assert_eq!(pick(&servers), Some(0));
        set_conns(&servers[0], 1, 0); // 2/1 > 3/3
        assert_eq!(pick(&servers), Some(1));
        // Inactive connections do not count.
        set_conns(&servers[1], 2, 1000);
        assert_eq!(pick(&servers), Some(1));
    }

    #[test]
    fn never_picks_quiescent_or_overloaded() {
        let servers = vec![server(0, 0, 0), server(1, 100, 5), server(2, 1, 0)];
        set_conns(&servers[1], 0, 5);
        set_conns(&servers[2], 50, 0);
        assert_eq!(pick(&servers), Some(2));
        assert_eq!(pick(&dests(&[0])), None);
    }
}
