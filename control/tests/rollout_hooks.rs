//! The operator's kit end to end: `rollout --json`'s event stream, notification and gate hooks
//! (real HTTP servers started here, recording what they receive), the manual gate with two
//! canaryctl processes, and `status --watch`'s rates — against real Envoy and real load.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use canary_harness::audit;
use canary_harness::canaryctl::{on_mesh, run, Exit, Running};
use canary_harness::load::Load;
use canary_harness::mesh::{rollout_config, Mesh};
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

/// `canaryctl rollout` on the mesh, its audit log at `audit`.
fn rollout_command(mesh: &Mesh, audit: &Path, extra: &[&str]) -> Command {
    let mut command = on_mesh(CANARYCTL, mesh, &["rollout"]);
    command
        .args(["--audit", &audit.display().to_string()])
        .args(extra);
    command
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect()
}

fn tags(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

/// What a hook server answers to its `n`-th request (from 0).
type Answer = Box<dyn Fn(usize) -> (u16, &'static str, Duration) + Send + Sync>;

/// An HTTP server on 127.0.0.1 recording every POST's JSON body; each request is answered on
/// its own thread (a slow answer holds no other). Stopped on drop.
struct HookServer {
    address: SocketAddr,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HookServer {
    fn start(answer: Answer) -> HookServer {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let address = server.server_addr().to_ip().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer = Arc::new(answer);
        let thread = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50))
                    else {
                        continue;
                    };
                    let mut body = String::new();
                    request.as_reader().read_to_string(&mut body).unwrap();
                    let n = {
                        let mut received = received.lock().unwrap();
                        received.push(serde_json::from_str(&body).unwrap_or_else(
                            |err| serde_json::json!({"not_json": body, "error": err.to_string()}),
                        ));
                        received.len() - 1
                    };
                    let (answer, stop) = (Arc::clone(&answer), Arc::clone(&stop));
                    std::thread::spawn(move || {
                        let (status, text, delay) = answer(n);
                        let until = Instant::now() + delay;
                        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        let _ = request.respond(
                            tiny_http::Response::from_string(text).with_status_code(status),
                        );
                    });
                }
            })
        };
        HookServer {
            address,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn answering(status: u16, text: &'static str) -> HookServer {
        HookServer::start(Box::new(move |_| (status, text, Duration::ZERO)))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A URL where nothing listens.
fn closed_url() -> String {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{address}/down")
}

/// The `rollout --json` stream of a canary answering 503 to 20 % of requests: only events on
/// standard output, in order (started, step, verdicts with their holds, the failing verdict,
/// rolled_back), the audit log the same lines, the failing check's numbers those of the
/// intervals' counts; a notification hook receives the same events while one that is down and
/// one that never answers delay nothing.
#[test]
fn the_json_event_stream_of_a_rolled_back_canary() {
    let mesh = preamble::mesh(&rollout_config("app-v2-errors"));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let recorder = HookServer::answering(204, "");
    let slow = HookServer::start(Box::new(|_| (200, "", Duration::from_secs(30))));
    let down = closed_url();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let started = Instant::now();
    let output = run(&mut rollout_command(
        &mesh,
        audit.path(),
        &[
            "--json",
            "--steps",
            "10,25,50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
            "--notify",
            &recorder.url("/events"),
            "--notify",
            &down,
            "--notify",
            &slow.url("/slow"),
            "--notify-timeout",
            "1s",
        ],
    ));
    let wall = started.elapsed();
    load.stop();
    assert_eq!(output.status.code(), Some(3), "rolled back");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events = json_lines(&stdout);
    let tags = tags(&events);
    assert_eq!(
        tags.first().map(String::as_str),
        Some("started"),
        "{tags:?}"
    );
    assert_eq!(tags[1], "step");
    assert_eq!(
        (events[1]["step"].as_u64(), events[1]["weight"].as_f64()),
        (Some(1), Some(10.0))
    );
    assert_eq!(
        tags.last().map(String::as_str),
        Some("rolled_back"),
        "{tags:?}"
    );
    let failed = &events[events.len() - 2];
    assert_eq!(
        (failed["event"].as_str(), failed["outcome"].as_str()),
        (Some("verdict"), Some("fail"))
    );
    assert!(events.iter().all(|e| e["rollout_of"] == "canary"));
    // Every hold follows its verdict, and every verdict that held is followed by its hold.
    for (i, event) in events.iter().enumerate() {
        if event["event"] == "hold" {
            assert_eq!(events[i - 1]["outcome"], "hold", "{tags:?}");
        }
        if event["outcome"] == "hold" {
            assert_eq!(events[i + 1]["event"], "hold", "{tags:?}");
        }
    }
    // Steps come in order, each before its verdicts.
    let mut step = 0;
    for event in &events {
        match event["event"].as_str().unwrap() {
            "step" => {
                step += 1;
                assert_eq!(event["step"].as_u64(), Some(step));
            }
            "verdict" | "hold" => assert_eq!(event["step"].as_u64(), Some(step)),
            _ => {}
        }
    }
    // The failing errors check: over the rollout so far, the canary's 5xx rate is that of the
    // intervals' counts the verdicts report, and its evidence crossed the threshold.
    let verdicts: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "verdict").collect();
    let sum = |side: &str, field: &str| -> u64 {
        verdicts
            .iter()
            .map(|v| v[side][field].as_u64().unwrap())
            .sum()
    };
    let errors = audit::check(failed, "errors").unwrap();
    let canary_rate =
        100.0 * sum("canary", "errors_5xx") as f64 / sum("canary", "responses") as f64;
    let stable_rate =
        100.0 * sum("stable", "errors_5xx") as f64 / sum("stable", "responses") as f64;
    assert!(
        (errors["canary"].as_f64().unwrap() - canary_rate).abs() < 1e-9,
        "{errors} vs {canary_rate}"
    );
    assert!(
        (errors["stable"].as_f64().unwrap() - stable_rate).abs() < 1e-9,
        "{errors} vs {stable_rate}"
    );
    assert_eq!(errors["passed"], false);
    assert!(
        errors["e_value"].as_f64().unwrap() >= errors["threshold"].as_f64().unwrap(),
        "{errors}"
    );
    // Each interval's rate is its own counts'.
    for verdict in &verdicts {
        let canary = &verdict["canary"];
        let (responses, errors) = (
            canary["responses"].as_u64().unwrap(),
            canary["errors_5xx"].as_u64().unwrap(),
        );
        if responses > 0 {
            let rate = 100.0 * errors as f64 / responses as f64;
            assert!(
                (canary["error_rate"].as_f64().unwrap() - rate).abs() < 1e-9,
                "{verdict}"
            );
        }
    }
    let rolled_back = events.last().unwrap();
    assert!(
        rolled_back["reason"]
            .as_str()
            .unwrap()
            .contains("errors: canary 5xx"),
        "{rolled_back}"
    );
    // The audit log holds the same events.
    assert_eq!(audit::events(audit.path()).unwrap(), events);
    // The notification hook got every event, in order; the others cost at most their timeout.
    assert_eq!(recorder.received(), events);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("notification hook {down}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("notification hook {}: timeout", slow.url("/slow"))),
        "{stderr}"
    );
    let first = events[0]["time"].as_f64().unwrap();
    let last = rolled_back["time"].as_f64().unwrap();
    let overhead = wall.as_secs_f64() - (last - first);
    assert!(overhead < 3.0, "the hooks held the rollout {overhead:.1} s");
    // The people's lines went to standard error, not into the stream.
    assert!(
        stderr.contains("ROLLED BACK: `canary` is at 0%"),
        "{stderr}"
    );
    assert!(
        stderr.contains("step 1/4 at 10%: canary"),
        "no progress line: {stderr}"
    );
}

/// Gate hooks: a step gate that refuses once holds an interval, then approves; the promotion
/// gate approves; each receives the context. A promotion gate that keeps refusing stops the
/// rollout after --gate-max-refusals, the weight left where it was; a step gate that never
/// answers rolls the canary back after --gate-timeout. Slack-format notifications say so.
#[test]
fn gates_hold_approve_refuse_and_time_out() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let plan = [
        "--steps",
        "10,100",
        "--interval",
        "1500ms",
        "--min-requests",
        "30",
        "--min-intervals",
        "2",
    ];

    // Refuses the first ask, then approves.
    let step_gate = HookServer::start(Box::new(|n| {
        if n == 0 {
            (503, "not yet", Duration::ZERO)
        } else {
            (200, "ok", Duration::ZERO)
        }
    }));
    let promote_gate = HookServer::answering(200, "ok");
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut command = rollout_command(&mesh, audit.path(), &plan);
    command.args([
        "--gate-step",
        &step_gate.url("/step"),
        "--gate-promote",
        &promote_gate.url("/promote"),
    ]);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(0), "promoted");
    assert_eq!(mesh.weight_of("canary").unwrap(), 100.0);
    let asked: Vec<(u64, f64, f64, u64)> = step_gate
        .received()
        .iter()
        .map(|c| {
            assert_eq!(
                (
                    c["gate"].as_str(),
                    c["canary"].as_str(),
                    c["stable"].as_str()
                ),
                (Some("step"), Some("canary"), Some("stable"))
            );
            (
                c["step"].as_u64().unwrap(),
                c["weight"].as_f64().unwrap(),
                c["current_weight"].as_f64().unwrap(),
                c["refusals"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        [(1, 10.0, 0.0, 0), (1, 10.0, 0.0, 1), (2, 100.0, 10.0, 0)]
    );
    let promote = promote_gate.received();
    assert_eq!(promote.len(), 1);
    assert_eq!(
        (promote[0]["gate"].as_str(), promote[0]["weight"].as_f64()),
        (Some("promote"), Some(100.0))
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(
        "gate: --gate-step refused (1 of 3, --gate-max-refusals): answered 503: not yet; `canary` held at 0%, asking again in 1s 500ms"
    ), "{stdout}");
    let events = audit::events(audit.path()).unwrap();
    let gate_tags: Vec<String> = tags(&events)
        .into_iter()
        .filter(|t| t.starts_with("gate") || t == "step" || t == "promoted")
        .collect();
    assert_eq!(
        gate_tags,
        [
            "gate_waiting",
            "gate_refused",
            "gate_waiting",
            "gate_approved",
            "step",
            "gate_waiting",
            "gate_approved",
            "gate_waiting",
            "gate_approved",
            "step",
            "promoted"
        ]
    );

    // A promotion gate that keeps refusing: stopped at the last judged weight.
    set_canary_to_zero(&mesh);
    let freeze = HookServer::answering(409, "change freeze");
    let slack = HookServer::answering(200, "ok");
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut command = rollout_command(&mesh, audit.path(), &plan);
    command.args([
        "--gate-promote",
        &freeze.url("/promote"),
        "--gate-max-refusals",
        "2",
        "--on-gate-failure",
        "stop",
        "--notify",
        &slack.url("/slack"),
        "--notify-format",
        "slack",
    ]);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(1), "stopped");
    assert_eq!(mesh.weight_of("canary").unwrap(), 10.0, "the weight stays");
    let refusals: Vec<u64> = freeze
        .received()
        .iter()
        .map(|c| c["refusals"].as_u64().unwrap())
        .collect();
    assert_eq!(refusals, [0, 1]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in [
        "gate: --gate-promote refused (1 of 2, --gate-max-refusals): answered 409: change freeze; `canary` held at 10%",
        &format!("gate: --gate-promote {} refused 2 time(s) in a row (--gate-max-refusals), last: answered 409: change freeze; stopping with `canary` at 10% (--on-gate-failure stop)", freeze.url("/promote")),
        "STOPPED at 10%: gate failed before 100%",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    let texts: Vec<String> = slack
        .received()
        .iter()
        .map(|body| {
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
            body["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        texts
            .first()
            .unwrap()
            .starts_with("rollout of `canary` against `stable`"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("--gate-promote") && t.contains("refused (2 of 2")),
        "{texts:?}"
    );
    assert!(
        texts
            .last()
            .unwrap()
            .starts_with("STOPPED at 10%: gate failed"),
        "{texts:?}"
    );

    // A step gate that never answers: rolled back after --gate-timeout, before any step.
    let silent = HookServer::start(Box::new(|_| (200, "", Duration::from_secs(60))));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut command = rollout_command(&mesh, audit.path(), &plan);
    command.args(["--gate-step", &silent.url("/step"), "--gate-timeout", "1s"]);
    let started = Instant::now();
    let output = run(&mut command);
    load.stop();
    assert_eq!(output.status.code(), Some(3), "rolled back");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    assert_eq!(silent.received().len(), 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!(
        "gate: --gate-step {} no answer within 1s (--gate-timeout); rolling back (--on-gate-failure rollback)",
        silent.url("/step")
    )), "{stdout}");
    let events = audit::events(audit.path()).unwrap();
    assert_eq!(
        tags(&events),
        ["started", "gate_waiting", "gate_failed", "rolled_back"]
    );
}

/// `canaryctl set --weight canary=0` on the mesh, which succeeds.
fn set_canary_to_zero(mesh: &Mesh) {
    let set = Command::new(CANARYCTL)
        .args([
            "set",
            "--weight",
            "canary=0",
            "--ecds",
            &mesh.ecds_file().display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(set.status.success());
}

fn pause_command(mesh: &Mesh, action: &str) -> Output {
    run(Command::new(CANARYCTL).args([
        "rollout",
        action,
        "--ecds",
        &mesh.ecds_file().display().to_string(),
    ]))
}

/// The manual gate with two processes: a rollout paused at --pause-at 10 waits (its state in
/// .canaryctl/ next to the ECDS file) until a second canaryctl says `rollout resume`, then goes
/// on to promotion; paused again, `rollout abort` rolls it back. With nothing paused, resume
/// and abort say so and exit 1. A resume given after the paused process died is kept for the
/// next rollout that reaches the weight.
#[test]
fn a_paused_rollout_waits_for_resume_or_abort_from_another_process() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let state_dir = mesh.ecds_file().parent().unwrap().join(".canaryctl");
    let state = state_dir.join("rollout-pause.canary.json");
    for action in ["resume", "abort"] {
        let output = pause_command(&mesh, action);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{action} with nothing paused"
        );
        assert!(String::from_utf8_lossy(&output.stderr).contains(&format!(
            "nothing is paused: no rollout waits in {}",
            state_dir.display()
        )));
    }
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let plan = [
        "--json",
        "--steps",
        "10,50,100",
        "--pause-at",
        "10",
        "--interval",
        "1500ms",
        "--min-requests",
        "30",
        "--min-intervals",
        "2",
    ];
    for (action, code, weight, end) in [
        ("resume", 0, 100.0, "promoted"),
        ("abort", 3, 0.0, "rolled_back"),
    ] {
        let audit = tempfile::NamedTempFile::new().unwrap();
        let mut first = Running::spawn(&mut rollout_command(&mesh, audit.path(), &plan));
        let seen = first.until(Duration::from_secs(60), |line| {
            line.contains("\"event\":\"paused\"")
        });
        let paused: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
        assert_eq!(
            (paused["step"].as_u64(), paused["weight"].as_f64()),
            (Some(1), Some(10.0))
        );
        assert_eq!(
            paused["state_file"].as_str(),
            Some(state.display().to_string().as_str())
        );
        let pass = serde_json::from_str::<serde_json::Value>(&seen[seen.len() - 2]).unwrap();
        assert_eq!(pass["outcome"], "pass", "paused after the step passed");
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        assert_eq!(
            (
                saved["canary"].as_str(),
                saved["weight"].as_f64(),
                saved["request"].is_null()
            ),
            (Some("canary"), Some(10.0), true)
        );
        assert_eq!(mesh.weight_of("canary").unwrap(), 10.0);

        let second = pause_command(&mesh, action);
        assert_eq!(second.status.code(), Some(0), "{action}");
        let said = String::from_utf8_lossy(&second.stdout);
        let pid = first.pid();
        let what = if action == "resume" {
            "goes on to its next step"
        } else {
            "rolls back"
        };
        assert_eq!(
            said.trim(),
            format!("the rollout of `canary` paused at 10% (pid {pid}) {what}")
        );

        let Exit {
            code: exit, rest, ..
        } = first.wait(Duration::from_secs(60));
        assert_eq!(exit, Some(code), "{action}: {rest:?}");
        assert_eq!(mesh.weight_of("canary").unwrap(), weight, "{action}");
        let events = json_lines(&rest.join("\n"));
        let tags = tags(&events);
        assert_eq!(tags.last().map(String::as_str), Some(end), "{tags:?}");
        if action == "resume" {
            assert_eq!(
                tags.first().map(String::as_str),
                Some("resumed"),
                "{tags:?}"
            );
            assert!(tags.contains(&"step".to_string()));
        } else {
            assert_eq!(tags, ["rolled_back"]);
            assert_eq!(
                events[0]["reason"],
                "aborted at 10% by `canaryctl rollout abort`"
            );
        }
        assert!(!state.exists(), "the pause state is removed once answered");
        if action == "resume" {
            set_canary_to_zero(&mesh);
        }
    }

    // The state outlives the process: a rollout killed while paused, resumed afterwards; the
    // next rollout of the canary that reaches 10 % finds the resume and goes on at once.
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut killed = Running::spawn(&mut rollout_command(&mesh, audit.path(), &plan));
    killed.until(Duration::from_secs(60), |line| {
        line.contains("\"event\":\"paused\"")
    });
    let pid = killed.pid();
    drop(killed);
    assert!(state.exists(), "a killed rollout leaves its pause state");
    let output = pause_command(&mesh, "resume");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!(
            "the rollout of `canary` paused at 10% (pid {pid}) is not running; the next rollout \
             of `canary` that reaches 10% goes on to its next step ({})",
            state.display()
        )
    );
    let audit = tempfile::NamedTempFile::new().unwrap();
    let output = run(&mut rollout_command(&mesh, audit.path(), &plan));
    assert_eq!(output.status.code(), Some(0), "promoted without waiting");
    let tags = tags(&json_lines(&String::from_utf8_lossy(&output.stdout)));
    let paused = tags.iter().position(|t| t == "paused").unwrap();
    assert_eq!(tags[paused + 1], "resumed", "{tags:?}");
    assert_eq!(tags.last().map(String::as_str), Some("promoted"));
    assert!(!state.exists());
    load.stop();
}

/// `status --watch --json --rule testers --count 3`: one line of totals, then three windows
/// about a second long; the testers' 40 requests sent after the first line are all counted
/// there, on the canary alone (their pin), the untagged ones not at all; the req/s are the
/// window's requests over its length. The text form names the time, the rule and the window.
#[test]
fn status_watch_shows_rates_of_one_rule() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let admin = mesh.front().admin().to_string();
    let mut watch = Running::spawn(&mut {
        let mut command = Command::new(CANARYCTL);
        command.args([
            "status", "--admin", &admin, "--watch", "1", "--count", "3", "--json", "--rule",
            "testers",
        ]);
        command
    });
    let totals = watch.until(Duration::from_secs(10), |_| true);
    let totals: serde_json::Value = serde_json::from_str(&totals[0]).unwrap();
    assert_eq!(totals["rule"], "testers");
    assert!(totals["time"].as_str().unwrap().ends_with('Z'));
    for i in 0..40 {
        let key = format!("tester-{i}");
        assert_eq!(
            mesh.get(&[("x-user-id", &key), ("x-canary", "always")])
                .unwrap()
                .status,
            200
        );
    }
    for i in 0..30 {
        let key = format!("user-{i}");
        assert_eq!(mesh.get(&[("x-user-id", &key)]).unwrap().status, 200);
    }
    let Exit {
        code: exit,
        rest: lines,
        ..
    } = watch.wait(Duration::from_secs(20));
    assert_eq!(exit, Some(0));
    let windows = json_lines(&lines.join("\n"));
    assert_eq!(windows.len(), 3, "{lines:?}");
    let mut counted = 0;
    for window in &windows {
        assert_eq!(window["rule"], "testers");
        let seconds = window["window_seconds"].as_f64().unwrap();
        assert!((0.95..3.0).contains(&seconds), "{window}");
        for rate in window["rates"].as_array().unwrap() {
            assert_eq!(
                rate["version"], "canary",
                "only the canary serves testers: {window}"
            );
            let requests = rate["requests"].as_u64().unwrap();
            let per_second = rate["requests_per_second"].as_f64().unwrap();
            assert!(
                (per_second * seconds - requests as f64).abs() < 1e-6,
                "{rate}"
            );
            if requests > 0 {
                assert_eq!(rate["error_rate"].as_f64(), Some(0.0), "{rate}");
            }
            counted += requests;
        }
    }
    assert_eq!(counted, 40, "{windows:?}");

    let output = Command::new(CANARYCTL)
        .args([
            "status", "--admin", &admin, "--watch", "0.5", "--count", "1", "--rule", "weights",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    println!("{text}");
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<&str> = text.lines().collect();
    let time =
        |line: &str| humantime::parse_rfc3339(line.split_whitespace().next().unwrap()).is_ok();
    assert!(
        time(lines[0])
            && lines[0].ends_with(&format!(
                "http://{admin}  rule weights  totals since each Envoy started"
            )),
        "{text}"
    );
    let rates_header = lines
        .iter()
        .position(|l| l.contains("over the last"))
        .unwrap();
    assert!(
        time(lines[rates_header]) && lines[rates_header].contains("rule weights  over the last 0."),
        "{text}"
    );
    assert!(
        lines[rates_header + 1].starts_with("version") && lines[rates_header + 1].contains("req/s"),
        "{text}"
    );
    // The 30 untagged users went to the top-level split, at canary weight 0: all to stable
    // (the canary's series exists, with no request).
    let requests = |line: &str| -> (String, u64) {
        let mut words = line.split_whitespace();
        let version = words.next().unwrap().to_string();
        (version, words.next().unwrap().parse().unwrap_or(u64::MAX))
    };
    assert_eq!(
        [requests(lines[2]), requests(lines[3])],
        [("canary".to_string(), 0), ("stable".to_string(), 30)],
        "{text}"
    );
    let rows: Vec<&str> = lines[rates_header + 2..].to_vec();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].starts_with("canary ") && rows[1].starts_with("stable "),
        "{text}"
    );
}

/// Issue 23, defect 3: a colleague's `canaryctl rollback` during a rollout was undone by the
/// rollout's next step (10 → 0 → 50), and the rollout ended PROMOTED, exit 0. Two fronts on
/// one ECDS file, both confirming every write. The rollback now says that the running rollout
/// will stop; the rollout, at the end of the interval (or before its next push, whichever
/// comes first), finds the configuration it last wrote changed, names the rollback's command
/// line, records `overridden`, writes nothing and exits 1 with the canary left at 0 %.
#[test]
fn a_colleagues_rollback_during_a_rollout_stops_it_without_writing_over_it() {
    let mut mesh = preamble::mesh(&rollout_config("app-v2"));
    let second = mesh.start_another_front().unwrap();
    let admins = format!("{},{}", mesh.front().admin(), second);
    let ecds = mesh.ecds_file().display().to_string();
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(CANARYCTL);
    command.args(["rollout", "--ecds", &ecds, "--admin", &admins, "--audit"]);
    command.arg(audit.path()).args([
        "--steps",
        "10,50,100",
        "--interval",
        "1500ms",
        "--min-requests",
        "30",
        "--min-intervals",
        "2",
        "--max-holds",
        "3",
    ]);
    let mut rollout = Running::spawn(&mut command);
    rollout.until(Duration::from_secs(60), |line| line.contains("first step"));
    // The first step is written once the audit log has its `step` event.
    mesh.wait_for(Duration::from_secs(30), || {
        Ok(std::fs::read_to_string(audit.path())
            .unwrap_or_default()
            .contains("\"event\":\"step\""))
    })
    .unwrap();
    assert_eq!(mesh.weight_of("canary").unwrap(), 10.0);

    let rollback =
        run(Command::new(CANARYCTL).args(["rollback", "--ecds", &ecds, "--admin", &admins]));
    let said = String::from_utf8_lossy(&rollback.stdout).to_string();
    assert_eq!(rollback.status.code(), Some(0), "{said}");
    let pid = rollout.pid();
    assert!(
        said.contains(&format!(
            "a rollout of `canary` is running on {ecds} (pid {pid} (canaryctl rollout --ecds"
        )) && said.contains(
            "it will stop at its next check (the end of its interval, or before its next step), seeing this change (weights.canary: 10.0 → 0.0)"
        ),
        "{said}"
    );

    let Exit {
        code: exit, rest, ..
    } = rollout.wait(Duration::from_secs(60));
    load.stop();
    let stopped = rest.join("\n");
    assert_eq!(exit, Some(1), "stopped, not promoted:\n{stopped}");
    assert_eq!(
        mesh.weight_of("canary").unwrap(),
        0.0,
        "the rollback stands"
    );
    assert!(
        stopped.contains(&format!(": {ecds} was changed by pid "))
            && stopped.contains("(canaryctl rollback --ecds")
            && stopped.contains("nothing written, `canary` left at 0%"),
        "{stopped}"
    );
    let events = audit::events(audit.path()).unwrap();
    let overridden = events
        .iter()
        .find(|e| e["event"] == "overridden")
        .unwrap_or_else(|| panic!("no overridden event: {events:?}"));
    // Seen after step 1's interval, or before step 2's push if the step passed first.
    assert!(
        [(Some(1), Some(10.0)), (Some(2), Some(50.0))]
            .contains(&(overridden["step"].as_u64(), overridden["weight"].as_f64())),
        "{overridden}"
    );
    assert_eq!(
        (
            overridden["expected_weight"].as_f64(),
            overridden["found_weight"].as_f64()
        ),
        (Some(10.0), Some(0.0))
    );
    assert!(
        overridden["by"]
            .as_str()
            .unwrap()
            .contains("canaryctl rollback --ecds"),
        "{overridden}"
    );
    assert_eq!(events.last().unwrap()["event"], "stopped");
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "step" && e["weight"] == 50.0),
        "nothing pushed after the rollback"
    );
    // Both fronts route by the rollback: every user on stable.
    for n in 0..50 {
        let user = format!("user-{n}");
        let reply = mesh.get(&[("x-user-id", user.as_str())]).unwrap();
        assert_eq!(reply.upstream(), Some("app-v1"), "{user}");
    }
}

/// The configuration of two rollouts at once: `canary` (app-v2) and `canary3` (app-v3), both
/// at 0 % against `stable`.
fn two_canaries_config() -> String {
    r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"},
        {"name": "canary3", "cluster": "app-v3"}],
        "default": "stable", "weights": {"canary": 0, "canary3": 0},
        "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0}}"#
        .to_string()
}

/// Issue 23, defect 6: two rollouts paused at 10 % (`--canary canary` and `--canary canary3`)
/// shared one pause file; `rollout resume` resumed canary3 and then `resume`/`abort` said
/// "nothing is paused" while the first waited forever. Now each pauses on its own; a second
/// rollout of the same canary is refused naming the first; `resume` without `--canary` with
/// both waiting is refused naming both; `resume --canary canary3` goes on with canary3 alone
/// (to its promotion at 50 %, the first rollout's weight untouched), and then `abort` answers
/// the one left waiting, naming it.
#[test]
fn two_paused_rollouts_each_wait_for_their_own_answer() {
    let mesh = preamble::mesh(&two_canaries_config());
    let ecds = mesh.ecds_file().display().to_string();
    let state_dir = mesh.ecds_file().parent().unwrap().join(".canaryctl");
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let plan = |canary: &'static str| {
        [
            "--json",
            "--canary",
            canary,
            "--steps",
            "10,50",
            "--pause-at",
            "10",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
            "--min-intervals",
            "2",
        ]
    };
    let audit_first = tempfile::NamedTempFile::new().unwrap();
    let audit_third = tempfile::NamedTempFile::new().unwrap();
    let mut first = Running::spawn(&mut rollout_command(
        &mesh,
        audit_first.path(),
        &plan("canary"),
    ));
    first.until(Duration::from_secs(60), |line| {
        line.contains("\"event\":\"paused\"")
    });
    let mut third = Running::spawn(&mut rollout_command(
        &mesh,
        audit_third.path(),
        &plan("canary3"),
    ));
    third.until(Duration::from_secs(60), |line| {
        line.contains("\"event\":\"paused\"")
    });
    let first_pid = first.pid();
    let third_pid = third.pid();

    // Bounded: a second rollout that is not refused would pause at 10 % and wait.
    let audit_again = tempfile::NamedTempFile::new().unwrap();
    let mut again = rollout_command(&mesh, audit_again.path(), &plan("canary"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = again.kill();
            let _ = again.wait();
            panic!("a second rollout of `canary` was not refused: still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = again.wait_with_output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    let refused = String::from_utf8_lossy(&again.stderr);
    assert!(
        refused.contains(&format!(
            "a rollout of `canary` is already running on {ecds}: pid {first_pid} (canaryctl rollout"
        )),
        "{refused}"
    );

    let both = pause_command(&mesh, "resume");
    assert_eq!(both.status.code(), Some(1), "resume with two waiting");
    assert!(
        String::from_utf8_lossy(&both.stderr).contains(&format!(
            "2 rollouts are paused: `canary` at 10% (pid {first_pid}), `canary3` at 10% (pid \
             {third_pid}); name the one to answer with --canary"
        )),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );

    let resumed =
        run(Command::new(CANARYCTL)
            .args(["rollout", "resume", "--ecds", &ecds, "--canary", "canary3"]));
    assert_eq!(resumed.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&resumed.stdout).trim(),
        format!(
            "the rollout of `canary3` paused at 10% (pid {third_pid}) goes on to its next step"
        )
    );
    let Exit {
        code: exit, rest, ..
    } = third.wait(Duration::from_secs(60));
    assert_eq!(exit, Some(0), "canary3 promoted at 50 %: {rest:?}");
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    assert_eq!(
        (
            config["weights"]["canary"].as_f64(),
            config["weights"]["canary3"].as_f64()
        ),
        (Some(10.0), Some(50.0))
    );

    // The first still waits, in its own state file; `abort` answers it, the only one left.
    let state = state_dir.join("rollout-pause.canary.json");
    assert!(state.exists(), "the first rollout's pause state is its own");
    let aborted = pause_command(&mesh, "abort");
    assert_eq!(aborted.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&aborted.stdout).trim(),
        format!("the rollout of `canary` paused at 10% (pid {first_pid}) rolls back")
    );
    let Exit {
        code: exit, rest, ..
    } = first.wait(Duration::from_secs(60));
    assert_eq!(exit, Some(3), "rolled back: {rest:?}");
    load.stop();
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    assert_eq!(
        (
            config["weights"]["canary"].as_f64(),
            config["weights"]["canary3"].as_f64()
        ),
        (Some(0.0), Some(50.0)),
        "the abort took `canary` out and left canary3's promotion"
    );
}

/// Issue 23, defect 3, as reported: the colleague's rollback lands after step 1 passed and
/// before step 2's push (here the step gate before step 2 runs `canaryctl rollback`, then
/// approves). Before, step 2 wrote 50 % over the rollback and the rollout ended PROMOTED, exit
/// 0. Now the push finds the configuration changed: nothing is written, `overridden` names the
/// rollback, exit 1, the canary stays at 0 %.
#[test]
fn a_rollback_between_two_steps_is_not_written_over() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let ecds = mesh.ecds_file().display().to_string();
    let admin = mesh.front().admin().to_string();
    let rollback_said = Arc::new(Mutex::new(String::new()));
    let gate = {
        let (ecds, admin, said) = (ecds.clone(), admin.clone(), Arc::clone(&rollback_said));
        HookServer::start(Box::new(move |n| {
            if n == 1 {
                let output = Command::new(CANARYCTL)
                    .args(["rollback", "--ecds", &ecds, "--admin", &admin])
                    .output()
                    .unwrap();
                *said.lock().unwrap() = String::from_utf8_lossy(&output.stdout).into_owned();
            }
            (200, "ok", Duration::ZERO)
        }))
    };
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), Some(50));
    let audit = tempfile::NamedTempFile::new().unwrap();
    let output = run(&mut rollout_command(
        &mesh,
        audit.path(),
        &[
            "--steps",
            "10,50,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
            "--min-intervals",
            "2",
            "--gate-step",
            &gate.url("/step"),
        ],
    ));
    load.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stopped, not promoted:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("not pushing 50%: {ecds} was changed by pid "))
            && stdout.contains("(canaryctl rollback --ecds")
            && stdout.contains("nothing written, `canary` left at 0%"),
        "{stdout}"
    );
    assert_eq!(
        mesh.weight_of("canary").unwrap(),
        0.0,
        "the rollback stands"
    );
    assert!(
        rollback_said
            .lock()
            .unwrap()
            .contains("a rollout of `canary` is running on"),
        "{}",
        rollback_said.lock().unwrap()
    );
    let events = audit::events(audit.path()).unwrap();
    let overridden = events.iter().find(|e| e["event"] == "overridden").unwrap();
    assert_eq!(
        (
            overridden["step"].as_u64(),
            overridden["weight"].as_f64(),
            overridden["expected_weight"].as_f64(),
            overridden["found_weight"].as_f64()
        ),
        (Some(2), Some(50.0), Some(10.0), Some(0.0))
    );
}
