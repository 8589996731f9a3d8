//! A real Prometheus (Debian's `prometheus` package) scraping front Envoys' `/stats/prometheus`
//! every second, in a temporary directory, stopped by its PID when dropped.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{http_agent, Result};

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    address: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (an Envoy admin address) every second.
    pub fn start(target: SocketAddr) -> Result<Prometheus> {
        Prometheus::start_with_rules(target, None)
    }

    /// As [`Prometheus::start`], evaluating the rules file `rules` every second.
    pub fn start_with_rules(target: SocketAddr, rules: Option<&Path>) -> Result<Prometheus> {
        Prometheus::start_scraping(&[target], rules)
    }

    /// Starts Prometheus scraping every one of `targets` (Envoy admin addresses) every second,
    /// in one job (`envoy`; each target is its own `instance`), evaluating `rules` if given.
    pub fn start_scraping(targets: &[SocketAddr], rules: Option<&Path>) -> Result<Prometheus> {
        Prometheus::start_scraping_every(targets, rules, Duration::from_secs(1))
    }

    /// As [`Prometheus::start_scraping`], scraping (and evaluating) every `interval` (whole
    /// seconds): 15 s is what Istio's sample Prometheus does.
    pub fn start_scraping_every(
        targets: &[SocketAddr],
        rules: Option<&Path>,
        interval: Duration,
    ) -> Result<Prometheus> {
        let binary = which("prometheus").ok_or(
            "prometheus not found on PATH: run `make prometheus` (it installs Debian's prometheus package)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("canary-prometheus-")
            .tempdir()?;
        let config = dir.path().join("prometheus.yml");
        let rule_files = match rules {
            Some(rules) => format!("rule_files:\n- {}\n", rules.display()),
            None => String::new(),
        };
        let targets = targets
            .iter()
            .map(|target| format!("'{target}'"))
            .collect::<Vec<_>>()
            .join(", ");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: {seconds}s\n  evaluation_interval: {seconds}s\n{rule_files}scrape_configs:\n\
                 - job_name: envoy\n  metrics_path: /stats/prometheus\n  static_configs:\n  - targets: [{targets}]\n",
                seconds = interval.as_secs().max(1),
            ),
        )?;
        // A free port: bound, read, released (Prometheus has no port-0 mode that reports back).
        let address = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("prometheus.log"))?)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it ties Prometheus's life to this process.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn()?;
        let mut prometheus = Prometheus {
            child,
            address,
            _dir: dir,
        };
        let agent = http_agent(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                let log = fs::read_to_string(prometheus._dir.path().join("prometheus.log"))
                    .unwrap_or_default();
                return Err(format!("prometheus exited with {status}:\n{log}").into());
            }
            let ready = agent
                .get(&format!("http://{address}/-/ready"))
                .call()
                .map(|reply| reply.status() == 200)
                .unwrap_or(false);
            if ready {
                return Ok(prometheus);
            }
            if Instant::now() > deadline {
                return Err("prometheus was not ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The series an instant query returns, as their label sets (with `__name__` when the
    /// series has one) and values; an error for a query Prometheus refuses. Read from the HTTP
    /// API here, not through canaryctl's client, which is among what the tests check.
    pub fn query(&self, expr: &str) -> Result<Vec<(serde_json::Value, f64)>> {
        let mut reply = http_agent(Duration::from_secs(10))
            .get(&format!("{}/api/v1/query", self.url()))
            .query("query", expr)
            .call()?;
        let answer: serde_json::Value = serde_json::from_str(&reply.body_mut().read_to_string()?)?;
        if answer["status"] != "success" {
            return Err(format!("Prometheus refused {expr:?}: {answer}").into());
        }
        let data = &answer["data"];
        if data["resultType"] != "vector" {
            return Err(format!("{expr:?} is not an instant vector: {data}").into());
        }
        data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| {
                // A sample is [time, "value"]; the value is text ("NaN" and "+Inf" among them).
                let value = series["value"][1]
                    .as_str()
                    .and_then(|text| text.parse::<f64>().ok())
                    .ok_or_else(|| format!("{expr:?}: a series without a value: {series}"))?;
                Ok((series["metric"].clone(), value))
            })
            .collect()
    }

    /// Waits (up to `timeout`) until Prometheus has scraped, from exactly `proxies` proxies of
    /// `service`, the `canary_config_hash` a filter publishes for the configuration document
    /// `config`.
    pub fn wait_for_config_hash(
        &self,
        service: &str,
        config: &str,
        proxies: usize,
        timeout: Duration,
    ) -> Result<()> {
        let want = f64::from(crate::mesh::config_hash_of(config)?);
        let query = format!("canary_config_hash{{canary_service=\"{service}\"}}");
        self.wait_until(timeout, &query, |series| {
            series.len() == proxies && series.iter().all(|(_, hash)| *hash == want)
        })
        .map_err(|err| format!("{err}: want {proxies} proxies at {want}").into())
    }

    /// Waits (up to `timeout`) until Prometheus's `up` says the target `instance` is down.
    pub fn wait_until_down(&self, instance: &str, timeout: Duration) -> Result<()> {
        let query = format!("up{{instance=\"{instance}\"}} == 0");
        self.wait_until(timeout, &query, |series| !series.is_empty())
    }

    /// Polls `query` until `done` holds for its series; an error quoting the last answer.
    fn wait_until(
        &self,
        timeout: Duration,
        query: &str,
        done: impl Fn(&[(serde_json::Value, f64)]) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let series = self.query(query)?;
            if done(&series) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{query} after {timeout:?}: {series:?}").into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Checks canaryctl's message for a change that `running` of `total` proxies confirmed
/// through Prometheus before `--fleet-timeout` (`timeout`, as given) passed, the proxy at
/// `stopped` (its scrape target) named as the one behind.
pub fn check_fleet_short(
    stderr: &str,
    running: usize,
    total: usize,
    timeout: &str,
    stopped: &str,
) -> Result<()> {
    for expected in [
        format!("{running} of {total} proxies on the new configuration"),
        format!("after {timeout}"),
        format!("envoy/{stopped} reports no"),
    ] {
        if !stderr.contains(&expected) {
            return Err(format!("no {expected:?} in: {stderr}").into());
        }
    }
    Ok(())
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|path| path.is_file())
}
