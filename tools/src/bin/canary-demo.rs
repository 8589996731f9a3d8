//! `make demo`: the shipped Envoy setup with the canary filter, a burst of sample traffic, the
//! per-version table from Envoy's own stats, then serving on 127.0.0.1:10000 until Ctrl-C.
//! `DEMO_EXIT=1` exits right after the table (for scripts).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use canary_control::metrics::admin::Admin;
use canary_control::metrics::table::{read_versions, render_table};
use canary_harness::envoy::EnvoyProcess;
use canary_harness::mesh::{
    Layout, Mesh, ECDS_YAML, FRONT_ADMIN_PORT, FRONT_PORT, UPSTREAMS_ADMIN_PORT,
};
use canary_tools::{on_interrupt, Result};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    // Ctrl-C (and SIGTERM) wake the main thread, which then stops both Envoys by their PIDs.
    let stop_rx = on_interrupt()?;

    println!(
        "starting the demo upstreams and the front Envoy (envoy/upstreams.yaml, envoy/front.yaml)"
    );
    let mesh = Mesh::start(Layout::Shipped, None).map_err(|err| {
        format!(
            "{err}\n(the demo uses ports {FRONT_PORT}, {FRONT_ADMIN_PORT}, {UPSTREAMS_ADMIN_PORT} and \
             10101-10108 on 127.0.0.1: is another demo still running?)"
        )
    })?;
    println!(
        "front Envoy pid {} on {} (admin http://{}), upstreams pid {}; filter config: {ECDS_YAML}\n",
        mesh.front().pid(),
        mesh.listen(),
        mesh.front().admin(),
        mesh.upstreams().map_or(0, EnvoyProcess::pid),
    );

    let started = Instant::now();
    let sent = send_sample_traffic(&mesh)?;
    println!(
        "sent {sent} requests in {:.1} s: 600 users, 200 users from eu-west-1, 100 keyed by cookie, \
         50 testers (x-canary: always), 50 opted out (cookie canary=never)\n",
        started.elapsed().as_secs_f64()
    );
    // Histograms reach the admin endpoint at the stats flush (1 s in envoy/front.yaml).
    std::thread::sleep(Duration::from_millis(1_500));

    let versions = read_versions(&Admin::new(&mesh.front().admin_url()), None, None)?;
    println!("{}", render_table(&versions));
    println!("requests by rule (the `canary_rule` label):");
    for (version, stats) in &versions {
        let rules: Vec<String> = stats
            .by_rule
            .iter()
            .map(|(rule, n)| format!("{rule}={n}"))
            .collect();
        println!("  {version:<10} {}", rules.join("  "));
    }
    println!();

    if std::env::var("DEMO_EXIT").is_ok_and(|v| !v.is_empty() && v != "0") {
        println!("DEMO_EXIT is set: stopping Envoy.");
        return Ok(());
    }
    let listen = mesh.listen();
    let admin = mesh.front().admin();
    println!("serving on http://{listen} until Ctrl-C. Try:");
    println!("  curl -si http://{listen}/ -H 'x-user-id: alice' | grep -i x-upstream");
    println!("  curl -s  http://{listen}/ -H 'x-canary: always'             # a tester: always the canary");
    println!("  curl -s  http://{listen}/ -H 'x-region: eu-west-1' -H 'x-user-id: bob'  # the EU gets 50%");
    println!("  curl -s  http://{listen}/ -H 'cookie: uid=carol; canary=never'        # opted out");
    println!("  curl -s  http://{listen}/ -H 'x-canary-cluster: app-v2'   # spoofing: ignored");
    println!("  curl -s  'http://{admin}/stats/prometheus' | grep ^canary_");
    println!(
        "  edit {ECDS_YAML} (write a copy, then mv it over): Envoy applies it without a restart"
    );
    let _ = stop_rx.recv();
    println!(
        "\nstopping Envoy (front pid {}, upstreams pid {})",
        mesh.front().pid(),
        mesh.upstreams().map_or(0, EnvoyProcess::pid)
    );
    drop(mesh);
    Ok(())
}

fn send_sample_traffic(mesh: &Mesh) -> Result<usize> {
    let mut sent = 0;
    let mut send = |headers: &[(&str, &str)]| -> Result<()> {
        let reply = mesh.get(headers)?;
        if reply.upstream().is_none() {
            return Err(
                format!("no upstream answered {headers:?}: status {}", reply.status).into(),
            );
        }
        sent += 1;
        Ok(())
    };
    for i in 0..600 {
        send(&[("x-user-id", &format!("user-{i}"))])?;
    }
    for i in 0..200 {
        send(&[
            ("x-user-id", &format!("eu-user-{i}")),
            ("x-region", "eu-west-1"),
        ])?;
    }
    for i in 0..100 {
        send(&[("cookie", &format!("theme=dark; uid=cookie-user-{i}"))])?;
    }
    for i in 0..50 {
        send(&[
            ("x-user-id", &format!("tester-{i}")),
            ("x-canary", "always"),
        ])?;
    }
    for i in 0..50 {
        send(&[("cookie", &format!("uid=careful-{i}; canary=never"))])?;
    }
    Ok(sent)
}
