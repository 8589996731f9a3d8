//! Prometheus's HTTP API, for a fleet: the filter's metrics of one service (the rollout's
//! source, `status --prometheus`), and which configuration each scraped proxy of the service
//! runs (the fleet's confirmation). Every query names one `canary_service`: proxies of other
//! services scraped by the same Prometheus never count.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::metrics::{CODE_CLASS_LABEL, CONFIG_HASH, SERVICE_LABEL};

use crate::metrics::stats::{class_slot, FilterStats, SeriesKey};

/// How far back a proxy that stopped reporting still counts as one of the service's proxies:
/// Prometheus's own default lookback (`--query.lookback-delta`), the window in which an
/// instant query would have returned its series.
pub const FLEET_LOOKBACK: &str = "5m";

/// A Prometheus server.
#[derive(Clone)]
pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
}

/// One sample of an instant query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` included when the result keeps it).
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// One series of a query: its labels and its `(unix seconds, value)` points, in time order
/// (one for an instant query).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The labels (`__name__` included when the result keeps it).
    pub labels: BTreeMap<String, String>,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// The series of a result: a `vector`'s (each with its `value`) or a `matrix`'s (each with its
/// `values`). Values arrive as strings (`"NaN"` and `"+Inf"` among them).
fn series_of(data: &serde_json::Value, field: &str) -> Result<Vec<Series>> {
    let point = |sample: &serde_json::Value| -> Result<(f64, f64)> {
        let time = sample[0].as_f64();
        let value = sample[1].as_str().and_then(|text| text.parse::<f64>().ok());
        time.zip(value)
            .ok_or_else(|| anyhow!("an unreadable sample: {sample}"))
    };
    data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let labels = item["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_string())))
                .collect();
            let points = match &item[field] {
                serde_json::Value::Array(values) if field == "values" => {
                    values.iter().map(point).collect::<Result<_>>()?
                }
                sample @ serde_json::Value::Array(_) => vec![point(sample)?],
                _ => Vec::new(),
            };
            Ok(Series { labels, points })
        })
        .collect()
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The value as a whole number (counters and the hash gauge arrive as floats).
    fn count(&self) -> u64 {
        self.value.round() as u64
    }
}

/// The label matcher of one service's series: `canary_service="checkout"`; the empty service
/// matches the series without the label (a configuration without `service`).
pub fn service_matcher(service: &str) -> String {
    let escaped = service.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{SERVICE_LABEL}=\"{escaped}\"")
}

/// How a service is named in messages: `canary_service="a"`, or that it has none.
pub fn describe_service(service: &str) -> String {
    if service.is_empty() {
        format!("no {SERVICE_LABEL} label")
    } else {
        service_matcher(service)
    }
}

impl Prometheus {
    /// Prometheus at `url` (`http://host:port`).
    pub fn new(url: &str) -> Prometheus {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Prometheus {
            base: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The samples an instant query returns now; an unreachable server or a refused query is
    /// an error.
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let data = self.api("/api/v1/query", &[("query", promql.to_string())])?;
        series_of(&data, "value")?
            .into_iter()
            .map(|series| {
                let value = series
                    .points
                    .first()
                    .map(|&(_, value)| value)
                    .ok_or_else(|| anyhow!("a sample without a value for {promql:?}"))?;
                Ok(Sample {
                    labels: series.labels,
                    value,
                })
            })
            .collect()
    }

    /// An instant query at `time` (unix seconds): each series with its one point.
    pub fn query_at(&self, promql: &str, time: f64) -> Result<Vec<Series>> {
        let data = self.api(
            "/api/v1/query",
            &[
                ("query", promql.to_string()),
                ("time", format!("{time:.3}")),
            ],
        )?;
        series_of(&data, "value")
    }

    /// `promql` from `start` to `end` (unix seconds), a point every `step` seconds.
    pub fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<Series>> {
        let data = self.api(
            "/api/v1/query_range",
            &[
                ("query", promql.to_string()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{step:.3}")),
            ],
        )?;
        series_of(&data, "values")
    }

    /// The values of `label`, among the series `selector` matches when one is given.
    pub fn label_values(&self, label: &str, selector: Option<&str>) -> Result<Vec<String>> {
        let params: Vec<(&str, String)> = selector
            .map(|selector| ("match[]", selector.to_string()))
            .into_iter()
            .collect();
        let data = self.api(&format!("/api/v1/label/{label}/values"), &params)?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|value| value.as_str().map(str::to_string))
            .collect())
    }

    /// The `data` of a successful reply to a GET of `path`; Prometheus's own error otherwise.
    fn api(&self, path: &str, params: &[(&str, String)]) -> Result<serde_json::Value> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        for (name, value) in params {
            request = request.query(*name, value);
        }
        let mut reply = request
            .call()
            .with_context(|| format!("Prometheus {} is unreachable", self.base))?;
        let status = reply.status();
        let body = reply.body_mut().read_to_string()?;
        let mut doc: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("Prometheus answered {status} with no JSON"))?;
        if doc["status"] != "success" {
            let query = params
                .iter()
                .find(|(name, _)| *name == "query")
                .map_or(path, |(_, query)| query.as_str());
            bail!(
                "Prometheus refused {query:?}: {}",
                doc["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(doc["data"].take())
    }

    /// The series of `family` of `service` per proxy (by scrape target, `job/instance`, as
    /// [`Prometheus::config_hashes`] names them), each by version and rule: the same shape as
    /// one admin endpoint's (`crate::metrics::stats`), so the rollout and `status` read both
    /// alike ([`crate::metrics::source`]). Only the proxies Prometheus has a current sample of
    /// (a stopped proxy's series go stale at its first failed scrape). An error when
    /// Prometheus has none of the service's series.
    pub fn family_stats_by_proxy(
        &self,
        service: &str,
        family: &crate::metrics::stats::Family,
    ) -> Result<BTreeMap<String, FilterStats>> {
        let scope = service_matcher(service);
        let (version_label, rule_label) = (family.version_label, family.rule_label);
        let key = |sample: &Sample| {
            Some(SeriesKey {
                service: service.to_string(),
                version: sample.label(version_label)?.to_string(),
                rule: sample.label(rule_label)?.to_string(),
            })
        };
        let by = "job, instance, ";
        let mut fleet: BTreeMap<String, FilterStats> = BTreeMap::new();
        let requests = format!(
            "sum by ({by}{version_label}, {rule_label}) ({}{{{scope}}})",
            family.requests
        );
        for sample in self.query(&requests)? {
            if let Some(key) = key(&sample) {
                let stats = fleet.entry(proxy_name(&sample)).or_default();
                stats.entry(key).or_default().requests += sample.count();
            }
        }
        let responses = format!(
            "sum by ({by}{version_label}, {rule_label}, {CODE_CLASS_LABEL}) ({}{{{scope}}})",
            family.responses
        );
        for sample in self.query(&responses)? {
            if let (Some(key), Some(class)) = (key(&sample), sample.label(CODE_CLASS_LABEL)) {
                let stats = fleet.entry(proxy_name(&sample)).or_default();
                if let Some(slot) = class_slot(&mut stats.entry(key).or_default().responses, class)
                {
                    *slot += sample.count();
                }
            }
        }
        let buckets = format!(
            "sum by ({by}{version_label}, {rule_label}, le) ({}_bucket{{{scope}}})",
            family.duration
        );
        for sample in self.query(&buckets)? {
            // `+Inf` parses as infinity: the requests past the last bound, kept.
            let bound = sample.label("le").and_then(|le| le.parse::<f64>().ok());
            if let (Some(key), Some(bound)) = (key(&sample), bound.filter(|b| !b.is_nan())) {
                let stats = fleet.entry(proxy_name(&sample)).or_default();
                stats
                    .entry(key)
                    .or_default()
                    .latency
                    .push((bound, sample.count()));
            }
        }
        if fleet.values().all(FilterStats::is_empty) {
            bail!(
                "Prometheus {} has no canary metrics of the service with {}: is it scraping the \
                 proxies' /stats/prometheus, and is the service right?",
                self.base,
                describe_service(service)
            );
        }
        for series in fleet.values_mut().flat_map(|stats| stats.values_mut()) {
            series.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Ok(fleet)
    }

    /// Which configuration each proxy of `service` runs: every proxy whose
    /// `canary_config_hash` of the service Prometheus saw within [`FLEET_LOOKBACK`] and whose
    /// target it still scrapes (`up` exists, 0 or 1: a stopped proxy counts, a target taken
    /// out of service discovery does not), with the hash it reports now, if it reports one.
    pub fn config_hashes(&self, service: &str) -> Result<Vec<ProxyHash>> {
        let scope = service_matcher(service);
        let known = format!(
            "last_over_time({CONFIG_HASH}{{{scope}}}[{FLEET_LOOKBACK}]) and on (job, instance) up"
        );
        let now = format!("{CONFIG_HASH}{{{scope}}}");
        let current: BTreeMap<String, u64> = self
            .query(&now)?
            .iter()
            .map(|sample| (proxy_name(sample), sample.count()))
            .collect();
        let mut proxies: Vec<ProxyHash> = self
            .query(&known)?
            .iter()
            .map(|sample| {
                let proxy = proxy_name(sample);
                ProxyHash {
                    reports: current.get(&proxy).copied(),
                    proxy,
                }
            })
            .collect();
        proxies.sort_by(|a, b| a.proxy.cmp(&b.proxy));
        Ok(proxies)
    }
}

impl Prometheus {
    /// How often Prometheus scrapes the proxies of `service`: the longest `scrapeInterval` of
    /// its active targets (`/api/v1/targets`) that reported the service's `canary_config_hash`
    /// within [`FLEET_LOOKBACK`], or of all its active targets when none has yet. An error when
    /// it has no active target.
    pub fn scrape_interval(&self, service: &str) -> Result<Duration> {
        let scope = service_matcher(service);
        let reporting: Vec<(String, String)> = self
            .query(&format!(
                "count by (job, instance) (last_over_time({CONFIG_HASH}{{{scope}}}[{FLEET_LOOKBACK}]))"
            ))?
            .iter()
            .map(|sample| {
                (
                    sample.label("job").unwrap_or_default().to_string(),
                    sample.label("instance").unwrap_or_default().to_string(),
                )
            })
            .collect();
        let data = self.api("/api/v1/targets", &[("state", "active".to_string())])?;
        let targets: Vec<(String, String, Duration)> = data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|target| {
                let interval = parse_duration(target["scrapeInterval"].as_str()?).ok()?;
                Some((
                    target["labels"]["job"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    target["labels"]["instance"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    interval,
                ))
            })
            .collect();
        let of_service = targets
            .iter()
            .filter(|(job, instance, _)| reporting.contains(&(job.clone(), instance.clone())))
            .map(|(_, _, interval)| *interval)
            .max();
        of_service
            .or_else(|| targets.iter().map(|(_, _, interval)| *interval).max())
            .ok_or_else(|| {
                anyhow!(
                    "Prometheus {} has no active scrape target with a scrape interval",
                    self.base
                )
            })
    }
}

/// A Prometheus duration (`15s`, `1m30s`, `500ms`, `1h`; units y w d h m s ms).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        bail!("an empty duration");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let number: u64 = number
            .parse()
            .map_err(|_| anyhow!("{text:?} is not a Prometheus duration"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds = match unit {
            "ms" => {
                total += Duration::from_millis(number);
                rest = after;
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            "y" => 31_536_000,
            _ => bail!("{text:?} is not a Prometheus duration"),
        };
        total += Duration::from_secs(number.saturating_mul(seconds));
        rest = after;
    }
    Ok(total)
}

/// What one proxy of a service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHash {
    /// The proxy, by its scrape target (`instance`, with `job` when there is one).
    pub proxy: String,
    /// The hash it reports now; `None` when Prometheus has no current sample (the proxy is
    /// down, or no longer reports the service).
    pub reports: Option<u64>,
}

/// A proxy's name: its `job/instance` (the labels every scraped series carries).
fn proxy_name(sample: &Sample) -> String {
    match (sample.label("job"), sample.label("instance")) {
        (Some(job), Some(instance)) => format!("{job}/{instance}"),
        (None, Some(instance)) => instance.to_string(),
        _ => sample
            .labels
            .iter()
            .filter(|(name, _)| name.as_str() != "__name__")
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_matched_by_its_label_and_none_by_the_empty_value() {
        assert_eq!(service_matcher("checkout"), r#"canary_service="checkout""#);
        assert_eq!(service_matcher(""), r#"canary_service="""#);
        assert_eq!(service_matcher(r#"a"b"#), r#"canary_service="a\"b""#);
    }

    #[test]
    fn prometheus_durations_parse() {
        for (text, millis) in [
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("1m", 60_000),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(millis),
                "{text}"
            );
        }
        for bad in ["", "15", "s", "1.5s", "15 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxies_are_named_by_job_and_instance() {
        let sample = |labels: &[(&str, &str)]| Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
        };
        assert_eq!(
            proxy_name(&sample(&[("job", "envoy"), ("instance", "10.0.0.1:15090")])),
            "envoy/10.0.0.1:15090"
        );
        assert_eq!(proxy_name(&sample(&[("instance", "a:1")])), "a:1");
        assert_eq!(
            proxy_name(&sample(&[("__name__", "x"), ("pod", "p")])),
            "pod=p"
        );
    }
}
