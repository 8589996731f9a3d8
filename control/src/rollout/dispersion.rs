//! How bursty an event is: the intra-interval correlation of one version's requests, estimated
//! from the intervals already seen, and the design effect it gives an interval's count.
//!
//! Real 5xx come in bursts (one bad pod, a retry storm, a hot key): within an interval the
//! requests are correlated, and an interval's count varies far more than a binomial's. The
//! model is the beta-binomial: each interval's rate is drawn around the mean, and the requests
//! of an interval of `n` share it, so the count's variance is the binomial's times the design
//! effect `1 + (n − 1)·ρ`, with `ρ` the intra-interval correlation. Dividing an interval's
//! count and requests by its design effect gives the binomial with the same mean and variance
//! (Rao and Scott, "A simple method for the analysis of clustered binary data", Biometrics
//! 48, 1992), which is what the judge's evidence then reads.
//!
//! `ρ` is estimated with the analysis-of-variance estimator of the intraclass correlation for
//! binary data (Fleiss, "Statistical Methods for Rates and Proportions", 2nd ed., 1981, §13.2;
//! compared with the alternatives by Ridout, Demétrio and Firth, "Estimating intraclass
//! correlation for binary data", Biometrics 55, 1999), the intervals as the groups:
//!
//! ```text
//! MSB = (Σ x²/n − X²/N) / (T − 1)      between intervals
//! MSW = (X − Σ x²/n) / (N − T)         within intervals
//! n0  = (N − Σ n²/N) / (T − 1)
//! ρ   = (MSB − MSW) / (MSB + (n0 − 1)·MSW)
//! ```
//!
//! over `T` intervals with `x` events among `n` requests each, `X` and `N` their sums. The
//! judge uses an upper confidence limit rather than the estimate, from the ratio `MSB / MSW`,
//! which is about `(1 + (n0 − 1)ρ)·χ²(T − 1)/(T − 1)` (the interval for an intraclass
//! correlation of Searle, "Linear Models", 1971, §9.8): with few intervals a burst is easily
//! missed, and an estimate too low would count a burst as evidence.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The one-sided confidence of the upper limit on `ρ` the judge uses.
pub const CONFIDENCE: f64 = 0.8;

/// One side's counts of one event, interval by interval, as the sums the estimator needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Intervals with at least one request.
    intervals: u64,
    /// Requests, all intervals.
    requests: f64,
    /// Events, all intervals.
    events: f64,
    /// Σ x²/n.
    events_squared_per_request: f64,
    /// Σ n².
    requests_squared: f64,
}

impl Spread {
    /// Adds one interval's `events` among `requests`; an empty interval adds nothing.
    pub fn add(&mut self, events: u64, requests: u64) {
        if requests == 0 {
            return;
        }
        let (x, n) = (events as f64, requests as f64);
        self.intervals += 1;
        self.requests += n;
        self.events += x;
        self.events_squared_per_request += x * x / n;
        self.requests_squared += n * n;
    }

    /// Intervals added (with requests).
    pub fn intervals(&self) -> u64 {
        self.intervals
    }

    /// `(MSB / MSW, n0)`: `None` with fewer than two intervals, or without variation within
    /// intervals to compare with (no event, or every request an event).
    fn ratio(&self) -> Option<(f64, f64)> {
        let (t, n, x) = (self.intervals as f64, self.requests, self.events);
        if self.intervals < 2 || n <= t {
            return None;
        }
        let between = (self.events_squared_per_request - x * x / n).max(0.0) / (t - 1.0);
        let within = (x - self.events_squared_per_request) / (n - t);
        if within <= 0.0 {
            return None;
        }
        let n0 = (n - self.requests_squared / n) / (t - 1.0);
        Some((between / within, n0))
    }

    /// The ANOVA estimate of the intra-interval correlation (can be below 0 by chance).
    pub fn estimate(&self) -> Option<f64> {
        let (f, n0) = self.ratio()?;
        Some((f - 1.0) / (f + n0 - 1.0))
    }

    /// The upper limit on `ρ` at `confidence` (one-sided), never below 0.
    pub fn upper(&self, confidence: f64) -> Option<f64> {
        let (f, n0) = self.ratio()?;
        let df = (self.intervals - 1) as f64;
        let quantile = ChiSquared::new(df).ok()?.inverse_cdf(1.0 - confidence) / df;
        let f_upper = f / quantile.max(1e-12);
        Some(((f_upper - 1.0) / (f_upper + n0 - 1.0)).max(0.0))
    }
}

/// The design effect of an interval of `requests` at intra-interval correlation `rho`: the
/// factor by which its count's variance exceeds the binomial's.
pub fn design_effect(requests: u64, rho: f64) -> f64 {
    1.0 + (requests.saturating_sub(1) as f64) * rho.max(0.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance,
            "got {got}, want {want} (± {tolerance})"
        );
    }

    fn spread(data: &[(u64, u64)]) -> Spread {
        let mut s = Spread::default();
        for &(x, n) in data {
            s.add(x, n);
        }
        s
    }

    /// Worked by hand from the one-way analysis of variance of the 0/1 responses (Fleiss,
    /// §13.2): three intervals of 10 requests with 1, 5 and 3 events.
    /// Group means 0.1, 0.5, 0.3, grand mean 0.3. Between: SSB = 10·(0.04 + 0.04 + 0) = 0.8,
    /// MSB = 0.8/2 = 0.4. Within: each group's Σ(y − ȳ)² = n·p(1 − p) = 0.9, 2.5, 2.1, so
    /// SSW = 5.5 and MSW = 5.5/27. Equal sizes: n0 = 10.
    /// ρ = (0.4 − 5.5/27) / (0.4 + 9·5.5/27) = (5.3/27) / (60.3/27) = 53/603.
    #[test]
    fn the_estimate_matches_a_one_way_anova_worked_by_hand() {
        let s = spread(&[(1, 10), (5, 10), (3, 10)]);
        close(s.estimate().unwrap(), 53.0 / 603.0, 1e-12);
    }

    /// Unequal sizes, by hand: (2 of 4), (1 of 6), (6 of 10). N = 20, X = 9, grand mean 0.45.
    /// Group means 0.5, 1/6, 0.6. SSB = Σ n(p − 0.45)² = 4·0.0025 + 6·(17/60)² + 10·0.0225
    /// = 0.01 + 0.481667 + 0.225 = 0.716667 (= 43/60), MSB = 43/120.
    /// SSW = Σ n·p(1 − p) = 1 + 5/6 + 2.4 = 127/30, MSW = (127/30)/17 = 127/510.
    /// n0 = (20 − (16 + 36 + 100)/20)/2 = (20 − 7.6)/2 = 6.2.
    /// ρ = (43/120 − 127/510) / (43/120 + 5.2·127/510).
    #[test]
    fn unequal_intervals_use_the_adjusted_group_size() {
        let s = spread(&[(2, 4), (1, 6), (6, 10)]);
        let (msb, msw, n0) = (43.0 / 120.0, 127.0 / 510.0, 6.2);
        close(
            s.estimate().unwrap(),
            (msb - msw) / (msb + (n0 - 1.0) * msw),
            1e-12,
        );
    }

    /// The upper limit by hand: three intervals of 10 (1, 5, 3 events), F = MSB/MSW =
    /// 0.4·27/5.5 = 1.963636…; the 20 % quantile of χ² with 2 degrees of freedom is
    /// −2·ln(0.8) = 0.446287 (its cdf is 1 − e^(−x/2)), so F_U = F/(0.446287/2) = 8.79991 and
    /// ρ_U = (F_U − 1)/(F_U + 9) = 0.438198.
    #[test]
    fn the_upper_limit_with_two_degrees_of_freedom() {
        let s = spread(&[(1, 10), (5, 10), (3, 10)]);
        let f = 0.4 * 27.0 / 5.5;
        let q = -2.0 * 0.8f64.ln() / 2.0;
        let f_u = f / q;
        close(s.upper(0.8).unwrap(), (f_u - 1.0) / (f_u + 9.0), 1e-9);
        close(s.upper(0.8).unwrap(), 0.438198, 1e-6);
    }

    /// Binomial-looking counts give an estimate below 0 (less spread than chance) and an upper
    /// limit near 0; fewer than two intervals, or no events at all, give nothing.
    #[test]
    fn edges() {
        let even = spread(&[(10, 1000), (10, 1000), (10, 1000), (10, 1000)]);
        assert!(even.estimate().unwrap() < 0.0);
        assert!(even.upper(0.8).unwrap() < 1e-3);
        assert!(spread(&[(10, 1000)]).estimate().is_none());
        assert!(spread(&[(0, 1000), (0, 1000)]).estimate().is_none());
        assert!(spread(&[(5, 5), (3, 3)]).estimate().is_none());
        let mut empty = spread(&[(1, 10), (5, 10)]);
        empty.add(0, 0);
        assert_eq!(empty.intervals(), 2);
        close(design_effect(101, 0.01), 2.0, 1e-12);
        close(design_effect(0, 0.01), 1.0, 1e-12);
    }
}
