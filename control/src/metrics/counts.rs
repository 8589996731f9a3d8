//! One version's counts: the model the rollout's judge and `status` share. Requests routed,
//! responses by class, and the latency histogram as cumulative buckets, matched by their upper
//! bound wherever two histograms meet (summed over proxies or rules, or subtracted between two
//! reads). Two histograms with different bounds cannot be compared bucket by bucket: that is
//! an error naming both sets of bounds, never buckets paired by position.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;

/// Counts by version (or by series): one read, or what an interval counted.
pub type MetricsReading<K = String> = BTreeMap<K, Counts>;

/// One version's counts (of one series, or summed over several), cumulative since the proxy
/// started or over an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Requests routed.
    pub requests: u64,
    /// Responses by class `1xx` … `5xx` (`canary_filter::metrics::CODE_CLASSES`, in order).
    pub responses: [u64; 5],
    /// Latency histogram: `(upper bound ms, cumulative count)`, bounds increasing; the last may
    /// be `f64::INFINITY` (the `+Inf` bucket, holding every sample). Empty: no histogram yet.
    pub latency: Vec<(f64, u64)>,
}

impl Counts {
    /// All responses.
    pub fn answered(&self) -> u64 {
        self.responses.iter().sum()
    }

    /// 5xx responses.
    pub fn errors(&self) -> u64 {
        self.responses[4]
    }

    /// 5xx per response, in percent (0 without responses).
    pub fn error_rate(&self) -> f64 {
        if self.answered() == 0 {
            0.0
        } else {
            self.errors() as f64 * 100.0 / self.answered() as f64
        }
    }

    /// Latency samples (the histogram's count: its last bucket).
    pub fn latency_samples(&self) -> u64 {
        self.latency.last().map_or(0, |b| b.1)
    }

    /// The `q` quantile of the latency in ms, interpolated inside its bucket (infinite when it
    /// falls in the `+Inf` bucket); `None` without samples.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.latency, q)
    }

    /// The `q` quantile over the finite buckets only (the samples past the last bound left
    /// out, as `status`'s table reads them: a quantile it can print); `None` without samples.
    pub fn finite_latency_quantile(&self, q: f64) -> Option<f64> {
        let finite: Vec<(f64, u64)> = self
            .latency
            .iter()
            .copied()
            .filter(|(bound, _)| bound.is_finite())
            .collect();
        quantile(&finite, q)
    }

    /// `self - earlier`, for counters that only grow: a reset (a counter lower than before,
    /// as after an Envoy restart) gives the current value whole. Buckets are matched by bound;
    /// histograms at different bounds are an error (a fleet's reads tell a proxy that changed
    /// its buckets apart before: [`crate::metrics::per_proxy`]).
    pub fn since(&self, earlier: &Counts) -> Result<Counts> {
        if !earlier.latency.is_empty() && !self.latency.is_empty() {
            same_bounds(&self.latency, &earlier.latency, "the two reads")?;
        }
        if self.went_down_from(earlier) {
            return Ok(self.clone());
        }
        let mut responses = [0; 5];
        for ((slot, now), then) in responses
            .iter_mut()
            .zip(self.responses)
            .zip(earlier.responses)
        {
            *slot = now - then;
        }
        let latency = self
            .latency
            .iter()
            .map(|&(bound, count)| (bound, count - bucket_at(&earlier.latency, bound)))
            .collect();
        Ok(Counts {
            requests: self.requests - earlier.requests,
            responses,
            latency,
        })
    }

    /// Whether any counter of `earlier` is higher than now (a bucket that is gone counts as
    /// zero): the counters started again in between.
    pub fn went_down_from(&self, earlier: &Counts) -> bool {
        self.requests < earlier.requests
            || self
                .responses
                .iter()
                .zip(&earlier.responses)
                .any(|(now, then)| now < then)
            || earlier
                .latency
                .iter()
                .any(|&(bound, then)| bucket_at(&self.latency, bound) < then)
    }

    /// Whether both have latency buckets, at different bounds.
    pub fn other_bounds(&self, other: &Counts) -> bool {
        !self.latency.is_empty()
            && !other.latency.is_empty()
            && !equal_bounds(&self.latency, &other.latency)
    }

    /// Adds `more` (another proxy's or rule's counts): buckets matched by bound; histograms at
    /// different bounds are an error (naming both), and `self` is left as it was.
    pub fn add(&mut self, more: &Counts) -> Result<()> {
        if self.latency.is_empty() {
            self.latency.clone_from(&more.latency);
        } else if !more.latency.is_empty() {
            same_bounds(&self.latency, &more.latency, "two series")?;
            for (have, add) in self.latency.iter_mut().zip(&more.latency) {
                have.1 += add.1;
            }
        }
        self.requests += more.requests;
        for (have, add) in self.responses.iter_mut().zip(more.responses) {
            *have += add;
        }
        Ok(())
    }
}

/// The `q` quantile (0..1) of a histogram given as `(upper bound, cumulative count)`,
/// interpolated linearly inside its bucket; `None` without samples.
pub fn quantile(cumulative: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, count) in cumulative {
        if count as f64 >= rank && count > lower.1 {
            let within = (rank - lower.1 as f64) / (count - lower.1) as f64;
            return Some(lower.0 + (bound - lower.0) * within.clamp(0.0, 1.0));
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// The cumulative count at `bound` (0 without that bucket).
fn bucket_at(latency: &[(f64, u64)], bound: f64) -> u64 {
    latency
        .iter()
        .find(|(at, _)| *at == bound)
        .map_or(0, |&(_, count)| count)
}

fn bounds_text(points: &[(f64, u64)]) -> String {
    let all: Vec<String> = points.iter().map(|p| format!("{}", p.0)).collect();
    all.join(",")
}

fn equal_bounds(one: &[(f64, u64)], other: &[(f64, u64)]) -> bool {
    one.len() == other.len() && one.iter().zip(other).all(|(x, y)| x.0 == y.0)
}

/// An error unless both histograms have the same bounds, naming both sets and `what` they are.
pub fn same_bounds(one: &[(f64, u64)], other: &[(f64, u64)], what: &str) -> Result<()> {
    if !equal_bounds(one, other) {
        bail!(
            "the latency histograms of {what} have different bucket bounds ({} and {}): buckets \
             can only be compared bound by bound",
            bounds_text(one),
            bounds_text(other)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(value: Option<f64>, want: f64) -> bool {
        value.is_some_and(|v| (v - want).abs() < 1e-9)
    }

    fn counts(requests: u64, ok: u64, errors: u64, latency: &[(f64, u64)]) -> Counts {
        Counts {
            requests,
            responses: [0, ok, 0, 0, errors],
            latency: latency.to_vec(),
        }
    }

    /// Two series with the same number of buckets at other bounds: 2 samples at or below
    /// 1 ms on one, 3 at or below 5 ms on the other. Paired by position (as `status` summed
    /// proxies and rules), 5 samples were claimed at or below 1 ms. By bound: an error naming
    /// both sets of bounds, and nothing added.
    #[test]
    fn buckets_at_other_bounds_are_not_added_by_position() {
        let mut total = counts(4, 4, 0, &[(1.0, 2), (10.0, 4)]);
        let err = total
            .add(&counts(4, 4, 0, &[(5.0, 3), (10.0, 4)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(1,10 and 5,10)"), "{err}");
        assert_eq!(total, counts(4, 4, 0, &[(1.0, 2), (10.0, 4)]));
        // Fewer buckets on one side (zipped, the extra bucket was dropped): an error too.
        let err = total
            .add(&counts(4, 4, 0, &[(1.0, 1), (5.0, 2), (10.0, 4)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(1,10 and 1,5,10)"), "{err}");
    }

    /// Same bounds: each bucket summed, requests and classes too (worked by hand).
    #[test]
    fn series_at_the_same_bounds_add_bucket_by_bucket() {
        let mut total = counts(10, 9, 1, &[(1.0, 4), (10.0, 9), (INF, 10)]);
        total
            .add(&counts(7, 5, 2, &[(1.0, 1), (10.0, 6), (INF, 7)]))
            .unwrap();
        assert_eq!(total, counts(17, 14, 3, &[(1.0, 5), (10.0, 15), (INF, 17)]));
        // A side without a histogram yet adds nothing to the buckets.
        total.add(&counts(1, 1, 0, &[])).unwrap();
        assert_eq!(total.latency, [(1.0, 5), (10.0, 15), (INF, 17)]);
        let mut empty = Counts::default();
        empty.add(&total).unwrap();
        assert_eq!(empty, total);
    }

    /// The window between two reads whose buckets sit at other bounds (the same number of
    /// them): by position, `status` put 10 of the window's samples at or below 2 ms from a
    /// bucket at 1 ms. By bound: an error naming both.
    #[test]
    fn a_window_between_reads_at_other_bounds_is_an_error() {
        let earlier = counts(100, 100, 0, &[(1.0, 50), (10.0, 100)]);
        let later = counts(160, 160, 0, &[(2.0, 60), (20.0, 160)]);
        let err = later.since(&earlier).unwrap_err().to_string();
        assert!(err.contains("(2,20 and 1,10)"), "{err}");
    }

    /// A window: every counter's difference, buckets by bound (worked by hand).
    #[test]
    fn a_window_is_the_difference_bucket_by_bucket() {
        let earlier = counts(100, 90, 10, &[(1.0, 50), (10.0, 95), (INF, 100)]);
        let later = counts(300, 270, 20, &[(1.0, 80), (10.0, 280), (INF, 300)]);
        let window = later.since(&earlier).unwrap();
        assert_eq!(
            window,
            counts(200, 180, 10, &[(1.0, 30), (10.0, 185), (INF, 200)])
        );
        // 5 % of the window's responses 5xx; its median at rank 100 of 200: 70 samples into
        // the (1, 10] bucket of 155, so 1 + 9 × 70/155 ms.
        assert!(close(Some(window.error_rate()), 100.0 / 19.0));
        assert!(close(
            window.latency_quantile(0.5),
            1.0 + 9.0 * 70.0 / 155.0
        ));
        // A histogram first seen in the later read counts whole.
        let first = later.since(&counts(100, 90, 10, &[])).unwrap();
        assert_eq!(first.latency, later.latency);
    }

    /// A counter that went down (a restart) takes the later read whole, whichever counter.
    #[test]
    fn a_reset_counts_the_later_read_whole() {
        let earlier = counts(100, 90, 10, &[(1.0, 50), (INF, 100)]);
        for later in [
            counts(30, 27, 3, &[(1.0, 10), (INF, 30)]),
            // Only the 5xx fell (10 to 3); the rest grew back past its old values.
            counts(150, 147, 3, &[(1.0, 60), (INF, 150)]),
            // Only a bucket fell.
            counts(120, 108, 12, &[(1.0, 40), (INF, 120)]),
        ] {
            assert!(later.went_down_from(&earlier));
            assert_eq!(later.since(&earlier).unwrap(), later);
        }
    }

    /// Quantiles: interpolated inside the bucket; the `+Inf` bucket gives infinity, left out by
    /// the finite quantile (`status`'s).
    #[test]
    fn quantiles_by_bucket() {
        let c = counts(100, 100, 0, &[(1.0, 50), (10.0, 90), (INF, 100)]);
        assert!(close(c.latency_quantile(0.5), 1.0));
        assert!(close(c.latency_quantile(0.7), 1.0 + 9.0 * 20.0 / 40.0));
        assert_eq!(c.latency_quantile(0.95), Some(INF));
        // Finite buckets only: 90 samples, the median at rank 45 of the first bucket's 50.
        assert!(close(c.finite_latency_quantile(0.5), 0.9));
        assert!(close(
            c.finite_latency_quantile(0.9),
            1.0 + 9.0 * 31.0 / 40.0
        ));
        assert_eq!(Counts::default().latency_quantile(0.5), None);
    }
}
