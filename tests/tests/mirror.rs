//! A dark canary on mirrored traffic, in a real Envoy: the filter chooses which requests are
//! copied (the sticky contract under the mirror's own seed, safe methods only, excluded paths
//! never), the shipped front's `request_mirror_policies` copies them to the cluster the filter
//! named, and the user always gets the routed version's answer. Copies are counted where they
//! land: the front's stats of the mirror cluster (per request, as each answer returns) and the
//! mirror upstream's own request counter.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use canary_harness::mesh::{Isolated, Layout, Mesh};
use canary_harness::preamble;
use canary_harness::{http_agent, Reply};

const SEED: u32 = 7;
const MIRROR_SEED: u32 = 4242;
const PERCENT: u32 = 30;

/// Stable on app-v1 for every user (the canary at 0 %), 30 % of users mirrored to the canary
/// on app-v2, `/admin` never.
fn mirror_config() -> String {
    format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
            "default": "stable", "weights": {{"canary": 0}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": {SEED}}},
            "mirror": {{"version": "canary", "percent": {PERCENT}, "seed": {MIRROR_SEED},
                        "exclude_paths": ["/admin"]}}}}"#
    )
}

/// Whether the sticky contract copies user `key`'s requests: murmur3 (the reference crate, not
/// the filter's) of the key under the mirror's seed, below 30 % of the 10 000 buckets.
fn mirrored(key: &str) -> bool {
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(key.as_bytes()), MIRROR_SEED).unwrap();
    hash % 10_000 < PERCENT * 100
}

/// `method path` through the front with these headers; the reply as the user sees it.
fn send(mesh: &Mesh, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let agent = http_agent(Duration::from_secs(10));
    let url = format!("http://{}{path}", mesh.listen());
    let mut builder = http::Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = if method == "POST" { "order=1" } else { "" };
    let mut response = agent.run(builder.body(body).unwrap()).unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: Reply::header_list(response.headers()),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// Requests the front has sent to `cluster` (routed ones and copies alike).
fn sent_to(mesh: &Mesh, cluster: &str) -> u64 {
    mesh.front()
        .stat(&format!("cluster.{cluster}.upstream_rq_total"))
        .unwrap()
}

/// Requests the upstream listener of `version` received (`app_v2` for app-v2).
fn received_by(mesh: &Mesh, stat_prefix: &str) -> u64 {
    mesh.upstreams()
        .unwrap()
        .stat(&format!("http.{stat_prefix}.downstream_rq_total"))
        .unwrap()
}

/// Sends one request and checks, at the front's stats of app-v2, that it was copied exactly
/// when `copied` says: a copy is counted when Envoy starts it, and a request not copied must
/// leave the count where it was (a late stray copy shows at the next copied request's check).
fn send_and_check_copy(
    mesh: &Mesh,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    copied: bool,
) -> Reply {
    let before = sent_to(mesh, "app-v2");
    let reply = send(mesh, method, path, headers);
    let want = before + u64::from(copied);
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(sent_to(mesh, "app-v2") >= want)
    })
    .unwrap_or_else(|_| panic!("{method} {path} {headers:?}: no copy reached app-v2"));
    assert_eq!(
        sent_to(mesh, "app-v2"),
        want,
        "{method} {path} {headers:?}: copied {}",
        if copied {
            "more than once"
        } else {
            "though it must not be"
        }
    );
    reply
}

/// The user's answer: stable's (app-v1), never the copy's, and never a header the client sent.
fn assert_stable_answer(reply: &Reply, context: &str) {
    assert_eq!(reply.status, 200, "{context}: {reply:?}");
    assert_eq!(reply.upstream(), Some("app-v1"), "{context}: {reply:?}");
    assert_eq!(reply.body, "app-v1\n", "{context}");
}

#[test]
fn the_mirrored_share_follows_the_sticky_contract_and_users_get_stable() {
    let mesh = preamble::mesh(&mirror_config());
    let keys: Vec<String> = (0..160).map(|i| format!("user-{i}")).collect();
    let expected = keys.iter().filter(|key| mirrored(key)).count() as u64;
    assert!((30..70).contains(&expected), "{expected} of 160 at 30 %");
    for key in &keys {
        // The client names a mirror of its own (app-v3): never acted on, never forwarded.
        let headers = [("x-user-id", key.as_str()), ("x-canary-mirror", "app-v3")];
        let reply = send_and_check_copy(&mesh, "GET", "/", &headers, mirrored(key));
        assert_stable_answer(&reply, key);
        let seen_mirror = reply.header("x-seen-mirror").unwrap_or_default();
        if mirrored(key) {
            assert_eq!(seen_mirror, "app-v2", "{key}: the filter's own target");
        } else {
            assert_eq!(
                seen_mirror, "",
                "{key}: the client's mirror header reached stable"
            );
        }
    }
    // Every copy landed at the canary's upstream, and nothing else did.
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(received_by(&mesh, "app_v2") >= expected)
    })
    .unwrap();
    assert_eq!(received_by(&mesh, "app_v2"), expected);
    assert_eq!(received_by(&mesh, "app_v1"), keys.len() as u64);
    assert_eq!(sent_to(&mesh, "app-v3"), 0, "the client's mirror target");
    assert_eq!(
        received_by(&mesh, "app_v3"),
        0,
        "the client's mirror target"
    );
    println!(
        "{expected} of {} users mirrored to the canary (murmur3 contract: {expected}), \
         {} requests at app-v2's upstream, 0 at app-v3",
        keys.len(),
        received_by(&mesh, "app_v2")
    );
}

#[test]
fn unsafe_methods_and_excluded_paths_are_never_mirrored() {
    let mesh = preamble::mesh(&mirror_config());
    let chosen: Vec<String> = (0..400)
        .map(|i| format!("buyer-{i}"))
        .filter(|key| mirrored(key))
        .take(25)
        .collect();
    assert_eq!(chosen.len(), 25);
    for key in &chosen {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let headers = [("x-user-id", key.as_str()), ("x-canary-mirror", "app-v2")];
            let reply = send_and_check_copy(&mesh, method, "/checkout", &headers, false);
            assert_stable_answer(&reply, &format!("{method} {key}"));
            assert_eq!(reply.header("x-seen-mirror"), None, "{method} {key}");
        }
        for path in ["/admin", "/admin/users?id=1"] {
            let headers = [("x-user-id", key.as_str())];
            let reply = send_and_check_copy(&mesh, "GET", path, &headers, false);
            assert_stable_answer(&reply, &format!("GET {path} {key}"));
        }
        // The same user's safe request elsewhere is copied: the exclusions did the work.
        let reply = send_and_check_copy(&mesh, "GET", "/catalog", &[("x-user-id", key)], true);
        assert_stable_answer(&reply, &format!("GET /catalog {key}"));
        let reply = send_and_check_copy(&mesh, "HEAD", "/catalog", &[("x-user-id", key)], true);
        assert_eq!(reply.upstream(), Some("app-v1"), "HEAD {key}");
    }
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(received_by(&mesh, "app_v2") >= 50)
    })
    .unwrap();
    assert_eq!(
        received_by(&mesh, "app_v2"),
        50,
        "one GET and one HEAD per user"
    );
}

/// The shipped front removes a client's mirror header before routing, so even with the canary
/// filter out of the chain (skipped, or failed open) no client makes Envoy copy its request.
#[test]
fn without_the_filter_a_clients_mirror_header_copies_nothing() {
    let mesh = Mesh::start(
        Layout::isolated(Isolated {
            wasm_filter: false,
            ..Isolated::default()
        }),
        Some(&mirror_config()),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    for i in 0..50 {
        let key = format!("user-{i}");
        let reply = send(
            &mesh,
            "GET",
            "/",
            &[("x-user-id", &key), ("x-canary-mirror", "app-v2")],
        );
        assert_stable_answer(&reply, &key);
        assert_eq!(reply.header("x-seen-mirror"), None, "{key}");
    }
    assert_eq!(sent_to(&mesh, "app-v2"), 0);
    assert_eq!(received_by(&mesh, "app_v2"), 0);
}
