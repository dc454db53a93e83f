//! Quantiles, from exact samples or from a Prometheus histogram's buckets.

use crate::results::Quantiles;

/// Nearest-rank quantiles of `samples` (seconds).
pub fn quantiles(samples: &[f64]) -> Quantiles {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return Quantiles::default();
    }
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    };
    Quantiles {
        count: sorted.len() as u64,
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: *sorted.last().unwrap(),
    }
}

/// Cumulative bucket counts `(upper bound, count)` of a histogram, in increasing bound order; the
/// last bound may be +Inf.
pub type Buckets = Vec<(f64, f64)>;

/// The difference of two scrapes of one histogram: what was observed between them.
pub fn delta(after: &Buckets, before: &Buckets) -> Buckets {
    after
        .iter()
        .map(|(le, n)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == le)
                .map(|(_, n)| *n)
                .unwrap_or(0.0);
            (*le, (n - earlier).max(0.0))
        })
        .collect()
}

/// Quantiles from cumulative buckets, interpolating linearly inside a bucket the way Prometheus's
/// `histogram_quantile` does; `max` is the upper bound of the highest non-empty bucket (the
/// largest finite bound when that is +Inf).
pub fn histogram_quantiles(buckets: &Buckets) -> Quantiles {
    let total = buckets.last().map(|(_, n)| *n).unwrap_or(0.0);
    if total <= 0.0 {
        return Quantiles::default();
    }
    let largest_finite = buckets
        .iter()
        .rev()
        .map(|(le, _)| *le)
        .find(|le| le.is_finite())
        .unwrap_or(0.0);
    let at = |q: f64| {
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, n) in buckets {
            if n >= rank {
                if !le.is_finite() {
                    return largest_finite;
                }
                let (lo, below) = lower;
                let inside = n - below;
                return if inside <= 0.0 {
                    le
                } else {
                    lo + (le - lo) * (rank - below) / inside
                };
            }
            lower = (le, n);
        }
        largest_finite
    };
    let max = buckets
        .iter()
        .scan(0.0, |prev, &(le, n)| {
            let filled = n > *prev;
            *prev = n;
            Some((le, filled))
        })
        .filter(|(_, filled)| *filled)
        .map(|(le, _)| if le.is_finite() { le } else { largest_finite })
        .last()
        .unwrap_or(0.0);
    Quantiles {
        count: total as u64,
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_samples() {
        let samples: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
        let q = quantiles(&samples);
        assert_eq!(q.count, 100);
        assert_eq!(q.p50, 0.5);
        assert_eq!(q.p95, 0.95);
        assert_eq!(q.p99, 0.99);
        assert_eq!(q.max, 1.0);
        assert_eq!(quantiles(&[]).count, 0);
        assert_eq!(quantiles(&[0.3]).p99, 0.3);
    }

    #[test]
    fn histogram_interpolates_inside_a_bucket() {
        // 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.5], 10 in (0.5, 1.0].
        let b = vec![
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let q = histogram_quantiles(&b);
        assert_eq!(q.count, 100);
        assert!((q.p50 - 0.1).abs() < 1e-9, "{q:?}");
        assert!((q.p95 - 0.75).abs() < 1e-9, "{q:?}");
        assert!((q.p99 - 0.95).abs() < 1e-9, "{q:?}");
        assert_eq!(q.max, 1.0);
    }

    #[test]
    fn overflow_reports_the_largest_bound_and_deltas_subtract() {
        let before = vec![(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 10.0)];
        let after = vec![(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 20.0)];
        let d = delta(&after, &before);
        assert_eq!(d, vec![(0.1, 0.0), (1.0, 0.0), (f64::INFINITY, 10.0)]);
        let q = histogram_quantiles(&d);
        assert_eq!(q.count, 10);
        assert_eq!(q.p99, 1.0);
        assert_eq!(histogram_quantiles(&vec![]).count, 0);
    }
}
