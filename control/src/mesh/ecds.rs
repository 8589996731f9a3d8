//! The Envoy target: the filter's configuration lives in the ECDS file Envoy watches (a
//! `DiscoveryResponse` whose first resource is the wasm filter). Changes are written whole, by
//! atomic rename in the same directory, so Envoy sees either the old file or the new one.
//!
//! What Envoy needs of the file is kept: its format (Envoy picks the parser by the extension:
//! `.json` is parsed as JSON, `.yaml`/`.yml` as YAML), its owner and mode (Envoy may run as
//! another user), and a symlink stays a symlink (the write goes to its final target, then the
//! link is re-pointed by rename, as Kubernetes does for ConfigMap mounts, because Envoy's
//! `watched_directory` only notices moves into the link's directory).
//!
//! A change is computed and validated first without the lock, from the file as it is, so that
//! refused input leaves nothing on disk. Only a valid change to write takes the lock: two
//! `canaryctl` runs at once serialize on it ([`EcdsFile::lock`] returns the guard, [`Locked`],
//! whose methods are what happens under the lock); the change is computed again under the lock,
//! and an edit by anything else between that read and the rename is detected and refused. The
//! previous versions are kept for `undo` in `.canaryctl/` next to the file (a subdirectory:
//! Envoy watches only moves into the directory itself).
//!
//! The history matches the file: a write first records what it is about to do (the
//! [`PendingWrite`], with the file before and after and who writes), and only a change the file
//! keeps becomes a history entry, when the lock is let go or, if canaryctl was killed, when the
//! next writer takes it. A change Envoy refused (put back) or one that never reached the file
//! leaves no entry, so `undo` always means "the configuration before the last change that
//! stuck". The next writer also removes the temporary files a killed one left in the watched
//! directory. The last change that stuck is kept with who made it (`<name>.last-write.json`),
//! for a rollout that finds its weight changed under it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{fchown, FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::{CanaryConfig, RoutingPlan};

/// The ECDS file of the shipped Envoy setup, relative to the repository root.
pub const DEFAULT_ECDS: &str = "envoy/ecds/canary-filter.yaml";

/// The environment variable that names the ECDS file (read as `--ecds`'s default, and by
/// [`ecds_path`] for the commands whose `--ecds` conflicts with `--config`).
pub const ECDS_ENV: &str = "CANARY_ECDS";

/// The ECDS file to read when neither `--config` nor `--ecds` is given: `$CANARY_ECDS`, else
/// [`DEFAULT_ECDS`].
pub fn ecds_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::var_os(ECDS_ENV).map_or_else(|| PathBuf::from(DEFAULT_ECDS), PathBuf::from)
    })
}

/// How many previous versions `undo` can go back.
pub const HISTORY_LEN: usize = 20;

/// How long a write waits for another writer's lock before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a waiting writer tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// The ECDS file of the filter, and how canaryctl may write it.
#[derive(Debug, Clone)]
pub struct EcdsFile {
    path: PathBuf,
    lock_timeout: Duration,
    force: bool,
}

/// The document format of an ECDS file, as Envoy picks it: by the file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.yaml` or `.yml`.
    Yaml,
}

impl Format {
    /// The format Envoy parses `path` in: `.json` JSON, `.yaml`/`.yml` YAML (the case of the
    /// extension does not matter to Envoy either). Any other name is refused.
    pub fn of(path: &Path) -> Result<Format> {
        let extension = path
            .extension()
            .and_then(|ext| ext.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("json") => Ok(Format::Json),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            _ => bail!(
                "{}: Envoy picks the parser of an ECDS file by its extension, and canaryctl \
                 handles the ones Envoy parses as JSON or YAML: .json (JSON), .yaml or .yml (YAML)",
                path.display()
            ),
        }
    }
}

/// The file as read: its bytes, the parsed document and the filter configuration in it.
#[derive(Debug, Clone)]
pub struct EcdsContents {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The whole DiscoveryResponse.
    pub doc: serde_json::Value,
    /// The filter configuration (the JSON in `configuration.value`).
    pub config: CanaryConfig,
    /// `config` compiled (the filter's validation passed).
    pub plan: RoutingPlan,
}

impl EcdsContents {
    /// The ECDS resource's name (the filter name Envoy's stats use).
    pub fn resource_name(&self) -> Option<&str> {
        self.doc["resources"][0]["name"].as_str()
    }
}

/// The lock of an [`EcdsFile`], held: what its methods do happens under the lock. The lock is
/// released when this is dropped (and by the kernel if canaryctl dies).
#[derive(Debug)]
pub struct Locked<'a> {
    file: &'a EcdsFile,
    lock: fs::File,
}

impl EcdsFile {
    /// The ECDS file at `path`, written only if it has a write bit, after waiting up to
    /// [`DEFAULT_LOCK_TIMEOUT`] for another writer.
    pub fn new(path: impl Into<PathBuf>) -> EcdsFile {
        EcdsFile {
            path: path.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            force: false,
        }
    }

    /// Waits up to `timeout` for another writer's lock.
    pub fn with_lock_timeout(self, timeout: Duration) -> EcdsFile {
        EcdsFile {
            lock_timeout: timeout,
            ..self
        }
    }

    /// With `force`, writes a file that has no write bit for anyone too (its mode is kept).
    pub fn with_force(self, force: bool) -> EcdsFile {
        EcdsFile { force, ..self }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a write waits for another writer's lock.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// The format Envoy reads it in (by the extension of this path, the one Envoy is given).
    pub fn format(&self) -> Result<Format> {
        Format::of(&self.path)
    }

    /// The directory of the path (of the link, for a symlink): the one Envoy watches.
    fn dir(&self) -> Result<&Path> {
        parent_of(&self.path)
    }

    fn state_dir(&self) -> Result<PathBuf> {
        Ok(self.dir()?.join(".canaryctl"))
    }

    /// The lock file writers serialize on.
    pub fn lock_path(&self) -> Result<PathBuf> {
        Ok(self.state_dir()?.join("lock"))
    }

    fn history_dir(&self) -> Result<PathBuf> {
        Ok(self
            .state_dir()?
            .join(format!("{}.history", self.file_name()?)))
    }

    fn file_name(&self) -> Result<String> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| anyhow!("{} has no file name", self.path.display()))?;
        Ok(name.to_string_lossy().into_owned())
    }

    /// The file's metadata (through symlinks); anything but a regular file is refused before
    /// it is opened: opening a FIFO would wait for a writer forever.
    fn regular_file_metadata(&self) -> Result<fs::Metadata> {
        let metadata = fs::metadata(&self.path).with_context(|| {
            format!(
                "cannot read the ECDS file {} (name the file Envoy watches with --ecds or \
                 CANARY_ECDS; the default is relative to the repository root)",
                self.path.display()
            )
        })?;
        let file_type = metadata.file_type();
        let what = if file_type.is_file() {
            return Ok(metadata);
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a FIFO (named pipe)"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_char_device() {
            "a character device"
        } else if file_type.is_block_device() {
            "a block device"
        } else {
            "not a regular file"
        };
        bail!(
            "the ECDS file {} is {what}: Envoy reads its ECDS configuration from a regular file",
            self.path.display()
        )
    }

    /// Reads and parses the file in the format its extension names; the filter configuration
    /// must pass the filter's validation.
    pub fn read(&self) -> Result<EcdsContents> {
        self.regular_file_metadata()?;
        let format = self.format()?;
        let bytes = fs::read(&self.path)
            .with_context(|| format!("cannot read the ECDS file {}", self.path.display()))?;
        parse_as(&bytes, format).with_context(|| format!("{}", self.path.display()))
    }

    /// Refuses to write a file that has no write bit for anyone (someone made it read-only on
    /// purpose; as root the kernel would not stop the write), unless `force`.
    pub fn check_writable(&self) -> Result<()> {
        let mode = self.regular_file_metadata()?.mode() & 0o7777;
        if mode & 0o222 == 0 && !self.force {
            bail!(
                "{} is read-only (mode {mode:04o}): canaryctl does not replace it; pass --force \
                 to write it anyway (the mode is kept)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// The change `edit` makes, computed from the file as it is, without the lock: nothing is
    /// created or written. The new configuration must pass the filter's validation.
    pub fn preview(
        &self,
        edit: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<Update> {
        plan(&self.read()?, self.format()?, edit)
    }

    /// What `undo` would put back, without the lock: nothing is created or written. Refused when
    /// there is no earlier version.
    pub fn preview_undo(&self) -> Result<Update> {
        let current = self.read()?;
        let (_, previous) = self.last_version()?;
        Ok(Update::back_to(current, previous, false))
    }

    /// Runs `edit` on the current configuration and writes the result. The change is computed
    /// and validated first without the lock (refused input creates nothing, nor does a dry run
    /// or no change), then again under the lock, where it is written. Returns the old and new
    /// configurations.
    pub fn update(
        &self,
        dry_run: bool,
        edit: impl Fn(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<Update> {
        let preview = self.preview(&edit)?;
        if dry_run || !preview.changed() {
            return Ok(preview);
        }
        self.check_writable()?;
        self.lock()?.update(&edit)
    }

    /// Puts back the version before the last change, and forgets it from the history.
    pub fn undo(&self) -> Result<Update> {
        self.preview_undo()?;
        self.check_writable()?;
        self.lock()?.undo()
    }

    /// The history, oldest first.
    pub fn history(&self) -> Result<Vec<PathBuf>> {
        let dir = self.history_dir()?;
        // Entries carry the file's own extension, so they parse as the file does.
        let extension = self.path.extension().map(|ext| ext.to_os_string());
        let mut entries: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().map(|ext| ext.to_os_string()) == extension)
                .collect(),
            Err(_) => Vec::new(),
        };
        entries.sort();
        Ok(entries)
    }

    /// The last history entry and its contents.
    fn last_version(&self) -> Result<(PathBuf, EcdsContents)> {
        let Some(last) = self.history()?.pop() else {
            bail!(
                "no earlier version of {} to go back to",
                self.path.display()
            );
        };
        let bytes = fs::read(&last).with_context(|| format!("cannot read {}", last.display()))?;
        let previous = parse_as(&bytes, self.format()?)
            .with_context(|| format!("history entry {}", last.display()))?;
        Ok((last, previous))
    }

    /// Takes the lock of the file (std's advisory `flock` on `.canaryctl/lock`), trying again
    /// until the lock timeout; then writes who holds it into the lock file, so that a writer
    /// that gives up can say whom it waited for.
    pub fn lock(&self) -> Result<Locked<'_>> {
        let dir = self.state_dir()?;
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = self.lock_path()?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
        let started = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", lock_path.display()))
                }
            }
            let waited = started.elapsed();
            if waited >= self.lock_timeout {
                let holder = fs::read_to_string(&lock_path).with_context(|| {
                    format!("cannot read the lock file {}", lock_path.display())
                })?;
                let holder = match holder.trim() {
                    "" => "another process (it left no description)",
                    holder => holder,
                };
                bail!(
                    "{} is locked by {holder}; gave up after {} (lock file {}; wait longer with \
                     --lock-timeout or CANARY_LOCK_TIMEOUT)",
                    self.path.display(),
                    humantime::format_duration(self.lock_timeout),
                    lock_path.display()
                );
            }
            std::thread::sleep(LOCK_RETRY.min(self.lock_timeout - waited));
        }
        lock.set_len(0)
            .and_then(|()| lock.write_all_at(holder_description().as_bytes(), 0))
            .with_context(|| format!("cannot write to the lock file {}", lock_path.display()))?;
        let locked = Locked { file: self, lock };
        // What a writer killed before it let go of the lock left behind.
        locked.settle()?;
        self.remove_stale_temporaries();
        Ok(locked)
    }

    /// Removes the staged versions and links (`.canaryctl-*.tmp`, `.canaryctl-*.link`) that a
    /// writer killed between staging and renaming left in the watched directory and in the
    /// symlink target's. Called under the lock: only a lock holder stages, so any left are
    /// a dead writer's.
    fn remove_stale_temporaries(&self) {
        for dir in [self.state_dir(), self.history_dir()].into_iter().flatten() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(|entry| entry.ok()) {
                if entry.file_name().to_string_lossy().starts_with(".pending-") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Ok(dir) = self.dir() {
            dirs.push(dir.to_path_buf());
        }
        if let Some(dir) = fs::canonicalize(&self.path)
            .ok()
            .and_then(|target| target.parent().map(Path::to_path_buf))
        {
            dirs.push(dir);
        }
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(|entry| entry.ok()) {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".canaryctl-")
                    && (name.ends_with(".tmp") || name.ends_with(".link"))
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    fn pending_path(&self) -> Result<PathBuf> {
        // Not the file's extension: the history lists only entries with that one.
        Ok(self.history_dir()?.join("pending.write"))
    }

    /// Where the last change that stuck is described: `.canaryctl/<name>.last-write.json`.
    pub fn last_write_path(&self) -> Result<PathBuf> {
        Ok(self
            .state_dir()?
            .join(format!("{}.last-write.json", self.file_name()?)))
    }

    /// The last change made by canaryctl that the file kept, and who made it; `None` when
    /// none is recorded.
    pub fn last_write(&self) -> Result<Option<PendingWrite>> {
        let path = self.last_write_path()?;
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn read_pending(&self) -> Result<Option<PendingWrite>> {
        let path = self.pending_path()?;
        match fs::read(&path) {
            // A half-written record cannot be one: it is written whole, by rename.
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Records, whole (by rename), the write about to be made.
    fn write_pending(&self, pending: &PendingWrite) -> Result<()> {
        let dir = self.history_dir()?;
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_whole(&self.pending_path()?, &serde_json::to_vec_pretty(pending)?)
    }

    /// The name the next history entry gets (one past the last).
    fn next_entry_name(&self) -> Result<String> {
        let next = self
            .history()?
            .last()
            .and_then(|path| path.file_stem()?.to_str()?.parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        let mut name = format!("{next:010}");
        if let Some(extension) = self.path.extension() {
            name.push('.');
            name.push_str(&extension.to_string_lossy());
        }
        Ok(name)
    }

    /// Writes the history entry `name` whole (again, if a settle was cut short: the same
    /// name, the same bytes), and forgets the oldest beyond [`HISTORY_LEN`].
    fn save_history(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let dir = self.history_dir()?;
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let entry = dir.join(name);
        write_whole(&entry, bytes)?;
        let history = self.history()?;
        for old in history
            .iter()
            .take(history.len().saturating_sub(HISTORY_LEN))
        {
            let _ = fs::remove_file(old);
        }
        Ok(entry)
    }

    /// Replaces the file with `bytes` by rename, if it still holds `expected`. The new version
    /// gets the file's owner and mode; a symlink's final target is replaced, in its own
    /// directory, and the link is then replaced by a fresh link with the same text, because
    /// Envoy notices only moves into the directory it watches (the link's).
    fn replace(&self, expected: &[u8], bytes: &[u8]) -> Result<()> {
        let metadata = self.regular_file_metadata()?;
        let target = fs::canonicalize(&self.path)
            .with_context(|| format!("cannot resolve {}", self.path.display()))?;
        let target_dir = parent_of(&target)?;
        let mut staged = tempfile::Builder::new()
            .prefix(".canaryctl-")
            .suffix(".tmp")
            .tempfile_in(target_dir)
            .with_context(|| format!("cannot write in {}", target_dir.display()))?;
        staged.write_all(bytes)?;
        keep_owner_and_mode(staged.as_file(), &metadata)
            .with_context(|| format!("{}", self.path.display()))?;
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
            .persist(&target)
            .with_context(|| format!("cannot replace {}", target.display()))?;
        let is_link = fs::symlink_metadata(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?
            .file_type()
            .is_symlink();
        if is_link {
            self.repoint_link()?;
        }
        Ok(())
    }

    /// Replaces the symlink at the path by a new one with the same text, by rename.
    fn repoint_link(&self) -> Result<()> {
        let link_text = fs::read_link(&self.path)
            .with_context(|| format!("cannot read the link {}", self.path.display()))?;
        let dir = self.dir()?;
        let fresh = tempfile::Builder::new()
            .prefix(".canaryctl-")
            .suffix(".link")
            .make_in(dir, |path| std::os::unix::fs::symlink(&link_text, path))
            .with_context(|| format!("cannot create a link in {}", dir.display()))?;
        fresh
            .persist(&self.path)
            .map_err(|err| err.error)
            .with_context(|| format!("cannot re-point the link {}", self.path.display()))?;
        Ok(())
    }
}

impl Locked<'_> {
    /// The file locked.
    pub fn file(&self) -> &EcdsFile {
        self.file
    }

    /// Reads the file.
    pub fn read(&self) -> Result<EcdsContents> {
        self.file.read()
    }

    /// Runs `edit` on the current configuration and writes the result (with a history entry
    /// for `undo`). The new configuration must pass the filter's validation; nothing is written
    /// otherwise, nor when it changes nothing.
    pub fn update(
        &self,
        edit: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<Update> {
        let before = self.file.read()?;
        let mut update = plan(&before, self.file.format()?, edit)?;
        if !update.changed() {
            return Ok(update);
        }
        self.file.check_writable()?;
        // The history entry is made when the change has stuck ([`Locked::settle`]).
        let entry = self.file.next_entry_name()?;
        self.file.write_pending(&PendingWrite::new(
            &before.bytes,
            &update.after_bytes,
            entry,
            false,
        ))?;
        if let Err(err) = self.file.replace(&before.bytes, &update.after_bytes) {
            let _ = self.settle();
            return Err(err);
        }
        update.written = true;
        Ok(update)
    }

    /// Puts back the version before the last change; the entry is forgotten from the history
    /// once the file has kept it ([`Locked::settle`]).
    pub fn undo(&self) -> Result<Update> {
        let current = self.file.read()?;
        let (last, previous) = self.file.last_version()?;
        self.file.check_writable()?;
        let entry = last
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.file.write_pending(&PendingWrite::new(
            &current.bytes,
            &previous.bytes,
            entry,
            true,
        ))?;
        if let Err(err) = self.file.replace(&current.bytes, &previous.bytes) {
            let _ = self.settle();
            return Err(err);
        }
        Ok(Update::back_to(current, previous, true))
    }

    /// Settles the write recorded as pending, by what the file holds now: if it holds what
    /// was written, the change stuck (a change gets its history entry, an undo drops the entry
    /// it went back to, and the write becomes the last write); otherwise (put back after a
    /// refusal, never renamed into place, or overwritten since) the record is dropped and the
    /// history left as it was. Run when the lock is let go and when it is taken (after a
    /// writer that was killed).
    pub fn settle(&self) -> Result<()> {
        let Some(pending) = self.file.read_pending()? else {
            return Ok(());
        };
        let now = fs::read(&self.file.path).unwrap_or_default();
        // Each step can be done again by the next writer if this one is cut short.
        if now == pending.after.as_bytes() && !pending.entry.is_empty() {
            if pending.undo {
                let path = self.file.history_dir()?.join(&pending.entry);
                match fs::remove_file(&path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(err)
                            .with_context(|| format!("cannot remove {}", path.display()))
                    }
                    _ => {}
                }
            } else {
                self.file
                    .save_history(&pending.entry, pending.before.as_bytes())?;
            }
            write_whole(
                &self.file.last_write_path()?,
                &serde_json::to_vec_pretty(&pending)?,
            )?;
        }
        let path = self.file.pending_path()?;
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
    }

    /// Writes `bytes` back if the file still holds `expected` (used to restore a version
    /// Envoy rejected; the lock is already held, and a read-only file written with `force` is
    /// restored too).
    pub fn restore(&self, expected: &[u8], bytes: &[u8]) -> Result<()> {
        self.file.replace(expected, bytes)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // The history follows what the file kept. The description names the holder only while
        // the lock is held; the lock itself goes with the file descriptor. A failure here is
        // settled by the next writer.
        let _ = self.settle();
        let _ = self.lock.set_len(0);
    }
}

/// A write of the ECDS file by canaryctl: the file before and after, and who wrote it. Kept
/// while the write is under way (`pending.write` in the history directory), then, if the file
/// kept the change, as the last write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingWrite {
    /// The file before.
    pub before: String,
    /// The file after.
    pub after: String,
    /// The history entry: the one the change gets (holding `before`), or, for an undo, the
    /// one it goes back to (dropped once the undo has stuck).
    pub entry: String,
    /// Whether this is an undo.
    pub undo: bool,
    /// Who wrote: the pid, the command line and when (as the lock file names its holder).
    pub writer: String,
}

impl PendingWrite {
    fn new(before: &[u8], after: &[u8], entry: String, undo: bool) -> PendingWrite {
        PendingWrite {
            before: String::from_utf8_lossy(before).into_owned(),
            after: String::from_utf8_lossy(after).into_owned(),
            entry,
            undo,
            writer: holder_description(),
        }
    }
}

/// Writes `bytes` to `path` whole: a temporary file in the same directory, renamed over it.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path)?;
    let mut staged = tempfile::Builder::new()
        .prefix(".pending-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    staged.write_all(bytes)?;
    staged
        .persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Who holds the lock, for a writer that gives up waiting: the pid, the command line and
/// since when. The same words name the writer of a change.
pub fn holder_description() -> String {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .map(|arg0| {
            Path::new(&arg0)
                .file_name()
                .unwrap_or(&arg0)
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| "canaryctl".to_string());
    let command: Vec<String> = std::iter::once(program)
        .chain(args.map(|arg| arg.to_string_lossy().into_owned()))
        .collect();
    format!(
        "pid {} ({}, since {})",
        std::process::id(),
        command.join(" "),
        humantime::format_rfc3339_seconds(SystemTime::now())
    )
}

/// Gives the staged version the owner and the permission bits of the file it replaces.
fn keep_owner_and_mode(staged: &fs::File, original: &fs::Metadata) -> Result<()> {
    let fresh = staged.metadata()?;
    let (uid, gid) = (original.uid(), original.gid());
    if (fresh.uid(), fresh.gid()) != (uid, gid) {
        fchown(staged, Some(uid), Some(gid))
            .with_context(|| format!("cannot give the new version the file's owner {uid}:{gid}"))?;
    }
    // After the chown, which clears the set-id bits.
    staged.set_permissions(fs::Permissions::from_mode(original.mode() & 0o7777))?;
    Ok(())
}

fn parent_of(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(dir) => Ok(dir),
        None => bail!("{} has no directory", path.display()),
    }
}

/// The update `edit` makes to `before`, rendered in `format`, not written.
fn plan(
    before: &EcdsContents,
    format: Format,
    edit: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
) -> Result<Update> {
    let config = edit(&before.config)?;
    let after_plan = RoutingPlan::try_from(&config).context("the new configuration is invalid")?;
    let text = render(&before.doc, &config, format)?;
    Ok(Update {
        resource_name: before.resource_name().map(str::to_string),
        before: before.config.clone(),
        before_plan: before.plan.clone(),
        after: config,
        after_plan,
        written: false,
        before_bytes: before.bytes.clone(),
        after_bytes: text.into_bytes(),
    })
}

/// What an update did (of the ECDS file, or of a WasmPlugin's `pluginConfig`:
/// [`crate::mesh::wasmplugin`]).
#[derive(Debug, Clone)]
pub struct Update {
    /// The configuration before.
    pub before: CanaryConfig,
    /// `before` compiled.
    pub before_plan: RoutingPlan,
    /// The configuration after.
    pub after: CanaryConfig,
    /// `after` compiled.
    pub after_plan: RoutingPlan,
    /// Whether the target was written.
    pub written: bool,
    /// The ECDS resource's name.
    pub resource_name: Option<String>,
    /// The file's bytes before (for a WasmPlugin: the configuration as canaryctl writes it).
    pub before_bytes: Vec<u8>,
    /// The file's bytes after, as written or as they would have been (for a WasmPlugin: the
    /// configuration as canaryctl writes it).
    pub after_bytes: Vec<u8>,
}

impl Update {
    /// The way back from the file as it is (`current`) to an earlier version (`previous`):
    /// what `undo` writes.
    fn back_to(current: EcdsContents, previous: EcdsContents, written: bool) -> Update {
        Update {
            resource_name: current.resource_name().map(str::to_string),
            before: current.config,
            before_plan: current.plan,
            after: previous.config,
            after_plan: previous.plan,
            written,
            before_bytes: current.bytes,
            after_bytes: previous.bytes,
        }
    }

    /// Whether the bytes change (or changed).
    pub fn changed(&self) -> bool {
        self.before_bytes != self.after_bytes
    }
}

/// Parses ECDS file bytes of either format (YAML, of which JSON is a part); for a file Envoy
/// reads, [`parse_as`] with the format its name gives.
pub fn parse(bytes: &[u8]) -> Result<EcdsContents> {
    parse_as(bytes, Format::Yaml)
}

/// Parses ECDS file bytes as Envoy would parse them in `format`, and compiles the filter's
/// configuration in them.
pub fn parse_as(bytes: &[u8], format: Format) -> Result<EcdsContents> {
    let doc = document_as(bytes, format)?;
    let config = CanaryConfig::from_json(configuration_value(&doc)?.as_bytes())
        .context("the filter configuration is invalid")?;
    let plan = RoutingPlan::try_from(&config).context("the filter configuration is invalid")?;
    Ok(EcdsContents {
        bytes: bytes.to_vec(),
        doc,
        config,
        plan,
    })
}

/// The document in ECDS file bytes, parsed as Envoy would parse it in `format` (the filter's
/// configuration in it neither read nor compiled).
pub fn document_as(bytes: &[u8], format: Format) -> Result<serde_json::Value> {
    Ok(match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|err| {
            anyhow!(
                "not JSON ({err}): Envoy parses an ECDS file named .json as JSON and would refuse \
                 this one too"
            )
        })?,
        Format::Yaml => serde_yaml_ng::from_slice(bytes).context("not a YAML ECDS file")?,
    })
}

/// The filter's JSON configuration in an ECDS document, as text.
pub fn configuration_value(doc: &serde_json::Value) -> Result<&str> {
    doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .ok_or_else(|| {
            anyhow!("no resources[0].typed_config.config.configuration.value (the filter's JSON)")
        })
}

/// The ECDS document `doc` with `config` as the filter's configuration, in `format`.
pub fn render(doc: &serde_json::Value, config: &CanaryConfig, format: Format) -> Result<String> {
    let mut doc = doc.clone();
    // In a JSON file the configuration is one string whose line breaks are written `\n`:
    // indenting it makes nothing easier to read and gives Envoy nearly twice the bytes to parse
    // at every push (1,000 rules: a 208 KB file against 114 KB, and about half as much time
    // again from the rename to the first request routed; BENCHMARKS.md, round 3). In YAML it
    // stays an indented block, which a person reads and edits, until it is big: Envoy reads
    // YAML at about 90 ns a byte, and the block's indentation nearly triples the bytes (1,000
    // rules: 278 KB and 21.5 ms a push, against 94 KB and 12 ms on one line).
    let compact = serde_json::to_string(config)?;
    let json = match format {
        Format::Yaml if compact.len() <= ONE_LINE_FROM_BYTES => {
            serde_json::to_string_pretty(config)? + "\n"
        }
        _ => compact,
    };
    doc["resources"][0]["typed_config"]["config"]["configuration"]["value"] =
        serde_json::Value::String(json);
    Ok(match format {
        // JSON has no comments.
        Format::Json => serde_json::to_string_pretty(&doc)? + "\n",
        Format::Yaml => format!(
            "# The canary filter and its configuration, as one ECDS resource (written by canaryctl;\n\
             # `value` is the filter's JSON configuration, see docs/reference/configuration.md).\n{}",
            serde_yaml_ng::to_string(&doc)?
        ),
    })
}

/// From this size (of the configuration as compact JSON, about 150 header rules) canaryctl
/// writes a configuration on one line in a YAML file too.
pub const ONE_LINE_FROM_BYTES: usize = 16 * 1024;

/// What to know before pushing `config` into the ECDS file at `path` again and again (a
/// rollout): a big configuration in a YAML file costs Envoy several milliseconds a push to
/// read, where a `.json` file takes about a third of the time (BENCHMARKS.md, round 3).
pub fn write_warning(path: &Path, config: &CanaryConfig) -> Result<Option<String>> {
    if Format::of(path)? != Format::Yaml {
        return Ok(None);
    }
    let bytes = serde_json::to_string(config)?.len();
    Ok((bytes > ONE_LINE_FROM_BYTES).then(|| {
        format!(
            "{}: the configuration is {} KB, which Envoy reads as YAML at about 90 ns a byte \
             (about {:.0} ms of every push); an ECDS file named .json takes a third of that \
             (docs/guide/envoy.md, \"A big configuration\")",
            path.display(),
            bytes / 1000,
            bytes as f64 * 90e-6
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped ECDS file's document, and its configuration with `rules` header rules more.
    fn shipped_with_rules(rules: usize) -> (serde_json::Value, CanaryConfig) {
        let doc: serde_json::Value =
            serde_yaml_ng::from_str(include_str!("../../../envoy/ecds/canary-filter.yaml"))
                .unwrap();
        let value = doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap();
        let mut config: serde_json::Value = serde_json::from_str(value).unwrap();
        for i in 0..rules {
            config["rules"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "name": format!("rule-{i}"),
                    "when": {"header": {"name": format!("x-flag-{i}"), "equals": "on"}},
                    "version": "canary",
                }));
        }
        let config = CanaryConfig::from_json(config.to_string().as_bytes()).unwrap();
        (doc, config)
    }

    /// The configuration as a YAML file written by `render` holds it.
    fn written_value(yaml: &str) -> String {
        let doc: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// In YAML a configuration is an indented block while it is small and one line from
    /// [`ONE_LINE_FROM_BYTES`]; either way the file holds the same configuration.
    #[test]
    fn a_big_configuration_is_one_line_in_yaml() {
        let (doc, small) = shipped_with_rules(0);
        let value = written_value(&render(&doc, &small, Format::Yaml).unwrap());
        assert!(value.contains("\n  \"versions\": ["), "{value}");
        assert_eq!(CanaryConfig::from_json(value.as_bytes()).unwrap(), small);

        let (doc, big) = shipped_with_rules(300);
        let compact = serde_json::to_string(&big).unwrap().len();
        assert!(compact > ONE_LINE_FROM_BYTES, "{compact}");
        let yaml = render(&doc, &big, Format::Yaml).unwrap();
        let value = written_value(&yaml);
        assert!(!value.contains('\n'), "not one line");
        assert_eq!(CanaryConfig::from_json(value.as_bytes()).unwrap(), big);
        // Not much more than the configuration itself.
        assert!(yaml.len() < compact + 2_000, "{} for {compact}", yaml.len());
    }

    /// A rollout on a YAML file with a big configuration says what each push costs Envoy;
    /// not on a small one, nor on a JSON file.
    #[test]
    fn a_big_configuration_in_a_yaml_file_is_worth_a_warning() {
        let (_, small) = shipped_with_rules(0);
        let (_, big) = shipped_with_rules(300);
        let yaml = Path::new("envoy/ecds/canary-filter.yaml");
        assert_eq!(write_warning(yaml, &small).unwrap(), None);
        assert_eq!(
            write_warning(Path::new("canary-filter.json"), &big).unwrap(),
            None
        );
        let warning = write_warning(yaml, &big).unwrap().unwrap();
        assert!(warning.starts_with("envoy/ecds/canary-filter.yaml: the configuration is "));
        assert!(warning.contains("named .json"), "{warning}");
    }

    #[test]
    fn the_ecds_path_given_wins() {
        assert_eq!(
            ecds_path(Some(PathBuf::from("given.yaml"))),
            PathBuf::from("given.yaml")
        );
    }
}
