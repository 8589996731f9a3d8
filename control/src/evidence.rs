//! Anytime-valid evidence that the canary's rate of an event (a 5xx, a request slower than a
//! bound) is higher than a bound set by stable's rate of an event, from counts per interval.
//!
//! The null hypothesis, for every interval t: `p_canary,t ≤ ratio · p_stable,t + margin`, the
//! requests of each version independent with those mean rates. Rates may drift from one interval
//! to the next, and the canary's share of the traffic may change, without harm: the evidence of
//! each interval is an e-value of that interval alone.
//!
//! One interval's e-value, for a point alternative `(a, b)` (canary rate `a` above the bound,
//! stable rate `b`), is the likelihood ratio of the two binomial counts against the point
//! `(a0, b0)` of the null's boundary nearest to the alternative in Kullback-Leibler divergence,
//! weighted by the two sample sizes. Its expectation is at most 1 under every null point, not
//! only under `(a0, b0)`: with `g(p) = p·a/a0 + (1-p)(1-a)/(1-a0)` (and `h` likewise for
//! stable), `E[e] = g(p_c)^n_c · h(p_s)^n_s`; `g` grows with `p_c`, so the worst null point lies
//! on the boundary, where the logarithm is concave in `p_s`, zero at `b0`, and has its
//! derivative zero there by the choice of `b0`. This is the reverse information projection of
//! safe testing (Grünwald, de Heide and Koolen, "Safe testing", 2024), worked out for two
//! binomials; with unequal per-request rates of mean `p`, `Π g(p_i) ≤ g(p)^n` by concavity of
//! the logarithm, so the bound holds for the mean rates.
//!
//! The running evidence is a mixture, with equal weights, of products of those e-values over
//! the intervals, one product per alternative ("expert"): each expert sits a fixed distance in
//! log-odds above the null's bound at stable's rate predicted from data before the interval.
//! A product of e-values each valid given the past is a test supermartingale, and so is a
//! mixture of them; by Ville's inequality it exceeds `1/α` at any time, however the test is
//! stopped, with probability at most `α` (Ramdas, Grünwald, Vovk and Shafer, "Game-theoretic
//! statistics and safe anytime-valid inference", 2023). This is the design of Netflix's
//! sequential canary tests (Lindon et al., KDD 2022), with the nuisance rate of stable removed
//! by the projection rather than by a Poisson model.

use serde::Serialize;

/// Log-odds distances of the experts above the null's bound: 2 % more relative odds up to
/// 12.8 nats, so a small excess and a total failure each have an expert close to them.
pub const EXPERTS: [f64; 9] = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8];

/// The null's bound on the canary's rate: `ratio · stable + margin`. `ratio` 0 compares the
/// canary with a fixed rate and leaves stable out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    /// Multiplies stable's rate (1 or 0 in the judge).
    pub ratio: f64,
    /// Added, as a probability (0.01 is one percentage point).
    pub margin: f64,
}

impl Bound {
    /// The bound at stable's rate `stable`.
    pub fn at(&self, stable: f64) -> f64 {
        self.ratio * stable + self.margin
    }
}

/// One interval's counts of the event on each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Canary requests with the event.
    pub canary: u64,
    /// Canary requests.
    pub canary_n: u64,
    /// Stable requests with the event.
    pub stable: u64,
    /// Stable requests.
    pub stable_n: u64,
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The point `(a0, b0)` of the null's boundary nearest to the alternative `(a, b)`, given the
/// sample sizes: the root of `n_c·ratio·(a − a0)/(a0(1 − a0)) + n_s·(b − b0)/(b0(1 − b0))` with
/// `a0 = ratio·b0 + margin`. `None` when the alternative is not above the bound or no sample
/// can carry evidence (an empty side).
pub fn null_point(bound: Bound, a: f64, b: f64, n_c: u64, n_s: u64) -> Option<(f64, f64)> {
    if n_c == 0 || !(a > 0.0 && a < 1.0) {
        return None;
    }
    if bound.ratio == 0.0 {
        let a0 = bound.margin;
        return (a0 > 0.0 && a0 < a).then_some((a0, b));
    }
    if n_s == 0 || !(b > 0.0 && b < 1.0) || bound.at(b) >= a {
        return None;
    }
    let (n_c, n_s) = (n_c as f64, n_s as f64);
    let slope = |b0: f64| {
        let a0 = bound.at(b0);
        n_c * bound.ratio * (a - a0) / (a0 * (1.0 - a0)) + n_s * (b - b0) / (b0 * (1.0 - b0))
    };
    // The slope falls as b0 grows; it is positive at b and negative where a0 reaches a.
    let (mut lo, mut hi) = (b, ((a - bound.margin) / bound.ratio).min(1.0));
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if slope(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let b0 = 0.5 * (lo + hi);
    Some((bound.at(b0), b0))
}

/// The log of one interval's e-value for the point alternative `(a, b)`; 0 (an e-value of 1)
/// when the interval can carry no evidence.
pub fn interval_log_e(bound: Bound, tally: Tally, a: f64, b: f64) -> f64 {
    let Some((a0, b0)) = null_point(bound, a, b, tally.canary_n, tally.stable_n) else {
        return 0.0;
    };
    let side = |x: u64, n: u64, p: f64, p0: f64| {
        let (x, rest) = (x as f64, n.saturating_sub(x) as f64);
        let mut log = 0.0;
        if x > 0.0 {
            log += x * (p.ln() - p0.ln());
        }
        if rest > 0.0 {
            log += rest * ((-p).ln_1p() - (-p0).ln_1p());
        }
        log
    };
    let mut log = side(tally.canary, tally.canary_n, a, a0);
    if bound.ratio != 0.0 {
        log += side(tally.stable, tally.stable_n, b, b0);
    }
    log
}

/// The alternative of one expert: `distance` in log-odds above the bound at stable's rate `b`;
/// `None` when the bound leaves no room below 1.
pub fn expert_alternative(bound: Bound, b: f64, distance: f64) -> Option<f64> {
    let at = bound.at(b);
    (at > 0.0 && at < 1.0).then(|| logistic(logit(at) + distance))
}

/// The running evidence of one comparison: a test supermartingale under the null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequential {
    bound: Bound,
    log_wealth: Vec<f64>,
    peak_log: f64,
    intervals: u64,
}

impl Sequential {
    /// No evidence yet (an e-value of 1).
    pub fn new(bound: Bound) -> Sequential {
        Sequential {
            bound,
            log_wealth: vec![0.0; EXPERTS.len()],
            peak_log: 0.0,
            intervals: 0,
        }
    }

    /// Adds one interval. `stable_guess` is stable's rate of the event as predicted from data
    /// before this interval, never from this interval's own counts: the validity rests on it.
    pub fn update(&mut self, tally: Tally, stable_guess: f64) {
        let b = stable_guess.clamp(1e-9, 1.0 - 1e-9);
        for (wealth, distance) in self.log_wealth.iter_mut().zip(EXPERTS) {
            if let Some(a) = expert_alternative(self.bound, b, distance) {
                *wealth += interval_log_e(self.bound, tally, a, b);
            }
        }
        self.intervals += 1;
        self.peak_log = self.peak_log.max(self.log_e());
    }

    /// The log of the e-value now: the mean of the experts' wealth.
    pub fn log_e(&self) -> f64 {
        let top = self
            .log_wealth
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = self.log_wealth.iter().map(|w| (w - top).exp()).sum();
        top + (sum / self.log_wealth.len() as f64).ln()
    }

    /// The e-value now.
    pub fn e_value(&self) -> f64 {
        self.log_e().min(700.0).exp()
    }

    /// The largest e-value so far; `1/peak` is an anytime-valid p-value.
    pub fn peak(&self) -> f64 {
        self.peak_log.min(700.0).exp()
    }

    /// Intervals added.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }
}
