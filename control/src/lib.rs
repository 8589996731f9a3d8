//! canaryctl's library: the same configuration parser, validator and decision function as the
//! filter (the `canary-filter` crate), plus the mesh targets (Envoy's ECDS file, Istio
//! resources), the change preview and the per-version status.

pub mod admin;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod dispersion;
pub mod ecds;
pub mod edit;
pub mod events;
pub mod evidence;
pub mod explain;
pub mod fallback;
pub mod flags;
pub mod fleet_wait;
pub mod hooks;
pub mod istio;
pub mod istio_version;
pub mod judge;
pub mod kubectl;
pub mod module_pull;
pub mod movement;
pub mod ownership;
pub mod pause;
pub mod per_proxy;
pub mod progress;
pub mod prometheus;
pub mod push;
pub mod rollout;
pub mod runs;
pub mod shadow;
pub mod sim;
pub mod source;
pub mod stats;
pub mod status;
pub mod target;
pub mod wasmplugin;
