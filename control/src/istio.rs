//! The Istio target: the resources a user applies. A `WasmPlugin` (extensions.istio.io
//! v1alpha1) carrying the filter configuration as `pluginConfig`, an `EnvoyFilter` that removes
//! client-sent routing headers in the same sidecars before any route is picked, `DestinationRule`
//! subsets per version, and a `VirtualService` that routes on the filter's version header
//! (Istio's clusters are its own, so the route header is not what routes there).
//!
//! The documents are written as JSON (a YAML stream of JSON documents, which `kubectl apply`
//! reads): kubectl reads YAML 1.1, where a plain `yes`, `on` or `1:20` is not a string, and a
//! YAML writer following 1.2 leaves those unquoted. JSON quotes every string.

use anyhow::{bail, Result};
use canary_filter::{CanaryConfig, RoutingPlan};
use serde_json::{json, Value};

/// What the rendering needs beyond the filter configuration.
#[derive(Debug, Clone)]
pub struct IstioOptions {
    /// Resource name of the WasmPlugin.
    pub name: String,
    /// Namespace of every resource.
    pub namespace: String,
    /// Workload selector of the WasmPlugin (`app=frontend`): the callers' sidecars.
    pub selector: Vec<(String, String)>,
    /// `oci://…` image or `file://…` module.
    pub url: String,
    /// Optional sha256 of the module.
    pub sha256: Option<String>,
    /// Filter phase (`AUTHN`, `AUTHZ`, `STATS`, `UNSPECIFIED_PHASE`).
    pub phase: String,
    /// Optional priority within the phase.
    pub priority: Option<i64>,
    /// The service host the VirtualService and DestinationRule are for.
    pub host: String,
    /// Pod label that tells versions apart in the DestinationRule subsets (label value = the
    /// version's name unless overridden).
    pub version_label: String,
    /// Per-version label values that differ from the version's name: `(version, value)`.
    pub label_values: Vec<(String, String)>,
}

/// The three resources, as YAML documents separated by `---`.
pub fn render(config: &CanaryConfig, options: &IstioOptions) -> Result<String> {
    let plan = RoutingPlan::try_from(config)
        .map_err(|err| anyhow::anyhow!("the filter configuration is invalid: {err}"))?;
    let Some(version_header) = plan.version_header() else {
        bail!("version_header is disabled (\"\"): in Istio the VirtualService routes on it, so it must be set");
    };
    if !(options.url.starts_with("oci://")
        || options.url.starts_with("file://")
        || options.url.starts_with("https://"))
    {
        bail!(
            "--url must be an oci://, file:// or https:// URL, got {:?}",
            options.url
        );
    }
    for (version, _) in &options.label_values {
        if plan.version_index(version).is_none() {
            bail!("--label-value names {version:?}, which is not a version of the configuration");
        }
    }
    let labels: serde_json::Map<String, Value> = options
        .selector
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut spec = json!({
        "selector": {"matchLabels": labels.clone()},
        "url": options.url,
        "phase": options.phase,
        // Safe because of the EnvoyFilter below: a skipped or failed filter leaves no
        // client-sent version header for the VirtualService to route on.
        "failStrategy": "FAIL_OPEN",
        "type": "HTTP",
        // Outbound calls of the selected workloads only (the filter picks the version of the
        // service they call).
        "match": [{"mode": "CLIENT"}],
        "pluginConfig": serde_json::to_value(config)?,
    });
    if let Some(sha) = &options.sha256 {
        spec["sha256"] = json!(sha);
    }
    if let Some(priority) = options.priority {
        spec["priority"] = json!(priority);
    }
    let plugin = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": options.name, "namespace": options.namespace},
        "spec": spec,
    });

    let strip = json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": format!("{}-strip-routing-headers", options.name), "namespace": options.namespace},
        "spec": {
            "workloadSelector": {"labels": labels},
            "configPatches": [{
                "applyTo": "NETWORK_FILTER",
                "match": {
                    "context": "SIDECAR_OUTBOUND",
                    "listener": {"filterChain": {"filter": {"name": HCM_NAME}}},
                },
                "patch": {"operation": "MERGE", "value": strip_patch(&plan)},
            }],
        },
    });

    let subset = |name: &str| {
        let value = options
            .label_values
            .iter()
            .find(|(version, _)| version == name)
            .map_or(name.to_string(), |(_, value)| value.clone());
        json!({"name": name, "labels": {options.version_label.clone(): value}})
    };
    let destination_rule = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": options.host, "namespace": options.namespace},
        "spec": {
            "host": options.host,
            "subsets": plan.versions().iter().map(|v| subset(&v.name)).collect::<Vec<_>>(),
        },
    });

    let default = plan
        .versions()
        .get(plan.default_version())
        .map_or("", |v| v.name.as_str());
    let mut routes: Vec<Value> = plan
        .versions()
        .iter()
        .filter(|v| v.name != default)
        .map(|v| {
            json!({
                "name": v.name,
                "match": [{"headers": {version_header: {"exact": v.name}}}],
                "route": [{"destination": {"host": options.host, "subset": v.name}}],
            })
        })
        .collect();
    // The last route catches everything else, the default version included, and requests the
    // filter did not see (FAIL_OPEN): they go to the default version.
    routes.push(json!({
        "name": default,
        "route": [{"destination": {"host": options.host, "subset": default}}],
    }));
    let virtual_service = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": options.host, "namespace": options.namespace},
        "spec": {"hosts": [options.host], "http": routes},
    });

    let docs: Result<Vec<String>> = [plugin, strip, destination_rule, virtual_service]
        .iter()
        .map(|doc| Ok(serde_json::to_string_pretty(doc)? + "\n"))
        .collect();
    Ok(docs?.join("---\n"))
}

/// Envoy's name of the HTTP connection manager, which the EnvoyFilter patches.
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";

/// The connection manager fields that remove the plan's route and version headers before
/// Envoy picks a route (`early_header_mutation_extensions`, as in `envoy/front.yaml`): merged
/// into the sidecar's outbound connection managers by the EnvoyFilter, so the routing headers a
/// client sent are gone even when the wasm filter is skipped or has failed.
pub fn strip_patch(plan: &RoutingPlan) -> Value {
    let mut removed = vec![json!({"remove": plan.route_header()})];
    if let Some(version_header) = plan.version_header() {
        removed.push(json!({"remove": version_header}));
    }
    json!({
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "early_header_mutation_extensions": [{
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                    "mutations": removed,
                },
            }],
        },
    })
}
