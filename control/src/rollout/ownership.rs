//! The rollout owns its weight: before each push (and before it declares the promotion) it
//! checks that the target still holds the configuration it last wrote. A colleague's
//! `canaryctl rollback`, a `set`, an `undo` or a hand edit in between is not written over: the
//! rollout stops, says what changed and, when canaryctl recorded it, who changed it.
//!
//! What is compared is the parsed configuration, not the bytes (another writer may lay the
//! same configuration out differently), and all of it but the weights of the *other*
//! non-default versions: a rollout of another canary on the same target moves only those, and
//! two rollouts of different canaries may run side by side. A feature's percent
//! (`features.F.percent`) is likewise owned only by the rollout of that feature
//! (`rollout --feature F`, whose canary is `F`), which owns the rest of the configuration too. Which changes a given write makes
//! to a rollout is the same question, asked by `set`/`rollback` to warn that a running rollout
//! will stop ([`differences`]).

use std::collections::BTreeMap;
use std::fmt;

use canary_filter::CanaryConfig;
use serde_json::Value;

use crate::mesh::target::Target;
use crate::mesh::wasmplugin::LAST_WRITE_ANNOTATION;

/// The configuration the rollout of `canary` last wrote (or found before its first step).
#[derive(Debug, Clone)]
pub struct Owned {
    canary: String,
    last: CanaryConfig,
}

/// The target no longer holds what the rollout last wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overridden {
    /// What differs, one `field: was → is` line each.
    pub changes: Vec<String>,
}

impl fmt::Display for Overridden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the configuration was changed since the rollout last wrote it: {}",
            self.changes.join("; ")
        )
    }
}

impl std::error::Error for Overridden {}

impl Owned {
    /// The rollout of `canary`, which found (or wrote) `config`.
    pub fn new(canary: &str, config: &CanaryConfig) -> Owned {
        Owned {
            canary: canary.to_string(),
            last: config.clone(),
        }
    }

    /// The rollout wrote `config`.
    pub fn wrote(&mut self, config: &CanaryConfig) {
        self.last = config.clone();
    }

    /// What the rollout last wrote.
    pub fn last(&self) -> &CanaryConfig {
        &self.last
    }

    /// `Err` when `now` differs from what the rollout last wrote in anything it owns.
    pub fn check(&self, now: &CanaryConfig) -> Result<(), Overridden> {
        let changes = differences(&self.last, now, &self.canary);
        if changes.is_empty() {
            Ok(())
        } else {
            Err(Overridden { changes })
        }
    }
}

/// What differs between `before` and `after` that matters to a rollout of `canary`: every
/// field, one line each (`weights.canary: 10 → 0`), except the weights of versions that are
/// neither `canary` nor the default in either configuration.
pub fn differences(before: &CanaryConfig, after: &CanaryConfig, canary: &str) -> Vec<String> {
    let flat_before = flatten(before);
    let flat_after = flatten(after);
    let mut fields: Vec<&String> = flat_before.keys().chain(flat_after.keys()).collect();
    fields.sort();
    fields.dedup();
    let defaults = [before.default.as_str(), after.default.as_str()];
    fields
        .into_iter()
        .filter(|field| {
            weight_of(field).is_none_or(|version| version == canary || defaults.contains(&version))
        })
        // A feature's percent is owned by the rollout of that feature (`rollout --feature`,
        // whose canary is the feature's name) only: other features' rollouts and `set
        // --feature` may move theirs beside it, as other versions' rollouts move their weights.
        .filter(|field| percent_of(field).is_none_or(|feature| feature == canary))
        .filter_map(|field| {
            let was = flat_before.get(field);
            let is = flat_after.get(field);
            (was != is).then(|| format!("{field}: {} → {}", shown(was), shown(is)))
        })
        .collect()
}

/// The version whose weight `field` is (`weights.V` or `rules[i].weights.V`).
fn weight_of(field: &str) -> Option<&str> {
    let rest = match field.strip_prefix("weights.") {
        Some(rest) => rest,
        None => field.split_once("].weights.")?.1,
    };
    (!rest.contains('.')).then_some(rest)
}

/// The feature whose percent `field` is (`features.F.percent`).
fn percent_of(field: &str) -> Option<&str> {
    let name = field.strip_prefix("features.")?.strip_suffix(".percent")?;
    (!name.contains('.')).then_some(name)
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "(none)".to_string(),
        Some(value) => value.to_string(),
    }
}

/// The configuration as `field path → value`, in the notation of the filter's errors
/// (`rules[2].weights.canary`).
fn flatten(config: &CanaryConfig) -> BTreeMap<String, Value> {
    let mut flat = BTreeMap::new();
    let value = serde_json::to_value(config).unwrap_or(Value::Null);
    walk(&value, String::new(), &mut flat);
    flat
}

fn walk(value: &Value, path: String, flat: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (name, inner) in fields {
                let next = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(inner, next, flat);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, inner) in items.iter().enumerate() {
                walk(inner, format!("{path}[{index}]"), flat);
            }
        }
        // Null fields are the same as absent ones.
        Value::Null => {}
        leaf => {
            flat.insert(path, leaf.clone());
        }
    }
}

/// Who changed the target to `now`, as far as canaryctl knows: the pid and command line of the
/// canaryctl that wrote it (its last write, recorded with the write), or that no canaryctl
/// did (a hand edit, `kubectl apply`, a deployment tool), with the WasmPlugin's resource
/// version.
pub fn who_changed(target: &Target, now: &CanaryConfig) -> String {
    let ours = format!("pid {} ", std::process::id());
    let same =
        |config: &CanaryConfig| serde_json::to_value(config).ok() == serde_json::to_value(now).ok();
    match target {
        Target::EcdsFile(pusher) => {
            let last = pusher.file.last_write().ok().flatten();
            let by = last.filter(|write| {
                !write.writer.starts_with(&ours)
                    && crate::mesh::ecds::parse(write.after.as_bytes())
                        .is_ok_and(|contents| same(&contents.config))
            });
            match by {
                Some(write) => format!("changed by {}", write.writer),
                None => format!(
                    "changed by something other than canaryctl (no canaryctl write of {}                      records this configuration)",
                    pusher.file.path().display()
                ),
            }
        }
        Target::WasmPlugin { plugin, .. } => {
            let Ok(contents) = plugin.read() else {
                return format!("changed ({} could not be read again)", plugin.describe());
            };
            let at = format!("resourceVersion {}", contents.resource_version);
            let record: Option<Value> = contents.object["metadata"]["annotations"]
                [LAST_WRITE_ANNOTATION]
                .as_str()
                .and_then(|text| serde_json::from_str(text).ok());
            let hash = canary_filter::metrics::config_hash(now).ok();
            let by = record.filter(|record| {
                record["config_hash"].as_u64() == hash.map(u64::from)
                    && record["by"]
                        .as_str()
                        .is_some_and(|by| !by.starts_with(&ours))
            });
            match by.as_ref().and_then(|record| record["by"].as_str()) {
                Some(by) => format!("changed by {by} ({at})"),
                None => format!(
                    "changed by something other than canaryctl ({at}; kubectl apply or edit \
                     records no writer)"
                ),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(weights: &str, default: &str) -> CanaryConfig {
        CanaryConfig::from_json(
            format!(
                r#"{{"versions": [{{"name": "stable", "cluster": "a"}}, {{"name": "canary", "cluster": "b"}},
                    {{"name": "canary3", "cluster": "c"}}], "default": "{default}", "weights": {weights},
                    "rules": [{{"name": "eu", "when": {{"header": {{"name": "x-r", "equals": "eu"}}}}, "weights": {weights}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn with_features(percents: &str) -> CanaryConfig {
        CanaryConfig::from_json(
            format!(
                r#"{{"versions": [{{"name": "stable", "cluster": "a"}}, {{"name": "canary", "cluster": "b"}}],
                    "default": "stable", "weights": {{"canary": 10}}, "features": {percents}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_feature_rollout_owns_its_feature_percent_and_not_another_features() {
        let before = with_features(r#"{"new-checkout": {"percent": 1}, "dark": {"percent": 3}}"#);
        let mut owned = Owned::new("new-checkout", &before);
        // Its own write, recorded, is not someone else's change.
        let step = with_features(r#"{"new-checkout": {"percent": 5}, "dark": {"percent": 3}}"#);
        assert!(owned.check(&step).is_err());
        owned.wrote(&step);
        assert_eq!(owned.check(&step), Ok(()));
        // Another feature's percent moves beside it.
        let other = with_features(r#"{"new-checkout": {"percent": 5}, "dark": {"percent": 50}}"#);
        assert_eq!(owned.check(&other), Ok(()));
        // Its own percent set back by someone else stops it.
        let rolled_back =
            with_features(r#"{"new-checkout": {"percent": 0}, "dark": {"percent": 3}}"#);
        assert_eq!(
            owned.check(&rolled_back).unwrap_err().changes,
            ["features.new-checkout.percent: 5.0 → 0.0"]
        );
        // A version's rollout does not own the features' percents.
        let version = Owned::new("canary", &before);
        assert_eq!(version.check(&other), Ok(()));
    }

    #[test]
    fn a_rollback_of_the_canary_is_a_change_and_another_canarys_weight_is_not() {
        let owned = Owned::new("canary", &config(r#"{"canary": 10}"#, "stable"));
        assert_eq!(owned.check(&config(r#"{"canary": 10}"#, "stable")), Ok(()));
        assert_eq!(
            owned.check(&config(r#"{"canary": 10, "canary3": 5}"#, "stable")),
            Ok(())
        );
        let err = owned
            .check(&config(r#"{"canary": 0}"#, "stable"))
            .unwrap_err();
        assert_eq!(
            err.changes,
            [
                "rules[0].weights.canary: 10.0 → 0.0",
                "weights.canary: 10.0 → 0.0"
            ]
        );
        // A new default moves everyone who is not on the canary.
        let err = owned
            .check(&config(r#"{"canary": 10}"#, "canary3"))
            .unwrap_err();
        assert_eq!(err.changes, ["default: \"stable\" → \"canary3\""]);
    }

    #[test]
    fn weight_fields_are_recognized() {
        assert_eq!(weight_of("weights.canary"), Some("canary"));
        assert_eq!(weight_of("rules[3].weights.v-2"), Some("v-2"));
        assert_eq!(weight_of("sticky.seed"), None);
        assert_eq!(weight_of("rules[0].name"), None);
    }
}
