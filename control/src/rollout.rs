//! `canaryctl rollout`: step the canary's weight through a plan; after each interval judge the
//! canary against stable on that interval's counts (differences of two reads, not totals) in
//! the cohort the split being ramped drew; then go on, hold, or roll back. Every decision is
//! printed as a line people can follow and appended to an audit log as one JSON line.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::judge::{Counts, JudgeSettings, Judgement, StepAction, Verdict};
use crate::source::{MetricsReading, Source};
use crate::target::Target;
use crate::{edit, movement};

/// What Ctrl-C does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupt {
    /// Leave the canary at its current weight.
    Hold,
    /// Set the canary's weight to 0.
    Rollback,
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
    /// The judge's thresholds.
    pub judge: JudgeSettings,
    /// Consecutive intervals without enough data before the rollout stops (weight held).
    pub max_holds: u32,
    /// Consecutive failed reads of the source before rolling back.
    pub max_failed_reads: u32,
    /// What Ctrl-C does.
    pub on_interrupt: OnInterrupt,
    /// The audit log (JSON lines, appended).
    pub audit: PathBuf,
    /// Print the plan and the first step's preview, then stop: nothing written, not even the
    /// audit log.
    pub dry_run: bool,
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
        self.judge.check()
    }

    fn label(&self) -> &str {
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
        let first = self.steps.first().copied().unwrap_or(100.0);
        // Who moves at the first step, computed as `canaryctl set --dry-run` computes it; this
        // also refuses, before any push, what the first push would refuse.
        let (first_step, _) = target
            .push(true, |config| {
                edit::set_weights(
                    config,
                    &[(self.canary.clone(), first)],
                    self.rule.as_deref(),
                )
            })
            .with_context(|| format!("the first step, {first}%"))?;
        let stable = first_step.before.default.clone();
        println!(
            "rollout of `{}` against `{stable}` in cohort rule={}: steps {} every {}, reading {}",
            self.canary,
            self.label(),
            self.steps
                .iter()
                .map(|w| format!("{w}%"))
                .collect::<Vec<_>>()
                .join(" → "),
            humantime::format_duration(self.interval),
            source.describe()
        );
        println!("first step, `{}` at {first}%:", self.canary);
        print!(
            "{}",
            movement::preview_plans(
                &first_step.before,
                &first_step.before_plan,
                &first_step.after,
                &first_step.after_plan
            )
        );
        if self.dry_run {
            println!(
                "dry run: {} not written, no rollout started",
                target.describe()
            );
            return Ok(End::DryRun);
        }
        let mut audit = Audit::open(&self.audit)?;
        println!("audit log: {}", self.audit.display());
        let mut history: Vec<String> = Vec::new();
        // One judgement for the whole rollout: its evidence runs across intervals and steps.
        let mut judgement = Judgement::new(self.judge.clone())?;

        for (index, &weight) in self.steps.iter().enumerate() {
            self.set_weight(target, weight)?;
            audit.write(json!({"event": "step", "step": index + 1, "weight": weight}))?;
            if weight >= 100.0 {
                // Nothing is left to compare against: reaching 100 % is the promotion.
                history.push(format!(
                    "{weight:>6}%  promoted after {} judged step(s)",
                    index
                ));
                break;
            }
            if !self.pause(self.settle, interrupted) {
                let end = self.interrupted(target, weight)?;
                return self.finish(&mut audit, end, &history);
            }
            let mut baseline = match self.read_with_retries(source, interrupted, &mut audit)? {
                Read::Metrics(reading) => reading,
                other => {
                    let end = self.unread(target, weight, other)?;
                    return self.finish(&mut audit, end, &history);
                }
            };
            if index == 0 {
                // Stable's counts before the rollout predict stable (never the evidence).
                if let Some(before) = baseline.get(&stable) {
                    judgement.seed(before).context("reading stable's counts")?;
                }
            }
            // The step's own start: a hold reports what the whole step has gathered so far.
            let step_start = baseline.clone();
            let mut holds = 0;
            loop {
                if !self.wait(index, weight, interrupted) {
                    let end = self.interrupted(target, weight)?;
                    return self.finish(&mut audit, end, &history);
                }
                let now = match self.read_with_retries(source, interrupted, &mut audit)? {
                    Read::Metrics(reading) => reading,
                    other => {
                        let end = self.unread(target, weight, other)?;
                        return self.finish(&mut audit, end, &history);
                    }
                };
                let canary = delta(&now, &baseline, &self.canary);
                let stable_counts = delta(&now, &baseline, &stable);
                let verdict = judgement
                    .observe(index, &canary, &stable_counts)
                    .context("judging the interval")?;
                let step_canary = delta(&now, &step_start, &self.canary);
                let step_stable = delta(&now, &step_start, &stable);
                // Each interval is judged on its own counts; the judgement keeps the evidence.
                baseline = now;
                let line = self.line(index, weight, &canary, &stable_counts, &verdict);
                println!("{line}");
                audit.write(json!({
                    "event": "verdict", "step": index + 1, "weight": weight,
                    "outcome": verdict.outcome, "reason": verdict.reason, "checks": verdict.checks,
                    "canary": summary(&canary), "stable": summary(&stable_counts),
                    "settings": self.judge,
                }))?;
                match verdict.outcome {
                    StepAction::Pass => {
                        history.push(format!("{weight:>6}%  pass   {}", verdict.reason));
                        break;
                    }
                    StepAction::Hold => {
                        holds += 1;
                        let shortfall = self.shortfall(
                            &step_canary,
                            &stable,
                            &step_stable,
                            holds,
                            &verdict.reason,
                        );
                        if holds >= self.max_holds {
                            history.push(format!("{weight:>6}%  hold   {}", verdict.reason));
                            let end = End::Stopped(
                                weight,
                                format!(
                                    "no verdict after {holds} intervals at {weight}%: {shortfall}"
                                ),
                            );
                            return self.finish(&mut audit, end, &history);
                        }
                        println!(
                            "  hold {holds} of {} (--max-holds): {shortfall}",
                            self.max_holds
                        );
                    }
                    StepAction::Fail => {
                        history.push(format!("{weight:>6}%  FAIL   {}", verdict.reason));
                        self.roll_back(target)?;
                        let end = End::RolledBack(format!("at {weight}%: {}", verdict.reason));
                        return self.finish(&mut audit, end, &history);
                    }
                }
                if interrupted.load(Ordering::SeqCst) {
                    let end = self.interrupted(target, weight)?;
                    return self.finish(&mut audit, end, &history);
                }
            }
        }
        let last = self.steps.last().copied().unwrap_or(100.0);
        self.finish(&mut audit, End::Promoted(last), &history)
    }

    fn set_weight(&self, target: &Target, weight: f64) -> Result<()> {
        target
            .push(false, |config| {
                edit::set_weights(
                    config,
                    &[(self.canary.clone(), weight)],
                    self.rule.as_deref(),
                )
            })
            .with_context(|| format!("pushing weight {weight}%"))?;
        Ok(())
    }

    /// Takes every user off the canary in one push, as `canaryctl rollback` does for it: its
    /// weight goes to 0 in the judged split and in every other split that names it (a rule's
    /// own split would otherwise keep sending its users there). Says which splits changed and
    /// which pins still send testers to it.
    fn roll_back(&self, target: &Target) -> Result<()> {
        let canary = self.canary.clone();
        let (update, _) = target
            .push(false, move |config| Ok(edit::withdraw(config, &canary)?.0))
            .context("rolling back")?;
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
        println!(
            "rollback: `{}` set to 0% in {}",
            self.canary,
            if splits.is_empty() {
                "no split (it had no weight left)".to_string()
            } else {
                splits.join(", ")
            }
        );
        let pins = edit::pins_to(&update.after, &self.canary);
        if !pins.is_empty() {
            println!(
                "rollback: still pinned to `{}` by rule(s) {} (testers keep reaching it; \
                 `canaryctl set --unpin RULE` removes a pin)",
                self.canary,
                pins.iter()
                    .map(|pin| format!("`{pin}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(())
    }

    /// The end when the source could not be read: roll back, or obey the interrupt.
    fn unread(&self, target: &Target, weight: f64, read: Read) -> Result<End> {
        match read {
            Read::Failed(reason) => {
                self.roll_back(target)?;
                Ok(End::RolledBack(reason))
            }
            _ => self.interrupted(target, weight),
        }
    }

    fn interrupted(&self, target: &Target, weight: f64) -> Result<End> {
        Ok(match self.on_interrupt {
            OnInterrupt::Hold => End::Stopped(
                weight,
                format!("interrupted: `{}` held at {weight}%", self.canary),
            ),
            OnInterrupt::Rollback => {
                self.roll_back(target)?;
                End::RolledBack(format!(
                    "interrupted at {weight}% (--on-interrupt rollback)"
                ))
            }
        })
    }

    /// Reads the source, retrying once per interval; after `max_failed_reads` failures in a
    /// row, rolls back.
    fn read_with_retries(
        &self,
        source: &Source,
        interrupted: &Arc<AtomicBool>,
        audit: &mut Audit,
    ) -> Result<Read> {
        let mut failures = 0;
        loop {
            match source.read(self.label()) {
                Ok(reading) => return Ok(Read::Metrics(reading)),
                Err(err) => {
                    failures += 1;
                    let message = format!("{err:#}");
                    println!(
                        "  source read failed ({failures} of {}): {message}; holding",
                        self.max_failed_reads
                    );
                    audit.write(
                        json!({"event": "source_error", "failures": failures, "error": message}),
                    )?;
                    if failures >= self.max_failed_reads {
                        return Ok(Read::Failed(format!(
                            "{failures} failed reads of {} in a row: {message}",
                            source.describe()
                        )));
                    }
                }
            }
            let deadline = Instant::now() + self.interval;
            while Instant::now() < deadline {
                if interrupted.load(Ordering::SeqCst) {
                    return Ok(Read::Interrupted);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
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

    /// Waits one interval with a progress bar (on a terminal); false when interrupted.
    fn wait(&self, index: usize, weight: f64, interrupted: &Arc<AtomicBool>) -> bool {
        let millis = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let bar = ProgressBar::new(millis);
        bar.set_style(
            ProgressStyle::with_template("  step {prefix} {bar:30} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{}/{} at {weight}%", index + 1, self.steps.len()));
        bar.set_message("collecting");
        let started = Instant::now();
        while started.elapsed() < self.interval {
            if interrupted.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                return false;
            }
            bar.set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(millis));
            std::thread::sleep(Duration::from_millis(50));
        }
        bar.finish_and_clear();
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

    fn line(
        &self,
        index: usize,
        weight: f64,
        canary: &Counts,
        stable: &Counts,
        verdict: &Verdict,
    ) -> String {
        let side = |name: &str, c: &Counts| {
            let ms = |q| {
                c.latency_quantile(q)
                    .map_or("-".into(), |v: f64| format!("{v:.1}"))
            };
            format!(
                "{name} {} req {:.2}% 5xx p50 {} p99 {} ms",
                c.answered(),
                c.error_rate(),
                ms(0.5),
                ms(0.99)
            )
        };
        let filled = (weight / 10.0).round() as usize;
        let bar = format!(
            "[{}{}]",
            "#".repeat(filled.min(10)),
            ".".repeat(10 - filled.min(10))
        );
        let checks: Vec<String> = verdict.checks.iter().map(|c| c.brief()).collect();
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
            "step {}/{} {bar} {weight:>6.2}% | {} | {} | {} => {decision}",
            index + 1,
            self.steps.len(),
            side(&self.canary, canary),
            side("stable", stable),
            if checks.is_empty() {
                "-".to_string()
            } else {
                checks.join(", ")
            },
        )
    }

    fn finish(&self, audit: &mut Audit, end: End, history: &[String]) -> Result<End> {
        let (event, text) = match &end {
            End::Promoted(weight) => (
                "promoted",
                format!("PROMOTED: `{}` is at {weight}%", self.canary),
            ),
            End::RolledBack(reason) => (
                "rolled_back",
                format!("ROLLED BACK: `{}` is at 0% ({reason})", self.canary),
            ),
            End::Stopped(weight, reason) => ("stopped", format!("STOPPED at {weight}%: {reason}")),
            // Not reached: a dry run returns before the audit log is opened.
            End::DryRun => ("dry_run", "DRY RUN: nothing written".to_string()),
        };
        audit.write(json!({"event": event, "summary": text}))?;
        println!("\nsummary:");
        for line in history {
            println!("  {line}");
        }
        println!("{text}");
        Ok(end)
    }
}

/// What a read of the source gave.
enum Read {
    /// The cumulative counts per version.
    Metrics(MetricsReading),
    /// Too many failures in a row.
    Failed(String),
    Interrupted,
}

fn delta(now: &MetricsReading, before: &MetricsReading, version: &str) -> Counts {
    let current = now.get(version).cloned().unwrap_or_default();
    match before.get(version) {
        Some(earlier) => current.since(earlier),
        None => current,
    }
}

fn summary(counts: &Counts) -> serde_json::Value {
    json!({
        "responses": counts.answered(), "errors_5xx": counts.errors(), "error_rate": counts.error_rate(),
        "latency_samples": counts.latency_samples(),
        "p50_ms": counts.latency_quantile(0.5), "p99_ms": counts.latency_quantile(0.99),
    })
}

/// The audit log: one JSON object per line, appended.
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

    fn write(&mut self, mut entry: serde_json::Value) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        entry["time"] = json!(now.as_secs_f64());
        writeln!(self.file, "{entry}")?;
        Ok(())
    }
}
