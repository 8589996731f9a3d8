//! `canaryctl rollout --feature`, `set --feature`, `explain` and `status` with features, end to
//! end: real Envoy, real upstreams, real load. A feature's users are judged against the users
//! without it by the same judge as a canary against stable.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use canary_harness::audit;
use canary_harness::canaryctl::{run, succeeded};
use canary_harness::load::Load;
use canary_harness::mesh::{rollout_config, Mesh};
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

fn canaryctl(mesh: &Mesh, args: &[&str]) -> Command {
    let mut command = Command::new(CANARYCTL);
    command
        .args(args)
        .args(["--ecds", &mesh.ecds_file().display().to_string()])
        .env_remove("CANARY_ECDS")
        .env_remove("CANARY_ADMIN")
        .env_remove("CANARY_WASMPLUGIN");
    command
}

fn rollout(mesh: &Mesh, audit: &Path, feature: &str) -> Output {
    run(canaryctl(mesh, &["rollout", "--feature", feature])
        .args(["--admin", &mesh.front().admin().to_string()])
        .args(["--audit", &audit.display().to_string()])
        .args([
            "--steps",
            "20,50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
        ]))
}

fn percent_of(mesh: &Mesh, feature: &str) -> Option<f64> {
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    config["features"][feature]["percent"].as_f64()
}

/// A healthy feature is ramped through every step to 100 %; each judged step compared users
/// with the feature against users without it.
#[test]
fn a_healthy_feature_is_ramped_to_everyone() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let output = rollout(&mesh, audit.path(), "new-checkout");
    let report = load.stop();
    assert_eq!(output.status.code(), Some(0), "exit code");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("PROMOTED: `new-checkout` is at 100%"),
        "{stdout}"
    );
    assert_eq!(percent_of(&mesh, "new-checkout"), Some(100.0));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let events = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&events);
    let passes: Vec<&serde_json::Value> = verdicts
        .iter()
        .copied()
        .filter(|v| v["outcome"] == "pass")
        .collect();
    assert_eq!(passes.len(), 2, "{verdicts:?}");
    for pass in passes {
        assert!(
            pass["canary"]["responses"].as_u64().unwrap() >= 30,
            "{pass}"
        );
        assert!(
            pass["stable"]["responses"].as_u64().unwrap() >= 30,
            "{pass}"
        );
        println!("passing verdict: {pass}");
    }
}

/// A feature that breaks the upstream (app-v1 answers 503 to requests whose features include a
/// `broken-…` one) is rolled back to 0 % at its first step with enough data.
#[test]
fn a_feature_that_breaks_the_upstream_is_rolled_back() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let output = rollout(&mesh, audit.path(), "broken-checkout");
    load.stop();
    assert_eq!(output.status.code(), Some(3), "exit code 3: rolled back");
    assert_eq!(percent_of(&mesh, "broken-checkout"), Some(0.0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ROLLED BACK: `broken-checkout` is at 0%"),
        "{stdout}"
    );
    let events = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&events);
    let failed = verdicts.iter().find(|v| v["outcome"] == "fail").unwrap();
    let errors = audit::check(failed, "errors").unwrap();
    assert_eq!(errors["passed"], false, "{errors}");
    assert!(errors["canary"].as_f64().unwrap() > 50.0, "{errors}");
    assert!(errors["stable"].as_f64().unwrap() < 1.0, "{errors}");
    println!("failing verdict: {failed}");
    // At 20 %: the failure came at the first step.
    assert_eq!(failed["weight"].as_f64(), Some(20.0), "{failed}");
}

/// `set --feature` declares a feature, `explain` says who gets it and why (and agrees with
/// what the upstream sees), and `status` shows the feature on and off.
#[test]
fn set_explain_and_status_know_features() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    succeeded(&run(canaryctl(
        &mesh,
        &["set", "--feature", "dark-mode=30"],
    )
    .args(["--admin", &mesh.front().admin().to_string()])));
    assert_eq!(percent_of(&mesh, "dark-mode"), Some(30.0));
    let mut on = 0;
    for i in 0..60 {
        let key = format!("user-{i}");
        let explained = succeeded(&run(&mut canaryctl(
            &mesh,
            &["explain", "-H", &format!("x-user-id: {key}"), "--json"],
        )));
        let explained: serde_json::Value = serde_json::from_str(&explained).unwrap();
        let says_on = explained["features"][0]["on"].as_bool().unwrap();
        let reply = mesh.get(&[("x-user-id", &key)]).unwrap();
        assert_eq!(
            reply.header("x-seen-features") == Some("dark-mode"),
            says_on,
            "{key}: {explained}"
        );
        on += usize::from(says_on);
    }
    assert!(on > 0 && on < 60, "{on}");
    let text = succeeded(&run(&mut canaryctl(
        &mesh,
        &["explain", "-H", "x-user-id: user-1"],
    )));
    assert!(text.contains("features: x-canary-features:"), "{text}");
    mesh.wait_for(Duration::from_secs(5), || {
        let status = Command::new(CANARYCTL)
            .args(["status", "--admin", &mesh.front().admin().to_string()])
            .output()?;
        let table = String::from_utf8_lossy(&status.stdout);
        println!("{table}");
        Ok(table.contains(&format!("dark-mode        on    {on:>9}"))
            && table.contains(&format!("dark-mode        off   {:>9}", 60 - on)))
    })
    .unwrap_or_else(|err| {
        let status = Command::new(CANARYCTL)
            .args(["status", "--admin", &mesh.front().admin().to_string()])
            .output()
            .unwrap();
        panic!("{err}: {}", String::from_utf8_lossy(&status.stdout))
    });
}

/// The same rollback with the counts read from a real Prometheus scraping the proxy: the
/// per-feature series reach the judge through PromQL as through the admin endpoint.
#[test]
fn a_broken_feature_is_rolled_back_from_prometheus() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let prometheus = preamble::prometheus(&[mesh.front().admin()]);
    // The rollout confirms each push through Prometheus: wait until it knows the proxy.
    mesh.wait_for(Duration::from_secs(10), || {
        Ok(!prometheus.query("canary_config_hash")?.is_empty())
    })
    .unwrap();
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let output = run(canaryctl(&mesh, &["rollout", "--feature", "broken-search"])
        .args(["--admin", &mesh.front().admin().to_string()])
        .args(["--prometheus", &prometheus.url()])
        .args(["--audit", &audit.path().display().to_string()])
        .args([
            "--steps",
            "20,50,100",
            "--interval",
            "2s",
            "--min-requests",
            "30",
        ]));
    load.stop();
    assert_eq!(output.status.code(), Some(3), "exit code 3: rolled back");
    assert_eq!(percent_of(&mesh, "broken-search"), Some(0.0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("reading Prometheus"), "{stdout}");
    let events = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&events);
    let failed = verdicts.iter().find(|v| v["outcome"] == "fail").unwrap();
    assert!(
        failed["canary"]["errors_5xx"].as_u64().unwrap() >= 30,
        "{failed}"
    );
    assert_eq!(failed["stable"]["errors_5xx"].as_u64(), Some(0), "{failed}");
}

/// A feature rollout has no dark phase: `--mirror` with `--feature` is refused before anything
/// is written.
#[test]
fn a_feature_rollout_refuses_a_mirror() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let before = mesh.filter_configuration().unwrap();
    let output = run(canaryctl(&mesh, &["rollout", "--feature", "dark-mode"])
        .args(["--admin", &mesh.front().admin().to_string()])
        .args(["--steps", "20,100", "--mirror", "5"]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--mirror"), "{stderr}");
    assert!(stderr.contains("no dark phase"), "{stderr}");
    assert_eq!(mesh.filter_configuration().unwrap(), before);
}
