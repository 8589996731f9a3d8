//! The manual gate: a rollout paused at a `--pause-at` weight waits for `canaryctl rollout
//! resume` or `canaryctl rollout abort`, possibly from another terminal. The state is a file of
//! the rollout's own (one per canary, named by [`crate::rollout::runs::RolloutPlace`]) in the
//! `.canaryctl/` directory next to the ECDS file (where the history and the lock are), so
//! that any canaryctl pointed at the same mesh config sees it, also after a restart: a resume
//! given while the paused rollout was not running is honoured by the next rollout of the same
//! canary that reaches the same weight.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What was asked of a paused rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Go on to the next step.
    Resume,
    /// Roll back.
    Abort,
}

/// A paused rollout, as its state file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseState {
    /// The version rolled out.
    pub canary: String,
    /// The weight it is paused at.
    pub weight: f64,
    /// The step (from 1).
    pub step: usize,
    /// The process of the paused rollout.
    pub pid: u32,
    /// When it paused, seconds since the epoch.
    pub since: f64,
    /// `None` while it waits.
    pub request: Option<Request>,
}

/// The state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseFile {
    path: PathBuf,
}

impl PauseFile {
    /// `.canaryctl/rollout-pause.json` in the ECDS file's directory.
    pub fn next_to(ecds: &Path) -> PauseFile {
        let dir = ecds
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        PauseFile {
            path: dir.join(".canaryctl").join("rollout-pause.json"),
        }
    }

    /// At `path`.
    pub fn at(path: PathBuf) -> PauseFile {
        PauseFile { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state, `None` without a file.
    pub fn read(&self) -> Result<Option<PauseState>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is not a pause state", self.path.display())
            })?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// Writes the state whole (a temporary file renamed over the old one).
    pub fn write(&self, state: &PauseState) -> Result<()> {
        let dir = self
            .path
            .parent()
            .context("the pause state file has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        writeln!(file, "{}", serde_json::to_string_pretty(state)?)?;
        file.persist(&self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(())
    }

    /// Pauses `canary` at `weight` for this process. A request already there for the same
    /// canary and weight (given while no rollout was running) is kept and returned.
    pub fn pause(&self, canary: &str, step: usize, weight: f64) -> Result<Option<Request>> {
        if let Some(state) = self.read()? {
            if state.canary == canary && state.weight == weight && state.request.is_some() {
                return Ok(state.request);
            }
        }
        self.write(&PauseState {
            canary: canary.to_string(),
            weight,
            step,
            pid: std::process::id(),
            since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            request: None,
        })?;
        Ok(None)
    }

    /// Asks the paused rollout to resume or abort; refused when nothing is paused.
    pub fn request(&self, request: Request) -> Result<PauseState> {
        let Some(mut state) = self.read()? else {
            bail!(
                "nothing is paused: no rollout waits in {}",
                self.path.display()
            );
        };
        if let Some(given) = state.request {
            bail!(
                "nothing is paused: the rollout of `{}` at {}% was already asked to {}",
                state.canary,
                state.weight,
                match given {
                    Request::Resume => "resume",
                    Request::Abort => "abort",
                }
            );
        }
        state.request = Some(request);
        self.write(&state)?;
        Ok(state)
    }

    /// Removes the file (the pause is over).
    pub fn clear(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Whether process `pid` runs (Linux: its `/proc` entry).
pub fn is_running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_needs_a_pause_and_a_pause_keeps_an_earlier_request() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map_or(Path::new("."), |d| d.path());
        let file = PauseFile::next_to(&dir.join("canary-filter.yaml"));
        assert_eq!(
            file.path(),
            dir.join(".canaryctl").join("rollout-pause.json")
        );
        let nothing = file.request(Request::Resume).err().map(|e| e.to_string());
        assert!(nothing.is_some_and(|e| e.starts_with("nothing is paused")));
        assert_eq!(file.pause("canary", 2, 25.0).ok(), Some(None));
        let state = file.request(Request::Resume).ok();
        assert_eq!(
            state.map(|s| (s.weight, s.request)),
            Some((25.0, Some(Request::Resume)))
        );
        let twice = file.request(Request::Abort).err().map(|e| e.to_string());
        assert!(twice.is_some_and(|e| e.contains("already asked to resume")));
        // A rollout of the same canary reaching the same weight finds the request.
        assert_eq!(
            file.pause("canary", 2, 25.0).ok(),
            Some(Some(Request::Resume))
        );
        assert_eq!(file.pause("canary", 3, 50.0).ok(), Some(None));
        assert!(file.clear().is_ok());
        assert!(file.read().is_ok_and(|s| s.is_none()));
    }
}
