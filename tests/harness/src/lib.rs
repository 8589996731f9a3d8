//! The native harness around the canary filter: real Envoy processes built from the shipped
//! `envoy/` files ([`mesh`]), one process each ([`envoy`]), a real Prometheus
//! ([`prometheus`]), the stand-in Kubernetes API server ([`kube`]) and Istio-configured
//! sidecars ([`sidecar`]). The filter's end-to-end tests (`tests/tests`), canaryctl's
//! integration tests (`control/tests`) and the tools (`tools/`: demo, benchmark, dashboard)
//! run on it.
//!
//! It does not depend on canaryctl's library: canaryctl's tests depend on the harness. A caller
//! that wants canaryctl's clients builds them from the addresses the harness gives
//! (`Admin::new(&envoy.admin_url())`, `Prometheus::new(&prometheus.url())`).

pub mod audit;
pub mod canaryctl;
pub mod envoy;
pub mod h2c;
pub mod istio_schema;
pub mod jsonpb;
pub mod kube;
pub mod load;
pub mod mesh;
pub mod preamble;
pub mod prometheus;
pub mod sidecar;
pub mod trap;

use std::time::Duration;

/// The rollout plan of the tests that run one service's rollout beside another service
/// (`control/tests/services.rs`, `control/tests/istio_services.rs`): three steps of 2 s, each
/// judged on at least 30 responses a side over at least 2 intervals.
pub const SCOPED_ROLLOUT_PLAN: [&str; 8] = [
    "--steps",
    "10,50,100",
    "--interval",
    "2s",
    "--min-requests",
    "30",
    "--min-intervals",
    "2",
];

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

    /// A client library's header map as `(name, value)` pairs, values lossily decoded.
    pub fn header_list(headers: &http::HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    /// Sends `request`, raw bytes of one HTTP/1.1 request (which should say `Connection:
    /// close`), to `listen` and reads the reply: up to the end of a reply with a
    /// Content-Length, else until the connection closes (Envoy may hold a connection it closes
    /// for up to its delayed-close timeout).
    pub fn exchange(listen: std::net::SocketAddr, request: &[u8]) -> Result<Reply> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(listen)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request)?;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        while !Reply::is_complete(&bytes) {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                break;
            }
            bytes.extend_from_slice(chunk.get(..read).unwrap_or_default());
        }
        Reply::parse(&bytes)
    }

    /// Whether `bytes` hold a whole HTTP/1.1 response that says its length (Content-Length).
    pub fn is_complete(bytes: &[u8]) -> bool {
        let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&bytes[..end]);
        let length = head.split("\r\n").find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        length.is_some_and(|length| bytes.len() >= end + 4 + length)
    }

    /// Parses a raw HTTP/1.1 response.
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
