//! The Istio target: the resources a user applies. A `WasmPlugin` (extensions.istio.io
//! v1alpha1) carrying the filter configuration as `pluginConfig`, an `EnvoyFilter` that removes
//! client-sent routing headers in the same sidecars before any route is picked, `DestinationRule`
//! subsets per version, a `VirtualService` that routes on the filter's version header for the
//! plugin's callers only (Istio's clusters are its own, so the route header is not what routes
//! there), and a `ConfigMap` holding the bootstrap override that gives the sidecars the
//! filter's stats tags; with it, the pod annotations the sidecars need ([`pod_annotations`]).
//! The plugin routes only calls to its service (`hosts`), with a header of that service's own.
//!
//! Istio's sidecar bootstrap creates only the stats its `stats_matcher` includes, and always
//! includes the prefix `wasm` (so the filter's `wasmcustom.canary_…` stats; `proxyStatsMatcher`
//! in `proxy.istio.io/config` or `meshConfig.defaultConfig` would add more). Its `stats_tags`
//! are its own; the only way to add regex tags is a bootstrap override: the
//! `sidecar.istio.io/bootstrapOverride` annotation names a ConfigMap, which the injector mounts
//! at `/etc/istio/custom-bootstrap` and the agent passes to Envoy as `--config-yaml` from the key
//! `custom_bootstrap.json`, merged into the bootstrap (lists appended). (`extraStatTags`, now
//! deprecated, only builds tags of Istio's own `name=.=value;.;` form.) Checked against
//! istio/istio's injection template, `pkg/envoy/proxy.go` and `envoy_bootstrap.json`, and
//! istio/api's `ProxyConfig.ProxyStatsMatcher`.
//!
//! The documents are written as JSON (a YAML stream of JSON documents, which `kubectl apply`
//! reads): kubectl reads YAML 1.1, where a plain `yes`, `on` or `1:20` is not a string, and a
//! YAML writer following 1.2 leaves those unquoted. JSON quotes every string.

use anyhow::{bail, Result};
use canary_filter::{CanaryConfig, RoutingPlan};
use serde_json::{json, Value};

use crate::mesh::istio_version::IstioVersion;
use crate::mesh::module_pull::{self, PullPolicy};

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
    /// The Istio release the resources are for (API versions; refused where it lacks what
    /// the resources need).
    pub istio_version: IstioVersion,
    /// `imagePullPolicy` as given (`None`: [`module_pull::rendered_policy`]'s default).
    pub pull_policy: Option<PullPolicy>,
    /// `imagePullSecret`: the Secret in the WasmPlugin's namespace holding the registry's
    /// credentials.
    pub pull_secret: Option<String>,
}

/// The filter configuration as Istio routes: on the version header (the `VirtualService`
/// matches it), never on the cluster header (Istio's clusters are its own), so the filter
/// writes the one and not the other; and only calls to the service host (`hosts`), since a
/// sidecar runs every plugin on every outbound call of its workload. The version header is the
/// service's own ([`service_version_header`]) unless the configuration names one: two plugins
/// in one sidecar then never write, and two VirtualServices never read, the same header.
pub fn plugin_config(config: &CanaryConfig, options: &IstioOptions) -> Result<CanaryConfig> {
    let mut istio = config.clone();
    if istio.version_header.is_empty()
        || istio.version_header == canary_filter::config::DEFAULT_VERSION_HEADER
    {
        istio.version_header = service_version_header(&options.host);
    }
    istio.route_header = String::new();
    let fqdn = service_fqdn(&options.host, &options.namespace);
    match &istio.hosts {
        None => istio.hosts = Some(vec![fqdn]),
        Some(hosts) => {
            let plan = RoutingPlan::try_from(&istio)
                .map_err(|err| anyhow::anyhow!("the filter configuration is invalid: {err}"))?;
            if !plan.routes_authority(Some(options.host.as_bytes())) {
                bail!(
                    "the configuration's hosts {hosts:?} do not include --host {:?}, the service \
                     the VirtualService routes",
                    options.host
                );
            }
        }
    }
    Ok(istio)
}

/// The version header a service's plugin writes and its VirtualService matches when the
/// configuration names none: `x-canary-version-<NAME>` for the host `NAME[.NAMESPACE…]`.
pub fn service_version_header(host: &str) -> String {
    let name = host.split('.').next().unwrap_or(host);
    format!(
        "{}-{}",
        canary_filter::config::DEFAULT_VERSION_HEADER,
        name.to_ascii_lowercase()
    )
}

/// The Kubernetes service name of `host` as Istio writes it, `NAME.NAMESPACE.svc.cluster.local`:
/// a short host (`checkout`) is in `namespace`, as the VirtualService in that namespace reads
/// it, and `NAME.NAMESPACE` gets the cluster's domain; a longer name is kept as given.
pub fn service_fqdn(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.matches('.').count() {
        0 => format!("{host}.{namespace}.svc.cluster.local"),
        1 => format!("{host}.svc.cluster.local"),
        _ => host,
    }
}

/// The five resources, as JSON documents separated by `---`.
pub fn render(config: &CanaryConfig, options: &IstioOptions) -> Result<String> {
    let config = &plugin_config(config, options)?;
    let plan = RoutingPlan::try_from(config)
        .map_err(|err| anyhow::anyhow!("the filter configuration is invalid: {err}"))?;
    let Some(version_header) = plan.version_header() else {
        bail!(
            "the plugin configuration writes no version header, which the VirtualService routes on"
        );
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
    options
        .istio_version
        .has_early_header_mutation()
        .map_err(anyhow::Error::msg)?;
    // What Istio's CRD schema and istiod's validation would refuse at `kubectl apply`, said here.
    if let Some(sha) = &options.sha256 {
        if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!("--sha256 must be the module's sha256 as 64 lower-case hex digits, got {sha:?}");
        }
    }
    if let Some(secret) = &options.pull_secret {
        if secret.is_empty() || secret.len() > 253 {
            bail!("--pull-secret must name a Secret (1 to 253 characters), got {secret:?}");
        }
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
    // No write of the WasmPlugin (a rollout step) may make the sidecars fetch the module again
    // (see `module_pull`).
    spec["imagePullPolicy"] = json!(module_pull::rendered_policy(options.pull_policy).to_string());
    if let Some(secret) = &options.pull_secret {
        spec["imagePullSecret"] = json!(secret);
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
        "apiVersion": options.istio_version.networking_api(),
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
                "match": [header_match(version_header, &v.name, options)],
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
        "apiVersion": options.istio_version.networking_api(),
        "kind": "VirtualService",
        "metadata": {"name": options.host, "namespace": options.namespace},
        "spec": {"hosts": [options.host], "http": routes},
    });

    let docs: Result<Vec<String>> = [
        plugin,
        strip,
        destination_rule,
        virtual_service,
        stats_config_map(options)?,
    ]
    .iter()
    .map(|doc| Ok(serde_json::to_string_pretty(doc)? + "\n"))
    .collect();
    Ok(docs?.join("---\n"))
}

/// What the user should know about the module's delivery ([`module_pull::warnings`]), each a
/// line for stderr.
pub fn warnings(options: &IstioOptions) -> Vec<String> {
    module_pull::warnings(
        &options.url,
        options.sha256.as_deref(),
        module_pull::rendered_policy(options.pull_policy),
    )
}

/// The ConfigMap key Istio's injector mounts as the sidecar's bootstrap override
/// (`ISTIO_BOOTSTRAP_OVERRIDE=/etc/istio/custom-bootstrap/custom_bootstrap.json`).
pub const BOOTSTRAP_OVERRIDE_KEY: &str = "custom_bootstrap.json";

/// The name of the ConfigMap with the bootstrap override: `<WasmPlugin name>-stats`.
pub fn stats_config_map_name(options: &IstioOptions) -> String {
    format!("{}-stats", options.name)
}

/// The bootstrap fragment the sidecars merge into their own: the filter's `stats_tags` (the
/// same as `envoy/front.yaml`'s) and its latency buckets.
pub fn bootstrap_override() -> Value {
    let tags: Vec<Value> = canary_filter::metrics::stats_tags()
        .into_iter()
        .map(|(tag_name, regex)| json!({"tag_name": tag_name, "regex": regex}))
        .collect();
    json!({
        "stats_config": {
            "stats_tags": tags,
            "histogram_bucket_settings": [{
                "match": {"prefix": format!("{}{}", canary_filter::metrics::ENVOY_PREFIX, canary_filter::metrics::DURATION)},
                "buckets": crate::metrics::bounds::LATENCY_BOUNDS_MS,
            }, {
                "match": {"prefix": format!("{}{}", canary_filter::metrics::ENVOY_PREFIX, canary_filter::metrics::FEATURE_DURATION)},
                "buckets": crate::metrics::bounds::LATENCY_BOUNDS_MS,
            }],
        },
    })
}

/// The ConfigMap that `sidecar.istio.io/bootstrapOverride` names.
fn stats_config_map(options: &IstioOptions) -> Result<Value> {
    Ok(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": stats_config_map_name(options), "namespace": options.namespace},
        "data": {BOOTSTRAP_OVERRIDE_KEY: serde_json::to_string(&bootstrap_override())?},
    }))
}

/// The pod annotations the selected workloads' sidecars need to label the filter's stats: the
/// bootstrap override naming the ConfigMap. (No stats inclusion: Istio's sidecars always
/// include stats whose names start with `wasm`, the filter's `wasmcustom.canary_…` among them;
/// `requiredEnvoyStatsMatcherInclusionPrefixes` in istio/istio's `pkg/bootstrap/config.go`.)
pub fn pod_annotations(options: &IstioOptions) -> serde_json::Map<String, Value> {
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "sidecar.istio.io/bootstrapOverride".to_string(),
        Value::String(stats_config_map_name(options)),
    );
    annotations
}

/// What to tell the user about the pod annotations (printed to stderr: stdout stays the
/// resources, for `kubectl apply -f -`).
pub fn pod_annotations_note(options: &IstioOptions) -> Result<String> {
    let selector: Vec<String> = options
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": pod_annotations(options)}}}});
    Ok(format!(
        "Istio's sidecars keep the filter's stats (their names start with `wasm`, which Istio \
         always includes), but label them canary_service, canary_version, canary_rule and \
         canary_code_class (for Prometheus and `canaryctl rollout --prometheus`) only with the \
         stats tags of the ConfigMap {name} above, which a pod annotation merges into its \
         sidecar's bootstrap. Add it to the pod template of each workload selected by \
         {selector} (this restarts its pods), for example:\n  kubectl -n {namespace} patch \
         deployment DEPLOYMENT --type merge -p '{patch}'\n",
        selector = selector.join(","),
        name = stats_config_map_name(options),
        namespace = options.namespace,
        patch = serde_json::to_string(&patch)?,
    ))
}

/// A VirtualService match on the version header, for the plugin's own callers only: the
/// selected workloads (`sourceLabels`) of the plugin's namespace (`sourceNamespace`). istiod
/// leaves a route whose source does not match out of every other proxy's configuration, so a
/// caller without the plugin (another workload, another namespace, a gateway) has no route on
/// the header at all: whatever it sends, its call takes the last route, the default version.
/// The plugin's callers have the EnvoyFilter, which removes a header their application sent.
fn header_match(version_header: &str, version: &str, options: &IstioOptions) -> Value {
    let labels: serde_json::Map<String, Value> = options
        .selector
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "headers": {version_header: {"exact": version}},
        "sourceLabels": labels,
        "sourceNamespace": options.namespace,
    })
}

/// Envoy's name of the HTTP connection manager, which the EnvoyFilter patches.
const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";

/// The connection manager fields that remove the plan's route and version headers before
/// Envoy picks a route (`early_header_mutation_extensions`, as in `envoy/front.yaml`): merged
/// into the sidecar's outbound connection managers by the EnvoyFilter, so the routing headers a
/// client sent are gone even when the wasm filter is skipped or has failed.
pub fn strip_patch(plan: &RoutingPlan) -> Value {
    let removed: Vec<Value> = plan
        .route_header()
        .into_iter()
        .chain(plan.version_header())
        .map(|name| json!({"remove": name}))
        .collect();
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
