//! `twos`: power of two choices, as IPVS's ip_vs_twos.
//!
//! Draws two servers at random, each with probability proportional to its weight
//! among the available servers, and keeps the one with the lower `overhead /
//! weight` (the first draw unless the second is strictly better: IPVS's
//! `weight2 * overhead1 > weight1 * overhead2`).
//!
//! Randomness: one xorshift64* state per worker, seeded deterministically from the
//! worker index, so runs (and tests) are reproducible.

use std::sync::Arc;

use super::{weighted_greater, PerWorkerWord, Scheduler};
use crate::flow::FlowKey;
use crate::ids::WorkerId;
use crate::service::RealServer;

/// Power of two choices; each worker has its own random state.
#[derive(Debug)]
pub struct PowerOfTwoChoices {
    rng: PerWorkerWord,
}

/// SplitMix64 finaliser: a well-mixed, non-zero-for-our-inputs seed.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl PowerOfTwoChoices {
    /// Random states for `workers` workers.
    pub fn new(workers: usize) -> Self {
        PowerOfTwoChoices {
            rng: PerWorkerWord::new(workers, |w| splitmix64(w as u64 + 1) | 1),
        }
    }

    /// Two uniform draws in `0..total` from the worker's xorshift64* state.
    #[inline]
    fn draw2(&self, worker: WorkerId, total: u64) -> (u64, u64) {
        let mut x = self.rng.get(worker);
        let mut next = || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            // Multiply-shift range reduction (Lemire).
            ((u128::from(r) * u128::from(total)) >> 64) as u64
        };
        let pair = (next(), next());
        self.rng.set(worker, x);
        pair
    }
}

impl Scheduler for PowerOfTwoChoices {
    fn pick(&self, worker: WorkerId, dests: &[Arc<RealServer>], _flow: &FlowKey) -> Option<usize> {
        let total: u64 = dests
            .iter()
            .filter(|d| d.is_available())
            .map(|d| u64::from(d.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let (r1, r2) = self.draw2(worker, total);
        let (mut c1, mut c2) = (None, None);
        let mut cum = 0u64;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            cum += u64::from(d.weight);
            if c1.is_none() && r1 < cum {
                c1 = Some(i);
            }
            if c2.is_none() && r2 < cum {
                c2 = Some(i);
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        // Availability may change between the passes: keep whatever was drawn.
        let (c1, c2) = match (c1, c2) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) | (None, Some(a)) => return Some(a),
            (None, None) => return None,
        };
        let (d1, d2) = (&dests[c1], &dests[c2]);
        if c1 != c2 && weighted_greater(d1.overhead(), d1.weight, d2.overhead(), d2.weight) {
            Some(c2)
        } else {
            Some(c1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::test_support::{client, dests, server, set_conns};

    #[test]
    fn idle_servers_chosen_by_weight() {
        let servers = dests(&[1, 3]);
        let twos = PowerOfTwoChoices::new(1);
        let mut seen = [0usize; 2];
        for _ in 0..40_000 {
            seen[twos.pick(WorkerId(0), &servers, &client(1)).unwrap()] += 1;
        }
        // All idle: ties keep the first draw, so picks follow the weights.
        let share = seen[1] as f64 / 40_000.0;
        assert!((0.73..0.77).contains(&share), "{seen:?}");
    }

    #[test]
    fn prefers_the_less_loaded_of_two() {
        // Two servers: whenever both are drawn, the idle one wins; so the loaded
        // one is picked only when drawn twice (1/4 of the time).
        let servers = dests(&[1, 1]);
        set_conns(&servers[0], 10, 0);
        let twos = PowerOfTwoChoices::new(1);
        let mut seen = [0usize; 2];
        for _ in 0..40_000 {
            seen[twos.pick(WorkerId(0), &servers, &client(1)).unwrap()] += 1;
        }
        let share = seen[0] as f64 / 40_000.0;
        assert!((0.23..0.27).contains(&share), "{seen:?}");
    }

    #[test]
    fn deterministic_per_worker() {
        let servers = dests(&[1, 1, 1, 1, 1]);
        let a = PowerOfTwoChoices::new(2);
        let b = PowerOfTwoChoices::new(2);
        let seq = |t: &PowerOfTwoChoices, w| -> Vec<_> {
            (0..50)
                .map(|_| t.pick(WorkerId(w), &servers, &client(1)).unwrap())
                .collect()
        };
        assert_eq!(seq(&a, 0), seq(&b, 0));
        assert_ne!(seq(&a, 0), seq(&a, 1));
    }

    #[test]
    fn never_picks_quiescent_or_overloaded() {
        let servers = vec![server(0, 0, 0), server(1, 5, 1), server(2, 1, 0)];
        set_conns(&servers[1], 1, 0);
        let twos = PowerOfTwoChoices::new(1);
        for _ in 0..1000 {
            assert_eq!(twos.pick(WorkerId(0), &servers, &client(1)), Some(2));
        }
        assert_eq!(twos.pick(WorkerId(0), &dests(&[0, 0]), &client(1)), None);
    }
}
