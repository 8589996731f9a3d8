//! The shipped Envoy setup (`envoy/front.yaml`, `envoy/upstreams.yaml`,
//! `envoy/ecds/canary-filter.yaml`) brought up for real: as shipped for the demo, or isolated
//! in a temporary directory on kernel-chosen ports for the tests, which may run in parallel.
//! The isolated layout changes nothing but ports, paths and the node's region, so the tests
//! exercise the very files users run.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::envoy::{repo_root, EnvoyProcess};
use crate::{http_agent, Reply, Result};

/// The shipped front bootstrap.
pub const FRONT_YAML: &str = "envoy/front.yaml";
/// The shipped upstreams bootstrap.
pub const UPSTREAMS_YAML: &str = "envoy/upstreams.yaml";
/// The shipped ECDS resource (the filter and its configuration).
pub const ECDS_YAML: &str = "envoy/ecds/canary-filter.yaml";
/// The shipped routes (file-based RDS beside the ECDS file; canaryctl keeps its fallback route
/// on the default version's cluster).
pub const ROUTES_YAML: &str = "envoy/ecds/canary-routes.yaml";
/// The wasm module, as the shipped ECDS resource names it (relative to the repository root).
pub const WASM: &str = "target/wasm32-wasip1/release/canary_filter.wasm";
/// ECDS resource name of the filter.
pub const FILTER_NAME: &str = "canary-filter";
/// The upstream versions of the shipped setup: `(listener/cluster name, port as shipped)`.
pub const UPSTREAMS: [(&str, u16); 8] = [
    ("app-v1", 10101),
    ("app-v2", 10102),
    ("app-v3", 10103),
    ("app-v2-errors", 10104),
    ("app-v2-slow", 10105),
    ("app-v1-flaky", 10106),
    ("app-v2-flaky", 10107),
    ("app-v2-tail", 10108),
];
/// The shipped front listener port.
pub const FRONT_PORT: u16 = 10000;
/// The shipped front admin port.
pub const FRONT_ADMIN_PORT: u16 = 9901;
/// The shipped upstreams admin port.
pub const UPSTREAMS_ADMIN_PORT: u16 = 9902;
/// The node region of the shipped front bootstrap.
pub const SHIPPED_REGION: &str = "us-east-1";

/// The path of the built wasm module: `$CANARY_WASM`, else the release build in `target/`.
pub fn wasm_path() -> Result<PathBuf> {
    let path =
        std::env::var_os("CANARY_WASM").map_or_else(|| repo_root().join(WASM), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the filter is not built at {}: run `make wasm` \
             (cargo build --release --target wasm32-wasip1 -p canary-filter)",
            path.display()
        )
        .into())
    }
}

/// Where a [`Mesh`] runs.
#[derive(Debug, Clone)]
pub enum Layout {
    /// The shipped files as they are, from the repository root, on the shipped ports.
    Shipped,
    /// A temporary directory and ports chosen by the kernel, the shipped files otherwise changed
    /// only as [`Isolated`] says (boxed: the options outweigh `Shipped` many times over).
    Isolated(Box<Isolated>),
}

impl Layout {
    /// An isolated mesh with these options.
    pub fn isolated(options: Isolated) -> Layout {
        Layout::Isolated(Box::new(options))
    }
}

/// What an isolated mesh changes in the shipped files besides ports and paths. The default
/// changes nothing else; the fail-safe tests take one layer of the defence away at a time.
#[derive(Debug, Clone)]
pub struct Isolated {
    /// The node's region (`None`: the bootstrap names no locality).
    pub region: Option<String>,
    /// The wasm module the ECDS resource loads (`None`: the built canary filter).
    pub wasm: Option<PathBuf>,
    /// The ECDS resource's `failure_policy` (`None`: as shipped).
    pub failure_policy: Option<String>,
    /// Whether the connection manager removes client-sent route and version headers before
    /// routing (`early_header_mutation_extensions`), as shipped.
    pub native_strip: bool,
    /// Whether the HTTP filter chain holds the canary filter, as shipped.
    pub wasm_filter: bool,
    /// An Envoy Lua filter (its source file) in the HTTP filter chain in place of the canary
    /// filter: the sticky split written in Lua (`envoy/lua/sticky-split.lua`).
    pub lua_filter: Option<PathBuf>,
    /// An EnvoyFilter-style `MERGE` patch of the connection manager (`{"typed_config": {…}}`,
    /// as `canaryctl istio` renders one): its fields are merged into the front's connection
    /// manager, lists appended, as Istio merges a patch into a sidecar's.
    pub connection_manager_patch: Option<serde_json::Value>,
    /// The ECDS file's name (in the bootstrap too): Envoy parses a `.json` file as JSON and
    /// `.yaml`/`.yml` as YAML, and the file is written in that format.
    pub ecds_name: String,
    /// A `stats_config` in place of the front's own (Istio's sidecar bootstrap has its own).
    pub stats_config: Option<serde_json::Value>,
    /// A bootstrap fragment the front Envoy merges into its bootstrap (`--config-yaml`, as
    /// Istio's agent passes a `sidecar.istio.io/bootstrapOverride`).
    pub config_yaml: Option<String>,
}

impl Default for Isolated {
    fn default() -> Self {
        Isolated {
            region: Some(SHIPPED_REGION.to_string()),
            wasm: None,
            failure_policy: None,
            native_strip: true,
            wasm_filter: true,
            lua_filter: None,
            connection_manager_patch: None,
            ecds_name: SHIPPED_ECDS_NAME.to_string(),
            stats_config: None,
            config_yaml: None,
        }
    }
}

/// What became of a configuration pushed by ECDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Envoy counted `update_success`.
    Accepted,
    /// Envoy counted `update_rejected`: the resource was read and refused (`on_configure`
    /// returned false, a module that does not load, no resource).
    Rejected,
    /// Envoy counted `update_failure`: the file could not be read as an ECDS resource at all
    /// (empty, not YAML).
    Failed,
}

/// The upstreams Envoy and the front Envoy with the filter.
pub struct Mesh {
    // Field order is drop order: the front goes first, the temporary directory last.
    front: EnvoyProcess,
    /// More front Envoys on the same bootstrap and ECDS file (a fleet), started on demand.
    more_fronts: Vec<Option<EnvoyProcess>>,
    /// The front bootstrap and its working directory (isolated layout).
    front_start: Option<(PathBuf, PathBuf)>,
    upstreams: Option<EnvoyProcess>,
    /// How to start the upstreams again on the same ports: `(bootstrap, working directory)`.
    upstreams_restart: Option<(PathBuf, PathBuf)>,
    listen: SocketAddr,
    ecds_file: PathBuf,
    /// The ECDS resource every pushed configuration is written into (module and failure
    /// policy already set).
    ecds_template: String,
    writes: AtomicU64,
    _dir: Option<TempDir>,
}

impl Mesh {
    /// The shipped setup in a temporary directory with `config` (the filter's JSON) as the
    /// ECDS resource's configuration, the node in the shipped region.
    pub fn isolated(config: &str) -> Result<Mesh> {
        Mesh::start(Layout::isolated(Isolated::default()), Some(config))
    }

    /// As [`Mesh::isolated`], with the node in `region` (or in none).
    pub fn isolated_in_region(config: &str, region: Option<&str>) -> Result<Mesh> {
        Mesh::start(
            Layout::isolated(Isolated {
                region: region.map(str::to_string),
                ..Isolated::default()
            }),
            Some(config),
        )
    }

    /// As [`Mesh::isolated`], with the ECDS file named `ecds_name` (see [`Isolated::ecds_name`]).
    pub fn isolated_with_ecds_name(config: &str, ecds_name: &str) -> Result<Mesh> {
        Mesh::start(
            Layout::isolated(Isolated {
                ecds_name: ecds_name.to_string(),
                ..Isolated::default()
            }),
            Some(config),
        )
    }

    /// Starts both Envoys. `config` replaces the filter configuration of the ECDS resource
    /// (isolated layout only; the shipped layout serves the shipped file as it is).
    pub fn start(layout: Layout, config: Option<&str>) -> Result<Mesh> {
        let root = repo_root();
        wasm_path()?;
        match layout {
            Layout::Shipped => {
                let run_dir = root.join(".run");
                fs::create_dir_all(&run_dir)?;
                let upstreams =
                    EnvoyProcess::start("upstreams", &root.join(UPSTREAMS_YAML), &root, &run_dir)?;
                let front = EnvoyProcess::start("front", &root.join(FRONT_YAML), &root, &run_dir)?;
                Ok(Mesh {
                    listen: SocketAddr::from(([127, 0, 0, 1], FRONT_PORT)),
                    ecds_file: root.join(ECDS_YAML),
                    ecds_template: render_ecds_resource(
                        &read(&root, ECDS_YAML)?,
                        &wasm_path()?,
                        None,
                    )?,
                    front,
                    more_fronts: Vec::new(),
                    front_start: None,
                    upstreams: Some(upstreams),
                    upstreams_restart: None,
                    writes: AtomicU64::new(0),
                    _dir: None,
                })
            }
            Layout::Isolated(options) => {
                let dir = tempfile::Builder::new().prefix("canary-e2e-").tempdir()?;
                let path = dir.path();
                fs::create_dir_all(path.join("ecds"))?;

                let shipped_upstreams = read(&root, UPSTREAMS_YAML)?;
                let upstreams_yaml = path.join("upstreams.yaml");
                fs::write(&upstreams_yaml, render_upstreams(&shipped_upstreams, None)?)?;
                let upstreams = EnvoyProcess::start("upstreams", &upstreams_yaml, path, path)?;
                let mut ports = Vec::new();
                for (name, _) in UPSTREAMS {
                    ports.push(upstreams.listener_port(name)?);
                }
                // A restart must come back on the ports the front already points at.
                let restart_yaml = path.join("upstreams-restart.yaml");
                fs::write(
                    &restart_yaml,
                    render_upstreams(&shipped_upstreams, Some(&ports))?,
                )?;

                let ecds_file = path.join("ecds").join(&options.ecds_name);
                let shipped_ecds = read(&root, ECDS_YAML)?;
                let wasm = match &options.wasm {
                    Some(wasm) => wasm.clone(),
                    None => wasm_path()?,
                };
                let ecds_template =
                    render_ecds_resource(&shipped_ecds, &wasm, options.failure_policy.as_deref())?;
                let config = match config {
                    Some(config) => config.to_string(),
                    None => configuration_of(&shipped_ecds)?,
                };
                fs::write(
                    &ecds_file,
                    in_format_of(&ecds_file, &with_configuration(&ecds_template, &config)?)?,
                )?;

                write_routes(&path.join("ecds"))?;
                let front_yaml = path.join("front.yaml");
                let front_text = render_front(&read(&root, FRONT_YAML)?, path, &ports, &options)?;
                fs::write(&front_yaml, front_text)?;
                let extra_args: Vec<String> = match &options.config_yaml {
                    Some(fragment) => vec!["--config-yaml".to_string(), fragment.clone()],
                    None => Vec::new(),
                };
                let front =
                    EnvoyProcess::start_with("front", &front_yaml, path, path, &extra_args)?;
                let listen = SocketAddr::from(([127, 0, 0, 1], front.listener_port("ingress")?));
                Ok(Mesh {
                    front,
                    more_fronts: Vec::new(),
                    front_start: Some((front_yaml, path.to_path_buf())),
                    upstreams: Some(upstreams),
                    upstreams_restart: Some((restart_yaml, path.to_path_buf())),
                    listen,
                    ecds_file,
                    ecds_template,
                    writes: AtomicU64::new(0),
                    _dir: Some(dir),
                })
            }
        }
    }

    /// The front listener's address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The front Envoy.
    pub fn front(&self) -> &EnvoyProcess {
        &self.front
    }

    /// The front Envoy, mutably (to ask whether it still runs).
    pub fn front_mut(&mut self) -> &mut EnvoyProcess {
        &mut self.front
    }

    /// Starts one more front Envoy on the same bootstrap and ECDS file (its own ports), and
    /// returns its admin endpoint (isolated layout only).
    pub fn start_another_front(&mut self) -> Result<SocketAddr> {
        let (yaml, dir) = self
            .front_start
            .as_ref()
            .ok_or("only an isolated mesh can start more fronts")?;
        let name = format!("front-{}", self.more_fronts.len() + 2);
        let front = EnvoyProcess::start(&name, yaml, dir, dir)?;
        let admin = front.admin();
        self.more_fronts.push(Some(front));
        Ok(admin)
    }

    /// The `index`-th front started by [`Mesh::start_another_front`] (from 0), unless stopped.
    pub fn another_front(&self, index: usize) -> Option<&EnvoyProcess> {
        self.more_fronts.get(index).and_then(Option::as_ref)
    }

    /// Kills the `index`-th front started by [`Mesh::start_another_front`] (from 0), by PID.
    pub fn stop_another_front(&mut self, index: usize) {
        if let Some(front) = self.more_fronts.get_mut(index) {
            *front = None;
        }
    }

    /// Kills the `index`-th front started by [`Mesh::start_another_front`] by its PID (a
    /// SIGKILL: its counters die with it) and starts it again on the same bootstrap and ECDS
    /// file, its admin endpoint on the same port (so the same address names it), its listener
    /// on a new one; waits until it is ready.
    pub fn restart_another_front(&mut self, index: usize) -> Result<()> {
        let (yaml, dir) = self
            .front_start
            .clone()
            .ok_or("only an isolated mesh can restart a front")?;
        let slot = self
            .more_fronts
            .get_mut(index)
            .ok_or("no such front to restart")?;
        let port = slot
            .as_ref()
            .ok_or("that front was stopped")?
            .admin()
            .port();
        *slot = None;
        // Merged into the bootstrap: the admin address the kernel chose the first time.
        let admin = format!(
            "admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}"
        );
        let name = format!("front-{}", index + 2);
        let front =
            EnvoyProcess::start_with(&name, &yaml, &dir, &dir, &["--config-yaml".into(), admin])?;
        *slot = Some(front);
        Ok(())
    }

    /// The upstreams Envoy, unless it was stopped.
    pub fn upstreams(&self) -> Option<&EnvoyProcess> {
        self.upstreams.as_ref()
    }

    /// Kills the upstreams Envoy by its PID: every version becomes unreachable.
    pub fn stop_upstreams(&mut self) {
        self.upstreams = None;
    }

    /// Starts the upstreams Envoy again on the ports the front points at (isolated layout) and
    /// waits until it is ready.
    pub fn restart_upstreams(&mut self) -> Result<()> {
        let (yaml, dir) = self
            .upstreams_restart
            .as_ref()
            .ok_or("only an isolated mesh can restart its upstreams")?;
        self.upstreams = None;
        self.upstreams = Some(EnvoyProcess::start("upstreams", yaml, dir, dir)?);
        Ok(())
    }

    /// The ECDS file Envoy watches.
    pub fn ecds_file(&self) -> &Path {
        &self.ecds_file
    }

    /// The filter configuration its ECDS file holds now (the JSON text).
    pub fn filter_configuration(&self) -> Result<String> {
        configuration_of(&std::fs::read_to_string(&self.ecds_file)?)
    }

    /// The top-level weight of `version` in the configuration its ECDS file holds now.
    pub fn weight_of(&self, version: &str) -> Result<f64> {
        let config: serde_json::Value = serde_json::from_str(&self.filter_configuration()?)?;
        config["weights"][version].as_f64().ok_or_else(|| {
            format!("the configuration has no top-level weight for {version}").into()
        })
    }

    fn ecds_counter(&self, counter: &str) -> Result<u64> {
        self.front.stat(&format!(
            "extension_config_discovery.http_filter.{FILTER_NAME}.{counter}"
        ))
    }

    /// Writes `config` as the filter's configuration (in the shipped ECDS resource) by atomic
    /// rename, without waiting.
    pub fn write_config(&self, config: &str) -> Result<()> {
        self.write_ecds_text(&self.ecds_text(config)?)
    }

    /// The ECDS file carrying `config`, in the file's format.
    fn ecds_text(&self, config: &str) -> Result<String> {
        in_format_of(
            &self.ecds_file,
            &with_configuration(&self.ecds_template, config)?,
        )
    }

    /// Writes a whole ECDS file (even a broken one) by atomic rename, without waiting.
    pub fn write_ecds_text(&self, text: &str) -> Result<()> {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .ecds_file
            .parent()
            .ok_or("ECDS file has no directory")?;
        let staging = dir.join(format!(".canary-filter.{}.{n}.tmp", std::process::id()));
        fs::write(&staging, text)?;
        fs::rename(&staging, &self.ecds_file)?;
        Ok(())
    }

    /// Pushes `config` by ECDS and waits until Envoy has accepted or rejected it.
    pub fn push_config(&self, config: &str) -> Result<Push> {
        self.push_ecds_text(&self.ecds_text(config)?)
    }

    /// Pushes a whole ECDS file and waits until Envoy has accepted or rejected it.
    pub fn push_ecds_text(&self, text: &str) -> Result<Push> {
        let outcomes = [
            ("update_success", Push::Accepted),
            ("update_rejected", Push::Rejected),
            ("update_failure", Push::Failed),
        ];
        let mut before = Vec::new();
        for (counter, _) in &outcomes {
            before.push(self.ecds_counter(counter)?);
        }
        self.write_ecds_text(text)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            for ((counter, outcome), was) in outcomes.iter().zip(&before) {
                if self.ecds_counter(counter)? > *was {
                    return Ok(*outcome);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(
            "Envoy counted the pushed config neither as accepted, rejected nor failed within 10 s"
                .into(),
        )
    }

    /// GET `/` through the front with these headers.
    pub fn get(&self, headers: &[(&str, &str)]) -> Result<Reply> {
        let agent = http_agent(Duration::from_secs(10));
        let mut request = agent.get(&format!("http://{}/", self.listen));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call()?;
        let status = response.status().as_u16();
        let headers = Reply::header_list(response.headers());
        let body = response.body_mut().read_to_string()?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends raw bytes as one HTTP/1.1 request (which should say `Connection: close`) and
    /// reads the reply: for requests no well-behaved client library would send.
    pub fn raw(&self, request: &[u8]) -> Result<Reply> {
        Reply::exchange(self.listen, request)
    }

    /// `/stats/prometheus` of the front.
    pub fn prometheus(&self) -> Result<String> {
        self.front.admin_get("/stats/prometheus")
    }

    /// Waits up to `timeout` for `check` to hold, asking every 20 ms.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if check()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("condition not met within {timeout:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The file name of the shipped ECDS resource (and of the isolated mesh's, unless named).
const SHIPPED_ECDS_NAME: &str = "canary-filter.yaml";

/// The routes file's name.
const ROUTES_NAME: &str = "canary-routes.yaml";

/// Writes the shipped routes (`envoy/ecds/canary-routes.yaml`) into `ecds_dir`, where a front
/// rendered by [`render_front`] reads them.
pub fn write_routes(ecds_dir: &Path) -> Result<()> {
    fs::create_dir_all(ecds_dir)?;
    fs::write(ecds_dir.join(ROUTES_NAME), read(&repo_root(), ROUTES_YAML)?)?;
    Ok(())
}

/// `yaml` (an ECDS document) as JSON when `path` is named `.json`: Envoy parses by extension.
pub fn in_format_of(path: &Path, yaml: &str) -> Result<String> {
    if path.extension().is_some_and(|ext| ext == "json") {
        let doc: serde_json::Value = serde_yaml_ng::from_str(yaml)?;
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    } else {
        Ok(yaml.to_string())
    }
}

fn read(root: &Path, relative: &str) -> Result<String> {
    fs::read_to_string(root.join(relative))
        .map_err(|err| format!("cannot read {relative}: {err}").into())
}

/// Replaces `from` by `to`, insisting that `from` occurs exactly `count` times: when the
/// shipped files change shape, the tests say so instead of testing something else.
fn replace_exactly(text: &str, from: &str, to: &str, count: usize) -> Result<String> {
    let found = text.matches(from).count();
    if found != count {
        return Err(
            format!("expected {count} × {from:?} in a shipped Envoy file, found {found}").into(),
        );
    }
    Ok(text.replace(from, to))
}

/// The upstreams bootstrap with the admin port left to the kernel, and the listeners on
/// `ports` (in [`UPSTREAMS`] order) or, without them, on ports the kernel chooses.
pub fn render_upstreams(text: &str, ports: Option<&[u16]>) -> Result<String> {
    let mut text = replace_exactly(
        text,
        &format!("port_value: {UPSTREAMS_ADMIN_PORT} "),
        "port_value: 0 ",
        1,
    )?;
    for (index, (_, shipped)) in UPSTREAMS.iter().enumerate() {
        let port = ports
            .and_then(|ports| ports.get(index))
            .copied()
            .unwrap_or(0);
        text = replace_exactly(
            &text,
            &format!("port_value: {shipped} "),
            &format!("port_value: {port} "),
            1,
        )?;
    }
    Ok(text)
}

/// The front bootstrap with kernel-chosen listener and admin ports, the upstream ports given,
/// the ECDS file under `dir`, and what `options` change.
pub fn render_front(
    text: &str,
    dir: &Path,
    upstream_ports: &[u16],
    options: &Isolated,
) -> Result<String> {
    let mut text = replace_exactly(
        text,
        &format!("port_value: {FRONT_PORT} "),
        "port_value: 0 ",
        1,
    )?;
    text = replace_exactly(
        &text,
        &format!("port_value: {FRONT_ADMIN_PORT} "),
        "port_value: 0 ",
        1,
    )?;
    for ((_, shipped), actual) in UPSTREAMS.iter().zip(upstream_ports) {
        text = replace_exactly(
            &text,
            &format!("port_value: {shipped} "),
            &format!("port_value: {actual} "),
            1,
        )?;
    }
    let ecds_dir = dir.join("ecds");
    text = replace_exactly(
        &text,
        &format!("path: {ECDS_YAML}"),
        &format!("path: {}", ecds_dir.join(&options.ecds_name).display()),
        1,
    )?;
    text = replace_exactly(
        &text,
        &format!("path: {ROUTES_YAML}"),
        &format!("path: {}", ecds_dir.join(ROUTES_NAME).display()),
        1,
    )?;
    // The ECDS file's and the routes' (the same directory).
    text = replace_exactly(
        &text,
        "watched_directory: { path: envoy/ecds }",
        &format!("watched_directory: {{ path: {} }}", ecds_dir.display()),
        2,
    )?;
    let shipped_locality = format!("  locality:\n    region: {SHIPPED_REGION}\n");
    let locality = match &options.region {
        Some(region) => format!("  locality:\n    region: {region}\n"),
        None => String::new(),
    };
    text = replace_exactly(&text, &shipped_locality, &locality, 1)?;
    if options.native_strip
        && options.wasm_filter
        && options.lua_filter.is_none()
        && options.connection_manager_patch.is_none()
        && options.stats_config.is_none()
    {
        return Ok(text);
    }
    // Structural edits on the parsed bootstrap (its comments are lost, nothing else).
    let mut doc: serde_json::Value = serde_yaml_ng::from_str(&text)?;
    if let Some(stats_config) = &options.stats_config {
        doc["stats_config"] = stats_config.clone();
    }
    let manager = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]
        .as_object_mut()
        .ok_or("the front bootstrap has no connection manager where expected")?;
    if !options.native_strip && manager.remove("early_header_mutation_extensions").is_none() {
        return Err("the front bootstrap has no early_header_mutation_extensions".into());
    }
    if let Some(patch) = &options.connection_manager_patch {
        let fields = patch["typed_config"]
            .as_object()
            .ok_or("a connection manager patch holds typed_config")?;
        for (name, value) in fields.iter().filter(|(name, _)| *name != "@type") {
            match (manager.get_mut(name), value) {
                (Some(serde_json::Value::Array(have)), serde_json::Value::Array(more)) => {
                    have.extend(more.iter().cloned());
                }
                _ => {
                    manager.insert(name.clone(), value.clone());
                }
            }
        }
    }
    if !options.wasm_filter || options.lua_filter.is_some() {
        let filters = manager
            .get_mut("http_filters")
            .and_then(serde_json::Value::as_array_mut)
            .ok_or("the front bootstrap has no http_filters")?;
        let at = filters
            .iter()
            .position(|filter| filter["name"] == FILTER_NAME)
            .ok_or_else(|| format!("the front bootstrap has no {FILTER_NAME} filter"))?;
        filters.remove(at);
        if let Some(source) = &options.lua_filter {
            filters.insert(
                at,
                serde_json::json!({
                    "name": "envoy.filters.http.lua",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                        "default_source_code": {"filename": source.display().to_string()},
                    },
                }),
            );
        }
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// The ECDS resource `template` with `config` as the filter's configuration and `wasm` as
/// its code.
pub fn render_ecds(template: &str, config: &str, wasm: &Path) -> Result<String> {
    with_configuration(&render_ecds_resource(template, wasm, None)?, config)
}

/// The ECDS resource `template` loading `wasm`, with `failure_policy` if one is given.
pub fn render_ecds_resource(
    template: &str,
    wasm: &Path,
    failure_policy: Option<&str>,
) -> Result<String> {
    let mut doc: serde_json::Value = serde_yaml_ng::from_str(template)?;
    let filter = &mut doc["resources"][0]["typed_config"]["config"];
    if !filter.is_object() {
        return Err("the ECDS template has no resources[0].typed_config.config".into());
    }
    filter["vm_config"]["code"]["local"]["filename"] =
        serde_json::Value::String(wasm.display().to_string());
    if let Some(policy) = failure_policy {
        filter["failure_policy"] = serde_json::Value::String(policy.to_string());
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// The ECDS resource `resource` with `config` as the filter's configuration.
pub fn with_configuration(resource: &str, config: &str) -> Result<String> {
    let mut doc: serde_json::Value = serde_yaml_ng::from_str(resource)?;
    let filter = &mut doc["resources"][0]["typed_config"]["config"];
    if !filter.is_object() {
        return Err("the ECDS resource has no resources[0].typed_config.config".into());
    }
    filter["configuration"]["value"] = serde_json::Value::String(config.to_string());
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// The `canary_config_hash` a filter publishes for the configuration document `config`, as
/// canaryctl computes it to confirm a change: the hash of the parsed configuration, whoever
/// wrote the document.
pub fn config_hash_of(config: &str) -> Result<u32> {
    let parsed = canary_filter::CanaryConfig::from_json(config.as_bytes())?;
    Ok(canary_filter::metrics::config_hash(&parsed)?)
}

/// The configuration the rollout tests start from: `stable` on `app-v1`, `canary` on
/// `canary_cluster` at 0 %, sticky on `x-user-id` (seed 0), testers (`x-canary: always`) pinned
/// to the canary.
pub fn rollout_config(canary_cluster: &str) -> String {
    format!(
        r#"{{"versions": [{{"name": "stable", "cluster": "app-v1"}}, {{"name": "canary", "cluster": "{canary_cluster}"}}],
            "default": "stable", "weights": {{"canary": 0}},
            "sticky": {{"keys": [{{"header": "x-user-id"}}], "seed": 0}},
            "rules": [{{"name": "testers", "when": {{"header": {{"name": "x-canary", "equals": "always"}}}}, "version": "canary"}}]}}"#
    )
}

/// The filter configuration inside an ECDS resource.
pub fn configuration_of(ecds: &str) -> Result<String> {
    let doc: serde_json::Value = serde_yaml_ng::from_str(ecds)?;
    doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the ECDS resource has no configuration value".into())
}
