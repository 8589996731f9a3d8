//! Names of the per-version metrics. Envoy shows custom wasm metrics as `wasmcustom.<name>`;
//! the bootstrap's `stats_tags` cut the `.canary_service.<s>`, `.canary_version.<v>`,
//! `.canary_rule.<r>` and `.canary_code_class.<c>` segments out as labels, so Prometheus sees
//! `canary_requests_total{canary_service, canary_version, canary_rule}`,
//! `canary_responses_total{…, canary_code_class}`, the histogram
//! `canary_request_duration_ms{canary_service, canary_version, canary_rule}` and the gauge
//! `canary_config_hash{canary_service}`.
//!
//! The labels are prefixed with `canary_` because Istio's usual Prometheus scrape configuration
//! copies pod labels such as `version` onto every series: Prometheus would then rename a
//! metric's own `version` to `exported_version`. A configuration without `service` names no
//! service segment, and the series carry no `canary_service` label (PromQL matches them with
//! `canary_service=""`). Service, version and rule names are restricted to `[A-Za-z0-9_-]` by
//! the config check, so they never break a name apart.

use crate::CanaryConfig;

/// Counter of requests routed.
pub const REQUESTS: &str = "canary_requests_total";
/// Counter of responses by status class.
pub const RESPONSES: &str = "canary_responses_total";
/// Histogram of the time from request headers to response headers, in milliseconds.
pub const DURATION: &str = "canary_request_duration_ms";

/// Gauge holding [`config_hash`] of the configuration the filter runs: set once per accepted
/// configuration, so a control plane can tell which proxies took a change.
pub const CONFIG_HASH: &str = "canary_config_hash";

/// The label (and name segment) of the configured service.
pub const SERVICE_LABEL: &str = "canary_service";
/// The label (and name segment) of the version a request was routed to.
pub const VERSION_LABEL: &str = "canary_version";
/// The label (and name segment) of the rule that decided: a rule's name, `weights` or
/// `default`.
pub const RULE_LABEL: &str = "canary_rule";
/// The label (and name segment) of a response's status class.
pub const CODE_CLASS_LABEL: &str = "canary_code_class";

/// The hash a filter publishes in [`CONFIG_HASH`]: murmur3_x86_32 (seed 0) of
/// [`canonical_form`] of the configuration as parsed, so that whoever wrote the document
/// (canaryctl, a person, istiod re-serializing a WasmPlugin's `pluginConfig` with its own key
/// order and number format) the same configuration gives the same hash, and canaryctl can
/// compute the hash a proxy will publish from the configuration it wrote. It cannot fail; the
/// `Result` keeps the callers' error handling from before the canonical form had its own
/// writer.
pub fn config_hash(config: &CanaryConfig) -> Result<u32, std::convert::Infallible> {
    Ok(crate::bucket::murmur3_x86_32(&canonical_form(config)?, 0))
}

/// The configuration written back as compact JSON, as serde_json writes it: a function of the
/// parsed value only. Fields come in declaration order, maps are `BTreeMap`s (sorted), numbers
/// are the parsed `f64`/`u32` written in shortest form (`10`, `10.0` and `1e1` all parse to the
/// same `f64`), defaults are filled in when parsing (written or not, a default reads the same),
/// and string escapes are decoded. Written by [`crate::canonical`], not serde_json's writer,
/// which the `.wasm` would otherwise carry for this alone.
pub fn canonical_form(config: &CanaryConfig) -> Result<Vec<u8>, std::convert::Infallible> {
    Ok(crate::canonical::canonical_form(config))
}

/// Response status classes, indexed by `status / 100 - 1`.
pub const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// `<metric>[.canary_service.<service>]`: the service segment only when one is configured.
fn with_service(metric: &str, service: Option<&str>) -> String {
    match service {
        Some(service) => format!("{metric}.{SERVICE_LABEL}.{service}"),
        None => metric.to_string(),
    }
}

/// `canary_config_hash[.canary_service.<service>]`
pub fn config_hash_name(service: Option<&str>) -> String {
    with_service(CONFIG_HASH, service)
}

/// `canary_requests_total[.canary_service.<s>].canary_version.<version>.canary_rule.<rule>`
pub fn requests_name(service: Option<&str>, version: &str, rule: &str) -> String {
    format!(
        "{}.{VERSION_LABEL}.{version}.{RULE_LABEL}.{rule}",
        with_service(REQUESTS, service)
    )
}

/// `canary_responses_total[.canary_service.<s>].canary_version.<version>.canary_rule.<rule>`
/// `.canary_code_class.<class>`
pub fn responses_name(service: Option<&str>, version: &str, rule: &str, class: &str) -> String {
    format!(
        "{}.{VERSION_LABEL}.{version}.{RULE_LABEL}.{rule}.{CODE_CLASS_LABEL}.{class}",
        with_service(RESPONSES, service)
    )
}

/// `canary_request_duration_ms[.canary_service.<s>].canary_version.<version>.canary_rule.<rule>`
pub fn duration_name(service: Option<&str>, version: &str, rule: &str) -> String {
    format!(
        "{}.{VERSION_LABEL}.{version}.{RULE_LABEL}.{rule}",
        with_service(DURATION, service)
    )
}

/// The Envoy bootstrap's `stats_config.stats_tags` that cut the label segments out of the
/// names: `(tag_name, regex)`, each regex's first group the segment removed from the name, its
/// second the label's value (Envoy's regex tag extraction). `envoy/front.yaml` carries these
/// (a test compares them), and `canaryctl istio` renders them for Istio's sidecars.
pub fn stats_tags() -> [(&'static str, String); 6] {
    let metric = r"^wasmcustom\.canary_[a-z_]+";
    let segment = |label: &str| format!(r"\.{label}\.([\w-]+)");
    let service = format!(r"(?:\.{SERVICE_LABEL}\.[\w-]+)?");
    let version = format!(r"\.{VERSION_LABEL}\.[\w-]+");
    let rule = format!(r"\.{RULE_LABEL}\.[\w-]+");
    let feature = format!(r"\.{FEATURE_LABEL}\.[\w-]+");
    let state = format!(r"\.{FEATURE_STATE_LABEL}\.[\w-]+");
    [
        (
            SERVICE_LABEL,
            format!("{metric}({})", segment(SERVICE_LABEL)),
        ),
        (
            VERSION_LABEL,
            format!("{metric}{service}({})", segment(VERSION_LABEL)),
        ),
        (
            RULE_LABEL,
            format!("{metric}{service}{version}({})", segment(RULE_LABEL)),
        ),
        (
            CODE_CLASS_LABEL,
            // After a version and a rule, or after a feature and its state.
            format!(
                "{metric}{service}(?:{version}{rule}|{feature}{state})({})",
                segment(CODE_CLASS_LABEL)
            ),
        ),
        (
            FEATURE_LABEL,
            format!("{metric}{service}({})", segment(FEATURE_LABEL)),
        ),
        (
            FEATURE_STATE_LABEL,
            format!(
                "{metric}{service}{feature}({})",
                segment(FEATURE_STATE_LABEL)
            ),
        ),
    ]
}

/// Counter of requests by feature and state.
pub const FEATURE_REQUESTS: &str = "canary_feature_requests_total";
/// Counter of responses by feature, state and status class.
pub const FEATURE_RESPONSES: &str = "canary_feature_responses_total";
/// Histogram of the request duration by feature and state, in milliseconds.
pub const FEATURE_DURATION: &str = "canary_feature_request_duration_ms";
/// The label (and name segment) of a feature.
pub const FEATURE_LABEL: &str = "canary_feature";
/// The label (and name segment) of a feature's state for the request: `on` or `off`
/// ([`crate::features::STATES`]).
pub const FEATURE_STATE_LABEL: &str = "canary_feature_state";

/// `<metric>[.canary_service.<s>].canary_feature.<feature>.canary_feature_state.<state>`, for
/// [`FEATURE_REQUESTS`] and [`FEATURE_DURATION`].
pub fn feature_name(metric: &str, service: Option<&str>, feature: &str, state: &str) -> String {
    format!(
        "{}.{FEATURE_LABEL}.{feature}.{FEATURE_STATE_LABEL}.{state}",
        with_service(metric, service)
    )
}

/// [`FEATURE_RESPONSES`]'s name: [`feature_name`]`.canary_code_class.<class>`.
pub fn feature_responses_name(
    service: Option<&str>,
    feature: &str,
    state: &str,
    class: &str,
) -> String {
    format!(
        "{}.{CODE_CLASS_LABEL}.{class}",
        feature_name(FEATURE_RESPONSES, service, feature, state)
    )
}

/// One of the feature metrics, taken apart from its raw Envoy name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureMetricName<'a> {
    /// [`FEATURE_REQUESTS`], [`FEATURE_RESPONSES`] or [`FEATURE_DURATION`].
    pub metric: &'a str,
    /// The service label, if the name has one.
    pub service: Option<&'a str>,
    /// The feature.
    pub feature: &'a str,
    /// `on` or `off`.
    pub state: &'a str,
    /// The code class label (responses only).
    pub code_class: Option<&'a str>,
}

/// Takes a feature metric's raw name apart (with or without the `wasmcustom.` prefix); `None`
/// for any other metric.
pub fn parse_feature_name(name: &str) -> Option<FeatureMetricName<'_>> {
    let parts = parse_labelled(
        name,
        [FEATURE_REQUESTS, FEATURE_RESPONSES, FEATURE_DURATION],
        (FEATURE_LABEL, FEATURE_STATE_LABEL),
    )?;
    Some(FeatureMetricName {
        metric: parts.metric,
        service: parts.service,
        feature: parts.labels.0,
        state: parts.labels.1,
        code_class: parts.code_class,
    })
}

/// A raw name's parts, for the two families of metrics (per version and rule, per feature and
/// state): `metric[.canary_service.S].LABEL0.V0.LABEL1.V1[.canary_code_class.C]`, the code
/// class on the responses counter (the second of `metrics`) only.
struct LabelledName<'a> {
    metric: &'a str,
    service: Option<&'a str>,
    labels: (&'a str, &'a str),
    code_class: Option<&'a str>,
}

fn parse_labelled<'a>(
    name: &'a str,
    metrics: [&str; 3],
    (first, second): (&str, &str),
) -> Option<LabelledName<'a>> {
    let [_, responses, _] = metrics;
    let name = name.strip_prefix(ENVOY_PREFIX).unwrap_or(name);
    let mut parts = name.split('.').peekable();
    let metric = parts.next()?;
    if !metrics.contains(&metric) {
        return None;
    }
    let service = if parts.peek() == Some(&SERVICE_LABEL) {
        parts.next();
        Some(parts.next()?)
    } else {
        None
    };
    let (Some(label0), Some(value0), Some(label1), Some(value1)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if (label0, label1) != (first, second) {
        return None;
    }
    let code_class = match (metric == responses, parts.next(), parts.next()) {
        (true, Some(CODE_CLASS_LABEL), Some(class)) => Some(class),
        (false, None, None) => None,
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(LabelledName {
        metric,
        service,
        labels: (value0, value1),
        code_class,
    })
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
    /// The service label, if the name has one.
    pub service: Option<&'a str>,
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
    let parts = parse_labelled(
        name,
        [REQUESTS, RESPONSES, DURATION],
        (VERSION_LABEL, RULE_LABEL),
    )?;
    Some(MetricName {
        metric: parts.metric,
        service: parts.service,
        version: parts.labels.0,
        rule: parts.labels.1,
        code_class: parts.code_class,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn hash_of(json: &str) -> u32 {
        config_hash(&CanaryConfig::from_json(json.as_bytes()).unwrap()).unwrap()
    }

    /// As canaryctl writes a configuration (serde_json, pretty, declaration order).
    const AS_CANARYCTL_WRITES: &str = r#"{
  "service": "checkout",
  "versions": [
    {"name": "stable", "cluster": "app-v1"},
    {"name": "canary", "cluster": "app-v2"}
  ],
  "default": "stable",
  "weights": {"canary": 10.0},
  "sticky": {"keys": [{"header": "x-user-id"}], "seed": 7, "when_missing": "random"},
  "rules": [{"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}},
             "version": "canary"}],
  "route_header": "x-canary-cluster",
  "version_header": "x-canary-version"
}"#;

    /// The same configuration as istiod hands it to Envoy after a round trip through a protobuf
    /// `Struct`: keys sorted, every number a double written without a fraction when it has
    /// none, no line breaks, a space after some commas; and the defaults left out.
    const AS_ISTIOD_WRITES: &str = concat!(
        r#"{"default":"stable", "rules":[{"name":"testers","version":"canary","#,
        r#""when":{"header":{"equals":"always", "name":"x-canary"}}}],"service":"checkout","#,
        r#""sticky":{"keys":[{"header":"x-user-id"}],"seed":7},"#,
        r#""versions":[{"cluster":"app-v1","name":"stable"}, {"cluster":"app-v2","name":"canary"}],"#,
        r#""weights":{"canary":10}}"#
    );

    /// The canonical form is serde_json's compact writing of the parsed value: the expected
    /// bytes are written out here, not computed.
    #[test]
    fn the_canonical_form_is_the_parsed_configuration_as_compact_json() {
        let config = CanaryConfig::from_json(AS_ISTIOD_WRITES.as_bytes()).unwrap();
        let expected = concat!(
            r#"{"service":"checkout","versions":[{"name":"stable","cluster":"app-v1"},"#,
            r#"{"name":"canary","cluster":"app-v2"}],"default":"stable","weights":{"canary":10.0},"#,
            r#""sticky":{"keys":[{"header":"x-user-id"}],"seed":7,"when_missing":"random"},"#,
            r#""rules":[{"name":"testers","when":{"header":{"name":"x-canary","equals":"always"}},"#,
            r#""version":"canary"}],"route_header":"x-canary-cluster","#,
            r#""version_header":"x-canary-version"}"#
        );
        assert_eq!(
            String::from_utf8(canonical_form(&config).unwrap()).unwrap(),
            expected
        );
        // MurmurHash3_x86_32 with seed 0, as the `murmur3` crate computes it over those bytes.
        let reference = murmur3::murmur3_32(&mut expected.as_bytes(), 0).unwrap();
        assert_eq!(config_hash(&config).unwrap(), reference);
    }

    #[test]
    fn the_same_configuration_written_differently_hashes_the_same() {
        let want = hash_of(AS_CANARYCTL_WRITES);
        assert_ne!(AS_CANARYCTL_WRITES, AS_ISTIOD_WRITES);
        assert_eq!(
            hash_of(AS_ISTIOD_WRITES),
            want,
            "istiod's key order and numbers"
        );
        // Other spellings of the same numbers and strings.
        let spelled = AS_CANARYCTL_WRITES
            .replace("10.0", "1e1")
            .replace("\"testers\"", "\"\\u0074esters\"");
        assert_ne!(spelled, AS_CANARYCTL_WRITES);
        assert_eq!(hash_of(&spelled), want, "{spelled}");
        // Explicit defaults (metrics all on, no response header) said out loud.
        let explicit = AS_CANARYCTL_WRITES.replace(
            "\"default\": \"stable\",",
            r#""default": "stable", "response_version_header": false,
                "metrics": {"requests": true, "responses": true, "latency": true},"#,
        );
        assert_ne!(explicit, AS_CANARYCTL_WRITES);
        assert_eq!(hash_of(&explicit), want);
    }

    #[test]
    fn a_different_configuration_hashes_differently() {
        let want = hash_of(AS_CANARYCTL_WRITES);
        for (from, to) in [
            ("10.0", "10.5"),
            ("10.0", "11"),
            ("\"seed\": 7", "\"seed\": 8"),
            ("\"checkout\"", "\"payments\""),
            ("\"always\"", "\"yes\""),
            ("\"random\"", "\"default\""),
            ("app-v2", "app-v3"),
        ] {
            let changed = AS_CANARYCTL_WRITES.replacen(from, to, 1);
            assert_ne!(changed, AS_CANARYCTL_WRITES, "{from}");
            assert_ne!(hash_of(&changed), want, "{from} -> {to}");
        }
        // A metric turned off, and the versions' order (it decides the bucket ranges).
        let no_latency = AS_CANARYCTL_WRITES.replace(
            "\"default\": \"stable\",",
            r#""default": "stable", "metrics": {"latency": false},"#,
        );
        assert_ne!(hash_of(&no_latency), want);
        let swapped = AS_CANARYCTL_WRITES.replace(
            r#"{"name": "stable", "cluster": "app-v1"},
    {"name": "canary", "cluster": "app-v2"}"#,
            r#"{"name": "canary", "cluster": "app-v2"},
    {"name": "stable", "cluster": "app-v1"}"#,
        );
        assert_ne!(swapped, AS_CANARYCTL_WRITES);
        assert_ne!(hash_of(&swapped), want);
    }

    #[test]
    fn names_carry_the_labels_as_segments() {
        assert_eq!(
            requests_name(None, "canary", "weights"),
            "canary_requests_total.canary_version.canary.canary_rule.weights"
        );
        assert_eq!(
            requests_name(Some("checkout"), "canary", "weights"),
            "canary_requests_total.canary_service.checkout.canary_version.canary.canary_rule.weights"
        );
        assert_eq!(
            responses_name(None, "v2", "eu-first", "5xx"),
            "canary_responses_total.canary_version.v2.canary_rule.eu-first.canary_code_class.5xx"
        );
        assert_eq!(
            duration_name(Some("a"), "stable", "default"),
            "canary_request_duration_ms.canary_service.a.canary_version.stable.canary_rule.default"
        );
        assert_eq!(config_hash_name(None), "canary_config_hash");
        assert_eq!(
            config_hash_name(Some("a")),
            "canary_config_hash.canary_service.a"
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
        let requests = requests_name(None, "canary", "eu-first");
        assert_eq!(
            parse_name(&requests),
            Some(MetricName {
                metric: REQUESTS,
                service: None,
                version: "canary",
                rule: "eu-first",
                code_class: None,
            })
        );
        let responses = format!(
            "{ENVOY_PREFIX}{}",
            responses_name(Some("checkout"), "v2", "weights", "5xx")
        );
        assert_eq!(
            parse_name(&responses),
            Some(MetricName {
                metric: RESPONSES,
                service: Some("checkout"),
                version: "v2",
                rule: "weights",
                code_class: Some("5xx"),
            })
        );
        let duration = duration_name(Some("a"), "stable", "default");
        assert_eq!(parse_name(&duration).unwrap().metric, DURATION);
        for other in [
            "wasmcustom.other.canary_version.a.canary_rule.b",
            // The names before the labels were prefixed.
            "canary_requests_total.version.a.rule.b",
            "canary_requests_total.canary_version.a",
            "canary_requests_total.canary_service.s",
            "canary_requests_total.canary_version.a.canary_rule.b.canary_code_class.2xx",
            "canary_responses_total.canary_version.a.canary_rule.b",
            "canary_requests_total.canary_version.a.canary_rule.b.extra",
            "cluster.app-v1.upstream_rq_total",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn feature_names_parse_back_and_the_two_families_do_not_mix() {
        assert_eq!(
            parse_feature_name(
                "wasmcustom.canary_feature_responses_total.canary_service.shop.canary_feature.dark-mode.canary_feature_state.on.canary_code_class.5xx"
            ),
            Some(FeatureMetricName {
                metric: FEATURE_RESPONSES,
                service: Some("shop"),
                feature: "dark-mode",
                state: "on",
                code_class: Some("5xx"),
            })
        );
        let requests = "canary_feature_requests_total.canary_feature.f.canary_feature_state.off";
        assert_eq!(parse_feature_name(requests).unwrap().state, "off");
        for other in [
            // A version metric's name, or a feature metric with a version's labels.
            "canary_requests_total.canary_version.a.canary_rule.b",
            "canary_feature_requests_total.canary_version.a.canary_rule.b",
            "canary_feature_requests_total.canary_feature.f.canary_feature_state.on.canary_code_class.2xx",
        ] {
            assert_eq!(parse_feature_name(other), None, "{other}");
        }
        assert_eq!(parse_name(requests), None);
        assert_eq!(
            parse_name("canary_requests_total.canary_feature.f.canary_feature_state.on"),
            None
        );
    }
}
