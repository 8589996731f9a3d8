//! Running the real `kubectl`: the Istio target reads and replaces its WasmPlugin through it,
//! so whatever the user's kubectl reaches (kubeconfig, context, credentials, proxies) is what
//! canaryctl reaches. Its failures are sorted into the few a user can act on
//! ([`KubectlError`]).

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How long one request of kubectl may take before it gives up (its `--request-timeout`).
pub const REQUEST_TIMEOUT: &str = "10s";

/// The `kubectl` canaryctl runs, with the context and kubeconfig given on its command line
/// (kubectl itself honours `KUBECONFIG` otherwise).
#[derive(Debug, Clone, Default)]
pub struct Kubectl {
    /// `--context`.
    pub context: Option<String>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

/// Why a kubectl command failed, in the terms a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubectlError {
    /// No `kubectl` on `PATH`.
    NotInstalled(String),
    /// No API server answered (connection refused, no such host, timeout, no kubeconfig).
    Unreachable(String),
    /// 403: the user may not do this.
    Forbidden(String),
    /// 404: no such resource (or no such kind on the server).
    NotFound(String),
    /// 409: the object changed since it was read.
    Conflict(String),
    /// The API server refused the object: its validation (422 Invalid: the CRD's schema and
    /// rules, the metadata's limits) or an admission webhook (istiod's); nothing was stored.
    Refused(String),
    /// Anything else kubectl reported.
    Failed(String),
}

impl fmt::Display for KubectlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubectlError::NotInstalled(err) => write!(
                f,
                "kubectl not found ({err}): the Istio target reads and writes the WasmPlugin \
                 through kubectl; install it (Debian: apt-get install kubernetes-client)"
            ),
            KubectlError::Unreachable(said) => write!(
                f,
                "no Kubernetes API server reachable through kubectl (check KUBECONFIG, \
                 --kubeconfig, --context): {said}"
            ),
            KubectlError::Forbidden(said) => write!(f, "no permission (403 Forbidden): {said}"),
            KubectlError::NotFound(said) => write!(f, "no such resource (404 Not Found): {said}"),
            KubectlError::Conflict(said) => write!(f, "conflict (409): {said}"),
            KubectlError::Refused(said) => write!(
                f,
                "the API server refused the object, nothing was stored: {said}"
            ),
            KubectlError::Failed(said) => write!(f, "kubectl failed: {said}"),
        }
    }
}

impl std::error::Error for KubectlError {}

impl Kubectl {
    /// Runs `kubectl ARGS` (after the context and kubeconfig flags and a request timeout),
    /// with `stdin` as its input; its standard output when it succeeds.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, KubectlError> {
        let mut all: Vec<OsString> = Vec::new();
        if let Some(kubeconfig) = &self.kubeconfig {
            all.push("--kubeconfig".into());
            all.push(kubeconfig.into());
        }
        if let Some(context) = &self.context {
            all.push("--context".into());
            all.push(context.into());
        }
        all.push(format!("--request-timeout={REQUEST_TIMEOUT}").into());
        all.extend(args.iter().map(OsString::from));
        let mut child = Command::new("kubectl")
            .args(&all)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => KubectlError::NotInstalled(err.to_string()),
                _ => KubectlError::Failed(format!("cannot run kubectl: {err}")),
            })?;
        if let (Some(bytes), Some(mut input)) = (stdin, child.stdin.take()) {
            // A kubectl that exits early closes its input; its own error says why.
            let _ = input.write_all(bytes);
        }
        let output = child
            .wait_with_output()
            .map_err(|err| KubectlError::Failed(format!("kubectl did not finish: {err}")))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(classify(&String::from_utf8_lossy(&output.stderr)))
    }
}

/// Sorts kubectl's error output into a [`KubectlError`], keeping what it said (its own log
/// lines left out when it also printed a message for people).
pub fn classify(stderr: &str) -> KubectlError {
    let said = message(stderr);
    if stderr.contains("(Conflict)") {
        KubectlError::Conflict(said)
    } else if stderr.contains("(Invalid)")
        || stderr.contains(" is invalid: ")
        || stderr.contains("denied the request")
    {
        // The API server lists each refused field on a line of its own: all of them.
        KubectlError::Refused(all_lines(stderr))
    } else if stderr.contains("(Forbidden)") {
        KubectlError::Forbidden(said)
    } else if stderr.contains("(NotFound)")
        || stderr.contains("the server doesn't have a resource type")
    {
        KubectlError::NotFound(said)
    } else if [
        "connection refused",
        "was refused",
        "Unable to connect to the server",
        "no such host",
        "i/o timeout",
        "context deadline exceeded",
        "Client.Timeout",
    ]
    .iter()
    .any(|sign| stderr.contains(sign))
    {
        KubectlError::Unreachable(said)
    } else {
        KubectlError::Failed(said)
    }
}

/// kubectl's message when it spans lines (one per refused field): its lines that are not its
/// own log lines, joined.
fn all_lines(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_log(line))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One of kubectl's own log lines (`E1126 15:22:50.46 ...`).
fn is_log(line: &str) -> bool {
    let mut chars = line.chars();
    matches!(chars.next(), Some('I' | 'W' | 'E' | 'F')) && chars.take(4).all(|c| c.is_ascii_digit())
}

/// kubectl's message: its last line that is not one of its log lines (`E1126 15:22:50.46 ...`),
/// else its last line.
fn message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|line| !is_log(line))
        .or(lines.last())
        .map_or_else(|| "no message".to_string(), |line| line.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_errors_are_sorted_by_what_the_server_said() {
        assert!(matches!(
            classify(
                "Error from server (NotFound): wasmplugins.extensions.istio.io \"x\" not found\n"
            ),
            KubectlError::NotFound(_)
        ));
        assert!(matches!(
            classify("Error from server (Forbidden): wasmplugins.extensions.istio.io \"x\" is forbidden\n"),
            KubectlError::Forbidden(_)
        ));
        assert!(matches!(
            classify("Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled\n"),
            KubectlError::Conflict(_)
        ));
        let refused = "E1126 15:22:50.462176 8024 memcache.go:265] couldn't get current server API group list: dial tcp 127.0.0.1:1: connect: connection refused\n\
                       The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n";
        assert_eq!(
            classify(refused),
            KubectlError::Unreachable(
                "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
                    .to_string()
            )
        );
        assert!(matches!(
            classify("The WasmPlugin \"x\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes\n"),
            KubectlError::Refused(_)
        ));
        assert!(matches!(
            classify("Error from server: error when replacing \"STDIN\": admission webhook \"validation.istio.io\" denied the request: configuration is invalid: sha256 field must be 64 characters long\n"),
            KubectlError::Refused(_)
        ));
        assert!(matches!(
            classify("error: something else\n"),
            KubectlError::Failed(_)
        ));
    }
}
