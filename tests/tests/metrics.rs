//! Case 7: Per-version metrics in Prometheus form: counts per version and rule, responses per code
//! class, and the duration histogram, after a known traffic mix.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::Duration;

use canary_control::metrics::admin::Admin;
use canary_control::metrics::table::{read_versions, render_table};
use canary_harness::preamble::{contract_cluster, get_ok, mesh};

const CONFIG: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"},
               {"name": "broken", "cluster": "no-such-cluster"}],
  "default": "stable", "weights": {"canary": 25},
  "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0, "when_missing": "default"},
  "rules": [
    {"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
    {"name": "broken-path", "when": {"header": {"name": "x-broken", "present": true}}, "version": "broken"}
  ]
}"#;

/// Prometheus text lines as `(name, labels, value)`.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            Some((name.to_string(), labels, value.parse().ok()?))
        })
        .collect()
}

fn value(
    all: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let found: Vec<f64> = all
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

#[test]
fn prometheus_shows_requests_responses_and_durations_per_version_and_rule() {
    let mesh = mesh(CONFIG);
    let mut split = BTreeMap::from([("app-v1", 0.0), ("app-v2", 0.0)]);
    for i in 0..400 {
        let key = format!("m-{i}");
        get_ok(&mesh, &[("x-user-id", &key)]);
        *split.get_mut(contract_cluster(&key, 0, 25.0)).unwrap() += 1.0;
    }
    for _ in 0..30 {
        get_ok(&mesh, &[("x-canary", "always")]);
    }
    for _ in 0..20 {
        get_ok(&mesh, &[]);
    }
    for _ in 0..7 {
        // The broken version's cluster does not exist: Envoy answers 503 itself.
        let reply = mesh.get(&[("x-broken", "1")]).unwrap();
        assert_eq!(reply.status, 503, "{reply:?}");
    }
    // Histograms reach the admin endpoint at the stats flush (1 s in the shipped bootstrap).
    std::thread::sleep(Duration::from_millis(2_500));
    let text = mesh.prometheus().unwrap();
    let all = samples(&text);
    let requests = "canary_requests_total";
    let responses = "canary_responses_total";
    let table = [
        ("stable", "weights", split["app-v1"]),
        ("canary", "weights", split["app-v2"]),
        ("canary", "testers", 30.0),
        ("stable", "default", 20.0),
        ("broken", "broken-path", 7.0),
    ];
    for (version, rule, count) in table {
        assert_eq!(
            value(
                &all,
                requests,
                &[("canary_version", version), ("canary_rule", rule)]
            ),
            count,
            "{version}/{rule}"
        );
        let class = if version == "broken" { "5xx" } else { "2xx" };
        let labels = [
            ("canary_version", version),
            ("canary_rule", rule),
            ("canary_code_class", class),
        ];
        assert_eq!(
            value(&all, responses, &labels),
            count,
            "{version}/{rule}/{class}"
        );
        let other = if class == "2xx" { "5xx" } else { "2xx" };
        let labels = [
            ("canary_version", version),
            ("canary_rule", rule),
            ("canary_code_class", other),
        ];
        assert_eq!(
            value(&all, responses, &labels),
            0.0,
            "{version}/{rule}/{other}"
        );
        let histogram = "canary_request_duration_ms_count";
        assert_eq!(
            value(
                &all,
                histogram,
                &[("canary_version", version), ("canary_rule", rule)]
            ),
            count,
            "{version}/{rule}"
        );
        let inf = [
            ("canary_version", version),
            ("canary_rule", rule),
            ("le", "+Inf"),
        ];
        assert_eq!(
            value(&all, "canary_request_duration_ms_bucket", &inf),
            count
        );
    }
    assert!(text.contains("# TYPE canary_request_duration_ms histogram"));
    // The raw names carry the version name; a configuration without `service` names none,
    // and its series have no `canary_service` label (`value` compares whole label sets).
    let raw = mesh.front().admin_get("/stats?filter=wasmcustom").unwrap();
    assert!(
        raw.contains(
            "wasmcustom.canary_requests_total.canary_version.canary.canary_rule.testers: 30"
        ),
        "{raw}"
    );
    assert!(!text.contains("canary_service"), "{text}");

    // The table the demo prints agrees.
    let versions = read_versions(&Admin::new(&mesh.front().admin_url()), None, None).unwrap();
    assert_eq!(
        versions["canary"].counts.requests as f64,
        split["app-v2"] + 30.0
    );
    assert_eq!(
        versions["stable"].counts.requests as f64,
        split["app-v1"] + 20.0
    );
    assert_eq!(versions["broken"].errors(), 7);
    assert!(versions["stable"].quantile(0.5).is_some());
    let rendered = render_table(&versions);
    assert!(
        rendered
            .lines()
            .any(|l| l.starts_with("broken") && l.contains(" 7 ")),
        "{rendered}"
    );
}

/// Counters are summed in the filter and handed to Envoy every 0.1 s: they reach `/stats`
/// within a second of the traffic, and a configuration pushed in the middle of the traffic (a
/// new root context, the old one handing over what it holds) loses none of them.
#[test]
fn counters_summed_in_the_filter_reach_envoy_and_survive_a_config_push() {
    let mesh = mesh(CONFIG);
    let testers = "wasmcustom.canary_requests_total.canary_version.canary.canary_rule.testers";
    let testers_2xx = "wasmcustom.canary_responses_total.canary_version.canary.canary_rule.testers.canary_code_class.2xx";
    for _ in 0..25 {
        get_ok(&mesh, &[("x-canary", "always")]);
    }
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(mesh.front().stat(testers).unwrap_or(0) == 25)
    })
    .unwrap_or_else(|err| panic!("{err}: {:?}", mesh.front().stat(testers)));
    assert_eq!(
        mesh.push_config(&CONFIG.replace("\"canary\": 25", "\"canary\": 30"))
            .unwrap(),
        canary_harness::mesh::Push::Accepted
    );
    for _ in 0..40 {
        get_ok(&mesh, &[("x-canary", "always")]);
    }
    // A push right behind a burst, before a flush is due: the replaced configuration still
    // holds some of these when it goes.
    for _ in 0..10 {
        get_ok(&mesh, &[("x-canary", "always")]);
    }
    assert_eq!(
        mesh.push_config(&CONFIG.replace("\"canary\": 25", "\"canary\": 35"))
            .unwrap(),
        canary_harness::mesh::Push::Accepted
    );
    // Several flush periods: nothing more may arrive after this.
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(mesh.front().stat(testers).unwrap(), 75);
    assert_eq!(mesh.front().stat(testers_2xx).unwrap(), 75);
}

/// A configuration that names its `service` labels every series with it, the configuration
/// hash included, and the labels are the prefixed ones only (no `version`, `rule` or
/// `code_class` a pod label could collide with).
#[test]
fn a_configured_service_labels_every_series_and_the_configuration_hash() {
    let config = CONFIG.replacen('{', r#"{"service": "checkout","#, 1);
    let mesh = mesh(&config);
    for _ in 0..5 {
        get_ok(&mesh, &[("x-canary", "always")]);
    }
    // The response class is counted when the stream ends, which can be after the client has
    // its answer: wait for both counters, not only the requests'.
    let raw = "wasmcustom.canary_requests_total.canary_service.checkout.canary_version.canary.canary_rule.testers";
    let raw_2xx = "wasmcustom.canary_responses_total.canary_service.checkout.canary_version.canary.canary_rule.testers.canary_code_class.2xx";
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(
            mesh.front().stat(raw).unwrap_or(0) == 5
                && mesh.front().stat(raw_2xx).unwrap_or(0) == 5,
        )
    })
    .unwrap_or_else(|err| {
        panic!(
            "{err}: {:?} {:?}",
            mesh.front().stat(raw),
            mesh.front().stat(raw_2xx)
        )
    });
    let all = samples(&mesh.prometheus().unwrap());
    let labels = [
        ("canary_service", "checkout"),
        ("canary_version", "canary"),
        ("canary_rule", "testers"),
    ];
    assert_eq!(value(&all, "canary_requests_total", &labels), 5.0);
    let responses = [
        ("canary_service", "checkout"),
        ("canary_version", "canary"),
        ("canary_rule", "testers"),
        ("canary_code_class", "2xx"),
    ];
    assert_eq!(value(&all, "canary_responses_total", &responses), 5.0);
    let hash = canary_harness::mesh::config_hash_of(&config).unwrap();
    assert_eq!(
        value(
            &all,
            "canary_config_hash",
            &[("canary_service", "checkout")]
        ),
        f64::from(hash)
    );
    let filter_series: Vec<_> = all
        .iter()
        .filter(|(name, _, _)| name.starts_with("canary_"))
        .collect();
    assert!(filter_series.len() > 20, "{filter_series:?}");
    for (name, labels, _) in filter_series {
        assert_eq!(
            labels.get("canary_service").map(String::as_str),
            Some("checkout"),
            "{name} {labels:?}"
        );
        for unprefixed in ["version", "rule", "code_class"] {
            assert!(!labels.contains_key(unprefixed), "{name} {labels:?}");
        }
    }
}
