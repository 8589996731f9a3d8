//! A rollout in the operator's world, end to end against real Envoys: a front of a two-front
//! fleet restarting mid-rollout (read through the admin endpoints, or through a real Prometheus
//! scraping both), every termination signal, a gate behind a sign-in page, and a rollback the
//! fleet cannot confirm.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_control::metrics::admin::Admin;
use canary_control::metrics::source::Source;
use canary_harness::audit;
use canary_harness::canaryctl::{run, Exit, Running};
use canary_harness::load::Load;
use canary_harness::mesh::{rollout_config, Mesh};
use canary_harness::preamble;
use canary_harness::prometheus::Prometheus;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

/// An HTTP server on 127.0.0.1 that records each request's path and body and answers with
/// `answer(path, its own address)`; stopped on drop.
struct Recorder {
    address: std::net::SocketAddr,
    received: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Reply = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

impl Recorder {
    fn start(answer: impl Fn(&str, std::net::SocketAddr) -> Reply + Send + 'static) -> Recorder {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let address = server.server_addr().to_ip().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50))
                    else {
                        continue;
                    };
                    let path = request.url().to_string();
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    received.lock().unwrap().push((path.clone(), body));
                    let _ = request.respond(answer(&path, address));
                }
            })
        };
        Recorder {
            address,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn rollout(mesh: &Mesh, admins: &[String], audit: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(CANARYCTL);
    command
        .arg("rollout")
        .args(["--ecds", &mesh.ecds_file().display().to_string()])
        .args(["--admin", &admins.join(",")])
        .args(["--audit", &audit.display().to_string()])
        .args(extra);
    command
}

fn tags(events: &[serde_json::Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["event"].as_str().unwrap())
        .collect()
}

/// Where the rollout of [`a_restarted_front`] reads its metrics.
enum Via {
    Admin,
    Prometheus,
}

/// Two fronts share one ECDS file. The canary ran on app-v2-errors (20 % 503) at 50 % first,
/// so both fronts' counters hold thousands of its 503s; then it moves to the healthy app-v2
/// at 0 % and the rollout starts. During step 1 the second front is SIGKILLed and started
/// again on the same admin port: its counters start from zero. Subtracted per proxy, the
/// healthy canary is promoted and the step line names the front; summed first, the drop of
/// the sum took the whole sum (the first front's old 503s) as the interval and rolled it back.
fn a_restarted_front(via: Via) {
    let config = rollout_config("app-v2-errors").replace(
        r#""weights": {"canary": 0}"#,
        r#""weights": {"canary": 50}"#,
    );
    let mut mesh = preamble::mesh(&config);
    let second_admin = mesh.start_another_front().unwrap();
    let second_listen = {
        let front = mesh.another_front(0).unwrap();
        std::net::SocketAddr::from(([127, 0, 0, 1], front.listener_port("ingress").unwrap()))
    };
    let admins = vec![mesh.front().admin().to_string(), second_admin.to_string()];
    let prometheus = match via {
        Via::Prometheus => Some(preamble::prometheus(&[mesh.front().admin(), second_admin])),
        Via::Admin => None,
    };
    // Thousands of the faulty deployment's responses on the second front.
    let second = Source::Admin {
        admins: vec![Admin::new(&second_admin.to_string())],
        service: String::new(),
    };
    let loads = [
        Load::start(mesh.listen(), 2, Duration::ZERO, None),
        Load::start(second_listen, 4, Duration::ZERO, None),
    ];
    mesh.wait_for(Duration::from_secs(90), || {
        let canary = second.read("weights")?.get("canary").cloned();
        Ok(canary.is_some_and(|c| c.answered() >= 3_000))
    })
    .unwrap();
    for load in loads {
        load.stop();
    }
    let old = second.read("weights").unwrap()["canary"].clone();
    println!(
        "the second front's canary before: {} of {} responses 5xx",
        old.errors(),
        old.answered()
    );
    let set = run(Command::new(CANARYCTL)
        .args(["set", "--cluster", "canary=app-v2", "--weight", "canary=0"])
        .args(["--ecds", &mesh.ecds_file().display().to_string()])
        .args(["--admin", &admins.join(",")]));
    assert!(set.status.success());
    if let Some(prometheus) = &prometheus {
        // Both fronts known to Prometheus with the configuration the rollout starts from.
        prometheus
            .wait_for_config_hash(
                "",
                &mesh.filter_configuration().unwrap(),
                2,
                Duration::from_secs(20),
            )
            .unwrap();
    }

    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut extra = vec![
        "--steps",
        "50,100",
        "--interval",
        "2s",
        "--min-requests",
        "30",
    ];
    let url = prometheus.as_ref().map(Prometheus::url);
    if let Some(url) = &url {
        extra.extend(["--prometheus", url]);
    }
    let load = Load::start(mesh.listen(), 2, Duration::from_millis(5), None);
    let second_load = Load::start(second_listen, 1, Duration::from_millis(5), None);
    let mut rolling = Running::spawn(&mut rollout(&mesh, &admins, audit.path(), &extra));
    // The first interval judged (the baseline read is behind it), then the restart.
    rolling.until(Duration::from_secs(60), |line| line.contains("step 1/2"));
    second_load.stop();
    mesh.restart_another_front(0).unwrap();
    let Exit { code, stdout, .. } = rolling.wait(Duration::from_secs(120));
    load.stop();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("PROMOTED: `canary` is at 100%"), "{stdout}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 100.0);
    // The step line says what happened to the second front: restarted between two reads, or
    // seen gone and back (left, then joined).
    let name = match via {
        Via::Admin => second_admin.to_string(),
        Via::Prometheus => format!("envoy/{second_admin}"),
    };
    let restarted = format!("fleet: {name} restarted");
    let left = format!("fleet: {name} left");
    let joined = format!("fleet: {name} joined");
    assert!(
        stdout.contains(&restarted) || (stdout.contains(&left) && stdout.contains(&joined)),
        "no fleet change for {name}:\n{stdout}"
    );
    for line in stdout.lines().filter(|line| line.contains("fleet: ")) {
        println!("fleet change seen: {line}");
    }
    // The audit log records it in the verdicts, and no interval of the healthy canary had
    // the old 503s.
    let events = audit::events(audit.path()).unwrap();
    let verdicts: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "verdict").collect();
    assert!(
        verdicts
            .iter()
            .any(|v| v["fleet"].as_array().is_some_and(|f| !f.is_empty())),
        "{verdicts:?}"
    );
    assert!(
        verdicts.iter().all(|v| v["canary"]["errors_5xx"] == 0),
        "{verdicts:?}"
    );
}

#[test]
fn a_front_restarting_mid_rollout_is_counted_from_its_restart_admin() {
    a_restarted_front(Via::Admin);
}

#[test]
fn a_front_restarting_mid_rollout_is_counted_from_its_restart_prometheus() {
    a_restarted_front(Via::Prometheus);
}

/// `status --watch` over two fronts, the second restarted between two refreshes: the window
/// counts the first front's growth and what the second counted since its restart, subtracted
/// proxy by proxy as the rollout does. The second front held 600 requests before; summed
/// first, the fleet's total fell (800 to 240), and the whole sum (the first front's lifetime
/// 230) was taken as the window. The status process is stopped (SIGSTOP) while the front
/// restarts, so that no refresh falls while it is down.
#[test]
fn status_watch_counts_a_restarted_front_from_its_restart() {
    let mut mesh = preamble::mesh(&rollout_config("app-v2"));
    let second_admin = mesh.start_another_front().unwrap();
    let second_listen = |mesh: &Mesh| {
        let front = mesh.another_front(0).unwrap();
        std::net::SocketAddr::from(([127, 0, 0, 1], front.listener_port("ingress").unwrap()))
    };
    let agent = canary_harness::http_agent(Duration::from_secs(10));
    let send = |at: std::net::SocketAddr, count: usize| {
        for i in 0..count {
            let reply = agent
                .get(&format!("http://{at}/"))
                .header("x-user-id", &format!("user-{i}"))
                .call()
                .unwrap();
            assert_eq!(reply.status(), 200);
        }
    };
    // Each front's own count of stable's requests, by its exact stat name.
    let stable_requests = format!(
        "wasmcustom.{}",
        canary_filter::metrics::requests_name(None, "stable", "weights")
    );
    let counted = |mesh: &Mesh, admin: std::net::SocketAddr, want: u64| {
        let admin = Admin::new(&admin.to_string());
        mesh.wait_for(Duration::from_secs(10), || {
            Ok(admin.counter(&stable_requests)? == Some(want))
        })
        .unwrap();
    };
    send(mesh.listen(), 200);
    send(second_listen(&mesh), 600);
    counted(&mesh, mesh.front().admin(), 200);
    counted(&mesh, second_admin, 600);

    let admins = format!("{},{second_admin}", mesh.front().admin());
    let mut watch = Running::spawn(
        Command::new(CANARYCTL).args(["status", "--admin", &admins, "--watch", "1", "--json"]),
    );
    let seen = watch.until(Duration::from_secs(10), |line| line.contains("totals"));
    let totals: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    let stable = |rows: &serde_json::Value| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|row| row["version"] == "stable")
            .map(|row| row["requests"].as_u64().unwrap())
    };
    assert_eq!(stable(&totals["totals"]), Some(800), "{totals}");
    // Just after a refresh: stopped before the next one.
    watch.until(Duration::from_secs(10), |line| {
        line.contains("window_seconds")
    });
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(watch.pid() as i32, libc::SIGSTOP) };
    mesh.restart_another_front(0).unwrap();
    send(mesh.listen(), 30);
    send(second_listen(&mesh), 10);
    counted(&mesh, mesh.front().admin(), 230);
    counted(&mesh, second_admin, 10);
    // SAFETY: as above.
    unsafe { libc::kill(watch.pid() as i32, libc::SIGCONT) };
    let window = loop {
        let seen = watch.until(Duration::from_secs(10), |line| {
            line.contains("window_seconds")
        });
        let window: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
        if stable(&window["rates"]).is_some_and(|requests| requests > 0) {
            break window;
        }
    };
    println!("the window with the restart: {window}");
    assert_eq!(stable(&window["rates"]), Some(40), "30 + 10: {window}");
    assert_eq!(
        window["fleet"],
        serde_json::json!([format!("{second_admin} restarted")]),
        "{window}"
    );
}

/// SIGTERM and SIGHUP (a CI job deleted, a terminal closed, `timeout`) take the
/// `--on-interrupt` path as Ctrl-C does: rolled back (exit 3) or held (exit 1), with the
/// `interrupted` event, the end's event and the summary.
#[test]
fn every_termination_signal_takes_the_on_interrupt_path() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let admins = vec![mesh.front().admin().to_string()];
    for (signal, name, mode, code, weight, end) in [
        (libc::SIGTERM, "SIGTERM", "rollback", 3, 0.0, "rolled_back"),
        (libc::SIGHUP, "SIGHUP", "rollback", 3, 0.0, "rolled_back"),
        (libc::SIGTERM, "SIGTERM", "hold", 1, 10.0, "stopped"),
    ] {
        let audit = tempfile::NamedTempFile::new().unwrap();
        let mut rolling = Running::spawn(&mut rollout(
            &mesh,
            &admins,
            audit.path(),
            &[
                "--steps",
                "10,100",
                "--interval",
                "30s",
                "--on-interrupt",
                mode,
            ],
        ));
        rolling.until(Duration::from_secs(20), |line| line.contains("audit log:"));
        mesh.wait_for(Duration::from_secs(10), || {
            Ok(mesh.weight_of("canary").unwrap() == 10.0)
        })
        .unwrap();
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(rolling.pid() as i32, signal) };
        let Exit {
            code: exit, stdout, ..
        } = rolling.wait(Duration::from_secs(30));
        println!("{name} with --on-interrupt {mode}: exit {exit:?}");
        assert_eq!(exit, Some(code), "{name} {mode}: {stdout}");
        assert_eq!(mesh.weight_of("canary").unwrap(), weight, "{name} {mode}");
        let events = audit::events(audit.path()).unwrap();
        let tags = tags(&events);
        assert_eq!(
            tags[tags.len() - 2..],
            ["interrupted", end],
            "{name} {mode}"
        );
        assert_eq!(events[tags.len() - 2]["action"], mode);
        assert!(stdout.contains("summary:"), "{stdout}");
        let summary = stdout.lines().last().unwrap();
        println!("{name} {mode} summary: {summary}");
        assert!(summary.contains("interrupted"), "{summary}");
    }
}

/// A gate behind a sign-in proxy answers 302 to its login page, which answers 200. The gate
/// refuses (a redirect is not followed): the weight stays at 0, the login page is never
/// asked, and with `--on-gate-failure stop` the rollout stops (exit 1) saying why.
#[test]
fn a_gate_that_redirects_refuses() {
    let mesh = preamble::mesh(&rollout_config("app-v2"));
    let server = Recorder::start(|path, address| {
        if path == "/login" {
            tiny_http::Response::from_string("<html><form>Sign in</form></html>")
                .with_status_code(200)
        } else {
            let location = format!("http://{address}/login");
            tiny_http::Response::from_string("")
                .with_status_code(302)
                .with_header(tiny_http::Header::from_bytes("Location", location).unwrap())
        }
    });
    let address = server.address;
    let audit = tempfile::NamedTempFile::new().unwrap();
    let gate = server.url("/gate");
    let output = run(&mut rollout(
        &mesh,
        &[mesh.front().admin().to_string()],
        audit.path(),
        &[
            "--steps",
            "10,100",
            "--interval",
            "1s",
            "--max-holds",
            "1",
            "--min-requests",
            "1000000",
            "--gate-step",
            &gate,
            "--gate-max-refusals",
            "1",
            "--on-gate-failure",
            "stop",
        ],
    ));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0, "{stdout}");
    let asked: Vec<String> = server
        .received()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(asked, ["/gate"], "the login page is not asked");
    let events = audit::events(audit.path()).unwrap();
    assert_eq!(
        tags(&events),
        [
            "started",
            "gate_waiting",
            "gate_refused",
            "gate_failed",
            "stopped"
        ]
    );
    let reason = events[2]["reason"].as_str().unwrap();
    println!("gate refused: {reason}");
    assert!(
        reason.starts_with(&format!(
            "answered 302 (a redirect to http://{address}/login"
        )),
        "{reason}"
    );
}

/// Two fronts; the second is SIGKILLed during step 1 of a canary answering 20 % 503. The
/// judge fails the canary on the first front's counts and the rollback is written and
/// accepted, but the fleet cannot confirm it (1 of 2 Envoys): the rollout still records the
/// rollback (event, summary, notification) as not confirmed, says what was not, and exits 1.
#[test]
fn an_unconfirmed_rollback_is_recorded() {
    let mut mesh = preamble::mesh(&rollout_config("app-v2-errors"));
    let second_admin = mesh.start_another_front().unwrap();
    let admins = vec![mesh.front().admin().to_string(), second_admin.to_string()];
    let audit = tempfile::NamedTempFile::new().unwrap();
    let hook = Recorder::start(|_, _| tiny_http::Response::from_string("ok"));
    let notify = hook.url("/notify");
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let mut rolling = Running::spawn(&mut rollout(
        &mesh,
        &admins,
        audit.path(),
        &[
            "--notify",
            &notify,
            "--steps",
            "25,100",
            "--interval",
            "1500ms",
            "--min-requests",
            "30",
            "--fleet-timeout",
            "1s",
        ],
    ));
    // The step's weight runs on both fronts; then the second goes.
    rolling.until(Duration::from_secs(30), |line| {
        line.contains("25%: 2 of 2 Envoys run it")
    });
    mesh.stop_another_front(0);
    let Exit { code, stdout, .. } = rolling.wait(Duration::from_secs(60));
    load.stop();
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    let summary = stdout.lines().last().unwrap();
    println!("summary: {summary}");
    assert!(
        summary.starts_with("ROLLED BACK, NOT CONFIRMED: `canary` is at 0% (at 25%: errors"),
        "{stdout}"
    );
    assert!(
        summary.contains("1 of 2 Envoys run the new configuration")
            && summary.contains(&second_admin.to_string()),
        "{summary}"
    );
    let events = audit::events(audit.path()).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["event"], "rolled_back", "{events:?}");
    assert_eq!(last["confirmed"], false);
    assert!(
        last["not_confirmed"]
            .as_str()
            .unwrap()
            .contains("accepted it"),
        "{last}"
    );
    // The notification hook got the same event.
    let notified: serde_json::Value =
        serde_json::from_str(&hook.received().last().unwrap().1).unwrap();
    assert_eq!(notified["event"], "rolled_back");
    assert_eq!(notified["summary"], last["summary"]);
}
