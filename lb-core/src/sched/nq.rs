//! `nq`: never queue, as IPVS's ip_vs_nq.
//!
//! Scanning in list order, the first available server with no active connection
//! is picked at once; if every available server is busy, the one with the
//! smallest `(active + 1) / weight` (as `sed`, first wins ties).

use std::sync::Arc;

use super::sed::sed_overhead;
use super::{weighted_greater, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Never queue (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn pick(&self, _worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let doh = sed_overhead(d);
            if doh == 1 {
                // No active connection: an idle server takes it right away.
                return Some(i);
            }
            match least {
                Some((l, loh)) if !weighted_greater(loh, dests[l].weight, doh, d.weight) => {}
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
        NeverQueue.pick(WorkerId(0), servers, &client(1))
    }

    #[test]
    fn idle_server_first_then_sed() {
        let servers = dests(&[1, 10, 1]);
        // All idle: the first idle one, though sed would prefer the weight-10 server.
        assert_eq!(pick(&servers), Some(0));
        set_conns(&servers[0], 1, 0);
        set_conns(&servers[1], 5, 0);
        // Server 2 is idle (inactive connections do not count).
        set_conns(&servers[2], 0, 7);
        assert_eq!(pick(&servers), Some(2));
        set_conns(&servers[2], 1, 0);
        // Busy: 2/1, 6/10, 2/1 → server 1.
        assert_eq!(pick(&servers), Some(1));
        set_conns(&servers[1], 19, 0); // 20/10 = 2/1: tie, first wins
        assert_eq!(pick(&servers), Some(0));
    }

    #[test]
    fn never_picks_quiescent_or_overloaded() {
        let servers = vec![server(0, 0, 0), server(1, 1, 3), server(2, 1, 0)];
        set_conns(&servers[1], 0, 3); // idle but over its threshold
        set_conns(&servers[2], 4, 0);
        assert_eq!(pick(&servers), Some(2));
        assert_eq!(pick(&dests(&[0, 0])), None);
    }
}
