//! `rollout --mirror PCT`: a dark canary before the steps. The canary, at 0 %, gets a copy of
//! PCT % of the safe requests (the filter's `mirror` section; Envoy discards the copies'
//! answers), and the same judge weighs the copies, read at the canary's cluster, against
//! stable's requests at its cluster, interval by interval. A pass removes the mirror and the
//! steps begin; a failure removes the mirror and rolls back, before any user was routed to
//! the canary; no verdict within `--max-holds` intervals removes the mirror and stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use canary_filter::config::{CanaryConfig, MirrorSpec, DEFAULT_MIRROR_HEADER};

use super::{End, Read, Reporter, Rollout};
use crate::mesh::target::Target;
use crate::metrics::mirror_stats::ShadowSource;
use crate::metrics::per_proxy;
use crate::metrics::source::Source;
use crate::rollout::events::{CountsSummary, Event};
use crate::rollout::judge::{Judgement, StepAction};
use crate::rollout::ownership::Owned;
use crate::rollout::progress;

/// `config` with `canary` mirrored at `percent`: the configuration's own `mirror` section keeps
/// its methods, excluded paths, sampling and header; without one, the defaults (GET and HEAD,
/// the split's sticky key when there is one).
pub fn with_mirror(config: &CanaryConfig, canary: &str, percent: f64) -> Result<CanaryConfig> {
    if !config.versions.iter().any(|v| v.name == canary) {
        bail!("no version is named `{canary}`");
    }
    let mut changed = config.clone();
    let mirror = changed.mirror.get_or_insert_with(|| MirrorSpec {
        version: canary.to_string(),
        percent,
        sampling: None,
        seed: None,
        header: DEFAULT_MIRROR_HEADER.to_string(),
        methods: vec!["GET".to_string(), "HEAD".to_string()],
        exclude_paths: Vec::new(),
    });
    mirror.version = canary.to_string();
    mirror.percent = percent;
    Ok(changed)
}

/// `config` without its `mirror` section: no request is copied, and none pays for it.
pub fn without_mirror(config: &CanaryConfig) -> Result<CanaryConfig> {
    let mut changed = config.clone();
    changed.mirror = None;
    Ok(changed)
}

/// The cluster of version `name`.
fn cluster_of<'c>(config: &'c CanaryConfig, name: &str) -> Result<&'c str> {
    config
        .versions
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.cluster.as_str())
        .with_context(|| format!("no version is named `{name}`"))
}

impl Rollout {
    /// Refuses, before anything is written, a `--mirror` this setup cannot judge: the copies
    /// are read from Envoy's admin endpoints, and only the shipped front (the ECDS target)
    /// carries the mirror policy that sends them.
    pub(super) fn check_dark(&self, target: &Target, source: &Source) -> Result<()> {
        if self.mirror.is_none() {
            return Ok(());
        }
        if matches!(target, Target::WasmPlugin { .. }) {
            bail!(
                "--mirror: an Istio sidecar's routes carry no mirror policy that reads the                  filter's mirror header; the dark canary runs on the shipped Envoy front                  (--ecds) only"
            );
        }
        if !matches!(source, Source::Admin { .. }) {
            bail!(
                "--mirror reads the copies from the mirror cluster's stats on Envoy's admin                  endpoints (--admin); a Prometheus source is not supported for it yet"
            );
        }
        Ok(())
    }

    /// The dark phase; `None` when it passed and the steps may begin.
    pub(super) fn dark_phase(
        &self,
        out: &mut Reporter,
        target: &Target,
        source: &Source,
        history: &mut Vec<String>,
        interrupted: &Arc<AtomicBool>,
        owned: &mut Owned,
    ) -> Result<Option<End>> {
        let Some(percent) = self.mirror else {
            return Ok(None);
        };
        // The configuration the rollout found (it has written nothing yet).
        let config = &owned.last().clone();
        let stable = config.default.as_str();
        let Source::Admin { admins, .. } = source else {
            bail!("--mirror reads the copies from Envoy's admin endpoints (--admin)");
        };
        let canary_cluster = cluster_of(config, &self.canary)?.to_string();
        let stable_cluster = cluster_of(config, stable)?.to_string();
        let shadows = ShadowSource {
            admins,
            canary: (&self.canary, &canary_cluster),
            stable: (stable, &stable_cluster),
        };
        let canary = self.canary.clone();
        // The rollout owns the mirror as it owns the weight: a change by someone else stops it.
        let (update, _) = target
            .push(false, |config| {
                owned.check(config)?;
                with_mirror(config, &canary, percent)
            })
            .with_context(|| format!("writing the mirror at {percent}%"))?;
        owned.wrote(&update.after);
        out.emit(Event::Mirror {
            percent,
            cluster: canary_cluster.clone(),
        })?;
        out.say(&format!(
            "dark canary: `{}` (cluster {canary_cluster}) gets a copy of {percent}% of the safe \
             requests, its answers discarded; judged against `{stable}` (cluster \
             {stable_cluster}) before any user is routed to it",
            self.canary
        ));
        let mut judgement = Judgement::new(self.judge.clone())?;
        let mut holds = 0;
        let mut failed = false;
        let end = 'phase: {
            if !self.settle(0.0, interrupted) {
                break 'phase Some(self.interrupted(out, target, 0.0)?);
            }
            let mut baseline = match self.read_shadows(out, &shadows, interrupted)? {
                Read::Metrics(reading, _) => reading,
                other => break 'phase Some(self.unread(out, target, 0.0, other)?),
            };
            if let Some(before) = per_proxy::total(&baseline)?.get(stable) {
                judgement.seed(before).context("reading stable's counts")?;
            }
            loop {
                if !self.pause(self.interval, interrupted) {
                    break 'phase Some(self.interrupted(out, target, 0.0)?);
                }
                let now = match self.read_shadows(out, &shadows, interrupted)? {
                    Read::Metrics(reading, _) => reading,
                    other => break 'phase Some(self.unread(out, target, 0.0, other)?),
                };
                // Subtracted proxy by proxy, as the steps' intervals are.
                let interval = per_proxy::interval(&baseline, &now)?;
                let copies = interval.of(&self.canary);
                let stable_counts = interval.of(stable);
                baseline = now;
                let verdict = judgement
                    .observe(0, &copies, &stable_counts)
                    .context("judging the interval")?;
                let checks: Vec<String> = verdict.checks.iter().map(|c| c.brief()).collect();
                out.say(&format!(
                    "mirror {percent:>6.2}% | {} | {} | {} => {}",
                    progress::side(&format!("{} (copies)", self.canary), &copies),
                    progress::side(stable, &stable_counts),
                    if checks.is_empty() {
                        "-".to_string()
                    } else {
                        checks.join(", ")
                    },
                    match verdict.outcome {
                        StepAction::Pass => "PASS: the steps begin".to_string(),
                        StepAction::Hold => format!("HOLD: {}", verdict.reason),
                        StepAction::Fail => format!("FAIL: {}", verdict.reason),
                    }
                ));
                out.emit(Event::Verdict {
                    step: 0,
                    weight: 0.0,
                    outcome: verdict.outcome,
                    reason: verdict.reason.clone(),
                    checks: verdict.checks.clone(),
                    canary: CountsSummary::from(&copies),
                    stable: CountsSummary::from(&stable_counts),
                    settings: self.judge.clone(),
                    fleet: interval.changes.iter().map(ToString::to_string).collect(),
                    custom_checks: Vec::new(),
                })?;
                match verdict.outcome {
                    StepAction::Pass => {
                        history.push(format!("mirror {percent}%  pass   {}", verdict.reason));
                        break 'phase None;
                    }
                    StepAction::Fail => {
                        history.push(format!("mirror {percent}%  FAIL   {}", verdict.reason));
                        failed = true;
                        break 'phase Some(End::RolledBack(format!(
                            "on mirrored traffic ({percent}% copied, no user routed to it): {}",
                            verdict.reason
                        )));
                    }
                    StepAction::Hold => {
                        holds += 1;
                        let why = if copies.answered() == 0 {
                            format!(
                                "no copy reached cluster {canary_cluster}: does the route carry                                  `request_mirror_policies` with `cluster_header` naming the                                  filter's mirror header (envoy/front.yaml), and do GET or HEAD                                  requests arrive?"
                            )
                        } else {
                            verdict.reason.clone()
                        };
                        out.say(&format!(
                            "  hold {holds} of {} (--max-holds): {why}",
                            self.max_holds
                        ));
                        out.emit(Event::Hold {
                            step: 0,
                            weight: 0.0,
                            holds,
                            max_holds: self.max_holds,
                            why: why.clone(),
                        })?;
                        if holds >= self.max_holds {
                            history.push(format!("mirror {percent}%  hold   {why}"));
                            break 'phase Some(End::Stopped(
                                0.0,
                                format!(
                                    "no verdict on mirrored traffic after {holds} intervals: {why}"
                                ),
                            ));
                        }
                    }
                }
                if interrupted.load(Ordering::SeqCst) {
                    break 'phase Some(self.interrupted(out, target, 0.0)?);
                }
            }
        };
        // However the phase ended, no copy is sent any more; a failed canary is then rolled
        // back (it is at 0 % already: the rollback also takes it out of every other split).
        self.remove_mirror(out, target, owned)?;
        if failed {
            self.roll_back(out, target)?;
        }
        Ok(end)
    }

    fn remove_mirror(&self, out: &mut Reporter, target: &Target, owned: &mut Owned) -> Result<()> {
        let (update, _) = target
            .push(false, |config| {
                owned.check(config)?;
                without_mirror(config)
            })
            .context("removing the mirror")?;
        owned.wrote(&update.after);
        out.emit(Event::Mirror {
            percent: 0.0,
            cluster: String::new(),
        })?;
        out.say(&format!(
            "dark canary: mirror removed, `{}` gets no copies",
            self.canary
        ));
        Ok(())
    }

    /// Reads the shadow source, retrying once per interval as the rollout's reads do.
    fn read_shadows(
        &self,
        out: &mut Reporter,
        shadows: &ShadowSource<'_>,
        interrupted: &Arc<AtomicBool>,
    ) -> Result<Read> {
        self.read_retrying(
            out,
            interrupted,
            "mirror stats",
            "the mirror cluster's stats",
            || Ok((shadows.read()?, Vec::new())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> CanaryConfig {
        CanaryConfig::from_json(json.as_bytes()).unwrap()
    }

    const TWO: &str = r#"{"versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}], "default": "stable", "sticky": {"keys": [{"header": "x-user-id"}]}"#;

    #[test]
    fn the_mirror_is_written_with_defaults_or_the_configurations_own_settings() {
        let plain = config(&format!("{TWO}}}"));
        let mirrored = with_mirror(&plain, "canary", 5.0).unwrap();
        let spec = mirrored.mirror.as_ref().unwrap();
        assert_eq!((spec.version.as_str(), spec.percent), ("canary", 5.0));
        assert_eq!(spec.methods, ["GET", "HEAD"]);
        // What the filter accepts.
        canary_filter::RoutingPlan::try_from(&mirrored).unwrap();

        let own = config(&format!(
            r#"{TWO}, "mirror": {{"version": "stable", "percent": 1, "exclude_paths": ["/admin"], "methods": ["GET"]}}}}"#
        ));
        let mirrored = with_mirror(&own, "canary", 10.0).unwrap();
        let spec = mirrored.mirror.as_ref().unwrap();
        assert_eq!((spec.version.as_str(), spec.percent), ("canary", 10.0));
        assert_eq!(spec.exclude_paths, ["/admin"]);
        assert_eq!(spec.methods, ["GET"]);
        assert_eq!(without_mirror(&mirrored).unwrap(), plain_with(&own));
        assert!(with_mirror(&plain, "nope", 5.0).is_err());
    }

    fn plain_with(config: &CanaryConfig) -> CanaryConfig {
        let mut config = config.clone();
        config.mirror = None;
        config
    }
}
