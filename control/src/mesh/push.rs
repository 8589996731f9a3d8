//! Writing a change to the ECDS file and, when an admin endpoint is known, confirming that
//! Envoy accepted it (its `extension_config_discovery` counters), putting the previous file
//! back if Envoy rejected it; then, when a fleet is named, waiting until every proxy of it
//! reports running the change (its `canary_config_hash`), asked one admin endpoint at a time
//! or through Prometheus for every proxy of the service.
//!
//! Envoy's counters are read under the file's lock, and the lock is held through the write,
//! the confirmation and the restore: another writer's change between the read of the counters
//! and the write would otherwise be counted as this one's (its rejection taken for ours).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canary_filter::metrics::{self, CONFIG_HASH, ENVOY_PREFIX};
use canary_filter::CanaryConfig;

use crate::mesh::ecds::{EcdsFile, Locked, Update};
use crate::mesh::fleet_wait;
use crate::metrics::admin::Admin;
use crate::metrics::prometheus::{describe_service, Prometheus};
use crate::metrics::stats::service_label;

/// How long Envoy has to count a write as accepted or rejected.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The ECDS file, and the Envoy that watches it (if known).
pub struct Pusher {
    /// The file.
    pub file: EcdsFile,
    /// Envoy's admin endpoint, to confirm with.
    pub admin: Option<Admin>,
    /// The proxies that must end up running the change (the filter's `canary_config_hash`
    /// gauge).
    pub fleet: Fleet,
    /// How long the fleet has to report the new configuration (`None`: [`Fleet::wait`]'s
    /// default).
    pub fleet_timeout: Option<Duration>,
}

/// The proxies that must report running a change.
#[derive(Clone)]
pub enum Fleet {
    /// None: the confirming Envoy's counters suffice.
    None,
    /// These Envoys, asked each at its admin endpoint (the confirming one included).
    Admins(Vec<Admin>),
    /// Every proxy of the configuration's service that this Prometheus scrapes (see
    /// [`Prometheus::config_hashes`]).
    Prometheus(Prometheus),
}

impl Fleet {
    /// How long to wait when no timeout is given, and how that was derived: through
    /// Prometheus, from the scrape interval of the service's proxies ([`fleet_wait::derived`]);
    /// else (or when Prometheus does not say) [`fleet_wait::DEFAULT_FLEET_TIMEOUT`].
    pub fn default_wait(&self, service: Option<&str>) -> (Duration, Option<String>) {
        let Fleet::Prometheus(prometheus) = self else {
            return (fleet_wait::DEFAULT_FLEET_TIMEOUT, None);
        };
        match prometheus.scrape_interval(service_label(service)) {
            Ok(scrape) => (
                fleet_wait::derived(scrape),
                Some(fleet_wait::describe(scrape)),
            ),
            Err(err) => (
                fleet_wait::DEFAULT_FLEET_TIMEOUT,
                Some(format!(
                    "up to {}: no scrape interval to derive it from ({err:#})",
                    fleet_wait::seconds(fleet_wait::DEFAULT_FLEET_TIMEOUT)
                )),
            ),
        }
    }

    /// Waits until every proxy of the fleet publishes `config`'s hash
    /// ([`metrics::config_hash`], under `config`'s service), up to `timeout` (when `None`,
    /// [`Fleet::default_wait`]'s). `None` without a fleet; an error naming the proxies left
    /// behind when the timeout passes first.
    pub fn wait(
        &self,
        config: &CanaryConfig,
        timeout: Option<Duration>,
    ) -> Result<Option<FleetReport>> {
        if matches!(self, Fleet::None) {
            return Ok(None);
        }
        let want =
            u64::from(metrics::config_hash(config).context("the configuration's canonical form")?);
        let service = config.service.as_deref();
        let (timeout, derived) = match timeout {
            Some(given) => (given, None),
            None => self.default_wait(service),
        };
        let started = Instant::now();
        loop {
            let mut report = match self {
                Fleet::None => return Ok(None),
                Fleet::Admins(admins) => admins_running(admins, service, want, started),
                Fleet::Prometheus(prometheus) => {
                    prometheus_running(prometheus, service_label(service), want, started)
                }
            };
            report.waits.clone_from(&derived);
            if report.behind.is_empty() && report.total > 0 {
                return Ok(Some(report));
            }
            if started.elapsed() >= timeout {
                let what = match &report.through {
                    None => "Envoys run the new configuration".to_string(),
                    Some(through) => format!("proxies on the new configuration ({through})"),
                };
                let behind = if report.behind.is_empty() {
                    "Prometheus knows no proxy of the service: does it scrape the proxies' \
                     /stats/prometheus?"
                        .to_string()
                } else {
                    format!("not yet: {}", report.behind.join("; "))
                };
                let derived = derived
                    .as_ref()
                    .map(|how| format!(" (the wait: {how}; --fleet-timeout sets another)"))
                    .unwrap_or_default();
                bail!(
                    "{} of {} {what} ({want:08x}) after {}{derived}; {behind}",
                    report.running,
                    report.total,
                    humantime::format_duration(timeout),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Which proxies of the fleet run a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetReport {
    /// Proxies that report the configuration.
    pub running: usize,
    /// Proxies of the fleet.
    pub total: usize,
    /// Through which Prometheus, for which service, when the fleet was asked through one.
    pub through: Option<String>,
    /// How long until they all did (or until the timeout).
    pub after: Duration,
    /// The ones that did not, each with what it reported.
    pub behind: Vec<String>,
    /// How long it could wait, and why, when that was derived rather than given
    /// ([`Fleet::default_wait`]).
    pub waits: Option<String>,
}

impl FleetReport {
    /// The line that says how much of the fleet runs the change.
    pub fn line(&self) -> String {
        match &self.through {
            None => format!(
                "{} of {} Envoys run it ({} ms)\n",
                self.running,
                self.total,
                self.after.as_millis()
            ),
            Some(through) => format!(
                "{} of {} proxies on the new configuration after {:.1} s ({through}{})\n",
                self.running,
                self.total,
                self.after.as_secs_f64(),
                self.waits
                    .as_ref()
                    .map(|how| format!("; waits {how}"))
                    .unwrap_or_default()
            ),
        }
    }
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
    /// delivers it to the sidecars); with a fleet, every proxy of it reports running it.
    Stored(String, Option<FleetReport>),
    /// Written without an admin endpoint to confirm with; every proxy of the fleet (through
    /// Prometheus) reports running it.
    FleetRuns(FleetReport),
}

impl Applied {
    /// The fleet's confirmation, when a fleet was waited for.
    pub fn fleet(&self) -> Option<&FleetReport> {
        match self {
            Applied::Accepted(_, fleet) | Applied::Stored(_, fleet) => fleet.as_ref(),
            Applied::FleetRuns(fleet) => Some(fleet),
            Applied::NotWritten | Applied::Unconfirmed => None,
        }
    }
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

    /// Waits until every proxy of the fleet runs the configuration written in `ecds_bytes`
    /// ([`Fleet::wait`]), up to the fleet timeout.
    pub fn confirm_fleet(&self, ecds_bytes: &[u8]) -> Result<Option<FleetReport>> {
        if matches!(self.fleet, Fleet::None) {
            return Ok(None);
        }
        let doc = crate::mesh::ecds::document_as(ecds_bytes, self.file.format()?)?;
        let value = crate::mesh::ecds::configuration_value(&doc)
            .context("the ECDS resource has no configuration value")?;
        let config =
            CanaryConfig::from_json(value.as_bytes()).context("the written configuration")?;
        self.fleet.wait(&config, self.fleet_timeout)
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
            // No Envoy to confirm with: through Prometheus the fleet can still be waited for.
            let fleet = self
                .confirm_fleet(&update.after_bytes)
                .with_context(|| format!("{} was written, but", self.file.path().display()))?;
            return Ok(match fleet {
                Some(report) => Applied::FleetRuns(report),
                None => Applied::Unconfirmed,
            });
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

/// Which of `admins` publish `want` as the hash of `service`'s configuration.
fn admins_running(
    admins: &[Admin],
    service: Option<&str>,
    want: u64,
    started: Instant,
) -> FleetReport {
    let gauge = format!("{ENVOY_PREFIX}{}", metrics::config_hash_name(service));
    let mut behind = Vec::new();
    for admin in admins {
        match admin.counter(&gauge) {
            Ok(Some(hash)) if hash == want => {}
            Ok(Some(hash)) => behind.push(format!("{} runs {hash:08x}", admin.base())),
            Ok(None) => behind.push(format!("{} has no {gauge}", admin.base())),
            Err(err) => behind.push(format!("{}: {err:#}", admin.base())),
        }
    }
    FleetReport {
        running: admins.len() - behind.len(),
        total: admins.len(),
        through: None,
        after: started.elapsed(),
        behind,
        waits: None,
    }
}

/// Which proxies of `service` that `prometheus` scrapes report `want` as their configuration's
/// hash; a failed query counts every proxy as behind, saying why.
fn prometheus_running(
    prometheus: &Prometheus,
    service: &str,
    want: u64,
    started: Instant,
) -> FleetReport {
    let through = format!(
        "Prometheus {}, {}",
        prometheus.base(),
        describe_service(service)
    );
    let proxies = match prometheus.config_hashes(service) {
        Ok(proxies) => proxies,
        Err(err) => {
            return FleetReport {
                running: 0,
                total: 0,
                through: Some(through),
                after: started.elapsed(),
                behind: vec![format!("{err:#}")],
                waits: None,
            }
        }
    };
    let behind: Vec<String> = proxies
        .iter()
        .filter_map(|proxy| match proxy.reports {
            Some(hash) if hash == want => None,
            Some(hash) => Some(format!("{} runs {hash:08x}", proxy.proxy)),
            None => Some(format!(
                "{} reports no {CONFIG_HASH} now (down, or no longer this service's)",
                proxy.proxy
            )),
        })
        .collect();
    FleetReport {
        running: proxies.len() - behind.len(),
        total: proxies.len(),
        through: Some(through),
        after: started.elapsed(),
        behind,
        waits: None,
    }
}
