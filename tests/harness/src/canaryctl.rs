//! Running canaryctl in the control crate's integration tests. Only they know the binary's path
//! (`env!("CARGO_BIN_EXE_canaryctl")`): they pass it in.

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::kube::KubeApi;

/// canaryctl at `bin` as a user runs it on a WasmPlugin: the stand-in API server `api` as
/// kubectl's cluster (KUBECONFIG), and none of canaryctl's own environment variables. It runs
/// in the stand-in's directory, as an operator of that cluster in a directory of their own:
/// the rollout state a WasmPlugin rollout keeps in `.canaryctl/` of the current directory
/// (its lock, its pause file) is then per cluster, as the tests run several at once.
pub fn on_kube(bin: &str, api: &KubeApi, args: &[impl AsRef<OsStr>]) -> Command {
    let mut command = Command::new(bin);
    let kubeconfig = api.kubeconfig();
    if let Some(dir) = kubeconfig.parent() {
        command.current_dir(dir);
    }
    command
        .args(args)
        .env("KUBECONFIG", api.kubeconfig())
        .env("KUBECACHEDIR", api.cache_dir())
        .env_remove("CANARY_ECDS")
        .env_remove("CANARY_ADMIN")
        .env_remove("CANARY_WASMPLUGIN");
    command
}

/// Runs `command` to its end, its standard output and error printed for the test's log.
///
/// # Panics
///
/// If the command cannot be started.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The standard output of a canaryctl run that succeeded.
///
/// # Panics
///
/// If the run failed: the test fails with its status and both outputs.
pub fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "canaryctl failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
