//! The Envoy target: the filter's configuration lives in the ECDS file Envoy watches (a
//! `DiscoveryResponse` whose first resource is the wasm filter). Changes are written whole, by
//! atomic rename in the same directory, so Envoy sees either the old file or the new one.
//!
//! Two `canaryctl` runs at once serialize on a lock file; an edit by anything else between
//! our read and our write is detected (the file is compared again under the lock, just before
//! the rename) and refused. The previous versions are kept for `undo` in `.canaryctl/` next to
//! the file (a subdirectory: Envoy watches only moves into the directory itself).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::{CanaryConfig, RoutingPlan};

/// How many previous versions `undo` can go back.
pub const HISTORY_LEN: usize = 20;

/// The ECDS file of the filter.
#[derive(Debug, Clone)]
pub struct EcdsFile {
    path: PathBuf,
}

/// The file as read: its bytes, the parsed document and the filter configuration in it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The whole DiscoveryResponse.
    pub doc: serde_json::Value,
    /// The filter configuration (the JSON in `configuration.value`).
    pub config: CanaryConfig,
}

impl Snapshot {
    /// The ECDS resource's name (the filter name Envoy's stats use).
    pub fn resource_name(&self) -> Option<&str> {
        self.doc["resources"][0]["name"].as_str()
    }
}

impl EcdsFile {
    /// The ECDS file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> EcdsFile {
        EcdsFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> Result<&Path> {
        match self.path.parent() {
            Some(dir) if dir.as_os_str().is_empty() => Ok(Path::new(".")),
            Some(dir) => Ok(dir),
            None => bail!("{} has no directory", self.path.display()),
        }
    }

    fn state_dir(&self) -> Result<PathBuf> {
        Ok(self.dir()?.join(".canaryctl"))
    }

    fn history_dir(&self) -> Result<PathBuf> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| anyhow!("{} has no file name", self.path.display()))?;
        Ok(self
            .state_dir()?
            .join(format!("{}.history", name.to_string_lossy())))
    }

    /// Reads and parses the file; the filter configuration must pass the filter's validation.
    pub fn read(&self) -> Result<Snapshot> {
        let bytes = fs::read(&self.path)
            .with_context(|| format!("cannot read the ECDS file {}", self.path.display()))?;
        parse(&bytes).with_context(|| format!("{}", self.path.display()))
    }

    /// Runs `edit` on the current configuration and writes the result, under the lock. The new
    /// configuration must pass the filter's validation; nothing is written otherwise, nor when
    /// `dry_run`. Returns the old and new configurations.
    pub fn update(
        &self,
        dry_run: bool,
        edit: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<Update> {
        let _lock = self.lock()?;
        let before = self.read()?;
        let config = edit(&before.config)?;
        RoutingPlan::try_from(&config)
            .map_err(|err| anyhow!("the new configuration is invalid: {err}"))?;
        let text = render(&before.doc, &config)?;
        let changed = text.as_bytes() != before.bytes.as_slice();
        if !dry_run && changed {
            self.save_history(&before.bytes)?;
            self.replace(&before.bytes, text.as_bytes())?;
        }
        Ok(Update {
            resource_name: before.resource_name().map(str::to_string),
            before: before.config,
            after: config,
            written: !dry_run && changed,
            before_bytes: before.bytes,
            after_bytes: text.into_bytes(),
        })
    }

    /// Puts back the version before the last change, and forgets it from the history.
    pub fn undo(&self) -> Result<Update> {
        let _lock = self.lock()?;
        let current = self.read()?;
        let history = self.history()?;
        let Some(last) = history.last() else {
            bail!(
                "no earlier version of {} to go back to",
                self.path.display()
            );
        };
        let bytes = fs::read(last)?;
        let previous =
            parse(&bytes).with_context(|| format!("history entry {}", last.display()))?;
        self.replace(&current.bytes, &bytes)?;
        fs::remove_file(last)?;
        Ok(Update {
            resource_name: current.resource_name().map(str::to_string),
            before: current.config,
            after: previous.config,
            written: true,
            before_bytes: current.bytes,
            after_bytes: bytes,
        })
    }

    /// Writes `bytes` back if the file still holds `expected` (used to restore a version
    /// Envoy rejected).
    pub fn restore(&self, expected: &[u8], bytes: &[u8]) -> Result<()> {
        let _lock = self.lock()?;
        self.replace(expected, bytes)
    }

    /// The history, oldest first.
    pub fn history(&self) -> Result<Vec<PathBuf>> {
        let dir = self.history_dir()?;
        let mut entries: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        entries.sort();
        Ok(entries)
    }

    /// Locks `.canaryctl/lock` (std's advisory `flock`): the lock lasts as long as the
    /// returned file is open, and the kernel drops it if canaryctl dies.
    fn lock(&self) -> Result<fs::File> {
        let dir = self.state_dir()?;
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        // Blocks until another canaryctl is done.
        file.lock()?;
        Ok(file)
    }

    fn save_history(&self, bytes: &[u8]) -> Result<()> {
        let dir = self.history_dir()?;
        fs::create_dir_all(&dir)?;
        let next = self
            .history()?
            .last()
            .and_then(|path| path.file_stem()?.to_str()?.parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        fs::write(dir.join(format!("{next:010}.yaml")), bytes)?;
        let history = self.history()?;
        for old in history
            .iter()
            .take(history.len().saturating_sub(HISTORY_LEN))
        {
            let _ = fs::remove_file(old);
        }
        Ok(())
    }

    /// Replaces the file with `bytes` by rename, if it still holds `expected`.
    fn replace(&self, expected: &[u8], bytes: &[u8]) -> Result<()> {
        let dir = self.dir()?;
        let mut staged = tempfile::Builder::new()
            .prefix(".canaryctl-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        staged.write_all(bytes)?;
        staged.as_file().sync_all()?;
        let now = fs::read(&self.path)
            .with_context(|| format!("cannot read the ECDS file {}", self.path.display()))?;
        if now != expected {
            bail!(
                "{} was changed by someone else since it was read; nothing was written, try again",
                self.path.display()
            );
        }
        staged
            .persist(&self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))?;
        Ok(())
    }
}

/// What an update did.
#[derive(Debug, Clone)]
pub struct Update {
    /// The configuration before.
    pub before: CanaryConfig,
    /// The configuration after.
    pub after: CanaryConfig,
    /// Whether the file was written.
    pub written: bool,
    /// The ECDS resource's name.
    pub resource_name: Option<String>,
    /// The file's bytes before.
    pub before_bytes: Vec<u8>,
    /// The file's bytes after (as written, or as they would have been).
    pub after_bytes: Vec<u8>,
}

/// Parses ECDS file bytes.
pub fn parse(bytes: &[u8]) -> Result<Snapshot> {
    let doc: serde_json::Value =
        serde_yaml_ng::from_slice(bytes).context("not a YAML (or JSON) ECDS file")?;
    let value = doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .ok_or_else(|| {
            anyhow!("no resources[0].typed_config.config.configuration.value (the filter's JSON)")
        })?;
    let config = CanaryConfig::from_json(value.as_bytes())
        .map_err(|err| anyhow!("the filter configuration is invalid: {err}"))?;
    RoutingPlan::try_from(&config)
        .map_err(|err| anyhow!("the filter configuration is invalid: {err}"))?;
    Ok(Snapshot {
        bytes: bytes.to_vec(),
        doc,
        config,
    })
}

/// The ECDS document `doc` with `config` as the filter's configuration.
pub fn render(doc: &serde_json::Value, config: &CanaryConfig) -> Result<String> {
    let mut doc = doc.clone();
    let json = serde_json::to_string_pretty(config)?;
    doc["resources"][0]["typed_config"]["config"]["configuration"]["value"] =
        serde_json::Value::String(json + "\n");
    Ok(format!(
        "# The canary filter and its configuration, as one ECDS resource (written by canaryctl;\n\
         # `value` is the filter's JSON configuration, see the README).\n{}",
        serde_yaml_ng::to_string(&doc)?
    ))
}
