//! Routing semantics of the filter, proven in a real Envoy (1.40, V8) with real upstreams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use canary_filter::bucket::bucket_of;
use canary_harness::mesh::{Mesh, Push};
use canary_harness::preamble::{contract_cluster, get_ok, mesh, two_versions, upstream_of};

/// Case 1: For 1,200 distinct keys each request lands where the murmur3 contract says, the
/// upstream sees the route and version headers the filter wrote, the client gets the version
/// header back, and the shares match the weight.
#[test]
fn sticky_split_lands_every_key_where_the_contract_says() {
    let mesh = mesh(&two_versions(30.0, 7));
    let keys = 1_200;
    let mut on_canary = 0;
    for i in 0..keys {
        let key = format!("user-{i}");
        let want = contract_cluster(&key, 7, 30.0);
        let reply = get_ok(&mesh, &[("x-user-id", &key)]);
        assert_eq!(reply.upstream(), Some(want), "key {key}");
        assert_eq!(reply.header("x-seen-route"), Some(want), "key {key}");
        let version = if want == "app-v2" { "canary" } else { "stable" };
        assert_eq!(reply.header("x-seen-version"), Some(version), "key {key}");
        // The response version header is off unless asked for.
        assert_eq!(reply.header("x-canary-version"), None, "key {key}");
        on_canary += usize::from(want == "app-v2");
    }
    let share = on_canary as f64 * 100.0 / f64::from(keys);
    assert!(
        (share - 30.0).abs() < 4.0,
        "canary share {share}% for weight 30%"
    );
    // Same key, same version, every time.
    for i in 0..50 {
        let key = format!("user-{i}");
        assert_eq!(upstream_of(&mesh, &key), contract_cluster(&key, 7, 30.0));
    }
}

const RULES: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable", "response_version_header": true,
  "weights": {"canary": 0},
  "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}], "seed": 0, "when_missing": "default"},
  "region": {"header": "x-region"},
  "rules": [
    {"name": "testers", "when": {"header": {"name": "X-Canary", "equals": "always"}}, "version": "canary"},
    {"name": "beta", "when": {"header": {"name": "x-client", "prefix": "beta-"}}, "version": "canary"},
    {"name": "opt-in", "when": {"cookie": {"name": "canary", "equals": "yes"}}, "version": "canary"},
    {"name": "opt-out", "when": {"cookie": {"name": "canary", "equals": "never"}}, "version": "stable"},
    {"name": "eu-first", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 100}}
  ]
}"#;

/// Case 2: Header rules (equals, prefix, case-insensitive name), cookie rules, and the region rule
/// from the request header.
#[test]
fn header_cookie_and_region_rules() {
    let mesh = mesh(RULES);
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );
    let cases: &[Case] = &[
        (&[("x-user-id", "u1")], "app-v1", "stable"),
        (
            &[("x-user-id", "u1"), ("x-canary", "always")],
            "app-v2",
            "canary",
        ),
        (
            &[("x-user-id", "u1"), ("X-CANARY", "always")],
            "app-v2",
            "canary",
        ),
        (
            &[("x-user-id", "u1"), ("x-canary", "sometimes")],
            "app-v1",
            "stable",
        ),
        (
            &[("x-user-id", "u1"), ("x-client", "beta-ios-7")],
            "app-v2",
            "canary",
        ),
        (
            &[("x-user-id", "u1"), ("x-client", "ios-beta-7")],
            "app-v1",
            "stable",
        ),
        (
            &[("x-user-id", "u1"), ("cookie", "a=1; canary=yes; b=2")],
            "app-v2",
            "canary",
        ),
        (
            &[("x-user-id", "u1"), ("cookie", "canary=never")],
            "app-v1",
            "stable",
        ),
        (
            &[("x-user-id", "u1"), ("x-region", "eu-west-1")],
            "app-v2",
            "canary",
        ),
        (
            &[("x-user-id", "u1"), ("x-region", "eu-west-2")],
            "app-v1",
            "stable",
        ),
        // The first matching rule wins: testers before opt-out.
        (
            &[
                ("x-user-id", "u1"),
                ("x-canary", "always"),
                ("cookie", "canary=never"),
            ],
            "app-v2",
            "canary",
        ),
        // opt-out before eu-first.
        (
            &[
                ("x-user-id", "u1"),
                ("x-region", "eu-west-1"),
                ("cookie", "canary=never"),
            ],
            "app-v1",
            "stable",
        ),
    ];
    for (headers, upstream, version) in cases {
        let reply = get_ok(&mesh, headers);
        assert_eq!(reply.upstream(), Some(*upstream), "{headers:?}");
        assert_eq!(
            reply.header("x-canary-version"),
            Some(*version),
            "{headers:?}"
        );
    }
}

/// Case 2: A cookie as the sticky key, and `when_missing` both ways.
#[test]
fn cookie_key_and_when_missing() {
    let config = |when_missing: &str| {
        format!(
            r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
                "default": "stable", "weights": {{"canary": 50}},
                "sticky": {{"keys": [{{"header": "x-user-id"}}, {{"cookie": "uid"}}], "seed": 11, "when_missing": "{when_missing}"}}}}"#
        )
    };
    let mesh = mesh(&config("default"));
    // The cookie is the key when the header is absent (or empty).
    for i in 0..300 {
        let key = format!("cookie-user-{i}");
        let want = contract_cluster(&key, 11, 50.0);
        let cookie = format!("theme=dark; uid={key}; lang=en");
        assert_eq!(
            get_ok(&mesh, &[("cookie", &cookie)]).upstream(),
            Some(want),
            "{key}"
        );
        assert_eq!(
            get_ok(&mesh, &[("x-user-id", ""), ("cookie", &cookie)]).upstream(),
            Some(want),
            "{key}"
        );
    }
    // No key, when_missing = default: always the default version.
    for _ in 0..100 {
        assert_eq!(get_ok(&mesh, &[]).upstream(), Some("app-v1"));
        assert_eq!(
            get_ok(&mesh, &[("cookie", "uid=")]).upstream(),
            Some("app-v1")
        );
    }
    // No key, when_missing = random: keyless requests are split by the weights.
    assert_eq!(mesh.push_config(&config("random")).unwrap(), Push::Accepted);
    let mut canary = 0;
    for _ in 0..400 {
        canary += usize::from(get_ok(&mesh, &[]).upstream() == Some("app-v2"));
    }
    assert!(
        (120..=280).contains(&canary),
        "{canary} of 400 keyless requests on a 50% canary"
    );
}

/// Case 2: The region rule falls back to the proxy's own locality (`node.locality.region`).
#[test]
fn region_rule_from_the_node_locality() {
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
        "default": "stable", "region": {"header": "x-region"},
        "rules": [{"name": "eu-canary", "when": {"region": ["eu-west-1"]}, "version": "canary"}]}"#;
    let in_eu =
        Mesh::isolated_in_region(config, Some("eu-west-1")).unwrap_or_else(|err| panic!("{err}"));
    let nowhere = Mesh::isolated_in_region(config, None).unwrap_or_else(|err| panic!("{err}"));
    // An EU proxy: its requests without a region header are in the EU.
    assert_eq!(get_ok(&in_eu, &[]).upstream(), Some("app-v2"));
    // The request's header wins over the proxy's locality.
    assert_eq!(
        get_ok(&in_eu, &[("x-region", "us-east-1")]).upstream(),
        Some("app-v1")
    );
    // A proxy without locality: only the header can put a request in the EU.
    assert_eq!(get_ok(&nowhere, &[]).upstream(), Some("app-v1"));
    assert_eq!(
        get_ok(&nowhere, &[("x-region", "eu-west-1")]).upstream(),
        Some("app-v2")
    );
    // The shipped bootstrap's region (us-east-1) is not the EU.
    let shipped = mesh(config);
    assert_eq!(get_ok(&shipped, &[]).upstream(), Some("app-v1"));
}

/// Case 2: Three versions (A/B/n): consecutive ranges in declaration order.
#[test]
fn three_versions_split_by_declaration_order() {
    let config = r#"{"versions": [{"name": "a", "cluster": "app-v1"}, {"name": "b", "cluster": "app-v2"}, {"name": "c", "cluster": "app-v3"}],
        "default": "a", "weights": {"c": 30, "b": 20}, "sticky": {"keys": [{"header": "x-user-id"}], "seed": 5}}"#;
    let mesh = mesh(config);
    let mut counts = std::collections::BTreeMap::new();
    let keys = 1_500;
    for i in 0..keys {
        let key = format!("abn-{i}");
        let want = match bucket_of(key.as_bytes(), 5) {
            0..=1999 => "app-v2",
            2000..=4999 => "app-v3",
            _ => "app-v1",
        };
        let reply = get_ok(&mesh, &[("x-user-id", &key)]);
        assert_eq!(reply.upstream(), Some(want), "key {key}");
        *counts.entry(want).or_insert(0) += 1;
    }
    for (cluster, weight) in [("app-v1", 50.0), ("app-v2", 20.0), ("app-v3", 30.0)] {
        let share = f64::from(counts[cluster]) * 100.0 / f64::from(keys);
        assert!(
            (share - weight).abs() < 4.5,
            "{cluster}: {share}% for {weight}%"
        );
    }
}

/// Case 4: A client-sent route header naming another configured cluster never reaches it; nor does
/// a client-sent version header reach the upstream.
#[test]
fn a_client_cannot_pick_the_cluster() {
    let mesh = mesh(&two_versions(0.0, 0));
    for i in 0..100 {
        let key = format!("spoofer-{i}");
        for (spoofed, version) in [("app-v2", "canary"), ("app-v3", "c"), ("app-v1", "stable")] {
            let reply = get_ok(
                &mesh,
                &[
                    ("x-user-id", &key),
                    ("x-canary-cluster", spoofed),
                    ("x-canary-version", version),
                ],
            );
            assert_eq!(reply.upstream(), Some("app-v1"), "spoofed {spoofed}");
            assert_eq!(reply.header("x-seen-route"), Some("app-v1"));
            assert_eq!(reply.header("x-seen-version"), Some("stable"));
        }
    }
    // Twice the header, in different cases: still stripped.
    let raw = b"GET / HTTP/1.1\r\nHost: x\r\nx-canary-cluster: app-v2\r\nX-Canary-Cluster: app-v3\r\nConnection: close\r\n\r\n";
    let reply = mesh.raw(raw).unwrap();
    assert_eq!((reply.status, reply.upstream()), (200, Some("app-v1")));
}

/// The faulty demo upstreams behave as documented: 20 % 503 from app-v2-errors, 50 ms more
/// from app-v2-slow (they stand in for bad canaries in the rollout tests).
#[test]
fn the_faulty_upstreams_are_faulty() {
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "errors", "cluster": "app-v2-errors"},
        {"name": "slow", "cluster": "app-v2-slow"}], "default": "stable",
        "rules": [{"name": "e", "when": {"header": {"name": "x-v", "equals": "errors"}}, "version": "errors"},
                  {"name": "s", "when": {"header": {"name": "x-v", "equals": "slow"}}, "version": "slow"}]}"#;
    let mesh = mesh(config);
    let mut failed = 0;
    for _ in 0..400 {
        let reply = mesh.get(&[("x-v", "errors")]).unwrap();
        assert!(reply.status == 200 || reply.status == 503, "{reply:?}");
        failed += usize::from(reply.status == 503);
    }
    assert!(
        (40..=130).contains(&failed),
        "{failed} of 400 failed, expected about 80"
    );
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(
            get_ok(&mesh, &[("x-v", "slow")]).upstream(),
            Some("app-v2-slow")
        );
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
}

/// A plan naming more than 8 headers fetches the request's headers in one host call; rules,
/// the sticky key and hostile bytes behave the same on that path.
#[test]
fn many_header_rules_route_the_same() {
    let rules: Vec<String> = (0..10)
        .map(|i| {
            let version = if i % 2 == 0 { "canary" } else { "stable" };
            format!(r#"{{"name": "r{i}", "when": {{"header": {{"name": "X-Rule-{i}", "equals": "on"}}}}, "version": "{version}"}}"#)
        })
        .collect();
    let config = format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
            "default": "stable", "weights": {{"canary": 30}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": 7}}, "rules": [{}]}}"#,
        rules.join(",")
    );
    let mesh = mesh(&config);
    for i in 0..10 {
        let name = format!("x-rule-{i}");
        let want = if i % 2 == 0 { "app-v2" } else { "app-v1" };
        // A key that the split would send elsewhere, so only the rule explains the answer.
        let key = (0..)
            .map(|k| format!("k{k}"))
            .find(|k| contract_cluster(k, 7, 30.0) != want)
            .unwrap();
        let reply = get_ok(&mesh, &[(&name, "on"), ("x-user-id", &key)]);
        assert_eq!(reply.upstream(), Some(want), "{name}");
        assert_eq!(
            get_ok(&mesh, &[(&name, "off"), ("x-user-id", &key)]).upstream(),
            Some(contract_cluster(&key, 7, 30.0))
        );
    }
    for i in 0..300 {
        let key = format!("many-{i}");
        assert_eq!(
            upstream_of(&mesh, &key),
            contract_cluster(&key, 7, 30.0),
            "{key}"
        );
    }
    let raw = b"GET / HTTP/1.1\r\nHost: x\r\nx-rule-3: \xff\r\nx-user-id: \xfe\xff\r\nConnection: close\r\n\r\n";
    let reply = mesh.raw(raw).unwrap();
    assert_eq!(reply.status, 200);
    let want = if bucket_of(b"\xfe\xff", 7) < 3000 {
        "app-v2"
    } else {
        "app-v1"
    };
    assert_eq!(reply.upstream(), Some(want));
}

/// `requests` GETs for version `version` (pinned by the `x-v` header), eight clients at once:
/// each reply's status, the version the filter chose, and how long it took.
fn timed_requests(
    mesh: &Mesh,
    version: &str,
    requests: usize,
) -> Vec<(u16, Option<String>, std::time::Duration)> {
    let clients = 8;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                scope.spawn(move || {
                    (client..requests)
                        .step_by(clients)
                        .map(|_| {
                            let started = std::time::Instant::now();
                            let reply = mesh.get(&[("x-v", version)]).unwrap();
                            let chosen = reply.header("x-canary-version").map(str::to_string);
                            (reply.status, chosen, started.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    })
}

/// The upstreams for judging near the noise: app-v1-flaky and app-v2-flaky each answer 503 to
/// about 5 % of requests (1,000 each, within 20 to 85: about 4 standard deviations either
/// side, where 1 % or 20 % would land far outside), and app-v2-tail delays about 5 % of 400
/// requests by 1 s and answers the rest at once.
#[test]
fn the_flaky_and_tail_upstreams_behave_as_documented() {
    let config = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "flaky-stable", "cluster": "app-v1-flaky"},
        {"name": "flaky-canary", "cluster": "app-v2-flaky"}, {"name": "tail", "cluster": "app-v2-tail"}], "default": "stable",
        "rules": [{"name": "f1", "when": {"header": {"name": "x-v", "equals": "flaky-stable"}}, "version": "flaky-stable"},
                  {"name": "f2", "when": {"header": {"name": "x-v", "equals": "flaky-canary"}}, "version": "flaky-canary"},
                  {"name": "t", "when": {"header": {"name": "x-v", "equals": "tail"}}, "version": "tail"}],
        "response_version_header": true}"#;
    let mesh = mesh(config);
    for (version, cluster) in [
        ("flaky-stable", "app-v1-flaky"),
        ("flaky-canary", "app-v2-flaky"),
    ] {
        // The healthy answers come from the named upstream itself.
        let reply = (0..20)
            .map(|_| mesh.get(&[("x-v", version)]).unwrap())
            .find(|reply| reply.status == 200)
            .unwrap();
        assert_eq!(reply.upstream(), Some(cluster));
        let replies = timed_requests(&mesh, version, 1_000);
        assert_eq!(replies.len(), 1_000);
        assert!(
            replies
                .iter()
                .all(|(status, chosen, _)| (*status == 200 || *status == 503)
                    && chosen.as_deref() == Some(version)),
            "{version}: a status other than 200 or 503, or another version"
        );
        let failed = replies.iter().filter(|(status, ..)| *status == 503).count();
        println!("{cluster}: {failed} of 1000 answered 503");
        assert!(
            (20..=85).contains(&failed),
            "{cluster}: {failed} of 1000 answered 503, expected about 50"
        );
    }

    assert_eq!(
        get_ok(&mesh, &[("x-v", "tail")]).upstream(),
        Some("app-v2-tail")
    );
    let replies = timed_requests(&mesh, "tail", 400);
    assert!(
        replies
            .iter()
            .all(|(status, chosen, _)| *status == 200 && chosen.as_deref() == Some("tail")),
        "app-v2-tail delays, it does not fail"
    );
    let mut latencies: Vec<std::time::Duration> = replies.iter().map(|r| r.2).collect();
    latencies.sort();
    let delayed: Vec<&std::time::Duration> = latencies
        .iter()
        .filter(|latency| latency.as_millis() > 900)
        .collect();
    let median = latencies[latencies.len() / 2];
    println!(
        "app-v2-tail: {} of 400 over 900 ms (slowest {:?}), median {median:?}",
        delayed.len(),
        latencies.last().unwrap()
    );
    assert!(
        (5..=40).contains(&delayed.len()),
        "{} of 400 over 900 ms, expected about 20",
        delayed.len()
    );
    assert!(
        delayed.iter().all(|latency| latency.as_millis() < 3_000),
        "delayed by about 1 s, not more: {delayed:?}"
    );
    assert!(
        median.as_millis() < 100,
        "the other requests are answered at once: median {median:?}"
    );
}
