//! `canaryctl istio`: render the Istio resources, or pipe them to `kubectl apply`; say which
//! pod annotations the sidecars need for the filter's stats.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use crate::commands::prelude::*;
use canary_control::config::file;
use canary_control::mesh::istio_resources::{self, IstioOptions};

#[derive(Args)]
pub struct IstioArgs {
    /// The filter's JSON configuration (instead of the ECDS file).
    #[arg(long, conflicts_with = "ecds")]
    pub config: Option<PathBuf>,
    /// The ECDS file to take the configuration from [default: envoy/ecds/canary-filter.yaml].
    #[arg(long)]
    pub ecds: Option<PathBuf>,
    /// WasmPlugin name.
    #[arg(long, default_value = "canary-filter")]
    pub name: String,
    /// Namespace of the resources.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Workload selector KEY=VALUE of the calling workloads (repeatable).
    #[arg(long = "selector", value_parser = parse_pair, required = true)]
    pub selector: Vec<(String, String)>,
    /// Module location: oci://registry/image:tag or file:///path/plugin.wasm.
    #[arg(long)]
    pub url: String,
    /// sha256 of the module.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Filter phase.
    #[arg(long, default_value = "STATS")]
    pub phase: String,
    /// Priority within the phase.
    #[arg(long)]
    pub priority: Option<i64>,
    /// The service host routed (VirtualService and DestinationRule), and the plugin's `hosts`:
    /// it routes calls to this service only.
    #[arg(long)]
    pub host: String,
    /// Pod label that tells versions apart.
    #[arg(long, default_value = "version")]
    pub version_label: String,
    /// VERSION=VALUE where the pod label value differs from the version's name (repeatable).
    #[arg(long = "label-value", value_parser = parse_pair)]
    pub label_values: Vec<(String, String)>,
    /// The Istio release of the mesh, X.Y or X.Y.Z: the API versions it serves are rendered
    /// (networking.istio.io/v1 from 1.22, v1beta1 before); refused before 1.20.5, and for
    /// 1.21.0 (their proxies lack the early header mutation the EnvoyFilter needs).
    #[arg(long, value_name = "X.Y[.Z]", default_value = canary_control::mesh::istio_version::DEFAULT_ISTIO_VERSION)]
    pub istio_version: canary_control::mesh::istio_version::IstioVersion,
    /// The WasmPlugin's imagePullPolicy, IfNotPresent or Always [default: IfNotPresent, so no
    /// write of the WasmPlugin, a rollout step included, makes the sidecars fetch the module
    /// again].
    #[arg(long, value_name = "POLICY")]
    pub pull_policy: Option<canary_control::mesh::module_pull::PullPolicy>,
    /// The Secret (in the WasmPlugin's namespace) with the registry's credentials
    /// (imagePullSecret).
    #[arg(long, value_name = "SECRET")]
    pub pull_secret: Option<String>,
    /// Pipe the resources to `kubectl apply -f -`.
    #[arg(long)]
    pub apply: bool,
}

/// Renders the resources for the configuration; prints them, or applies them with `--apply`.
pub fn exec(args: IstioArgs) -> Result<()> {
    // The configuration Istio's plugin runs is compiled by `istio_resources::render` itself.
    let (config, _) = file::from_args(args.config.clone(), args.ecds.clone(), None)?;
    let apply = args.apply;
    let options = options(args);
    let yaml = istio_resources::render(&config, &options)?;
    for warning in istio_resources::warnings(&options) {
        eprintln!("warning: {warning}");
    }
    eprint!("{}", istio_resources::pod_annotations_note(&options)?);
    if !apply {
        print!("{yaml}");
        return Ok(());
    }
    kubectl_apply(&yaml)
}

/// The rendering options the flags give.
pub fn options(args: IstioArgs) -> IstioOptions {
    IstioOptions {
        name: args.name,
        namespace: args.namespace,
        selector: args.selector,
        url: args.url,
        sha256: args.sha256,
        phase: args.phase,
        priority: args.priority,
        host: args.host,
        version_label: args.version_label,
        label_values: args.label_values,
        istio_version: args.istio_version,
        pull_policy: args.pull_policy,
        pull_secret: args.pull_secret,
    }
}

/// Pipes `yaml` to `kubectl apply -f -`.
fn kubectl_apply(yaml: &str) -> Result<()> {
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|err| anyhow!("cannot run kubectl ({err}): install it, or drop --apply and apply the printed resources yourself"))?;
    child
        .stdin
        .take()
        .context("no stdin for kubectl")?
        .write_all(yaml.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("kubectl apply failed ({status})");
    }
    Ok(())
}
