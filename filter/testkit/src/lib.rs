//! What the property tests share: the seeded runner and the generators of configurations,
//! requests, header-map buffers and cookie strings. Used by the filter's properties
//! (`filter/tests/properties.rs`) and by canaryctl's explain property
//! (`control/tests/explain_properties.rs`); each uses a part of it.
//!
//! It does not depend on the filter: the filter's tests depend on it, and a dependency back
//! would make a cycle. What it generates is text and bytes (configuration documents, header
//! maps as the host serializes them); each test hands them to the filter itself.

use std::cell::Cell;
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

// ---------------------------------------------------------------------------------------------
// The runner

/// Cases per property (`make fuzz` raises it; `cargo test` uses each property's default).
pub const CASES_VAR: &str = "CANARY_FUZZ_CASES";
/// The seed every property's generator starts from.
pub const SEED_VAR: &str = "CANARY_FUZZ_SEED";
/// The seed of `cargo test` and `make test`, so their runs are the same every time.
pub const DEFAULT_SEED: u64 = 20_251_126;

/// Generated inputs of each kind, counted by a property while it runs.
#[derive(Default)]
pub struct Inputs {
    pub configurations: Cell<u64>,
    pub requests: Cell<u64>,
    pub header_buffers: Cell<u64>,
    pub cookie_strings: Cell<u64>,
}

impl Inputs {
    pub fn add(counter: &Cell<u64>, count: usize) {
        counter.set(counter.get() + count as u64);
    }

    fn total(&self) -> u64 {
        self.configurations.get()
            + self.requests.get()
            + self.header_buffers.get()
            + self.cookie_strings.get()
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.replace('_', "");
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Runs `test` on generated values of `strategy`: `CANARY_FUZZ_CASES` cases (else
/// `default_cases`), drawn from a ChaCha generator seeded with `CANARY_FUZZ_SEED` (else
/// [`DEFAULT_SEED`]) and the property's name, so a run is reproduced by its seed and count.
/// A failure panics with the shrunk input and the seed; a success prints the counts.
pub fn check<S: Strategy>(
    property: &str,
    default_cases: u32,
    strategy: S,
    inputs: &Inputs,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases =
        env_number(CASES_VAR).map_or(default_cases, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let seed = env_number(SEED_VAR).unwrap_or(DEFAULT_SEED);
    // The property's name goes into the seed: each property draws its own stream.
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let name_hash = property
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    seed_bytes[8..16].copy_from_slice(&name_hash.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let started = std::time::Instant::now();
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{property}: {failure}\nreproduce with {SEED_VAR}={seed} {CASES_VAR}={cases}");
    }
    let mut kinds = String::new();
    for (kind, count) in [
        ("configurations", &inputs.configurations),
        ("requests", &inputs.requests),
        ("header buffers", &inputs.header_buffers),
        ("cookie strings", &inputs.cookie_strings),
    ] {
        if count.get() > 0 {
            let _ = write!(kinds, ", {} {kind}", count.get());
        }
    }
    println!(
        "fuzz: {property}: {cases} cases, {} inputs{kinds}, seed {seed}, {:.1} s",
        inputs.total(),
        started.elapsed().as_secs_f64()
    );
}

/// Fails the case with `message` unless `holds`.
pub fn ensure(holds: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if holds {
        Ok(())
    } else {
        Err(TestCaseError::fail(message()))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON documents, written by hand so that a document can hold a key twice

/// A JSON value as the generators build it. Objects are lists of entries, so a key may repeat.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's literal text, written as it is (`1e2`, `-0`, `100.5`).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

fn str(text: &str) -> Json {
    Json::Str(text.to_string())
}

fn obj(entries: Vec<(&str, Json)>) -> Json {
    Json::Obj(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// How a document is written.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// One entry per line, indented.
    pub pretty: bool,
    /// Each key's first letter as a `\u00XX` escape: the same key to a JSON reader.
    pub escape_keys: bool,
}

impl Json {
    pub fn write(&self, style: Style) -> String {
        let mut out = String::new();
        self.write_into(&mut out, style, 0);
        out
    }

    fn write_into(&self, out: &mut String, style: Style, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if style.pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Json::Num(text) => out.push_str(text),
            Json::Str(text) => write_string(out, text, false),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write_into(out, style, depth + 1);
                }
                if !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            Json::Obj(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_string(out, key, style.escape_keys);
                    out.push_str(if style.pretty { ": " } else { ":" });
                    value.write_into(out, style, depth + 1);
                }
                if !entries.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// The same document with every object's keys in the opposite order: the same value to a
    /// JSON reader.
    pub fn keys_reversed(&self) -> Json {
        match self {
            Json::Arr(items) => Json::Arr(items.iter().map(Json::keys_reversed).collect()),
            Json::Obj(entries) => Json::Obj(
                entries
                    .iter()
                    .rev()
                    .map(|(key, value)| (key.clone(), value.keys_reversed()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Nodes in pre-order that `wanted` accepts.
    fn count(&self, wanted: &dyn Fn(&Json) -> bool) -> usize {
        let own = usize::from(wanted(self));
        own + match self {
            Json::Arr(items) => items.iter().map(|item| item.count(wanted)).sum(),
            Json::Obj(entries) => entries.iter().map(|(_, value)| value.count(wanted)).sum(),
            _ => 0,
        }
    }

    /// The `n`th node in pre-order that `wanted` accepts.
    fn nth_mut(&mut self, wanted: &dyn Fn(&Json) -> bool, n: &mut usize) -> Option<&mut Json> {
        if wanted(self) {
            if *n == 0 {
                return Some(self);
            }
            *n -= 1;
        }
        match self {
            Json::Arr(items) => items.iter_mut().find_map(|item| item.nth_mut(wanted, n)),
            Json::Obj(entries) => entries
                .iter_mut()
                .find_map(|(_, value)| value.nth_mut(wanted, n)),
            _ => None,
        }
    }

    /// The node `index` picks among those `wanted` accepts, if there is any.
    fn pick(&mut self, index: &Index, wanted: &dyn Fn(&Json) -> bool) -> Option<&mut Json> {
        let count = self.count(wanted);
        if count == 0 {
            return None;
        }
        self.nth_mut(wanted, &mut index.index(count))
    }
}

/// Read back with every entry of an object kept, a repeated key's too (`serde_json::Value`
/// keeps only the last, and an error may be about the first).
impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Num(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Num(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(Json::Num(value.to_string()))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::Str(value.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Json::Obj(entries))
    }
}

/// Whether `path` (`rules[0].weights.canary`, `(document)`) names a value in `doc`, in any of
/// the entries of a repeated key. Keys are matched whole against the document's own, so a key
/// holding `.` or `[` still resolves.
pub fn resolves(doc: &Json, path: &str) -> bool {
    fn walk(value: &Json, rest: &str) -> bool {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix('[') {
            let Some((index, after)) = after.split_once(']') else {
                return false;
            };
            return match (index.parse::<usize>(), value) {
                (Ok(index), Json::Arr(items)) => items.get(index).is_some_and(|v| walk(v, after)),
                _ => false,
            };
        }
        let (Some(after), Json::Obj(entries)) = (rest.strip_prefix('.'), value) else {
            return false;
        };
        entries.iter().any(|(key, value)| {
            after.strip_prefix(key.as_str()).is_some_and(|after| {
                (after.is_empty() || after.starts_with(['.', '['])) && walk(value, after)
            })
        })
    }
    if path == "(document)" {
        return true;
    }
    // The first key has no `.` before it, so a path starting with `[` is an index or a key
    // that starts with `[`.
    walk(doc, &format!(".{path}")) || (path.starts_with('[') && walk(doc, path))
}

fn write_string(out: &mut String, text: &str, escape_first_letter: bool) {
    out.push('"');
    for (i, ch) in text.chars().enumerate() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ch if u32::from(ch) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            ch if i == 0 && escape_first_letter && ch.is_ascii_alphabetic() => {
                let _ = write!(out, "\\u{:04X}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Valid configurations

/// Enough for 17 versions, one more than a configuration may have.
const VERSION_NAMES: &[&str] = &[
    "stable", "canary", "v2", "beta", "b", "C-3", "x_y", "blue", "green", "v10", "alpha", "rc",
    "v3", "v4", "v5", "gamma", "delta", "edge",
];
const CLUSTERS: &[&str] = &["app-v1", "outbound|8080||reviews.svc", "c", "with space"];
const CONFIG_HEADER_NAMES: &[&str] = &[
    "x-user-id",
    "X-User-Id",
    "x-canary",
    "X-CANARY",
    "x-region",
    "x-group",
    "cookie",
    ":authority",
    "user-agent",
];
const COOKIE_NAMES: &[&str] = &["uid", "UID", "canary", "beta", "c1", "a", "session-id"];
const RULE_NAMES: &[&str] = &[
    "testers", "opt-out", "eu-first", "r1", "r_2", "R3", "mobile", "internal",
];
const VALUES: &[&str] = &["a", "b", "beta", "beta-1", "", "always", "never", "1"];
const SERVICES: &[&str] = &["checkout", "a", "Svc_2-b"];
const REGIONS: &[&str] = &["eu-west-1", "eu-central-1", "us-east-1", "ap", "EU-WEST-1"];
/// `hosts` entries: Kubernetes service names (which also match their short forms), other
/// names as listed, in any case; no two equal but for case (a configuration may not repeat one).
const HOSTS: &[&str] = &[
    "checkout.shop.svc.cluster.local",
    "Payments.shop.svc.cluster.local",
    "API.example.com",
    "search",
    "10.0.0.7",
];
/// Authorities a request carries: every form of the hosts above, with and without ports, in
/// any case, and others.
const AUTHORITIES: &[&str] = &[
    "checkout",
    "checkout:80",
    "checkout.shop",
    "Checkout.Shop:8080",
    "checkout.shop.svc",
    "checkout.shop.svc.cluster.local",
    "checkout.shop.svc.cluster.local:80",
    "checkout.other",
    "checkout.shop.svc.cluster.local.",
    "payments",
    "payments.shop.svc.cluster.local:80",
    "api.example.com",
    "api.example.com:443",
    "api",
    "search",
    "search.shop:80",
    "10.0.0.7:8080",
    "[::1]:80",
    "",
];

/// A split: `(version index, weight in basis points)` in the order they are written.
pub type WeightsModel = Vec<(usize, u32)>;

/// A condition's test: equals, prefix or present.
#[derive(Debug, Clone)]
pub enum TestModel {
    Equals(String),
    Prefix(String),
    Present,
}

#[derive(Debug, Clone)]
pub enum ActionModel {
    Pin(usize),
    Split(WeightsModel),
}

#[derive(Debug, Clone)]
pub struct RuleModel {
    pub name: String,
    pub header: Option<(String, TestModel)>,
    pub cookie: Option<(String, TestModel)>,
    pub region: Option<Vec<String>>,
    pub action: ActionModel,
}

#[derive(Debug, Clone)]
pub enum KeyModel {
    Header(String),
    Cookie(String),
}

#[derive(Debug, Clone)]
pub struct StickyModel {
    pub keys: Vec<KeyModel>,
    pub seed: u32,
    /// `None`: left out; `Some(true)`: `default`; `Some(false)`: `random`.
    pub when_missing_default: Option<bool>,
}

/// A configuration the filter must accept: versions with unique names, weights only for
/// non-default versions and at most 100 % per split, valid names throughout.
#[derive(Debug, Clone)]
pub struct ConfigModel {
    /// `(name, cluster)`.
    pub versions: Vec<(String, String)>,
    pub default: usize,
    pub weights: WeightsModel,
    pub sticky: Option<StickyModel>,
    pub region_header: Option<String>,
    pub rules: Vec<RuleModel>,
    pub route_header: Option<String>,
    pub version_header: Option<String>,
    pub response_version_header: Option<bool>,
    /// `requests`, `responses`, `latency`: each given or left to its default.
    pub metrics: Option<[Option<bool>; 3]>,
    pub service: Option<String>,
    pub hosts: Option<Vec<String>>,
}

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(pool).prop_map(str::to_string)
}

/// Weights for the non-default versions of `count` versions: each present or not, in version
/// order, and cut so that they add up to at most 100 %.
fn weights(count: usize, default: usize) -> impl Strategy<Value = WeightsModel> {
    let weight = prop_oneof![
        Just(0u32),
        Just(10_000u32),
        1u32..=10_000,
        (1u32..=100).prop_map(|percent| percent * 100),
    ];
    prop::collection::vec(prop::option::weighted(0.6, weight), count).prop_map(move |drawn| {
        let mut left = 10_000u32;
        drawn
            .into_iter()
            .enumerate()
            .filter(|(index, _)| *index != default)
            .filter_map(|(index, weight)| {
                let weight = weight?.min(left);
                left -= weight;
                Some((index, weight))
            })
            .collect()
    })
}

fn test_model() -> impl Strategy<Value = TestModel> {
    prop_oneof![
        pick(VALUES).prop_map(TestModel::Equals),
        pick(VALUES).prop_map(TestModel::Prefix),
        Just(TestModel::Present),
    ]
}

fn rule_model(name: String, count: usize, default: usize) -> impl Strategy<Value = RuleModel> {
    let action = prop_oneof![
        (0..count).prop_map(ActionModel::Pin),
        weights(count, default).prop_map(ActionModel::Split),
    ];
    (
        prop::option::of((pick(CONFIG_HEADER_NAMES), test_model())),
        prop::option::of((pick(COOKIE_NAMES), test_model())),
        prop::option::of(prop::collection::vec(pick(REGIONS), 1..=3)),
        action,
    )
        .prop_map(move |(header, cookie, region, action)| {
            // A rule needs a condition: without one, it tests the region.
            let region = match (&header, &cookie, region) {
                (None, None, None) => Some(vec!["eu-west-1".to_string()]),
                (_, _, region) => region,
            };
            RuleModel {
                name: name.clone(),
                header,
                cookie,
                region,
                action,
            }
        })
}

fn sticky_model() -> impl Strategy<Value = StickyModel> {
    let key = prop_oneof![
        pick(CONFIG_HEADER_NAMES).prop_map(KeyModel::Header),
        pick(COOKIE_NAMES).prop_map(KeyModel::Cookie),
    ];
    (
        prop::collection::vec(key, 1..=3),
        prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(keys, seed, when_missing_default)| StickyModel {
            keys,
            seed,
            when_missing_default,
        })
}

/// What a configuration writes and counts, as given (or left out).
#[derive(Debug, Clone)]
struct Outputs {
    route_header: Option<String>,
    version_header: Option<String>,
    response_version_header: Option<bool>,
    metrics: Option<[Option<bool>; 3]>,
}

/// Valid combinations only: at least one routing header, and a response header only with a
/// version header. Boxed: one more level of nested strategy types overflows a test thread's
/// stack in debug builds.
fn outputs_model() -> BoxedStrategy<Outputs> {
    (
        prop::option::of(pick(&["x-route", "X-Cluster", ""])),
        prop::option::of(pick(&["x-ver", "", "X-Version"])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::array::uniform3(prop::option::of(any::<bool>()))),
    )
        .prop_map(
            |(route_header, version_header, response_version_header, metrics)| {
                let no_version_header = version_header.as_deref() == Some("");
                let route_header = if no_version_header && route_header.as_deref() == Some("") {
                    None
                } else {
                    route_header
                };
                Outputs {
                    route_header,
                    version_header,
                    response_version_header: response_version_header
                        .map(|asked| asked && !no_version_header),
                    metrics,
                }
            },
        )
        .boxed()
}

/// Valid configurations of 2 to `max_versions` versions.
pub fn config_model(max_versions: usize) -> impl Strategy<Value = ConfigModel> {
    let names = prop::sample::subsequence(VERSION_NAMES, 2..=max_versions).prop_shuffle();
    names.prop_flat_map(|names| {
        let count = names.len();
        let versions: Vec<_> = names.iter().map(|name| name.to_string()).collect();
        (0..count).prop_flat_map(move |default| {
            let versions = versions.clone();
            let rules = prop::sample::subsequence(RULE_NAMES, 0..=4)
                .prop_shuffle()
                .prop_flat_map(move |names| {
                    names
                        .into_iter()
                        .map(|name| rule_model(name.to_string(), count, default))
                        .collect::<Vec<_>>()
                });
            (
                prop::collection::vec(pick(CLUSTERS), count),
                weights(count, default),
                prop::option::weighted(0.8, sticky_model()),
                prop::option::of(pick(CONFIG_HEADER_NAMES)),
                rules,
                outputs_model(),
                prop::option::of(pick(SERVICES)),
                prop::option::of(prop::sample::subsequence(HOSTS, 1..=3)),
            )
                .prop_map(
                    move |(
                        clusters,
                        weights,
                        sticky,
                        region_header,
                        rules,
                        outputs,
                        service,
                        hosts,
                    )| {
                        let Outputs {
                            route_header,
                            version_header,
                            response_version_header,
                            metrics,
                        } = outputs;
                        ConfigModel {
                            versions: versions.iter().cloned().zip(clusters).collect(),
                            default,
                            weights,
                            sticky,
                            region_header,
                            rules,
                            route_header,
                            version_header,
                            response_version_header,
                            metrics,
                            service,
                            hosts: hosts
                                .map(|hosts| hosts.into_iter().map(str::to_string).collect()),
                        }
                    },
                )
        })
    })
}

/// A percent as users write it: `12.34`, `5`, `0.01`.
fn percent(basis_points: u32) -> Json {
    Json::Num(format!("{}", f64::from(basis_points) / 100.0))
}

impl ConfigModel {
    pub fn version_name(&self, index: usize) -> &str {
        &self.versions[index].0
    }

    fn weights_json(&self, weights: &WeightsModel) -> Json {
        Json::Obj(
            weights
                .iter()
                .map(|&(version, points)| (self.version_name(version).to_string(), percent(points)))
                .collect(),
        )
    }

    pub fn to_json(&self) -> Json {
        let mut entries = vec![
            (
                "versions",
                Json::Arr(
                    self.versions
                        .iter()
                        .map(|(name, cluster)| {
                            obj(vec![("name", str(name)), ("cluster", str(cluster))])
                        })
                        .collect(),
                ),
            ),
            ("default", str(self.version_name(self.default))),
            ("weights", self.weights_json(&self.weights)),
        ];
        if let Some(sticky) = &self.sticky {
            let keys = sticky
                .keys
                .iter()
                .map(|key| match key {
                    KeyModel::Header(name) => obj(vec![("header", str(name))]),
                    KeyModel::Cookie(name) => obj(vec![("cookie", str(name))]),
                })
                .collect();
            let mut fields = vec![
                ("keys", Json::Arr(keys)),
                ("seed", Json::Num(sticky.seed.to_string())),
            ];
            if let Some(default) = sticky.when_missing_default {
                fields.push((
                    "when_missing",
                    str(if default { "default" } else { "random" }),
                ));
            }
            entries.push(("sticky", obj(fields)));
        }
        if let Some(header) = &self.region_header {
            entries.push(("region", obj(vec![("header", str(header))])));
        }
        let test = |name: &str, test: &TestModel| {
            let mut fields = vec![("name", str(name))];
            fields.push(match test {
                TestModel::Equals(value) => ("equals", str(value)),
                TestModel::Prefix(value) => ("prefix", str(value)),
                TestModel::Present => ("present", Json::Bool(true)),
            });
            obj(fields)
        };
        let rules = self
            .rules
            .iter()
            .map(|rule| {
                let mut when = Vec::new();
                if let Some((name, t)) = &rule.header {
                    when.push(("header", test(name, t)));
                }
                if let Some((name, t)) = &rule.cookie {
                    when.push(("cookie", test(name, t)));
                }
                if let Some(regions) = &rule.region {
                    when.push((
                        "region",
                        Json::Arr(regions.iter().map(|r| str(r)).collect()),
                    ));
                }
                let action = match &rule.action {
                    ActionModel::Pin(version) => ("version", str(self.version_name(*version))),
                    ActionModel::Split(weights) => ("weights", self.weights_json(weights)),
                };
                obj(vec![("name", str(&rule.name)), ("when", obj(when)), action])
            })
            .collect();
        entries.push(("rules", Json::Arr(rules)));
        if let Some(header) = &self.route_header {
            entries.push(("route_header", str(header)));
        }
        if let Some(header) = &self.version_header {
            entries.push(("version_header", str(header)));
        }
        if let Some(asked) = self.response_version_header {
            entries.push(("response_version_header", Json::Bool(asked)));
        }
        if let Some(metrics) = &self.metrics {
            let fields = ["requests", "responses", "latency"]
                .into_iter()
                .zip(metrics)
                .filter_map(|(name, on)| on.map(|on| (name, Json::Bool(on))))
                .collect();
            entries.push(("metrics", obj(fields)));
        }
        if let Some(service) = &self.service {
            entries.push(("service", str(service)));
        }
        if let Some(hosts) = &self.hosts {
            entries.push(("hosts", Json::Arr(hosts.iter().map(|h| str(h)).collect())));
        }
        obj(entries)
    }

    /// The compact JSON text.
    pub fn text(&self) -> String {
        self.to_json().write(Style {
            pretty: false,
            escape_keys: false,
        })
    }

    /// The splits: the top-level one (`None`) and each rule's that splits.
    pub fn splits(&self) -> Vec<(Option<usize>, &WeightsModel)> {
        let mut splits = vec![(None, &self.weights)];
        for (index, rule) in self.rules.iter().enumerate() {
            if let ActionModel::Split(weights) = &rule.action {
                splits.push((Some(index), weights));
            }
        }
        splits
    }

    pub fn split_mut(&mut self, rule: Option<usize>) -> Option<&mut WeightsModel> {
        match rule {
            None => Some(&mut self.weights),
            Some(index) => match &mut self.rules.get_mut(index)?.action {
                ActionModel::Split(weights) => Some(weights),
                ActionModel::Pin(_) => None,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mostly-valid configurations: a valid one, then mutations

/// Values a mutation puts in place of another: wrong types, out-of-range and odd numbers, bad
/// and reserved names, empty containers.
fn odd_value() -> impl Strategy<Value = Json> {
    let numbers = &[
        "0",
        "1",
        "-1",
        "100",
        "100.5",
        "101",
        "0.005",
        "1e2",
        "1.5",
        "4294967296",
        "-0",
        "12.34",
        "1E-2",
        "33.333",
    ];
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        prop::sample::select(numbers).prop_map(|n| Json::Num(n.to_string())),
        odd_string().prop_map(Json::Str),
        Just(Json::Arr(Vec::new())),
        odd_string().prop_map(|s| Json::Arr(vec![Json::Str(s)])),
        Just(Json::Obj(Vec::new())),
        (odd_key(), odd_string()).prop_map(|(k, s)| Json::Obj(vec![(k, Json::Str(s))])),
    ]
}

fn odd_string() -> impl Strategy<Value = String> {
    let pool = &[
        "",
        "a b",
        "é",
        "stable",
        "canary",
        "x-user-id",
        "random",
        "default",
        "weights",
        "X-Canary-Cluster",
        "x-canary-version",
        ":authority",
        " app",
        "tab\there",
        "eu-west-1",
        "uid",
        "line\nbreak",
        "quote\"in",
    ];
    prop_oneof![
        4 => prop::sample::select(pool).prop_map(str::to_string),
        1 => Just("x".repeat(65)),
        1 => "[a-z:._ -]{0,8}",
    ]
}

fn odd_key() -> impl Strategy<Value = String> {
    let pool = &[
        "seed", "header", "cookie", "name", "weights", "canary", "stable", "nme", "versions",
        "default", "when", "keys", "region", "version", "equals", "present", "x", "", "a.b",
        "c[0]",
    ];
    // Version names too: an extra entry in a weights map names a version, often one that is
    // not declared or is the default.
    prop_oneof![
        prop::sample::select(pool).prop_map(str::to_string),
        pick(VERSION_NAMES),
    ]
}

/// One change to a document.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Any value (the whole document too) replaced by an odd one.
    Replace(Index, Json),
    /// An object gets one more entry, at some position.
    ExtraKey(Index, Index, String, Json),
    /// An object's entry repeated with another value, later in the same object.
    DuplicateKey(Index, Index, Index, Json),
    /// An object loses an entry.
    RemoveKey(Index, Index),
    /// A number's text replaced.
    Number(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let numbers = &[
        "100.5", "-1", "0.005", "1e2", "101", "-0", "1E-2", "33.333", "100", "0", "50", "1e400",
        "99.999", "0.29", "5e-3",
    ];
    prop_oneof![
        (any::<Index>(), odd_value()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        (any::<Index>(), any::<Index>(), odd_key(), odd_value())
            .prop_map(|(at, pos, key, value)| Mutation::ExtraKey(at, pos, key, value)),
        (any::<Index>(), any::<Index>(), any::<Index>(), odd_value())
            .prop_map(|(at, entry, pos, value)| Mutation::DuplicateKey(at, entry, pos, value)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, entry)| Mutation::RemoveKey(at, entry)),
        (any::<Index>(), prop::sample::select(numbers))
            .prop_map(|(at, text)| Mutation::Number(at, text.to_string())),
    ]
}

impl Mutation {
    fn apply(&self, doc: &mut Json) {
        let any = |_: &Json| true;
        let object = |node: &Json| matches!(node, Json::Obj(_));
        let non_empty_object = |node: &Json| matches!(node, Json::Obj(e) if !e.is_empty());
        let number = |node: &Json| matches!(node, Json::Num(_));
        match self {
            Mutation::Replace(at, value) => {
                if let Some(node) = doc.pick(at, &any) {
                    *node = value.clone();
                }
            }
            Mutation::ExtraKey(at, pos, key, value) => {
                if let Some(Json::Obj(entries)) = doc.pick(at, &object) {
                    let pos = pos.index(entries.len() + 1);
                    entries.insert(pos, (key.clone(), value.clone()));
                }
            }
            Mutation::DuplicateKey(at, entry, pos, value) => {
                if let Some(Json::Obj(entries)) = doc.pick(at, &non_empty_object) {
                    let entry = entry.index(entries.len());
                    let key = entries[entry].0.clone();
                    // Same value or another: either way the key is there twice.
                    let value = if pos.index(2) == 0 {
                        entries[entry].1.clone()
                    } else {
                        value.clone()
                    };
                    let pos = entry + 1 + pos.index(entries.len() - entry);
                    entries.insert(pos, (key, value));
                }
            }
            Mutation::RemoveKey(at, entry) => {
                if let Some(Json::Obj(entries)) = doc.pick(at, &non_empty_object) {
                    let entry = entry.index(entries.len());
                    entries.remove(entry);
                }
            }
            Mutation::Number(at, text) => {
                if let Some(node) = doc.pick(at, &number) {
                    *node = Json::Num(text.clone());
                }
            }
        }
    }
}

/// A change to the text itself, after writing.
#[derive(Debug, Clone)]
pub enum TextMutation {
    None,
    /// Cut at some byte.
    Truncate(Index),
    /// One byte replaced by a byte that matters to JSON.
    Overwrite(Index, u8),
}

/// A generated configuration document: a valid configuration, changed by `mutations`, written
/// in `style`, then changed by `text_mutation`.
#[derive(Debug, Clone)]
pub struct ConfigCase {
    pub model: ConfigModel,
    pub mutations: Vec<Mutation>,
    pub style: Style,
    pub text_mutation: TextMutation,
}

impl ConfigCase {
    pub fn text(&self) -> Vec<u8> {
        let mut doc = self.model.to_json();
        for mutation in &self.mutations {
            mutation.apply(&mut doc);
        }
        let mut text = doc.write(self.style).into_bytes();
        match &self.text_mutation {
            TextMutation::None => {}
            TextMutation::Truncate(at) => text.truncate(at.index(text.len() + 1)),
            TextMutation::Overwrite(at, byte) => {
                if !text.is_empty() {
                    let at = at.index(text.len());
                    text[at] = *byte;
                }
            }
        }
        text
    }
}

/// Mostly-valid configurations: about one in four unchanged, the others with one to three
/// mutations, some written pretty or with escaped keys, some with their text cut or a byte
/// overwritten.
pub fn config_case() -> impl Strategy<Value = ConfigCase> {
    let mutations = prop_oneof![
        1 => Just(Vec::new()),
        3 => prop::collection::vec(mutation(), 1..=3),
    ];
    let style =
        (prop::bool::weighted(0.3), prop::bool::weighted(0.1)).prop_map(|(pretty, escape_keys)| {
            Style {
                pretty,
                escape_keys,
            }
        });
    let text_mutation = prop_oneof![
        8 => Just(TextMutation::None),
        1 => any::<Index>().prop_map(TextMutation::Truncate),
        1 => (any::<Index>(), prop::sample::select(&b"{}[],:\"\\ 0a\xff"[..]))
            .prop_map(|(at, byte)| TextMutation::Overwrite(at, byte)),
    ];
    (config_model(17), mutations, style, text_mutation).prop_map(
        |(model, mutations, style, text_mutation)| ConfigCase {
            model,
            mutations,
            style,
            text_mutation,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Cookie strings

/// One `;`-separated part of a cookie header.
#[derive(Debug, Clone)]
pub enum CookiePart {
    /// `name=value`, with white space around each and the value perhaps quoted.
    Pair {
        name: String,
        value: Vec<u8>,
        quoted: bool,
        padding: [&'static str; 4],
    },
    /// A part without `=`, skipped by readers.
    Junk(Vec<u8>),
}

/// A cookie header built from parts, so what each name's value is is known without reading it.
#[derive(Debug, Clone)]
pub struct CookieHeader {
    pub parts: Vec<CookiePart>,
    pub separators: Vec<&'static str>,
}

impl CookieHeader {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend(self.separators[i % self.separators.len()].as_bytes());
            }
            match part {
                CookiePart::Pair {
                    name,
                    value,
                    quoted,
                    padding,
                } => {
                    out.extend(padding[0].as_bytes());
                    out.extend(name.as_bytes());
                    out.extend(padding[1].as_bytes());
                    out.push(b'=');
                    out.extend(padding[2].as_bytes());
                    if *quoted {
                        out.push(b'"');
                    }
                    out.extend(value);
                    if *quoted {
                        out.push(b'"');
                    }
                    out.extend(padding[3].as_bytes());
                }
                CookiePart::Junk(bytes) => out.extend(bytes),
            }
        }
        out
    }

    /// The value of the first pair called `name`.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.parts.iter().find_map(|part| match part {
            CookiePart::Pair {
                name: have, value, ..
            } if have == name => Some(value.as_slice()),
            _ => None,
        })
    }
}

fn bytes_except(excluded: &'static [u8], len: std::ops::Range<usize>) -> BoxedStrategy<Vec<u8>> {
    let byte = prop_oneof![
        3 => prop::sample::select(&b"abcXYZ09=-_.\"/\xff\x80\xc3\xa9"[..]),
        1 => any::<u8>(),
    ]
    .prop_map(move |byte| if excluded.contains(&byte) { b'x' } else { byte });
    prop::collection::vec(byte, len).boxed()
}

pub fn cookie_header() -> impl Strategy<Value = CookieHeader> {
    let padding = prop::sample::select(&["", "", " ", "\t", "  "][..]);
    let pair = (
        pick(COOKIE_NAMES),
        // Values hold no `;`, and no white space or quote to be trimmed at their ends.
        bytes_except(b"; \t\"", 0..12),
        prop::bool::weighted(0.2),
        [padding.clone(), padding.clone(), padding.clone(), padding],
    )
        .prop_map(|(name, value, quoted, padding)| CookiePart::Pair {
            name,
            value,
            quoted,
            padding,
        });
    let junk = bytes_except(b";=", 0..8).prop_map(CookiePart::Junk);
    let separator = prop::sample::select(&[";", "; ", " ; ", ";\t", ";  "][..]);
    (
        prop::collection::vec(prop_oneof![4 => pair, 1 => junk], 0..8),
        prop::collection::vec(separator, 1..3),
    )
        .prop_map(|(parts, separators)| CookieHeader { parts, separators })
}

// ---------------------------------------------------------------------------------------------
// Requests and header maps

const REQUEST_HEADER_NAMES: &[&str] = &[
    "x-user-id",
    "X-User-ID",
    "x-canary",
    "X-Canary",
    "x-region",
    "X-REGION",
    "x-group",
    "cookie",
    "Cookie",
    ":authority",
    "user-agent",
    "x-other",
];
const REQUEST_VALUES: &[&str] = &[
    "a",
    "b",
    "beta",
    "beta-1",
    "",
    "always",
    "never",
    "1",
    "eu-west-1",
    "us-east-1",
    "user-1",
    "user-2",
];

/// A request as a client sends it: headers in order (names in any case, repeats allowed).
#[derive(Debug, Clone)]
pub struct RequestModel {
    pub headers: Vec<(String, Vec<u8>)>,
    pub proxy_region: Option<String>,
    /// The random state of the worker the request arrives at (never 0).
    pub random_state: u64,
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => pick(REQUEST_VALUES).prop_map(String::into_bytes),
        2 => cookie_header().prop_map(|cookie| cookie.bytes()),
        1 => bytes_except(b"", 0..16),
    ]
}

pub fn request_model() -> impl Strategy<Value = RequestModel> {
    let name = prop_oneof![
        6 => pick(REQUEST_HEADER_NAMES),
        1 => "[a-zA-Z-]{1,6}",
    ];
    (
        prop::collection::vec((name, header_value()), 0..8),
        prop::option::weighted(0.8, pick(AUTHORITIES)),
        prop::option::of(pick(REGIONS)),
        any::<u64>().prop_map(|state| state | 1),
    )
        .prop_map(|(mut headers, authority, proxy_region, random_state)| {
            // First, as Envoy puts the pseudo-headers before the others.
            if let Some(authority) = authority {
                headers.insert(0, (":authority".to_string(), authority.into_bytes()));
            }
            RequestModel {
                headers,
                proxy_region,
                random_state,
            }
        })
}

/// Serializes pairs as a proxy-wasm host does: a `u32` count, a `u32` key and value length per
/// pair, then each key and value followed by a NUL byte (all little-endian).
pub fn serialize_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (key, value) in pairs {
        out.extend((key.as_ref().len() as u32).to_le_bytes());
        out.extend((value.as_ref().len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend(key.as_ref());
        out.push(0);
        out.extend(value.as_ref());
        out.push(0);
    }
    out
}

impl RequestModel {
    /// The header map as Envoy hands it to the filter: names lower-cased, a repeated header as
    /// separate pairs in the order received.
    pub fn envoy_header_map(&self) -> Vec<u8> {
        let pairs: Vec<(String, &[u8])> = self
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.as_slice()))
            .collect();
        serialize_pairs(&pairs)
    }
}
