//! Two services behind one Prometheus: every query canaryctl makes names one `canary_service`.
//! A rollout through Prometheus follows its own service's numbers while the other service's
//! proxies report the contrary (run both ways), and a change is confirmed on every scraped
//! proxy of its service ("3 of 3"), or not ("2 of 3" and exit 1) when one is stopped. Real
//! Envoys (two meshes: front and upstreams each), a real Prometheus scraping every front, the
//! real `canaryctl` binary on the ECDS file target.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use canary_harness::audit::canary_errors;
use canary_harness::canaryctl::run;
use canary_harness::load::Load;
use canary_harness::mesh::{config_hash_of, configuration_of, Mesh};
use canary_harness::preamble;
use canary_harness::prometheus::check_fleet_short;
use canary_harness::SCOPED_ROLLOUT_PLAN;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

/// Service `service`'s configuration: the same version and rule names in both services, so
/// that only the `canary_service` label tells their series apart.
fn config(service: &str, canary_cluster: &str) -> String {
    format!(
        r#"{{"service": "{service}",
            "versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "{canary_cluster}"}}],
            "default": "stable", "weights": {{"canary": 0}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": 0}}}}"#
    )
}

fn canaryctl(args: &[&str]) -> Output {
    println!("$ canaryctl {}", args.join(" "));
    run(Command::new(CANARYCTL).args(args))
}

fn ecds(mesh: &Mesh) -> String {
    mesh.ecds_file().display().to_string()
}

/// A rollout of `mesh`'s canary judged from Prometheus (the service taken from the
/// configuration), started on its own thread.
fn rollout(
    mesh: &Mesh,
    prometheus: &str,
    audit: &Path,
) -> std::thread::JoinHandle<(Output, String)> {
    let args: Vec<String> = [
        "rollout",
        "--ecds",
        &ecds(mesh),
        "--admin",
        &mesh.front().admin().to_string(),
        "--prometheus",
        prometheus,
        "--audit",
        &audit.display().to_string(),
    ]
    .iter()
    .chain(SCOPED_ROLLOUT_PLAN.iter())
    .map(|arg| arg.to_string())
    .collect();
    std::thread::spawn(move || {
        let output = Command::new(CANARYCTL).args(&args).output().unwrap();
        let shown = format!(
            "$ canaryctl {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output, shown)
    })
}

/// The must-show: a rollout with the Prometheus source, scoped to one service while a second
/// service's proxies report contrary numbers. Both services use the same version and rule
/// names; service `a`'s canary is healthy and service `b`'s answers 503 to 20 % of requests,
/// then the other way round. Each round runs both rollouts at once: the healthy one is
/// promoted (summed with the other service, its canary would show about 10 % 5xx and be rolled
/// back), the faulty one rolled back, each judging only its own service's responses.
#[test]
fn a_prometheus_rollout_follows_only_its_own_service() {
    let a = preamble::mesh(&config("a", "app-v2"));
    let b = preamble::mesh(&config("b", "app-v2-errors"));
    let prometheus = preamble::prometheus(&[a.front().admin(), b.front().admin()]);
    preamble::wait_for_config_hash(&prometheus, &a, "a", 1);
    preamble::wait_for_config_hash(&prometheus, &b, "b", 1);
    let load_a = Load::start(a.listen(), 2, Duration::from_millis(2), None);
    let load_b = Load::start(b.listen(), 2, Duration::from_millis(2), None);

    for round in ["a healthy, b faulty", "a faulty, b healthy"] {
        let (healthy, faulty) = if round.starts_with("a healthy") {
            (&a, &b)
        } else {
            // Swap the deployments: each canary to 0 %, `a`'s to the faulty release, `b`'s to
            // the healthy one.
            for (mesh, cluster) in [(&a, "app-v2-errors"), (&b, "app-v2")] {
                let set = canaryctl(&[
                    "set",
                    "--ecds",
                    &ecds(mesh),
                    "--weight",
                    "canary=0",
                    "--cluster",
                    &format!("canary={cluster}"),
                    "--admin",
                    &mesh.front().admin().to_string(),
                ]);
                assert_eq!(set.status.code(), Some(0), "{round}");
            }
            (&b, &a)
        };
        let healthy_audit = tempfile::NamedTempFile::new().unwrap();
        let faulty_audit = tempfile::NamedTempFile::new().unwrap();
        let promoting = rollout(healthy, &prometheus.url(), healthy_audit.path());
        let rolling_back = rollout(faulty, &prometheus.url(), faulty_audit.path());
        let (promoted, promoted_shown) = promoting.join().unwrap();
        let (rolled_back, rolled_back_shown) = rolling_back.join().unwrap();
        println!("{round}:\n{promoted_shown}\n{rolled_back_shown}");

        assert_eq!(promoted.status.code(), Some(0), "{round}: {promoted_shown}");
        assert!(
            promoted_shown.contains("PROMOTED: `canary` is at 100%"),
            "{promoted_shown}"
        );
        assert_eq!(healthy.weight_of("canary").unwrap(), 100.0, "{round}");
        // Every push waited for the service's one proxy through Prometheus.
        assert!(
            promoted_shown.contains("series with canary_service="),
            "{promoted_shown}"
        );
        let (errors, answered) = canary_errors(healthy_audit.path()).unwrap();
        assert!(
            answered >= 60,
            "{round}: {answered} canary responses judged"
        );
        assert_eq!(errors, 0, "{round}: the healthy canary's judged 5xx");

        assert_eq!(
            rolled_back.status.code(),
            Some(3),
            "{round}: {rolled_back_shown}"
        );
        assert_eq!(faulty.weight_of("canary").unwrap(), 0.0, "{round}");
        // About 20 % 5xx, judged on a few dozen responses: well above 5 % (stable has none).
        let (errors, answered) = canary_errors(faulty_audit.path()).unwrap();
        assert!(
            answered >= 30 && errors * 100 >= answered * 5,
            "{round}: the faulty canary's judged 5xx: {errors} of {answered}"
        );
        assert!(
            rolled_back_shown.contains("FAIL   errors: canary 5xx"),
            "{rolled_back_shown}"
        );
    }
    load_a.stop();
    load_b.stop();
}

/// The fleet through Prometheus: three proxies of service `a` (one ECDS file) and one of
/// service `b` are scraped. A change to `a` is confirmed when its three report the new hash
/// (`b`'s proxy is not one of them); with one of `a`'s stopped, canaryctl says 2 of 3, names
/// the one behind and exits 1 after its timeout, the change written and running on the other
/// two. On the way, `status --prometheus` counts each service's requests apart.
#[test]
fn a_change_is_confirmed_on_every_proxy_of_its_service_through_prometheus() {
    let mut a = preamble::mesh(&config("a", "app-v2"));
    let b = preamble::mesh(&config("b", "app-v2"));
    let fronts: Vec<SocketAddr> = vec![
        a.front().admin(),
        a.start_another_front().unwrap(),
        a.start_another_front().unwrap(),
    ];
    let prometheus = preamble::prometheus(&[fronts[0], fronts[1], fronts[2], b.front().admin()]);
    preamble::wait_for_config_hash(&prometheus, &a, "a", 3);
    preamble::wait_for_config_hash(&prometheus, &b, "b", 1);

    let set = canaryctl(&[
        "set",
        "--ecds",
        &ecds(&a),
        "--admin",
        &fronts[0].to_string(),
        "--prometheus",
        &prometheus.url(),
        "--weight",
        "canary=40",
    ]);
    assert_eq!(set.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&set.stdout);
    assert!(
        stdout.contains("3 of 3 proxies on the new configuration after"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"canary_service="a""#), "{stdout}");
    // Prometheus itself says all three run the file's configuration.
    preamble::wait_for_config_hash(&prometheus, &a, "a", 3);

    // `status` through Prometheus: each service's own requests, the service taken from the
    // ECDS file's configuration or named.
    for _ in 0..30 {
        assert_eq!(a.get(&[("x-user-id", "s")]).unwrap().status, 200);
    }
    for _ in 0..20 {
        assert_eq!(b.get(&[("x-user-id", "s")]).unwrap().status, 200);
    }
    let status_requests = |extra: &[&str]| -> u64 {
        let url = prometheus.url();
        let mut args = vec!["status", "--json", "--prometheus", &url];
        args.extend_from_slice(extra);
        let output = Command::new(CANARYCTL).args(&args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| row["requests"].as_u64().unwrap())
            .sum()
    };
    let ecds_a = ecds(&a);
    a.wait_for(Duration::from_secs(20), || {
        Ok(status_requests(&["--ecds", &ecds_a]) == 30
            && status_requests(&["--service", "b"]) == 20)
    })
    .unwrap_or_else(|err| {
        panic!(
            "{err}: service a {}, service b {}",
            status_requests(&["--ecds", &ecds_a]),
            status_requests(&["--service", "b"])
        )
    });

    let table = canaryctl(&[
        "status",
        "--prometheus",
        &prometheus.url(),
        "--ecds",
        &ecds_a,
    ]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(r#"canary_service="a""#));

    // One of `a`'s proxies stopped (by its PID): Prometheus's next scrape of it fails, and it
    // has no current hash while its target stays. No admin endpoint this time: the fleet is
    // Prometheus's alone.
    a.stop_another_front(1);
    let stopped = fronts[2].to_string();
    prometheus
        .wait_until_down(&stopped, Duration::from_secs(20))
        .unwrap_or_else(|err| panic!("{err}"));
    let set = canaryctl(&[
        "set",
        "--ecds",
        &ecds(&a),
        "--prometheus",
        &prometheus.url(),
        "--weight",
        "canary=60",
        "--fleet-timeout",
        "3s",
    ]);
    assert_eq!(set.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&set.stderr);
    check_fleet_short(&stderr, 2, 3, "3s", &stopped).unwrap();
    assert!(stderr.contains("was written, but"), "{stderr}");
    assert_eq!(
        a.weight_of("canary").unwrap(),
        60.0,
        "the change stays written: the others run it"
    );
    let value = configuration_of(&std::fs::read_to_string(a.ecds_file()).unwrap()).unwrap();
    let want = u64::from(config_hash_of(&value).unwrap());
    for admin in &fronts[..2] {
        let gauge = "wasmcustom.canary_config_hash.canary_service.a";
        let published = canary_control::metrics::admin::Admin::new(&admin.to_string())
            .counter(gauge)
            .unwrap();
        assert_eq!(published, Some(want), "{admin}");
    }
}
