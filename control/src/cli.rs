//! canaryctl's command line: the clap definitions of every command and its arguments, in the
//! library so tests can parse arguments (`Cli::try_parse_from`) without the binary.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::admin::DEFAULT_ADMIN;
use crate::ecds::EcdsFile;
use crate::hooks::{NotifyFormat, OnGateFailure};
use crate::kubectl::Kubectl;
use crate::rollout::OnInterrupt;
use crate::wasmplugin::WASMPLUGIN_ENV;

/// The ECDS file of the shipped Envoy setup, relative to the repository root.
pub const DEFAULT_ECDS: &str = "envoy/ecds/canary-filter.yaml";

/// The environment variable that names the ECDS file (read as `--ecds`'s default, and by
/// [`ecds_path`] for the commands whose `--ecds` conflicts with `--config`).
pub const ECDS_ENV: &str = "CANARY_ECDS";

/// The ECDS file to read when neither `--config` nor `--ecds` is given: `$CANARY_ECDS`, else
/// [`DEFAULT_ECDS`].
pub fn ecds_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::var_os(ECDS_ENV).map_or_else(|| PathBuf::from(DEFAULT_ECDS), PathBuf::from)
    })
}

/// Canary routing for Envoy and Istio: validate, explain, change and watch the canary filter's
/// configuration. Changes go to the mesh config itself: Envoy's ECDS file (written whole, by
/// atomic rename) or the Istio resources.
#[derive(Parser)]
#[command(name = "canaryctl", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

// One value per process, parsed once: its size does not matter, and boxing the rollout's
// arguments would only complicate every match on it.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Cmd {
    /// Check configurations with the filter's own validation (JSON config or ECDS file).
    Validate(ValidateArgs),
    /// Show which version a request gets, which rule decided, the key and its bucket.
    Explain(ExplainArgs),
    /// Change weights, the seed, pins or the default version, previewing who moves.
    Set(SetArgs),
    /// All non-default weights to 0, in one step (pins stay, for testers).
    Rollback(WriteArgs),
    /// A version takes all traffic (100 % of every split).
    Promote(PromoteArgs),
    /// Remove a version that no split or rule can reach any more.
    Retire(RetireArgs),
    /// Go back to the configuration before the last change.
    Undo(UndoArgs),
    /// The per-version table from Envoy's admin endpoints, or Prometheus for one service.
    Status(StatusArgs),
    /// Render the Istio resources (WasmPlugin, DestinationRule, VirtualService).
    Istio(IstioArgs),
    /// Step the canary through a plan, judging it against stable each interval; promote or
    /// roll back. Exit 0 promoted, 3 rolled back, 1 error or stopped. `rollout resume` and
    /// `rollout abort` answer a rollout paused by --pause-at.
    Rollout(RolloutCommand),
}

// The arguments of each command (no doc comments: a struct's doc would replace the command's
// help, which comes from its variant above).

#[derive(Args)]
pub struct ValidateArgs {
    /// Files: the filter's JSON, or an ECDS YAML file holding it.
    #[arg(required_unless_present = "wasmplugin")]
    pub files: Vec<PathBuf>,
    /// Also the live Istio WasmPlugin NAMESPACE/NAME (its spec.pluginConfig), through kubectl.
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
}

#[derive(Args)]
pub struct PromoteArgs {
    /// The version (default: the only non-default one).
    pub version: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Args)]
pub struct RetireArgs {
    /// The version to remove.
    pub version: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Args)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RolloutCommand {
    #[command(subcommand)]
    pub action: Option<RolloutAction>,
    #[command(flatten)]
    pub run: RolloutArgs,
}

#[derive(Subcommand)]
pub enum RolloutAction {
    /// Let the rollout paused at a --pause-at weight go on to its next step.
    Resume(PauseArgs),
    /// Roll back the rollout paused at a --pause-at weight.
    Abort(PauseArgs),
}

#[derive(Args)]
pub struct PauseArgs {
    /// The ECDS file of the paused rollout (its pause state is next to it, in .canaryctl/).
    #[arg(long, env = ECDS_ENV, default_value = DEFAULT_ECDS)]
    pub ecds: PathBuf,
    /// The WasmPlugin NAMESPACE/NAME of the paused rollout (its pause state is in .canaryctl/
    /// of the directory the rollout was started in).
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME", conflicts_with = "ecds")]
    pub wasmplugin: Option<String>,
    /// The canary of the paused rollout to answer (needed when rollouts of several canaries
    /// are paused on the target).
    #[arg(long)]
    pub canary: Option<String>,
}

#[derive(Args)]
pub struct RolloutArgs {
    /// Weights to step through, increasing.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10,25,50,100")]
    pub steps: Vec<f64>,
    /// Time per interval (30s, 2m, 1500ms).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Wait after each push before the interval starts: longer than Envoy's stats flush and the
    /// Prometheus scrape interval, so no request routed by the previous weight is counted.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// The version to roll out (default: the only non-default one).
    #[arg(long)]
    pub canary: Option<String>,
    /// Ramp this rule's split instead of the top-level weights.
    #[arg(long)]
    pub rule: Option<String>,
    /// Ramp this feature's percent instead of a version's weight, judging the requests with
    /// the feature on against those with it off.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["canary", "rule"])]
    pub feature: Option<String>,
    /// Responses each of canary and stable needs at a step before the step can pass.
    #[arg(long, default_value_t = 100)]
    pub min_requests: u64,
    /// Intervals each step lasts at least before it can pass (more evidence at low weights).
    #[arg(long, default_value_t = 3)]
    pub min_intervals: u32,
    /// Chance, over the whole rollout, of rolling back a canary that is within the margins
    /// (the checks share it; the evidence is valid whenever the rollout stops).
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// The canary's 5xx rate may be this many times stable's (plus --error-margin): 1.5 lets
    /// 1 % become 1.6 % and fails 1 % becoming 3 %.
    #[arg(long, default_value_t = 1.5)]
    pub error_ratio: f64,
    /// Allowed excess of the canary's 5xx rate over --error-ratio × stable's, percentage
    /// points: the floor for a stable near 0 % (0.1: from 0 %, up to 0.1 % is allowed).
    #[arg(long, default_value_t = 0.1)]
    pub error_margin: f64,
    /// Ceiling of the canary's 5xx rate, percent: fails the canary only when it is also worse
    /// than stable (100 turns it off).
    #[arg(long, default_value_t = 5.0)]
    pub max_error_rate: f64,
    /// Allowed excess of the canary's latency over stable's, ms (at every latency: canary no
    /// slower than stable plus this).
    #[arg(long, default_value_t = 10.0)]
    pub latency_margin_ms: f64,
    /// The smallest 5xx regression the rollout must be able to catch before it promotes, as a
    /// multiple of the allowed rate (--error-ratio × stable + --error-margin): the last step
    /// before 100 % holds until the canary has served enough requests to catch it in about 90 %
    /// of rollouts (the hold says how many). 0 turns it off.
    #[arg(long, default_value_t = 1.8)]
    pub detect: f64,
    /// Intervals without enough data at one step before stopping (the weight stays).
    #[arg(long, default_value_t = 20)]
    pub max_holds: u32,
    /// Failed reads of the source in a row before rolling back.
    #[arg(long, default_value_t = 3)]
    pub max_failed_reads: u32,
    /// What Ctrl-C (SIGINT), SIGTERM or SIGHUP does: hold the current weight, or roll back;
    /// either way the rollout records an `interrupted` event and its summary, and exits 1
    /// (held) or 3 (rolled back).
    #[arg(long, value_enum, default_value = "hold")]
    pub on_interrupt: OnInterrupt,
    /// Read metrics from Prometheus (http://host:port) instead of the admin endpoints; each
    /// push then waits until every proxy of the service Prometheus scrapes runs it.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// The service whose metrics are read (the `canary_service` label) [default: the
    /// configuration's `service`]; refused when the configuration names another.
    #[arg(long)]
    pub service: Option<String>,
    /// Envoy admin endpoint(s): the metrics source (summed) unless --prometheus, and the first
    /// confirms each push to the ECDS file.
    #[arg(long, env = "CANARY_ADMIN", value_delimiter = ',')]
    pub admin: Vec<String>,
    /// How long the fleet (every --admin, or every proxy of the service in --prometheus) has
    /// to report running each push [default: 10 s; with --prometheus, twice the scrape
    /// interval Prometheus reports for the service's proxies + 10 s for istiod's push].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub fleet_timeout: Option<Duration>,
    /// Audit log, JSON lines [default: .canaryctl/rollout-audit.jsonl next to the ECDS file].
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Print the plan and who moves at the first step; write nothing, start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the rollout's events on standard output, one JSON object a line (the lines for
    /// people go to standard error).
    #[arg(long)]
    pub json: bool,
    /// POST every event to this URL, fire and forget (repeatable).
    #[arg(long, value_name = "URL")]
    pub notify: Vec<String>,
    /// The notification's body: the event's JSON, or Slack's {"text": ...}.
    #[arg(long, value_enum, default_value = "json")]
    pub notify_format: NotifyFormat,
    /// How long one notification may take before it is given up, with a warning.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub notify_timeout: Duration,
    /// Before each step, POST the context here and wait for a 2xx; other answers hold.
    #[arg(long, value_name = "URL")]
    pub gate_step: Option<String>,
    /// Before the promotion, POST the context here and wait for a 2xx; other answers hold.
    #[arg(long, value_name = "URL")]
    pub gate_promote: Option<String>,
    /// How long a gate has to answer; past it the gate has failed (--on-gate-failure).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub gate_timeout: Duration,
    /// Refusals in a row, one per interval, after which a gate has failed.
    #[arg(long, default_value_t = 3)]
    pub gate_max_refusals: u32,
    /// What a failed gate does: roll back, or stop with the weight where it is.
    #[arg(long, value_enum, default_value = "rollback")]
    pub on_gate_failure: OnGateFailure,
    /// Pause once the step at this weight has passed, until `canaryctl rollout resume` (or
    /// `abort`) from another terminal (repeatable, or comma-separated).
    #[arg(long, value_name = "WEIGHT", value_delimiter = ',')]
    pub pause_at: Vec<f64>,
    /// A checks file (YAML): your own PromQL checks, judged beside the built-in ones (needs
    /// --prometheus; docs/guide/rollouts.md, "Your own checks").
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// One check of your own: NAME='{bad: QUERY, total: QUERY, margin: PP}' and the other
    /// fields of a checks file's check, as YAML (repeatable).
    #[arg(long, value_name = "NAME=SPEC")]
    pub check: Vec<String>,
    /// A dark canary first: copy PCT % of the safe requests (GET and HEAD unless the
    /// configuration's `mirror` section says otherwise) to the canary, its answers discarded,
    /// and judge the copies against stable before any user is routed to it; a pass removes
    /// the mirror and starts the steps, a failure removes it and rolls back.
    #[arg(long, value_name = "PCT")]
    pub mirror: Option<f64>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Where the configuration lives: the ECDS file (the default), or an Istio WasmPlugin.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// The ECDS file Envoy watches.
    #[arg(long, env = ECDS_ENV, default_value = DEFAULT_ECDS)]
    pub ecds: PathBuf,
    /// The Istio WasmPlugin NAMESPACE/NAME whose spec.pluginConfig is the configuration,
    /// read and replaced through kubectl (instead of the ECDS file).
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME", conflicts_with = "ecds")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
    /// How long to wait for another canaryctl's lock on the file (10s, 500ms) before giving up.
    #[arg(long, env = "CANARY_LOCK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,
    /// Write the file even if it is read-only (no write bit for anyone); its mode is kept.
    #[arg(long)]
    pub force: bool,
}

/// How kubectl reaches the cluster (kubectl honours KUBECONFIG without these).
#[derive(Args, Clone, Default)]
pub struct KubectlArgs {
    /// With --wasmplugin: the kubeconfig context kubectl uses.
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// With --wasmplugin: the kubeconfig file kubectl reads.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

impl KubectlArgs {
    /// The kubectl these flags describe.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl {
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }
}

impl TargetArgs {
    /// The ECDS file, with its lock timeout and `--force`.
    pub fn file(&self) -> EcdsFile {
        EcdsFile::new(&self.ecds)
            .with_lock_timeout(self.lock_timeout)
            .with_force(self.force)
    }
}

#[derive(Args, Clone)]
pub struct Confirm {
    /// Envoy admin endpoint(s): the first confirms the change with its ECDS counters (accepted
    /// or rejected), then every one must report running it; without any, canaryctl writes and
    /// does not wait.
    #[arg(long, env = "CANARY_ADMIN", value_delimiter = ',')]
    pub admin: Vec<String>,
    /// Prometheus (http://host:port) scraping the proxies: wait until every proxy of the
    /// configuration's service reports running the change (instead of each --admin).
    #[arg(long)]
    pub prometheus: Option<String>,
    /// How long the fleet (every --admin, or every proxy of the service in --prometheus) has
    /// to report running the change [default: 10 s; with --prometheus, twice the scrape
    /// interval Prometheus reports for the service's proxies + 10 s for istiod's push].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub fleet_timeout: Option<Duration>,
}

#[derive(Args, Clone)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub confirm: Confirm,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct SetArgs {
    /// VERSION=PERCENT, for example canary=25 (repeatable).
    #[arg(long = "weight", value_name = "VERSION=PERCENT", value_parser = parse_weight)]
    pub weights: Vec<(String, f64)>,
    /// Set the weights of this rule's split instead of the top-level one.
    #[arg(long, requires = "weights")]
    pub rule: Option<String>,
    /// A new sticky seed: a fresh cohort.
    #[arg(long)]
    pub seed: Option<u32>,
    /// RULE=VERSION: make the rule pin the version (a new rule needs --header or --cookie).
    #[arg(long, value_name = "RULE=VERSION", value_parser = parse_pair)]
    pub pin: Option<(String, String)>,
    /// With --pin for a new rule: the header NAME=VALUE that selects it.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair, requires = "pin", conflicts_with = "cookie")]
    pub header: Option<(String, String)>,
    /// With --pin for a new rule: the cookie NAME=VALUE that selects it.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pair, requires = "pin")]
    pub cookie: Option<(String, String)>,
    /// Remove this rule.
    #[arg(long, value_name = "RULE")]
    pub unpin: Option<String>,
    /// Make this version the default.
    #[arg(long = "default", value_name = "VERSION")]
    pub default_version: Option<String>,
    /// VERSION=CLUSTER: point a version at another Envoy cluster (a new deployment).
    #[arg(long, value_name = "VERSION=CLUSTER", value_parser = parse_pair)]
    pub cluster: Vec<(String, String)>,
    /// NAME=PERCENT: turn a feature on for this percent of users (declared if new; repeatable).
    #[arg(long = "feature", value_name = "NAME=PERCENT", value_parser = parse_weight)]
    pub features: Vec<(String, f64)>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The filter's JSON configuration (instead of the ECDS file).
    #[arg(long, conflicts_with = "ecds")]
    pub config: Option<PathBuf>,
    /// The ECDS file [default: envoy/ecds/canary-filter.yaml, or $CANARY_ECDS].
    #[arg(long)]
    pub ecds: Option<PathBuf>,
    /// The Istio WasmPlugin NAMESPACE/NAME to take the configuration from, through kubectl
    /// (--config and --ecds, given, win over it).
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
    /// A request header, "name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A cookie, "name=value" (repeatable; sent in one cookie header).
    #[arg(long = "cookie", value_name = "NAME=VALUE")]
    pub cookies: Vec<String>,
    /// The request's region (sent in the configuration's region header).
    #[arg(long)]
    pub region: Option<String>,
    /// The proxy's own region (node.locality.region).
    #[arg(long, conflicts_with = "bootstrap")]
    pub proxy_region: Option<String>,
    /// Read the proxy's region from this Envoy bootstrap.
    #[arg(long)]
    pub bootstrap: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Envoy admin endpoint(s), summed (repeatable).
    #[arg(long, env = "CANARY_ADMIN", default_value = DEFAULT_ADMIN, value_delimiter = ',')]
    pub admin: Vec<String>,
    /// Read the table from Prometheus (http://host:port) instead, summed over every proxy of
    /// one service.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Only this service's metrics (the `canary_service` label; "" for a configuration without
    /// `service`) [default: every service with admin endpoints; with --prometheus, the
    /// `service` of the ECDS file's configuration].
    #[arg(long)]
    pub service: Option<String>,
    /// The ECDS file whose configuration names the service, with --prometheus [default:
    /// envoy/ecds/canary-filter.yaml, or $CANARY_ECDS].
    #[arg(long)]
    pub ecds: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECONDS until Ctrl-C, showing each version's rates over the refresh
    /// interval (req/s, 5xx %, latency).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
    /// Also show the configuration of the Istio WasmPlugin NAMESPACE/NAME, through kubectl.
    #[arg(long, env = WASMPLUGIN_ENV, value_name = "NAMESPACE/NAME")]
    pub wasmplugin: Option<String>,
    #[command(flatten)]
    pub kubectl: KubectlArgs,
    /// With --watch: stop after this many refreshes.
    #[arg(long, requires = "watch")]
    pub count: Option<u64>,
    /// Only the requests of this rule label (a rule's name, or `weights` for the top-level
    /// split, `default` for those no rule or split placed).
    #[arg(long)]
    pub rule: Option<String>,
}

#[derive(Args)]
pub struct IstioArgs {
    /// The filter's JSON configuration (instead of the ECDS file).
    #[arg(long, conflicts_with = "ecds")]
    pub config: Option<PathBuf>,
    /// The ECDS file to take the configuration from [default: envoy/ecds/canary-filter.yaml].
    #[arg(long)]
    pub ecds: Option<PathBuf>,
    /// WasmPlugin name.
    #[arg(long, default_value = "canary-filter")]
    pub name: String,
    /// Namespace of the resources.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Workload selector KEY=VALUE of the calling workloads (repeatable).
    #[arg(long = "selector", value_parser = parse_pair, required = true)]
    pub selector: Vec<(String, String)>,
    /// Module location: oci://registry/image:tag or file:///path/plugin.wasm.
    #[arg(long)]
    pub url: String,
    /// sha256 of the module.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Filter phase.
    #[arg(long, default_value = "STATS")]
    pub phase: String,
    /// Priority within the phase.
    #[arg(long)]
    pub priority: Option<i64>,
    /// The service host routed (VirtualService and DestinationRule), and the plugin's `hosts`:
    /// it routes calls to this service only.
    #[arg(long)]
    pub host: String,
    /// Pod label that tells versions apart.
    #[arg(long, default_value = "version")]
    pub version_label: String,
    /// VERSION=VALUE where the pod label value differs from the version's name (repeatable).
    #[arg(long = "label-value", value_parser = parse_pair)]
    pub label_values: Vec<(String, String)>,
    /// The Istio release of the mesh, X.Y or X.Y.Z: the API versions it serves are rendered
    /// (networking.istio.io/v1 from 1.22, v1beta1 before); refused before 1.20.5, and for
    /// 1.21.0 (their proxies lack the early header mutation the EnvoyFilter needs).
    #[arg(long, value_name = "X.Y[.Z]", default_value = crate::istio_version::DEFAULT_ISTIO_VERSION)]
    pub istio_version: crate::istio_version::IstioVersion,
    /// The WasmPlugin's imagePullPolicy, IfNotPresent or Always [default: IfNotPresent, so no
    /// write of the WasmPlugin, a rollout step included, makes the sidecars fetch the module
    /// again].
    #[arg(long, value_name = "POLICY")]
    pub pull_policy: Option<crate::module_pull::PullPolicy>,
    /// The Secret (in the WasmPlugin's namespace) with the registry's credentials
    /// (imagePullSecret).
    #[arg(long, value_name = "SECRET")]
    pub pull_secret: Option<String>,
    /// Pipe the resources to `kubectl apply -f -`.
    #[arg(long)]
    pub apply: bool,
}

pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

pub fn parse_weight(text: &str) -> Result<(String, f64), String> {
    let (version, percent) = parse_pair(text)?;
    let percent: f64 = percent
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{percent:?} is not a number"))?;
    Ok((version, percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("canaryctl").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn set_takes_repeated_weights_and_pairs() {
        let Ok(Cmd::Set(args)) = parse(&[
            "set",
            "--weight",
            "canary=25%",
            "--weight",
            " stable = 75",
            "--cluster",
            "canary=canary-v2",
            "--ecds",
            "x.yaml",
            "--dry-run",
        ]) else {
            panic!("set did not parse");
        };
        assert_eq!(
            args.weights,
            [("canary".to_string(), 25.0), ("stable".to_string(), 75.0)]
        );
        assert_eq!(
            args.cluster,
            [("canary".to_string(), "canary-v2".to_string())]
        );
        assert_eq!(args.write.target.ecds, PathBuf::from("x.yaml"));
        assert!(args.write.dry_run);
    }

    #[test]
    fn usage_errors_are_refused_by_clap() {
        let kind = |args: &[&str]| parse(args).err().map(|err| err.kind());
        assert_eq!(
            kind(&["set", "--weight", "canary"]),
            Some(clap::error::ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["set", "--rule", "beta"]),
            Some(clap::error::ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["explain", "--config", "a.json", "--ecds", "b.yaml"]),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            kind(&["validate"]),
            Some(clap::error::ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(kind(&["--help"]), Some(clap::error::ErrorKind::DisplayHelp));
    }

    #[test]
    fn rollout_defaults_are_the_documented_ones() {
        let Ok(Cmd::Rollout(RolloutCommand {
            action: None,
            run: args,
        })) = parse(&["rollout", "--admin", "127.0.0.1:9901"])
        else {
            panic!("rollout did not parse");
        };
        assert_eq!(args.steps, [1.0, 5.0, 10.0, 25.0, 50.0, 100.0]);
        assert_eq!(args.interval, Duration::from_secs(60));
        assert_eq!(args.settle, Duration::from_secs(2));
        assert_eq!((args.min_requests, args.min_intervals), (100, 3));
        assert_eq!((args.max_holds, args.max_failed_reads), (20, 3));
        assert_eq!(args.alpha, 0.01);
        assert_eq!(args.admin, ["127.0.0.1:9901"]);
        assert_eq!(args.on_interrupt, OnInterrupt::Hold);
        assert!(!args.json && args.notify.is_empty() && args.pause_at.is_empty());
        assert_eq!(args.gate_timeout, Duration::from_secs(10));
        assert_eq!(args.gate_max_refusals, 3);
        assert_eq!(args.on_gate_failure, OnGateFailure::Rollback);
        assert_eq!(args.notify_format, NotifyFormat::Json);
    }

    #[test]
    fn rollout_resume_and_abort_are_subcommands_that_take_no_rollout_flags() {
        let Ok(Cmd::Rollout(RolloutCommand {
            action: Some(RolloutAction::Resume(resume)),
            ..
        })) = parse(&["rollout", "resume", "--ecds", "m/ecds.yaml"])
        else {
            panic!("rollout resume did not parse");
        };
        assert_eq!(resume.ecds, PathBuf::from("m/ecds.yaml"));
        assert!(matches!(
            parse(&["rollout", "abort"]),
            Ok(Cmd::Rollout(RolloutCommand {
                action: Some(RolloutAction::Abort(_)),
                ..
            }))
        ));
        assert!(parse(&["rollout", "--steps", "5,100", "resume"]).is_err());
        let Ok(Cmd::Rollout(RolloutCommand { run, .. })) = parse(&[
            "rollout",
            "--pause-at",
            "10,25",
            "--pause-at",
            "50",
            "--notify",
            "http://a",
            "--notify",
            "http://b",
        ]) else {
            panic!("rollout did not parse");
        };
        assert_eq!(run.pause_at, [10.0, 25.0, 50.0]);
        assert_eq!(run.notify, ["http://a", "http://b"]);
    }

    #[test]
    fn promote_and_retire_take_the_version_positionally() {
        let Ok(Cmd::Promote(promote)) = parse(&["promote"]) else {
            panic!("promote did not parse");
        };
        assert_eq!(promote.version, None);
        let Ok(Cmd::Retire(retire)) = parse(&["retire", "stable"]) else {
            panic!("retire did not parse");
        };
        assert_eq!(retire.version, "stable");
        let Ok(Cmd::Status(status)) = parse(&["status", "--watch"]) else {
            panic!("status did not parse");
        };
        assert_eq!(status.watch, Some(2.0));
    }

    #[test]
    fn pairs_and_weights() {
        assert_eq!(parse_pair("a = b"), Ok(("a".to_string(), "b".to_string())));
        assert!(parse_pair("=b").is_err());
        assert!(parse_pair("ab").is_err());
        assert_eq!(parse_weight("canary=5%"), Ok(("canary".to_string(), 5.0)));
        assert_eq!(
            parse_weight("canary=five"),
            Err("\"five\" is not a number".to_string())
        );
    }

    #[test]
    fn the_wasmplugin_is_a_target_of_its_own() {
        let Ok(Cmd::Set(args)) = parse(&[
            "set",
            "--seed",
            "1",
            "--wasmplugin",
            "shop/canary-filter",
            "--context",
            "prod",
            "--kubeconfig",
            "k.yaml",
        ]) else {
            panic!("set --wasmplugin did not parse");
        };
        assert_eq!(
            args.write.target.wasmplugin.as_deref(),
            Some("shop/canary-filter")
        );
        assert_eq!(args.write.target.kubectl.context.as_deref(), Some("prod"));
        assert_eq!(
            args.write.target.kubectl.kubeconfig,
            Some(PathBuf::from("k.yaml"))
        );
        let kind = |args: &[&str]| parse(args).err().map(|err| err.kind());
        assert_eq!(
            kind(&["undo", "--wasmplugin", "a/b", "--ecds", "x.yaml"]),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
        // validate needs files unless it reads a WasmPlugin.
        assert!(matches!(
            parse(&["validate", "--wasmplugin", "a/b"]),
            Ok(Cmd::Validate(_))
        ));
    }

    #[test]
    fn the_ecds_path_given_wins() {
        assert_eq!(
            ecds_path(Some(PathBuf::from("given.yaml"))),
            PathBuf::from("given.yaml")
        );
    }
}
