//! `canaryctl explain`: which version a request gets, which rule decided, the key and its
//! bucket.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::ExplainArgs;
use crate::{config_file, explain};

/// Explains the request the arguments describe, printing text or JSON.
pub fn exec(args: ExplainArgs) -> Result<()> {
    let wasmplugin = args
        .wasmplugin
        .as_deref()
        .map(|reference| (reference, args.kubectl.kubectl()));
    let (config, plan) = config_file::from_args(args.config, args.ecds, wasmplugin)?;
    let mut request = explain::describe_request(&args.headers, &args.cookies)?;
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
    let explanation = explain::explain(&config, &plan, &request);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", explain::render(&explanation));
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
