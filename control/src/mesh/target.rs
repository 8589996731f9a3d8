//! Where the filter's configuration lives, for every command that reads or changes it: the
//! ECDS file Envoy watches (with the Envoys that confirm a write, [`Pusher`]), or an Istio
//! WasmPlugin reached through kubectl ([`WasmPlugin`]). The commands call these methods and
//! do not ask which it is.

use std::time::Duration;

use anyhow::{Context, Result};
use canary_filter::{CanaryConfig, RoutingPlan};

use anyhow::bail;

use crate::mesh::ecds::{EcdsFile, Update};
use crate::mesh::kubectl::Kubectl;
use crate::mesh::push::{Applied, Fleet, FleetReport, Pusher};
use crate::mesh::wasmplugin::WasmPlugin;
use crate::metrics::admin::Admin;
use crate::metrics::prometheus::Prometheus;

/// Where the configuration lives.
pub enum Target {
    /// Envoy's ECDS file, written by atomic rename, confirmed by the Envoys given.
    EcdsFile(Pusher),
    /// An Istio WasmPlugin's `spec.pluginConfig`, replaced at the resource version read;
    /// istiod delivers it, and the proxies of `fleet` must report running it within
    /// `fleet_timeout` (through Prometheus: see [`Target::open`]).
    WasmPlugin {
        /// The resource.
        plugin: WasmPlugin,
        /// The proxies that must report running a change.
        fleet: Fleet,
        /// How long they have (`None`: [`Fleet::wait`]'s default).
        fleet_timeout: Option<Duration>,
    },
}

/// What names a target, as the command line gives it: the one description every command
/// builds its [`Target`] from ([`Target::open`]).
pub struct TargetSpec {
    /// The ECDS file (with its lock timeout and `--force`), when no WasmPlugin is named.
    pub ecds: EcdsFile,
    /// The WasmPlugin `NAMESPACE/NAME` and the kubectl that reaches it, instead of the file.
    pub wasmplugin: Option<(String, Kubectl)>,
    /// Envoy admin endpoints (`--admin`): the first confirms a write of the ECDS file with its
    /// counters, and all must report running it.
    pub admins: Vec<Admin>,
    /// What the admin endpoints are for besides confirming: the rollout also reads its
    /// metrics from them, so with a WasmPlugin they are kept for that rather than refused.
    pub admins_read_metrics: bool,
    /// Prometheus (`--prometheus`): every proxy of the service it scrapes must report running
    /// a change.
    pub prometheus: Option<String>,
    /// How long the fleet has to report it (`None`: [`Fleet::wait`]'s default).
    pub fleet_timeout: Option<Duration>,
}

/// The proxies a change must reach: every proxy of the service Prometheus scrapes when given,
/// else every admin endpoint, else none (the confirming Envoy's counters suffice).
pub fn fleet(prometheus: Option<&str>, admins: Vec<Admin>) -> Fleet {
    match prometheus {
        Some(url) => Fleet::Prometheus(Prometheus::new(url)),
        None if admins.is_empty() => Fleet::None,
        None => Fleet::Admins(admins),
    }
}

impl Target {
    /// The target `spec` names: the WasmPlugin (its fleet every proxy of the configuration's
    /// service in Prometheus), else the ECDS file with its first admin endpoint confirming a
    /// write. Admin endpoints given to confirm a WasmPlugin's write are refused: a sidecar's
    /// admin endpoint listens inside its pod, there is no list of them to name, and Prometheus
    /// already scrapes every one (docs/guide/istio.md, "The Istio target").
    pub fn open(spec: TargetSpec) -> Result<Target> {
        match spec.wasmplugin {
            Some((reference, kubectl)) => {
                if !spec.admins.is_empty() && !spec.admins_read_metrics {
                    bail!(
                        "--admin (or CANARY_ADMIN) confirms a write to the ECDS file with Envoy's \
                         counters; with --wasmplugin istiod delivers the change: drop --admin, and \
                         give --prometheus to wait until every proxy of the service runs it"
                    );
                }
                Ok(Target::WasmPlugin {
                    plugin: WasmPlugin::new(&reference, kubectl)?,
                    fleet: fleet(spec.prometheus.as_deref(), Vec::new()),
                    fleet_timeout: spec.fleet_timeout,
                })
            }
            None => Ok(Target::EcdsFile(Pusher {
                file: spec.ecds,
                admin: spec.admins.first().cloned(),
                fleet: fleet(spec.prometheus.as_deref(), spec.admins),
                fleet_timeout: spec.fleet_timeout,
            })),
        }
    }

    /// The proxies that must report running a change.
    pub fn fleet(&self) -> &Fleet {
        match self {
            Target::EcdsFile(pusher) => &pusher.fleet,
            Target::WasmPlugin { fleet, .. } => fleet,
        }
    }

    /// How the target is named in messages: the file's path, or `wasmplugin NAMESPACE/NAME`.
    pub fn describe(&self) -> String {
        match self {
            Target::EcdsFile(pusher) => pusher.file.path().display().to_string(),
            Target::WasmPlugin { plugin, .. } => plugin.describe(),
        }
    }

    /// The command-line option that names this target, as another canaryctl is given it:
    /// `--ecds PATH` or `--wasmplugin NAMESPACE/NAME`.
    pub fn flag(&self) -> String {
        match self {
            Target::EcdsFile(pusher) => format!("--ecds {}", pusher.file.path().display()),
            Target::WasmPlugin { plugin, .. } => {
                format!("--wasmplugin {}/{}", plugin.namespace, plugin.name)
            }
        }
    }

    /// The configuration as it is now, compiled ([`Target::read`], in the same one read), and
    /// what the user should know before writing the target again and again (a rollout): for a
    /// WasmPlugin whose sidecars fetch the module again on every write, why
    /// ([`crate::mesh::module_pull::refetches_on_write`]); for a big configuration in a YAML
    /// ECDS file, what Envoy's reading of it costs ([`crate::mesh::ecds::write_warning`]).
    pub fn read_with_write_warnings(&self) -> Result<(CanaryConfig, RoutingPlan, Vec<String>)> {
        match self {
            Target::EcdsFile(pusher) => {
                let (config, plan) = self.read()?;
                let warnings = crate::mesh::ecds::write_warning(pusher.file.path(), &config)?
                    .into_iter()
                    .collect();
                Ok((config, plan, warnings))
            }
            Target::WasmPlugin { plugin, .. } => {
                let contents = plugin.read()?;
                let warnings =
                    crate::mesh::module_pull::refetches_on_write(&contents.object["spec"])
                        .into_iter()
                        .collect();
                Ok((contents.config, contents.plan, warnings))
            }
        }
    }

    /// The configuration as it is now, compiled.
    pub fn read(&self) -> Result<(CanaryConfig, RoutingPlan)> {
        match self {
            Target::EcdsFile(pusher) => {
                let contents = pusher.file.read()?;
                Ok((contents.config, contents.plan))
            }
            Target::WasmPlugin { plugin, .. } => {
                let contents = plugin.read()?;
                Ok((contents.config, contents.plan))
            }
        }
    }

    /// Applies `change` (validated by the filter's code, previewable) unless `dry_run`, and
    /// says what became of it: for the file, Envoy's confirmation when an admin endpoint is
    /// known; for the WasmPlugin, the resource version the API server stored, then the fleet's
    /// confirmation. Either way, a fleet that does not report the change in time is an error
    /// saying that the change was written.
    pub fn push(
        &self,
        dry_run: bool,
        change: impl Fn(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<(Update, Applied)> {
        match self {
            Target::EcdsFile(pusher) => pusher.push(dry_run, change),
            Target::WasmPlugin {
                plugin,
                fleet,
                fleet_timeout,
            } => {
                let (update, written) = plugin.update(dry_run, change)?;
                let applied = match written {
                    None => Applied::NotWritten,
                    Some(resource_version) => {
                        let report = confirm_stored(
                            plugin,
                            fleet,
                            *fleet_timeout,
                            &update.after,
                            &resource_version,
                        )?;
                        Applied::Stored(resource_version, report)
                    }
                };
                Ok((update, applied))
            }
        }
    }

    /// Puts back the configuration before the last change.
    pub fn undo(&self) -> Result<(Update, Applied)> {
        match self {
            Target::EcdsFile(pusher) => pusher.undo(),
            Target::WasmPlugin {
                plugin,
                fleet,
                fleet_timeout,
            } => {
                let (update, written) = plugin.undo()?;
                let report =
                    confirm_stored(plugin, fleet, *fleet_timeout, &update.after, &written)?;
                Ok((update, Applied::Stored(written, report)))
            }
        }
    }

    /// What became of a write, as printed (empty when nothing was written).
    pub fn report(&self, applied: &Applied) -> String {
        match applied {
            Applied::Accepted(after, fleet) => {
                let base = match self {
                    Target::EcdsFile(pusher) => pusher.admin.as_ref().map_or("", Admin::base),
                    Target::WasmPlugin { .. } => "",
                };
                let mut out = format!("Envoy at {base} accepted it ({} ms)\n", after.as_millis());
                if let Some(fleet) = fleet {
                    out += &fleet.line();
                }
                out
            }
            Applied::FleetRuns(fleet) => fleet.line(),
            Applied::Unconfirmed => {
                "Envoy applies it within a second (pass --admin or set CANARY_ADMIN to confirm)\n"
                    .to_string()
            }
            Applied::Stored(resource_version, None) => format!(
                "the API server stored it (resourceVersion {resource_version}); istiod pushes it \
                 to the selected sidecars\n"
            ),
            Applied::Stored(resource_version, Some(fleet)) => format!(
                "the API server stored it (resourceVersion {resource_version}); {}",
                fleet.line()
            ),
            Applied::NotWritten => String::new(),
        }
    }
}

/// Waits until the fleet runs `config`, just stored in `plugin` at `resource_version`; an
/// error says that it was stored but not confirmed.
fn confirm_stored(
    plugin: &WasmPlugin,
    fleet: &Fleet,
    timeout: Option<Duration>,
    config: &CanaryConfig,
    resource_version: &str,
) -> Result<Option<FleetReport>> {
    fleet.wait(config, timeout).with_context(|| {
        format!(
            "{}: the API server stored the change (resourceVersion {resource_version}), but the \
             proxies did not all confirm it",
            plugin.describe()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::push::Applied;

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

    fn spec(admins: &[&str], prometheus: Option<&str>, wasmplugin: bool) -> TargetSpec {
        TargetSpec {
            ecds: EcdsFile::new("e.yaml"),
            wasmplugin: wasmplugin.then(|| ("default/canary-a".to_string(), Kubectl::default())),
            admins: admins.iter().map(|admin| Admin::new(admin)).collect(),
            admins_read_metrics: false,
            prometheus: prometheus.map(str::to_string),
            fleet_timeout: Some(Duration::from_secs(3)),
        }
    }

    #[test]
    fn the_file_is_confirmed_by_the_first_admin() {
        let Ok(Target::EcdsFile(pusher)) =
            Target::open(spec(&["127.0.0.1:1", "127.0.0.1:2"], None, false))
        else {
            panic!("no WasmPlugin named: the ECDS file");
        };
        let Fleet::Admins(admins) = &pusher.fleet else {
            panic!("the fleet should be the admin endpoints");
        };
        assert_eq!(admins.len(), 2);
        assert_eq!(
            pusher.admin.as_ref().map(Admin::base),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(pusher.fleet_timeout, Some(Duration::from_secs(3)));
        // With Prometheus, the first admin still confirms; the fleet is Prometheus's.
        let Ok(Target::EcdsFile(through_prometheus)) = Target::open(spec(
            &["127.0.0.1:1", "127.0.0.1:2"],
            Some("http://127.0.0.1:9090"),
            false,
        )) else {
            panic!("no WasmPlugin named: the ECDS file");
        };
        assert!(matches!(through_prometheus.fleet, Fleet::Prometheus(_)));
        assert_eq!(
            through_prometheus.admin.as_ref().map(Admin::base),
            Some("http://127.0.0.1:1")
        );
    }

    #[test]
    fn a_wasmplugin_write_is_not_confirmed_by_admin_endpoints() {
        let Err(refused) = Target::open(spec(&["127.0.0.1:1"], None, true)) else {
            panic!("--admin with --wasmplugin should be refused for a write");
        };
        assert!(refused
            .to_string()
            .starts_with("--admin (or CANARY_ADMIN) confirms a write to the ECDS file"));
        // The rollout reads its metrics from them: kept for that, confirming nothing.
        let mut rollout = spec(&["127.0.0.1:1"], Some("http://p:9090"), true);
        rollout.admins_read_metrics = true;
        let Ok(Target::WasmPlugin {
            fleet,
            fleet_timeout,
            ..
        }) = Target::open(rollout)
        else {
            panic!("a WasmPlugin named: the WasmPlugin");
        };
        assert!(matches!(fleet, Fleet::Prometheus(_)));
        assert_eq!(fleet_timeout, Some(Duration::from_secs(3)));
    }
}
