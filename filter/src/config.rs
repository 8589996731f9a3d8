//! The plugin configuration as users write it: JSON in Envoy's `configuration` StringValue or
//! Istio's `pluginConfig`. These types only describe the document; [`crate::plan`] checks it and
//! compiles it into the form the per-request path uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Route header written when the config names none.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-cluster";
/// Version header written when the config names none.
pub const DEFAULT_VERSION_HEADER: &str = "x-canary-version";

/// The whole plugin configuration. Unknown fields are refused at every level: a typo must not
/// silently disable a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The versions of the upstream service, 2 to 16. The order matters: non-default versions
    /// take consecutive bucket ranges in this order.
    pub versions: Vec<VersionSpec>,
    /// Name of the version that gets whatever the weights leave over, and every request the
    /// contract cannot place otherwise.
    pub default: String,
    /// Percent of traffic per non-default version (0 to 100, resolution 0.01, sum at most 100).
    #[serde(default)]
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
    #[serde(default = "default_route_header")]
    pub route_header: String,
    /// Request and response header that carries the chosen version's name; empty disables it.
    #[serde(default = "default_version_header")]
    pub version_header: String,
}

fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}

fn default_version_header() -> String {
    DEFAULT_VERSION_HEADER.to_string()
}

/// One version of the upstream service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// Name used in weights, rules, metrics labels and the version header
    /// (letters, digits, `_` and `-`, at most 64).
    pub name: String,
    /// The Envoy cluster that serves this version (written into the route header).
    pub cluster: String,
}

/// How a request's sticky key is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KeySource {
    /// A request header (name is case-insensitive).
    Header(String),
    /// A cookie from the `cookie` request header (name is case-sensitive, as in RFC 6265).
    Cookie(String),
}

/// What a request gets when none of the sticky keys is present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenMissing {
    /// A random bucket per request, so keyless traffic is still split by the weights.
    #[default]
    Random,
    /// The default version.
    Default,
}

/// Where the request's region comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Request header naming the region. When the request lacks it, the proxy's own locality
    /// (`node.locality.region` in the Envoy bootstrap) is used.
    pub header: String,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, f64>>,
}

/// The conditions of a rule. At least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

impl CanaryConfig {
    /// Parses the JSON document. Only syntax and shape are checked here; the error names the
    /// path of the offending field. See [`crate::plan::RoutingPlan`] for the rules.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed: Self = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(|err| ConfigError::Json {
            field: "(document)".to_string(),
            reason: err.to_string(),
        })?;
        Ok(parsed)
    }
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = err.path().to_string();
    let field = if path.is_empty() || path == "." || path == "?" {
        "(document)".to_string()
    } else {
        path
    };
    ConfigError::Json {
        field,
        reason: err.into_inner().to_string(),
    }
}
