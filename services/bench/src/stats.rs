//! Latency samples and their percentiles. Every sample is kept (a run records at most a few
//! hundred thousand), so percentiles are exact rather than estimated from buckets.

use std::time::Duration;

use serde::Serialize;

/// Latencies recorded during one measurement.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        self.micros.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The distribution, or `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        if self.micros.is_empty() {
            return None;
        }
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        Some(Summary {
            count: sorted.len(),
            mean_ms: sum as f64 / sorted.len() as f64 / 1000.0,
            p50_ms: ms(percentile(&sorted, 50.0)),
            p95_ms: ms(percentile(&sorted, 95.0)),
            p99_ms: ms(percentile(&sorted, 99.0)),
            max_ms: ms(sorted[sorted.len() - 1]),
        })
    }
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The `p`-th percentile of `sorted` by the nearest-rank method: the smallest sample that at least
/// `p` percent of the samples do not exceed. `sorted` must be sorted and non-empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// A rate per second, guarding against an empty interval.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 95.0), 95);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&sorted, 0.0), 1);
    }

    #[test]
    fn percentiles_of_few_samples_are_samples() {
        assert_eq!(percentile(&[7], 99.0), 7);
        let sorted = [1, 2, 3, 1000];
        assert_eq!(percentile(&sorted, 50.0), 2);
        assert_eq!(percentile(&sorted, 75.0), 3);
        assert_eq!(percentile(&sorted, 99.0), 1000);
    }

    #[test]
    fn summary_in_milliseconds_regardless_of_order() {
        let mut s = Samples::default();
        for us in [3000, 1000, 2000, 4000] {
            s.record(Duration::from_micros(us));
        }
        let sum = s.summary().expect("samples");
        assert_eq!(sum.count, 4);
        assert_eq!(sum.p50_ms, 2.0);
        assert_eq!(sum.p99_ms, 4.0);
        assert_eq!(sum.max_ms, 4.0);
        assert_eq!(sum.mean_ms, 2.5);
        assert!(Samples::default().summary().is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }
}
