//! Envoy's admin endpoint, over plain HTTP, and one stat by its exact name from
//! `/stats?format=json` (the ECDS counters, the configuration hash gauge).

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The default admin address of the shipped bootstrap.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";

/// One Envoy admin endpoint.
#[derive(Clone)]
pub struct Admin {
    base: String,
    agent: ureq::Agent,
}

impl Admin {
    /// `address` as `http://host:port`, `host:port` or a bare port on 127.0.0.1.
    pub fn new(address: &str) -> Admin {
        let trimmed = address.trim_end_matches('/');
        let base = if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
            trimmed.to_string()
        } else if trimmed.parse::<u16>().is_ok() {
            format!("http://127.0.0.1:{trimmed}")
        } else {
            format!("http://{trimmed}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        Admin { base, agent }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` (with its query); an unreachable endpoint or a non-200 answer is an error.
    pub fn get(&self, path: &str) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let mut reply = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("Envoy admin endpoint {} is unreachable", self.base))?;
        if reply.status() != 200 {
            bail!(
                "Envoy admin endpoint answered {} for {path}",
                reply.status()
            );
        }
        Ok(reply.body_mut().read_to_string()?)
    }

    /// One counter by exact name; `None` when Envoy has no such stat.
    pub fn counter(&self, name: &str) -> Result<Option<u64>> {
        let escaped: String = name
            .chars()
            .flat_map(|c| {
                let escape = "\\.+*?()|[]{}^$".contains(c);
                escape.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect();
        let query = format!("/stats?format=json&filter=^{}$", percent_encode(&escaped));
        parse_json_stat(&self.get(&query)?, name)
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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

    #[test]
    fn one_stat_by_exact_name() {
        let json = r#"{"stats": [{"name": "a.b", "value": 3}, {"name": "a.bc", "value": 4}]}"#;
        assert_eq!(parse_json_stat(json, "a.b").unwrap(), Some(3));
        assert_eq!(parse_json_stat(json, "a").unwrap(), None);
    }
}
