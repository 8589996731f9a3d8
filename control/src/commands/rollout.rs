//! `canaryctl rollout`: step the canary through a plan, judging it against stable each
//! interval; promote or roll back. `rollout resume` and `rollout abort` answer a rollout
//! paused at a `--pause-at` weight.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::admin::Admin;
use crate::cli::{PauseArgs, RolloutAction, RolloutArgs, RolloutCommand};
use crate::commands::ExitStatus;
use crate::edit;
use crate::judge::JudgeSettings;
use crate::pause::{self, PauseFile, Request};
use crate::push::{Pusher, DEFAULT_FLEET_TIMEOUT};
use crate::rollout::{End, Hooks, Rollout};
use crate::source::Source;
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

/// `rollout resume` / `rollout abort`: writes the request where the paused rollout looks.
fn answer(args: &PauseArgs, request: Request) -> Result<ExitStatus> {
    let file = match &args.wasmplugin {
        Some(reference) => wasmplugin_pause_file(&parse_reference(reference)?),
        None => PauseFile::next_to(&args.ecds),
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

fn run(args: RolloutArgs) -> Result<ExitStatus> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let target = match &args.target.wasmplugin {
        // The admin endpoints are the metrics source only: istiod delivers each step.
        Some(reference) => {
            Target::WasmPlugin(WasmPlugin::new(reference, args.target.kubectl.kubectl())?)
        }
        None => Target::EcdsFile(Pusher {
            file: args.target.file(),
            admin: admins.first().cloned(),
            fleet: admins.clone(),
            fleet_timeout: DEFAULT_FLEET_TIMEOUT,
        }),
    };
    let prometheus = args.prometheus.clone();
    let rollout = plan(args, &target)?;
    let source = source(prometheus.as_deref(), &admins)?;
    rollout.check()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    Ok(exit_status(&rollout.run(&target, &source, &interrupted)?))
}

/// The exit status of a rollout that ended so.
pub fn exit_status(end: &End) -> ExitStatus {
    match end {
        End::Promoted(_) | End::DryRun => ExitStatus::Success,
        End::RolledBack(_) => ExitStatus::RolledBack,
        End::Stopped(..) => ExitStatus::Stopped,
    }
}

/// Where the rollout reads its metrics: Prometheus if given, else the admin endpoints.
pub fn source(prometheus: Option<&str>, admins: &[Admin]) -> Result<Source> {
    Ok(match prometheus {
        Some(url) => Source::prometheus(url),
        None if admins.is_empty() => {
            bail!("give --admin (or CANARY_ADMIN) or --prometheus: the rollout needs metrics")
        }
        None => Source::Admin(admins.to_vec()),
    })
}

/// The rollout the flags describe, for the configuration in `target` (read, so that an
/// unreadable one stops the rollout before anything else; it names the canary when `--canary`
/// does not).
pub fn plan(args: RolloutArgs, target: &Target) -> Result<Rollout> {
    let (config, _) = target.read()?;
    let canary = match args.canary {
        Some(canary) => canary,
        None => edit::the_canary(&config, "rolled out", " with --canary")?,
    };
    let audit = match args.audit {
        Some(path) => path,
        None => match target {
            Target::EcdsFile(pusher) => default_audit(pusher.file.path()),
            Target::WasmPlugin(plugin) => wasmplugin_audit(plugin),
        },
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
        pause_file: match target {
            Target::EcdsFile(pusher) => PauseFile::next_to(pusher.file.path()),
            Target::WasmPlugin(plugin) => {
                wasmplugin_pause_file(&(plugin.namespace.clone(), plugin.name.clone()))
            }
        },
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

/// The pause state of a rollout through a WasmPlugin:
/// `.canaryctl/rollout-pause.NAMESPACE.NAME.json` in the current directory, beside its audit log.
pub fn wasmplugin_pause_file((namespace, name): &(String, String)) -> PauseFile {
    PauseFile::at(
        PathBuf::from(".canaryctl").join(format!("rollout-pause.{namespace}.{name}.json")),
    )
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
        let file = wasmplugin_pause_file(&parse_reference("shop/canary-filter").unwrap());
        assert_eq!(
            file.path(),
            Path::new(".canaryctl/rollout-pause.shop.canary-filter.json")
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
        let err = source(None, &[]).err().unwrap();
        assert!(err.to_string().starts_with("give --admin"));
        assert!(matches!(
            source(None, &[Admin::new("127.0.0.1:9901")]),
            Ok(Source::Admin(_))
        ));
    }
}
