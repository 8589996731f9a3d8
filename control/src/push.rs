//! Writing a change to the ECDS file and, when an admin endpoint is known, confirming that
//! Envoy accepted it (its `extension_config_discovery` counters), putting the previous file
//! back if Envoy rejected it.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use canary_filter::CanaryConfig;

use crate::admin::Admin;
use crate::ecds::{EcdsFile, Update};

/// The ECDS file, and the Envoy that watches it (if known).
pub struct Pusher {
    /// The file.
    pub file: EcdsFile,
    /// Envoy's admin endpoint, to confirm with.
    pub admin: Option<Admin>,
}

/// Envoy's counters before a write.
pub struct Baseline {
    admin: Admin,
    prefix: String,
    success: u64,
    rejected: u64,
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing was written (no change, or a dry run).
    NotWritten,
    /// Written; no admin endpoint to confirm with.
    Unconfirmed,
    /// Envoy counted it as accepted after this long.
    Accepted(Duration),
}

impl Pusher {
    /// Reads Envoy's counters; an unreachable admin endpoint stops here, before any write.
    pub fn baseline(&self) -> Result<Option<Baseline>> {
        let Some(admin) = &self.admin else {
            return Ok(None);
        };
        let name = self
            .file
            .read()?
            .resource_name()
            .unwrap_or("canary-filter")
            .to_string();
        let prefix = format!("extension_config_discovery.http_filter.{name}");
        let success = admin.counter(&format!("{prefix}.update_success"))?;
        let rejected = admin.counter(&format!("{prefix}.update_rejected"))?;
        match (success, rejected) {
            (Some(success), Some(rejected)) => Ok(Some(Baseline {
                admin: admin.clone(),
                prefix,
                success,
                rejected,
            })),
            _ => bail!(
                "Envoy at {} has no ECDS filter named {name:?}: is it the Envoy that watches {}?",
                admin.base(),
                self.file.path().display()
            ),
        }
    }

    /// Applies `change` (validated, previewable), then confirms.
    pub fn push(
        &self,
        dry_run: bool,
        change: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<(Update, Applied)> {
        let baseline = if dry_run { None } else { self.baseline()? };
        let update = self.file.update(dry_run, change)?;
        if !update.written {
            return Ok((update, Applied::NotWritten));
        }
        let applied = self.confirm(&update, baseline)?;
        Ok((update, applied))
    }

    /// Waits (up to 5 s) for Envoy to count the write as accepted or rejected.
    pub fn confirm(&self, update: &Update, baseline: Option<Baseline>) -> Result<Applied> {
        let Some(Baseline {
            admin,
            prefix,
            success,
            rejected,
        }) = baseline
        else {
            return Ok(Applied::Unconfirmed);
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if admin
                .counter(&format!("{prefix}.update_success"))?
                .unwrap_or(0)
                > success
            {
                return Ok(Applied::Accepted(started.elapsed()));
            }
            if admin
                .counter(&format!("{prefix}.update_rejected"))?
                .unwrap_or(0)
                > rejected
            {
                self.file
                    .restore(&update.after_bytes, &update.before_bytes)?;
                bail!(
                    "Envoy at {} rejected it (see its log); the previous file was put back",
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
