//! The judge: canary against stable over the same interval and the same cohort, with tests
//! that stay honest at small counts.
//!
//! - 5xx rate: Fisher's exact test, one-sided (is the canary's rate higher?), which is exact
//!   at any count, plus an allowed margin in percentage points: the check fails only when the
//!   difference is both significant and larger than the margin. A fixed ceiling adds to it.
//! - Latency: a Mann-Whitney rank test on the histogram buckets (in the spirit of Kayenta's
//!   judge), with ties handled (each bucket is one tied rank), one-sided (is the canary
//!   slower?), plus a margin on the difference of the medians in ms.
//!
//! Every verdict carries its numbers.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, DiscreteCDF, Hypergeometric, Normal};

/// One version's counts over an interval, in the judged cohort.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Responses by class `1xx` … `5xx`.
    pub responses: [u64; 5],
    /// Latency histogram: `(upper bound ms, cumulative count)`, finite bounds only.
    pub latency: Vec<(f64, u64)>,
}

impl Counts {
    /// All responses.
    pub fn answered(&self) -> u64 {
        self.responses.iter().sum()
    }

    /// 5xx responses.
    pub fn errors(&self) -> u64 {
        self.responses[4]
    }

    /// 5xx per response, in percent.
    pub fn error_rate(&self) -> f64 {
        if self.answered() == 0 {
            0.0
        } else {
            self.errors() as f64 * 100.0 / self.answered() as f64
        }
    }

    /// Latency samples (the histogram's count).
    pub fn latency_samples(&self) -> u64 {
        self.latency.last().map_or(0, |b| b.1)
    }

    /// Per-bucket (not cumulative) counts.
    pub fn latency_disjoint(&self) -> Vec<u64> {
        let mut previous = 0;
        self.latency
            .iter()
            .map(|&(_, cumulative)| {
                let n = cumulative.saturating_sub(previous);
                previous = cumulative;
                n
            })
            .collect()
    }

    /// The `q` quantile of the latency in ms, interpolated inside its bucket.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        crate::status::quantile(&self.latency, q)
    }

    /// `self - earlier`, for counters that only grow (a reset, such as an Envoy restart,
    /// shows as the current value).
    pub fn since(&self, earlier: &Counts) -> Counts {
        let reset = self.answered() < earlier.answered()
            || self.latency_samples() < earlier.latency_samples();
        if reset {
            return self.clone();
        }
        let mut responses = [0; 5];
        for (i, slot) in responses.iter_mut().enumerate() {
            *slot = self.responses[i].saturating_sub(earlier.responses[i]);
        }
        let latency = self
            .latency
            .iter()
            .map(|&(bound, count)| {
                let before = earlier
                    .latency
                    .iter()
                    .find(|b| b.0 == bound)
                    .map_or(0, |b| b.1);
                (bound, count.saturating_sub(before))
            })
            .collect();
        Counts { responses, latency }
    }
}

/// Thresholds of the judge.
#[derive(Debug, Clone, Serialize)]
pub struct JudgeSettings {
    /// Responses each side needs in the interval before any verdict.
    pub min_requests: u64,
    /// Significance level of both tests.
    pub alpha: f64,
    /// Allowed excess of the canary's 5xx rate over stable's, percentage points.
    pub error_margin: f64,
    /// Fixed ceiling of the canary's 5xx rate, percent.
    pub max_error_rate: f64,
    /// Allowed excess of the canary's median latency over stable's, ms.
    pub latency_margin_ms: f64,
}

/// What to do after an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both checks passed: next step.
    Pass,
    /// Not enough data yet: stay at this step.
    Hold,
    /// A check failed: roll back.
    Fail,
}

/// One check's result and numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `errors` or `latency`.
    pub name: String,
    /// Passed or not.
    pub passed: bool,
    /// One-sided p-value of the test (canary worse).
    pub p_value: f64,
    /// The canary's value (5xx % or p50 ms).
    pub canary: f64,
    /// Stable's value.
    pub stable: f64,
    /// The allowed difference.
    pub margin: f64,
    /// In words.
    pub detail: String,
}

/// The verdict of one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Pass, hold or fail.
    pub outcome: Outcome,
    /// In words.
    pub reason: String,
    /// The checks (empty on hold).
    pub checks: Vec<Check>,
}

/// Judges canary against stable.
pub fn judge(canary: &Counts, stable: &Counts, settings: &JudgeSettings) -> Verdict {
    let short: Vec<String> = [("canary", canary), ("stable", stable)]
        .iter()
        .filter(|(_, c)| {
            c.answered() < settings.min_requests || c.latency_samples() < settings.min_requests / 2
        })
        .map(|(name, c)| {
            format!(
                "{name} {} of {} responses",
                c.answered(),
                settings.min_requests
            )
        })
        .collect();
    if !short.is_empty() {
        return Verdict {
            outcome: Outcome::Hold,
            reason: format!("not enough data yet: {}", short.join(", ")),
            checks: Vec::new(),
        };
    }
    let checks = vec![
        error_check(canary, stable, settings),
        latency_check(canary, stable, settings),
    ];
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
    let (outcome, reason) = if failed.is_empty() {
        (Outcome::Pass, "canary is no worse than stable".to_string())
    } else {
        let what: Vec<String> = failed
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        (Outcome::Fail, what.join("; "))
    };
    Verdict {
        outcome,
        reason,
        checks,
    }
}

/// Fisher's exact test, one-sided: P(canary errors ≥ observed) given the margins.
pub fn fisher_greater(canary_errors: u64, canary_n: u64, stable_errors: u64, stable_n: u64) -> f64 {
    let population = canary_n + stable_n;
    let successes = canary_errors + stable_errors;
    if canary_errors == 0 || population == 0 {
        return 1.0;
    }
    match Hypergeometric::new(population, successes, canary_n) {
        Ok(dist) => dist.sf(canary_errors - 1).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

fn error_check(canary: &Counts, stable: &Counts, settings: &JudgeSettings) -> Check {
    let (rc, rs) = (canary.error_rate(), stable.error_rate());
    let p = fisher_greater(
        canary.errors(),
        canary.answered(),
        stable.errors(),
        stable.answered(),
    );
    let over_ceiling = rc > settings.max_error_rate;
    let worse = p < settings.alpha && rc - rs > settings.error_margin;
    let detail = if over_ceiling {
        format!(
            "canary 5xx {rc:.2}% over the ceiling {:.2}% (stable {rs:.2}%, p={p:.2e})",
            settings.max_error_rate
        )
    } else if worse {
        format!(
            "canary 5xx {rc:.2}% vs stable {rs:.2}%: +{:.2} pp > margin {:.2} pp, p={p:.2e} < {}",
            rc - rs,
            settings.error_margin,
            settings.alpha
        )
    } else {
        format!("canary 5xx {rc:.2}% vs stable {rs:.2}% (p={p:.2e})")
    };
    Check {
        name: "errors".into(),
        passed: !(over_ceiling || worse),
        p_value: p,
        canary: rc,
        stable: rs,
        margin: settings.error_margin,
        detail,
    }
}

/// Mann-Whitney U on bucketed samples, one-sided (canary larger), normal approximation with
/// tie and continuity corrections. Returns `(p, U)`; p = 1 when every sample ties.
pub fn mann_whitney_greater(canary: &[u64], stable: &[u64]) -> (f64, f64) {
    let n1: f64 = canary.iter().sum::<u64>() as f64;
    let n2: f64 = stable.iter().sum::<u64>() as f64;
    if n1 == 0.0 || n2 == 0.0 {
        return (1.0, 0.0);
    }
    let mut below = 0.0;
    let mut u = 0.0;
    let mut ties = 0.0;
    for (c, s) in canary.iter().zip(stable) {
        let (c, s) = (*c as f64, *s as f64);
        u += c * (below + s / 2.0);
        below += s;
        let t = c + s;
        ties += t * t * t - t;
    }
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return (1.0, u);
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    let p = Normal::standard().sf(z);
    (p.clamp(0.0, 1.0), u)
}

fn latency_check(canary: &Counts, stable: &Counts, settings: &JudgeSettings) -> Check {
    let (p, _) = mann_whitney_greater(&canary.latency_disjoint(), &stable.latency_disjoint());
    let (mc, ms) = (
        canary.latency_quantile(0.5).unwrap_or(0.0),
        stable.latency_quantile(0.5).unwrap_or(0.0),
    );
    let worse = p < settings.alpha && mc - ms > settings.latency_margin_ms;
    let detail = if worse {
        format!(
            "canary p50 {mc:.1} ms vs stable {ms:.1} ms: +{:.1} ms > margin {:.1} ms, p={p:.2e} < {}",
            mc - ms,
            settings.latency_margin_ms,
            settings.alpha
        )
    } else {
        format!("canary p50 {mc:.1} ms vs stable {ms:.1} ms (p={p:.2e})")
    };
    Check {
        name: "latency".into(),
        passed: !worse,
        p_value: p,
        canary: mc,
        stable: ms,
        margin: settings.latency_margin_ms,
        detail,
    }
}
