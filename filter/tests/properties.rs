//! Properties of the filter's core on generated inputs: configurations (valid ones and mutated
//! ones), requests, header-map buffers and cookie strings. Each property draws from its own
//! seeded stream; `cargo test` runs a few hundred cases of each, `make fuzz` millions (see
//! `canary_filter_testkit::check` for the variables). The requests go through the filter's own per-request
//! path: `HeaderMapRequest` over a header map serialized as Envoy hands it over.

#![cfg(not(target_arch = "wasm32"))]
// Test code asserts by panicking; the deny lints guard the data path, not this file.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

use canary_filter::cookie::find_cookie;
use canary_filter::decision::RequestDescription;
use canary_filter::header_pairs::{find_header, HeaderMapRequest};
use canary_filter::{CanaryConfig, Decision, Reason, RoutingPlan};
use canary_filter_testkit::{
    check, config_case, config_model, cookie_header, ensure, request_model, resolves,
    serialize_pairs, ActionModel, ConfigCase, ConfigModel, CookieHeader, Inputs, Json,
    RequestModel, Style, WeightsModel,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

/// A generated request through the filter's own per-request path (the testkit generates the
/// request; it does not know the filter).
trait FilterPath {
    /// The decision over the header map as the glue reads it from Envoy.
    fn decide_as_filter(&self, plan: &RoutingPlan) -> Decision;
    /// Whether the filter routes this request at all: what the glue asks first, with the
    /// request's `:authority` as Envoy hands it over.
    fn routed_by_filter(&self, plan: &RoutingPlan) -> bool;
    /// The decision over `buffer` as the request's header map.
    fn decide_on_buffer(&self, plan: &RoutingPlan, buffer: &[u8]) -> Decision;
}

impl FilterPath for RequestModel {
    fn decide_as_filter(&self, plan: &RoutingPlan) -> Decision {
        self.decide_on_buffer(plan, &self.envoy_header_map())
    }

    fn routed_by_filter(&self, plan: &RoutingPlan) -> bool {
        plan.routes_authority(find_header(&self.envoy_header_map(), b":authority"))
    }

    fn decide_on_buffer(&self, plan: &RoutingPlan, buffer: &[u8]) -> Decision {
        let random = std::cell::Cell::new(self.random_state);
        let mut request = HeaderMapRequest::new(
            plan,
            || buffer,
            self.proxy_region.as_deref().map(str::as_bytes),
            &random,
        );
        plan.decide(&mut request)
    }
}

/// The contract's example: rules on a header, a cookie and the region, two sticky keys.
const EXAMPLE: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable",
  "weights": {"canary": 10},
  "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}]},
  "region": {"header": "x-region"},
  "rules": [
    {"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
    {"name": "opt-out", "when": {"cookie": {"name": "canary", "equals": "never"}}, "version": "stable"},
    {"name": "eu-first", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 50}}
  ]
}"#;

/// The version is declared, the outcome exists and is that version's, and its label names
/// what decided: the rule, `weights` for the top-level split, `default` for a missing key.
fn check_decision(plan: &RoutingPlan, decision: &Decision) -> Result<(), TestCaseError> {
    ensure(decision.version < plan.versions().len(), || {
        format!("version {} of {}", decision.version, plan.versions().len())
    })?;
    let outcome = plan.outcomes().get(decision.outcome);
    ensure(
        outcome.is_some_and(|o| o.version == decision.version),
        || format!("outcome {} of {:?}", decision.outcome, plan.outcomes()),
    )?;
    let rules: Vec<&str> = plan.rule_names().collect();
    let label = match decision.reason {
        Reason::Pinned { rule }
        | Reason::Split {
            rule: Some(rule), ..
        } => rules[rule],
        Reason::Split { rule: None, .. } => "weights",
        Reason::MissingKey { .. } => "default",
    };
    ensure(outcome.is_some_and(|o| o.label == label), || {
        format!("{decision:?} counted under {outcome:?}")
    })
}

fn compile(text: &[u8]) -> Result<RoutingPlan, TestCaseError> {
    RoutingPlan::from_json(text).map_err(|err| {
        TestCaseError::fail(format!(
            "a valid configuration was refused: {err}\n{}",
            String::from_utf8_lossy(text)
        ))
    })
}

/// Generated configuration text, or bytes that are mostly JSON's own characters.
#[derive(Debug, Clone)]
enum ConfigInput {
    Generated(Box<ConfigCase>),
    Bytes(Vec<u8>),
}

impl ConfigInput {
    fn text(&self) -> Vec<u8> {
        match self {
            ConfigInput::Generated(case) => case.text(),
            ConfigInput::Bytes(bytes) => bytes.clone(),
        }
    }
}

fn config_input() -> impl Strategy<Value = ConfigInput> {
    let json_byte = prop_oneof![
        4 => prop::sample::select(&b"{}[],:\"\\ \n0123456789.-eE+truefalsnl/uU\xc3\xa9a"[..]),
        1 => any::<u8>(),
    ];
    prop_oneof![
        8 => config_case().prop_map(|case| ConfigInput::Generated(Box::new(case))),
        1 => prop::collection::vec(json_byte, 0..64).prop_map(ConfigInput::Bytes),
    ]
}

/// 1. Parsing, compiling and deciding never panic, whatever the configuration; a refused one
///    is refused with a message that starts with its field.
#[test]
fn configurations_never_panic() {
    let inputs = Inputs::default();
    let strategy = (config_input(), prop::collection::vec(request_model(), 0..4));
    check(
        "configurations_never_panic",
        300,
        strategy,
        &inputs,
        |(input, requests)| {
            let text = input.text();
            Inputs::add(&inputs.configurations, 1);
            let _ = CanaryConfig::from_json(&text);
            match RoutingPlan::from_json(&text) {
                Ok(plan) => {
                    for request in &requests {
                        Inputs::add(&inputs.requests, 1);
                        check_decision(&plan, &request.decide_as_filter(&plan))?;
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    ensure(message.starts_with(err.field()), || {
                        format!("{message:?} does not start with {:?}", err.field())
                    })?;
                }
            }
            Ok(())
        },
    );
}

/// A header-map buffer: well formed, or well formed then corrupted, or any bytes.
#[derive(Debug, Clone)]
enum BufferCase {
    WellFormed(Vec<(Vec<u8>, Vec<u8>)>),
    /// Length words (the count, or a key or value length) overwritten, then perhaps cut.
    Corrupted(
        Vec<(Vec<u8>, Vec<u8>)>,
        Vec<(Index, Index, u32)>,
        Option<Index>,
    ),
    Bytes(Vec<u8>),
}

impl BufferCase {
    fn bytes(&self) -> Vec<u8> {
        match self {
            BufferCase::WellFormed(pairs) => serialize_pairs(pairs),
            BufferCase::Corrupted(pairs, corruptions, cut) => {
                let mut buffer = serialize_pairs(pairs);
                let words = 1 + 2 * pairs.len();
                for (word, kind, random) in corruptions {
                    let at = 4 * word.index(words);
                    let old = u32::from_le_bytes(buffer[at..at + 4].try_into().unwrap());
                    let len = buffer.len() as u32;
                    let new = [
                        0,
                        1,
                        old.wrapping_sub(1),
                        old.wrapping_add(1),
                        u32::MAX,
                        len,
                        len.wrapping_sub(at as u32),
                        *random,
                    ][kind.index(8)];
                    buffer[at..at + 4].copy_from_slice(&new.to_le_bytes());
                }
                if let Some(cut) = cut {
                    buffer.truncate(cut.index(buffer.len() + 1));
                }
                buffer
            }
            BufferCase::Bytes(bytes) => bytes.clone(),
        }
    }
}

fn header_pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let name = prop_oneof![
        4 => prop::sample::select(&["x-user-id", "x-canary", "cookie", "x-region", ":path", ""][..])
            .prop_map(|name| name.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ];
    let value = prop_oneof![
        2 => prop::sample::select(&["always", "uid=7; canary=never", "eu-west-1", "u1", ""][..])
            .prop_map(|value| value.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec((name, value), 0..8)
}

fn buffer_case() -> impl Strategy<Value = BufferCase> {
    prop_oneof![
        2 => header_pairs().prop_map(BufferCase::WellFormed),
        2 => (
            header_pairs(),
            prop::collection::vec((any::<Index>(), any::<Index>(), any::<u32>()), 1..3),
            prop::option::of(any::<Index>()),
        )
            .prop_map(|(pairs, corruptions, cut)| BufferCase::Corrupted(pairs, corruptions, cut)),
        1 => prop::collection::vec(any::<u8>(), 0..96).prop_map(BufferCase::Bytes),
    ]
}

/// 1. Reading a header map never panics, whatever the host hands over, and the decision on it
///    picks a declared version; in a well-formed map a name's first header is the one found.
#[test]
fn header_buffers_never_panic_and_the_first_header_wins() {
    let plan = RoutingPlan::from_json(EXAMPLE.as_bytes()).unwrap();
    let inputs = Inputs::default();
    let names: [&[u8]; 6] = [
        b"x-user-id",
        b"x-canary",
        b"cookie",
        b"x-region",
        b":path",
        b"",
    ];
    check(
        "header_buffers_never_panic_and_the_first_header_wins",
        2_000,
        (buffer_case(), any::<u64>()),
        &inputs,
        |(case, random_state)| {
            let buffer = case.bytes();
            Inputs::add(&inputs.header_buffers, 1);
            for name in names {
                let found = find_header(&buffer, name);
                if let BufferCase::WellFormed(pairs) = &case {
                    let first = pairs
                        .iter()
                        .find(|(have, _)| have.as_slice() == name)
                        .map(|(_, value)| value.as_slice());
                    ensure(found == first, || {
                        format!("{:?}: found {found:?}, the first is {first:?}", name)
                    })?;
                }
            }
            let request = RequestModel {
                headers: Vec::new(),
                proxy_region: None,
                random_state: random_state | 1,
            };
            check_decision(&plan, &request.decide_on_buffer(&plan, &buffer))
        },
    );
}

/// A cookie header built from known pairs, or any bytes.
#[derive(Debug, Clone)]
enum CookieCase {
    Built(CookieHeader),
    Bytes(Vec<u8>),
}

/// 1. Reading a cookie never panics, and in a header built from pairs the first pair of a
///    name is the one found, its white space and quotes removed.
#[test]
fn cookie_strings_never_panic_and_the_first_pair_wins() {
    let inputs = Inputs::default();
    let strategy = prop_oneof![
        4 => cookie_header().prop_map(CookieCase::Built),
        1 => prop::collection::vec(
            prop_oneof![prop::sample::select(&b"=; \t\"uidUID"[..]), any::<u8>()],
            0..48,
        )
        .prop_map(CookieCase::Bytes),
    ];
    let names = [
        "uid",
        "UID",
        "canary",
        "beta",
        "c1",
        "a",
        "session-id",
        "missing",
        "",
    ];
    check(
        "cookie_strings_never_panic_and_the_first_pair_wins",
        2_000,
        strategy,
        &inputs,
        |case| {
            Inputs::add(&inputs.cookie_strings, 1);
            match &case {
                CookieCase::Built(header) => {
                    let bytes = header.bytes();
                    for name in names {
                        let found = find_cookie(&bytes, name.as_bytes());
                        let first = header.first(name);
                        ensure(found == first, || {
                            format!(
                                "{name:?} in {:?}: found {found:?}, the first is {first:?}",
                                String::from_utf8_lossy(&bytes)
                            )
                        })?;
                    }
                }
                CookieCase::Bytes(bytes) => {
                    for name in names {
                        let _ = find_cookie(bytes, name.as_bytes());
                    }
                }
            }
            Ok(())
        },
    );
}

/// 2. Every request of every valid configuration goes to a declared version, counted under an
///    outcome of that version whose label names what decided.
#[test]
fn the_chosen_version_is_declared() {
    check_requests("the_chosen_version_is_declared", 16, |plan, request| {
        check_decision(plan, &request.decide_as_filter(plan))
    });
}

/// Checks `property` on 300 generated configurations (up to `max_versions` versions), each
/// compiled, with 1 to 7 generated requests given to `check_request`.
fn check_requests(
    property: &str,
    max_versions: usize,
    check_request: impl Fn(&RoutingPlan, &RequestModel) -> Result<(), TestCaseError>,
) {
    let inputs = Inputs::default();
    let strategy = (
        config_model(max_versions),
        prop::collection::vec(request_model(), 1..8),
    );
    check(property, 300, strategy, &inputs, |(model, requests)| {
        let plan = compile(model.text().as_bytes())?;
        Inputs::add(&inputs.configurations, 1);
        for request in &requests {
            Inputs::add(&inputs.requests, 1);
            check_request(&plan, request)?;
        }
        Ok(())
    });
}

/// 2. The decision is the one the configuration describes, worked out from the generated
///    configuration rather than the plan: a pin gives the rule's version, a split gives the
///    version whose range (declared order, consecutive, from bucket 0) holds the bucket or else
///    the default, a missing key gives the default under `when_missing: default`.
#[test]
fn decisions_follow_the_configuration() {
    let inputs = Inputs::default();
    let strategy = (
        config_model(6),
        prop::collection::vec(request_model(), 1..8),
    );
    check(
        "decisions_follow_the_configuration",
        300,
        strategy,
        &inputs,
        |(model, requests)| {
            let plan = compile(model.text().as_bytes())?;
            Inputs::add(&inputs.configurations, 1);
            // Requests seldom draw a bucket at the edge of a range: each split is also asked
            // directly about the buckets at and around every edge.
            for (rule, weights) in model.splits() {
                let mut edges = vec![0, 1, 9_998, 9_999];
                let mut end = 0;
                for version in 0..model.versions.len() {
                    end += weights
                        .iter()
                        .find(|(v, _)| *v == version)
                        .map_or(0, |(_, points)| *points);
                    edges.extend([end.saturating_sub(1), end, end + 1]);
                }
                for bucket in edges.into_iter().filter(|bucket| *bucket < 10_000) {
                    let got = plan.split_version(rule, bucket);
                    let want = version_of_bucket(&model, weights, bucket);
                    ensure(got == Some(want), || {
                        format!("split {rule:?}, bucket {bucket}: {got:?}, the configuration gives {want}")
                    })?;
                }
            }
            for request in &requests {
                Inputs::add(&inputs.requests, 1);
                let decision = request.decide_as_filter(&plan);
                let want = match decision.reason {
                    Reason::Pinned { rule } => match model.rules[rule].action {
                        ActionModel::Pin(version) => version,
                        ActionModel::Split(_) => usize::MAX,
                    },
                    Reason::Split { rule, bucket, .. } => {
                        let weights = match rule {
                            None => &model.weights,
                            Some(rule) => match &model.rules[rule].action {
                                ActionModel::Split(weights) => weights,
                                ActionModel::Pin(_) => {
                                    return Err(TestCaseError::fail(format!(
                                        "{decision:?}: rule {rule} pins"
                                    )))
                                }
                            },
                        };
                        version_of_bucket(&model, weights, bucket)
                    }
                    Reason::MissingKey { .. } => {
                        let defaulting = model
                            .sticky
                            .as_ref()
                            .is_some_and(|sticky| sticky.when_missing_default == Some(true));
                        if defaulting {
                            model.default
                        } else {
                            usize::MAX
                        }
                    }
                };
                ensure(decision.version == want, || {
                    format!("{decision:?}, the configuration gives version {want}\n{request:?}")
                })?;
            }
            Ok(())
        },
    );
}

/// The version a split's weights give `bucket`: non-default versions take consecutive ranges
/// from bucket 0 in the order the versions are declared; past them, the default.
fn version_of_bucket(model: &ConfigModel, weights: &WeightsModel, bucket: u32) -> usize {
    let mut end = 0;
    for version in 0..model.versions.len() {
        let weight = weights
            .iter()
            .find(|(v, _)| *v == version)
            .map_or(0, |(_, points)| *points);
        end += weight;
        if bucket < end {
            return version;
        }
    }
    model.default
}

/// 3. The same request gets the same answer: decided twice, on a clone of the plan and on a
///    plan compiled again from the same text.
#[test]
fn same_input_same_answer() {
    let inputs = Inputs::default();
    let strategy = (
        config_model(6),
        prop::collection::vec(request_model(), 1..8),
    );
    check(
        "same_input_same_answer",
        300,
        strategy,
        &inputs,
        |(model, requests)| {
            let text = model.text();
            let plan = compile(text.as_bytes())?;
            let clone = plan.clone();
            let again = compile(text.as_bytes())?;
            Inputs::add(&inputs.configurations, 1);
            for request in &requests {
                Inputs::add(&inputs.requests, 1);
                let first = request.decide_as_filter(&plan);
                for (what, plan) in [("again", &plan), ("clone", &clone), ("recompiled", &again)] {
                    let other = request.decide_as_filter(plan);
                    ensure(other == first, || {
                        format!("{first:?}, then {other:?} ({what})")
                    })?;
                }
            }
            Ok(())
        },
    );
}

/// 2b. A configuration with `hosts` routes a request only when its `:authority` (port cut,
///     case ignored) is one of them, or a short form (`NAME`, `NAME.NAMESPACE`,
///     `NAME.NAMESPACE.svc`) of one written `NAME.NAMESPACE.svc.DOMAIN`; without `hosts`, every
///     request. Worked out from the generated configuration, not the plan.
#[test]
fn only_requests_for_the_hosts_are_routed() {
    let inputs = Inputs::default();
    let strategy = (
        config_model(4),
        prop::collection::vec(request_model(), 1..8),
    );
    check(
        "only_requests_for_the_hosts_are_routed",
        300,
        strategy,
        &inputs,
        |(model, requests)| {
            let plan = compile(model.text().as_bytes())?;
            Inputs::add(&inputs.configurations, 1);
            for request in &requests {
                Inputs::add(&inputs.requests, 1);
                let authority = request
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(":authority"))
                    .map(|(_, value)| value.as_slice());
                let want = match &model.hosts {
                    None => true,
                    Some(hosts) => authority.is_some_and(|a| listed(hosts, a)),
                };
                let got = request.routed_by_filter(&plan);
                ensure(got == want, || {
                    format!(
                        "routed {got}, the configuration says {want}: {:?}, {:?}",
                        model.hosts, request.headers
                    )
                })?;
            }
            Ok(())
        },
    );
}

/// Whether `authority` names one of `hosts`, by the configuration reference's words.
fn listed(hosts: &[String], authority: &[u8]) -> bool {
    let authority = String::from_utf8_lossy(authority).to_ascii_lowercase();
    let host = match authority.rsplit_once(':') {
        Some((host, port))
            if (host.starts_with('[') || !host.contains(':'))
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => authority.as_str(),
    };
    hosts.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let labels: Vec<&str> = entry.split('.').collect();
        let mut names = vec![entry.clone()];
        if labels.len() >= 4 && labels[2] == "svc" {
            for count in 1..=3 {
                names.push(labels[..count].join("."));
            }
        }
        names.iter().any(|name| name == host)
    })
}

/// 3b. `canary_config_hash` is a function of the parsed configuration: the same configuration
///     written otherwise (every object's keys in the opposite order, pretty-printed, keys
///     escaped) hashes the same, and one changed value (another service, another cluster)
///     hashes otherwise. This is what lets canaryctl confirm a change through istiod, which
///     writes the document anew.
#[test]
fn the_configuration_hash_is_the_parsed_configurations() {
    let inputs = Inputs::default();
    check(
        "the_configuration_hash_is_the_parsed_configurations",
        300,
        config_model(6),
        &inputs,
        |model| {
            let hash = |text: &str| {
                let config = CanaryConfig::from_json(text.as_bytes())
                    .map_err(|err| TestCaseError::fail(format!("refused: {err}\n{text}")))?;
                canary_filter::metrics::config_hash(&config)
                    .map_err(|err| TestCaseError::fail(format!("not hashed: {err}")))
            };
            let text = model.text();
            let written_otherwise = model.to_json().keys_reversed().write(Style {
                pretty: true,
                escape_keys: true,
            });
            Inputs::add(&inputs.configurations, 4);
            let original = hash(&text)?;
            let same = hash(&written_otherwise)?;
            ensure(same == original, || {
                format!("{original:08x} for\n{text}\nbut {same:08x} for\n{written_otherwise}")
            })?;
            let mut other_service = model.clone();
            other_service.service = Some("not-in-the-pool".to_string());
            let mut other_cluster = model.clone();
            other_cluster.versions[0].1 = "cluster-not-in-the-pool".to_string();
            let mut other_hosts = model.clone();
            other_hosts.hosts = Some(vec!["not-in-the-pool.example".to_string()]);
            for (what, changed) in [
                ("service", other_service),
                ("cluster", other_cluster),
                ("hosts", other_hosts),
            ] {
                let other = hash(&changed.text())?;
                ensure(other != original, || {
                    format!(
                        "another {what}, the same hash {original:08x}: {}",
                        changed.text()
                    )
                })?;
            }
            Ok(())
        },
    );
}

/// 4. Raising a non-default version's weight (top-level or in a rule's split, the split still
///    at most 100 %) keeps every request that was on it on it. Later versions' ranges may
///    move; this one's only grows.
#[test]
fn raising_a_weight_keeps_its_users() {
    let inputs = Inputs::default();
    let strategy = (
        config_model(6),
        prop::collection::vec(request_model(), 1..16),
        any::<Index>(),
        any::<Index>(),
        any::<Index>(),
    );
    check(
        "raising_a_weight_keeps_its_users",
        300,
        strategy,
        &inputs,
        |(model, requests, which_split, which_version, raise)| {
            let splits = model.splits();
            let (rule, weights) = splits[which_split.index(splits.len())];
            let candidates: Vec<usize> = (0..model.versions.len())
                .filter(|&version| version != model.default)
                .collect();
            let version = candidates[which_version.index(candidates.len())];
            let room = 10_000 - weights.iter().map(|(_, points)| points).sum::<u32>();
            if room == 0 {
                return Ok(());
            }
            let delta = 1 + raise.index(room as usize) as u32;
            let mut raised = model.clone();
            let split = raised.split_mut(rule).unwrap();
            match split.iter_mut().find(|(v, _)| *v == version) {
                Some((_, points)) => *points += delta,
                None => split.push((version, delta)),
            }
            let before = compile(model.text().as_bytes())?;
            let after = compile(raised.text().as_bytes())?;
            Inputs::add(&inputs.configurations, 2);
            for request in &requests {
                Inputs::add(&inputs.requests, 1);
                let was = request.decide_as_filter(&before);
                let now = request.decide_as_filter(&after);
                ensure(was.version != version || now.version == version, || {
                    format!(
                        "raising {} by {delta} bp in {rule:?} moved a request from it: {was:?} -> {now:?}\n{request:?}",
                        model.version_name(version)
                    )
                })?;
            }
            Ok(())
        },
    );
}

#[test]
fn resolving_a_field_path() {
    let doc: Json = serde_json::from_str(
        r#"{"versions": [{"name": "a"}], "weights": {"a.b": 1, "c[0]": 2}, "": {"x": 1},
            "default": {"first": 1}, "default": null, "[0]": {"y": 2}}"#,
    )
    .unwrap();
    for (path, want) in [
        ("(document)", true),
        ("versions", true),
        ("versions[0]", true),
        ("versions[0].name", true),
        ("versions[1]", false),
        ("versions[0].nam", false),
        ("versions.name", false),
        ("weights.a.b", true),
        ("weights.a", false),
        ("weights.c[0]", true),
        (".x", true),
        ("region", false),
        ("versions[x]", false),
        ("default.first", true),
        ("default.second", false),
        ("[0].y", true),
        ("[1]", false),
    ] {
        assert_eq!(resolves(&doc, path), want, "{path}");
    }
}

/// 5. A refused configuration that is valid JSON names a field that exists in it: the field
///    at fault, or for a missing field the object that lacks it, or `(document)`. The document
///    is read with every entry of a repeated key kept: the error may be about the first.
#[test]
fn refused_configurations_name_an_existing_field() {
    let inputs = Inputs::default();
    check(
        "refused_configurations_name_an_existing_field",
        3_000,
        config_case(),
        &inputs,
        |case| {
            let text = case.text();
            Inputs::add(&inputs.configurations, 1);
            let Ok(doc) = serde_json::from_slice::<Json>(&text) else {
                return Ok(());
            };
            if let Err(err) = RoutingPlan::from_json(&text) {
                ensure(resolves(&doc, err.field()), || {
                    format!(
                        "{err}\nnames no field of\n{}",
                        String::from_utf8_lossy(&text)
                    )
                })?;
            }
            Ok(())
        },
    );
}

/// 6. The filter's own JSON reader agrees with serde_json (the independent reference) on what
///    is JSON: a document it reads, serde_json reads too, and serde_json's rewriting of it
///    (other white space, escapes and number layout; the same values) reads as the same
///    configuration; a document serde_json refuses as JSON, the filter refuses too. (serde_json
///    keeps the last of two equal keys where the filter refuses the document, so the reverse of
///    the first half does not hold.)
#[test]
fn the_reader_agrees_with_serde_json_on_what_is_json() {
    let inputs = Inputs::default();
    check(
        "the_reader_agrees_with_serde_json_on_what_is_json",
        3_000,
        config_case(),
        &inputs,
        |case| {
            let text = case.text();
            Inputs::add(&inputs.configurations, 1);
            let read = CanaryConfig::from_json(&text);
            let reference = serde_json::from_slice::<serde_json::Value>(&text);
            match (read, reference) {
                (Ok(config), Ok(value)) => {
                    let rewritten = serde_json::to_vec(&value).unwrap();
                    let again = CanaryConfig::from_json(&rewritten);
                    ensure(again.as_ref() == Ok(&config), || {
                        format!(
                            "{again:?}\nfrom serde_json's rewriting of\n{}",
                            String::from_utf8_lossy(&text)
                        )
                    })
                }
                (Ok(config), Err(err)) => Err(TestCaseError::fail(format!(
                    "read as {config:?}, but serde_json says {err}\n{}",
                    String::from_utf8_lossy(&text)
                ))),
                (Err(_), _) => Ok(()),
            }
        },
    );
}

/// The description `canaryctl explain` and the tests use decides as the filter's own path
/// does (the control crate's property compares the whole explanation).
#[test]
fn a_described_request_decides_as_the_filter_does() {
    check_requests(
        "a_described_request_decides_as_the_filter_does",
        6,
        |plan, request| {
            let mut description = RequestDescription {
                proxy_region: request.proxy_region.clone(),
                ..Default::default()
            };
            for (name, value) in &request.headers {
                description = description.header(name, value.clone());
            }
            // The description's draw is the one the filter's request makes first.
            description.random = {
                let state = std::cell::Cell::new(request.random_state);
                let mut view = canary_filter::header_pairs::HeaderMapRequest::new(
                    plan,
                    Vec::<u8>::new,
                    None,
                    &state,
                );
                canary_filter::RequestView::random(&mut view)
            };
            let described = plan.decide(&mut description.view(plan));
            let filter = request.decide_as_filter(plan);
            ensure(described == filter, || {
                format!("described {described:?}, filter {filter:?}\n{request:?}")
            })
        },
    );
}
