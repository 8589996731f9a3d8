//! The failing filter of the fail-safe tests (`tests/trap`), built by the tests themselves so
//! that no earlier make step can be forgotten: a proxy-wasm module that traps on every request.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::envoy::repo_root;
use crate::Result;

/// Builds the trapping module (once per test process; cargo skips the work when it is up to
/// date) and returns its path. It builds into its own target directory: the `cargo test` that
/// runs this may still hold the lock on the workspace's.
pub fn trap_wasm() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone().map_err(Into::into)
}

fn build() -> std::result::Result<PathBuf, String> {
    let root = repo_root();
    let target_dir = root.join("target").join("trap");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip1",
            "-p",
            "canary-trap",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&root)
        .output()
        .map_err(|err| format!("could not run cargo to build tests/trap: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "building tests/trap failed (`rustup target add wasm32-wasip1` if the target is \
             missing; `make toolchain` does it):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let wasm = target_dir.join("wasm32-wasip1/release/canary_trap.wasm");
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!(
            "cargo built tests/trap but {} is missing",
            wasm.display()
        ))
    }
}
