//! The three calls of Prometheus's HTTP API the renderer makes: `query_range` for a panel's
//! series, `query` for an instant (table) target, `label/<name>/values` for a query variable.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::{http_agent, Result};

/// One series: its labels and its `(unix seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The labels, `__name__` included when the series has one.
    pub labels: BTreeMap<String, String>,
    /// Points in time order; one for an instant query.
    pub points: Vec<(f64, f64)>,
}

/// A Prometheus server's API at `url` (`http://host:port`).
pub struct PrometheusApi {
    url: String,
    agent: ureq::Agent,
}

impl PrometheusApi {
    /// The API of the Prometheus at `url`.
    pub fn new(url: &str) -> PrometheusApi {
        PrometheusApi {
            url: url.trim_end_matches('/').to_string(),
            agent: http_agent(Duration::from_secs(30)),
        }
    }

    /// `expr` from `start` to `end` every `step` seconds.
    pub fn query_range(&self, expr: &str, start: f64, end: f64, step: f64) -> Result<Vec<Series>> {
        let data = self.get(
            "/api/v1/query_range",
            &[
                ("query", expr.to_string()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{step:.3}")),
            ],
        )?;
        series_of(&data, "values")
    }

    /// `expr` at `time`.
    pub fn query(&self, expr: &str, time: f64) -> Result<Vec<Series>> {
        let data = self.get(
            "/api/v1/query",
            &[("query", expr.to_string()), ("time", format!("{time:.3}"))],
        )?;
        series_of(&data, "value")
    }

    /// The values of `label`, among the series `selector` matches if one is given.
    pub fn label_values(&self, label: &str, selector: Option<&str>) -> Result<Vec<String>> {
        let mut params = Vec::new();
        if let Some(selector) = selector {
            params.push(("match[]", selector.to_string()));
        }
        let data = self.get(&format!("/api/v1/label/{label}/values"), &params)?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    /// `data` of a successful reply; Prometheus's own error otherwise.
    fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value> {
        let mut request = self.agent.get(&format!("{}{path}", self.url));
        for (name, value) in params {
            request = request.query(*name, value);
        }
        let mut reply = request
            .call()
            .map_err(|err| format!("Prometheus {} is unreachable: {err}", self.url))?;
        let status = reply.status();
        let body = reply.body_mut().read_to_string()?;
        let doc: Value = serde_json::from_str(&body)
            .map_err(|_| format!("Prometheus answered {status} to {path} with no JSON: {body}"))?;
        if doc["status"] != "success" {
            return Err(format!(
                "Prometheus refused it: {}",
                doc["error"].as_str().unwrap_or("no reason given")
            )
            .into());
        }
        Ok(doc["data"].clone())
    }
}

/// The series of a `matrix` (`values`) or `vector` (`value`) result.
fn series_of(data: &Value, field: &str) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for item in data["result"].as_array().into_iter().flatten() {
        let labels = item["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        let samples: Vec<&Value> = match &item[field] {
            Value::Array(values) if field == "value" => vec![&item[field]]
                .into_iter()
                .filter(|_| !values.is_empty())
                .collect(),
            Value::Array(values) => values.iter().collect(),
            _ => Vec::new(),
        };
        let mut points = Vec::new();
        for sample in samples {
            let time = sample[0]
                .as_f64()
                .ok_or_else(|| format!("a sample without a time: {sample}"))?;
            // Values arrive as strings: "NaN", "+Inf" and numbers.
            let value = sample[1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("a sample without a value: {sample}"))?;
            points.push((time, value));
        }
        out.push(Series { labels, points });
    }
    Ok(out)
}
