//! `canaryctl status`: the per-version table from Envoy's admin endpoints.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};

use canary_filter::CanaryConfig;

use crate::admin::Admin;
use crate::cli::StatusArgs;
use crate::status::{self, VersionStats};
use crate::wasmplugin::WasmPlugin;

/// Prints the table (or JSON) once, or every `--watch` seconds until Ctrl-C; with
/// `--wasmplugin`, the configuration the WasmPlugin holds first (read on every refresh).
pub fn exec(args: StatusArgs) -> Result<()> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let plugin = match &args.wasmplugin {
        Some(reference) => Some(WasmPlugin::new(reference, args.kubectl.kubectl())?),
        None => None,
    };
    loop {
        let configured = match &plugin {
            Some(plugin) => {
                let contents = plugin.read()?;
                Some(configuration_line(
                    &plugin.describe(),
                    &contents.resource_version,
                    &contents.config,
                ))
            }
            None => None,
        };
        let versions = read(&admins)?;
        if args.json {
            let mut out = serde_json::json!({"versions": status::summarize(&versions)});
            if let Some(line) = &configured {
                out["configuration"] = serde_json::Value::String(line.clone());
            }
            let out = match configured {
                Some(_) => out,
                // Without a WasmPlugin, the JSON is the list it always was.
                None => out["versions"].take(),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            if args.watch.is_some() && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            if let Some(line) = &configured {
                println!("{line}");
            }
            let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
            println!("{}", sources.join(", "));
            print!("{}", status::render_table(&versions));
        }
        std::io::stdout().flush()?;
        match args.watch {
            Some(seconds) if seconds > 0.0 => std::thread::sleep(Duration::from_secs_f64(seconds)),
            Some(_) => bail!("--watch needs a number of seconds above 0"),
            None => return Ok(()),
        }
    }
}

/// The filter's metrics of every admin endpoint, summed by version.
pub fn read(admins: &[Admin]) -> Result<BTreeMap<String, VersionStats>> {
    let mut total = BTreeMap::new();
    for admin in admins {
        for (version, stats) in status::read_versions(admin)? {
            let entry: &mut VersionStats = total.entry(version).or_default();
            status::add_into(entry, &stats);
        }
    }
    Ok(total)
}

/// What a WasmPlugin holds, in one line: where, at which resource version, the default, the
/// top-level weights and how many rules.
pub fn configuration_line(what: &str, resource_version: &str, config: &CanaryConfig) -> String {
    let weights: Vec<String> = config
        .weights
        .iter()
        .map(|(version, weight)| format!("{version}={weight}%"))
        .collect();
    format!(
        "{what} (resourceVersion {resource_version}): default `{}`, weights {}, {} rules",
        config.default,
        if weights.is_empty() {
            "none".to_string()
        } else {
            weights.join(" ")
        },
        config.rules.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_line_names_the_resource_version_and_the_weights() {
        let config = CanaryConfig::from_json(
            br#"{"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
                "default": "stable", "weights": {"canary": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            configuration_line("wasmplugin shop/canary-filter", "42", &config),
            "wasmplugin shop/canary-filter (resourceVersion 42): default `stable`, weights \
             canary=5%, 0 rules"
        );
    }
}
