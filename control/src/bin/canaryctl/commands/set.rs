//! `canaryctl set`: change weights, the seed, pins, the default version or clusters,
//! previewing who moves.

use anyhow::{bail, Result};
use canary_filter::CanaryConfig;

use crate::commands::prelude::*;
use crate::commands::write;
use canary_control::config::edit;

#[derive(Args)]
pub struct SetArgs {
    /// VERSION=PERCENT, for example canary=25 (repeatable).
    #[arg(long = "weight", value_name = "VERSION=PERCENT", value_parser = parse_weight)]
    pub weights: Vec<(String, f64)>,
    /// Set the weights of this rule's split instead of the top-level one.
    #[arg(long, requires = "weights")]
    pub rule: Option<String>,
    /// A new sticky seed: a fresh cohort.
    #[arg(long)]
    pub seed: Option<u32>,
    /// RULE=VERSION: make the rule pin the version (a new rule needs --header or --cookie).
    #[arg(long, value_name = "RULE=VERSION", value_parser = parse_pair)]
    pub pin: Option<(String, String)>,
    /// With --pin for a new rule: the header NAME=VALUE that selects it.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair, requires = "pin", conflicts_with = "cookie")]
    pub header: Option<(String, String)>,
    /// With --pin for a new rule: the cookie NAME=VALUE that selects it.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair, requires = "pin")]
    pub cookie: Option<(String, String)>,
    /// Remove this rule.
    #[arg(long, value_name = "RULE")]
    pub unpin: Option<String>,
    /// Make this version the default.
    #[arg(long = "default", value_name = "VERSION")]
    pub default_version: Option<String>,
    /// VERSION=CLUSTER: point a version at another Envoy cluster (a new deployment).
    #[arg(long, value_name = "VERSION=CLUSTER", value_parser = parse_pair)]
    pub cluster: Vec<(String, String)>,
    /// NAME=PERCENT: turn a feature on for this percent of users (declared if new; repeatable).
    #[arg(long = "feature", value_name = "NAME=PERCENT", value_parser = parse_weight)]
    pub features: Vec<(String, f64)>,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Applies the changes the flags ask for, in one write.
pub fn exec(args: SetArgs) -> Result<()> {
    if args.weights.is_empty()
        && args.seed.is_none()
        && args.pin.is_none()
        && args.unpin.is_none()
        && args.default_version.is_none()
        && args.cluster.is_empty()
        && args.features.is_empty()
    {
        bail!("nothing to change: give --weight, --seed, --pin, --unpin, --default, --cluster or --feature");
    }
    write::apply(&args.write, |config| change(&args, config))?;
    Ok(())
}

/// The configuration after the changes `args` ask for, in the order: weights, seed, pin,
/// unpin, default, clusters, features.
pub fn change(args: &SetArgs, config: &CanaryConfig) -> Result<CanaryConfig> {
    let mut next = config.clone();
    if !args.weights.is_empty() {
        next = edit::set_weights(&next, &args.weights, args.rule.as_deref())?;
    }
    if let Some(seed) = args.seed {
        next = edit::set_seed(&next, seed)?;
    }
    if let Some((rule, version)) = &args.pin {
        let when = match (&args.header, &args.cookie) {
            (Some((name, value)), _) => Some(edit::PinWhen::Header(name.clone(), value.clone())),
            (None, Some((name, value))) => Some(edit::PinWhen::Cookie(name.clone(), value.clone())),
            (None, None) => None,
        };
        next = edit::pin(&next, rule, version, when)?;
    }
    if let Some(rule) = &args.unpin {
        next = edit::unpin(&next, rule)?;
    }
    if let Some(version) = &args.default_version {
        next = edit::set_default(&next, version)?;
    }
    for (version, cluster) in &args.cluster {
        next = edit::set_cluster(&next, version, cluster)?;
    }
    for (feature, percent) in &args.features {
        next = canary_control::config::flags::set_feature(&next, feature, *percent)?;
    }
    Ok(next)
}
