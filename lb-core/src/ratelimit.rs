//! A token bucket, for what the director originates in answer to traffic (ICMP
//! errors): a flood of bad packets must not turn the director into a reflector.

use std::time::Duration;

use crate::time::Instant;

/// ICMP errors a worker may send per second, sustained.
pub const ICMP_ERRORS_PER_SECOND: u32 = 1000;
/// ICMP errors a worker may send in a burst.
pub const ICMP_ERROR_BURST: u32 = 100;

/// Allows `rate` events per second on average, `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    rate: u32,
    burst: u32,
    tokens: u32,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        TokenBucket {
            rate: rate.max(1),
            burst: burst.max(1),
            tokens: burst.max(1),
            last: now,
        }
    }

    /// Takes a token if one is left (after refilling for the time since the last
    /// refill); `false` means the event should be suppressed.
    pub fn take(&mut self, now: Instant) -> bool {
        let per_token = Duration::from_secs(1) / self.rate;
        let earned = now.saturating_since(self.last).as_nanos() / per_token.as_nanos().max(1);
        if earned > 0 {
            self.tokens = (u128::from(self.tokens) + earned).min(u128::from(self.burst)) as u32;
            self.last = self.last + per_token * earned.min(u128::from(u32::MAX)) as u32;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_sustained_rate() {
        let t0 = Instant(1_000_000_000);
        let mut bucket = TokenBucket::new(1000, 100, t0);
        assert_eq!((0..150).filter(|_| bucket.take(t0)).count(), 100);
        // 50 ms later: 50 more tokens.
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!((0..150).filter(|_| bucket.take(t1)).count(), 50);
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..150).filter(|_| bucket.take(t2)).count(), 100);
    }
}
