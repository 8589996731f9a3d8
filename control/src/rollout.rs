//! `canaryctl rollout`: step the canary's weight through a plan; after each interval judge the
//! canary against stable on that interval's counts (differences of two reads, not totals) in
//! the cohort the split being ramped drew; then go on, hold, or roll back. Gate hooks can hold
//! a step or the promotion, and a `--pause-at` weight waits for `canaryctl rollout resume`.
//! Every decision is a line people can follow and an [`Event`]: appended to the audit log, on
//! standard output with `--json`, and sent to the notification hooks.
//!
//! What to do next is decided by the pure step machine ([`machine::Machine`]); [`Rollout::run`]
//! only does what it says (push, wait, read and judge, ask a gate, pause, roll back) and tells
//! it what happened.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use self::checks::{CheckResult, Custom, CustomJudgement, Readings};
use self::events::{CountsSummary, Event, GateKind, Record};
use self::hooks::{Gate, GateAnswer, Notifier, NotifyFormat, OnGateFailure};
use self::judge::{JudgeSettings, Judgement, StepAction, Verdict};
use self::ownership::{Overridden, Owned};
use self::pause::{PauseFile, Request};
use self::progress::Progress;
use crate::config::{edit, movement};
use crate::mesh::target::Target;
use crate::metrics::counts::Counts;
use crate::metrics::per_proxy::{self, FleetReading, Interval};
use crate::metrics::source::Source;
use machine::{
    Action, At, Cause, Ending, GateFailure, GateReply, Input, Machine, Note, Plan, Waiting,
};

pub mod checks;
mod dark;
pub mod defaults;
pub mod dispersion;
pub mod events;
pub mod evidence;
mod feature;
pub mod hooks;
pub mod judge;
pub mod machine;
pub mod ownership;
pub mod pause;
pub mod progress;
pub mod runs;

/// What a termination signal (Ctrl-C's SIGINT, SIGTERM, SIGHUP) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Leave the canary at its current weight.
    Hold,
    /// Set the canary's weight to 0.
    Rollback,
}

/// The webhooks of a rollout.
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Notification hooks: every event, fire and forget.
    pub notify: Vec<String>,
    /// Their payload.
    pub notify_format: NotifyFormat,
    /// How long one notification may take before it is given up.
    pub notify_timeout: Duration,
    /// Asked before each step's weight is pushed.
    pub gate_step: Option<String>,
    /// Asked before the promotion.
    pub gate_promote: Option<String>,
    /// How long a gate has to answer one request; past it, the gate has failed.
    pub gate_timeout: Duration,
    /// Refusals of one gate in a row after which it has failed.
    pub gate_max_refusals: u32,
    /// What a failed gate does.
    pub on_gate_failure: OnGateFailure,
}

/// The plan and its settings.
pub struct Rollout {
    /// Weights to step through, strictly increasing, each in (0, 100].
    pub steps: Vec<f64>,
    /// Time between reads.
    pub interval: Duration,
    /// Time after each push before the interval's first read: Envoy's histograms reach the
    /// admin endpoint at the stats flush and Prometheus at its scrape, so a read right after a
    /// push could still count requests routed by the previous weight.
    pub settle: Duration,
    /// The version being rolled out.
    pub canary: String,
    /// The split being ramped: `None` for the top-level weights, else a rule's name.
    pub rule: Option<String>,
    /// Set: `canary` names a feature whose percent is ramped, judged on against off
    /// (`rollout/feature.rs`).
    pub feature: bool,
    /// The judge's thresholds.
    pub judge: JudgeSettings,
    /// Consecutive intervals without enough data before the rollout stops (weight held).
    pub max_holds: u32,
    /// Consecutive failed reads of the source before rolling back.
    pub max_failed_reads: u32,
    /// What a termination signal does.
    pub on_interrupt: OnInterrupt,
    /// The audit log (JSON lines, appended).
    pub audit: PathBuf,
    /// Print the plan and the first step's preview, then stop: nothing written, not even the
    /// audit log.
    pub dry_run: bool,
    /// Events as JSON lines on standard output; the lines for people go to standard error.
    pub json: bool,
    /// The webhooks.
    pub hooks: Hooks,
    /// Weights (steps) to pause at once they have passed, until `rollout resume`.
    pub pause_at: Vec<f64>,
    /// The pause state file.
    pub pause_file: PauseFile,
    /// The operator's own checks (`--checks`, `--check`), judged beside the built-in ones.
    pub custom: Option<Custom>,
    /// A dark canary first (`--mirror PCT`): this percent of the safe requests copied to the
    /// canary and judged before the first step (see `rollout/dark.rs`).
    pub mirror: Option<f64>,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Every step passed; the canary is at the last step's weight.
    Promoted(f64),
    /// Rolled back to weight 0, for this reason.
    RolledBack(String),
    /// Stopped with the weight left where it was, for this reason.
    Stopped(f64, String),
    /// A dry run: the plan and the first step's preview were printed, nothing was written.
    DryRun,
}

/// What a gate hook receives: where the rollout is and what it asks for.
#[derive(Debug, Serialize)]
struct GateContext<'a> {
    gate: GateKind,
    canary: &'a str,
    stable: &'a str,
    cohort: &'a str,
    /// The step about to start (from 1), and its weight.
    step: usize,
    weight: f64,
    /// The canary's weight now.
    current_weight: f64,
    steps: &'a [f64],
    /// Refusals of this gate so far at this step.
    refusals: u32,
}

/// Where the rollout's lines and events go.
struct Reporter {
    canary: String,
    json: bool,
    audit: Option<Audit>,
    notifier: Notifier,
    /// Why the rollback, written, was not confirmed (when it was not).
    unconfirmed: Option<anyhow::Error>,
}

impl Reporter {
    /// A line for people: standard output, or standard error under `--json`. A write that
    /// fails (the terminal closed: SIGHUP) is dropped: the rollout still ends as asked and
    /// records it in the audit log and the hooks.
    fn say(&self, line: &str) {
        let _ = if self.json {
            writeln!(std::io::stderr(), "{line}")
        } else {
            writeln!(std::io::stdout(), "{line}")
        };
    }

    /// Records the event: audit log, `--json`, notification hooks.
    fn emit(&mut self, event: Event) -> Result<()> {
        let record = Record {
            event: &event,
            rollout_of: &self.canary,
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        };
        let line = serde_json::to_string(&record)?;
        if let Some(audit) = self.audit.as_mut() {
            audit.write(&line)?;
        }
        if self.json {
            // As `say`: a closed standard output does not stop the rollout's ending.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        self.notifier.send(&record, &event.text(&self.canary));
        Ok(())
    }
}

impl Rollout {
    /// Checks the plan.
    pub fn check(&self) -> Result<()> {
        if self.steps.is_empty() {
            bail!("--steps: give at least one weight, for example 1,5,10,25,50,100");
        }
        for pair in self.steps.windows(2) {
            if pair[1] <= pair[0] {
                bail!("--steps must increase: {} comes after {}", pair[1], pair[0]);
            }
        }
        if let Some(bad) = self.steps.iter().find(|w| !(**w > 0.0 && **w <= 100.0)) {
            bail!("--steps: {bad} is not a weight above 0 and at most 100");
        }
        if self.interval.is_zero() {
            bail!("--interval must be longer than zero");
        }
        if let Some(bad) = self
            .pause_at
            .iter()
            .find(|w| **w >= 100.0 || !self.steps.contains(w))
        {
            bail!(
                "--pause-at {bad}: give a weight of --steps below 100 (the rollout pauses there \
                 once the step has passed; --gate-promote holds the promotion)"
            );
        }
        if let Some(bad) = self.mirror.filter(|p| !(*p > 0.0 && *p <= 100.0)) {
            bail!("--mirror: {bad} is not a percent above 0 and at most 100");
        }
        if self.feature && self.mirror.is_some() {
            bail!("--mirror copies requests to a version: a feature rollout (--feature) has no dark phase");
        }
        if self.feature && self.custom.is_some() {
            bail!(
                "--checks/--check compare versions' series: a feature rollout (--feature) is \
                 judged on its on and off series only"
            );
        }
        if self.hooks.gate_max_refusals == 0 {
            bail!("--gate-max-refusals must be at least 1");
        }
        if self.hooks.gate_timeout.is_zero() {
            bail!("--gate-timeout must be longer than zero");
        }
        self.judge.check()
    }

    fn label(&self) -> &str {
        if self.feature {
            return &self.canary;
        }
        self.rule
            .as_deref()
            .unwrap_or(canary_filter::plan::LABEL_WEIGHTS)
    }

    /// Runs the rollout to its end.
    pub fn run(
        &self,
        target: &Target,
        source: &Source,
        interrupted: &Arc<AtomicBool>,
    ) -> Result<End> {
        self.check()?;
        self.check_dark(target, source)?;
        let mut out = Reporter {
            canary: self.canary.clone(),
            json: self.json,
            audit: None,
            notifier: Notifier::new(
                &self.hooks.notify,
                self.hooks.notify_format,
                self.hooks.notify_timeout,
            ),
            unconfirmed: None,
        };
        let end = self.run_with(&mut out, target, source, interrupted);
        out.notifier.finish();
        end
    }

    fn run_with(
        &self,
        out: &mut Reporter,
        target: &Target,
        source: &Source,
        interrupted: &Arc<AtomicBool>,
    ) -> Result<End> {
        let first = self.steps.first().copied().unwrap_or(100.0);
        // Who moves at the first step, computed as `canaryctl set --dry-run` computes it; this
        // also refuses, before any push, what the first push would refuse.
        let (first_step, _) = target
            .push(true, |config| self.ramp(config, first))
            .with_context(|| format!("the first step, {first}%"))?;
        let stable = self.stable_of(&first_step.before);
        let found = self.weight_of(&first_step.before);
        out.say(&format!(
            "rollout of `{}` against `{stable}` in cohort rule={}: {}steps {} every {}, reading {}",
            self.canary,
            self.label(),
            self.mirror.map_or(String::new(), |percent| format!(
                "a dark canary on {percent}% mirrored traffic, then "
            )),
            self.steps
                .iter()
                .map(|w| format!("{w}%"))
                .collect::<Vec<_>>()
                .join(" → "),
            humantime::format_duration(self.interval),
            source.describe()
        ));
        if let Some(custom) = &self.custom {
            out.say(&custom.checks.describe());
        }
        out.say(&format!("first step, `{}` at {first}%:", self.canary));
        let preview = movement::preview_plans(
            &first_step.before,
            &first_step.before_plan,
            &first_step.after,
            &first_step.after_plan,
        );
        out.say(preview.trim_end_matches('\n'));
        if self.dry_run {
            out.say(&format!(
                "dry run: {} not written, no rollout started",
                target.describe()
            ));
            return Ok(End::DryRun);
        }
        out.audit = Some(Audit::open(&self.audit)?);
        out.say(&format!("audit log: {}", self.audit.display()));
        out.emit(Event::Started {
            canary: self.canary.clone(),
            stable: stable.clone(),
            cohort: self.label().to_string(),
            steps: self.steps.clone(),
            interval_seconds: self.interval.as_secs_f64(),
            source: source.describe(),
            pause_at: self.pause_at.clone(),
        })?;
        // One judgement for the whole rollout: its evidence runs across intervals and steps.
        let mut judgement = Judgement::new(self.judge.clone())?;
        // The last judged step holds until a regression of --detect's size would show.
        if let Some(last) = self.steps.iter().rposition(|&w| w < 100.0) {
            judgement.set_final_step(last);
        }
        let mut run = Run {
            // What the rollout last wrote (so far: what it found); each push checks it is
            // still there.
            owned: Owned::new(&self.canary, &first_step.before),
            stable,
            history: Vec::new(),
            judgement,
            custom: self
                .custom
                .as_ref()
                .map(|c| CustomJudgement::new(c.checks.clone())),
            baseline: FleetReading::new(),
            checks_baseline: Readings::new(),
            step_canary: Counts::default(),
            step_stable: Counts::default(),
            reason: String::new(),
            hold_why: String::new(),
            read_error: String::new(),
            refusal: String::new(),
            dark: None,
        };
        // The step machine decides; this loop does what it says and tells it what happened.
        let mut machine = Machine::new(self.plan(), found);
        let clock = Instant::now();
        let mut input = Input::Start;
        loop {
            let mut next = None;
            for action in machine.on(clock.elapsed(), input)? {
                match action {
                    Action::Note(note) => self.report(out, &mut run, &machine, note)?,
                    Action::Finish(ending) => {
                        let end = self.end(source, &mut run, ending);
                        return self.finish(out, end, &run.history);
                    }
                    action => next = Some(action),
                }
            }
            let action = next.context("the step machine left nothing to do")?;
            let io = Io {
                out: &mut *out,
                target,
                source,
                interrupted,
            };
            input = self.perform(io, &mut run, &machine, clock, action)?;
        }
    }

    /// The step machine's plan: this rollout's steps and settings.
    fn plan(&self) -> Plan {
        Plan {
            steps: self.steps.clone(),
            interval: self.interval,
            settle: self.settle,
            max_holds: self.max_holds,
            max_failed_reads: self.max_failed_reads,
            pause_at: self.pause_at.clone(),
            gate_step: self.hooks.gate_step.is_some(),
            gate_promote: self.hooks.gate_promote.is_some(),
            gate_max_refusals: self.hooks.gate_max_refusals,
            on_gate_failure: self.hooks.on_gate_failure,
            on_interrupt: self.on_interrupt,
            mirror: self.mirror,
        }
    }

    /// Does what the machine asked for; what happened is the machine's next input.
    fn perform(
        &self,
        io: Io<'_>,
        run: &mut Run,
        machine: &Machine,
        clock: Instant,
        action: Action,
    ) -> Result<Input> {
        let Io {
            out,
            target,
            source,
            interrupted,
        } = io;
        let signalled = || interrupted.load(Ordering::SeqCst);
        Ok(match action {
            Action::Mirror => {
                self.write_mirror(out, target, source, run)?;
                Input::Pushed
            }
            Action::Unmirror => {
                self.remove_mirror(out, target, &mut run.owned)?;
                Input::Pushed
            }
            Action::AskGate {
                gate,
                step,
                weight,
                refusals,
            } => self.ask_gate(out, run, machine, gate, (step, weight), refusals)?,
            Action::Push { step, weight } => {
                // A signal that came during the gates (or before the first step) pushes nothing.
                if signalled() {
                    return Ok(Input::Interrupted);
                }
                match self.set_weight(out, target, step, weight, &mut run.owned)? {
                    Some((found, why)) => Input::Overridden { found, why },
                    None => {
                        out.emit(Event::Step {
                            step: step + 1,
                            weight,
                        })?;
                        Input::Pushed
                    }
                }
            }
            Action::Wait { until, waiting } => {
                if signalled() {
                    return Ok(Input::Interrupted);
                }
                let left = until.saturating_sub(clock.elapsed());
                let waited = match (waiting, machine.at()) {
                    (Waiting::Settle, _) => self.settle(machine.weight(), left, interrupted),
                    (Waiting::Interval, At::Step(index)) => {
                        let counted = (&run.baseline, run.stable.as_str());
                        self.wait(index, machine.weight(), source, counted, left, interrupted)
                    }
                    _ => self.pause(left, interrupted),
                };
                if waited {
                    Input::Tick
                } else {
                    Input::Interrupted
                }
            }
            Action::ReadBaseline { at } => self.read_baseline(source, run, at)?,
            Action::JudgeInterval { at, weight } => match at {
                At::Dark => self.judge_copies(out, source, run)?,
                At::Step(index) => self.judge_interval(out, target, source, run, index, weight)?,
            },
            Action::Pause { step, weight } => {
                self.paused(out, target, step, weight, interrupted)?
            }
            Action::CheckOwned => {
                let (index, weight) = (self.steps.len() - 1, machine.weight());
                match self.still_owned(out, target, index, weight, &run.owned, true)? {
                    Some((found, why)) => Input::Overridden { found, why },
                    None => Input::Owned,
                }
            }
            Action::RollBack => {
                self.roll_back(out, target)?;
                Input::RolledBack {
                    confirmed: out.unconfirmed.is_none(),
                }
            }
            Action::Note(_) | Action::Finish(_) => bail!("{action:?} is not an action to perform"),
        })
    }

    /// Reads the source (and the operator's checks) once.
    fn read_source(&self, source: &Source, stable: &str) -> Result<(FleetReading, Readings)> {
        let reading = self.read_fleet(source)?;
        let checked = match &self.custom {
            Some(c) => c.reader.read(&c.checks, &self.canary, stable)?,
            None => Readings::new(),
        };
        Ok((reading, checked))
    }

    /// A failed read, kept for the lines that report it.
    fn read_failed(run: &mut Run, err: &anyhow::Error) -> Input {
        run.read_error = format!("{err:#}");
        Input::ReadFailed(run.read_error.clone())
    }

    /// The baseline the next interval is counted from; the first step's also seeds the judge
    /// with stable's counts from before the rollout (they predict stable, never the evidence).
    fn read_baseline(&self, source: &Source, run: &mut Run, at: At) -> Result<Input> {
        match at {
            At::Dark => {
                let reading = match self.read_copies(source, run) {
                    Ok(reading) => reading,
                    Err(err) => return Ok(Self::read_failed(run, &err)),
                };
                let before = per_proxy::total(&reading)?;
                if let (Some(before), Some(dark)) = (before.get(&run.stable), run.dark.as_mut()) {
                    dark.judgement
                        .seed(before)
                        .context("reading stable's counts")?;
                }
                run.baseline = reading;
            }
            At::Step(index) => {
                let (reading, checked) = match self.read_source(source, &run.stable) {
                    Ok(read) => read,
                    Err(err) => return Ok(Self::read_failed(run, &err)),
                };
                if index == 0 {
                    if let Some(custom) = run.custom.as_mut() {
                        custom.seed(&checked);
                    }
                    if let Some(before) = per_proxy::total(&reading)?.get(&run.stable) {
                        run.judgement
                            .seed(before)
                            .context("reading stable's counts")?;
                    }
                }
                run.baseline = reading;
                run.checks_baseline = checked;
                run.step_canary = Counts::default();
                run.step_stable = Counts::default();
            }
        }
        Ok(Input::ReadOk)
    }

    /// Reads the source at an interval's end, checks the target still holds what the rollout
    /// wrote, judges the interval's counts and reports the verdict.
    fn judge_interval(
        &self,
        out: &mut Reporter,
        target: &Target,
        source: &Source,
        run: &mut Run,
        index: usize,
        weight: f64,
    ) -> Result<Input> {
        let (now, checks_now) = match self.read_source(source, &run.stable) {
            Ok(read) => read,
            Err(err) => return Ok(Self::read_failed(run, &err)),
        };
        // Counts of a split someone else changed judge nothing the rollout did.
        if let Some((found, why)) =
            self.still_owned(out, target, index, weight, &run.owned, false)?
        {
            return Ok(Input::Overridden { found, why });
        }
        // Subtracted proxy by proxy: a proxy that restarted, joined or left counts only what
        // it counted in the interval.
        let interval = per_proxy::interval(&run.baseline, &now)?;
        let canary = interval.of(&self.canary);
        let stable_counts = interval.of(&run.stable);
        let verdict = run
            .judgement
            .observe(index, &canary, &stable_counts)
            .context("judging the interval")?;
        let custom_checks: Vec<CheckResult> = run
            .custom
            .as_mut()
            .map(|c| c.observe(index, &run.checks_baseline, &checks_now))
            .unwrap_or_default();
        run.checks_baseline = checks_now;
        let verdict = checks::combine(verdict, &custom_checks);
        run.step_canary.add(&canary)?;
        run.step_stable.add(&stable_counts)?;
        // Each interval is judged on its own counts; the judgement keeps the evidence.
        run.baseline = now;
        out.say(&self.line(
            index,
            weight,
            (&canary, &stable_counts),
            &interval,
            &verdict,
            &custom_checks,
        ));
        out.emit(Event::Verdict {
            step: index + 1,
            weight,
            outcome: verdict.outcome,
            reason: verdict.reason.clone(),
            checks: verdict.checks.clone(),
            custom_checks,
            canary: CountsSummary::from(&canary),
            stable: CountsSummary::from(&stable_counts),
            settings: self.judge.clone(),
            fleet: interval.changes.iter().map(ToString::to_string).collect(),
        })?;
        run.reason = verdict.reason.clone();
        Ok(Input::Verdict {
            outcome: verdict.outcome,
            reason: verdict.reason,
        })
    }

    /// Says and records what the machine decided.
    fn report(
        &self,
        out: &mut Reporter,
        run: &mut Run,
        machine: &Machine,
        note: Note,
    ) -> Result<()> {
        let weight = machine.weight();
        let percent = self.mirror.unwrap_or_default();
        match note {
            Note::Passed { at: At::Dark } => run
                .history
                .push(format!("mirror {percent}%  pass   {}", run.reason)),
            Note::Passed { at: At::Step(_) } => run
                .history
                .push(format!("{weight:>6}%  pass   {}", run.reason)),
            Note::Failed { at: At::Dark } => run
                .history
                .push(format!("mirror {percent}%  FAIL   {}", run.reason)),
            Note::Failed { at: At::Step(_) } => run
                .history
                .push(format!("{weight:>6}%  FAIL   {}", run.reason)),
            Note::Held {
                at: At::Dark,
                holds,
                max_holds,
            } => {
                let why = self.dark_hold(run);
                out.say(&format!(
                    "  hold {holds} of {} (--max-holds): {why}",
                    self.max_holds
                ));
                out.emit(Event::Hold {
                    step: 0,
                    weight: 0.0,
                    holds,
                    max_holds,
                    why: why.clone(),
                })?;
                if holds >= max_holds {
                    run.history.push(format!("mirror {percent}%  hold   {why}"));
                }
                run.hold_why = why;
            }
            Note::Held {
                at: At::Step(index),
                holds,
                max_holds,
            } => {
                let shortfall = self.shortfall(
                    &run.step_canary,
                    &run.stable,
                    &run.step_stable,
                    holds,
                    &run.reason,
                );
                out.emit(Event::Hold {
                    step: index + 1,
                    weight,
                    holds,
                    max_holds,
                    why: shortfall.clone(),
                })?;
                if holds >= max_holds {
                    run.history
                        .push(format!("{weight:>6}%  hold   {}", run.reason));
                } else {
                    out.say(&format!(
                        "  hold {holds} of {} (--max-holds): {shortfall}",
                        self.max_holds
                    ));
                }
                run.hold_why = shortfall;
            }
            Note::ReadFailed { at, failures, max } => {
                let what = match at {
                    At::Dark => "mirror stats",
                    At::Step(_) => "source",
                };
                out.say(&format!(
                    "  {what} read failed ({failures} of {max}): {}; holding",
                    run.read_error
                ));
                out.emit(Event::SourceError {
                    failures,
                    max_failed_reads: max,
                    error: run.read_error.clone(),
                })?;
            }
            Note::GateRefused {
                gate,
                refusals,
                max,
            } => {
                out.emit(Event::GateRefused {
                    gate,
                    url: self.gate_url(gate).to_string(),
                    refusals,
                    max_refusals: max,
                    reason: run.refusal.clone(),
                })?;
                if refusals < max {
                    out.say(&format!(
                        "gate: {} refused ({refusals} of {max}, --gate-max-refusals): {}; \
                         `{}` held at {weight}%, asking again in {}",
                        gate.flag(),
                        run.refusal,
                        self.canary,
                        humantime::format_duration(self.interval)
                    ));
                }
            }
            Note::GateFailed { gate, failure } => {
                let url = self.gate_url(gate);
                let failure = gate_failure(&failure);
                out.emit(Event::GateFailed {
                    gate,
                    url: url.to_string(),
                    reason: failure.clone(),
                })?;
                let what = format!("{} {url} {failure}", gate.flag());
                out.say(&match self.hooks.on_gate_failure {
                    OnGateFailure::Rollback => {
                        format!("gate: {what}; rolling back (--on-gate-failure rollback)")
                    }
                    OnGateFailure::Stop => format!(
                        "gate: {what}; stopping with `{}` at {weight}% (--on-gate-failure stop)",
                        self.canary
                    ),
                });
            }
            Note::Interrupted {
                weight,
                on_interrupt,
            } => out.emit(Event::Interrupted {
                weight,
                action: match on_interrupt {
                    OnInterrupt::Hold => "hold",
                    OnInterrupt::Rollback => "rollback",
                }
                .to_string(),
            })?,
        }
        Ok(())
    }

    /// The end the machine decided, in words.
    fn end(&self, source: &Source, run: &mut Run, ending: Ending) -> End {
        let (at, weight, cause, rolled_back) = match ending {
            Ending::Promoted { weight } => {
                if weight >= 100.0 {
                    // Nothing is left to compare against: reaching 100 % is the promotion.
                    run.history.push(format!(
                        "{weight:>6}%  promoted after {} judged step(s)",
                        self.steps.len() - 1
                    ));
                }
                return End::Promoted(weight);
            }
            Ending::RolledBack {
                at, weight, cause, ..
            } => (at, weight, cause, true),
            Ending::Stopped { at, weight, cause } => (at, weight, cause, false),
        };
        let percent = self.mirror.unwrap_or_default();
        let reason = match (cause, at) {
            (Cause::Failed(reason), At::Dark) => {
                format!("on mirrored traffic ({percent}% copied, no user routed to it): {reason}")
            }
            (Cause::Failed(reason), At::Step(_)) => format!("at {weight}%: {reason}"),
            (Cause::MaxHolds(holds), At::Dark) => format!(
                "no verdict on mirrored traffic after {holds} intervals: {}",
                run.hold_why
            ),
            (Cause::MaxHolds(holds), At::Step(_)) => format!(
                "no verdict after {holds} intervals at {weight}%: {}",
                run.hold_why
            ),
            (
                Cause::Gate {
                    gate,
                    before,
                    failure,
                },
                _,
            ) => format!(
                "gate failed before {before}%: {} {} {}",
                gate.flag(),
                self.gate_url(gate),
                gate_failure(&failure)
            ),
            (Cause::ReadsFailed { failures, last }, at) => format!(
                "{failures} failed reads of {} in a row: {last}",
                match at {
                    At::Dark => "the mirror cluster's stats".to_string(),
                    At::Step(_) => source.describe(),
                }
            ),
            (Cause::Interrupted, _) if rolled_back => {
                format!("interrupted at {weight}% (--on-interrupt rollback)")
            }
            (Cause::Interrupted, _) => {
                format!("interrupted: `{}` held at {weight}%", self.canary)
            }
            (Cause::Aborted, _) => format!("aborted at {weight}% by `canaryctl rollout abort`"),
            (Cause::Overridden(why), _) => why,
        };
        if rolled_back {
            End::RolledBack(reason)
        } else {
            End::Stopped(weight, reason)
        }
    }

    /// The URL of `gate`'s hook.
    fn gate_url(&self, gate: GateKind) -> &str {
        match gate {
            GateKind::Step => self.hooks.gate_step.as_deref(),
            GateKind::Promote => self.hooks.gate_promote.as_deref(),
        }
        .unwrap_or_default()
    }

    /// `None` when the target still holds what the rollout last wrote; else the canary's
    /// weight found and why ([`Rollout::overridden`]). Asked after each interval of step `index` and before the
    /// promotion.
    fn still_owned(
        &self,
        out: &mut Reporter,
        target: &Target,
        index: usize,
        weight: f64,
        owned: &Owned,
        promotion: bool,
    ) -> Result<Option<(f64, String)>> {
        let (now, _) = target
            .read()
            .context("reading the configuration the rollout last wrote")?;
        let Err(overridden) = owned.check(&now) else {
            return Ok(None);
        };
        let doing = if promotion {
            format!("promoting `{}` at {weight}%", self.canary)
        } else {
            format!("going on with step {} ({weight}%)", index + 1)
        };
        self.overridden(out, target, (index + 1, weight), owned, overridden, &doing)
            .map(Some)
    }

    /// When the target no longer holds what the rollout last wrote: says what changed and who
    /// changed it, records the `overridden` event (at step `step`, of weight `weight`); the
    /// canary's weight found and why the rollout stops without writing.
    fn overridden(
        &self,
        out: &mut Reporter,
        target: &Target,
        (step, weight): (usize, f64),
        owned: &Owned,
        overridden: Overridden,
        doing: &str,
    ) -> Result<(f64, String)> {
        let expected = self.weight_of(owned.last());
        let now = target.read().ok().map(|(config, _)| config);
        let found = now.as_ref().map_or(expected, |now| self.weight_of(now));
        let by = now.as_ref().map_or_else(
            || "changed".to_string(),
            |now| ownership::who_changed(target, now),
        );
        let changes = overridden.changes.join("; ");
        out.say(&format!(
            "not {doing}: {} was {by} since the rollout last wrote it ({changes}); nothing \
             written, `{}` left at {found}%",
            target.describe(),
            self.canary
        ));
        out.emit(Event::Overridden {
            step,
            weight,
            expected_weight: expected,
            found_weight: found,
            changes: overridden.changes,
            by: by.clone(),
        })?;
        Ok((
            found,
            format!("the configuration was {by} ({changes}): not {doing}"),
        ))
    }

    /// Asks `gate` before step `step` of `weight` (from 0), after `refusals` refusals: says
    /// so, records it, and returns its answer.
    fn ask_gate(
        &self,
        out: &mut Reporter,
        run: &mut Run,
        machine: &Machine,
        gate: GateKind,
        (step, weight): (usize, f64),
        refusals: u32,
    ) -> Result<Input> {
        let url = self.gate_url(gate);
        out.emit(Event::GateWaiting {
            gate,
            url: url.to_string(),
            step: step + 1,
            weight,
        })?;
        out.say(&format!(
            "gate: asking {} {url} before {weight}% (step {}/{})",
            gate.flag(),
            step + 1,
            self.steps.len()
        ));
        let context = GateContext {
            gate,
            canary: &self.canary,
            stable: &run.stable,
            cohort: self.label(),
            step: step + 1,
            weight,
            current_weight: machine.weight(),
            steps: &self.steps,
            refusals,
        };
        let reply = match Gate::new(url, self.hooks.gate_timeout).ask(&context) {
            GateAnswer::Approved(status) => {
                out.say(&format!("gate: {} approved ({status})", gate.flag()));
                out.emit(Event::GateApproved {
                    gate,
                    url: url.to_string(),
                    status,
                })?;
                GateReply::Approved
            }
            GateAnswer::Refused(reason) => {
                run.refusal = reason.clone();
                GateReply::Refused(reason)
            }
            GateAnswer::TimedOut(reason) => GateReply::TimedOut(reason),
        };
        Ok(Input::Gate(reply))
    }

    /// Pauses at `weight` until `canaryctl rollout resume` or `abort`, or a termination signal;
    /// which of them came.
    fn paused(
        &self,
        out: &mut Reporter,
        target: &Target,
        index: usize,
        weight: f64,
        interrupted: &Arc<AtomicBool>,
    ) -> Result<Input> {
        let mut request = self.pause_file.pause(&self.canary, index + 1, weight)?;
        let file = self.pause_file.path().display().to_string();
        out.emit(Event::Paused {
            step: index + 1,
            weight,
            state_file: file.clone(),
        })?;
        let flag = format!("{} --canary {}", target.flag(), self.canary);
        out.say(&format!(
            "paused at {weight}% (--pause-at): `canaryctl rollout resume {flag}` goes on, \
             `canaryctl rollout abort {flag}` rolls back (state in {file})"
        ));
        let mut progress = Progress::new(
            format!("paused at {weight}%"),
            Duration::ZERO,
            Duration::from_secs(60),
            false,
        );
        let started = Instant::now();
        while request.is_none() {
            if interrupted.load(Ordering::SeqCst) {
                progress.finish();
                self.pause_file.clear()?;
                return Ok(Input::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(100));
            request = self.pause_file.read()?.and_then(|state| {
                (state.canary == self.canary && state.weight == weight)
                    .then_some(state.request)
                    .flatten()
            });
            progress.show(
                started.elapsed(),
                &format!(
                    "waiting for `canaryctl rollout resume` or `abort` ({} so far)",
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
                ),
            );
        }
        progress.finish();
        self.pause_file.clear()?;
        match request {
            Some(Request::Abort) => {
                out.say(&format!(
                    "aborted at {weight}% by `canaryctl rollout abort`"
                ));
                Ok(Input::Aborted)
            }
            _ => {
                out.say(&format!(
                    "resumed at {weight}% by `canaryctl rollout resume`"
                ));
                out.emit(Event::Resumed {
                    step: index + 1,
                    weight,
                })?;
                Ok(Input::Resumed)
            }
        }
    }

    /// Pushes the canary's weight, if the target still holds what the rollout last wrote
    /// (checked on the configuration the write replaces, under the ECDS file's lock or at the
    /// WasmPlugin's resource version); else writes nothing and returns the weight found and why. The push returns
    /// once the fleet runs it (when one is named), and says so.
    fn set_weight(
        &self,
        out: &mut Reporter,
        target: &Target,
        index: usize,
        weight: f64,
        owned: &mut Owned,
    ) -> Result<Option<(f64, String)>> {
        let pushed = target.push(false, |config| {
            owned.check(config)?;
            self.ramp(config, weight)
        });
        let (update, applied) = match pushed {
            Ok(pushed) => pushed,
            Err(err) => {
                return match err.downcast_ref::<Overridden>() {
                    Some(overridden) => {
                        let overridden = overridden.clone();
                        let doing = format!("pushing {weight}%");
                        self.overridden(out, target, (index + 1, weight), owned, overridden, &doing)
                            .map(Some)
                    }
                    None => Err(err.context(format!("pushing weight {weight}%"))),
                };
            }
        };
        owned.wrote(&update.after);
        if let Some(fleet) = applied.fleet() {
            out.say(&format!("{weight}%: {}", fleet.line().trim_end()));
        }
        Ok(None)
    }

    /// Takes every user off the canary in one push, as `canaryctl rollback` does for it: its
    /// weight goes to 0 in the judged split and in every other split that names it (a rule's
    /// own split would otherwise keep sending its users there). Says which splits changed and
    /// which pins still send testers to it.
    fn roll_back(&self, out: &mut Reporter, target: &Target) -> Result<()> {
        if self.feature {
            return self.roll_back_feature(out, target);
        }
        let canary = self.canary.clone();
        let (update, applied) =
            match target.push(false, move |config| Ok(edit::withdraw(config, &canary)?.0)) {
                Ok(pushed) => pushed,
                Err(err) => return self.unconfirmed_rollback(out, target, err),
            };
        let (_, changed) = edit::withdraw(&update.before, &self.canary)?;
        let splits: Vec<String> = changed
            .iter()
            .map(|label| {
                if label == canary_filter::plan::LABEL_WEIGHTS {
                    "the top-level split".to_string()
                } else {
                    format!("rule `{label}`'s split")
                }
            })
            .collect();
        out.say(&format!(
            "rollback: `{}` set to 0% in {}",
            self.canary,
            if splits.is_empty() {
                "no split (it had no weight left)".to_string()
            } else {
                splits.join(", ")
            }
        ));
        if let Some(fleet) = applied.fleet() {
            out.say(&format!("rollback: {}", fleet.line().trim_end()));
        }
        let pins = edit::pins_to(&update.after, &self.canary);
        if !pins.is_empty() {
            out.say(&format!(
                "rollback: still pinned to `{}` by rule(s) {} (testers keep reaching it; \
                 `canaryctl set --unpin RULE` removes a pin)",
                self.canary,
                pins.iter()
                    .map(|pin| format!("`{pin}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }

    /// A rollback push that failed: when the target holds the canary at 0 % everywhere (read
    /// back), the rollback was written and only its confirmation failed (a proxy of the fleet
    /// down, Prometheus lost): the rollout still ends rolled back, recorded as not confirmed
    /// ([`Rollout::finish`]). Otherwise nothing was rolled back: the error.
    fn unconfirmed_rollback(
        &self,
        out: &mut Reporter,
        target: &Target,
        err: anyhow::Error,
    ) -> Result<()> {
        let written = target
            .read()
            .and_then(|(config, _)| edit::withdraw(&config, &self.canary))
            .is_ok_and(|(_, left)| left.is_empty());
        if !written {
            return Err(err.context("rolling back"));
        }
        out.say(&format!(
            "rollback: `{}` is at 0% in {}, not confirmed: {err:#}",
            self.canary,
            target.describe()
        ));
        out.unconfirmed = Some(err);
        Ok(())
    }

    /// Sleeps `time`; false when interrupted.
    fn pause(&self, time: Duration, interrupted: &Arc<AtomicBool>) -> bool {
        let started = Instant::now();
        while started.elapsed() < time {
            if interrupted.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The settle wait after a push (`time` of it left), saying what it waits for; false when
    /// interrupted.
    fn settle(&self, weight: f64, time: Duration, interrupted: &Arc<AtomicBool>) -> bool {
        // One plain line: what it waits for does not change.
        let mut progress = Progress::new(
            format!("settle at {weight}%"),
            self.settle,
            self.settle,
            true,
        );
        let message = format!(
            "{}: waiting for Envoy's stats flush (and the Prometheus scrape) so that no request \
             routed before the push is counted (--settle)",
            humantime::format_duration(self.settle)
        );
        let started = Instant::now();
        while started.elapsed() < time {
            if interrupted.load(Ordering::SeqCst) {
                progress.finish();
                return false;
            }
            progress.show(started.elapsed(), &message);
            std::thread::sleep(Duration::from_millis(50));
        }
        progress.finish();
        true
    }

    /// Waits out an interval (`time` of it left), showing what it has counted so far (the
    /// source read about once a second, from `baseline`); false when interrupted.
    fn wait(
        &self,
        index: usize,
        weight: f64,
        source: &Source,
        (baseline, stable): (&FleetReading, &str),
        time: Duration,
        interrupted: &Arc<AtomicBool>,
    ) -> bool {
        let mut progress = Progress::new(
            format!("step {}/{} at {weight}%", index + 1, self.steps.len()),
            self.interval,
            progress::plain_cadence(self.interval),
            false,
        );
        let started = Instant::now();
        let mut message = "collecting".to_string();
        let mut last_read: Option<Instant> = None;
        while started.elapsed() < time {
            if interrupted.load(Ordering::SeqCst) {
                progress.finish();
                return false;
            }
            let left = time.saturating_sub(started.elapsed());
            if last_read.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
                && left > Duration::from_millis(200)
            {
                last_read = Some(Instant::now());
                message = match self
                    .read_fleet(source)
                    .and_then(|now| per_proxy::interval(baseline, &now))
                {
                    Ok(counted) => format!(
                        "{} | {}",
                        progress::side(&self.canary, &counted.of(&self.canary)),
                        progress::side(stable, &counted.of(stable)),
                    ),
                    Err(err) => format!("metrics unavailable: {err:#}"),
                };
            }
            progress.show(
                started.elapsed(),
                &format!("{message} | {:.0}s left", left.as_secs_f64().ceil()),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        progress.finish();
        true
    }

    /// What a hold saw and what would decide it: each side's responses at this step so far
    /// against `--min-requests` and, at the rate seen, whether `--max-holds` intervals will
    /// gather them or which flag to change. With both sides past `--min-requests`, the judge's
    /// own `reason` for holding.
    fn shortfall(
        &self,
        canary: &Counts,
        stable: &str,
        stable_counts: &Counts,
        holds: u32,
        reason: &str,
    ) -> String {
        let needed = self.judge.min_requests;
        let seen = format!(
            "`{}` {} and `{stable}` {} responses in {holds} interval(s) of {}, {needed} each \
             needed (--min-requests)",
            self.canary,
            canary.answered(),
            stable_counts.answered(),
            humantime::format_duration(self.interval)
        );
        let (short_side, fewest) = if canary.answered() <= stable_counts.answered() {
            (self.canary.as_str(), canary.answered())
        } else {
            (stable, stable_counts.answered())
        };
        if fewest >= needed {
            return format!("{seen}; held: {reason}");
        }
        if fewest == 0 {
            return format!(
                "{seen}; no `{short_side}` response yet: is traffic reaching the split? \
                 (--interval and --max-holds give it longer)"
            );
        }
        let per_interval = fewest as f64 / f64::from(holds);
        let intervals = (needed as f64 / per_interval).ceil();
        // --max-holds 0 stops at the first hold, as 1 does.
        let allowed = f64::from(self.max_holds.max(1));
        if intervals <= allowed {
            return format!(
                "{seen}; at this rate `{short_side}` has them after about {intervals} intervals, \
                 within --max-holds {}",
                self.max_holds
            );
        }
        let reachable = (per_interval * allowed).floor();
        // Whole seconds: one word a shell passes as one argument (humantime says "1m 45s").
        let interval_secs = (self.interval.as_secs_f64() * intervals / allowed).ceil();
        format!(
            "{seen}; at this rate `{short_side}` needs about {intervals} intervals, more than \
             --max-holds {}: lower --min-requests to {reachable}, lengthen --interval to \
             {interval_secs}s, or raise --max-holds to {intervals} (or send more traffic)",
            self.max_holds
        )
    }

    /// The step line: each side's interval counts, the checks, the fleet's changes when a
    /// proxy restarted, joined or left in the interval, and the decision.
    fn line(
        &self,
        index: usize,
        weight: f64,
        (canary, stable): (&Counts, &Counts),
        interval: &Interval,
        verdict: &Verdict,
        custom: &[CheckResult],
    ) -> String {
        let filled = (weight / 10.0).round() as usize;
        let bar = format!(
            "[{}{}]",
            "#".repeat(filled.min(10)),
            ".".repeat(10 - filled.min(10))
        );
        let checks: Vec<String> = verdict
            .checks
            .iter()
            .map(|c| c.brief())
            .chain(custom.iter().map(CheckResult::brief))
            .collect();
        let decision = match verdict.outcome {
            StepAction::Pass if index + 1 == self.steps.len() => "PASS: done".to_string(),
            StepAction::Pass => format!(
                "PASS: next {}%",
                self.steps.get(index + 1).copied().unwrap_or(100.0)
            ),
            StepAction::Hold => format!("HOLD: {}", verdict.reason),
            StepAction::Fail => format!("FAIL: {}", verdict.reason),
        };
        format!(
            "step {}/{} {bar} {weight:>6.2}% | {} | {} | {}{} => {decision}",
            index + 1,
            self.steps.len(),
            progress::side(&self.canary, canary),
            progress::side(
                if self.feature {
                    crate::config::flags::OFF
                } else {
                    "stable"
                },
                stable
            ),
            if checks.is_empty() {
                "-".to_string()
            } else {
                checks.join(", ")
            },
            interval
                .fleet_line()
                .map_or(String::new(), |fleet| format!(" | fleet: {fleet}")),
        )
    }

    fn finish(&self, out: &mut Reporter, end: End, history: &[String]) -> Result<End> {
        let (event, text) = match &end {
            End::Promoted(weight) => {
                let text = format!("PROMOTED: `{}` is at {weight}%", self.canary);
                (
                    Event::Promoted {
                        weight: *weight,
                        summary: text.clone(),
                    },
                    text,
                )
            }
            End::RolledBack(reason) => {
                let not_confirmed = out.unconfirmed.as_ref().map(|err| format!("{err:#}"));
                let text = match &not_confirmed {
                    None => format!("ROLLED BACK: `{}` is at 0% ({reason})", self.canary),
                    Some(why) => format!(
                        "ROLLED BACK, NOT CONFIRMED: `{}` is at 0% ({reason}); not confirmed: \
                         {why}",
                        self.canary
                    ),
                };
                (
                    Event::RolledBack {
                        reason: reason.clone(),
                        summary: text.clone(),
                        confirmed: not_confirmed.is_none(),
                        not_confirmed,
                    },
                    text,
                )
            }
            End::Stopped(weight, reason) => {
                let text = format!("STOPPED at {weight}%: {reason}");
                (
                    Event::Stopped {
                        weight: *weight,
                        reason: reason.clone(),
                        summary: text.clone(),
                    },
                    text,
                )
            }
            // Not reached: a dry run returns before the audit log is opened.
            End::DryRun => return Ok(end),
        };
        out.emit(event)?;
        out.say("\nsummary:");
        for line in history {
            out.say(&format!("  {line}"));
        }
        out.say(&text);
        match out.unconfirmed.take() {
            // Recorded; the exit status says that not all of it was confirmed.
            Some(err) => Err(err.context("rolling back: written, but not confirmed")),
            None => Ok(end),
        }
    }
}

/// The canary's weight in the split being ramped (0 when it has none there).
fn weight_in(
    config: &canary_filter::config::CanaryConfig,
    canary: &str,
    rule: Option<&str>,
) -> f64 {
    let weights = match rule {
        None => Some(&config.weights),
        Some(name) => config
            .rules
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.weights.as_ref()),
    };
    weights.and_then(|w| w.get(canary)).copied().unwrap_or(0.0)
}

/// What the loop keeps between the step machine's actions: the judge's state, the last reads,
/// and what the lines and events report.
struct Run {
    /// What the rollout last wrote (so far: what it found); each push checks it is still there.
    owned: Owned,
    /// What the canary is judged against.
    stable: String,
    /// The summary's lines.
    history: Vec<String>,
    /// The judgement of the steps.
    judgement: Judgement,
    /// The operator's checks.
    custom: Option<CustomJudgement>,
    /// The last read of the source, which the next interval is counted from, and of the checks.
    baseline: FleetReading,
    checks_baseline: Readings,
    /// What the step has gathered so far (the intervals' counts added): a hold reports it.
    step_canary: Counts,
    step_stable: Counts,
    /// The last verdict's reason.
    reason: String,
    /// What the last hold said.
    hold_why: String,
    /// The last failed read's error.
    read_error: String,
    /// The last gate refusal's reason.
    refusal: String,
    /// The dark phase (`--mirror`), once its mirror is written.
    dark: Option<dark::Dark>,
}

/// What the loop does its I/O with.
struct Io<'a> {
    out: &'a mut Reporter,
    target: &'a Target,
    source: &'a Source,
    interrupted: &'a Arc<AtomicBool>,
}

/// A gate's failure, in words.
fn gate_failure(failure: &GateFailure) -> String {
    match failure {
        GateFailure::TimedOut(reason) => reason.clone(),
        GateFailure::Refused { refusals, last } => {
            format!("refused {refusals} time(s) in a row (--gate-max-refusals), last: {last}")
        }
    }
}

/// The audit log: the rollout's events, one JSON object per line, appended.
struct Audit {
    file: std::fs::File,
}

impl Audit {
    fn open(path: &PathBuf) -> Result<Audit> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        Ok(Audit { file })
    }

    fn write(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}")?;
        Ok(())
    }
}
