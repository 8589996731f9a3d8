//! `canaryctl rollout --mirror PCT` end to end: a dark canary judged on copies of real traffic
//! in a real Envoy before any user is routed to it. The copies are counted at the canary's
//! cluster, the users' requests at stable's; the filter's own metrics say who was routed where.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use canary_control::metrics::admin::Admin;
use canary_control::metrics::stats;
use canary_harness::audit;
use canary_harness::canaryctl::{on_mesh, run};
use canary_harness::load::Load;
use canary_harness::mesh::Mesh;
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

/// Stable on app-v1, the canary on `canary_cluster` at 0 %, users keyed by `x-user-id`.
fn dark_config(canary_cluster: &str) -> String {
    format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "{canary_cluster}"}}],
            "default": "stable", "weights": {{"canary": 0}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": 0}}}}"#
    )
}

fn rollout(mesh: &Mesh, audit: &Path, extra: &[&str]) -> Output {
    run(on_mesh(CANARYCTL, mesh, &["rollout"])
        .args(["--audit", &audit.display().to_string()])
        .args(["--interval", "1500ms", "--min-requests", "30"])
        .args(["--min-intervals", "2"])
        .args(extra))
}

/// User requests the filter routed to `version` (its `canary_requests_total`, every rule).
fn routed_to(admin: &Admin, version: &str) -> u64 {
    stats::read(admin)
        .unwrap()
        .iter()
        .filter(|(key, _)| key.version == version)
        .map(|(_, series)| series.requests)
        .sum()
}

/// A counter of the front, 0 when Envoy has not created it (nothing counted yet).
fn counter(admin: &Admin, name: &str) -> u64 {
    admin.counter(name).unwrap().unwrap_or(0)
}

/// The canary behind app-v2-errors (about 20 % 503) fails on the copies and is rolled back;
/// no user request was ever routed to it, and every user got stable's 200.
#[test]
fn a_failing_dark_canary_is_rolled_back_before_any_user_reaches_it() {
    let mesh = preamble::mesh(&dark_config("app-v2-errors"));
    let admin = Admin::new(&mesh.front().admin_url());
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let output = rollout(
        &mesh,
        audit.path(),
        &["--mirror", "50", "--steps", "10,50,100"],
    );
    let report = load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "exit code 3: rolled back\n{stdout}"
    );
    assert!(stdout.contains("ROLLED BACK"), "{stdout}");
    assert!(stdout.contains("on mirrored traffic"), "{stdout}");

    // No user was routed to the canary; every user got stable's answer.
    let routed = routed_to(&admin, "canary");
    let users = routed_to(&admin, "stable");
    assert_eq!(routed, 0, "user requests routed to the canary");
    assert!(users > 100, "{users} user requests");
    assert!(
        report.failures.is_empty(),
        "users saw {:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    assert_eq!(
        counter(
            &admin,
            "cluster.app-v2-errors.external.upstream_rq_completed"
        ),
        0,
        "a user request reached the canary's cluster"
    );
    // The copies did reach it, and some failed there.
    let copies = counter(
        &admin,
        "cluster.app-v2-errors.internal.upstream_rq_completed",
    );
    let failed_copies = counter(&admin, "cluster.app-v2-errors.internal.upstream_rq_5xx");
    assert!(copies >= 60, "{copies} copies");
    assert!(
        failed_copies > 0,
        "{failed_copies} failed copies of {copies}"
    );

    // The configuration is back as it was: canary at 0 %, no mirror.
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    assert_eq!(config["weights"]["canary"], 0.0);
    assert!(config.get("mirror").is_none(), "{config}");

    // The audit log: the mirror written and removed, verdicts on the copies only (step 0), the
    // last a failure of the errors check, and no step ever pushed.
    let events = audit::events(audit.path()).unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"step"), "{kinds:?}");
    let mirrors: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "mirror")
        .map(|e| e["percent"].as_f64().unwrap())
        .collect();
    assert_eq!(mirrors, [50.0, 0.0]);
    let verdicts: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "verdict").collect();
    assert!(verdicts
        .iter()
        .all(|v| v["step"] == 0 && v["weight"] == 0.0));
    let last = verdicts.last().unwrap();
    assert_eq!(last["outcome"], "fail", "{last}");
    let errors = audit::check(last, "errors").unwrap();
    assert_eq!(errors["passed"], false, "{errors}");
    println!(
        "verdict: {}\nuser requests routed to the canary: {routed}, to stable: {users}; \
         copies at app-v2-errors: {copies} ({failed_copies} answered 5xx, discarded)",
        serde_json::to_string(last).unwrap()
    );
}

/// A healthy dark canary passes on the copies, the mirror is removed, and the normal plan
/// takes it to 100 %.
#[test]
fn a_healthy_dark_canary_passes_and_the_steps_follow() {
    let mesh = preamble::mesh(&dark_config("app-v2"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let output = rollout(
        &mesh,
        audit.path(),
        &["--mirror", "50", "--steps", "50,100"],
    );
    load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PROMOTED: `canary` is at 100%"), "{stdout}");
    let events = audit::events(audit.path()).unwrap();
    let order: Vec<String> = events
        .iter()
        .filter(|e| ["mirror", "step"].contains(&e["event"].as_str().unwrap()))
        .map(|e| {
            format!(
                "{} {}",
                e["event"],
                e.get("percent").or(e.get("weight")).unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "\"mirror\" 50.0",
            "\"mirror\" 0.0",
            "\"step\" 50.0",
            "\"step\" 100.0"
        ],
        "the mirror is removed before the first step"
    );
    let dark_pass = events
        .iter()
        .find(|e| e["event"] == "verdict" && e["step"] == 0 && e["outcome"] == "pass");
    assert!(dark_pass.is_some(), "no pass on the copies: {events:?}");
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    assert!(config.get("mirror").is_none(), "{config}");
}

/// The configuration's own `mirror` section keeps its methods: copying only `PUT`, which the
/// load never sends, gives no copy, and the dark phase holds, says why, and stops at 0 % with
/// the mirror removed and the canary never routed.
#[test]
fn no_copies_hold_and_stop_with_the_reason() {
    let config = dark_config("app-v2").replace(
        r#""seed": 0}}"#,
        r#""seed": 0}, "mirror": {"version": "canary", "percent": 1, "methods": ["PUT"]}}"#,
    );
    assert!(config.contains(r#""methods": ["PUT"]"#), "{config}");
    let mesh = preamble::mesh(&config);
    let admin = Admin::new(&mesh.front().admin_url());
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 2, Duration::from_millis(5), None);
    let output = rollout(
        &mesh,
        audit.path(),
        &["--mirror", "100", "--steps", "50,100", "--max-holds", "2"],
    );
    load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit code 1: stopped\n{stdout}"
    );
    assert!(stdout.contains("STOPPED at 0%"), "{stdout}");
    assert!(
        stdout.contains("no copy reached cluster app-v2"),
        "{stdout}"
    );
    assert_eq!(routed_to(&admin, "canary"), 0);
    assert_eq!(counter(&admin, "cluster.app-v2.upstream_rq_total"), 0);
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    assert!(config.get("mirror").is_none(), "{config}");
    assert_eq!(config["weights"]["canary"], 0.0);
}

/// A `--mirror` percent out of range is refused before anything is written.
#[test]
fn a_bad_mirror_percent_is_refused_before_any_write() {
    let mesh = preamble::mesh(&dark_config("app-v2"));
    let before = mesh.filter_configuration().unwrap();
    let audit = tempfile::NamedTempFile::new().unwrap();
    for bad in ["0", "101", "NaN"] {
        let output = rollout(&mesh, audit.path(), &["--mirror", bad]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--mirror {bad}");
        assert!(
            stderr.contains(&format!("--mirror: {bad} is not a percent")),
            "{stderr}"
        );
        assert_eq!(mesh.filter_configuration().unwrap(), before);
    }
}
