//! Latency percentiles over every recorded sample.
//!
//! The harness keeps each latency (microseconds) rather than a histogram: runs are bounded to
//! at most a few hundred thousand answers, so sorting them is cheap, and the figures are exact.

use serde::Serialize;

/// Percentiles of one set of latencies, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// The nearest-rank percentile of sorted samples: the smallest sample such that at least
/// `q` of all samples are at or below it. `q` is in (0, 1]; `None` for no samples.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // The epsilon keeps float noise (0.999 * 2000 = 1998.0000000000002) from adding a rank.
    let rank = (q * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99, p99.9, max and mean of latencies given in microseconds; `None` for no samples.
pub fn percentiles(mut micros: Vec<u64>) -> Option<Percentiles> {
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    let ms = |us: u64| round2(us as f64 / 1000.0);
    let at = |q: f64| ms(nearest_rank(&micros, q).unwrap_or(0));
    let sum: u128 = micros.iter().map(|&u| u as u128).sum();
    Some(Percentiles {
        count: micros.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: at(1.0),
        mean_ms: round2(sum as f64 / micros.len() as f64 / 1000.0),
    })
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_smallest_sample_covering_the_quantile() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&samples, 0.50), Some(50));
        assert_eq!(nearest_rank(&samples, 0.99), Some(99));
        assert_eq!(nearest_rank(&samples, 0.999), Some(100));
        assert_eq!(nearest_rank(&samples, 1.0), Some(100));
        // A quantile below the first rank still answers the smallest sample.
        assert_eq!(nearest_rank(&samples, 0.001), Some(1));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn p999_separates_the_worst_sample_in_a_thousand() {
        // 999 fast answers and one slow one: p99.9 is still fast, the maximum is not.
        let mut samples = vec![1_000u64; 999];
        samples.push(250_000);
        let p = percentiles(samples).unwrap();
        assert_eq!(p.p999_ms, 1.0);
        assert_eq!(p.max_ms, 250.0);
        // With 2000 samples, two slow ones are within the 0.1% above p99.9; three are not.
        let mut samples = vec![1_000u64; 1998];
        samples.extend([300_000, 400_000]);
        assert_eq!(percentiles(samples).unwrap().p999_ms, 1.0);
        let mut samples = vec![1_000u64; 1997];
        samples.extend([300_000, 400_000, 500_000]);
        let p = percentiles(samples).unwrap();
        assert_eq!(p.p999_ms, 300.0);
        assert_eq!(p.max_ms, 500.0);
    }

    #[test]
    fn percentiles_sort_their_input_and_convert_to_milliseconds() {
        let p = percentiles(vec![3_000, 1_000, 2_000, 4_000]).unwrap();
        assert_eq!(p.count, 4);
        assert_eq!(p.p50_ms, 2.0);
        assert_eq!(p.p99_ms, 4.0);
        assert_eq!(p.mean_ms, 2.5);
        assert!(percentiles(vec![]).is_none());
    }
}
