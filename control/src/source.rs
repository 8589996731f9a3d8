//! Where the rollout reads the per-version counts of one cohort (one `rule` label): Envoy's
//! admin endpoints directly (one or more proxies, summed), or Prometheus's HTTP API for a
//! fleet. Both give cumulative counters; the rollout takes differences between reads. Both
//! read Prometheus's form of the latency histogram, whose `+Inf` bucket holds the requests
//! slower than the last bound (Envoy's JSON form has no such bucket, so they would drop out).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::metrics::{self, CODE_CLASSES};

use crate::admin::Admin;
use crate::judge::Counts;
use crate::stats::{self, FilterStats};

/// Counts per version, cumulative since the proxies started.
pub type MetricsReading = BTreeMap<String, Counts>;

/// A place to read readings from.
pub enum Source {
    /// Envoy admin endpoints, summed.
    Admin(Vec<Admin>),
    /// A Prometheus server that scrapes the proxies' `/stats/prometheus`.
    Prometheus { base: String, agent: ureq::Agent },
}

impl Source {
    /// Prometheus at `url` (`http://host:port`).
    pub fn prometheus(url: &str) -> Source {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Source::Prometheus {
            base: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Says where it reads from.
    pub fn describe(&self) -> String {
        match self {
            Source::Admin(admins) => {
                let all: Vec<&str> = admins.iter().map(Admin::base).collect();
                format!("Envoy admin {}", all.join(", "))
            }
            Source::Prometheus { base, .. } => format!("Prometheus {base}"),
        }
    }

    /// The cumulative counts of cohort `rule`, per version.
    pub fn read(&self, rule: &str) -> Result<MetricsReading> {
        match self {
            Source::Admin(admins) => {
                let mut total = MetricsReading::new();
                for admin in admins {
                    let one = stats::read(admin)
                        .map(|stats| counts_of_rule(&stats, rule))
                        .with_context(|| format!("reading {}", admin.base()))?;
                    for (version, counts) in one {
                        total
                            .entry(version)
                            .or_default()
                            .add(&counts)
                            .with_context(|| format!("adding the counts of {}", admin.base()))?;
                    }
                }
                if total.is_empty() {
                    bail!("the admin endpoints show no canary metrics for rule {rule:?}");
                }
                Ok(total)
            }
            Source::Prometheus { base, agent } => read_prometheus(base, agent, rule),
        }
    }
}

/// The counts of rule `rule` per version in the filter's metrics: responses by class and the
/// latency histogram's buckets, `+Inf` included. A version is there once it has a response of a
/// known class or a latency bucket.
pub fn counts_of_rule(stats: &FilterStats, rule: &str) -> MetricsReading {
    let mut reading = MetricsReading::new();
    for ((version, series_rule), series) in stats {
        if series_rule != rule {
            continue;
        }
        let mut counts = Counts::default();
        let mut seen = !series.latency.is_empty();
        for (class, n) in &series.responses {
            if let Some(i) = CODE_CLASSES.iter().position(|c| c == class) {
                counts.responses[i] += n;
                seen = true;
            }
        }
        counts.latency.clone_from(&series.latency);
        if seen {
            reading.insert(version.clone(), counts);
        }
    }
    reading
}

fn query(base: &str, agent: &ureq::Agent, promql: &str) -> Result<Vec<serde_json::Value>> {
    let url = format!("{base}/api/v1/query");
    let mut reply = agent
        .get(&url)
        .query("query", promql)
        .call()
        .with_context(|| format!("Prometheus {base} is unreachable"))?;
    let status = reply.status();
    let body = reply.body_mut().read_to_string()?;
    let doc: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("Prometheus answered {status} with no JSON"))?;
    if doc["status"] != "success" {
        bail!(
            "Prometheus refused {promql:?}: {}",
            doc["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(doc["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn sample_value(sample: &serde_json::Value) -> Option<u64> {
    let text = sample["value"][1].as_str()?;
    let value: f64 = text.parse().ok()?;
    // Counters arrive as floats; they are whole numbers.
    Some(value.round() as u64)
}

fn read_prometheus(base: &str, agent: &ureq::Agent, rule: &str) -> Result<MetricsReading> {
    let responses = format!(
        "sum by (version, code_class) ({}{{rule=\"{rule}\"}})",
        metrics::RESPONSES
    );
    let buckets = format!(
        "sum by (version, le) ({}_bucket{{rule=\"{rule}\"}})",
        metrics::DURATION
    );
    let mut reading = MetricsReading::new();
    let series = query(base, agent, &responses)?;
    if series.is_empty() {
        bail!(
            "Prometheus {base} returned nothing for {responses}: is it scraping the proxies' /stats/prometheus, and is rule {rule:?} right?"
        );
    }
    for sample in &series {
        let (Some(version), Some(class)) = (
            sample["metric"]["version"].as_str(),
            sample["metric"]["code_class"].as_str(),
        ) else {
            continue;
        };
        let value = sample_value(sample).ok_or_else(|| anyhow!("unreadable sample {sample}"))?;
        if let Some(i) = CODE_CLASSES.iter().position(|c| *c == class) {
            reading.entry(version.to_string()).or_default().responses[i] += value;
        }
    }
    let mut latency: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
    for sample in query(base, agent, &buckets)? {
        let (Some(version), Some(le)) = (
            sample["metric"]["version"].as_str(),
            sample["metric"]["le"].as_str(),
        ) else {
            continue;
        };
        // `+Inf` parses as infinity: the requests past the last bound, kept.
        let Ok(bound) = le.parse::<f64>() else {
            continue;
        };
        if bound.is_nan() {
            continue;
        }
        let value = sample_value(&sample).ok_or_else(|| anyhow!("unreadable sample {sample}"))?;
        latency
            .entry(version.to_string())
            .or_default()
            .push((bound, value));
    }
    for (version, mut points) in latency {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        reading.entry(version).or_default().latency = points;
    }
    Ok(reading)
}
