//! Feature flags in canaryctl: `set --feature NAME=PERCENT`, the features `explain` shows for
//! a request, the per-feature on/off table of `status`, and the readings `rollout --feature`
//! judges (`on` against `off`, with the same judge as a canary against stable).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{bail, Result};
use canary_filter::config::{FeatureSpec, KeySource};
use canary_filter::decision::RequestDescription;
use canary_filter::features::FeatureReason;
use canary_filter::{CanaryConfig, RoutingPlan};
use serde::Serialize;

use crate::metrics::counts::MetricsReading;
use crate::metrics::per_proxy;
use crate::metrics::source::{counts_of_rule, Source};
use crate::metrics::stats::{FilterStats, FEATURES};
use crate::metrics::table;

/// The state label of requests with the feature on: the rollout's "canary" side.
pub const ON: &str = "on";
/// The state label of requests with the feature off: the rollout's "stable" side.
pub const OFF: &str = "off";

/// Sets feature `name` to `percent` of users, declaring it when the configuration has no such
/// feature yet (the filter checks the name and the percent when the configuration is read).
pub fn set_feature(config: &CanaryConfig, name: &str, percent: f64) -> Result<CanaryConfig> {
    let mut next = config.clone();
    next.features
        .entry(name.to_string())
        .and_modify(|feature| feature.percent = percent)
        .or_insert(FeatureSpec { percent });
    Ok(next)
}

/// Feature `name`'s percent (0 when the configuration does not declare it).
pub fn percent_of(config: &CanaryConfig, name: &str) -> f64 {
    config.features.get(name).map_or(0.0, |f| f.percent)
}

/// The rules that pin feature `name` on (testers keep it after a rollback).
pub fn pins_on(config: &CanaryConfig, name: &str) -> Vec<String> {
    config
        .rules
        .iter()
        .filter(|rule| {
            rule.features
                .as_ref()
                .is_some_and(|features| features.get(name) == Some(&true))
        })
        .map(|rule| rule.name.clone())
        .collect()
}

/// One feature of a request, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureExplanation {
    /// The feature.
    pub name: String,
    /// Whether the request has it.
    pub on: bool,
    /// Why, in words.
    pub reason: String,
    /// The feature's bucket of the key (0..9999), when a bucket decided.
    pub bucket: Option<u32>,
}

/// The features `request` gets under `plan` (none when the configuration has no features),
/// with the filter's own feature decision.
pub fn explain_features(
    config: &CanaryConfig,
    plan: &RoutingPlan,
    request: &RequestDescription,
) -> Vec<FeatureExplanation> {
    let Some(features) = plan.features() else {
        return Vec::new();
    };
    let mut decided: Vec<(usize, bool, FeatureReason)> = Vec::new();
    plan.decide_features(&mut request.view(plan), |index, on, why| {
        decided.push((index, on, why));
    });
    decided.sort_by_key(|(index, _, _)| *index);
    let rule_name = |index: usize| plan.rule_names().nth(index).unwrap_or("?").to_string();
    decided
        .into_iter()
        .filter_map(|(index, on, why)| {
            let feature = features.list().get(index)?;
            let percent = f64::from(feature.end) / 100.0;
            let (reason, bucket) = match why {
                FeatureReason::Pinned { rule } => (
                    format!(
                        "rule `{}` matched and pins it {}",
                        rule_name(rule),
                        if on { ON } else { OFF }
                    ),
                    None,
                ),
                FeatureReason::MissingKey => (
                    "no sticky key is present and when_missing is `default`: off".to_string(),
                    None,
                ),
                FeatureReason::Bucket { bucket, key: None } => (
                    format!(
                        "no sticky key is present: a random bucket per request ({percent}% on); \
                         this time {bucket}"
                    ),
                    Some(bucket),
                ),
                FeatureReason::Bucket {
                    bucket,
                    key: Some(key),
                } => {
                    let source = match config.sticky.as_ref().and_then(|s| s.keys.get(key)) {
                        Some(KeySource::Header(header)) => format!("header {header}"),
                        Some(KeySource::Cookie(cookie)) => format!("cookie {cookie}"),
                        None => "the sticky key".to_string(),
                    };
                    (
                        format!(
                            "bucket {bucket} of {source} (murmur3_x86_32(key, \
                             murmur3_x86_32(\"{}\", 0)) % 10000) is {} {}",
                            feature.name,
                            if on { "below" } else { "not below" },
                            feature.end
                        ),
                        Some(bucket),
                    )
                }
            };
            Some(FeatureExplanation {
                name: feature.name.clone(),
                on,
                reason,
                bucket,
            })
        })
        .collect()
}

/// The features part of `explain`'s text: the header the upstream gets, then one line per
/// feature.
pub fn render_features(features: &[FeatureExplanation], header: &str) -> String {
    let mut out = String::new();
    if features.is_empty() {
        return out;
    }
    let on: Vec<&str> = features
        .iter()
        .filter(|f| f.on)
        .map(|f| f.name.as_str())
        .collect();
    let value = if on.is_empty() {
        "(none: the header is removed)".to_string()
    } else {
        on.join(",")
    };
    let _ = writeln!(out, "features: {header}: {value}");
    for feature in features {
        let state = if feature.on { ON } else { OFF };
        let _ = writeln!(out, "  {:<16} {state:<3}  {}", feature.name, feature.reason);
    }
    out
}

/// `status`'s feature series, summed over the source's proxies (buckets by bound): of the
/// source's service, or with `every_service` of every service the admin endpoints show; none
/// when Prometheus has no feature series.
pub fn status_stats(source: &Source, every_service: bool) -> Result<FilterStats> {
    let read = match source.read_family(&FEATURES, every_service) {
        Ok(read) => read,
        // Prometheus answers an error when the service has no feature series at all.
        Err(_) if matches!(source, Source::Prometheus { .. }) => return Ok(FilterStats::new()),
        Err(err) => return Err(err),
    };
    if let Some(silent) = read.unanswered.first() {
        bail!("an admin endpoint did not answer: {silent}");
    }
    per_proxy::total(&read.proxies)
}

/// Feature `name`'s counts, `on` under the name `canary` and `off` under [`OFF`]: the shape
/// the rollout's judge reads (canary against stable).
pub fn reading(stats: &FilterStats, service: &str, name: &str, canary: &str) -> MetricsReading {
    counts_of_rule(stats, service, name)
        .into_iter()
        .filter_map(|(state, counts)| match state.as_str() {
            ON => Some((canary.to_string(), counts)),
            OFF => Some((OFF.to_string(), counts)),
            _ => None,
        })
        .collect()
}

/// `status`'s per-feature table: for each feature, its requests, share, 5xx and latency on
/// and off.
pub fn render_table(stats: &FilterStats) -> Result<String> {
    let mut out = String::new();
    let features: BTreeSet<&str> = stats.keys().map(|key| key.rule.as_str()).collect();
    if features.is_empty() {
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{:<16} {:<5} {:>9} {:>7} {:>6} {:>7} {:>8} {:>8}",
        "feature", "state", "requests", "share", "5xx", "5xx %", "p50 ms", "p99 ms"
    );
    for feature in features {
        let of_feature: FilterStats = stats
            .iter()
            .filter(|(key, _)| key.rule == feature)
            .map(|(key, series)| (key.clone(), series.clone()))
            .collect();
        let states: BTreeMap<String, table::VersionStats> = table::by_version(&of_feature)?;
        // `on` first: the side being rolled out.
        let mut rows = table::summarize(&states);
        rows.sort_by_key(|row| row.version != ON);
        for row in rows {
            let _ = writeln!(
                out,
                "{:<16} {:<5} {:>9} {:>6.1}% {:>6} {:>7} {:>8} {:>8}",
                feature,
                row.version,
                row.requests,
                row.share,
                row.errors_5xx,
                row.error_rate
                    .map_or("-".to_string(), |rate| format!("{rate:.2}")),
                row.p50_ms.map_or("-".to_string(), |ms| format!("{ms:.1}")),
                row.p99_ms.map_or("-".to_string(), |ms| format!("{ms:.1}"))
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    const CONFIG: &str = r#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
        "default": "stable", "sticky": {"keys": [{"header": "x-user-id"}]},
        "features": {"dark-mode": {"percent": 50}},
        "rules": [{"name": "testers", "when": {"header": {"name": "x-tester", "present": true}},
                   "features": {"dark-mode": true}}]}"#;

    #[test]
    fn set_declares_or_changes_a_feature_and_the_filter_checks_it() {
        let config = CanaryConfig::from_json(CONFIG.as_bytes()).unwrap();
        let next = set_feature(&config, "new-checkout", 10.0).unwrap();
        assert_eq!(percent_of(&next, "new-checkout"), 10.0);
        assert_eq!(percent_of(&next, "dark-mode"), 50.0);
        let next = set_feature(&next, "dark-mode", 75.0).unwrap();
        assert_eq!(percent_of(&next, "dark-mode"), 75.0);
        RoutingPlan::try_from(&next).unwrap();
        let bad = set_feature(&next, "dark-mode", 150.0).unwrap();
        assert!(RoutingPlan::try_from(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("features.dark-mode.percent:"));
        assert_eq!(pins_on(&next, "dark-mode"), vec!["testers".to_string()]);
    }

    #[test]
    fn explain_gives_each_feature_and_why() {
        let config = CanaryConfig::from_json(CONFIG.as_bytes()).unwrap();
        let plan = RoutingPlan::try_from(&config).unwrap();
        let tester = RequestDescription::default()
            .header("x-user-id", "u1")
            .header("x-tester", "1");
        let explained = explain_features(&config, &plan, &tester);
        assert_eq!(explained.len(), 1);
        assert!(explained[0].on);
        assert_eq!(explained[0].reason, "rule `testers` matched and pins it on");
        // The bucket by the contract, computed with the murmur3 crate.
        let hash = |bytes: &[u8], seed: u32| {
            murmur3::murmur3_32(&mut std::io::Cursor::new(bytes), seed).unwrap()
        };
        let want = hash(b"u1", hash(b"dark-mode", 0)) % 10_000;
        let user = RequestDescription::default().header("x-user-id", "u1");
        let explained = explain_features(&config, &plan, &user);
        assert_eq!(explained[0].bucket, Some(want));
        assert_eq!(explained[0].on, want < 5000);
        let text = render_features(&explained, "x-canary-features");
        assert!(text.contains("header x-user-id"), "{text}");
    }
}
