//! `canaryctl status`: the per-version table from Envoy's admin endpoints, or from Prometheus
//! for every proxy of one service; with `--watch`, the rates over each refresh interval.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use serde_json::json;

use canary_filter::CanaryConfig;

use crate::admin::Admin;
use crate::cli::{self, StatusArgs};
use crate::ecds::EcdsFile;
use crate::prometheus::{describe_service, Prometheus};
use crate::stats::service_label;
use crate::status::{self, VersionStats};
use crate::wasmplugin::WasmPlugin;

/// Where the table comes from.
pub enum StatusSource {
    /// Envoy admin endpoints, summed; of one service, or of every one (`None`).
    Admins(Vec<Admin>, Option<String>),
    /// Every proxy of one service that Prometheus scrapes.
    Prometheus(Prometheus, String),
}

impl StatusSource {
    /// The source the flags name: with `--prometheus`, the service is `--service`, or the
    /// `service` of the configuration (the WasmPlugin's with `--wasmplugin`, else the ECDS
    /// file's).
    pub fn of(args: &StatusArgs, plugin: Option<&WasmPlugin>) -> Result<StatusSource> {
        Ok(match &args.prometheus {
            Some(url) => {
                let service = match (&args.service, plugin) {
                    (Some(service), _) => service.clone(),
                    (None, Some(plugin)) => {
                        service_label(plugin.read()?.config.service.as_deref()).to_string()
                    }
                    (None, None) => {
                        let file = EcdsFile::new(cli::ecds_path(args.ecds.clone()));
                        service_label(file.read()?.config.service.as_deref()).to_string()
                    }
                };
                StatusSource::Prometheus(Prometheus::new(url), service)
            }
            None => StatusSource::Admins(
                args.admin.iter().map(|a| Admin::new(a)).collect(),
                args.service.clone(),
            ),
        })
    }

    /// The filter's metrics by version; of one rule label only when `rule` is given.
    pub fn read(&self, rule: Option<&str>) -> Result<BTreeMap<String, VersionStats>> {
        match self {
            StatusSource::Admins(admins, service) => read(admins, service.as_deref(), rule),
            StatusSource::Prometheus(prometheus, service) => {
                let stats = prometheus.filter_stats(service)?;
                Ok(status::by_version(&match rule {
                    Some(rule) => stats
                        .into_iter()
                        .filter(|(key, _)| key.rule == rule)
                        .collect(),
                    None => stats,
                }))
            }
        }
    }

    /// The heading: where the numbers come from.
    pub fn describe(&self) -> String {
        match self {
            StatusSource::Admins(admins, service) => {
                let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
                match service {
                    Some(service) => {
                        format!("{} ({})", sources.join(", "), describe_service(service))
                    }
                    None => sources.join(", "),
                }
            }
            StatusSource::Prometheus(prometheus, service) => format!(
                "Prometheus {}, every proxy of the service with {}",
                prometheus.base(),
                describe_service(service)
            ),
        }
    }
}

/// Prints the table (or JSON) once; with `--watch`, the totals, then every SECONDS the rates
/// over the last refresh interval, until Ctrl-C or `--count` refreshes. With `--wasmplugin`,
/// the configuration the WasmPlugin holds comes first (read again on every refresh).
pub fn exec(args: StatusArgs) -> Result<()> {
    let plugin = match &args.wasmplugin {
        Some(reference) => Some(WasmPlugin::new(reference, args.kubectl.kubectl())?),
        None => None,
    };
    let source = StatusSource::of(&args, plugin.as_ref())?;
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
    let mut versions = source.read(rule)?;
    let mut read_at = Instant::now();
    let now = || humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let configuration = configured()?;
    if args.json {
        let totals = status::summarize(&versions);
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
        print!("{}", status::render_table(&versions));
        let features = crate::flags::render_table(&crate::flags::status_stats(&source)?);
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
        let later = source.read(rule)?;
        let seconds = read_at.elapsed().as_secs_f64();
        read_at = Instant::now();
        let rates = status::rates(&later, &versions, seconds);
        versions = later;
        refreshes += 1;
        let configuration = configured()?;
        if args.json {
            println!(
                "{}",
                json!({"time": now(), "rule": rule, "configuration": configuration,
                       "window_seconds": seconds, "rates": rates})
            );
        } else {
            if redraw {
                print!("\x1b[2J\x1b[H");
            }
            if let Some(line) = &configuration {
                println!("{line}");
            }
            println!(
                "{}  {}{scope}  over the last {seconds:.1}s",
                now(),
                source.describe()
            );
            print!("{}", status::render_rates(&rates));
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// The filter's metrics of every admin endpoint, summed by version: of one service, or of
/// every one (`None`); of one rule label only when `rule` is given.
pub fn read(
    admins: &[Admin],
    service: Option<&str>,
    rule: Option<&str>,
) -> Result<BTreeMap<String, VersionStats>> {
    let mut total = BTreeMap::new();
    for admin in admins {
        for (version, stats) in status::read_versions(admin, service, rule)? {
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
