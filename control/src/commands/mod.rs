//! One module per command, each with one entry point, `exec`, that hands the work to the
//! library; [`exec`] dispatches a parsed command line to it.

use anyhow::Result;

use crate::cli::Cmd;

pub mod explain;
pub mod istio;
pub mod promote;
pub mod retire;
pub mod rollback;
pub mod rollout;
pub mod set;
pub mod status;
pub mod undo;
pub mod validate;
pub mod write;

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
