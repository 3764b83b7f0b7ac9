//! `wlc`: weighted least connections (ipvsadm's default), as IPVS's ip_vs_wlc.
//!
//! Picks the available server with the smallest `overhead / weight`, where
//! overhead is `active * 256 + inactive`. As IPVS: the first available server is
//! the initial choice and a later server replaces it only when `loh * dw > doh *
//! lw` (strictly less loaded), so ties go to the earlier server.

use std::sync::Arc;

use super::{weighted_least, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Weighted least connections (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct WeightedLeastConn;

/// The `wlc` choice over all of `dests` (also what `lblc` and `lblcr` fall back to).
#[inline]
pub(crate) fn wlc_pick(dests: &[Arc<RealServer>]) -> Option<usize> {
    weighted_least(dests, 0..dests.len(), RealServer::overhead)
}

impl Scheduler for WeightedLeastConn {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        wlc_pick(dests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn pick(servers: &[Arc<RealServer>]) -> Option<usize> {
        WeightedLeastConn.pick(WorkerId(0), servers, &client(1))
    }

    #[test]
    fn least_overhead_per_weight_with_ipvs_ties() {
        let servers = dests(&[1, 2, 3]);
        assert_eq!(pick(&servers), Some(0)); // all idle: the first
        set_conns(&servers[0], 1, 0); // 256 / 1
        set_conns(&servers[1], 2, 0); // 512 / 2 = 256: tie with 0, 0 stays
        set_conns(&servers[2], 3, 1); // 769 / 3 > 256
        assert_eq!(pick(&servers), Some(0));
        set_conns(&servers[0], 1, 1); // 257 / 1 > 256 / 2... → 1
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[2], 3, 0); // 768 / 3 = 256: ties with 1, 1 stays
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[1], 2, 1); // 513 / 2 > 256 → 2
        assert_eq!(pick(&servers), Some(2));
    }

    #[test]
    fn skips_quiescent_and_overloaded_first_servers() {
        let servers = vec![
            server(0, 0, 0),
            server(1, 4, 1),
            server(2, 1, 0),
            server(3, 1, 0),
        ];
        set_conns(&servers[1], 0, 1);
        set_conns(&servers[2], 0, 1);
        assert_eq!(pick(&servers), Some(3));
        set_conns(&servers[2], 0, 0);
        assert_eq!(pick(&servers), Some(2));
        assert_eq!(pick(&dests(&[0, 0])), None);
    }
}
