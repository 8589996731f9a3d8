//! Feature flags in the proxy: named features, each on for a sticky percentage of users.
//!
//! The contract: a feature named `name` at `percent` is on for a request whose sticky key (the
//! same key as the version split: the first of `sticky.keys` present) has
//! `murmur3_x86_32(key, murmur3_x86_32(name, 0)) % 10000 < percent * 100`. Each feature has its
//! own seed, taken from its name, so features are independent of each other and of the version
//! split (whose seed is `sticky.seed`); raising a percent only adds users. A request without a
//! key draws a random bucket per feature (`when_missing: random`, or no `sticky`) or has no
//! feature on (`when_missing: default`). Rules pin features before any bucket is drawn: for
//! each feature, the first rule whose `when` holds and that names it decides.
//!
//! The filter writes the features a request has into one request header, by name in the
//! order of their names (`dark-mode,new-checkout`), and removes the client's copy when none is
//! on. With no `features` configured none of this runs.

use crate::bucket::{bucket_of, murmur3_x86_32, BasisPoints, BUCKETS};
use crate::checks::{basis_points, check_name, header_name};
use crate::compiled::{RequestReader, Rule, Sticky};
use crate::config::{CanaryConfig, WhenMissing, DEFAULT_FEATURES_HEADER};
use crate::error::ConfigError;
use crate::request::RequestView;

/// Most features one configuration may declare (a request's features are a 32-bit set).
pub const MAX_FEATURES: usize = 32;

/// The `canary_feature_state` label of requests with the feature, and without it.
pub const STATES: [&str; 2] = ["off", "on"];

/// The compiled `features` of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// In the order of their names.
    pub(crate) list: Vec<Feature>,
    /// The request header the features are written into (lower case).
    pub(crate) header: String,
    /// `(rule index, [(feature index, on)])` for every rule that pins features, in rule order.
    pub(crate) pins: Vec<(usize, Vec<(usize, bool)>)>,
}

/// One feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// Its name (metrics label, header value).
    pub name: String,
    /// `murmur3_x86_32(name, 0)`: the seed of its buckets.
    pub seed: u32,
    /// Buckets below this have it on (its percent times 100).
    pub end: BasisPoints,
}

/// Why a request has a feature on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureReason {
    /// Rule number `rule` pinned it.
    Pinned { rule: usize },
    /// Its bucket of the sticky key (`key`: index into `sticky.keys`; `None` when drawn at
    /// random for a request without a key).
    Bucket { bucket: u32, key: Option<usize> },
    /// No sticky key, and `when_missing` is `default`: off.
    MissingKey,
}

impl Features {
    /// Checks and compiles `config.features` and the rules' feature pins; `None` when the
    /// configuration declares no feature. `taken` are the request headers the filter already
    /// writes (the features header must differ from them).
    pub(crate) fn compile(
        config: &CanaryConfig,
        taken: &[&str],
    ) -> Result<Option<Features>, ConfigError> {
        let header_given = config.features_header.as_deref();
        let mut pins = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let Some(wanted) = &rule.features else {
                continue;
            };
            let mut rule_pins = Vec::with_capacity(wanted.len());
            for (name, on) in wanted {
                let index = config.features.keys().position(|have| have == name);
                let Some(index) = index else {
                    return Err(ConfigError::UnknownFeature {
                        field: format!("rules[{i}].features.{name}"),
                        value: name.clone(),
                    });
                };
                rule_pins.push((index, *on));
            }
            pins.push((i, rule_pins));
        }
        if config.features.is_empty() {
            if let Some(header) = header_given {
                header_name("features_header", header, false)?;
            }
            return Ok(None);
        }
        if config.features.len() > MAX_FEATURES {
            return Err(ConfigError::FeatureCount {
                count: config.features.len(),
            });
        }
        let header = header_name(
            "features_header",
            header_given.unwrap_or(DEFAULT_FEATURES_HEADER),
            false,
        )?;
        if taken.contains(&header.as_str()) {
            return Err(ConfigError::SameHeader {
                field: "features_header".to_string(),
                value: header,
            });
        }
        let mut list = Vec::with_capacity(config.features.len());
        for (name, spec) in &config.features {
            let field = format!("features.{name}");
            check_name(&field, name)?;
            let end = basis_points(&format!("{field}.percent"), spec.percent)?;
            list.push(Feature {
                name: name.clone(),
                seed: murmur3_x86_32(name.as_bytes(), 0),
                end,
            });
        }
        Ok(Some(Features { list, header, pins }))
    }

    /// The features, in the order of their names.
    pub fn list(&self) -> &[Feature] {
        &self.list
    }

    /// The request header the features are written into.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The header's value for the set `on` (bit `i` for feature `i`): the names joined by
    /// `,`, in the order of their names; empty when none is on.
    pub fn header_value(&self, on: u32) -> String {
        let mut value = String::new();
        for (index, feature) in self.list.iter().enumerate() {
            if on & (1 << index) != 0 {
                if !value.is_empty() {
                    value.push(',');
                }
                value.push_str(&feature.name);
            }
        }
        value
    }

    /// Which features a request has: bit `i` set for feature `i` on. Calls `each` with every
    /// feature's index, state and reason. `rules`, `sticky` and `reader` are the plan's: the
    /// pinning rules' conditions and the sticky key are read as the version's are.
    pub(crate) fn decide<R: RequestView>(
        &self,
        rules: &[Rule],
        sticky: Option<&Sticky>,
        reader: &RequestReader,
        request: &mut R,
        mut each: impl FnMut(usize, bool, FeatureReason),
    ) -> u32 {
        let mut on = 0u32;
        let mut pinned = 0u32;
        for (rule, rule_pins) in &self.pins {
            if rule_pins
                .iter()
                .all(|(feature, _)| pinned & (1 << feature) != 0)
            {
                continue;
            }
            let holds = rules
                .get(*rule)
                .is_some_and(|rule| reader.rule_holds(rule, request));
            if !holds {
                continue;
            }
            for &(feature, state) in rule_pins {
                let bit = 1 << feature;
                if pinned & bit == 0 {
                    pinned |= bit;
                    if state {
                        on |= bit;
                    }
                    each(feature, state, FeatureReason::Pinned { rule: *rule });
                }
            }
        }
        let all = if self.list.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.list.len()) - 1
        };
        if pinned == all {
            return on;
        }
        let missing_default =
            sticky.is_some_and(|sticky| sticky.when_missing == WhenMissing::Default);
        let unpinned = self
            .list
            .iter()
            .enumerate()
            .filter(|(index, _)| pinned & (1 << index) == 0);
        // `None`: no key, and `when_missing: default`.
        let mut decide = |index: usize, feature: &Feature, drawn: Option<(u32, Option<usize>)>| {
            let Some((bucket, key)) = drawn else {
                each(index, false, FeatureReason::MissingKey);
                return;
            };
            let state = bucket < feature.end;
            if state {
                on |= 1 << index;
            }
            each(index, state, FeatureReason::Bucket { bucket, key });
        };
        // The key is borrowed from the request, not copied: one allocation less per request.
        match sticky.and_then(|sticky| sticky.key(reader, request)) {
            Some((key_index, key)) => {
                for (index, feature) in unpinned {
                    decide(
                        index,
                        feature,
                        Some((bucket_of(key, feature.seed), Some(key_index))),
                    );
                }
            }
            None => {
                for (index, feature) in unpinned {
                    let drawn = (!missing_default).then(|| (request.random() % BUCKETS, None));
                    decide(index, feature, drawn);
                }
            }
        }
        on
    }
}

// Their tests go through a whole plan (`RoutingPlan::from_json`), which sits above this part.
#[cfg(test)]
mod tests;
