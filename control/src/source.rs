//! Where the rollout reads the per-version counts of one cohort (one `rule` label): Envoy's
//! admin endpoints directly (one or more proxies, summed), or Prometheus's HTTP API for a
//! fleet. Both give cumulative counters; the rollout takes differences between reads.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::metrics::{self, parse_name, CODE_CLASSES};

use crate::admin::Admin;
use crate::judge::Counts;
use crate::status::{add_cumulative, STATS_QUERY};

/// Counts per version, cumulative since the proxies started.
pub type Snapshot = BTreeMap<String, Counts>;

/// A place to read snapshots from.
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
    pub fn read(&self, rule: &str) -> Result<Snapshot> {
        match self {
            Source::Admin(admins) => {
                let mut total = Snapshot::new();
                for admin in admins {
                    let one = parse_admin(&admin.get(STATS_QUERY)?, rule)?;
                    for (version, counts) in one {
                        add(total.entry(version).or_default(), &counts);
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

fn add(total: &mut Counts, more: &Counts) {
    for (have, add) in total.responses.iter_mut().zip(more.responses) {
        *have += add;
    }
    add_cumulative(&mut total.latency, &more.latency);
}

/// Parses the admin JSON of [`STATS_QUERY`], keeping rule `rule`.
pub fn parse_admin(json: &str, rule: &str) -> Result<Snapshot> {
    let doc: serde_json::Value = serde_json::from_str(json)?;
    let mut snapshot = Snapshot::new();
    for stat in doc["stats"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (stat["name"].as_str(), stat["value"].as_u64()) {
            let Some(parsed) = parse_name(name).filter(|p| p.rule == rule) else {
                continue;
            };
            if let Some(class) = parsed.code_class {
                if let Some(i) = CODE_CLASSES.iter().position(|c| *c == class) {
                    snapshot
                        .entry(parsed.version.to_string())
                        .or_default()
                        .responses[i] += value;
                }
            }
        }
        for histogram in stat["histograms"].as_array().into_iter().flatten() {
            let Some(parsed) = histogram["name"]
                .as_str()
                .and_then(parse_name)
                .filter(|p| p.rule == rule)
            else {
                continue;
            };
            let points: Vec<(f64, u64)> = histogram["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| Some((b["upper_bound"].as_f64()?, b["cumulative"].as_u64()?)))
                .collect();
            snapshot
                .entry(parsed.version.to_string())
                .or_default()
                .latency = points;
        }
    }
    Ok(snapshot)
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

fn read_prometheus(base: &str, agent: &ureq::Agent, rule: &str) -> Result<Snapshot> {
    let responses = format!(
        "sum by (version, code_class) ({}{{rule=\"{rule}\"}})",
        metrics::RESPONSES
    );
    let buckets = format!(
        "sum by (version, le) ({}_bucket{{rule=\"{rule}\"}})",
        metrics::DURATION
    );
    let mut snapshot = Snapshot::new();
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
            snapshot.entry(version.to_string()).or_default().responses[i] += value;
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
        // Samples past the last finite bound are left out, as the admin source has no +Inf.
        let Ok(bound) = le.parse::<f64>() else {
            continue;
        };
        if !bound.is_finite() {
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
        snapshot.entry(version).or_default().latency = points;
    }
    Ok(snapshot)
}
