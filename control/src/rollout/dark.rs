//! `rollout --mirror PCT`: a dark canary before the steps. The canary, at 0 %, gets a copy of
//! PCT % of the safe requests (the filter's `mirror` section; Envoy discards the copies'
//! answers), and the same judge weighs the copies, read at the canary's cluster, against
//! stable's requests at its cluster, interval by interval. A pass removes the mirror and the
//! steps begin; a failure removes the mirror and rolls back, before any user was routed to
//! the canary; no verdict within `--max-holds` intervals removes the mirror and stops.

use anyhow::{bail, Context, Result};
use canary_filter::config::{CanaryConfig, MirrorSpec, DEFAULT_MIRROR_HEADER};

use super::machine::Input;
use super::{Reporter, Rollout, Run};
use crate::mesh::target::Target;
use crate::metrics::mirror_stats::ShadowSource;
use crate::metrics::per_proxy::{self, FleetReading};
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

/// The dark phase's own judgement and clusters.
pub(super) struct Dark {
    /// The copies' judgement (the steps have their own).
    pub(super) judgement: Judgement,
    canary_cluster: String,
    stable_cluster: String,
    /// Copies counted in the last interval.
    copies: u64,
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

    /// Writes the mirror (the dark phase begins): the canary, at 0 %, gets a copy of the
    /// plan's percent of the safe requests. The rollout owns the mirror as it owns the weight:
    /// a change by someone else stops it.
    pub(super) fn write_mirror(
        &self,
        out: &mut Reporter,
        target: &Target,
        source: &Source,
        run: &mut Run,
    ) -> Result<()> {
        let Some(percent) = self.mirror else {
            bail!("no --mirror: no dark phase");
        };
        if !matches!(source, Source::Admin { .. }) {
            bail!("--mirror reads the copies from Envoy's admin endpoints (--admin)");
        }
        // The configuration the rollout found (it has written nothing yet).
        let config = run.owned.last().clone();
        let stable = config.default.as_str();
        let canary_cluster = cluster_of(&config, &self.canary)?.to_string();
        let stable_cluster = cluster_of(&config, stable)?.to_string();
        let canary = self.canary.clone();
        let owned = &mut run.owned;
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
        run.dark = Some(Dark {
            judgement: Judgement::new(self.judge.clone())?,
            canary_cluster,
            stable_cluster,
            copies: 0,
        });
        Ok(())
    }

    /// The copies at the canary's cluster and stable's requests at its cluster, per proxy.
    pub(super) fn read_copies(&self, source: &Source, run: &Run) -> Result<FleetReading> {
        let (Source::Admin { admins, .. }, Some(dark)) = (source, run.dark.as_ref()) else {
            bail!("--mirror reads the copies from Envoy's admin endpoints (--admin)");
        };
        ShadowSource {
            admins,
            canary: (&self.canary, &dark.canary_cluster),
            stable: (&run.stable, &dark.stable_cluster),
        }
        .read()
    }

    /// Reads the copies at an interval's end and judges them against stable's requests, as a
    /// step's interval is judged (subtracted proxy by proxy); reports the verdict.
    pub(super) fn judge_copies(
        &self,
        out: &mut Reporter,
        source: &Source,
        run: &mut Run,
    ) -> Result<Input> {
        let percent = self.mirror.unwrap_or_default();
        let now = match self.read_copies(source, run) {
            Ok(reading) => reading,
            Err(err) => return Ok(Rollout::read_failed(run, &err)),
        };
        let interval = per_proxy::interval(&run.baseline, &now)?;
        let copies = interval.of(&self.canary);
        let stable_counts = interval.of(&run.stable);
        run.baseline = now;
        let Some(dark) = run.dark.as_mut() else {
            bail!("the dark phase judged before its mirror was written");
        };
        let verdict = dark
            .judgement
            .observe(0, &copies, &stable_counts)
            .context("judging the interval")?;
        dark.copies = copies.answered();
        let checks: Vec<String> = verdict.checks.iter().map(|c| c.brief()).collect();
        out.say(&format!(
            "mirror {percent:>6.2}% | {} | {} | {} => {}",
            progress::side(&format!("{} (copies)", self.canary), &copies),
            progress::side(&run.stable, &stable_counts),
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
        run.reason = verdict.reason.clone();
        Ok(Input::Verdict {
            outcome: verdict.outcome,
            reason: verdict.reason,
        })
    }

    /// Why the dark phase holds: no copy at all says where to look; else the judge's reason.
    pub(super) fn dark_hold(&self, run: &Run) -> String {
        match run.dark.as_ref() {
            Some(dark) if dark.copies == 0 => format!(
                "no copy reached cluster {}: does the route carry \
                 `request_mirror_policies` with `cluster_header` naming the \
                 filter's mirror header (envoy/front.yaml), and do GET or HEAD \
                 requests arrive?",
                dark.canary_cluster
            ),
            _ => run.reason.clone(),
        }
    }

    pub(super) fn remove_mirror(
        &self,
        out: &mut Reporter,
        target: &Target,
        owned: &mut Owned,
    ) -> Result<()> {
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
