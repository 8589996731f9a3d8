//! What a change does to users: per split, each version's share before and after, and the share
//! of keyed users that move between versions, computed from the bucket ranges (all 10,000
//! buckets), not guessed; and for a version pointed at another cluster, every split share and
//! pin that reaches the new cluster the moment the change lands.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use canary_filter::bucket::BUCKETS;
use canary_filter::config::WhenMissing;
use canary_filter::{CanaryConfig, RoutingPlan};

/// One split (the top-level one or a rule's) before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitChange {
    /// `weights` for the top level, else the rule's name.
    pub label: String,
    /// Percent per version before (`None`: the split did not exist).
    pub before: Option<BTreeMap<String, f64>>,
    /// Percent per version after.
    pub after: Option<BTreeMap<String, f64>>,
    /// `(from, to, percent of the split's keyed users)`, largest first.
    pub moves: Vec<(String, String, f64)>,
    /// The seed changed: users are drawn afresh, so `moves` is the expected share under
    /// independent hashing.
    pub redrawn: bool,
    /// `(version, percent of the split's users, new cluster)` for each version the split still
    /// gives a share whose cluster changed: those users reach the new cluster at once, though
    /// no user changes version.
    pub recluster: Vec<(String, f64, String)>,
}

fn versions_by_bucket(plan: &RoutingPlan, rule: Option<usize>) -> Option<Vec<usize>> {
    (0..BUCKETS)
        .map(|bucket| plan.split_version(rule, bucket))
        .collect()
}

fn shares(plan: &RoutingPlan, buckets: &[usize]) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = plan
        .versions()
        .iter()
        .map(|v| (v.name.clone(), 0.0))
        .collect();
    for &version in buckets {
        if let Some(v) = plan.versions().get(version) {
            *counts.entry(v.name.clone()).or_default() += 100.0 / f64::from(BUCKETS);
        }
    }
    counts
}

fn splits(plan: &RoutingPlan) -> Vec<(String, Option<usize>)> {
    let mut all = vec![("weights".to_string(), None)];
    for (index, name) in plan.rule_names().enumerate() {
        if plan.pinned_version(index).is_none() {
            all.push((name.to_string(), Some(index)));
        }
    }
    all
}

/// `(version, new cluster)` for each version both plans declare, on another cluster in `new`.
fn reclustered(old: &RoutingPlan, new: &RoutingPlan) -> Vec<(String, String)> {
    new.versions()
        .iter()
        .filter(|version| {
            old.versions()
                .iter()
                .any(|was| was.name == version.name && was.cluster != version.cluster)
        })
        .map(|version| (version.name.clone(), version.cluster.clone()))
        .collect()
}

/// Every split of either plan, before and after.
pub fn split_changes(old: &RoutingPlan, new: &RoutingPlan) -> Vec<SplitChange> {
    let mut labels: Vec<String> = splits(old).into_iter().map(|(label, _)| label).collect();
    for (label, _) in splits(new) {
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    let find = |plan: &RoutingPlan, label: &str| {
        splits(plan)
            .into_iter()
            .find(|(name, _)| name == label)
            .and_then(|(_, rule)| versions_by_bucket(plan, rule))
    };
    let redrawn = old.seed() != new.seed();
    let moved_clusters = reclustered(old, new);
    labels
        .into_iter()
        .map(|label| {
            let before = find(old, &label);
            let after = find(new, &label);
            let mut moves = Vec::new();
            if let (Some(b), Some(a)) = (&before, &after) {
                let mut counts: BTreeMap<(String, String), f64> = BTreeMap::new();
                if redrawn {
                    let (pb, pa) = (shares(old, b), shares(new, a));
                    for (from, p) in &pb {
                        for (to, q) in &pa {
                            if from != to && p * q > 0.0 {
                                counts.insert((from.clone(), to.clone()), p * q / 100.0);
                            }
                        }
                    }
                } else {
                    for (vb, va) in b.iter().zip(a) {
                        let (Some(from), Some(to)) =
                            (old.versions().get(*vb), new.versions().get(*va))
                        else {
                            continue;
                        };
                        if from.name != to.name {
                            *counts
                                .entry((from.name.clone(), to.name.clone()))
                                .or_default() += 100.0 / f64::from(BUCKETS);
                        }
                    }
                }
                moves = counts
                    .into_iter()
                    .map(|((from, to), pct)| (from, to, pct))
                    .collect();
                moves.sort_by(|x, y| y.2.total_cmp(&x.2));
            }
            let after = after.map(|a| shares(new, &a));
            let recluster = moved_clusters
                .iter()
                .filter_map(|(version, cluster)| {
                    let share = after.as_ref()?.get(version).copied()?;
                    (share > 0.0).then(|| (version.clone(), share, cluster.clone()))
                })
                .collect();
            SplitChange {
                before: before.map(|b| shares(old, &b)),
                after,
                label,
                moves,
                redrawn,
                recluster,
            }
        })
        .collect()
}

/// The changes as people read them.
pub fn render(changes: &[SplitChange]) -> String {
    let mut out = String::new();
    for change in changes {
        let title = if change.label == "weights" {
            "top-level split (rule label `weights`)".to_string()
        } else {
            format!("rule `{}` split", change.label)
        };
        if change.before == change.after && change.moves.is_empty() {
            let shares: Vec<String> = change
                .after
                .iter()
                .flatten()
                .map(|(version, pct)| format!("{version} {pct:.2}%"))
                .collect();
            // "unchanged" alone would hide that some of these users now reach another cluster.
            let what = if change.recluster.is_empty() {
                "unchanged"
            } else {
                "same versions"
            };
            let _ = writeln!(out, "{title}: {what} ({})", shares.join(", "));
            render_recluster(&mut out, change);
            continue;
        }
        let _ = writeln!(out, "{title}:");
        let empty = BTreeMap::new();
        let before = change.before.as_ref().unwrap_or(&empty);
        let after = change.after.as_ref().unwrap_or(&empty);
        let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
        names.sort();
        names.dedup();
        let _ = writeln!(out, "  {:<14} {:>8}    {:>8}", "version", "before", "after");
        for name in names {
            let cell = |map: &BTreeMap<String, f64>, present: bool| match map.get(name) {
                Some(pct) => format!("{pct:.2}%"),
                None if present => "-".to_string(),
                None => "(none)".to_string(),
            };
            let (b, a) = (
                cell(before, change.before.is_some()),
                cell(after, change.after.is_some()),
            );
            let mark = if b == a { "" } else { "  *" };
            let _ = writeln!(out, "  {name:<14} {b:>8} -> {a:>8}{mark}");
        }
        if change.before.is_some() && change.after.is_some() {
            if change.moves.is_empty() {
                let _ = writeln!(out, "  no user changes version");
            } else {
                let total: f64 = change.moves.iter().map(|m| m.2).sum();
                let how = if change.redrawn {
                    "about (new seed: a fresh cohort)"
                } else {
                    "exactly"
                };
                let _ = writeln!(
                    out,
                    "  users that change version: {how} {total:.2}% of keyed users"
                );
                for (from, to, pct) in &change.moves {
                    let _ = writeln!(out, "    {from} -> {to}: {pct:.2}%");
                }
            }
        }
        render_recluster(&mut out, change);
    }
    out
}

fn render_recluster(out: &mut String, change: &SplitChange) {
    for (version, pct, cluster) in &change.recluster {
        let _ = writeln!(out, "  {version}'s {pct:.2}% now sent to {cluster}");
    }
}

/// What a change from `before` to `after` does, as `canaryctl set` and `rollout` print it:
/// each split's movement, then pins, clusters, the default and the seed. A version pointed at
/// another cluster lists every pin that sends requests there at once (its split shares are
/// listed with each split).
pub fn preview(before: &CanaryConfig, after: &CanaryConfig) -> Result<String> {
    let old = RoutingPlan::try_from(before)?;
    let new = RoutingPlan::try_from(after)?;
    Ok(preview_plans(before, &old, after, &new))
}

/// [`preview`] for configurations already compiled: `old` is `before`'s plan, `new` `after`'s.
pub fn preview_plans(
    before: &CanaryConfig,
    old: &RoutingPlan,
    after: &CanaryConfig,
    new: &RoutingPlan,
) -> String {
    let changes = split_changes(old, new);
    let mut out = render(&changes);
    let pins = |config: &CanaryConfig| -> Vec<String> {
        config
            .rules
            .iter()
            .filter_map(|r| r.version.as_ref().map(|v| format!("{} -> {v}", r.name)))
            .collect()
    };
    let (pins_before, pins_after) = (pins(before), pins(after));
    if pins_before != pins_after {
        let _ = writeln!(
            out,
            "pinning rules: [{}] -> [{}]",
            pins_before.join(", "),
            pins_after.join(", ")
        );
    }
    for (old_spec, new_spec) in before.versions.iter().zip(&after.versions) {
        if old_spec.name == new_spec.name && old_spec.cluster != new_spec.cluster {
            let _ = writeln!(
                out,
                "version {}: cluster {} -> {}",
                old_spec.name, old_spec.cluster, new_spec.cluster
            );
            out.push_str(&cluster_reach(after, new, &changes, &new_spec.name));
        }
    }
    if before.default != after.default {
        let _ = writeln!(
            out,
            "default version: {} -> {}",
            before.default, after.default
        );
    }
    if old.seed() != new.seed() {
        let _ = writeln!(out, "seed: {} -> {}", old.seed(), new.seed());
    }
    out
}

/// The requests `version`'s new cluster gets the moment the change lands, beyond the split
/// shares `changes` list: each rule that pins the version, keyless requests when it is the
/// default, or a word that nothing reaches it yet.
fn cluster_reach(
    config: &CanaryConfig,
    plan: &RoutingPlan,
    changes: &[SplitChange],
    version: &str,
) -> String {
    let mut out = String::new();
    let Some((index, cluster)) = plan
        .versions()
        .iter()
        .enumerate()
        .find(|(_, spec)| spec.name == version)
        .map(|(index, spec)| (index, &spec.cluster))
    else {
        return out;
    };
    let pins: Vec<&str> = plan
        .rule_names()
        .enumerate()
        .filter(|(rule, _)| plan.pinned_version(*rule) == Some(index))
        .map(|(_, name)| name)
        .collect();
    for rule in &pins {
        let _ = writeln!(
            out,
            "  rule `{rule}` pins {version}: all its requests now sent to {cluster}"
        );
    }
    let keyless = config.default == version
        && config
            .sticky
            .as_ref()
            .is_some_and(|sticky| matches!(sticky.when_missing, WhenMissing::Default));
    if keyless {
        let _ = writeln!(
            out,
            "  requests without a sticky key (when_missing: default) now sent to {cluster}"
        );
    }
    let in_a_split = changes
        .iter()
        .any(|change| change.recluster.iter().any(|(v, _, _)| v == version));
    if pins.is_empty() && !keyless && !in_a_split {
        let _ = writeln!(
            out,
            "  no split or rule sends requests to {version}: {cluster} gets none until one does"
        );
    }
    out
}
