//! `canaryctl validate`: check configurations with the filter's own validation.

use std::path::Path;

use anyhow::{bail, Result};

use canary_filter::{CanaryConfig, RoutingPlan};

use crate::commands::prelude::*;
use canary_control::config::file;
use canary_control::mesh::wasmplugin::WasmPlugin;

// The arguments of each command (no doc comments: a struct's doc would replace the command's
// help, which comes from its variant above).

#[derive(Args)]
pub struct ValidateArgs {
    /// Files: the filter's JSON, or an ECDS YAML file holding it.
    #[arg(required_unless_present = "wasmplugin")]
    pub files: Vec<PathBuf>,
    /// Also the live Istio WasmPlugin NAMESPACE/NAME (its spec.pluginConfig), through kubectl.
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
}

/// Validates every file and the WasmPlugin if one is named, printing a line for each; an
/// error if any is invalid.
pub fn exec(args: ValidateArgs) -> Result<()> {
    let mut failed = 0;
    for path in &args.files {
        match summary(path) {
            Ok(line) => println!("{line}"),
            Err(err) => {
                failed += 1;
                eprintln!("{}: {err:#}", path.display());
            }
        }
    }
    let mut checked = args.files.len();
    if let Some(reference) = &args.wasmplugin {
        checked += 1;
        let plugin = WasmPlugin::new(reference, args.kubectl.kubectl())?;
        match plugin.read() {
            Ok(contents) => println!(
                "{}",
                summary_line(&plugin.describe(), &contents.config, &contents.plan)
            ),
            Err(err) => {
                failed += 1;
                eprintln!("{err:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {checked} configurations are invalid");
    }
    Ok(())
}

/// The line printed for a valid file; an error for an invalid one.
pub fn summary(path: &Path) -> Result<String> {
    let (config, plan) = file::load(path)?;
    Ok(summary_line(&path.display().to_string(), &config, &plan))
}

/// The line printed for a valid configuration found at `what`.
pub fn summary_line(what: &str, config: &CanaryConfig, plan: &RoutingPlan) -> String {
    // Which calls it routes, when not every call: a sidecar runs it on all of them.
    let hosts = match &config.hosts {
        Some(hosts) => format!(", only for hosts {}", hosts.join(", ")),
        None => String::new(),
    };
    format!(
        "{what}: valid ({} versions, default `{}`, {} rules{hosts})",
        plan.versions().len(),
        config.default,
        config.rules.len()
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_valid_file_is_summarized_and_an_invalid_one_refused() {
        let mut file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        file.write_all(
            br#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
                "default": "stable", "weights": {"canary": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            summary(file.path()).unwrap(),
            format!(
                "{}: valid (2 versions, default `stable`, 0 rules)",
                file.path().display()
            )
        );
        let mut scoped = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        scoped
            .write_all(
                br#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
                    "default": "stable", "hosts": ["checkout.shop.svc.cluster.local", "checkout.example.com"]}"#,
            )
            .unwrap();
        assert_eq!(
            summary(scoped.path()).unwrap(),
            format!(
                "{}: valid (2 versions, default `stable`, 0 rules, only for hosts \
                 checkout.shop.svc.cluster.local, checkout.example.com)",
                scoped.path().display()
            )
        );
        let mut bad = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        bad.write_all(br#"{"versions": [], "default": "stable"}"#)
            .unwrap();
        assert!(summary(bad.path()).is_err());
    }
}
