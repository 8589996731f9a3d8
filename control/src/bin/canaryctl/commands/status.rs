//! `canaryctl status`: the per-version table from Envoy's admin endpoints, or from Prometheus
//! for every proxy of one service; with `--watch`, the rates over each refresh interval.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use serde_json::json;

use canary_filter::CanaryConfig;

use crate::commands::prelude::*;
use canary_control::mesh::ecds::EcdsFile;
use canary_control::mesh::wasmplugin::WasmPlugin;
use canary_control::metrics::admin::Admin;
use canary_control::metrics::per_proxy;
use canary_control::metrics::prometheus::Prometheus;
use canary_control::metrics::source::Source;
use canary_control::metrics::stats::service_label;
use canary_control::metrics::table::{self, StatusSource};

#[derive(Args)]
pub struct StatusArgs {
    /// Envoy admin endpoint(s), summed (repeatable).
    #[arg(long, env = "CANARY_ADMIN", default_value = DEFAULT_ADMIN, value_delimiter = ',')]
    pub admin: Vec<String>,
    /// Read the table from Prometheus (http://host:port) instead, summed over every proxy of
    /// one service.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Only this service's metrics (the `canary_service` label; "" for a configuration without
    /// `service`) [default: every service with admin endpoints; with --prometheus, the
    /// `service` of the ECDS file's configuration].
    #[arg(long)]
    pub service: Option<String>,
    /// The ECDS file whose configuration names the service, with --prometheus [default:
    /// envoy/ecds/canary-filter.yaml, or $CANARY_ECDS].
    #[arg(long)]
    pub ecds: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECONDS until Ctrl-C, showing each version's rates over the refresh
    /// interval (req/s, 5xx %, latency).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
    /// Also show the configuration of the Istio WasmPlugin NAMESPACE/NAME, through kubectl.
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
    /// With --watch: stop after this many refreshes.
    #[arg(long, requires = "watch")]
    pub count: Option<u64>,
    /// Only the requests of this rule label (a rule's name, or `weights` for the top-level
    /// split, `default` for those no rule or split placed).
    #[arg(long)]
    pub rule: Option<String>,
}

/// The source the flags name: with `--prometheus`, the service is `--service`, or the
/// `service` of the configuration (the WasmPlugin's with `--wasmplugin`, else the ECDS file's).
fn source_of(args: &StatusArgs, plugin: Option<&WasmPlugin>) -> Result<StatusSource> {
    Ok(match &args.prometheus {
        Some(url) => {
            let service = match (&args.service, plugin) {
                (Some(service), _) => service.clone(),
                (None, Some(plugin)) => {
                    service_label(plugin.read()?.config.service.as_deref()).to_string()
                }
                (None, None) => {
                    let file =
                        EcdsFile::new(canary_control::mesh::ecds::ecds_path(args.ecds.clone()));
                    service_label(file.read()?.config.service.as_deref()).to_string()
                }
            };
            StatusSource {
                source: Source::Prometheus {
                    prometheus: Prometheus::new(url),
                    service,
                },
                every_service: false,
            }
        }
        None => StatusSource {
            source: Source::Admin {
                admins: args.admin.iter().map(|a| Admin::new(a)).collect(),
                service: args.service.clone().unwrap_or_default(),
            },
            every_service: args.service.is_none(),
        },
    })
}

/// Prints the table (or JSON) once; with `--watch`, the totals, then every SECONDS the rates
/// over the last refresh interval, until Ctrl-C or `--count` refreshes. With `--wasmplugin`,
/// the configuration the WasmPlugin holds comes first (read again on every refresh). The
/// totals need every admin endpoint to answer; a refresh subtracts proxy by proxy, as the
/// rollout does, so a proxy that restarted, joined or left between two refreshes counts only
/// what it counted in the window (and the refresh names it).
pub fn exec(args: StatusArgs) -> Result<()> {
    let plugin = match &args.wasmplugin {
        Some(reference) => Some(WasmPlugin::new(reference, args.kubectl.kubectl())?),
        None => None,
    };
    let source = source_of(&args, plugin.as_ref())?;
    let configured = || -> Result<Option<String>> {
        let Some(plugin) = &plugin else {
            return Ok(None);
        };
        let contents = plugin.read()?;
        Ok(Some(configuration_line(
            &plugin.describe(),
            &contents.resource_version,
            &contents.config,
        )))
    };
    let rule = args.rule.as_deref();
    let scope = rule.map_or(String::new(), |rule| format!("  rule {rule}"));
    let every = match args.watch {
        Some(seconds) if seconds > 0.0 && seconds.is_finite() => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(_) => bail!("--watch needs a number of seconds above 0"),
        None => None,
    };
    let (mut fleet, unanswered) = source.read(rule)?;
    if let Some(silent) = unanswered.first() {
        bail!("an admin endpoint did not answer: {silent}");
    }
    let versions = table::by_version(&per_proxy::total(&fleet)?)?;
    let mut read_at = Instant::now();
    let now = || humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let configuration = configured()?;
    if args.json {
        let totals = table::summarize(&versions);
        if every.is_some() {
            println!(
                "{}",
                json!({"time": now(), "rule": rule, "configuration": configuration, "totals": totals})
            );
        } else if let Some(line) = configuration {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"configuration": line, "versions": totals}))?
            );
        } else {
            // Without a WasmPlugin, the JSON is the list it always was.
            println!("{}", serde_json::to_string_pretty(&totals)?);
        }
    } else {
        if let Some(line) = &configuration {
            println!("{line}");
        }
        let since = if every.is_some() {
            format!("{}  ", now())
        } else {
            String::new()
        };
        println!(
            "{since}{}{scope}  totals since each Envoy started",
            source.describe()
        );
        print!("{}", table::render_table(&versions));
        let features = canary_control::config::flags::render_table(
            &canary_control::config::flags::status_stats(&source.source, source.every_service)?,
        )?;
        if !features.is_empty() {
            print!("\n{features}");
        }
    }
    std::io::stdout().flush()?;
    let Some(every) = every else {
        return Ok(());
    };
    let redraw = !args.json && std::io::stdout().is_terminal();
    let mut refreshes = 0;
    while args.count.is_none_or(|count| refreshes < count) {
        std::thread::sleep(every.saturating_sub(read_at.elapsed()));
        let (later, _) = source.read(rule)?;
        let seconds = read_at.elapsed().as_secs_f64();
        read_at = Instant::now();
        let window = per_proxy::interval(&fleet, &later)?;
        let rates = table::rates(&table::by_version(&window.counts)?, seconds);
        let changes: Vec<String> = window.changes.iter().map(ToString::to_string).collect();
        fleet = later;
        refreshes += 1;
        let configuration = configured()?;
        if args.json {
            println!(
                "{}",
                json!({"time": now(), "rule": rule, "configuration": configuration,
                       "window_seconds": seconds, "rates": rates, "fleet": changes})
            );
        } else {
            if redraw {
                print!("\x1b[2J\x1b[H");
            }
            if let Some(line) = &configuration {
                println!("{line}");
            }
            let fleet_line = window
                .fleet_line()
                .map_or(String::new(), |line| format!("  fleet: {line}"));
            println!(
                "{}  {}{scope}  over the last {seconds:.1}s{fleet_line}",
                now(),
                source.describe()
            );
            print!("{}", table::render_rates(&rates));
        }
        std::io::stdout().flush()?;
    }
    Ok(())
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
