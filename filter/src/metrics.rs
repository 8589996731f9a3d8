//! Names of the per-version metrics. Envoy shows custom wasm metrics as `wasmcustom.<name>`;
//! the bootstrap's `stats_tags` cut the `.version.<v>`, `.rule.<r>` and `.code_class.<c>`
//! segments out as labels, so Prometheus sees
//! `canary_requests_total{version, rule}`, `canary_responses_total{version, rule, code_class}`
//! and the histogram `canary_request_duration_ms{version, rule}`. Version and rule names are
//! restricted to `[A-Za-z0-9_-]` by the config check, so they never break a name apart.

/// Counter of requests routed.
pub const REQUESTS: &str = "canary_requests_total";
/// Counter of responses by status class.
pub const RESPONSES: &str = "canary_responses_total";
/// Histogram of the time from request headers to response headers, in milliseconds.
pub const DURATION: &str = "canary_request_duration_ms";

/// Gauge holding [`config_hash`] of the configuration the filter runs: set once per accepted
/// configuration, so a control plane can tell which proxies took a change.
pub const CONFIG_HASH: &str = "canary_config_hash";

/// The hash a filter publishes in [`CONFIG_HASH`] for the configuration bytes Envoy hands it
/// (the `configuration` value, byte for byte): murmur3_x86_32 with seed 0.
pub fn config_hash(configuration: &[u8]) -> u32 {
    crate::bucket::murmur3_x86_32(configuration, 0)
}

/// Response status classes, indexed by `status / 100 - 1`.
pub const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// `canary_requests_total.version.<version>.rule.<rule>`
pub fn requests_name(version: &str, rule: &str) -> String {
    format!("{REQUESTS}.version.{version}.rule.{rule}")
}

/// `canary_responses_total.version.<version>.rule.<rule>.code_class.<class>`
pub fn responses_name(version: &str, rule: &str, class: &str) -> String {
    format!("{RESPONSES}.version.{version}.rule.{rule}.code_class.{class}")
}

/// `canary_request_duration_ms.version.<version>.rule.<rule>`
pub fn duration_name(version: &str, rule: &str) -> String {
    format!("{DURATION}.version.{version}.rule.{rule}")
}

/// Index into [`CODE_CLASSES`] of an HTTP status given as its ASCII digits (`b"503"`);
/// `None` for anything that is not a status from 100 to 599.
pub fn code_class_index(status: &[u8]) -> Option<usize> {
    match status {
        [first @ b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => Some(usize::from(first - b'1')),
        _ => None,
    }
}

/// Envoy's prefix for metrics defined by wasm modules, as `/stats` shows them.
pub const ENVOY_PREFIX: &str = "wasmcustom.";

/// One of this filter's metrics, taken apart from its raw Envoy name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricName<'a> {
    /// [`REQUESTS`], [`RESPONSES`] or [`DURATION`].
    pub metric: &'a str,
    /// The version label.
    pub version: &'a str,
    /// The rule label.
    pub rule: &'a str,
    /// The code class label (responses only).
    pub code_class: Option<&'a str>,
}

/// Takes a raw name apart (with or without the `wasmcustom.` prefix); `None` for any other
/// metric.
pub fn parse_name(name: &str) -> Option<MetricName<'_>> {
    let name = name.strip_prefix(ENVOY_PREFIX).unwrap_or(name);
    let mut parts = name.split('.');
    let metric = parts.next()?;
    if ![REQUESTS, RESPONSES, DURATION].contains(&metric) {
        return None;
    }
    let (Some("version"), Some(version), Some("rule"), Some(rule)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let code_class = match (metric == RESPONSES, parts.next(), parts.next()) {
        (true, Some("code_class"), Some(class)) => Some(class),
        (false, None, None) => None,
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(MetricName {
        metric,
        version,
        rule,
        code_class,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The published hash is MurmurHash3_x86_32 with seed 0 over the configuration's bytes:
    /// "hello" hashes to 0x248bfa47 in the reference implementation's published test vectors
    /// (the same value the `murmur3` crate gives), the empty input to 0.
    #[test]
    fn the_config_hash_is_murmur3_with_seed_0() {
        assert_eq!(config_hash(b"hello"), 0x248b_fa47);
        assert_eq!(config_hash(b""), 0);
        assert_ne!(config_hash(b"{\"a\":1}"), config_hash(b"{\"a\":2}"));
    }

    #[test]
    fn names_carry_the_labels_as_segments() {
        assert_eq!(
            requests_name("canary", "weights"),
            "canary_requests_total.version.canary.rule.weights"
        );
        assert_eq!(
            responses_name("v2", "eu-first", "5xx"),
            "canary_responses_total.version.v2.rule.eu-first.code_class.5xx"
        );
        assert_eq!(
            duration_name("stable", "default"),
            "canary_request_duration_ms.version.stable.rule.default"
        );
    }

    #[test]
    fn code_classes() {
        let table: &[(&[u8], Option<&str>)] = &[
            (b"100", Some("1xx")),
            (b"200", Some("2xx")),
            (b"204", Some("2xx")),
            (b"302", Some("3xx")),
            (b"404", Some("4xx")),
            (b"503", Some("5xx")),
            (b"599", Some("5xx")),
            (b"600", None),
            (b"099", None),
            (b"20", None),
            (b"2000", None),
            (b"", None),
            (b"abc", None),
        ];
        for &(status, want) in table {
            let got = code_class_index(status).and_then(|i| CODE_CLASSES.get(i).copied());
            assert_eq!(got, want, "status {status:?}");
        }
    }

    #[test]
    fn names_parse_back() {
        let requests = requests_name("canary", "eu-first");
        let parsed = parse_name(&requests).unwrap();
        assert_eq!(
            (
                parsed.metric,
                parsed.version,
                parsed.rule,
                parsed.code_class
            ),
            (REQUESTS, "canary", "eu-first", None)
        );
        let responses = format!("{ENVOY_PREFIX}{}", responses_name("v2", "weights", "5xx"));
        let parsed = parse_name(&responses).unwrap();
        assert_eq!(
            (
                parsed.metric,
                parsed.version,
                parsed.rule,
                parsed.code_class
            ),
            (RESPONSES, "v2", "weights", Some("5xx"))
        );
        let duration = duration_name("stable", "default");
        assert_eq!(parse_name(&duration).unwrap().metric, DURATION);
        for other in [
            "wasmcustom.other.version.a.rule.b",
            "canary_requests_total.version.a",
            "canary_requests_total.version.a.rule.b.code_class.2xx",
            "canary_responses_total.version.a.rule.b",
            "canary_requests_total.version.a.rule.b.extra",
            "cluster.app-v1.upstream_rq_total",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }
}
