//! What the commands share, cargo's command-prelude style: the flags that name a target
//! (`--ecds`, `--wasmplugin`, kubectl's), confirm a write (`--admin`, `--prometheus`), or
//! preview it (`--dry-run`), their parsers, and the names every command module's arguments use.

pub use std::path::PathBuf;
pub use std::time::Duration;

pub use clap::{Args, Subcommand, ValueEnum};

pub use canary_control::mesh::ecds::{EcdsFile, DEFAULT_ECDS, ECDS_ENV};
pub use canary_control::mesh::kubectl::Kubectl;
pub use canary_control::mesh::target::TargetSpec;
pub use canary_control::mesh::wasmplugin::WASMPLUGIN_ENV;
pub use canary_control::metrics::admin::{Admin, DEFAULT_ADMIN};

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
    /// What these flags name, with the admin endpoints, Prometheus and fleet timeout the
    /// command was given ([`canary_control::mesh::target::Target::open`] builds the target from it).
    pub fn spec(
        &self,
        admins: &[String],
        prometheus: Option<String>,
        fleet_timeout: Option<Duration>,
        admins_read_metrics: bool,
    ) -> TargetSpec {
        TargetSpec {
            ecds: self.file(),
            wasmplugin: self
                .wasmplugin
                .clone()
                .map(|reference| (reference, self.kubectl.kubectl())),
            admins: admins.iter().map(|admin| Admin::new(admin)).collect(),
            admins_read_metrics,
            prometheus,
            fleet_timeout,
        }
    }

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
