//! Feature flags in the proxy: each feature on for a sticky share of users by its own murmur3
//! contract, pinned by rules, told to the upstream in `x-canary-features` (the client's copy
//! never reaches it), and counted on and off.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use canary_harness::preamble::{get_ok, mesh, two_versions};

/// The canary at 50 % (seed 5), two features and a rule that pins them for testers.
fn config() -> String {
    two_versions(50.0, 5).replacen(
        r#""default": "stable","#,
        r#""default": "stable",
            "features": {"new-checkout": {"percent": 10}, "dark-mode": {"percent": 50}},
            "rules": [{"name": "testers", "when": {"header": {"name": "x-tester", "present": true}},
                       "features": {"new-checkout": true, "dark-mode": false}}],"#,
        1,
    )
}

/// The contract, computed with the `murmur3` crate rather than the filter's own hash: on when
/// `murmur3_x86_32(key, murmur3_x86_32(name, 0)) % 10000 < percent * 100`.
fn contract_on(key: &str, feature: &str, percent: u32) -> bool {
    let hash = |bytes: &[u8], seed: u32| {
        murmur3::murmur3_32(&mut std::io::Cursor::new(bytes), seed).unwrap()
    };
    hash(key.as_bytes(), hash(feature.as_bytes(), 0)) % 10_000 < percent * 100
}

fn counter(mesh: &canary_harness::mesh::Mesh, name: &str) -> u64 {
    mesh.front().stat(name).unwrap_or(0)
}

#[test]
fn each_feature_takes_its_own_sticky_share_pinned_by_rules_and_counted_on_and_off() {
    let mesh = mesh(&config());
    const KEYS: usize = 600;
    let (mut checkout_on, mut dark_on, mut both_on) = (0u64, 0u64, 0u64);
    for i in 0..KEYS {
        let key = format!("user-{i}");
        let checkout = contract_on(&key, "new-checkout", 10);
        let dark = contract_on(&key, "dark-mode", 50);
        // By name: dark-mode before new-checkout. A client's forged copy never survives.
        let want: Vec<&str> = [(dark, "dark-mode"), (checkout, "new-checkout")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
        let reply = get_ok(
            &mesh,
            &[
                ("x-user-id", &key),
                ("x-canary-features", "forged,new-checkout"),
            ],
        );
        let want = (!want.is_empty()).then(|| want.join(","));
        assert_eq!(
            reply.header("x-seen-features"),
            want.as_deref(),
            "key {key}"
        );
        checkout_on += u64::from(checkout);
        dark_on += u64::from(dark);
        both_on += u64::from(checkout && dark);
    }
    // The shares themselves: near 10 % and 50 %, and independent (about 5 % have both).
    println!(
        "over {KEYS} keys: new-checkout on for {checkout_on} ({:.1} %), dark-mode on for {dark_on} ({:.1} %), both {both_on}",
        100.0 * checkout_on as f64 / KEYS as f64,
        100.0 * dark_on as f64 / KEYS as f64
    );
    assert!((36..=84).contains(&checkout_on), "{checkout_on}");
    assert!((250..=350).contains(&dark_on), "{dark_on}");
    assert!((12..=50).contains(&both_on), "{both_on}");

    // The testers' rule pins new-checkout on and dark-mode off, whatever their buckets.
    const TESTERS: u64 = 20;
    for i in 0..TESTERS {
        let key = format!("user-{i}");
        let reply = get_ok(&mesh, &[("x-user-id", &key), ("x-tester", "yes")]);
        assert_eq!(
            reply.header("x-seen-features"),
            Some("new-checkout"),
            "{key}"
        );
    }

    // The counters, on and off, as the contract and the pins say.
    let name = |metric: &str, feature: &str, state: &str| {
        format!("wasmcustom.{metric}.canary_feature.{feature}.canary_feature_state.{state}")
    };
    let total = KEYS as u64 + TESTERS;
    let expected = [
        ("new-checkout", "on", checkout_on + TESTERS),
        ("new-checkout", "off", total - checkout_on - TESTERS),
        ("dark-mode", "on", dark_on),
        ("dark-mode", "off", total - dark_on),
    ];
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(expected.iter().all(|(feature, state, count)| {
            counter(
                &mesh,
                &name("canary_feature_requests_total", feature, state),
            ) == *count
                && counter(
                    &mesh,
                    &format!(
                        "{}.canary_code_class.2xx",
                        name("canary_feature_responses_total", feature, state)
                    ),
                ) == *count
        }))
    })
    .unwrap_or_else(|err| {
        panic!(
            "{err}: {}",
            mesh.front()
                .admin_get("/stats?filter=canary_feature")
                .unwrap()
        )
    });
    // In Prometheus's form the bootstrap's stats_tags make them labels.
    let prometheus = mesh.prometheus().unwrap();
    for (feature, state, count) in expected {
        let line = format!(
            "canary_feature_requests_total{{canary_feature=\"{feature}\",canary_feature_state=\"{state}\"}} {count}"
        );
        assert!(prometheus.contains(&line), "{line} not in\n{prometheus}");
        println!("{line}");
    }
    let latency = "canary_feature_request_duration_ms_count{canary_feature=\"new-checkout\",canary_feature_state=\"on\"}";
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(mesh.prometheus()?.contains(latency))
    })
    .unwrap_or_else(|err| panic!("{err}: no {latency}"));
}

/// Without features the filter does no feature work, and the client's `x-canary-features` is
/// removed before routing all the same (by the front's early header mutation, as the routing
/// headers are).
#[test]
fn a_client_sent_features_header_never_reaches_the_upstream() {
    let mesh = mesh(&two_versions(50.0, 5));
    for i in 0..20 {
        let key = format!("user-{i}");
        let reply = get_ok(
            &mesh,
            &[("x-user-id", &key), ("x-canary-features", "new-checkout")],
        );
        assert_eq!(reply.header("x-seen-features"), None, "{key}");
    }
    let stats = mesh
        .front()
        .admin_get("/stats?filter=canary_feature")
        .unwrap();
    assert!(stats.trim().is_empty(), "{stats}");
}
