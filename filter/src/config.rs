//! The plugin configuration as users write it: JSON in Envoy's `configuration` StringValue or
//! Istio's `pluginConfig`. These types only describe the document; [`crate::plan`] checks it and
//! compiles it into the form the per-request path uses.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;

use crate::ConfigError;

/// Route header written when the config names none.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-cluster";
/// Version header written when the config names none.
pub const DEFAULT_VERSION_HEADER: &str = "x-canary-version";

/// The whole plugin configuration. Unknown fields are refused at every level: a typo must not
/// silently disable a rule. So is a key given twice in one object, struct field or weights
/// entry alike: with the last one silently winning, a pasted `"canary": 50` below a reviewed
/// `"canary": 5` would go unnoticed. Each object is read as an object only (`objects_only!`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CanaryConfig {
    /// The service this filter routes, as the `canary_service` label of every metric (same
    /// alphabet as version names). Left out: the metrics carry no `canary_service` label, as
    /// before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The service hosts this filter routes, matched against the request's `:authority` (see
    /// [`crate::hosts`]); a request for any other host is left alone. Left out: every request
    /// is routed (a front proxy for one service). Needed in a sidecar, which runs the filter
    /// on every outbound call of its workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// The versions of the upstream service, 2 to 16. The order matters: non-default versions
    /// take consecutive bucket ranges in this order.
    pub versions: Vec<VersionSpec>,
    /// Name of the version that gets whatever the weights leave over, and every request the
    /// contract cannot place otherwise.
    pub default: String,
    /// Percent of traffic per non-default version (0 to 100, resolution 0.01, sum at most 100).
    #[serde(default, deserialize_with = "unique_weights")]
    pub weights: BTreeMap<String, f64>,
    /// Where the sticky key comes from. Left out: every request draws a random bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickySpec>,
    /// Where the request's region comes from (for `when.region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionSpec>,
    /// Evaluated in order; the first rule whose `when` holds decides.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Request header that carries the chosen cluster; Envoy routes on it with `cluster_header`.
    /// Empty: not written (a mesh that routes on the version header, such as Istio).
    #[serde(default = "default_route_header")]
    pub route_header: String,
    /// Request header that carries the chosen version's name (Istio's `VirtualService` routes
    /// on it). Empty: not written. At least one of the two headers must be written.
    #[serde(default = "default_version_header")]
    pub version_header: String,
    /// Also write `version_header` into the response, for clients and tests that want to see
    /// the version: one more host call per response, so off unless asked for.
    #[serde(default, skip_serializing_if = "is_false")]
    pub response_version_header: bool,
    /// Which per-request metrics the filter keeps; each costs host calls per request.
    #[serde(default, skip_serializing_if = "MetricsSpec::is_all")]
    pub metrics: MetricsSpec,
    /// Named features, each on for a sticky percentage of users (see [`crate::features`]).
    /// Left out: no feature, and the filter does no feature work at all.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_features"
    )]
    pub features: BTreeMap<String, FeatureSpec>,
    /// Request header that tells the upstream which features a request has
    /// (`new-checkout,dark-mode`, by name). Left out: [`DEFAULT_FEATURES_HEADER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features_header: Option<String>,
    /// A dark canary: a share of requests copied to a version whose answers are discarded
    /// (see [`MirrorSpec`]). Left out: nothing is mirrored and no request pays for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSpec>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn yes() -> bool {
    true
}

/// The per-request metrics, each on unless turned off (`canaryctl status` and `rollout` read
/// all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct MetricsSpec {
    /// `canary_requests_total`: memory only per request, handed to Envoy on a timer.
    #[serde(default = "yes")]
    pub requests: bool,
    /// `canary_responses_total` by status class: reads `:status` on every response.
    #[serde(default = "yes")]
    pub responses: bool,
    /// `canary_request_duration_ms`: two clock reads and one histogram sample per request.
    #[serde(default = "yes")]
    pub latency: bool,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec {
            requests: true,
            responses: true,
            latency: true,
        }
    }
}

impl MetricsSpec {
    /// Whether every metric is on (the default, left out when written).
    pub fn is_all(&self) -> bool {
        *self == MetricsSpec::default()
    }
}

fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}

fn default_version_header() -> String {
    DEFAULT_VERSION_HEADER.to_string()
}

/// One version of the upstream service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct VersionSpec {
    /// Name used in weights, rules, metrics labels and the version header
    /// (letters, digits, `_` and `-`, at most 64).
    pub name: String,
    /// The Envoy cluster that serves this version (written into the route header).
    pub cluster: String,
}

/// How a request's sticky key is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct StickySpec {
    /// Sources tried in order; the first present and non-empty value is the key.
    pub keys: Vec<KeySource>,
    /// murmur3 seed; a new seed draws a fresh cohort for a new rollout.
    #[serde(default)]
    pub seed: u32,
    /// What a request without any key gets.
    #[serde(default)]
    pub when_missing: WhenMissing,
}

/// One place a sticky key may be read from: exactly one of `header` or `cookie`.
///
/// Written as `{"header": "x-user-id"}`. Read as an object with two optional fields rather
/// than as an enum: serde's enum reading takes the first key as the variant and then expects
/// the object to end, so an extra key beside it (`"seed"`) was reported at the variant's path
/// with "expected value", and both or neither of the two keys had no message of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// A request header (name is case-insensitive).
    Header(String),
    /// A cookie from the `cookie` request header (name is case-sensitive, as in RFC 6265).
    Cookie(String),
}

/// A sticky key source as written, before exactly one of its two fields is insisted on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySourceFields {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(KeySourceVisitor)
    }
}

struct KeySourceVisitor;

impl<'de> Visitor<'de> for KeySourceVisitor {
    type Value = KeySource;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object with a `header` or a `cookie`")
    }

    // Both-or-neither is refused here, inside the object's own reading, rather than by a
    // conversion after it (serde's `try_from`): serde_json positions an error at the
    // innermost object or array still being read, and after the conversion that is the
    // `keys` list, whose path does not say which source is wrong.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let fields = KeySourceFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        match (fields.header, fields.cookie) {
            (Some(header), None) => Ok(KeySource::Header(header)),
            (None, Some(cookie)) => Ok(KeySource::Cookie(cookie)),
            (Some(_), Some(_)) => Err(de::Error::custom(
                "give one of `header` and `cookie`, not both",
            )),
            (None, None) => Err(de::Error::custom("give one of `header` and `cookie`")),
        }
    }
}

/// What a request gets when none of the sticky keys is present. Read from its name only:
/// serde's enum reading would also take `{"default": null}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenMissing {
    /// A random bucket per request, so keyless traffic is still split by the weights.
    #[default]
    Random,
    /// The default version.
    Default,
}

impl<'de> Deserialize<'de> for WhenMissing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(WhenMissingVisitor)
    }
}

struct WhenMissingVisitor;

impl Visitor<'_> for WhenMissingVisitor {
    type Value = WhenMissing;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("`random` or `default`")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        match name {
            "random" => Ok(WhenMissing::Random),
            "default" => Ok(WhenMissing::Default),
            _ => Err(E::unknown_variant(name, &["random", "default"])),
        }
    }
}

/// Where the request's region comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RegionSpec {
    /// Request header naming the region. When the request lacks it, the proxy's own locality
    /// (`node.locality.region` in the Envoy bootstrap) is used.
    pub header: String,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name; it becomes the `rule` label of the metrics.
    pub name: String,
    /// Conditions; all that are given must hold.
    pub when: WhenSpec,
    /// Pin matching requests to this version. Exactly one of `version` and `weights`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Split matching requests by these weights (same key, seed and bucket ranges as the
    /// top-level split). Exactly one of `version` and `weights`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique_rule_weights"
    )]
    pub weights: Option<BTreeMap<String, f64>>,
    /// Pin features on (`true`) or off (`false`) for matching requests. A rule that gives only
    /// `features` leaves the version to the rules after it and the split.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique_feature_pins"
    )]
    pub features: Option<BTreeMap<String, bool>>,
}

/// The conditions of a rule. At least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct WhenSpec {
    /// A request header condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<MatchSpec>,
    /// A cookie condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<MatchSpec>,
    /// The request's region is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Vec<String>>,
}

/// A condition on one header or cookie: `name` plus exactly one of `equals`, `prefix`,
/// `present: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct MatchSpec {
    /// Header name (case-insensitive) or cookie name (case-sensitive).
    pub name: String,
    /// The value equals this exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The value starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value is present (an empty value counts as present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// Mirror header written when the `mirror` section names none.
pub const DEFAULT_MIRROR_HEADER: &str = "x-canary-mirror";

/// Which requests are copied to a version (a dark canary): Envoy's `request_mirror_policies`
/// reads the target cluster from `header` (`cluster_header`), sends the copy and discards its
/// answer; the user gets the routed version's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct MirrorSpec {
    /// The version the copies go to.
    pub version: String,
    /// Percent of the eligible requests copied (0 to 100, resolution 0.01).
    pub percent: f64,
    /// `sticky`: a user is in or out of the mirrored share for good, by the split's sticky key
    /// hashed with `seed` (a keyless request follows `sticky.when_missing`). `random`: each
    /// request is drawn on its own. Left out: `sticky` when the configuration has a sticky
    /// key, else `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<String>,
    /// murmur3 seed of the mirrored share. Left out: the split's seed XOR [`MIRROR_SEED_MIX`],
    /// so the mirrored users are not simply the first users the canary's weight will take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    /// Request header the target cluster is written into (Envoy's mirror policy reads it).
    #[serde(default = "default_mirror_header")]
    pub header: String,
    /// The request methods that may be copied (case-sensitive, as HTTP methods are). Left out:
    /// `GET` and `HEAD`, which do not change state; anything else is the operator's choice.
    #[serde(default = "default_mirror_methods")]
    pub methods: Vec<String>,
    /// Path prefixes never copied (plain prefixes of `:path`, query included: `/admin` also
    /// keeps `/administrator` out, which errs on the safe side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_paths: Vec<String>,
}

/// Mixed into the split's seed for the mirror's default seed (`"mirr"` in ASCII).
pub const MIRROR_SEED_MIX: u32 = 0x6d69_7272;

fn default_mirror_header() -> String {
    DEFAULT_MIRROR_HEADER.to_string()
}

fn default_mirror_methods() -> Vec<String> {
    vec!["GET".to_string(), "HEAD".to_string()]
}

/// Reads a struct of the configuration from a JSON object only. serde's derived reading also
/// takes a list of the field values in declaration order (serde issue 1587), so that
/// `"region": ["x-region"]` was read as `{"header": "x-region"}`, and an error in such a list
/// named fields the document does not have. Each struct is derived with `remote = "Self"`,
/// which makes the derived reading and writing inherent functions; the trait impls here call
/// them, the reading through a map only. So read through the trait (`from_json`,
/// `serde_json::from_value`, `<T as Deserialize>::deserialize`): `T::deserialize` names the
/// inherent function.
macro_rules! objects_only {
    ($($name:ident),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_map(ObjectVisitor::<$name>(std::marker::PhantomData))
            }
        }

        impl<'de> FromObject<'de> for $name {
            fn from_object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
                $name::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $name::serialize(self, serializer)
            }
        }
    )*};
}

objects_only!(
    CanaryConfig,
    MetricsSpec,
    VersionSpec,
    StickySpec,
    RegionSpec,
    RuleSpec,
    WhenSpec,
    MatchSpec,
    FeatureSpec,
    MirrorSpec,
);

/// A struct read from the entries of a JSON object.
trait FromObject<'de>: Sized {
    fn from_object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_object(map)
    }
}

/// A weights map that refuses a version named twice. serde's own map reading (and
/// `serde_json`'s) keeps the last value of a repeated key.
struct UniqueWeights(BTreeMap<String, f64>);

impl<'de> Deserialize<'de> for UniqueWeights {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UniqueWeightsVisitor)
    }
}

struct UniqueWeightsVisitor;

impl<'de> Visitor<'de> for UniqueWeightsVisitor {
    type Value = UniqueWeights;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map from version names to percents")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut weights = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            // Refused before its value is read: serde_json then reports the position just past
            // the repeated key, and the field path found there is that key's.
            if weights.contains_key(&name) {
                return Err(de::Error::custom(format_args!("duplicate key {name:?}")));
            }
            let percent = map.next_value()?;
            weights.insert(name, percent);
        }
        Ok(UniqueWeights(weights))
    }
}

fn unique_weights<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    UniqueWeights::deserialize(deserializer).map(|weights| weights.0)
}

/// A rule's weights: `null` still means none given, as for the other optional fields.
fn unique_rule_weights<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, f64>>, D::Error> {
    Option::<UniqueWeights>::deserialize(deserializer).map(|weights| weights.map(|w| w.0))
}

/// Features request header written when the config names none.
pub const DEFAULT_FEATURES_HEADER: &str = "x-canary-features";

/// One feature of the configuration's `features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct FeatureSpec {
    /// Percent of sticky keys that have the feature (0 to 100, resolution 0.01).
    pub percent: f64,
}

/// A map keyed by names that refuses a name given twice, as [`UniqueWeights`] does.
struct UniqueMap<V>(BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UniqueMapVisitor(std::marker::PhantomData))
    }
}

struct UniqueMapVisitor<V>(std::marker::PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMapVisitor<V> {
    type Value = UniqueMap<V>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map from feature names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if entries.contains_key(&name) {
                return Err(de::Error::custom(format_args!("duplicate key {name:?}")));
            }
            let value = map.next_value()?;
            entries.insert(name, value);
        }
        Ok(UniqueMap(entries))
    }
}

fn unique_features<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, FeatureSpec>, D::Error> {
    UniqueMap::deserialize(deserializer).map(|features| features.0)
}

fn unique_feature_pins<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, bool>>, D::Error> {
    Option::<UniqueMap<bool>>::deserialize(deserializer).map(|pins| pins.map(|p| p.0))
}

impl CanaryConfig {
    /// Parses the JSON document. Only syntax and shape are checked here; the error names the
    /// path of the offending field. See [`crate::plan::RoutingPlan`] for the rules.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = <Self as Deserialize>::deserialize(&mut de)
            .and_then(|parsed| de.end().map(|()| parsed))
            .map_err(|err| json_error(bytes, &err))?;
        Ok(parsed)
    }
}

/// serde_json reports where in the text it failed (line and column), not which field: the
/// field is recovered from the text. Tracking the path while deserializing
/// (`serde_path_to_error`) wraps every deserializer and visitor and cost about 45 KiB of the
/// `.wasm`; this runs only when a configuration is refused.
fn json_error(text: &[u8], err: &serde_json::Error) -> ConfigError {
    let mut offset = offset_of(text, err.line(), err.column());
    // A syntax error is reported just past the byte serde_json stopped at, a wrong type or a
    // bad value at it. When that byte opens an object or a list (`"when_missing": []`), the
    // value at fault is that object or list, not a first element inside it.
    let at_fault_opens = offset
        .checked_sub(1)
        .and_then(|last| text.get(last))
        .is_some_and(|byte| *byte == b'[' || *byte == b'{');
    if at_fault_opens && matches!(err.classify(), Category::Syntax | Category::Eof) {
        offset -= 1;
    }
    let reason = err.to_string();
    // A missing field is reported just past the object that lacks it, so the path found there
    // is the object's own.
    let field = json_path_at(text, offset);
    ConfigError::Json {
        field: if field.is_empty() {
            "(document)".to_string()
        } else {
            field
        },
        reason,
    }
}

/// Byte offset of a 1-based line and a column counted in bytes from the line's start (what
/// serde_json reports).
fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = match line.checked_sub(2) {
        // Line 1 starts the text; line n starts after the (n-1)th newline.
        None => 0,
        Some(newlines_before) => text
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(newlines_before)
            .map_or(text.len(), |(at, _)| at + 1),
    };
    line_start.saturating_add(column).min(text.len())
}

/// One open object or array while scanning JSON text.
enum Frame {
    /// An object and the key whose value is being read (none before the first key).
    Object {
        key: Option<String>,
        expecting_key: bool,
    },
    /// An array and the index of the element being read.
    Array { index: usize },
}

/// The path (`rules[0].when.header.name`) of the value being read at byte `offset` of a JSON
/// text.
fn json_path_at(text: &[u8], offset: usize) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut bytes = text.iter().take(offset).enumerate();
    while let Some((at, byte)) = bytes.next() {
        match byte {
            b'"' => {
                let start = at + 1;
                let mut end = offset;
                while let Some((i, b)) = bytes.next() {
                    match b {
                        b'\\' => {
                            bytes.next();
                        }
                        b'"' => {
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                if let Some(Frame::Object { key, expecting_key }) = stack.last_mut() {
                    if *expecting_key {
                        *key = Some(key_name(text, start, end));
                        *expecting_key = false;
                    }
                }
            }
            b'{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// The name of the key written between the quotes at `start - 1` and `end`, its escapes
/// (`\u0063anary`) decoded as a JSON reader decodes them, so the path names the field the
/// message names. A key cut short by the error is given as written.
fn key_name(text: &[u8], start: usize, end: usize) -> String {
    let quoted = text.get(start.saturating_sub(1)..end.saturating_add(1));
    if let Some(Ok(name)) = quoted.map(serde_json::from_slice::<String>) {
        return name;
    }
    String::from_utf8_lossy(text.get(start..end).unwrap_or_default()).into_owned()
}
