//! `canaryctl`: validate, explain, change and watch the canary filter's configuration.
//! Exit codes: 0 ok, 1 error, 2 usage.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use canary_control::admin::{Admin, DEFAULT_ADMIN};
use canary_control::ecds::{self, EcdsFile, Update};
use canary_control::istio::{self, IstioOptions};
use canary_control::judge::JudgeSettings;
use canary_control::push::{Applied, Pusher, DEFAULT_FLEET_TIMEOUT};
use canary_control::rollout::{End, OnInterrupt, Rollout};
use canary_control::source::Source;
use canary_control::{edit, explain, movement, status};
use canary_filter::{CanaryConfig, RoutingPlan};
use clap::{Args, Parser, Subcommand};

/// Canary routing for Envoy and Istio: validate, explain, change and watch the canary filter's
/// configuration. Changes go to the mesh config itself: Envoy's ECDS file (written whole, by
/// atomic rename) or the Istio resources.
#[derive(Parser)]
#[command(name = "canaryctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check configurations with the filter's own validation (JSON config or ECDS file).
    Validate {
        /// Files: the filter's JSON, or an ECDS YAML file holding it.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show which version a request gets, which rule decided, the key and its bucket.
    Explain(ExplainArgs),
    /// Change weights, the seed, pins or the default version, previewing who moves.
    Set(SetArgs),
    /// All non-default weights to 0, in one step (pins stay, for testers).
    Rollback(WriteArgs),
    /// A version takes all traffic (100 % of every split).
    Promote {
        /// The version (default: the only non-default one).
        version: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Remove a version that no split or rule can reach any more.
    Retire {
        /// The version to remove.
        version: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Go back to the configuration before the last change.
    Undo {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// The per-version table from Envoy's admin endpoint.
    Status(StatusArgs),
    /// Render the Istio resources (WasmPlugin, DestinationRule, VirtualService).
    Istio(IstioArgs),
    /// Step the canary through a plan, judging it against stable each interval; promote or
    /// roll back. Exit 0 promoted, 3 rolled back, 1 error or stopped.
    Rollout(RolloutArgs),
}

#[derive(Args)]
struct RolloutArgs {
    /// Weights to step through, increasing.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10,25,50,100")]
    steps: Vec<f64>,
    /// Time per interval (30s, 2m, 1500ms).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Wait after each push before the interval starts: longer than Envoy's stats flush and the
    /// Prometheus scrape interval, so no request routed by the previous weight is counted.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// The version to roll out (default: the only non-default one).
    #[arg(long)]
    canary: Option<String>,
    /// Ramp this rule's split instead of the top-level weights.
    #[arg(long)]
    rule: Option<String>,
    /// Responses each of canary and stable needs at a step before the step can pass.
    #[arg(long, default_value_t = 100)]
    min_requests: u64,
    /// Intervals each step lasts at least before it can pass (more evidence at low weights).
    #[arg(long, default_value_t = 3)]
    min_intervals: u32,
    /// Chance, over the whole rollout, of rolling back a canary that is within the margins
    /// (the checks share it; the evidence is valid whenever the rollout stops).
    #[arg(long, default_value_t = 0.01)]
    alpha: f64,
    /// Allowed excess of the canary's 5xx rate over stable's, percentage points.
    #[arg(long, default_value_t = 1.0)]
    error_margin: f64,
    /// Ceiling of the canary's 5xx rate, percent: fails the canary only when it is also worse
    /// than stable (100 turns it off).
    #[arg(long, default_value_t = 5.0)]
    max_error_rate: f64,
    /// Allowed excess of the canary's latency over stable's, ms (at every latency: canary no
    /// slower than stable plus this).
    #[arg(long, default_value_t = 10.0)]
    latency_margin_ms: f64,
    /// Intervals without enough data at one step before stopping (the weight stays).
    #[arg(long, default_value_t = 20)]
    max_holds: u32,
    /// Failed reads of the source in a row before rolling back.
    #[arg(long, default_value_t = 3)]
    max_failed_reads: u32,
    /// What Ctrl-C does: hold the current weight, or roll back.
    #[arg(long, value_enum, default_value = "hold")]
    on_interrupt: OnInterrupt,
    /// Read metrics from Prometheus (http://host:port) instead of the admin endpoints.
    #[arg(long)]
    prometheus: Option<String>,
    /// Envoy admin endpoint(s): the metrics source (summed) unless --prometheus, and the first
    /// confirms each push.
    #[arg(long, env = "CANARY_ADMIN", value_delimiter = ',')]
    admin: Vec<String>,
    /// Audit log, JSON lines [default: .canaryctl/rollout-audit.jsonl next to the ECDS file].
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Print the plan and who moves at the first step; write nothing, start nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Clone)]
struct Target {
    /// The ECDS file Envoy watches.
    #[arg(
        long,
        env = "CANARY_ECDS",
        default_value = DEFAULT_ECDS
    )]
    ecds: PathBuf,
    /// How long to wait for another canaryctl's lock on the file (10s, 500ms) before giving up.
    #[arg(long, env = "CANARY_LOCK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// Write the file even if it is read-only (no write bit for anyone); its mode is kept.
    #[arg(long)]
    force: bool,
}

impl Target {
    fn file(&self) -> EcdsFile {
        EcdsFile::new(&self.ecds)
            .with_lock_timeout(self.lock_timeout)
            .with_force(self.force)
    }
}

#[derive(Args, Clone)]
struct Confirm {
    /// Envoy admin endpoint(s): the first confirms the change with its ECDS counters (accepted
    /// or rejected), then every one must report running it; without any, canaryctl writes and
    /// does not wait.
    #[arg(long, env = "CANARY_ADMIN", value_delimiter = ',')]
    admin: Vec<String>,
    /// How long every Envoy given by --admin has to report running the change.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    fleet_timeout: Duration,
}

#[derive(Args, Clone)]
struct WriteArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    confirm: Confirm,
    /// Show what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct SetArgs {
    /// VERSION=PERCENT, for example canary=25 (repeatable).
    #[arg(long = "weight", value_name = "VERSION=PERCENT", value_parser = parse_weight)]
    weights: Vec<(String, f64)>,
    /// Set the weights of this rule's split instead of the top-level one.
    #[arg(long, requires = "weights")]
    rule: Option<String>,
    /// A new sticky seed: a fresh cohort.
    #[arg(long)]
    seed: Option<u32>,
    /// RULE=VERSION: make the rule pin the version (a new rule needs --header or --cookie).
    #[arg(long, value_name = "RULE=VERSION", value_parser = parse_pair)]
    pin: Option<(String, String)>,
    /// With --pin for a new rule: the header NAME=VALUE that selects it.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair, requires = "pin", conflicts_with = "cookie")]
    header: Option<(String, String)>,
    /// With --pin for a new rule: the cookie NAME=VALUE that selects it.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair, requires = "pin")]
    cookie: Option<(String, String)>,
    /// Remove this rule.
    #[arg(long, value_name = "RULE")]
    unpin: Option<String>,
    /// Make this version the default.
    #[arg(long = "default", value_name = "VERSION")]
    default_version: Option<String>,
    /// VERSION=CLUSTER: point a version at another Envoy cluster (a new deployment).
    #[arg(long, value_name = "VERSION=CLUSTER", value_parser = parse_pair)]
    cluster: Vec<(String, String)>,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
struct ExplainArgs {
    /// The filter's JSON configuration (instead of the ECDS file).
    #[arg(long, conflicts_with = "ecds")]
    config: Option<PathBuf>,
    /// The ECDS file [default: envoy/ecds/canary-filter.yaml, or $CANARY_ECDS].
    #[arg(long)]
    ecds: Option<PathBuf>,
    /// A request header, "name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A cookie, "name=value" (repeatable; sent in one cookie header).
    #[arg(long = "cookie", value_name = "NAME=VALUE")]
    cookies: Vec<String>,
    /// The request's region (sent in the configuration's region header).
    #[arg(long)]
    region: Option<String>,
    /// The proxy's own region (node.locality.region).
    #[arg(long, conflicts_with = "bootstrap")]
    proxy_region: Option<String>,
    /// Read the proxy's region from this Envoy bootstrap.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct StatusArgs {
    /// Envoy admin endpoint(s), summed (repeatable).
    #[arg(long, env = "CANARY_ADMIN", default_value = DEFAULT_ADMIN, value_delimiter = ',')]
    admin: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Refresh every SECONDS until Ctrl-C.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
}

#[derive(Args)]
struct IstioArgs {
    /// The filter's JSON configuration (instead of the ECDS file).
    #[arg(long, conflicts_with = "ecds")]
    config: Option<PathBuf>,
    /// The ECDS file to take the configuration from [default: envoy/ecds/canary-filter.yaml].
    #[arg(long)]
    ecds: Option<PathBuf>,
    /// WasmPlugin name.
    #[arg(long, default_value = "canary-filter")]
    name: String,
    /// Namespace of the resources.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Workload selector KEY=VALUE of the calling workloads (repeatable).
    #[arg(long = "selector", value_parser = parse_pair, required = true)]
    selector: Vec<(String, String)>,
    /// Module location: oci://registry/image:tag or file:///path/plugin.wasm.
    #[arg(long)]
    url: String,
    /// sha256 of the module.
    #[arg(long)]
    sha256: Option<String>,
    /// Filter phase.
    #[arg(long, default_value = "STATS")]
    phase: String,
    /// Priority within the phase.
    #[arg(long)]
    priority: Option<i64>,
    /// The service host routed (VirtualService and DestinationRule).
    #[arg(long)]
    host: String,
    /// Pod label that tells versions apart.
    #[arg(long, default_value = "version")]
    version_label: String,
    /// VERSION=VALUE where the pod label value differs from the version's name (repeatable).
    #[arg(long = "label-value", value_parser = parse_pair)]
    label_values: Vec<(String, String)>,
    /// Pipe the resources to `kubectl apply -f -`.
    #[arg(long)]
    apply: bool,
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

fn parse_weight(text: &str) -> Result<(String, f64), String> {
    let (version, percent) = parse_pair(text)?;
    let percent: f64 = percent
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{percent:?} is not a number"))?;
    Ok((version, percent))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<RolloutEnded>() {
            // The rollout printed its own summary.
            Some(RolloutEnded(End::RolledBack(_))) => ExitCode::from(EXIT_ROLLED_BACK),
            Some(_) => ExitCode::FAILURE,
            None => {
                eprintln!("canaryctl: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::Validate { files } => validate(&files),
        Cmd::Explain(args) => run_explain(args),
        Cmd::Set(args) => set(args),
        Cmd::Rollback(write) => {
            let update = apply(&write, edit::rollback)?;
            if update.written {
                println!(
                    "rolled back: every split sends all keys to `{}`; pins stay",
                    update.after.default
                );
            }
            Ok(())
        }
        Cmd::Promote { version, write } => {
            let update = apply(&write, |config| edit::promote(config, version.as_deref()))?;
            if update.written || write.dry_run {
                let promoted = version.unwrap_or_else(|| {
                    update
                        .after
                        .weights
                        .iter()
                        .find(|(_, w)| **w >= 100.0)
                        .map(|(v, _)| v.clone())
                        .unwrap_or_default()
                });
                let old = &update.after.default;
                let done = if write.dry_run { "would take" } else { "takes" };
                println!("`{promoted}` {done} all traffic of every split.");
                println!("to retire `{old}` once you are sure:");
                println!("  canaryctl set --default {promoted}   # routing unchanged: `{promoted}` becomes the default");
                println!("  canaryctl retire {old}   # then it leaves the configuration; remove its cluster and deployment");
            }
            Ok(())
        }
        Cmd::Retire { version, write } => {
            let update = apply(&write, |config| edit::retire(config, &version))?;
            if update.written {
                println!("retired `{version}`: you can now remove its cluster from the mesh");
            }
            Ok(())
        }
        Cmd::Undo { target, confirm } => {
            let pusher = pusher(&target, &confirm);
            let (update, applied) = pusher.undo()?;
            print!("{}", preview(&update)?);
            println!(
                "restored the previous version of {}",
                pusher.file.path().display()
            );
            report(&pusher, &applied);
            Ok(())
        }
        Cmd::Status(args) => run_status(args),
        Cmd::Istio(args) => run_istio(args),
        Cmd::Rollout(args) => run_rollout(args),
    }
}

/// The ECDS file of the shipped Envoy setup, relative to the repository root.
const DEFAULT_ECDS: &str = "envoy/ecds/canary-filter.yaml";

/// Exit code of a rolled-back rollout.
const EXIT_ROLLED_BACK: u8 = 3;

/// Carries the rollout's end to `main`, for its exit code.
#[derive(Debug)]
struct RolloutEnded(End);

impl std::fmt::Display for RolloutEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            End::Promoted(weight) => write!(f, "promoted at {weight}%"),
            End::RolledBack(reason) => write!(f, "rolled back: {reason}"),
            End::Stopped(_, reason) => write!(f, "stopped: {reason}"),
            End::DryRun => write!(f, "dry run"),
        }
    }
}

impl std::error::Error for RolloutEnded {}

fn run_rollout(args: RolloutArgs) -> Result<()> {
    let file = args.target.file();
    let config = file.read()?.config;
    let canary = match args.canary {
        Some(canary) => canary,
        None => edit::the_canary(&config, "rolled out", " with --canary")?,
    };
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let source = match &args.prometheus {
        Some(url) => Source::prometheus(url),
        None if admins.is_empty() => {
            bail!("give --admin (or CANARY_ADMIN) or --prometheus: the rollout needs metrics")
        }
        None => Source::Admin(admins.clone()),
    };
    let audit = match args.audit {
        Some(path) => path,
        None => {
            let dir = file
                .path()
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            dir.join(".canaryctl").join("rollout-audit.jsonl")
        }
    };
    let rollout = Rollout {
        steps: args.steps,
        interval: args.interval,
        settle: args.settle,
        canary,
        rule: args.rule,
        judge: JudgeSettings {
            min_requests: args.min_requests,
            min_intervals: args.min_intervals,
            alpha: args.alpha,
            error_margin: args.error_margin,
            max_error_rate: args.max_error_rate,
            latency_margin_ms: args.latency_margin_ms,
        },
        max_holds: args.max_holds,
        max_failed_reads: args.max_failed_reads,
        on_interrupt: args.on_interrupt,
        audit,
        dry_run: args.dry_run,
    };
    rollout.check()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let pusher = Pusher {
        file,
        admin: admins.first().cloned(),
        fleet: admins,
        fleet_timeout: DEFAULT_FLEET_TIMEOUT,
    };
    match rollout.run(&pusher, &source, &interrupted)? {
        End::Promoted(_) | End::DryRun => Ok(()),
        end => Err(RolloutEnded(end).into()),
    }
}

fn validate(files: &[PathBuf]) -> Result<()> {
    let mut failed = 0;
    for path in files {
        match load_config(path) {
            Ok(config) => {
                let plan = RoutingPlan::try_from(&config).map_err(|err| anyhow!("{err}"))?;
                println!(
                    "{}: valid ({} versions, default `{}`, {} rules)",
                    path.display(),
                    plan.versions().len(),
                    config.default,
                    config.rules.len()
                );
            }
            Err(err) => {
                failed += 1;
                eprintln!("{}: {err:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} configurations are invalid", files.len());
    }
    Ok(())
}

/// The filter configuration in `path`: an ECDS file (a document with `resources`, read in the
/// format its extension names, as Envoy reads it) or plain JSON.
fn load_config(path: &Path) -> Result<CanaryConfig> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let looks_like_ecds = serde_yaml_ng::from_slice::<serde_json::Value>(&bytes)
        .map(|doc| doc.get("resources").is_some())
        .unwrap_or(false);
    if looks_like_ecds {
        Ok(ecds::parse_as(&bytes, ecds::Format::of(path)?)?.config)
    } else {
        let config = CanaryConfig::from_json(&bytes).map_err(|err| anyhow!("{err}"))?;
        RoutingPlan::try_from(&config).map_err(|err| anyhow!("{err}"))?;
        Ok(config)
    }
}

fn config_from(config: Option<PathBuf>, ecds_file: Option<PathBuf>) -> Result<CanaryConfig> {
    match (config, ecds_file) {
        (Some(path), _) => load_config(&path),
        (None, Some(path)) => Ok(EcdsFile::new(path).read()?.config),
        (None, None) => {
            let path = std::env::var_os("CANARY_ECDS")
                .map_or_else(|| PathBuf::from(DEFAULT_ECDS), PathBuf::from);
            Ok(EcdsFile::new(path).read()?.config)
        }
    }
}

fn run_explain(args: ExplainArgs) -> Result<()> {
    let config = config_from(args.config, args.ecds)?;
    let plan = RoutingPlan::try_from(&config).map_err(|err| anyhow!("{err}"))?;
    let mut request = explain::describe_request(&args.headers, &args.cookies)?;
    if let Some(region) = &args.region {
        let Some(spec) = &config.region else {
            bail!("--region: the configuration has no `region` header; use --proxy-region for the proxy's locality");
        };
        request = request.header(&spec.header, region.as_str());
    }
    request.proxy_region = match (&args.proxy_region, &args.bootstrap) {
        (Some(region), _) => Some(region.clone()),
        (None, Some(path)) => {
            let doc: serde_json::Value = serde_yaml_ng::from_slice(
                &fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            )?;
            doc["node"]["locality"]["region"]
                .as_str()
                .map(str::to_string)
        }
        (None, None) => None,
    };
    let explanation = explain::explain(&config, &plan, &request);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", explain::render(&explanation));
    }
    Ok(())
}

fn set(args: SetArgs) -> Result<()> {
    if args.weights.is_empty()
        && args.seed.is_none()
        && args.pin.is_none()
        && args.unpin.is_none()
        && args.default_version.is_none()
        && args.cluster.is_empty()
    {
        bail!("nothing to change: give --weight, --seed, --pin, --unpin, --default or --cluster");
    }
    apply(&args.write, |config| {
        let mut next = config.clone();
        if !args.weights.is_empty() {
            next = edit::set_weights(&next, &args.weights, args.rule.as_deref())?;
        }
        if let Some(seed) = args.seed {
            next = edit::set_seed(&next, seed)?;
        }
        if let Some((rule, version)) = &args.pin {
            let when = match (&args.header, &args.cookie) {
                (Some((name, value)), _) => {
                    Some(edit::PinWhen::Header(name.clone(), value.clone()))
                }
                (None, Some((name, value))) => {
                    Some(edit::PinWhen::Cookie(name.clone(), value.clone()))
                }
                (None, None) => None,
            };
            next = edit::pin(&next, rule, version, when)?;
        }
        if let Some(rule) = &args.unpin {
            next = edit::unpin(&next, rule)?;
        }
        if let Some(version) = &args.default_version {
            next = edit::set_default(&next, version)?;
        }
        for (version, cluster) in &args.cluster {
            next = edit::set_cluster(&next, version, cluster)?;
        }
        Ok(next)
    })?;
    Ok(())
}

fn pusher(target: &Target, confirm: &Confirm) -> Pusher {
    let fleet: Vec<Admin> = confirm.admin.iter().map(|a| Admin::new(a)).collect();
    Pusher {
        file: target.file(),
        admin: fleet.first().cloned(),
        fleet,
        fleet_timeout: confirm.fleet_timeout,
    }
}

fn report(pusher: &Pusher, applied: &Applied) {
    match applied {
        Applied::Accepted(after, fleet) => {
            let base = pusher.admin.as_ref().map_or("", Admin::base);
            println!("Envoy at {base} accepted it ({} ms)", after.as_millis());
            if let Some(fleet) = fleet {
                println!(
                    "{} of {} Envoys run it ({} ms)",
                    fleet.running,
                    fleet.total,
                    fleet.after.as_millis()
                );
            }
        }
        Applied::Unconfirmed => println!(
            "Envoy applies it within a second (pass --admin or set CANARY_ADMIN to confirm)"
        ),
        Applied::NotWritten => {}
    }
}

/// Validates, previews, writes (unless a dry run) and confirms with Envoy when asked.
fn apply(
    write: &WriteArgs,
    change: impl Fn(&CanaryConfig) -> Result<CanaryConfig>,
) -> Result<Update> {
    let pusher = pusher(&write.target, &write.confirm);
    let path = pusher.file.path().display().to_string();
    let (update, applied) = pusher.push(write.dry_run, change)?;
    print!("{}", preview(&update)?);
    if write.dry_run {
        println!("dry run: {path} not written");
    } else if !update.written {
        println!("no change: {path} left as it was");
    } else {
        println!("wrote {path} (the previous version is kept for `canaryctl undo`)");
        report(&pusher, &applied);
    }
    Ok(update)
}

fn preview(update: &Update) -> Result<String> {
    movement::preview(&update.before, &update.after)
}

fn run_status(args: StatusArgs) -> Result<()> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let read = || -> Result<_> {
        let mut total = std::collections::BTreeMap::new();
        for admin in &admins {
            for (version, stats) in status::read_versions(admin)? {
                let entry: &mut status::VersionStats = total.entry(version).or_default();
                status::add_into(entry, &stats);
            }
        }
        Ok(total)
    };
    loop {
        let versions = read()?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&status::summarize(&versions))?
            );
        } else {
            if args.watch.is_some() && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            let sources: Vec<&str> = admins.iter().map(Admin::base).collect();
            println!("{}", sources.join(", "));
            print!("{}", status::render_table(&versions));
        }
        std::io::stdout().flush()?;
        match args.watch {
            Some(seconds) if seconds > 0.0 => std::thread::sleep(Duration::from_secs_f64(seconds)),
            Some(_) => bail!("--watch needs a number of seconds above 0"),
            None => return Ok(()),
        }
    }
}

fn run_istio(args: IstioArgs) -> Result<()> {
    let config = config_from(args.config, args.ecds)?;
    let options = IstioOptions {
        name: args.name,
        namespace: args.namespace,
        selector: args.selector,
        url: args.url,
        sha256: args.sha256,
        phase: args.phase,
        priority: args.priority,
        host: args.host,
        version_label: args.version_label,
        label_values: args.label_values,
    };
    let yaml = istio::render(&config, &options)?;
    if !args.apply {
        print!("{yaml}");
        return Ok(());
    }
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|err| anyhow!("cannot run kubectl ({err}): install it, or drop --apply and apply the printed resources yourself"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin for kubectl"))?
        .write_all(yaml.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("kubectl apply failed ({status})");
    }
    Ok(())
}
