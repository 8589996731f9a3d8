//! Where the rollouts of one target keep their state, one rollout per canary at a time: each
//! running rollout holds a lock file of its own (`rollout.<canary>.lock`, std's advisory
//! `flock`, released by the kernel if the process dies) that names it, and pauses in a state
//! file of its own (`rollout-pause.<canary>.json`). A second rollout of the same canary is
//! refused, naming the first; rollouts of different canaries on the same target each keep their
//! own pause, and `rollout resume`/`abort` say which one they answer. `set`, `rollback` and the
//! other writes find the running rollouts here to say which one their change will stop.
//!
//! For the ECDS file the place is the `.canaryctl/` directory next to it (with the history and
//! the write lock); for a WasmPlugin, `.canaryctl/` of the current directory, the file names
//! carrying the plugin's namespace and name.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::mesh::target::Target;
use crate::rollout::pause::{PauseFile, PauseState};

/// The directory and file-name prefix of one target's rollouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutPlace {
    dir: PathBuf,
    /// `""` for an ECDS file (its directory is its own), `NAMESPACE.NAME.` for a WasmPlugin.
    prefix: String,
}

/// A rollout that holds its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningRollout {
    /// The version it rolls out.
    pub canary: String,
    /// Who runs it: the pid, the command line and since when.
    pub holder: String,
}

/// The lock of a running rollout, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RolloutLock {
    file: fs::File,
}

impl Drop for RolloutLock {
    fn drop(&mut self) {
        // The description names a holder only while the lock is held.
        let _ = self.file.set_len(0);
    }
}

impl RolloutPlace {
    /// Where the rollouts of `target` keep their locks and pause states.
    pub fn of(target: &Target) -> RolloutPlace {
        match target {
            Target::EcdsFile(pusher) => RolloutPlace::next_to(pusher.file.path()),
            Target::WasmPlugin { plugin, .. } => {
                RolloutPlace::for_wasmplugin(&plugin.namespace, &plugin.name)
            }
        }
    }

    /// The rollouts of the ECDS file at `ecds`: `.canaryctl/` in its directory.
    pub fn next_to(ecds: &Path) -> RolloutPlace {
        let dir = ecds
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        RolloutPlace {
            dir: dir.join(".canaryctl"),
            prefix: String::new(),
        }
    }

    /// The rollouts of the WasmPlugin `namespace/name`: `.canaryctl/` in the current directory.
    pub fn for_wasmplugin(namespace: &str, name: &str) -> RolloutPlace {
        RolloutPlace {
            dir: PathBuf::from(".canaryctl"),
            prefix: format!("{namespace}.{name}."),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pause state of the rollout of `canary`.
    pub fn pause_file(&self, canary: &str) -> PauseFile {
        PauseFile::at(
            self.dir
                .join(format!("rollout-pause.{}{canary}.json", self.prefix)),
        )
    }

    /// The lock file of the rollout of `canary`.
    pub fn lock_path(&self, canary: &str) -> PathBuf {
        self.dir
            .join(format!("rollout.{}{canary}.lock", self.prefix))
    }

    /// Takes the lock of the rollout of `canary` for this process; refused, naming the holder,
    /// while another rollout of the same canary runs on the target.
    pub fn acquire(&self, canary: &str, target: &str) -> Result<RolloutLock> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.lock_path(canary);
        let file = open_lock(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "another process (it left no description)",
                    holder => holder,
                };
                bail!(
                    "a rollout of `{canary}` is already running on {target}: {holder}; one \
                     rollout per canary at a time (its lock: {})",
                    path.display()
                );
            }
            Err(fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all_at(crate::mesh::ecds::holder_description().as_bytes(), 0))
            .with_context(|| format!("cannot write to {}", path.display()))?;
        Ok(RolloutLock { file })
    }

    /// The rollouts running on the target now (those that hold their lock), by canary.
    pub fn running(&self) -> Vec<RunningRollout> {
        let mut running = Vec::new();
        for (canary, path) in self.named("rollout.", ".lock") {
            let Ok(file) = open_lock(&path) else {
                continue;
            };
            if let Err(fs::TryLockError::WouldBlock) = file.try_lock() {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                running.push(RunningRollout {
                    canary,
                    holder: holder.trim().to_string(),
                });
            }
            // Taken here only to look: let go when `file` is dropped.
        }
        running
    }

    /// The pause states on the target (waiting or already answered), by canary.
    pub fn paused(&self) -> Result<Vec<(PauseFile, PauseState)>> {
        let mut paused = Vec::new();
        for (canary, _) in self.named("rollout-pause.", ".json") {
            let file = self.pause_file(&canary);
            if let Some(state) = file.read()? {
                paused.push((file, state));
            }
        }
        Ok(paused)
    }

    /// The canaries named by files `<start><prefix><canary><end>` in the directory (a version
    /// name has no `.`), sorted, with the files' paths.
    fn named(&self, start: &str, end: &str) -> Vec<(String, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let head = format!("{start}{}", self.prefix);
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let canary = name.strip_prefix(&head)?.strip_suffix(end)?;
                (!canary.is_empty() && !canary.contains('.'))
                    .then(|| (canary.to_string(), entry.path()))
            })
            .collect();
        found.sort();
        found
    }
}

fn open_lock(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_rollout_of_the_same_canary_is_refused_and_another_canary_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let place = RolloutPlace::next_to(&dir.path().join("canary-filter.yaml"));
        let first = place.acquire("canary", "e.yaml").unwrap();
        let err = place.acquire("canary", "e.yaml").unwrap_err().to_string();
        assert!(
            err.starts_with("a rollout of `canary` is already running on e.yaml: pid "),
            "{err}"
        );
        let other = place.acquire("canary3", "e.yaml").unwrap();
        let running: Vec<String> = place.running().into_iter().map(|r| r.canary).collect();
        assert_eq!(running, ["canary", "canary3"]);
        drop(first);
        drop(other);
        assert!(place.running().is_empty());
        assert!(place.acquire("canary", "e.yaml").is_ok());
    }

    #[test]
    fn each_canary_pauses_in_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let place = RolloutPlace::next_to(&dir.path().join("canary-filter.yaml"));
        assert_eq!(
            place.pause_file("canary").path(),
            dir.path().join(".canaryctl/rollout-pause.canary.json")
        );
        place.pause_file("canary").pause("canary", 1, 10.0).unwrap();
        place
            .pause_file("canary3")
            .pause("canary3", 1, 10.0)
            .unwrap();
        let paused: Vec<String> = place
            .paused()
            .unwrap()
            .into_iter()
            .map(|(_, s)| s.canary)
            .collect();
        assert_eq!(paused, ["canary", "canary3"]);
        let istio = RolloutPlace::for_wasmplugin("shop", "canary-filter");
        assert_eq!(
            istio.pause_file("canary").path(),
            Path::new(".canaryctl/rollout-pause.shop.canary-filter.canary.json")
        );
    }
}
