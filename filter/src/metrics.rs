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

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

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
}
