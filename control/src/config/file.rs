//! Reading the filter's configuration from a file given on the command line: the filter's JSON,
//! or an ECDS file holding it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use canary_filter::{CanaryConfig, RoutingPlan};

use crate::mesh::ecds::{self, EcdsFile};
use crate::mesh::kubectl::Kubectl;
use crate::mesh::wasmplugin::WasmPlugin;

/// The filter configuration in `path`, with its compiled plan: an ECDS file (a document with
/// `resources`, read in the format its extension names, as Envoy reads it) or plain JSON.
pub fn load(path: &Path) -> Result<(CanaryConfig, RoutingPlan)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let looks_like_ecds = serde_yaml_ng::from_slice::<serde_json::Value>(&bytes)
        .map(|doc| doc.get("resources").is_some())
        .unwrap_or(false);
    if looks_like_ecds {
        let contents = ecds::parse_as(&bytes, ecds::Format::of(path)?)?;
        return Ok((contents.config, contents.plan));
    }
    let config = CanaryConfig::from_json(&bytes)?;
    let plan = RoutingPlan::try_from(&config)?;
    Ok((config, plan))
}

/// The configuration of a command that reads one: `--config` (a file as [`load`] reads it),
/// else `--ecds`, else the WasmPlugin `--wasmplugin` names (through `kubectl`), else the ECDS
/// file [`crate::mesh::ecds::ecds_path`] names.
pub fn from_args(
    config: Option<PathBuf>,
    ecds_file: Option<PathBuf>,
    wasmplugin: Option<(&str, Kubectl)>,
) -> Result<(CanaryConfig, RoutingPlan)> {
    if let Some(path) = config {
        return load(&path);
    }
    if let (None, Some((reference, kubectl))) = (&ecds_file, wasmplugin) {
        let contents = WasmPlugin::new(reference, kubectl)?.read()?;
        return Ok((contents.config, contents.plan));
    }
    let contents = EcdsFile::new(crate::mesh::ecds::ecds_path(ecds_file)).read()?;
    Ok((contents.config, contents.plan))
}
