//! The TSC as the core's monotonic clock.

use lb_core::time::Instant;

use crate::dpdk;

/// Converts TSC readings to nanoseconds since the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: u64,
    /// Nanoseconds per cycle as a 32.32 fixed-point number, so `now` is one
    /// multiplication.
    ns_per_cycle_q32: u128,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        let hz = u128::from(dpdk::tsc_hz().max(1));
        Clock {
            origin: dpdk::rdtsc(),
            ns_per_cycle_q32: (1_000_000_000u128 << 32) / hz,
        }
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        let cycles = u128::from(dpdk::rdtsc().wrapping_sub(self.origin));
        Instant(((cycles * self.ns_per_cycle_q32) >> 32) as u64)
    }
}
