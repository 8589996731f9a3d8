//! A rollout of a feature (`rollout --feature NAME`): each step writes `features.NAME.percent`,
//! and the judge reads the requests with the feature on as the canary and those with it off as
//! stable, from the per-feature series. Everything else (steps, evidence, gates, pauses, the
//! audit log) is the version rollout's own.

use anyhow::{bail, Result};
use canary_filter::CanaryConfig;

use super::{weight_in, Reporter, Rollout};
use crate::config::flags::{self, OFF};
use crate::mesh::target::Target;
use crate::metrics::counts::MetricsReading;
use crate::metrics::per_proxy::FleetReading;
use crate::metrics::source::Source;
use crate::metrics::stats::FEATURES;
use crate::{config::edit, metrics::prometheus::describe_service};

impl Rollout {
    /// The configuration with the canary (a version, or the feature) at `weight` percent.
    pub(super) fn ramp(&self, config: &CanaryConfig, weight: f64) -> Result<CanaryConfig> {
        if self.feature {
            if self.canary == OFF {
                bail!("--feature {OFF}: a feature named `{OFF}` cannot be judged against its own off side");
            }
            flags::set_feature(config, &self.canary, weight)
        } else {
            edit::set_weights(
                config,
                &[(self.canary.clone(), weight)],
                self.rule.as_deref(),
            )
        }
    }

    /// What the canary is judged against: the default version, or the feature's off side.
    pub(super) fn stable_of(&self, config: &CanaryConfig) -> String {
        if self.feature {
            OFF.to_string()
        } else {
            config.default.clone()
        }
    }

    /// The canary's weight (or the feature's percent) in `config`.
    pub(super) fn weight_of(&self, config: &CanaryConfig) -> f64 {
        if self.feature {
            flags::percent_of(config, &self.canary)
        } else {
            weight_in(config, &self.canary, self.rule.as_deref())
        }
    }

    /// The cumulative counts the judge compares, per proxy (subtracted proxy by proxy as the
    /// version series are, [`crate::metrics::per_proxy::interval`]): per version of the cohort, or the
    /// feature's on side (under the feature's name) and off side.
    pub(super) fn read_fleet(&self, source: &Source) -> Result<FleetReading> {
        if !self.feature {
            return source.read_fleet(self.label());
        }
        let fleet: FleetReading = source
            .read_family(&FEATURES, false)?
            .proxies
            .iter()
            .map(|(proxy, stats)| {
                let side = flags::reading(stats, source.service(), &self.canary, &self.canary);
                (proxy.clone(), side)
            })
            .collect();
        if fleet.values().all(MetricsReading::is_empty) {
            bail!(
                "{} shows no responses of feature {:?} of the service with {}",
                source.describe(),
                self.canary,
                describe_service(source.service())
            );
        }
        Ok(fleet)
    }

    /// Turns the feature off for every user in one push; says which rules still pin it on.
    /// A push that failed after the file or resource was written (its confirmation did not
    /// come) still ends rolled back, recorded as not confirmed, as a version's rollback does.
    pub(super) fn roll_back_feature(&self, out: &mut Reporter, target: &Target) -> Result<()> {
        let pushed = target.push(false, |config| {
            flags::set_feature(config, &self.canary, 0.0)
        });
        let (update, applied) = match pushed {
            Ok(pushed) => pushed,
            Err(err) => {
                let written = target
                    .read()
                    .is_ok_and(|(config, _)| flags::percent_of(&config, &self.canary) == 0.0);
                if !written {
                    return Err(err.context("rolling back"));
                }
                out.say(&format!(
                    "rollback: feature `{}` is at 0% in {}, not confirmed: {err:#}",
                    self.canary,
                    target.describe()
                ));
                out.unconfirmed = Some(err);
                return Ok(());
            }
        };
        out.say(&format!("rollback: feature `{}` set to 0%", self.canary));
        if let Some(fleet) = applied.fleet() {
            out.say(&format!("rollback: {}", fleet.line().trim_end()));
        }
        let pins = flags::pins_on(&update.after, &self.canary);
        if !pins.is_empty() {
            out.say(&format!(
                "rollback: still pinned on by rule(s) {} (testers keep it)",
                pins.iter()
                    .map(|pin| format!("`{pin}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }
}
