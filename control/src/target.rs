//! Where the filter's configuration lives, for every command that reads or changes it: the
//! ECDS file Envoy watches (with the Envoys that confirm a write, [`Pusher`]), or an Istio
//! WasmPlugin reached through kubectl ([`WasmPlugin`]). The commands call these methods and
//! do not ask which it is.

use anyhow::Result;
use canary_filter::{CanaryConfig, RoutingPlan};

use crate::admin::Admin;
use crate::ecds::Update;
use crate::push::{Applied, Pusher};
use crate::wasmplugin::WasmPlugin;

/// Where the configuration lives.
pub enum Target {
    /// Envoy's ECDS file, written by atomic rename, confirmed by the Envoys given.
    EcdsFile(Pusher),
    /// An Istio WasmPlugin's `spec.pluginConfig`, replaced at the resource version read.
    WasmPlugin(WasmPlugin),
}

impl Target {
    /// How the target is named in messages: the file's path, or `wasmplugin NAMESPACE/NAME`.
    pub fn describe(&self) -> String {
        match self {
            Target::EcdsFile(pusher) => pusher.file.path().display().to_string(),
            Target::WasmPlugin(plugin) => plugin.describe(),
        }
    }

    /// The command-line option that names this target, as another canaryctl is given it:
    /// `--ecds PATH` or `--wasmplugin NAMESPACE/NAME`.
    pub fn flag(&self) -> String {
        match self {
            Target::EcdsFile(pusher) => format!("--ecds {}", pusher.file.path().display()),
            Target::WasmPlugin(plugin) => {
                format!("--wasmplugin {}/{}", plugin.namespace, plugin.name)
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
            Target::WasmPlugin(plugin) => {
                let contents = plugin.read()?;
                Ok((contents.config, contents.plan))
            }
        }
    }

    /// Applies `change` (validated by the filter's code, previewable) unless `dry_run`, and
    /// says what became of it: for the file, Envoy's confirmation when an admin endpoint is
    /// known; for the WasmPlugin, the resource version the API server stored.
    pub fn push(
        &self,
        dry_run: bool,
        change: impl Fn(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<(Update, Applied)> {
        match self {
            Target::EcdsFile(pusher) => pusher.push(dry_run, change),
            Target::WasmPlugin(plugin) => {
                let (update, written) = plugin.update(dry_run, change)?;
                let applied = written.map_or(Applied::NotWritten, Applied::Stored);
                Ok((update, applied))
            }
        }
    }

    /// Puts back the configuration before the last change.
    pub fn undo(&self) -> Result<(Update, Applied)> {
        match self {
            Target::EcdsFile(pusher) => pusher.undo(),
            Target::WasmPlugin(plugin) => {
                let (update, written) = plugin.undo()?;
                Ok((update, Applied::Stored(written)))
            }
        }
    }

    /// What became of a write, as printed (empty when nothing was written).
    pub fn report(&self, applied: &Applied) -> String {
        match applied {
            Applied::Accepted(after, fleet) => {
                let base = match self {
                    Target::EcdsFile(pusher) => pusher.admin.as_ref().map_or("", Admin::base),
                    Target::WasmPlugin(_) => "",
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
            Applied::Stored(resource_version) => format!(
                "the API server stored it (resourceVersion {resource_version}); istiod pushes it \
                 to the selected sidecars\n"
            ),
            Applied::NotWritten => String::new(),
        }
    }
}
