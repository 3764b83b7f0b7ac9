//! `lc`: least connections, as IPVS's ip_vs_lc.
//!
//! Picks the available server with the smallest overhead (`active * 256 +
//! inactive`), scanning in list order and replacing the current choice only on a
//! strictly smaller overhead, so the first of equally loaded servers wins.
//! Weights only matter through availability (0 = quiescent).

use std::sync::Arc;

use super::Scheduler;
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Least connections (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastConn;

impl Scheduler for LeastConn {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let doh = d.overhead();
            match least {
                Some((_, loh)) if doh >= loh => {}
                _ => least = Some((i, doh)),
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn pick(servers: &[Arc<RealServer>]) -> Option<usize> {
        LeastConn.pick(WorkerId(0), servers, &client(1))
    }

    #[test]
    fn least_overhead_first_minimum_wins() {
        let servers = dests(&[1, 5, 1, 1]);
        assert_eq!(pick(&servers), Some(0));
        set_conns(&servers[0], 1, 0); // 256
        set_conns(&servers[1], 0, 300); // 300
        set_conns(&servers[2], 0, 200); // 200
        set_conns(&servers[3], 0, 200); // 200: tie with 2, 2 is first
        assert_eq!(pick(&servers), Some(2));
        set_conns(&servers[2], 0, 201);
        assert_eq!(pick(&servers), Some(3));
        // Weight does not scale the load: 1 inactive on a weight-5 server loses
        // to 0 on a weight-1 server.
        let servers = dests(&[5, 1]);
        set_conns(&servers[0], 0, 1);
        assert_eq!(pick(&servers), Some(1));
    }

    #[test]
    fn never_picks_quiescent_or_overloaded() {
        let servers = vec![server(0, 0, 0), server(1, 1, 2), server(2, 1, 0)];
        set_conns(&servers[1], 2, 0);
        set_conns(&servers[2], 9, 9);
        assert_eq!(pick(&servers), Some(2));
        set_conns(&servers[2], 0, 0);
        set_conns(&servers[2], 1, 0);
        let servers = vec![server(0, 0, 0)];
        assert_eq!(pick(&servers), None);
    }
}
