//! The operator's own checks (`rollout --checks FILE`, `--check NAME=SPEC`): PromQL queries
//! templated by `{version}`, `{service}` and `{interval}`, read from Prometheus at each of the
//! rollout's reads and judged beside the built-in checks.
//!
//! Two kinds (docs/guide/rollouts.md, "Your own checks"):
//!
//! - A **count** check (`bad` and `total`, two queries of counters): the canary's rate of bad
//!   events is judged with the same anytime-valid evidence as the built-in 5xx check
//!   ([`crate::rollout::evidence::Sequential`]), against stable (`rate ≤ ratio · stable's + margin`) or
//!   against a ceiling (`max`). The count checks share their own `alpha` (the file's, 0.01 by
//!   default) as the built-in checks share `--alpha`: a check fails when its e-value reaches
//!   `count checks / alpha`.
//! - A **value** check (`query`, one number per version): compared with `max`/`min`, or with
//!   stable's value (`ratio`, `margin`); it fails after `consecutive` intervals in a row out of
//!   bounds. Not anytime-valid: a noisy value fails a good canary as often as it strays.
//!
//! What decides is pure ([`CustomJudgement`], [`combine`]); [`Reader`] only queries.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::metrics::prometheus::Prometheus;
use crate::rollout::evidence::{Bound, Sequential, Tally};
use crate::rollout::judge::{percent, short, StepAction, Verdict};

/// The default `alpha` of the count checks.
pub const DEFAULT_ALPHA: f64 = 0.01;
/// The default `consecutive` of a value check.
pub const DEFAULT_CONSECUTIVE: u32 = 3;
/// The default `min_total` of a count check.
pub const DEFAULT_MIN_TOTAL: u64 = 10;

/// A checks file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    /// Shared by the count checks.
    #[serde(default)]
    alpha: Option<f64>,
    checks: Vec<CheckSpec>,
}

/// One check as written (in a file, or after `NAME=` of `--check`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSpec {
    #[serde(default)]
    name: Option<String>,
    bad: Option<String>,
    total: Option<String>,
    query: Option<String>,
    max: Option<f64>,
    min: Option<f64>,
    margin: Option<f64>,
    ratio: Option<f64>,
    consecutive: Option<u32>,
    min_total: Option<u64>,
}

/// What a value check compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueBound {
    /// The canary's value within `[min, max]` (either may be open).
    Fixed {
        /// Below it is out of bounds.
        min: Option<f64>,
        /// Above it is out of bounds.
        max: Option<f64>,
    },
    /// The canary's value at most `ratio · stable's + margin`.
    Stable {
        /// Multiplies stable's value.
        ratio: f64,
        /// Added.
        margin: f64,
    },
}

/// What a check reads and how it is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Bad events over all events, judged with anytime-valid evidence.
    Count {
        /// The query of the bad events' counter.
        bad: String,
        /// The query of all events' counter.
        total: String,
        /// The null: the canary's rate at most `ratio · stable's + margin` (ratio 0: a ceiling).
        bound: Bound,
        /// Events each side needs at a step before the step can pass (the canary alone
        /// against a ceiling).
        min_total: u64,
    },
    /// One number per version, judged interval by interval.
    Value {
        /// The query.
        query: String,
        /// The bounds.
        bound: ValueBound,
        /// Intervals in a row out of bounds that fail the check.
        consecutive: u32,
    },
}

impl Kind {
    /// Whether stable is read too.
    fn reads_stable(&self) -> bool {
        match self {
            Kind::Count { bound, .. } => bound.ratio != 0.0,
            Kind::Value { bound, .. } => matches!(bound, ValueBound::Stable { .. }),
        }
    }
}

/// One check of the operator's.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomCheck {
    /// Its name, in lines and events.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
}

/// The operator's checks of one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// Shared by the count checks.
    pub alpha: f64,
    /// The checks, in the order given.
    pub list: Vec<CustomCheck>,
}

impl Checks {
    /// The checks of `--checks FILE` (if given) and then of each `--check NAME=SPEC`; `None`
    /// when there are none.
    pub fn load(file: Option<&Path>, inline: &[String]) -> Result<Option<Checks>> {
        let mut alpha = None;
        let mut list = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--checks: cannot read {}", path.display()))?;
            let parsed =
                Checks::parse(&text).with_context(|| format!("--checks {}", path.display()))?;
            alpha = Some(parsed.alpha);
            list = parsed.list;
        }
        for given in inline {
            let check = parse_inline(given).with_context(|| format!("--check {given}"))?;
            list.push(check);
        }
        if list.is_empty() {
            return Ok(None);
        }
        let checks = Checks {
            alpha: alpha.unwrap_or(DEFAULT_ALPHA),
            list,
        };
        checks.check_names()?;
        Ok(Some(checks))
    }

    /// A checks file's text.
    pub fn parse(text: &str) -> Result<Checks> {
        let spec: FileSpec = serde_yaml_ng::from_str(text)?;
        let alpha = spec.alpha.unwrap_or(DEFAULT_ALPHA);
        if !(alpha > 0.0 && alpha < 1.0) {
            bail!("alpha must be a number above 0 and below 1, not {alpha}");
        }
        let list = spec
            .checks
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = spec
                    .name
                    .clone()
                    .ok_or_else(|| anyhow!("checks[{i}]: give the check a name"))?;
                validate(&name, spec).with_context(|| format!("checks[{i}] ({name})"))
            })
            .collect::<Result<Vec<_>>>()?;
        if list.is_empty() {
            bail!("checks: the file has no check");
        }
        let checks = Checks { alpha, list };
        checks.check_names()?;
        Ok(checks)
    }

    fn check_names(&self) -> Result<()> {
        const BUILT_IN: [&str; 4] = ["errors", "ceiling", "latency", "latency_tail"];
        for (i, check) in self.list.iter().enumerate() {
            if BUILT_IN.contains(&check.name.as_str()) {
                bail!(
                    "check `{}`: the name is a built-in check's; give yours another",
                    check.name
                );
            }
            if self.list[..i].iter().any(|c| c.name == check.name) {
                bail!("check `{}` is given twice", check.name);
            }
        }
        Ok(())
    }

    /// The count checks, which share `alpha`.
    pub fn counts(&self) -> usize {
        self.list
            .iter()
            .filter(|c| matches!(c.kind, Kind::Count { .. }))
            .count()
    }

    /// The e-value at which a count check fails: `count checks / alpha`.
    pub fn threshold(&self) -> f64 {
        self.counts().max(1) as f64 / self.alpha
    }

    /// One line for the rollout's start: each check and what fails it.
    pub fn describe(&self) -> String {
        let each: Vec<String> = self
            .list
            .iter()
            .map(|check| {
                let rule = match &check.kind {
                    Kind::Count { bound, .. } if bound.ratio == 0.0 => format!(
                        "bad/total ≤ {}%, fails at e ≥ {}",
                        bound.margin * 100.0,
                        short(self.threshold())
                    ),
                    Kind::Count { bound, .. } => format!(
                        "bad/total ≤ {}stable's +{} pp, fails at e ≥ {}",
                        times(bound.ratio),
                        bound.margin * 100.0,
                        short(self.threshold())
                    ),
                    Kind::Value {
                        bound, consecutive, ..
                    } => format!(
                        "value {}, fails after {consecutive} interval(s) in a row out of bounds",
                        allowed(*bound)
                    ),
                };
                format!("`{}` ({rule})", check.name)
            })
            .collect();
        format!("your checks: {}", each.join("; "))
    }
}

/// `1.5× ` before "stable's", nothing for 1.
fn times(ratio: f64) -> String {
    if ratio == 1.0 {
        String::new()
    } else {
        format!("{ratio}× ")
    }
}

/// A value check's bounds in words.
fn allowed(bound: ValueBound) -> String {
    match bound {
        ValueBound::Fixed { min, max } => match (min, max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => "anything".to_string(),
        },
        ValueBound::Stable { ratio, margin } => {
            format!("at most {}stable's +{margin}", times(ratio))
        }
    }
}

/// `NAME=SPEC`, SPEC one check's fields as YAML (`{bad: ..., total: ..., max: 2}`).
fn parse_inline(given: &str) -> Result<CustomCheck> {
    let (name, spec) = given.split_once('=').ok_or_else(|| {
        anyhow!("give NAME=SPEC, for example checkout='{{bad: ..., total: ..., margin: 1}}'")
    })?;
    let name = name.trim();
    let spec: CheckSpec = serde_yaml_ng::from_str(spec)
        .with_context(|| format!("check `{name}`: SPEC is one check's fields as YAML"))?;
    if spec.name.as_deref().is_some_and(|n| n != name) {
        bail!("check `{name}`: its SPEC names another check");
    }
    validate(name, spec).with_context(|| format!("check `{name}`"))
}

/// A check as written made into one that can be judged, or the field that is wrong.
fn validate(name: &str, spec: CheckSpec) -> Result<CustomCheck> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        bail!("name {name:?}: letters, digits, `_`, `-` and `.` only");
    }
    let finite = |field: &str, value: Option<f64>| -> Result<Option<f64>> {
        match value {
            Some(v) if !v.is_finite() => bail!("{field} must be a finite number, not {v}"),
            other => Ok(other),
        }
    };
    let (max, min) = (finite("max", spec.max)?, finite("min", spec.min)?);
    let (margin, ratio) = (finite("margin", spec.margin)?, finite("ratio", spec.ratio)?);
    let fixed = max.is_some() || min.is_some();
    let stable = margin.is_some() || ratio.is_some();
    if fixed == stable {
        bail!(
            "give either a fixed bound (max, or for a query max and/or min) or a comparison with \
             stable (margin and/or ratio), not {}",
            if fixed { "both" } else { "neither" }
        );
    }
    if ratio.is_some_and(|r| r < 0.0) {
        bail!("ratio must be 0 or more");
    }
    let kind = match (spec.bad, spec.total, spec.query) {
        (Some(bad), Some(total), None) => {
            if spec.consecutive.is_some() {
                bail!("consecutive is for a query's value; a count check is judged on evidence");
            }
            if min.is_some() {
                bail!("min is for a query's value; a count check's bound is a max");
            }
            let bound = match max {
                Some(max) => {
                    if !(max > 0.0 && max < 100.0) {
                        bail!("max must be a percent above 0 and below 100, not {max}");
                    }
                    Bound {
                        ratio: 0.0,
                        margin: max / 100.0,
                    }
                }
                None => {
                    let margin = margin.unwrap_or(0.0);
                    if !(0.0..100.0).contains(&margin) {
                        bail!(
                            "margin must be percentage points from 0 up to (not including) 100, \
                             not {margin}"
                        );
                    }
                    Bound {
                        ratio: ratio.unwrap_or(1.0),
                        margin: margin / 100.0,
                    }
                }
            };
            let min_total = spec.min_total.unwrap_or(DEFAULT_MIN_TOTAL);
            if min_total == 0 {
                bail!("min_total must be at least 1: no verdict on no events");
            }
            Kind::Count {
                bad,
                total,
                bound,
                min_total,
            }
        }
        (None, None, Some(query)) => {
            if spec.min_total.is_some() {
                bail!("min_total is for a count check (bad and total)");
            }
            let consecutive = spec.consecutive.unwrap_or(DEFAULT_CONSECUTIVE);
            if consecutive == 0 {
                bail!("consecutive must be at least 1");
            }
            if let (Some(min), Some(max)) = (min, max) {
                if min > max {
                    bail!("min {min} is above max {max}");
                }
            }
            let bound = if fixed {
                ValueBound::Fixed { min, max }
            } else {
                ValueBound::Stable {
                    ratio: ratio.unwrap_or(1.0),
                    margin: margin.unwrap_or(0.0),
                }
            };
            Kind::Value {
                query,
                bound,
                consecutive,
            }
        }
        (bad, total, query) => {
            let given: Vec<&str> = [
                bad.map(|_| "bad"),
                total.map(|_| "total"),
                query.map(|_| "query"),
            ]
            .into_iter()
            .flatten()
            .collect();
            bail!(
                "give `bad` and `total` (a count check) or `query` (a value check), not {}",
                if given.is_empty() {
                    "none of them".to_string()
                } else {
                    given.join(" and ")
                }
            )
        }
    };
    Ok(CustomCheck {
        name: name.to_string(),
        kind,
    })
}

/// A query with its placeholders filled: `{version}`, `{service}` (label values, escaped for a
/// PromQL string) and `{interval}` (a PromQL duration). Other braces are PromQL's own.
pub fn template(query: &str, version: &str, service: &str, interval: Duration) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    query
        .replace("{version}", &escape(version))
        .replace("{service}", &escape(service))
        .replace("{interval}", &promql_duration(interval))
}

/// A duration as PromQL writes it: whole seconds as `30s`, else milliseconds (`1500ms`).
pub fn promql_duration(interval: Duration) -> String {
    let ms = interval.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// One check's reading: cumulative counters (count checks) or the values now (value checks).
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// `(bad, total)` of canary and stable, cumulative (stable's `(0, 0)` when not read).
    Count {
        /// The canary's.
        canary: (u64, u64),
        /// Stable's.
        stable: (u64, u64),
    },
    /// The canary's and stable's values (`None`: the query returned no series).
    Value {
        /// The canary's.
        canary: Option<f64>,
        /// Stable's.
        stable: Option<f64>,
    },
}

/// Every check's reading, in the checks' order (empty without checks).
pub type Readings = Vec<Reading>;

/// Reads the checks' queries from Prometheus.
#[derive(Clone)]
pub struct Reader {
    /// The server.
    pub prometheus: Prometheus,
    /// `{service}`.
    pub service: String,
    /// `{interval}`.
    pub interval: Duration,
}

impl Reader {
    /// Every check's reading now, for the versions `canary` and `stable`.
    pub fn read(&self, checks: &Checks, canary: &str, stable: &str) -> Result<Readings> {
        checks
            .list
            .iter()
            .map(|check| {
                self.read_one(check, canary, stable)
                    .with_context(|| format!("check `{}`", check.name))
            })
            .collect()
    }

    fn read_one(&self, check: &CustomCheck, canary: &str, stable: &str) -> Result<Reading> {
        let with_stable = check.kind.reads_stable();
        match &check.kind {
            Kind::Count { bad, total, .. } => {
                let counter = |query: &str, version: &str| -> Result<u64> {
                    // A counter not yet incremented has no series: none counted.
                    Ok(self
                        .one(query, version)?
                        .map_or(0, |v| v.max(0.0).round() as u64))
                };
                let side = |version: &str| -> Result<(u64, u64)> {
                    Ok((counter(bad, version)?, counter(total, version)?))
                };
                Ok(Reading::Count {
                    canary: side(canary)?,
                    stable: if with_stable { side(stable)? } else { (0, 0) },
                })
            }
            Kind::Value { query, .. } => Ok(Reading::Value {
                canary: self.one(query, canary)?,
                stable: if with_stable {
                    self.one(query, stable)?
                } else {
                    None
                },
            }),
        }
    }

    /// The one number `query` returns for `version`: `None` for no series (or NaN), an error
    /// for more than one.
    fn one(&self, query: &str, version: &str) -> Result<Option<f64>> {
        let promql = template(query, version, &self.service, self.interval);
        let samples = self.prometheus.query(&promql)?;
        match samples.as_slice() {
            [] => Ok(None),
            [sample] => Ok(Some(sample.value).filter(|v| !v.is_nan())),
            more => bail!(
                "{promql:?} returns {} series for `{version}`, one wanted: wrap it in sum(...)",
                more.len()
            ),
        }
    }
}

/// One check's result after an interval, as lines and events show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// `count` or `value`.
    pub kind: &'static str,
    /// Passed (so far) or not.
    pub passed: bool,
    /// Whether the step has the data the check needs to pass.
    pub ready: bool,
    /// The canary's value: its rate of bad events over the rollout (percent), or its value
    /// this interval.
    pub canary: Option<f64>,
    /// Stable's, likewise (`None` against a fixed bound).
    pub stable: Option<f64>,
    /// A count check's e-value now (its peak once failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    /// The e-value at which a count check fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// A value check's intervals in a row out of bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<u32>,
    /// In words.
    pub detail: String,
}

impl CheckResult {
    /// `checkout FAIL e=812/100`, `queue_depth ok 0 out` (intervals in a row out of bounds)
    /// for the printed line.
    pub fn brief(&self) -> String {
        let state = if self.passed { "ok" } else { "FAIL" };
        match (self.e_value, self.threshold, self.out_of_bounds) {
            (Some(e), Some(t), _) => format!("{} {state} e={}/{}", self.name, short(e), short(t)),
            (_, _, Some(n)) => format!("{} {state} {n} out", self.name),
            _ => format!("{} {state}", self.name),
        }
    }
}

/// What a count check has gathered.
#[derive(Debug, Clone)]
struct CountState {
    evidence: Sequential,
    /// Stable's `(bad, total)` before the interval: predicts stable's rate (never the evidence).
    reference: (u64, u64),
    /// Over the rollout, for the numbers shown.
    canary_total: (u64, u64),
    stable_total: (u64, u64),
    /// At this step: `(canary total, stable total)`.
    step: (u64, u64),
}

/// What a value check has gathered.
#[derive(Debug, Clone, Default)]
struct ValueState {
    /// Intervals in a row out of bounds.
    out_of_bounds: u32,
    /// Failed once: stays failed.
    failed: bool,
    /// Intervals with a value at this step.
    step_values: u32,
}

#[derive(Debug, Clone)]
enum State {
    // Boxed: the evidence is large beside a value check's streak.
    Count(Box<CountState>),
    Value(ValueState),
}

/// The judgement of the operator's checks over one rollout.
#[derive(Debug, Clone)]
pub struct CustomJudgement {
    checks: Checks,
    states: Vec<State>,
    step: Option<usize>,
}

impl CustomJudgement {
    /// No evidence yet.
    pub fn new(checks: Checks) -> CustomJudgement {
        let states = checks
            .list
            .iter()
            .map(|check| match &check.kind {
                Kind::Count { bound, .. } => State::Count(Box::new(CountState {
                    evidence: Sequential::new(*bound),
                    reference: (0, 0),
                    canary_total: (0, 0),
                    stable_total: (0, 0),
                    step: (0, 0),
                })),
                Kind::Value { .. } => State::Value(ValueState::default()),
            })
            .collect();
        CustomJudgement {
            checks,
            states,
            step: None,
        }
    }

    /// The checks.
    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// Stable's cumulative counts before the rollout predict stable's rate (never the
    /// evidence), as the built-in judge's seed.
    pub fn seed(&mut self, before: &Readings) {
        for (state, reading) in self.states.iter_mut().zip(before) {
            if let (State::Count(state), Reading::Count { stable, .. }) = (state, reading) {
                state.reference.0 += stable.0;
                state.reference.1 += stable.1;
            }
        }
    }

    /// Judges one interval at step `step` (0-based): `before` and `now` are the readings at its
    /// start and end. One result per check, in order.
    pub fn observe(&mut self, step: usize, before: &Readings, now: &Readings) -> Vec<CheckResult> {
        let new_step = self.step != Some(step);
        self.step = Some(step);
        let threshold = self.checks.threshold();
        let mut results = Vec::new();
        for ((check, state), (then, now)) in self
            .checks
            .list
            .iter()
            .zip(self.states.iter_mut())
            .zip(before.iter().zip(now))
        {
            let result = match (&check.kind, state, then, now) {
                (
                    Kind::Count {
                        bound, min_total, ..
                    },
                    State::Count(state),
                    Reading::Count {
                        canary: c0,
                        stable: s0,
                    },
                    Reading::Count { canary, stable },
                ) => {
                    if new_step {
                        state.step = (0, 0);
                    }
                    let tally = interval_tally(*c0, *canary, *s0, *stable);
                    judge_count(&check.name, *bound, *min_total, threshold, state, tally)
                }
                (
                    Kind::Value {
                        bound, consecutive, ..
                    },
                    State::Value(state),
                    _,
                    Reading::Value { canary, stable },
                ) => {
                    if new_step {
                        state.step_values = 0;
                    }
                    judge_value(&check.name, *bound, *consecutive, state, *canary, *stable)
                }
                // Readings always come from the same checks, in order.
                _ => continue,
            };
            results.push(result);
        }
        results
    }
}

/// One interval's counts from two cumulative readings: differences, a counter that went down
/// (a restart) read from zero, and never more bad events than events (the two counters are
/// scraped apart).
fn interval_tally(c0: (u64, u64), c1: (u64, u64), s0: (u64, u64), s1: (u64, u64)) -> Tally {
    let since = |then: u64, now: u64| if now < then { now } else { now - then };
    let side = |then: (u64, u64), now: (u64, u64)| {
        let total = since(then.1, now.1);
        (since(then.0, now.0).min(total), total)
    };
    let ((canary, canary_n), (stable, stable_n)) = (side(c0, c1), side(s0, s1));
    Tally {
        canary,
        canary_n,
        stable,
        stable_n,
    }
}

/// A share smoothed away from 0 and 1 (Jeffreys), for predictions (as the built-in judge).
fn smoothed(part: u64, whole: u64) -> f64 {
    (part as f64 + 0.5) / (whole as f64 + 1.0)
}

/// A count check after one interval's `tally`: the evidence updated with stable's rate
/// predicted from earlier data, failed once its peak reaches `threshold`.
fn judge_count(
    name: &str,
    bound: Bound,
    min_total: u64,
    threshold: f64,
    state: &mut CountState,
    tally: Tally,
) -> CheckResult {
    let guess = smoothed(state.reference.0, state.reference.1);
    state.evidence.update(tally, guess);
    state.reference.0 += tally.stable;
    state.reference.1 += tally.stable_n;
    state.canary_total.0 += tally.canary;
    state.canary_total.1 += tally.canary_n;
    state.stable_total.0 += tally.stable;
    state.stable_total.1 += tally.stable_n;
    state.step.0 += tally.canary_n;
    state.step.1 += tally.stable_n;
    let against_stable = bound.ratio != 0.0;
    let (peak, now) = (state.evidence.peak(), state.evidence.e_value());
    let passed = peak < threshold;
    let (cb, ct) = state.canary_total;
    let (sb, st) = state.stable_total;
    let rc = percent(cb, ct);
    let rs = percent(sb, st);
    let what = if against_stable {
        format!(
            "canary {rc:.2}% ({cb} of {ct}) vs stable {rs:.2}% ({sb} of {st}) over the rollout, \
             allowed {}stable's +{} pp",
            times(bound.ratio),
            bound.margin * 100.0
        )
    } else {
        format!(
            "canary {rc:.2}% ({cb} of {ct}) over the rollout vs the ceiling {}%",
            bound.margin * 100.0
        )
    };
    let detail = if passed {
        format!("{what}: e={} < {}", short(now), short(threshold))
    } else {
        format!(
            "{what}: e={} ≥ {} (anytime p={:.1e})",
            short(peak),
            short(threshold),
            1.0 / peak
        )
    };
    let ready = state.step.0 >= min_total && (!against_stable || state.step.1 >= min_total);
    CheckResult {
        name: name.to_string(),
        kind: "count",
        passed,
        ready,
        canary: Some(rc),
        stable: against_stable.then_some(rs),
        e_value: Some(if passed { now } else { peak }),
        threshold: Some(threshold),
        out_of_bounds: None,
        detail,
    }
}

/// Whether a value is out of bounds: `None` when there is no value to compare (no canary
/// value, or no stable value to compare it with).
pub fn out_of_bounds(bound: ValueBound, canary: Option<f64>, stable: Option<f64>) -> Option<bool> {
    let canary = canary?;
    match bound {
        ValueBound::Fixed { min, max } => {
            Some(min.is_some_and(|m| canary < m) || max.is_some_and(|m| canary > m))
        }
        ValueBound::Stable { ratio, margin } => Some(canary > ratio * stable? + margin),
    }
}

/// A value check after one interval: out of bounds `consecutive` intervals in a row fails it
/// (for good); an interval in bounds starts the count again; one without a value changes
/// nothing.
fn judge_value(
    name: &str,
    bound: ValueBound,
    consecutive: u32,
    state: &mut ValueState,
    canary: Option<f64>,
    stable: Option<f64>,
) -> CheckResult {
    let out = out_of_bounds(bound, canary, stable);
    match out {
        Some(true) => state.out_of_bounds += 1,
        Some(false) => state.out_of_bounds = 0,
        None => {}
    }
    if out.is_some() {
        state.step_values += 1;
    }
    if state.out_of_bounds >= consecutive {
        state.failed = true;
    }
    let allowed = allowed(bound);
    let number = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.4}"));
    let versus = match bound {
        ValueBound::Stable { .. } => format!(" vs stable {}", number(stable)),
        ValueBound::Fixed { .. } => String::new(),
    };
    let detail = format!(
        "canary {}{versus} this interval, allowed {allowed}: out of bounds {} interval(s) in a \
         row, fails at {consecutive} (not anytime-valid)",
        number(canary),
        state.out_of_bounds
    );
    CheckResult {
        name: name.to_string(),
        kind: "value",
        passed: !state.failed,
        ready: state.step_values > 0,
        canary,
        stable,
        e_value: None,
        threshold: None,
        out_of_bounds: Some(state.out_of_bounds),
        detail,
    }
}

/// The built-in verdict with the operator's checks: a failed check fails the interval, naming
/// it; a check without the data it needs at this step holds a step the built-in checks pass.
pub fn combine(verdict: Verdict, results: &[CheckResult]) -> Verdict {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("check `{}`: {}", r.name, r.detail))
        .collect();
    if !failed.is_empty() {
        let reason = match verdict.outcome {
            StepAction::Fail => format!("{}; {}", verdict.reason, failed.join("; ")),
            _ => failed.join("; "),
        };
        return Verdict {
            outcome: StepAction::Fail,
            reason,
            checks: verdict.checks,
        };
    }
    let waiting: Vec<String> = results
        .iter()
        .filter(|r| !r.ready)
        .map(|r| format!("check `{}` has no data enough at this step yet", r.name))
        .collect();
    match verdict.outcome {
        StepAction::Pass if !waiting.is_empty() => Verdict {
            outcome: StepAction::Hold,
            reason: format!("not enough data yet at this step: {}", waiting.join(", ")),
            checks: verdict.checks,
        },
        StepAction::Hold if !waiting.is_empty() => Verdict {
            outcome: StepAction::Hold,
            reason: format!("{}, {}", verdict.reason, waiting.join(", ")),
            checks: verdict.checks,
        },
        _ => verdict,
    }
}

/// The operator's checks of a rollout and where they are read.
#[derive(Clone)]
pub struct Custom {
    /// The checks.
    pub checks: Checks,
    /// Their queries' server.
    pub reader: Reader,
}

impl Custom {
    /// Asks Prometheus every query once, for both versions, before anything is pushed: a query
    /// it refuses or one that returns more than one series stops the rollout here, not after
    /// the first step.
    /// Both versions are asked every query, also where the check reads the canary alone.
    pub fn preflight(&self, canary: &str, stable: &str) -> Result<()> {
        let ask = || -> Result<()> {
            for check in &self.checks.list {
                let queries = match &check.kind {
                    Kind::Count { bad, total, .. } => vec![bad, total],
                    Kind::Value { query, .. } => vec![query],
                };
                for query in queries {
                    for version in [canary, stable] {
                        self.reader
                            .one(query, version)
                            .with_context(|| format!("check `{}`", check.name))?;
                    }
                }
            }
            Ok(())
        };
        ask()
            .context("asking Prometheus the checks' queries before the first push; nothing written")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const FILE: &str = r#"
alpha: 0.02
checks:
  - name: checkout
    bad: sum(checkout_failed_total{version="{version}"})
    total: sum(checkout_total{version="{version}"})
    margin: 1
  - name: refunds
    bad: sum(refund_total{app="{service}",version="{version}"})
    total: sum(order_total{app="{service}",version="{version}"})
    max: 2
  - name: cpu
    query: sum(rate(cpu_seconds_total{version="{version}"}[{interval}]))
    ratio: 1.2
    consecutive: 2
  - name: queue
    query: max(queue_depth{version="{version}"})
    max: 50
"#;

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!(
            (got - want).abs() <= tolerance * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn a_checks_file_gives_each_kind_its_bound() {
        let checks = Checks::parse(FILE).unwrap();
        assert_eq!(checks.alpha, 0.02);
        assert_eq!(checks.counts(), 2);
        // Two count checks share alpha 0.02: each fails at 2 / 0.02.
        close(checks.threshold(), 100.0, 1e-12);
        let kinds: Vec<&Kind> = checks.list.iter().map(|c| &c.kind).collect();
        assert!(matches!(kinds[0], Kind::Count { bound, min_total: 10, .. }
            if *bound == Bound { ratio: 1.0, margin: 0.01 }));
        assert!(matches!(kinds[1], Kind::Count { bound, .. }
            if *bound == Bound { ratio: 0.0, margin: 0.02 }));
        assert!(matches!(kinds[2], Kind::Value { bound, consecutive: 2, .. }
            if *bound == ValueBound::Stable { ratio: 1.2, margin: 0.0 }));
        assert!(matches!(kinds[3], Kind::Value { bound, consecutive: 3, .. }
            if *bound == ValueBound::Fixed { min: None, max: Some(50.0) }));
    }

    #[test]
    fn the_checks_are_described_with_what_fails_them() {
        assert_eq!(
            Checks::parse(FILE).unwrap().describe(),
            "your checks: `checkout` (bad/total ≤ stable's +1 pp, fails at e ≥ 100); \
             `refunds` (bad/total ≤ 2%, fails at e ≥ 100); `cpu` (value at most 1.2× stable's +0, \
             fails after 2 interval(s) in a row out of bounds); `queue` (value at most 50, fails \
             after 3 interval(s) in a row out of bounds)"
        );
    }

    #[test]
    fn an_inline_check_is_one_checks_fields() {
        let check = parse_inline(
            r#"checkout={bad: 'sum(failed{version="{version}"})', total: 'sum(all{version="{version}"})', ratio: 1.5}"#,
        )
        .unwrap();
        assert_eq!(check.name, "checkout");
        assert!(matches!(check.kind, Kind::Count { bound, .. }
            if bound == Bound { ratio: 1.5, margin: 0.0 }));
        let loaded = Checks::load(None, &[r"p99={query: 'x', max: 0.3}".to_string()])
            .unwrap()
            .unwrap();
        assert_eq!(loaded.alpha, DEFAULT_ALPHA);
        assert!(Checks::load(None, &[]).unwrap().is_none());
    }

    #[test]
    fn a_wrong_check_is_refused_naming_the_field() {
        let refused =
            |spec: &str| format!("{:#}", parse_inline(&format!("c={spec}")).expect_err(spec));
        assert!(refused("{bad: a, total: b}").contains("neither"));
        assert!(refused("{bad: a, total: b, max: 2, margin: 1}").contains("both"));
        assert!(refused("{bad: a, max: 2}").contains("not bad"));
        assert!(refused("{bad: a, total: b, query: q, max: 2}").contains("bad and total and query"));
        assert!(refused("{bad: a, total: b, max: 120}").contains("max must be a percent"));
        assert!(refused("{bad: a, total: b, max: 2, consecutive: 2}").contains("consecutive"));
        assert!(refused("{query: q, max: 1, min: 2}").contains("min 2 is above max 1"));
        assert!(refused("{query: q, max: 1, consecutive: 0}").contains("consecutive"));
        assert!(refused("{query: q, max: 1, typo: 1}").contains("unknown field `typo`"));
        let err = format!(
            "{:#}",
            Checks::parse("checks:\n- name: errors\n  query: q\n  max: 1\n").unwrap_err()
        );
        assert!(err.contains("built-in"), "{err}");
        let err = format!(
            "{:#}",
            Checks::parse(
                "checks:\n- name: a\n  query: q\n  max: 1\n- name: a\n  query: q\n  max: 1\n"
            )
            .unwrap_err()
        );
        assert!(err.contains("given twice"), "{err}");
    }

    #[test]
    fn queries_are_templated_by_version_service_and_interval() {
        let query = r#"sum(increase(x{app="{service}",version="{version}"}[{interval}]))"#;
        assert_eq!(
            template(query, "canary", "shop", Duration::from_secs(30)),
            r#"sum(increase(x{app="shop",version="canary"}[30s]))"#
        );
        assert_eq!(
            template(
                r#"x{v="{version}"}[{interval}]"#,
                r#"a"b"#,
                "",
                Duration::from_millis(1500)
            ),
            r#"x{v="a\"b"}[1500ms]"#
        );
    }

    #[test]
    fn an_interval_is_the_difference_of_two_reads() {
        // Plain differences.
        assert_eq!(
            interval_tally((1, 10), (3, 30), (0, 100), (2, 300)),
            Tally {
                canary: 2,
                canary_n: 20,
                stable: 2,
                stable_n: 200
            }
        );
        // A counter that went down restarted: read from zero. Bad events scraped after
        // their total are capped at the total.
        assert_eq!(
            interval_tally((5, 50), (1, 8), (0, 10), (7, 15)),
            Tally {
                canary: 1,
                canary_n: 8,
                stable: 5,
                stable_n: 5
            }
        );
    }

    /// Read as binomial, so that the reference values need no burst estimate: the checks read
    /// their counts through the same burst correction as the built-in checks
    /// ([`Sequential::new`]; its tests are in `evidence.rs` and `dispersion.rs`).
    fn count_state(bound: Bound) -> CountState {
        CountState {
            evidence: Sequential::new(bound).binomial(),
            reference: (0, 0),
            canary_total: (0, 0),
            stable_total: (0, 0),
            step: (0, 0),
        }
    }

    /// Against a ceiling the null point is the ceiling itself, so the e-value is the mean over
    /// the experts of `(a/a0)^x · ((1-a)/(1-a0))^(n-x)` with `a = logistic(logit(a0) + d)`,
    /// computed apart in Python (math module) for `a0 = 0.02`.
    #[test]
    fn a_count_check_against_a_ceiling_has_the_hand_computed_evidence() {
        let ceiling = Bound {
            ratio: 0.0,
            margin: 0.02,
        };
        let one = |x: u64| Tally {
            canary: x,
            canary_n: 100,
            stable: 0,
            stable_n: 0,
        };
        let mut good = count_state(ceiling);
        let result = judge_count("c", ceiling, 10, 100.0, &mut good, one(2));
        close(result.e_value.unwrap(), 0.47051580236070034, 1e-9);
        assert!(result.passed && result.ready);
        assert_eq!(result.stable, None);

        let mut bad = count_state(ceiling);
        let result = judge_count("c", ceiling, 10, 1000.0, &mut bad, one(10));
        close(result.e_value.unwrap(), 522.2727540062316, 1e-9);
        assert!(result.passed, "522 is under 1000");
        let result = judge_count("c", ceiling, 10, 1000.0, &mut bad, one(10));
        // Each expert's product over both intervals, then the mean.
        close(result.e_value.unwrap(), 2165627.086842289, 1e-9);
        assert!(!result.passed);
        assert!(
            result.detail.starts_with(
                "canary 10.00% (20 of 200) over the rollout vs the ceiling 2%: e=2.2e6 ≥ 1000"
            ),
            "{}",
            result.detail
        );
    }

    #[test]
    fn a_count_check_against_stable_is_ready_with_both_sides_counted() {
        let bound = Bound {
            ratio: 1.0,
            margin: 0.01,
        };
        let mut state = count_state(bound);
        state.reference = (10, 1000);
        let tally = Tally {
            canary: 1,
            canary_n: 50,
            stable: 5,
            stable_n: 5,
        };
        let result = judge_count("c", bound, 10, 100.0, &mut state, tally);
        assert!(result.passed);
        assert!(!result.ready, "stable has 5 of 10 events");
        assert_eq!(result.canary, Some(2.0));
        assert_eq!(result.stable, Some(100.0));
        // Stable's counts join the reference, never the evidence of their own interval.
        assert_eq!(state.reference, (15, 1005));
    }

    #[test]
    fn a_value_check_fails_after_its_intervals_in_a_row() {
        let bound = ValueBound::Fixed {
            min: None,
            max: Some(1.0),
        };
        let mut state = ValueState::default();
        let mut step = |canary: Option<f64>| {
            let r = judge_value("q", bound, 3, &mut state, canary, None);
            (r.passed, r.out_of_bounds.unwrap())
        };
        assert_eq!(step(Some(2.0)), (true, 1));
        assert_eq!(step(Some(2.0)), (true, 2));
        // In bounds: the count starts again; no value changes nothing.
        assert_eq!(step(Some(0.5)), (true, 0));
        assert_eq!(step(Some(2.0)), (true, 1));
        assert_eq!(step(None), (true, 1));
        assert_eq!(step(Some(1.5)), (true, 2));
        assert_eq!(step(Some(3.0)), (false, 3));
        // Failed stays failed.
        assert_eq!(step(Some(0.0)), (false, 0));
    }

    #[test]
    fn bounds_of_values() {
        let stable = ValueBound::Stable {
            ratio: 1.2,
            margin: 0.5,
        };
        assert_eq!(out_of_bounds(stable, Some(12.5), Some(10.0)), Some(false));
        assert_eq!(out_of_bounds(stable, Some(12.6), Some(10.0)), Some(true));
        assert_eq!(out_of_bounds(stable, Some(12.6), None), None);
        assert_eq!(out_of_bounds(stable, None, Some(1.0)), None);
        let band = ValueBound::Fixed {
            min: Some(0.9),
            max: None,
        };
        assert_eq!(out_of_bounds(band, Some(0.8), None), Some(true));
        assert_eq!(out_of_bounds(band, Some(0.9), None), Some(false));
    }

    fn result(name: &str, passed: bool, ready: bool) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "count",
            passed,
            ready,
            canary: None,
            stable: None,
            e_value: Some(1.0),
            threshold: Some(100.0),
            out_of_bounds: None,
            detail: "numbers".into(),
        }
    }

    fn verdict(outcome: StepAction, reason: &str) -> Verdict {
        Verdict {
            outcome,
            reason: reason.into(),
            checks: Vec::new(),
        }
    }

    #[test]
    fn a_failed_check_fails_the_interval_and_a_waiting_one_holds_it() {
        let pass = verdict(StepAction::Pass, "canary is no worse than stable");
        let failed = combine(
            pass.clone(),
            &[result("a", true, true), result("b", false, true)],
        );
        assert_eq!(failed.outcome, StepAction::Fail);
        assert_eq!(failed.reason, "check `b`: numbers");
        let held = combine(pass.clone(), &[result("a", true, false)]);
        assert_eq!(held.outcome, StepAction::Hold);
        assert_eq!(
            held.reason,
            "not enough data yet at this step: check `a` has no data enough at this step yet"
        );
        assert_eq!(combine(pass.clone(), &[result("a", true, true)]), pass);
        let both = combine(
            verdict(StepAction::Fail, "errors: x"),
            &[result("b", false, true)],
        );
        assert_eq!(both.reason, "errors: x; check `b`: numbers");
        let hold = verdict(
            StepAction::Hold,
            "not enough data yet at this step: canary 3 of 100 responses",
        );
        assert_eq!(combine(hold.clone(), &[result("a", true, true)]), hold);
    }
}
