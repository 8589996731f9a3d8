//! canaryctl's writes against a real Envoy (the harness's isolated mesh): a JSON ECDS file, a
//! symlinked one, a rejection by another writer while canaryctl waits for the lock, and a
//! change Envoy rejects. Each asserts Envoy's verdict as canaryctl reports it, the file on
//! disk, and the routing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use canary_control::mesh::ecds::EcdsFile;
use canary_filter::bucket::bucket_of;
use canary_harness::canaryctl::succeeded;
use canary_harness::mesh::{Mesh, Push};
use canary_harness::preamble;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

const CONFIG: &str = r#"{
  "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
  "default": "stable",
  "weights": {"canary": 10},
  "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0}
}"#;

/// Not root's: an owner canaryctl (running as root, as the tests do) must keep.
const NOBODY: u32 = 65534;

/// How long a canaryctl run may take before the test kills it and fails.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

fn mesh() -> Mesh {
    preamble::mesh(CONFIG)
}

/// The cluster the murmur3 contract names for `key` (seed 0) with the canary at `weight` %.
fn contract_cluster(key: &str, weight: f64) -> &'static str {
    if f64::from(bucket_of(key.as_bytes(), 0)) < weight * 100.0 {
        "app-v2"
    } else {
        "app-v1"
    }
}

/// Keys that raising the canary from 10 % to 40 % moves to it, and keys it leaves alone.
fn keys() -> Vec<String> {
    (0..200).map(|i| format!("ecds-{i}")).collect()
}

fn mover() -> String {
    keys()
        .into_iter()
        .find(|key| {
            contract_cluster(key, 10.0) == "app-v1" && contract_cluster(key, 40.0) == "app-v2"
        })
        .unwrap()
}

fn upstream(mesh: &Mesh, key: &str) -> String {
    let reply = mesh.get(&[("x-user-id", key)]).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.upstream().unwrap().to_string()
}

/// Waits (up to a second) until `mover` is routed by `weight`, then checks every key.
fn assert_routed_by(mesh: &Mesh, weight: f64) {
    let mover = mover();
    mesh.wait_for(Duration::from_secs(1), || {
        Ok(upstream(mesh, &mover) == contract_cluster(&mover, weight))
    })
    .unwrap_or_else(|_| panic!("{mover} not routed by weight {weight} within 1 s"));
    for key in keys() {
        assert_eq!(
            upstream(mesh, &key),
            contract_cluster(&key, weight),
            "{key}"
        );
    }
}

fn ecds_counter(mesh: &Mesh, counter: &str) -> u64 {
    mesh.front()
        .stat(&format!(
            "extension_config_discovery.http_filter.canary-filter.{counter}"
        ))
        .unwrap()
}

/// canaryctl with `args` on `ecds`, confirming with the mesh's front Envoy.
fn command(mesh: &Mesh, ecds: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(CANARYCTL);
    command
        .args(args)
        .arg("--ecds")
        .arg(ecds)
        .arg("--admin")
        .arg(mesh.front().admin().to_string())
        .env_remove("CANARY_LOCK_TIMEOUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A canaryctl run the test waits for, bounded; killed by its PID if the test fails first.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        Running {
            child: Some(command.spawn().unwrap()),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the exit (up to [`CHILD_LIMIT`]) and returns the output.
    fn finish(mut self) -> Output {
        let deadline = Instant::now() + CHILD_LIMIT;
        let child = self.child.as_mut().unwrap();
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "canaryctl (pid {}) still running after {CHILD_LIMIT:?}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // It has exited: this only collects the status and the output.
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // By its PID (`Child::kill`), and reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(command: Command) -> Output {
    Running::start(command).finish()
}

/// Defect 2 with Envoy: canaryctl wrote YAML into a `.json` ECDS file, which Envoy rejected.
/// Each write (and the undo) stays JSON, Envoy accepts it, and routing follows.
#[test]
fn a_json_ecds_file_stays_json_and_envoy_accepts_each_write() {
    let mesh = Mesh::isolated_with_ecds_name(CONFIG, "canary-filter.json")
        .unwrap_or_else(|err| panic!("{err}"));
    let ecds = mesh.ecds_file().to_path_buf();
    assert_routed_by(&mesh, 10.0);

    let out = succeeded(&run(command(
        &mesh,
        &ecds,
        &["set", "--weight", "canary=40"],
    )));
    assert!(out.contains("accepted"), "{out}");
    serde_json::from_slice::<serde_json::Value>(&fs::read(&ecds).unwrap()).expect("JSON");
    assert_routed_by(&mesh, 40.0);

    let out = succeeded(&run(command(&mesh, &ecds, &["undo"])));
    assert!(out.contains("accepted"), "{out}");
    serde_json::from_slice::<serde_json::Value>(&fs::read(&ecds).unwrap()).expect("JSON");
    assert_routed_by(&mesh, 10.0);
}

/// A big configuration (300 rules, about 28 KB) in a YAML ECDS file: canaryctl writes it on one
/// line, which Envoy's YAML reader accepts, and routing follows each write.
#[test]
fn a_big_configuration_in_a_yaml_file_is_written_on_one_line_and_envoy_accepts_it() {
    let mut config: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    config["rules"] = (0..300)
        .map(|i| {
            serde_json::json!({
                "name": format!("rule-{i}"),
                "when": {"header": {"name": format!("x-flag-{i}"), "equals": "on"}},
                "version": "canary",
            })
        })
        .collect();
    let mesh = preamble::mesh(&config.to_string());
    let ecds = mesh.ecds_file().to_path_buf();
    assert_routed_by(&mesh, 10.0);

    let out = succeeded(&run(command(
        &mesh,
        &ecds,
        &["set", "--weight", "canary=40"],
    )));
    assert!(out.contains("accepted"), "{out}");
    let doc: serde_json::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(&ecds).unwrap()).expect("YAML");
    let value = doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap();
    assert!(!value.contains('\n'), "not one line");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(value).unwrap()["rules"]
            .as_array()
            .unwrap()
            .len(),
        300
    );
    assert_routed_by(&mesh, 40.0);
}

/// Defect 3 with Envoy: the ECDS path is a symlink into another directory (as a Kubernetes
/// ConfigMap mount has it). `set` writes the target, keeps the link (same text) and re-points
/// it in the watched directory, so Envoy picks the change up and routes by it.
#[test]
fn set_through_a_symlink_writes_its_target_and_envoy_routes_by_it() {
    let mesh = mesh();
    let ecds = mesh.ecds_file().to_path_buf();
    let watched = ecds.parent().unwrap();
    let data = watched.parent().unwrap().join("data");
    fs::create_dir(&data).unwrap();
    let target = data.join("canary-filter.yaml");
    fs::copy(&ecds, &target).unwrap();
    std::os::unix::fs::chown(&target, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let link_text = Path::new("../data/canary-filter.yaml");
    // The link goes in by rename, as a writer must; Envoy loads the (same) file through it.
    let accepted = ecds_counter(&mesh, "update_success");
    let staged_link = watched.join(".staged-link");
    std::os::unix::fs::symlink(link_text, &staged_link).unwrap();
    fs::rename(&staged_link, &ecds).unwrap();
    mesh.wait_for(Duration::from_secs(10), || {
        Ok(ecds_counter(&mesh, "update_success") > accepted)
    })
    .expect("Envoy did not load the file through the new link");
    assert_routed_by(&mesh, 10.0);

    let out = succeeded(&run(command(
        &mesh,
        &ecds,
        &["set", "--weight", "canary=40"],
    )));
    assert!(out.contains("accepted"), "{out}");
    let link = fs::symlink_metadata(&ecds).unwrap();
    assert!(link.file_type().is_symlink(), "{:?}", link.file_type());
    assert_eq!(fs::read_link(&ecds).unwrap(), link_text);
    assert_eq!(
        EcdsFile::new(&target).read().unwrap().config.weights["canary"],
        40.0
    );
    let target_meta = fs::metadata(&target).unwrap();
    assert_eq!(target_meta.mode() & 0o7777, 0o644);
    assert_eq!((target_meta.uid(), target_meta.gid()), (NOBODY, NOBODY));
    assert_routed_by(&mesh, 40.0);
}

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .any(|open| open == path)
}

/// Defect 5: canaryctl read Envoy's counters before it took the lock, so another writer's
/// change that Envoy accepted while canaryctl waited for the lock was taken for canaryctl's
/// own: a change Envoy rejected was reported as accepted. Here the test is the other writer:
/// it holds the lock until canaryctl waits for it, pushes a configuration Envoy accepts, then
/// (in place, which Envoy does not notice) leaves a file whose wasm module does not exist, so
/// that canaryctl's own write is rejected; and lets go. canaryctl must read the counters under
/// the lock, after the other writer's change, and report its own as rejected.
#[test]
fn another_writers_accepted_change_while_canaryctl_waits_for_the_lock_is_not_taken_for_its_own() {
    let mesh = mesh();
    let ecds = mesh.ecds_file().to_path_buf();
    let file = EcdsFile::new(&ecds);
    let held = file.lock().unwrap();
    // As /proc names open files: resolved.
    let lock_path = fs::canonicalize(file.lock_path().unwrap()).unwrap();

    let mut set = command(&mesh, &ecds, &["set", "--weight", "canary=40"]);
    set.args(["--lock-timeout", "60s"]);
    let running = Running::start(set);
    mesh.wait_for(CHILD_LIMIT, || Ok(has_open(running.pid(), &lock_path)))
        .expect("canaryctl never opened the lock file");

    let canary_at_20 = CONFIG.replace(r#""canary": 10"#, r#""canary": 20"#);
    assert_eq!(mesh.push_config(&canary_at_20).unwrap(), Push::Accepted);
    let spoiled = spoiled_in_place(&ecds, unloadable_module);
    drop(held);

    let output = running.finish();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rejected it") && stderr.contains("put back"),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(&ecds).unwrap(), spoiled);
    assert_routed_by(&mesh, 20.0);
}

/// The ECDS document with a wasm module that does not exist: canaryctl reads it (it checks
/// the filter configuration), Envoy cannot load it and rejects it (`update_rejected`).
fn unloadable_module(doc: &mut serde_json::Value) {
    doc["resources"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] =
        "/nonexistent/canary_filter.wasm".into();
}

/// Writes `spoil`'s version of the ECDS file at `ecds` in place, which Envoy does not notice (it
/// reloads on renames into the directory); returns the text written.
fn spoiled_in_place(ecds: &Path, spoil: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut doc: serde_json::Value = serde_yaml_ng::from_slice(&fs::read(ecds).unwrap()).unwrap();
    spoil(&mut doc);
    let spoiled = serde_yaml_ng::to_string(&doc).unwrap();
    fs::write(ecds, &spoiled).unwrap();
    spoiled
}

/// Spoils the mesh's ECDS file in place with `spoil`, runs `canaryctl set`, and asserts that
/// Envoy counted `counter`, that canaryctl said `message` and put the spoiled version back,
/// under the lock it already held (taking it again would wait for itself), and that routing
/// never moved.
fn assert_refused_change_put_back(
    spoil: impl FnOnce(&mut serde_json::Value),
    counter: &str,
    message: &str,
) {
    let mesh = mesh();
    let ecds = mesh.ecds_file().to_path_buf();
    let spoiled = spoiled_in_place(&ecds, spoil);
    let before = ecds_counter(&mesh, counter);

    let output = run(command(&mesh, &ecds, &["set", "--weight", "canary=40"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(message) && stderr.contains("put back"),
        "{stderr}"
    );
    assert!(ecds_counter(&mesh, counter) > before);
    assert_eq!(fs::read_to_string(&ecds).unwrap(), spoiled);
    assert_eq!(
        fs::read_to_string(EcdsFile::new(&ecds).lock_path().unwrap()).unwrap(),
        "",
        "the lock file still names a holder"
    );
    assert_routed_by(&mesh, 10.0);
}

/// A change Envoy rejects (`update_rejected`) is reported and the previous file put back.
#[test]
fn a_change_envoy_rejects_is_reported_and_the_previous_file_put_back() {
    assert_refused_change_put_back(unloadable_module, "update_rejected", "rejected it");
}

/// A file Envoy cannot turn into the resource (`update_failure`, as for YAML in a `.json`
/// file) is reported and the previous file put back, rather than waited for in vain. Here a
/// `version_info` that is not a string.
#[test]
fn a_change_envoy_cannot_read_is_reported_and_the_previous_file_put_back() {
    assert_refused_change_put_back(
        |doc| doc["version_info"] = serde_json::json!([1]),
        "update_failure",
        "could not read it",
    );
}

/// The top-level weight of `canary` in the ECDS file at `ecds`.
fn file_weight(ecds: &Path) -> f64 {
    EcdsFile::new(ecds).read().unwrap().config.weights["canary"]
}

/// Issue 23, defect 5: the history entry was saved before the write and kept when Envoy
/// refused the change and it was put back, so `undo` "restored" the current (refused) file.
/// Here an accepted change (10 → 20), then a change Envoy rejects (put back): `undo` goes back
/// to the configuration before the last accepted change (10 %), Envoy accepts it and routes by
/// it; nothing is left to undo after that.
#[test]
fn after_a_rejected_change_undo_goes_back_before_the_last_accepted_one() {
    let mesh = mesh();
    let ecds = mesh.ecds_file().to_path_buf();
    succeeded(&run(command(
        &mesh,
        &ecds,
        &["set", "--weight", "canary=20"],
    )));
    assert_routed_by(&mesh, 20.0);
    let spoiled = spoiled_in_place(&ecds, unloadable_module);
    let rejected = run(command(&mesh, &ecds, &["set", "--weight", "canary=40"]));
    assert_eq!(rejected.status.code(), Some(1));
    assert_eq!(fs::read_to_string(&ecds).unwrap(), spoiled, "put back");

    let undo = run(command(&mesh, &ecds, &["undo"]));
    let out = String::from_utf8_lossy(&undo.stdout);
    let err = String::from_utf8_lossy(&undo.stderr);
    assert_eq!(undo.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("accepted"), "{out}");
    assert_eq!(file_weight(&ecds), 10.0);
    assert_routed_by(&mesh, 10.0);
    let nothing = run(command(&mesh, &ecds, &["undo"]));
    assert_eq!(nothing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no earlier version"));
}

/// The `.canaryctl-*` temporaries in `dir` (staged versions, links).
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".canaryctl-"))
        .collect()
}

/// Issue 23, defect 5: `set` killed 0–39 ms after its start left a history entry for a change
/// it never made (`undo` then "restored" the current file) and `.canaryctl-*.tmp` files in
/// the watched directory. Here `set` runs 19 times with a new weight each and is killed at
/// 0 to 36 ms (SIGKILL, by its PID); after each, whether its change reached the file is read
/// from the file itself. Then one `set` that finishes: no temporary is left in the watched
/// directory, and `undo` walks back exactly through the weights the file held before each
/// change that stuck, and then has nothing left.
#[test]
fn killed_sets_leave_a_history_that_matches_the_file_and_no_temporaries() {
    let mesh = mesh();
    let ecds = mesh.ecds_file().to_path_buf();
    let watched = ecds.parent().unwrap().to_path_buf();
    // Before each change that stuck, the weight the file held: what `undo` must walk back to.
    let mut expected: Vec<f64> = Vec::new();
    let mut current = file_weight(&ecds);
    // At most 19 changes and the last `set`: the 20 entries the history keeps.
    for run_index in 0..19u32 {
        let weight = f64::from(11 + run_index);
        let running = Running::start(command(
            &mesh,
            &ecds,
            &["set", "--weight", &format!("canary={weight}")],
        ));
        // The point of the test is the moment of the kill: a sleep is what sets it.
        std::thread::sleep(Duration::from_millis(u64::from(run_index) * 2));
        drop(running);
        let now = file_weight(&ecds);
        if now != current {
            assert_eq!(
                now, weight,
                "the file holds the killed run's weight or the one before"
            );
            expected.push(current);
            current = now;
        }
    }
    succeeded(&run(command(
        &mesh,
        &ecds,
        &["set", "--weight", "canary=5"],
    )));
    expected.push(current);
    assert_eq!(temporaries(&watched), Vec::<String>::new());
    println!("weights before each change that stuck: {expected:?}");
    while let Some(before) = expected.pop() {
        succeeded(&run(command(&mesh, &ecds, &["undo"])));
        assert_eq!(
            file_weight(&ecds),
            before,
            "undo goes back one change that stuck"
        );
    }
    let nothing = run(command(&mesh, &ecds, &["undo"]));
    assert_eq!(nothing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no earlier version"));
    assert_eq!(temporaries(&watched), Vec::<String>::new());
}
