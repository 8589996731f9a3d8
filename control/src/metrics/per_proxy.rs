//! An interval's counts from two reads of a fleet, proxy by proxy: each proxy's counters are
//! subtracted on their own, then the differences are summed. Summing first and subtracting
//! afterwards mixes proxies up: when one proxy restarts (or anything else resets its filter's
//! counters) the sum drops, and a sum cannot tell whose counts went; taking the whole sum as the interval then counts every other proxy's lifetime
//! totals (a healthy canary rolled back for 503s of an earlier deployment, or a bad one hidden;
//! `status --watch` showing a fleet's lifetime as one refresh's traffic).
//!
//! Per proxy, between two reads (pure; the sources only read):
//! - a proxy in both reads whose counters all stayed or grew contributes each series'
//!   difference (per version, or per series: requests, responses by class, latency buckets by
//!   bound);
//! - a proxy with any series lower than before (or its latency buckets changed) **restarted**:
//!   its counters started again from zero within the interval, so all it counts now is new;
//! - a proxy only in the later read **joined**: it contributes nothing yet, its first read is
//!   its baseline (what it counted before it was first seen is not the interval's);
//! - a proxy only in the earlier read **left** (stopped, or no longer answering): it contributes
//!   nothing; what it counted after the earlier read is lost with it.
//!
//! A restart whose counters grow past their old values before the next read cannot be told
//! from growth: each series' reset is seen only when it shows as a drop, as in Prometheus's
//! `increase()`. Judging the proxy as a whole when any of its series dropped catches a restart
//! whose small counters (a version's few 5xx) grew back past their old value.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result};

use crate::metrics::counts::{Counts, MetricsReading};

/// One read of a fleet: each proxy's cumulative counts by version (or by series, `K`), by the
/// proxy's name (an admin endpoint's `host:port`, or a Prometheus target's `job/instance`).
pub type FleetReading<K = String> = BTreeMap<String, MetricsReading<K>>;

/// What happened to one proxy between two reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its counters went down: they started again within the interval.
    Restarted,
    /// New in the later read.
    Joined,
    /// Missing from the later read.
    Left,
}

/// A proxy whose counts did not simply grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetChange {
    /// The proxy's name.
    pub proxy: String,
    /// What happened to it.
    pub change: Change,
}

impl fmt::Display for FleetChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.change {
            Change::Restarted => "restarted",
            Change::Joined => "joined",
            Change::Left => "left",
        };
        write!(f, "{} {what}", self.proxy)
    }
}

/// The counts of an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval<K = String> {
    /// Counted in the interval per version (or series), summed over the proxies.
    pub counts: MetricsReading<K>,
    /// The proxies that restarted, joined or left, in name order.
    pub changes: Vec<FleetChange>,
}

impl<K> Default for Interval<K> {
    fn default() -> Self {
        Interval {
            counts: BTreeMap::new(),
            changes: Vec::new(),
        }
    }
}

impl<K: Ord> Interval<K> {
    /// What `key` (a version) counted in the interval (nothing when no proxy counted it).
    pub fn of<Q>(&self, key: &Q) -> Counts
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.counts.get(key).cloned().unwrap_or_default()
    }

    /// The fleet's changes in one line (`127.0.0.1:9901 restarted, envoy/a:1 left`), or `None`.
    pub fn fleet_line(&self) -> Option<String> {
        (!self.changes.is_empty()).then(|| {
            self.changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// What the fleet counted between the reads `before` and `now`, proxy by proxy (see the
/// module's documentation); an error when two proxies' latency buckets have different bounds.
pub fn interval<K: Ord + Clone>(
    before: &FleetReading<K>,
    now: &FleetReading<K>,
) -> Result<Interval<K>> {
    let mut interval = Interval::default();
    let zero = Counts::default();
    for (proxy, counts_now) in now {
        let Some(counts_before) = before.get(proxy) else {
            interval.changes.push(FleetChange {
                proxy: proxy.clone(),
                change: Change::Joined,
            });
            continue;
        };
        // A series gone from the proxy's read counts as zero: a drop too.
        let restarted = counts_before
            .iter()
            .any(|(key, then)| counts_now.get(key).unwrap_or(&zero).went_down_from(then))
            || counts_now.iter().any(|(key, now)| {
                counts_before
                    .get(key)
                    .is_some_and(|then| then.other_bounds(now))
            });
        if restarted {
            interval.changes.push(FleetChange {
                proxy: proxy.clone(),
                change: Change::Restarted,
            });
        }
        for (key, now) in counts_now {
            let counted = match counts_before.get(key) {
                Some(then) if !restarted => now.since(then)?,
                _ => now.clone(),
            };
            interval
                .counts
                .entry(key.clone())
                .or_default()
                .add(&counted)
                .with_context(|| format!("adding the counts of {proxy}"))?;
        }
    }
    for proxy in before.keys().filter(|proxy| !now.contains_key(*proxy)) {
        interval.changes.push(FleetChange {
            proxy: proxy.clone(),
            change: Change::Left,
        });
    }
    interval.changes.sort_by(|a, b| a.proxy.cmp(&b.proxy));
    Ok(interval)
}

/// Every proxy's counts summed per version (or series): the fleet's totals.
pub fn total<K: Ord + Clone>(reading: &FleetReading<K>) -> Result<MetricsReading<K>> {
    let mut total = MetricsReading::new();
    for (proxy, counts) in reading {
        for (key, counts) in counts {
            total
                .entry(key.clone())
                .or_default()
                .add(counts)
                .with_context(|| format!("adding the counts of {proxy}"))?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    /// Counts with `ok` 2xx and `errors` 5xx, every response in the 1 ms bucket.
    fn counts(ok: u64, errors: u64) -> Counts {
        Counts {
            requests: ok + errors,
            responses: [0, ok, 0, 0, errors],
            latency: vec![(1.0, ok + errors), (10.0, ok + errors), (INF, ok + errors)],
        }
    }

    fn read(proxies: &[(&str, &[(&str, Counts)])]) -> FleetReading {
        proxies
            .iter()
            .map(|(proxy, versions)| {
                let versions = versions
                    .iter()
                    .map(|(version, counts)| (version.to_string(), counts.clone()))
                    .collect();
                (proxy.to_string(), versions)
            })
            .collect()
    }

    fn change(proxy: &str, change: Change) -> FleetChange {
        FleetChange {
            proxy: proxy.to_string(),
            change,
        }
    }

    /// The defect: proxy `b` holds 503s of an earlier deployment and restarts; summed first,
    /// the fleet's total drops and the whole total (a's old 503s included) was taken as the
    /// interval. Per proxy: a's growth plus all b counted since its restart.
    #[test]
    fn a_restarted_proxy_counts_from_its_restart_and_the_others_their_differences() {
        let before = read(&[
            ("a", &[("canary", counts(4000, 1000))]),
            ("b", &[("canary", counts(4000, 1000))]),
        ]);
        let now = read(&[
            ("a", &[("canary", counts(4300, 1000))]),
            ("b", &[("canary", counts(200, 0))]),
        ]);
        let interval = interval(&before, &now).unwrap();
        assert_eq!(interval.of("canary"), counts(500, 0));
        assert_eq!(interval.changes, [change("b", Change::Restarted)]);
        assert_eq!(interval.fleet_line().as_deref(), Some("b restarted"));
        // What summing first gave: the total dropped (10000 to 5500), taken whole.
        let summed = |reading: &FleetReading| total(reading).unwrap()["canary"].clone();
        assert_eq!(
            summed(&now).since(&summed(&before)).unwrap(),
            counts(4500, 1000),
            "the old arithmetic, for the record"
        );
    }

    /// The other way round: a bad canary's new errors on a restarted proxy are not hidden by
    /// the others' growth (summed, 10000 → 10100 looks like 100 healthy responses).
    #[test]
    fn a_restarted_proxys_new_errors_are_counted() {
        let before = read(&[
            ("a", &[("canary", counts(5000, 0))]),
            ("b", &[("canary", counts(5000, 0))]),
        ]);
        let now = read(&[
            ("a", &[("canary", counts(5050, 0))]),
            ("b", &[("canary", counts(4000, 1050))]),
        ]);
        let interval = interval(&before, &now).unwrap();
        assert_eq!(interval.of("canary"), counts(4050, 1050));
        assert_eq!(interval.changes, [change("b", Change::Restarted)]);
    }

    /// One series going down is enough: the 5xx counter fell from 7 to 3 while 2xx grew past
    /// its old value; every series of the proxy is taken from zero.
    #[test]
    fn one_series_down_restarts_the_whole_proxy() {
        let before = read(&[("a", &[("canary", counts(100, 7))])]);
        let now = read(&[("a", &[("canary", counts(150, 3))])]);
        let interval = interval(&before, &now).unwrap();
        assert_eq!(interval.of("canary"), counts(150, 3));
        // A version gone from a proxy's read counts as zero: a drop too.
        let before = read(&[("a", &[("canary", counts(10, 0)), ("stable", counts(90, 0))])]);
        let now = read(&[("a", &[("stable", counts(95, 0))])]);
        let interval = super::interval(&before, &now).unwrap();
        assert_eq!(interval.changes, [change("a", Change::Restarted)]);
        assert_eq!(interval.of("stable"), counts(95, 0));
        assert_eq!(interval.of("canary"), Counts::default());
    }

    /// Only a bucket going down (the filter's histogram restarted, responses not yet counted
    /// again) is a restart too; buckets at other bounds (a module with other buckets) as well.
    #[test]
    fn latency_buckets_restart_like_counters() {
        let mut then = counts(100, 0);
        let mut now = counts(120, 0);
        now.latency = vec![(1.0, 20), (10.0, 20), (INF, 20)];
        let before = read(&[("a", &[("canary", then.clone())])]);
        let later = read(&[("a", &[("canary", now.clone())])]);
        let interval = interval(&before, &later).unwrap();
        assert_eq!(interval.changes, [change("a", Change::Restarted)]);
        assert_eq!(interval.of("canary"), now);

        then.latency = vec![(1.0, 100), (INF, 100)];
        now.latency = vec![(1.0, 120), (10.0, 120), (INF, 120)];
        let before = read(&[("a", &[("canary", then)])]);
        let later = read(&[("a", &[("canary", now.clone())])]);
        assert_eq!(
            super::interval(&before, &later).unwrap().changes,
            [change("a", Change::Restarted)]
        );
    }

    /// A joined proxy counts from its first read on; a proxy that left counts nothing; the
    /// changes are named in proxy order.
    #[test]
    fn joined_and_left_proxies() {
        let before = read(&[
            ("a", &[("canary", counts(100, 1))]),
            ("c", &[("canary", counts(900, 90))]),
        ]);
        let now = read(&[
            ("a", &[("canary", counts(150, 1))]),
            ("b", &[("canary", counts(5000, 500))]),
        ]);
        let first = interval(&before, &now).unwrap();
        assert_eq!(first.of("canary"), counts(50, 0));
        assert_eq!(
            first.changes,
            [change("b", Change::Joined), change("c", Change::Left)]
        );
        assert_eq!(first.fleet_line().as_deref(), Some("b joined, c left"));
        let later = read(&[
            ("a", &[("canary", counts(160, 1))]),
            ("b", &[("canary", counts(5020, 500))]),
        ]);
        let second = interval(&now, &later).unwrap();
        assert_eq!(second.of("canary"), counts(30, 0));
        assert!(second.changes.is_empty());
        assert_eq!(second.fleet_line(), None);
    }

    /// Steady proxies: each series' difference, summed; a version new on a proxy counts
    /// whole; buckets are matched by bound.
    #[test]
    fn steady_proxies_add_their_differences() {
        let before = read(&[
            (
                "a",
                &[("canary", counts(10, 1)), ("stable", counts(100, 0))],
            ),
            ("b", &[("stable", counts(200, 2))]),
        ]);
        let now = read(&[
            (
                "a",
                &[("canary", counts(20, 2)), ("stable", counts(130, 0))],
            ),
            ("b", &[("canary", counts(5, 0)), ("stable", counts(260, 2))]),
        ]);
        let interval = interval(&before, &now).unwrap();
        assert_eq!(interval.of("canary"), counts(15, 1));
        assert_eq!(interval.of("stable"), counts(90, 0));
        assert!(interval.changes.is_empty());
        assert_eq!(interval.of("other"), Counts::default());
    }

    /// Two proxies whose buckets have different bounds cannot be added: an error naming one.
    #[test]
    fn different_bounds_across_proxies_are_an_error() {
        let mut other = counts(10, 0);
        other.latency = vec![(2.0, 10), (INF, 10)];
        let now = read(&[
            ("a", &[("canary", counts(10, 0))]),
            ("b", &[("canary", other)]),
        ]);
        let before = read(&[("a", &[]), ("b", &[])]);
        let err = interval(&before, &now).unwrap_err();
        assert!(
            format!("{err:#}").contains("adding the counts of b"),
            "{err:#}"
        );
        assert!(total(&now).is_err());
    }
}
