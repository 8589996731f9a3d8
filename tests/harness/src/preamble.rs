//! What the end-to-end tests start with, shared by `tests/tests` and `control/tests`: each step
//! fails the test with the harness's message (which says how to install Envoy, build the filter
//! or install Prometheus when one is missing) instead of returning it.

use std::net::SocketAddr;
use std::time::Duration;

use canary_filter::bucket::bucket_of;

use crate::mesh::Mesh;
use crate::prometheus::Prometheus;
use crate::Reply;

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

/// Starts the isolated mesh with the filter configuration `config`.
///
/// # Panics
///
/// If it cannot start: the test fails with the harness's message.
pub fn mesh(config: &str) -> Mesh {
    Mesh::isolated(config).unwrap_or_else(|err| panic!("{err}"))
}

/// GET with headers through the mesh's front.
///
/// # Panics
///
/// Unless the reply is a 200 from one of the upstreams.
pub fn get_ok(mesh: &Mesh, headers: &[(&str, &str)]) -> Reply {
    let reply = mesh
        .get(headers)
        .unwrap_or_else(|err| panic!("request through the front proxy: {err}"));
    assert_eq!(reply.status, 200, "headers {headers:?}: {reply:?}");
    assert!(
        reply.upstream().is_some(),
        "no upstream answered: {reply:?}"
    );
    reply
}

/// The upstream that answers a request for user `key` (sent as `x-user-id`).
pub fn upstream_of(mesh: &Mesh, key: &str) -> String {
    get_ok(mesh, &[("x-user-id", key)])
        .upstream()
        .unwrap_or_default()
        .to_string()
}

/// Starts a Prometheus scraping each of `targets` (Envoy admin addresses) every second.
///
/// # Panics
///
/// If it cannot start: the test fails with the harness's message.
pub fn prometheus(targets: &[SocketAddr]) -> Prometheus {
    Prometheus::start_scraping(targets, None).unwrap_or_else(|err| panic!("{err}"))
}

/// Waits (up to 30 s) until `prometheus` has scraped, from `proxies` proxies of `service`, the
/// `canary_config_hash` of `mesh`'s current filter configuration.
///
/// # Panics
///
/// If it has not by then.
pub fn wait_for_config_hash(prometheus: &Prometheus, mesh: &Mesh, service: &str, proxies: usize) {
    let config = mesh
        .filter_configuration()
        .unwrap_or_else(|err| panic!("{err}"));
    prometheus
        .wait_for_config_hash(service, &config, proxies, Duration::from_secs(30))
        .unwrap_or_else(|err| panic!("{err}"));
}
