//! The Istio target: the resources a user applies. A `WasmPlugin` (extensions.istio.io
//! v1alpha1) carrying the filter configuration as `pluginConfig`, `DestinationRule` subsets per
//! version, and a `VirtualService` that routes on the filter's version header (Istio's clusters
//! are its own, so the route header is not what routes there).

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
        "selector": {"matchLabels": labels},
        "url": options.url,
        "phase": options.phase,
        "failStrategy": "FAIL_OPEN",
        "type": "HTTP",
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

    let docs: Result<Vec<String>> = [plugin, destination_rule, virtual_service]
        .iter()
        .map(|doc| Ok(serde_yaml_ng::to_string(doc)?))
        .collect();
    Ok(docs?.join("---\n"))
}
