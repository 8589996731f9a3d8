//! The fleet confirmation at a stock mesh's timings: a real Prometheus scraping the proxy every
//! 15 s, as Istio's sample Prometheus does (the other tests scrape every second). Service `a`'s
//! configuration lives in a WasmPlugin held by the stand-in API server, which plays istiod by
//! writing each accepted `pluginConfig` into the ECDS file of `a`'s real Envoy; the real
//! `canaryctl` drives it through the real `kubectl`, with `--prometheus` and no
//! `--fleet-timeout`.
//!
//! A change written right after a scrape is seen only at the next one, about 15 s later: the
//! old fixed 10 s default gave up before that; the wait derived from the scrape interval
//! Prometheus reports (twice it plus 10 s for istiod's push: 40 s) confirms it, saying the wait
//! and how long it took.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Output;
use std::time::Duration;

use canary_harness::canaryctl::on_kube;
use canary_harness::kube::KubeApi;
use canary_harness::preamble;
use canary_harness::prometheus::Prometheus;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");
const PLUGIN: &str = "default/canary-a";

const CONFIG: &str = r#"{"service": "a",
    "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
    "default": "stable", "weights": {"canary": 0},
    "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0}}"#;

fn set(api: &KubeApi, prometheus: &Prometheus, change: &[&str]) -> Output {
    let url = prometheus.url();
    let mut args = vec!["set", "--wasmplugin", PLUGIN, "--prometheus", &url];
    args.extend_from_slice(change);
    let output = on_kube(CANARYCTL, api, &args).output().unwrap();
    println!(
        "$ canaryctl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The seconds in "after N.N s" of canaryctl's confirmation line.
fn confirmed_after(stdout: &str) -> f64 {
    let after = stdout
        .split("proxies on the new configuration after ")
        .nth(1)
        .unwrap_or_else(|| panic!("no confirmation line in {stdout}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_change_is_confirmed_through_a_prometheus_scraping_every_15_seconds() {
    let mesh = preamble::mesh(CONFIG);
    let api = KubeApi::start().unwrap_or_else(|err| panic!("{err}"));
    api.create_wasmplugin("default", "canary-a", serde_json::from_str(CONFIG).unwrap());
    api.istiod_writes_to(mesh.ecds_file());
    let proxy = mesh.front().admin();
    let prometheus = Prometheus::start_scraping_every(&[proxy], None, Duration::from_secs(15))
        .unwrap_or_else(|err| panic!("{err}"));
    prometheus
        .wait_for_config_hash(
            "a",
            &mesh.filter_configuration().unwrap(),
            1,
            Duration::from_secs(40),
        )
        .unwrap_or_else(|err| panic!("{err}"));

    // Right after a scrape (the one that brought the hash in): the proxy runs the change within
    // a second, but Prometheus sees it only at the next scrape, about 15 s later, past the old
    // fixed 10 s default; the derived wait is 40 s.
    let derived = set(&api, &prometheus, &["--weight", "canary=20"]);
    let stdout = String::from_utf8_lossy(&derived.stdout);
    assert_eq!(derived.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("1 of 1 proxies on the new configuration after")
            && stdout.contains(
                "waits up to 40 s: twice the 15 s scrape interval + 10 s for istiod's push"
            ),
        "{stdout}"
    );
    let after = confirmed_after(&stdout);
    println!("confirmed after {after} s at a 15 s scrape interval (written right after a scrape)");
    assert!(after < 40.0, "{after}");
    assert_eq!(api.istiod_error(), None);
}
