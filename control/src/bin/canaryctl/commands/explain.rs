//! `canaryctl explain`: which version a request gets, which rule decided, the key and its
//! bucket.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::commands::prelude::*;
use canary_control::{config::explanation, config::file};

#[derive(Args)]
pub struct ExplainArgs {
    /// The filter's JSON configuration (instead of the ECDS file).
    #[arg(long, conflicts_with = "ecds")]
    pub config: Option<PathBuf>,
    /// The ECDS file [default: envoy/ecds/canary-filter.yaml, or $CANARY_ECDS].
    #[arg(long)]
    pub ecds: Option<PathBuf>,
    /// The Istio WasmPlugin NAMESPACE/NAME to take the configuration from, through kubectl
    /// (--config and --ecds, given, win over it).
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
    /// A request header, "name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A cookie, "name=value" (repeatable; sent in one cookie header).
    #[arg(long = "cookie", value_name = "NAME=VALUE")]
    pub cookies: Vec<String>,
    /// The request's region (sent in the configuration's region header).
    #[arg(long)]
    pub region: Option<String>,
    /// The proxy's own region (node.locality.region).
    #[arg(long, conflicts_with = "bootstrap")]
    pub proxy_region: Option<String>,
    /// Read the proxy's region from this Envoy bootstrap.
    #[arg(long)]
    pub bootstrap: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Explains the request the arguments describe, printing text or JSON.
pub fn exec(args: ExplainArgs) -> Result<()> {
    let wasmplugin = args
        .wasmplugin
        .as_deref()
        .map(|reference| (reference, args.kubectl.kubectl()));
    let (config, plan) = file::from_args(args.config, args.ecds, wasmplugin)?;
    let mut request = explanation::describe_request(&args.headers, &args.cookies)?;
    if let Some(region) = &args.region {
        let Some(spec) = &config.region else {
            bail!("--region: the configuration has no `region` header; use --proxy-region for the proxy's locality");
        };
        request = request.header(&spec.header, region.as_str());
    }
    request.proxy_region = match (&args.proxy_region, &args.bootstrap) {
        (Some(region), _) => Some(region.clone()),
        (None, Some(path)) => bootstrap_region(path)?,
        (None, None) => None,
    };
    let explanation = explanation::explain(&config, &plan, &request);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", explanation::render(&explanation));
    }
    Ok(())
}

/// The proxy's region in an Envoy bootstrap (`node.locality.region`).
pub fn bootstrap_region(path: &Path) -> Result<Option<String>> {
    let doc: serde_json::Value = serde_yaml_ng::from_slice(
        &fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    )?;
    Ok(doc["node"]["locality"]["region"]
        .as_str()
        .map(str::to_string))
}
