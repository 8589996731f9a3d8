//! `canaryctl rollout`: step the canary through a plan, judging it against stable each
//! interval; promote or roll back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use canary_filter::metrics::CONFIG_HASH;
use canary_filter::CanaryConfig;

use crate::admin::Admin;
use crate::cli::RolloutArgs;
use crate::commands::write::fleet;
use crate::commands::ExitStatus;
use crate::ecds::EcdsFile;
use crate::edit;
use crate::judge::JudgeSettings;
use crate::prometheus::{describe_service, Prometheus, FLEET_LOOKBACK};
use crate::push::{Fleet, Pusher};
use crate::rollout::{End, Rollout};
use crate::source::Source;
use crate::stats::service_label;

/// Runs the rollout until it ends (it prints its own summary); the end is the exit status.
pub fn exec(args: RolloutArgs) -> Result<ExitStatus> {
    let file = args.target.file();
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let prometheus = args.prometheus.clone();
    let fleet_timeout = args.fleet_timeout;
    let config = file.read()?.config;
    let service = service(args.service.as_deref(), config.service.as_deref(), &file)?;
    let rollout = plan(args, &file, &config)?;
    let source = source(prometheus.as_deref(), &admins, &service)?;
    rollout.check()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let pusher = Pusher {
        file,
        admin: admins.first().cloned(),
        fleet: fleet(prometheus.as_deref(), admins),
        fleet_timeout,
    };
    if !rollout.dry_run {
        check_fleet(&pusher.fleet, &service)?;
    }
    Ok(exit_status(&rollout.run(&pusher, &source, &interrupted)?))
}

/// Before the first push: a fleet confirmed through Prometheus needs a Prometheus that answers
/// and knows at least one proxy of the service, or no push of the rollout could be confirmed
/// (nothing is written yet when this refuses).
pub fn check_fleet(fleet: &Fleet, service: &str) -> Result<()> {
    let Fleet::Prometheus(prometheus) = fleet else {
        return Ok(());
    };
    let proxies = prometheus
        .config_hashes(service)
        .context("nothing written")?;
    if proxies.is_empty() {
        bail!(
            "Prometheus {} knows no proxy of the service with {} (no {CONFIG_HASH} in the last \
             {FLEET_LOOKBACK}): is it scraping the proxies' /stats/prometheus? Nothing written",
            prometheus.base(),
            describe_service(service)
        );
    }
    Ok(())
}

/// The service whose series the rollout reads: the configuration's (`""` without one); a
/// `--service` naming another is refused, since the proxies running this configuration label
/// their series with its service only.
pub fn service(given: Option<&str>, configured: Option<&str>, file: &EcdsFile) -> Result<String> {
    let configured = service_label(configured);
    match given {
        Some(given) if given != configured => bail!(
            "--service {given:?}: the configuration in {} routes the service with {}, and its \
             proxies label their metrics so",
            file.path().display(),
            describe_service(configured)
        ),
        _ => Ok(configured.to_string()),
    }
}

/// The exit status of a rollout that ended so.
pub fn exit_status(end: &End) -> ExitStatus {
    match end {
        End::Promoted(_) | End::DryRun => ExitStatus::Success,
        End::RolledBack(_) => ExitStatus::RolledBack,
        End::Stopped(..) => ExitStatus::Stopped,
    }
}

/// Where the rollout reads the metrics of `service`: Prometheus if given, else the admin
/// endpoints.
pub fn source(prometheus: Option<&str>, admins: &[Admin], service: &str) -> Result<Source> {
    let service = service.to_string();
    Ok(match prometheus {
        Some(url) => Source::Prometheus {
            prometheus: Prometheus::new(url),
            service,
        },
        None if admins.is_empty() => {
            bail!("give --admin (or CANARY_ADMIN) or --prometheus: the rollout needs metrics")
        }
        None => Source::Admin {
            admins: admins.to_vec(),
            service,
        },
    })
}

/// The rollout the flags describe, for `config`, the configuration in `file` (read first, so
/// that an unreadable file stops the rollout before anything else; it names the canary when
/// `--canary` does not).
pub fn plan(args: RolloutArgs, file: &EcdsFile, config: &CanaryConfig) -> Result<Rollout> {
    let canary = match args.canary {
        Some(canary) => canary,
        None => edit::the_canary(config, "rolled out", " with --canary")?,
    };
    let audit = match args.audit {
        Some(path) => path,
        None => default_audit(file.path()),
    };
    Ok(Rollout {
        steps: args.steps,
        interval: args.interval,
        settle: args.settle,
        canary,
        rule: args.rule,
        judge: JudgeSettings {
            min_requests: args.min_requests,
            min_intervals: args.min_intervals,
            alpha: args.alpha,
            error_margin: args.error_margin,
            max_error_rate: args.max_error_rate,
            latency_margin_ms: args.latency_margin_ms,
        },
        max_holds: args.max_holds,
        max_failed_reads: args.max_failed_reads,
        on_interrupt: args.on_interrupt,
        audit,
        dry_run: args.dry_run,
    })
}

/// The audit log next to the ECDS file: `.canaryctl/rollout-audit.jsonl` in its directory.
pub fn default_audit(ecds: &Path) -> PathBuf {
    let dir = ecds
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    dir.join(".canaryctl").join("rollout-audit.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_rollout_exits_3_and_a_stopped_one_1() {
        assert_eq!(exit_status(&End::DryRun).code(), 0);
        assert_eq!(exit_status(&End::Promoted(100.0)).code(), 0);
        assert_eq!(exit_status(&End::RolledBack("worse".into())).code(), 3);
        assert_eq!(exit_status(&End::Stopped(5.0, "holds".into())).code(), 1);
    }

    #[test]
    fn the_audit_log_sits_next_to_the_ecds_file() {
        assert_eq!(
            default_audit(Path::new("envoy/ecds/canary-filter.yaml")),
            PathBuf::from("envoy/ecds/.canaryctl/rollout-audit.jsonl")
        );
    }

    #[test]
    fn a_rollout_needs_a_source() {
        let err = source(None, &[], "").err().unwrap();
        assert!(err.to_string().starts_with("give --admin"));
        assert!(matches!(
            source(None, &[Admin::new("127.0.0.1:9901")], "a"),
            Ok(Source::Admin { service, .. }) if service == "a"
        ));
    }

    #[test]
    fn the_service_is_the_configurations_and_another_is_refused() {
        let file = EcdsFile::new("e.yaml");
        assert_eq!(service(None, Some("a"), &file).unwrap(), "a");
        assert_eq!(service(Some("a"), Some("a"), &file).unwrap(), "a");
        assert_eq!(service(None, None, &file).unwrap(), "");
        let err = service(Some("b"), Some("a"), &file)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--service \"b\": the configuration in e.yaml routes the service with canary_service=\"a\""),
            "{err}"
        );
        let err = service(Some("b"), None, &file).unwrap_err().to_string();
        assert!(err.contains("no canary_service label"), "{err}");
    }
}
