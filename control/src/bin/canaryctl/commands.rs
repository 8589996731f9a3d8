//! One module per command, each with one entry point, `exec`, that hands the work to the
//! library; [`exec`] dispatches a parsed command line to it.

use anyhow::Result;

use clap::{Parser, Subcommand};

use self::explain::ExplainArgs;
use self::istio::IstioArgs;
use self::prelude::WriteArgs;
use self::promote::PromoteArgs;
use self::retire::RetireArgs;
use self::rollout::RolloutCommand;
use self::set::SetArgs;
use self::status::StatusArgs;
use self::undo::UndoArgs;
use self::validate::ValidateArgs;

pub mod explain;
pub mod istio;
pub mod prelude;
pub mod promote;
pub mod retire;
pub mod rollback;
pub mod rollout;
pub mod set;
pub mod status;
pub mod undo;
pub mod validate;
pub mod write;

/// Canary routing for Envoy and Istio: validate, explain, change and watch the canary filter's
/// configuration. Changes go to the mesh config itself: Envoy's ECDS file (written whole, by
/// atomic rename) or the Istio resources.
#[derive(Parser)]
#[command(name = "canaryctl", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

// One value per process, parsed once: its size does not matter, and boxing the rollout's
// arguments would only complicate every match on it.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Cmd {
    /// Check configurations with the filter's own validation (JSON config or ECDS file).
    Validate(ValidateArgs),
    /// Show which version a request gets, which rule decided, the key and its bucket.
    Explain(ExplainArgs),
    /// Change weights, the seed, pins or the default version, previewing who moves.
    Set(SetArgs),
    /// All non-default weights to 0, in one step (pins stay, for testers).
    Rollback(WriteArgs),
    /// A version takes all traffic (100 % of every split).
    Promote(PromoteArgs),
    /// Remove a version that no split or rule can reach any more.
    Retire(RetireArgs),
    /// Go back to the configuration before the last change.
    Undo(UndoArgs),
    /// The per-version table from Envoy's admin endpoints, or Prometheus for one service.
    Status(StatusArgs),
    /// Render the Istio resources (WasmPlugin, DestinationRule, VirtualService).
    Istio(IstioArgs),
    /// Step the canary through a plan, judging it against stable each interval; promote or
    /// roll back. Exit 0 promoted, 3 rolled back, 1 error or stopped. `rollout resume` and
    /// `rollout abort` answer a rollout paused by --pause-at.
    Rollout(RolloutCommand),
}

/// canaryctl's exit codes.
pub mod exit_code {
    /// The command did what it was asked (a rollout: promoted, or a dry run).
    pub const OK: u8 = 0;
    /// An error, or a rollout that stopped.
    pub const ERROR: u8 = 1;
    /// The command line was not understood (clap's own code).
    pub const USAGE: u8 = 2;
    /// The rollout rolled the canary back.
    pub const ROLLED_BACK: u8 = 3;
}

/// How a command that ran ended, when that is not simply success: the rollout's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done.
    Success,
    /// Stopped; the command reported why itself.
    Stopped,
    /// The canary was rolled back; the command reported why itself.
    RolledBack,
}

impl ExitStatus {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => exit_code::OK,
            ExitStatus::Stopped => exit_code::ERROR,
            ExitStatus::RolledBack => exit_code::ROLLED_BACK,
        }
    }
}

/// Runs the command.
pub fn exec(command: Cmd) -> Result<ExitStatus> {
    let done = match command {
        Cmd::Validate(args) => validate::exec(args),
        Cmd::Explain(args) => explain::exec(args),
        Cmd::Set(args) => set::exec(args),
        Cmd::Rollback(args) => rollback::exec(args),
        Cmd::Promote(args) => promote::exec(args),
        Cmd::Retire(args) => retire::exec(args),
        Cmd::Undo(args) => undo::exec(args),
        Cmd::Status(args) => status::exec(args),
        Cmd::Istio(args) => istio::exec(args),
        Cmd::Rollout(args) => return rollout::exec(args),
    };
    done.map(|()| ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Stopped.code(), 1);
        assert_eq!(ExitStatus::RolledBack.code(), 3);
        assert_eq!(exit_code::USAGE, 2);
    }
}

#[cfg(test)]
mod command_line {
    use super::prelude::*;
    use super::rollout::RolloutAction;
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("canaryctl").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn set_takes_repeated_weights_and_pairs() {
        let Ok(Cmd::Set(args)) = parse(&[
            "set",
            "--weight",
            "canary=25%",
            "--weight",
            " stable = 75",
            "--cluster",
            "canary=canary-v2",
            "--ecds",
            "x.yaml",
            "--dry-run",
        ]) else {
            panic!("set did not parse");
        };
        assert_eq!(
            args.weights,
            [("canary".to_string(), 25.0), ("stable".to_string(), 75.0)]
        );
        assert_eq!(
            args.cluster,
            [("canary".to_string(), "canary-v2".to_string())]
        );
        assert_eq!(args.write.target.ecds, PathBuf::from("x.yaml"));
        assert!(args.write.dry_run);
    }

    #[test]
    fn usage_errors_are_refused_by_clap() {
        let kind = |args: &[&str]| parse(args).err().map(|err| err.kind());
        assert_eq!(
            kind(&["set", "--weight", "canary"]),
            Some(clap::error::ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["set", "--rule", "beta"]),
            Some(clap::error::ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["explain", "--config", "a.json", "--ecds", "b.yaml"]),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            kind(&["validate"]),
            Some(clap::error::ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(kind(&["--help"]), Some(clap::error::ErrorKind::DisplayHelp));
    }

    #[test]
    fn rollout_defaults_are_the_documented_ones() {
        let Ok(Cmd::Rollout(RolloutCommand {
            action: None,
            run: args,
        })) = parse(&["rollout", "--admin", "127.0.0.1:9901"])
        else {
            panic!("rollout did not parse");
        };
        assert_eq!(args.steps, [1.0, 5.0, 10.0, 25.0, 50.0, 100.0]);
        assert_eq!(args.interval, Duration::from_secs(60));
        assert_eq!(args.settle, Duration::from_secs(2));
        assert_eq!((args.min_requests, args.min_intervals), (100, 3));
        assert_eq!((args.max_holds, args.max_failed_reads), (20, 3));
        assert_eq!(args.alpha, 0.01);
        assert_eq!(args.admin, ["127.0.0.1:9901"]);
        assert_eq!(args.on_interrupt, rollout::OnInterruptArg::Hold);
        assert!(!args.json && args.notify.is_empty() && args.pause_at.is_empty());
        assert_eq!(args.gate_timeout, Duration::from_secs(10));
        assert_eq!(args.gate_max_refusals, 3);
        assert_eq!(args.on_gate_failure, rollout::OnGateFailureArg::Rollback);
        assert_eq!(args.notify_format, rollout::NotifyFormatArg::Json);
    }

    #[test]
    fn rollout_resume_and_abort_are_subcommands_that_take_no_rollout_flags() {
        let Ok(Cmd::Rollout(RolloutCommand {
            action: Some(RolloutAction::Resume(resume)),
            ..
        })) = parse(&["rollout", "resume", "--ecds", "m/ecds.yaml"])
        else {
            panic!("rollout resume did not parse");
        };
        assert_eq!(resume.ecds, PathBuf::from("m/ecds.yaml"));
        assert!(matches!(
            parse(&["rollout", "abort"]),
            Ok(Cmd::Rollout(RolloutCommand {
                action: Some(RolloutAction::Abort(_)),
                ..
            }))
        ));
        assert!(parse(&["rollout", "--steps", "5,100", "resume"]).is_err());
        let Ok(Cmd::Rollout(RolloutCommand { run, .. })) = parse(&[
            "rollout",
            "--pause-at",
            "10,25",
            "--pause-at",
            "50",
            "--notify",
            "http://a",
            "--notify",
            "http://b",
        ]) else {
            panic!("rollout did not parse");
        };
        assert_eq!(run.pause_at, [10.0, 25.0, 50.0]);
        assert_eq!(run.notify, ["http://a", "http://b"]);
    }

    #[test]
    fn promote_and_retire_take_the_version_positionally() {
        let Ok(Cmd::Promote(promote)) = parse(&["promote"]) else {
            panic!("promote did not parse");
        };
        assert_eq!(promote.version, None);
        let Ok(Cmd::Retire(retire)) = parse(&["retire", "stable"]) else {
            panic!("retire did not parse");
        };
        assert_eq!(retire.version, "stable");
        let Ok(Cmd::Status(status)) = parse(&["status", "--watch"]) else {
            panic!("status did not parse");
        };
        assert_eq!(status.watch, Some(2.0));
    }

    #[test]
    fn pairs_and_weights() {
        assert_eq!(parse_pair("a = b"), Ok(("a".to_string(), "b".to_string())));
        assert!(parse_pair("=b").is_err());
        assert!(parse_pair("ab").is_err());
        assert_eq!(parse_weight("canary=5%"), Ok(("canary".to_string(), 5.0)));
        assert_eq!(
            parse_weight("canary=five"),
            Err("\"five\" is not a number".to_string())
        );
    }

    #[test]
    fn the_wasmplugin_is_a_target_of_its_own() {
        let Ok(Cmd::Set(args)) = parse(&[
            "set",
            "--seed",
            "1",
            "--wasmplugin",
            "shop/canary-filter",
            "--context",
            "prod",
            "--kubeconfig",
            "k.yaml",
        ]) else {
            panic!("set --wasmplugin did not parse");
        };
        assert_eq!(
            args.write.target.wasmplugin.as_deref(),
            Some("shop/canary-filter")
        );
        assert_eq!(args.write.target.kubectl.context.as_deref(), Some("prod"));
        assert_eq!(
            args.write.target.kubectl.kubeconfig,
            Some(PathBuf::from("k.yaml"))
        );
        let kind = |args: &[&str]| parse(args).err().map(|err| err.kind());
        assert_eq!(
            kind(&["undo", "--wasmplugin", "a/b", "--ecds", "x.yaml"]),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
        // validate needs files unless it reads a WasmPlugin.
        assert!(matches!(
            parse(&["validate", "--wasmplugin", "a/b"]),
            Ok(Cmd::Validate(_))
        ));
    }

    #[test]
    fn the_command_line_takes_features() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.command);
        let Ok(Cmd::Set(set)) = parse(&[
            "canaryctl",
            "set",
            "--feature",
            "a=10",
            "--feature",
            "b=2.5",
        ]) else {
            panic!("set --feature refused");
        };
        assert_eq!(
            set.features,
            vec![("a".to_string(), 10.0), ("b".to_string(), 2.5)]
        );
        let Ok(Cmd::Rollout(rollout)) =
            parse(&["canaryctl", "rollout", "--feature", "new-checkout"])
        else {
            panic!("rollout --feature refused");
        };
        assert_eq!(rollout.run.feature.as_deref(), Some("new-checkout"));
        // A feature rollout judges on against off: no version to name.
        assert!(parse(&["canaryctl", "rollout", "--feature", "a", "--canary", "b"]).is_err());
        assert!(parse(&["canaryctl", "rollout", "--feature", "a", "--rule", "r"]).is_err());
    }
}
