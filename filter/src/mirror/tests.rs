#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::decision::RequestDescription;
use crate::RoutingPlan;

const BASE: &str = r#""versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}], "default": "stable""#;

fn plan(extra: &str) -> RoutingPlan {
    RoutingPlan::from_json(format!("{{{BASE}, {extra}}}").as_bytes()).unwrap()
}

fn refused(extra: &str) -> String {
    RoutingPlan::from_json(format!("{{{BASE}, {extra}}}").as_bytes())
        .unwrap_err()
        .to_string()
}

fn request(method: &str, path: &str, key: &str) -> RequestDescription {
    RequestDescription::default()
        .header(":method", method)
        .header(":path", path)
        .header("x-user-id", key)
}

fn get(key: &str) -> RequestDescription {
    request("GET", "/", key)
}

const STICKY: &str = r#""sticky": {"keys": [{"header": "x-user-id"}], "seed": 7}"#;

/// The mirrored share is the murmur3 contract under the mirror's own seed, checked with
/// the reference murmur3 crate rather than the filter's own.
#[test]
fn the_sticky_share_follows_murmur3_under_the_mirror_seed() {
    let plan = plan(&format!(
        r#"{STICKY}, "mirror": {{"version": "canary", "percent": 30, "seed": 99}}"#
    ));
    let mut copied = 0;
    for i in 0..2000 {
        let key = format!("user-{i}");
        let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(key.as_bytes()), 99).unwrap();
        let want = hash % 10_000 < 3000;
        let request = get(&key);
        let got = plan.mirror(&mut request.view(&plan), 0);
        assert_eq!(got == MirrorAction::Copy(1), want, "{key}");
        copied += usize::from(want);
    }
    assert!((500..700).contains(&copied), "{copied} of 2000 at 30 %");
}

#[test]
fn the_default_seed_is_mixed_from_the_splits() {
    let plan = plan(&format!(
        r#"{STICKY}, "mirror": {{"version": "canary", "percent": 50}}"#
    ));
    assert_eq!(plan.mirror.as_ref().unwrap().seed, 7 ^ MIRROR_SEED_MIX);
}

#[test]
fn unsafe_methods_excluded_paths_and_the_routed_version_are_never_copied() {
    let plan = plan(&format!(
        r#"{STICKY}, "mirror": {{"version": "canary", "percent": 100, "exclude_paths": ["/admin"]}}"#
    ));
    assert_eq!(
        plan.mirror(&mut get("u").view(&plan), 0),
        MirrorAction::Copy(1)
    );
    let head = request("HEAD", "/", "u");
    assert_eq!(plan.mirror(&mut head.view(&plan), 0), MirrorAction::Copy(1));
    for method in ["POST", "PUT", "DELETE", "PATCH", "get"] {
        let request = request(method, "/", "u");
        assert_eq!(
            plan.mirror(&mut request.view(&plan), 0),
            MirrorAction::Nothing,
            "{method}"
        );
    }
    for path in ["/admin", "/admin/users", "/administrator", "/admin?x=1"] {
        let request = request("GET", path, "u");
        assert_eq!(
            plan.mirror(&mut request.view(&plan), 0),
            MirrorAction::Nothing,
            "{path}"
        );
    }
    // Already routed to the canary: no second copy.
    assert_eq!(
        plan.mirror(&mut get("u").view(&plan), 1),
        MirrorAction::Nothing
    );
    // A client's own mirror header on a request not copied is removed.
    let sneaky = RequestDescription::default()
        .header(":method", "POST")
        .header("x-canary-mirror", "app-v3");
    assert_eq!(
        plan.mirror(&mut sneaky.view(&plan), 0),
        MirrorAction::Remove
    );
}

#[test]
fn keyless_requests_follow_when_missing_and_random_sampling_draws_per_request() {
    let defaulted = plan(
        r#""sticky": {"keys": [{"header": "x-user-id"}], "when_missing": "default"}, "mirror": {"version": "canary", "percent": 100}"#,
    );
    let keyless = RequestDescription::default().header(":method", "GET");
    assert_eq!(
        defaulted.mirror(&mut keyless.view(&defaulted), 0),
        MirrorAction::Nothing
    );
    let random = plan(r#""mirror": {"version": "canary", "percent": 25}"#);
    let mut low = RequestDescription::default().header(":method", "GET");
    low.random = 2499;
    assert_eq!(
        random.mirror(&mut low.view(&random), 0),
        MirrorAction::Copy(1)
    );
    low.random = 2500;
    assert_eq!(
        random.mirror(&mut low.view(&random), 0),
        MirrorAction::Nothing
    );
}

#[test]
fn no_mirror_reads_nothing() {
    let plain = plan(STICKY);
    assert_eq!(plain.header_names(), ["x-user-id"]);
    assert_eq!(plain.mirror_header(), None);
    assert_eq!(
        plain.mirror(&mut get("u").view(&plain), 0),
        MirrorAction::Nothing
    );
}

#[test]
fn bad_mirror_sections_name_their_field() {
    for (extra, field) in [
        (
            r#""mirror": {"version": "nope", "percent": 5}"#,
            "mirror.version:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 101}"#,
            "mirror.percent:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 0.001}"#,
            "mirror.percent:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "sampling": "sticky"}"#,
            "mirror.sampling:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "sampling": "often"}"#,
            "mirror.sampling:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "header": "x-canary-cluster"}"#,
            "mirror.header:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "header": "bad header"}"#,
            "mirror.header:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "methods": []}"#,
            "mirror.methods:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "methods": ["GET", "get"]}"#,
            "mirror.methods[1]:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "exclude_paths": ["admin"]}"#,
            "mirror.exclude_paths[0]:",
        ),
        (
            r#""mirror": {"version": "canary", "percent": 5, "pct": 1}"#,
            "mirror.pct:",
        ),
        (r#""mirror": {"version": "canary"}"#, "mirror:"),
    ] {
        let message = refused(extra);
        assert!(message.starts_with(field), "{extra}: {message}");
    }
}
