//! The CLI reference (`docs/reference/cli.md`) is generated from clap's own help, so it says
//! what the binary says. `make cli-reference` writes it; the test below fails when the file
//! and the binary's help differ, so the reference cannot drift.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Command, CommandFactory};

use crate::commands::Cli;

/// The reference's path, from the control crate's directory.
fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/reference/cli.md")
}

/// Set to write the reference instead of checking it (`make cli-reference`).
const WRITE_ENV: &str = "CANARYCTL_WRITE_REFERENCE";

/// The whole reference: every command and subcommand's long help, in the order clap lists them.
fn reference() -> String {
    let mut out = String::from(
        "# canaryctl command-line reference\n\n\
         Generated from the binary's own help by `make cli-reference`; a test fails when this \
         file and the binary differ. Environment variables named `[env: …]` are read when the \
         flag is not given.\n",
    );
    // Values of environment variables set on the generating machine are not part of the
    // reference.
    let mut root = Cli::command().mut_args(|arg| arg.hide_env_values(true));
    root.build();
    section(&mut out, &mut root, &[]);
    out
}

fn section(out: &mut String, command: &mut Command, parents: &[String]) {
    let mut path: Vec<String> = parents.to_vec();
    path.push(command.get_name().to_owned());
    let name = path.join(" ");
    let depth = path.len().min(3);
    let _ = write!(
        out,
        "\n{} `{}`\n\n```text\n{}```\n",
        "#".repeat(depth + 1),
        name,
        command.render_long_help().to_string().trim_end().to_owned() + "\n"
    );
    let names: Vec<String> = command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for sub_name in names {
        let Some(sub) = command.find_subcommand_mut(&sub_name) else {
            continue;
        };
        let mut sub = sub.clone().mut_args(|arg| arg.hide_env_values(true));
        section(out, &mut sub, &path);
    }
}

#[test]
fn the_cli_reference_is_the_binarys_help() {
    let generated = reference();
    let path = reference_path();
    if std::env::var_os(WRITE_ENV).is_some() {
        std::fs::write(&path, &generated).expect("write docs/reference/cli.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/reference/cli.md differs from canaryctl's help: run `make cli-reference` and commit it"
    );
}
