//! The changes operators make, as pure functions from one configuration to the next. Each
//! checks what it can name clearly (an unknown version, a rule that does not exist); the
//! filter's own validation then runs on the result before anything is written.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use canary_filter::config::{MatchSpec, RuleSpec, WhenSpec};
use canary_filter::CanaryConfig;

fn check_version(config: &CanaryConfig, version: &str) -> Result<()> {
    if config.versions.iter().any(|v| v.name == version) {
        Ok(())
    } else {
        let known: Vec<&str> = config.versions.iter().map(|v| v.name.as_str()).collect();
        bail!(
            "no version is named {version:?} (versions: {})",
            known.join(", ")
        )
    }
}

fn rule_index(config: &CanaryConfig, rule: &str) -> Result<usize> {
    config
        .rules
        .iter()
        .position(|r| r.name == rule)
        .ok_or_else(|| {
            let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
            anyhow::anyhow!("no rule is named {rule:?} (rules: {})", known.join(", "))
        })
}

/// Sets weights (percent) of the top-level split, or of rule `rule`'s split.
pub fn set_weights(
    config: &CanaryConfig,
    weights: &[(String, f64)],
    rule: Option<&str>,
) -> Result<CanaryConfig> {
    let mut next = config.clone();
    let target: &mut BTreeMap<String, f64> = match rule {
        None => &mut next.weights,
        Some(rule) => {
            let index = rule_index(config, rule)?;
            match next.rules.get_mut(index).and_then(|r| r.weights.as_mut()) {
                Some(weights) => weights,
                None => bail!("rule {rule:?} pins a version; it has no weights to set"),
            }
        }
    };
    for (version, weight) in weights {
        check_version(config, version)?;
        if *version == config.default {
            bail!("{version:?} is the default version: it takes what the other weights leave");
        }
        target.insert(version.clone(), *weight);
    }
    Ok(next)
}

/// Points `version` at another cluster (a new deployment of that version).
pub fn set_cluster(config: &CanaryConfig, version: &str, cluster: &str) -> Result<CanaryConfig> {
    check_version(config, version)?;
    let mut next = config.clone();
    for spec in next.versions.iter_mut().filter(|v| v.name == version) {
        spec.cluster = cluster.to_string();
    }
    Ok(next)
}

/// Sets the sticky seed (a new cohort).
pub fn set_seed(config: &CanaryConfig, seed: u32) -> Result<CanaryConfig> {
    let mut next = config.clone();
    match next.sticky.as_mut() {
        Some(sticky) => sticky.seed = seed,
        None => bail!("the configuration has no `sticky` keys: a seed would change nothing"),
    }
    Ok(next)
}

/// A condition for a new pin rule: a header or a cookie equal to a value.
#[derive(Debug, Clone)]
pub enum PinWhen {
    /// Header `name` equals `value`.
    Header(String, String),
    /// Cookie `name` equals `value`.
    Cookie(String, String),
}

/// Makes rule `rule` pin `version`. An existing rule keeps its conditions; a new one needs
/// `when` and goes first (pins are usually for testers and opt-outs, which must win).
pub fn pin(
    config: &CanaryConfig,
    rule: &str,
    version: &str,
    when: Option<PinWhen>,
) -> Result<CanaryConfig> {
    check_version(config, version)?;
    let mut next = config.clone();
    let condition = when.map(|when| {
        let (header, cookie) = match when {
            PinWhen::Header(name, value) => (Some(equals(name, value)), None),
            PinWhen::Cookie(name, value) => (None, Some(equals(name, value))),
        };
        WhenSpec {
            header,
            cookie,
            region: None,
        }
    });
    match config.rules.iter().position(|r| r.name == rule) {
        Some(index) => {
            if let Some(existing) = next.rules.get_mut(index) {
                existing.version = Some(version.to_string());
                existing.weights = None;
                if let Some(when) = condition {
                    existing.when = when;
                }
            }
        }
        None => {
            let Some(when) = condition else {
                bail!("no rule is named {rule:?}: to add it, say when it applies (--header NAME=VALUE or --cookie NAME=VALUE)");
            };
            next.rules.insert(
                0,
                RuleSpec {
                    name: rule.to_string(),
                    when,
                    version: Some(version.to_string()),
                    weights: None,
                    features: None,
                },
            );
        }
    }
    Ok(next)
}

fn equals(name: String, value: String) -> MatchSpec {
    MatchSpec {
        name,
        equals: Some(value),
        prefix: None,
        present: None,
    }
}

/// Removes rule `rule`.
pub fn unpin(config: &CanaryConfig, rule: &str) -> Result<CanaryConfig> {
    let index = rule_index(config, rule)?;
    let mut next = config.clone();
    next.rules.remove(index);
    Ok(next)
}

/// Every non-default weight to 0, at the top level and in every rule's split, in one step.
/// Pins stay: testers keep reaching the canary to debug it.
pub fn rollback(config: &CanaryConfig) -> Result<CanaryConfig> {
    let mut next = config.clone();
    next.weights.values_mut().for_each(|w| *w = 0.0);
    for rule in &mut next.rules {
        if let Some(weights) = rule.weights.as_mut() {
            weights.values_mut().for_each(|w| *w = 0.0);
        }
    }
    Ok(next)
}

/// `version` takes no traffic from any split: its weight goes to 0 at the top level and in
/// every rule's split that names it, in one configuration. Pins to it stay (testers keep
/// reaching it). Returns the new configuration and the labels of the splits that changed
/// (`weights` for the top level, else the rule's name).
pub fn withdraw(config: &CanaryConfig, version: &str) -> Result<(CanaryConfig, Vec<String>)> {
    if !config.versions.iter().any(|v| v.name == version) {
        bail!("no version is named `{version}`");
    }
    let mut next = config.clone();
    let mut changed = Vec::new();
    if let Some(weight) = next.weights.get_mut(version) {
        if *weight != 0.0 {
            *weight = 0.0;
            changed.push(canary_filter::plan::LABEL_WEIGHTS.to_string());
        }
    }
    for rule in &mut next.rules {
        if let Some(weight) = rule.weights.as_mut().and_then(|w| w.get_mut(version)) {
            if *weight != 0.0 {
                *weight = 0.0;
                changed.push(rule.name.clone());
            }
        }
    }
    Ok((next, changed))
}

/// The names of the rules that pin `version`.
pub fn pins_to(config: &CanaryConfig, version: &str) -> Vec<String> {
    config
        .rules
        .iter()
        .filter(|rule| rule.version.as_deref() == Some(version))
        .map(|rule| rule.name.clone())
        .collect()
}

/// The only non-default version; when there are several, an error asks for a name (`what`
/// says what would be done to it, `how` how to name one).
pub fn the_canary(config: &CanaryConfig, what: &str, how: &str) -> Result<String> {
    let others: Vec<&str> = config
        .versions
        .iter()
        .map(|v| v.name.as_str())
        .filter(|name| *name != config.default)
        .collect();
    match others.as_slice() {
        [only] => Ok(only.to_string()),
        _ => bail!(
            "several versions could be {what} ({}): name one{how}",
            others.join(", ")
        ),
    }
}

/// `version` takes all traffic of every split (100 %, the others 0). Without a name, the only
/// non-default version.
pub fn promote(config: &CanaryConfig, version: Option<&str>) -> Result<CanaryConfig> {
    let version = match version {
        Some(version) => version.to_string(),
        None => the_canary(config, "promoted", "")?,
    };
    check_version(config, &version)?;
    if version == config.default {
        bail!("{version:?} is already the default version");
    }
    let all_to = |weights: &mut BTreeMap<String, f64>| {
        weights.values_mut().for_each(|w| *w = 0.0);
        weights.insert(version.clone(), 100.0);
    };
    let mut next = config.clone();
    all_to(&mut next.weights);
    for rule in &mut next.rules {
        if let Some(weights) = rule.weights.as_mut() {
            all_to(weights);
        }
    }
    Ok(next)
}

/// Makes `version` the default. Its weights go; the old default gets weight 0 where the new
/// one had a weight. After `promote`, routing is unchanged by this.
pub fn set_default(config: &CanaryConfig, version: &str) -> Result<CanaryConfig> {
    check_version(config, version)?;
    let old = config.default.clone();
    let mut next = config.clone();
    next.default = version.to_string();
    let swap = |weights: &mut BTreeMap<String, f64>| {
        if weights.remove(version).is_some() {
            weights.insert(old.clone(), 0.0);
        }
    };
    swap(&mut next.weights);
    for rule in &mut next.rules {
        if let Some(weights) = rule.weights.as_mut() {
            swap(weights);
        }
    }
    Ok(next)
}

/// Removes `version` (not the default, and only once no traffic can reach it).
pub fn retire(config: &CanaryConfig, version: &str) -> Result<CanaryConfig> {
    check_version(config, version)?;
    if version == config.default {
        bail!("{version:?} is the default version: make another one the default first (set --default)");
    }
    let reachable =
        |weights: &BTreeMap<String, f64>| weights.get(version).is_some_and(|w| *w > 0.0);
    if reachable(&config.weights) {
        bail!(
            "{version:?} still has weight {}: set it to 0 first",
            config.weights[version]
        );
    }
    for rule in &config.rules {
        if rule.version.as_deref() == Some(version) {
            bail!("rule {:?} pins {version:?}: unpin it first", rule.name);
        }
        if rule.weights.as_ref().is_some_and(reachable) {
            bail!(
                "rule {:?} gives {version:?} a weight: set it to 0 first",
                rule.name
            );
        }
    }
    let mut next = config.clone();
    next.versions.retain(|v| v.name != version);
    next.weights.remove(version);
    for rule in &mut next.rules {
        if let Some(weights) = rule.weights.as_mut() {
            weights.remove(version);
        }
    }
    Ok(next)
}
