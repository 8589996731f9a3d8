//! Istio's sidecar topology, in real Envoys configured from what `canaryctl istio` renders the
//! way istiod configures sidecars from it (`canary_harness::sidecar`): two routed services,
//! `checkout` (canary at 0 %) and `payments` (canary at 100 %), each rendered by its own
//! `canaryctl istio --host` run, and a third service, `search`, that nobody routes. Two
//! client workloads: `frontend`, which both WasmPlugins and both EnvoyFilters select, and
//! `batch`, which none selects.
//!
//! - Each routed service follows its own plan under every form a client writes its host in,
//!   and its plugin counts exactly its own calls;
//! - the third service is left alone: no routing header reaches it, no plugin counts it;
//! - no caller picks a version: `batch` (no plugin) sending every routing header as `canary`
//!   reaches no canary, and neither does `frontend` asking for checkout's canary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use canary_harness::canaryctl::{run, succeeded};
use canary_harness::mesh::wasm_path;
use canary_harness::sidecar::{counted, tally, Resources, Service, Sidecars, Workload};
use canary_harness::Reply;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");
const NAMESPACE: &str = "default";
/// Calls per host form to each routed service.
const CALLS: usize = 60;
/// Calls per host form to the service nobody routes.
const UNROUTED_CALLS: usize = 24;
/// Spoofed calls per host form and service.
const SPOOFED_CALLS: usize = 30;

/// `service`'s configuration as its team writes it, its canary at `weight` %.
fn config(service: &str, weight: u32) -> String {
    format!(
        r#"{{"service": "{service}",
            "versions": [{{"name": "stable", "cluster": "{service}-v1"}}, {{"name": "canary", "cluster": "{service}-v2"}}],
            "default": "stable", "weights": {{"canary": {weight}}}}}"#
    )
}

/// `canaryctl istio` for `service` (its own WasmPlugin, selecting `app=frontend`).
fn render(dir: &std::path::Path, service: &str, weight: u32) -> String {
    let file = dir.join(format!("{service}.json"));
    std::fs::write(&file, config(service, weight)).unwrap();
    let url = format!("file://{}", wasm_path().unwrap().display());
    let output = run(std::process::Command::new(CANARYCTL).args([
        "istio",
        "--config",
        file.to_str().unwrap(),
        "--name",
        &format!("{service}-canary"),
        "--namespace",
        NAMESPACE,
        "--selector",
        "app=frontend",
        "--url",
        &url,
        "--host",
        service,
        "--label-value",
        "stable=v1",
        "--label-value",
        "canary=v2",
    ]));
    succeeded(&output)
}

/// Every form a client in the namespace writes `service`'s host in.
fn host_forms(service: &Service) -> Vec<String> {
    let mut forms = service.host_forms();
    forms.push(format!("{}:80", service.name));
    forms.push(format!("{}:80", service.fqdn()));
    forms
}

/// The routing headers the rendered VirtualServices match, and the default one.
fn routing_headers(rendered: &[&str]) -> Vec<String> {
    let mut names = vec!["x-canary-version".to_string()];
    for text in rendered {
        for doc in text.split("---\n") {
            let doc: serde_json::Value = serde_json::from_str(doc).unwrap();
            if doc["kind"] != "VirtualService" {
                continue;
            }
            for route in doc["spec"]["http"].as_array().unwrap() {
                for entry in route["match"].as_array().into_iter().flatten() {
                    for name in entry["headers"].as_object().unwrap().keys() {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                    }
                }
            }
        }
    }
    names
}

/// `count` calls from `from` to each host form of `service`, with `headers`; the replies by
/// host form.
fn calls(
    sidecars: &Sidecars,
    from: &str,
    service: &Service,
    count: usize,
    headers: &[(&str, &str)],
) -> BTreeMap<String, Vec<Reply>> {
    host_forms(service)
        .into_iter()
        .map(|form| {
            let replies = (0..count)
                .map(|_| {
                    sidecars
                        .call(from, &form, headers)
                        .unwrap_or_else(|err| panic!("{from} -> {form}: {err}"))
                })
                .collect();
            (form, replies)
        })
        .collect()
}

/// Replies by host form as `form: {pod: count}` lines.
fn table(replies: &BTreeMap<String, Vec<Reply>>) -> BTreeMap<String, BTreeMap<String, usize>> {
    replies
        .iter()
        .map(|(form, replies)| (form.clone(), tally(replies)))
        .collect()
}

/// Every form routed to `pod` alone, `count` times.
fn all_to(service: &Service, pod: &str, count: usize) -> BTreeMap<String, BTreeMap<String, usize>> {
    host_forms(service)
        .into_iter()
        .map(|form| (form, BTreeMap::from([(pod.to_string(), count)])))
        .collect()
}

#[test]
fn each_service_follows_its_own_plan_and_no_caller_picks_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let checkout_resources = render(dir.path(), "checkout", 0);
    let payments_resources = render(dir.path(), "payments", 100);
    let mut resources = Resources::default();
    resources.add(&checkout_resources).unwrap();
    resources.add(&payments_resources).unwrap();
    let headers = routing_headers(&[&checkout_resources, &payments_resources]);

    let checkout = Service::new("checkout", NAMESPACE, &["v1", "v2"]);
    let payments = Service::new("payments", NAMESPACE, &["v1", "v2"]);
    let search = Service::new("search", NAMESPACE, &["v1"]);
    let services = [checkout.clone(), payments.clone(), search.clone()];
    let workloads = [
        Workload::new("frontend", NAMESPACE, "frontend"),
        Workload::new("batch", NAMESPACE, "batch"),
    ];
    let sidecars = Sidecars::start(&resources, &services, &workloads, &headers)
        .unwrap_or_else(|err| panic!("{err}"));

    // The unrouted service first: were its calls counted, the counts read after the routed
    // services' calls (handed over by the same timer) would hold them. Every call is made
    // and printed before anything is asserted, so a failing run shows the whole picture.
    let to_search = calls(&sidecars, "frontend", &search, UNROUTED_CALLS, &[]);
    let to_checkout = calls(&sidecars, "frontend", &checkout, CALLS, &[]);
    let to_payments = calls(&sidecars, "frontend", &payments, CALLS, &[]);
    println!(
        "frontend -> checkout (canary 0 %): {:?}",
        table(&to_checkout)
    );
    println!(
        "frontend -> payments (canary 100 %): {:?}",
        table(&to_payments)
    );
    println!("frontend -> search (not routed): {:?}", table(&to_search));

    // Each plugin counts its own service's calls, and nobody counts search's.
    let per_service = (CALLS * host_forms(&checkout).len()) as u64;
    let want_counted = counted(&[
        ("checkout", "stable", per_service),
        ("checkout", "canary", 0),
        ("payments", "stable", 0),
        ("payments", "canary", per_service),
    ]);
    let total: u64 = want_counted.values().sum();
    let mut frontend_counted = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        frontend_counted = sidecars.requests_counted("frontend").unwrap();
        if frontend_counted.values().sum::<u64>() >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("frontend's canary_requests_total by (service, version): {frontend_counted:?}");

    // A caller without the plugin sends every routing header, asking for the canary; so does
    // the plugin's own caller, to checkout.
    let spoofed: Vec<(&str, &str)> = headers.iter().map(|h| (h.as_str(), "canary")).collect();
    let batch_checkout = calls(&sidecars, "batch", &checkout, SPOOFED_CALLS, &spoofed);
    let batch_payments = calls(&sidecars, "batch", &payments, SPOOFED_CALLS, &spoofed);
    let frontend_spoofed = calls(&sidecars, "frontend", &checkout, SPOOFED_CALLS, &spoofed);
    println!(
        "batch (no plugin) -> checkout, spoofed {spoofed:?}: {:?}",
        table(&batch_checkout)
    );
    println!(
        "batch (no plugin) -> payments, spoofed: {:?}",
        table(&batch_payments)
    );
    println!(
        "frontend -> checkout, spoofed: {:?}",
        table(&frontend_spoofed)
    );
    let batch_counted = sidecars.requests_counted("batch").unwrap();

    assert_eq!(table(&to_checkout), all_to(&checkout, "checkout-v1", CALLS));
    assert_eq!(table(&to_payments), all_to(&payments, "payments-v2", CALLS));
    assert_eq!(
        table(&to_search),
        all_to(&search, "search-v1", UNROUTED_CALLS)
    );
    // What reached each pod: its own service's version header and no other; nothing at search.
    let seen = |reply: &Reply, header: &str| {
        reply
            .header(&format!("x-seen-{header}"))
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    for (replies, service, version) in [
        (&to_checkout, "checkout", "stable"),
        (&to_payments, "payments", "canary"),
    ] {
        for reply in replies.values().flatten() {
            let written: Vec<(String, String)> = headers
                .iter()
                .filter_map(|header| seen(reply, header).map(|value| (header.clone(), value)))
                .collect();
            assert_eq!(
                written,
                [(format!("x-canary-version-{service}"), version.to_string())],
                "the headers {service}'s pod received"
            );
        }
    }
    for reply in to_search.values().flatten() {
        for header in &headers {
            assert_eq!(seen(reply, header), None, "{header} reached search");
        }
    }
    assert_eq!(
        frontend_counted, want_counted,
        "canary_requests_total by (service, version)"
    );
    assert_eq!(
        table(&batch_checkout),
        all_to(&checkout, "checkout-v1", SPOOFED_CALLS)
    );
    assert_eq!(
        table(&batch_payments),
        all_to(&payments, "payments-v1", SPOOFED_CALLS)
    );
    assert!(batch_counted.is_empty(), "batch's sidecar runs no plugin");
    assert_eq!(
        table(&frontend_spoofed),
        all_to(&checkout, "checkout-v1", SPOOFED_CALLS)
    );
}
