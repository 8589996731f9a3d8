//! The judge: canary against stable, interval after interval, with evidence that stays valid
//! however long the rollout watches and whenever it stops (see [`crate::rollout::evidence`]).
//!
//! A [`Judgement`] lasts one rollout. It is fed each interval's counts (differences of two
//! reads, never totals) and the step, and answers pass, hold or fail. Four checks, each a
//! running e-value against its own null hypothesis; a check fails when its e-value reaches
//! 1 / (its share of `alpha`) ([`ALPHA_WEIGHTS`]), so the chance that any check fails a canary
//! that meets every null is at most `alpha` over the whole rollout, every step and interval
//! together (Ville's inequality and a union bound):
//!
//! - `errors`: canary 5xx rate ≤ `--error-ratio` × stable's + `--error-margin` points.
//! - `ceiling`: canary 5xx rate ≤ `--max-error-rate`, or ≤ stable's, in each interval (either
//!   half may hold). It fails only with evidence against both: above the ceiling *and* worse
//!   than stable ([`Sequential::either`]).
//! - `latency`: the canary is no slower than stable plus `--latency-margin-ms`, read at one
//!   pair of bucket bounds `(Bs, Bc)` with `Bc ≥ Bs + margin`: the canary's share above `Bc` ≤
//!   stable's share above `Bs` (implied by "canary ≤ stable + margin" at every latency). The
//!   pair is the one where a shift of twice the margin would show most, read from stable's data
//!   before the interval.
//! - `latency_tail`: the same at stable's p99 bucket (the smallest bound with at most 1 % of
//!   stable's earlier requests above it): the canary's share above `Bs + margin` ≤ stable's share
//!   above `Bs`. Requests past the last bound are in the `+Inf` bucket: the slowest, never
//!   dropped.
//!
//! Counts are read through each side's design effect, from the burstiness of its earlier
//! intervals ([`crate::rollout::dispersion`]).
//!
//! A step passes when no check failed and, since the step began, each side has at least
//! `--min-requests` responses and the step has lasted `--min-intervals` intervals; the plan's
//! last judged step also waits for the canary traffic `--detect` asks for, when the step can
//! gather it within [`DETECT_MAX_INTERVALS`]. Buckets are
//! matched by their bounds: histograms with different bounds are an error, not a verdict.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::metrics::counts::{same_bounds, Counts};
use crate::rollout::evidence::{Bound, Sequential, Tally};

/// `part` of `whole` in percent; 0 of nothing.
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A latency histogram as disjoint counts: `counts[i]` holds the samples in
/// `(bounds[i-1], bounds[i]]`, and one more count the samples past the last finite bound.
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

impl Histogram {
    /// `None` for an empty histogram (a version Envoy has no samples of yet).
    fn from_counts(counts: &Counts, who: &str) -> Result<Option<Histogram>> {
        let points = &counts.latency;
        if points.is_empty() {
            return Ok(None);
        }
        let mut bounds = Vec::with_capacity(points.len());
        let mut disjoint = Vec::with_capacity(points.len() + 1);
        let mut previous: Option<(f64, u64)> = None;
        for (i, &(bound, cumulative)) in points.iter().enumerate() {
            let last = i + 1 == points.len();
            let finite_ok = bound.is_finite() && bound > 0.0;
            if !(finite_ok || (last && bound == f64::INFINITY)) {
                bail!("{who}'s latency histogram has a bad bucket bound {bound}");
            }
            if let Some((before, count)) = previous {
                if bound <= before {
                    bail!(
                        "{who}'s latency histogram bounds do not increase: {bound} after {before}"
                    );
                }
                if cumulative < count {
                    bail!(
                        "{who}'s latency histogram is not cumulative: {cumulative} at {bound} after {count}"
                    );
                }
            }
            let below = previous.map_or(0, |p| p.1);
            disjoint.push(cumulative - below);
            if bound.is_finite() {
                bounds.push(bound);
            }
            previous = Some((bound, cumulative));
        }
        if points.last().is_some_and(|p| p.0.is_finite()) {
            // No +Inf bucket given: nothing is known past the last bound.
            disjoint.push(0);
        }
        Ok(Some(Histogram {
            bounds,
            counts: disjoint,
        }))
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples above bound `i` (`i == bounds.len()` is `+Inf`: none).
    fn above(&self, i: usize) -> u64 {
        self.counts.iter().skip(i + 1).sum()
    }

    fn add(&mut self, other: &Histogram) {
        for (have, add) in self.counts.iter_mut().zip(&other.counts) {
            *have += add;
        }
    }

    /// The share at or below `x` ms, linear inside a bucket, for predictions only.
    fn cdf(&self, x: f64) -> f64 {
        let total = self.total() as f64;
        if total == 0.0 || x <= 0.0 {
            return 0.0;
        }
        let mut below = 0.0;
        let mut lower = 0.0;
        for (i, &bound) in self.bounds.iter().enumerate() {
            let count = self.counts[i] as f64;
            if x <= bound {
                return (below + count * (x - lower) / (bound - lower)) / total;
            }
            below += count;
            lower = bound;
        }
        below / total
    }

    fn quantile(&self, q: f64) -> f64 {
        let total = self.total();
        let rank = q * total as f64;
        let (mut below, mut lower) = (0u64, 0.0);
        for (i, &bound) in self.bounds.iter().enumerate() {
            let count = self.counts[i];
            if count > 0 && (below + count) as f64 >= rank {
                let within = (rank - below as f64) / count as f64;
                return lower + (bound - lower) * within.clamp(0.0, 1.0);
            }
            below += count;
            lower = bound;
        }
        if self.counts.last().is_some_and(|&c| c > 0) {
            f64::INFINITY
        } else {
            lower
        }
    }
}

/// A share smoothed away from 0 and 1 (Jeffreys), for predictions.
fn smoothed(part: u64, whole: u64) -> f64 {
    (part as f64 + 0.5) / (whole as f64 + 1.0)
}

/// Bernoulli Kullback-Leibler divergence, nats.
fn kl(p: f64, q: f64) -> f64 {
    p * (p / q).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - q)).ln()
}

/// Thresholds of the judge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeSettings {
    /// Responses each side needs at a step before it can pass.
    pub min_requests: u64,
    /// Intervals a step lasts at least before it can pass.
    pub min_intervals: u32,
    /// Chance, over the whole rollout, of failing a canary that is no worse than stable by
    /// more than the margins.
    pub alpha: f64,
    /// The canary's 5xx rate may be this many times stable's (plus `error_margin`): 1.5
    /// allows half again stable's rate.
    pub error_ratio: f64,
    /// Allowed excess of the canary's 5xx rate over `error_ratio` × stable's, percentage
    /// points: the floor that matters when stable's rate is near zero.
    pub error_margin: f64,
    /// Ceiling of the canary's 5xx rate, percent: fails only when the canary is also worse
    /// than stable. 100 turns it off.
    pub max_error_rate: f64,
    /// Allowed excess of the canary's latency over stable's, ms.
    pub latency_margin_ms: f64,
    /// The smallest 5xx regression the rollout must be able to catch before its last judged
    /// step passes, as a multiple of the allowed rate (`error_ratio` × stable's +
    /// `error_margin`): that step holds until the canary has served enough requests to catch
    /// it in about 90 % of rollouts. 0 turns it off.
    pub detect: f64,
}

impl Default for JudgeSettings {
    /// The defaults of `canaryctl rollout`.
    fn default() -> JudgeSettings {
        use crate::rollout::defaults as d;
        JudgeSettings {
            min_requests: d::MIN_REQUESTS,
            min_intervals: d::MIN_INTERVALS,
            alpha: d::ALPHA,
            error_ratio: d::ERROR_RATIO,
            error_margin: d::ERROR_MARGIN,
            max_error_rate: d::MAX_ERROR_RATE,
            latency_margin_ms: d::LATENCY_MARGIN_MS,
            detect: d::DETECT,
        }
    }
}

impl JudgeSettings {
    /// Refuses settings the judge cannot honour, naming the flag.
    pub fn check(&self) -> Result<()> {
        if self.min_requests == 0 {
            bail!("--min-requests must be at least 1: no verdict on no evidence");
        }
        if self.min_intervals == 0 {
            bail!("--min-intervals must be at least 1");
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            bail!(
                "--alpha must be a number above 0 and below 1 (the chance of rolling back a good canary), not {}",
                self.alpha
            );
        }
        if !(self.error_ratio >= 1.0 && self.error_ratio.is_finite()) {
            bail!(
                "--error-ratio must be a finite number, 1 or more (the canary's 5xx rate may be this many times stable's), not {}",
                self.error_ratio
            );
        }
        if !(self.error_margin >= 0.0 && self.error_margin < 100.0) {
            bail!(
                "--error-margin must be percentage points from 0 up to (not including) 100, not {}",
                self.error_margin
            );
        }
        if !(self.max_error_rate > 0.0 && self.max_error_rate <= 100.0) {
            bail!(
                "--max-error-rate must be a percent above 0 and at most 100 (100 turns the ceiling off), not {}",
                self.max_error_rate
            );
        }
        if !(self.latency_margin_ms >= 0.0 && self.latency_margin_ms.is_finite()) {
            bail!(
                "--latency-margin-ms must be a finite number of ms, 0 or more, not {}",
                self.latency_margin_ms
            );
        }
        if !(self.detect == 0.0 || (self.detect > 1.0 && self.detect.is_finite())) {
            bail!(
                "--detect must be 0 (off) or a finite multiple of the allowed 5xx rate above 1, not {}",
                self.detect
            );
        }
        Ok(())
    }

    /// The canary responses over the rollout that catch, in about 90 % of rollouts (measured by
    /// the simulation; the normal approximation below aims at 95 % to cover what it leaves
    /// out: the discount of bursty intervals, the sequential reading), a canary
    /// whose 5xx rate is `detect` × the allowed rate, at stable's rate `stable` (a share) and a
    /// split of `canary_per_stable` canary responses per stable response; `None` when it does
    /// not apply (off, or no room below 100 %).
    ///
    /// The errors check's log e-value grows by about `μ = KL(a_d ‖ a_0)` per canary request
    /// (`a_d` the regression, `a_0` the bound), with variance `σ²` per request; it must reach
    /// `ln(threshold) + ln(experts)` (the mixture's cost). With `s = √n`, the 5 % quantile
    /// `μ·s² − 1.645·σ·s` reaches that at the positive root of the quadratic. Each interval's
    /// e-value also carries stable's counts of that interval, whose noise, `ratio²` times
    /// stable's variance at `canary_per_stable` canary requests per stable one, inflates `n`.
    pub fn detect_requests(&self, stable: f64, canary_per_stable: f64) -> Option<u64> {
        if self.detect == 0.0 {
            return None;
        }
        let b = stable.clamp(1e-6, 1.0 - 1e-6);
        let bound = self.error_ratio * b + self.error_margin / 100.0;
        let target = self.detect * bound;
        if !(bound > 0.0 && target < 1.0) {
            return None;
        }
        let mu = kl(target, bound);
        let step = (target / bound).ln() - ((1.0 - target) / (1.0 - bound)).ln();
        let sigma = (target * (1.0 - target)).sqrt() * step;
        let need =
            self.threshold("errors").ln() + (crate::rollout::evidence::EXPERTS.len() as f64).ln();
        let z = 1.6449;
        let root = (z * sigma + (z * z * sigma * sigma + 4.0 * mu * need).sqrt()) / (2.0 * mu);
        let inflation = 1.0
            + self.error_ratio.powi(2) * b * (1.0 - b) / (target * (1.0 - target))
                * canary_per_stable.max(0.0);
        Some((root * root * inflation).ceil() as u64)
    }

    /// The number of checks that share `alpha`.
    pub fn checks(&self) -> usize {
        if self.max_error_rate < 100.0 {
            4
        } else {
            3
        }
    }

    /// The share of `alpha` each check spends: most on the 5xx comparison and the latency
    /// shift, the regressions canaries mostly have; less on the tail, least on the ceiling
    /// (which only matters when stable is near the ceiling already). Renormalised without the
    /// ceiling.
    pub fn alpha_share(&self, check: &str) -> f64 {
        let weight = |name: &str| match name {
            "errors" => ALPHA_WEIGHTS[0],
            "ceiling" => ALPHA_WEIGHTS[1],
            "latency" => ALPHA_WEIGHTS[2],
            "latency_tail" => ALPHA_WEIGHTS[3],
            _ => 0.0,
        };
        let total: f64 = if self.checks() == 4 {
            ALPHA_WEIGHTS.iter().sum()
        } else {
            ALPHA_WEIGHTS.iter().sum::<f64>() - ALPHA_WEIGHTS[1]
        };
        weight(check) / total
    }

    /// The e-value at which `check` fails: 1 / (its share of `alpha`). The shares sum to
    /// `alpha`, so by a union bound the checks together fail a canary within every margin
    /// with a chance of at most `alpha`.
    pub fn threshold(&self, check: &str) -> f64 {
        1.0 / (self.alpha * self.alpha_share(check))
    }
}

/// The most intervals the last judged step lasts for `--detect`: when its traffic cannot gather
/// the responses by then, the step does not hold for them (it would only run into
/// `--max-holds`, 20 by default, and stop undecided) and passes on the evidence it has.
pub const DETECT_MAX_INTERVALS: u32 = 19;

/// The shares of `alpha` of `errors`, `ceiling`, `latency` and `latency_tail`.
pub const ALPHA_WEIGHTS: [f64; 4] = [0.4, 0.1, 0.3, 0.2];

/// What to do after an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// No check failed and the step has its data: next step.
    Pass,
    /// Not enough data at this step yet: stay.
    Hold,
    /// A check failed: roll back.
    Fail,
}

/// One check's result and numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `errors`, `ceiling`, `latency` or `latency_tail`.
    pub name: String,
    /// Passed (so far) or not.
    pub passed: bool,
    /// The evidence against the canary now: an e-value (1 is none; it fails at `threshold`).
    pub e_value: f64,
    /// The e-value at which the check fails: checks / alpha.
    pub threshold: f64,
    /// Anytime-valid p-value: 1 / the largest e-value so far.
    pub p_value: f64,
    /// The canary's value over the rollout so far (5xx %, p50 ms, % above the tail bound).
    pub canary: f64,
    /// Stable's value, likewise.
    pub stable: f64,
    /// The allowed difference (percentage points or ms).
    pub margin: f64,
    /// In words.
    pub detail: String,
}

impl Check {
    /// `errors ok e=0.52/400` for the printed line.
    pub fn brief(&self) -> String {
        format!(
            "{} {} e={}/{}",
            self.name,
            if self.passed { "ok" } else { "FAIL" },
            short(self.e_value),
            short(self.threshold)
        )
    }
}

/// A number in a few characters: 0.52, 14.1, 3.2e5 (the step line's e-values and thresholds).
pub(crate) fn short(x: f64) -> String {
    if x >= 1e4 {
        format!("{x:.1e}")
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The verdict of one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Pass, hold or fail.
    pub outcome: StepAction,
    /// In words.
    pub reason: String,
    /// The checks (empty before any check could run).
    pub checks: Vec<Check>,
}

/// Pairs of bucket bounds a latency check compares: canary above `bounds[canary]` against
/// stable above `bounds[stable]` (`bounds.len()` stands for `+Inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pair {
    stable: usize,
    canary: usize,
}

/// The data at the current step.
#[derive(Debug, Clone, Default)]
struct Step {
    index: usize,
    intervals: u32,
    judged: u32,
    canary: u64,
    stable: u64,
    canary_samples: u64,
    stable_samples: u64,
}

/// The judgement of one rollout: the running evidence of every check, fed interval by interval.
#[derive(Debug, Clone)]
pub struct Judgement {
    settings: JudgeSettings,
    errors: Sequential,
    ceiling: Sequential,
    latency: Sequential,
    tail: Sequential,
    /// Stable's counts before the current interval: the predictions and latency bounds.
    reference_responses: u64,
    reference_errors: u64,
    reference_latency: Option<Histogram>,
    /// The canary's and stable's counts over the rollout, for the numbers shown.
    canary_total: (u64, u64, Option<Histogram>),
    stable_total: (u64, u64, Option<Histogram>),
    bounds: Option<Vec<f64>>,
    latency_pair: Option<Pair>,
    tail_pair: Option<Pair>,
    step: Option<Step>,
    /// The last judged step of the plan (the one before 100 %), where `detect` applies.
    final_step: Option<usize>,
}

impl Judgement {
    /// A judgement with no evidence yet; refuses settings that [`JudgeSettings::check`]
    /// refuses.
    pub fn new(settings: JudgeSettings) -> Result<Judgement> {
        settings.check()?;
        let margin = settings.error_margin / 100.0;
        Ok(Judgement {
            errors: Sequential::new(Bound {
                ratio: settings.error_ratio,
                margin,
            }),
            // Under the ceiling, or no worse than stable: a union, judged interval by interval.
            ceiling: Sequential::either(vec![
                Bound {
                    ratio: 0.0,
                    margin: settings.max_error_rate / 100.0,
                },
                Bound {
                    ratio: 1.0,
                    margin: 0.0,
                },
            ]),
            latency: Sequential::new(Bound {
                ratio: 1.0,
                margin: 0.0,
            }),
            tail: Sequential::new(Bound {
                ratio: 1.0,
                margin: 0.0,
            }),
            settings,
            reference_responses: 0,
            reference_errors: 0,
            reference_latency: None,
            canary_total: (0, 0, None),
            stable_total: (0, 0, None),
            bounds: None,
            latency_pair: None,
            tail_pair: None,
            step: None,
            final_step: None,
        })
    }

    /// Names the plan's last judged step (0-based, the one before 100 %): it holds until the
    /// canary has served the responses `--detect` asks for (see
    /// [`JudgeSettings::detect_requests`]).
    pub fn set_final_step(&mut self, index: usize) {
        self.final_step = Some(index);
    }

    /// The settings.
    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// Adds stable's counts from before the rollout (for example the cumulative counts of the
    /// first read) to what predicts stable: they choose the latency bounds and the
    /// alternatives, never the evidence itself.
    pub fn seed(&mut self, stable: &Counts) -> Result<()> {
        let histogram = Histogram::from_counts(stable, "stable")?;
        self.check_bounds(histogram.as_ref())?;
        self.add_reference(stable, histogram.as_ref());
        Ok(())
    }

    fn check_bounds(&mut self, histogram: Option<&Histogram>) -> Result<()> {
        if let Some(h) = histogram {
            match &self.bounds {
                None => self.bounds = Some(h.bounds.clone()),
                Some(bounds) if *bounds != h.bounds => bail!(
                    "the latency histogram's bucket bounds changed during the rollout (from {:?} to {:?}): \
                     the judge compares buckets bound by bound",
                    bounds,
                    h.bounds
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn add_reference(&mut self, stable: &Counts, histogram: Option<&Histogram>) {
        self.reference_responses += stable.answered();
        self.reference_errors += stable.errors();
        if let Some(h) = histogram {
            match &mut self.reference_latency {
                Some(have) => have.add(h),
                None => self.reference_latency = Some(h.clone()),
            }
        }
    }

    /// Judges one interval at step `step` (0-based): `canary` and `stable` are that interval's
    /// counts alone. An error, not a verdict, when the histograms cannot be compared.
    pub fn observe(&mut self, step: usize, canary: &Counts, stable: &Counts) -> Result<Verdict> {
        if !canary.latency.is_empty() && !stable.latency.is_empty() {
            same_bounds(&canary.latency, &stable.latency, "canary and stable")?;
        }
        let canary_h = Histogram::from_counts(canary, "the canary")?;
        let stable_h = Histogram::from_counts(stable, "stable")?;
        self.check_bounds(canary_h.as_ref())?;
        self.check_bounds(stable_h.as_ref())?;

        if self.step.as_ref().is_none_or(|s| s.index != step) {
            self.step = Some(Step {
                index: step,
                ..Step::default()
            });
        }

        let errors_ready = self.reference_responses > 0;
        let latency_ready = self
            .reference_latency
            .as_ref()
            .is_some_and(|h| h.total() > 0);
        if errors_ready {
            let guess = smoothed(self.reference_errors, self.reference_responses);
            let tally = Tally {
                canary: canary.errors(),
                canary_n: canary.answered(),
                stable: stable.errors(),
                stable_n: stable.answered(),
            };
            self.errors.update(tally, guess);
            self.ceiling.update(tally, guess);
        }
        if latency_ready {
            self.latency_pair = self.choose_latency_pair();
            self.tail_pair = self.choose_tail_pair();
            let empty = Histogram {
                bounds: Vec::new(),
                counts: Vec::new(),
            };
            let (c, s) = (
                canary_h.as_ref().unwrap_or(&empty),
                stable_h.as_ref().unwrap_or(&empty),
            );
            for (pair, evidence) in [
                (self.latency_pair, &mut self.latency),
                (self.tail_pair, &mut self.tail),
            ] {
                if let (Some(pair), Some(reference)) = (pair, &self.reference_latency) {
                    let guess = smoothed(reference.above(pair.stable), reference.total());
                    let tally = Tally {
                        canary: c.above(pair.canary),
                        canary_n: c.total(),
                        stable: s.above(pair.stable),
                        stable_n: s.total(),
                    };
                    evidence.update(tally, guess);
                }
            }
        }

        // Bookkeeping after the evidence: this interval's stable data predicts the next ones.
        self.add_reference(stable, stable_h.as_ref());
        add_total(&mut self.canary_total, canary, canary_h.as_ref());
        add_total(&mut self.stable_total, stable, stable_h.as_ref());
        let step_data = self.step.get_or_insert_with(Step::default);
        step_data.intervals += 1;
        step_data.canary += canary.answered();
        step_data.stable += stable.answered();
        step_data.canary_samples += canary_h.as_ref().map_or(0, Histogram::total);
        step_data.stable_samples += stable_h.as_ref().map_or(0, Histogram::total);
        if errors_ready && latency_ready {
            step_data.judged += 1;
        }
        let step_data = step_data.clone();

        let checks = if errors_ready || latency_ready {
            self.checks()
        } else {
            Vec::new()
        };
        let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
        if !failed.is_empty() {
            let what: Vec<String> = failed
                .iter()
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            return Ok(Verdict {
                outcome: StepAction::Fail,
                reason: what.join("; "),
                checks,
            });
        }
        let mut short = Vec::new();
        let need = self.settings.min_requests;
        for (name, responses, samples) in [
            ("canary", step_data.canary, step_data.canary_samples),
            ("stable", step_data.stable, step_data.stable_samples),
        ] {
            if responses < need || samples < need / 2 {
                short.push(format!("{name} {responses} of {need} responses"));
            }
        }
        if step_data.judged == 0 {
            short.push("no earlier stable data to compare with yet".to_string());
        }
        if self.final_step == Some(step) && errors_ready {
            let stable_rate = smoothed(self.reference_errors, self.reference_responses);
            let split = step_data.canary as f64 / step_data.stable.max(1) as f64;
            let (effect, _) = self.errors.last_effect();
            if let Some(binomial) = self.settings.detect_requests(stable_rate, split) {
                // Bursty counts carry less per response: more are needed, up to the cap.
                let needed = (binomial as f64 * effect).ceil() as u64;
                let have = self.canary_total.0;
                let per_interval = step_data.canary as f64 / f64::from(step_data.intervals);
                let intervals_for = |n: u64| {
                    if per_interval > 0.0 {
                        (n.saturating_sub(have) as f64 / per_interval).ceil()
                    } else {
                        f64::INFINITY
                    }
                };
                let more = intervals_for(needed);
                // Within reach of this step's traffic (for independent requests): hold for it,
                // up to the cap. Out of reach, holding would only run into --max-holds; the
                // step passes on the evidence it has.
                let reachable = f64::from(step_data.intervals) + intervals_for(binomial)
                    <= f64::from(DETECT_MAX_INTERVALS)
                    && step_data.intervals < DETECT_MAX_INTERVALS;
                if have < needed && reachable {
                    let s = &self.settings;
                    let allowed = 100.0 * (s.error_ratio * stable_rate) + s.error_margin;
                    let more = format!(", about {more} more interval(s) at this step's traffic");
                    short.push(format!(
                        "canary {have} of {needed} responses over the rollout to catch 5xx at \
                         {:.2}% ({}× the allowed {allowed:.2}%, --detect){more}",
                        s.detect * allowed,
                        s.detect
                    ));
                }
            }
        }
        if step_data.intervals < self.settings.min_intervals {
            short.push(format!(
                "interval {} of {} at this step",
                step_data.intervals, self.settings.min_intervals
            ));
        }
        if short.is_empty() {
            Ok(Verdict {
                outcome: StepAction::Pass,
                reason: "canary is no worse than stable".to_string(),
                checks,
            })
        } else {
            Ok(Verdict {
                outcome: StepAction::Hold,
                reason: format!("not enough data yet at this step: {}", short.join(", ")),
                checks,
            })
        }
    }

    /// The first bound index at or above `ms`, or `bounds.len()` (`+Inf`).
    fn first_at_or_above(bounds: &[f64], ms: f64) -> usize {
        bounds.iter().position(|&b| b >= ms).unwrap_or(bounds.len())
    }

    /// The pair where a shift of the canary by twice the margin would show most (Kullback-Leibler
    /// divergence per canary request), predicted from stable's earlier data.
    fn choose_latency_pair(&self) -> Option<Pair> {
        let reference = self.reference_latency.as_ref()?;
        let margin = self.settings.latency_margin_ms;
        let total = reference.total();
        let design = if margin > 0.0 {
            2.0 * margin
        } else {
            reference.quantile(0.5).min(1e6) / 5.0
        };
        let mut best: Option<(f64, Pair)> = None;
        for (stable, &bound) in reference.bounds.iter().enumerate() {
            let canary = Self::first_at_or_above(&reference.bounds, bound + margin);
            if canary == reference.bounds.len() {
                continue;
            }
            let q_stable = smoothed(reference.above(stable), total);
            let shifted = reference.cdf(reference.bounds[canary] - design);
            let floor = 0.5 / (total as f64 + 1.0);
            let q_canary = (1.0 - shifted).clamp(floor, 1.0 - floor);
            if q_canary <= q_stable {
                continue;
            }
            let score = kl(q_canary, q_stable);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, Pair { stable, canary }));
            }
        }
        best.map(|(_, pair)| pair)
    }

    /// Stable's p99 bucket: the smallest bound with at most 1 % of stable's earlier samples
    /// above it; the canary is read at the first bound at least the margin above it.
    fn choose_tail_pair(&self) -> Option<Pair> {
        let reference = self.reference_latency.as_ref()?;
        let total = reference.total();
        let stable = (0..reference.bounds.len())
            .find(|&i| reference.above(i) as f64 <= 0.01 * total as f64)?;
        let canary = Self::first_at_or_above(
            &reference.bounds,
            reference.bounds[stable] + self.settings.latency_margin_ms,
        );
        (canary < reference.bounds.len()).then_some(Pair { stable, canary })
    }

    fn check(
        &self,
        name: &str,
        evidence: &Sequential,
        numbers: (f64, f64, f64),
        what: String,
    ) -> Check {
        let threshold = self.settings.threshold(name);
        let (e, peak) = (evidence.e_value(), evidence.peak());
        let (effect_c, effect_s) = evidence.last_effect();
        let what = if effect_c > 1.05 || effect_s > 1.05 {
            let (rho_c, rho_s) = evidence.last_burstiness();
            format!(
                "{what}; bursty (intra-interval correlation canary {rho_c:.1e}, stable {rho_s:.1e}): \
                 an interval's requests count as 1/{} (canary), 1/{} (stable)",
                short(effect_c),
                short(effect_s)
            )
        } else {
            what
        };
        let (canary, stable, margin) = numbers;
        let passed = peak < threshold;
        let detail = if passed {
            format!("{what}: e={} < {}", short(e), short(threshold))
        } else {
            format!(
                "{what}: e={} ≥ {} (anytime p={:.1e}, {:.0} % of alpha {})",
                short(peak),
                short(threshold),
                1.0 / peak,
                100.0 * self.settings.alpha_share(name),
                self.settings.alpha,
            )
        };
        Check {
            name: name.to_string(),
            passed,
            e_value: if passed { e } else { peak },
            threshold,
            p_value: (1.0 / peak).min(1.0),
            canary,
            stable,
            margin,
            detail,
        }
    }

    fn checks(&self) -> Vec<Check> {
        let s = &self.settings;
        let (rc, rs) = (
            percent(self.canary_total.1, self.canary_total.0),
            percent(self.stable_total.1, self.stable_total.0),
        );
        let mut checks = vec![self.check(
            "errors",
            &self.errors,
            (rc, rs, s.error_margin),
            format!(
                "canary 5xx {rc:.2}% vs stable {rs:.2}% over the rollout, allowed {}× stable + {} pp",
                s.error_ratio, s.error_margin
            ),
        )];
        if s.checks() == 4 {
            checks.push(self.check(
                "ceiling",
                &self.ceiling,
                (rc, rs, s.max_error_rate),
                format!(
                    "canary 5xx {rc:.2}% vs the ceiling {}% and stable {rs:.2}%",
                    s.max_error_rate,
                ),
            ));
        }
        let median = |h: &Option<Histogram>| h.as_ref().map_or(0.0, |h| h.quantile(0.5));
        let (mc, ms) = (median(&self.canary_total.2), median(&self.stable_total.2));
        let bounds = self.bounds.clone().unwrap_or_default();
        let share_text = |pair: Option<Pair>| -> (f64, f64, String) {
            match pair {
                Some(p) => {
                    let share = |h: &Option<Histogram>, i: usize| {
                        h.as_ref().map_or(0.0, |h| percent(h.above(i), h.total()))
                    };
                    let (c, st) = (
                        share(&self.canary_total.2, p.canary),
                        share(&self.stable_total.2, p.stable),
                    );
                    (
                        c,
                        st,
                        format!(
                            "canary {c:.1}% over {} ms vs stable {st:.1}% over {} ms",
                            bounds[p.canary], bounds[p.stable]
                        ),
                    )
                }
                None => (0.0, 0.0, "no pair of bucket bounds to compare".to_string()),
            }
        };
        let (_, _, text) = share_text(self.latency_pair);
        checks.push(self.check(
            "latency",
            &self.latency,
            (mc, ms, s.latency_margin_ms),
            format!(
                "canary p50 {mc:.1} ms vs stable {ms:.1} ms, allowed +{} ms; {text}",
                s.latency_margin_ms
            ),
        ));
        let (c, st, text) = share_text(self.tail_pair);
        checks.push(self.check(
            "latency_tail",
            &self.tail,
            (c, st, s.latency_margin_ms),
            format!("beyond stable's p99 bucket: {text}"),
        ));
        checks
    }
}

fn add_total(total: &mut (u64, u64, Option<Histogram>), counts: &Counts, h: Option<&Histogram>) {
    total.0 += counts.answered();
    total.1 += counts.errors();
    if let Some(h) = h {
        match &mut total.2 {
            Some(have) => have.add(h),
            None => total.2 = Some(h.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Cumulative latency points over the bounds 10, 100, 1000 ms and +Inf from disjoint counts.
    fn latency(disjoint: [u64; 4]) -> Vec<(f64, u64)> {
        let mut cumulative = 0;
        [10.0, 100.0, 1000.0, f64::INFINITY]
            .iter()
            .zip(disjoint)
            .map(|(&bound, n)| {
                cumulative += n;
                (bound, cumulative)
            })
            .collect()
    }

    fn counts(errors: u64, disjoint: [u64; 4]) -> Counts {
        let n: u64 = disjoint.iter().sum();
        Counts {
            requests: n,
            responses: [0, n - errors, 0, 0, errors],
            latency: latency(disjoint),
        }
    }

    fn settings() -> JudgeSettings {
        JudgeSettings {
            min_requests: 50,
            min_intervals: 1,
            ..JudgeSettings::default()
        }
    }

    fn check<'a>(verdict: &'a Verdict, name: &str) -> &'a Check {
        verdict.checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn every_setting_is_refused_with_its_flag() {
        let base = JudgeSettings::default();
        base.check().unwrap();
        let cases: Vec<(JudgeSettings, &str)> = vec![
            (
                JudgeSettings {
                    min_requests: 0,
                    ..base.clone()
                },
                "--min-requests",
            ),
            (
                JudgeSettings {
                    min_intervals: 0,
                    ..base.clone()
                },
                "--min-intervals",
            ),
            (
                JudgeSettings {
                    alpha: f64::NAN,
                    ..base.clone()
                },
                "--alpha",
            ),
            (
                JudgeSettings {
                    alpha: 0.0,
                    ..base.clone()
                },
                "--alpha",
            ),
            (
                JudgeSettings {
                    alpha: 1.0,
                    ..base.clone()
                },
                "--alpha",
            ),
            (
                JudgeSettings {
                    alpha: -0.01,
                    ..base.clone()
                },
                "--alpha",
            ),
            (
                JudgeSettings {
                    error_margin: f64::NAN,
                    ..base.clone()
                },
                "--error-margin",
            ),
            (
                JudgeSettings {
                    error_margin: -1.0,
                    ..base.clone()
                },
                "--error-margin",
            ),
            (
                JudgeSettings {
                    error_margin: 100.0,
                    ..base.clone()
                },
                "--error-margin",
            ),
            (
                JudgeSettings {
                    error_margin: f64::INFINITY,
                    ..base.clone()
                },
                "--error-margin",
            ),
            (
                JudgeSettings {
                    error_ratio: 0.5,
                    ..base.clone()
                },
                "--error-ratio",
            ),
            (
                JudgeSettings {
                    error_ratio: f64::NAN,
                    ..base.clone()
                },
                "--error-ratio",
            ),
            (
                JudgeSettings {
                    detect: 0.5,
                    ..base.clone()
                },
                "--detect",
            ),
            (
                JudgeSettings {
                    detect: f64::INFINITY,
                    ..base.clone()
                },
                "--detect",
            ),
            (
                JudgeSettings {
                    max_error_rate: f64::NAN,
                    ..base.clone()
                },
                "--max-error-rate",
            ),
            (
                JudgeSettings {
                    max_error_rate: 0.0,
                    ..base.clone()
                },
                "--max-error-rate",
            ),
            (
                JudgeSettings {
                    max_error_rate: 100.5,
                    ..base.clone()
                },
                "--max-error-rate",
            ),
            (
                JudgeSettings {
                    latency_margin_ms: f64::NAN,
                    ..base.clone()
                },
                "--latency-margin-ms",
            ),
            (
                JudgeSettings {
                    latency_margin_ms: -5.0,
                    ..base.clone()
                },
                "--latency-margin-ms",
            ),
            (
                JudgeSettings {
                    latency_margin_ms: f64::INFINITY,
                    ..base.clone()
                },
                "--latency-margin-ms",
            ),
        ];
        for (settings, flag) in cases {
            let message = format!("{:#}", Judgement::new(settings.clone()).unwrap_err());
            assert!(message.contains(flag), "{settings:?}: {message}");
        }
        // The edges that are allowed.
        for settings in [
            JudgeSettings {
                error_margin: 0.0,
                ..base.clone()
            },
            JudgeSettings {
                max_error_rate: 100.0,
                ..base.clone()
            },
            JudgeSettings {
                latency_margin_ms: 0.0,
                ..base.clone()
            },
        ] {
            Judgement::new(settings).unwrap();
        }
    }

    /// The traffic `--detect` asks for, against the arithmetic done by hand (with Python's
    /// `math` only): stable at 1 %, the bound 1.5 × 1 % + 0.1 pp = 1.6 %, the regression
    /// 1.8 × 1.6 % = 2.88 %. KL(2.88 % ‖ 1.6 %) = 0.0042118713, the log-likelihood step
    /// ln(2.88/1.6) − ln(0.9712/0.984) = 0.6008801, σ = √(0.0288·0.9712)·0.6008801 =
    /// 0.1004936; the level ln(250) + ln(9) = 7.7186855; the root (1.6449σ + √((1.6449σ)² +
    /// 4·KL·7.7186855)) / (2·KL) = 66.715562, squared 4450.97. At an even split stable's noise
    /// adds 1.5²·0.0099/(0.0288·0.9712) = 0.796373: 7995.6 responses.
    #[test]
    fn detect_sizes_the_traffic_from_the_regression() {
        let s = JudgeSettings::default();
        assert_eq!(s.detect_requests(0.01, 0.0), Some(4451));
        assert_eq!(s.detect_requests(0.01, 1.0), Some(7996));
        // A smaller regression takes more traffic; off is off.
        assert!(
            JudgeSettings {
                detect: 1.4,
                ..s.clone()
            }
            .detect_requests(0.01, 1.0)
            .unwrap()
                > 7996
        );
        assert_eq!(
            JudgeSettings {
                detect: 0.0,
                ..s.clone()
            }
            .detect_requests(0.01, 1.0),
            None
        );
    }

    /// The last judged step holds for `--detect` and says how much traffic it takes; other
    /// steps do not; and where its traffic cannot gather that in time it does not hold.
    #[test]
    fn the_last_step_holds_until_the_regression_would_show() {
        let run = |canary_n: u64| {
            let mut judgement = Judgement::new(settings()).unwrap();
            judgement.set_final_step(1);
            judgement.seed(&counts(10, [1000, 0, 0, 0])).unwrap();
            let canary = counts(canary_n / 100, [canary_n, 0, 0, 0]);
            let stable = counts(10, [1000, 0, 0, 0]);
            // Four intervals at the first step: the canary's own burst estimate replaces the
            // prior.
            for _ in 0..4 {
                let first = judgement.observe(0, &canary, &stable).unwrap();
                assert_ne!(first.outcome, StepAction::Hold, "{first:?}");
            }
            judgement.observe(1, &canary, &stable).unwrap()
        };
        // 1,000 canary responses an interval: about 8,000 needed, within reach.
        let held = run(1000);
        assert_eq!(held.outcome, StepAction::Hold, "{held:?}");
        assert!(
            held.reason.contains("--detect") && held.reason.contains("more interval"),
            "{}",
            held.reason
        );
        // 100 an interval: dozens more intervals, out of reach; the step passes.
        let passed = run(100);
        assert_eq!(passed.outcome, StepAction::Pass, "{passed:?}");
    }

    /// Before the fix, a NaN margin passed a canary with 50 % 5xx.
    #[test]
    fn a_canary_with_half_its_requests_failing_fails() {
        let mut judgement = Judgement::new(settings()).unwrap();
        judgement.seed(&counts(9, [500, 480, 20, 0])).unwrap();
        let verdict = judgement
            .observe(
                0,
                &counts(50, [50, 48, 2, 0]),
                &counts(9, [450, 432, 18, 0]),
            )
            .unwrap();
        assert_eq!(verdict.outcome, StepAction::Fail, "{verdict:?}");
        let errors = check(&verdict, "errors");
        assert!(!errors.passed);
        assert!(errors.e_value >= errors.threshold && errors.p_value <= 0.01 * 0.4);
        assert!(
            (errors.threshold - 250.0).abs() < 1e-9,
            "errors has 40 % of alpha 0.01: {}",
            errors.threshold
        );
        assert!((errors.canary - 50.0).abs() < 1e-9 && (errors.stable - 1.0).abs() < 1e-9);
    }

    /// Evidence builds across intervals and steps: 3 % against 1 % (twice the margin) is never
    /// failed on its first interval, and is failed once enough intervals have added up.
    #[test]
    fn evidence_accumulates_across_intervals_and_steps() {
        let mut judgement = Judgement::new(settings()).unwrap();
        judgement.seed(&counts(95, [4750, 4655, 95, 0])).unwrap();
        let canary = counts(15, [250, 245, 5, 0]);
        let stable = counts(95, [4750, 4655, 95, 0]);
        let mut failed_at = None;
        for interval in 0..20 {
            let verdict = judgement.observe(interval / 2, &canary, &stable).unwrap();
            if verdict.outcome == StepAction::Fail {
                failed_at = Some(interval);
                assert!(!check(&verdict, "errors").passed);
                break;
            }
        }
        let failed_at = failed_at.expect("3 % against 1 % with a 1 point margin never failed");
        assert!((1..10).contains(&failed_at), "{failed_at}");
    }

    /// The same rates on both sides, interval after interval, never fail; a canary better than
    /// stable gives evidence for the null (its e-values stay below 1).
    #[test]
    fn identical_and_better_canaries_pass() {
        let mut same = Judgement::new(settings()).unwrap();
        same.seed(&counts(95, [4750, 4655, 95, 0])).unwrap();
        let mut better = same.clone();
        for interval in 0..200 {
            let verdict = same
                .observe(
                    interval / 3,
                    &counts(5, [250, 245, 5, 0]),
                    &counts(95, [4750, 4655, 95, 0]),
                )
                .unwrap();
            assert_ne!(verdict.outcome, StepAction::Fail, "{verdict:?}");
            let verdict = better
                .observe(
                    interval / 3,
                    &counts(22, [250, 245, 5, 0]),
                    &counts(760, [4750, 4655, 95, 0]),
                )
                .unwrap();
            assert_ne!(verdict.outcome, StepAction::Fail, "{verdict:?}");
            if interval > 5 {
                assert!(check(&verdict, "errors").e_value < 1.0, "{verdict:?}");
                assert!(check(&verdict, "ceiling").e_value < 1.0, "{verdict:?}");
            }
        }
    }

    /// The ceiling fails a canary above it only when the canary is also worse than stable.
    #[test]
    fn the_ceiling_needs_evidence_against_stable_too() {
        let wide = JudgeSettings {
            error_margin: 50.0,
            ..settings()
        };
        let run = |canary_errors: u64, stable_errors: u64| {
            let mut judgement = Judgement::new(wide.clone()).unwrap();
            judgement
                .seed(&counts(stable_errors * 2, [2000, 0, 0, 0]))
                .unwrap();
            let mut last = None;
            for interval in 0..30 {
                let verdict = judgement
                    .observe(
                        interval,
                        &counts(canary_errors, [1000, 0, 0, 0]),
                        &counts(stable_errors, [1000, 0, 0, 0]),
                    )
                    .unwrap();
                let done = verdict.outcome == StepAction::Fail;
                last = Some(verdict);
                if done {
                    break;
                }
            }
            last.unwrap()
        };
        // 10 % against stable's 10 %: above the 5 % ceiling, but no worse than stable.
        let same = run(100, 100);
        assert_ne!(same.outcome, StepAction::Fail, "{same:?}");
        // 10 % against stable's 4 %: above the ceiling and worse than stable.
        let worse = run(100, 40);
        assert_eq!(worse.outcome, StepAction::Fail, "{worse:?}");
        assert!(!check(&worse, "ceiling").passed && check(&worse, "errors").passed);
        // 4.5 % against stable's 1 %: worse than stable but under the ceiling.
        let under = run(45, 10);
        assert!(check(&under, "ceiling").passed, "{under:?}");
    }

    /// The ceiling's null is "under the ceiling, or no worse than stable" in every interval; a
    /// canary that alternates between the two halves meets it throughout. Intervals of stable
    /// and canary both at 10 % (above the 5 % ceiling, no worse than stable) alternate with
    /// intervals of stable at 0 % and the canary at 4 % (worse than stable, under the ceiling).
    /// The earlier construction ran one product per half, each growing in the intervals where
    /// its own half is false, and failed such a canary once the smaller of the two crossed.
    #[test]
    fn the_ceiling_holds_a_canary_that_alternates_between_its_two_halves() {
        let wide = JudgeSettings {
            error_margin: 50.0,
            ..settings()
        };
        let mut judgement = Judgement::new(wide).unwrap();
        judgement.seed(&counts(100, [2000, 0, 0, 0])).unwrap();
        for interval in 0..60 {
            let (canary, stable) = if interval % 2 == 0 {
                (counts(100, [1000, 0, 0, 0]), counts(100, [1000, 0, 0, 0]))
            } else {
                (counts(40, [1000, 0, 0, 0]), counts(0, [1000, 0, 0, 0]))
            };
            let verdict = judgement.observe(interval, &canary, &stable).unwrap();
            assert!(
                check(&verdict, "ceiling").passed,
                "interval {interval}: {verdict:?}"
            );
        }
    }

    /// 600 of 1,000 canary requests past the last bound: before the fix they dropped out of the
    /// data and the canary passed.
    #[test]
    fn requests_past_the_last_bound_count_as_the_slowest() {
        let mut judgement = Judgement::new(settings()).unwrap();
        judgement.seed(&counts(0, [500, 490, 10, 0])).unwrap();
        let verdict = judgement
            .observe(
                0,
                &counts(0, [200, 190, 10, 600]),
                &counts(0, [4500, 4410, 90, 0]),
            )
            .unwrap();
        assert_eq!(verdict.outcome, StepAction::Fail, "{verdict:?}");
        let tail = check(&verdict, "latency_tail");
        assert!(!tail.passed, "{tail:?}");
        assert!((tail.canary - 60.0).abs() < 1e-9, "{tail:?}");
    }

    /// Shares above a bound count the samples strictly above it, `+Inf` included, and a
    /// histogram without `+Inf` has nothing past its last bound.
    #[test]
    fn samples_above_a_bound() {
        let with_inf = Counts {
            requests: 6,
            responses: [0, 6, 0, 0, 0],
            latency: vec![(1.0, 2), (2.0, 5), (f64::INFINITY, 6)],
        };
        let h = Histogram::from_counts(&with_inf, "x").unwrap().unwrap();
        assert_eq!(h.bounds, vec![1.0, 2.0]);
        assert_eq!(
            (h.above(0), h.above(1), h.above(2), h.total()),
            (4, 1, 0, 6)
        );
        let without = Counts {
            requests: 5,
            responses: [0, 5, 0, 0, 0],
            latency: vec![(1.0, 2), (2.0, 5)],
        };
        let h = Histogram::from_counts(&without, "x").unwrap().unwrap();
        assert_eq!((h.above(0), h.above(1), h.total()), (3, 0, 5));
        assert_eq!(h.quantile(0.5), 1.0 + 0.5 / 3.0);
        assert!(Histogram::from_counts(&Counts::default(), "x")
            .unwrap()
            .is_none());
        for bad in [
            vec![(2.0, 1), (1.0, 2)],
            vec![(1.0, 3), (2.0, 2)],
            vec![(f64::NAN, 1)],
            vec![(f64::INFINITY, 1), (2.0, 2)],
        ] {
            let counts = Counts {
                latency: bad.clone(),
                ..Counts::default()
            };
            assert!(Histogram::from_counts(&counts, "x").is_err(), "{bad:?}");
        }
    }

    /// Histograms with different bounds are an error, not a verdict: between canary and
    /// stable, against the rollout's earlier bounds, and between proxies.
    #[test]
    fn different_bounds_are_an_error() {
        let mut judgement = Judgement::new(settings()).unwrap();
        judgement.seed(&counts(0, [100, 0, 0, 0])).unwrap();
        let other = Counts {
            requests: 100,
            responses: [0, 100, 0, 0, 0],
            latency: vec![(5.0, 100), (50.0, 100), (500.0, 100), (f64::INFINITY, 100)],
        };
        let message = format!(
            "{:#}",
            judgement
                .observe(0, &other, &counts(0, [100, 0, 0, 0]))
                .unwrap_err()
        );
        assert!(message.contains("different bucket bounds"), "{message}");
        let message = format!("{:#}", judgement.observe(0, &other, &other).unwrap_err());
        assert!(message.contains("changed during the rollout"), "{message}");
        let mut sum = counts(0, [1, 0, 0, 0]);
        assert!(sum.add(&other).is_err());
        sum.add(&counts(1, [1, 1, 0, 0])).unwrap();
        assert_eq!(sum.latency, latency([2, 1, 0, 0]));
        assert_eq!(sum.responses, [0, 2, 0, 0, 1]);
    }

    /// Holds: no earlier stable data, too few responses at the step (data from an earlier step
    /// does not count), and too few intervals; zero requests are a hold, never a failure.
    #[test]
    fn holds_and_what_they_say() {
        let mut judgement = Judgement::new(JudgeSettings {
            min_intervals: 3,
            ..settings()
        })
        .unwrap();
        let canary = counts(1, [60, 0, 0, 0]);
        let stable = counts(10, [1000, 0, 0, 0]);
        let first = judgement.observe(0, &canary, &stable).unwrap();
        assert_eq!(first.outcome, StepAction::Hold);
        assert!(
            first.reason.contains("no earlier stable data"),
            "{}",
            first.reason
        );
        assert!(first.checks.is_empty());
        let second = judgement.observe(0, &canary, &stable).unwrap();
        assert_eq!(second.outcome, StepAction::Hold);
        assert!(
            second.reason.contains("interval 2 of 3 at this step"),
            "{}",
            second.reason
        );
        assert!(!second.reason.contains("responses"), "{}", second.reason);
        let third = judgement.observe(0, &canary, &stable).unwrap();
        assert_eq!(third.outcome, StepAction::Pass, "{third:?}");
        let empty = judgement.observe(1, &Counts::default(), &stable).unwrap();
        assert_eq!(empty.outcome, StepAction::Hold, "{empty:?}");
        assert!(
            empty.reason.contains("canary 0 of 50 responses"),
            "{}",
            empty.reason
        );
        assert!(empty.checks.iter().all(|c| c.passed));
    }

    /// A single `+Inf` bucket gives the latency checks nothing to compare: they pass, and say so.
    #[test]
    fn one_bucket() {
        let one = |n: u64| Counts {
            requests: n,
            responses: [0, n, 0, 0, 0],
            latency: vec![(f64::INFINITY, n)],
        };
        let mut judgement = Judgement::new(settings()).unwrap();
        judgement.seed(&one(1000)).unwrap();
        let verdict = judgement.observe(0, &one(100), &one(900)).unwrap();
        assert_eq!(verdict.outcome, StepAction::Pass, "{verdict:?}");
        assert!(check(&verdict, "latency")
            .detail
            .contains("no pair of bucket bounds"));
    }

    /// The latency pair: bounds at least the margin apart, where a shift of twice the margin
    /// shows most; the tail at stable's p99 bucket.
    #[test]
    fn the_latency_pairs() {
        let bounds = [5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0];
        let mut cumulative = 0;
        // Stable: most requests between 20 and 75 ms, 0.5 % above 100 ms.
        let disjoint = [0u64, 10, 150, 300, 340, 170, 25, 5, 0];
        let points: Vec<(f64, u64)> = bounds
            .iter()
            .chain(&[f64::INFINITY])
            .zip(disjoint)
            .map(|(&b, n)| {
                cumulative += n;
                (b, cumulative)
            })
            .collect();
        let stable = Counts {
            requests: 1000,
            responses: [0, 1000, 0, 0, 0],
            latency: points,
        };
        let mut judgement = Judgement::new(settings()).unwrap();
        judgement.seed(&stable).unwrap();
        let latency = judgement.choose_latency_pair().unwrap();
        let tail = judgement.choose_tail_pair().unwrap();
        assert!(
            bounds[latency.canary] >= bounds[latency.stable] + 10.0,
            "{latency:?}"
        );
        assert_eq!((bounds[tail.stable], bounds[tail.canary]), (100.0, 200.0));
    }
}
