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
use crate::config::{CanaryConfig, WhenMissing, DEFAULT_FEATURES_HEADER};
use crate::decision::RequestView;
use crate::plan::{Key, RoutingPlan};
use crate::ConfigError;

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
                crate::plan::header_name("features_header", header, false)?;
            }
            return Ok(None);
        }
        if config.features.len() > MAX_FEATURES {
            return Err(ConfigError::FeatureCount {
                count: config.features.len(),
            });
        }
        let header = crate::plan::header_name(
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
            crate::plan::check_name(&field, name)?;
            let end = crate::plan::basis_points(&format!("{field}.percent"), spec.percent)?;
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
}

impl RoutingPlan {
    /// The compiled features, `None` when the configuration declares none.
    pub fn features(&self) -> Option<&Features> {
        self.features.as_ref()
    }

    /// Which features a request has: bit `i` set for feature `i` on. Calls `each` with every
    /// feature's index, state and reason (for `canaryctl explain`). Without features: 0, and
    /// nothing read.
    pub fn decide_features<R: RequestView>(
        &self,
        request: &mut R,
        mut each: impl FnMut(usize, bool, FeatureReason),
    ) -> u32 {
        let Some(features) = &self.features else {
            return 0;
        };
        let mut on = 0u32;
        let mut pinned = 0u32;
        for (rule, rule_pins) in &features.pins {
            if rule_pins
                .iter()
                .all(|(feature, _)| pinned & (1 << feature) != 0)
            {
                continue;
            }
            let holds = self.rules.get(*rule).is_some_and(|rule| {
                rule.conditions
                    .iter()
                    .all(|condition| self.holds(condition, request))
            });
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
        let all = if features.list.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << features.list.len()) - 1
        };
        if pinned == all {
            return on;
        }
        let missing_default = self
            .sticky
            .as_ref()
            .is_some_and(|sticky| sticky.when_missing == WhenMissing::Default);
        let unpinned = features
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
        match self.sticky_key(request) {
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

    /// The request's sticky key: the index of its source in `sticky.keys` and its value.
    pub fn sticky_key<'r, R: RequestView>(&self, request: &'r mut R) -> Option<(usize, &'r [u8])> {
        let sticky = self.sticky.as_ref()?;
        let mut found = None;
        for (index, key) in sticky.keys.iter().enumerate() {
            let present = match key {
                Key::Header(slot) => request.header(*slot).is_some_and(|v| !v.is_empty()),
                Key::Cookie(name) => self.cookie(request, name).is_some_and(|v| !v.is_empty()),
            };
            if present {
                found = Some((index, key));
                break;
            }
        }
        let (index, key) = found?;
        let value = match key {
            Key::Header(slot) => request.header(*slot),
            Key::Cookie(name) => self.cookie(request, name),
        }?;
        Some((index, value))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::decision::RequestDescription;

    fn plan(json: &str) -> RoutingPlan {
        RoutingPlan::from_json(json.as_bytes()).unwrap()
    }

    const BASE: &str = r#""versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
        "default": "stable", "weights": {"canary": 50}, "sticky": {"keys": [{"header": "x-user-id"}], "seed": 3}"#;

    fn with(extra: &str) -> String {
        format!("{{{BASE}{extra}}}")
    }

    fn states(
        plan: &RoutingPlan,
        request: &RequestDescription,
    ) -> (u32, Vec<(usize, bool, FeatureReason)>) {
        let mut seen = Vec::new();
        let on = plan.decide_features(&mut request.view(plan), |i, on, why| {
            seen.push((i, on, why))
        });
        (on, seen)
    }

    #[test]
    fn the_share_is_the_murmur3_contract_and_independent_of_the_split() {
        let plan = plan(&with(
            r#", "features": {"new-checkout": {"percent": 10}, "dark-mode": {"percent": 50}}"#,
        ));
        let checkout_seed = murmur3_x86_32(b"new-checkout", 0);
        let mut both = 0;
        let mut checkout = 0;
        for i in 0..4000 {
            let key = format!("user-{i}");
            let request = RequestDescription::default().header("x-user-id", key.clone());
            let (on, _) = states(&plan, &request);
            // Features are listed by name: dark-mode is 0, new-checkout is 1.
            let want = murmur3_x86_32(key.as_bytes(), checkout_seed) % 10_000 < 1000;
            assert_eq!(on & 2 != 0, want, "{key}");
            checkout += usize::from(want);
            both += usize::from(on == 3);
        }
        assert!((300..500).contains(&checkout), "{checkout}");
        // Independent: about 5 % have both.
        assert!((120..280).contains(&both), "{both}");
    }

    #[test]
    fn a_ramp_only_adds_users() {
        let at = |percent: f64| {
            plan(&with(&format!(
                r#", "features": {{"f": {{"percent": {percent}}}}}"#
            )))
        };
        let (low, high) = (at(5.0), at(20.0));
        for i in 0..2000 {
            let request = RequestDescription::default().header("x-user-id", format!("u{i}"));
            if states(&low, &request).0 == 1 {
                assert_eq!(states(&high, &request).0, 1);
            }
        }
    }

    #[test]
    fn rules_pin_features_first_match_per_feature() {
        let plan = plan(&with(
            r#", "features": {"f": {"percent": 0}, "g": {"percent": 100}},
            "rules": [{"name": "testers", "when": {"header": {"name": "x-tester", "present": true}},
                       "features": {"f": true}},
                      {"name": "all", "when": {"header": {"name": "x-tester", "prefix": ""}},
                       "features": {"f": false, "g": false}, "version": "canary"}]"#,
        ));
        let request = RequestDescription::default()
            .header("x-user-id", "u1")
            .header("x-tester", "yes");
        let (on, seen) = states(&plan, &request);
        assert_eq!(on, 1);
        assert!(seen.contains(&(0, true, FeatureReason::Pinned { rule: 0 })));
        assert!(seen.contains(&(1, false, FeatureReason::Pinned { rule: 1 })));
        // A features-only rule does not decide the version.
        let plain = RequestDescription::default().header("x-user-id", "u1");
        assert_eq!(states(&plan, &plain).0, 2);
        let decision = plan.decide(&mut request.view(&plan));
        assert_eq!(decision.reason, crate::decision::Reason::Pinned { rule: 1 });
    }

    /// The rules' index (rule_index.rs) files only the rules that choose a version: a
    /// features-only rule, whatever its gate reads, neither hides a later version rule nor
    /// misses its pins, with few header names (looked up one by one) or many (the request's
    /// headers walked).
    #[test]
    fn the_rule_index_skips_features_only_rules_and_every_pin_is_found() {
        let plan = plan(&with(
            r#", "features": {"f": {"percent": 0}, "g": {"percent": 0}},
            "region": {"header": "x-region"},
            "rules": [
              {"name": "flag-by-cookie", "when": {"cookie": {"name": "beta", "equals": "1"}},
               "features": {"f": true}},
              {"name": "flag-by-header", "when": {"header": {"name": "x-a", "equals": "1"}},
               "features": {"g": true}},
              {"name": "flag-by-region", "when": {"region": ["eu"]}, "features": {"f": false}},
              {"name": "version-by-cookie", "when": {"cookie": {"name": "beta", "equals": "1"}},
               "version": "canary"},
              {"name": "version-by-header", "when": {"header": {"name": "x-a", "equals": "1"}},
               "version": "canary"},
              {"name": "other-1", "when": {"header": {"name": "x-b", "present": true}}, "version": "stable"},
              {"name": "other-2", "when": {"header": {"name": "x-c", "present": true}}, "version": "stable"}
            ]"#,
        ));
        let request = RequestDescription::default()
            .header("x-user-id", "u1")
            .header("cookie", "beta=1")
            .header("x-a", "1")
            .header("x-region", "eu");
        let (on, seen) = states(&plan, &request);
        // f by the cookie rule (before the region rule), g by the header rule.
        assert_eq!(on, 0b11);
        assert!(seen.contains(&(0, true, FeatureReason::Pinned { rule: 0 })));
        assert!(seen.contains(&(1, true, FeatureReason::Pinned { rule: 1 })));
        let decision = plan.decide(&mut request.view(&plan));
        assert_eq!(decision.reason, crate::decision::Reason::Pinned { rule: 3 });
        // Only the header: the version rule on it, past the features-only rule on it.
        let header_only = RequestDescription::default()
            .header("x-user-id", "u1")
            .header("x-a", "1");
        let decision = plan.decide(&mut header_only.view(&plan));
        assert_eq!(decision.reason, crate::decision::Reason::Pinned { rule: 4 });
        assert_eq!(states(&plan, &header_only).0, 0b10);
        // Only the region: a features-only rule holds, and the split places the request.
        let region_only = RequestDescription::default()
            .header("x-user-id", "u1")
            .header("x-region", "eu");
        let decision = plan.decide(&mut region_only.view(&plan));
        assert!(
            matches!(
                decision.reason,
                crate::decision::Reason::Split { rule: None, .. }
            ),
            "{decision:?}"
        );
        let (_, seen) = states(&plan, &region_only);
        assert!(seen.contains(&(0, false, FeatureReason::Pinned { rule: 2 })));
    }

    #[test]
    fn the_header_lists_features_by_name() {
        let plan = plan(&with(
            r#", "features": {"b": {"percent": 1}, "a": {"percent": 1}, "c": {"percent": 1}}"#,
        ));
        let features = plan.features().unwrap();
        assert_eq!(features.header(), "x-canary-features");
        assert_eq!(features.header_value(0b101), "a,c");
        assert_eq!(features.header_value(0), "");
    }

    #[test]
    fn bad_features_are_refused_with_their_field() {
        let refused = |extra: &str| {
            RoutingPlan::from_json(with(extra).as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(refused(r#", "features": {"f": {"percent": 101}}"#)
            .starts_with("features.f.percent: 101 is not a percent"));
        assert!(refused(r#", "features": {"f": {"percent": 0.001}}"#)
            .starts_with("features.f.percent:"));
        assert!(refused(r#", "features": {"a b": {"percent": 1}}"#).starts_with("features.a b:"));
        let unknown = refused(r#", "features": {"f": {"percent": 1, "pct": 2}}"#);
        assert!(
            unknown.starts_with("features.f.pct: unknown field"),
            "{unknown}"
        );
        let twice = refused(r#", "features": {"f": {"percent": 1}, "f": {"percent": 2}}"#);
        assert!(twice.starts_with("features.f: duplicate key"), "{twice}");
        assert!(refused(
            r#", "features": {"f": {"percent": 1}}, "rules": [{"name": "r", "when": {"region": ["x"]}, "features": {"g": true}}]"#
        )
        .starts_with("rules[0].features.g: no feature is named"));
        assert!(refused(
            r#", "features": {"f": {"percent": 1}}, "features_header": "x-canary-version""#
        )
        .starts_with("features_header:"));
        // The mirror's header is one the filter writes too.
        assert!(refused(
            r#", "features": {"f": {"percent": 1}}, "features_header": "x-dark",
               "mirror": {"version": "canary", "percent": 1, "header": "x-dark"}"#
        )
        .starts_with("features_header:"));
        assert!(
            refused(r#", "rules": [{"name": "r", "when": {"region": ["x"]}}]"#)
                .starts_with("rules[0]: give exactly one")
        );
    }

    #[test]
    fn no_features_keep_the_canonical_form() {
        let config = CanaryConfig::from_json(with("").as_bytes()).unwrap();
        let form = String::from_utf8(crate::metrics::canonical_form(&config).unwrap()).unwrap();
        assert!(!form.contains("feature"), "{form}");
        let config =
            CanaryConfig::from_json(with(r#", "features": {"f": {"percent": 10}}"#).as_bytes())
                .unwrap();
        let form = String::from_utf8(crate::metrics::canonical_form(&config).unwrap()).unwrap();
        assert!(
            form.ends_with(r#""features":{"f":{"percent":10.0}}}"#),
            "{form}"
        );
    }

    #[test]
    fn keyless_requests_follow_when_missing() {
        let plan_default = plan(
            r#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
            "default": "stable", "sticky": {"keys": [{"header": "x-user-id"}], "when_missing": "default"},
            "features": {"f": {"percent": 100}}}"#,
        );
        let (on, seen) = states(&plan_default, &RequestDescription::default());
        assert_eq!((on, seen), (0, vec![(0, false, FeatureReason::MissingKey)]));
        let plan_random = plan(&with(r#", "features": {"f": {"percent": 50}}"#));
        let request = RequestDescription {
            random: 12_345,
            ..RequestDescription::default()
        };
        let (on, seen) = states(&plan_random, &request);
        assert_eq!(on, 1);
        assert_eq!(
            seen,
            vec![(
                0,
                true,
                FeatureReason::Bucket {
                    bucket: 2345,
                    key: None
                }
            )]
        );
    }
}
