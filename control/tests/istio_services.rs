//! The Istio target with the Prometheus source, scoped to one service. Service `a`'s filter
//! configuration lives in a WasmPlugin held by the stand-in API server, which plays istiod by
//! writing each accepted `pluginConfig` into the ECDS file of `a`'s real Envoys, in the JSON
//! istiod would write (keys sorted, numbers as doubles: `40.0` arrives as `40`). Service `b`'s
//! real Envoy runs its own configuration, with the same version and rule names. One real
//! Prometheus scrapes them all; the real `canaryctl` drives the WasmPlugin through the real
//! `kubectl`.
//!
//! - A rollout of `a` through the WasmPlugin follows only `a`'s numbers while `b`'s canary
//!   reports the contrary (run both ways), each step confirmed on `a`'s proxy through
//!   Prometheus before its interval counts.
//! - A `set` is confirmed on every proxy of `a` ("3 of 3"), or not ("2 of 3", exit 1) with one
//!   of them stopped; the gauge each Envoy publishes for istiod's bytes equals canaryctl's
//!   computation from the configuration it wrote.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use canary_harness::audit::canary_errors;
use canary_harness::canaryctl::on_kube;
use canary_harness::kube::KubeApi;
use canary_harness::load::Load;
use canary_harness::mesh::{config_hash_of, Mesh};
use canary_harness::preamble;
use canary_harness::prometheus::{check_fleet_short, Prometheus};
use canary_harness::SCOPED_ROLLOUT_PLAN;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");
const NAMESPACE: &str = "default";
const NAME: &str = "canary-a";
const PLUGIN: &str = "default/canary-a";

/// Service `service`'s configuration, its canary on `canary_cluster` at `weight` %.
fn config(service: &str, canary_cluster: &str, weight: u32) -> String {
    format!(
        r#"{{"service": "{service}",
            "versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "{canary_cluster}"}}],
            "default": "stable", "weights": {{"canary": {weight}}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": 0}}}}"#
    )
}

/// Service `a`'s Envoy and the stand-in holding its configuration in the WasmPlugin, writing
/// each update into that Envoy's ECDS file.
fn service_a() -> (Mesh, KubeApi) {
    let config = config("a", "app-v2", 0);
    let mesh = preamble::mesh(&config);
    let api = KubeApi::start().unwrap_or_else(|err| panic!("{err}"));
    api.create_wasmplugin(NAMESPACE, NAME, serde_json::from_str(&config).unwrap());
    api.istiod_writes_to(mesh.ecds_file());
    (mesh, api)
}

fn shown(args: &[String], output: &Output) -> String {
    format!(
        "$ canaryctl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ctl(api: &KubeApi, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let output = on_kube(CANARYCTL, api, &args).output().unwrap();
    println!("{}", shown(&args, &output));
    output
}

/// `canaryctl set` on service `a`'s WasmPlugin with `change`, confirmed through `prometheus`.
fn set_a(api: &KubeApi, prometheus: &Prometheus, change: &[&str]) -> Output {
    let url = prometheus.url();
    let mut args = vec!["set", "--wasmplugin", PLUGIN, "--prometheus", &url];
    args.extend_from_slice(change);
    ctl(api, &args)
}

fn stored_weight(api: &KubeApi) -> f64 {
    api.plugin_config(NAMESPACE, NAME).unwrap()["weights"]["canary"]
        .as_f64()
        .unwrap()
}

/// The must-show: a rollout against the Istio target with the Prometheus source, scoped to
/// service `a` while service `b`'s proxy reports contrary numbers. `b`'s canary takes 50 % of
/// `b`'s traffic throughout. First `a`'s canary is healthy and `b`'s answers 503 to 20 % of
/// requests: summed with `b`, `a`'s canary would show about 16 % 5xx and be rolled back; it is
/// promoted. Then the other way round: summed with `b`'s healthy canary, `a`'s would show
/// about 3 % and pass; it is rolled back.
#[test]
fn an_istio_rollout_through_prometheus_follows_only_its_own_service() {
    let (a, api) = service_a();
    let b = preamble::mesh(&config("b", "app-v2-errors", 50));
    let prometheus = preamble::prometheus(&[a.front().admin(), b.front().admin()]);
    preamble::wait_for_config_hash(&prometheus, &a, "a", 1);
    preamble::wait_for_config_hash(&prometheus, &b, "b", 1);
    let load_a = Load::start(a.listen(), 2, Duration::from_millis(2), None);
    let load_b = Load::start(b.listen(), 2, Duration::from_millis(2), None);

    for round in ["a healthy, b faulty", "a faulty, b healthy"] {
        let a_is_healthy = round.starts_with("a healthy");
        if !a_is_healthy {
            // Swap the deployments: `a`'s canary to 0 % on the faulty release (through the
            // WasmPlugin, confirmed on its proxy), `b`'s canary to the healthy one.
            let set = set_a(
                &api,
                &prometheus,
                &["--weight", "canary=0", "--cluster", "canary=app-v2-errors"],
            );
            assert_eq!(set.status.code(), Some(0), "{round}");
            assert!(String::from_utf8_lossy(&set.stdout)
                .contains("1 of 1 proxies on the new configuration after"));
            let set_b = ctl(
                &api,
                &[
                    "set",
                    "--ecds",
                    &b.ecds_file().display().to_string(),
                    "--admin",
                    &b.front().admin().to_string(),
                    "--cluster",
                    "canary=app-v2",
                ],
            );
            assert_eq!(set_b.status.code(), Some(0), "{round}");
        }
        let audit = tempfile::NamedTempFile::new().unwrap();
        let args: Vec<String> = [
            "rollout",
            "--wasmplugin",
            PLUGIN,
            "--prometheus",
            &prometheus.url(),
            "--audit",
            &audit.path().display().to_string(),
        ]
        .iter()
        .chain(SCOPED_ROLLOUT_PLAN.iter())
        .map(|arg| arg.to_string())
        .collect();
        let output = on_kube(CANARYCTL, &api, &args).output().unwrap();
        let shown = shown(&args, &output);
        println!("{round}:\n{shown}");
        assert_eq!(api.istiod_error(), None);
        // Every step was confirmed on `a`'s one proxy through Prometheus before its interval.
        assert!(
            shown.contains("10%: 1 of 1 proxies on the new configuration after"),
            "{shown}"
        );
        assert!(shown.contains(r#"canary_service="a""#), "{shown}");
        let (errors, answered) = canary_errors(audit.path()).unwrap();
        if a_is_healthy {
            assert_eq!(output.status.code(), Some(0), "{round}: promoted");
            assert!(shown.contains("PROMOTED: `canary` is at 100%"), "{shown}");
            assert!(shown.contains("50%: 1 of 1 proxies on the new configuration"));
            assert_eq!(stored_weight(&api), 100.0, "{round}");
            assert!(
                answered >= 60,
                "{round}: {answered} canary responses judged"
            );
            assert_eq!(errors, 0, "{round}: the healthy canary's judged 5xx");
        } else {
            assert_eq!(output.status.code(), Some(3), "{round}: rolled back");
            assert!(shown.contains("FAIL   errors: canary 5xx"), "{shown}");
            assert_eq!(stored_weight(&api), 0.0, "{round}");
            // About 20 % 5xx, judged on a few dozen responses: well above 5 %.
            assert!(
                answered >= 30 && errors * 100 >= answered * 5,
                "{round}: the faulty canary's judged 5xx: {errors} of {answered}"
            );
        }
        let plugin_config = api.plugin_config(NAMESPACE, NAME).unwrap();
        assert_eq!(
            plugin_config["versions"][1]["cluster"],
            if a_is_healthy {
                "app-v2"
            } else {
                "app-v2-errors"
            }
        );
        assert_eq!(plugin_config["service"], "a");
    }
    load_a.stop();
    load_b.stop();
}

/// The confirmation through Prometheus on the Istio target: three Envoys of service `a` (one
/// ECDS file, written by istiod's part) and one of service `b` are scraped. A `set` through the
/// WasmPlugin is confirmed when `a`'s three report the new hash; with one of them stopped,
/// canaryctl says 2 of 3 and exits 1 after its timeout, the change stored and running on the
/// other two.
#[test]
fn a_wasmplugin_change_is_confirmed_on_every_proxy_of_its_service() {
    let (mut a, api) = service_a();
    let b = preamble::mesh(&config("b", "app-v2", 0));
    let fronts: Vec<SocketAddr> = vec![
        a.front().admin(),
        a.start_another_front().unwrap(),
        a.start_another_front().unwrap(),
    ];
    let prometheus = preamble::prometheus(&[fronts[0], fronts[1], fronts[2], b.front().admin()]);
    preamble::wait_for_config_hash(&prometheus, &a, "a", 3);
    preamble::wait_for_config_hash(&prometheus, &b, "b", 1);

    let set = set_a(&api, &prometheus, &["--weight", "canary=40"]);
    assert_eq!(set.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&set.stdout);
    assert!(
        stdout.contains("the API server stored it (resourceVersion"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 of 3 proxies on the new configuration after"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"canary_service="a""#), "{stdout}");
    assert_eq!(api.istiod_error(), None);

    // What canaryctl stored and what reached the Envoys differ as bytes (istiod's key order
    // and number format), and every Envoy publishes the hash canaryctl computes from what it
    // stored, not the hash of the bytes it was handed.
    // canaryctl sends the configuration as serde_json writes a `CanaryConfig`.
    let stored = canary_filter::CanaryConfig::from_json(
        &serde_json::to_vec(&api.plugin_config(NAMESPACE, NAME).unwrap()).unwrap(),
    )
    .unwrap();
    let as_canaryctl_writes = serde_json::to_string_pretty(&stored).unwrap();
    let delivered = a.filter_configuration().unwrap();
    assert!(
        delivered.starts_with(r#"{"default":"stable","#),
        "{delivered}"
    );
    assert!(
        delivered.contains(r#""weights":{"canary":40}"#),
        "{delivered}"
    );
    assert!(
        as_canaryctl_writes.contains(r#""canary": 40.0"#),
        "{as_canaryctl_writes}"
    );
    let want = u64::from(config_hash_of(&as_canaryctl_writes).unwrap());
    let of_the_bytes = u64::from(canary_filter::bucket::murmur3_x86_32(
        delivered.as_bytes(),
        0,
    ));
    assert_ne!(want, of_the_bytes);
    for admin in &fronts {
        let published = canary_control::metrics::admin::Admin::new(&admin.to_string())
            .counter("wasmcustom.canary_config_hash.canary_service.a")
            .unwrap();
        assert_eq!(published, Some(want), "{admin}");
    }

    // One of `a`'s proxies stopped (by its PID): Prometheus's next scrape of it fails, and it
    // has no current hash while its target stays.
    a.stop_another_front(1);
    let stopped = fronts[2].to_string();
    prometheus
        .wait_until_down(&stopped, Duration::from_secs(20))
        .unwrap_or_else(|err| panic!("{err}"));
    let set = set_a(
        &api,
        &prometheus,
        &["--weight", "canary=60", "--fleet-timeout", "3s"],
    );
    assert_eq!(set.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&set.stderr);
    assert!(
        stderr.contains("the API server stored the change (resourceVersion"),
        "{stderr}"
    );
    assert!(stderr.contains("did not all confirm it"), "{stderr}");
    check_fleet_short(&stderr, 2, 3, "3s", &stopped).unwrap();
    assert_eq!(stored_weight(&api), 60.0, "the change stays stored");
    let want = u64::from(config_hash_of(&a.filter_configuration().unwrap()).unwrap());
    for admin in &fronts[..2] {
        let published = canary_control::metrics::admin::Admin::new(&admin.to_string())
            .counter("wasmcustom.canary_config_hash.canary_service.a")
            .unwrap();
        assert_eq!(published, Some(want), "{admin} runs the stored change");
    }
}
