//! Configuration delivered by file-based ECDS: ramps, refusals and updates under load, in a
//! real Envoy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use canary_harness::envoy::repo_root;
use canary_harness::load::{Load, LoadReport};
use canary_harness::mesh::{render_ecds, Push, ECDS_YAML};
use canary_harness::preamble::{contract_cluster, get_ok, mesh, two_versions, upstream_of};

/// Case 3: A ramp from 10 % to 30 % arrives by ECDS: every key that was on the canary stays there,
/// and the keys the contract adds move to it.
#[test]
fn raising_the_weight_by_ecds_keeps_every_canary_user() {
    let mesh = mesh(&two_versions(10.0, 42));
    let keys: Vec<String> = (0..1_000).map(|i| format!("ramp-{i}")).collect();
    let before: Vec<String> = keys.iter().map(|key| upstream_of(&mesh, key)).collect();
    for (key, got) in keys.iter().zip(&before) {
        assert_eq!(got, contract_cluster(key, 42, 10.0), "{key}");
    }

    assert_eq!(
        mesh.push_config(&two_versions(30.0, 42)).unwrap(),
        Push::Accepted
    );
    // Wait until a key that only the new weight puts on the canary gets there.
    let mover = keys
        .iter()
        .find(|key| {
            contract_cluster(key, 42, 10.0) == "app-v1"
                && contract_cluster(key, 42, 30.0) == "app-v2"
        })
        .unwrap();
    mesh.wait_for(Duration::from_secs(2), || {
        Ok(upstream_of(&mesh, mover) == "app-v2")
    })
    .expect("the new weight takes effect within 2 s");

    let mut moved = 0;
    for (key, was) in keys.iter().zip(&before) {
        let now = upstream_of(&mesh, key);
        if was == "app-v2" {
            assert_eq!(now, "app-v2", "{key} left the canary on a ramp up");
        }
        assert_eq!(now, contract_cluster(key, 42, 30.0), "{key}");
        moved += usize::from(was == "app-v1" && now == "app-v2");
    }
    assert!(
        moved > 120,
        "only {moved} of 1000 users moved from 10% to 30%"
    );
}

/// Case 5: Every kind of broken configuration is refused by Envoy, which says why (naming the
/// field when the filter refused it), stays up, and keeps serving the previous routing: broken
/// JSON, an unknown field, weights over 100, an unknown version, a duplicate version, a
/// duplicate key, an empty file, a file that is not YAML, a resource list without the filter,
/// a missing module and a module that is not wasm.
#[test]
fn bad_configs_are_refused_and_the_previous_one_keeps_serving() {
    let mut mesh = mesh(&two_versions(100.0, 0));
    let everyone_on_canary = |mesh: &canary_harness::mesh::Mesh| {
        for i in 0..50 {
            assert_eq!(upstream_of(mesh, &format!("bad-{i}")), "app-v2");
        }
    };
    everyone_on_canary(&mesh);
    let versions = r#""versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}]"#;
    // Filter configurations the filter refuses: (configuration, the field its log line names).
    let refused_by_the_filter: Vec<(String, &str)> = vec![
        (
            // The list is what the text leaves open.
            r#"{"versions": [{"name": "stable", "cluster": "app-v1"}"#.to_string(),
            "versions: EOF while parsing a list",
        ),
        (
            format!(r#"{{{versions}, "default": "stable", "wieghts": {{"canary": 10}}}}"#),
            "wieghts",
        ),
        (
            format!(r#"{{{versions}, "default": "stable", "weights": {{"canary": 120}}}}"#),
            "weights.canary",
        ),
        (
            format!(
                r#"{{{versions}, "default": "stable", "weights": {{"canary": 10}},
                    "rules": [{{"name": "r", "when": {{"region": ["eu"]}}, "version": "beta"}}]}}"#
            ),
            "rules[0].version",
        ),
        (
            r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "stable", "cluster": "app-v2"}],
                "default": "stable"}"#
                .to_string(),
            "versions[1].name",
        ),
        (
            format!(r#"{{{versions}, "default": "stable", "weights": {{"canary": 5, "canary": 50}}}}"#),
            "weights.canary",
        ),
    ];
    for (config, field) in &refused_by_the_filter {
        assert_eq!(
            mesh.push_config(config).unwrap(),
            Push::Rejected,
            "{config}"
        );
        let line = format!("configuration refused: {field}");
        mesh.wait_for(Duration::from_secs(5), || {
            Ok(mesh.front().log().contains(&line))
        })
        .unwrap_or_else(|_| panic!("no log line {line:?}:\n{}", mesh.front().log_tail(15)));
        assert!(mesh.front_mut().is_running());
        everyone_on_canary(&mesh);
    }

    // Whole ECDS files that are broken: (what, file text, how Envoy counts it).
    let template = std::fs::read_to_string(repo_root().join(ECDS_YAML)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("not-wasm.wasm");
    std::fs::write(&not_wasm, b"\0asm\x01\0\0\0 then no module at all").unwrap();
    let good = two_versions(100.0, 0);
    let broken_files: Vec<(&str, String, Push)> = vec![
        ("an empty file", String::new(), Push::Failed),
        (
            "not YAML",
            "resources: [ {{{ not yaml".to_string(),
            Push::Failed,
        ),
        ("no resource", "resources: []\n".to_string(), Push::Rejected),
        (
            "a missing module",
            render_ecds(&template, &good, &dir.path().join("missing.wasm")).unwrap(),
            Push::Rejected,
        ),
        (
            "a module that is not wasm",
            render_ecds(&template, &good, &not_wasm).unwrap(),
            Push::Rejected,
        ),
    ];
    for (what, text, counted) in &broken_files {
        assert_eq!(mesh.push_ecds_text(text).unwrap(), *counted, "{what}");
        assert!(mesh.front_mut().is_running(), "{what}");
        everyone_on_canary(&mesh);
    }

    // A good config still gets through afterwards.
    assert_eq!(
        mesh.push_config(&two_versions(0.0, 0)).unwrap(),
        Push::Accepted
    );
    mesh.wait_for(Duration::from_secs(2), || {
        Ok(upstream_of(&mesh, "bad-0") == "app-v1")
    })
    .unwrap();
}

/// Case 8: A few seconds of concurrent requests with a dozen config updates in the middle: no
/// non-2xx answer, no connection error.
#[test]
fn config_updates_under_load_drop_nothing() {
    let mesh = mesh(&two_versions(0.0, 1));
    let load = Load::start(mesh.listen(), 4, Duration::ZERO, None);
    std::thread::sleep(Duration::from_millis(500));
    for step in 1..=12 {
        let weight = f64::from(step * 8 % 101);
        assert_eq!(
            mesh.push_config(&two_versions(weight, 1)).unwrap(),
            Push::Accepted,
            "update {step}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(500));
    let LoadReport {
        sent: total,
        failures,
    } = load.stop();
    assert!(total > 1_000, "only {total} requests were sent");
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let _ = get_ok(&mesh, &[]);
}
