//! A hashed timing wheel over dense entry indexes (the connection slab's).
//!
//! Links live in arrays beside the slab, so arming, re-arming and cancelling are O(1)
//! and never allocate. Expiry work per call is bounded by a budget, so a mass expiry
//! is spread over several polls instead of stalling forwarding. Deadlines beyond the
//! wheel's horizon park in the farthest slot and are re-linked when it comes round.

use crate::time::Instant;

const NIL: u32 = u32::MAX;
/// `prev` of a slot's first entry holds this flag and the slot number, so unlinking
/// a head needs no search.
const HEAD: u32 = 1 << 31;

/// A single-level hashed timing wheel.
#[derive(Debug)]
pub struct TimerWheel {
    tick_ns: u64,
    mask: u64,
    heads: Box<[u32]>,
    next: Box<[u32]>,
    prev: Box<[u32]>,
    /// Deadline tick of each entry; `u64::MAX` when not armed.
    deadline: Box<[u64]>,
    /// The tick whose slot is processed next.
    current: u64,
    armed: usize,
}

impl TimerWheel {
    /// A wheel for entries `0..capacity`, with `slots` slots (rounded up to a power
    /// of two) of `tick_ns` each, starting at `now`.
    ///
    /// # Panics
    /// If `capacity` or `slots` reach 2^31.
    pub fn new(capacity: usize, slots: usize, tick_ns: u64, now: Instant) -> Self {
        let slots = slots.next_power_of_two().max(2);
        assert!(capacity < HEAD as usize && slots < HEAD as usize);
        TimerWheel {
            tick_ns: tick_ns.max(1),
            mask: slots as u64 - 1,
            heads: vec![NIL; slots].into_boxed_slice(),
            next: vec![NIL; capacity].into_boxed_slice(),
            prev: vec![NIL; capacity].into_boxed_slice(),
            deadline: vec![u64::MAX; capacity].into_boxed_slice(),
            current: now.as_nanos() / tick_ns.max(1),
            armed: 0,
        }
    }

    /// The wheel's resolution.
    pub fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    /// How many entries are armed.
    pub fn armed(&self) -> usize {
        self.armed
    }

    /// Whether `idx` is armed.
    pub fn is_armed(&self, idx: u32) -> bool {
        self.deadline[idx as usize] != u64::MAX
    }

    /// Arms (or re-arms) `idx` to fire at `deadline`, at the earliest on the next tick.
    pub fn arm(&mut self, idx: u32, deadline: Instant) {
        if self.is_armed(idx) {
            self.unlink(idx);
        } else {
            self.armed += 1;
        }
        let tick = (deadline.as_nanos().div_ceil(self.tick_ns)).max(self.current + 1);
        self.deadline[idx as usize] = tick;
        self.link(idx, tick);
    }

    /// Disarms `idx`; nothing happens if it is not armed.
    pub fn cancel(&mut self, idx: u32) {
        if self.is_armed(idx) {
            self.unlink(idx);
            self.deadline[idx as usize] = u64::MAX;
            self.armed -= 1;
        }
    }

    /// Fires due entries up to `now`, handling at most `budget` entries. `on_fire`
    /// gets each due entry (already disarmed) and returns a new deadline to re-arm it,
    /// or `None` to leave it disarmed. Returns how many entries were handled; when
    /// that equals `budget`, more may be due.
    pub fn advance(
        &mut self,
        now: Instant,
        budget: usize,
        mut on_fire: impl FnMut(u32) -> Option<Instant>,
    ) -> usize {
        let now_tick = now.as_nanos() / self.tick_ns;
        let mut handled = 0;
        while self.current <= now_tick && handled < budget {
            let slot = (self.current & self.mask) as usize;
            let idx = self.heads[slot];
            if idx == NIL {
                self.current += 1;
                continue;
            }
            handled += 1;
            self.unlink(idx);
            let due = self.deadline[idx as usize];
            if due > self.current {
                // Parked beyond the horizon on an earlier lap: move it closer.
                self.link(idx, due);
                continue;
            }
            self.deadline[idx as usize] = u64::MAX;
            self.armed -= 1;
            if let Some(deadline) = on_fire(idx) {
                self.armed += 1;
                let tick = deadline
                    .as_nanos()
                    .div_ceil(self.tick_ns)
                    .max(self.current + 1);
                self.deadline[idx as usize] = tick;
                self.link(idx, tick);
            }
        }
        handled
    }

    fn link(&mut self, idx: u32, tick: u64) {
        let horizon = self.current + self.mask;
        let slot = (tick.min(horizon) & self.mask) as usize;
        let head = self.heads[slot];
        self.next[idx as usize] = head;
        self.prev[idx as usize] = HEAD | slot as u32;
        if head != NIL {
            self.prev[head as usize] = idx;
        }
        self.heads[slot] = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let (n, p) = (self.next[idx as usize], self.prev[idx as usize]);
        if p & HEAD != 0 {
            self.heads[(p & !HEAD) as usize] = n;
        } else {
            self.next[p as usize] = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        }
        self.next[idx as usize] = NIL;
        self.prev[idx as usize] = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at_ms(ms: u64) -> Instant {
        Instant(ms * MS)
    }

    /// Advances in 1 ms steps up to `until_ms`, recording (idx, fire time).
    fn run(wheel: &mut TimerWheel, from_ms: u64, until_ms: u64) -> Vec<(u32, u64)> {
        let mut fired = Vec::new();
        for t in from_ms..=until_ms {
            wheel.advance(at_ms(t), usize::MAX, |idx| {
                fired.push((idx, t));
                None
            });
        }
        fired
    }

    #[test]
    fn fires_once_at_the_deadline_within_a_tick() {
        let mut wheel = TimerWheel::new(16, 64, 10 * MS, at_ms(0));
        let deadlines = [5u64, 10, 11, 99, 630, 641, 5000];
        for (i, d) in deadlines.iter().enumerate() {
            wheel.arm(i as u32, at_ms(*d));
        }
        let fired = run(&mut wheel, 0, 6000);
        assert_eq!(fired.len(), deadlines.len());
        for (idx, t) in fired {
            let d = deadlines[idx as usize];
            assert!(
                t >= d && t < d + 10,
                "timer {idx} for {d} ms fired at {t} ms"
            );
        }
        assert_eq!(wheel.armed(), 0);
    }

    #[test]
    fn rearm_and_cancel() {
        let mut wheel = TimerWheel::new(4, 8, 10 * MS, at_ms(0));
        wheel.arm(0, at_ms(50));
        wheel.arm(1, at_ms(50));
        wheel.arm(2, at_ms(50));
        wheel.arm(0, at_ms(200));
        wheel.cancel(1);
        wheel.cancel(1);
        let fired = run(&mut wheel, 0, 300);
        assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), [2, 0]);
        assert!(fired[1].1 >= 200 && fired[1].1 < 210);
    }

    #[test]
    fn callback_can_rearm() {
        let mut wheel = TimerWheel::new(1, 8, 10 * MS, at_ms(0));
        wheel.arm(0, at_ms(20));
        let mut fires = 0;
        for t in 0..=1000 {
            wheel.advance(at_ms(t), usize::MAX, |_| {
                fires += 1;
                (fires < 3).then(|| at_ms(t + 100))
            });
        }
        assert_eq!(fires, 3);
        assert!(!wheel.is_armed(0));
    }

    #[test]
    fn a_million_timers_expire_over_several_bounded_polls() {
        const N: u32 = 1_000_000;
        const BUDGET: usize = 100_000;
        let mut wheel = TimerWheel::new(N as usize, 4096, 10 * MS, at_ms(0));
        for i in 0..N {
            wheel.arm(i, at_ms(1000));
        }
        let mut seen = vec![false; N as usize];
        let mut polls = 0;
        loop {
            let handled = wheel.advance(at_ms(1000), BUDGET, |idx| {
                assert!(!std::mem::replace(&mut seen[idx as usize], true));
                None
            });
            assert!(handled <= BUDGET);
            polls += 1;
            if handled < BUDGET {
                break;
            }
        }
        assert!(polls >= 10, "{polls} polls");
        assert!(seen.iter().all(|s| *s));
        assert_eq!(wheel.armed(), 0);
    }
}
