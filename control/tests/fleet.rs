//! A change confirmed across a fleet: three front Envoys watch one ECDS file, and canaryctl
//! waits until each reports running the new configuration (the filter's `canary_config_hash`
//! gauge), or says which did not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output};

use canary_filter::metrics::{CONFIG_HASH, ENVOY_PREFIX};
use canary_harness::canaryctl::run;
use canary_harness::mesh::Mesh;
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

const CONFIG: &str = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable", "weights": {"canary": 10}, "sticky": {"keys": [{"header": "x-user-id"}]}}"#;

fn set(mesh: &Mesh, admins: &[String], extra: &[&str]) -> Output {
    run(Command::new(CANARYCTL)
        .args(["set", "--ecds", &mesh.ecds_file().display().to_string()])
        .args(["--admin", &admins.join(",")])
        .args(extra))
}

/// The hash an Envoy publishes, read from its admin endpoint.
fn published(mesh: &Mesh, admin: &str) -> Option<u64> {
    canary_control::metrics::admin::Admin::new(admin)
        .counter(&format!("{ENVOY_PREFIX}{CONFIG_HASH}"))
        .unwrap_or_else(|err| panic!("{admin}: {err} ({})", mesh.ecds_file().display()))
}

/// The hash of the configuration value in the mesh's ECDS file, worked out here from the text.
fn hash_of_the_file(mesh: &Mesh) -> u64 {
    let text = std::fs::read_to_string(mesh.ecds_file()).unwrap();
    let value = canary_harness::mesh::configuration_of(&text).unwrap();
    u64::from(canary_harness::mesh::config_hash_of(&value).unwrap())
}

#[test]
fn three_envoys_confirm_a_change_and_a_stopped_one_is_named() {
    let mut mesh = preamble::mesh(CONFIG);
    let mut admins = vec![mesh.front().admin().to_string()];
    admins.push(mesh.start_another_front().unwrap().to_string());
    admins.push(mesh.start_another_front().unwrap().to_string());
    // Each Envoy publishes the hash of the configuration it loaded.
    let before = hash_of_the_file(&mesh);
    for admin in &admins {
        assert_eq!(published(&mesh, admin), Some(before), "{admin}");
    }

    let output = set(&mesh, &admins, &["--weight", "canary=40"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("3 of 3 Envoys run it"), "{stdout}");
    let after = hash_of_the_file(&mesh);
    assert_ne!(after, before);
    for admin in &admins {
        assert_eq!(published(&mesh, admin), Some(after), "{admin}");
    }

    // One Envoy down: the change lands on the other two, and canaryctl says it did not reach
    // all of them, naming the one left behind, and exits 1 after its timeout.
    mesh.stop_another_front(1);
    let output = set(
        &mesh,
        &admins,
        &["--weight", "canary=60", "--fleet-timeout", "1s"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 of 3 Envoys run the new configuration"),
        "{stderr}"
    );
    assert!(stderr.contains(&admins[2]), "{stderr}");
    assert!(stderr.contains("was written and Envoy at"), "{stderr}");
    let latest = hash_of_the_file(&mesh);
    assert_eq!(published(&mesh, &admins[0]), Some(latest));
    assert_eq!(published(&mesh, &admins[1]), Some(latest));
}
