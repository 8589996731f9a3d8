//! Envoy's stats, parsed in one place: the filter's metrics from `/stats/prometheus` (the form
//! whose latency histogram has the `+Inf` bucket, the requests slower than the last bound), by
//! version and rule label, for `status` and the rollout's sources; and one stat by its exact
//! name from `/stats?format=json`, for the ECDS counters and the configuration hash gauge.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use canary_filter::metrics;

use crate::admin::Admin;

/// The admin query of the filter's metrics in Prometheus's text format (with `+Inf`).
pub const PROMETHEUS_QUERY: &str = "/stats/prometheus?filter=canary_";

/// The filter's metrics of one version and rule label, cumulative since the proxy started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesStats {
    /// Requests routed.
    pub requests: u64,
    /// Responses by code class (`"2xx"` …).
    pub responses: BTreeMap<String, u64>,
    /// Latency histogram: `(upper bound in ms, cumulative count)`, in bound order, the last
    /// bound `+Inf` (infinity) when Envoy reports it.
    pub latency: Vec<(f64, u64)>,
}

/// The filter's metrics keyed by `(version, rule)`.
pub type FilterStats = BTreeMap<(String, String), SeriesStats>;

/// Reads the filter's metrics from an Envoy admin endpoint.
pub fn read(admin: &Admin) -> Result<FilterStats> {
    parse_prometheus(&admin.get(PROMETHEUS_QUERY)?)
}

/// Parses Envoy's `/stats/prometheus` text: the filter's request and response counters and its
/// latency buckets, `+Inf` included; every other line is skipped.
pub fn parse_prometheus(text: &str) -> Result<FilterStats> {
    let buckets = format!("{}_bucket", metrics::DURATION);
    let mut stats = FilterStats::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        if name != metrics::REQUESTS && name != metrics::RESPONSES && name != buckets {
            continue;
        }
        let (labels, value) = rest
            .split_once('}')
            .ok_or_else(|| anyhow!("unreadable line {line:?}"))?;
        let label = |key: &str| {
            labels.split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let (Some(version), Some(rule)) = (label("version"), label("rule")) else {
            continue;
        };
        let value: f64 = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("unreadable value in {line:?}"))?;
        // Counters are whole numbers, written as such or as floats.
        let value = value.round() as u64;
        let series = stats.entry((version, rule)).or_default();
        if name == metrics::REQUESTS {
            series.requests += value;
        } else if name == metrics::RESPONSES {
            let class = label("code_class").unwrap_or_default();
            *series.responses.entry(class).or_default() += value;
        } else {
            let le = label("le").ok_or_else(|| anyhow!("a bucket without le: {line:?}"))?;
            let bound: f64 = le
                .parse()
                .map_err(|_| anyhow!("unreadable bucket bound {le:?}"))?;
            series.latency.push((bound, value));
        }
    }
    for series in stats.values_mut() {
        series.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(stats)
}

/// The value of the stat named exactly `name` in Envoy's `/stats?format=json`; `None` when
/// there is no such stat.
pub fn parse_json_stat(json: &str, name: &str) -> Result<Option<u64>> {
    let doc: serde_json::Value = serde_json::from_str(json)?;
    Ok(doc["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|stat| stat["name"] == name)
        .and_then(|stat| stat["value"].as_u64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE canary_requests_total counter
canary_requests_total{version="canary",rule="default"} 12
canary_requests_total{version="canary",rule="testers"} 3
# TYPE canary_responses_total counter
canary_responses_total{version="canary",rule="default",code_class="2xx"} 11
canary_responses_total{version="canary",rule="default",code_class="5xx"} 1
canary_config_hash{} 1234
# TYPE canary_request_duration_ms histogram
canary_request_duration_ms_bucket{version="canary",rule="default",le="5"} 4
canary_request_duration_ms_bucket{version="canary",rule="default",le="+Inf"} 12
canary_request_duration_ms_bucket{version="canary",rule="default",le="1"} 2
canary_request_duration_ms_sum{version="canary",rule="default"} 99.5
"#;

    #[test]
    fn the_filter_series_are_read_by_version_and_rule() {
        let stats = parse_prometheus(TEXT).unwrap();
        let default = &stats[&("canary".to_string(), "default".to_string())];
        assert_eq!(default.requests, 12);
        assert_eq!(default.responses["2xx"], 11);
        assert_eq!(default.responses["5xx"], 1);
        assert_eq!(default.latency, [(1.0, 2), (5.0, 4), (f64::INFINITY, 12)]);
        assert_eq!(
            stats[&("canary".to_string(), "testers".to_string())].requests,
            3
        );
        assert_eq!(stats.len(), 2);
    }

    #[test]
    fn unreadable_lines_are_errors() {
        assert!(parse_prometheus("canary_responses_total{version=\"a\",rule=\"b\" 1").is_err());
        assert!(parse_prometheus("canary_requests_total{version=\"a\",rule=\"b\"} x").is_err());
        assert!(
            parse_prometheus("canary_request_duration_ms_bucket{version=\"a\",rule=\"b\"} 1")
                .is_err()
        );
    }

    #[test]
    fn one_stat_by_exact_name() {
        let json = r#"{"stats": [{"name": "a.b", "value": 3}, {"name": "a.bc", "value": 4}]}"#;
        assert_eq!(parse_json_stat(json, "a.b").unwrap(), Some(3));
        assert_eq!(parse_json_stat(json, "a").unwrap(), None);
    }
}
