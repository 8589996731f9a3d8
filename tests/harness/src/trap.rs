//! Modules the end-to-end tests build themselves, so that no earlier make step can be
//! forgotten: the failing filter of the fail-safe tests (`tests/trap`, a proxy-wasm module that
//! traps on every request) and the host-call probe (`tests/probe`, which the property test
//! uses to ask Envoy for the properties the benchmark prices).

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
    BUILT
        .get_or_init(|| build("canary-trap", "tests/trap"))
        .clone()
        .map_err(Into::into)
}

/// Builds the host-call probe as [`trap_wasm`] builds the trap, and returns its path.
pub fn probe_wasm() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build("canary-probe", "tests/probe"))
        .clone()
        .map_err(Into::into)
}

/// Builds `package` (the crate in `dir`) into `target/trap` and returns its module's path.
fn build(package: &str, dir: &str) -> std::result::Result<PathBuf, String> {
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
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&root)
        .output()
        .map_err(|err| format!("could not run cargo to build {dir}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "building {dir} failed (`rustup target add wasm32-wasip1` if the target is \
             missing; `make toolchain` does it):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let wasm = target_dir
        .join("wasm32-wasip1/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!(
            "cargo built {dir} but {} is missing",
            wasm.display()
        ))
    }
}
