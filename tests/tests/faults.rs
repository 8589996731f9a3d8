//! Faults around a running front: configuration pushes while it is saturated, and the upstreams
//! killed and restarted. (Broken configurations are in ecds.rs, failing filters in failsafe.rs.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use canary_harness::load::{Load, LoadReport};
use canary_harness::mesh::Push;
use canary_harness::preamble::{contract_cluster, mesh, two_versions, upstream_of};

/// Client threads at full speed: more than the machine has cores, so the front (one worker) is
/// saturated while the pushes land.
const SATURATING_CLIENTS: usize = 6;

/// 100 configuration pushes by ECDS while clients keep the front saturated: every push is
/// accepted, no request fails (no non-2xx, no connection error), and the last weight routes
/// as the contract says.
#[test]
fn a_hundred_pushes_under_saturating_load_fail_no_request() {
    let mesh = mesh(&two_versions(0.0, 7));
    let load = Load::start(mesh.listen(), SATURATING_CLIENTS, Duration::ZERO, Some(10));
    // Traffic is flowing before the first push.
    let requests = || mesh.front().stat("http.ingress.downstream_rq_completed");
    mesh.wait_for(Duration::from_secs(10), || Ok(requests()? >= 200))
        .unwrap();
    let mut last_weight = 0.0;
    for push in 1..=100 {
        last_weight = f64::from(push * 37 % 101);
        assert_eq!(
            mesh.push_config(&two_versions(last_weight, 7)).unwrap(),
            Push::Accepted,
            "push {push}"
        );
    }
    let LoadReport { sent, failures } = load.stop();
    println!(
        "{sent} requests during 100 pushes, {} failed",
        failures.len()
    );
    assert!(sent > 2_000, "only {sent} requests were sent");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for i in 0..200 {
        let key = format!("after-{i}");
        assert_eq!(
            upstream_of(&mesh, &key),
            contract_cluster(&key, 7, last_weight),
            "{key} at {last_weight}%"
        );
    }
}

/// The upstreams killed for 2 s and restarted on the same ports: while they are down the front
/// answers every request at once with a 503 (nothing hangs, Envoy stays up); after the restart
/// both versions answer again within a few seconds, and every key goes where the contract says.
#[test]
fn upstreams_killed_for_two_seconds_recover_with_routing_intact() {
    let mut mesh = mesh(&two_versions(50.0, 11));
    let keys: Vec<String> = (0..200).map(|i| format!("outage-{i}")).collect();
    for key in &keys {
        assert_eq!(upstream_of(&mesh, key), contract_cluster(key, 11, 50.0));
    }

    mesh.stop_upstreams();
    let down = Instant::now();
    let mut during = 0;
    while down.elapsed() < Duration::from_secs(2) {
        let key = &keys[during % keys.len()];
        let reply = mesh.get(&[("x-user-id", key)]).unwrap();
        assert_eq!(
            reply.status, 503,
            "{key} while the upstreams are down: {reply:?}"
        );
        during += 1;
    }
    assert!(mesh.front_mut().is_running());
    assert!(during >= 10, "only {during} requests in 2 s of outage");

    mesh.restart_upstreams().unwrap();
    let restarted = Instant::now();
    // One key per version: each cluster must take traffic again.
    let probes: Vec<&String> = ["app-v1", "app-v2"]
        .iter()
        .map(|want| {
            keys.iter()
                .find(|key| contract_cluster(key, 11, 50.0) == *want)
                .unwrap()
        })
        .collect();
    mesh.wait_for(Duration::from_secs(10), || {
        Ok(probes.iter().all(|key| {
            mesh.get(&[("x-user-id", key)])
                .is_ok_and(|reply| reply.status == 200)
        }))
    })
    .expect("both versions answer within 10 s of the restart");
    let recovery = restarted.elapsed();
    println!(
        "{during} requests answered 503 during the 2 s outage; both versions answered again \
         {} ms after the upstreams were ready",
        recovery.as_millis()
    );
    for key in &keys {
        assert_eq!(
            upstream_of(&mesh, key),
            contract_cluster(key, 11, 50.0),
            "{key} after the restart"
        );
    }
}
