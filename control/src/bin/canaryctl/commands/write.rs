//! What the commands that change the configuration share: the target their flags describe,
//! the preview, the write and the report of what became of it.

use anyhow::Result;
use canary_filter::CanaryConfig;

use crate::commands::prelude::*;
use canary_control::mesh::ecds::Update;
use canary_control::mesh::target::Target;
use canary_control::rollout::runs::RolloutPlace;
use canary_control::{config::movement, mesh::fallback, rollout::ownership};

/// The target the flags name ([`Target::open`] says which and how a write is confirmed).
pub fn target(target: &TargetArgs, confirm: &Confirm) -> Result<Target> {
    Target::open(target.spec(
        &confirm.admin,
        confirm.prometheus.clone(),
        confirm.fleet_timeout,
        false,
    ))
}

/// The line that says what became of the target named `what`.
pub fn written(what: &str, dry_run: bool, update: &Update) -> String {
    if dry_run {
        format!("dry run: {what} not written\n")
    } else if !update.written {
        format!("no change: {what} left as it was\n")
    } else {
        format!("wrote {what} (the previous version is kept for `canaryctl undo`)\n")
    }
}

/// Who moves between the configurations before and after an update.
pub fn preview(update: &Update) -> String {
    movement::preview_plans(
        &update.before,
        &update.before_plan,
        &update.after,
        &update.after_plan,
    )
}

/// Validates, previews, writes (unless a dry run) and reports what became of the write.
pub fn apply(
    write: &WriteArgs,
    change: impl Fn(&CanaryConfig) -> Result<CanaryConfig>,
) -> Result<Update> {
    let target = target(&write.target, &write.confirm)?;
    let (update, applied) = target.push(write.dry_run, change)?;
    print!("{}", preview(&update));
    print!("{}", written(&target.describe(), write.dry_run, &update));
    if update.written && !write.dry_run {
        print!("{}", target.report(&applied));
    }
    if let Target::EcdsFile(pusher) = &target {
        print!(
            "{}",
            fallback::follow(pusher, &update.before, &update.after, write.dry_run)?
        );
    }
    print!("{}", running_rollouts(&target, &update, write.dry_run));
    Ok(update)
}

/// What the change means to the rollouts running on the target: each one whose canary, default
/// or other settings it changes will stop at its next step rather than write over it.
pub fn running_rollouts(target: &Target, update: &Update, dry_run: bool) -> String {
    if !update.written && !dry_run {
        return String::new();
    }
    let mut out = String::new();
    for running in RolloutPlace::of(target).running() {
        let changes = ownership::differences(&update.before, &update.after, &running.canary);
        if changes.is_empty() {
            continue;
        }
        let will = if dry_run { "would stop" } else { "will stop" };
        out += &format!(
            "a rollout of `{}` is running on {} ({}): it {will} at its next check (the end of \
             its interval, or before its next step), seeing this change ({}), and leave the \
             configuration as it is\n",
            running.canary,
            target.describe(),
            running.holder,
            changes.join("; ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(written: bool) -> Update {
        let config = CanaryConfig::from_json(
            br#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
                "default": "stable"}"#,
        )
        .unwrap();
        let plan = canary_filter::RoutingPlan::try_from(&config).unwrap();
        Update {
            before: config.clone(),
            before_plan: plan.clone(),
            after: config,
            after_plan: plan,
            written,
            resource_name: None,
            before_bytes: Vec::new(),
            after_bytes: Vec::new(),
        }
    }

    #[test]
    fn the_file_line_says_what_became_of_it() {
        assert_eq!(
            written("e.yaml", true, &update(false)),
            "dry run: e.yaml not written\n"
        );
        assert_eq!(
            written("e.yaml", false, &update(false)),
            "no change: e.yaml left as it was\n"
        );
        assert_eq!(
            written("e.yaml", false, &update(true)),
            "wrote e.yaml (the previous version is kept for `canaryctl undo`)\n"
        );
    }
}
