//! `canaryctl rollout` end to end: real Envoy, real upstreams (healthy, 20 % 503, 50 ms
//! slower), real load, short intervals, and a real Prometheus for the Prometheus source.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use canary_control::metrics::admin::Admin;
use canary_control::metrics::source::Source;
use canary_control::rollout::judge::{JudgeSettings, Judgement, StepAction};
use canary_harness::audit;
use canary_harness::canaryctl::{on_mesh, run};
use canary_harness::envoy::repo_root;
use canary_harness::load::Load;
use canary_harness::mesh::{render_ecds, rollout_config, Mesh, ECDS_YAML};
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

fn rollout(mesh: &Mesh, audit: &Path, extra: &[&str]) -> Output {
    run(on_mesh(CANARYCTL, mesh, &["rollout"])
        .args(["--audit", &audit.display().to_string()])
        .args(extra))
}

/// Case 1: a healthy canary is promoted through every step to 100 %.
#[test]
fn a_healthy_canary_is_promoted() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "10,50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
        ],
    );
    load.stop();
    assert_eq!(output.status.code(), Some(0), "exit code");
    assert!(String::from_utf8_lossy(&output.stdout).contains("PROMOTED: `canary` is at 100%"));
    assert_eq!(mesh.weight_of("canary").unwrap(), 100.0);
    let lines = audit::events(audit.path()).unwrap();
    let passes = audit::verdicts(&lines)
        .iter()
        .filter(|v| v["outcome"] == "pass")
        .count();
    assert_eq!(
        passes, 2,
        "one pass per judged step; reaching 100 % is the promotion"
    );
    assert!(audit::verdicts(&lines)
        .iter()
        .all(|v| v["outcome"] != "fail"));
}

/// Case 2: a canary answering 503 to 20 % of requests is rolled back within two intervals of
/// the first step with enough data; the audit log names the failing check and its numbers.
#[test]
fn a_canary_with_20_percent_errors_is_rolled_back() {
    let mesh = preamble::mesh(&rollout_config("app-v2-errors"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "10,25,50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
        ],
    );
    load.stop();
    assert_eq!(output.status.code(), Some(3), "exit code 3: rolled back");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    let lines = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&lines);
    let first_with_data = verdicts
        .iter()
        .position(|v| v["outcome"] != "hold")
        .unwrap();
    let failed = verdicts
        .iter()
        .position(|v| v["outcome"] == "fail")
        .unwrap();
    assert!(
        failed <= first_with_data + 1,
        "failed at verdict {failed}, first with data {first_with_data}"
    );
    let verdict = verdicts[failed];
    let errors = audit::check(verdict, "errors").unwrap();
    assert_eq!(errors["passed"], false);
    assert!(errors["canary"].as_f64().unwrap() > 5.0, "{errors}");
    assert!(errors["stable"].as_f64().unwrap() < 1.0, "{errors}");
    assert!(errors["p_value"].as_f64().unwrap() < 0.01, "{errors}");
    println!(
        "failing verdict: {}",
        serde_json::to_string(verdict).unwrap()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ROLLED BACK"), "{stdout}");
    // Testers pinned by header do not count on either side: the cohort is rule=weights.
    let responses = verdict["canary"]["responses"].as_u64().unwrap()
        + verdict["stable"]["responses"].as_u64().unwrap();
    assert!(responses > 0);
}

/// Case 3: a canary 50 ms slower, its error rate fine, is rolled back by the latency check.
#[test]
fn a_canary_50ms_slower_is_rolled_back_by_the_latency_check() {
    let mesh = preamble::mesh(&rollout_config("app-v2-slow"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 4, Duration::from_millis(2), Some(50));
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "20,50,100",
            "--interval",
            "2s",
            "--min-requests",
            "20",
        ],
    );
    load.stop();
    assert_eq!(output.status.code(), Some(3), "exit code 3: rolled back");
    let lines = audit::events(audit.path()).unwrap();
    let failed = audit::verdicts(&lines)
        .into_iter()
        .find(|v| v["outcome"] == "fail")
        .unwrap()
        .clone();
    let checks = failed["checks"].as_array().unwrap();
    let latency = checks.iter().find(|c| c["name"] == "latency").unwrap();
    let errors = checks.iter().find(|c| c["name"] == "errors").unwrap();
    assert_eq!(latency["passed"], false, "{failed}");
    assert_eq!(errors["passed"], true, "{failed}");
    assert!(
        latency["canary"].as_f64().unwrap() - latency["stable"].as_f64().unwrap() > 30.0,
        "{latency}"
    );
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
}

/// Case 4: too little traffic holds the step; the rollout never promotes on no evidence.
#[test]
fn too_little_traffic_holds_the_step() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 1, Duration::from_millis(100), Some(50));
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "10,100",
            "--interval",
            "1s",
            "--min-requests",
            "500",
            "--max-holds",
            "3",
        ],
    );
    load.stop();
    assert_eq!(output.status.code(), Some(1), "stopped undecided");
    assert_eq!(
        mesh.weight_of("canary").unwrap(),
        10.0,
        "the weight stays at the first step"
    );
    let lines = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&lines);
    assert_eq!(verdicts.len(), 3);
    assert!(
        verdicts.iter().all(|v| v["outcome"] == "hold"),
        "{verdicts:?}"
    );
    assert!(verdicts[0]["reason"]
        .as_str()
        .unwrap()
        .contains("not enough data"));
    assert!(String::from_utf8_lossy(&output.stdout).contains("STOPPED at 10%"));
}

/// Responses counted in a snapshot, all versions together.
fn total(snapshot: &canary_control::metrics::counts::MetricsReading) -> u64 {
    snapshot.values().map(|c| c.answered()).sum()
}

/// Histograms reach the admin endpoint only at Envoy's stats flush (every second, later on a
/// busy machine), counters within the filter's flush period (0.1 s): waits until the counters
/// have stopped moving for longer than that and every response counted has its latency sample,
/// so a Prometheus scrape after this sees the same numbers.
fn wait_for_flush(admin: &Source) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last_total = None;
    loop {
        let snapshot = admin.read("weights").unwrap();
        let settled = last_total == Some(total(&snapshot)) && total(&snapshot) > 0;
        if settled
            && snapshot
                .values()
                .all(|c| c.latency_samples() == c.answered())
        {
            return;
        }
        last_total = Some(total(&snapshot));
        assert!(
            std::time::Instant::now() < deadline,
            "histograms not flushed within 20 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until Prometheus has scraped as many responses in all as the admin endpoint counts,
/// each with its latency sample (scrapes lag by up to their interval); what they say per
/// version, class and bucket is then compared by the test.
fn wait_for_prometheus(admin: &Source, prom: &Source) {
    let want = total(&admin.read("weights").unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // A scrape can land after the counters moved and before the histograms were flushed: wait
    // for one that has both.
    let caught_up = |snapshot: &canary_control::metrics::counts::MetricsReading| {
        total(snapshot) == want
            && snapshot
                .values()
                .all(|c| c.latency_samples() == c.answered())
    };
    while !prom.read("weights").is_ok_and(|s| caught_up(&s)) {
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus did not catch up within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Case 5: on the same traffic, Prometheus and the admin endpoint give the same counts and the
/// same verdict; and a whole rollout judged from Prometheus rolls a faulty canary back.
#[test]
fn the_prometheus_source_reaches_the_same_verdicts() {
    let mesh = preamble::mesh(&rollout_config("app-v2-errors"));
    let prometheus = preamble::prometheus(&[mesh.front().admin()]);
    // The configuration names no service: its series carry no `canary_service` label.
    let admin = Source::Admin {
        admins: vec![Admin::new(&mesh.front().admin().to_string())],
        service: String::new(),
    };
    let prom = Source::Prometheus {
        prometheus: canary_control::metrics::prometheus::Prometheus::new(&prometheus.url()),
        service: String::new(),
    };
    // Ramp to 50 % by hand and wait for Prometheus to have the series.
    let output = Command::new(CANARYCTL)
        .args([
            "set",
            "--weight",
            "canary=50",
            "--ecds",
            &mesh.ecds_file().display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    mesh.get(&[("x-user-id", "warm-up")]).unwrap();
    wait_for_flush(&admin);
    wait_for_prometheus(&admin, &prom);
    let (admin_before, prom_before) = (
        admin.read("weights").unwrap(),
        prom.read("weights").unwrap(),
    );

    // Enough canary responses for the errors check to decide in one window, however busy the
    // machine (a fixed two seconds gave ~100 on a loaded one, too few for a verdict).
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while admin.read("weights").unwrap()["canary"]
        .since(&admin_before["canary"])
        .unwrap()
        .answered()
        < 600
    {
        assert!(
            std::time::Instant::now() < deadline,
            "600 canary responses not counted within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = load.stop().sent;
    wait_for_flush(&admin);
    wait_for_prometheus(&admin, &prom);
    let (admin_after, prom_after) = (
        admin.read("weights").unwrap(),
        prom.read("weights").unwrap(),
    );
    let settings = JudgeSettings {
        min_requests: 30,
        min_intervals: 1,
        ..JudgeSettings::default()
    };
    let mut outcomes = Vec::new();
    for (before, after) in [(&admin_before, &admin_after), (&prom_before, &prom_after)] {
        let canary = after["canary"].since(&before["canary"]).unwrap();
        let stable = after["stable"].since(&before["stable"]).unwrap();
        // A judgement of this one window, stable's own counts standing in for earlier data.
        let mut judgement = Judgement::new(settings.clone()).unwrap();
        judgement.seed(&stable).unwrap();
        let verdict = judgement.observe(0, &canary, &stable).unwrap();
        outcomes.push((canary.clone(), stable.clone(), verdict));
    }
    let (admin_view, prom_view) = (&outcomes[0], &outcomes[1]);
    assert!(admin_view.0.answered() > 100, "sent {sent}");
    assert_eq!(
        admin_view.0.responses, prom_view.0.responses,
        "canary counts"
    );
    assert_eq!(
        admin_view.1.responses, prom_view.1.responses,
        "stable counts"
    );
    assert_eq!(
        admin_view.0.latency, prom_view.0.latency,
        "canary latency buckets"
    );
    assert_eq!(
        admin_view.2.outcome,
        StepAction::Fail,
        "canary {:?} stable {:?}: {:?}",
        admin_view.0,
        admin_view.1,
        admin_view.2
    );
    assert_eq!(admin_view.2, prom_view.2, "same verdict, same numbers");

    // A whole rollout from Prometheus: rolled back by the errors check.
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "10,50,100",
            "--interval",
            "2s",
            "--min-requests",
            "30",
            "--prometheus",
            &prometheus.url(),
        ],
    );
    load.stop();
    assert_eq!(output.status.code(), Some(3));
    let lines = audit::events(audit.path()).unwrap();
    let failed = audit::verdicts(&lines)
        .into_iter()
        .find(|v| v["outcome"] == "fail")
        .unwrap()
        .clone();
    let errors = audit::check(&failed, "errors").unwrap().clone();
    assert_eq!(errors["passed"], false);
}

/// Bad plans and sources get clear answers, and nothing is written.
#[test]
fn bad_plans_and_unreachable_sources() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let before = std::fs::read(mesh.ecds_file()).unwrap();
    let audit = tempfile::NamedTempFile::new().unwrap();
    for (args, message) in [
        (vec!["--steps", "10,5,100"], "--steps must increase"),
        (vec!["--steps", "0,50"], "not a weight above 0"),
        (vec!["--steps", "10,150"], "not a weight above 0"),
        (
            vec!["--interval", "0s"],
            "--interval must be longer than zero",
        ),
        (vec!["--canary", "beta"], "no version is named \"beta\""),
    ] {
        let output = rollout(&mesh, audit.path(), &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{args:?}"
        );
        assert_eq!(std::fs::read(mesh.ecds_file()).unwrap(), before);
    }
    // A Prometheus that is not there: no push of the rollout could be confirmed on the fleet
    // through it, so the rollout refuses to start, and writes nothing.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "10,100",
            "--interval",
            "300ms",
            "--max-failed-reads",
            "2",
            "--prometheus",
            &format!("http://{closed}"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nothing written") && stderr.contains("unreachable"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(mesh.ecds_file()).unwrap(), before);

    // Prometheus lost in the middle of the rollout: each read fails, the step holds and
    // retries, then the rollout rolls back, saying so. The rollback is written; confirming it
    // on the fleet needs the lost Prometheus too, so the rollout ends with that error (exit 1),
    // the rollback still recorded: its event (not confirmed, saying why) and its summary.
    let prometheus = preamble::prometheus(&[mesh.front().admin()]);
    mesh.wait_for(Duration::from_secs(20), || {
        Ok(!prometheus.query("canary_config_hash")?.is_empty())
    })
    .unwrap();
    let mut child = on_mesh(CANARYCTL, &mesh, &["rollout"])
        .args(["--audit", &audit.path().display().to_string()])
        .args(["--steps", "10,100", "--interval", "500ms", "--settle", "1s"])
        .args(["--min-requests", "1000000", "--max-failed-reads", "2"])
        .args(["--fleet-timeout", "1s", "--prometheus", &prometheus.url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut stdout = String::new();
    // The first judged interval (a hold: too few responses) was read from Prometheus; then it
    // goes, stopped by its PID.
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout += &line;
        stdout.push('\n');
        if line.starts_with("step 1/2") {
            break;
        }
    }
    drop(prometheus);
    for line in lines {
        stdout += &line.unwrap();
        stdout.push('\n');
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("source read failed (1 of 2)") && stdout.contains("unreachable"),
        "{stdout}"
    );
    assert!(stderr.contains("rolling back"), "{stderr}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    assert!(
        stdout.contains("ROLLED BACK, NOT CONFIRMED: `canary` is at 0% (2 failed reads"),
        "{stdout}"
    );
    let last = audit::events(audit.path()).unwrap().pop().unwrap();
    assert_eq!(
        (&last["event"], &last["confirmed"]),
        (&serde_json::json!("rolled_back"), &serde_json::json!(false)),
        "{last}"
    );
    assert!(
        last["not_confirmed"]
            .as_str()
            .unwrap()
            .contains("proxies on the new configuration"),
        "{last}"
    );
}

/// Ctrl-C leaves a defined state: held at the current weight, or rolled back, as asked.
#[test]
fn ctrl_c_holds_or_rolls_back_as_asked() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    for (mode, code, weight) in [("hold", 1, 10.0), ("rollback", 3, 0.0)] {
        let audit = tempfile::NamedTempFile::new().unwrap();
        let child = on_mesh(
            CANARYCTL,
            &mesh,
            &[
                "rollout",
                "--steps",
                "10,100",
                "--interval",
                "30s",
                "--on-interrupt",
                mode,
            ],
        )
        .args(["--audit", &audit.path().display().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        mesh.wait_for(Duration::from_secs(10), || {
            Ok(mesh.weight_of("canary").unwrap() == 10.0)
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(code), "{mode}: {stdout}");
        assert_eq!(mesh.weight_of("canary").unwrap(), weight, "{mode}");
        assert!(stdout.contains("interrupted"), "{stdout}");
    }
}

/// A failed rollout takes every user off the canary, not only the judged cohort: a rule's own
/// split (here 50 % of `eu-west-1`) goes to 0 in the same push, the output names both splits
/// and the pin that still sends testers there, and afterwards no `eu-west-1` user reaches it.
#[test]
fn a_rollback_takes_the_canary_out_of_every_split() {
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2-errors"}],
        "default": "stable", "weights": {"canary": 0}, "response_version_header": true,
        "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0},
        "region": {"header": "x-region"},
        "rules": [{"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
                  {"name": "eu-first", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 50}}]}"#;
    let mesh = preamble::mesh(config);
    let eu_on_canary = |mesh: &Mesh| {
        (0..200)
            .filter(|i| {
                let key = format!("eu-{i}");
                let reply = mesh
                    .get(&[("x-user-id", &key), ("x-region", "eu-west-1")])
                    .unwrap();
                // The version the filter chose, also on the canary's 503s (which carry no
                // `x-upstream`).
                reply.header("x-canary-version") == Some("canary")
            })
            .count()
    };
    assert!(
        eu_on_canary(&mesh) > 50,
        "the rule's split sends EU users to the canary"
    );
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "25,50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
        ],
    );
    load.stop();
    assert_eq!(output.status.code(), Some(3), "exit code 3: rolled back");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "rollback: `canary` set to 0% in the top-level split, rule `eu-first`'s split"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("still pinned to `canary` by rule(s) `testers`"),
        "{stdout}"
    );
    let after = mesh.filter_configuration().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(doc["weights"]["canary"], 0.0);
    assert_eq!(doc["rules"][1]["weights"]["canary"], 0.0);
    assert_eq!(eu_on_canary(&mesh), 0, "EU users still reach the canary");
    let tester = mesh.get(&[("x-canary", "always")]).unwrap();
    assert_eq!(
        tester.header("x-canary-version"),
        Some("canary"),
        "testers keep the pin"
    );
}

/// The stdout of a finished canaryctl run, which must have exited with `code`.
fn stdout_of(output: &Output, code: i32) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `--dry-run` prints the plan and who moves at the first step, exactly as `canaryctl set
/// --dry-run` previews that weight (top-level or a rule's split), and exits 0 having written
/// nothing: neither the ECDS file nor the audit log, and no metrics source or Envoy is asked
/// (the admin endpoint given is closed). A first step the configuration refuses is refused
/// before anything happens.
#[test]
fn a_dry_run_prints_the_plan_and_the_first_steps_preview_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ecds = dir.path().join("canary-filter.yaml");
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
        "default": "stable", "weights": {"canary": 0},
        "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0},
        "region": {"header": "x-region"},
        "rules": [{"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
                  {"name": "eu-first", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 50}}]}"#;
    let shipped = std::fs::read_to_string(repo_root().join(ECDS_YAML)).unwrap();
    std::fs::write(
        &ecds,
        render_ecds(&shipped, config, Path::new("canary_filter.wasm")).unwrap(),
    )
    .unwrap();
    let before = std::fs::read(&ecds).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let audit = dir.path().join("audit").join("rollout-audit.jsonl");
    let ecds_arg = ecds.display().to_string();
    let run = |args: &[&str]| {
        Command::new(CANARYCTL)
            .args(args)
            .args(["--ecds", &ecds_arg])
            .output()
            .unwrap()
    };
    let rollout_dry_run = |extra: &[&str]| {
        let mut args = vec![
            "rollout",
            "--dry-run",
            "--admin",
            &closed,
            "--audit",
            audit.to_str().unwrap(),
        ];
        args.extend(extra);
        run(&args)
    };
    for (extra, set_args, plan) in [
        (
            vec!["--steps", "10,50,100"],
            vec!["set", "--weight", "canary=10", "--dry-run"],
            "in cohort rule=weights: steps 10% → 50% → 100% every 1m",
        ),
        (
            vec![
                "--steps",
                "60,100",
                "--rule",
                "eu-first",
                "--interval",
                "30s",
            ],
            vec![
                "set",
                "--weight",
                "canary=60",
                "--rule",
                "eu-first",
                "--dry-run",
            ],
            "in cohort rule=eu-first: steps 60% → 100% every 30s",
        ),
    ] {
        let stdout = stdout_of(&rollout_dry_run(&extra), 0);
        let set = stdout_of(&run(&set_args), 0);
        assert!(stdout.contains(plan), "{stdout}");
        // The preview is set's, line for line: everything set prints before its last line
        // ("dry run: ... not written").
        let (set_preview, _) = set.trim_end().rsplit_once('\n').unwrap();
        let (_, after_plan) = stdout.split_once("first step, `canary` at ").unwrap();
        let (_, preview) = after_plan.split_once('\n').unwrap();
        assert!(
            preview.starts_with(&format!("{set_preview}\ndry run: ")),
            "rollout's preview:\n{preview}\nset's:\n{set_preview}"
        );
        assert!(
            set_preview.contains("stable -> canary: 10.00%"),
            "{set_preview}"
        );
        assert!(
            stdout.contains("not written, no rollout started"),
            "{stdout}"
        );
        assert_eq!(std::fs::read(&ecds).unwrap(), before, "{extra:?}");
        assert!(
            !audit.parent().unwrap().exists(),
            "no audit log for a dry run"
        );
    }
    let refused = rollout_dry_run(&["--rule", "testers"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pins a version"), "{stderr}");
    assert_eq!(std::fs::read(&ecds).unwrap(), before);
}

/// Too little traffic at a step: every hold says how many responses each side had at the step
/// against `--min-requests` (the sums of the intervals the audit log records) and the stop after `--max-holds`
/// names the counts and the flags that would decide it: exit 1, the weight left in place.
#[test]
fn a_hold_names_the_counts_and_the_flags_to_change() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 2, Duration::from_millis(50), None);
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "50,100",
            "--interval",
            "1s",
            "--min-requests",
            "5000",
            "--max-holds",
            "3",
        ],
    );
    load.stop();
    let stdout = stdout_of(&output, 1);
    assert_eq!(
        mesh.weight_of("canary").unwrap(),
        50.0,
        "the weight stays at the step"
    );
    let lines = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&lines);
    assert_eq!(verdicts.len(), 3, "{stdout}");
    // The audit log records each interval's own counts; a hold reports the step's so far.
    let counts = |upto: usize| {
        verdicts
            .iter()
            .take(upto + 1)
            .fold((0, 0), |(canary, stable), verdict| {
                (
                    canary + verdict["canary"]["responses"].as_u64().unwrap(),
                    stable + verdict["stable"]["responses"].as_u64().unwrap(),
                )
            })
    };
    for holds in 0..2 {
        let (canary, stable) = counts(holds);
        let line = format!(
            "  hold {} of 3 (--max-holds): `canary` {canary} and `stable` {stable} responses in {} interval(s) of 1s, 5000 each needed (--min-requests)",
            holds + 1,
            holds + 1
        );
        assert!(stdout.contains(&line), "{line:?} missing from\n{stdout}");
    }
    let (canary, stable) = counts(2);
    assert!(canary > 0 && stable > 0, "{canary} {stable}");
    let fewest = canary.min(stable);
    let short_side = if canary <= stable { "canary" } else { "stable" };
    let intervals = (5000.0 / (fewest as f64 / 3.0)).ceil();
    let stopped = format!(
        "STOPPED at 50%: no verdict after 3 intervals at 50%: `canary` {canary} and `stable` {stable} responses in 3 interval(s) of 1s, 5000 each needed (--min-requests); \
         at this rate `{short_side}` needs about {intervals} intervals, more than --max-holds 3: lower --min-requests to {fewest}, lengthen --interval to "
    );
    assert!(
        stdout.contains(&stopped),
        "{stopped:?} missing from\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "or raise --max-holds to {intervals} (or send more traffic)"
        )),
        "{stdout}"
    );
}

/// The judge counts what happened during the rollout's intervals, not the totals Envoy has
/// counted since it started. Before the rollout the canary ran on app-v2-errors at 20 %: its
/// counters in the judged cohort hold 20 % 503s. Then it moves to a healthy deployment
/// (`set --cluster canary=app-v2`) and the rollout judges only the new traffic: promoted, the
/// judged interval without a single 5xx. Judged on totals, the old 503s would roll it back.
/// The rollout starts with set's preview of its first step.
#[test]
fn the_rollout_judges_its_intervals_not_the_totals_before_it() {
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2-errors"}],
        "default": "stable", "weights": {"canary": 20},
        "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0},
        "rules": [{"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"}]}"#;
    let mesh = preamble::mesh(config);
    let admin = Source::Admin {
        admins: vec![Admin::new(&mesh.front().admin().to_string())],
        service: String::new(),
    };
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    mesh.wait_for(Duration::from_secs(60), || {
        let canary = admin.read("weights")?.get("canary").cloned();
        Ok(canary.is_some_and(|c| c.answered() >= 1_000))
    })
    .unwrap();
    load.stop();
    wait_for_flush(&admin);
    let before = admin.read("weights").unwrap()["canary"].clone();
    println!(
        "canary before the rollout: {} of {} responses 5xx",
        before.errors(),
        before.answered()
    );
    assert!(
        before.error_rate() > 12.0,
        "the canary's totals must look bad: {:.2}% 5xx",
        before.error_rate()
    );

    let set = on_mesh(CANARYCTL, &mesh, &["set", "--cluster", "canary=app-v2"])
        .output()
        .unwrap();
    let set = stdout_of(&set, 0);
    assert!(set.contains("canary's 20.00% now sent to app-v2"), "{set}");

    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let output = rollout(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
        ],
    );
    load.stop();
    let stdout = stdout_of(&output, 0);
    assert!(stdout.contains("PROMOTED: `canary` is at 100%"), "{stdout}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 100.0);
    // The first step's preview comes first: 20 % to 50 %, as set would say it.
    let preview = stdout
        .split_once("first step, `canary` at 50%:\n")
        .and_then(|(_, rest)| rest.split_once("step 1/2"))
        .map(|(preview, _)| preview)
        .unwrap_or_else(|| panic!("no preview before the first step:\n{stdout}"));
    assert!(
        preview.contains("  canary           20.00% ->   50.00%  *\n")
            && preview.contains("    stable -> canary: 30.00%\n"),
        "{preview}"
    );
    let lines = audit::events(audit.path()).unwrap();
    let judged = audit::verdicts(&lines)
        .into_iter()
        .find(|v| v["outcome"] == "pass")
        .unwrap_or_else(|| panic!("no pass: {lines:?}"));
    let canary = &judged["canary"];
    assert_eq!(canary["errors_5xx"], 0, "{judged}");
    assert!(canary["responses"].as_u64().unwrap() >= 30, "{judged}");
}

/// A stable config whose two versions run on the given clusters (for the judge's noise tests).
fn config_on(stable_cluster: &str, canary_cluster: &str) -> String {
    rollout_config(canary_cluster).replace(
        r#""cluster": "app-v1""#,
        &format!(r#""cluster": "{stable_cluster}""#),
    )
}

/// Three steps of three 1.5 s intervals at most, 60 responses a side: the noise tests' plan.
const QUICK_PLAN: [&str; 6] = [
    "--steps",
    "10,50,100",
    "--interval",
    "1500ms",
    "--min-requests",
    "60",
];

/// Stable and canary both answer 503 to 5 % of requests (Envoy's fault filter on both
/// upstreams): at the default 5 % ceiling the canary is no worse than stable, and the rollout
/// promotes it.
#[test]
fn a_canary_as_flaky_as_stable_is_promoted() {
    let mesh = preamble::mesh(&config_on("app-v1-flaky", "app-v2-flaky"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start(mesh.listen(), 4, Duration::from_millis(1), None);
    let output = rollout(&mesh, audit.path(), &QUICK_PLAN);
    load.stop();
    assert_eq!(output.status.code(), Some(0), "exit code 0: promoted");
    assert_eq!(mesh.weight_of("canary").unwrap(), 100.0);
    let lines = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&lines);
    // Both sides did answer 5xx during the rollout: the judge saw the noise and let it pass.
    let errors = |side: &str| -> u64 {
        verdicts
            .iter()
            .map(|v| v[side]["errors_5xx"].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(errors("canary") > 0 && errors("stable") > 0, "{verdicts:?}");
    assert!(verdicts.iter().all(|v| v["outcome"] != "fail"));
}

/// 5 % of the canary's requests take 1 s longer while its median does not move (the old judge
/// compared medians only, and passed such canaries): the rollout rolls it back by its latency
/// checks. Which of the two crosses first varies from run to run (both read shares of requests
/// beyond bucket bounds; the tail check alone is unit-tested in judge.rs).
#[test]
fn a_canary_with_a_slow_tail_is_rolled_back() {
    let mesh = preamble::mesh(&rollout_config("app-v2-tail"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    // Many clients: each delayed request holds its client for a second.
    let load = Load::start(mesh.listen(), 8, Duration::from_millis(1), None);
    let output = rollout(&mesh, audit.path(), &QUICK_PLAN);
    load.stop();
    assert_eq!(output.status.code(), Some(3), "exit code 3: rolled back");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    let lines = audit::events(audit.path()).unwrap();
    let verdicts = audit::verdicts(&lines);
    let failed = verdicts.iter().find(|v| v["outcome"] == "fail").unwrap();
    let failing: Vec<&str> = failed["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    println!("failing checks: {failing:?}; verdict {failed}");
    assert!(!failing.is_empty(), "{failed}");
    assert!(
        failing
            .iter()
            .all(|name| *name == "latency" || *name == "latency_tail"),
        "{failing:?}"
    );
    // The median did not move: a tail regression, not a slower canary.
    let median = |side: &str| failed[side]["p50_ms"].as_f64().unwrap();
    assert!(
        (median("canary") - median("stable")).abs() < 5.0,
        "{} vs {}",
        median("canary"),
        median("stable")
    );
}
