//! Latency summaries: median, p99 and friends over a set of samples, via `hdrhistogram`
//! (3 significant digits, so summaries of a million samples stay small and exact enough).

use hdrhistogram::Histogram;
use serde::Serialize;

/// A summary of samples in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub n: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// Summarise `samples` (any order). Empty input gives all zeros.
    pub fn of(samples: &[u64]) -> Summary {
        let Ok(mut h) = Histogram::<u64>::new(3) else {
            return Summary::default();
        };
        for &s in samples {
            // Auto-resizing histogram: recording never fails for u64 values.
            let _ = h.record(s.max(1));
        }
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            n: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            min: h.min(),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// "p50 X µs, p99 Y µs (n=N)".
    pub fn human_us(&self) -> String {
        format!(
            "p50 {:>9.1} µs   p99 {:>9.1} µs   max {:>9.1} µs   (n={})",
            self.p50 as f64 / 1e3,
            self.p99 as f64 / 1e3,
            self.max as f64 / 1e3,
            self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let samples: Vec<u64> = (1..=1000).collect();
        let s = Summary::of(&samples);
        assert_eq!(s.n, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 1000);
        assert!((499..=501).contains(&s.p50), "{s:?}");
        assert!((989..=991).contains(&s.p99), "{s:?}");
        assert!((s.mean - 500.5).abs() < 1.0);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Summary::of(&[]), Summary::default());
    }
}
