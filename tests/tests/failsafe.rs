//! A client never picks the cluster, also when the canary filter fails or is not there. Two
//! layers protect the route header, and each is tested alone here:
//! - the connection manager removes client-sent route and version headers before Envoy picks
//!   the route (`early_header_mutation_extensions` in `envoy/front.yaml`): tested with a module
//!   that traps on every request (under each `failure_policy` the project allows) and with no
//!   canary filter in the chain at all;
//! - the canary filter overwrites both headers with its own decision: tested with the native
//!   removal taken out of the bootstrap.
//!
//! A control case takes both layers away and shows the same spoofed requests do reach the
//! client's cluster, so the harness can see a breach when there is one.
//!
//! Spoofed requests come every way a client can send them: header names in any case, the header
//! repeated (same and different values), padded values, alongside a spoofed version header,
//! HTTP/1.1 with and without a body (fixed length and chunked), HTTP/1.0, and HTTP/2 cleartext
//! with and without a body.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use canary_harness::h2c;
use canary_harness::mesh::{Isolated, Layout, Mesh};
use canary_harness::preamble::{contract_cluster, two_versions};
use canary_harness::trap::trap_wasm;
use canary_harness::Reply;

/// Clusters a client may try to name: one the configuration never routes to, and a faulty one.
const SPOOFED_CLUSTERS: [&str; 2] = ["app-v3", "app-v2-errors"];
/// Each way of sending is tried this many times per spoofed cluster.
const ROUNDS: usize = 22;

/// One way of sending a spoofed request.
enum Attempt {
    /// Raw HTTP/1.x bytes.
    Http1(String),
    /// HTTP/2 cleartext: method, headers (lower case, as HTTP/2 requires), body.
    H2c(&'static str, Vec<(String, String)>, Option<&'static [u8]>),
}

/// Every way a client can send `cluster` in the route header, with user key `key`.
fn attempts(cluster: &str, key: &str) -> Vec<(&'static str, Attempt)> {
    let h1 = |extra: &str| {
        Attempt::Http1(format!(
            "GET / HTTP/1.1\r\nHost: spoof\r\nx-user-id: {key}\r\n{extra}Connection: close\r\n\r\n"
        ))
    };
    let h2 = |method, headers: &[(&str, &str)], body| {
        let mut all = vec![("x-user-id".to_string(), key.to_string())];
        all.extend(
            headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        Attempt::H2c(method, all, body)
    };
    let body = "spoofed body\n";
    vec![
        ("h1 lower case", h1(&format!("x-canary-cluster: {cluster}\r\n"))),
        ("h1 title case", h1(&format!("X-Canary-Cluster: {cluster}\r\n"))),
        ("h1 upper case", h1(&format!("X-CANARY-CLUSTER: {cluster}\r\n"))),
        (
            "h1 repeated",
            h1(&format!(
                "x-canary-cluster: {cluster}\r\nX-Canary-Cluster: {cluster}\r\n"
            )),
        ),
        (
            "h1 repeated, the default first",
            h1(&format!(
                "x-canary-cluster: app-v1\r\nx-canary-cluster: {cluster}\r\n"
            )),
        ),
        (
            "h1 padded value",
            h1(&format!("x-canary-cluster: \t {cluster} \t\r\n")),
        ),
        (
            "h1 with a version header",
            h1(&format!(
                "x-canary-cluster: {cluster}\r\nX-Canary-Version: canary\r\n"
            )),
        ),
        (
            "h1 POST with a body",
            Attempt::Http1(format!(
                "POST / HTTP/1.1\r\nHost: spoof\r\nx-user-id: {key}\r\nx-canary-cluster: {cluster}\r\n\
                 Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )),
        ),
        (
            "h1 POST chunked",
            Attempt::Http1(format!(
                "POST / HTTP/1.1\r\nHost: spoof\r\nx-user-id: {key}\r\nx-canary-cluster: {cluster}\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )),
        ),
        (
            "h2c",
            h2("GET", &[("x-canary-cluster", cluster)], None),
        ),
        (
            "h2c repeated",
            h2(
                "GET",
                &[("x-canary-cluster", "app-v1"), ("x-canary-cluster", cluster)],
                None,
            ),
        ),
        (
            "h2c with a version header",
            h2(
                "GET",
                &[("x-canary-cluster", cluster), ("x-canary-version", "canary")],
                None,
            ),
        ),
        (
            "h2c POST with a body",
            h2(
                "POST",
                &[("x-canary-cluster", cluster)],
                Some(body.as_bytes()),
            ),
        ),
    ]
}

fn send(mesh: &Mesh, attempt: &Attempt) -> Reply {
    match attempt {
        Attempt::Http1(text) => mesh.raw(text.as_bytes()).expect("HTTP/1 request"),
        Attempt::H2c(method, headers, body) => {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            h2c::request(mesh.listen(), method, &headers, *body).expect("h2c request")
        }
    }
}

/// What the spoofed requests got.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    /// Requests answered by the cluster the client named.
    reached_spoofed: usize,
    /// Requests whose upstream saw the version header the client sent (`canary`) while the
    /// request went to another version.
    spoofed_version_seen: usize,
    /// `(status, upstream)` -> count.
    outcomes: BTreeMap<(u16, String), usize>,
    /// Requests that went somewhere other than `expected` says, with the way they were sent.
    unexpected: Vec<String>,
}

/// Sends every attempt `ROUNDS` times for each spoofed cluster. `expected(key)` is the
/// upstream each request must reach.
fn spoof(mesh: &Mesh, expected: impl Fn(&str) -> &'static str) -> Tally {
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        for cluster in SPOOFED_CLUSTERS {
            let key = format!("spoofer-{round}-{cluster}");
            for (how, attempt) in attempts(cluster, &key) {
                let reply = send(mesh, &attempt);
                let upstream = reply.upstream().unwrap_or("").to_string();
                tally.sent += 1;
                tally.reached_spoofed += usize::from(upstream == cluster);
                tally.spoofed_version_seen += usize::from(
                    reply.header("x-seen-version") == Some("canary") && upstream != "app-v2",
                );
                let want = expected(&key);
                if reply.status != 200 || upstream != want {
                    tally.unexpected.push(format!(
                        "{how} naming {cluster}: {} from {upstream:?}, expected 200 from \
                         {want:?}: {:?}",
                        reply.status, reply.body
                    ));
                }
                *tally.outcomes.entry((reply.status, upstream)).or_insert(0) += 1;
            }
        }
    }
    println!(
        "{} spoofed requests, {} reached the client's cluster, {} carried the client's version \
         to another; (status, upstream): {:?}",
        tally.sent, tally.reached_spoofed, tally.spoofed_version_seen, tally.outcomes
    );
    tally
}

fn isolated(config: &str, options: Isolated) -> Mesh {
    Mesh::start(Layout::isolated(options), Some(config)).unwrap_or_else(|err| panic!("{err}"))
}

/// Under a failed filter, a request is answered by the default version or refused by Envoy
/// (503, no upstream: the request the VM failed on, or every request while a reloading VM
/// backs off). Returns how many were refused, after checking that nothing else happened.
fn default_or_refused(policy: &str, tally: &Tally) -> usize {
    let refused = tally
        .outcomes
        .get(&(503, String::new()))
        .copied()
        .unwrap_or(0);
    let on_default = tally
        .outcomes
        .get(&(200, "app-v1".to_string()))
        .copied()
        .unwrap_or(0);
    assert_eq!(
        refused + on_default,
        tally.sent,
        "{policy}: answers other than the default version or a refusal: {:?}",
        tally.outcomes
    );
    refused
}

fn failing_filter(policy: &str) -> (Mesh, Tally) {
    let options = Isolated {
        wasm: Some(trap_wasm().unwrap_or_else(|err| panic!("{err}"))),
        failure_policy: Some(policy.to_string()),
        ..Isolated::default()
    };
    let mut mesh = isolated(&two_versions(50.0, 0), options);
    let tally = spoof(&mesh, |_| "app-v1");
    assert!(mesh.front_mut().is_running());
    assert_eq!(tally.reached_spoofed, 0, "{policy}: {tally:?}");
    assert_eq!(tally.spoofed_version_seen, 0, "{policy}: {tally:?}");
    (mesh, tally)
}

/// A module that traps on every request, `failure_policy: FAIL_OPEN` (as shipped): the request
/// the VM fails on is refused, and Envoy skips the failed filter from then on: every later
/// spoofed request reaches the default version.
#[test]
fn a_failed_open_filter_leaves_no_client_route() {
    let (_mesh, tally) = failing_filter("FAIL_OPEN");
    let refused = default_or_refused("FAIL_OPEN", &tally);
    // At least the request the module trapped on (so the failure path did run), and no more
    // than the first few: the VM is not retried under FAIL_OPEN.
    assert!((1..=3).contains(&refused), "{tally:?}");
}

/// The same module under `FAIL_RELOAD`: Envoy reloads the VM, which traps again; requests are
/// refused while it backs off. None reaches the client's cluster.
#[test]
fn a_failed_reloading_filter_leaves_no_client_route() {
    let (mesh, tally) = failing_filter("FAIL_RELOAD");
    let refused = default_or_refused("FAIL_RELOAD", &tally);
    assert!(refused >= 1, "{tally:?}");
    let backoffs = mesh
        .front()
        .stat("wasm.canary-filter.vm_reload_backoff")
        .unwrap();
    assert!(backoffs >= 1, "Envoy never backed off a reload: {tally:?}");
}

/// No canary filter in the chain at all (left out of a bootstrap, or not delivered): the native
/// removal alone sends every spoofed request to the default version.
#[test]
fn without_the_filter_the_native_removal_alone_protects() {
    let options = Isolated {
        wasm_filter: false,
        ..Isolated::default()
    };
    let mesh = isolated(&two_versions(50.0, 0), options);
    let tally = spoof(&mesh, |_| "app-v1");
    assert_eq!(tally.reached_spoofed, 0, "{tally:?}");
    assert_eq!(tally.spoofed_version_seen, 0, "{tally:?}");
    assert!(tally.unexpected.is_empty(), "{:?}", &tally.unexpected);
}

/// The native removal taken out: the filter's own overwrite alone puts every spoofed request
/// where the murmur3 contract says (half the keys on the canary), and the upstream sees the
/// filter's version header, not the client's.
#[test]
fn without_the_native_removal_the_filter_overwrite_alone_protects() {
    let options = Isolated {
        native_strip: false,
        ..Isolated::default()
    };
    let mesh = isolated(&two_versions(50.0, 0), options);
    let tally = spoof(&mesh, |key| contract_cluster(key, 0, 50.0));
    assert_eq!(tally.reached_spoofed, 0, "{tally:?}");
    assert_eq!(tally.spoofed_version_seen, 0, "{tally:?}");
    assert!(
        tally.unexpected.is_empty(),
        "{} of {}: {:?}",
        tally.unexpected.len(),
        tally.sent,
        &tally.unexpected[..tally.unexpected.len().min(10)]
    );
    // Both versions were reached, so the overwrite wrote the contract's answer, not a constant.
    let on = |upstream: &str| tally.outcomes.get(&(200, upstream.to_string())).copied();
    assert!(
        on("app-v1").is_some() && on("app-v2").is_some(),
        "{tally:?}"
    );
}

/// The control case: neither layer (no native removal, a filter that fails open). The same
/// spoofed requests then reach the client's cluster, which shows the tests above would see a
/// breach.
#[test]
fn with_neither_layer_the_client_picks_the_cluster() {
    let options = Isolated {
        wasm: Some(trap_wasm().unwrap_or_else(|err| panic!("{err}"))),
        failure_policy: Some("FAIL_OPEN".to_string()),
        native_strip: false,
        ..Isolated::default()
    };
    let mesh = isolated(&two_versions(50.0, 0), options);
    let tally = spoof(&mesh, |_| "app-v1");
    assert!(
        tally.reached_spoofed * 2 > tally.sent,
        "only {} of {} spoofed requests reached the client's cluster: {tally:?}",
        tally.reached_spoofed,
        tally.sent
    );
}

/// The removal `canaryctl istio` renders for sidecars (an EnvoyFilter merging
/// `early_header_mutation_extensions` into the connection manager), merged into the front in
/// place of its own: with a module that traps on every request, no spoofed request reaches the
/// client's cluster. (Istio itself cannot run here; this is the patch's content in Envoy 1.40.)
#[test]
fn the_removal_rendered_for_istio_protects_a_failed_filter() {
    let config = two_versions(50.0, 0);
    let plan = canary_filter::RoutingPlan::from_json(config.as_bytes()).unwrap();
    let options = Isolated {
        wasm: Some(trap_wasm().unwrap_or_else(|err| panic!("{err}"))),
        failure_policy: Some("FAIL_OPEN".to_string()),
        native_strip: false,
        connection_manager_patch: Some(canary_control::mesh::istio_resources::strip_patch(&plan)),
        ..Isolated::default()
    };
    let mesh = isolated(&config, options);
    let tally = spoof(&mesh, |_| "app-v1");
    assert_eq!(tally.reached_spoofed, 0, "{tally:?}");
    assert_eq!(tally.spoofed_version_seen, 0, "{tally:?}");
    let refused = default_or_refused("FAIL_OPEN with the Istio removal", &tally);
    assert!((1..=3).contains(&refused), "{tally:?}");
}
