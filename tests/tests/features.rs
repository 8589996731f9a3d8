//! Each per-request cost belongs to an option of the configuration, and an option left off is
//! neither done nor defined: the routing headers (either or both), the response version
//! header, and each metric.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use canary_harness::mesh::{Mesh, Push};
use canary_harness::preamble;
use canary_harness::preamble::{contract_cluster, get_ok, mesh};

/// Two versions at 50 %, a sticky header key, and `extra` fields.
fn config(extra: &str) -> String {
    format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "app-v2"}}],
            "default": "stable", "weights": {{"canary": 50}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": 5}}{extra}}}"#
    )
}

fn version_of(cluster: &str) -> &'static str {
    if cluster == "app-v2" {
        "canary"
    } else {
        "stable"
    }
}

#[test]
fn routing_and_response_headers_are_written_only_when_configured() {
    let mesh = mesh(&config(""));
    // Defaults: both request headers, no response header.
    for i in 0..40 {
        let key = format!("f-{i}");
        let want = contract_cluster(&key, 5, 50.0);
        let reply = get_ok(&mesh, &[("x-user-id", &key)]);
        assert_eq!(reply.upstream(), Some(want));
        assert_eq!(reply.header("x-seen-route"), Some(want));
        assert_eq!(reply.header("x-seen-version"), Some(version_of(want)));
        assert_eq!(reply.header("x-canary-version"), None, "{key}");
    }

    // Asked for: the response says the version, the one that answered.
    let asked = config(r#", "response_version_header": true"#);
    assert_eq!(mesh.push_config(&asked).unwrap(), Push::Accepted);
    let probe = "f-probe";
    let want = contract_cluster(probe, 5, 50.0);
    mesh.wait_for(Duration::from_secs(2), || {
        Ok(get_ok(&mesh, &[("x-user-id", probe)])
            .header("x-canary-version")
            .is_some())
    })
    .unwrap();
    for i in 0..40 {
        let key = format!("f-{i}");
        let want = contract_cluster(&key, 5, 50.0);
        let reply = get_ok(&mesh, &[("x-user-id", &key)]);
        assert_eq!(reply.upstream(), Some(want));
        assert_eq!(reply.header("x-canary-version"), Some(version_of(want)));
    }

    // The version header alone (as for Istio): no cluster header is written, so this Envoy,
    // which routes on the cluster header, takes its fallback route to the default version,
    // and the upstream sees the filter's version header.
    let version_only = config(r#", "route_header": """#);
    assert_eq!(mesh.push_config(&version_only).unwrap(), Push::Accepted);
    mesh.wait_for(Duration::from_secs(2), || {
        Ok(get_ok(&mesh, &[("x-user-id", probe)])
            .header("x-seen-route")
            .is_none())
    })
    .unwrap();
    for i in 0..40 {
        let key = format!("f-{i}");
        let want = contract_cluster(&key, 5, 50.0);
        let reply = get_ok(&mesh, &[("x-user-id", &key)]);
        assert_eq!(reply.upstream(), Some("app-v1"), "{key}");
        // The upstream echoes only headers it received.
        assert_eq!(reply.header("x-seen-route"), None, "{key}");
        assert_eq!(
            reply.header("x-seen-version"),
            Some(version_of(want)),
            "{key}"
        );
    }

    // The cluster header alone (as shipped for Envoy): routed by it, no version header.
    let cluster_only = config(r#", "version_header": """#);
    assert_eq!(mesh.push_config(&cluster_only).unwrap(), Push::Accepted);
    mesh.wait_for(Duration::from_secs(2), || {
        Ok(get_ok(&mesh, &[("x-user-id", probe)])
            .header("x-seen-version")
            .is_none())
    })
    .unwrap();
    assert_eq!(
        get_ok(&mesh, &[("x-user-id", probe)]).upstream(),
        Some(want)
    );

    // Neither: refused, naming the field; the previous configuration keeps serving.
    let neither = config(r#", "route_header": "", "version_header": """#);
    assert_eq!(mesh.push_config(&neither).unwrap(), Push::Rejected);
    mesh.wait_for(Duration::from_secs(5), || {
        Ok(mesh.front().log().contains(
            "configuration refused: route_header: route_header and version_header are both empty",
        ))
    })
    .unwrap();
    assert_eq!(
        get_ok(&mesh, &[("x-user-id", probe)]).upstream(),
        Some(want)
    );
}

/// The names of the filter's metrics Envoy has, in `/stats`.
fn defined_metrics(mesh: &Mesh) -> Vec<String> {
    let text = mesh.front().admin_get("/stats?filter=wasmcustom").unwrap();
    text.lines()
        .filter_map(|line| line.split(':').next())
        .map(str::to_string)
        .collect()
}

fn sum_of(mesh: &Mesh, metric: &str) -> u64 {
    let text = mesh.front().admin_get("/stats?filter=wasmcustom").unwrap();
    text.lines()
        .filter(|line| line.starts_with(&format!("wasmcustom.{metric}.")))
        .filter_map(|line| line.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
        .sum()
}

/// A metric turned off is not even defined (so nothing is paid for it per request); the others
/// count every request.
#[test]
fn metrics_turned_off_are_not_defined() {
    let requests = 60;
    let only_requests = mesh(&config(
        r#", "metrics": {"responses": false, "latency": false}"#,
    ));
    for i in 0..requests {
        get_ok(&only_requests, &[("x-user-id", &format!("m-{i}"))]);
    }
    only_requests
        .wait_for(Duration::from_secs(5), || {
            Ok(sum_of(&only_requests, "canary_requests_total") == requests)
        })
        .unwrap();
    let names = defined_metrics(&only_requests);
    assert!(
        names
            .iter()
            .all(|name| !name.contains("canary_responses_total")
                && !name.contains("canary_request_duration_ms")),
        "{names:?}"
    );

    let no_requests = mesh(&config(r#", "metrics": {"requests": false}"#));
    for i in 0..requests {
        get_ok(&no_requests, &[("x-user-id", &format!("m-{i}"))]);
    }
    no_requests
        .wait_for(Duration::from_secs(5), || {
            Ok(sum_of(&no_requests, "canary_responses_total") == requests)
        })
        .unwrap();
    let names = defined_metrics(&no_requests);
    assert!(
        names
            .iter()
            .all(|name| !name.contains("canary_requests_total")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|name| name.contains("canary_request_duration_ms")),
        "{names:?}"
    );
}

/// A plan that reads a single header name fetches that header alone (one host call that returns
/// less than the whole map) and decides exactly as from the map: a header present with an
/// empty value is present, the first of repeated headers counts, an absent one is absent.
#[test]
fn a_plan_reading_one_header_decides_as_from_the_whole_map() {
    let flagged = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
        "default": "stable",
        "rules": [{"name": "flag", "when": {"header": {"name": "x-flag", "present": true}}, "version": "canary"}],
        "version_header": ""}"#;
    let mesh = mesh(flagged);
    let raw = |headers: &str| {
        let request =
            format!("GET / HTTP/1.1\r\nHost: front\r\n{headers}Connection: close\r\n\r\n");
        let reply = mesh.raw(request.as_bytes()).unwrap();
        assert_eq!(reply.status, 200, "{headers:?}: {reply:?}");
        reply.upstream().unwrap_or_default().to_string()
    };
    assert_eq!(raw("x-flag: 1\r\n"), "app-v2");
    assert_eq!(raw("x-flag:\r\n"), "app-v2", "present with an empty value");
    assert_eq!(raw("x-other: 1\r\n"), "app-v1");
    assert_eq!(raw(""), "app-v1");

    // A sticky key alone: the first of two values is the key, as in the map.
    let mesh = preamble::mesh(&config(r#", "version_header": """#));
    let keys = (0..200).map(|i| format!("one-{i}"));
    for key in keys {
        let want = contract_cluster(&key, 5, 50.0);
        let request = format!(
            "GET / HTTP/1.1\r\nHost: front\r\nx-user-id: {key}\r\nx-user-id: other-{key}\r\nConnection: close\r\n\r\n"
        );
        let reply = mesh.raw(request.as_bytes()).unwrap();
        assert_eq!(reply.upstream(), Some(want), "{key}");
    }
}
