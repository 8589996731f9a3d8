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
//! statistics and safe anytime-valid inference", 2023). When the requests of an interval are
//! correlated (bursts), each side's counts are divided by its design effect before the
//! likelihood ratio is taken ([`interval_log_e_bursty`], [`crate::rollout::dispersion`]): the e-value is
//! then that of the binomial with the count's mean and variance, valid to the extent that the
//! correlation estimated from the earlier intervals bounds the current one's. This is the design of Netflix's
//! sequential canary tests (Lindon et al., KDD 2022), with the nuisance rate of stable removed
//! by the projection rather than by a Poisson model.

use serde::Serialize;

use crate::rollout::dispersion::{self, design_effect, Spread};

/// The most intra-interval correlation the judge's guarantee covers (see
/// [`crate::rollout::dispersion`]): assumed for a side before it has intervals to estimate it from, and
/// the cap of the estimates (intervals of a few requests cannot rule out large correlations,
/// and read at a later step's larger intervals such a limit would discount everything).
pub const BURST_PRIOR: f64 = 0.01;

/// The confidence of the upper limit on the canary's own correlation. Lower than stable's: the
/// canary has few intervals, at small and changing sizes, and an upper limit at stable's
/// confidence would discount a canary with no burst at all several-fold.
pub const CANARY_CONFIDENCE: f64 = 0.8;

/// Intervals of the canary read with [`BURST_PRIOR`] before its own estimate is used.
pub const CANARY_INTERVALS: u64 = 3;

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
    null_point_weighted(bound, a, b, n_c as f64, n_s as f64)
}

/// [`null_point`] with sample sizes that need not be whole: the effective sizes of bursty
/// intervals (each side's requests divided by its design effect).
fn null_point_weighted(bound: Bound, a: f64, b: f64, n_c: f64, n_s: f64) -> Option<(f64, f64)> {
    if n_c <= 0.0 || !(a > 0.0 && a < 1.0) {
        return None;
    }
    if bound.ratio == 0.0 {
        let a0 = bound.margin;
        return (a0 > 0.0 && a0 < a).then_some((a0, b));
    }
    if n_s <= 0.0 || !(b > 0.0 && b < 1.0) || bound.at(b) >= a {
        return None;
    }
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
    interval_log_e_bursty(bound, tally, a, b, (1.0, 1.0))
}

/// [`interval_log_e`] for bursty counts: each side's events and requests divided by its design
/// effect `(canary, stable)` (see [`crate::rollout::dispersion`]), the binomial with the same mean and
/// variance as the beta-binomial count (Rao and Scott, 1992). Effects of 1 are the binomial.
pub fn interval_log_e_bursty(
    bound: Bound,
    tally: Tally,
    a: f64,
    b: f64,
    effect: (f64, f64),
) -> f64 {
    let scale = |x: u64, n: u64, effect: f64| {
        let effect = effect.max(1.0);
        (x as f64 / effect, n as f64 / effect)
    };
    let (canary, canary_n) = scale(tally.canary, tally.canary_n, effect.0);
    let (stable, stable_n) = scale(tally.stable, tally.stable_n, effect.1);
    let Some((a0, b0)) = null_point_weighted(bound, a, b, canary_n, stable_n) else {
        return 0.0;
    };
    let side = |x: f64, n: f64, p: f64, p0: f64| {
        let rest = (n - x).max(0.0);
        let mut log = 0.0;
        if x > 0.0 {
            log += x * (p.ln() - p0.ln());
        }
        if rest > 0.0 {
            log += rest * ((-p).ln_1p() - (-p0).ln_1p());
        }
        log
    };
    let mut log = side(canary, canary_n, a, a0);
    if bound.ratio != 0.0 {
        log += side(stable, stable_n, b, b0);
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
///
/// The null may be a union of bounds (the ceiling: "under a fixed rate, or no worse than
/// stable"), true in each interval through one bound or the other, not always the same one.
/// Each expert's interval e-value is then the smallest of its e-values against each bound, at
/// one alternative above all of them: whichever bound holds in an interval, the smallest is at
/// most its e-value there, so its expectation is at most 1, and the products and their mixture
/// stay test supermartingales. (Running one product per bound and failing when the smaller of
/// the products crosses is not valid: each product grows in the intervals where its own bound
/// is false.)
///
/// Each side's counts are read through its design effect (see [`crate::rollout::dispersion`]), from the
/// intra-interval correlation estimated on the intervals before this one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequential {
    bounds: Vec<Bound>,
    log_wealth: Vec<f64>,
    peak_log: f64,
    intervals: u64,
    canary_spread: Spread,
    stable_spread: Spread,
    /// The design effects the last interval was read with, (canary, stable).
    last_effect: (f64, f64),
    /// The intra-interval correlations they came from.
    last_burstiness: (f64, f64),
    /// Read every count as binomial (no burst correction).
    binomial: bool,
}

impl Sequential {
    /// No evidence yet (an e-value of 1), against one bound.
    pub fn new(bound: Bound) -> Sequential {
        Sequential::either(vec![bound])
    }

    /// No evidence yet, against a null that holds when the canary's rate is under any one of
    /// `bounds`.
    pub fn either(bounds: Vec<Bound>) -> Sequential {
        Sequential {
            bounds,
            log_wealth: vec![0.0; EXPERTS.len()],
            peak_log: 0.0,
            intervals: 0,
            canary_spread: Spread::default(),
            stable_spread: Spread::default(),
            last_effect: (1.0, 1.0),
            last_burstiness: (0.0, 0.0),
            binomial: false,
        }
    }

    /// The same, reading every count as binomial: the requests independent, no burst
    /// correction.
    pub fn binomial(mut self) -> Sequential {
        self.binomial = true;
        self
    }

    /// The intra-interval correlation each side's counts are read with, `(canary, stable)`,
    /// from the intervals before this one: stable's upper limit (or [`BURST_PRIOR`] before two
    /// intervals), and for the canary the larger of its own and stable's.
    pub fn burstiness(&self) -> (f64, f64) {
        if self.binomial {
            return (0.0, 0.0);
        }
        let own = |spread: &Spread, confidence: f64, needs: u64| {
            if spread.intervals() < needs {
                BURST_PRIOR
            } else {
                spread.upper(confidence).unwrap_or(0.0).min(BURST_PRIOR)
            }
        };
        let stable = own(&self.stable_spread, dispersion::CONFIDENCE, 2);
        let canary = own(&self.canary_spread, CANARY_CONFIDENCE, CANARY_INTERVALS).max(stable);
        (canary, stable)
    }

    /// Adds one interval. `stable_guess` is stable's rate of the event as predicted from data
    /// before this interval, never from this interval's own counts: the validity rests on it.
    pub fn update(&mut self, tally: Tally, stable_guess: f64) {
        let b = stable_guess.clamp(1e-9, 1.0 - 1e-9);
        let (rho_c, rho_s) = self.burstiness();
        let effect = (
            design_effect(tally.canary_n, rho_c),
            design_effect(tally.stable_n, rho_s),
        );
        let top = self
            .bounds
            .iter()
            .map(|bound| bound.at(b))
            .fold(f64::NEG_INFINITY, f64::max);
        for (wealth, distance) in self.log_wealth.iter_mut().zip(EXPERTS) {
            if !(top > 0.0 && top < 1.0) {
                continue;
            }
            let a = logistic(logit(top) + distance);
            let log = self
                .bounds
                .iter()
                .map(|&bound| interval_log_e_bursty(bound, tally, a, b, effect))
                .fold(f64::INFINITY, f64::min);
            if log.is_finite() {
                *wealth += log;
            }
        }
        self.canary_spread.add(tally.canary, tally.canary_n);
        self.stable_spread.add(tally.stable, tally.stable_n);
        self.last_effect = effect;
        self.last_burstiness = (rho_c, rho_s);
        self.intervals += 1;
        self.peak_log = self.peak_log.max(self.log_e());
    }

    /// The design effects the last interval was read with, `(canary, stable)`.
    pub fn last_effect(&self) -> (f64, f64) {
        self.last_effect
    }

    /// The intra-interval correlations the last interval was read with, `(canary, stable)`.
    pub fn last_burstiness(&self) -> (f64, f64) {
        self.last_burstiness
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Binomial, Distribution};

    // The reference values come from SciPy 1.17.1, computed from the definitions by other
    // means than this module: the null point by minimising the weighted divergence
    // (`minimize_scalar(f, bounds=(b, (a - margin) / ratio), method='bounded',
    // options={'xatol': 1e-15, 'maxiter': 2000})` with
    // `f = lambda b0: nc*KL(a, ratio*b0 + margin) + ns*KL(b, b0)`) instead of finding the
    // root of its slope, and the likelihoods with `scipy.stats.binom.logpmf`:
    // `log_e = binom.logpmf(xc, nc, a) - binom.logpmf(xc, nc, a0) + binom.logpmf(xs, ns, b)
    // - binom.logpmf(xs, ns, b0)`.

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance,
            "got {got}, want {want} (± {tolerance})"
        );
    }

    const ERRORS: Bound = Bound {
        ratio: 1.0,
        margin: 0.01,
    };

    #[test]
    fn the_null_point_matches_scipy() {
        // null_point(1, 0.01, 0.03, 0.01, 500, 9500) = (0.020262223111944512, 0.010262223111944514)
        let (a0, b0) = null_point(ERRORS, 0.03, 0.01, 500, 9500).unwrap();
        close(a0, 0.020262223111944512, 1e-9);
        close(b0, 0.010262223111944514, 1e-9);
    }

    /// Without a margin the null point is the pooled rate, `(n_c·a + n_s·b) / (n_c + n_s)`: the
    /// reverse information projection of a 2x2 table (Turner, Ly and Grünwald, "Generic
    /// e-variables for exact sequential k-sample tests that allow for optional stopping",
    /// Statistics & Probability Letters, 2024).
    #[test]
    fn without_a_margin_the_null_point_is_the_pooled_rate() {
        let same = Bound {
            ratio: 1.0,
            margin: 0.0,
        };
        for (a, b, n_c, n_s) in [(0.3, 0.1, 100, 100), (0.3, 0.1, 30, 970), (0.9, 0.5, 7, 3)] {
            let pooled = (n_c as f64 * a + n_s as f64 * b) / (n_c + n_s) as f64;
            let (a0, b0) = null_point(same, a, b, n_c, n_s).unwrap();
            close(a0, pooled, 1e-12);
            close(b0, pooled, 1e-12);
        }
    }

    #[test]
    fn interval_e_values_match_scipy() {
        // log_e(1, 0.01, 20, 500, 95, 9500, 0.03, 0.01) = 3.0865475649144596: canary worse.
        let worse = Tally {
            canary: 20,
            canary_n: 500,
            stable: 95,
            stable_n: 9500,
        };
        close(
            interval_log_e(ERRORS, worse, 0.03, 0.01),
            3.0865475649144596,
            1e-7,
        );
        // log_e(1, 0.01, 5, 500, 95, 9500, 0.03, 0.01) = -2.949873177606948: canary as good
        // as stable, evidence for the null (the other tail gives none against it).
        let same = Tally { canary: 5, ..worse };
        close(
            interval_log_e(ERRORS, same, 0.03, 0.01),
            -2.949873177606948,
            1e-7,
        );
        // log_e(0, 0.05, 12, 100, 0, 0, 0.1, 0.5) = 3.5598506949350757: against a fixed 5 %.
        let ceiling = Bound {
            ratio: 0.0,
            margin: 0.05,
        };
        let twelve = Tally {
            canary: 12,
            canary_n: 100,
            stable: 0,
            stable_n: 0,
        };
        close(
            interval_log_e(ceiling, twelve, 0.1, 0.5),
            3.5598506949350757,
            1e-12,
        );
        // One canary request against a million stable ones. The divergence is too flat there
        // for minimize_scalar's tolerance (it gives 6.0027880); SciPy's Brent root of the
        // slope, `brentq(g, b, (a - margin)/ratio, xtol=1e-20, rtol=8.9e-16)` with `g` the
        // slope in `null_point`'s documentation, gives b0 = 0.0010002989997010003 and
        // log_e = 6.002782564437098.
        let skewed = Tally {
            canary: 1,
            canary_n: 1,
            stable: 0,
            stable_n: 1_000_000,
        };
        let none = Bound {
            ratio: 1.0,
            margin: 0.0,
        };
        close(
            interval_log_e(none, skewed, 0.3, 0.001),
            6.002782564437098,
            1e-9,
        );
    }

    /// The mixture over the experts, three intervals with drifting stable guesses:
    /// `logsumexp(w) - log(9)` where `w[k]` sums the SciPy log e-values above of each interval
    /// with `a = expit(logit(b + 0.01) + d_k)`, `d_k` in 0.05 … 12.8:
    /// tallies (3, 100, 10, 900), (9, 250, 8, 750), (16, 500, 4, 500), guesses 0.01, 0.0125,
    /// 0.0111 → 0.995576874669494.
    #[test]
    fn the_running_mixture_matches_scipy() {
        let mut evidence = Sequential::new(ERRORS).binomial();
        for ((canary, canary_n, stable, stable_n), guess) in [
            ((3, 100, 10, 900), 0.01),
            ((9, 250, 8, 750), 0.0125),
            ((16, 500, 4, 500), 0.0111),
        ] {
            let tally = Tally {
                canary,
                canary_n,
                stable,
                stable_n,
            };
            evidence.update(tally, guess);
        }
        close(evidence.log_e(), 0.995576874669494, 1e-6);
        assert_eq!(evidence.intervals(), 3);
        assert!(evidence.peak() >= evidence.e_value());
    }

    fn binomial_pmf(n: u64, p: f64) -> Vec<f64> {
        // By the recurrence P(k+1) = P(k)·(n-k)/(k+1)·p/(1-p), from P(0) = (1-p)^n.
        let mut out = vec![(1.0 - p).powi(n as i32)];
        for k in 0..n {
            let last = out[k as usize];
            out.push(last * (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p));
        }
        out
    }

    /// The expectation of one interval's e-value, summed over every outcome.
    fn expectation(bound: Bound, a: f64, b: f64, n: (u64, u64), p: (f64, f64)) -> f64 {
        let (canary, stable) = (binomial_pmf(n.0, p.0), binomial_pmf(n.1, p.1));
        let mut sum = 0.0;
        for (x_c, pc) in canary.iter().enumerate() {
            for (x_s, ps) in stable.iter().enumerate() {
                let tally = Tally {
                    canary: x_c as u64,
                    canary_n: n.0,
                    stable: x_s as u64,
                    stable_n: n.1,
                };
                sum += pc * ps * interval_log_e(bound, tally, a, b).exp();
            }
        }
        sum
    }

    /// Exactly: the expectation is at most 1 at every null point (the boundary and inside),
    /// 1 at the nearest null point, and above 1 at the alternative.
    #[test]
    fn an_interval_e_value_is_valid_at_every_null_point() {
        let bound = Bound {
            ratio: 1.0,
            margin: 0.05,
        };
        let (a, b, n) = (0.4, 0.1, (7, 11));
        let (a0, b0) = null_point(bound, a, b, n.0, n.1).unwrap();
        close(expectation(bound, a, b, n, (a0, b0)), 1.0, 1e-9);
        let mut worst: f64 = 0.0;
        for i in 0..=40 {
            let p_s = i as f64 / 40.0 * 0.95;
            for inside in [0.0, 0.5, 1.0] {
                let p_c = (bound.at(p_s) * (1.0 - 0.5 * inside)).min(1.0);
                worst = worst.max(expectation(bound, a, b, n, (p_c, p_s)));
            }
        }
        assert!(worst <= 1.0 + 1e-9, "E[e] = {worst} at a null point");
        assert!(expectation(bound, a, b, n, (a, b)) > 1.5);
    }

    #[test]
    fn no_requests_no_evidence() {
        let empty = Tally::default();
        assert_eq!(interval_log_e(ERRORS, empty, 0.05, 0.01), 0.0);
        let canary_only = Tally {
            canary: 30,
            canary_n: 30,
            ..Tally::default()
        };
        assert_eq!(
            interval_log_e(ERRORS, canary_only, 0.05, 0.01),
            0.0,
            "no stable requests: nothing to compare with"
        );
        // Zero errors on both sides: evidence for the null, none against it.
        let clean = Tally {
            canary: 0,
            canary_n: 1000,
            stable: 0,
            stable_n: 9000,
        };
        assert!(interval_log_e(ERRORS, clean, 0.05, 0.01) < 0.0);
        let mut evidence = Sequential::new(ERRORS);
        evidence.update(empty, 0.01);
        assert_eq!(evidence.e_value(), 1.0);
    }

    /// The union null of the ceiling, at its worst: each interval on the edge of one half or
    /// the other, chosen at random (the canary at the 5 % ceiling with stable below it, or the
    /// canary equal to a stable above 5 %). Over 1,000 runs of 30 intervals the share whose
    /// evidence ever reaches 1/alpha = 10 stays under alpha = 10 % (plus three standard errors).
    #[test]
    fn the_union_evidence_crosses_1_over_alpha_at_most_alpha_of_the_time() {
        let ceiling = Bound {
            ratio: 0.0,
            margin: 0.05,
        };
        let same = Bound {
            ratio: 1.0,
            margin: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let runs = 1000;
        let mut crossed = 0;
        for _ in 0..runs {
            let mut evidence = Sequential::either(vec![ceiling, same]).binomial();
            let (mut seen, mut errors) = (0u64, 0u64);
            for t in 0..30u64 {
                let (p_c, p_s) = if Binomial::new(1, 0.5).unwrap().sample(&mut rng) == 1 {
                    (0.05, 0.02 + 0.02 * ((t as f64) / 5.0).sin().abs())
                } else {
                    let p = 0.06 + 0.03 * ((t as f64) / 7.0).sin().abs();
                    (p, p)
                };
                let (n_c, n_s) = (500, 1500);
                let tally = Tally {
                    canary: Binomial::new(n_c, p_c).unwrap().sample(&mut rng),
                    canary_n: n_c,
                    stable: Binomial::new(n_s, p_s).unwrap().sample(&mut rng),
                    stable_n: n_s,
                };
                evidence.update(tally, (errors as f64 + 0.5) / (seen as f64 + 1.0));
                seen += n_s;
                errors += tally.stable;
                if evidence.e_value() >= 10.0 {
                    crossed += 1;
                    break;
                }
            }
        }
        let share = crossed as f64 / runs as f64;
        assert!(
            share <= 0.1 + 3.0 * (0.1f64 * 0.9 / runs as f64).sqrt(),
            "{share}"
        );
    }

    /// Ville's inequality in practice: 4,000 runs of 60 intervals at the null's boundary, with
    /// stable's rate drifting from 0.2 % to 6 % and the canary's share of traffic changing;
    /// the share of runs whose evidence ever reaches 1/alpha = 10 stays under alpha = 10 %
    /// (plus three standard errors of the estimate).
    #[test]
    fn the_running_evidence_crosses_1_over_alpha_at_most_alpha_of_the_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let runs = 4000;
        let mut crossed = 0;
        for _ in 0..runs {
            let mut evidence = Sequential::new(ERRORS);
            let (mut seen, mut errors) = (0u64, 0u64);
            for t in 0..60u64 {
                let p_s = 0.002 + 0.058 * ((t as f64) / 9.0).sin().abs();
                let p_c = ERRORS.at(p_s);
                let n_c = [20, 100, 400, 1000][(t / 15) as usize];
                let n_s = 2000 - n_c;
                let tally = Tally {
                    canary: Binomial::new(n_c, p_c).unwrap().sample(&mut rng),
                    canary_n: n_c,
                    stable: Binomial::new(n_s, p_s).unwrap().sample(&mut rng),
                    stable_n: n_s,
                };
                let guess = (errors as f64 + 0.5) / (seen as f64 + 1.0);
                evidence.update(tally, guess);
                seen += n_s;
                errors += tally.stable;
                if evidence.e_value() >= 10.0 {
                    crossed += 1;
                    break;
                }
            }
        }
        let share = crossed as f64 / runs as f64;
        assert!(
            share <= 0.1 + 3.0 * (0.1f64 * 0.9 / runs as f64).sqrt(),
            "{share}"
        );
    }
}
