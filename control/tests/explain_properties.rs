//! `canaryctl explain` says what the filter does: for generated configurations and requests,
//! the request given to `explain` as `-H` and `--cookie` arguments gets the version, rule
//! label and bucket that the filter's own per-request path gives the same request as Envoy
//! holds it. Seeded and counted as the filter's properties (`CANARY_FUZZ_SEED`,
//! `CANARY_FUZZ_CASES`); the generators are the filter's property tests' (`canary-filter-testkit`).

#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

use canary_control::config::explanation::{describe_request, explain};
use canary_filter::header_pairs::{find_header, HeaderMapRequest};
use canary_filter::{CanaryConfig, Decision, Reason, RoutingPlan};
use canary_filter_testkit::{check, config_model, ensure, request_model, Inputs, RequestModel};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Spaces and tabs a client may put around a header value.
const PADDING: &[&str] = &["", "", " ", "  ", "\t"];

#[test]
fn explain_says_what_the_filter_does() {
    let inputs = Inputs::default();
    let cookie = (
        prop::sample::select(&["uid", "canary", "beta", "c1"][..]),
        prop::sample::select(&["1", "never", "u-7", ""][..]),
    );
    let strategy = (
        config_model(6),
        prop::collection::vec(
            (
                request_model(),
                prop::collection::vec(prop::sample::select(PADDING), 16),
                prop::collection::vec(cookie, 0..3),
            ),
            1..6,
        ),
    );
    check(
        "explain_says_what_the_filter_does",
        200,
        strategy,
        &inputs,
        |(model, requests)| {
            let text = model.text();
            let config = CanaryConfig::from_json(text.as_bytes())
                .map_err(|err| TestCaseError::fail(format!("{err}\n{text}")))?;
            let plan = RoutingPlan::try_from(&config)
                .map_err(|err| TestCaseError::fail(format!("{err}\n{text}")))?;
            Inputs::add(&inputs.configurations, 1);
            for (request, padding, cookies) in &requests {
                Inputs::add(&inputs.requests, 1);
                // What the client sends: header lines as text (a shell argument holds no NUL,
                // and Envoy refuses a CR or LF in a value), padded with white space.
                let mut sent: Vec<(String, String)> = Vec::new();
                for (i, (name, value)) in request.headers.iter().enumerate() {
                    let value = String::from_utf8_lossy(value).replace(['\0', '\r', '\n'], " ");
                    let (before, after) = (padding[i % 16], padding[(i + 8) % 16]);
                    sent.push((name.clone(), format!("{before}{value}{after}")));
                }
                let cookies: Vec<String> = cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                let args: Vec<String> = sent
                    .iter()
                    .map(|(name, value)| format!("{name}:{value}"))
                    .collect();
                let description = describe_request(&args, &cookies)
                    .map_err(|err| TestCaseError::fail(format!("{err}: {args:?}")))?;
                let description = canary_filter::decision::RequestDescription {
                    proxy_region: request.proxy_region.clone(),
                    ..description
                };
                let explanation = explain(&config, &plan, &description);

                // What Envoy hands the filter: names lower-cased (by the serialization), values
                // without the white space around them, the cookies in one header after the rest.
                let mut held: Vec<(String, Vec<u8>)> = sent
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            value.trim_matches([' ', '\t']).as_bytes().to_vec(),
                        )
                    })
                    .collect();
                if !cookies.is_empty() {
                    held.push(("cookie".to_string(), cookies.join("; ").into_bytes()));
                }
                let envoy = RequestModel {
                    headers: held,
                    ..request.clone()
                };
                // A request for a host the configuration does not route: the filter leaves it
                // alone, and explain says so.
                if !routed_by_filter(&plan, &envoy) {
                    ensure(!explanation.routed && explanation.version.is_none(), || {
                        format!("{args:?}: the filter leaves it alone, explain {explanation:?}")
                    })?;
                    continue;
                }
                ensure(explanation.routed, || {
                    format!("{args:?}: the filter routes it, explain {explanation:?}")
                })?;
                let decision = decide_as_filter(&plan, &envoy);
                let version = &plan.versions()[decision.version];
                let label = &plan.outcomes()[decision.outcome].label;
                let context = || {
                    format!("{args:?} {cookies:?}: filter {decision:?}, explain {explanation:?}")
                };
                ensure(&explanation.rule == label, context)?;
                match (&explanation.version, decision.reason) {
                    (Some(name), reason) => {
                        ensure(name == &version.name, context)?;
                        ensure(
                            explanation.cluster.as_ref() == Some(&version.cluster),
                            context,
                        )?;
                        if let Reason::Split {
                            bucket,
                            key: Some(_),
                            ..
                        } = reason
                        {
                            ensure(explanation.bucket == Some(bucket), context)?;
                        }
                    }
                    // A random bucket: explain gives the filter's version a chance.
                    (None, Reason::Split { key: None, .. }) => {
                        let chance = explanation
                            .chances
                            .as_ref()
                            .and_then(|chances| chances.get(&version.name))
                            .copied()
                            .unwrap_or(0.0);
                        ensure(chance > 0.0, context)?;
                    }
                    (None, _) => ensure(false, context)?,
                }
            }
            Ok(())
        },
    );
}

/// Whether the filter routes `request` at all, as the glue asks first: by the `:authority` of
/// the header map Envoy hands over.
fn routed_by_filter(plan: &RoutingPlan, request: &RequestModel) -> bool {
    plan.routes_authority(find_header(&request.envoy_header_map(), b":authority"))
}

/// The filter's own per-request path on `request`: the decision over the header map as the
/// glue reads it from Envoy.
fn decide_as_filter(plan: &RoutingPlan, request: &RequestModel) -> Decision {
    let buffer = request.envoy_header_map();
    let random = std::cell::Cell::new(request.random_state);
    let mut view = HeaderMapRequest::new(
        plan,
        || &buffer,
        request.proxy_region.as_deref().map(str::as_bytes),
        &random,
    );
    plan.decide(&mut view)
}

/// The arguments as `canaryctl explain` reads them, case by case.
#[test]
fn explain_arguments_describe_the_request_envoy_holds() {
    let args = |headers: &[&str]| headers.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    let described = describe_request(
        &args(&[
            "X-User-Id: alice",
            "x-region:eu-west-1\t ",
            ":authority: example.com:8080",
            " x-empty :",
            "x-user-id: second",
        ]),
        &args(&["uid=7", "canary=never"]),
    )
    .unwrap();
    let headers: Vec<(&str, &[u8])> = described
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect();
    assert_eq!(
        headers,
        [
            ("x-user-id", &b"alice"[..]),
            ("x-region", b"eu-west-1"),
            (":authority", b"example.com:8080"),
            ("x-empty", b""),
            ("x-user-id", b"second"),
            ("cookie", b"uid=7; canary=never"),
        ]
    );
    assert!(describe_request(&args(&["no colon"]), &[]).is_err());
    assert!(describe_request(&args(&[":no-second-colon"]), &[]).is_err());
}
