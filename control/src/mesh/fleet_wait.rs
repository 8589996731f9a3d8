//! How long the fleet has to report running a change when `--fleet-timeout` is not given.
//!
//! Asked at their admin endpoints, Envoys report a change within a second of the write: 10 s.
//! Through Prometheus a proxy's new `canary_config_hash` is seen only at the next scrape of it,
//! and on the Istio target the change reaches the proxy only after istiod has pushed it:
//! istiod waits for a quiet spell before pushing (`PILOT_DEBOUNCE_AFTER`, 100 ms, up to
//! `PILOT_DEBOUNCE_MAX`, 10 s, while changes keep coming), and the agent may have to fetch the
//! module. Istio's sample Prometheus scrapes every 15 s. So the wait is twice the scrape
//! interval Prometheus reports for the service's proxies (a change that lands just after one
//! scrape is seen at the next, and a scrape can be late) plus [`PUSH_ALLOWANCE`], and never
//! less than the admin endpoints' 10 s.

use std::time::Duration;

/// The wait without Prometheus.
pub const DEFAULT_FLEET_TIMEOUT: Duration = Duration::from_secs(10);

/// What the push to the proxies may take on top of the scrapes: istiod's debounce at its
/// longest (`PILOT_DEBOUNCE_MAX`, 10 s).
pub const PUSH_ALLOWANCE: Duration = Duration::from_secs(10);

/// The wait for a fleet confirmed through a Prometheus that scrapes its proxies every `scrape`.
pub fn derived(scrape: Duration) -> Duration {
    scrape * 2 + PUSH_ALLOWANCE
}

/// How the derived wait is said: `up to 40 s: twice the 15 s scrape interval + 10 s for
/// istiod's push`.
pub fn describe(scrape: Duration) -> String {
    format!(
        "up to {}: twice the {} scrape interval + {} for istiod's push",
        seconds(derived(scrape)),
        seconds(scrape),
        seconds(PUSH_ALLOWANCE),
    )
}

/// A duration in seconds as people read it: `15 s`, `1.5 s`.
pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_twice_the_scrape_interval_plus_istiods_push() {
        assert_eq!(derived(Duration::from_secs(15)), Duration::from_secs(40));
        assert_eq!(derived(Duration::from_secs(60)), Duration::from_secs(130));
        assert_eq!(derived(Duration::from_secs(1)), Duration::from_secs(12));
        assert_eq!(
            describe(Duration::from_secs(15)),
            "up to 40 s: twice the 15 s scrape interval + 10 s for istiod's push"
        );
        assert_eq!(
            describe(Duration::from_millis(1500)),
            "up to 13 s: twice the 1.5 s scrape interval + 10 s for istiod's push"
        );
    }
}
