//! The plugin configuration as users write it: JSON in Envoy's `configuration` StringValue or
//! Istio's `pluginConfig`. These types only describe the document; [`crate::plan`] checks it and
//! compiles it into the form the per-request path uses.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Quoted;
use crate::json::{Read, Reader, Refused};
use crate::ConfigError;

/// Route header written when the config names none.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-cluster";
/// Version header written when the config names none.
pub const DEFAULT_VERSION_HEADER: &str = "x-canary-version";

/// The whole plugin configuration. Unknown fields are refused at every level: a typo must not
/// silently disable a rule. So is a key given twice in one object, struct field or weights
/// entry alike: with the last one silently winning, a pasted `"canary": 50` below a reviewed
/// `"canary": 5` would go unnoticed. Each object is read as an object only (`objects_only!`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryConfig {
    /// The service this filter routes, as the `canary_service` label of every metric (same
    /// alphabet as version names). Left out: the metrics carry no `canary_service` label, as
    /// before the field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The service hosts this filter routes, matched against the request's `:authority` (see
    /// [`crate::hosts`]); a request for any other host is left alone. Left out: every request
    /// is routed (a front proxy for one service). Needed in a sidecar, which runs the filter
    /// on every outbound call of its workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// The versions of the upstream service, 2 to 16. The order matters: non-default versions
    /// take consecutive bucket ranges in this order.
    pub versions: Vec<VersionSpec>,
    /// Name of the version that gets whatever the weights leave over, and every request the
    /// contract cannot place otherwise.
    pub default: String,
    /// Percent of traffic per non-default version (0 to 100, resolution 0.01, sum at most 100).
    pub weights: BTreeMap<String, f64>,
    /// Where the sticky key comes from. Left out: every request draws a random bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickySpec>,
    /// Where the request's region comes from (for `when.region`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionSpec>,
    /// Evaluated in order; the first rule whose `when` holds decides.
    pub rules: Vec<RuleSpec>,
    /// Request header that carries the chosen cluster; Envoy routes on it with `cluster_header`.
    /// Empty: not written (a mesh that routes on the version header, such as Istio).
    pub route_header: String,
    /// Request header that carries the chosen version's name (Istio's `VirtualService` routes
    /// on it). Empty: not written. At least one of the two headers must be written.
    pub version_header: String,
    /// Also write `version_header` into the response, for clients and tests that want to see
    /// the version: one more host call per response, so off unless asked for.
    #[serde(skip_serializing_if = "is_false")]
    pub response_version_header: bool,
    /// Which per-request metrics the filter keeps; each costs host calls per request.
    #[serde(skip_serializing_if = "MetricsSpec::is_all")]
    pub metrics: MetricsSpec,
    /// Named features, each on for a sticky percentage of users (see [`crate::features`]).
    /// Left out: no feature, and the filter does no feature work at all.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, FeatureSpec>,
    /// Request header that tells the upstream which features a request has
    /// (`new-checkout,dark-mode`, by name). Left out: [`DEFAULT_FEATURES_HEADER`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features_header: Option<String>,
    /// A dark canary: a share of requests copied to a version whose answers are discarded
    /// (see [`MirrorSpec`]). Left out: nothing is mirrored and no request pays for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSpec>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The per-request metrics, each on unless turned off (`canaryctl status` and `rollout` read
/// all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MetricsSpec {
    /// `canary_requests_total`: memory only per request, handed to Envoy on a timer.
    pub requests: bool,
    /// `canary_responses_total` by status class: reads `:status` on every response.
    pub responses: bool,
    /// `canary_request_duration_ms`: two clock reads and one histogram sample per request.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSpec {
    /// Name used in weights, rules, metrics labels and the version header
    /// (letters, digits, `_` and `-`, at most 64).
    pub name: String,
    /// The Envoy cluster that serves this version (written into the route header).
    pub cluster: String,
}

/// How a request's sticky key is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StickySpec {
    /// Sources tried in order; the first present and non-empty value is the key.
    pub keys: Vec<KeySource>,
    /// murmur3 seed; a new seed draws a fresh cohort for a new rollout.
    pub seed: u32,
    /// What a request without any key gets.
    pub when_missing: WhenMissing,
}

/// One place a sticky key may be read from: exactly one of `header` or `cookie`.
///
/// Written as `{"header": "x-user-id"}`, read as an object with two optional fields of which
/// exactly one is given, so that both, neither and an extra key each have their own message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// A request header (name is case-insensitive).
    Header(String),
    /// A cookie from the `cookie` request header (name is case-sensitive, as in RFC 6265).
    Cookie(String),
}

/// What a request gets when none of the sticky keys is present, read from its name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenMissing {
    /// A random bucket per request, so keyless traffic is still split by the weights.
    #[default]
    Random,
    /// The default version.
    Default,
}

/// Where the request's region comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionSpec {
    /// Request header naming the region. When the request lacks it, the proxy's own locality
    /// (`node.locality.region` in the Envoy bootstrap) is used.
    pub header: String,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSpec {
    /// Unique name; it becomes the `rule` label of the metrics.
    pub name: String,
    /// Conditions; all that are given must hold.
    pub when: WhenSpec,
    /// Pin matching requests to this version. Exactly one of `version` and `weights`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Split matching requests by these weights (same key, seed and bucket ranges as the
    /// top-level split). Exactly one of `version` and `weights`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, f64>>,
    /// Pin features on (`true`) or off (`false`) for matching requests. A rule that gives only
    /// `features` leaves the version to the rules after it and the split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeMap<String, bool>>,
}

/// The conditions of a rule. At least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WhenSpec {
    /// A request header condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<MatchSpec>,
    /// A cookie condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<MatchSpec>,
    /// The request's region is one of these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Vec<String>>,
}

/// A condition on one header or cookie: `name` plus exactly one of `equals`, `prefix`,
/// `present: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchSpec {
    /// Header name (case-insensitive) or cookie name (case-sensitive).
    pub name: String,
    /// The value equals this exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The value starts with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value is present (an empty value counts as present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// Mirror header written when the `mirror` section names none.
pub const DEFAULT_MIRROR_HEADER: &str = "x-canary-mirror";

/// Which requests are copied to a version (a dark canary): Envoy's `request_mirror_policies`
/// reads the target cluster from `header` (`cluster_header`), sends the copy and discards its
/// answer; the user gets the routed version's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorSpec {
    /// The version the copies go to.
    pub version: String,
    /// Percent of the eligible requests copied (0 to 100, resolution 0.01).
    pub percent: f64,
    /// `sticky`: a user is in or out of the mirrored share for good, by the split's sticky key
    /// hashed with `seed` (a keyless request follows `sticky.when_missing`). `random`: each
    /// request is drawn on its own. Left out: `sticky` when the configuration has a sticky
    /// key, else `random`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<String>,
    /// murmur3 seed of the mirrored share. Left out: the split's seed XOR [`MIRROR_SEED_MIX`],
    /// so the mirrored users are not simply the first users the canary's weight will take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    /// Request header the target cluster is written into (Envoy's mirror policy reads it).
    pub header: String,
    /// The request methods that may be copied (case-sensitive, as HTTP methods are). Left out:
    /// `GET` and `HEAD`, which do not change state; anything else is the operator's choice.
    pub methods: Vec<String>,
    /// Path prefixes never copied (plain prefixes of `:path`, query included: `/admin` also
    /// keeps `/administrator` out, which errs on the safe side).
    #[serde(skip_serializing_if = "Vec::is_empty")]
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

/// Features request header written when the config names none.
pub const DEFAULT_FEATURES_HEADER: &str = "x-canary-features";

/// One feature of the configuration's `features`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureSpec {
    /// Percent of sticky keys that have the feature (0 to 100, resolution 0.01).
    pub percent: f64,
}

// Reading. Each struct is read from a JSON object only, its fields in the order the document
// gives them, so that the first problem in the text is the one reported, as serde's derived
// readers did: an unknown or repeated key, a value of the wrong type, then, at the end of the
// object, a missing field (named at the object's own path). `null` stands for a field left out
// where the field is optional (`Option`), and is a wrong type elsewhere.

impl CanaryConfig {
    /// Parses the JSON document. Only syntax and shape are checked here; the error names the
    /// path of the offending field. See [`crate::plan::RoutingPlan`] for the rules.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut reader = Reader::new(bytes);
        Self::read(&mut reader)
            .and_then(|config| reader.end().map(|()| config))
            .map_err(|Refused| reader.refusal())
    }

    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&[
            "service",
            "hosts",
            "versions",
            "default",
            "weights",
            "sticky",
            "region",
            "rules",
            "route_header",
            "version_header",
            "response_version_header",
            "metrics",
            "features",
            "features_header",
            "mirror",
        ]);
        let mut service = None;
        let mut hosts = None;
        let mut versions = None;
        let mut default = None;
        let mut weights = BTreeMap::new();
        let mut sticky = None;
        let mut region = None;
        let mut rules = Vec::new();
        let mut route_header = default_route_header();
        let mut version_header = default_version_header();
        let mut response_version_header = false;
        let mut metrics = MetricsSpec::default();
        let mut features = BTreeMap::new();
        let mut features_header = None;
        let mut mirror = None;
        reader.object(AN_OBJECT, |reader, key| {
            match fields.take(reader, key)? {
                0 => service = optional(reader, Reader::string)?,
                1 => hosts = optional(reader, Reader::strings)?,
                2 => versions = Some(list(reader, VersionSpec::read)?),
                3 => default = Some(reader.string()?),
                4 => weights = percents(reader)?,
                5 => sticky = optional(reader, StickySpec::read)?,
                6 => region = optional(reader, RegionSpec::read)?,
                7 => rules = list(reader, RuleSpec::read)?,
                8 => route_header = reader.string()?,
                9 => version_header = reader.string()?,
                10 => response_version_header = reader.boolean()?,
                11 => metrics = MetricsSpec::read(reader)?,
                12 => features = named(reader, FEATURE_MAP, FeatureSpec::read)?,
                13 => features_header = optional(reader, Reader::string)?,
                _ => mirror = optional(reader, MirrorSpec::read)?,
            }
            Ok(())
        })?;
        Ok(CanaryConfig {
            service,
            hosts,
            versions: versions.ok_or_else(|| reader.missing("versions"))?,
            default: default.ok_or_else(|| reader.missing("default"))?,
            weights,
            sticky,
            region,
            rules,
            route_header,
            version_header,
            response_version_header,
            metrics,
            features,
            features_header,
            mirror,
        })
    }
}

impl MetricsSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["requests", "responses", "latency"]);
        let mut metrics = MetricsSpec::default();
        reader.object(AN_OBJECT, |reader, key| {
            let value = match fields.take(reader, key)? {
                0 => &mut metrics.requests,
                1 => &mut metrics.responses,
                _ => &mut metrics.latency,
            };
            *value = reader.boolean()?;
            Ok(())
        })?;
        Ok(metrics)
    }
}

impl VersionSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["name", "cluster"]);
        let (mut name, mut cluster) = (None, None);
        reader.object(AN_OBJECT, |reader, key| {
            let value = match fields.take(reader, key)? {
                0 => &mut name,
                _ => &mut cluster,
            };
            *value = Some(reader.string()?);
            Ok(())
        })?;
        Ok(VersionSpec {
            name: name.ok_or_else(|| reader.missing("name"))?,
            cluster: cluster.ok_or_else(|| reader.missing("cluster"))?,
        })
    }
}

impl StickySpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["keys", "seed", "when_missing"]);
        let mut keys = None;
        let mut seed = 0;
        let mut when_missing = WhenMissing::default();
        reader.object(AN_OBJECT, |reader, key| {
            match fields.take(reader, key)? {
                0 => keys = Some(list(reader, KeySource::read)?),
                1 => seed = reader.u32()?,
                _ => when_missing = WhenMissing::read(reader)?,
            }
            Ok(())
        })?;
        Ok(StickySpec {
            keys: keys.ok_or_else(|| reader.missing("keys"))?,
            seed,
            when_missing,
        })
    }
}

impl KeySource {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["header", "cookie"]);
        let (mut header, mut cookie) = (None, None);
        reader.object("an object with a `header` or a `cookie`", |reader, key| {
            let value = match fields.take(reader, key)? {
                0 => &mut header,
                _ => &mut cookie,
            };
            *value = optional(reader, Reader::string)?;
            Ok(())
        })?;
        match (header, cookie) {
            (Some(header), None) => Ok(KeySource::Header(header)),
            (None, Some(cookie)) => Ok(KeySource::Cookie(cookie)),
            (Some(_), Some(_)) => Err(reader.error(&"give one of `header` and `cookie`, not both")),
            (None, None) => Err(reader.error(&"give one of `header` and `cookie`")),
        }
    }
}

impl WhenMissing {
    fn read(reader: &mut Reader) -> Read<Self> {
        let name = reader.string_expecting("`random` or `default`")?;
        match name.as_str() {
            "random" => Ok(WhenMissing::Random),
            "default" => Ok(WhenMissing::Default),
            _ => Err(reader.error(&format_args!(
                "unknown variant `{name}`, expected `random` or `default`"
            ))),
        }
    }
}

impl RegionSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["header"]);
        let mut header = None;
        reader.object(AN_OBJECT, |reader, key| {
            fields.take(reader, key)?;
            header = Some(reader.string()?);
            Ok(())
        })?;
        Ok(RegionSpec {
            header: header.ok_or_else(|| reader.missing("header"))?,
        })
    }
}

impl RuleSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["name", "when", "version", "weights", "features"]);
        let mut name = None;
        let mut when = None;
        let mut version = None;
        let mut weights = None;
        let mut features = None;
        reader.object(AN_OBJECT, |reader, key| {
            match fields.take(reader, key)? {
                0 => name = Some(reader.string()?),
                1 => when = Some(WhenSpec::read(reader)?),
                2 => version = optional(reader, Reader::string)?,
                3 => weights = optional(reader, percents)?,
                _ => {
                    features =
                        optional(reader, |reader| named(reader, FEATURE_MAP, Reader::boolean))?
                }
            }
            Ok(())
        })?;
        Ok(RuleSpec {
            name: name.ok_or_else(|| reader.missing("name"))?,
            when: when.ok_or_else(|| reader.missing("when"))?,
            version,
            weights,
            features,
        })
    }
}

impl WhenSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["header", "cookie", "region"]);
        let mut when = WhenSpec::default();
        reader.object(AN_OBJECT, |reader, key| {
            match fields.take(reader, key)? {
                0 => when.header = optional(reader, MatchSpec::read)?,
                1 => when.cookie = optional(reader, MatchSpec::read)?,
                _ => when.region = optional(reader, Reader::strings)?,
            }
            Ok(())
        })?;
        Ok(when)
    }
}

impl MatchSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["name", "equals", "prefix", "present"]);
        let mut name = None;
        let (mut equals, mut prefix, mut present) = (None, None, None);
        reader.object(AN_OBJECT, |reader, key| {
            match fields.take(reader, key)? {
                0 => name = Some(reader.string()?),
                1 => equals = optional(reader, Reader::string)?,
                2 => prefix = optional(reader, Reader::string)?,
                _ => present = optional(reader, Reader::boolean)?,
            }
            Ok(())
        })?;
        Ok(MatchSpec {
            name: name.ok_or_else(|| reader.missing("name"))?,
            equals,
            prefix,
            present,
        })
    }
}

impl MirrorSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&[
            "version",
            "percent",
            "sampling",
            "seed",
            "header",
            "methods",
            "exclude_paths",
        ]);
        let mut version = None;
        let mut percent = None;
        let mut sampling = None;
        let mut seed = None;
        let mut header = default_mirror_header();
        let mut methods = default_mirror_methods();
        let mut exclude_paths = Vec::new();
        reader.object(AN_OBJECT, |reader, key| {
            match fields.take(reader, key)? {
                0 => version = Some(reader.string()?),
                1 => percent = Some(reader.f64()?),
                2 => sampling = optional(reader, Reader::string)?,
                3 => seed = optional(reader, Reader::u32)?,
                4 => header = reader.string()?,
                5 => methods = reader.strings()?,
                _ => exclude_paths = reader.strings()?,
            }
            Ok(())
        })?;
        Ok(MirrorSpec {
            version: version.ok_or_else(|| reader.missing("version"))?,
            percent: percent.ok_or_else(|| reader.missing("percent"))?,
            sampling,
            seed,
            header,
            methods,
            exclude_paths,
        })
    }
}

impl FeatureSpec {
    fn read(reader: &mut Reader) -> Read<Self> {
        let mut fields = Fields::of(&["percent"]);
        let mut percent = None;
        reader.object(AN_OBJECT, |reader, key| {
            fields.take(reader, key)?;
            percent = Some(reader.f64()?);
            Ok(())
        })?;
        Ok(FeatureSpec {
            percent: percent.ok_or_else(|| reader.missing("percent"))?,
        })
    }
}

/// What every struct of the configuration is written as.
const AN_OBJECT: &str = "an object";
/// What `features` and a rule's `features` are written as.
const FEATURE_MAP: &str = "a map from feature names";

/// The fields of one struct, and which of them the object has given so far.
struct Fields {
    names: &'static [&'static str],
    given: u32,
}

impl Fields {
    fn of(names: &'static [&'static str]) -> Self {
        Fields { names, given: 0 }
    }

    /// The index of `key` among the fields. A key that is none of them, or one given before,
    /// is refused (a typo must not silently disable a rule; with the last of two keys
    /// silently winning, a pasted `"canary": 50` below a reviewed `"canary": 5` would go
    /// unnoticed).
    fn take(&mut self, reader: &mut Reader, key: &str) -> Read<usize> {
        let Some(index) = self.names.iter().position(|name| *name == key) else {
            return Err(reader.error(&unknown_field(key, self.names)));
        };
        let bit = 1 << index;
        if self.given & bit != 0 {
            return Err(reader.error(&format_args!("duplicate field `{key}`")));
        }
        self.given |= bit;
        Ok(index)
    }
}

/// serde's message for an unknown field, with the fields it knows.
fn unknown_field(key: &str, names: &[&str]) -> String {
    let mut message = format!("unknown field `{key}`, ");
    match names {
        [] => message.push_str("there are no fields"),
        [only] => message.push_str(&format!("expected `{only}`")),
        [first, second] => message.push_str(&format!("expected `{first}` or `{second}`")),
        _ => {
            message.push_str("expected one of ");
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    message.push_str(", ");
                }
                message.push('`');
                message.push_str(name);
                message.push('`');
            }
        }
    }
    message
}

/// A value that may be `null` for "not given".
fn optional<'t, T>(
    reader: &mut Reader<'t>,
    read: impl FnOnce(&mut Reader<'t>) -> Read<T>,
) -> Read<Option<T>> {
    if reader.null()? {
        return Ok(None);
    }
    read(reader).map(Some)
}

/// A list of structs.
fn list<'t, T>(
    reader: &mut Reader<'t>,
    mut read: impl FnMut(&mut Reader<'t>) -> Read<T>,
) -> Read<Vec<T>> {
    let mut items = Vec::new();
    reader.array(|reader| {
        items.push(read(reader)?);
        Ok(())
    })?;
    Ok(items)
}

/// A weights map: version names to percents.
fn percents(reader: &mut Reader) -> Read<BTreeMap<String, f64>> {
    named(reader, "a map from version names to percents", Reader::f64)
}

/// A map keyed by names that refuses a name given twice, at the second one's path (a JSON
/// reader's own maps keep the last value of a repeated key).
fn named<'t, V>(
    reader: &mut Reader<'t>,
    expecting: &str,
    mut read: impl FnMut(&mut Reader<'t>) -> Read<V>,
) -> Read<BTreeMap<String, V>> {
    let mut entries = BTreeMap::new();
    reader.object(expecting, |reader, key| {
        if entries.contains_key(key) {
            return Err(reader.error(&format_args!("duplicate key {}", Quoted(key))));
        }
        let value = read(reader)?;
        entries.insert(key.to_string(), value);
        Ok(())
    })?;
    Ok(entries)
}
