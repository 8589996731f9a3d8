//! A stand-in for the Kubernetes API server, serving the one resource canaryctl's Istio target
//! drives: `wasmplugins.extensions.istio.io` (`extensions.istio.io/v1alpha1`). The real
//! `kubectl` talks to it through a generated kubeconfig ([`KubeApi::kubeconfig`]).
//!
//! It serves what kubectl 1.32 asks for (found with `kubectl -v=8` against it): discovery
//! (`/api`, `/apis`, the group version's resource list), GET of a WasmPlugin, and PUT (what
//! `kubectl replace` sends) with the API server's optimistic concurrency: a PUT carrying a
//! `metadata.resourceVersion` other than the stored one is refused with 409 Conflict and a
//! `Status`, an accepted one bumps the version. A PUT the real API server with Istio installed
//! would refuse is refused as it would be (`istio_schema`: the object's metadata, the CRD's
//! structural schema and `x-kubernetes-validations` rules, 422; istiod's validating webhook,
//! 400). 404 and 403 answers are `Status` objects as the API server writes them. Tests can make it refuse verbs (403), change the resource behind a
//! reader's back (after its next GET), and hold GETs until several readers have read (so that
//! two writers race for certain).
//!
//! It also plays istiod's part for end-to-end tests: after each accepted PUT it writes the new
//! `spec.pluginConfig` into an ECDS file a real Envoy watches ([`KubeApi::istiod_writes_to`]),
//! as the filter's configuration, by atomic rename.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::istio_schema::check_wasmplugin;
use crate::jsonpb::istiod_json;
use crate::mesh::with_configuration;
use crate::Result;

/// The API group and version of Istio's WasmPlugin.
pub const GROUP: &str = "extensions.istio.io";
/// The version of [`GROUP`] Istio serves the WasmPlugin in.
pub const VERSION: &str = "v1alpha1";
/// The resource (plural) name.
pub const RESOURCE: &str = "wasmplugins";

/// A verb the stand-in can be told to forbid (403), as RBAC names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// PUT of one object.
    Update,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Update => "update",
        }
    }
}

/// A change made behind a reader's back: applied to the object's `spec.pluginConfig` right
/// after the next GET of it has been answered, with a new resource version.
type Meddle = Box<dyn FnOnce(&mut Value) + Send>;

#[derive(Default)]
struct State {
    /// WasmPlugins by (namespace, name).
    objects: BTreeMap<(String, String), Value>,
    /// The last resource version handed out (one counter for all objects, as etcd's).
    revision: u64,
    forbidden: Vec<Verb>,
    /// The change to make after a GET, and how many more GETs come before that one.
    meddle: Option<(usize, Meddle)>,
    /// GETs of a WasmPlugin wait until this many have arrived (0: none wait).
    hold_gets_until: usize,
    gets_waiting: usize,
    /// Every request, as "METHOD path".
    log: Vec<String>,
    /// PUTs accepted.
    updates: u64,
    /// PUTs refused with 409.
    conflicts: u64,
    /// PUTs refused by Istio's schema or istiod's webhook (422, 400).
    refusals: u64,
    /// The ECDS file istiod's part writes into.
    ecds_file: Option<PathBuf>,
    /// Why the last write of the ECDS file failed, if it did.
    ecds_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    released: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The stand-in, serving on 127.0.0.1 at a port of its own until dropped.
pub struct KubeApi {
    server: Arc<Server>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    port: u16,
    dir: tempfile::TempDir,
}

impl KubeApi {
    /// Starts the stand-in on a free port, with no objects, and writes a kubeconfig for it.
    pub fn start() -> Result<KubeApi> {
        let server = Arc::new(Server::http("127.0.0.1:0")?);
        let port = server
            .server_addr()
            .to_ip()
            .map(|addr| addr.port())
            .ok_or("the stand-in API server has no IP address")?;
        let dir = tempfile::Builder::new().prefix("canary-kube-").tempdir()?;
        fs::write(dir.path().join("kubeconfig"), kubeconfig_text(port))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            released: Condvar::new(),
        });
        let thread = {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                // One thread per request: a GET held for other readers must not stop them.
                let mut handlers = Vec::new();
                for request in server.incoming_requests() {
                    let shared = Arc::clone(&shared);
                    handlers.push(std::thread::spawn(move || serve(&shared, port, request)));
                }
                for handler in handlers {
                    let _ = handler.join();
                }
            })
        };
        Ok(KubeApi {
            server,
            shared,
            thread: Some(thread),
            port,
            dir,
        })
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig whose current context is this server (namespace `default`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A directory for kubectl's discovery cache (`KUBECACHEDIR`), so tests leave nothing in
    /// the home directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Stores a WasmPlugin `namespace/name` whose `spec.pluginConfig` is `plugin_config`, as
    /// `kubectl apply` of a rendered one would (a fresh resource version).
    pub fn create_wasmplugin(&self, namespace: &str, name: &str, plugin_config: Value) {
        let mut state = self.shared.lock();
        state.revision += 1;
        let object = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "WasmPlugin",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": state.revision.to_string(),
                "generation": 1,
                "uid": format!("00000000-0000-4000-8000-{:012}", state.revision),
                "creationTimestamp": "2026-11-26T00:00:00Z",
            },
            "spec": {
                "selector": {"matchLabels": {"app": "frontend"}},
                "url": "oci://registry.example.com/canary-filter:0.1.0",
                "phase": "STATS",
                "pluginConfig": plugin_config,
            },
        });
        state
            .objects
            .insert((namespace.to_string(), name.to_string()), object);
    }

    /// Sets the annotation `key` of the stored WasmPlugin `namespace/name` to `value` with a
    /// new resource version, as another writer would (no check: the object was stored before).
    pub fn annotate(&self, namespace: &str, name: &str, key: &str, value: &str) {
        let mut state = self.shared.lock();
        state.revision += 1;
        let revision = state.revision;
        if let Some(object) = state
            .objects
            .get_mut(&(namespace.to_string(), name.to_string()))
        {
            object["metadata"]["annotations"][key] = json!(value);
            object["metadata"]["resourceVersion"] = json!(revision.to_string());
        }
    }

    /// The stored WasmPlugin, as GET returns it.
    pub fn wasmplugin(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Its `spec.pluginConfig`.
    pub fn plugin_config(&self, namespace: &str, name: &str) -> Option<Value> {
        self.wasmplugin(namespace, name)
            .map(|object| object["spec"]["pluginConfig"].clone())
    }

    /// Answers 403 Forbidden to these verbs from now on.
    pub fn forbid(&self, verbs: &[Verb]) {
        self.shared.lock().forbidden = verbs.to_vec();
    }

    /// Right after the next GET of a WasmPlugin is answered, `change` is made to that
    /// object's `spec.pluginConfig` with a new resource version: someone else's change between
    /// a reader's read and its write.
    pub fn change_after_next_get(&self, change: impl FnOnce(&mut Value) + Send + 'static) {
        self.change_after_get(1, change);
    }

    /// As [`KubeApi::change_after_next_get`], after the `nth` GET of a WasmPlugin from now
    /// (1: the next one).
    pub fn change_after_get(&self, nth: usize, change: impl FnOnce(&mut Value) + Send + 'static) {
        self.shared.lock().meddle = Some((nth.max(1), Box::new(change)));
    }

    /// GETs of a WasmPlugin are held until `readers` of them have arrived, then all answered
    /// (once): that many writers then hold the same resource version.
    pub fn hold_gets_until(&self, readers: usize) {
        self.shared.lock().hold_gets_until = readers;
    }

    /// istiod's part: after each accepted update, the new `spec.pluginConfig` goes into the
    /// ECDS file `ecds_file` (as the filter's JSON configuration, the rest of the file kept),
    /// which a real Envoy watches.
    pub fn istiod_writes_to(&self, ecds_file: &Path) {
        self.shared.lock().ecds_file = Some(ecds_file.to_path_buf());
    }

    /// Why istiod's part could not write the ECDS file, if it could not.
    pub fn istiod_error(&self) -> Option<String> {
        self.shared.lock().ecds_error.clone()
    }

    /// Updates accepted so far.
    pub fn updates(&self) -> u64 {
        self.shared.lock().updates
    }

    /// Updates refused with 409 Conflict so far.
    pub fn conflicts(&self) -> u64 {
        self.shared.lock().conflicts
    }

    /// Updates refused by Istio's CRD schema (422) or istiod's webhook (400) so far.
    pub fn refusals(&self) -> u64 {
        self.shared.lock().refusals
    }

    /// Every request so far, as "METHOD path".
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().log.clone()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        // Release held readers, then stop accepting and wait for the serving thread.
        {
            let mut state = self.shared.lock();
            state.hold_gets_until = 0;
        }
        self.shared.released.notify_all();
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A kubeconfig for the stand-in at `port`: plain HTTP, no credentials.
fn kubeconfig_text(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: stand-in\n  cluster:\n    server: http://127.0.0.1:{port}\n\
         users:\n- name: stand-in\n  user: {{}}\n\
         contexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: stand-in\n    namespace: default\n\
         current-context: stand-in\n"
    )
}

fn respond(request: Request, code: u16, body: &Value) {
    let mut response = Response::from_string(body.to_string()).with_status_code(code);
    if let Ok(header) = Header::from_bytes("Content-Type", "application/json") {
        response = response.with_header(header);
    }
    let _ = request.respond(response);
}

/// A `Status` object as the API server writes it for an error.
fn status(code: u16, reason: &str, message: &str, name: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "group": GROUP, "kind": RESOURCE},
        "code": code,
    })
}

fn discovery(path: &str, port: u16) -> Option<Value> {
    Some(match path {
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}
            ],
        }),
        "/api/v1" => json!({
            "kind": "APIResourceList", "groupVersion": "v1", "resources": [],
        }),
        "/apis" => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [{
                "name": GROUP,
                "versions": [{"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION}],
                "preferredVersion": {"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION},
            }],
        }),
        p if p == format!("/apis/{GROUP}/{VERSION}") => json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": format!("{GROUP}/{VERSION}"),
            "resources": [{
                "name": RESOURCE,
                "singularName": "wasmplugin",
                "namespaced": true,
                "kind": "WasmPlugin",
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                "categories": ["istio-io", "extensions-istio-io"],
            }],
        }),
        // kubectl replace validates on the server (fieldValidation=Strict) when the server's
        // OpenAPI v3 document says its PATCH of the kind takes that parameter; without these
        // it falls back to client-side validation, which needs the whole OpenAPI v2 schema.
        "/openapi/v3" => json!({
            "paths": {
                format!("apis/{GROUP}/{VERSION}"): {
                    "serverRelativeURL": format!("/openapi/v3/apis/{GROUP}/{VERSION}?hash=0")
                }
            }
        }),
        p if p == format!("/openapi/v3/apis/{GROUP}/{VERSION}") => {
            let operation = |verb: &str| {
                json!({
                    "operationId": format!("{verb}ExtensionsIstioIoV1alpha1NamespacedWasmPlugin"),
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": verb,
                    "x-kubernetes-group-version-kind": {
                        "group": GROUP, "version": VERSION, "kind": "WasmPlugin"
                    },
                })
            };
            json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes stand-in", "version": "v1.32.0"},
                "paths": {
                    format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{RESOURCE}/{{name}}"): {
                        "get": operation("get"),
                        "put": operation("put"),
                        "patch": operation("patch"),
                    }
                },
                "components": {"schemas": {}},
            })
        }
        "/version" => json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0-canary-stand-in",
            "platform": "linux/amd64",
        }),
        _ => return None,
    })
}

/// `(namespace, name)` of a path to one WasmPlugin.
fn object_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(&format!("/apis/{GROUP}/{VERSION}/namespaces/"))?;
    let (namespace, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix(&format!("{RESOURCE}/"))?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((namespace.to_string(), name.to_string()))
}

fn serve(shared: &Shared, port: u16, mut request: Request) {
    let url = request.url().to_string();
    let path = url.split('?').next().unwrap_or_default().to_string();
    let method = request.method().clone();
    shared.lock().log.push(format!("{method} {url}"));
    if method == Method::Get {
        if let Some(body) = discovery(&path, port) {
            return respond(request, 200, &body);
        }
    }
    let Some((namespace, name)) = object_path(&path) else {
        let body = status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            "",
        );
        return respond(request, 404, &body);
    };
    let key = (namespace.clone(), name.clone());
    let denied = |state: &State, verb: Verb| {
        state.forbidden.contains(&verb).then(|| {
            status(
                403,
                "Forbidden",
                &format!(
                    "{RESOURCE}.{GROUP} \"{name}\" is forbidden: User \"system:anonymous\" cannot \
                     {} resource \"{RESOURCE}\" in API group \"{GROUP}\" in the namespace \
                     \"{namespace}\"",
                    verb.name()
                ),
                &name,
            )
        })
    };
    let not_found = status(
        404,
        "NotFound",
        &format!("{RESOURCE}.{GROUP} \"{name}\" not found"),
        &name,
    );
    match method {
        Method::Get => {
            let mut state = shared.lock();
            if let Some(body) = denied(&state, Verb::Get) {
                drop(state);
                return respond(request, 403, &body);
            }
            if state.hold_gets_until > 0 {
                state.gets_waiting += 1;
                if state.gets_waiting >= state.hold_gets_until {
                    state.hold_gets_until = 0;
                    state.gets_waiting = 0;
                    shared.released.notify_all();
                }
                let (held, _) = shared
                    .released
                    .wait_timeout_while(state, Duration::from_secs(30), |state| {
                        state.hold_gets_until > 0
                    })
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state = held;
            }
            let Some(object) = state.objects.get(&key).cloned() else {
                drop(state);
                return respond(request, 404, &not_found);
            };
            // The reader gets the object as it was; the change is made before it is answered,
            // so that its write comes after the change for certain.
            let due = match &mut state.meddle {
                Some((1, _)) => state.meddle.take().map(|(_, change)| change),
                Some((left, _)) => {
                    *left -= 1;
                    None
                }
                None => None,
            };
            if let Some(change) = due {
                state.revision += 1;
                let revision = state.revision;
                if let Some(stored) = state.objects.get_mut(&key) {
                    change(&mut stored["spec"]["pluginConfig"]);
                    stored["metadata"]["resourceVersion"] = json!(revision.to_string());
                }
            }
            drop(state);
            respond(request, 200, &object);
        }
        Method::Put => {
            let mut body = String::new();
            if request.as_reader().read_to_string(&mut body).is_err() {
                let refusal = status(400, "BadRequest", "unreadable body", &name);
                return respond(request, 400, &refusal);
            }
            let (code, answer) = update(shared, &key, &body);
            respond(request, code, &answer);
        }
        _ => {
            let refusal = status(
                405,
                "MethodNotAllowed",
                "the stand-in serves GET and PUT only",
                &name,
            );
            respond(request, 405, &refusal);
        }
    }
}

/// A PUT of the object at `key` with `body`: the API server's checks, then the write (and
/// istiod's part).
fn update(shared: &Shared, key: &(String, String), body: &str) -> (u16, Value) {
    let (namespace, name) = key;
    let mut state = shared.lock();
    let forbidden = state.forbidden.contains(&Verb::Update);
    if forbidden {
        return (
            403,
            status(
                403,
                "Forbidden",
                &format!(
                    "{RESOURCE}.{GROUP} \"{name}\" is forbidden: User \"system:anonymous\" cannot \
                     update resource \"{RESOURCE}\" in API group \"{GROUP}\" in the namespace \
                     \"{namespace}\""
                ),
                name,
            ),
        );
    }
    let mut object: Value = match serde_json::from_str(body) {
        Ok(object) => object,
        Err(err) => return (400, status(400, "BadRequest", &err.to_string(), name)),
    };
    if object["metadata"]["name"] != json!(name) || object["kind"] != json!("WasmPlugin") {
        return (
            400,
            status(
                400,
                "BadRequest",
                "the body is not this WasmPlugin (name or kind differ)",
                name,
            ),
        );
    }
    let Some(stored) = state.objects.get(key) else {
        let message = format!("{RESOURCE}.{GROUP} \"{name}\" not found");
        return (404, status(404, "NotFound", &message, name));
    };
    let stored_version = stored["metadata"]["resourceVersion"].clone();
    let generation = stored["metadata"]["generation"].as_u64().unwrap_or(1);
    let given = &object["metadata"]["resourceVersion"];
    // An update without a resource version is unconditional, as the API server allows for
    // custom resources; one with a stale version is refused.
    if !given.is_null() && *given != stored_version {
        state.conflicts += 1;
        let message = format!(
            "Operation cannot be fulfilled on {RESOURCE}.{GROUP} \"{name}\": the object has been \
             modified; please apply your changes to the latest version and try again"
        );
        return (409, status(409, "Conflict", &message, name));
    }
    // What a real API server with Istio's CRD and webhook checks before storing it.
    match check_wasmplugin(&object) {
        Ok(None) => {}
        Ok(Some((code, refusal))) => {
            state.refusals += 1;
            return (code, refusal);
        }
        Err(err) => {
            let message = format!("the stand-in could not check the object: {err}");
            return (500, status(500, "InternalError", &message, name));
        }
    }
    state.revision += 1;
    object["metadata"]["resourceVersion"] = json!(state.revision.to_string());
    object["metadata"]["generation"] = json!(generation + 1);
    state.objects.insert(key.clone(), object.clone());
    state.updates += 1;
    if let Some(ecds_file) = state.ecds_file.clone() {
        state.ecds_error = istiod_push(&ecds_file, &object["spec"]["pluginConfig"])
            .err()
            .map(|err| err.to_string());
    }
    (200, object)
}

/// Writes `plugin_config` as the filter's configuration into the ECDS file, by rename, in
/// the JSON istiod would hand Envoy ([`istiod_json`]: its legacy jsonpb).
fn istiod_push(ecds_file: &Path, plugin_config: &Value) -> Result<()> {
    let current = fs::read_to_string(ecds_file)?;
    let yaml = with_configuration(&current, &istiod_json(plugin_config))?;
    let text = if ecds_file.extension().is_some_and(|ext| ext == "json") {
        let doc: Value = serde_yaml_ng::from_str(&yaml)?;
        serde_json::to_string_pretty(&doc)? + "\n"
    } else {
        yaml
    };
    let dir = ecds_file.parent().ok_or("the ECDS file has no directory")?;
    let mut staged = tempfile::Builder::new()
        .prefix(".istiod-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut staged, text.as_bytes())?;
    staged.persist(ecds_file)?;
    Ok(())
}
