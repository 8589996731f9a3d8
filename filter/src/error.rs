//! Every way a configuration can be refused. Each message starts with the field it is about,
//! in the path notation users see in their JSON (`rules[2].weights.canary`).

use thiserror::Error;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// Not JSON, a wrong type, a missing or an unknown field, a key given twice.
    #[error("{field}: {reason}")]
    Json { field: String, reason: String },
    /// No version, or more than 16. One is allowed: after a promotion the old default is
    /// retired and the filter routes everyone to the one left until the next canary is added.
    #[error("versions: need 1 to 16 versions, got {count}")]
    VersionCount { count: usize },
    /// A version or rule name that cannot be a metrics label.
    #[error("{field}: {value:?} is not a valid name (1 to 64 letters, digits, '_' or '-')")]
    BadName { field: String, value: String },
    /// A rule name the metrics use for something else.
    #[error("{field}: {value:?} is reserved for the metrics' rule label")]
    ReservedName { field: String, value: String },
    /// The same name given twice.
    #[error("{field}: {value:?} is used twice")]
    Duplicate { field: String, value: String },
    /// A string or list that must not be empty.
    #[error("{field}: must not be empty")]
    Empty { field: String },
    /// A reference to a version that does not exist.
    #[error("{field}: no version is named {value:?}")]
    UnknownVersion { field: String, value: String },
    /// A weight given to the default version.
    #[error("{field}: the default version takes what the weights leave; it cannot have a weight")]
    WeightOfDefault { field: String },
    /// A weight outside 0..=100.
    #[error("{field}: {value} is not a percent from 0 to 100")]
    WeightRange { field: String, value: f64 },
    /// A weight finer than 0.01.
    #[error("{field}: {value} is finer than the resolution of 0.01")]
    WeightResolution { field: String, value: f64 },
    /// Weights that add up to more than 100.
    #[error("{field}: weights add up to {sum}%, more than 100")]
    WeightSum { field: String, sum: f64 },
    /// A rule with both or neither of `version` and `weights` (neither is allowed when the
    /// rule pins `features`).
    #[error("{field}: give exactly one of `version` and `weights` (or only `features`)")]
    RuleAction { field: String },
    /// A `when` without any condition.
    #[error("{field}: give at least one of `header`, `cookie`, `region`")]
    EmptyWhen { field: String },
    /// A header or cookie condition with both or none of its tests.
    #[error("{field}: give exactly one of `equals`, `prefix`, `present: true`")]
    MatchKind { field: String },
    /// A `hosts` entry that is not a host name.
    #[error("{field}: {value:?} is not a host name (DNS labels of letters, digits and '-', no port, no wildcard)")]
    BadHost { field: String, value: String },
    /// A header name that is not an HTTP token.
    #[error("{field}: {value:?} is not a valid header name")]
    BadHeaderName { field: String, value: String },
    /// `route_header` and `version_header` naming the same header; `field` is the one the
    /// document gives (the other may be its default).
    #[error("{field}: route_header and version_header must differ, both name {value:?}")]
    SameHeader { field: String, value: String },
    /// A reference to a feature that `features` does not declare.
    #[error("{field}: no feature is named {value:?}")]
    UnknownFeature { field: String, value: String },
    /// More features than the filter tracks per request.
    #[error("features: at most 32 features, got {count}")]
    FeatureCount { count: usize },
    /// Neither routing header is written.
    #[error("route_header: route_header and version_header are both empty: Envoy routes on one of them, so write at least one")]
    NoRoutingHeader,
    /// A response version header without a version header.
    #[error("response_version_header: needs version_header, which is empty")]
    ResponseHeaderWithoutVersionHeader,
    /// A `mirror` field that contradicts the rest of the configuration or the HTTP rules.
    #[error("{field}: {reason}")]
    Mirror { field: String, reason: String },
}

impl ConfigError {
    /// The path of the field the error is about, as its message starts (`rules[2].weights`),
    /// or `(document)` for the document as a whole. A missing field is reported at the object
    /// that lacks it.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Json { field, .. }
            | ConfigError::BadName { field, .. }
            | ConfigError::ReservedName { field, .. }
            | ConfigError::Duplicate { field, .. }
            | ConfigError::Empty { field }
            | ConfigError::UnknownVersion { field, .. }
            | ConfigError::WeightOfDefault { field }
            | ConfigError::WeightRange { field, .. }
            | ConfigError::WeightResolution { field, .. }
            | ConfigError::WeightSum { field, .. }
            | ConfigError::RuleAction { field }
            | ConfigError::EmptyWhen { field }
            | ConfigError::MatchKind { field }
            | ConfigError::BadHeaderName { field, .. }
            | ConfigError::BadHost { field, .. }
            | ConfigError::SameHeader { field, .. }
            | ConfigError::UnknownFeature { field, .. }
            | ConfigError::Mirror { field, .. } => field,
            ConfigError::FeatureCount { .. } => "features",
            ConfigError::VersionCount { .. } => "versions",
            ConfigError::NoRoutingHeader => "route_header",
            ConfigError::ResponseHeaderWithoutVersionHeader => "response_version_header",
        }
    }
}
