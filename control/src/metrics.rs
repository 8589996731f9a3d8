//! The metrics wing: the filter's per-version metrics as Envoy's admin endpoint ([`admin`],
//! parsed by [`stats`]) or Prometheus ([`prometheus`]) report them, each version's as one
//! model ([`counts`], buckets matched by bound, the bounds defined once in [`bounds`]), read
//! through one [`source`] for the rollout and `status` and subtracted proxy by proxy
//! ([`per_proxy`]); the per-version table ([`table`]) and the dark canary's mirror-cluster
//! counts ([`mirror_stats`]).

pub mod admin;
pub mod bounds;
pub mod counts;
pub mod mirror_stats;
pub mod per_proxy;
pub mod prometheus;
pub mod source;
pub mod stats;
pub mod table;
