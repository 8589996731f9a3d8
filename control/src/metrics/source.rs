//! Where the rollout and `status` read the filter's metrics of one service (one
//! `canary_service` label): Envoy's admin endpoints directly (one or more proxies), or
//! Prometheus's HTTP API for a fleet. Both give cumulative counters per proxy; the rollout and
//! `status --watch` take differences between reads proxy by proxy ([`crate::metrics::per_proxy`]).
//! Both read Prometheus's form of the latency histogram, whose `+Inf` bucket holds the
//! requests slower than the last bound (Envoy's JSON form has no such bucket, so they would
//! drop out).

use anyhow::{bail, Result};

use crate::metrics::admin::Admin;
use crate::metrics::counts::MetricsReading;
use crate::metrics::per_proxy::{self, FleetReading};
use crate::metrics::prometheus::{describe_service, Prometheus};
use crate::metrics::stats::{self, Family, FilterStats, SeriesKey, VERSIONS};

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
        let fleet: FleetReading = self
            .read_family(&VERSIONS, false)?
            .proxies
            .iter()
            .map(|(proxy, stats)| (proxy.clone(), counts_of_rule(stats, self.service(), rule)))
            .collect();
        if fleet.values().all(MetricsReading::is_empty) {
            match self {
                Source::Admin { service, .. } => bail!(
                    "the admin endpoints show no canary metrics for rule {rule:?} of the \
                     service with {}",
                    describe_service(service)
                ),
                Source::Prometheus {
                    prometheus,
                    service,
                } => bail!(
                    "Prometheus {} has no responses of rule {rule:?} of the service with {}",
                    prometheus.base(),
                    describe_service(service)
                ),
            }
        }
        Ok(fleet)
    }

    /// The service whose series the source reads (`""`: those without a service).
    pub fn service(&self) -> &str {
        match self {
            Source::Admin { service, .. } | Source::Prometheus { service, .. } => service,
        }
    }

    /// Every series of `family` per proxy, cumulative since each proxy started, by service,
    /// version and rule: of the source's service, or with `every_service` of every service
    /// an admin endpoint shows (`status` without `--service`; Prometheus is always asked for
    /// the source's service). An admin endpoint that does not answer is named in
    /// [`FleetStats::unanswered`]; an error when none answers, or when Prometheus has none
    /// of the service's series.
    pub fn read_family(&self, family: &Family, every_service: bool) -> Result<FleetStats> {
        match self {
            Source::Admin { admins, service } => {
                let mut read = FleetStats::default();
                for admin in admins {
                    let answer = admin
                        .get(stats::PROMETHEUS_QUERY)
                        .and_then(|text| stats::parse_family(&text, family));
                    match answer {
                        Ok(all) => {
                            let stats = if every_service {
                                all
                            } else {
                                stats::of_service(all, service)
                            };
                            read.proxies.insert(proxy_name(admin), stats);
                        }
                        Err(err) => read.unanswered.push(format!("{}: {err:#}", admin.base())),
                    }
                }
                if read.proxies.is_empty() {
                    bail!("no admin endpoint answered: {}", read.unanswered.join("; "));
                }
                Ok(read)
            }
            Source::Prometheus {
                prometheus,
                service,
            } => Ok(FleetStats {
                proxies: prometheus.family_stats_by_proxy(service, family)?,
                unanswered: Vec::new(),
            }),
        }
    }
}

/// One read of every proxy of a source: each proxy's series, and the admin endpoints that did
/// not answer.
#[derive(Debug, Clone, Default)]
pub struct FleetStats {
    /// Each proxy's series by service, version and rule, by the proxy's name.
    pub proxies: FleetReading<SeriesKey>,
    /// The admin endpoints that did not answer, each with why.
    pub unanswered: Vec<String>,
}

/// An admin endpoint's name in a fleet reading: its address without the scheme.
pub(crate) fn proxy_name(admin: &Admin) -> String {
    let base = admin.base();
    base.strip_prefix("http://").unwrap_or(base).to_string()
}

/// The counts of rule `rule` of `service` per version in the filter's metrics: requests,
/// responses by class and the latency histogram's buckets, `+Inf` included. A version is there
/// once it has a response or a latency bucket.
pub fn counts_of_rule(stats: &FilterStats, service: &str, rule: &str) -> MetricsReading {
    stats
        .iter()
        .filter(|(key, counts)| {
            key.rule == rule
                && key.service == service
                && (counts.answered() > 0 || !counts.latency.is_empty())
        })
        .map(|(key, counts)| (key.version.clone(), counts.clone()))
        .collect()
}
