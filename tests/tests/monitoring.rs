//! The shipped dashboard and alert rules (`envoy/monitoring/`) against real data: promtool
//! checks and unit-tests the rules, and every query of the dashboard and of the rules runs in a
//! real Prometheus scraping a front that routes traffic to three versions (a healthy stable, a
//! canary answering 20 % 503, one 50 ms slower), so a renamed metric or label breaks the build.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use canary_harness::envoy::repo_root;
use canary_harness::load::Load;
use canary_harness::mesh::config_hash_of;
use canary_harness::preamble;
use canary_harness::prometheus::Prometheus;
use canary_tools::dashboard::{picture, Dashboard, TimeRange};

const CONFIG: &str = r#"{"service": "checkout", "versions": [{"name": "stable", "cluster": "app-v1"},
    {"name": "canary", "cluster": "app-v2-errors"}, {"name": "slow", "cluster": "app-v2-slow"}],
  "default": "stable", "weights": {"canary": 30, "slow": 30},
  "sticky": {"keys": [{"header": "x-user-id"}]}}"#;

const VERSIONS: [&str; 3] = ["stable", "canary", "slow"];

/// The service of [`CONFIG`], chosen in the dashboard's `service` variable.
const SERVICE: &str = "checkout";

fn monitoring() -> PathBuf {
    repo_root().join("envoy/monitoring")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("promtool runs: `make prometheus` installs Debian's prometheus package");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let checked = promtool(&["check", "rules", "canary-alerts.yaml"]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "canary-alerts.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The dashboard's queries as Prometheus runs them: Grafana's variables given values.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring().join("canary-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap().to_string();
            panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |target| {
                    let expr = target["expr"]
                        .as_str()
                        .unwrap()
                        .replace("$service", SERVICE)
                        .replace("$rule", ".*")
                        .replace("$__rate_interval", "15s");
                    (title.clone(), expr)
                })
        })
        .collect()
}

/// The rules file's expressions: `(name, expr)` for each recording rule and alert.
fn rule_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring().join("canary-alerts.yaml")).unwrap();
    let rules: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    rules["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let name = rule["record"]
                .as_str()
                .or(rule["alert"].as_str())
                .unwrap()
                .to_string();
            (name, rule["expr"].as_str().unwrap().to_string())
        })
        .collect()
}

fn versions_of(series: &[(serde_json::Value, f64)]) -> BTreeSet<String> {
    series
        .iter()
        .filter_map(|(labels, _)| labels["canary_version"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn every_dashboard_and_rule_query_returns_series_for_each_version() {
    let mesh = preamble::mesh(CONFIG);
    let prometheus = Prometheus::start_with_rules(
        mesh.front().admin(),
        Some(&monitoring().join("canary-alerts.yaml")),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let load = Load::start(mesh.listen(), 3, Duration::from_millis(2), None);
    let all: BTreeSet<String> = VERSIONS.iter().map(|v| v.to_string()).collect();

    // Every per-version query of the dashboard, and both recording rules, return a series for
    // each of the three versions once Prometheus has a few scrapes.
    let mut per_version: Vec<(String, String)> = dashboard_queries()
        .into_iter()
        .filter(|(_, expr)| expr.contains("version"))
        .collect();
    per_version.extend(
        rule_queries()
            .into_iter()
            .filter(|(name, _)| name.starts_with("canary:")),
    );
    assert_eq!(per_version.len(), 8, "{per_version:?}");
    for (what, expr) in &per_version {
        mesh.wait_for(Duration::from_secs(60), || {
            Ok(versions_of(&prometheus.query(expr)?) == all)
        })
        .unwrap_or_else(|_| {
            panic!(
                "{what}: {expr}\nreturned {:?}",
                prometheus.query(expr).unwrap()
            )
        });
    }

    // Every series is the service's, and every per-version series says so.
    for (what, expr) in &per_version {
        for (labels, _) in prometheus.query(expr).unwrap() {
            assert_eq!(labels["canary_service"], SERVICE, "{what}: {expr}");
        }
    }

    // The configuration panel shows the hash of the configuration the front runs.
    let want = f64::from(config_hash_of(CONFIG).unwrap());
    let hashes = prometheus
        .query(&format!(
            "canary_config_hash{{canary_service=\"{SERVICE}\"}}"
        ))
        .unwrap();
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    assert_eq!(hashes[0].1, want);

    // The alerts' conditions: the canary's 5xx share (20 %) is more than a point above
    // stable's, the slow version's p99 is well above stable's, and one configuration runs.
    let alerts: Vec<(String, String)> = rule_queries()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("canary:"))
        .collect();
    let expect = |name: &str| -> BTreeSet<String> {
        match name {
            "CanaryErrorRateAboveStable" => BTreeSet::from(["canary".to_string()]),
            "CanaryLatencyAboveStable" => BTreeSet::from(["slow".to_string()]),
            "CanaryProxyOnOldConfiguration" => BTreeSet::new(),
            other => panic!("no expectation for alert {other}"),
        }
    };
    for (name, expr) in &alerts {
        let want = expect(name);
        mesh.wait_for(Duration::from_secs(60), || {
            Ok(versions_of(&prometheus.query(expr)?) == want)
        })
        .unwrap_or_else(|_| panic!("{name}: {expr}\nreturned {:?}", prometheus.query(expr)));
    }
    let fleet = prometheus
        .query("count_values(\"hash\", canary_config_hash)")
        .unwrap();
    assert_eq!(fleet.len(), 1, "{fleet:?}");

    the_renderer_draws_the_dashboard_from_this_prometheus(&prometheus, want);
    load.stop();
}

/// The renderer (`canary-dashboard`) on this Prometheus: every panel drawn with its series (a
/// legend per version, the configuration's hash in the table), and a query that returns
/// nothing refused with the panel's name, or drawn as "No data" when allowed.
fn the_renderer_draws_the_dashboard_from_this_prometheus(prometheus: &Prometheus, hash: f64) {
    let path = monitoring().join("canary-dashboard.json");
    let dashboard = Dashboard::read(&path).unwrap();
    let api = canary_control::metrics::prometheus::Prometheus::new(&prometheus.url());
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let range = TimeRange {
        start: end - 60.0,
        end,
        scrape_interval: 1.0,
    };
    let svg = picture(&dashboard, &api, &[], &range, false).unwrap_or_else(|err| panic!("{err}"));
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    let texts = svg_texts(&doc);
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for panel in raw["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(texts.contains(&title), "no panel {title:?} in {texts:?}");
    }
    for version in VERSIONS {
        let legends = texts
            .iter()
            .filter(|t| t.split([' ', '/']).any(|word| word == version))
            .count();
        // Requests, share, 5xx, p50, p99 and at least one rule: six legends name each version.
        assert!(legends >= 6, "{version}: {legends} legends in {texts:?}");
    }
    let hash = format!("{hash}");
    assert!(texts.contains(&hash.as_str()), "no {hash} in {texts:?}");
    // The series' marks (lines, or dots for a lone point) in the palette's colours, not the
    // axes' grey: each of the three versions in each of the five time-series panels.
    let axes = "#2C3035";
    let marks = doc
        .descendants()
        .filter(|n| {
            (n.has_tag_name("polyline") && n.attribute("stroke") != Some(axes))
                || n.has_tag_name("circle")
        })
        .count();
    assert!(marks >= 3 * 5, "{marks} series drawn");

    // A panel whose query matches no series.
    let mut broken = raw.clone();
    broken["panels"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": 99, "type": "timeseries", "title": "Nothing here",
            "gridPos": {"x": 0, "y": 40, "w": 24, "h": 8},
            "targets": [{"refId": "Z", "expr": "canary_requests_total{no_such_label=\"x\"}"}]
        }));
    let broken = Dashboard::parse(&broken.to_string()).unwrap();
    let err = picture(&broken, &api, &[], &range, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"Nothing here\"")
            && err.contains("query Z")
            && err.contains("no series")
            && err.contains("no_such_label"),
        "{err}"
    );
    let svg = picture(&broken, &api, &[], &range, true).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts = svg_texts(&doc);
    assert!(texts.contains(&"Nothing here"), "{texts:?}");
    assert!(texts.contains(&"No data"), "{texts:?}");
}

/// The texts an SVG draws.
fn svg_texts<'a>(doc: &'a roxmltree::Document) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::trim))
        .collect()
}
