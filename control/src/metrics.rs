//! The metrics wing: the filter's per-version metrics as Envoy's admin endpoint ([`admin`],
//! parsed by [`stats`]) or Prometheus ([`prometheus`]) report them, read through one
//! [`source`] and subtracted proxy by proxy ([`per_proxy`]); the per-version table
//! ([`table`]) and the dark canary's mirror-cluster counts ([`mirror_stats`]). The latency
//! histogram's bounds are defined once, in [`bounds`].

pub mod admin;
pub mod bounds;
pub mod mirror_stats;
pub mod per_proxy;
pub mod prometheus;
pub mod source;
pub mod stats;
pub mod table;
