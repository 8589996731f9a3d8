//! `canaryctl`: validate, explain, change and watch the canary filter's configuration.
//! Exit codes ([`commands::exit_code`]): 0 ok, 1 error, 2 usage, 3 rolled back.

use std::process::ExitCode;

use clap::Parser;

use commands::{exit_code, Cli};

mod commands;

#[cfg(test)]
mod cli_reference;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and --version go to stdout and are no error.
            let code = if err.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match commands::exec(cli.command) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("canaryctl: {err:#}");
            ExitCode::from(exit_code::ERROR)
        }
    }
}
