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
    #[error("{field}: {} is not a valid name (1 to 64 letters, digits, '_' or '-')", Quoted(.value))]
    BadName { field: String, value: String },
    /// A rule name the metrics use for something else.
    #[error("{field}: {} is reserved for the metrics' rule label", Quoted(.value))]
    ReservedName { field: String, value: String },
    /// The same name given twice.
    #[error("{field}: {} is used twice", Quoted(.value))]
    Duplicate { field: String, value: String },
    /// A string or list that must not be empty.
    #[error("{field}: must not be empty")]
    Empty { field: String },
    /// A reference to a version that does not exist.
    #[error("{field}: no version is named {}", Quoted(.value))]
    UnknownVersion { field: String, value: String },
    /// A weight given to the default version.
    #[error("{field}: the default version takes what the weights leave; it cannot have a weight")]
    WeightOfDefault { field: String },
    /// A weight outside 0..=100.
    #[error("{field}: {} is not a percent from 0 to 100", Percent(*.value))]
    WeightRange { field: String, value: f64 },
    /// A weight finer than 0.01.
    #[error("{field}: {} is finer than the resolution of 0.01", Percent(*.value))]
    WeightResolution { field: String, value: f64 },
    /// Weights that add up to more than 100.
    #[error("{field}: weights add up to {}%, more than 100", Percent(*.sum))]
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
    #[error("{field}: {} is not a host name (DNS labels of letters, digits and '-', no port, no wildcard)", Quoted(.value))]
    BadHost { field: String, value: String },
    /// A header name that is not an HTTP token.
    #[error("{field}: {} is not a valid header name", Quoted(.value))]
    BadHeaderName { field: String, value: String },
    /// `route_header` and `version_header` naming the same header; `field` is the one the
    /// document gives (the other may be its default).
    #[error("{field}: route_header and version_header must differ, both name {}", Quoted(.value))]
    SameHeader { field: String, value: String },
    /// A reference to a feature that `features` does not declare.
    #[error("{field}: no feature is named {}", Quoted(.value))]
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

/// A percent in a message, as a person writes it: `120`, `10.005` (ryu's shortest digits, so
/// the module needs no float formatting of the standard library's).
struct Percent(f64);

impl std::fmt::Display for Percent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mut buffer = ryu::Buffer::new();
        let digits = match self.0 {
            value if value.is_finite() => buffer.format_finite(value),
            value if value.is_nan() => "NaN",
            value if value > 0.0 => "inf",
            _ => "-inf",
        };
        formatter.write_str(digits.strip_suffix(".0").unwrap_or(digits))
    }
}

/// A name or value in a message, quoted and escaped as JSON writes it (`"can\"ary"`), as the
/// document the user wrote has it. (Not `{:?}`: Rust's escaping links the standard library's
/// Unicode tables into the module, about 4 KB.)
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mut quoted = Vec::with_capacity(self.0.len() + 2);
        crate::json_write::string(&mut quoted, self.0);
        // The escaping keeps the text UTF-8.
        formatter.write_str(std::str::from_utf8(&quoted).unwrap_or_default())
    }
}
