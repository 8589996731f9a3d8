//! `canaryctl rollout`: step the canary through a plan, judging it against stable each
//! interval; promote or roll back. `rollout resume` and `rollout abort` answer a rollout
//! paused at a `--pause-at` weight.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use canary_filter::metrics::CONFIG_HASH;
use canary_filter::CanaryConfig;

use crate::admin::Admin;
use crate::checks::{Checks, Custom, Reader};
use crate::cli::{PauseArgs, RolloutAction, RolloutArgs, RolloutCommand};
use crate::commands::write::{fleet, wasmplugin_target};
use crate::commands::ExitStatus;
use crate::edit;
use crate::judge::JudgeSettings;
use crate::pause::{self, PauseFile, PauseState, Request};
use crate::prometheus::{describe_service, Prometheus, FLEET_LOOKBACK};
use crate::push::{Fleet, Pusher};
use crate::rollout::{End, Hooks, Rollout};
use crate::runs::RolloutPlace;
use crate::source::Source;
use crate::stats::service_label;
use crate::target::Target;
use crate::wasmplugin::{parse_reference, WasmPlugin};

/// Runs the rollout until it ends (it prints its own summary; the end is the exit status), or
/// answers a paused one.
pub fn exec(command: RolloutCommand) -> Result<ExitStatus> {
    match command.action {
        Some(RolloutAction::Resume(args)) => answer(&args, Request::Resume),
        Some(RolloutAction::Abort(args)) => answer(&args, Request::Abort),
        None => run(command.run),
    }
}

/// `rollout resume` / `rollout abort`: writes the request where the paused rollout looks: the
/// rollout of `--canary`, else the one rollout waiting on the target (several waiting need
/// `--canary`).
fn answer(args: &PauseArgs, request: Request) -> Result<ExitStatus> {
    let place = match &args.wasmplugin {
        Some(reference) => {
            let (namespace, name) = parse_reference(reference)?;
            RolloutPlace::for_wasmplugin(&namespace, &name)
        }
        None => RolloutPlace::next_to(&args.ecds),
    };
    let file = match &args.canary {
        Some(canary) => place.pause_file(canary),
        None => the_paused(&place)?,
    };
    let state = file.request(request)?;
    let what = match request {
        Request::Resume => "goes on to its next step",
        Request::Abort => "rolls back",
    };
    if pause::is_running(state.pid) {
        println!(
            "the rollout of `{}` paused at {}% (pid {}) {what}",
            state.canary, state.weight, state.pid
        );
    } else {
        println!(
            "the rollout of `{}` paused at {}% (pid {}) is not running; the next rollout of \
             `{}` that reaches {}% {what} ({})",
            state.canary,
            state.weight,
            state.pid,
            state.canary,
            state.weight,
            file.path().display()
        );
    }
    Ok(ExitStatus::Success)
}

/// The pause state of the one rollout waiting in `place`; refused, naming them, when several
/// wait, and when none does.
fn the_paused(place: &RolloutPlace) -> Result<PauseFile> {
    let mut waiting: Vec<(PauseFile, PauseState)> = place
        .paused()?
        .into_iter()
        .filter(|(_, state)| state.request.is_none())
        .collect();
    match waiting.len() {
        0 => bail!(
            "nothing is paused: no rollout waits in {}",
            place.dir().display()
        ),
        1 => Ok(waiting.remove(0).0),
        _ => bail!(
            "{} rollouts are paused: {}; name the one to answer with --canary",
            waiting.len(),
            waiting
                .iter()
                .map(|(_, state)| format!(
                    "`{}` at {}% (pid {})",
                    state.canary, state.weight, state.pid
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Where the rollouts of `target` keep their locks and pause states.
pub fn place_of(target: &Target) -> RolloutPlace {
    match target {
        Target::EcdsFile(pusher) => RolloutPlace::next_to(pusher.file.path()),
        Target::WasmPlugin { plugin, .. } => {
            RolloutPlace::for_wasmplugin(&plugin.namespace, &plugin.name)
        }
    }
}

fn run(args: RolloutArgs) -> Result<ExitStatus> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let prometheus = args.prometheus.clone();
    let target = match &args.target.wasmplugin {
        // The admin endpoints are the metrics source only; each step is confirmed through
        // Prometheus when given, as a write is (`canaryctl set --wasmplugin`).
        Some(reference) => wasmplugin_target(
            reference,
            &args.target,
            prometheus.as_deref(),
            args.fleet_timeout,
        )?,
        None => Target::EcdsFile(Pusher {
            file: args.target.file(),
            admin: admins.first().cloned(),
            fleet: fleet(prometheus.as_deref(), admins.clone()),
            fleet_timeout: args.fleet_timeout,
        }),
    };
    let (config, _, warnings) = target.read_with_write_warnings()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let service = service(
        args.service.as_deref(),
        config.service.as_deref(),
        &target.describe(),
    )?;
    let custom = custom_checks(&args, prometheus.as_deref(), &service)?;
    let mut rollout = plan(args, &target, &config)?;
    rollout.custom = custom;
    let source = source(prometheus.as_deref(), &admins, &service)?;
    rollout.check()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // SIGINT, SIGTERM and SIGHUP alike (ctrlc's `termination` feature): --on-interrupt.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    // Held until the rollout ends: a second rollout of the same canary is refused, and `set`
    // or `rollback` say that this one runs.
    let _running = if rollout.dry_run {
        None
    } else {
        check_fleet(target.fleet(), &service)?;
        if let Some(custom) = &rollout.custom {
            custom.preflight(&rollout.canary, &config.default)?;
        }
        Some(place_of(&target).acquire(&rollout.canary, &target.describe())?)
    };
    Ok(exit_status(&rollout.run(&target, &source, &interrupted)?))
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
pub fn service(given: Option<&str>, configured: Option<&str>, target: &str) -> Result<String> {
    let configured = service_label(configured);
    match given {
        Some(given) if given != configured => bail!(
            "--service {given:?}: the configuration in {target} routes the service with {}, and \
             its proxies label their metrics so",
            describe_service(configured)
        ),
        _ => Ok(configured.to_string()),
    }
}

/// The operator's checks the flags give (`--checks`, `--check`), read from `--prometheus`.
pub fn custom_checks(
    args: &RolloutArgs,
    prometheus: Option<&str>,
    service: &str,
) -> Result<Option<Custom>> {
    let Some(checks) = Checks::load(args.checks.as_deref(), &args.check)? else {
        return Ok(None);
    };
    let Some(url) = prometheus else {
        bail!("--checks and --check are PromQL queries: give --prometheus, the server to ask");
    };
    Ok(Some(Custom {
        checks,
        reader: Reader {
            prometheus: Prometheus::new(url),
            service: service.to_string(),
            interval: args.interval,
        },
    }))
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

/// The rollout the flags describe, for `config`, the configuration in `target` (read first,
/// so that an unreadable one stops the rollout before anything else; it names the canary when
/// `--canary` does not).
pub fn plan(args: RolloutArgs, target: &Target, config: &CanaryConfig) -> Result<Rollout> {
    // A feature rollout names its feature as the canary (its "on" side).
    let canary = match (args.feature.clone(), args.canary) {
        (Some(feature), _) => feature,
        (None, Some(canary)) => canary,
        (None, None) => edit::the_canary(config, "rolled out", " with --canary")?,
    };
    let audit = match args.audit {
        Some(path) => path,
        None => match target {
            Target::EcdsFile(pusher) => default_audit(pusher.file.path()),
            Target::WasmPlugin { plugin, .. } => wasmplugin_audit(plugin),
        },
    };
    Ok(Rollout {
        steps: args.steps,
        interval: args.interval,
        settle: args.settle,
        rule: args.rule,
        feature: args.feature.is_some(),
        judge: JudgeSettings {
            min_requests: args.min_requests,
            min_intervals: args.min_intervals,
            alpha: args.alpha,
            error_ratio: args.error_ratio,
            error_margin: args.error_margin,
            max_error_rate: args.max_error_rate,
            latency_margin_ms: args.latency_margin_ms,
            detect: args.detect,
        },
        max_holds: args.max_holds,
        max_failed_reads: args.max_failed_reads,
        on_interrupt: args.on_interrupt,
        audit,
        dry_run: args.dry_run,
        json: args.json,
        hooks: Hooks {
            notify: args.notify,
            notify_format: args.notify_format,
            notify_timeout: args.notify_timeout,
            gate_step: args.gate_step,
            gate_promote: args.gate_promote,
            gate_timeout: args.gate_timeout,
            gate_max_refusals: args.gate_max_refusals,
            on_gate_failure: args.on_gate_failure,
        },
        pause_at: args.pause_at,
        custom: None,
        mirror: args.mirror,
        pause_file: place_of(target).pause_file(&canary),
        canary,
    })
}

/// The audit log next to the ECDS file: `.canaryctl/rollout-audit.jsonl` in its directory.
pub fn default_audit(ecds: &Path) -> PathBuf {
    let dir = ecds
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    dir.join(".canaryctl").join("rollout-audit.jsonl")
}

/// The audit log of a rollout through a WasmPlugin: `.canaryctl/rollout-audit.NAMESPACE.NAME.jsonl`
/// in the current directory.
pub fn wasmplugin_audit(plugin: &WasmPlugin) -> PathBuf {
    PathBuf::from(".canaryctl").join(format!(
        "rollout-audit.{}.{}.jsonl",
        plugin.namespace, plugin.name
    ))
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
    fn a_wasmplugin_rollout_pauses_in_the_current_directory() {
        let place = RolloutPlace::for_wasmplugin("shop", "canary-filter");
        assert_eq!(
            place.pause_file("canary").path(),
            Path::new(".canaryctl/rollout-pause.shop.canary-filter.canary.json")
        );
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
        let file = "e.yaml";
        assert_eq!(service(None, Some("a"), file).unwrap(), "a");
        assert_eq!(service(Some("a"), Some("a"), file).unwrap(), "a");
        assert_eq!(service(None, None, file).unwrap(), "");
        let err = service(Some("b"), Some("a"), file).unwrap_err().to_string();
        assert!(
            err.starts_with("--service \"b\": the configuration in e.yaml routes the service with canary_service=\"a\""),
            "{err}"
        );
        let err = service(Some("b"), None, file).unwrap_err().to_string();
        assert!(err.contains("no canary_service label"), "{err}");
    }
}
