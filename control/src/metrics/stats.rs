//! Envoy's stats, parsed in one place: the filter's metrics from `/stats/prometheus` (the form
//! whose latency histogram has the `+Inf` bucket, the requests slower than the last bound), by
//! service, version and rule label, each series as [`Counts`], for the source that `status`
//! and the rollout share.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use canary_filter::metrics::{
    self, CODE_CLASSES, CODE_CLASS_LABEL, RULE_LABEL, SERVICE_LABEL, VERSION_LABEL,
};

use crate::metrics::admin::Admin;
use crate::metrics::counts::Counts;

/// The admin query of the filter's metrics in Prometheus's text format (with `+Inf`).
pub const PROMETHEUS_QUERY: &str = "/stats/prometheus?filter=canary_";

/// Which series: the `canary_service`, `canary_version` and `canary_rule` labels. A
/// configuration without `service` gives series without the `canary_service` label, read as
/// the empty service (as PromQL matches them: `canary_service=""`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The configured service, `""` for none.
    pub service: String,
    /// The version the requests were routed to.
    pub version: String,
    /// The rule label: a rule's name, `weights` or `default`.
    pub rule: String,
}

/// The filter's metrics by series, cumulative since the proxy started: each series' requests,
/// responses by class and latency buckets (`+Inf` included).
pub type FilterStats = BTreeMap<SeriesKey, Counts>;

/// The `canary_service` label value of a configuration's series: its `service`, or `""`
/// (no label) without one.
pub fn service_label(service: Option<&str>) -> &str {
    service.unwrap_or("")
}

/// Only the series of `service` (`""`: those without a service).
pub fn of_service(stats: FilterStats, service: &str) -> FilterStats {
    stats
        .into_iter()
        .filter(|(key, _)| key.service == service)
        .collect()
}

/// Reads the filter's metrics from an Envoy admin endpoint.
pub fn read(admin: &Admin) -> Result<FilterStats> {
    parse_prometheus(&admin.get(PROMETHEUS_QUERY)?)
}

/// One family of the filter's series: its three metrics, and the two labels that say which
/// series (read into [`SeriesKey::version`] and [`SeriesKey::rule`]).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The requests counter.
    pub requests: &'static str,
    /// The responses counter (by code class).
    pub responses: &'static str,
    /// The latency histogram.
    pub duration: &'static str,
    /// The label read as the series' version.
    pub version_label: &'static str,
    /// The label read as the series' rule.
    pub rule_label: &'static str,
}

/// The per-version series: by version and rule.
pub const VERSIONS: Family = Family {
    requests: metrics::REQUESTS,
    responses: metrics::RESPONSES,
    duration: metrics::DURATION,
    version_label: VERSION_LABEL,
    rule_label: RULE_LABEL,
};

/// The per-feature series, read with the state (`on`, `off`) as the version and the feature as
/// the rule: a feature's reading then compares `on` with `off` as a rule's compares versions.
pub const FEATURES: Family = Family {
    requests: metrics::FEATURE_REQUESTS,
    responses: metrics::FEATURE_RESPONSES,
    duration: metrics::FEATURE_DURATION,
    version_label: metrics::FEATURE_STATE_LABEL,
    rule_label: metrics::FEATURE_LABEL,
};

/// Parses Envoy's `/stats/prometheus` text: the filter's request and response counters and its
/// latency buckets, `+Inf` included; every other line is skipped.
pub fn parse_prometheus(text: &str) -> Result<FilterStats> {
    parse_family(text, &VERSIONS)
}

/// [`parse_prometheus`] for one family of series.
pub fn parse_family(text: &str, family: &Family) -> Result<FilterStats> {
    let buckets = format!("{}_bucket", family.duration);
    let mut stats = FilterStats::new();
    for (name, sample) in text.lines().filter_map(sample) {
        if name != family.requests && name != family.responses && name != buckets {
            continue;
        }
        let (labels, value) = sample.read()?;
        let (Some(version), Some(rule)) = (
            labels.get(family.version_label),
            labels.get(family.rule_label),
        ) else {
            continue;
        };
        let key = SeriesKey {
            service: labels.get(SERVICE_LABEL).unwrap_or_default(),
            version,
            rule,
        };
        let series = stats.entry(key).or_default();
        if name == family.requests {
            series.requests += value;
        } else if name == family.responses {
            let class = labels.get(CODE_CLASS_LABEL).unwrap_or_default();
            if let Some(slot) = class_slot(&mut series.responses, &class) {
                *slot += value;
            }
        } else {
            series.latency.push((labels.bucket_bound()?, value));
        }
    }
    for series in stats.values_mut() {
        series.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(stats)
}

/// A sample line of Envoy's `/stats/prometheus` text, `name{labels} value`: its name, and the
/// rest to read once the name is wanted (other metrics' lines are skipped unread). `None` for
/// comments, blank lines and samples without labels.
pub fn sample(line: &str) -> Option<(&str, Sample<'_>)> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let (name, rest) = line.split_once('{')?;
    Some((name, Sample { line, rest }))
}

/// The labels and value of a sample line ([`sample`]).
pub struct Sample<'a> {
    line: &'a str,
    rest: &'a str,
}

impl<'a> Sample<'a> {
    /// Its labels, and its value as a count (counters and bucket counts are whole numbers,
    /// written as such or as floats).
    pub fn read(&self) -> Result<(Labels<'a>, u64)> {
        let line = self.line;
        let (labels, value) = self
            .rest
            .split_once('}')
            .ok_or_else(|| anyhow!("unreadable line {line:?}"))?;
        let value: f64 = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("unreadable value in {line:?}"))?;
        Ok((Labels { line, labels }, value.round() as u64))
    }
}

/// A sample line's labels.
pub struct Labels<'a> {
    line: &'a str,
    labels: &'a str,
}

impl Labels<'_> {
    /// The value of label `key`, unquoted.
    pub fn get(&self, key: &str) -> Option<String> {
        self.labels.split(',').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    }

    /// A histogram bucket's upper bound, its `le` label.
    pub fn bucket_bound(&self) -> Result<f64> {
        let line = self.line;
        let le = self
            .get("le")
            .ok_or_else(|| anyhow!("a bucket without le: {line:?}"))?;
        le.parse()
            .map_err(|_| anyhow!("unreadable bucket bound {le:?}"))
    }
}

/// The slot of response class `class` (`"5xx"`) in [`Counts::responses`]; `None` for a class
/// the filter does not count.
pub fn class_slot<'a>(responses: &'a mut [u64; 5], class: &str) -> Option<&'a mut u64> {
    let index = CODE_CLASSES.iter().position(|c| *c == class)?;
    responses.get_mut(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE canary_requests_total counter
canary_requests_total{canary_version="canary",canary_rule="default"} 12
canary_requests_total{canary_version="canary",canary_rule="testers"} 3
canary_requests_total{canary_service="checkout",canary_version="canary",canary_rule="default"} 40
# TYPE canary_responses_total counter
canary_responses_total{canary_version="canary",canary_rule="default",canary_code_class="2xx"} 11
canary_responses_total{canary_version="canary",canary_rule="default",canary_code_class="5xx"} 1
canary_config_hash{} 1234
canary_config_hash{canary_service="checkout"} 5678
# TYPE canary_request_duration_ms histogram
canary_request_duration_ms_bucket{canary_version="canary",canary_rule="default",le="5"} 4
canary_request_duration_ms_bucket{canary_version="canary",canary_rule="default",le="+Inf"} 12
canary_request_duration_ms_bucket{canary_version="canary",canary_rule="default",le="1"} 2
canary_request_duration_ms_sum{canary_version="canary",canary_rule="default"} 99.5
"#;

    fn key(service: &str, version: &str, rule: &str) -> SeriesKey {
        SeriesKey {
            service: service.to_string(),
            version: version.to_string(),
            rule: rule.to_string(),
        }
    }

    #[test]
    fn the_filter_series_are_read_by_service_version_and_rule() {
        let stats = parse_prometheus(TEXT).unwrap();
        let default = &stats[&key("", "canary", "default")];
        assert_eq!(default.requests, 12);
        assert_eq!(default.responses, [0, 11, 0, 0, 1]);
        assert_eq!(default.latency, [(1.0, 2), (5.0, 4), (f64::INFINITY, 12)]);
        assert_eq!(stats[&key("", "canary", "testers")].requests, 3);
        assert_eq!(stats[&key("checkout", "canary", "default")].requests, 40);
        assert_eq!(stats.len(), 3);
        let checkout = of_service(stats.clone(), "checkout");
        assert_eq!(
            checkout.keys().collect::<Vec<_>>(),
            [&key("checkout", "canary", "default")]
        );
        assert_eq!(of_service(stats, "").len(), 2);
    }

    /// Series labelled the way they were before the labels were prefixed (`version`, `rule`)
    /// are not the filter's: a Prometheus relabelling could have put such labels anywhere.
    #[test]
    fn unprefixed_labels_are_not_read() {
        let old = "canary_requests_total{version=\"canary\",rule=\"weights\"} 12\n";
        assert!(parse_prometheus(old).unwrap().is_empty());
    }

    #[test]
    fn unreadable_lines_are_errors() {
        assert!(parse_prometheus(
            "canary_responses_total{canary_version=\"a\",canary_rule=\"b\" 1"
        )
        .is_err());
        assert!(parse_prometheus(
            "canary_requests_total{canary_version=\"a\",canary_rule=\"b\"} x"
        )
        .is_err());
        assert!(parse_prometheus(
            "canary_request_duration_ms_bucket{canary_version=\"a\",canary_rule=\"b\"} 1"
        )
        .is_err());
    }
}
