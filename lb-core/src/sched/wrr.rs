//! `wrr`: weighted round robin, as IPVS's ip_vs_wrr.
//!
//! IPVS keeps a position `i` (starting before the first server) and a current
//! weight `cw` (starting at 0). Each step moves `i` to the next server; whenever it
//! wraps to the first server, `cw` drops by the gcd of the weights and restarts at
//! the maximum weight when it reaches zero. The first available server whose weight
//! is at least `cw` is picked. With weights 4, 3, 2 this yields
//! `A A B A B C A B C`: each server gets its weight's share of every cycle.
//!
//! Each worker keeps its own `(i, cw)` in one word of a [`PerWorkerWord`].

use std::sync::Arc;

use super::{PerWorkerWord, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Weighted round robin; each worker keeps its own position and current weight.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// Per worker: `(last pick + 1) << 32 | cw`; 0 = "before the first server, cw 0".
    state: PerWorkerWord,
    /// Greatest common divisor of the positive weights (1 if there are none).
    gcd: u32,
    /// Largest weight (0: nothing can ever be picked).
    max_weight: u32,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl WeightedRoundRobin {
    /// A weighted round robin over `dests` for `workers` workers.
    pub fn new(dests: &[Arc<RealServer>], workers: usize) -> Self {
        let positive = dests.iter().map(|d| d.weight).filter(|&w| w > 0);
        let g = positive.clone().fold(0, gcd);
        WeightedRoundRobin {
            state: PerWorkerWord::new(workers, |_| 0),
            gcd: g.max(1),
            max_weight: positive.max().unwrap_or(0),
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn pick(&self, worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let n = dests.len();
        if n == 0 || self.max_weight == 0 {
            return None;
        }
        let packed = self.state.get(worker);
        let mut i = (packed >> 32) as usize % n;
        let mut cw = i64::from(packed as u32);
        // At most the rest of the current pass, then one full pass: when a pass
        // starts with `cw` above every available weight, IPVS would run empty passes
        // lowering `cw` by the gcd until it reaches the largest available weight
        // (all weights are multiples of the gcd), so jump there directly.
        for _ in 0..=2 * n {
            if i == 0 {
                cw -= i64::from(self.gcd);
                if cw <= 0 {
                    cw = i64::from(self.max_weight);
                }
                let max_available = dests
                    .iter()
                    .filter(|d| d.is_available())
                    .map(|d| d.weight)
                    .max()
                    .unwrap_or(0);
                if max_available == 0 {
                    return None;
                }
                cw = cw.min(i64::from(max_available));
            }
            let d = &dests[i];
            if i64::from(d.weight) >= cw && d.is_available() {
                self.state.set(worker, ((i as u64 + 1) << 32) | cw as u64);
                return Some(i);
            }
            i = (i + 1) % n;
        }
        None
    }

    fn positions(&self) -> Option<Vec<u64>> {
        Some(self.state.values())
    }

    fn resume(&self, positions: &[u64]) {
        self.state.restore(positions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    fn picks(wrr: &WeightedRoundRobin, servers: &[Arc<RealServer>], count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| wrr.pick(WorkerId(0), servers, &client(1)).unwrap())
            .collect()
    }

    #[test]
    fn ipvs_sequence_for_4_3_2() {
        // cw=4: A; cw=3: A B; cw=2: A B C; cw=1: A B C; then again from cw=4.
        let servers = dests(&[4, 3, 2]);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(
            picks(&wrr, &servers, 18),
            [0, 0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1, 0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn gcd_steps_and_list_order() {
        // Weights 2, 4 (gcd 2): cw=4: B; cw=2: A B.
        let servers = dests(&[2, 4]);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(picks(&wrr, &servers, 6), [1, 0, 1, 1, 0, 1]);
        // The heavier server first even when listed last.
        let servers = dests(&[1, 1, 3]);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(picks(&wrr, &servers, 10), [2, 2, 0, 1, 2, 2, 2, 0, 1, 2]);
    }

    #[test]
    fn exact_shares_1_2_3() {
        let servers = dests(&[1, 2, 3]);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        let mut counts = [0; 3];
        for i in picks(&wrr, &servers, 600) {
            counts[i] += 1;
        }
        assert_eq!(counts, [100, 200, 300]);
    }

    #[test]
    fn skips_quiescent_and_overloaded_servers() {
        let servers = dests(&[4, 0, 2]);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(picks(&wrr, &servers, 6), [0, 0, 2, 0, 0, 2]);

        // The heaviest server over its threshold: the others share without
        // running 65535 empty passes.
        let servers = vec![server(0, 65535, 4), server(1, 1, 0), server(2, 2, 0)];
        set_conns(&servers[0], 4, 0);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(picks(&wrr, &servers, 6), [2, 1, 2, 2, 1, 2]);
        // Once it drops below three quarters of its threshold it is picked again.
        set_conns(&servers[0], 0, 0);
        assert!(picks(&wrr, &servers, 3).contains(&0));
    }

    #[test]
    fn none_when_nothing_available() {
        let servers = dests(&[0, 0]);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(wrr.pick(WorkerId(0), &servers, &client(1)), None);
        let servers = vec![server(0, 3, 1)];
        set_conns(&servers[0], 0, 1);
        let wrr = WeightedRoundRobin::new(&servers, 1);
        assert_eq!(wrr.pick(WorkerId(0), &servers, &client(1)), None);
        assert_eq!(
            WeightedRoundRobin::new(&[], 1).pick(WorkerId(0), &[], &client(1)),
            None
        );
    }

    #[test]
    fn workers_keep_their_own_position() {
        let servers = dests(&[2, 1]);
        let wrr = WeightedRoundRobin::new(&servers, 2);
        let w0: Vec<_> = (0..3)
            .map(|_| wrr.pick(WorkerId(0), &servers, &client(1)).unwrap())
            .collect();
        let w1: Vec<_> = (0..3)
            .map(|_| wrr.pick(WorkerId(1), &servers, &client(1)).unwrap())
            .collect();
        assert_eq!(w0, [0, 0, 1]);
        assert_eq!(w1, [0, 0, 1]);
    }
}
