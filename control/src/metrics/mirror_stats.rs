//! The counts of a dark canary and of stable, read from Envoy's cluster stats: the filter's
//! own metrics never see a mirrored copy (Envoy sends it after the filter and discards its
//! answer), but the mirror cluster's stats do.
//!
//! Seen in a real run of Envoy 1.40 (the end-to-end tests): a copy sent by
//! `request_mirror_policies` is counted in the target cluster's `upstream_rq_xx`,
//! `upstream_rq_completed` and `upstream_rq_time`, and also, as Envoy's async client marks it
//! internal, in the `internal.` variants of each (`envoy_cluster_internal_upstream_rq_xx` in
//! Prometheus's form); a user's routed request is counted as `external.`. So the shadows are
//! the mirror cluster's `internal` series (a tester pinned to the canary by header is not
//! among them), and stable is its cluster's whole series. Both histograms carry Envoy's
//! default bounds, the same on both sides, as the judge requires.

use anyhow::{Context, Result};

use crate::metrics::admin::Admin;
use crate::metrics::counts::{Counts, MetricsReading};
use crate::metrics::per_proxy::FleetReading;
use crate::metrics::stats::sample;

/// The admin query: only the cluster request stats (a plain substring filter).
pub const QUERY: &str = "/stats/prometheus?filter=upstream_rq_";

/// Which of a cluster's series to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Requests sent by Envoy itself: the mirrored copies.
    Internal,
    /// Every request sent to the cluster.
    All,
}

impl Series {
    fn prefix(self) -> &'static str {
        match self {
            Series::Internal => "envoy_cluster_internal_upstream_rq",
            Series::All => "envoy_cluster_upstream_rq",
        }
    }
}

/// The counts of `cluster`'s `series` in Envoy's `/stats/prometheus` text: responses by code
/// class and the request time histogram (`+Inf` included). No line for the cluster (no copy
/// sent yet): empty counts.
pub fn parse_cluster(text: &str, cluster: &str, series: Series) -> Result<Counts> {
    let classes = format!("{}_xx", series.prefix());
    let buckets = format!("{}_time_bucket", series.prefix());
    let mut counts = Counts::default();
    for (name, sample) in text.lines().filter_map(sample) {
        if name != classes && name != buckets {
            continue;
        }
        let (labels, value) = sample.read()?;
        if labels.get("envoy_cluster_name").as_deref() != Some(cluster) {
            continue;
        }
        if name == classes {
            let class = labels.get("envoy_response_code_class").unwrap_or_default();
            // Envoy labels the class by its digit ("5" for 5xx).
            let index = class
                .parse::<usize>()
                .ok()
                .and_then(|digit| digit.checked_sub(1))
                .filter(|index| *index < counts.responses.len());
            if let Some(index) = index {
                counts.responses[index] += value;
            }
        } else {
            counts.latency.push((labels.bucket_bound()?, value));
        }
    }
    counts.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(counts)
}

/// Where a dark canary's judgement reads: the copies at the mirror cluster and stable's
/// requests at its cluster, per admin endpoint (subtracted proxy by proxy, as the rollout's
/// readings are: a proxy that restarts counts only what it counted since).
pub struct ShadowSource<'a> {
    /// The front proxies.
    pub admins: &'a [Admin],
    /// The dark canary's version name and cluster.
    pub canary: (&'a str, &'a str),
    /// Stable's version name and cluster.
    pub stable: (&'a str, &'a str),
}

impl ShadowSource<'_> {
    /// The cumulative counts per admin endpoint, keyed by version name as the rollout's
    /// readings are.
    pub fn read(&self) -> Result<FleetReading> {
        let mut fleet = FleetReading::new();
        for admin in self.admins {
            let text = admin
                .get(QUERY)
                .with_context(|| format!("reading {}", admin.base()))?;
            let mut reading = MetricsReading::new();
            for ((version, cluster), series) in
                [(self.canary, Series::Internal), (self.stable, Series::All)]
            {
                reading.insert(version.to_string(), parse_cluster(&text, cluster, series)?);
            }
            fleet.insert(admin.base().to_string(), reading);
        }
        Ok(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Envoy 1.40 wrote them in a run with every request copied to app-v2-errors.
    const TEXT: &str = r#"envoy_cluster_external_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="app-v1"} 200
envoy_cluster_internal_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="app-v2-errors"} 167
envoy_cluster_internal_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="app-v2-errors"} 33
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="app-v1"} 200
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="app-v2-errors"} 170
envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="app-v2-errors"} 33
envoy_cluster_internal_upstream_rq_time_bucket{envoy_cluster_name="app-v2-errors",le="0.5"} 169
envoy_cluster_internal_upstream_rq_time_bucket{envoy_cluster_name="app-v2-errors",le="+Inf"} 200
envoy_cluster_internal_upstream_rq_time_bucket{envoy_cluster_name="app-v2-errors",le="1"} 174
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app-v1",le="0.5"} 172
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app-v1",le="1"} 178
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="app-v1",le="+Inf"} 200
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="app-v1"} 318.03
"#;

    #[test]
    fn the_copies_are_the_internal_series_and_stable_is_all_of_its_cluster() {
        let shadows = parse_cluster(TEXT, "app-v2-errors", Series::Internal).unwrap();
        assert_eq!(shadows.responses, [0, 167, 0, 0, 33]);
        assert_eq!(
            shadows.latency,
            [(0.5, 169), (1.0, 174), (f64::INFINITY, 200)]
        );
        let stable = parse_cluster(TEXT, "app-v1", Series::All).unwrap();
        assert_eq!(stable.responses, [0, 200, 0, 0, 0]);
        assert_eq!(
            stable.latency,
            [(0.5, 172), (1.0, 178), (f64::INFINITY, 200)]
        );
        // The tester's 3 routed requests to the canary are not copies.
        let all = parse_cluster(TEXT, "app-v2-errors", Series::All).unwrap();
        assert_eq!(all.answered(), 203);
    }

    #[test]
    fn a_cluster_without_copies_has_empty_counts() {
        let none = parse_cluster(TEXT, "app-v3", Series::Internal).unwrap();
        assert_eq!(none, Counts::default());
    }

    #[test]
    fn unreadable_lines_are_errors() {
        let bad = "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"a\"} x";
        assert!(parse_cluster(bad, "a", Series::All).is_err());
    }
}
