//! The plugin configuration contract, table by table, against the pure core. The same file
//! runs natively (`cargo test`) and compiled to wasm32 under Node (`wasm-bindgen-test`), so the
//! buckets are proven identical in both.

// Test code asserts by panicking; the deny lints guard the data path, not this file.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use canary_filter::bucket::{bucket_of, murmur3_x86_32};
use canary_filter::decision::RequestDescription;
use canary_filter::{CanaryConfig, Decision, Reason, RoutingPlan};

/// The example of the contract, verbatim.
const EXAMPLE: &str = r#"{
  "versions": [
    {"name": "stable", "cluster": "app-v1"},
    {"name": "canary", "cluster": "app-v2"}
  ],
  "default": "stable",
  "weights": {"canary": 10},
  "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}], "seed": 0, "when_missing": "random"},
  "region": {"header": "x-region"},
  "rules": [
    {"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
    {"name": "opt-out", "when": {"cookie": {"name": "canary", "equals": "never"}}, "version": "stable"},
    {"name": "eu-first", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 50}}
  ],
  "route_header": "x-canary-cluster",
  "version_header": "x-canary-version"
}"#;

/// A key whose bucket (seed 0) is past 10 %, so the example's top-level split sends it to
/// `stable` (checked in `rules_match_in_order_first_wins`).
const STABLE_KEY: &str = "user-with-bucket-past-10pct";

fn plan(json: &str) -> RoutingPlan {
    match RoutingPlan::from_json(json.as_bytes()) {
        Ok(plan) => plan,
        Err(err) => panic!("config refused: {err}\n{json}"),
    }
}

fn decide(plan: &RoutingPlan, request: &RequestDescription) -> Decision {
    plan.decide(&mut request.view(plan))
}

fn version_of(plan: &RoutingPlan, request: &RequestDescription) -> String {
    let decision = decide(plan, request);
    plan.versions()[decision.version].name.clone()
}

fn label_of(plan: &RoutingPlan, request: &RequestDescription) -> String {
    let decision = decide(plan, request);
    plan.outcomes()[decision.outcome].label.clone()
}

fn user(id: &str) -> RequestDescription {
    RequestDescription::default().header("x-user-id", id)
}

/// After a promotion the old default is retired: one version is left, and everyone goes to it
/// (with or without a key).
#[test]
fn one_version_left_takes_everyone() {
    let plan = plan(
        r#"{"versions": [{"name": "canary", "cluster": "app-v2"}], "default": "canary",
            "sticky": {"keys": [{"header": "x-user-id"}]}}"#,
    );
    for request in [user("a"), user(STABLE_KEY), RequestDescription::default()] {
        assert_eq!(version_of(&plan, &request), "canary");
    }
}

/// Two versions, a sticky header key, a top-level weight for `canary`, `seed`.
fn two_versions(canary: f64, seed: u32) -> RoutingPlan {
    plan(&format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
            "default": "stable", "weights": {{"canary": {canary}}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": {seed}}}}}"#
    ))
}

fn min_json(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
            "default": "stable"{sep} {extra}}}"#
    )
}

fn plan_min(extra: &str) -> RoutingPlan {
    plan(&min_json(extra))
}

#[test]
fn the_example_compiles_with_its_defaults() {
    let plan = plan(EXAMPLE);
    let names: Vec<_> = plan.versions().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["stable", "canary"]);
    assert_eq!(plan.route_header(), Some("x-canary-cluster"));
    assert_eq!(plan.version_header(), Some("x-canary-version"));
    assert_eq!(
        plan.rule_names().collect::<Vec<_>>(),
        ["testers", "opt-out", "eu-first"]
    );
    assert_eq!(plan.split_ranges(), vec![(1, 0, 1000)]);

    let minimal = plan_min(r#""weights": {"canary": 5}"#);
    assert_eq!(minimal.route_header(), Some("x-canary-cluster"));
    assert_eq!(minimal.version_header(), Some("x-canary-version"));
    let disabled = plan_min(r#""version_header": """#);
    assert_eq!(disabled.version_header(), None);
    let renamed = plan_min(r#""route_header": "X-Route", "version_header": "X-Ver""#);
    assert_eq!(renamed.route_header(), Some("x-route"));
    assert_eq!(renamed.version_header(), Some("x-ver"));
}

/// Each per-request cost is an option: the response version header off unless asked for,
/// every metric on unless turned off, either routing header alone.
#[test]
fn features_are_options_with_their_defaults() {
    let defaults = plan_min("");
    assert!(!defaults.response_version_header());
    let all = defaults.metrics();
    assert!(all.requests && all.responses && all.latency);

    let istio = plan_min(r#""route_header": """#);
    assert_eq!(istio.route_header(), None);
    assert_eq!(istio.version_header(), Some("x-canary-version"));
    let envoy = plan_min(r#""version_header": """#);
    assert_eq!(envoy.route_header(), Some("x-canary-cluster"));
    assert_eq!(envoy.version_header(), None);

    // No service unless named; a named one is kept for the metrics' `canary_service` label.
    assert_eq!(defaults.service(), None);
    assert_eq!(
        plan_min(r#""service": "checkout-v2_eu""#).service(),
        Some("checkout-v2_eu")
    );
    let config = CanaryConfig::from_json(min_json(r#""service": "a""#).as_bytes()).unwrap();
    assert!(serde_json::to_string(&config)
        .unwrap()
        .contains(r#""service":"a""#));

    let asked = plan_min(r#""response_version_header": true"#);
    assert!(asked.response_version_header());
    let lean = plan_min(r#""metrics": {"responses": false, "latency": false}"#);
    let metrics = lean.metrics();
    assert!(metrics.requests && !metrics.responses && !metrics.latency);

    // Written back, the defaults are left out: a configuration that does not name them is
    // written as it was read.
    let config = CanaryConfig::from_json(min_json("").as_bytes()).unwrap();
    let written = serde_json::to_string(&config).unwrap();
    assert!(
        !written.contains("response_version_header")
            && !written.contains("metrics")
            && !written.contains("service"),
        "{written}"
    );
    let config = CanaryConfig::from_json(
        min_json(r#""response_version_header": true, "metrics": {"latency": false}"#).as_bytes(),
    )
    .unwrap();
    let written = serde_json::to_string(&config).unwrap();
    assert!(
        written.contains(r#""response_version_header":true"#)
            && written.contains(r#""metrics":{"requests":true,"responses":true,"latency":false}"#),
        "{written}"
    );
}

/// `hosts` scopes the filter to calls to those services, in every form a client writes the
/// host; without it every request is routed. Written back only when given, so a configuration
/// without it keeps its canonical form (and `canary_config_hash`).
#[test]
fn hosts_scope_the_filter_by_destination() {
    let every = plan_min("");
    assert!(!every.is_scoped());
    assert!(every.routes_authority(Some(b"anything:80")));
    assert!(every.routes_authority(None));

    let scoped = plan_min(r#""hosts": ["checkout.default.svc.cluster.local", "api.example.com"]"#);
    assert!(scoped.is_scoped());
    for authority in [
        "checkout",
        "checkout:80",
        "checkout.default",
        "checkout.default.svc",
        "checkout.default.svc.cluster.local",
        "checkout.default.svc.cluster.local:80",
        "CHECKOUT:8080",
        "api.example.com",
        "api.example.com:443",
    ] {
        assert!(
            scoped.routes_authority(Some(authority.as_bytes())),
            "{authority}"
        );
    }
    for authority in [
        "payments",
        "search:80",
        "checkout.shop",
        "api",
        "example.com",
        "checkout.default.svc.cluster",
        "",
    ] {
        assert!(
            !scoped.routes_authority(Some(authority.as_bytes())),
            "{authority}"
        );
    }
    assert!(
        !scoped.routes_authority(None),
        "no :authority is no listed host"
    );

    let config = CanaryConfig::from_json(min_json("").as_bytes()).unwrap();
    assert!(!serde_json::to_string(&config).unwrap().contains("hosts"));
    let config = CanaryConfig::from_json(min_json(r#""hosts": ["Search"]"#).as_bytes()).unwrap();
    assert!(serde_json::to_string(&config)
        .unwrap()
        .contains(r#""hosts":["Search"]"#));
}

/// Each bad config is refused, and the message starts with the field it is about.
#[test]
fn invalid_configs_are_refused_naming_the_field() {
    let v = |n: usize| -> String {
        (0..n)
            .map(|i| format!(r#"{{"name": "v{i}", "cluster": "c{i}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let two = |a: &str, b: &str, default: &str| {
        format!(r#"{{"versions": [{a}, {b}], "default": "{default}"}}"#)
    };
    let table: Vec<(String, &str)> = vec![
        ("{not json".to_string(), "(document)"),
        (String::new(), "(document)"),
        ("[]".to_string(), "(document)"),
        (min_json("") + " trailing", "(document)"),
        (
            format!(r#"{{"versions": [{}], "default": "v0"}}"#, v(0)),
            "versions:",
        ),
        (
            format!(r#"{{"versions": [{}], "default": "v0"}}"#, v(17)),
            "versions:",
        ),
        (r#"{"default": "stable"}"#.to_string(), "(document)"),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "a", "cluster": "y"}"#,
                "a",
            ),
            "versions[1].name",
        ),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "b", "cluster": ""}"#,
                "a",
            ),
            "versions[1].cluster",
        ),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "b c", "cluster": "y"}"#,
                "a",
            ),
            "versions[1].name",
        ),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "b.c", "cluster": "y"}"#,
                "a",
            ),
            "versions[1].name",
        ),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "", "cluster": "y"}"#,
                "a",
            ),
            "versions[1].name",
        ),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "b", "cluster": "y", "weight": 3}"#,
                "a",
            ),
            "versions[1]",
        ),
        (
            two(
                r#"{"name": "a", "cluster": "x"}"#,
                r#"{"name": "b", "cluster": "y"}"#,
                "c",
            ),
            "default:",
        ),
        (min_json(r#""weights": {"stable": 10}"#), "weights.stable"),
        (min_json(r#""weights": {"beta": 10}"#), "weights.beta"),
        (
            min_json(r#""weights": {"canary": 100.5}"#),
            "weights.canary",
        ),
        (min_json(r#""weights": {"canary": -1}"#), "weights.canary"),
        (
            min_json(r#""weights": {"canary": 0.005}"#),
            "weights.canary",
        ),
        (min_json(r#""weights": {"canary": "10"}"#), "weights.canary"),
        (
            min_json(r#""wieghts": {"canary": 10}"#),
            "wieghts: unknown field",
        ),
        (min_json(r#""sticky": {"keys": []}"#), "sticky.keys"),
        (
            min_json(r#""sticky": {"keys": [{"header": "x", "cookie": "y"}]}"#),
            "sticky.keys[0]",
        ),
        (
            min_json(r#""sticky": {"keys": [{"query": "x"}]}"#),
            "sticky.keys[0]",
        ),
        (
            min_json(r#""sticky": {"keys": [{"header": ""}]}"#),
            "sticky.keys[0].header",
        ),
        (
            min_json(r#""sticky": {"keys": [{"header": "x y"}]}"#),
            "sticky.keys[0].header",
        ),
        (
            min_json(r#""sticky": {"keys": [{"header": "x"}], "when_missing": "stable"}"#),
            "sticky.when_missing",
        ),
        (
            min_json(r#""sticky": {"keys": [{"header": "x"}], "seed": -1}"#),
            "sticky.seed",
        ),
        (min_json(r#""region": {"header": ""}"#), "region.header"),
        (min_json(r#""region": {"name": "x-region"}"#), "region"),
        (
            min_json(r#""rules": [{"name": "r", "when": {"region": ["eu"]}}]"#),
            "rules[0]:",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"region": ["eu"]}, "version": "canary", "weights": {"canary": 5}}]"#,
            ),
            "rules[0]:",
        ),
        (
            min_json(r#""rules": [{"name": "r", "when": {}, "version": "canary"}]"#),
            "rules[0].when",
        ),
        (
            min_json(r#""rules": [{"name": "r", "when": {"region": []}, "version": "canary"}]"#),
            "rules[0].when.region",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"header": {"name": "x"}}, "version": "canary"}]"#,
            ),
            "rules[0].when.header",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"header": {"name": "x", "equals": "a", "prefix": "b"}}, "version": "canary"}]"#,
            ),
            "rules[0].when.header",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"header": {"name": "x", "present": false}}, "version": "canary"}]"#,
            ),
            "rules[0].when.header",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"cookie": {"name": "", "equals": "a"}}, "version": "canary"}]"#,
            ),
            "rules[0].when.cookie.name",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"header": {"name": "x", "equal": "a"}}, "version": "canary"}]"#,
            ),
            "rules[0].when.header",
        ),
        (
            min_json(r#""rules": [{"name": "r", "when": {"region": ["eu"]}, "version": "beta"}]"#),
            "rules[0].version",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"region": ["eu"]}, "weights": {"canary": 101}}]"#,
            ),
            "rules[0].weights.canary",
        ),
        (
            min_json(
                r#""rules": [{"name": "r", "when": {"region": ["eu"]}, "weights": {"stable": 1}}]"#,
            ),
            "rules[0].weights.stable",
        ),
        (
            min_json(
                r#""rules": [{"name": "weights", "when": {"region": ["eu"]}, "version": "canary"}]"#,
            ),
            "rules[0].name",
        ),
        (
            min_json(
                r#""rules": [{"name": "default", "when": {"region": ["eu"]}, "version": "canary"}]"#,
            ),
            "rules[0].name",
        ),
        (
            min_json(
                r#""rules": [{"name": "a", "when": {"region": ["eu"]}, "version": "canary"},
                             {"name": "a", "when": {"region": ["us"]}, "version": "canary"}]"#,
            ),
            "rules[1].name",
        ),
        (
            min_json(r#""route_header": "", "version_header": """#),
            "route_header: route_header and version_header are both empty",
        ),
        (
            min_json(r#""version_header": "", "response_version_header": true"#),
            "response_version_header: needs version_header",
        ),
        (
            min_json(r#""metrics": {"latency": false, "spans": true}"#),
            "metrics.spans: unknown field",
        ),
        (
            min_json(r#""metrics": {"latency": "no"}"#),
            "metrics.latency: invalid type",
        ),
        (
            min_json(r#""response_version_header": 1"#),
            "response_version_header: invalid type",
        ),
        (min_json(r#""route_header": ":authority""#), "route_header"),
        (
            min_json(r#""version_header": "X-Canary-Cluster""#),
            "version_header",
        ),
        (
            min_json(r#""route_header": "x-canary-version""#),
            "route_header: route_header and version_header must differ",
        ),
        (min_json(r#""unknown": 1"#), "unknown: unknown field"),
        // The service becomes a stat name segment and a label value: one segment, never empty.
        (
            min_json(r#""service": "shop.checkout""#),
            "service: \"shop.checkout\" is not a valid name",
        ),
        (
            min_json(r#""service": """#),
            "service: \"\" is not a valid name",
        ),
        (min_json(r#""service": "a b""#), "service:"),
        (
            min_json(&format!(r#""service": "{}""#, "s".repeat(65))),
            "service:",
        ),
        (min_json(r#""service": 7"#), "service: invalid type"),
        // The hosts a sidecar's filter routes: DNS names, each once, at least one.
        (min_json(r#""hosts": []"#), "hosts: must not be empty"),
        (
            min_json(r#""hosts": ["checkout", ""]"#),
            "hosts[1]: must not be empty",
        ),
        (
            min_json(r#""hosts": ["checkout", "payments:80"]"#),
            "hosts[1]: \"payments:80\" is not a host name",
        ),
        (min_json(r#""hosts": ["*.example.com"]"#), "hosts[0]: "),
        (min_json(r#""hosts": ["a..b"]"#), "hosts[0]: "),
        (min_json(r#""hosts": ["shop_checkout"]"#), "hosts[0]: "),
        (
            min_json(r#""hosts": ["checkout", "search", "Checkout"]"#),
            "hosts[2]: \"Checkout\" is used twice",
        ),
        (min_json(r#""hosts": "checkout""#), "hosts: invalid type"),
        (min_json(r#""hosts": ["a", 7]"#), "hosts[1]: invalid type"),
    ];
    for (json, field) in table {
        match RoutingPlan::from_json(json.as_bytes()) {
            Ok(_) => panic!("accepted, should name {field}: {json}"),
            Err(err) => {
                let message = err.to_string();
                assert!(
                    message.starts_with(field),
                    "{message:?} should start with {field:?}\n{json}"
                );
            }
        }
    }

    // The sum is checked per split: three versions with 60 + 50.
    let three = r#"{"versions": [{"name": "a", "cluster": "x"}, {"name": "b", "cluster": "y"}, {"name": "c", "cluster": "z"}],
                   "default": "a", "weights": {"b": 60, "c": 50}}"#;
    let message = RoutingPlan::from_json(three.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("weights:") && message.contains("110"),
        "{message}"
    );
}

#[test]
fn weights_have_a_resolution_of_a_hundredth() {
    for (weight, buckets) in [
        (0.0, 0),
        (0.01, 1),
        (0.29, 29),
        (33.33, 3333),
        (99.99, 9999),
        (100.0, 10_000),
    ] {
        let plan = two_versions(weight, 0);
        assert_eq!(
            plan.split_ranges(),
            vec![(1, 0, buckets)],
            "weight {weight}"
        );
    }
    let three = plan(
        r#"{"versions": [{"name": "a", "cluster": "x"}, {"name": "b", "cluster": "y"}, {"name": "c", "cluster": "z"}],
            "default": "a", "weights": {"b": 66.67, "c": 33.33}}"#,
    );
    assert_eq!(three.split_ranges(), vec![(1, 0, 6667), (2, 6667, 10_000)]);
}

/// The contract, literally: bucket = murmur3(key, seed) % 10000; canary iff bucket < w * 100.
#[test]
fn sticky_split_follows_the_murmur3_contract() {
    for (weight, seed) in [(10.0, 0), (25.5, 7), (50.0, 0xdead_beef)] {
        let plan = two_versions(weight, seed);
        let mut on_canary = 0;
        let keys = 20_000;
        for i in 0..keys {
            let key = format!("user-{i}");
            let bucket = murmur3_x86_32(key.as_bytes(), seed) % 10_000;
            let want = if f64::from(bucket) < weight * 100.0 {
                "canary"
            } else {
                "stable"
            };
            let decision = decide(&plan, &user(&key));
            assert_eq!(plan.versions()[decision.version].name, want, "key {key}");
            assert_eq!(
                decision.reason,
                Reason::Split {
                    rule: None,
                    bucket,
                    key: Some(0)
                },
                "key {key}"
            );
            on_canary += usize::from(want == "canary");
        }
        let share = on_canary as f64 / f64::from(keys) * 100.0;
        assert!(
            (share - weight).abs() < 1.5,
            "weight {weight}: canary share {share}"
        );
    }
}

#[test]
fn a_b_n_ranges_follow_declaration_order_not_name_order() {
    // "zeta" is declared before "alpha": it takes the first range whatever the map order.
    let plan = plan(
        r#"{"versions": [{"name": "stable", "cluster": "s"}, {"name": "zeta", "cluster": "z"}, {"name": "alpha", "cluster": "a"}],
            "default": "stable", "weights": {"alpha": 30, "zeta": 20},
            "sticky": {"keys": [{"header": "x-user-id"}]}}"#,
    );
    assert_eq!(plan.split_ranges(), vec![(1, 0, 2000), (2, 2000, 5000)]);
    let mut counts = [0usize; 3];
    for i in 0..30_000 {
        let key = format!("k{i}");
        let bucket = bucket_of(key.as_bytes(), 0);
        let want = match bucket {
            0..=1999 => "zeta",
            2000..=4999 => "alpha",
            _ => "stable",
        };
        let decision = decide(&plan, &user(&key));
        assert_eq!(
            plan.versions()[decision.version].name,
            want,
            "key {key} bucket {bucket}"
        );
        counts[decision.version] += 1;
    }
    let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / 300.0).collect();
    for (got, want) in shares.iter().zip([50.0, 20.0, 30.0]) {
        assert!((got - want).abs() < 1.5, "shares {shares:?}");
    }
}

#[test]
fn raising_a_weight_only_adds_users() {
    let steps = [0.0, 1.0, 5.0, 10.0, 25.0, 25.01, 50.0, 99.99, 100.0];
    let mut previous: Option<Vec<bool>> = None;
    for weight in steps {
        let plan = two_versions(weight, 3);
        let now: Vec<bool> = (0..10_000)
            .map(|i| version_of(&plan, &user(&format!("u{i}"))) == "canary")
            .collect();
        if let Some(before) = &previous {
            for (i, (was, is)) in before.iter().zip(&now).enumerate() {
                assert!(
                    !was || *is,
                    "user u{i} left the canary when it rose to {weight}%"
                );
            }
            assert!(
                now.iter().filter(|on| **on).count() >= before.iter().filter(|on| **on).count()
            );
        }
        previous = Some(now);
    }
    // With two canaries, raising one still only adds users to that one.
    let three = |b: f64| {
        plan(&format!(
            r#"{{"versions": [{{"name": "a", "cluster": "x"}}, {{"name": "b", "cluster": "y"}}, {{"name": "c", "cluster": "z"}}],
                "default": "a", "weights": {{"b": {b}, "c": 10}},
                "sticky": {{"keys": [{{"header": "x-user-id"}}]}}}}"#
        ))
    };
    let (low, high) = (three(10.0), three(30.0));
    let mut kept = 0;
    for i in 0..10_000 {
        let request = user(&format!("u{i}"));
        if version_of(&low, &request) == "b" {
            assert_eq!(version_of(&high, &request), "b");
            kept += 1;
        }
    }
    assert!(kept > 800, "{kept}");
}

#[test]
fn a_new_seed_draws_a_new_cohort() {
    let (seed0, seed1) = (two_versions(20.0, 0), two_versions(20.0, 1));
    let mut both = 0;
    let mut first = 0;
    for i in 0..10_000 {
        let request = user(&format!("u{i}"));
        let a = version_of(&seed0, &request) == "canary";
        let b = version_of(&seed1, &request) == "canary";
        first += usize::from(a);
        both += usize::from(a && b);
    }
    // Independent cohorts overlap by about 20 % of 20 %: 4 % of users, not 20 %.
    assert!(first > 1_800 && first < 2_200, "{first}");
    assert!(both > 250 && both < 600, "overlap {both}");
}

#[test]
fn sticky_keys_are_tried_in_order_and_empty_ones_skipped() {
    let plan = plan_min(
        r#""weights": {"canary": 50}, "sticky": {"keys": [{"header": "X-User-ID"}, {"cookie": "uid"}], "seed": 9}"#,
    );
    let bucket = |key: &str| bucket_of(key.as_bytes(), 9);
    let r = RequestDescription::default;
    let table = [
        (r().header("x-user-id", "alice"), Some((0, bucket("alice")))),
        (r().header("X-USER-ID", "alice"), Some((0, bucket("alice")))),
        (
            r().header("x-user-id", "alice").header("cookie", "uid=bob"),
            Some((0, bucket("alice"))),
        ),
        (
            r().header("cookie", "a=1; uid=bob"),
            Some((1, bucket("bob"))),
        ),
        (
            r().header("x-user-id", "").header("cookie", "uid=bob"),
            Some((1, bucket("bob"))),
        ),
        (r().header("cookie", "uid="), None),
        (r().header("x-user-id", ""), None),
        (r(), None),
    ];
    for (request, want) in table {
        assert_eq!(
            plan.sticky_bucket(&mut request.view(&plan)),
            want,
            "{request:?}"
        );
        if let Some((key, bucket)) = want {
            let decision = decide(&plan, &request);
            assert_eq!(
                decision.reason,
                Reason::Split {
                    rule: None,
                    bucket,
                    key: Some(key)
                }
            );
        }
    }
}

#[test]
fn keyless_requests_follow_when_missing() {
    let random =
        plan_min(r#""weights": {"canary": 10}, "sticky": {"keys": [{"header": "x-user-id"}]}"#);
    let defaulted = plan_min(
        r#""weights": {"canary": 10}, "sticky": {"keys": [{"header": "x-user-id"}], "when_missing": "default"}"#,
    );
    let unsticky = plan_min(r#""weights": {"canary": 10}"#);
    // u32::MAX % 10000 = 7295
    for (draw, want) in [
        (0, "canary"),
        (999, "canary"),
        (1000, "stable"),
        (10_999, "canary"),
        (u32::MAX, "stable"),
    ] {
        let request = RequestDescription {
            random: draw,
            ..Default::default()
        };
        assert_eq!(version_of(&random, &request), want, "draw {draw}");
        assert_eq!(version_of(&unsticky, &request), want, "draw {draw}");
        assert_eq!(label_of(&random, &request), "weights");
        assert_eq!(
            decide(&random, &request).reason,
            Reason::Split {
                rule: None,
                bucket: draw % 10_000,
                key: None
            }
        );
        assert_eq!(version_of(&defaulted, &request), "stable");
        assert_eq!(label_of(&defaulted, &request), "default");
        assert_eq!(
            decide(&defaulted, &request).reason,
            Reason::MissingKey { rule: None }
        );
    }
    // A key present: when_missing plays no part.
    assert_eq!(label_of(&defaulted, &user("someone")), "weights");
}

#[test]
fn rules_match_in_order_first_wins() {
    let plan = plan(EXAMPLE);
    assert!(bucket_of(STABLE_KEY.as_bytes(), 0) >= 1000);
    let r = RequestDescription::default;
    let cases: Vec<(RequestDescription, &str, &str)> = vec![
        (r().header("x-canary", "always"), "canary", "testers"),
        (r().header("X-Canary", "always"), "canary", "testers"),
        (r().header("x-canary", "Always"), "stable", "weights"),
        (
            r().header("x-canary", "always")
                .header("cookie", "canary=never"),
            "canary",
            "testers",
        ),
        (
            r().header("cookie", "a=b; canary=never"),
            "stable",
            "opt-out",
        ),
        (
            r().header("cookie", "canary=nevermore"),
            "stable",
            "weights",
        ),
        (r(), "stable", "weights"),
    ];
    for (request, version, rule) in cases {
        let request = request.header("x-user-id", STABLE_KEY);
        assert_eq!(version_of(&plan, &request), version, "{request:?}");
        assert_eq!(label_of(&plan, &request), rule, "{request:?}");
    }
}

#[test]
fn header_and_cookie_tests_equals_prefix_present() {
    let plan = plan_min(
        r#""sticky": {"keys": [{"header": "x-user-id"}]},
           "rules": [
             {"name": "eq", "when": {"header": {"name": "x-a", "equals": "yes"}}, "version": "canary"},
             {"name": "pre", "when": {"header": {"name": "x-b", "prefix": "beta-"}}, "version": "canary"},
             {"name": "has", "when": {"header": {"name": "x-c", "present": true}}, "version": "canary"},
             {"name": "ceq", "when": {"cookie": {"name": "c1", "equals": "yes"}}, "version": "canary"},
             {"name": "cpre", "when": {"cookie": {"name": "c2", "prefix": "beta-"}}, "version": "canary"},
             {"name": "chas", "when": {"cookie": {"name": "c3", "present": true}}, "version": "canary"}
           ]"#,
    );
    let r = RequestDescription::default;
    let table: Vec<(RequestDescription, &str)> = vec![
        (r().header("x-a", "yes"), "eq"),
        (r().header("x-a", "yes!"), "weights"),
        (r().header("x-a", ""), "weights"),
        (r().header("x-b", "beta-7"), "pre"),
        (r().header("x-b", "beta-"), "pre"),
        (r().header("x-b", "alpha-beta-"), "weights"),
        (r().header("x-c", ""), "has"),
        (r().header("x-c", "anything"), "has"),
        (r().header("cookie", "c1=yes"), "ceq"),
        (r().header("cookie", "c1=no; c2=beta-x"), "cpre"),
        (r().header("cookie", "c3="), "chas"),
        (r().header("cookie", "C3=x"), "weights"),
        (r().header("cookie", "c3"), "weights"),
        (r(), "weights"),
    ];
    for (request, rule) in table {
        assert_eq!(label_of(&plan, &request), rule, "{request:?}");
    }
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let plan = plan_min(
        r#""region": {"header": "x-region"},
           "rules": [{"name": "eu-testers",
                      "when": {"header": {"name": "x-tester", "present": true},
                               "cookie": {"name": "beta", "equals": "1"},
                               "region": ["eu-west-1", "eu-central-1"]},
                      "version": "canary"}]"#,
    );
    let r = RequestDescription::default;
    assert_eq!(
        label_of(
            &plan,
            &r().header("x-tester", "1")
                .header("cookie", "beta=1")
                .header("x-region", "eu-central-1")
        ),
        "eu-testers"
    );
    let short_of_one = [
        r().header("cookie", "beta=1")
            .header("x-region", "eu-west-1"),
        r().header("x-tester", "1").header("x-region", "eu-west-1"),
        r().header("x-tester", "1").header("cookie", "beta=1"),
        r().header("x-tester", "1")
            .header("cookie", "beta=1")
            .header("x-region", "us-east-1"),
    ];
    for request in short_of_one {
        assert_eq!(label_of(&plan, &request), "weights", "{request:?}");
    }
}

#[test]
fn region_comes_from_the_header_then_the_proxy_locality() {
    let plan = plan(EXAMPLE);
    let with = |header: Option<&str>, proxy: Option<&str>| {
        let mut request = user(STABLE_KEY);
        if let Some(region) = header {
            request = request.header("x-region", region);
        }
        request.proxy_region = proxy.map(str::to_string);
        request
    };
    let table = [
        (with(Some("eu-west-1"), None), "eu-first"),
        (with(Some("eu-west-1"), Some("us-east-1")), "eu-first"),
        (with(Some("us-east-1"), Some("eu-west-1")), "weights"),
        (with(None, Some("eu-west-1")), "eu-first"),
        (with(Some(""), Some("eu-west-1")), "eu-first"),
        (with(None, Some("us-east-1")), "weights"),
        (with(None, None), "weights"),
        (with(Some("EU-WEST-1"), None), "weights"),
    ];
    for (request, rule) in table {
        assert_eq!(label_of(&plan, &request), rule, "{request:?}");
    }
    // Without a region header configured, only the proxy's locality counts.
    let locality_only = plan_min(
        r#""rules": [{"name": "eu", "when": {"region": ["eu-west-1"]}, "version": "canary"}]"#,
    );
    let mut request = RequestDescription::default().header("x-region", "eu-west-1");
    assert_eq!(label_of(&locality_only, &request), "weights");
    request.proxy_region = Some("eu-west-1".to_string());
    assert_eq!(label_of(&locality_only, &request), "eu");
}

#[test]
fn a_rule_split_uses_the_same_key_seed_and_ranges() {
    let plan = plan(EXAMPLE);
    for i in 0..5_000 {
        let key = format!("eu-user-{i}");
        let bucket = bucket_of(key.as_bytes(), 0);
        let request = user(&key).header("x-region", "eu-west-1");
        let decision = decide(&plan, &request);
        let want = if bucket < 5000 { "canary" } else { "stable" };
        assert_eq!(plan.versions()[decision.version].name, want);
        assert_eq!(
            decision.reason,
            Reason::Split {
                rule: Some(2),
                bucket,
                key: Some(0)
            }
        );
        assert_eq!(plan.outcomes()[decision.outcome].label, "eu-first");
        // Everyone on the canary at 10 % globally is on it at 50 % in the EU.
        if version_of(&plan, &user(&key)) == "canary" {
            assert_eq!(want, "canary");
        }
    }
}

#[test]
fn outcomes_cover_every_version_and_label_a_request_can_end_in() {
    let plan = plan(EXAMPLE);
    let mut outcomes: Vec<(String, String)> = plan
        .outcomes()
        .iter()
        .map(|o| (plan.versions()[o.version].name.clone(), o.label.clone()))
        .collect();
    outcomes.sort();
    let want: Vec<(String, String)> = [
        ("canary", "eu-first"),
        ("canary", "testers"),
        ("canary", "weights"),
        ("stable", "default"),
        ("stable", "eu-first"),
        ("stable", "opt-out"),
        ("stable", "weights"),
    ]
    .iter()
    .map(|(v, l)| (v.to_string(), l.to_string()))
    .collect();
    assert_eq!(outcomes, want);
}

#[test]
fn hostile_values_are_routed_by_the_contract() {
    let plan = plan(EXAMPLE);
    let long_key = "k".repeat(30 * 1024);
    let non_utf8: Vec<u8> = vec![0xff, 0xfe, b'a', 0x80];
    let mut many_cookies = String::new();
    for i in 0..400 {
        many_cookies.push_str(&format!("c{i}=v{i}; "));
    }
    many_cookies.push_str("uid=the-user");
    let r = RequestDescription::default;
    // (request, the sticky key index and bucket the contract names; None = random bucket)
    let cases: Vec<(RequestDescription, Option<(usize, u32)>)> = vec![
        (
            user(&long_key),
            Some((0, bucket_of(long_key.as_bytes(), 0))),
        ),
        (
            r().header("x-user-id", non_utf8.clone()),
            Some((0, bucket_of(&non_utf8, 0))),
        ),
        (
            r().header("cookie", many_cookies.as_str()),
            Some((1, bucket_of(b"the-user", 0))),
        ),
        (r().header("cookie", ";;==;uid"), None),
        (r().header("cookie", vec![0xffu8, b'=', 0xfe]), None),
        (
            r().header("x-canary", vec![0xffu8])
                .header("x-region", vec![0xc3u8]),
            None,
        ),
        (r().header("x-user-id", ""), None),
    ];
    for (request, want) in cases {
        let decision = decide(&plan, &request);
        match want {
            Some((key, bucket)) => {
                assert_eq!(
                    decision.reason,
                    Reason::Split {
                        rule: None,
                        bucket,
                        key: Some(key)
                    }
                )
            }
            None => assert!(
                matches!(
                    decision.reason,
                    Reason::Split {
                        rule: None,
                        key: None,
                        ..
                    }
                ),
                "{decision:?}"
            ),
        }
    }
}

/// Each configuration of `table` is refused with a message that starts with its text.
fn refused_with_messages(table: Vec<(String, &str)>) {
    for (json, want) in table {
        let message = RoutingPlan::from_json(json.as_bytes())
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with(want),
            "{message:?} should start with {want:?}\n{json}"
        );
    }
}

/// Shape errors found by serde (wrong type, unknown or missing field, bad enum value, broken
/// syntax) name the exact path, also in pretty-printed (multi-line) documents and after
/// escaped quotes and non-ASCII text.
#[test]
fn shape_errors_name_the_exact_path() {
    let base = r#""versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}], "default": "stable""#;
    let with = |rest: &str| format!("{{{base}, {rest}}}");
    let table: Vec<(String, &str)> = vec![
        (with(r#""sticky": {"seed": 1}"#), "sticky: missing field `keys`"),
        (
            with(r#""sticky": {"keys": [{"header": "x"}, {"heder": "x"}]}"#),
            "sticky.keys[1].heder: unknown field `heder`",
        ),
        (
            with(r#""sticky": {"keys": [{"header": 5}]}"#),
            "sticky.keys[0].header: invalid type: integer `5`",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "when_missing": "nope"}"#),
            "sticky.when_missing: unknown variant `nope`",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "seed": 1.5}"#),
            "sticky.seed: invalid type: floating point `1.5`",
        ),
        (
            with(r#""rules": [{"name": "a", "when": {"header": {"nme": "x"}}, "version": "canary"}]"#),
            "rules[0].when.header.nme: unknown field `nme`",
        ),
        (
            with(r#""rules": [{"name": "a", "when": {"region": ["eu"]}, "version": "canary"}, {"name": "b", "version": "canary"}]"#),
            "rules[1]: missing field `when`",
        ),
        (
            with(r#""rules": [{"name": "a", "when": {"region": "eu"}, "version": "canary"}]"#),
            "rules[0].when.region: invalid type: string",
        ),
        (with(r#""weights": [10]"#), "weights: invalid type: sequence"),
        (
            with(r#""region": {"header": "x\"y,z", "hed": 1}"#),
            "region.hed: unknown field `hed`",
        ),
        (
            "{\n  \"versions\": [\n    {\"name\": \"s\", \"cluster\": \"a\"},\n    {\"name\": \"c\", \"clustr\": \"b\"}\n  ],\n  \"default\": \"s\"\n}".to_string(),
            "versions[1].clustr: unknown field `clustr`",
        ),
        (
            "{\n  \"versions\": [\n    {\"name\": \"s\", \"cluster\": \"a\"},\n    {\"name\": \"c\"}\n  ],\n  \"default\": \"s\"\n}".to_string(),
            "versions[1]: missing field `cluster`",
        ),
        (
            r#"{"versions": [{"name": "é", "cluster": "a"}, {"name": "c", "cluster": 3}], "default": "s"}"#.to_string(),
            "versions[1].cluster: invalid type: integer `3`",
        ),
        (
            r#"{"versions": 5, "default": "s"}"#.to_string(),
            "versions: invalid type: integer `5`",
        ),
        // A list where a value should be is the value at fault, not its first element.
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "when_missing": []}"#),
            "sticky.when_missing: invalid type: sequence",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "seed": [1]}"#),
            "sticky.seed: invalid type: sequence",
        ),
        (
            with(r#""rules": [{"name": "a", "when": {"region": [[]]}, "version": "canary"}]"#),
            "rules[0].when.region[0]: invalid type: sequence",
        ),
        (
            format!("{{{base}, \"rules\": ["),
            "rules: EOF while parsing a list",
        ),
        (
            format!("{{{base}, \"rules\": [{{"),
            "rules[0]: EOF while parsing an object",
        ),
        // An object is written as an object: serde would also read a list of its field
        // values in order, and a name for a unit variant's map form.
        (
            with(r#""region": ["x-region"]"#),
            "region: invalid type: sequence, expected an object",
        ),
        (
            r#"{"versions": [["stable", "a"], ["canary", "b"]], "default": "stable"}"#.to_string(),
            "versions[0]: invalid type: sequence, expected an object",
        ),
        (
            with(r#""rules": [["r", {"region": ["eu"]}, "canary"]]"#),
            "rules[0]: invalid type: sequence, expected an object",
        ),
        (
            with(r#""sticky": [[{"header": "x"}]]"#),
            "sticky: invalid type: sequence, expected an object",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "when_missing": {"default": null}}"#),
            "sticky.when_missing: invalid type: map, expected `random` or `default`",
        ),
        (
            r#"[[{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}], "stable"]"#.to_string(),
            "(document): invalid type: sequence, expected an object",
        ),
        // Keys written with escapes are named as the JSON reader reads them.
        (
            with(r#""\u0077eights": {"c\u0061nary": "5"}"#),
            "weights.canary: invalid type: string",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "s\u0065ed": 1.5}"#),
            "sticky.seed: invalid type: floating point",
        ),
        (
            with(r#""w\u0069eghts": {}"#),
            "wieghts: unknown field `wieghts`",
        ),
    ];
    refused_with_messages(table);
}

/// A key given twice is refused wherever it is, at the path of the second one: the weights
/// maps (where the last value used to win silently) and every struct level.
#[test]
fn duplicate_keys_name_the_repeated_key() {
    let base = r#""versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}], "default": "stable""#;
    let with = |rest: &str| format!("{{{base}, {rest}}}");
    let rule = |rest: &str| with(&format!(r#""rules": [{{"name": "r", {rest}}}]"#));
    let table: Vec<(String, &str)> = vec![
        (
            with(r#""weights": {"canary": 5, "canary": 50}"#),
            r#"weights.canary: duplicate key "canary""#,
        ),
        (
            // Pretty-printed, and the repeated key not next to the first.
            "{\n  \"versions\": [{\"name\": \"s\", \"cluster\": \"a\"}, {\"name\": \"c\", \"cluster\": \"b\"}, {\"name\": \"d\", \"cluster\": \"e\"}],\n  \"default\": \"s\",\n  \"weights\": {\n    \"c\": 5,\n    \"d\": 1,\n    \"c\": 5\n  }\n}".to_string(),
            r#"weights.c: duplicate key "c""#,
        ),
        (
            with(r#""weights": {"canary": 5, "c\u0061nary": 50}"#),
            r#"weights.canary: duplicate key "canary""#,
        ),
        (
            rule(r#""when": {"region": ["eu"]}, "weights": {"canary": 5, "canary": 50}"#),
            r#"rules[0].weights.canary: duplicate key "canary""#,
        ),
        (
            format!(r#"{{{base}, "default": "canary"}}"#),
            "default: duplicate field `default`",
        ),
        (
            with(r#""weights": {}, "weights": {"canary": 5}"#),
            "weights: duplicate field `weights`",
        ),
        (
            r#"{"versions": [{"name": "stable", "name": "canary", "cluster": "a"}, {"name": "c", "cluster": "b"}], "default": "stable"}"#.to_string(),
            "versions[0].name: duplicate field `name`",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x"}], "seed": 1, "seed": 2}"#),
            "sticky.seed: duplicate field `seed`",
        ),
        (
            with(r#""sticky": {"keys": [{"header": "x", "header": "y"}]}"#),
            "sticky.keys[0].header: duplicate field `header`",
        ),
        (
            with(r#""region": {"header": "x", "header": "y"}"#),
            "region.header: duplicate field `header`",
        ),
        (
            rule(r#""when": {"region": ["eu"]}, "version": "canary", "version": "stable""#),
            "rules[0].version: duplicate field `version`",
        ),
        (
            rule(r#""when": {"region": ["eu"], "region": ["us"]}, "version": "canary""#),
            "rules[0].when.region: duplicate field `region`",
        ),
        (
            rule(r#""when": {"header": {"name": "x", "equals": "a", "equals": "b"}}, "version": "canary""#),
            "rules[0].when.header.equals: duplicate field `equals`",
        ),
    ];
    refused_with_messages(table);
}

/// A sticky key source is one of `{"header": ...}` and `{"cookie": ...}`: anything else is
/// refused at the source, or at the extra key beside it.
#[test]
fn sticky_key_sources_name_the_exact_field() {
    let base = r#""versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}], "default": "stable""#;
    let keys = |keys: &str| format!(r#"{{{base}, "sticky": {{"keys": [{keys}]}}}}"#);
    let table: Vec<(String, &str)> = vec![
        (
            keys(r#"{"header": "x-user-id", "seed": 1}"#),
            "sticky.keys[0].seed: unknown field `seed`",
        ),
        (
            keys(r#"{"header": "x-user-id"}, {"seed": 1, "cookie": "uid"}"#),
            "sticky.keys[1].seed: unknown field `seed`",
        ),
        (
            keys(r#"{"header": "x-user-id", "cookie": "uid"}"#),
            "sticky.keys[0]: give one of `header` and `cookie`, not both",
        ),
        (
            keys(r#"{"cookie": "uid"}, {}"#),
            "sticky.keys[1]: give one of `header` and `cookie`",
        ),
        (
            keys(r#"{"header": null}"#),
            "sticky.keys[0]: give one of `header` and `cookie`",
        ),
        (
            keys(r#""x-user-id""#),
            "sticky.keys[0]: invalid type: string",
        ),
        (
            keys(r#"{"cookie": 7}"#),
            "sticky.keys[0].cookie: invalid type: integer `7`",
        ),
    ];
    refused_with_messages(table);
    // The written shape is unchanged: what canaryctl writes, the filter reads.
    let plan = plan_min(r#""sticky": {"keys": [{"header": "X-User-Id"}, {"cookie": "uid"}]}"#);
    assert_eq!(plan.header_names(), ["x-user-id", "cookie"]);
    let config = canary_filter::CanaryConfig::from_json(
        min_json(r#""sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}]}"#).as_bytes(),
    )
    .unwrap();
    let written = serde_json::to_value(config.sticky.unwrap().keys).unwrap();
    assert_eq!(
        written,
        serde_json::json!([{"header": "x-user-id"}, {"cookie": "uid"}])
    );
}

/// Many rules, their header names and values given in no order, some names and values shared
/// (the compiler numbers the names and the index orders them): each request still goes to the
/// first rule, in the configuration's order, whose condition it meets. The expected rule is
/// found by the test from its own list, not by the plan.
#[test]
fn with_many_rules_the_first_that_holds_decides() {
    // Rule i reads header `x-h-{(i * 37) % 150}` (150 names, each in several rules, first
    // seen out of order) and wants `v{i % 7}` (values shared among a name's rules).
    let header_of = |i: usize| format!("x-h-{}", (i * 37) % 150);
    let value_of = |i: usize| format!("v{}", i % 7);
    let rules: Vec<String> = (0..400)
        .map(|i| {
            format!(
                r#"{{"name": "r{i}", "when": {{"header": {{"name": "{}", "equals": "{}"}}}}, "version": "{}"}}"#,
                header_of(i),
                value_of(i),
                if i % 2 == 0 { "canary" } else { "stable" }
            )
        })
        .collect();
    let json = format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "a"}}, {{"name": "canary", "cluster": "b"}}],
            "default": "stable", "rules": [{}]}}"#,
        rules.join(",")
    );
    let plan = plan(&json);
    // Each name once, numbered in the order first seen.
    let mut first_seen: Vec<String> = Vec::new();
    for i in 0..400 {
        if !first_seen.contains(&header_of(i)) {
            first_seen.push(header_of(i));
        }
    }
    assert_eq!(plan.header_names(), first_seen.as_slice());
    for (name, value) in [
        ("x-h-0", "v0"),
        ("x-h-37", "v1"),
        ("x-h-149", "v3"),
        ("x-h-74", "v6"),
    ] {
        let want = (0..400).find(|&i| header_of(i) == name && value_of(i) == value);
        let got = decide(&plan, &RequestDescription::default().header(name, value));
        match want {
            Some(rule) => assert_eq!(got.reason, Reason::Pinned { rule }, "{name}: {value}"),
            None => assert!(
                matches!(got.reason, Reason::Split { .. }),
                "{name}: {value}: {got:?}"
            ),
        }
    }
}

/// A rule name given twice is refused at the first repeat in the document, however far from
/// the name it repeats and whatever other names repeat later.
#[test]
fn the_first_repeated_rule_name_is_named() {
    let rule = |name: &str| {
        format!(r#"{{"name": "{name}", "when": {{"region": ["eu"]}}, "version": "canary"}}"#)
    };
    let mut names: Vec<String> = (0..300).map(|i| format!("rule-{}", 299 - i)).collect();
    names[250] = "rule-299".to_string(); // repeats rule 0's name
    names[260] = "rule-3".to_string(); // a later repeat
    names[120] = "rule-100".to_string(); // rule 199's name, before it: rule 199 is the repeat
    let json = format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "a"}}, {{"name": "canary", "cluster": "b"}}],
            "default": "stable", "rules": [{}]}}"#,
        names
            .iter()
            .map(|name| rule(name))
            .collect::<Vec<_>>()
            .join(",")
    );
    let err = RoutingPlan::from_json(json.as_bytes())
        .unwrap_err()
        .to_string();
    assert_eq!(err, r#"rules[199].name: "rule-100" is used twice"#);
}
