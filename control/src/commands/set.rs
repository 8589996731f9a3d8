//! `canaryctl set`: change weights, the seed, pins, the default version or clusters,
//! previewing who moves.

use anyhow::{bail, Result};
use canary_filter::CanaryConfig;

use crate::cli::SetArgs;
use crate::commands::write;
use crate::edit;

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
        next = crate::flags::set_feature(&next, feature, *percent)?;
    }
    Ok(next)
}
