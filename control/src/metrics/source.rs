//! Where the rollout reads the per-version counts of one cohort (one `canary_rule` label) of
//! one service (one `canary_service` label): Envoy's admin endpoints directly (one or more
//! proxies), or Prometheus's HTTP API for a fleet. Both give cumulative counters per proxy; the
//! rollout takes differences between reads proxy by proxy ([`crate::metrics::per_proxy`]). Both read Prometheus's form of the latency
//! histogram, whose `+Inf` bucket holds the requests slower than the last bound (Envoy's JSON
//! form has no such bucket, so they would drop out).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use canary_filter::metrics::CODE_CLASSES;

use crate::metrics::admin::Admin;
use crate::metrics::per_proxy::{self, FleetReading};
use crate::metrics::prometheus::{describe_service, Prometheus};
use crate::metrics::stats::{self, FilterStats};
use crate::rollout::judge::Counts;

/// Counts per version, cumulative since the proxies started.
pub type MetricsReading = BTreeMap<String, Counts>;

/// A place to read readings from, and the service whose series it reads (`""`: the series
/// without a `canary_service` label, of a configuration without `service`).
pub enum Source {
    /// Envoy admin endpoints.
    Admin {
        /// The endpoints.
        admins: Vec<Admin>,
        /// The service read.
        service: String,
    },
    /// A Prometheus server that scrapes the proxies' `/stats/prometheus`.
    Prometheus {
        /// The server.
        prometheus: Prometheus,
        /// The service read.
        service: String,
    },
}

impl Source {
    /// Says where it reads from, and which service when the configuration names one.
    pub fn describe(&self) -> String {
        let (place, service) = match self {
            Source::Admin { admins, service } => {
                let all: Vec<&str> = admins.iter().map(Admin::base).collect();
                (format!("Envoy admin {}", all.join(", ")), service)
            }
            Source::Prometheus {
                prometheus,
                service,
            } => (format!("Prometheus {}", prometheus.base()), service),
        };
        // A configuration without `service` reads the series without the label, as before
        // the label existed: nothing to add.
        if service.is_empty() {
            place
        } else {
            format!("{place}, series with {}", describe_service(service))
        }
    }

    /// The cumulative counts of cohort `rule` of the source's service, per version, summed
    /// over the proxies (totals since each started: subtract per proxy, with
    /// [`crate::metrics::per_proxy::interval`], to get what happened between two reads).
    pub fn read(&self, rule: &str) -> Result<MetricsReading> {
        per_proxy::total(&self.read_fleet(rule)?)
    }

    /// The cumulative counts of cohort `rule` of the source's service, per proxy and version:
    /// each admin endpoint (named `host:port`), or each target Prometheus scrapes (named
    /// `job/instance`). A proxy that does not answer, or that Prometheus has no current
    /// sample of, is missing from the read (it left); an error when no proxy has counts of
    /// the cohort.
    pub fn read_fleet(&self, rule: &str) -> Result<FleetReading> {
        match self {
            Source::Admin { admins, service } => {
                let mut fleet = FleetReading::new();
                let mut silent = Vec::new();
                for admin in admins {
                    match stats::read(admin) {
                        Ok(stats) => {
                            fleet.insert(proxy_name(admin), counts_of_rule(&stats, service, rule));
                        }
                        Err(err) => silent.push(format!("{}: {err:#}", admin.base())),
                    }
                }
                if fleet.values().all(MetricsReading::is_empty) {
                    if fleet.is_empty() {
                        bail!("no admin endpoint answered: {}", silent.join("; "));
                    }
                    bail!(
                        "the admin endpoints show no canary metrics for rule {rule:?} of the \
                         service with {}",
                        describe_service(service)
                    );
                }
                Ok(fleet)
            }
            Source::Prometheus {
                prometheus,
                service,
            } => {
                let fleet: FleetReading = prometheus
                    .filter_stats_by_proxy(service)?
                    .into_iter()
                    .map(|(proxy, stats)| (proxy, counts_of_rule(&stats, service, rule)))
                    .collect();
                if fleet.values().all(MetricsReading::is_empty) {
                    bail!(
                        "Prometheus {} has no responses of rule {rule:?} of the service with {}",
                        prometheus.base(),
                        describe_service(service)
                    );
                }
                Ok(fleet)
            }
        }
    }
}

/// An admin endpoint's name in a fleet reading: its address without the scheme.
pub(crate) fn proxy_name(admin: &Admin) -> String {
    let base = admin.base();
    base.strip_prefix("http://").unwrap_or(base).to_string()
}

/// The counts of rule `rule` of `service` per version in the filter's metrics: responses by
/// class and the latency histogram's buckets, `+Inf` included. A version is there once it has
/// a response of a known class or a latency bucket.
pub fn counts_of_rule(stats: &FilterStats, service: &str, rule: &str) -> MetricsReading {
    let mut reading = MetricsReading::new();
    for (key, series) in stats {
        if key.rule != rule || key.service != service {
            continue;
        }
        let mut counts = Counts::default();
        let mut seen = !series.latency.is_empty();
        for (class, n) in &series.responses {
            if let Some(i) = CODE_CLASSES.iter().position(|c| c == class) {
                counts.responses[i] += n;
                seen = true;
            }
        }
        counts.latency.clone_from(&series.latency);
        if seen {
            reading.insert(key.version.clone(), counts);
        }
    }
    reading
}
