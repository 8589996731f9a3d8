//! `make bench`, the end-to-end part: the front Envoy (`--concurrency 1`) in seven setups, the
//! upstreams in a separate Envoy, load from `wrk` rotating 10,000 keys, alternating setups
//! round by round:
//!
//! - (a) no filter, one cluster: the baseline;
//! - (b) native sticky `weighted_clusters` with `use_hash_policy` on the same key header;
//! - (c) the canary filter with the typical configuration (the shipped `envoy/front.yaml`);
//! - (d) the canary filter with 50 rules;
//! - (e) the wasm floor: a filter that only writes the route header;
//! - (f) the same sticky split as an Envoy Lua filter (`envoy/lua/sticky-split.lua`);
//! - (g) the canary filter's lean configuration: the same split, the cluster header and the
//!   request counters only.
//!
//! For each: throughput, p50/p99 latency, and the front Envoy's CPU time per request (from
//! `/proc/<pid>/stat`). Then the time from an ECDS write to the first request routed by it
//! (median of 20), and the `.wasm` sizes. Knobs: `BENCH_ROUNDS` (10), `BENCH_SECONDS` (3),
//! `BENCH_CONNECTIONS` (16); for the ECDS measure `BENCH_ECDS_CONFIG` (more configurations to
//! push, by file), `BENCH_ECDS_FORMATS` (`yaml`, `json` or both: the ECDS file's format),
//! `BENCH_ECDS_PUSHES` (20) and `BENCH_ECDS_LOG` (a directory for Envoy's debug log of each
//! update, see [`ecds_propagation`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use canary_filter::bucket::bucket_of;
use canary_harness::envoy::{repo_root, EnvoyProcess};
use canary_harness::mesh::{
    in_format_of, render_ecds, render_front, render_upstreams, wasm_path, write_routes, Isolated,
    ECDS_YAML, FRONT_YAML, UPSTREAMS, UPSTREAMS_YAML,
};
use canary_harness::{http_agent, Result};
use serde_json::{json, Value};

const FLOOR_WASM: &str = "target/wasm32-wasip1/release/canary_floor.wasm";
const TYPICAL: &str = "filter/benches/configs/typical.json";
const FIFTY: &str = "filter/benches/configs/fifty-rules.json";
const LEAN: &str = "filter/benches/configs/lean.json";
const LUA: &str = "envoy/lua/sticky-split.lua";
/// The wrk script (`BENCH_WRK_SCRIPT` names another, relative to the repository root, e.g.
/// `envoy/wrk-browser-keys.lua` for requests with a browser's headers).
const WRK_SCRIPT: &str = "envoy/wrk-keys.lua";
/// Runs with less steal than this count as quiet (see the report).
const QUIET_STEAL_PERCENT: f64 = 2.0;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Setup {
    Baseline,
    Native,
    Filter,
    FiftyRules,
    Floor,
    Lua,
    Lean,
    /// An experiment from `BENCH_EXTRA`: the shipped front with another module and config.
    Extra(usize),
}

/// `BENCH_EXTRA="label=module.wasm[:config-file];..."`: further setups for A/B experiments
/// (a variant of the filter against the current one, probes that make N host calls), run in
/// the same alternation and compared with (b) and (e) like the filter.
struct Extra {
    label: String,
    wasm: std::path::PathBuf,
    config: Option<std::path::PathBuf>,
}

static EXTRAS: std::sync::OnceLock<Vec<Extra>> = std::sync::OnceLock::new();

fn extras() -> &'static [Extra] {
    EXTRAS.get_or_init(|| {
        std::env::var("BENCH_EXTRA")
            .unwrap_or_default()
            .split(';')
            .filter_map(|item| {
                let (label, rest) = item.split_once('=')?;
                let (wasm, config) = match rest.split_once(':') {
                    Some((wasm, config)) => (wasm, Some(config.into())),
                    None => (rest, None),
                };
                Some(Extra {
                    label: label.trim().to_string(),
                    wasm: wasm.trim().into(),
                    config,
                })
            })
            .collect()
    })
}

impl Setup {
    const ALL: [Setup; 7] = [
        Setup::Baseline,
        Setup::Native,
        Setup::Filter,
        Setup::FiftyRules,
        Setup::Floor,
        Setup::Lua,
        Setup::Lean,
    ];

    /// The setups compared with (b) and the floor (e) in the report.
    fn compared() -> Vec<Setup> {
        [
            Setup::Filter,
            Setup::FiftyRules,
            Setup::Floor,
            Setup::Lua,
            Setup::Lean,
        ]
        .into_iter()
        .chain((0..extras().len()).map(Setup::Extra))
        .collect()
    }

    fn label(self) -> String {
        match self {
            Setup::Extra(i) => format!(
                "(x{}) {}",
                i + 1,
                extras().get(i).map_or("?", |e| e.label.as_str())
            ),
            _ => self.fixed_label().to_string(),
        }
    }

    /// Every setup the report lists: the seven fixed ones, then the experiments.
    fn all() -> Vec<Setup> {
        Setup::ALL
            .into_iter()
            .chain((0..extras().len()).map(Setup::Extra))
            .collect()
    }

    fn fixed_label(self) -> &'static str {
        match self {
            Setup::Extra(_) => "experiment",
            Setup::Baseline => "(a) no filter, one cluster",
            Setup::Native => "(b) native sticky weighted_clusters",
            Setup::Filter => "(c) canary filter, typical config",
            Setup::FiftyRules => "(d) canary filter, 50 rules",
            Setup::Floor => "(e) wasm floor (writes one header)",
            Setup::Lua => "(f) Lua sticky split",
            Setup::Lean => "(g) canary filter, lean config",
        }
    }
}

/// One wrk run against one setup.
#[derive(Debug, Clone)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_request: f64,
    errors: u64,
    /// Share of the machine's CPU time the hypervisor gave to other guests during the run
    /// (`steal` in /proc/stat): how noisy the neighbours were.
    steal_percent: f64,
    /// The 1-minute load average at the end of the run (`/proc/loadavg`): processes of this
    /// machine competing for its cores (other builds, other benchmarks), which steal does not
    /// show. wrk, the front and the upstreams account for about 2 of it.
    load_average: f64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run() -> Result<()> {
    let root = repo_root();
    let rounds: usize = env_or("BENCH_ROUNDS", 10);
    let seconds: u64 = env_or("BENCH_SECONDS", 3);
    let connections: u32 = env_or("BENCH_CONNECTIONS", 16);
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk not found: `apt-get install -y wrk` (make bench does it)".into());
    }
    let floor = root.join(FLOOR_WASM);
    if !floor.is_file() {
        return Err(format!("{FLOOR_WASM} is missing: make bench builds it (cargo build --release --target wasm32-wasip1 -p canary-floor)").into());
    }
    let wasm = wasm_path()?;

    let dir = tempfile::Builder::new().prefix("canary-bench-").tempdir()?;
    let upstreams_yaml = dir.path().join("upstreams.yaml");
    fs::write(
        &upstreams_yaml,
        render_upstreams(&fs::read_to_string(root.join(UPSTREAMS_YAML))?, None)?,
    )?;
    let upstreams = EnvoyProcess::start("upstreams", &upstreams_yaml, dir.path(), dir.path())?;
    let mut ports = Vec::new();
    for (name, _) in UPSTREAMS {
        ports.push(upstreams.listener_port(name)?);
    }

    println!(
        "machine: {} cores, {}; Envoy 1.40.0 front --concurrency 1, upstreams in a second Envoy; \
         wrk -t1 -c{connections} -d{seconds}s, {rounds} rounds, setups alternating",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    // BENCH_SETUPS=c,e runs only some setups (for quick experiments; `x`: every BENCH_EXTRA).
    let only: Option<String> = std::env::var("BENCH_SETUPS").ok();
    let chosen: Vec<Setup> = Setup::all()
        .into_iter()
        .filter(|s| {
            only.as_deref().is_none_or(|o| {
                o.split(',').any(|x| {
                    s.label().starts_with(&format!("({x})"))
                        || (x == "x" && matches!(s, Setup::Extra(_)))
                })
            })
        })
        .collect();
    // Every chosen front runs for the whole benchmark (each in its own directory, idle while
    // another is measured), so rounds can alternate quickly: short slices interleaved many
    // times sample the machine's drift evenly, where long runs one after another did not.
    let mut fronts = Vec::new();
    for &setup in &chosen {
        let front_dir = dir.path().join(format!("front-{}", fronts.len()));
        fs::create_dir_all(&front_dir)?;
        let front = start_front(
            setup,
            &front_dir,
            &ports,
            &wasm,
            &floor,
            ECDS_NAME_YAML,
            &[],
        )?;
        let url = format!("http://127.0.0.1:{}/", front.listener_port("ingress")?);
        check_routing(&url)?;
        wrk(&root, &url, 2, connections)?; // warm-up
        fronts.push((setup, front, url));
    }
    let mut runs: BTreeMap<Setup, Vec<Run>> = BTreeMap::new();
    for round in 1..=rounds {
        // Rotate the order each round so no setup always follows the same one.
        let offset = (round - 1) % fronts.len().max(1);
        for (setup, front, url) in fronts.iter().cycle().skip(offset).take(fronts.len()) {
            let result = measure(&root, front, url, seconds, connections)?;
            println!(
                "round {round} {:<40} {:>9.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  cpu {:>6.2} us/req  steal {:>4.1}%  load {:>5.2}  errors {}",
                setup.label(),
                result.rps,
                result.p50_us,
                result.p99_us,
                result.cpu_us_per_request,
                result.steal_percent,
                result.load_average,
                result.errors
            );
            runs.entry(*setup).or_default().push(result);
        }
    }
    drop(fronts);

    let variants = ecds_variants(&root, &wasm)?;
    let timed = ecds_propagation(dir.path(), &ports, &floor, &variants)?;
    for (variant, times) in variants.iter().zip(&timed) {
        let mut millis: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let max = millis.iter().copied().fold(0.0, f64::max);
        println!(
            "ECDS push to first request routed: {}: median {:.1} ms (min {:.1}, max {max:.1}; {} pushes)",
            variant.label,
            median(&mut millis),
            millis.first().copied().unwrap_or(f64::NAN),
            millis.len(),
        );
    }
    // The report's line: the typical configuration in the shipped YAML file.
    let propagation = timed.into_iter().next().unwrap_or_default();
    let sizes = [
        ("canary_filter.wasm", fs::metadata(&wasm)?.len()),
        ("canary_floor.wasm", fs::metadata(&floor)?.len()),
    ];
    let report = report(&runs, &propagation, &sizes, rounds, seconds, connections);
    println!("\n{report}");
    let out = root.join("target").join("bench-report.md");
    fs::write(&out, &report)?;
    println!("written to {}", out.display());
    Ok(())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// A route configuration in the bootstrap with `routes`, in place of the shipped front's RDS.
fn inline_routes(routes: Value) -> Value {
    json!({"name": "canary", "virtual_hosts": [{"name": "app", "domains": ["*"], "routes": routes}]})
}

/// The shipped front bootstrap, changed for `setup`.
fn front_config(setup: Setup, dir: &Path, ports: &[u16], ecds_name: &str) -> Result<String> {
    let root = repo_root();
    let options = Isolated {
        lua_filter: (setup == Setup::Lua).then(|| root.join(LUA)),
        ecds_name: ecds_name.to_string(),
        ..Isolated::default()
    };
    let text = render_front(
        &fs::read_to_string(root.join(FRONT_YAML))?,
        dir,
        ports,
        &options,
    )?;
    let mut doc: Value = serde_yaml_ng::from_str(&text)?;
    let hcm = &mut doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    let router = json!({"name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    match setup {
        Setup::Baseline => {
            // Nothing routes on a client header here: no header to remove before routing.
            hcm.as_object_mut().map(|hcm| {
                hcm.remove("rds");
                hcm.remove("early_header_mutation_extensions")
            });
            hcm["http_filters"] = json!([router]);
            hcm["route_config"] =
                inline_routes(json!([{"match": {"prefix": "/"}, "route": {"cluster": "app-v1"}}]));
        }
        Setup::Native => {
            hcm.as_object_mut().map(|hcm| {
                hcm.remove("rds");
                hcm.remove("early_header_mutation_extensions")
            });
            hcm["http_filters"] = json!([router]);
            hcm["route_config"] = inline_routes(json!([{
                "match": {"prefix": "/"},
                "route": {
                    "weighted_clusters": {"use_hash_policy": true, "clusters": [
                        {"name": "app-v1", "weight": 90}, {"name": "app-v2", "weight": 10}]},
                    "hash_policy": [{"header": {"header_name": "x-user-id"}}],
                },
            }]));
        }
        Setup::Filter
        | Setup::FiftyRules
        | Setup::Floor
        | Setup::Lua
        | Setup::Lean
        | Setup::Extra(_) => {}
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// Writes the ECDS file `ecds_name` (`.yaml` or `.json`, written in that format) for `setup`.
fn write_ecds(dir: &Path, setup: Setup, wasm: &Path, floor: &Path, ecds_name: &str) -> Result<()> {
    let root = repo_root();
    let template = fs::read_to_string(root.join(ECDS_YAML))?;
    let typical = root.join(TYPICAL);
    let (config, module) = match setup {
        Setup::FiftyRules => (root.join(FIFTY), wasm),
        Setup::Lean => (root.join(LEAN), wasm),
        Setup::Floor => (typical, floor),
        Setup::Extra(i) => {
            let extra = extras().get(i).ok_or("no such experiment")?;
            (
                extra.config.clone().unwrap_or(typical),
                extra.wasm.as_path(),
            )
        }
        _ => (typical, wasm),
    };
    let config = fs::read_to_string(config)?;
    let ecds_dir = dir.join("ecds");
    fs::create_dir_all(&ecds_dir)?;
    let target = ecds_dir.join(ecds_name);
    let staging = ecds_dir.join(format!(".staging.{ecds_name}"));
    fs::write(
        &staging,
        in_format_of(&target, &render_ecds(&template, &config, module)?)?,
    )?;
    fs::rename(&staging, &target)?;
    write_routes(&ecds_dir)?;
    Ok(())
}

/// The front for `setup`, its ECDS file named `ecds_name`, Envoy started with `extra_args`.
fn start_front(
    setup: Setup,
    dir: &Path,
    ports: &[u16],
    wasm: &Path,
    floor: &Path,
    ecds_name: &str,
    extra_args: &[String],
) -> Result<EnvoyProcess> {
    write_ecds(dir, setup, wasm, floor, ecds_name)?;
    let path = dir.join("front.yaml");
    fs::write(&path, front_config(setup, dir, ports, ecds_name)?)?;
    EnvoyProcess::start_with("front", &path, dir, dir, extra_args)
}

/// Every setup must answer 200 from an upstream before it is measured.
fn check_routing(url: &str) -> Result<()> {
    let agent = http_agent(Duration::from_secs(5));
    for key in ["user-1", "user-2", "user-3"] {
        let reply = agent.get(url).header("x-user-id", key).call()?;
        if reply.status() != 200 || reply.headers().get("x-upstream").is_none() {
            return Err(format!("{url} answered {} without an upstream", reply.status()).into());
        }
    }
    Ok(())
}

fn wrk(root: &Path, url: &str, seconds: u64, connections: u32) -> Result<String> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(
            root.join(std::env::var("BENCH_WRK_SCRIPT").unwrap_or_else(|_| WRK_SCRIPT.to_string())),
        )
        .arg(url)
        .output()?;
    if !output.status.success() {
        return Err(format!("wrk failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("bad /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).ok_or("no utime")?.parse::<f64>()?
        + fields.get(12).ok_or("no stime")?.parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / per_second)
}

fn measure(
    root: &Path,
    front: &EnvoyProcess,
    url: &str,
    seconds: u64,
    connections: u32,
) -> Result<Run> {
    let machine_before = machine_ticks()?;
    let before = cpu_seconds(front.pid())?;
    let text = wrk(root, url, seconds, connections)?;
    let after = cpu_seconds(front.pid())?;
    let machine_after = machine_ticks()?;
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no request count in wrk's output:\n{text}"))?;
    let rps: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())
        .ok_or("no Requests/sec in wrk's output")?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next()? == p)
                    .then(|| parse_duration_us(parts.next()?))
                    .flatten()
            })
            .unwrap_or(f64::NAN)
    };
    let errors = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Non-2xx or 3xx responses:")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
        + text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:").map(|_| 1))
            .unwrap_or(0);
    Ok(Run {
        rps,
        p50_us: percentile("50%"),
        p99_us: percentile("99%"),
        cpu_us_per_request: (after - before) * 1e6 / requests,
        errors,
        steal_percent: steal_percent(&machine_before, &machine_after),
        load_average: load_average(),
    })
}

/// The machine-wide CPU counters (the `cpu` line of /proc/stat, in ticks).
fn machine_ticks() -> Result<Vec<u64>> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("no cpu line in /proc/stat")?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect())
}

/// Steal (the 8th counter) as a percent of all ticks between two readings.
fn steal_percent(before: &[u64], after: &[u64]) -> f64 {
    let delta: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total: u64 = delta.iter().sum();
    let steal = delta.get(7).copied().unwrap_or(0);
    if total == 0 {
        0.0
    } else {
        100.0 * steal as f64 / total as f64
    }
}

fn parse_duration_us(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// The ECDS file as shipped, and the same resource as JSON: Envoy parses the file by its
/// extension.
const ECDS_NAME_YAML: &str = "canary-filter.yaml";
const ECDS_NAME_JSON: &str = "canary-filter.json";

/// Envoy's log lines with microseconds and the thread, for `BENCH_ECDS_LOG`.
const ECDS_LOG_FORMAT: &str = "[%Y-%m-%d %H:%M:%S.%f][%t][%l][%n] [%g:%#] %v";
/// The components whose debug lines show an ECDS update's steps (file event, parse, the
/// filter's configure on each thread).
const ECDS_LOG_LEVELS: &str = "config:debug,wasm:debug,file:debug,main:debug,init:debug";

/// One kind of ECDS push the propagation measure times.
struct EcdsVariant {
    label: String,
    /// The filter's configuration (JSON).
    config: String,
    /// The ECDS file's name, which says its format.
    ecds_name: &'static str,
    /// The module the ECDS resource loads.
    wasm: std::path::PathBuf,
}

/// The pushes to time: the typical configuration, and `BENCH_ECDS_CONFIG`'s (files separated
/// by commas; a thousand rules, say: the difference from the typical configuration's is its
/// configure time), each in every format of `BENCH_ECDS_FORMATS` (`yaml`, the shipped file, by
/// default; `yaml,json` both), loading `wasm`, and again loading `BENCH_ECDS_OTHER_WASM` when it
/// names another build of the filter (the module before a change, say).
fn ecds_variants(root: &Path, wasm: &Path) -> Result<Vec<EcdsVariant>> {
    let mut modules = vec![(String::new(), wasm.to_path_buf())];
    if let Some(other) = std::env::var_os("BENCH_ECDS_OTHER_WASM") {
        let other = std::path::PathBuf::from(other);
        modules.push((format!(", module {}", other.display()), other));
    }
    let formats = std::env::var("BENCH_ECDS_FORMATS").unwrap_or_else(|_| "yaml".to_string());
    let mut names = Vec::new();
    for format in formats.split(',').map(str::trim) {
        names.push(match format {
            "yaml" => (format, ECDS_NAME_YAML),
            "json" => (format, ECDS_NAME_JSON),
            other => {
                return Err(
                    format!("BENCH_ECDS_FORMATS: {other:?} is neither yaml nor json").into(),
                )
            }
        });
    }
    let mut configs = vec![(
        "the typical configuration".to_string(),
        fs::read_to_string(root.join(TYPICAL))?,
    )];
    if let Ok(paths) = std::env::var("BENCH_ECDS_CONFIG") {
        for path in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            configs.push((path.to_string(), fs::read_to_string(path)?));
        }
    }
    let mut variants = Vec::new();
    for (module_label, module) in &modules {
        for (label, config) in &configs {
            for (format, ecds_name) in &names {
                variants.push(EcdsVariant {
                    label: format!(
                        "{label} ({format} file, {} bytes of configuration{module_label})",
                        config.len()
                    ),
                    config: config.clone(),
                    ecds_name,
                    wasm: module.clone(),
                });
            }
        }
    }
    Ok(variants)
}

/// A front the ECDS measure pushes to, and which way its split is now.
struct EcdsFront {
    ecds_name: &'static str,
    wasm: std::path::PathBuf,
    dir: std::path::PathBuf,
    front: EnvoyProcess,
    url: String,
    canary_on: bool,
}

/// Time from an ECDS file renamed into place to the first request routed by it: a key whose
/// bucket flips between weight 10 and weight 0, polled as fast as one client can. One front
/// per file format and module; `BENCH_ECDS_PUSHES` (20) pushes of each variant, the variants alternating
/// (in a rotating order). `BENCH_ECDS_LOG=dir` runs the fronts with debug lines of the
/// components an update goes through, in microseconds, and leaves their logs and each push's
/// wall-clock time in `dir`.
fn ecds_propagation(
    dir: &Path,
    ports: &[u16],
    floor: &Path,
    variants: &[EcdsVariant],
) -> Result<Vec<Vec<Duration>>> {
    let root = repo_root();
    let pushes: usize = env_or("BENCH_ECDS_PUSHES", 20);
    let log_dir = std::env::var_os("BENCH_ECDS_LOG").map(std::path::PathBuf::from);
    let extra_args: Vec<String> = match &log_dir {
        Some(_) => [
            "--log-format",
            ECDS_LOG_FORMAT,
            "--component-log-level",
            ECDS_LOG_LEVELS,
        ]
        .map(String::from)
        .to_vec(),
        None => Vec::new(),
    };
    let mut fronts: Vec<EcdsFront> = Vec::new();
    for variant in variants {
        if fronts
            .iter()
            .any(|f| f.ecds_name == variant.ecds_name && f.wasm == variant.wasm)
        {
            continue;
        }
        let front_dir = dir.join(format!("ecds-front-{}", fronts.len()));
        fs::create_dir_all(&front_dir)?;
        let front = start_front(
            Setup::Filter,
            &front_dir,
            ports,
            &variant.wasm,
            floor,
            variant.ecds_name,
            &extra_args,
        )?;
        let url = format!("http://127.0.0.1:{}/", front.listener_port("ingress")?);
        fronts.push(EcdsFront {
            ecds_name: variant.ecds_name,
            wasm: variant.wasm.clone(),
            dir: front_dir,
            front,
            url,
            // Started with the typical configuration: the canary at weight 10.
            canary_on: true,
        });
    }
    let key = (0..)
        .map(|i| format!("probe-{i}"))
        .find(|k| bucket_of(k.as_bytes(), 0) < 1000)
        .ok_or("no key")?;
    let template = fs::read_to_string(root.join(ECDS_YAML))?;
    let agent = http_agent(Duration::from_secs(5));
    let mut times: Vec<Vec<Duration>> = variants.iter().map(|_| Vec::new()).collect();
    let mut log = String::from("variant\tpush\trenamed_unix_us\trouted_after_us\tload_average\n");
    for i in 0..pushes {
        for j in 0..variants.len() {
            let at = (i + j) % variants.len();
            let variant = variants.get(at).ok_or("no variant")?;
            let front = fronts
                .iter_mut()
                .find(|f| f.ecds_name == variant.ecds_name && f.wasm == variant.wasm)
                .ok_or("no front")?;
            // Always the other way from where the front is, so that only the new file routes
            // the key as wanted.
            let weight = if front.canary_on { 0 } else { 10 };
            let want = if weight == 0 { "app-v1" } else { "app-v2" };
            // The top-level weight, as a person (`"canary": 10`) or serde_json (`"canary":10`)
            // writes it; the first is the top level's in every configuration pushed here.
            let config = variant
                .config
                .replacen("\"canary\": 10", &format!("\"canary\": {weight}"), 1)
                .replacen("\"canary\":10", &format!("\"canary\":{weight}"), 1);
            let ecds_dir = front.dir.join("ecds");
            let target = ecds_dir.join(variant.ecds_name);
            let staging = ecds_dir.join(format!(".staging.{}", variant.ecds_name));
            let text = in_format_of(&target, &render_ecds(&template, &config, &variant.wasm)?)?;
            if i == 0 {
                println!("ECDS file of {}: {} bytes", variant.label, text.len());
            }
            fs::write(&staging, text)?;
            let renamed = std::time::SystemTime::now();
            let started = Instant::now();
            fs::rename(&staging, &target)?;
            loop {
                let reply = agent.get(&front.url).header("x-user-id", &key).call()?;
                if reply
                    .headers()
                    .get("x-upstream")
                    .and_then(|v| v.to_str().ok())
                    == Some(want)
                {
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    return Err("a config pushed by ECDS was not applied within 10 s".into());
                }
            }
            let elapsed = started.elapsed();
            front.canary_on = weight != 0;
            times.get_mut(at).ok_or("no variant")?.push(elapsed);
            log.push_str(&format!(
                "{}\t{i}\t{}\t{}\t{}\n",
                variant.label,
                renamed
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros(),
                elapsed.as_micros(),
                load_average()
            ));
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if let Some(log_dir) = log_dir {
        fs::create_dir_all(&log_dir)?;
        fs::write(log_dir.join("pushes.tsv"), &log)?;
        for (n, front) in fronts.into_iter().enumerate() {
            // Stopped by SIGTERM, so that Envoy writes out its log before it is copied.
            stop_gently(&front.front);
            fs::copy(
                front.dir.join("front.log"),
                log_dir.join(format!("front-{n}-{}.log", front.ecds_name)),
            )?;
        }
        println!("ECDS logs written to {}", log_dir.display());
    }
    Ok(times)
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Asks Envoy to exit (SIGTERM, by its PID) and waits up to 10 s until it has; the owner's
/// drop then reaps it.
fn stop_gently(front: &EnvoyProcess) {
    let pid = front.pid();
    // SAFETY: kill has no memory-safety preconditions; the PID is our own child's, not reaped
    // yet, so it cannot name another process.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let (_, rest) = stat.rsplit_once(')')?;
                rest.split_whitespace().next().map(str::to_string)
            });
        if state.as_deref().is_none_or(|state| state == "Z") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn report(
    runs: &BTreeMap<Setup, Vec<Run>>,
    propagation: &[Duration],
    sizes: &[(&str, u64)],
    rounds: usize,
    seconds: u64,
    connections: u32,
) -> String {
    let stat = |setup: Setup, f: fn(&Run) -> f64| -> (f64, f64, f64) {
        let mut values: Vec<f64> = runs
            .get(&setup)
            .map(|r| r.iter().map(f).collect())
            .unwrap_or_default();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (median(&mut values), lo, hi)
    };
    let mut out = String::new();
    out.push_str(&format!(
        "Medians of {rounds} alternating runs of `wrk -t1 -c{connections} -d{seconds}s` (10,000 rotating keys); \
         front Envoy `--concurrency 1`; CPU is the front process's utime+stime per request.\n\n"
    ));
    out.push_str("| setup | req/s (min–max) | p50 µs | p99 µs | front CPU µs/req (min–max) | steal % | load | non-2xx |\n|---|---|---|---|---|---|---|---|\n");
    // Only the setups that ran (`BENCH_SETUPS` may leave some out).
    let ran = |setups: Vec<Setup>| -> Vec<Setup> {
        setups
            .into_iter()
            .filter(|setup| runs.contains_key(setup))
            .collect()
    };
    for setup in ran(Setup::all()) {
        let (rps, rps_lo, rps_hi) = stat(setup, |r| r.rps);
        let (p50, ..) = stat(setup, |r| r.p50_us);
        let (p99, ..) = stat(setup, |r| r.p99_us);
        let (cpu, cpu_lo, cpu_hi) = stat(setup, |r| r.cpu_us_per_request);
        let (steal, ..) = stat(setup, |r| r.steal_percent);
        let (load, ..) = stat(setup, |r| r.load_average);
        let errors: u64 = runs
            .get(&setup)
            .map_or(0, |r| r.iter().map(|x| x.errors).sum());
        out.push_str(&format!(
            "| {} | {rps:.0} ({rps_lo:.0}–{rps_hi:.0}) | {p50:.0} | {p99:.0} | {cpu:.2} ({cpu_lo:.2}–{cpu_hi:.2}) | {steal:.1} | {load:.1} | {errors} |\n",
            setup.label()
        ));
    }
    let (native_rps, ..) = stat(Setup::Native, |r| r.rps);
    let (native_cpu, ..) = stat(Setup::Native, |r| r.cpu_us_per_request);
    let (floor_cpu, ..) = stat(Setup::Floor, |r| r.cpu_us_per_request);
    out.push_str("\nFrom the medians:\n\n");
    for setup in ran(Setup::compared()) {
        let (rps, ..) = stat(setup, |r| r.rps);
        let (cpu, ..) = stat(setup, |r| r.cpu_us_per_request);
        out.push_str(&format!(
            "- {}: throughput {:.3} of (b); CPU {:+.2} µs/req over (b), {:+.2} µs/req over the floor (e)\n",
            setup.label(),
            rps / native_rps,
            cpu - native_cpu,
            cpu - floor_cpu
        ));
    }
    // The machine is shared and drifts between rounds: the same comparisons paired within each
    // round (setups run back to back), then the median over rounds.
    let rounds_run = runs.get(&Setup::Native).map_or(0, Vec::len);
    let paired = |setup: Setup, f: fn(&Run, &Run, &Run) -> f64| -> f64 {
        let mut values: Vec<f64> = (0..rounds_run)
            .filter_map(|i| {
                let (x, b, e) = (
                    runs.get(&setup)?.get(i)?,
                    runs.get(&Setup::Native)?.get(i)?,
                    runs.get(&Setup::Floor)?.get(i)?,
                );
                Some(f(x, b, e))
            })
            .collect();
        median(&mut values)
    };
    out.push_str("\nPaired within each round (median over rounds):\n\n");
    for setup in ran(Setup::compared()) {
        out.push_str(&format!(
            "- {}: throughput {:.3} of (b); CPU {:+.2} µs/req over (b), {:+.2} µs/req over the floor (e)\n",
            setup.label(),
            paired(setup, |x, b, _| x.rps / b.rps),
            paired(setup, |x, b, _| x.cpu_us_per_request - b.cpu_us_per_request),
            paired(setup, |x, _, e| x.cpu_us_per_request - e.cpu_us_per_request),
        ));
    }
    // The spread of the paired difference over the rounds: the cost table of BENCHMARKS.md
    // gives each feature's price over the floor with it.
    out.push_str(
        "\nCPU over the floor (e), paired within each round: median (min–max over rounds):\n\n",
    );
    for setup in ran(Setup::compared()) {
        let mut values: Vec<f64> = (0..rounds_run)
            .filter_map(|i| {
                let x = runs.get(&setup)?.get(i)?;
                let e = runs.get(&Setup::Floor)?.get(i)?;
                Some(x.cpu_us_per_request - e.cpu_us_per_request)
            })
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push_str(&format!(
            "- {}: {:+.2} µs/req ({lo:+.2} to {hi:+.2})\n",
            setup.label(),
            median(&mut values)
        ));
    }
    // Runs during which the hypervisor gave other guests little of the machine: when steal is
    // high, every setup's CPU per request inflates (cache and memory bandwidth are shared too),
    // by up to 3× here.
    let quiet = |setup: Setup, f: fn(&Run) -> f64| -> (f64, usize) {
        let mut values: Vec<f64> = runs
            .get(&setup)
            .map(|r| {
                r.iter()
                    .filter(|run| run.steal_percent < QUIET_STEAL_PERCENT)
                    .map(f)
                    .collect()
            })
            .unwrap_or_default();
        let n = values.len();
        (median(&mut values), n)
    };
    out.push_str(&format!(
        "\nQuiet runs only (steal under {QUIET_STEAL_PERCENT} %), medians:\n\n| setup | quiet runs | req/s | front CPU µs/req |\n|---|---|---|---|\n"
    ));
    for setup in ran(Setup::all()) {
        let (rps, n) = quiet(setup, |r| r.rps);
        let (cpu, _) = quiet(setup, |r| r.cpu_us_per_request);
        out.push_str(&format!(
            "| {} | {n} | {rps:.0} | {cpu:.2} |\n",
            setup.label()
        ));
    }
    let (quiet_native_rps, _) = quiet(Setup::Native, |r| r.rps);
    let (quiet_native_cpu, _) = quiet(Setup::Native, |r| r.cpu_us_per_request);
    let (quiet_floor_cpu, _) = quiet(Setup::Floor, |r| r.cpu_us_per_request);
    out.push('\n');
    for setup in ran(Setup::compared()) {
        let (rps, _) = quiet(setup, |r| r.rps);
        let (cpu, _) = quiet(setup, |r| r.cpu_us_per_request);
        out.push_str(&format!(
            "- {}: throughput {:.3} of (b); CPU {:+.2} µs/req over (b), {:+.2} µs/req over the floor (e)\n",
            setup.label(),
            rps / quiet_native_rps,
            cpu - quiet_native_cpu,
            cpu - quiet_floor_cpu
        ));
    }
    out.push('\n');
    let mut millis: Vec<f64> = propagation.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let max = millis.iter().copied().fold(0.0, f64::max);
    out.push_str(&format!(
        "- ECDS: config file renamed into place → first request routed by it: median {:.0} ms, max {max:.0} ms ({} pushes)\n",
        median(&mut millis),
        propagation.len()
    ));
    for (name, bytes) in sizes {
        out.push_str(&format!(
            "- {name}: {bytes} bytes ({:.1} KiB)\n",
            *bytes as f64 / 1024.0
        ));
    }
    out
}
