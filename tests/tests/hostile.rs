//! Case 6: Hostile requests get normal answers, the VM survives them, and routing stays intact.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use canary_filter::bucket::bucket_of;
use canary_harness::preamble::{contract_cluster, get_ok, mesh, upstream_of};

const CONFIG: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable", "weights": {"canary": 50},
  "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}], "seed": 3},
  "region": {"header": "x-region"},
  "rules": [
    {"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
    {"name": "opt-out", "when": {"cookie": {"name": "canary", "equals": "never"}}, "version": "stable"},
    {"name": "eu", "when": {"region": ["eu-west-1"]}, "version": "canary"}
  ]
}"#;

fn raw_get(headers: &[u8]) -> Vec<u8> {
    let mut request = b"GET / HTTP/1.1\r\nHost: hostile\r\n".to_vec();
    request.extend_from_slice(headers);
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request
}

fn cluster_for(bytes: &[u8]) -> &'static str {
    if bucket_of(bytes, 3) < 5000 {
        "app-v2"
    } else {
        "app-v1"
    }
}

#[test]
fn hostile_requests_are_answered_and_routing_stays_intact() {
    let mut mesh = mesh(CONFIG);
    let before: Vec<String> = (0..100)
        .map(|i| upstream_of(&mesh, &format!("h-{i}")))
        .collect();

    // A 30 KB key: hashed like any other.
    let long_key = "k".repeat(30 * 1024);
    assert_eq!(
        get_ok(&mesh, &[("x-user-id", &long_key)]).upstream(),
        Some(cluster_for(long_key.as_bytes()))
    );

    // Bytes that are not UTF-8 in the key, a rule header, the region and the cookie header.
    let non_utf8: &[u8] = b"\xff\xfe-user-\xc3\x28";
    let mut headers = b"x-user-id: ".to_vec();
    headers.extend_from_slice(non_utf8);
    headers.extend_from_slice(b"\r\n");
    let reply = mesh.raw(&raw_get(&headers)).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.upstream(), Some(cluster_for(non_utf8)));
    let reply = mesh
        .raw(&raw_get(b"x-canary: \xff\xff\r\nx-region: \xe9u-west-1\r\ncookie: uid=\xff\xfe; canary=\x80\r\n"))
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.upstream(), Some(cluster_for(b"\xff\xfe")));

    // 400 cookies, the key last.
    let mut cookies: String = (0..400).map(|i| format!("c{i}=v{i}; ")).collect();
    cookies.push_str("uid=cookie-monster");
    assert_eq!(
        get_ok(&mesh, &[("cookie", &cookies)]).upstream(),
        Some(contract_cluster("cookie-monster", 3, 50.0))
    );

    // Malformed cookie strings: no key is found, so the request draws a random bucket.
    for cookie in [
        ";;;",
        "=",
        "uid",
        "==uid==",
        "; uid ; =x",
        "uid=\"",
        "\"uid=1\"",
    ] {
        let reply = get_ok(&mesh, &[("cookie", cookie)]);
        assert!(
            matches!(reply.upstream(), Some("app-v1" | "app-v2")),
            "{cookie:?}"
        );
    }
    // An empty key is no key.
    let reply = get_ok(&mesh, &[("x-user-id", "")]);
    assert!(matches!(reply.upstream(), Some("app-v1" | "app-v2")));

    // The VM survived all of it: rules and sticky routing still answer as before.
    assert!(mesh.front_mut().is_running());
    assert_eq!(
        get_ok(&mesh, &[("x-canary", "always"), ("x-user-id", "h-0")]).upstream(),
        Some("app-v2")
    );
    assert_eq!(
        get_ok(
            &mesh,
            &[("cookie", "canary=never"), ("x-region", "eu-west-1")]
        )
        .upstream(),
        Some("app-v1")
    );
    let after: Vec<String> = (0..100)
        .map(|i| upstream_of(&mesh, &format!("h-{i}")))
        .collect();
    assert_eq!(before, after);
    for (i, got) in after.iter().enumerate() {
        assert_eq!(got, contract_cluster(&format!("h-{i}"), 3, 50.0));
    }
    let log = mesh.front().log();
    assert!(
        !log.contains("panicked"),
        "the VM panicked:\n{}",
        mesh.front().log_tail(20)
    );
    assert!(
        !log.contains("Function: proxy_on_request_headers failed"),
        "the VM failed"
    );
}
