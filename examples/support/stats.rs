//! Percentiles of latency samples, printed one line per series, shared by the held-request examples.

use std::time::Duration;

/// The `p`-th percentile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in whole microseconds.
pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// One line: `name`, the count, p50, p90, p99 and the maximum of `v`.
pub fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    println!(
        "{name:<32} n={:<6} p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}",
        v.len(),
        us(percentile(&v, 50.0)),
        us(percentile(&v, 90.0)),
        us(percentile(&v, 99.0)),
        us(v.last().copied().unwrap_or_default())
    );
}
