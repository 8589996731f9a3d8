//! `canaryctl explain`: the filter's own decision function on a described request, with the
//! reason spelled out. What it says is what Envoy routes (the end-to-end tests compare them).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use canary_filter::config::KeySource;
use canary_filter::cookie::find_cookie;
use canary_filter::decision::RequestDescription;
use canary_filter::{CanaryConfig, Reason, RoutingPlan};
use serde::Serialize;

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Whether the filter routes the request at all: not when the configuration lists `hosts`
    /// and the request is for another host (then nothing else is set).
    pub routed: bool,
    /// The version, or `None` when a random bucket decides per request.
    pub version: Option<String>,
    /// Its cluster (the route header's value).
    pub cluster: Option<String>,
    /// The rule label the metrics count it under (`weights`, `default` or a rule's name).
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// The sticky key used: `header x-user-id` or `cookie uid`.
    pub key_source: Option<String>,
    /// The key's value (lossily decoded).
    pub key: Option<String>,
    /// The bucket (0..9999) when a key decided.
    pub bucket: Option<u32>,
    /// For a random bucket: each version's chance, in percent.
    pub chances: Option<BTreeMap<String, f64>>,
    /// The features the request gets, and why (left out without features).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<crate::config::flags::FeatureExplanation>,
    /// The header that tells the upstream the request's features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features_header: Option<String>,
}

/// The request `canaryctl explain` is asked about, as Envoy would hold it: each `-H "name:
/// value"` in order, then the `--cookie name=value` pairs in one `cookie` header. Names are
/// lower-cased (by [`RequestDescription::header`]) and values lose the spaces and tabs around
/// them, as Envoy's codecs drop them; a pseudo-header (`:authority: example.com`) is split at
/// the colon after its name.
pub fn describe_request(headers: &[String], cookies: &[String]) -> Result<RequestDescription> {
    let mut request = RequestDescription::default();
    for header in headers {
        let name_start = usize::from(header.starts_with(':'));
        let colon = header
            .get(name_start..)
            .and_then(|rest| rest.find(':'))
            .ok_or_else(|| anyhow!("-H takes \"name: value\", got {header:?}"))?;
        let (name, value) = header.split_at(name_start + colon);
        let value = value.get(1..).unwrap_or_default();
        request = request.header(name.trim(), value.trim_matches([' ', '\t']));
    }
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    Ok(request)
}

/// Explains `request` under `config`.
pub fn explain(
    config: &CanaryConfig,
    plan: &RoutingPlan,
    request: &RequestDescription,
) -> Explanation {
    // Envoy holds a request's host (HTTP/1's `Host`) as `:authority`, which the filter reads.
    let authority = header_value(request, ":authority");
    if !plan.routes_authority(authority.as_deref().map(str::as_bytes)) {
        let hosts = config.hosts.as_deref().unwrap_or_default().join(", ");
        return Explanation {
            routed: false,
            version: None,
            cluster: None,
            rule: String::new(),
            reason: match authority {
                Some(host) => format!(
                    "the request is for {host:?}, not one of the hosts the filter routes ({hosts}): \
                     left alone (no header written, not counted)"
                ),
                None => format!(
                    "the request has no :authority, so it is not for one of the hosts the filter \
                     routes ({hosts}): left alone (no header written, not counted)"
                ),
            },
            key_source: None,
            key: None,
            bucket: None,
            chances: None,
            features: Vec::new(),
            features_header: None,
        };
    }
    let decision = plan.decide(&mut request.view(plan));
    let name = |index: usize| plan.versions().get(index).map(|v| v.name.clone());
    let cluster = |index: usize| plan.versions().get(index).map(|v| v.cluster.clone());
    let rule_name = |index: usize| plan.rule_names().nth(index).unwrap_or("?").to_string();
    let label = plan
        .outcomes()
        .get(decision.outcome)
        .map_or(String::new(), |o| o.label.clone());
    let mut explanation = Explanation {
        routed: true,
        version: name(decision.version),
        cluster: cluster(decision.version),
        rule: label,
        reason: String::new(),
        key_source: None,
        key: None,
        bucket: None,
        chances: None,
        features: crate::config::flags::explain_features(config, plan, request),
        features_header: plan.features().map(|f| f.header().to_string()),
    };
    match decision.reason {
        Reason::Pinned { rule } => {
            explanation.reason =
                format!("rule `{}` matched and pins this version", rule_name(rule));
        }
        Reason::MissingKey { rule } => {
            let split = rule.map_or("the top-level split".to_string(), |r| {
                format!("rule `{}`'s split", rule_name(r))
            });
            explanation.reason =
                format!("{split} applies, no sticky key is present and when_missing is `default`");
        }
        Reason::Split { rule, bucket, key } => {
            let split = rule.map_or("the top-level split".to_string(), |r| {
                format!("rule `{}` matched; its split", rule_name(r))
            });
            match key {
                Some(index) => {
                    let source = config.sticky.as_ref().and_then(|s| s.keys.get(index));
                    let (what, value) = match source {
                        Some(KeySource::Header(header)) => {
                            (format!("header {header}"), header_value(request, header))
                        }
                        Some(KeySource::Cookie(cookie)) => {
                            (format!("cookie {cookie}"), cookie_value(request, cookie))
                        }
                        None => (String::new(), None),
                    };
                    explanation.key_source = Some(what);
                    explanation.key = value;
                    explanation.bucket = Some(bucket);
                    explanation.reason =
                        format!("{split} placed bucket {bucket} of the sticky key");
                }
                None => {
                    explanation.version = None;
                    explanation.cluster = None;
                    let mut chances: BTreeMap<String, f64> = BTreeMap::new();
                    for b in 0..canary_filter::bucket::BUCKETS {
                        if let Some(v) = plan.split_version(rule, b).and_then(name) {
                            *chances.entry(v).or_default() += 0.01;
                        }
                    }
                    explanation.chances = Some(chances);
                    explanation.reason = format!(
                        "{split} applies and no sticky key is present: a random bucket per request"
                    );
                }
            }
        }
    }
    explanation
}

fn header_value(request: &RequestDescription, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|(have, _)| have.eq_ignore_ascii_case(name))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
}

fn cookie_value(request: &RequestDescription, name: &str) -> Option<String> {
    let header = request.headers.iter().find(|(have, _)| have == "cookie")?;
    find_cookie(&header.1, name.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The explanation as people read it.
pub fn render(explanation: &Explanation) -> String {
    let mut out = String::new();
    if !explanation.routed {
        let _ = writeln!(out, "version:  none (not routed by this filter)");
        let _ = writeln!(out, "why:      {}", explanation.reason);
        return out;
    }
    match (&explanation.version, &explanation.cluster) {
        (Some(version), Some(cluster)) => {
            let _ = writeln!(out, "version:  {version} (cluster {cluster})");
        }
        _ => {
            let chances: Vec<String> = explanation
                .chances
                .iter()
                .flatten()
                .map(|(v, pct)| format!("{v} {pct:.2}%"))
                .collect();
            let _ = writeln!(out, "version:  random per request: {}", chances.join(", "));
        }
    }
    let _ = writeln!(out, "rule:     {}", explanation.rule);
    let _ = writeln!(out, "why:      {}", explanation.reason);
    if let (Some(source), Some(bucket)) = (&explanation.key_source, explanation.bucket) {
        let key = explanation.key.as_deref().unwrap_or("");
        let _ = writeln!(out, "key:      {source} = {key:?}");
        let _ = writeln!(
            out,
            "bucket:   {bucket} (murmur3_x86_32(key, seed) % 10000)"
        );
    }
    if let Some(header) = &explanation.features_header {
        out.push_str(&crate::config::flags::render_features(
            &explanation.features,
            header,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scoped configuration explains a request for another host as left alone, and one for
    /// its own host (any form) as routed.
    #[test]
    fn a_request_for_another_host_is_left_alone() {
        let text = br#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
                        "default": "stable", "weights": {"canary": 100},
                        "sticky": {"keys": [{"header": "x-user-id"}]},
                        "hosts": ["checkout.shop.svc.cluster.local"]}"#;
        let config = CanaryConfig::from_json(text).unwrap();
        let plan = RoutingPlan::try_from(&config).unwrap();
        let ask = |headers: &[&str]| {
            let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
            explain(&config, &plan, &describe_request(&headers, &[]).unwrap())
        };

        let other = ask(&[":authority: payments.shop:80"]);
        assert!(!other.routed);
        assert_eq!((other.version.as_deref(), other.rule.as_str()), (None, ""));
        assert_eq!(
            render(&other),
            "version:  none (not routed by this filter)\n\
             why:      the request is for \"payments.shop:80\", not one of the hosts the filter \
             routes (checkout.shop.svc.cluster.local): left alone (no header written, not \
             counted)\n"
        );
        let none = ask(&[]);
        assert!(
            !none.routed && none.reason.contains("no :authority"),
            "{none:?}"
        );

        for authority in [
            "checkout",
            "checkout.shop:80",
            "Checkout.shop.svc.cluster.local",
        ] {
            let own = ask(&[&format!(":authority: {authority}"), "x-user-id: u1"]);
            assert!(own.routed, "{authority}");
            assert_eq!(own.version.as_deref(), Some("canary"), "{authority}");
        }
    }
}
