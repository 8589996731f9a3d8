//! The per-version table: requests, share, 5xx and latency quantiles, from the filter's metrics
//! as [`crate::metrics::stats`] reads them (histograms as cumulative buckets, so the latency of one
//! version can be summed across rules before taking quantiles).

use crate::metrics::prometheus::{describe_service, Prometheus};
use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::metrics::admin::Admin;
use crate::metrics::stats::{self, FilterStats};

/// Everything the filter's metrics say about one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionStats {
    /// Requests routed to it.
    pub requests: u64,
    /// Responses by code class (`"2xx"` …).
    pub responses: BTreeMap<String, u64>,
    /// Requests by rule label.
    pub by_rule: BTreeMap<String, u64>,
    /// Latency histogram: `(upper bound in ms, cumulative count)`, summed over rules.
    pub latency: Vec<(f64, u64)>,
}

impl VersionStats {
    /// What was counted after `earlier` (a read of the same proxies; a counter that went down,
    /// as after a restart, counts from zero).
    pub fn since(&self, earlier: &VersionStats) -> VersionStats {
        let minus = |now: u64, then: Option<&u64>| match then {
            Some(&then) if then <= now => now - then,
            _ => now,
        };
        VersionStats {
            requests: minus(self.requests, Some(&earlier.requests)),
            responses: self
                .responses
                .iter()
                .map(|(class, &n)| (class.clone(), minus(n, earlier.responses.get(class))))
                .collect(),
            by_rule: self
                .by_rule
                .iter()
                .map(|(rule, &n)| (rule.clone(), minus(n, earlier.by_rule.get(rule))))
                .collect(),
            latency: if earlier.latency.len() == self.latency.len() {
                self.latency
                    .iter()
                    .zip(&earlier.latency)
                    .map(|(&(bound, n), &(_, then))| (bound, minus(n, Some(&then))))
                    .collect()
            } else {
                self.latency.clone()
            },
        }
    }

    /// Responses of class 5xx.
    pub fn errors(&self) -> u64 {
        self.responses.get("5xx").copied().unwrap_or(0)
    }

    /// All responses counted.
    pub fn answered(&self) -> u64 {
        self.responses.values().sum()
    }

    /// The `q` quantile (0..1) of the latency in ms, interpolated inside its bucket; `None`
    /// without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.latency, q)
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

/// Adds `more` (from another proxy) into `total`.
pub fn add_into(total: &mut VersionStats, more: &VersionStats) {
    total.requests += more.requests;
    for (class, n) in &more.responses {
        *total.responses.entry(class.clone()).or_default() += n;
    }
    for (rule, n) in &more.by_rule {
        *total.by_rule.entry(rule.clone()).or_default() += n;
    }
    add_cumulative(&mut total.latency, &more.latency);
}

/// Adds one cumulative histogram into another with the same bounds (the first one taken as is).
pub fn add_cumulative(total: &mut Vec<(f64, u64)>, more: &[(f64, u64)]) {
    if total.is_empty() {
        total.extend_from_slice(more);
    } else {
        for (have, add) in total.iter_mut().zip(more) {
            have.1 += add.1;
        }
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
    Ok(by_version(&match rule {
        Some(rule) => of_service
            .into_iter()
            .filter(|(key, _)| key.rule == rule)
            .collect(),
        None => of_service,
    }))
}

/// The filter's metrics by version: every rule's summed, the latency without its `+Inf` bucket
/// (the quantiles interpolate inside finite buckets).
pub fn by_version(stats: &FilterStats) -> BTreeMap<String, VersionStats> {
    let mut versions: BTreeMap<String, VersionStats> = BTreeMap::new();
    for (key, series) in stats {
        let entry = versions.entry(key.version.clone()).or_default();
        entry.requests += series.requests;
        *entry.by_rule.entry(key.rule.clone()).or_default() += series.requests;
        for (class, n) in &series.responses {
            *entry.responses.entry(class.clone()).or_default() += n;
        }
        let finite: Vec<(f64, u64)> = series
            .latency
            .iter()
            .copied()
            .filter(|(bound, _)| bound.is_finite())
            .collect();
        add_cumulative(&mut entry.latency, &finite);
    }
    versions
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
    let total: u64 = versions.values().map(|v| v.requests).sum();
    versions
        .iter()
        .map(|(name, stats)| VersionSummary {
            version: name.clone(),
            requests: stats.requests,
            share: if total == 0 {
                0.0
            } else {
                stats.requests as f64 * 100.0 / total as f64
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

/// Each version's rates between two reads `seconds` apart (versions of the later read).
pub fn rates(
    now: &BTreeMap<String, VersionStats>,
    before: &BTreeMap<String, VersionStats>,
    seconds: f64,
) -> Vec<VersionRate> {
    now.iter()
        .map(|(name, stats)| {
            let window = match before.get(name) {
                Some(earlier) => stats.since(earlier),
                None => stats.clone(),
            };
            VersionRate {
                version: name.clone(),
                requests: window.requests,
                requests_per_second: if seconds > 0.0 {
                    window.requests as f64 / seconds
                } else {
                    0.0
                },
                errors_5xx: window.errors(),
                error_rate: (window.answered() > 0)
                    .then(|| window.errors() as f64 * 100.0 / window.answered() as f64),
                p50_ms: window.quantile(0.5),
                p99_ms: window.quantile(0.99),
            }
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

/// Where the table comes from.
pub enum StatusSource {
    /// Envoy admin endpoints, summed; of one service, or of every one (`None`).
    Admins(Vec<Admin>, Option<String>),
    /// Every proxy of one service that Prometheus scrapes.
    Prometheus(Prometheus, String),
}

impl StatusSource {
    /// The filter's metrics by version; of one rule label only when `rule` is given.
    pub fn read(&self, rule: Option<&str>) -> Result<BTreeMap<String, VersionStats>> {
        match self {
            StatusSource::Admins(admins, service) => read(admins, service.as_deref(), rule),
            StatusSource::Prometheus(prometheus, service) => {
                let stats = prometheus.filter_stats(service)?;
                Ok(by_version(&match rule {
                    Some(rule) => stats
                        .into_iter()
                        .filter(|(key, _)| key.rule == rule)
                        .collect(),
                    None => stats,
                }))
            }
        }
    }

    /// The heading: where the numbers come from.
    pub fn describe(&self) -> String {
        match self {
            StatusSource::Admins(admins, service) => {
                let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
                match service {
                    Some(service) => {
                        format!("{} ({})", sources.join(", "), describe_service(service))
                    }
                    None => sources.join(", "),
                }
            }
            StatusSource::Prometheus(prometheus, service) => format!(
                "Prometheus {}, every proxy of the service with {}",
                prometheus.base(),
                describe_service(service)
            ),
        }
    }
}

/// The filter's metrics of every admin endpoint, summed by version: of one service, or of
/// every one (`None`); of one rule label only when `rule` is given.
pub fn read(
    admins: &[Admin],
    service: Option<&str>,
    rule: Option<&str>,
) -> Result<BTreeMap<String, VersionStats>> {
    let mut total = BTreeMap::new();
    for admin in admins {
        for (version, stats) in read_versions(admin, service, rule)? {
            let entry: &mut VersionStats = total.entry(version).or_default();
            add_into(entry, &stats);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, ok: u64, errors: u64, latency: &[(f64, u64)]) -> VersionStats {
        VersionStats {
            requests,
            responses: [("2xx".to_string(), ok), ("5xx".to_string(), errors)].into(),
            by_rule: [("weights".to_string(), requests)].into(),
            latency: latency.to_vec(),
        }
    }

    #[test]
    fn rates_are_the_window_between_two_reads() {
        let before = BTreeMap::from([(
            "stable".to_string(),
            stats(100, 90, 10, &[(1.0, 50), (10.0, 100)]),
        )]);
        let now = BTreeMap::from([
            (
                "stable".to_string(),
                stats(300, 280, 20, &[(1.0, 50), (10.0, 300)]),
            ),
            (
                "canary".to_string(),
                stats(40, 40, 0, &[(1.0, 40), (10.0, 40)]),
            ),
        ]);
        let rates = rates(&now, &before, 2.0);
        // 200 requests and 10 of 200 responses 5xx in 2 s; every window sample in (1, 10] ms.
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
        // A version new since the first read counts from zero.
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
