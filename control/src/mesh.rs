//! The mesh wing: where the filter's configuration lives and how a change reaches the proxies.
//! [`target`] is the one place a target is built and read or written: Envoy's ECDS file
//! ([`ecds`], with the write confirmed by [`push`] and the fallback route kept by
//! [`fallback`]), or an Istio WasmPlugin ([`wasmplugin`] through [`kubectl`]). The Istio
//! resources a user applies are rendered by [`istio_resources`], for the releases
//! [`istio_version`] names.

pub mod ecds;
pub mod fallback;
pub mod fleet_wait;
pub mod istio_resources;
pub mod istio_version;
pub mod kubectl;
pub mod module_pull;
pub mod push;
pub mod target;
pub mod wasmplugin;
