//! A log-linear histogram of `u64` samples (TSC cycles or nanoseconds): exact
//! below 128, then 64 buckets per power of two (under 1.6 % relative error).
//! Recording is an index computation and an increment; nothing allocates after
//! construction.

/// Values below this are counted exactly.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above [`LINEAR`] (2^6).
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two from 2^7 to 2^63.
const BUCKETS: usize = LINEAR as usize + (64 - 7) * SUB;

/// A histogram of `u64` values.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // 7..=63
    let sub = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    LINEAR as usize + (e as usize - 7) * SUB + sub
}

/// The smallest value of bucket `i` and the bucket's width.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, 1);
    }
    let k = i - LINEAR as usize;
    let e = (k / SUB) as u32 + 7;
    let sub = (k % SUB) as u64;
    let width = 1u64 << (e - SUB_BITS);
    ((1u64 << e) + sub * width, width)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest sample (0 if empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest sample.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the samples (0 if empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below which a fraction `q` (0..=1) of the samples lie: the
    /// middle of the bucket holding that rank, clamped to the observed range.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        if q >= 1.0 {
            return self.max;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bucket_range(i);
                return (lo + width / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// `(value, cumulative fraction)` at every non-empty bucket's upper edge, for
    /// a CDF plot.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let mut out = Vec::new();
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            seen += c;
            let (lo, width) = bucket_range(i);
            out.push((
                (lo + width - 1).min(self.max),
                seen as f64 / self.total as f64,
            ));
        }
        out
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in [0u64, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, u64::MAX] {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "{v}");
            let (lo, w) = bucket_range(i);
            assert!(lo <= v && v - lo < w, "{v}: [{lo}, +{w})");
            last = i;
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 10);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.count(), 10_000);
        let cdf = h.cdf();
        assert!((cdf.last().unwrap().1 - 1.0).abs() < 1e-9);
    }
}
