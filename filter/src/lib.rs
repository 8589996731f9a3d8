//! Canary routing for Envoy and Istio.
//!
//! The pure core (no proxy-wasm import, builds for any target):
//! - [`config`]: the JSON document users write, read by `json`'s reader;
//! - [`plan`]: its validation and compilation into a [`RoutingPlan`];
//! - [`bucket`]: the murmur3 bucket and the weight ranges;
//! - [`canonical`]: the canonical form of a configuration, which its published hash hashes;
//! - [`cookie`]: reading one cookie out of a `cookie` header;
//! - [`header_pairs`]: reading one header out of a header map serialized by the host, and the
//!   request the filter decides on ([`header_pairs::HeaderMapRequest`]), all but its host call;
//! - [`hosts`]: which requests a configuration routes, by their `:authority`;
//! - [`decision`]: the per-request decision over a [`RequestView`];
//! - [`features`]: feature flags, each on for a sticky share of users;
//! - [`metrics`]: the names of the per-version metrics;
//! - [`mirror`]: which requests are copied to a dark canary.
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
