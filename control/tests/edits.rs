//! The configuration edits and the movement preview, on the pure core.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use canary_control::config::edit;
use canary_control::config::movement::split_changes;
use canary_filter::{CanaryConfig, RoutingPlan};

fn config(json: &str) -> CanaryConfig {
    CanaryConfig::from_json(json.as_bytes()).unwrap()
}

const BASE: &str = r#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
  "default": "stable", "weights": {"canary": 10}, "sticky": {"keys": [{"header": "x-user-id"}]},
  "rules": [{"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"},
            {"name": "eu", "when": {"region": ["eu-west-1"]}, "weights": {"canary": 50}}]}"#;

fn plan(config: &CanaryConfig) -> RoutingPlan {
    RoutingPlan::try_from(config).unwrap()
}

#[test]
fn movement_is_computed_from_the_bucket_ranges() {
    let before = config(BASE);
    let after = edit::set_weights(&before, &[("canary".into(), 25.0)], None).unwrap();
    let changes = split_changes(&plan(&before), &plan(&after));
    let top = changes.iter().find(|c| c.label == "weights").unwrap();
    assert_eq!(top.moves.len(), 1);
    let (from, to, pct) = &top.moves[0];
    assert_eq!((from.as_str(), to.as_str()), ("stable", "canary"));
    assert!((pct - 15.0).abs() < 1e-9);
    assert!(!top.redrawn);
    let eu = changes.iter().find(|c| c.label == "eu").unwrap();
    assert!(eu.moves.is_empty());
    // A new seed redraws: 10 % canary before and after moves 2 × 10 % × 90 % = 18 % of users.
    let reseeded = edit::set_seed(&before, 9).unwrap();
    let top = split_changes(&plan(&before), &plan(&reseeded))
        .into_iter()
        .find(|c| c.label == "weights")
        .unwrap();
    let total: f64 = top.moves.iter().map(|m| m.2).sum();
    assert!(top.redrawn && (total - 18.0).abs() < 1e-9, "{total}");
}

#[test]
fn rollback_promote_default_and_retire() {
    let base = config(BASE);
    let rolled = edit::rollback(&base).unwrap();
    assert_eq!(rolled.weights["canary"], 0.0);
    assert_eq!(rolled.rules[1].weights.as_ref().unwrap()["canary"], 0.0);
    assert_eq!(
        rolled.rules[0].version.as_deref(),
        Some("canary"),
        "pins stay"
    );

    let promoted = edit::promote(&base, None).unwrap();
    assert_eq!(promoted.weights["canary"], 100.0);
    assert_eq!(promoted.rules[1].weights.as_ref().unwrap()["canary"], 100.0);
    // Making the promoted version the default moves nobody.
    let swapped = edit::set_default(&promoted, "canary").unwrap();
    assert_eq!(swapped.default, "canary");
    assert_eq!(swapped.weights["stable"], 0.0);
    for change in split_changes(&plan(&promoted), &plan(&swapped)) {
        assert!(change.moves.is_empty(), "{change:?}");
    }
    // stable is still pinned by no rule, weighted 0 everywhere: it can be retired.
    let unpinned = edit::unpin(&swapped, "testers").unwrap();
    let retired = edit::retire(&unpinned, "stable").unwrap();
    assert_eq!(retired.versions.len(), 1);
    // One version is what a promotion leaves once the old default retires: everyone goes to it.
    let alone = RoutingPlan::try_from(&retired).unwrap();
    assert_eq!(alone.versions().len(), 1);
    // With three versions retiring one leaves a valid configuration.
    let three = config(
        r#"{"versions": [{"name": "a", "cluster": "x"}, {"name": "b", "cluster": "y"}, {"name": "c", "cluster": "z"}],
            "default": "a", "weights": {"b": 0, "c": 20}}"#,
    );
    let without_b = edit::retire(&three, "b").unwrap();
    RoutingPlan::try_from(&without_b).unwrap();
    assert!(edit::retire(&three, "c")
        .unwrap_err()
        .to_string()
        .contains("still has weight"));
}

#[test]
fn pins_are_added_first_changed_and_removed() {
    let base = config(BASE);
    let added = edit::pin(
        &base,
        "vip",
        "canary",
        Some(edit::PinWhen::Cookie("vip".into(), "1".into())),
    )
    .unwrap();
    assert_eq!(added.rules[0].name, "vip");
    RoutingPlan::try_from(&added).unwrap();
    let changed = edit::pin(&added, "eu", "stable", None).unwrap();
    assert_eq!(changed.rules[2].version.as_deref(), Some("stable"));
    assert!(changed.rules[2].weights.is_none());
    let removed = edit::unpin(&changed, "vip").unwrap();
    assert_eq!(removed.rules.len(), 2);
    assert!(edit::pin(&base, "new", "canary", None).is_err());
}
