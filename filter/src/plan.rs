//! Validation and compilation of a [`CanaryConfig`] into a [`RoutingPlan`]: names resolved to
//! indices, weights to bucket ranges, header names lower-cased and numbered, so the
//! per-request path does no parsing, no lookup by name and no allocation for the decision.

use std::collections::BTreeMap;

use crate::bucket::{murmur3_x86_32, BasisPoints, Split, BUCKETS};
use crate::checks::{basis_points, check_name, cookie_name, header_name, FieldPath, Lazy};
use crate::compiled::{Action, Condition, Key, RequestReader, Rule, Sticky, ValueTest};
use crate::config::{CanaryConfig, KeySource, MatchSpec, MetricsSpec, RuleSpec};
use crate::error::ConfigError;
use crate::features::Features;
use crate::hosts::HostScope;
use crate::mirror::{Mirror, MirrorContext};
use crate::rule_index::RuleIndex;

// The compiled pieces and the request's header slots live in leaves of their own (their
// parts use them without the plan); their public names stay where they always were.
pub use crate::compiled::{MetricSeries, Version};
pub use crate::request::HeaderSlot;

/// Most versions a config may declare.
pub const MAX_VERSIONS: usize = 16;
/// The `rule` label of requests split by the top-level weights.
pub const LABEL_WEIGHTS: &str = "weights";
/// The `rule` label of requests sent to the default version for lack of a sticky key.
pub const LABEL_DEFAULT: &str = "default";

/// A configuration checked and compiled for the per-request path.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPlan {
    pub(crate) service: Option<String>,
    /// The hosts routed (`None`: every request).
    pub(crate) hosts: Option<HostScope>,
    pub(crate) versions: Vec<Version>,
    pub(crate) default_version: usize,
    pub(crate) split: Split,
    pub(crate) sticky: Option<Sticky>,
    /// The slots of the `cookie` and region headers, which conditions and keys read.
    pub(crate) reader: RequestReader,
    pub(crate) rules: Vec<Rule>,
    /// The rules by what they read (rule_index.rs).
    pub(crate) index: RuleIndex,
    pub(crate) route_header: Option<String>,
    pub(crate) version_header: Option<String>,
    pub(crate) response_version_header: bool,
    pub(crate) metrics: MetricsSpec,
    pub(crate) header_names: Vec<String>,
    pub(crate) outcomes: Vec<MetricSeries>,
    /// The outcome of requests defaulted for lack of a key (`when_missing: default`).
    pub(crate) missing_key_outcome: usize,
    /// The features (`None`: none configured, no feature work per request).
    pub(crate) features: Option<Features>,
    /// Which requests are copied to a dark canary (`None`: no mirror, no work).
    pub(crate) mirror: Option<Mirror>,
}

impl RoutingPlan {
    /// Parses and compiles a JSON plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        RoutingPlan::try_from(&CanaryConfig::from_json(bytes)?)
    }

    /// The configured service (the `canary_service` label), if any.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The versions, in declaration order.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// Index of the default version.
    pub fn default_version(&self) -> usize {
        self.default_version
    }

    /// Lower-cased names of the request headers the decision may read, by [`HeaderSlot`].
    pub fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// The header the chosen cluster is written into, if enabled (lower case).
    pub fn route_header(&self) -> Option<&str> {
        self.route_header.as_deref()
    }

    /// The header the chosen version's name is written into, if enabled (lower case).
    pub fn version_header(&self) -> Option<&str> {
        self.version_header.as_deref()
    }

    /// Whether the version header is written into the response too.
    pub fn response_version_header(&self) -> bool {
        self.response_version_header
    }

    /// Which per-request metrics are kept.
    pub fn metrics(&self) -> MetricsSpec {
        self.metrics
    }

    /// Every `(version, rule label)` a request can end in; metrics are defined for each.
    pub fn outcomes(&self) -> &[MetricSeries] {
        &self.outcomes
    }

    /// Names of the rules, in evaluation order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.name.as_str())
    }

    /// The sticky seed (0 when no sticky key is configured).
    pub fn seed(&self) -> u32 {
        self.sticky.as_ref().map_or(0, |sticky| sticky.seed)
    }

    /// The top-level split as `(version index, first bucket, end bucket)` per non-default
    /// version that has a weight.
    pub fn split_ranges(&self) -> Vec<(usize, u32, u32)> {
        self.split.ranges()
    }

    /// The version a split gives `bucket`: the top-level split (`rule: None`) or rule number
    /// `rule`'s split. `None` when that rule pins a version instead, or does not exist.
    pub fn split_version(&self, rule: Option<usize>, bucket: u32) -> Option<usize> {
        let split = match rule {
            None => &self.split,
            Some(index) => match &self.rules.get(index)?.action {
                Action::Split(split) => split,
                Action::Pin(..) | Action::Features => return None,
            },
        };
        Some(
            split
                .pick(bucket)
                .map_or(self.default_version, |(version, _)| version),
        )
    }

    /// The version rule number `rule` pins, if it pins one.
    pub fn pinned_version(&self, rule: usize) -> Option<usize> {
        match self.rules.get(rule)?.action {
            Action::Pin(version, _) => Some(version),
            Action::Split(_) | Action::Features => None,
        }
    }

    /// Whether the plan has a sticky key configured.
    pub fn is_sticky(&self) -> bool {
        self.sticky.is_some()
    }

    /// The compiled features, `None` when the configuration declares none.
    pub fn features(&self) -> Option<&Features> {
        self.features.as_ref()
    }

    /// The mirror header (lower case), when the configuration mirrors.
    pub fn mirror_header(&self) -> Option<&str> {
        self.mirror.as_ref().map(|mirror| mirror.header.as_str())
    }

    /// The version requests are copied to, when the configuration mirrors.
    pub fn mirror_version(&self) -> Option<usize> {
        self.mirror.as_ref().map(|mirror| mirror.version)
    }

    /// Index of the version called `name`.
    pub fn version_index(&self, name: &str) -> Option<usize> {
        self.versions
            .iter()
            .position(|version| version.name == name)
    }
}

impl TryFrom<&CanaryConfig> for RoutingPlan {
    type Error = ConfigError;

    fn try_from(config: &CanaryConfig) -> Result<Self, ConfigError> {
        Compiler::default().compile(config)
    }
}

impl TryFrom<CanaryConfig> for RoutingPlan {
    type Error = ConfigError;

    fn try_from(config: CanaryConfig) -> Result<Self, ConfigError> {
        RoutingPlan::try_from(&config)
    }
}

/// Whose label a split's outcomes carry.
#[derive(Clone, Copy)]
enum Label<'a> {
    /// The top level's (`weights`).
    TopLevel(&'a str),
    /// A rule's: its name.
    Rule(&'a str),
}

/// Collects header slots and outcomes while compiling.
#[derive(Default)]
struct Compiler {
    header_names: Vec<String>,
    outcomes: Vec<MetricSeries>,
    /// `header_names`' slots by a hash of the name (open addressing, a slot + 1 per cell, 0
    /// for none, at most half full), so that compiling many rules compares no rule's header
    /// name with the ones before it, nor moves a sorted list at every new name.
    slot_cells: Vec<u32>,
    /// The top level's `outcomes` (their indices) sorted by version and label, looked up by
    /// binary search. (A rule's outcomes need no search: [`Compiler::rule_outcome`].)
    outcomes_by_key: Vec<usize>,
}

/// The position of the first name that repeats an earlier one. In the names' order (equal
/// names together, each run in the order given) a repeat is any but the first of a run.
fn first_repeat<'a>(names: impl Iterator<Item = &'a str>) -> Option<usize> {
    let names: Vec<&[u8]> = names.map(str::as_bytes).collect();
    crate::order::by_bytes(&names)
        .windows(2)
        .filter_map(|pair| match *pair {
            [earlier, later] if names.get(earlier) == names.get(later) => Some(later),
            _ => None,
        })
        .min()
}

impl Compiler {
    fn compile(mut self, config: &CanaryConfig) -> Result<RoutingPlan, ConfigError> {
        if let Some(service) = &config.service {
            check_name("service", service)?;
        }
        let hosts = config
            .hosts
            .as_deref()
            .map(HostScope::compile)
            .transpose()?;
        let versions = check_versions(config)?;
        let default_version = versions
            .iter()
            .position(|version| version.name == config.default)
            .ok_or_else(|| ConfigError::UnknownVersion {
                field: "default".to_string(),
                value: config.default.clone(),
            })?;

        let route_header = if config.route_header.is_empty() {
            None
        } else {
            Some(header_name("route_header", &config.route_header, false)?)
        };
        let version_header = if config.version_header.is_empty() {
            None
        } else {
            let name = header_name("version_header", &config.version_header, false)?;
            if route_header.as_deref() == Some(name.as_str()) {
                // Name a field the document has: a version header left to its default means
                // the route header was written to match it.
                let field = if config.version_header == crate::config::DEFAULT_VERSION_HEADER {
                    "route_header"
                } else {
                    "version_header"
                };
                return Err(ConfigError::SameHeader {
                    field: field.to_string(),
                    value: name,
                });
            }
            Some(name)
        };
        if route_header.is_none() && version_header.is_none() {
            return Err(ConfigError::NoRoutingHeader);
        }
        if config.response_version_header && version_header.is_none() {
            return Err(ConfigError::ResponseHeaderWithoutVersionHeader);
        }

        let sticky = match &config.sticky {
            None => None,
            Some(spec) => {
                if spec.keys.is_empty() {
                    return Err(ConfigError::Empty {
                        field: "sticky.keys".to_string(),
                    });
                }
                let mut keys = Vec::with_capacity(spec.keys.len());
                for (i, key) in spec.keys.iter().enumerate() {
                    keys.push(match key {
                        KeySource::Header(name) => {
                            let field = format!("sticky.keys[{i}].header");
                            Key::Header(self.slot(header_name(&field, name, true)?))
                        }
                        KeySource::Cookie(name) => {
                            let field = format!("sticky.keys[{i}].cookie");
                            Key::Cookie(cookie_name(&field, name)?)
                        }
                    });
                }
                Some(Sticky {
                    keys,
                    seed: spec.seed,
                    when_missing: spec.when_missing,
                })
            }
        };

        let region_header = match &config.region {
            None => None,
            Some(spec) => Some(self.slot(header_name("region.header", &spec.header, true)?)),
        };

        let split = self.split(
            "weights",
            &config.weights,
            &versions,
            default_version,
            Label::TopLevel(LABEL_WEIGHTS),
        )?;

        let first_repeat = first_repeat(config.rules.iter().map(|rule| rule.name.as_str()));
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, spec) in config.rules.iter().enumerate() {
            check_name(Lazy(|| format!("rules[{i}].name")), &spec.name)?;
            if spec.name == LABEL_WEIGHTS || spec.name == LABEL_DEFAULT {
                return Err(ConfigError::ReservedName {
                    field: format!("rules[{i}].name"),
                    value: spec.name.clone(),
                });
            }
            if first_repeat == Some(i) {
                return Err(ConfigError::Duplicate {
                    field: format!("rules[{i}].name"),
                    value: spec.name.clone(),
                });
            }
            rules.push(self.rule(i, spec, &versions, default_version)?);
        }

        let missing_key_outcome = self.outcome(default_version, LABEL_DEFAULT);
        let cookie_header = self.header_names.iter().position(|name| name == "cookie");
        let cookie_header = match cookie_header {
            Some(slot) => Some(slot),
            None if uses_cookies(sticky.as_ref(), &rules) => Some(self.slot("cookie".to_string())),
            None => None,
        };
        let mirror = match &config.mirror {
            None => None,
            Some(spec) => {
                let context = MirrorContext {
                    versions: &versions,
                    sticky: sticky.as_ref(),
                    route_header: route_header.as_deref(),
                    version_header: version_header.as_deref(),
                };
                Some(Mirror::compile(spec, &context, |name| {
                    self.slot(name.to_string())
                })?)
            }
        };

        // The features header must differ from every header the filter writes (the mirror's too).
        let taken: Vec<&str> = route_header
            .iter()
            .map(String::as_str)
            .chain(version_header.as_deref())
            .chain(mirror.as_ref().map(|mirror| mirror.header.as_str()))
            .collect();
        let features = Features::compile(config, &taken)?;

        let keys = sticky.as_ref().map_or(&[][..], |sticky| &sticky.keys);
        let index = RuleIndex::new(&rules, &self.header_names, keys);
        Ok(RoutingPlan {
            service: config.service.clone(),
            hosts,
            versions,
            default_version,
            split,
            sticky,
            reader: RequestReader {
                cookie_header,
                region_header,
            },
            rules,
            index,
            route_header,
            version_header,
            response_version_header: config.response_version_header,
            metrics: config.metrics,
            header_names: self.header_names,
            outcomes: self.outcomes,
            missing_key_outcome,
            features,
            mirror,
        })
    }

    fn rule(
        &mut self,
        number: usize,
        spec: &RuleSpec,
        versions: &[Version],
        default_version: usize,
    ) -> Result<Rule, ConfigError> {
        // The rule's paths, written out only for an error (`FieldPath`).
        let field = || format!("rules[{number}]");
        let at = |suffix: &'static str| Lazy(move || format!("rules[{number}]{suffix}"));
        let mut conditions = Vec::new();
        if let Some(header) = &spec.when.header {
            let slot = self.slot(header_name(at(".when.header.name"), &header.name, true)?);
            conditions.push(Condition::Header(
                slot,
                value_test(at(".when.header"), header)?,
            ));
        }
        if let Some(cookie) = &spec.when.cookie {
            let name = cookie_name(at(".when.cookie.name"), &cookie.name)?;
            conditions.push(Condition::Cookie(
                name,
                value_test(at(".when.cookie"), cookie)?,
            ));
        }
        if let Some(regions) = &spec.when.region {
            let field = || format!("rules[{number}].when.region");
            if regions.is_empty() {
                return Err(ConfigError::Empty { field: field() });
            }
            if let Some(i) = regions.iter().position(String::is_empty) {
                return Err(ConfigError::Empty {
                    field: format!("{}[{i}]", field()),
                });
            }
            conditions.push(Condition::Region(
                regions
                    .iter()
                    .map(|region| region.as_bytes().to_vec())
                    .collect(),
            ));
        }
        if conditions.is_empty() {
            return Err(ConfigError::EmptyWhen {
                field: format!("{}.when", field()),
            });
        }
        let action = match (&spec.version, &spec.weights) {
            (Some(version), None) => {
                let index = versions
                    .iter()
                    .position(|v| &v.name == version)
                    .ok_or_else(|| ConfigError::UnknownVersion {
                        field: format!("{}.version", field()),
                        value: version.clone(),
                    })?;
                Action::Pin(index, self.rule_outcome(index, &spec.name))
            }
            (None, Some(weights)) => Action::Split(self.split(
                &format!("{}.weights", field()),
                weights,
                versions,
                default_version,
                Label::Rule(&spec.name),
            )?),
            (None, None) if spec.features.is_some() => Action::Features,
            _ => return Err(ConfigError::RuleAction { field: field() }),
        };
        Ok(Rule {
            name: spec.name.clone(),
            conditions,
            action,
        })
    }

    /// Checks a weights map and lays its versions' ranges out in declaration order.
    fn split(
        &mut self,
        field: &str,
        weights: &BTreeMap<String, f64>,
        versions: &[Version],
        default_version: usize,
        label: Label<'_>,
    ) -> Result<Split, ConfigError> {
        for name in weights.keys() {
            let field = format!("{field}.{name}");
            match versions.iter().position(|v| &v.name == name) {
                None => {
                    return Err(ConfigError::UnknownVersion {
                        field,
                        value: name.clone(),
                    })
                }
                Some(index) if index == default_version => {
                    return Err(ConfigError::WeightOfDefault { field })
                }
                Some(_) => {}
            }
        }
        let mut ranges = Vec::with_capacity(weights.len());
        let mut total: BasisPoints = 0;
        for (index, version) in versions.iter().enumerate() {
            let Some(&percent) = weights.get(&version.name) else {
                continue;
            };
            let points = basis_points(&format!("{field}.{}", version.name), percent)?;
            total += points;
            ranges.push((index, points, self.label_outcome(index, label)));
        }
        if total > BUCKETS {
            return Err(ConfigError::WeightSum {
                field: field.to_string(),
                sum: f64::from(total) / 100.0,
            });
        }
        let default_outcome = self.label_outcome(default_version, label);
        Ok(Split::new(&ranges, default_outcome))
    }

    /// The slot of the header named `lower_name`, numbered when it is new (the name is kept,
    /// not copied).
    fn slot(&mut self, lower_name: String) -> HeaderSlot {
        if self.slot_cells.len() < 2 * (self.header_names.len() + 1) {
            self.grow_slot_cells();
        }
        let mask = self.slot_cells.len() - 1;
        let mut at = murmur3_x86_32(lower_name.as_bytes(), 0) as usize & mask;
        loop {
            match self.slot_cells.get(at).copied() {
                Some(cell) if cell != 0 => {
                    let slot = cell as usize - 1;
                    if self.header_names.get(slot) == Some(&lower_name) {
                        return slot;
                    }
                    at = (at + 1) & mask;
                }
                empty => {
                    self.header_names.push(lower_name);
                    let slot = self.header_names.len() - 1;
                    if let (Some(_), Some(cell)) = (empty, self.slot_cells.get_mut(at)) {
                        *cell = u32::try_from(slot + 1).unwrap_or(0);
                    }
                    return slot;
                }
            }
        }
    }

    /// Twice the cells (at least 16, a power of two), every name filed again.
    fn grow_slot_cells(&mut self) {
        let size = (2 * self.slot_cells.len()).max(16);
        self.slot_cells = vec![0; size];
        for (slot, name) in self.header_names.iter().enumerate() {
            let mut at = murmur3_x86_32(name.as_bytes(), 0) as usize & (size - 1);
            while let Some(cell) = self.slot_cells.get_mut(at) {
                if *cell == 0 {
                    *cell = u32::try_from(slot + 1).unwrap_or(0);
                    break;
                }
                at = (at + 1) & (size - 1);
            }
        }
    }

    fn label_outcome(&mut self, version: usize, label: Label<'_>) -> usize {
        match label {
            Label::TopLevel(label) => self.outcome(version, label),
            Label::Rule(name) => self.rule_outcome(version, name),
        }
    }

    /// The outcome `(version, rule name)` of a rule, made without looking for it: no other
    /// rule has the name (the names are checked unique before the rules are compiled), no
    /// top-level label can be it (`weights` and `default` are reserved), and a rule makes each
    /// of its outcomes once (its split gives the default version no weight). Nothing looks
    /// it up later, so it is not filed for [`Compiler::outcome`]'s search: for a thousand
    /// rules, the search and the sorted insertion cost 1.4 million fuel of the 11 million
    /// compiling them took.
    fn rule_outcome(&mut self, version: usize, name: &str) -> usize {
        self.outcomes.push(MetricSeries {
            version,
            label: name.to_string(),
        });
        self.outcomes.len() - 1
    }

    /// The outcome `(version, label)` of the top level (labels `weights` and `default`): found
    /// when made before, else made.
    fn outcome(&mut self, version: usize, label: &str) -> usize {
        let outcomes = &self.outcomes;
        let found = self.outcomes_by_key.binary_search_by(|index| {
            outcomes
                .get(*index)
                .map(|outcome| (outcome.version, outcome.label.as_str()))
                .cmp(&Some((version, label)))
        });
        match found {
            Ok(at) => self.outcomes_by_key.get(at).copied().unwrap_or_default(),
            Err(at) => {
                self.outcomes.push(MetricSeries {
                    version,
                    label: label.to_string(),
                });
                let index = self.outcomes.len() - 1;
                self.outcomes_by_key.insert(at, index);
                index
            }
        }
    }
}

fn check_versions(config: &CanaryConfig) -> Result<Vec<Version>, ConfigError> {
    let count = config.versions.len();
    if !(1..=MAX_VERSIONS).contains(&count) {
        return Err(ConfigError::VersionCount { count });
    }
    let mut versions = Vec::with_capacity(count);
    for (i, spec) in config.versions.iter().enumerate() {
        check_name(&format!("versions[{i}].name"), &spec.name)?;
        if config
            .versions
            .iter()
            .take(i)
            .any(|earlier| earlier.name == spec.name)
        {
            return Err(ConfigError::Duplicate {
                field: format!("versions[{i}].name"),
                value: spec.name.clone(),
            });
        }
        // A cluster name is written into a request header: it must be a valid header value.
        if spec.cluster.trim().is_empty() {
            return Err(ConfigError::Empty {
                field: format!("versions[{i}].cluster"),
            });
        }
        if spec.cluster.bytes().any(|b| b.is_ascii_control()) || spec.cluster.trim() != spec.cluster
        {
            return Err(ConfigError::BadName {
                field: format!("versions[{i}].cluster"),
                value: spec.cluster.clone(),
            });
        }
        versions.push(Version {
            name: spec.name.clone(),
            cluster: spec.cluster.clone(),
        });
    }
    Ok(versions)
}

fn value_test(field: impl FieldPath, spec: &MatchSpec) -> Result<ValueTest, ConfigError> {
    match (&spec.equals, &spec.prefix, spec.present) {
        (Some(value), None, None) => Ok(ValueTest::Equals(value.as_bytes().to_vec())),
        (None, Some(prefix), None) => Ok(ValueTest::Prefix(prefix.as_bytes().to_vec())),
        (None, None, Some(true)) => Ok(ValueTest::Present),
        _ => Err(ConfigError::MatchKind {
            field: field.path(),
        }),
    }
}

fn uses_cookies(sticky: Option<&Sticky>, rules: &[Rule]) -> bool {
    let in_keys = sticky.is_some_and(|s| s.keys.iter().any(|key| matches!(key, Key::Cookie(_))));
    let in_rules = rules.iter().any(|rule| {
        rule.conditions
            .iter()
            .any(|condition| matches!(condition, Condition::Cookie(..)))
    });
    in_keys || in_rules
}
