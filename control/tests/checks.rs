//! The operator's own checks (`rollout --checks FILE`) against a real Prometheus. Real Envoys
//! route the traffic (the front with the filter, the shipped upstreams: healthy 5xx and
//! latency on both versions); a small HTTP server this test starts stands for the shop's own
//! instrumentation: for every reply the clients get, it counts a checkout of the version that
//! answered (the `x-upstream` header) in `checkout_total{app, version}`, and a failed one in
//! `checkout_failed_total` as often as the test says for that version. Prometheus scrapes it
//! and the front. Three rollouts of the real `canaryctl` binary on one mesh:
//!
//! - the canary's checkouts fail 20 % of the time (stable's 1 %): rolled back, the reason
//!   naming the count check `checkout` and its numbers, though 5xx and latency are healthy;
//! - the same canary with checkouts failing as often as stable's: promoted;
//! - a value check (a gauge over its `max` for `consecutive` intervals): rolled back naming it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use canary_harness::audit::canary_errors;
use canary_harness::canaryctl::run;
use canary_harness::http_agent;
use canary_harness::mesh::Mesh;
use canary_harness::preamble;
use canary_harness::SCOPED_ROLLOUT_PLAN;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

const CONFIG: &str = r#"{"service": "shop",
    "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
    "default": "stable", "weights": {"canary": 0},
    "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0}}"#;

/// The checks: the shop's failed checkouts judged against stable's (1 percentage point
/// allowed), and its cart latency gauge under 0.5 s two intervals in a row.
const CHECKS: &str = r#"
checks:
  - name: checkout
    bad: sum(checkout_failed_total{app="{service}", version="{version}"})
    total: sum(checkout_total{app="{service}", version="{version}"})
    margin: 1
  - name: cart_seconds
    query: max(max_over_time(cart_seconds{app="{service}", version="{version}"}[{interval}]))
    max: 0.5
    consecutive: 2
"#;

/// The shop's business counters, by version, and how often each version's checkouts fail.
#[derive(Default)]
struct Shop {
    /// `(failed, all)` checkouts by version.
    checkouts: Mutex<BTreeMap<String, (u64, u64)>>,
    /// One checkout in this many fails, by version (0: none).
    fail_every: Mutex<BTreeMap<String, u64>>,
    /// The cart latency gauge, by version.
    cart_seconds: Mutex<BTreeMap<String, f64>>,
}

impl Shop {
    fn checkout(&self, version: &str) {
        let every = self
            .fail_every
            .lock()
            .unwrap()
            .get(version)
            .copied()
            .unwrap_or(0);
        let mut checkouts = self.checkouts.lock().unwrap();
        let (failed, all) = checkouts.entry(version.to_string()).or_default();
        *all += 1;
        if every > 0 && (*all).is_multiple_of(every) {
            *failed += 1;
        }
    }

    /// Prometheus's text format.
    fn exposition(&self) -> String {
        let mut text = String::from(
            "# TYPE checkout_total counter\n# TYPE checkout_failed_total counter\n# TYPE cart_seconds gauge\n",
        );
        for (version, (failed, all)) in self.checkouts.lock().unwrap().iter() {
            text.push_str(&format!(
                "checkout_total{{app=\"shop\",version=\"{version}\"}} {all}\n\
                 checkout_failed_total{{app=\"shop\",version=\"{version}\"}} {failed}\n"
            ));
        }
        for (version, seconds) in self.cart_seconds.lock().unwrap().iter() {
            text.push_str(&format!(
                "cart_seconds{{app=\"shop\",version=\"{version}\"}} {seconds}\n"
            ));
        }
        text
    }
}

/// The shop's metrics endpoint (any path), and clients whose replies are its checkouts.
struct Traffic {
    shop: Arc<Shop>,
    metrics: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(front: SocketAddr) -> Traffic {
        let shop = Arc::new(Shop::default());
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let metrics = server.server_addr().to_ip().unwrap();
        let serving = {
            let (shop, stop) = (Arc::clone(&shop), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) {
                        let _ =
                            request.respond(tiny_http::Response::from_string(shop.exposition()));
                    }
                }
            })
        };
        let clients = (0..2).map(|worker| {
            let (shop, stop, sent) = (Arc::clone(&shop), Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || {
                let agent = http_agent(Duration::from_secs(10));
                let url = format!("http://{front}/");
                let deadline = Instant::now() + Duration::from_secs(180);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    n += 1;
                    let reply = agent
                        .get(&url)
                        .header("x-user-id", format!("user-{worker}-{}", n % 5_000))
                        .call();
                    if let Ok(reply) = reply {
                        let version = match reply.headers().get("x-upstream") {
                            Some(v) if v == "app-v1" => Some("stable"),
                            Some(v) if v == "app-v2" => Some("canary"),
                            _ => None,
                        };
                        if let Some(version) = version.filter(|_| reply.status().is_success()) {
                            shop.checkout(version);
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        let mut threads = vec![serving];
        threads.extend(clients);
        Traffic {
            shop,
            metrics,
            stop,
            sent,
            threads,
        }
    }

    fn fail_every(&self, version: &str, every: u64) {
        self.shop
            .fail_every
            .lock()
            .unwrap()
            .insert(version.to_string(), every);
    }

    fn cart_seconds(&self, version: &str, seconds: f64) {
        self.shop
            .cart_seconds
            .lock()
            .unwrap()
            .insert(version.to_string(), seconds);
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A rollout of the mesh's canary through Prometheus with the checks file.
fn rollout(mesh: &Mesh, prometheus: &str, checks: &Path, audit: &Path) -> (Output, String) {
    let mut args: Vec<String> = [
        "rollout",
        "--ecds",
        &mesh.ecds_file().display().to_string(),
        "--admin",
        &mesh.front().admin().to_string(),
        "--prometheus",
        prometheus,
        "--checks",
        &checks.display().to_string(),
        "--audit",
        &audit.display().to_string(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(SCOPED_ROLLOUT_PLAN.iter().map(|arg| arg.to_string()));
    let output = Command::new(CANARYCTL).args(&args).output().unwrap();
    let shown = format!(
        "$ canaryctl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{shown}");
    (output, shown)
}

/// The `custom_checks` of every verdict event in the audit log.
fn custom_checks(audit: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["event"] == "verdict")
        .map(|event| event["custom_checks"].clone())
        .collect()
}

fn canary_to_zero(mesh: &Mesh) {
    let set = run(Command::new(CANARYCTL).args([
        "set",
        "--ecds",
        &mesh.ecds_file().display().to_string(),
        "--weight",
        "canary=0",
        "--admin",
        &mesh.front().admin().to_string(),
    ]));
    assert_eq!(set.status.code(), Some(0));
}

#[test]
fn a_rollout_is_decided_by_the_shops_own_checks() {
    let mesh = preamble::mesh(CONFIG);
    let traffic = Traffic::start(mesh.listen());
    traffic.fail_every("stable", 100);
    traffic.cart_seconds("stable", 0.2);
    traffic.cart_seconds("canary", 0.2);
    let prometheus = preamble::prometheus(&[mesh.front().admin(), traffic.metrics]);
    prometheus
        .wait_for_config_hash(
            "shop",
            &mesh.filter_configuration().unwrap(),
            1,
            Duration::from_secs(30),
        )
        .unwrap_or_else(|err| panic!("{err}"));
    // The shop's counters are scraped too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus
        .query(r#"checkout_total{app="shop", version="stable"}"#)
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus has no checkout_total"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let checks = dir.path().join("checks.yaml");
    std::fs::write(&checks, CHECKS).unwrap();

    // 0. Checks that cannot be asked stop the rollout before its first push.
    let before = std::fs::read(mesh.ecds_file()).unwrap();
    let refused = |extra: &[&str], expected: &str| {
        let ecds = mesh.ecds_file().display().to_string();
        let admin = mesh.front().admin().to_string();
        let mut args = vec!["rollout", "--ecds", &ecds, "--admin", &admin];
        args.extend_from_slice(extra);
        let output = run(Command::new(CANARYCTL).args(&args));
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "no {expected:?} in {stderr}");
        assert_eq!(std::fs::read(mesh.ecds_file()).unwrap(), before, "{stderr}");
    };
    refused(
        &["--check", "p={query: x, max: 1}"],
        "--checks and --check are PromQL queries: give --prometheus",
    );
    let url = prometheus.url();
    refused(
        &[
            "--prometheus",
            &url,
            "--check",
            "broken={query: 'sum(rate(x[{interval}])', max: 1}",
        ],
        "check `broken`: Prometheus refused \"sum(rate(x[60s])\"",
    );
    refused(
        &[
            "--prometheus",
            &url,
            "--check",
            r#"two={query: '{__name__=~"checkout_.*", version="{version}"}', max: 1}"#,
        ],
        "returns 2 series for `stable`, one wanted: wrap it in sum(...)",
    );
    refused(
        &[
            "--prometheus",
            &url,
            "--check",
            "typo={query: x, max: 1, consecutve: 2}",
        ],
        "unknown field `consecutve`",
    );

    // 1. One checkout in five fails on the canary, one in a hundred on stable: rolled back by
    // the checkout check, with the built-in checks passing.
    traffic.fail_every("canary", 5);
    let audit = dir.path().join("bad.jsonl");
    let (output, shown) = rollout(&mesh, &prometheus.url(), &checks, &audit);
    assert_eq!(output.status.code(), Some(3), "{shown}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    assert!(
        shown.contains(
            "your checks: `checkout` (bad/total ≤ stable's +1 pp, fails at e ≥ 100); \
             `cart_seconds` (value at most 0.5, fails after 2 interval(s) in a row out of bounds)"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("FAIL   check `checkout`: canary "),
        "{shown}"
    );
    assert!(
        shown.contains("checkout FAIL e=") && shown.contains("errors ok"),
        "the verdict line names the check and the built-in checks pass: {shown}"
    );
    assert!(
        shown.contains("ROLLED BACK: `canary` is at 0% (at 10%: check `checkout`"),
        "{shown}"
    );
    let (errors, answered) = canary_errors(&audit).unwrap();
    assert_eq!(errors, 0, "the canary's 5xx");
    assert!(answered > 0);
    let last = custom_checks(&audit).pop().unwrap();
    let checkout = &last[0];
    assert_eq!(checkout["name"], "checkout");
    assert_eq!(checkout["passed"], false);
    // About 20 % of the canary's checkouts against about 1 % of stable's.
    let (canary, stable) = (
        checkout["canary"].as_f64().unwrap(),
        checkout["stable"].as_f64().unwrap(),
    );
    assert!(
        (10.0..=30.0).contains(&canary) && stable <= 3.0,
        "{checkout}"
    );
    assert!(checkout["e_value"].as_f64().unwrap() >= checkout["threshold"].as_f64().unwrap());
    assert_eq!(last[1]["name"], "cart_seconds");
    assert_eq!(last[1]["passed"], true);

    // 2. The canary's checkouts fail as often as stable's: promoted, every check judged.
    traffic.fail_every("canary", 100);
    let audit = dir.path().join("good.jsonl");
    let (output, shown) = rollout(&mesh, &prometheus.url(), &checks, &audit);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("PROMOTED: `canary` is at 100%"), "{shown}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 100.0);
    let judged = custom_checks(&audit);
    assert!(judged.len() >= 4, "{judged:?}");
    let counted: u64 = judged
        .iter()
        .map(|checks| {
            assert_eq!(checks[0]["passed"], true, "{checks}");
            assert_eq!(checks[1]["passed"], true, "{checks}");
            u64::from(checks[0]["ready"] == true)
        })
        .sum();
    assert!(counted >= 2, "the checkout check had its data: {judged:?}");

    // 3. The canary's cart latency gauge over 0.5 s: rolled back by the value check after two
    // intervals in a row.
    canary_to_zero(&mesh);
    traffic.cart_seconds("canary", 0.9);
    let audit = dir.path().join("slow.jsonl");
    let (output, shown) = rollout(&mesh, &prometheus.url(), &checks, &audit);
    assert_eq!(output.status.code(), Some(3), "{shown}");
    assert_eq!(mesh.weight_of("canary").unwrap(), 0.0);
    assert!(
        shown.contains("check `cart_seconds`: canary 0.9000 this interval, allowed at most 0.5: out of bounds 2 interval(s) in a row"),
        "{shown}"
    );
    assert!(traffic.sent.load(Ordering::Relaxed) > 0);
}
