//! `canaryctl promote`: a version takes all traffic.

use anyhow::Result;
use canary_filter::CanaryConfig;

use crate::commands::prelude::*;
use crate::commands::write;
use canary_control::config::edit;

#[derive(Args)]
pub struct PromoteArgs {
    /// The version (default: the only non-default one).
    pub version: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Promotes the version (by default the only non-default one), then says how to retire the
/// old default.
pub fn exec(args: PromoteArgs) -> Result<()> {
    let version = args.version.as_deref();
    let update = write::apply(&args.write, |config| edit::promote(config, version))?;
    if update.written || args.write.dry_run {
        print!("{}", next_steps(version, &update.after, args.write.dry_run));
    }
    Ok(())
}

/// What promote prints after the change: who takes the traffic, and how to retire the old
/// default.
pub fn next_steps(version: Option<&str>, after: &CanaryConfig, dry_run: bool) -> String {
    let promoted = version.map(str::to_string).unwrap_or_else(|| {
        after
            .weights
            .iter()
            .find(|(_, w)| **w >= 100.0)
            .map(|(v, _)| v.clone())
            .unwrap_or_default()
    });
    let old = &after.default;
    let done = if dry_run { "would take" } else { "takes" };
    // A rule that pins the old default keeps its users there, and keeps it from retiring.
    let unpins: String = after
        .rules
        .iter()
        .filter(|rule| rule.version.as_deref() == Some(old.as_str()))
        .map(|rule| {
            format!(
                "canaryctl set --unpin {}   # rule `{}` pins `{old}`: removing it sends its users to the default\n  ",
                rule.name, rule.name
            )
        })
        .collect();
    format!(
        "`{promoted}` {done} all traffic of every split.\n\
         to retire `{old}` once you are sure:\n  \
         canaryctl set --default {promoted}   # routing unchanged: `{promoted}` becomes the default\n  \
         {unpins}canaryctl retire {old}   # then it leaves the configuration; remove its cluster and deployment\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMOTED: &str = r#"{"versions": [{"name": "stable", "cluster": "app-v1"},
        {"name": "canary", "cluster": "app-v2"}], "default": "stable", "weights": {"canary": 100}}"#;

    #[test]
    fn next_steps_name_the_promoted_version_and_the_old_default() {
        let after = CanaryConfig::from_json(PROMOTED.as_bytes()).unwrap();
        assert_eq!(
            next_steps(None, &after, false),
            "`canary` takes all traffic of every split.\n\
             to retire `stable` once you are sure:\n  \
             canaryctl set --default canary   # routing unchanged: `canary` becomes the default\n  \
             canaryctl retire stable   # then it leaves the configuration; remove its cluster and deployment\n"
        );
        assert!(next_steps(Some("canary"), &after, true)
            .starts_with("`canary` would take all traffic of every split.\n"));
    }

    #[test]
    fn a_rule_pinning_the_old_default_is_removed_before_it_retires() {
        let pinned = PROMOTED.replace(
            r#""weights": {"canary": 100}"#,
            r#""weights": {"canary": 100}, "rules": [{"name": "opt-out",
                "when": {"header": {"name": "x-optout", "equals": "1"}}, "version": "stable"}]"#,
        );
        let after = CanaryConfig::from_json(pinned.as_bytes()).unwrap();
        let steps = next_steps(None, &after, false);
        let set = steps.find("canaryctl set --default").unwrap();
        let unpin = steps.find("canaryctl set --unpin opt-out").unwrap();
        let retire = steps.find("canaryctl retire stable").unwrap();
        assert!(set < unpin && unpin < retire, "{steps}");
    }
}
