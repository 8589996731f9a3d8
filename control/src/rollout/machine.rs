//! The rollout's step machine, pure: it is told what happened (a push went through, a read
//! came back, an interval's verdict, a gate's answer, a tick of the clock, an interrupt) and
//! answers what to do next (push weight W, wait until T, read, ask gate G, pause, roll back,
//! finish). It does no I/O and reads no clock: every input comes with the time, as a
//! [`Duration`] since the rollout began. `rollout.rs` runs it against Envoy or Istio and the
//! metrics source; the judge simulation (`examples/judge-sim`) runs it against drawn counts;
//! the unit tests below run it tick by tick on a fake clock.
//!
//! The plan, as `docs/guide/rollouts.md` documents it:
//! - `--mirror`: a dark phase first: the mirror is written, judged interval by interval like a
//!   step at 0 %, then removed however the phase ends; a pass starts the steps, a failure rolls
//!   back, `--max-holds` holds stop.
//! - Each step: the gates (`--gate-step`, and `--gate-promote` before a step of 100 %), the push,
//!   the settle wait (`--settle`), a baseline read, then intervals: pass goes on, hold stays
//!   (`--max-holds` holds in a row stop with the weight held), fail rolls back. A step of 100 %
//!   is the promotion once pushed. After a passed step listed in `--pause-at` the rollout
//!   pauses until resumed (go on) or aborted (roll back).
//! - A plan whose last step is below 100 % is promoted at that weight once it passes: the
//!   promotion gate, then a check that the target still holds what the rollout wrote.
//! - A gate refusal waits an interval and asks again; `--gate-max-refusals` refusals in a row,
//!   or no answer in time, is a failed gate: `--on-gate-failure` rolls back or stops.
//! - `--max-failed-reads` failed reads in a row (one per interval) roll back.
//! - An interrupt holds the weight or rolls back (`--on-interrupt`).
//! - A target changed by someone else stops the rollout without writing.

use std::time::Duration;

use anyhow::{bail, Result};

use super::events::GateKind;
use super::hooks::OnGateFailure;
use super::judge::StepAction;
use super::OnInterrupt;

/// The plan the machine steps through (checked by `Rollout::check` before it starts).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Weights to step through, strictly increasing, each in (0, 100].
    pub steps: Vec<f64>,
    /// Time between reads: an interval, and the wait before asking a refusing gate again or
    /// reading again after a failed read.
    pub interval: Duration,
    /// Wait after each push before the step's baseline read (none when zero).
    pub settle: Duration,
    /// Holds in a row at one step (or the dark phase) after which the rollout stops.
    pub max_holds: u32,
    /// Failed reads in a row after which the rollout rolls back.
    pub max_failed_reads: u32,
    /// Weights (steps) to pause at once they have passed.
    pub pause_at: Vec<f64>,
    /// A `--gate-step` hook is set.
    pub gate_step: bool,
    /// A `--gate-promote` hook is set.
    pub gate_promote: bool,
    /// Refusals of one gate in a row after which it has failed.
    pub gate_max_refusals: u32,
    /// What a failed gate does.
    pub on_gate_failure: OnGateFailure,
    /// What an interrupt does.
    pub on_interrupt: OnInterrupt,
    /// A dark phase first, at this mirror percent.
    pub mirror: Option<f64>,
}

/// Where the rollout is: the dark phase, or a step (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The dark phase (`--mirror`): the canary at 0 %, judged on copies.
    Dark,
    /// Step `n` of the plan, from 0.
    Step(usize),
}

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// After a push, for the stats flush and the scrape (`--settle`).
    Settle,
    /// An interval, before reading and judging it.
    Interval,
    /// An interval after a failed read, before reading again.
    ReadRetry,
    /// An interval after a gate's refusal, before asking again.
    GateRetry,
}

/// What a gate's failure was.
#[derive(Debug, Clone, PartialEq)]
pub enum GateFailure {
    /// Refused this many times in a row (`--gate-max-refusals`); the last refusal's reason.
    Refused { refusals: u32, last: String },
    /// No answer in time (`--gate-timeout`), or no answer at all.
    TimedOut(String),
}

/// Why the rollout ended other than promoted.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The judge failed the canary; its reason.
    Failed(String),
    /// This many holds in a row (`--max-holds`).
    MaxHolds(u32),
    /// A gate failed before the step (or promotion) of weight `before`.
    Gate {
        gate: GateKind,
        before: f64,
        failure: GateFailure,
    },
    /// `failures` failed reads in a row (`--max-failed-reads`); the last error.
    ReadsFailed { failures: u32, last: String },
    /// A termination signal.
    Interrupted,
    /// `canaryctl rollout abort` during a pause.
    Aborted,
    /// The target was changed by someone else; what changed and who.
    Overridden(String),
}

/// How the rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Every step passed: the canary is at `weight`.
    Promoted { weight: f64 },
    /// Rolled back at `at`, from `weight`; `confirmed` false when the rollback was written but
    /// the fleet did not confirm it.
    RolledBack {
        at: At,
        weight: f64,
        cause: Cause,
        confirmed: bool,
    },
    /// Stopped at `at`, the canary left at `weight`.
    Stopped { at: At, weight: f64, cause: Cause },
}

/// What the machine decided that the reports (lines, events, history) say; nothing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The interval passed at `at`.
    Passed { at: At },
    /// The interval failed at `at`.
    Failed { at: At },
    /// The interval held: `holds` in a row at `at`, of `max_holds`; the rollout stops when
    /// they are equal.
    Held { at: At, holds: u32, max_holds: u32 },
    /// A read failed: `failures` in a row, of `max`; the rollout rolls back when equal.
    ReadFailed { at: At, failures: u32, max: u32 },
    /// A gate refused: `refusals` in a row, of `max`; it has failed when equal.
    GateRefused {
        gate: GateKind,
        refusals: u32,
        max: u32,
    },
    /// A gate failed; what `--on-gate-failure` says follows.
    GateFailed {
        gate: GateKind,
        failure: GateFailure,
    },
    /// Interrupted at `weight`; `on_interrupt` was done.
    Interrupted {
        weight: f64,
        on_interrupt: OnInterrupt,
    },
}

/// What to do next. Of the actions one input returns, the last is the one whose outcome the
/// machine waits for (or [`Action::Finish`]); the notes before it are to be reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Report this.
    Note(Note),
    /// Write the mirror at the plan's percent; answer [`Input::Pushed`].
    Mirror,
    /// Remove the mirror; answer [`Input::Pushed`].
    Unmirror,
    /// Ask `gate` before step `step` (from 0) of `weight`, after `refusals` refusals; answer
    /// [`Input::Gate`] (or [`Input::Interrupted`]).
    AskGate {
        gate: GateKind,
        step: usize,
        weight: f64,
        refusals: u32,
    },
    /// Push the canary's weight of step `step`; answer [`Input::Pushed`] or
    /// [`Input::Overridden`] (or [`Input::Interrupted`] when a signal came before it).
    Push { step: usize, weight: f64 },
    /// Wait until `until`; answer [`Input::Tick`] (or [`Input::Interrupted`]).
    Wait { until: Duration, waiting: Waiting },
    /// Read the source, the baseline the next interval is counted from (the first of the
    /// steps also seeds the judge); answer [`Input::ReadOk`] or [`Input::ReadFailed`].
    ReadBaseline { at: At },
    /// Read the source at the interval's end, check the target still holds what the rollout
    /// wrote (at a step), judge the interval; answer [`Input::Verdict`], [`Input::ReadFailed`]
    /// or [`Input::Overridden`].
    JudgeInterval { at: At, weight: f64 },
    /// Pause after step `step` of `weight` until resumed or aborted; answer
    /// [`Input::Resumed`], [`Input::Aborted`] or [`Input::Interrupted`].
    Pause { step: usize, weight: f64 },
    /// Before promoting: check the target still holds what the rollout wrote; answer
    /// [`Input::Owned`] or [`Input::Overridden`].
    CheckOwned,
    /// Take the canary off every split; answer [`Input::RolledBack`].
    RollBack,
    /// The rollout ends so.
    Finish(Ending),
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum GateReply {
    /// A 2xx: go on.
    Approved,
    /// Another answer: hold; why.
    Refused(String),
    /// No answer in time; why.
    TimedOut(String),
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The rollout begins (the first input).
    Start,
    /// The push, mirror or mirror removal asked for went through.
    Pushed,
    /// The target no longer holds what the rollout last wrote: the canary is at `found`; what
    /// changed and who changed it.
    Overridden { found: f64, why: String },
    /// A gate answered.
    Gate(GateReply),
    /// The clock moved (the wait asked for may be over).
    Tick,
    /// The read asked for came back.
    ReadOk,
    /// The read asked for failed; why.
    ReadFailed(String),
    /// The interval's verdict, and its reason.
    Verdict { outcome: StepAction, reason: String },
    /// The target still holds what the rollout wrote.
    Owned,
    /// `canaryctl rollout resume`.
    Resumed,
    /// `canaryctl rollout abort`.
    Aborted,
    /// A termination signal.
    Interrupted,
    /// The rollback went through; `confirmed` false when written but not confirmed.
    RolledBack { confirmed: bool },
}

/// What the machine waits for.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Not started.
    Idle,
    /// The mirror's write.
    Mirroring,
    /// The mirror's removal; then `then`.
    Unmirroring(Then),
    /// A gate's answer.
    Asking { gate: GateKind, refusals: u32 },
    /// The wait before asking a gate again.
    GateRetry {
        gate: GateKind,
        refusals: u32,
        until: Duration,
    },
    /// The push of the step's weight.
    Pushing,
    /// A wait.
    Waiting { until: Duration, waiting: Waiting },
    /// The baseline read.
    Baseline,
    /// The interval's read and verdict.
    Judging,
    /// The pause's answer.
    Paused,
    /// The ownership check before the promotion.
    CheckingOwned,
    /// The rollback; then the end for `cause`.
    RollingBack(Cause),
    /// Finished.
    Done,
}

/// What follows the mirror's removal.
#[derive(Debug, Clone, PartialEq)]
enum Then {
    /// The steps.
    Steps,
    /// A rollback for this cause.
    RollBack(Cause),
    /// The end: stopped for this cause.
    Stop(Cause),
    /// What an interrupt does.
    Interrupt,
}

/// The step machine of one rollout.
#[derive(Debug, Clone)]
pub struct Machine {
    plan: Plan,
    state: State,
    at: At,
    /// The canary's weight now: what it was found at, then the last pushed step's.
    current: f64,
    /// The mirror is written.
    mirrored: bool,
    /// Holds in a row at `at`.
    holds: u32,
    /// Failed reads in a row.
    failures: u32,
    /// The step's (or dark phase's) baseline has been read: a failed read is retried as the
    /// interval's read.
    baseline_read: bool,
    /// The promotion of a plan whose last step is below 100 % is under way.
    promoting: bool,
}

impl Machine {
    /// A machine for `plan`, with the canary found at weight `found`.
    pub fn new(plan: Plan, found: f64) -> Machine {
        Machine {
            plan,
            state: State::Idle,
            at: At::Step(0),
            current: found,
            mirrored: false,
            holds: 0,
            failures: 0,
            baseline_read: false,
            promoting: false,
        }
    }

    /// Where the rollout is.
    pub fn at(&self) -> At {
        self.at
    }

    /// The canary's weight now (0 in the dark phase).
    pub fn weight(&self) -> f64 {
        match self.at {
            At::Dark => 0.0,
            At::Step(_) => self.current,
        }
    }

    /// The weight of step `index`.
    fn step_weight(&self, index: usize) -> f64 {
        self.plan.steps.get(index).copied().unwrap_or(100.0)
    }

    fn step_index(&self) -> usize {
        match self.at {
            At::Dark => 0,
            At::Step(index) => index,
        }
    }

    /// What to do after `input`, which happened at `now` (since the rollout began). Refuses an
    /// input the machine does not wait for.
    pub fn on(&mut self, now: Duration, input: Input) -> Result<Vec<Action>> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let actions = match (state, input) {
            (State::Done, input) => bail!("the rollout has ended; {input:?} came after"),
            (State::Idle, Input::Start) => match self.plan.mirror {
                Some(_) => {
                    self.at = At::Dark;
                    self.state = State::Mirroring;
                    vec![Action::Mirror]
                }
                None => self.enter_step(0),
            },
            (State::Mirroring, Input::Pushed) => {
                self.mirrored = true;
                self.settle(now)
            }
            (State::Unmirroring(then), Input::Pushed) => {
                self.mirrored = false;
                match then {
                    Then::Steps => self.enter_step(0),
                    Then::RollBack(cause) => self.roll_back(cause),
                    Then::Stop(cause) => self.stop(cause),
                    Then::Interrupt => self.interrupt(),
                }
            }
            (State::Asking { gate, refusals }, Input::Gate(reply)) => {
                self.gate_answered(now, gate, refusals, reply)
            }
            (
                State::GateRetry {
                    gate,
                    refusals,
                    until,
                },
                Input::Tick,
            ) => {
                if now < until {
                    self.state = State::GateRetry {
                        gate,
                        refusals,
                        until,
                    };
                    vec![Action::Wait {
                        until,
                        waiting: Waiting::GateRetry,
                    }]
                } else {
                    self.ask(gate, refusals)
                }
            }
            (State::Pushing, Input::Pushed) => {
                let index = self.step_index();
                self.current = self.step_weight(index);
                if self.current >= 100.0 {
                    // Nothing is left to compare against: reaching 100 % is the promotion.
                    self.finish(Ending::Promoted {
                        weight: self.current,
                    })
                } else {
                    self.settle(now)
                }
            }
            (State::Waiting { until, waiting }, Input::Tick) => {
                if now < until {
                    self.state = State::Waiting { until, waiting };
                    vec![Action::Wait { until, waiting }]
                } else {
                    match waiting {
                        Waiting::Settle => self.read_baseline(),
                        Waiting::Interval => self.judge_interval(),
                        Waiting::ReadRetry => {
                            // What was being read: the baseline until the first interval.
                            if self.reading_baseline() {
                                self.read_baseline()
                            } else {
                                self.judge_interval()
                            }
                        }
                        Waiting::GateRetry => bail!("a gate's wait is a state of its own"),
                    }
                }
            }
            (State::Baseline, Input::ReadOk) => {
                self.failures = 0;
                self.baseline_read = true;
                self.wait(now, Waiting::Interval)
            }
            (State::Baseline | State::Judging, Input::ReadFailed(error)) => {
                self.failures += 1;
                let max = self.plan.max_failed_reads;
                let mut actions = vec![Action::Note(Note::ReadFailed {
                    at: self.at,
                    failures: self.failures,
                    max,
                })];
                if self.failures >= max {
                    actions.extend(self.roll_back(Cause::ReadsFailed {
                        failures: self.failures,
                        last: error,
                    }));
                } else {
                    actions.extend(self.wait(now, Waiting::ReadRetry));
                }
                actions
            }
            (State::Judging, Input::Verdict { outcome, reason }) => {
                self.failures = 0;
                self.verdict(now, outcome, reason)
            }
            (State::Paused, Input::Resumed) => self.after_step(),
            (State::Paused, Input::Aborted) => self.roll_back(Cause::Aborted),
            (State::CheckingOwned, Input::Owned) => self.finish(Ending::Promoted {
                weight: self.current,
            }),
            (
                State::Pushing | State::Judging | State::CheckingOwned,
                Input::Overridden { found, why },
            ) => self.finish(Ending::Stopped {
                at: self.at,
                weight: found,
                cause: Cause::Overridden(why),
            }),
            (State::RollingBack(cause), Input::RolledBack { confirmed }) => {
                let mut actions = Vec::new();
                if cause == Cause::Interrupted {
                    actions.push(Action::Note(Note::Interrupted {
                        weight: self.weight(),
                        on_interrupt: OnInterrupt::Rollback,
                    }));
                }
                actions.extend(self.finish(Ending::RolledBack {
                    at: self.at,
                    weight: self.weight(),
                    cause,
                    confirmed,
                }));
                actions
            }
            // A signal while waiting (for the clock, a gate's next question, a pause's answer)
            // or before a push: the mirror goes first, then what --on-interrupt says.
            (
                State::Waiting { .. }
                | State::GateRetry { .. }
                | State::Paused
                | State::Pushing
                | State::Asking { .. },
                Input::Interrupted,
            ) => {
                if self.mirrored {
                    self.unmirror(Then::Interrupt)
                } else {
                    self.interrupt()
                }
            }
            (state, input) => {
                self.state = state.clone();
                bail!("{input:?} while the rollout waits for {state:?}")
            }
        };
        Ok(actions)
    }

    /// Before the first interval of the step (or the dark phase), reads are baselines.
    fn reading_baseline(&self) -> bool {
        !self.baseline_read
    }

    fn enter_step(&mut self, index: usize) -> Vec<Action> {
        self.at = At::Step(index);
        self.holds = 0;
        self.baseline_read = false;
        if self.plan.gate_step {
            return self.ask(GateKind::Step, 0);
        }
        self.after_gate(GateKind::Step)
    }

    /// Next after `gate` approved (or was not set): the promotion gate before a step of 100 %,
    /// then the push; at the promotion of a plan below 100 %, the ownership check.
    fn after_gate(&mut self, gate: GateKind) -> Vec<Action> {
        if self.promoting {
            self.state = State::CheckingOwned;
            return vec![Action::CheckOwned];
        }
        let index = self.step_index();
        let weight = self.step_weight(index);
        if gate == GateKind::Step && weight >= 100.0 && self.plan.gate_promote {
            return self.ask(GateKind::Promote, 0);
        }
        self.state = State::Pushing;
        vec![Action::Push {
            step: index,
            weight,
        }]
    }

    fn ask(&mut self, gate: GateKind, refusals: u32) -> Vec<Action> {
        self.state = State::Asking { gate, refusals };
        let step = self.step_index();
        vec![Action::AskGate {
            gate,
            step,
            weight: self.step_weight(step),
            refusals,
        }]
    }

    fn gate_answered(
        &mut self,
        now: Duration,
        gate: GateKind,
        refusals: u32,
        reply: GateReply,
    ) -> Vec<Action> {
        let failure = match reply {
            GateReply::Approved => return self.after_gate(gate),
            GateReply::TimedOut(why) => GateFailure::TimedOut(why),
            GateReply::Refused(why) => {
                let refusals = refusals + 1;
                let max = self.plan.gate_max_refusals;
                let note = Action::Note(Note::GateRefused {
                    gate,
                    refusals,
                    max,
                });
                if refusals < max {
                    let until = now + self.plan.interval;
                    self.state = State::GateRetry {
                        gate,
                        refusals,
                        until,
                    };
                    return vec![
                        note,
                        Action::Wait {
                            until,
                            waiting: Waiting::GateRetry,
                        },
                    ];
                }
                let mut actions = vec![note];
                actions.extend(self.gate_failed(
                    gate,
                    GateFailure::Refused {
                        refusals,
                        last: why,
                    },
                ));
                return actions;
            }
        };
        self.gate_failed(gate, failure)
    }

    fn gate_failed(&mut self, gate: GateKind, failure: GateFailure) -> Vec<Action> {
        let mut actions = vec![Action::Note(Note::GateFailed {
            gate,
            failure: failure.clone(),
        })];
        let cause = Cause::Gate {
            gate,
            before: self.step_weight(self.step_index()),
            failure,
        };
        actions.extend(match self.plan.on_gate_failure {
            OnGateFailure::Rollback => self.roll_back(cause),
            OnGateFailure::Stop => self.stop(cause),
        });
        actions
    }

    /// After a write: the settle wait, or the baseline read at once when there is none.
    fn settle(&mut self, now: Duration) -> Vec<Action> {
        if self.plan.settle.is_zero() {
            return self.read_baseline();
        }
        self.wait(now, Waiting::Settle)
    }

    fn wait(&mut self, now: Duration, waiting: Waiting) -> Vec<Action> {
        let length = match waiting {
            Waiting::Settle => self.plan.settle,
            _ => self.plan.interval,
        };
        let until = now + length;
        self.state = State::Waiting { until, waiting };
        vec![Action::Wait { until, waiting }]
    }

    fn read_baseline(&mut self) -> Vec<Action> {
        self.state = State::Baseline;
        vec![Action::ReadBaseline { at: self.at }]
    }

    fn judge_interval(&mut self) -> Vec<Action> {
        self.state = State::Judging;
        vec![Action::JudgeInterval {
            at: self.at,
            weight: self.weight(),
        }]
    }

    fn verdict(&mut self, now: Duration, outcome: StepAction, reason: String) -> Vec<Action> {
        let at = self.at;
        match outcome {
            StepAction::Pass => {
                let mut actions = vec![Action::Note(Note::Passed { at })];
                actions.extend(match at {
                    At::Dark => self.unmirror(Then::Steps),
                    At::Step(index) => {
                        let weight = self.step_weight(index);
                        if self.plan.pause_at.contains(&weight) {
                            self.state = State::Paused;
                            vec![Action::Pause {
                                step: index,
                                weight,
                            }]
                        } else {
                            self.after_step()
                        }
                    }
                });
                actions
            }
            StepAction::Hold => {
                self.holds += 1;
                let max_holds = self.plan.max_holds;
                let mut actions = vec![Action::Note(Note::Held {
                    at,
                    holds: self.holds,
                    max_holds,
                })];
                if self.holds >= max_holds {
                    let cause = Cause::MaxHolds(self.holds);
                    actions.extend(if self.mirrored {
                        self.unmirror(Then::Stop(cause))
                    } else {
                        self.stop(cause)
                    });
                } else {
                    actions.extend(self.wait(now, Waiting::Interval));
                }
                actions
            }
            StepAction::Fail => {
                let mut actions = vec![Action::Note(Note::Failed { at })];
                actions.extend(self.roll_back(Cause::Failed(reason)));
                actions
            }
        }
    }

    /// After a step passed (and its pause, if any, was resumed): the next step, or the
    /// promotion at the last step's weight.
    fn after_step(&mut self) -> Vec<Action> {
        let index = self.step_index();
        if index + 1 < self.plan.steps.len() {
            return self.enter_step(index + 1);
        }
        self.promoting = true;
        if self.plan.gate_promote {
            return self.ask(GateKind::Promote, 0);
        }
        self.after_gate(GateKind::Promote)
    }

    fn unmirror(&mut self, then: Then) -> Vec<Action> {
        self.state = State::Unmirroring(then);
        vec![Action::Unmirror]
    }

    /// Rolls back for `cause`; in the dark phase the mirror is removed first.
    fn roll_back(&mut self, cause: Cause) -> Vec<Action> {
        if self.mirrored {
            return self.unmirror(Then::RollBack(cause));
        }
        self.state = State::RollingBack(cause);
        vec![Action::RollBack]
    }

    fn stop(&mut self, cause: Cause) -> Vec<Action> {
        self.finish(Ending::Stopped {
            at: self.at,
            weight: self.weight(),
            cause,
        })
    }

    /// What `--on-interrupt` says, once the mirror (if any) is removed.
    fn interrupt(&mut self) -> Vec<Action> {
        match self.plan.on_interrupt {
            OnInterrupt::Hold => {
                let mut actions = vec![Action::Note(Note::Interrupted {
                    weight: self.weight(),
                    on_interrupt: OnInterrupt::Hold,
                })];
                actions.extend(self.stop(Cause::Interrupted));
                actions
            }
            OnInterrupt::Rollback => self.roll_back(Cause::Interrupted),
        }
    }

    fn finish(&mut self, ending: Ending) -> Vec<Action> {
        self.state = State::Done;
        vec![Action::Finish(ending)]
    }
}

#[cfg(test)]
mod tests {
    //! Each test drives the machine input by input on a fake clock (seconds since the start),
    //! with the actions expected written out by hand from `docs/guide/rollouts.md`.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use GateKind::{Promote, Step as StepGate};

    /// Steps 10 → 50 → 100 every minute, 2 s settle, 3 holds, 3 failed reads, no gates, no
    /// pause, `--on-interrupt hold`, gates failing by rollback after 3 refusals.
    fn plan() -> Plan {
        Plan {
            steps: vec![10.0, 50.0, 100.0],
            interval: Duration::from_secs(60),
            settle: Duration::from_secs(2),
            max_holds: 3,
            max_failed_reads: 3,
            pause_at: Vec::new(),
            gate_step: false,
            gate_promote: false,
            gate_max_refusals: 3,
            on_gate_failure: OnGateFailure::Rollback,
            on_interrupt: OnInterrupt::Hold,
            mirror: None,
        }
    }

    /// Feeds each input at its second and checks the actions.
    fn script(machine: &mut Machine, steps: Vec<(u64, Input, Vec<Action>)>) {
        for (n, (second, input, expected)) in steps.into_iter().enumerate() {
            let got = machine
                .on(Duration::from_secs(second), input.clone())
                .unwrap_or_else(|err| panic!("input {n} ({input:?} at {second} s): {err:#}"));
            assert_eq!(got, expected, "input {n}: {input:?} at {second} s");
        }
    }

    fn wait(second: u64, waiting: Waiting) -> Action {
        Action::Wait {
            until: Duration::from_secs(second),
            waiting,
        }
    }

    fn verdict(outcome: StepAction) -> Input {
        Input::Verdict {
            outcome,
            reason: format!("{outcome:?} reason"),
        }
    }

    fn push(step: usize, weight: f64) -> Action {
        Action::Push { step, weight }
    }

    fn judge(step: usize, weight: f64) -> Action {
        Action::JudgeInterval {
            at: At::Step(step),
            weight,
        }
    }

    fn note(note: Note) -> Action {
        Action::Note(note)
    }

    fn passed(step: usize) -> Action {
        note(Note::Passed { at: At::Step(step) })
    }

    fn held(step: usize, holds: u32, max_holds: u32) -> Action {
        note(Note::Held {
            at: At::Step(step),
            holds,
            max_holds,
        })
    }

    fn ask(gate: GateKind, step: usize, weight: f64, refusals: u32) -> Action {
        Action::AskGate {
            gate,
            step,
            weight,
            refusals,
        }
    }

    fn baseline(step: usize) -> Action {
        Action::ReadBaseline { at: At::Step(step) }
    }

    /// The first step of the plan up to its first interval's end: pushed at 0 s, settled at
    /// 2 s, baseline read, the interval judged at 62 s.
    fn first_interval() -> Vec<(u64, Input, Vec<Action>)> {
        vec![
            (0, Input::Start, vec![push(0, 10.0)]),
            (0, Input::Pushed, vec![wait(2, Waiting::Settle)]),
            (2, Input::Tick, vec![baseline(0)]),
            (2, Input::ReadOk, vec![wait(62, Waiting::Interval)]),
            (62, Input::Tick, vec![judge(0, 10.0)]),
        ]
    }

    #[test]
    fn a_healthy_canary_steps_through_the_plan_and_is_promoted_at_100() {
        let mut machine = Machine::new(plan(), 0.0);
        let mut steps = first_interval();
        steps.extend([
            // Not enough data yet: the step holds one more interval.
            (
                62,
                verdict(StepAction::Hold),
                vec![held(0, 1, 3), wait(122, Waiting::Interval)],
            ),
            // A tick before the interval's end waits on.
            (90, Input::Tick, vec![wait(122, Waiting::Interval)]),
            (122, Input::Tick, vec![judge(0, 10.0)]),
            (
                122,
                verdict(StepAction::Pass),
                vec![passed(0), push(1, 50.0)],
            ),
            (123, Input::Pushed, vec![wait(125, Waiting::Settle)]),
            (125, Input::Tick, vec![baseline(1)]),
            (125, Input::ReadOk, vec![wait(185, Waiting::Interval)]),
            (185, Input::Tick, vec![judge(1, 50.0)]),
            // The holds count per step: this is the first at 50 %.
            (
                185,
                verdict(StepAction::Hold),
                vec![held(1, 1, 3), wait(245, Waiting::Interval)],
            ),
            (245, Input::Tick, vec![judge(1, 50.0)]),
            (
                245,
                verdict(StepAction::Pass),
                vec![passed(1), push(2, 100.0)],
            ),
            // Reaching 100 % is the promotion: nothing is left to compare against.
            (
                246,
                Input::Pushed,
                vec![Action::Finish(Ending::Promoted { weight: 100.0 })],
            ),
        ]);
        script(&mut machine, steps);
        assert!(machine.on(Duration::from_secs(247), Input::Tick).is_err());
    }

    #[test]
    fn a_plan_below_100_is_promoted_at_its_last_step_after_the_gate_and_the_ownership_check() {
        let mut machine = Machine::new(
            Plan {
                steps: vec![10.0, 50.0],
                settle: Duration::ZERO,
                gate_promote: true,
                ..plan()
            },
            0.0,
        );
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![push(0, 10.0)]),
                // No settle: the baseline at once.
                (0, Input::Pushed, vec![baseline(0)]),
                (0, Input::ReadOk, vec![wait(60, Waiting::Interval)]),
                (60, Input::Tick, vec![judge(0, 10.0)]),
                (
                    60,
                    verdict(StepAction::Pass),
                    vec![passed(0), push(1, 50.0)],
                ),
                (60, Input::Pushed, vec![baseline(1)]),
                (60, Input::ReadOk, vec![wait(120, Waiting::Interval)]),
                (120, Input::Tick, vec![judge(1, 50.0)]),
                (
                    120,
                    verdict(StepAction::Pass),
                    vec![passed(1), ask(Promote, 1, 50.0, 0)],
                ),
                (
                    121,
                    Input::Gate(GateReply::Approved),
                    vec![Action::CheckOwned],
                ),
                (
                    121,
                    Input::Owned,
                    vec![Action::Finish(Ending::Promoted { weight: 50.0 })],
                ),
            ],
        );
    }

    /// `--pause-at` the last step of a plan below 100 %: the pause comes first, then the
    /// promotion gate and the ownership check.
    #[test]
    fn a_pause_at_the_last_step_comes_before_the_promotion() {
        let mut machine = Machine::new(
            Plan {
                steps: vec![10.0],
                pause_at: vec![10.0],
                gate_promote: true,
                ..plan()
            },
            0.0,
        );
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                verdict(StepAction::Pass),
                vec![
                    passed(0),
                    Action::Pause {
                        step: 0,
                        weight: 10.0,
                    },
                ],
            ),
            (70, Input::Resumed, vec![ask(Promote, 0, 10.0, 0)]),
            (
                71,
                Input::Gate(GateReply::Approved),
                vec![Action::CheckOwned],
            ),
            (
                71,
                Input::Owned,
                vec![Action::Finish(Ending::Promoted { weight: 10.0 })],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn a_failed_interval_rolls_back() {
        let mut machine = Machine::new(plan(), 0.0);
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                Input::Verdict {
                    outcome: StepAction::Fail,
                    reason: "errors: canary 5xx 20%".to_string(),
                },
                vec![note(Note::Failed { at: At::Step(0) }), Action::RollBack],
            ),
            (
                63,
                Input::RolledBack { confirmed: true },
                vec![Action::Finish(Ending::RolledBack {
                    at: At::Step(0),
                    weight: 10.0,
                    cause: Cause::Failed("errors: canary 5xx 20%".to_string()),
                    confirmed: true,
                })],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn a_rollback_written_but_not_confirmed_ends_rolled_back_unconfirmed() {
        let mut machine = Machine::new(plan(), 0.0);
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                verdict(StepAction::Fail),
                vec![note(Note::Failed { at: At::Step(0) }), Action::RollBack],
            ),
            (
                75,
                Input::RolledBack { confirmed: false },
                vec![Action::Finish(Ending::RolledBack {
                    at: At::Step(0),
                    weight: 10.0,
                    cause: Cause::Failed("Fail reason".to_string()),
                    confirmed: false,
                })],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn max_holds_in_a_row_stop_with_the_weight_held() {
        let mut machine = Machine::new(
            Plan {
                max_holds: 2,
                ..plan()
            },
            0.0,
        );
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                verdict(StepAction::Hold),
                vec![held(0, 1, 2), wait(122, Waiting::Interval)],
            ),
            (122, Input::Tick, vec![judge(0, 10.0)]),
            (
                122,
                verdict(StepAction::Hold),
                vec![
                    held(0, 2, 2),
                    Action::Finish(Ending::Stopped {
                        at: At::Step(0),
                        weight: 10.0,
                        cause: Cause::MaxHolds(2),
                    }),
                ],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn gates_hold_the_step_until_they_approve_and_the_promotion_gate_precedes_100() {
        let mut machine = Machine::new(
            Plan {
                steps: vec![10.0, 100.0],
                gate_step: true,
                gate_promote: true,
                ..plan()
            },
            0.0,
        );
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![ask(StepGate, 0, 10.0, 0)]),
                // A refusal holds an interval and asks again.
                (
                    1,
                    Input::Gate(GateReply::Refused("answered 409".to_string())),
                    vec![
                        note(Note::GateRefused {
                            gate: StepGate,
                            refusals: 1,
                            max: 3,
                        }),
                        wait(61, Waiting::GateRetry),
                    ],
                ),
                (30, Input::Tick, vec![wait(61, Waiting::GateRetry)]),
                (61, Input::Tick, vec![ask(StepGate, 0, 10.0, 1)]),
                (62, Input::Gate(GateReply::Approved), vec![push(0, 10.0)]),
                (62, Input::Pushed, vec![wait(64, Waiting::Settle)]),
                (64, Input::Tick, vec![baseline(0)]),
                (64, Input::ReadOk, vec![wait(124, Waiting::Interval)]),
                (124, Input::Tick, vec![judge(0, 10.0)]),
                (
                    124,
                    verdict(StepAction::Pass),
                    vec![passed(0), ask(StepGate, 1, 100.0, 0)],
                ),
                // Before 100 %: the step gate, then the promotion gate, then the push.
                (
                    125,
                    Input::Gate(GateReply::Approved),
                    vec![ask(Promote, 1, 100.0, 0)],
                ),
                (126, Input::Gate(GateReply::Approved), vec![push(1, 100.0)]),
                (
                    127,
                    Input::Pushed,
                    vec![Action::Finish(Ending::Promoted { weight: 100.0 })],
                ),
            ],
        );
    }

    #[test]
    fn a_gate_refusing_max_refusals_times_stops_with_the_weight_where_it_is() {
        let mut machine = Machine::new(
            Plan {
                steps: vec![10.0, 100.0],
                gate_promote: true,
                gate_max_refusals: 2,
                on_gate_failure: OnGateFailure::Stop,
                ..plan()
            },
            0.0,
        );
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                verdict(StepAction::Pass),
                vec![passed(0), ask(Promote, 1, 100.0, 0)],
            ),
            (
                63,
                Input::Gate(GateReply::Refused("answered 403".to_string())),
                vec![
                    note(Note::GateRefused {
                        gate: Promote,
                        refusals: 1,
                        max: 2,
                    }),
                    wait(123, Waiting::GateRetry),
                ],
            ),
            (123, Input::Tick, vec![ask(Promote, 1, 100.0, 1)]),
            (
                124,
                Input::Gate(GateReply::Refused("answered 403 again".to_string())),
                vec![
                    note(Note::GateRefused {
                        gate: Promote,
                        refusals: 2,
                        max: 2,
                    }),
                    note(Note::GateFailed {
                        gate: Promote,
                        failure: GateFailure::Refused {
                            refusals: 2,
                            last: "answered 403 again".to_string(),
                        },
                    }),
                    Action::Finish(Ending::Stopped {
                        at: At::Step(1),
                        weight: 10.0,
                        cause: Cause::Gate {
                            gate: Promote,
                            before: 100.0,
                            failure: GateFailure::Refused {
                                refusals: 2,
                                last: "answered 403 again".to_string(),
                            },
                        },
                    }),
                ],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn a_gate_that_does_not_answer_rolls_back() {
        let mut machine = Machine::new(
            Plan {
                gate_step: true,
                ..plan()
            },
            0.0,
        );
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![ask(StepGate, 0, 10.0, 0)]),
                (0, Input::Gate(GateReply::Approved), vec![push(0, 10.0)]),
                (0, Input::Pushed, vec![wait(2, Waiting::Settle)]),
                (2, Input::Tick, vec![baseline(0)]),
                (2, Input::ReadOk, vec![wait(62, Waiting::Interval)]),
                (62, Input::Tick, vec![judge(0, 10.0)]),
                (
                    62,
                    verdict(StepAction::Pass),
                    vec![passed(0), ask(StepGate, 1, 50.0, 0)],
                ),
                (
                    72,
                    Input::Gate(GateReply::TimedOut("no answer in 10s".to_string())),
                    vec![
                        note(Note::GateFailed {
                            gate: StepGate,
                            failure: GateFailure::TimedOut("no answer in 10s".to_string()),
                        }),
                        Action::RollBack,
                    ],
                ),
                // Rolled back from the weight it had: 50 % was never pushed.
                (
                    73,
                    Input::RolledBack { confirmed: true },
                    vec![Action::Finish(Ending::RolledBack {
                        at: At::Step(1),
                        weight: 10.0,
                        cause: Cause::Gate {
                            gate: StepGate,
                            before: 50.0,
                            failure: GateFailure::TimedOut("no answer in 10s".to_string()),
                        },
                        confirmed: true,
                    })],
                ),
            ],
        );
    }

    /// `--pause-at 10`: after the step passes, the rollout waits; resume goes on.
    fn paused_at_10() -> (Machine, Vec<(u64, Input, Vec<Action>)>) {
        let machine = Machine::new(
            Plan {
                pause_at: vec![10.0],
                ..plan()
            },
            0.0,
        );
        let mut steps = first_interval();
        steps.push((
            62,
            verdict(StepAction::Pass),
            vec![
                passed(0),
                Action::Pause {
                    step: 0,
                    weight: 10.0,
                },
            ],
        ));
        (machine, steps)
    }

    #[test]
    fn a_pause_waits_for_resume_then_goes_on() {
        let (mut machine, mut steps) = paused_at_10();
        steps.extend([
            // However long it waits.
            (3600, Input::Resumed, vec![push(1, 50.0)]),
            (3600, Input::Pushed, vec![wait(3602, Waiting::Settle)]),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn a_pause_answered_by_abort_rolls_back() {
        let (mut machine, mut steps) = paused_at_10();
        steps.extend([
            (100, Input::Aborted, vec![Action::RollBack]),
            (
                101,
                Input::RolledBack { confirmed: true },
                vec![Action::Finish(Ending::RolledBack {
                    at: At::Step(0),
                    weight: 10.0,
                    cause: Cause::Aborted,
                    confirmed: true,
                })],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn an_interrupt_while_paused_with_on_interrupt_rollback_rolls_back() {
        let (_, steps) = paused_at_10();
        let mut machine = Machine::new(
            Plan {
                pause_at: vec![10.0],
                on_interrupt: OnInterrupt::Rollback,
                ..plan()
            },
            0.0,
        );
        let mut steps = steps;
        steps.extend([
            (100, Input::Interrupted, vec![Action::RollBack]),
            (
                101,
                Input::RolledBack { confirmed: true },
                vec![
                    note(Note::Interrupted {
                        weight: 10.0,
                        on_interrupt: OnInterrupt::Rollback,
                    }),
                    Action::Finish(Ending::RolledBack {
                        at: At::Step(0),
                        weight: 10.0,
                        cause: Cause::Interrupted,
                        confirmed: true,
                    }),
                ],
            ),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn an_interrupt_during_an_interval_holds_the_weight() {
        let mut machine = Machine::new(plan(), 0.0);
        let mut steps = first_interval();
        steps.truncate(4);
        steps.push((
            30,
            Input::Interrupted,
            vec![
                note(Note::Interrupted {
                    weight: 10.0,
                    on_interrupt: OnInterrupt::Hold,
                }),
                Action::Finish(Ending::Stopped {
                    at: At::Step(0),
                    weight: 10.0,
                    cause: Cause::Interrupted,
                }),
            ],
        ));
        script(&mut machine, steps);
    }

    #[test]
    fn an_interrupt_during_the_settle_wait_with_on_interrupt_rollback_rolls_back() {
        let mut machine = Machine::new(
            Plan {
                on_interrupt: OnInterrupt::Rollback,
                ..plan()
            },
            0.0,
        );
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![push(0, 10.0)]),
                (0, Input::Pushed, vec![wait(2, Waiting::Settle)]),
                (1, Input::Interrupted, vec![Action::RollBack]),
                (
                    1,
                    Input::RolledBack { confirmed: true },
                    vec![
                        note(Note::Interrupted {
                            weight: 10.0,
                            on_interrupt: OnInterrupt::Rollback,
                        }),
                        Action::Finish(Ending::RolledBack {
                            at: At::Step(0),
                            weight: 10.0,
                            cause: Cause::Interrupted,
                            confirmed: true,
                        }),
                    ],
                ),
            ],
        );
    }

    /// A signal that came during the gates pushes nothing: the weight stays where the rollout
    /// found it.
    #[test]
    fn an_interrupt_before_a_push_pushes_nothing() {
        let mut machine = Machine::new(
            Plan {
                gate_step: true,
                ..plan()
            },
            5.0,
        );
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![ask(StepGate, 0, 10.0, 0)]),
                (0, Input::Gate(GateReply::Approved), vec![push(0, 10.0)]),
                (
                    0,
                    Input::Interrupted,
                    vec![
                        note(Note::Interrupted {
                            weight: 5.0,
                            on_interrupt: OnInterrupt::Hold,
                        }),
                        Action::Finish(Ending::Stopped {
                            at: At::Step(0),
                            weight: 5.0,
                            cause: Cause::Interrupted,
                        }),
                    ],
                ),
            ],
        );
    }

    #[test]
    fn an_interrupt_while_a_gate_refuses_holds_at_the_current_weight() {
        let mut machine = Machine::new(
            Plan {
                gate_step: true,
                ..plan()
            },
            0.0,
        );
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![ask(StepGate, 0, 10.0, 0)]),
                (
                    0,
                    Input::Gate(GateReply::Refused("answered 503".to_string())),
                    vec![
                        note(Note::GateRefused {
                            gate: StepGate,
                            refusals: 1,
                            max: 3,
                        }),
                        wait(60, Waiting::GateRetry),
                    ],
                ),
                (
                    10,
                    Input::Interrupted,
                    vec![
                        note(Note::Interrupted {
                            weight: 0.0,
                            on_interrupt: OnInterrupt::Hold,
                        }),
                        Action::Finish(Ending::Stopped {
                            at: At::Step(0),
                            weight: 0.0,
                            cause: Cause::Interrupted,
                        }),
                    ],
                ),
            ],
        );
    }

    #[test]
    fn a_target_changed_by_someone_else_stops_without_writing() {
        let overridden = || Input::Overridden {
            found: 0.0,
            why: "changed by pid 7 (weights.canary: 10.0 → 0.0)".to_string(),
        };
        let stopped = |step: usize| {
            Action::Finish(Ending::Stopped {
                at: At::Step(step),
                weight: 0.0,
                cause: Cause::Overridden("changed by pid 7 (weights.canary: 10.0 → 0.0)".into()),
            })
        };
        // At an interval's end.
        let mut machine = Machine::new(plan(), 0.0);
        let mut steps = first_interval();
        steps.push((62, overridden(), vec![stopped(0)]));
        script(&mut machine, steps);
        // At the next push.
        let mut machine = Machine::new(plan(), 0.0);
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                verdict(StepAction::Pass),
                vec![passed(0), push(1, 50.0)],
            ),
            (62, overridden(), vec![stopped(1)]),
        ]);
        script(&mut machine, steps);
        // Before the promotion of a plan below 100 %.
        let mut machine = Machine::new(
            Plan {
                steps: vec![10.0],
                ..plan()
            },
            0.0,
        );
        let mut steps = first_interval();
        steps.extend([
            (
                62,
                verdict(StepAction::Pass),
                vec![passed(0), Action::CheckOwned],
            ),
            (62, overridden(), vec![stopped(0)]),
        ]);
        script(&mut machine, steps);
    }

    #[test]
    fn failed_reads_are_retried_each_interval_and_max_failed_reads_in_a_row_roll_back() {
        let mut machine = Machine::new(plan(), 0.0);
        let failed = |at: u64, failures: u32| {
            (
                at,
                Input::ReadFailed(format!("connection refused ({failures})")),
                vec![
                    note(Note::ReadFailed {
                        at: At::Step(0),
                        failures,
                        max: 3,
                    }),
                    wait(at + 60, Waiting::ReadRetry),
                ],
            )
        };
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![push(0, 10.0)]),
                (0, Input::Pushed, vec![wait(2, Waiting::Settle)]),
                (2, Input::Tick, vec![baseline(0)]),
                // The baseline: two failures, then a read; the count starts over.
                failed(2, 1),
                (62, Input::Tick, vec![baseline(0)]),
                failed(62, 2),
                (122, Input::Tick, vec![baseline(0)]),
                (122, Input::ReadOk, vec![wait(182, Waiting::Interval)]),
                (182, Input::Tick, vec![judge(0, 10.0)]),
                // The interval's read: three failures in a row roll back.
                failed(182, 1),
                (242, Input::Tick, vec![judge(0, 10.0)]),
                failed(242, 2),
                (302, Input::Tick, vec![judge(0, 10.0)]),
                (
                    302,
                    Input::ReadFailed("connection refused (3)".to_string()),
                    vec![
                        note(Note::ReadFailed {
                            at: At::Step(0),
                            failures: 3,
                            max: 3,
                        }),
                        Action::RollBack,
                    ],
                ),
                (
                    303,
                    Input::RolledBack { confirmed: true },
                    vec![Action::Finish(Ending::RolledBack {
                        at: At::Step(0),
                        weight: 10.0,
                        cause: Cause::ReadsFailed {
                            failures: 3,
                            last: "connection refused (3)".to_string(),
                        },
                        confirmed: true,
                    })],
                ),
            ],
        );
    }

    /// The dark phase up to its first interval's end: the mirror written, settled, the
    /// baseline read, the interval judged at 0 %.
    fn dark_interval(machine: &mut Machine) {
        script(
            machine,
            vec![
                (0, Input::Start, vec![Action::Mirror]),
                (0, Input::Pushed, vec![wait(2, Waiting::Settle)]),
                (2, Input::Tick, vec![Action::ReadBaseline { at: At::Dark }]),
                (2, Input::ReadOk, vec![wait(62, Waiting::Interval)]),
                (
                    62,
                    Input::Tick,
                    vec![Action::JudgeInterval {
                        at: At::Dark,
                        weight: 0.0,
                    }],
                ),
            ],
        );
    }

    fn mirrored(plan: Plan) -> Machine {
        Machine::new(
            Plan {
                mirror: Some(5.0),
                ..plan
            },
            0.0,
        )
    }

    #[test]
    fn a_dark_canary_that_passes_has_its_mirror_removed_and_the_steps_begin() {
        let mut machine = mirrored(plan());
        dark_interval(&mut machine);
        script(
            &mut machine,
            vec![
                (
                    62,
                    verdict(StepAction::Pass),
                    vec![note(Note::Passed { at: At::Dark }), Action::Unmirror],
                ),
                (62, Input::Pushed, vec![push(0, 10.0)]),
                (62, Input::Pushed, vec![wait(64, Waiting::Settle)]),
                (64, Input::Tick, vec![baseline(0)]),
            ],
        );
    }

    #[test]
    fn a_dark_canary_that_fails_has_its_mirror_removed_then_is_rolled_back() {
        let mut machine = mirrored(plan());
        dark_interval(&mut machine);
        script(
            &mut machine,
            vec![
                (
                    62,
                    verdict(StepAction::Fail),
                    vec![note(Note::Failed { at: At::Dark }), Action::Unmirror],
                ),
                (62, Input::Pushed, vec![Action::RollBack]),
                (
                    63,
                    Input::RolledBack { confirmed: true },
                    vec![Action::Finish(Ending::RolledBack {
                        at: At::Dark,
                        weight: 0.0,
                        cause: Cause::Failed("Fail reason".to_string()),
                        confirmed: true,
                    })],
                ),
            ],
        );
    }

    #[test]
    fn a_dark_canary_without_a_verdict_in_max_holds_stops_without_its_mirror() {
        let mut machine = mirrored(Plan {
            max_holds: 1,
            ..plan()
        });
        dark_interval(&mut machine);
        script(
            &mut machine,
            vec![
                (
                    62,
                    verdict(StepAction::Hold),
                    vec![
                        note(Note::Held {
                            at: At::Dark,
                            holds: 1,
                            max_holds: 1,
                        }),
                        Action::Unmirror,
                    ],
                ),
                (
                    62,
                    Input::Pushed,
                    vec![Action::Finish(Ending::Stopped {
                        at: At::Dark,
                        weight: 0.0,
                        cause: Cause::MaxHolds(1),
                    })],
                ),
            ],
        );
    }

    #[test]
    fn an_interrupt_in_the_dark_phase_removes_the_mirror_first() {
        let mut machine = mirrored(Plan {
            on_interrupt: OnInterrupt::Rollback,
            ..plan()
        });
        script(
            &mut machine,
            vec![
                (0, Input::Start, vec![Action::Mirror]),
                (0, Input::Pushed, vec![wait(2, Waiting::Settle)]),
                (2, Input::Tick, vec![Action::ReadBaseline { at: At::Dark }]),
                (2, Input::ReadOk, vec![wait(62, Waiting::Interval)]),
                (10, Input::Interrupted, vec![Action::Unmirror]),
                (10, Input::Pushed, vec![Action::RollBack]),
                (
                    11,
                    Input::RolledBack { confirmed: true },
                    vec![
                        note(Note::Interrupted {
                            weight: 0.0,
                            on_interrupt: OnInterrupt::Rollback,
                        }),
                        Action::Finish(Ending::RolledBack {
                            at: At::Dark,
                            weight: 0.0,
                            cause: Cause::Interrupted,
                            confirmed: true,
                        }),
                    ],
                ),
            ],
        );
    }

    #[test]
    fn an_input_the_machine_does_not_wait_for_is_refused() {
        let mut machine = Machine::new(plan(), 0.0);
        assert!(machine.on(Duration::ZERO, Input::Tick).is_err());
        script(&mut machine, vec![(0, Input::Start, vec![push(0, 10.0)])]);
        // A verdict while the push is under way; the push still completes after it.
        assert!(machine
            .on(Duration::ZERO, verdict(StepAction::Pass))
            .is_err());
        script(
            &mut machine,
            vec![(0, Input::Pushed, vec![wait(2, Waiting::Settle)])],
        );
    }
}
