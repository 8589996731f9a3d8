//! `canaryctl istio`: render the Istio resources, or pipe them to `kubectl apply`; say which
//! pod annotations the sidecars need for the filter's stats.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use crate::cli::IstioArgs;
use crate::config_file;
use crate::istio::{self, IstioOptions};

/// Renders the resources for the configuration; prints them, or applies them with `--apply`.
pub fn exec(args: IstioArgs) -> Result<()> {
    // The configuration Istio's plugin runs is compiled by `istio::render` itself.
    let (config, _) = config_file::from_args(args.config.clone(), args.ecds.clone(), None)?;
    let apply = args.apply;
    let options = options(args);
    let yaml = istio::render(&config, &options)?;
    for warning in istio::warnings(&options) {
        eprintln!("warning: {warning}");
    }
    eprint!("{}", istio::pod_annotations_note(&options)?);
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
