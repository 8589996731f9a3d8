//! Istio's sidecar topology in real Envoys: client sidecars configured from the resources
//! `canaryctl istio` renders, the way istiod configures a sidecar from them (no Kubernetes or
//! istiod runs here), and the services' pods as the listeners of one upstream Envoy.
//!
//! What each sidecar gets, as istiod builds it (read in istio/istio's `pilot/pkg/networking/core`):
//! - one outbound HTTP listener (port 80 of every service) whose connection manager has a
//!   virtual host per service, its domains every name a client in the service's namespace
//!   writes (`NAME`, `NAME.NAMESPACE`, `NAME.NAMESPACE.svc`,
//!   `NAME.NAMESPACE.svc.cluster.local`, each also with `:80`);
//! - a service's routes from its VirtualService's `http` routes in order, one Envoy route per
//!   `match` entry (header matches as Envoy header matchers); a `match` entry whose
//!   `sourceLabels` or `sourceNamespace` do not fit this workload is left out, and so is a
//!   route none of whose entries fit; a service without a VirtualService gets one route to all
//!   its pods;
//! - clusters `outbound|80|SUBSET|FQDN` for each DestinationRule subset (the pods whose labels
//!   hold the subset's) and `outbound|80||FQDN` for all of a service's pods;
//! - each WasmPlugin that selects the workload (same namespace, `matchLabels` a subset of the
//!   pod's labels, `match` mode CLIENT or none) as a Wasm HTTP filter before the router, in
//!   order of priority (higher first), then name; its `pluginConfig` as istiod writes it
//!   ([`crate::jsonpb::istiod_json`]), `failStrategy: FAIL_OPEN` as `failure_policy`;
//! - each EnvoyFilter that selects the workload (its namespace, its `workloadSelector`, or the
//!   root namespace without one) and patches `NETWORK_FILTER` in `SIDECAR_OUTBOUND`: its MERGE
//!   patch merged into the connection manager as protobuf merges (messages field by field,
//!   lists appended).

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::envoy::EnvoyProcess;
use crate::jsonpb::istiod_json;
use crate::mesh::wasm_path;
use crate::{Reply, Result};

/// The mesh's root namespace (istiod's default): an EnvoyFilter there without a
/// `workloadSelector` applies to every proxy.
pub const ROOT_NAMESPACE: &str = "istio-system";
/// The service port every service of the topology listens on.
pub const SERVICE_PORT: u16 = 80;
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// A service of the mesh and its pods: one pod per value of the `version` label.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name (`checkout`).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The `version` label of each of its pods.
    pub versions: Vec<String>,
}

impl Service {
    /// `name` in `namespace`, with one pod per version label value.
    pub fn new(name: &str, namespace: &str, versions: &[&str]) -> Service {
        Service {
            name: name.to_string(),
            namespace: namespace.to_string(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// `NAME.NAMESPACE.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.{CLUSTER_DOMAIN}", self.name, self.namespace)
    }

    /// Every name a client in the service's namespace may call it by, without port.
    pub fn host_forms(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            format!("{}.{}", self.name, self.namespace),
            format!("{}.{}.svc", self.name, self.namespace),
            self.fqdn(),
        ]
    }

    /// The upstream (pod) name of its pod with version label `version`: `NAME-VERSION`.
    pub fn pod(&self, version: &str) -> String {
        format!("{}-{version}", self.name)
    }
}

/// A client workload with a sidecar.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its name (also its sidecar's).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its pod labels.
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// A workload `name` in `namespace` with the pod label `app=<app>`.
    pub fn new(name: &str, namespace: &str, app: &str) -> Workload {
        Workload {
            name: name.to_string(),
            namespace: namespace.to_string(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        }
    }

    fn has_labels(&self, wanted: &Value) -> bool {
        wanted.as_object().is_none_or(|wanted| {
            wanted
                .iter()
                .all(|(key, value)| self.labels.get(key).map(String::as_str) == value.as_str())
        })
    }
}

/// The documents `canaryctl istio` printed (JSON documents separated by `---`), by kind.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    docs: Vec<Value>,
}

impl Resources {
    /// Adds every document of one `canaryctl istio` output.
    pub fn add(&mut self, rendered: &str) -> Result<()> {
        for doc in rendered.split("---\n").filter(|doc| !doc.trim().is_empty()) {
            self.docs.push(serde_json::from_str(doc)?);
        }
        Ok(())
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.docs.iter().filter(move |doc| doc["kind"] == kind)
    }
}

/// The upstream Envoy (every pod of every service) and one sidecar Envoy per client workload.
pub struct Sidecars {
    // Field order is drop order: the sidecars first, the directory last.
    sidecars: Vec<(String, EnvoyProcess, SocketAddr)>,
    _upstreams: EnvoyProcess,
    _dir: TempDir,
}

impl Sidecars {
    /// Starts the pods of `services` and a sidecar for each of `workloads`, configured from
    /// `resources`. Each pod answers with its name in `x-upstream` and, for each header of
    /// `echoed`, the value it received in `x-seen-<header>`.
    pub fn start(
        resources: &Resources,
        services: &[Service],
        workloads: &[Workload],
        echoed: &[String],
    ) -> Result<Sidecars> {
        let dir = tempfile::Builder::new()
            .prefix("canary-sidecars-")
            .tempdir()?;
        let path = dir.path();
        let upstreams_file = path.join("pods.json");
        fs::write(
            &upstreams_file,
            serde_json::to_string_pretty(&pods_bootstrap(services, echoed))?,
        )?;
        let upstreams = EnvoyProcess::start("pods", &upstreams_file, path, path)?;
        let mut ports = BTreeMap::new();
        for service in services {
            for version in &service.versions {
                let pod = service.pod(version);
                ports.insert(pod.clone(), upstreams.listener_port(&pod)?);
            }
        }
        let mut sidecars = Vec::new();
        for workload in workloads {
            let bootstrap = sidecar_bootstrap(resources, services, workload, &ports)?;
            let file = path.join(format!("{}.json", workload.name));
            fs::write(&file, serde_json::to_string_pretty(&bootstrap)?)?;
            let sidecar = EnvoyProcess::start(&workload.name, &file, path, path)?;
            let listen = SocketAddr::from(([127, 0, 0, 1], sidecar.listener_port("outbound")?));
            sidecars.push((workload.name.clone(), sidecar, listen));
        }
        Ok(Sidecars {
            sidecars,
            _upstreams: upstreams,
            _dir: dir,
        })
    }

    /// The sidecar of workload `name`.
    pub fn sidecar(&self, name: &str) -> Result<&EnvoyProcess> {
        self.sidecars
            .iter()
            .find(|(have, _, _)| have == name)
            .map(|(_, sidecar, _)| sidecar)
            .ok_or_else(|| format!("no sidecar for workload {name}").into())
    }

    /// Workload `from` calls `authority` (`GET /` on port 80, HTTP/1.1, `Host: authority`)
    /// through its sidecar, with `headers`.
    pub fn call(&self, from: &str, authority: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        let listen = self
            .sidecars
            .iter()
            .find(|(have, _, _)| have == from)
            .map(|(_, _, listen)| *listen)
            .ok_or_else(|| format!("no sidecar for workload {from}"))?;
        let mut request = format!("GET / HTTP/1.1\r\nHost: {authority}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        Reply::exchange(listen, request.as_bytes())
    }

    /// The filter's `canary_requests_total` in workload `name`'s sidecar, summed by
    /// `(service, version)` (the service `-` for a configuration without one).
    pub fn requests_counted(&self, name: &str) -> Result<BTreeMap<(String, String), u64>> {
        let stats: Value =
            serde_json::from_str(&self.sidecar(name)?.admin_get("/stats?format=json")?)?;
        let mut counted = BTreeMap::new();
        for stat in stats["stats"].as_array().into_iter().flatten() {
            let Some(metric) = stat["name"]
                .as_str()
                .and_then(|name| name.strip_prefix("wasmcustom.canary_requests_total."))
            else {
                continue;
            };
            let segment = |label: &str| {
                let marker = format!("{label}.");
                metric
                    .split(&format!(".{marker}"))
                    .nth(1)
                    .or_else(|| metric.strip_prefix(&marker))
                    .and_then(|rest| rest.split('.').next())
                    .unwrap_or("-")
                    .to_string()
            };
            let key = (segment("canary_service"), segment("canary_version"));
            *counted.entry(key).or_default() += stat["value"].as_u64().unwrap_or(0);
        }
        Ok(counted)
    }
}

/// The upstream Envoy: a listener per pod, answering 200 with its name.
fn pods_bootstrap(services: &[Service], echoed: &[String]) -> Value {
    let mut listeners = Vec::new();
    for service in services {
        for version in &service.versions {
            let pod = service.pod(version);
            let mut headers = vec![json!({"header": {"key": "x-upstream", "value": pod}})];
            for name in echoed {
                headers.push(json!({"header": {"key": format!("x-seen-{name}"), "value": format!("%REQ({name})%")}}));
            }
            listeners.push(json!({
                "name": pod,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": HCM,
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": pod,
                        "route_config": {"virtual_hosts": [{
                            "name": pod,
                            "domains": ["*"],
                            "routes": [{
                                "match": {"prefix": "/"},
                                "direct_response": {"status": 200, "body": {"inline_string": format!("{pod}\n")}},
                                "response_headers_to_add": headers,
                            }],
                        }]},
                        "http_filters": [router()],
                    },
                }]}],
            }));
        }
    }
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners},
    })
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
}

/// A VirtualService's or DestinationRule's `host` as istiod resolves it: a short name is in the
/// resource's namespace.
fn resolve_host(host: &str, namespace: &str) -> String {
    match host.matches('.').count() {
        0 => format!("{host}.{namespace}.{CLUSTER_DOMAIN}"),
        1 => format!("{host}.{CLUSTER_DOMAIN}"),
        _ => host.to_string(),
    }
}

/// The sidecar of `workload`, configured as istiod would from `resources`.
fn sidecar_bootstrap(
    resources: &Resources,
    services: &[Service],
    workload: &Workload,
    ports: &BTreeMap<String, u16>,
) -> Result<Value> {
    let mut virtual_hosts = Vec::new();
    for service in services {
        let fqdn = service.fqdn();
        let mut domains = Vec::new();
        for form in service.host_forms() {
            // Short forms only resolve in the service's own namespace.
            if service.namespace == workload.namespace || form.contains('.') {
                domains.push(Value::from(format!("{form}:{SERVICE_PORT}")));
                domains.push(Value::from(form));
            }
        }
        let virtual_service = resources.of_kind("VirtualService").find(|vs| {
            let namespace = vs["metadata"]["namespace"].as_str().unwrap_or("default");
            vs["spec"]["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|host| resolve_host(host, namespace) == fqdn)
        });
        let routes = match virtual_service {
            Some(vs) => virtual_service_routes(vs, workload)?,
            None => vec![json!({
                "match": {"prefix": "/"},
                "route": {"cluster": format!("outbound|{SERVICE_PORT}||{fqdn}")},
            })],
        };
        virtual_hosts.push(json!({
            "name": format!("{fqdn}:{SERVICE_PORT}"),
            "domains": domains,
            "routes": routes,
        }));
    }

    let mut plugins: Vec<&Value> = resources
        .of_kind("WasmPlugin")
        .filter(|plugin| {
            plugin["metadata"]["namespace"] == workload.namespace.as_str()
                && workload.has_labels(&plugin["spec"]["selector"]["matchLabels"])
                && plugin["spec"]["match"].as_array().is_none_or(|matches| {
                    matches
                        .iter()
                        .any(|m| m["mode"].is_null() || m["mode"] == "CLIENT")
                })
        })
        .collect();
    plugins.sort_by_key(|plugin| {
        (
            std::cmp::Reverse(plugin["spec"]["priority"].as_i64().unwrap_or(0)),
            plugin["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    });
    let wasm = wasm_path()?;
    let mut http_filters = Vec::new();
    for plugin in plugins {
        http_filters.push(wasm_filter(plugin, &wasm)?);
    }
    http_filters.push(router());

    let mut manager = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": format!("outbound_0.0.0.0_{SERVICE_PORT}"),
        "route_config": {"name": SERVICE_PORT.to_string(), "virtual_hosts": virtual_hosts},
        "http_filters": http_filters,
    });
    for envoy_filter in resources.of_kind("EnvoyFilter") {
        let namespace = envoy_filter["metadata"]["namespace"].as_str().unwrap_or("");
        let selector = &envoy_filter["spec"]["workloadSelector"]["labels"];
        let applies = if namespace == ROOT_NAMESPACE && selector.is_null() {
            true
        } else {
            namespace == workload.namespace && workload.has_labels(selector)
        };
        if !applies {
            continue;
        }
        for patch in envoy_filter["spec"]["configPatches"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let context = &patch["match"]["context"];
            let filter = &patch["match"]["listener"]["filterChain"]["filter"]["name"];
            if patch["applyTo"] != "NETWORK_FILTER"
                || !(context == "SIDECAR_OUTBOUND" || context == "ANY" || context.is_null())
                || filter != HCM
            {
                continue;
            }
            if patch["patch"]["operation"] != "MERGE" {
                return Err(format!(
                    "patch operation {} is not imitated",
                    patch["patch"]["operation"]
                )
                .into());
            }
            let mut fields = patch["patch"]["value"]["typed_config"].clone();
            if let Some(fields) = fields.as_object_mut() {
                fields.remove("@type");
            }
            proto_merge(&mut manager, &fields);
        }
    }

    let mut clusters = Vec::new();
    for service in services {
        let fqdn = service.fqdn();
        let endpoints = |wanted: &Value| -> Vec<Value> {
            service
                .versions
                .iter()
                .filter(|version| {
                    wanted.as_object().is_none_or(|labels| {
                        labels
                            .iter()
                            .all(|(key, value)| key == "version" && value == version.as_str())
                    })
                })
                .filter_map(|version| ports.get(&service.pod(version)))
                .map(|port| json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}))
                .collect()
        };
        clusters.push(cluster(
            &format!("outbound|{SERVICE_PORT}||{fqdn}"),
            endpoints(&Value::Null),
        ));
        for rule in resources.of_kind("DestinationRule") {
            let namespace = rule["metadata"]["namespace"].as_str().unwrap_or("default");
            if resolve_host(rule["spec"]["host"].as_str().unwrap_or(""), namespace) != fqdn {
                continue;
            }
            for subset in rule["spec"]["subsets"].as_array().into_iter().flatten() {
                let name = subset["name"].as_str().unwrap_or("");
                clusters.push(cluster(
                    &format!("outbound|{SERVICE_PORT}|{name}|{fqdn}"),
                    endpoints(&subset["labels"]),
                ));
            }
        }
    }

    Ok(json!({
        "node": {
            "id": format!("sidecar~127.0.0.1~{0}.{1}~{1}.{CLUSTER_DOMAIN}", workload.name, workload.namespace),
            "cluster": format!("{}.{}", workload.name, workload.namespace),
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "stats_flush_interval": "1s",
        "static_resources": {
            "listeners": [{
                "name": "outbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": HCM, "typed_config": manager}]}],
            }],
            "clusters": clusters,
        },
    }))
}

fn cluster(name: &str, endpoints: Vec<Value>) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    })
}

/// A VirtualService's `http` routes as the Envoy routes of `workload`'s sidecar.
fn virtual_service_routes(vs: &Value, workload: &Workload) -> Result<Vec<Value>> {
    let namespace = vs["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut routes = Vec::new();
    for http in vs["spec"]["http"].as_array().into_iter().flatten() {
        let destinations = http["route"].as_array().map_or(0, Vec::len);
        if destinations != 1 {
            return Err(
                format!("{destinations} destinations in one route are not imitated").into(),
            );
        }
        let destination = &http["route"][0]["destination"];
        let host = resolve_host(destination["host"].as_str().unwrap_or(""), namespace);
        let subset = destination["subset"].as_str().unwrap_or("");
        let action = json!({"cluster": format!("outbound|{SERVICE_PORT}|{subset}|{host}")});
        let Some(matches) = http["match"].as_array() else {
            routes.push(json!({"match": {"prefix": "/"}, "route": action}));
            continue;
        };
        for entry in matches {
            // istiod leaves a match out of the configuration of every proxy it does not
            // select by source.
            let from_namespace = entry["sourceNamespace"]
                .as_str()
                .is_none_or(|wanted| wanted == workload.namespace);
            if !from_namespace || !workload.has_labels(&entry["sourceLabels"]) {
                continue;
            }
            let mut headers = Vec::new();
            for (name, test) in entry["headers"].as_object().into_iter().flatten() {
                let string_match = match (test["exact"].as_str(), test["prefix"].as_str()) {
                    (Some(exact), None) => json!({"exact": exact}),
                    (None, Some(prefix)) => json!({"prefix": prefix}),
                    _ => return Err(format!("header match {test} is not imitated").into()),
                };
                headers.push(json!({"name": name, "string_match": string_match}));
            }
            routes.push(json!({
                "match": {"prefix": "/", "headers": headers},
                "route": action,
            }));
        }
    }
    Ok(routes)
}

/// A WasmPlugin as the Wasm HTTP filter istiod gives a sidecar (the module fetched to a local
/// file by the agent).
fn wasm_filter(plugin: &Value, wasm: &Path) -> Result<Value> {
    let name = format!(
        "{}.{}",
        plugin["metadata"]["namespace"].as_str().unwrap_or(""),
        plugin["metadata"]["name"].as_str().unwrap_or("")
    );
    let spec = &plugin["spec"];
    let mut config = json!({
        "name": name,
        "root_id": name,
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm.display().to_string()}},
        },
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": istiod_json(&spec["pluginConfig"]),
        },
    });
    if spec["failStrategy"] == "FAIL_OPEN" {
        config["failure_policy"] = Value::from("FAIL_OPEN");
    }
    Ok(json!({
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config,
        },
    }))
}

/// `patch` merged into `target` as protobuf's `MergeFrom` does, which istiod's MERGE uses:
/// messages field by field, repeated fields appended, scalars replaced.
fn proto_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(have), Value::Object(more)) => {
            for (key, value) in more {
                match have.get_mut(key) {
                    Some(existing) => proto_merge(existing, value),
                    None => {
                        have.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(have), Value::Array(more)) => have.extend(more.iter().cloned()),
        (target, patch) => *target = patch.clone(),
    }
}

/// Counts of replies by `x-upstream` (the pod that answered; `status N` for a reply without).
pub fn tally(replies: &[Reply]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for reply in replies {
        let key = reply
            .upstream()
            .map_or_else(|| format!("status {}", reply.status), str::to_string);
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// A map from `(service, version)` to a count, for the metrics' expected values.
pub fn counted(entries: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    entries
        .iter()
        .map(|(service, version, count)| ((service.to_string(), version.to_string()), *count))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_as_protobuf_does() {
        let mut manager = json!({"a": 1, "list": [1], "inner": {"x": 1, "y": [1]}});
        proto_merge(
            &mut manager,
            &json!({"a": 2, "list": [2], "inner": {"y": [2], "z": 3}, "new": [4]}),
        );
        assert_eq!(
            manager,
            json!({"a": 2, "list": [1, 2], "inner": {"x": 1, "y": [1, 2], "z": 3}, "new": [4]})
        );
    }

    #[test]
    fn hosts_resolve_in_the_resource_namespace() {
        assert_eq!(
            resolve_host("checkout", "shop"),
            "checkout.shop.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("checkout.shop", "x"),
            "checkout.shop.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("checkout.shop.svc.cluster.local", "x"),
            "checkout.shop.svc.cluster.local"
        );
    }

    #[test]
    fn labels_select_as_istio_selects() {
        let frontend = Workload::new("frontend", "default", "frontend");
        assert!(frontend.has_labels(&json!({"app": "frontend"})));
        assert!(frontend.has_labels(&Value::Null));
        assert!(!frontend.has_labels(&json!({"app": "batch"})));
        assert!(!frontend.has_labels(&json!({"app": "frontend", "tier": "web"})));
    }
}
