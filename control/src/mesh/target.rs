//! Where the filter's configuration lives, for every command that reads or changes it: the
//! ECDS file Envoy watches (with the Envoys that confirm a write, [`Pusher`]), or an Istio
//! WasmPlugin reached through kubectl ([`WasmPlugin`]). The commands call these methods and
//! do not ask which it is.

use std::time::Duration;

use anyhow::{Context, Result};
use canary_filter::{CanaryConfig, RoutingPlan};

use crate::mesh::ecds::Update;
use crate::mesh::push::{Applied, Fleet, FleetReport, Pusher};
use crate::mesh::wasmplugin::WasmPlugin;
use crate::metrics::admin::Admin;

/// Where the configuration lives.
pub enum Target {
    /// Envoy's ECDS file, written by atomic rename, confirmed by the Envoys given.
    EcdsFile(Pusher),
    /// An Istio WasmPlugin's `spec.pluginConfig`, replaced at the resource version read;
    /// istiod delivers it, and the proxies of `fleet` must report running it within
    /// `fleet_timeout` (through Prometheus: see [`crate::commands::write::target`]).
    WasmPlugin {
        /// The resource.
        plugin: WasmPlugin,
        /// The proxies that must report running a change.
        fleet: Fleet,
        /// How long they have (`None`: [`Fleet::wait`]'s default).
        fleet_timeout: Option<Duration>,
    },
}

impl Target {
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
    /// ([`crate::mesh::module_pull::refetches_on_write`]).
    pub fn read_with_write_warnings(&self) -> Result<(CanaryConfig, RoutingPlan, Vec<String>)> {
        match self {
            Target::EcdsFile(_) => {
                let (config, plan) = self.read()?;
                Ok((config, plan, Vec::new()))
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
