//! Writing a change to the ECDS file and, when an admin endpoint is known, confirming that
//! Envoy accepted it (its `extension_config_discovery` counters), putting the previous file
//! back if Envoy rejected it.
//!
//! Envoy's counters are read under the file's lock, and the lock is held through the write,
//! the confirmation and the restore: another writer's change between the read of the counters
//! and the write would otherwise be counted as this one's (its rejection taken for ours).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canary_filter::metrics::{self, CONFIG_HASH, ENVOY_PREFIX};
use canary_filter::CanaryConfig;

use crate::admin::Admin;
use crate::ecds::{EcdsFile, Locked, Update};

/// How long Envoy has to count a write as accepted or rejected.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the fleet has, by default, to report running a new configuration.
pub const DEFAULT_FLEET_TIMEOUT: Duration = Duration::from_secs(10);

/// The ECDS file, and the Envoy that watches it (if known).
pub struct Pusher {
    /// The file.
    pub file: EcdsFile,
    /// Envoy's admin endpoint, to confirm with.
    pub admin: Option<Admin>,
    /// Every Envoy that must end up running the change (the filter's `canary_config_hash`
    /// gauge), the confirming one included; empty: the confirming Envoy's counters suffice.
    pub fleet: Vec<Admin>,
    /// How long the fleet has to report the new configuration.
    pub fleet_timeout: Duration,
}

/// Which Envoys of the fleet run a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetReport {
    /// Envoys that report the configuration.
    pub running: usize,
    /// Envoys asked.
    pub total: usize,
    /// How long until they all did (or until the timeout).
    pub after: Duration,
    /// The ones that did not, each with what it reported.
    pub behind: Vec<String>,
}

/// Envoy's counters before a write.
pub struct Baseline {
    admin: Admin,
    prefix: String,
    success: u64,
    rejected: u64,
    failure: u64,
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing was written (no change, or a dry run).
    NotWritten,
    /// Written; no admin endpoint to confirm with.
    Unconfirmed,
    /// Envoy counted it as accepted after this long; with a fleet, every Envoy of it reports
    /// running it.
    Accepted(Duration, Option<FleetReport>),
    /// Stored by the Kubernetes API server at this resource version (the Istio target: istiod
    /// delivers it to the sidecars; canaryctl does not confirm that).
    Stored(String),
}

impl Pusher {
    /// Envoy's counters for the filter named `resource_name`, if an admin endpoint is known;
    /// an unreachable endpoint, or one without that filter, is an error.
    fn counters(&self, resource_name: Option<&str>) -> Result<Option<Baseline>> {
        let Some(admin) = &self.admin else {
            return Ok(None);
        };
        let name = resource_name.unwrap_or("canary-filter");
        let prefix = format!("extension_config_discovery.http_filter.{name}");
        let success = admin.counter(&format!("{prefix}.update_success"))?;
        let rejected = admin.counter(&format!("{prefix}.update_rejected"))?;
        let failure = admin.counter(&format!("{prefix}.update_failure"))?;
        match (success, rejected, failure) {
            (Some(success), Some(rejected), Some(failure)) => Ok(Some(Baseline {
                admin: admin.clone(),
                prefix,
                success,
                rejected,
                failure,
            })),
            _ => bail!(
                "Envoy at {} has no ECDS filter named {name:?}: is it the Envoy that watches {}?",
                admin.base(),
                self.file.path().display()
            ),
        }
    }

    /// Reads Envoy's counters before a write, under the lock (no other writer's change can
    /// come between them and the write).
    pub fn baseline(&self, locked: &Locked<'_>) -> Result<Option<Baseline>> {
        self.counters(locked.read()?.resource_name())
    }

    /// Applies `change` (validated, previewable), then confirms. The change is computed
    /// without the lock first: refused input, a dry run, no change, a read-only file or an
    /// unreachable admin endpoint stop there, with nothing created. Then, under the lock, the
    /// counters are read, `change` is applied again to the file as it is now and written,
    /// and Envoy's verdict awaited.
    pub fn push(
        &self,
        dry_run: bool,
        change: impl Fn(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<(Update, Applied)> {
        let preview = self.file.preview(&change)?;
        if dry_run || !preview.changed() {
            return Ok((preview, Applied::NotWritten));
        }
        self.file.check_writable()?;
        self.counters(preview.resource_name.as_deref())?;
        let locked = self.file.lock()?;
        let baseline = self.baseline(&locked)?;
        let update = locked.update(&change)?;
        if !update.written {
            return Ok((update, Applied::NotWritten));
        }
        let applied = self.confirm(&locked, &update, baseline)?;
        Ok((update, applied))
    }

    /// Puts back the version before the last change, then confirms (as [`Pusher::push`]).
    pub fn undo(&self) -> Result<(Update, Applied)> {
        let preview = self.file.preview_undo()?;
        self.file.check_writable()?;
        self.counters(preview.resource_name.as_deref())?;
        let locked = self.file.lock()?;
        let baseline = self.baseline(&locked)?;
        let update = locked.undo()?;
        let applied = self.confirm(&locked, &update, baseline)?;
        Ok((update, applied))
    }

    /// Waits until every Envoy of the fleet publishes the hash of the configuration in
    /// `ecds_bytes` (`canary_config_hash`), up to the fleet timeout. `None` without a fleet; an
    /// error naming the Envoys left behind when the timeout passes first.
    pub fn confirm_fleet(&self, ecds_bytes: &[u8]) -> Result<Option<FleetReport>> {
        if self.fleet.is_empty() {
            return Ok(None);
        }
        let doc = crate::ecds::document_as(ecds_bytes, self.file.format()?)?;
        let value = crate::ecds::configuration_value(&doc)
            .context("the ECDS resource has no configuration value")?;
        let want = u64::from(metrics::config_hash(value.as_bytes()));
        let gauge = format!("{ENVOY_PREFIX}{CONFIG_HASH}");
        let started = Instant::now();
        loop {
            let mut behind = Vec::new();
            for admin in &self.fleet {
                match admin.counter(&gauge) {
                    Ok(Some(hash)) if hash == want => {}
                    Ok(Some(hash)) => behind.push(format!("{} runs {hash:08x}", admin.base())),
                    Ok(None) => behind.push(format!("{} has no {CONFIG_HASH}", admin.base())),
                    Err(err) => behind.push(format!("{}: {err:#}", admin.base())),
                }
            }
            let report = FleetReport {
                running: self.fleet.len() - behind.len(),
                total: self.fleet.len(),
                after: started.elapsed(),
                behind,
            };
            if report.behind.is_empty() {
                return Ok(Some(report));
            }
            if started.elapsed() >= self.fleet_timeout {
                bail!(
                    "{} of {} Envoys run the new configuration ({want:08x}) after {}; not yet: {}",
                    report.running,
                    report.total,
                    humantime::format_duration(self.fleet_timeout),
                    report.behind.join("; ")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 5 s) for Envoy to count the write as accepted, rejected (`update_rejected`:
    /// the filter refused it) or failed (`update_failure`: the file could not be parsed into
    /// the resource); on either refusal puts the previous file back, under the same lock.
    pub fn confirm(
        &self,
        locked: &Locked<'_>,
        update: &Update,
        baseline: Option<Baseline>,
    ) -> Result<Applied> {
        let Some(Baseline {
            admin,
            prefix,
            success,
            rejected,
            failure,
        }) = baseline
        else {
            return Ok(Applied::Unconfirmed);
        };
        let started = Instant::now();
        while started.elapsed() < CONFIRM_TIMEOUT {
            if admin
                .counter(&format!("{prefix}.update_success"))?
                .unwrap_or(0)
                > success
            {
                let accepted = started.elapsed();
                let fleet = self.confirm_fleet(&update.after_bytes).with_context(|| {
                    format!(
                        "{} was written and Envoy at {} accepted it ({} ms), but",
                        self.file.path().display(),
                        admin.base(),
                        accepted.as_millis()
                    )
                })?;
                return Ok(Applied::Accepted(accepted, fleet));
            }
            if admin
                .counter(&format!("{prefix}.update_rejected"))?
                .unwrap_or(0)
                > rejected
            {
                locked.restore(&update.after_bytes, &update.before_bytes)?;
                bail!(
                    "Envoy at {} rejected it (see its log); the previous file was put back",
                    admin.base()
                );
            }
            if admin
                .counter(&format!("{prefix}.update_failure"))?
                .unwrap_or(0)
                > failure
            {
                locked.restore(&update.after_bytes, &update.before_bytes)?;
                bail!(
                    "Envoy at {} could not read it as an ECDS resource (update_failure, see its \
                     log); the previous file was put back",
                    admin.base()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "Envoy at {} did not pick the change up within 5 s: does it watch {}?",
            admin.base(),
            self.file.path().display()
        )
    }
}
