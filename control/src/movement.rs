//! What a change does to users: per split, each version's share before and after, and the share
//! of keyed users that move between versions, computed from the bucket ranges (all 10,000
//! buckets), not guessed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use canary_filter::bucket::BUCKETS;
use canary_filter::RoutingPlan;

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
            SplitChange {
                before: before.map(|b| shares(old, &b)),
                after: after.map(|a| shares(new, &a)),
                label,
                moves,
                redrawn,
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
            let _ = writeln!(out, "{title}: unchanged ({})", shares.join(", "));
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
    }
    out
}
