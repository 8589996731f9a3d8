//! Canary routing for Envoy and Istio.
//!
//! The pure core (no proxy-wasm import, builds for any target); from `request` to `decision`
//! the plan in layers, none importing a module listed after it:
//! - [`config`]: the JSON document users write, read by `json`'s reader;
//! - [`bucket`]: the murmur3 bucket and the weight ranges;
//! - [`cookie`]: reading one cookie out of a `cookie` header;
//! - `request`: [`RequestView`], what the decision reads a request through, and the header
//!   slots it asks by;
//! - `checks`: the checks a configuration's values pass on their way into a plan;
//! - `compiled`: the compiled pieces of a plan (versions, sticky keys, rules) and how a
//!   request is read for them (a condition, a cookie, the region, the sticky key);
//! - `rule_index`: the rules filed by what they read, so a request looks at few;
//! - [`hosts`]: which requests a configuration routes, by their `:authority`;
//! - [`features`]: feature flags, each on for a sticky share of users;
//! - [`mirror`]: which requests are copied to a dark canary;
//! - [`plan`]: validation and compilation into a [`RoutingPlan`], and its accessors;
//! - [`decision`]: the per-request decision over a [`RequestView`], and every other
//!   per-request method of the plan (features, mirror, hosts);
//! - [`header_pairs`]: reading one header out of a header map serialized by the host, and the
//!   request the filter decides on ([`header_pairs::HeaderMapRequest`]), all but its host call;
//! - [`metrics`]: the names of the per-version metrics;
//! - [`canonical`]: the canonical form of a configuration, which its published hash hashes.
//!
//! The proxy-wasm glue (`glue`) is compiled only for `wasm32-wasip1`, where a host exists.

pub mod bucket;
pub mod canonical;
mod checks;
mod compiled;
pub mod config;
pub mod cookie;
pub mod decision;
pub mod error;
pub mod features;
pub mod header_pairs;
pub mod hosts;
mod json;
mod json_write;
pub mod metrics;
pub mod mirror;
mod order;
pub mod plan;
mod request;
mod rule_index;

#[cfg(target_os = "wasi")]
mod glue;

pub use config::CanaryConfig;
pub use decision::{Decision, Reason, RequestView};
pub use error::ConfigError;
pub use plan::RoutingPlan;
