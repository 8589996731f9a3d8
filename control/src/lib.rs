//! canaryctl's library: the same configuration parser, validator and decision function as the
//! filter (the `canary-filter` crate), in four wings (CONTRIBUTING.md draws them):
//!
//! - [`config`]: reading, changing and explaining the configuration (pure);
//! - [`mesh`]: where the configuration lives (Envoy's ECDS file, an Istio WasmPlugin), the
//!   write and its confirmation, the Istio resources;
//! - [`metrics`]: the filter's per-version metrics from Envoy or Prometheus, and the table;
//! - [`rollout`]: the automated rollout, its judge, events, hooks, gates and pause.
//!
//! The command line (clap) lives in the binary (`src/bin/canaryctl`); this library knows no
//! clap.

pub mod config;
pub mod mesh;
pub mod metrics;
pub mod rollout;
