//! The scaling table's rows: a configuration and the requests played against it, one dimension
//! grown per family (rules of each kind, versions, cookies, request headers), beside the floor
//! and the benchmark's reference configurations.

use serde_json::{json, Value};

use crate::Request;

/// Rule counts of the rule families.
pub const RULE_COUNTS: [usize; 3] = [3, 100, 1000];
/// Version counts.
pub const VERSION_COUNTS: [usize; 2] = [2, 16];
/// Cookies in the `cookie` header.
pub const COOKIE_COUNTS: [usize; 3] = [1, 50, 200];
/// Headers in the request (Envoy's four pseudo-headers included).
pub const HEADER_COUNTS: [usize; 2] = [10, 100];

/// Requests per row: each with another sticky key, so the buckets differ.
const KEYS: usize = 8;

/// One row of the table.
pub struct Scenario {
    /// The family, e.g. `header rules`.
    pub family: &'static str,
    /// The row within it, e.g. `1000, none matching`.
    pub label: String,
    /// The configuration, as JSON; `None` for the floor, which takes none.
    pub configuration: Option<String>,
    /// The requests played (the mean is reported).
    pub requests: Vec<Request>,
    /// What `xds.node.locality.region` holds.
    pub proxy_region: Option<&'static str>,
}

/// The configuration's versions: `stable` (the default) and `canary`, then `v2`, `v3`... up
/// to `count`, on the clusters `app-v1` and `app-v2` in turn; 10 % to `canary` and 5 % to
/// each further version.
fn versions(count: usize) -> (Value, Value) {
    let mut versions = vec![
        json!({"name": "stable", "cluster": "app-v1"}),
        json!({"name": "canary", "cluster": "app-v2"}),
    ];
    let mut weights = serde_json::Map::new();
    weights.insert("canary".into(), json!(10));
    for i in 2..count {
        // The benchmark's Envoy has the clusters app-v1 and app-v2 only.
        versions.push(json!({"name": format!("v{i}"), "cluster": format!("app-v{}", 1 + i % 2)}));
        weights.insert(format!("v{i}"), json!(5));
    }
    (Value::Array(versions), Value::Object(weights))
}

/// The typical configuration's shape (two versions, 10 % canary, the key in `x-user-id` then
/// the cookie `uid`, the region in `x-region`, every metric on) with `rules` as given.
fn configuration(version_count: usize, rules: Vec<Value>) -> String {
    let (versions, weights) = versions(version_count);
    json!({
        "versions": versions,
        "default": "stable",
        "weights": weights,
        "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}]},
        "region": {"header": "x-region"},
        "rules": rules,
    })
    .to_string()
}

/// `KEYS` requests, each `base` plus its own `x-user-id`.
fn keyed(base: &Request) -> Vec<Request> {
    (0..KEYS)
        .map(|k| {
            let mut request = base.clone();
            request
                .headers
                .push(("x-user-id".into(), format!("user-{k:04}").into_bytes()));
            request
        })
        .collect()
}

/// A browser-like request: the pseudo-headers, a user agent, accept headers and a cookie
/// header of two cookies, plus `extra`.
fn browser(extra: &[(&str, String)]) -> Request {
    let mut request = Request::new()
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .header("accept", "text/html,application/xhtml+xml")
        .header("accept-language", "en-GB,en;q=0.5")
        .header("cookie", "session=8f14e45fceea167a; theme=dark");
    for (name, value) in extra {
        match request.headers.iter_mut().find(|(have, _)| have == name) {
            Some(pair) => pair.1 = value.clone().into_bytes(),
            None => request
                .headers
                .push((name.to_string(), value.clone().into_bytes())),
        }
    }
    request
}

fn rule(i: usize, when: Value) -> Value {
    json!({"name": format!("rule-{i}"), "when": when, "version": "canary"})
}

/// Every row, in the table's order.
pub fn all() -> Vec<Scenario> {
    let mut rows = Vec::new();
    let plain = browser(&[]);
    rows.push(Scenario {
        family: "reference",
        label: "the floor (e)".into(),
        configuration: None,
        requests: keyed(&plain),
        proxy_region: None,
    });
    for (label, file) in [
        ("lean (g)", "lean.json"),
        ("typical (c)", "typical.json"),
        ("50 rules (d)", "fifty-rules.json"),
    ] {
        let path = format!(
            "{}/../../filter/benches/configs/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        rows.push(Scenario {
            family: "reference",
            label: label.into(),
            configuration: std::fs::read_to_string(&path).ok(),
            requests: keyed(&plain),
            proxy_region: None,
        });
    }

    type RuleFamily = (
        &'static str,
        fn(usize) -> Value,
        fn(usize) -> (String, String),
    );
    let families: [RuleFamily; 4] = [
        (
            "header rules (a name each)",
            |i| json!({"header": {"name": format!("x-flag-{i}"), "equals": "on"}}),
            |i| (format!("x-flag-{i}"), "on".into()),
        ),
        (
            "header rules (one name)",
            |i| json!({"header": {"name": "x-tenant", "equals": format!("tenant-{i}")}}),
            |i| ("x-tenant".into(), format!("tenant-{i}")),
        ),
        (
            "cookie rules",
            |i| json!({"cookie": {"name": format!("flag-{i}"), "equals": "on"}}),
            |i| {
                (
                    "cookie".into(),
                    format!("session=8f14e45fceea167a; theme=dark; flag-{i}=on"),
                )
            },
        ),
        (
            "region rules",
            |i| json!({"region": [format!("region-{i}")]}),
            |i| ("x-region".into(), format!("region-{i}")),
        ),
    ];
    for (family, when, matching) in families {
        for count in RULE_COUNTS {
            let rules = (0..count).map(|i| rule(i, when(i))).collect();
            let configuration = configuration(2, rules);
            // None matching: the header, cookie or region the rules read is there, with a
            // value no rule wants (so a rule's test runs, not only a lookup that misses).
            let (name, _) = matching(count);
            let miss = match family {
                "cookie rules" => browser(&[]),
                "header rules (a name each)" => browser(&[("x-flag-none", "on".into())]),
                _ => browser(&[(&name, "none-of-them".into())]),
            };
            rows.push(Scenario {
                family,
                label: format!("{count}, none matching"),
                configuration: Some(configuration.clone()),
                requests: keyed(&miss),
                proxy_region: None,
            });
            let (name, value) = matching(count - 1);
            rows.push(Scenario {
                family,
                label: format!("{count}, the last matching"),
                configuration: Some(configuration),
                requests: keyed(&browser(&[(&name, value)])),
                proxy_region: None,
            });
        }
    }

    for count in VERSION_COUNTS {
        rows.push(Scenario {
            family: "versions",
            label: count.to_string(),
            configuration: Some(configuration(count, Vec::new())),
            requests: keyed(&plain),
            proxy_region: None,
        });
    }

    // The sticky key in the last cookie (no `x-user-id`), the typical configuration's cookie
    // rule read first: two cookie names looked up in one header.
    let cookie_rule = vec![json!({
        "name": "opt-out",
        "when": {"cookie": {"name": "canary", "equals": "never"}},
        "version": "stable",
    })];
    for count in COOKIE_COUNTS {
        let requests = (0..KEYS)
            .map(|k| {
                let mut cookies: Vec<String> = (1..count)
                    .map(|i| format!("_pref_{i:03}=GA1.2.{:010}.1701234567", i * 7919))
                    .collect();
                cookies.push(format!("uid=user-{k:04}"));
                browser(&[("cookie", cookies.join("; "))])
            })
            .collect();
        rows.push(Scenario {
            family: "cookies in the header",
            label: count.to_string(),
            configuration: Some(configuration(2, cookie_rule.clone())),
            requests,
            proxy_region: None,
        });
    }

    let typical = rows
        .iter()
        .find(|row| row.label == "typical (c)")
        .and_then(|row| row.configuration.clone());
    let typical_for_wrk = typical.clone();
    for count in HEADER_COUNTS {
        let mut base = browser(&[]);
        // One more for x-user-id, added by `keyed`.
        let filler = count.saturating_sub(base.headers.len() + 1);
        for i in 0..filler {
            base.headers
                .push((format!("x-extra-{i:02}"), format!("value-{i}").into_bytes()));
        }
        rows.push(Scenario {
            family: "request headers",
            label: count.to_string(),
            configuration: typical.clone(),
            requests: keyed(&base),
            proxy_region: None,
        });
    }
    // The request `make bench` sends (wrk's `envoy/wrk-keys.lua`: a key in `x-user-id`, as
    // Envoy hands it to the filter), against the configurations of the calibration run
    // (BENCHMARKS.md, "Calibration").
    let wrk = Request::new()
        .header("x-forwarded-proto", "http")
        .header("x-request-id", "8c3f5a2e-4b1d-4f6e-9a7c-2d1e0f3b5a6c");
    let flags: Vec<Value> = (0..1000)
        .map(|i| {
            rule(
                i,
                json!({"header": {"name": format!("x-flag-{i}"), "equals": "on"}}),
            )
        })
        .collect();
    let regions: Vec<Value> = (0..300)
        .map(|i| rule(i, json!({"region": [format!("region-{i}")]})))
        .collect();
    for (label, configuration) in [
        ("typical (c)", typical_for_wrk),
        (
            "1000 header rules (a name each)",
            Some(configuration(2, flags)),
        ),
        ("300 region rules", Some(configuration(2, regions))),
    ] {
        rows.push(Scenario {
            family: "wrk's request",
            label: label.into(),
            configuration,
            requests: keyed(&wrk),
            proxy_region: None,
        });
    }
    rows
}

/// The configuration of a row of [`all`], by family and label.
pub fn configuration_of(family: &str, label: &str) -> Option<String> {
    all()
        .into_iter()
        .find(|row| row.family == family && row.label == label)
        .and_then(|row| row.configuration)
}
