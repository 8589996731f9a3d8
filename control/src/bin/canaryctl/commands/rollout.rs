//! `canaryctl rollout`: step the canary through a plan, judging it against stable each
//! interval; promote or roll back. `rollout resume` and `rollout abort` answer a rollout
//! paused at a `--pause-at` weight.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use canary_filter::metrics::CONFIG_HASH;
use canary_filter::CanaryConfig;

use crate::commands::prelude::*;
use crate::commands::ExitStatus;
use canary_control::config::edit;
use canary_control::mesh::push::Fleet;
use canary_control::mesh::target::Target;
use canary_control::mesh::wasmplugin::{parse_reference, WasmPlugin};
use canary_control::metrics::admin::Admin;
use canary_control::metrics::prometheus::{describe_service, Prometheus, FLEET_LOOKBACK};
use canary_control::metrics::source::Source;
use canary_control::metrics::stats::service_label;
use canary_control::rollout::checks::{Checks, Custom, Reader};
use canary_control::rollout::defaults;
use canary_control::rollout::hooks::{NotifyFormat, OnGateFailure};
use canary_control::rollout::judge::JudgeSettings;
use canary_control::rollout::pause::{self, PauseFile, PauseState, Request};
use canary_control::rollout::runs::RolloutPlace;
use canary_control::rollout::{End, Hooks, OnInterrupt, Rollout};

// The command line's names for the library's choices (the library knows no clap); each variant's
// doc is its help in `--help`.

/// What a termination signal (Ctrl-C's SIGINT, SIGTERM, SIGHUP) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnInterruptArg {
    /// Leave the canary at its current weight.
    Hold,
    /// Set the canary's weight to 0.
    Rollback,
}

impl From<OnInterruptArg> for OnInterrupt {
    fn from(arg: OnInterruptArg) -> OnInterrupt {
        match arg {
            OnInterruptArg::Hold => OnInterrupt::Hold,
            OnInterruptArg::Rollback => OnInterrupt::Rollback,
        }
    }
}

/// The body a notification hook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyFormatArg {
    /// The event's JSON object, as `rollout --json` prints it.
    Json,
    /// `{"text": "..."}`, one line for people (Slack's incoming webhooks, Mattermost, …).
    Slack,
}

impl From<NotifyFormatArg> for NotifyFormat {
    fn from(arg: NotifyFormatArg) -> NotifyFormat {
        match arg {
            NotifyFormatArg::Json => NotifyFormat::Json,
            NotifyFormatArg::Slack => NotifyFormat::Slack,
        }
    }
}

/// What to do when a gate refuses too often or does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnGateFailureArg {
    /// Set the canary's weight to 0.
    Rollback,
    /// Stop, leaving the weight where it is.
    Stop,
}

impl From<OnGateFailureArg> for OnGateFailure {
    fn from(arg: OnGateFailureArg) -> OnGateFailure {
        match arg {
            OnGateFailureArg::Rollback => OnGateFailure::Rollback,
            OnGateFailureArg::Stop => OnGateFailure::Stop,
        }
    }
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
    #[arg(long, value_delimiter = ',', default_value = defaults::STEPS)]
    pub steps: Vec<f64>,
    /// Time per interval (30s, 2m, 1500ms).
    #[arg(long, default_value = defaults::INTERVAL, value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Wait after each push before the interval starts: longer than Envoy's stats flush and the
    /// Prometheus scrape interval, so no request routed by the previous weight is counted.
    #[arg(long, default_value = defaults::SETTLE, value_parser = humantime::parse_duration)]
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
    #[arg(long, default_value_t = defaults::MIN_REQUESTS)]
    pub min_requests: u64,
    /// Intervals each step lasts at least before it can pass (more evidence at low weights).
    #[arg(long, default_value_t = defaults::MIN_INTERVALS)]
    pub min_intervals: u32,
    /// Chance, over the whole rollout, of rolling back a canary that is within the margins
    /// (the checks share it; the evidence is valid whenever the rollout stops).
    #[arg(long, default_value_t = defaults::ALPHA)]
    pub alpha: f64,
    /// The canary's 5xx rate may be this many times stable's (plus --error-margin): 1.5 lets
    /// 1 % become 1.6 % and fails 1 % becoming 3 %.
    #[arg(long, default_value_t = defaults::ERROR_RATIO)]
    pub error_ratio: f64,
    /// Allowed excess of the canary's 5xx rate over --error-ratio × stable's, percentage
    /// points: the floor for a stable near 0 % (0.1: from 0 %, up to 0.1 % is allowed).
    #[arg(long, default_value_t = defaults::ERROR_MARGIN)]
    pub error_margin: f64,
    /// Ceiling of the canary's 5xx rate, percent: fails the canary only when it is also worse
    /// than stable (100 turns it off).
    #[arg(long, default_value_t = defaults::MAX_ERROR_RATE)]
    pub max_error_rate: f64,
    /// Allowed excess of the canary's latency over stable's, ms (at every latency: canary no
    /// slower than stable plus this).
    #[arg(long, default_value_t = defaults::LATENCY_MARGIN_MS)]
    pub latency_margin_ms: f64,
    /// The smallest 5xx regression the rollout must be able to catch before it promotes, as a
    /// multiple of the allowed rate (--error-ratio × stable + --error-margin): the last step
    /// before 100 % holds until the canary has served enough requests to catch it in about 90 %
    /// of rollouts (the hold says how many). 0 turns it off.
    #[arg(long, default_value_t = defaults::DETECT)]
    pub detect: f64,
    /// Intervals without enough data at one step before stopping (the weight stays).
    #[arg(long, default_value_t = defaults::MAX_HOLDS)]
    pub max_holds: u32,
    /// Failed reads of the source in a row before rolling back.
    #[arg(long, default_value_t = defaults::MAX_FAILED_READS)]
    pub max_failed_reads: u32,
    /// What Ctrl-C (SIGINT), SIGTERM or SIGHUP does: hold the current weight, or roll back;
    /// either way the rollout records an `interrupted` event and its summary, and exits 1
    /// (held) or 3 (rolled back).
    #[arg(long, value_enum, default_value = "hold")]
    pub on_interrupt: OnInterruptArg,
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
    pub notify_format: NotifyFormatArg,
    /// How long one notification may take before it is given up, with a warning.
    #[arg(long, default_value = defaults::NOTIFY_TIMEOUT, value_parser = humantime::parse_duration)]
    pub notify_timeout: Duration,
    /// Before each step, POST the context here and wait for a 2xx; other answers hold.
    #[arg(long, value_name = "URL")]
    pub gate_step: Option<String>,
    /// Before the promotion, POST the context here and wait for a 2xx; other answers hold.
    #[arg(long, value_name = "URL")]
    pub gate_promote: Option<String>,
    /// How long a gate has to answer; past it the gate has failed (--on-gate-failure).
    #[arg(long, default_value = defaults::GATE_TIMEOUT, value_parser = humantime::parse_duration)]
    pub gate_timeout: Duration,
    /// Refusals in a row, one per interval, after which a gate has failed.
    #[arg(long, default_value_t = defaults::GATE_MAX_REFUSALS)]
    pub gate_max_refusals: u32,
    /// What a failed gate does: roll back, or stop with the weight where it is.
    #[arg(long, value_enum, default_value = "rollback")]
    pub on_gate_failure: OnGateFailureArg,
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

/// Runs the rollout until it ends (it prints its own summary; the end is the exit status), or
/// answers a paused one.
pub fn exec(command: RolloutCommand) -> Result<ExitStatus> {
    match command.action {
        Some(RolloutAction::Resume(args)) => answer(&args, Request::Resume),
        Some(RolloutAction::Abort(args)) => answer(&args, Request::Abort),
        None => run(command.run),
    }
}

/// `rollout resume` / `rollout abort`: writes the request where the paused rollout looks: the
/// rollout of `--canary`, else the one rollout waiting on the target (several waiting need
/// `--canary`).
fn answer(args: &PauseArgs, request: Request) -> Result<ExitStatus> {
    let place = match &args.wasmplugin {
        Some(reference) => {
            let (namespace, name) = parse_reference(reference)?;
            RolloutPlace::for_wasmplugin(&namespace, &name)
        }
        None => RolloutPlace::next_to(&args.ecds),
    };
    let file = match &args.canary {
        Some(canary) => place.pause_file(canary),
        None => the_paused(&place)?,
    };
    let state = file.request(request)?;
    let what = match request {
        Request::Resume => "goes on to its next step",
        Request::Abort => "rolls back",
    };
    if pause::is_running(state.pid) {
        println!(
            "the rollout of `{}` paused at {}% (pid {}) {what}",
            state.canary, state.weight, state.pid
        );
    } else {
        println!(
            "the rollout of `{}` paused at {}% (pid {}) is not running; the next rollout of \
             `{}` that reaches {}% {what} ({})",
            state.canary,
            state.weight,
            state.pid,
            state.canary,
            state.weight,
            file.path().display()
        );
    }
    Ok(ExitStatus::Success)
}

/// The pause state of the one rollout waiting in `place`; refused, naming them, when several
/// wait, and when none does.
fn the_paused(place: &RolloutPlace) -> Result<PauseFile> {
    let mut waiting: Vec<(PauseFile, PauseState)> = place
        .paused()?
        .into_iter()
        .filter(|(_, state)| state.request.is_none())
        .collect();
    match waiting.len() {
        0 => bail!(
            "nothing is paused: no rollout waits in {}",
            place.dir().display()
        ),
        1 => Ok(waiting.remove(0).0),
        _ => bail!(
            "{} rollouts are paused: {}; name the one to answer with --canary",
            waiting.len(),
            waiting
                .iter()
                .map(|(_, state)| format!(
                    "`{}` at {}% (pid {})",
                    state.canary, state.weight, state.pid
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn run(args: RolloutArgs) -> Result<ExitStatus> {
    let admins: Vec<Admin> = args.admin.iter().map(|a| Admin::new(a)).collect();
    let prometheus = args.prometheus.clone();
    // With a WasmPlugin the admin endpoints are the metrics source only; each step is
    // confirmed through Prometheus when given, as a write is (`canaryctl set --wasmplugin`).
    let target =
        Target::open(
            args.target
                .spec(&args.admin, prometheus.clone(), args.fleet_timeout, true),
        )?;
    let (config, _, warnings) = target.read_with_write_warnings()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let service = service(
        args.service.as_deref(),
        config.service.as_deref(),
        &target.describe(),
    )?;
    let custom = custom_checks(&args, prometheus.as_deref(), &service)?;
    let mut rollout = plan(args, &target, &config)?;
    rollout.custom = custom;
    let source = source(prometheus.as_deref(), &admins, &service)?;
    rollout.check()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // SIGINT, SIGTERM and SIGHUP alike (ctrlc's `termination` feature): --on-interrupt.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    // Held until the rollout ends: a second rollout of the same canary is refused, and `set`
    // or `rollback` say that this one runs.
    let _running = if rollout.dry_run {
        None
    } else {
        check_fleet(target.fleet(), &service)?;
        if let Some(custom) = &rollout.custom {
            custom.preflight(&rollout.canary, &config.default)?;
        }
        Some(RolloutPlace::of(&target).acquire(&rollout.canary, &target.describe())?)
    };
    Ok(exit_status(&rollout.run(&target, &source, &interrupted)?))
}

/// Before the first push: a fleet confirmed through Prometheus needs a Prometheus that answers
/// and knows at least one proxy of the service, or no push of the rollout could be confirmed
/// (nothing is written yet when this refuses).
pub fn check_fleet(fleet: &Fleet, service: &str) -> Result<()> {
    let Fleet::Prometheus(prometheus) = fleet else {
        return Ok(());
    };
    let proxies = prometheus
        .config_hashes(service)
        .context("nothing written")?;
    if proxies.is_empty() {
        bail!(
            "Prometheus {} knows no proxy of the service with {} (no {CONFIG_HASH} in the last \
             {FLEET_LOOKBACK}): is it scraping the proxies' /stats/prometheus? Nothing written",
            prometheus.base(),
            describe_service(service)
        );
    }
    Ok(())
}

/// The service whose series the rollout reads: the configuration's (`""` without one); a
/// `--service` naming another is refused, since the proxies running this configuration label
/// their series with its service only.
pub fn service(given: Option<&str>, configured: Option<&str>, target: &str) -> Result<String> {
    let configured = service_label(configured);
    match given {
        Some(given) if given != configured => bail!(
            "--service {given:?}: the configuration in {target} routes the service with {}, and \
             its proxies label their metrics so",
            describe_service(configured)
        ),
        _ => Ok(configured.to_string()),
    }
}

/// The operator's checks the flags give (`--checks`, `--check`), read from `--prometheus`.
pub fn custom_checks(
    args: &RolloutArgs,
    prometheus: Option<&str>,
    service: &str,
) -> Result<Option<Custom>> {
    let Some(checks) = Checks::load(args.checks.as_deref(), &args.check)? else {
        return Ok(None);
    };
    let Some(url) = prometheus else {
        bail!("--checks and --check are PromQL queries: give --prometheus, the server to ask");
    };
    Ok(Some(Custom {
        checks,
        reader: Reader {
            prometheus: Prometheus::new(url),
            service: service.to_string(),
            interval: args.interval,
        },
    }))
}

/// The exit status of a rollout that ended so.
pub fn exit_status(end: &End) -> ExitStatus {
    match end {
        End::Promoted(_) | End::DryRun => ExitStatus::Success,
        End::RolledBack(_) => ExitStatus::RolledBack,
        End::Stopped(..) => ExitStatus::Stopped,
    }
}

/// Where the rollout reads the metrics of `service`: Prometheus if given, else the admin
/// endpoints.
pub fn source(prometheus: Option<&str>, admins: &[Admin], service: &str) -> Result<Source> {
    let service = service.to_string();
    Ok(match prometheus {
        Some(url) => Source::Prometheus {
            prometheus: Prometheus::new(url),
            service,
        },
        None if admins.is_empty() => {
            bail!("give --admin (or CANARY_ADMIN) or --prometheus: the rollout needs metrics")
        }
        None => Source::Admin {
            admins: admins.to_vec(),
            service,
        },
    })
}

/// The rollout the flags describe, for `config`, the configuration in `target` (read first,
/// so that an unreadable one stops the rollout before anything else; it names the canary when
/// `--canary` does not).
pub fn plan(args: RolloutArgs, target: &Target, config: &CanaryConfig) -> Result<Rollout> {
    // A feature rollout names its feature as the canary (its "on" side).
    let canary = match (args.feature.clone(), args.canary) {
        (Some(feature), _) => feature,
        (None, Some(canary)) => canary,
        (None, None) => edit::the_canary(config, "rolled out", " with --canary")?,
    };
    let audit = match args.audit {
        Some(path) => path,
        None => match target {
            Target::EcdsFile(pusher) => default_audit(pusher.file.path()),
            Target::WasmPlugin { plugin, .. } => wasmplugin_audit(plugin),
        },
    };
    Ok(Rollout {
        steps: args.steps,
        interval: args.interval,
        settle: args.settle,
        rule: args.rule,
        feature: args.feature.is_some(),
        judge: JudgeSettings {
            min_requests: args.min_requests,
            min_intervals: args.min_intervals,
            alpha: args.alpha,
            error_ratio: args.error_ratio,
            error_margin: args.error_margin,
            max_error_rate: args.max_error_rate,
            latency_margin_ms: args.latency_margin_ms,
            detect: args.detect,
        },
        max_holds: args.max_holds,
        max_failed_reads: args.max_failed_reads,
        on_interrupt: args.on_interrupt.into(),
        audit,
        dry_run: args.dry_run,
        json: args.json,
        hooks: Hooks {
            notify: args.notify,
            notify_format: args.notify_format.into(),
            notify_timeout: args.notify_timeout,
            gate_step: args.gate_step,
            gate_promote: args.gate_promote,
            gate_timeout: args.gate_timeout,
            gate_max_refusals: args.gate_max_refusals,
            on_gate_failure: args.on_gate_failure.into(),
        },
        pause_at: args.pause_at,
        custom: None,
        mirror: args.mirror,
        pause_file: RolloutPlace::of(target).pause_file(&canary),
        canary,
    })
}

/// The audit log next to the ECDS file: `.canaryctl/rollout-audit.jsonl` in its directory.
pub fn default_audit(ecds: &Path) -> PathBuf {
    let dir = ecds
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    dir.join(".canaryctl").join("rollout-audit.jsonl")
}

/// The audit log of a rollout through a WasmPlugin: `.canaryctl/rollout-audit.NAMESPACE.NAME.jsonl`
/// in the current directory.
pub fn wasmplugin_audit(plugin: &WasmPlugin) -> PathBuf {
    PathBuf::from(".canaryctl").join(format!(
        "rollout-audit.{}.{}.jsonl",
        plugin.namespace, plugin.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_rollout_exits_3_and_a_stopped_one_1() {
        assert_eq!(exit_status(&End::DryRun).code(), 0);
        assert_eq!(exit_status(&End::Promoted(100.0)).code(), 0);
        assert_eq!(exit_status(&End::RolledBack("worse".into())).code(), 3);
        assert_eq!(exit_status(&End::Stopped(5.0, "holds".into())).code(), 1);
    }

    #[test]
    fn a_wasmplugin_rollout_pauses_in_the_current_directory() {
        let place = RolloutPlace::for_wasmplugin("shop", "canary-filter");
        assert_eq!(
            place.pause_file("canary").path(),
            Path::new(".canaryctl/rollout-pause.shop.canary-filter.canary.json")
        );
    }

    #[test]
    fn the_audit_log_sits_next_to_the_ecds_file() {
        assert_eq!(
            default_audit(Path::new("envoy/ecds/canary-filter.yaml")),
            PathBuf::from("envoy/ecds/.canaryctl/rollout-audit.jsonl")
        );
    }

    #[test]
    fn a_rollout_needs_a_source() {
        let err = source(None, &[], "").err().unwrap();
        assert!(err.to_string().starts_with("give --admin"));
        assert!(matches!(
            source(None, &[Admin::new("127.0.0.1:9901")], "a"),
            Ok(Source::Admin { service, .. }) if service == "a"
        ));
    }

    #[test]
    fn the_service_is_the_configurations_and_another_is_refused() {
        let file = "e.yaml";
        assert_eq!(service(None, Some("a"), file).unwrap(), "a");
        assert_eq!(service(Some("a"), Some("a"), file).unwrap(), "a");
        assert_eq!(service(None, None, file).unwrap(), "");
        let err = service(Some("b"), Some("a"), file).unwrap_err().to_string();
        assert!(
            err.starts_with("--service \"b\": the configuration in e.yaml routes the service with canary_service=\"a\""),
            "{err}"
        );
        let err = service(Some("b"), None, file).unwrap_err().to_string();
        assert!(err.contains("no canary_service label"), "{err}");
    }
}
