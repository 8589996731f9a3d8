#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::decision::RequestDescription;
use crate::RoutingPlan;

fn plan(json: &str) -> RoutingPlan {
    RoutingPlan::from_json(json.as_bytes()).unwrap()
}

const BASE: &str = r#""versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
    "default": "stable", "weights": {"canary": 50}, "sticky": {"keys": [{"header": "x-user-id"}], "seed": 3}"#;

fn with(extra: &str) -> String {
    format!("{{{BASE}{extra}}}")
}

fn states(
    plan: &RoutingPlan,
    request: &RequestDescription,
) -> (u32, Vec<(usize, bool, FeatureReason)>) {
    let mut seen = Vec::new();
    let on = plan.decide_features(&mut request.view(plan), |i, on, why| {
        seen.push((i, on, why))
    });
    (on, seen)
}

#[test]
fn the_share_is_the_murmur3_contract_and_independent_of_the_split() {
    let plan = plan(&with(
        r#", "features": {"new-checkout": {"percent": 10}, "dark-mode": {"percent": 50}}"#,
    ));
    let checkout_seed = murmur3_x86_32(b"new-checkout", 0);
    let mut both = 0;
    let mut checkout = 0;
    for i in 0..4000 {
        let key = format!("user-{i}");
        let request = RequestDescription::default().header("x-user-id", key.clone());
        let (on, _) = states(&plan, &request);
        // Features are listed by name: dark-mode is 0, new-checkout is 1.
        let want = murmur3_x86_32(key.as_bytes(), checkout_seed) % 10_000 < 1000;
        assert_eq!(on & 2 != 0, want, "{key}");
        checkout += usize::from(want);
        both += usize::from(on == 3);
    }
    assert!((300..500).contains(&checkout), "{checkout}");
    // Independent: about 5 % have both.
    assert!((120..280).contains(&both), "{both}");
}

#[test]
fn a_ramp_only_adds_users() {
    let at = |percent: f64| {
        plan(&with(&format!(
            r#", "features": {{"f": {{"percent": {percent}}}}}"#
        )))
    };
    let (low, high) = (at(5.0), at(20.0));
    for i in 0..2000 {
        let request = RequestDescription::default().header("x-user-id", format!("u{i}"));
        if states(&low, &request).0 == 1 {
            assert_eq!(states(&high, &request).0, 1);
        }
    }
}

#[test]
fn rules_pin_features_first_match_per_feature() {
    let plan = plan(&with(
        r#", "features": {"f": {"percent": 0}, "g": {"percent": 100}},
        "rules": [{"name": "testers", "when": {"header": {"name": "x-tester", "present": true}},
                   "features": {"f": true}},
                  {"name": "all", "when": {"header": {"name": "x-tester", "prefix": ""}},
                   "features": {"f": false, "g": false}, "version": "canary"}]"#,
    ));
    let request = RequestDescription::default()
        .header("x-user-id", "u1")
        .header("x-tester", "yes");
    let (on, seen) = states(&plan, &request);
    assert_eq!(on, 1);
    assert!(seen.contains(&(0, true, FeatureReason::Pinned { rule: 0 })));
    assert!(seen.contains(&(1, false, FeatureReason::Pinned { rule: 1 })));
    // A features-only rule does not decide the version.
    let plain = RequestDescription::default().header("x-user-id", "u1");
    assert_eq!(states(&plan, &plain).0, 2);
    let decision = plan.decide(&mut request.view(&plan));
    assert_eq!(decision.reason, crate::decision::Reason::Pinned { rule: 1 });
}

/// The rules' index (rule_index.rs) files only the rules that choose a version: a
/// features-only rule, whatever its gate reads, neither hides a later version rule nor
/// misses its pins, with few header names (looked up one by one) or many (the request's
/// headers walked).
#[test]
fn the_rule_index_skips_features_only_rules_and_every_pin_is_found() {
    let plan = plan(&with(
        r#", "features": {"f": {"percent": 0}, "g": {"percent": 0}},
        "region": {"header": "x-region"},
        "rules": [
          {"name": "flag-by-cookie", "when": {"cookie": {"name": "beta", "equals": "1"}},
           "features": {"f": true}},
          {"name": "flag-by-header", "when": {"header": {"name": "x-a", "equals": "1"}},
           "features": {"g": true}},
          {"name": "flag-by-region", "when": {"region": ["eu"]}, "features": {"f": false}},
          {"name": "version-by-cookie", "when": {"cookie": {"name": "beta", "equals": "1"}},
           "version": "canary"},
          {"name": "version-by-header", "when": {"header": {"name": "x-a", "equals": "1"}},
           "version": "canary"},
          {"name": "other-1", "when": {"header": {"name": "x-b", "present": true}}, "version": "stable"},
          {"name": "other-2", "when": {"header": {"name": "x-c", "present": true}}, "version": "stable"}
        ]"#,
    ));
    let request = RequestDescription::default()
        .header("x-user-id", "u1")
        .header("cookie", "beta=1")
        .header("x-a", "1")
        .header("x-region", "eu");
    let (on, seen) = states(&plan, &request);
    // f by the cookie rule (before the region rule), g by the header rule.
    assert_eq!(on, 0b11);
    assert!(seen.contains(&(0, true, FeatureReason::Pinned { rule: 0 })));
    assert!(seen.contains(&(1, true, FeatureReason::Pinned { rule: 1 })));
    let decision = plan.decide(&mut request.view(&plan));
    assert_eq!(decision.reason, crate::decision::Reason::Pinned { rule: 3 });
    // Only the header: the version rule on it, past the features-only rule on it.
    let header_only = RequestDescription::default()
        .header("x-user-id", "u1")
        .header("x-a", "1");
    let decision = plan.decide(&mut header_only.view(&plan));
    assert_eq!(decision.reason, crate::decision::Reason::Pinned { rule: 4 });
    assert_eq!(states(&plan, &header_only).0, 0b10);
    // Only the region: a features-only rule holds, and the split places the request.
    let region_only = RequestDescription::default()
        .header("x-user-id", "u1")
        .header("x-region", "eu");
    let decision = plan.decide(&mut region_only.view(&plan));
    assert!(
        matches!(
            decision.reason,
            crate::decision::Reason::Split { rule: None, .. }
        ),
        "{decision:?}"
    );
    let (_, seen) = states(&plan, &region_only);
    assert!(seen.contains(&(0, false, FeatureReason::Pinned { rule: 2 })));
}

#[test]
fn the_header_lists_features_by_name() {
    let plan = plan(&with(
        r#", "features": {"b": {"percent": 1}, "a": {"percent": 1}, "c": {"percent": 1}}"#,
    ));
    let features = plan.features().unwrap();
    assert_eq!(features.header(), "x-canary-features");
    assert_eq!(features.header_value(0b101), "a,c");
    assert_eq!(features.header_value(0), "");
}

#[test]
fn bad_features_are_refused_with_their_field() {
    let refused = |extra: &str| {
        RoutingPlan::from_json(with(extra).as_bytes())
            .unwrap_err()
            .to_string()
    };
    assert!(refused(r#", "features": {"f": {"percent": 101}}"#)
        .starts_with("features.f.percent: 101 is not a percent"));
    assert!(
        refused(r#", "features": {"f": {"percent": 0.001}}"#).starts_with("features.f.percent:")
    );
    assert!(refused(r#", "features": {"a b": {"percent": 1}}"#).starts_with("features.a b:"));
    let unknown = refused(r#", "features": {"f": {"percent": 1, "pct": 2}}"#);
    assert!(
        unknown.starts_with("features.f.pct: unknown field"),
        "{unknown}"
    );
    let twice = refused(r#", "features": {"f": {"percent": 1}, "f": {"percent": 2}}"#);
    assert!(twice.starts_with("features.f: duplicate key"), "{twice}");
    assert!(refused(
        r#", "features": {"f": {"percent": 1}}, "rules": [{"name": "r", "when": {"region": ["x"]}, "features": {"g": true}}]"#
    )
    .starts_with("rules[0].features.g: no feature is named"));
    assert!(refused(
        r#", "features": {"f": {"percent": 1}}, "features_header": "x-canary-version""#
    )
    .starts_with("features_header:"));
    // The mirror's header is one the filter writes too.
    assert!(refused(
        r#", "features": {"f": {"percent": 1}}, "features_header": "x-dark",
           "mirror": {"version": "canary", "percent": 1, "header": "x-dark"}"#
    )
    .starts_with("features_header:"));
    assert!(
        refused(r#", "rules": [{"name": "r", "when": {"region": ["x"]}}]"#)
            .starts_with("rules[0]: give exactly one")
    );
}

#[test]
fn no_features_keep_the_canonical_form() {
    let config = CanaryConfig::from_json(with("").as_bytes()).unwrap();
    let form = String::from_utf8(crate::metrics::canonical_form(&config).unwrap()).unwrap();
    assert!(!form.contains("feature"), "{form}");
    let config =
        CanaryConfig::from_json(with(r#", "features": {"f": {"percent": 10}}"#).as_bytes())
            .unwrap();
    let form = String::from_utf8(crate::metrics::canonical_form(&config).unwrap()).unwrap();
    assert!(
        form.ends_with(r#""features":{"f":{"percent":10.0}}}"#),
        "{form}"
    );
}

#[test]
fn keyless_requests_follow_when_missing() {
    let plan_default = plan(
        r#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
        "default": "stable", "sticky": {"keys": [{"header": "x-user-id"}], "when_missing": "default"},
        "features": {"f": {"percent": 100}}}"#,
    );
    let (on, seen) = states(&plan_default, &RequestDescription::default());
    assert_eq!((on, seen), (0, vec![(0, false, FeatureReason::MissingKey)]));
    let plan_random = plan(&with(r#", "features": {"f": {"percent": 50}}"#));
    let request = RequestDescription {
        random: 12_345,
        ..RequestDescription::default()
    };
    let (on, seen) = states(&plan_random, &request);
    assert_eq!(on, 1);
    assert_eq!(
        seen,
        vec![(
            0,
            true,
            FeatureReason::Bucket {
                bucket: 2345,
                key: None
            }
        )]
    );
}
