//! The per-version table: requests, share, 5xx and latency quantiles, from the filter's metrics
//! as [`crate::metrics::stats`] reads them, each series a [`Counts`]. A version's series (one per rule
//! label) are summed with their buckets matched by bound before taking quantiles; a window of
//! `status --watch` is what [`crate::metrics::per_proxy::interval`] gives between two reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::metrics::admin::Admin;
use crate::metrics::counts::{Counts, MetricsReading};
use crate::metrics::per_proxy::FleetReading;
use crate::metrics::prometheus::describe_service;
use crate::metrics::source::Source;
use crate::metrics::stats::{self, SeriesKey, VERSIONS};

/// Everything the filter's metrics say about one version: its series summed, and its requests
/// by rule label.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionStats {
    /// Its counts, every rule's added (`+Inf` bucket included).
    pub counts: Counts,
    /// Requests by rule label.
    pub by_rule: BTreeMap<String, u64>,
}

impl VersionStats {
    /// Responses of class 5xx.
    pub fn errors(&self) -> u64 {
        self.counts.errors()
    }

    /// All responses counted.
    pub fn answered(&self) -> u64 {
        self.counts.answered()
    }

    /// The `q` quantile (0..1) of the latency in ms over the finite buckets, interpolated
    /// inside its bucket (the table prints a number; the samples past the last bound are
    /// left out); `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.counts.finite_latency_quantile(q)
    }
}

/// Reads the filter's metrics from an Envoy admin endpoint, by version: of one service
/// (`Some("")`: the series without a service), or of every service the proxy routes (`None`);
/// of one rule label only when `rule` is given.
pub fn read_versions(
    admin: &Admin,
    service: Option<&str>,
    rule: Option<&str>,
) -> Result<BTreeMap<String, VersionStats>> {
    let all = stats::read(admin)?;
    let of_service = match service {
        Some(service) => stats::of_service(all, service),
        None => all,
    };
    by_version(&of_rule(of_service, rule))
}

/// Only the series of rule label `rule`, when one is given.
pub fn of_rule(series: MetricsReading<SeriesKey>, rule: Option<&str>) -> MetricsReading<SeriesKey> {
    match rule {
        Some(rule) => series
            .into_iter()
            .filter(|(key, _)| key.rule == rule)
            .collect(),
        None => series,
    }
}

/// The series by version: each version's series (every rule's, every service's read) added,
/// buckets matched by bound (series of one version at different bounds are an error).
pub fn by_version(series: &MetricsReading<SeriesKey>) -> Result<BTreeMap<String, VersionStats>> {
    let mut versions: BTreeMap<String, VersionStats> = BTreeMap::new();
    for (key, counts) in series {
        let entry = versions.entry(key.version.clone()).or_default();
        entry
            .counts
            .add(counts)
            .with_context(|| format!("adding the series of version {}", key.version))?;
        *entry.by_rule.entry(key.rule.clone()).or_default() += counts.requests;
    }
    Ok(versions)
}

/// One line of the table, also what `--json` prints per version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSummary {
    /// The version's name.
    pub version: String,
    /// Requests routed to it.
    pub requests: u64,
    /// Its percent of all requests routed.
    pub share: f64,
    /// Responses of class 5xx.
    pub errors_5xx: u64,
    /// 5xx responses per response, in percent (`None` before any response).
    pub error_rate: Option<f64>,
    /// Median latency in ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in ms.
    pub p99_ms: Option<f64>,
    /// Requests by rule label.
    pub by_rule: BTreeMap<String, u64>,
}

/// The per-version summaries, in version-name order.
pub fn summarize(versions: &BTreeMap<String, VersionStats>) -> Vec<VersionSummary> {
    let total: u64 = versions.values().map(|v| v.counts.requests).sum();
    versions
        .iter()
        .map(|(name, stats)| VersionSummary {
            version: name.clone(),
            requests: stats.counts.requests,
            share: if total == 0 {
                0.0
            } else {
                stats.counts.requests as f64 * 100.0 / total as f64
            },
            errors_5xx: stats.errors(),
            error_rate: (stats.answered() > 0)
                .then(|| stats.errors() as f64 * 100.0 / stats.answered() as f64),
            p50_ms: stats.quantile(0.5),
            p99_ms: stats.quantile(0.99),
            by_rule: stats.by_rule.clone(),
        })
        .collect()
}

/// One version over a window between two reads (`status --watch`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRate {
    /// The version's name.
    pub version: String,
    /// Requests routed to it in the window.
    pub requests: u64,
    /// Requests per second over the window.
    pub requests_per_second: f64,
    /// 5xx responses in the window.
    pub errors_5xx: u64,
    /// 5xx per response in the window, percent (`None` without responses).
    pub error_rate: Option<f64>,
    /// Median latency in the window, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in the window, ms.
    pub p99_ms: Option<f64>,
}

/// Each version's rates over a window `seconds` long: `window` is what each version counted
/// in it (subtracted proxy by proxy, [`crate::metrics::per_proxy::interval`]).
pub fn rates(window: &BTreeMap<String, VersionStats>, seconds: f64) -> Vec<VersionRate> {
    window
        .iter()
        .map(|(name, stats)| VersionRate {
            version: name.clone(),
            requests: stats.counts.requests,
            requests_per_second: if seconds > 0.0 {
                stats.counts.requests as f64 / seconds
            } else {
                0.0
            },
            errors_5xx: stats.errors(),
            error_rate: (stats.answered() > 0)
                .then(|| stats.errors() as f64 * 100.0 / stats.answered() as f64),
            p50_ms: stats.quantile(0.5),
            p99_ms: stats.quantile(0.99),
        })
        .collect()
}

/// The rates table people read: one line per version.
pub fn render_rates(rates: &[VersionRate]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>9} {:>6} {:>7} {:>8} {:>8}",
        "version", "req/s", "requests", "5xx", "5xx %", "p50 ms", "p99 ms"
    );
    for row in rates {
        let _ = writeln!(
            out,
            "{:<12} {:>9.1} {:>9} {:>6} {:>7} {:>8} {:>8}",
            row.version,
            row.requests_per_second,
            row.requests,
            row.errors_5xx,
            row.error_rate
                .map_or("-".to_string(), |rate| format!("{rate:.2}")),
            milliseconds(row.p50_ms),
            milliseconds(row.p99_ms)
        );
    }
    out
}

/// A latency for the tables: the filter records whole milliseconds, so below 1 ms says "<1",
/// not an interpolation.
fn milliseconds(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(ms) if ms < 1.0 => "<1".to_string(),
        Some(ms) => format!("{ms:.1}"),
    }
}

/// The table people read: one line per version.
pub fn render_table(versions: &BTreeMap<String, VersionStats>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>7} {:>6} {:>7} {:>8} {:>8}",
        "version", "requests", "share", "5xx", "5xx %", "p50 ms", "p99 ms"
    );
    for row in summarize(versions) {
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>6.1}% {:>6} {:>7} {:>8} {:>8}",
            row.version,
            row.requests,
            row.share,
            row.errors_5xx,
            row.error_rate
                .map_or("-".to_string(), |rate| format!("{rate:.2}")),
            milliseconds(row.p50_ms),
            milliseconds(row.p99_ms)
        );
    }
    out
}

/// Where the table comes from: the rollout's [`Source`], and whether it reads every service
/// the admin endpoints show (admin endpoints without `--service`).
pub struct StatusSource {
    /// The source.
    pub source: Source,
    /// Every service's series (admin endpoints without `--service`), not only the source's.
    pub every_service: bool,
}

impl StatusSource {
    /// The filter's series per proxy, cumulative (of one rule label only when `rule` is
    /// given), and the admin endpoints that did not answer.
    pub fn read(&self, rule: Option<&str>) -> Result<(FleetReading<SeriesKey>, Vec<String>)> {
        let read = self.source.read_family(&VERSIONS, self.every_service)?;
        let fleet = read
            .proxies
            .into_iter()
            .map(|(proxy, series)| (proxy, of_rule(series, rule)))
            .collect();
        Ok((fleet, read.unanswered))
    }

    /// The heading: where the numbers come from.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Admin { admins, service } => {
                let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
                if self.every_service {
                    sources.join(", ")
                } else {
                    format!("{} ({})", sources.join(", "), describe_service(service))
                }
            }
            Source::Prometheus {
                prometheus,
                service,
            } => format!(
                "Prometheus {}, every proxy of the service with {}",
                prometheus.base(),
                describe_service(service)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::metrics::per_proxy;

    const INF: f64 = f64::INFINITY;

    fn key(version: &str, rule: &str) -> SeriesKey {
        SeriesKey {
            service: String::new(),
            version: version.to_string(),
            rule: rule.to_string(),
        }
    }

    fn counts(requests: u64, ok: u64, errors: u64, latency: &[(f64, u64)]) -> Counts {
        Counts {
            requests,
            responses: [0, ok, 0, 0, errors],
            latency: latency.to_vec(),
        }
    }

    fn proxy(series: &[(SeriesKey, Counts)]) -> MetricsReading<SeriesKey> {
        series.iter().cloned().collect()
    }

    /// A version's rules are added bucket by bound; its requests by rule are kept; the
    /// quantiles leave the `+Inf` bucket out (worked by hand).
    #[test]
    fn a_version_is_its_rules_added() {
        let series = proxy(&[
            (
                key("stable", "weights"),
                counts(90, 90, 0, &[(1.0, 40), (10.0, 80), (INF, 90)]),
            ),
            (
                key("stable", "testers"),
                counts(10, 8, 2, &[(1.0, 0), (10.0, 10), (INF, 10)]),
            ),
            (
                key("canary", "testers"),
                counts(5, 5, 0, &[(1.0, 5), (10.0, 5), (INF, 5)]),
            ),
        ]);
        let versions = by_version(&series).unwrap();
        let stable = &versions["stable"];
        assert_eq!(
            stable.counts,
            counts(100, 98, 2, &[(1.0, 40), (10.0, 90), (INF, 100)])
        );
        assert_eq!(
            stable.by_rule,
            BTreeMap::from([("testers".to_string(), 10), ("weights".to_string(), 90)])
        );
        // The median at rank 45 of the 90 finite samples: 5 of 50 into (1, 10].
        assert!((stable.quantile(0.5).unwrap() - (1.0 + 9.0 * 5.0 / 50.0)).abs() < 1e-9);
        let rows = summarize(&versions);
        assert_eq!(rows[1].version, "stable");
        assert!((rows[1].share - 100.0 * 100.0 / 105.0).abs() < 1e-9);
        assert_eq!(rows[1].error_rate, Some(2.0 * 100.0 / 100.0));
    }

    /// Two rules of one version whose buckets sit at other bounds (the same number of them):
    /// summed by position, the old table claimed 5 samples at or below 1 ms where there were
    /// 2. By bound: an error naming the version and both sets of bounds.
    #[test]
    fn a_versions_series_at_other_bounds_are_an_error() {
        let series = proxy(&[
            (
                key("stable", "weights"),
                counts(4, 4, 0, &[(1.0, 2), (10.0, 4)]),
            ),
            (
                key("stable", "testers"),
                counts(4, 4, 0, &[(5.0, 3), (10.0, 4)]),
            ),
        ]);
        let err = format!("{:#}", by_version(&series).unwrap_err());
        assert!(err.contains("version stable"), "{err}");
        assert!(err.contains("(5,10 and 1,10)"), "{err}");
    }

    /// The window between two reads of one proxy: 200 requests and 10 of 200 responses 5xx in
    /// 2 s; every window sample in (1, 10] ms; a version new since the first read counts from
    /// zero.
    #[test]
    fn rates_are_the_window_between_two_reads() {
        let fleet = |series: &[(SeriesKey, Counts)]| -> FleetReading<SeriesKey> {
            FleetReading::from([("a:1".to_string(), proxy(series))])
        };
        let before = fleet(&[(
            key("stable", "weights"),
            counts(100, 90, 10, &[(1.0, 50), (10.0, 100)]),
        )]);
        let now = fleet(&[
            (
                key("stable", "weights"),
                counts(300, 280, 20, &[(1.0, 50), (10.0, 300)]),
            ),
            (
                key("canary", "weights"),
                counts(40, 40, 0, &[(1.0, 40), (10.0, 40)]),
            ),
        ]);
        let window = per_proxy::interval(&before, &now).unwrap();
        let rates = rates(&by_version(&window.counts).unwrap(), 2.0);
        let stable = rates.iter().find(|r| r.version == "stable");
        assert_eq!(
            stable.map(|r| (
                r.requests,
                r.requests_per_second,
                r.errors_5xx,
                r.error_rate
            )),
            Some((200, 100.0, 10, Some(5.0)))
        );
        assert_eq!(stable.and_then(|r| r.p50_ms), Some(5.5));
        let canary = rates.iter().find(|r| r.version == "canary");
        assert_eq!(
            canary.map(|r| (r.requests, r.requests_per_second, r.error_rate)),
            Some((40, 20.0, Some(0.0)))
        );
        let table = render_rates(&rates);
        assert!(
            table.contains("canary            20.0        40"),
            "{table}"
        );
    }
}
