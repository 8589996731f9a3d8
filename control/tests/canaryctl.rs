//! canaryctl against the real Envoy of the harness: the binary as users run it, on the ECDS
//! file the front Envoy watches.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use canary_filter::bucket::bucket_of;
use canary_harness::canaryctl::succeeded;
use canary_harness::load::{Load, LoadReport};
use canary_harness::mesh::{Mesh, Push};
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

const CONFIG: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable", "response_version_header": true,
  "weights": {"canary": 10},
  "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}], "seed": 0, "when_missing": "random"},
  "region": {"header": "x-region"},
  "rules": [
    {"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
    {"name": "opt-out", "when": {"cookie": {"name": "canary", "equals": "never"}}, "version": "stable"},
    {"name": "eu-first", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 50}}
  ]
}"#;

fn mesh() -> Mesh {
    preamble::mesh(CONFIG)
}

/// Runs canaryctl on the mesh's ECDS file, confirming with its front Envoy.
fn ctl(mesh: &Mesh, args: &[&str]) -> Output {
    Command::new(CANARYCTL)
        .args(args)
        .env("CANARY_ECDS", mesh.ecds_file())
        .env("CANARY_ADMIN", mesh.front().admin().to_string())
        .output()
        .unwrap()
}

fn upstream(mesh: &Mesh, key: &str) -> String {
    let reply = mesh.get(&[("x-user-id", key)]).unwrap();
    assert_eq!(reply.status, 200);
    reply.upstream().unwrap().to_string()
}

fn on_canary(key: &str, weight: u32) -> bool {
    bucket_of(key.as_bytes(), 0) < weight * 100
}

/// Case 1: `set` raises a weight and Envoy routes by it within a second; `undo` restores the
/// previous routing; `rollback` sends every key to the default version.
#[test]
fn set_undo_and_rollback_change_routing_within_a_second() {
    let mesh = mesh();
    let keys: Vec<String> = (0..300).map(|i| format!("op-{i}")).collect();
    let mover = keys
        .iter()
        .find(|k| !on_canary(k, 10) && on_canary(k, 40))
        .unwrap()
        .clone();
    assert_eq!(upstream(&mesh, &mover), "app-v1");

    let out = succeeded(&ctl(&mesh, &["set", "--weight", "canary=40"]));
    let written = Instant::now();
    assert!(out.contains("stable -> canary: 30.00%"), "{out}");
    assert!(out.contains("accepted"), "{out}");
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(upstream(&mesh, &mover) == "app-v2")
    })
    .unwrap_or_else(|_| panic!("not routed by the new weight within 1 s of canaryctl set"));
    println!(
        "routed by the new weight {} ms after canaryctl returned",
        written.elapsed().as_millis()
    );
    for key in &keys {
        let want = if on_canary(key, 40) {
            "app-v2"
        } else {
            "app-v1"
        };
        assert_eq!(upstream(&mesh, key), want, "{key}");
    }

    let out = succeeded(&ctl(&mesh, &["undo"]));
    assert!(out.contains("canary -> stable: 30.00%"), "{out}");
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(upstream(&mesh, &mover) == "app-v1")
    })
    .unwrap();
    for key in &keys {
        let want = if on_canary(key, 10) {
            "app-v2"
        } else {
            "app-v1"
        };
        assert_eq!(upstream(&mesh, key), want, "{key}");
    }

    succeeded(&ctl(&mesh, &["rollback"]));
    let canary_key = keys.iter().find(|k| on_canary(k, 10)).unwrap();
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(upstream(&mesh, canary_key) == "app-v1")
    })
    .unwrap();
    for key in &keys {
        assert_eq!(upstream(&mesh, key), "app-v1", "{key}");
        let eu = mesh
            .get(&[("x-user-id", key), ("x-region", "eu-west-1")])
            .unwrap();
        assert_eq!(eu.upstream(), Some("app-v1"), "{key} in the EU");
    }
    // Pins stay: a tester still reaches the canary.
    assert_eq!(
        mesh.get(&[("x-canary", "always")]).unwrap().upstream(),
        Some("app-v2")
    );
}

/// Case 2: twenty canaryctl updates under concurrent load: zero non-2xx answers. Two runs at
/// once lose no update.
#[test]
fn twenty_updates_under_load_and_concurrent_runs_lose_nothing() {
    let mesh = mesh();
    let load = Load::start(mesh.listen(), 3, Duration::ZERO, None);
    std::thread::sleep(Duration::from_millis(300));
    for step in 0..20 {
        let weight = format!("canary={}", (step * 5) % 100);
        succeeded(&ctl(&mesh, &["set", "--weight", &weight]));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let LoadReport {
        sent: total,
        failures,
    } = load.stop();
    assert!(total > 500, "only {total} requests sent");
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // Two canaryctl runs at once, changing different things: both changes land.
    let a = {
        let (ecds, admin) = (
            mesh.ecds_file().to_path_buf(),
            mesh.front().admin().to_string(),
        );
        std::thread::spawn(move || run_with(&ecds, &admin, &["set", "--seed", "77"]))
    };
    let b = run_with(
        mesh.ecds_file(),
        &mesh.front().admin().to_string(),
        &["set", "--weight", "canary=33"],
    );
    succeeded(&b);
    succeeded(&a.join().unwrap());
    let out = succeeded(&ctl(
        &mesh,
        &["explain", "-H", "x-user-id: someone", "--json"],
    ));
    let config = mesh.filter_configuration().unwrap();
    assert!(
        config.contains("\"seed\": 77") && config.contains("\"canary\": 33.0"),
        "{config}\n{out}"
    );
}

fn run_with(ecds: &Path, admin: &str, args: &[&str]) -> Output {
    Command::new(CANARYCTL)
        .args(args)
        .env("CANARY_ECDS", ecds)
        .env("CANARY_ADMIN", admin)
        .output()
        .unwrap()
}

/// Case 3: `explain` agrees with Envoy's routing for 500 requests mixing keys, headers,
/// cookies and regions.
#[test]
fn explain_agrees_with_envoy_for_500_requests() {
    let mesh = mesh();
    let mut checked_random = 0;
    for i in 0..500 {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut args: Vec<String> = vec![
            "explain".into(),
            "--json".into(),
            "--proxy-region".into(),
            "us-east-1".into(),
        ];
        let key = format!("mix-{i}");
        match i % 5 {
            0 => headers.push(("x-user-id".into(), key.clone())),
            1 => headers.push(("cookie".into(), format!("theme=x; uid={key}"))),
            2 => {}
            3 => headers.push(("x-user-id".into(), String::new())),
            _ => headers.push(("cookie".into(), format!("uid={key}; canary=never"))),
        }
        if i % 3 == 0 {
            headers.push((
                "x-region".into(),
                if i % 2 == 0 { "eu-west-1" } else { "us-west-2" }.into(),
            ));
        }
        if i % 7 == 0 {
            headers.push((
                "x-canary".into(),
                if i % 2 == 0 { "always" } else { "never" }.into(),
            ));
        }
        for (name, value) in &headers {
            args.push("-H".into());
            args.push(format!("{name}: {value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let explanation: serde_json::Value =
            serde_json::from_str(&succeeded(&ctl(&mesh, &args))).unwrap();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = mesh.get(&pairs).unwrap();
        assert_eq!(reply.status, 200);
        match explanation["cluster"].as_str() {
            Some(cluster) => assert_eq!(
                reply.upstream(),
                Some(cluster),
                "request {i} {headers:?}: {explanation}"
            ),
            None => {
                // A random bucket: Envoy must pick a version explain gives a chance to.
                let version = reply.header("x-canary-version").unwrap();
                assert!(
                    explanation["chances"][version].as_f64().unwrap() > 0.0,
                    "{explanation}"
                );
                checked_random += 1;
            }
        }
    }
    assert!(
        checked_random < 200,
        "too few requests had a key: {checked_random}"
    );
}

/// Case 4: `status` numbers match a known traffic mix.
#[test]
fn status_matches_a_known_traffic_mix() {
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"},
        {"name": "broken", "cluster": "no-such-cluster"}], "default": "stable", "weights": {"canary": 20},
        "sticky": {"keys": [{"header": "x-user-id"}]},
        "rules": [{"name": "b", "when": {"header": {"name": "x-broken", "present": true}}, "version": "broken"}]}"#;
    let mesh = preamble::mesh(config);
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for i in 0..300 {
        let key = format!("s-{i}");
        mesh.get(&[("x-user-id", &key)]).unwrap();
        *want
            .entry(if on_canary(&key, 20) {
                "canary"
            } else {
                "stable"
            })
            .or_default() += 1;
    }
    for _ in 0..12 {
        assert_eq!(mesh.get(&[("x-broken", "1")]).unwrap().status, 503);
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let json: serde_json::Value =
        serde_json::from_str(&succeeded(&ctl(&mesh, &["status", "--json"]))).unwrap();
    let rows: BTreeMap<String, &serde_json::Value> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["version"].as_str().unwrap().to_string(), row))
        .collect();
    assert_eq!(rows["stable"]["requests"], want["stable"]);
    assert_eq!(rows["canary"]["requests"], want["canary"]);
    assert_eq!(rows["broken"]["requests"], 12);
    assert_eq!(rows["broken"]["errors_5xx"], 12);
    assert_eq!(rows["broken"]["error_rate"], 100.0);
    assert_eq!(rows["stable"]["errors_5xx"], 0);
    let share = rows["canary"]["share"].as_f64().unwrap();
    assert!((share - want["canary"] as f64 * 100.0 / 312.0).abs() < 1e-9);
    assert!(rows["stable"]["p50_ms"].as_f64().is_some());
    let table = succeeded(&ctl(&mesh, &["status"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("broken") && l.contains("100.00")),
        "{table}"
    );
}

/// Case 5: refused inputs leave the ECDS file byte-identical, with a clear message and exit 1
/// (2 for usage errors).
#[test]
fn refused_inputs_leave_the_file_byte_identical() {
    let mesh = mesh();
    let before = std::fs::read(mesh.ecds_file()).unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["set", "--weight", "canary=120"],
            1,
            "weights.canary: 120 is not a percent",
        ),
        (
            &["set", "--weight", "beta=5"],
            1,
            "no version is named \"beta\"",
        ),
        (&["set", "--weight", "stable=5"], 1, "default version"),
        (&["set", "--weight", "canary=0.001"], 1, "resolution"),
        (
            &["set", "--pin", "testers=beta"],
            1,
            "no version is named \"beta\"",
        ),
        (&["set", "--pin", "new-rule=canary"], 1, "--header"),
        (&["set", "--unpin", "nope"], 1, "no rule is named"),
        (
            &["set", "--weight", "canary=50", "--rule", "testers"],
            1,
            "pins a version",
        ),
        (&["retire", "canary"], 1, "still has weight"),
        (&["promote", "stable"], 1, "already the default"),
        (&["set"], 1, "nothing to change"),
        (&["undo"], 1, "no earlier version"),
        (&["set", "--weight", "canary"], 2, "expected NAME=VALUE"),
        (&["set", "--frobnicate"], 2, "unexpected argument"),
    ];
    for (args, code, message) in cases {
        let output = ctl(&mesh, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: {stderr:?} lacks {message:?}"
        );
        assert_eq!(
            std::fs::read(mesh.ecds_file()).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    // An unreachable admin endpoint: stop before writing.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = run_with(
        mesh.ecds_file(),
        &closed.to_string(),
        &["set", "--weight", "canary=20"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unreachable"));
    assert_eq!(std::fs::read(mesh.ecds_file()).unwrap(), before);
    // A missing ECDS file.
    let missing = mesh.ecds_file().with_file_name("missing.yaml");
    let output = run_with(
        &missing,
        &mesh.front().admin().to_string(),
        &["set", "--weight", "canary=20"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the ECDS file"));
    // status against a closed port.
    let output = Command::new(CANARYCTL)
        .args(["status", "--admin", &closed.to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    // The routing never moved.
    let key = (0..)
        .map(|i| format!("r-{i}"))
        .find(|k| on_canary(k, 10))
        .unwrap();
    assert_eq!(upstream(&mesh, &key), "app-v2");
}

/// Case 6: pointing a version at another cluster moves no user between versions, yet every
/// user of its split shares and pins reaches the new cluster at once: the preview (the same
/// with `--dry-run`, which writes nothing) names each such split with its share and each pin,
/// and Envoy then routes exactly those requests there. A version no split or pin reaches is
/// said to get nothing.
#[test]
fn a_cluster_change_previews_every_split_and_pin_that_reaches_the_new_cluster() {
    let mesh = mesh();
    let before = std::fs::read(mesh.ecds_file()).unwrap();
    let dry_run = succeeded(&ctl(
        &mesh,
        &["set", "--cluster", "canary=app-v3", "--dry-run"],
    ));
    assert_eq!(
        std::fs::read(mesh.ecds_file()).unwrap(),
        before,
        "a dry run writes nothing"
    );
    let written = succeeded(&ctl(&mesh, &["set", "--cluster", "canary=app-v3"]));
    for want in [
        "top-level split (rule label `weights`): same versions (canary 10.00%, stable 90.00%)\n\
         \x20 canary's 10.00% now sent to app-v3\n",
        "rule `eu-first` split: same versions (canary 50.00%, stable 50.00%)\n\
         \x20 canary's 50.00% now sent to app-v3\n",
        "version canary: cluster app-v2 -> app-v3\n\
         \x20 rule `testers` pins canary: all its requests now sent to app-v3\n",
    ] {
        assert!(dry_run.contains(want), "{want:?} missing from\n{dry_run}");
        assert!(written.contains(want), "{want:?} missing from\n{written}");
    }
    assert_eq!(
        written.matches("now sent to").count(),
        3,
        "only the canary's two split shares and its pin; the opt-out pin sends nobody: {written}"
    );
    assert!(!written.contains("unchanged"), "{written}");

    // Envoy agrees: the testers, the top-level canary share and the EU canary share reach the
    // new cluster, everyone else stays on app-v1.
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(mesh.get(&[("x-canary", "always")])?.upstream() == Some("app-v3"))
    })
    .unwrap();
    let (mut top_moved, mut eu_moved) = (0, 0);
    for i in 0..300 {
        let key = format!("cl-{i}");
        let want = if on_canary(&key, 10) {
            "app-v3"
        } else {
            "app-v1"
        };
        assert_eq!(upstream(&mesh, &key), want, "{key}");
        top_moved += usize::from(want == "app-v3");
        let eu = mesh
            .get(&[("x-user-id", &key), ("x-region", "eu-west-1")])
            .unwrap();
        let want = if on_canary(&key, 50) {
            "app-v3"
        } else {
            "app-v1"
        };
        assert_eq!(eu.upstream(), Some(want), "{key} in the EU");
        eu_moved += usize::from(want == "app-v3");
    }
    assert!(top_moved > 10 && eu_moved > 100, "{top_moved} {eu_moved}");

    // A split share alone (no pin) reaches the new cluster too.
    succeeded(&ctl(
        &mesh,
        &["set", "--weight", "canary=0", "--unpin", "testers"],
    ));
    let eu_only = succeeded(&ctl(
        &mesh,
        &["set", "--cluster", "canary=app-v2", "--dry-run"],
    ));
    assert!(
        eu_only.contains("canary's 50.00% now sent to app-v2\n")
            && eu_only.contains("version canary: cluster app-v3 -> app-v2\n")
            && !eu_only.contains("gets none"),
        "{eu_only}"
    );
    // With no weight and no pin left, the preview says nothing reaches the new cluster.
    succeeded(&ctl(
        &mesh,
        &["set", "--weight", "canary=0", "--rule", "eu-first"],
    ));
    let idle = succeeded(&ctl(
        &mesh,
        &["set", "--cluster", "canary=app-v2", "--dry-run"],
    ));
    assert!(
        idle.contains(
            "version canary: cluster app-v3 -> app-v2\n  no split or rule sends requests to canary: app-v2 gets none until one does\n"
        ),
        "{idle}"
    );
    assert!(!idle.contains("now sent to"), "{idle}");

    // The default version's new cluster also gets the keyless requests it is given.
    let keyless_default = CONFIG.replace(
        r#""when_missing": "random""#,
        r#""when_missing": "default""#,
    );
    assert_eq!(mesh.push_config(&keyless_default).unwrap(), Push::Accepted);
    let stable_moved = succeeded(&ctl(
        &mesh,
        &["set", "--cluster", "stable=app-v3", "--dry-run"],
    ));
    for want in [
        "top-level split (rule label `weights`): same versions (canary 10.00%, stable 90.00%)\n\
         \x20 stable's 90.00% now sent to app-v3\n",
        "version stable: cluster app-v1 -> app-v3\n\
         \x20 rule `opt-out` pins stable: all its requests now sent to app-v3\n\
         \x20 requests without a sticky key (when_missing: default) now sent to app-v3\n",
    ] {
        assert!(
            stable_moved.contains(want),
            "{want:?} missing from\n{stable_moved}"
        );
    }
}
