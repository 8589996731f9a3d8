//! Configuration delivered by file-based ECDS: ramps, refusals and updates under load, in a
//! real Envoy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use canary_e2e::load::{Load, LoadReport};
use canary_e2e::mesh::Push;
use common::{contract_cluster, get_ok, mesh, two_versions, upstream_of};

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

/// Case 5: Broken JSON, weights over 100, an unknown version, an unknown field, and a broken ECDS
/// file: each is refused, Envoy says why naming the field, stays up, and the previous routing
/// keeps serving.
#[test]
fn bad_configs_are_refused_and_the_previous_one_keeps_serving() {
    let mut mesh = mesh(&two_versions(100.0, 0));
    let everyone_on_canary = |mesh: &canary_e2e::mesh::Mesh| {
        for i in 0..50 {
            assert_eq!(upstream_of(mesh, &format!("bad-{i}")), "app-v2");
        }
    };
    everyone_on_canary(&mesh);
    let bad: &[(&str, &str)] = &[
        (
            r#"{"versions": [{"name": "stable", "cluster": "app-v1"}"#,
            "versions[0]: EOF",
        ),
        (
            r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
                "default": "stable", "weights": {"canary": 120}}"#,
            "weights.canary",
        ),
        (
            r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
                "default": "stable", "weights": {"canary": 10},
                "rules": [{"name": "r", "when": {"region": ["eu"]}, "version": "beta"}]}"#,
            "rules[0].version",
        ),
        (
            r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
                "default": "stable", "wieghts": {"canary": 10}}"#,
            "wieghts",
        ),
    ];
    for (config, field) in bad {
        assert_eq!(
            mesh.push_config(config).unwrap(),
            Push::Rejected,
            "{config}"
        );
        let line = format!("configuration refused: {field}");
        assert!(
            mesh.front().log().contains(&line),
            "no log line {line:?}:\n{}",
            mesh.front().log_tail(15)
        );
        assert!(mesh.front_mut().is_running());
        everyone_on_canary(&mesh);
    }
    // Not even YAML.
    let _ = mesh.push_ecds_text("resources: [ {{{ not yaml");
    std::thread::sleep(Duration::from_millis(300));
    assert!(mesh.front_mut().is_running());
    everyone_on_canary(&mesh);
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
