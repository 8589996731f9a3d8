//! The rollout's events: one enum, serialized with a stable `event` tag. The same objects are
//! the audit log's lines, `rollout --json`'s lines on standard output and the notification
//! hooks' payloads (docs/guide/rollouts.md, "Rollout events", gives the schema).

use serde::Serialize;

use crate::metrics::counts::Counts;
use crate::rollout::checks::CheckResult;
use crate::rollout::judge::{Check, JudgeSettings, StepAction};

/// Which gate hook is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// `--gate-step`: before each step's weight is pushed.
    Step,
    /// `--gate-promote`: before the promotion.
    Promote,
}

impl GateKind {
    /// The flag that names the hook.
    pub fn flag(self) -> &'static str {
        match self {
            GateKind::Step => "--gate-step",
            GateKind::Promote => "--gate-promote",
        }
    }
}

/// One version's counts over an interval, as events report them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountsSummary {
    /// Responses counted.
    pub responses: u64,
    /// Of which 5xx.
    pub errors_5xx: u64,
    /// 5xx per response, percent.
    pub error_rate: f64,
    /// Latency samples.
    pub latency_samples: u64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

impl From<&Counts> for CountsSummary {
    fn from(counts: &Counts) -> CountsSummary {
        CountsSummary {
            responses: counts.answered(),
            errors_5xx: counts.errors(),
            error_rate: counts.error_rate(),
            latency_samples: counts.latency_samples(),
            p50_ms: counts.latency_quantile(0.5),
            p99_ms: counts.latency_quantile(0.99),
        }
    }
}

/// Something the rollout did or saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The rollout began (after the first step's preview, before any push).
    Started {
        canary: String,
        stable: String,
        /// The judged cohort's rule label (`weights` for the top-level split).
        cohort: String,
        steps: Vec<f64>,
        interval_seconds: f64,
        source: String,
        /// The weights the rollout pauses at for `canaryctl rollout resume`.
        pause_at: Vec<f64>,
    },
    /// A step's weight was pushed.
    Step { step: usize, weight: f64 },
    /// A dark canary's mirror was written (`percent` of the safe requests copied to
    /// `cluster`), or removed (`percent` 0).
    Mirror { percent: f64, cluster: String },
    /// An interval was judged: each side's counts over it and the judge's verdict.
    Verdict {
        step: usize,
        weight: f64,
        outcome: StepAction,
        reason: String,
        checks: Vec<Check>,
        /// The operator's own checks (`--checks`, `--check`); absent without any.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        custom_checks: Vec<CheckResult>,
        canary: CountsSummary,
        stable: CountsSummary,
        settings: JudgeSettings,
        /// The proxies that restarted, joined or left in the interval (`127.0.0.1:9901
        /// restarted`): each counts only what it counted in the interval.
        fleet: Vec<String>,
    },
    /// The step holds after an interval without a verdict.
    Hold {
        step: usize,
        weight: f64,
        holds: u32,
        max_holds: u32,
        why: String,
    },
    /// A read of the metrics source failed.
    SourceError {
        failures: u32,
        max_failed_reads: u32,
        error: String,
    },
    /// A gate hook is asked.
    GateWaiting {
        gate: GateKind,
        url: String,
        step: usize,
        weight: f64,
    },
    /// A gate hook answered 2xx.
    GateApproved {
        gate: GateKind,
        url: String,
        status: u16,
    },
    /// A gate hook refused (non-2xx, or unreachable); the rollout holds and asks again.
    GateRefused {
        gate: GateKind,
        url: String,
        refusals: u32,
        max_refusals: u32,
        reason: String,
    },
    /// A gate hook gave no answer in time, or refused too often: the rollout ends.
    GateFailed {
        gate: GateKind,
        url: String,
        reason: String,
    },
    /// Paused at a `--pause-at` weight until `canaryctl rollout resume` or `abort`.
    Paused {
        step: usize,
        weight: f64,
        state_file: String,
    },
    /// `canaryctl rollout resume` was given: the rollout goes on.
    Resumed { step: usize, weight: f64 },
    /// A termination signal: SIGINT (Ctrl-C), SIGTERM or SIGHUP; `action` is what
    /// `--on-interrupt` did.
    Interrupted { weight: f64, action: String },
    /// The target no longer held what the rollout last wrote (seen after an interval, before a
    /// push or before the promotion): someone else changed it. Nothing is written; the rollout
    /// stops (`stopped` follows).
    Overridden {
        /// The step it was at or about to push (or promote), and that step's weight.
        step: usize,
        weight: f64,
        /// The canary's weight the rollout last wrote, and the one the target holds now.
        expected_weight: f64,
        found_weight: f64,
        /// What differs, `field: was → is`.
        changes: Vec<String>,
        /// Who changed it, as far as canaryctl recorded.
        by: String,
    },
    /// Every step passed.
    Promoted { weight: f64, summary: String },
    /// The canary was taken to 0 % everywhere: written, and `confirmed` when every proxy of
    /// the fleet runs it; otherwise `not_confirmed` says what was not (the rollout then exits
    /// 1 with that error).
    RolledBack {
        reason: String,
        summary: String,
        confirmed: bool,
        not_confirmed: Option<String>,
    },
    /// The rollout ended with the weight left where it was.
    Stopped {
        weight: f64,
        reason: String,
        summary: String,
    },
}

impl Event {
    /// One line for people (the Slack payload's text), naming the canary.
    pub fn text(&self, canary: &str) -> String {
        match self {
            Event::Started {
                stable,
                cohort,
                steps,
                ..
            } => format!(
                "rollout of `{canary}` against `{stable}` (cohort {cohort}) started: steps {}",
                steps
                    .iter()
                    .map(|w| format!("{w}%"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            Event::Step { step, weight } => format!("`{canary}`: step {step} at {weight}%"),
            Event::Mirror { percent, .. } if *percent == 0.0 => {
                format!("`{canary}`: mirror removed")
            }
            Event::Mirror { percent, cluster } => {
                format!("`{canary}`: {percent}% of the safe requests copied to {cluster}")
            }
            Event::Verdict {
                step,
                weight,
                outcome,
                reason,
                canary: ours,
                stable,
                ..
            } => format!(
                "`{canary}` step {step} at {weight}%: {} ({reason}); canary {} req {:.2}% 5xx, stable {} req {:.2}% 5xx",
                match outcome {
                    StepAction::Pass => "pass",
                    StepAction::Hold => "hold",
                    StepAction::Fail => "FAIL",
                },
                ours.responses, ours.error_rate, stable.responses, stable.error_rate
            ),
            Event::Hold {
                weight, holds, max_holds, why, ..
            } => format!("`{canary}` holds at {weight}% ({holds} of {max_holds}): {why}"),
            Event::SourceError {
                failures,
                max_failed_reads,
                error,
            } => format!(
                "`{canary}`: metrics read failed ({failures} of {max_failed_reads}): {error}"
            ),
            Event::GateWaiting {
                gate, url, weight, ..
            } => format!("`{canary}`: asking {} {url} before {weight}%", gate.flag()),
            Event::GateApproved { gate, url, status } => {
                format!("`{canary}`: {} {url} approved ({status})", gate.flag())
            }
            Event::GateRefused {
                gate,
                url,
                refusals,
                max_refusals,
                reason,
            } => format!(
                "`{canary}`: {} {url} refused ({refusals} of {max_refusals}, --gate-max-refusals): {reason}",
                gate.flag()
            ),
            Event::GateFailed { gate, url, reason } => {
                format!("`{canary}`: {} {url} failed: {reason}", gate.flag())
            }
            Event::Paused { weight, .. } => format!(
                "`{canary}` paused at {weight}%: `canaryctl rollout resume` goes on, `canaryctl rollout abort` rolls back"
            ),
            Event::Resumed { weight, .. } => format!("`{canary}` resumed at {weight}%"),
            Event::Interrupted { weight, action } => {
                format!("`{canary}` interrupted at {weight}%: {action}")
            }
            Event::Overridden {
                weight,
                changes,
                by,
                ..
            } => format!(
                "`{canary}`: stopped at the step of {weight}%, the configuration was {by}: {}",
                changes.join("; ")
            ),
            Event::Promoted { summary, .. }
            | Event::RolledBack { summary, .. }
            | Event::Stopped { summary, .. } => summary.clone(),
        }
    }
}

/// An event as written: the event's fields, the version rolled out (`rollout_of`: an event's
/// `canary` field is the canary's counts) and the time (seconds since the epoch).
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    #[serde(flatten)]
    pub event: &'a Event,
    pub rollout_of: &'a str,
    pub time: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_tag_and_fields() {
        let event = Event::GateRefused {
            gate: GateKind::Promote,
            url: "http://127.0.0.1:1/gate".into(),
            refusals: 1,
            max_refusals: 3,
            reason: "answered 409".into(),
        };
        let record = Record {
            event: &event,
            rollout_of: "canary",
            time: 1.5,
        };
        let value = serde_json::to_value(&record).ok();
        assert_eq!(
            value,
            Some(serde_json::json!({
                "event": "gate_refused", "gate": "promote", "url": "http://127.0.0.1:1/gate",
                "refusals": 1, "max_refusals": 3, "reason": "answered 409",
                "rollout_of": "canary", "time": 1.5
            }))
        );
        assert_eq!(
            event.text("canary"),
            "`canary`: --gate-promote http://127.0.0.1:1/gate refused (1 of 3, \
             --gate-max-refusals): answered 409"
        );
    }
}
