//! `canaryctl status`: the per-version table from Envoy's admin endpoints, or from Prometheus
//! for every proxy of one service.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::admin::Admin;
use crate::cli::{self, StatusArgs};
use crate::ecds::EcdsFile;
use crate::prometheus::{describe_service, Prometheus};
use crate::stats::service_label;
use crate::status::{self, VersionStats};

/// Where the table comes from.
pub enum StatusSource {
    /// Envoy admin endpoints, summed; of one service, or of every one (`None`).
    Admins(Vec<Admin>, Option<String>),
    /// Every proxy of one service that Prometheus scrapes.
    Prometheus(Prometheus, String),
}

impl StatusSource {
    /// The source the flags name: with `--prometheus`, the service is `--service` or the
    /// `service` of the ECDS file's configuration.
    pub fn of(args: &StatusArgs) -> Result<StatusSource> {
        Ok(match &args.prometheus {
            Some(url) => {
                let service = match &args.service {
                    Some(service) => service.clone(),
                    None => {
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

    /// The filter's metrics by version.
    pub fn read(&self) -> Result<BTreeMap<String, VersionStats>> {
        match self {
            StatusSource::Admins(admins, service) => read(admins, service.as_deref()),
            StatusSource::Prometheus(prometheus, service) => {
                Ok(status::by_version(&prometheus.filter_stats(service)?))
            }
        }
    }

    /// The heading line: where the numbers come from.
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

/// Prints the table (or JSON) once, or every `--watch` seconds until Ctrl-C.
pub fn exec(args: StatusArgs) -> Result<()> {
    let source = StatusSource::of(&args)?;
    loop {
        let versions = source.read()?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&status::summarize(&versions))?
            );
        } else {
            if args.watch.is_some() && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            println!("{}", source.describe());
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

/// The filter's metrics of every admin endpoint, summed by version: of one service, or of
/// every one (`None`).
pub fn read(admins: &[Admin], service: Option<&str>) -> Result<BTreeMap<String, VersionStats>> {
    let mut total = BTreeMap::new();
    for admin in admins {
        for (version, stats) in status::read_versions(admin, service)? {
            let entry: &mut VersionStats = total.entry(version).or_default();
            status::add_into(entry, &stats);
        }
    }
    Ok(total)
}
