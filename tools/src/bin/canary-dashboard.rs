//! `canary-dashboard`: a picture (SVG) of a Grafana dashboard drawn from a real Prometheus's
//! data, without Grafana. `render` draws from any Prometheus; `demo` (`make
//! dashboard-picture`) first starts the demo's Envoys, a Prometheus scraping the front and
//! traffic to a canary that answers 20 % 503, ramps the canary's weight, and stops them all by
//! their PIDs when the picture is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use canary_harness::envoy::repo_root;
use canary_harness::mesh::{configuration_of, Mesh, Push, ECDS_YAML};
use canary_harness::prometheus::Prometheus;
use canary_harness::{http_agent, Result};
use canary_tools::dashboard::{picture, Dashboard, TimeRange};

#[derive(Parser)]
#[command(
    name = "canary-dashboard",
    about = "Draw a Grafana dashboard to SVG from a real Prometheus's data (no Grafana)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draws the dashboard from the Prometheus at --prometheus.
    Render {
        /// The Prometheus to query, e.g. http://127.0.0.1:9090.
        #[arg(long)]
        prometheus: String,
        /// The last this many minutes.
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// The data source's scrape interval in seconds (Grafana's minimum interval).
        #[arg(long, default_value_t = 15.0)]
        scrape_interval: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Starts the demo's Envoys, a Prometheus and traffic to a failing canary, then draws.
    Demo {
        /// Seconds of samples to gather before drawing.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// The dashboard (Grafana JSON).
    #[arg(long, default_value = "envoy/monitoring/canary-dashboard.json")]
    dashboard: PathBuf,
    /// Where to write the SVG.
    #[arg(long, default_value = "docs/dashboard.svg")]
    out: PathBuf,
    /// A variable's value, NAME=VALUE (All for all); else the dashboard's saved value.
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Draw "No data" in a panel whose query returns nothing instead of failing.
    #[arg(long)]
    allow_empty: bool,
}

fn parse_var(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("canary-dashboard: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Render {
            prometheus,
            minutes,
            scrape_interval,
            common,
        } => {
            let end = now();
            let range = TimeRange {
                start: end - minutes * 60.0,
                end,
                scrape_interval,
            };
            draw(
                &common,
                &canary_control::metrics::prometheus::Prometheus::new(&prometheus),
                &range,
            )
        }
        Command::Demo { seconds, common } => demo(seconds, &common),
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn in_repo(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        repo_root().join(path)
    }
}

fn draw(
    common: &Common,
    prometheus: &canary_control::metrics::prometheus::Prometheus,
    range: &TimeRange,
) -> Result<()> {
    let dashboard = Dashboard::read(&in_repo(&common.dashboard))?;
    let svg = picture(
        &dashboard,
        prometheus,
        &common.vars,
        range,
        common.allow_empty,
    )?;
    let out = in_repo(&common.out);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, svg)?;
    println!(
        "wrote {} ({} panels of {:?})",
        out.display(),
        dashboard.panels.len(),
        dashboard.title
    );
    Ok(())
}

/// The canary's weight over the demo: a third of the time at each.
const RAMP: [u32; 3] = [10, 25, 50];

fn demo(seconds: u64, common: &Common) -> Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;

    // The shipped demo configuration (rules for testers, opt-outs and the EU), its canary on
    // the upstream that answers 20 % of requests with a 503.
    let shipped = std::fs::read_to_string(repo_root().join(ECDS_YAML))?;
    let mut config: serde_json::Value = serde_json::from_str(&configuration_of(&shipped)?)?;
    let canary = config["versions"]
        .as_array_mut()
        .and_then(|versions| versions.iter_mut().find(|v| v["name"] == "canary"))
        .ok_or("the shipped configuration has no version named canary")?;
    canary["cluster"] = "app-v2-errors".into();
    let with_weight = |config: &mut serde_json::Value, weight: u32| {
        config["weights"]["canary"] = weight.into();
        config.to_string()
    };

    let mesh = Mesh::isolated(&with_weight(&mut config, RAMP[0]))?;
    let prometheus = Prometheus::start(mesh.front().admin())?;
    println!(
        "front Envoy pid {} on {}, Prometheus pid {} on {}; canary on app-v2-errors (20 % 503) at {} %",
        mesh.front().pid(),
        mesh.listen(),
        prometheus.pid(),
        prometheus.url(),
        RAMP[0]
    );
    let traffic = Traffic::start(mesh.listen(), 3, Duration::from_secs(seconds + 120));

    // Samples gathered: Prometheus scrapes every second, so the count of the proxy's
    // configuration hash samples is the seconds of data it holds.
    let samples = || -> Result<u64> {
        let counted = prometheus.query("count_over_time(canary_config_hash[1h])")?;
        Ok(counted.first().map_or(0.0, |(_, n)| *n) as u64)
    };
    for (step, weight) in RAMP.iter().enumerate().skip(1) {
        let until = seconds * step as u64 / RAMP.len() as u64;
        wait_for(&interrupted, seconds + 60, || Ok(samples()? >= until))?;
        match mesh.push_config(&with_weight(&mut config, *weight))? {
            Push::Accepted => println!("{until} s of samples: canary weight {weight} %"),
            other => return Err(format!("Envoy did not accept weight {weight}: {other:?}").into()),
        }
    }
    wait_for(&interrupted, seconds + 60, || Ok(samples()? >= seconds))?;

    let end = now();
    let range = TimeRange {
        start: end - seconds as f64,
        end,
        scrape_interval: 1.0,
    };
    let drawn = draw(
        common,
        &canary_control::metrics::prometheus::Prometheus::new(&prometheus.url()),
        &range,
    );
    let (sent, by_status) = traffic.stop();
    println!("sent {sent} requests: {by_status}");
    println!(
        "stopping Prometheus (pid {}) and Envoy (front pid {})",
        prometheus.pid(),
        mesh.front().pid()
    );
    drop(prometheus);
    drop(mesh);
    drawn
}

/// Waits until `check` holds, asking every 250 ms, for at most `limit` seconds or until Ctrl-C.
fn wait_for(
    interrupted: &AtomicBool,
    limit: u64,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(limit);
    while !check()? {
        if interrupted.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if Instant::now() > deadline {
            return Err(format!("Prometheus did not gather the samples within {limit} s").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// The demo's mix of clients, sent in a loop until stopped (bounded in time and count): per 20
/// requests 12 users by `x-user-id`, 4 from `eu-west-1`, 2 keyed by cookie, a tester
/// (`x-canary: always`) and one opted out (cookie `canary=never`).
struct Traffic {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    sent: Arc<AtomicU64>,
    server_errors: Arc<AtomicU64>,
}

impl Traffic {
    fn start(target: std::net::SocketAddr, threads: usize, limit: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let server_errors = Arc::new(AtomicU64::new(0));
        let workers = (0..threads)
            .map(|worker| {
                let (stop, sent, server_errors) = (
                    Arc::clone(&stop),
                    Arc::clone(&sent),
                    Arc::clone(&server_errors),
                );
                std::thread::spawn(move || {
                    let agent = http_agent(Duration::from_secs(10));
                    let url = format!("http://{target}/");
                    let deadline = Instant::now() + limit;
                    let mut n: u64 = 0;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && n < 1_000_000
                    {
                        let user = format!("w{worker}-{}", n % 2_000);
                        let request = agent.get(&url);
                        let request = match n % 20 {
                            0..=11 => request.header("x-user-id", &user),
                            12..=15 => request
                                .header("x-user-id", &user)
                                .header("x-region", "eu-west-1"),
                            16..=17 => request.header("cookie", &format!("uid={user}")),
                            18 => request.header("x-canary", "always"),
                            _ => request.header("cookie", &format!("uid={user}; canary=never")),
                        };
                        if let Ok(reply) = request.call() {
                            if reply.status().is_server_error() {
                                server_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                        std::thread::sleep(Duration::from_millis(4));
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            workers,
            sent,
            server_errors,
        }
    }

    /// Stops the clients: requests sent, and a word on their answers.
    fn stop(mut self) -> (u64, String) {
        self.halt();
        let sent = self.sent.load(Ordering::Relaxed);
        let errors = self.server_errors.load(Ordering::Relaxed);
        (sent, format!("{errors} answered 5xx"))
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.halt();
    }
}
