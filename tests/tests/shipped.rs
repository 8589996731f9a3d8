//! What can be checked without running traffic: the shipped Envoy bootstraps pass a real
//! Envoy's validation, the shipped and documented filter configurations pass the filter's own
//! validation, and the compose file for Docker users stays in step with the native harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::process::Command;

use canary_filter::{CanaryConfig, RoutingPlan};
use canary_harness::envoy::{envoy_binary, repo_root, ENVOY_FLAGS};
use canary_harness::mesh::{configuration_of, ECDS_YAML, FRONT_YAML, UPSTREAMS_YAML};

#[test]
fn envoy_validates_the_shipped_bootstraps() {
    let envoy = envoy_binary().unwrap_or_else(|err| panic!("{err}"));
    for config in [FRONT_YAML, UPSTREAMS_YAML] {
        let output = Command::new(&envoy)
            .args(["--mode", "validate", "-c", config])
            .args(ENVOY_FLAGS)
            .current_dir(repo_root())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{config}:\n{text}");
        assert!(
            text.contains(&format!("configuration '{config}' OK")),
            "{text}"
        );
    }
}

/// The front's `stats_tags` are the filter's own (`metrics::stats_tags`, which `canaryctl
/// istio` renders for sidecars), in that order and no other.
#[test]
fn the_front_cuts_the_labels_the_filter_names() {
    let front: serde_json::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(repo_root().join(FRONT_YAML)).unwrap())
            .unwrap();
    let shipped: Vec<(String, String)> = front["stats_config"]["stats_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| {
            (
                tag["tag_name"].as_str().unwrap().to_string(),
                tag["regex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let filter: Vec<(String, String)> = canary_filter::metrics::stats_tags()
        .into_iter()
        .map(|(name, regex)| (name.to_string(), regex))
        .collect();
    assert_eq!(shipped, filter);
}

#[test]
fn the_shipped_filter_configuration_is_valid() {
    let ecds = fs::read_to_string(repo_root().join(ECDS_YAML)).unwrap();
    let config = configuration_of(&ecds).unwrap();
    let plan = RoutingPlan::from_json(config.as_bytes())
        .unwrap_or_else(|err| panic!("{ECDS_YAML}: {err}"));
    let clusters: Vec<&str> = plan.versions().iter().map(|v| v.cluster.as_str()).collect();
    let front = fs::read_to_string(repo_root().join(FRONT_YAML)).unwrap();
    for cluster in clusters {
        assert!(
            front.contains(&format!("- name: {cluster}\n")),
            "{cluster} is not a cluster of {FRONT_YAML}"
        );
    }
}

/// Every filter configuration the docs show (JSON blocks, and each WasmPlugin's pluginConfig,
/// in the README, the guide and the reference) is one the filter accepts.
#[test]
fn the_documented_examples_are_valid() {
    let mut readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    for dir in ["docs/guide", "docs/reference"] {
        let mut chapters: Vec<_> = fs::read_dir(repo_root().join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .collect();
        chapters.sort();
        for chapter in chapters {
            readme.push_str(&fs::read_to_string(chapter).unwrap());
        }
    }
    let blocks = |lang: &str| -> Vec<String> {
        readme
            .split(&format!("```{lang}\n"))
            .skip(1)
            .filter_map(|rest| rest.split_once("```").map(|(block, _)| block.to_string()))
            .collect()
    };
    let json = blocks("json");
    assert!(
        json.len() >= 5,
        "expected an example per strategy, found {}",
        json.len()
    );
    for block in &json {
        RoutingPlan::from_json(block.as_bytes())
            .unwrap_or_else(|err| panic!("documented example refused: {err}\n{block}"));
    }
    let mut plugins = 0;
    for block in blocks("yaml") {
        for doc in block.split("\n---\n") {
            let value: serde_json::Value = serde_yaml_ng::from_str(doc).unwrap();
            if value["kind"] == "WasmPlugin" {
                let config = serde_json::to_string(&value["spec"]["pluginConfig"]).unwrap();
                RoutingPlan::from_json(config.as_bytes())
                    .unwrap_or_else(|err| panic!("documented pluginConfig refused: {err}"));
                assert_eq!(value["spec"]["failStrategy"], "FAIL_OPEN");
                plugins += 1;
            }
        }
    }
    assert!(plugins >= 1, "the Istio guide shows a WasmPlugin");
}

/// The benchmark's configurations are valid, and each step of the cost table
/// (`cost-*.json`, with `lean.json` as its second step) turns on exactly the feature its row
/// names, on top of the step before.
#[test]
fn the_benchmark_configurations_are_valid_and_add_one_feature_each() {
    let dir = repo_root().join("filter/benches/configs");
    let plan = |name: &str| {
        let text = fs::read_to_string(dir.join(name)).unwrap();
        RoutingPlan::from_json(text.as_bytes()).unwrap_or_else(|err| panic!("{name}: {err}"))
    };
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        plan(&name);
    }
    // (cluster header, version header, response header, requests, responses, latency, rules)
    let features = |name: &str| {
        let plan = plan(name);
        let metrics = plan.metrics();
        (
            plan.route_header().is_some(),
            plan.version_header().is_some(),
            plan.response_version_header(),
            metrics.requests,
            metrics.responses,
            metrics.latency,
            plan.rule_names().count(),
        )
    };
    let steps = [
        (
            "cost-1-cluster-header.json",
            (true, false, false, false, false, false, 0),
        ),
        ("lean.json", (true, false, false, true, false, false, 0)),
        (
            "cost-3-version-header.json",
            (true, true, false, true, false, false, 0),
        ),
        (
            "cost-4-response-header.json",
            (true, true, true, true, false, false, 0),
        ),
        (
            "cost-5-response-classes.json",
            (true, true, true, true, true, false, 0),
        ),
        (
            "cost-6-latency.json",
            (true, true, true, true, true, true, 0),
        ),
        ("cost-7-rules.json", (true, true, true, true, true, true, 3)),
    ];
    for (name, want) in steps {
        assert_eq!(features(name), want, "{name}");
        assert!(!plan(name).is_scoped(), "{name} routes every host");
    }
    // The last row: the full contract, scoped to a service the benchmark's requests (for
    // 127.0.0.1) are not for, so each is left alone after one `:authority` read.
    let other_host = plan("cost-8-other-host.json");
    assert_eq!(features("cost-8-other-host.json"), steps[6].1);
    assert!(other_host.is_scoped());
    assert!(!other_host.routes_authority(Some(b"127.0.0.1:10000")));
    let mut unscoped =
        CanaryConfig::from_json(&fs::read(dir.join("cost-8-other-host.json")).unwrap()).unwrap();
    unscoped.hosts = None;
    assert_eq!(
        unscoped,
        CanaryConfig::from_json(&fs::read(dir.join("cost-7-rules.json")).unwrap()).unwrap(),
        "cost-8 is cost-7 and hosts"
    );
}

#[test]
fn the_compose_file_runs_what_the_native_harness_runs() {
    let root = repo_root();
    let compose: serde_json::Value = serde_yaml_ng::from_str(
        &fs::read_to_string(root.join("envoy/docker-compose.yaml")).unwrap(),
    )
    .unwrap();
    let makefile = fs::read_to_string(root.join("Makefile")).unwrap();
    let version = makefile
        .lines()
        .find_map(|line| {
            line.strip_prefix("ENVOY_VERSION")?
                .split('=')
                .nth(1)
                .map(str::trim)
        })
        .expect("ENVOY_VERSION in the Makefile");
    for (service, config) in [("front", FRONT_YAML), ("upstreams", UPSTREAMS_YAML)] {
        let spec = &compose["services"][service];
        assert_eq!(
            spec["image"],
            format!("envoyproxy/envoy:v{version}"),
            "{service}"
        );
        assert_eq!(
            spec["network_mode"], "host",
            "{service}: 127.0.0.1 must mean what it means natively"
        );
        assert_eq!(spec["working_dir"], "/work", "{service}");
        assert_eq!(spec["volumes"][0], "..:/work", "{service}");
        let command: Vec<&str> = spec["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut want = vec!["envoy", "-c", config];
        want.extend(ENVOY_FLAGS);
        assert_eq!(command, want, "{service}");
    }
}
