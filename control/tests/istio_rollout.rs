//! The Istio target end to end: canaryctl → the real kubectl → the stand-in API server (which
//! plays istiod's part: each accepted update is written into the ECDS file) → a real Envoy →
//! traffic → the rollout reads Envoy's admin endpoint → promote or roll back, with the
//! WasmPlugin's final pluginConfig, the ECDS file and Envoy's routing asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use canary_harness::canaryctl::{on_kube, run};
use canary_harness::kube::KubeApi;
use canary_harness::load::Load;
use canary_harness::mesh::{rollout_config, Mesh};
use canary_harness::preamble;
use serde_json::Value;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");
const PLUGIN: &str = "default/canary-filter";

/// A real Envoy on the ECDS file, and the stand-in holding the same configuration in a
/// WasmPlugin, writing each update into that file.
fn setup(canary_cluster: &str) -> (Mesh, KubeApi) {
    let config = rollout_config(canary_cluster);
    let mesh = preamble::mesh(&config);
    let api = KubeApi::start().unwrap_or_else(|err| panic!("{err}"));
    api.create_wasmplugin(
        "default",
        "canary-filter",
        serde_json::from_str(&config).unwrap(),
    );
    api.istiod_writes_to(mesh.ecds_file());
    (mesh, api)
}

fn ctl(api: &KubeApi, args: &[&str]) -> Output {
    println!("$ canaryctl {}", args.join(" "));
    run(&mut on_kube(CANARYCTL, api, args))
}

fn rollout(mesh: &Mesh, api: &KubeApi, audit: &Path, steps: &str) -> Output {
    ctl(
        api,
        &[
            "rollout",
            "--wasmplugin",
            PLUGIN,
            "--admin",
            &mesh.front().admin().to_string(),
            "--audit",
            &audit.display().to_string(),
            "--steps",
            steps,
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
        ],
    )
}

fn stored_weight(api: &KubeApi) -> f64 {
    api.plugin_config("default", "canary-filter").unwrap()["weights"]["canary"]
        .as_f64()
        .unwrap()
}

/// The canary's weight in the ECDS file Envoy watches.
fn ecds_weight(mesh: &Mesh) -> f64 {
    let config = mesh.filter_configuration().unwrap();
    let doc: Value = serde_json::from_str(&config).unwrap();
    doc["weights"]["canary"].as_f64().unwrap()
}

/// The upstream Envoy picks for each of `users` (sticky by x-user-id).
fn upstreams(mesh: &Mesh, users: usize) -> Vec<String> {
    (0..users)
        .map(|n| {
            let user = format!("user-{n}");
            let reply = mesh.get(&[("x-user-id", user.as_str())]).unwrap();
            reply.upstream().unwrap_or("none").to_string()
        })
        .collect()
}

fn accepted_updates(mesh: &Mesh) -> u64 {
    mesh.front()
        .stat("extension_config_discovery.http_filter.canary-filter.update_success")
        .unwrap()
}

/// A healthy canary: every step goes kubectl → stand-in → ECDS file → Envoy; the rollout
/// promotes it; the WasmPlugin ends at 100 % and Envoy sends every user to the canary.
#[test]
fn a_rollout_through_the_wasmplugin_promotes_a_healthy_canary() {
    let (mesh, api) = setup("app-v2");
    let accepted_before = accepted_updates(&mesh);
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(&mesh, &api, audit.path(), "10,50,100");
    load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "exit 0: promoted");
    assert!(stdout.contains("PROMOTED: `canary` is at 100%"), "{stdout}");
    assert_eq!(api.istiod_error(), None);
    assert_eq!(stored_weight(&api), 100.0);
    assert_eq!(ecds_weight(&mesh), 100.0);
    // Three steps, three updates of the WasmPlugin, three accepted by Envoy.
    assert_eq!(api.updates(), 3);
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(accepted_updates(&mesh) >= accepted_before + 3)
    })
    .unwrap();
    assert!(upstreams(&mesh, 50).iter().all(|u| u == "app-v2"));

    // status reads the configuration from the WasmPlugin and the numbers from Envoy.
    let admin = mesh.front().admin().to_string();
    let output = ctl(&api, &["status", "--wasmplugin", PLUGIN, "--admin", &admin]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        stdout.starts_with(&format!(
            "wasmplugin default/canary-filter (resourceVersion {}): default `stable`, weights \
             canary=100%, 1 rules\n",
            api.wasmplugin("default", "canary-filter").unwrap()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("canary"), "{stdout}");

    // undo goes back one step, and Envoy follows: some users on stable again.
    let output = ctl(&api, &["undo", "--wasmplugin", PLUGIN]);
    assert!(output.status.success());
    assert_eq!(stored_weight(&api), 50.0);
    mesh.wait_for(Duration::from_secs(5), || Ok(ecds_weight(&mesh) == 50.0))
        .unwrap();
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(accepted_updates(&mesh) >= accepted_before + 4)
    })
    .unwrap();
    let picked = upstreams(&mesh, 200);
    let on_canary = picked.iter().filter(|u| *u == "app-v2").count();
    assert!(
        (60..=140).contains(&on_canary),
        "{on_canary} of 200 on the canary at 50 %"
    );
    assert!(picked.iter().all(|u| u == "app-v1" || u == "app-v2"));
}

/// A canary answering 503 to 20 % of requests: the rollout rolls it back through the
/// WasmPlugin (exit 3); the WasmPlugin and the ECDS file end at 0 %, and Envoy sends every
/// user without a pin to stable while testers keep the canary.
#[test]
fn a_rollout_through_the_wasmplugin_rolls_back_a_failing_canary() {
    let (mesh, api) = setup("app-v2-errors");
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(&mesh, &api, audit.path(), "10,25,50,100");
    load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "exit 3: rolled back");
    assert!(stdout.contains("ROLLED BACK"), "{stdout}");
    assert_eq!(api.istiod_error(), None);
    assert_eq!(stored_weight(&api), 0.0);
    assert_eq!(ecds_weight(&mesh), 0.0);
    let plugin = api.plugin_config("default", "canary-filter").unwrap();
    assert_eq!(
        plugin["rules"][0]["version"], "canary",
        "the testers' pin stays"
    );
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(upstreams(&mesh, 20).iter().all(|u| u == "app-v1"))
    })
    .unwrap();
    // The canary answers 20 % of requests with a 503 that names no upstream: look at the rest.
    let testers: Vec<String> = (0..40)
        .filter_map(|_| {
            let reply = mesh.get(&[("x-canary", "always")]).unwrap();
            reply.upstream().map(str::to_string)
        })
        .collect();
    assert!(testers.len() >= 20, "{testers:?}");
    assert!(testers.iter().all(|u| u == "app-v2-errors"), "{testers:?}");
}

/// Someone changes the WasmPlugin during the first step (issue 23, defect 3): the rollout,
/// checking the configuration it last wrote at the end of the interval (or before its next
/// push), stops with exit 1 without writing, says what changed and that no canaryctl wrote it
/// (with the resourceVersion), and the other change stays with the canary at the first step's
/// weight: nothing overwritten.
#[test]
fn a_change_during_a_rollout_stops_it_without_overwriting() {
    let (mesh, api) = setup("app-v2");
    // GETs: the plan's read, the first step's preview, step 1's read, then the first check.
    api.change_after_get(4, |config| {
        config["rules"][0]["when"]["header"]["equals"] = "yes".into();
    });
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(&mesh, &api, audit.path(), "10,50,100");
    load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "exit 1: stopped");
    assert!(
        stdout.contains(
            "wasmplugin default/canary-filter was changed by something other than canaryctl \
             (resourceVersion"
        ) && stdout.contains(
            "since the rollout last wrote it (rules[0].when.header.equals: \"always\" → \"yes\"); \
             nothing written, `canary` left at 10%"
        ),
        "{stdout}"
    );
    let overridden = std::fs::read_to_string(audit.path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|event| event["event"] == "overridden")
        .expect("an overridden event");
    assert_eq!(overridden["found_weight"].as_f64(), Some(10.0));
    assert_eq!((api.updates(), api.conflicts()), (1, 0));
    let plugin = api.plugin_config("default", "canary-filter").unwrap();
    assert_eq!(plugin["weights"]["canary"].as_f64(), Some(10.0));
    assert_eq!(plugin["rules"][0]["when"]["header"]["equals"], "yes");
    assert_eq!(ecds_weight(&mesh), 10.0);
}
