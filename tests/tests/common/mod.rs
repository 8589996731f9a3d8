//! Shared by the end-to-end test files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use canary_filter::bucket::bucket_of;
use canary_harness::mesh::Mesh;
use canary_harness::Reply;

/// Two versions, a sticky header key, the canary at `canary` percent, seed `seed`.
pub fn two_versions(canary: f64, seed: u32) -> String {
    format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
            "default": "stable", "weights": {{"canary": {canary}}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": {seed}}}}}"#
    )
}

/// The cluster the murmur3 contract names for `key` with one canary (`app-v2`) at `weight`.
pub fn contract_cluster(key: &str, seed: u32, weight: f64) -> &'static str {
    if f64::from(bucket_of(key.as_bytes(), seed)) < weight * 100.0 {
        "app-v2"
    } else {
        "app-v1"
    }
}

/// GET with headers; the reply must be a 200 from one of the upstreams.
pub fn get_ok(mesh: &Mesh, headers: &[(&str, &str)]) -> Reply {
    let reply = mesh.get(headers).expect("request through the front proxy");
    assert_eq!(reply.status, 200, "headers {headers:?}: {reply:?}");
    assert!(
        reply.upstream().is_some(),
        "no upstream answered: {reply:?}"
    );
    reply
}

/// The upstream that answers a request for user `key`.
pub fn upstream_of(mesh: &Mesh, key: &str) -> String {
    get_ok(mesh, &[("x-user-id", key)])
        .upstream()
        .unwrap_or_default()
        .to_string()
}

/// Starts the isolated mesh or fails the test with the harness's message (which says how to
/// install Envoy or build the filter when either is missing).
pub fn mesh(config: &str) -> Mesh {
    Mesh::isolated(config).unwrap_or_else(|err| panic!("{err}"))
}
