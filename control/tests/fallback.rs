//! The fallback follows the default (issue 23, defect 7), against two real front Envoys on the
//! shipped files: the front reads its routes by file-based RDS beside the ECDS file, and
//! canaryctl keeps the fallback route (taken when the filter fails) on the default version's
//! cluster.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use canary_harness::canaryctl::{run, succeeded};
use canary_harness::http_agent;
use canary_harness::mesh::{Isolated, Layout, Mesh, Push};
use canary_harness::trap::trap_wasm;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

/// canaryctl with `args`, on the mesh's ECDS file, confirmed by both fronts.
fn ctl(mesh: &Mesh, admins: &str, args: &[&str]) -> Command {
    println!("$ canaryctl {}", args.join(" "));
    let mut command = Command::new(CANARYCTL);
    command
        .args(args)
        .args(["--ecds", &mesh.ecds_file().display().to_string()])
        .args(["--admin", admins]);
    command
}

/// The commands `promote` printed as next steps (`  canaryctl …   # why`), as words.
fn printed_steps(promoted: &str) -> Vec<Vec<String>> {
    promoted
        .lines()
        .skip_while(|line| !line.starts_with("to retire"))
        .filter_map(|line| line.trim_start().strip_prefix("canaryctl "))
        .map(|command| {
            let command = command.split('#').next().unwrap();
            command.split_whitespace().map(str::to_string).collect()
        })
        .collect()
}

/// The cluster of the route named `canary-fallback` in the routes beside the ECDS file.
fn fallback_cluster(mesh: &Mesh) -> String {
    let routes = mesh
        .ecds_file()
        .parent()
        .unwrap()
        .join("canary-routes.yaml");
    let doc: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(routes).unwrap()).unwrap();
    let routes = doc["resources"][0]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    let fallback = routes
        .iter()
        .find(|route| route["name"] == "canary-fallback")
        .unwrap();
    fallback["route"]["cluster"].as_str().unwrap().to_string()
}

/// After `promote`, the next steps it prints run as printed on the shipped configuration
/// (before: the printed `retire stable` failed); `set --default` moves the fallback route to
/// the new default's cluster, and both fronts accept the routes. Then a module that traps on
/// every request is swapped in (`FAIL_OPEN`, as shipped): the requests the filter no longer
/// routes go to the promoted version's cluster on both fronts (before: 299 of 300 went to
/// app-v1, the version just retired), none to app-v1.
#[test]
fn after_a_promotion_the_printed_steps_work_and_a_failed_filter_sends_to_the_new_default() {
    let mut mesh = Mesh::start(Layout::isolated(Isolated::default()), None)
        .unwrap_or_else(|err| panic!("{err}"));
    let second_admin = mesh.start_another_front().unwrap();
    let admins = format!("{},{second_admin}", mesh.front().admin());
    let second_listen = SocketAddr::from((
        [127, 0, 0, 1],
        mesh.another_front(0)
            .unwrap()
            .listener_port("ingress")
            .unwrap(),
    ));
    assert_eq!(fallback_cluster(&mesh), "app-v1");

    let promoted = succeeded(&run(&mut ctl(&mesh, &admins, &["promote"])));
    let steps = printed_steps(&promoted);
    assert!(steps.len() >= 2, "{promoted}");
    let mut said = String::new();
    for step in &steps {
        let words: Vec<&str> = step.iter().map(String::as_str).collect();
        let output = run(&mut ctl(&mesh, &admins, &words));
        assert_eq!(
            output.status.code(),
            Some(0),
            "the printed step `canaryctl {}` failed: {}",
            step.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        said += &String::from_utf8_lossy(&output.stdout);
    }
    assert_eq!(steps.last().unwrap()[..2], ["retire", "stable"]);
    assert!(
        said.contains("fallback route \"canary-fallback\" in ")
            && said.contains(": app-v1 → app-v2 (`canary`, the default)"),
        "{said}"
    );
    assert_eq!(said.matches("accepted the routes").count(), 2, "{said}");
    assert_eq!(fallback_cluster(&mesh), "app-v2");
    let config: serde_json::Value =
        serde_json::from_str(&mesh.filter_configuration().unwrap()).unwrap();
    assert_eq!(config["versions"].as_array().unwrap().len(), 1, "{config}");

    // The filter fails: a module that traps on every request, the configuration as it is.
    let mut doc: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(mesh.ecds_file()).unwrap()).unwrap();
    doc["resources"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] =
        trap_wasm().unwrap().display().to_string().into();
    let second = mesh.another_front(0).unwrap();
    let stat = "extension_config_discovery.http_filter.canary-filter.update_success";
    let second_before = second.stat(stat).unwrap();
    assert_eq!(
        mesh.push_ecds_text(&serde_yaml_ng::to_string(&doc).unwrap())
            .unwrap(),
        Push::Accepted
    );
    mesh.wait_for(Duration::from_secs(10), || {
        Ok(second.stat(stat)? > second_before)
    })
    .unwrap();

    let agent = http_agent(Duration::from_secs(10));
    let mut upstreams: std::collections::BTreeMap<String, u32> = Default::default();
    for n in 0..300 {
        let front = if n % 2 == 0 {
            mesh.listen()
        } else {
            second_listen
        };
        let reply = agent
            .get(&format!("http://{front}/"))
            .header("x-user-id", &format!("user-{n}"))
            .call()
            .unwrap();
        let upstream = reply.headers().get("x-upstream").map_or_else(
            || format!("status {}", reply.status()),
            |v| v.to_str().unwrap().to_string(),
        );
        *upstreams.entry(upstream).or_default() += 1;
    }
    println!("300 requests with the filter failing: {upstreams:?}");
    assert_eq!(upstreams.get("app-v1"), None, "{upstreams:?}");
    // A trapping module loses the request it fails on, once per front.
    assert!(
        upstreams.get("app-v2").copied().unwrap_or(0) >= 298,
        "{upstreams:?}"
    );
}
