//! The native harness around the canary filter: real Envoy processes built from the shipped
//! `envoy/` files ([`mesh`]), one process each ([`envoy`]). The demo and the end-to-end tests
//! use it; the per-version table comes from canaryctl's library (`canary_control::status`).

pub mod envoy;
pub mod load;
pub mod mesh;
pub mod prometheus;

use std::time::Duration;

/// Errors of the harness: messages for people.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Results of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// An HTTP client that returns 4xx and 5xx as answers, not errors.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// A reply from the front proxy.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Header names in lower case, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// The body, lossily decoded.
    pub body: String,
}

impl Reply {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(have, _)| have == name)
            .map(|(_, value)| value.as_str())
    }

    /// The upstream that answered (`x-upstream`, set by the demo upstreams).
    pub fn upstream(&self) -> Option<&str> {
        self.header("x-upstream")
    }

    /// Parses a raw HTTP/1.1 response (read until the connection closed).
    pub fn parse(bytes: &[u8]) -> Result<Reply> {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("no end of headers in the reply")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or("empty reply")?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        Ok(Reply {
            status,
            headers,
            body: body.to_string(),
        })
    }
}
