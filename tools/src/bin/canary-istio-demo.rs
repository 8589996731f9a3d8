//! `make istio-demo`: the Istio target without a cluster. A real Envoy with the filter (the
//! shipped setup, on free ports) and the stand-in for the Kubernetes API server holding the
//! WasmPlugin `default/canary-filter` with the shipped configuration; each update the stand-in
//! accepts is written into the ECDS file that Envoy watches, as istiod would push it. canaryctl
//! drives it through the real kubectl with the printed KUBECONFIG, until Ctrl-C.

use std::process::ExitCode;

use canary_harness::envoy::EnvoyProcess;
use canary_harness::kube::KubeApi;
use canary_harness::mesh::{Isolated, Layout, Mesh};
use canary_tools::{on_interrupt, Result};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("istio-demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    // Ctrl-C (and SIGTERM) wake the main thread, which then stops both Envoys by their PIDs.
    let stop_rx = on_interrupt()?;
    let mesh = Mesh::start(Layout::isolated(Isolated::default()), None)?;
    let api = KubeApi::start()?;
    let shipped = mesh.filter_configuration()?;
    api.create_wasmplugin("default", "canary-filter", serde_json::from_str(&shipped)?);
    api.istiod_writes_to(mesh.ecds_file());
    let listen = mesh.listen();
    let admin = mesh.front().admin();
    println!(
        "the stand-in API server: {} (WasmPlugin default/canary-filter)",
        api.url()
    );
    println!("a real Envoy on its ECDS file: listener {listen}, admin {admin}");
    println!(
        "ECDS file (written by the stand-in on each update): {}",
        mesh.ecds_file().display()
    );
    println!("\nin another shell:");
    println!(
        "  export KUBECONFIG={} CANARY_WASMPLUGIN=default/canary-filter",
        api.kubeconfig().display()
    );
    println!("  canaryctl set --weight canary=25");
    println!("  canaryctl status --admin {admin}");
    println!("  curl -s http://{listen}/ -H 'x-user-id: alice'");
    let _ = stop_rx.recv();
    println!(
        "\nstopping the stand-in and Envoy (front pid {}, upstreams pid {})",
        mesh.front().pid(),
        mesh.upstreams().map_or(0, EnvoyProcess::pid)
    );
    drop(api);
    drop(mesh);
    Ok(())
}
