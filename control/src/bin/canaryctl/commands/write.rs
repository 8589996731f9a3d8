//! What the commands that change the configuration share: the target their flags describe,
//! the preview, the write and the report of what became of it.

use std::time::Duration;

use anyhow::{bail, Result};
use canary_filter::CanaryConfig;

use crate::commands::prelude::*;
use canary_control::mesh::ecds::Update;
use canary_control::mesh::push::{Fleet, Pusher};
use canary_control::mesh::target::Target;
use canary_control::mesh::wasmplugin::WasmPlugin;
use canary_control::metrics::admin::Admin;
use canary_control::metrics::prometheus::Prometheus;
use canary_control::{config::movement, mesh::fallback, rollout::ownership};

/// The file and the Envoys that `--ecds`, `--admin` and their companions name.
pub fn pusher(target: &TargetArgs, confirm: &Confirm) -> Pusher {
    let admins: Vec<Admin> = confirm.admin.iter().map(|a| Admin::new(a)).collect();
    Pusher {
        file: target.file(),
        admin: admins.first().cloned(),
        fleet: fleet(confirm.prometheus.as_deref(), admins),
        fleet_timeout: confirm.fleet_timeout,
    }
}

/// The proxies a change must reach: every proxy of the service Prometheus scrapes when
/// `--prometheus` is given, else every `--admin` endpoint.
pub fn fleet(prometheus: Option<&str>, admins: Vec<Admin>) -> Fleet {
    match prometheus {
        Some(url) => Fleet::Prometheus(Prometheus::new(url)),
        None if admins.is_empty() => Fleet::None,
        None => Fleet::Admins(admins),
    }
}

/// The target the flags name: the WasmPlugin of `--wasmplugin` (with every proxy of the
/// service in `--prometheus` to confirm a write), else the ECDS file with the Envoys of
/// `--admin` to confirm a write. `--admin` with a WasmPlugin is refused: a sidecar's admin
/// endpoint listens inside its pod, there is no list of them to name, and Prometheus already
/// scrapes every one (docs/guide/istio.md, "The Istio target").
pub fn target(target: &TargetArgs, confirm: &Confirm) -> Result<Target> {
    match &target.wasmplugin {
        Some(reference) => {
            if !confirm.admin.is_empty() {
                bail!(
                    "--admin (or CANARY_ADMIN) confirms a write to the ECDS file with Envoy's \
                     counters; with --wasmplugin istiod delivers the change: drop --admin, and \
                     give --prometheus to wait until every proxy of the service runs it"
                );
            }
            wasmplugin_target(
                reference,
                target,
                confirm.prometheus.as_deref(),
                confirm.fleet_timeout,
            )
        }
        None => Ok(Target::EcdsFile(pusher(target, confirm))),
    }
}

/// The WasmPlugin `reference`, confirmed through `prometheus` (every proxy of the
/// configuration's service) when given.
pub fn wasmplugin_target(
    reference: &str,
    target: &TargetArgs,
    prometheus: Option<&str>,
    fleet_timeout: Option<Duration>,
) -> Result<Target> {
    Ok(Target::WasmPlugin {
        plugin: WasmPlugin::new(reference, target.kubectl.kubectl())?,
        fleet: fleet(prometheus, Vec::new()),
        fleet_timeout,
    })
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
    for running in crate::commands::rollout::place_of(target).running() {
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
    use canary_control::mesh::ecds::EcdsFile;
    use canary_control::mesh::push::{Applied, FleetReport};

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

    #[test]
    fn the_report_names_the_confirming_envoy_and_the_fleet() {
        let admin = Admin::new("127.0.0.1:9901");
        let base = admin.base().to_string();
        let target = Target::EcdsFile(Pusher {
            file: EcdsFile::new("e.yaml"),
            admin: Some(admin.clone()),
            fleet: Fleet::Admins(vec![admin.clone(), admin]),
            fleet_timeout: Some(Duration::from_secs(1)),
        });
        let fleet = FleetReport {
            running: 2,
            total: 2,
            through: None,
            after: Duration::from_millis(40),
            behind: Vec::new(),
            waits: None,
        };
        assert_eq!(
            target.report(&Applied::Accepted(Duration::from_millis(12), Some(fleet))),
            format!("Envoy at {base} accepted it (12 ms)\n2 of 2 Envoys run it (40 ms)\n")
        );
        assert_eq!(target.report(&Applied::NotWritten), "");
        assert!(target
            .report(&Applied::Unconfirmed)
            .starts_with("Envoy applies it"));
        let through_prometheus = FleetReport {
            running: 3,
            total: 3,
            through: Some("Prometheus http://p:9090, canary_service=\"a\"".into()),
            after: Duration::from_millis(2140),
            behind: Vec::new(),
            waits: None,
        };
        assert_eq!(
            target.report(&Applied::FleetRuns(through_prometheus)),
            "3 of 3 proxies on the new configuration after 2.1 s \
             (Prometheus http://p:9090, canary_service=\"a\")\n"
        );
    }

    #[test]
    fn the_wasmplugin_report_says_stored_and_how_much_of_the_fleet_runs_it() {
        let target = Target::WasmPlugin {
            plugin: WasmPlugin::new("default/canary-a", Default::default()).unwrap(),
            fleet: Fleet::Prometheus(Prometheus::new("http://p:9090")),
            fleet_timeout: Some(Duration::from_secs(1)),
        };
        let fleet = FleetReport {
            running: 3,
            total: 3,
            through: Some("Prometheus http://p:9090, canary_service=\"a\"".into()),
            after: Duration::from_millis(1040),
            behind: Vec::new(),
            waits: Some(
                "up to 40 s: twice the 15 s scrape interval + 10 s for istiod's push".into(),
            ),
        };
        assert_eq!(
            target.report(&Applied::Stored("7".into(), Some(fleet))),
            "the API server stored it (resourceVersion 7); 3 of 3 proxies on the new \
             configuration after 1.0 s (Prometheus http://p:9090, canary_service=\"a\"; waits up \
             to 40 s: twice the 15 s scrape interval + 10 s for istiod's push)\n"
        );
        assert_eq!(
            target.report(&Applied::Stored("8".into(), None)),
            "the API server stored it (resourceVersion 8); istiod pushes it to the selected \
             sidecars\n"
        );
    }

    #[test]
    fn the_pusher_confirms_with_the_first_admin() {
        let target = TargetArgs {
            ecds: "e.yaml".into(),
            wasmplugin: None,
            kubectl: Default::default(),
            lock_timeout: Duration::from_secs(1),
            force: false,
        };
        let mut confirm = Confirm {
            admin: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            prometheus: None,
            fleet_timeout: Some(Duration::from_secs(3)),
        };
        let pusher_of_admins = pusher(&target, &confirm);
        let Fleet::Admins(admins) = &pusher_of_admins.fleet else {
            panic!("the fleet should be the admin endpoints");
        };
        assert_eq!(admins.len(), 2);
        assert_eq!(
            pusher_of_admins.admin.as_ref().map(Admin::base),
            Some(admins[0].base())
        );
        assert_eq!(pusher_of_admins.fleet_timeout, Some(Duration::from_secs(3)));
        // With Prometheus, the first admin still confirms; the fleet is Prometheus's.
        confirm.prometheus = Some("http://127.0.0.1:9090".into());
        let through_prometheus = pusher(&target, &confirm);
        assert!(matches!(through_prometheus.fleet, Fleet::Prometheus(_)));
        assert_eq!(
            through_prometheus.admin.as_ref().map(Admin::base),
            Some("http://127.0.0.1:1")
        );
    }
}
