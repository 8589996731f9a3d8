//! The Istio target: every canaryctl command on a WasmPlugin, through the real `kubectl`, against
//! the stand-in for the Kubernetes API server (`canary_harness::kube`); optimistic concurrency,
//! history and undo, and each error a user can meet. The end-to-end tests through a real Envoy
//! are in `istio_rollout.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use canary_control::mesh::wasmplugin::HISTORY_ANNOTATION;
use canary_harness::canaryctl::on_kube;
use canary_harness::kube::{KubeApi, Verb};
use serde_json::{json, Value};

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");
const PLUGIN: &str = "default/canary-filter";

fn plugin_config() -> Value {
    json!({
        "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"},
                     {"name": "legacy", "cluster": "app-v0"}],
        "default": "stable",
        "weights": {"canary": 0},
        "sticky": {"keys": [{"header": "x-user-id"}], "seed": 0},
        "rules": [{"name": "testers", "when": {"header": {"name": "x-canary", "equals": "always"}}, "version": "canary"}]
    })
}

fn api() -> KubeApi {
    let api = KubeApi::start().unwrap_or_else(|err| panic!("{err}"));
    api.create_wasmplugin("default", "canary-filter", plugin_config());
    api
}

/// canaryctl as a user runs it, with the stand-in as kubectl's cluster (KUBECONFIG) and none of
/// canaryctl's own environment variables.
fn command(api: &KubeApi, args: &[&str]) -> Command {
    on_kube(CANARYCTL, api, args)
}

fn ctl(api: &KubeApi, args: &[&str]) -> Output {
    let output = command(api, args).output().unwrap();
    println!("$ canaryctl {}", args.join(" "));
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "canaryctl failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit 1 with `message` in the error output; the error output.
fn fails(output: &Output, message: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "exit 1 expected: {stderr}");
    assert!(stderr.contains(message), "{message:?} not in: {stderr}");
    stderr
}

fn stored(api: &KubeApi) -> Value {
    api.plugin_config("default", "canary-filter").unwrap()
}

fn history(api: &KubeApi) -> Vec<Value> {
    let object = api.wasmplugin("default", "canary-filter").unwrap();
    match object["metadata"]["annotations"][HISTORY_ANNOTATION].as_str() {
        Some(text) => serde_json::from_str(text).unwrap(),
        None => Vec::new(),
    }
}

/// The canary's top-level weight in a configuration (kubectl may write 10.0 as 10).
fn weight(config: &Value) -> f64 {
    config["weights"]["canary"].as_f64().unwrap()
}

fn resource_version(api: &KubeApi) -> u64 {
    api.wasmplugin("default", "canary-filter").unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// validate, explain and status read the WasmPlugin; set, rollback, undo, promote, retire
/// change it, each in one replace of the version read, each change as asked and no other.
#[test]
fn every_command_reads_and_changes_the_wasmplugin() {
    let api = api();

    let out = ok(&ctl(&api, &["validate", "--wasmplugin", PLUGIN]));
    assert_eq!(
        out,
        "wasmplugin default/canary-filter: valid (3 versions, default `stable`, 1 rules)\n"
    );

    let out = ok(&ctl(
        &api,
        &["explain", "--wasmplugin", PLUGIN, "-H", "x-canary: always"],
    ));
    assert!(
        out.starts_with("version:  canary (cluster app-v2)\nrule:     testers\n"),
        "{out}"
    );

    // A dry run reads and previews, and writes nothing.
    let out = ok(&ctl(
        &api,
        &[
            "set",
            "--wasmplugin",
            PLUGIN,
            "--weight",
            "canary=10",
            "--dry-run",
        ],
    ));
    assert!(
        out.contains("dry run: wasmplugin default/canary-filter not written"),
        "{out}"
    );
    assert_eq!(api.updates(), 0);

    let version_before = resource_version(&api);
    let out = ok(&ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"],
    ));
    assert!(
        out.contains("wrote wasmplugin default/canary-filter"),
        "{out}"
    );
    assert!(
        out.contains("the API server stored it (resourceVersion"),
        "{out}"
    );
    assert_eq!(weight(&stored(&api)), 10.0);
    assert_eq!(api.updates(), 1);
    assert!(resource_version(&api) > version_before);
    // The history holds the configuration as it was, exactly.
    assert_eq!(history(&api), [plugin_config()]);
    // The rest of the object is kept as read.
    let object = api.wasmplugin("default", "canary-filter").unwrap();
    assert_eq!(
        object["spec"]["url"],
        "oci://registry.example.com/canary-filter:0.1.0"
    );
    assert_eq!(
        object["spec"]["selector"],
        json!({"matchLabels": {"app": "frontend"}})
    );

    let out = ok(&ctl(&api, &["rollback", "--wasmplugin", PLUGIN]));
    assert!(
        out.contains("rolled back: every split sends all keys to `stable`"),
        "{out}"
    );
    assert_eq!(weight(&stored(&api)), 0.0);
    assert_eq!(stored(&api)["rules"][0]["version"], "canary", "pins stay");

    let out = ok(&ctl(&api, &["undo", "--wasmplugin", PLUGIN]));
    assert!(
        out.contains("restored the previous version of wasmplugin default/canary-filter"),
        "{out}"
    );
    assert_eq!(weight(&stored(&api)), 10.0);
    assert_eq!(
        history(&api).len(),
        1,
        "undo takes its entry off the history"
    );

    let out = ok(&ctl(&api, &["promote", "--wasmplugin", PLUGIN, "canary"]));
    assert!(
        out.contains("`canary` takes all traffic of every split."),
        "{out}"
    );
    assert_eq!(weight(&stored(&api)), 100.0);

    ok(&ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--default", "canary"],
    ));
    assert_eq!(stored(&api)["default"], "canary");
    // No split or rule reaches the old default any more: it can be retired.
    let out = ok(&ctl(&api, &["retire", "--wasmplugin", PLUGIN, "stable"]));
    assert!(out.contains("retired `stable`"), "{out}");
    let after_retire = stored(&api);
    let names: Vec<&str> = after_retire["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["canary", "legacy"]);

    // undo goes back one change at a time: `stable` comes back.
    ok(&ctl(&api, &["undo", "--wasmplugin", PLUGIN]));
    assert_eq!(stored(&api)["versions"].as_array().unwrap().len(), 3);
    assert_eq!(api.conflicts(), 0);

    // The environment variable names the WasmPlugin as --wasmplugin does.
    let output = command(&api, &["validate"])
        .env("CANARY_WASMPLUGIN", PLUGIN)
        .output()
        .unwrap();
    assert!(ok(&output).starts_with("wasmplugin default/canary-filter: valid (3 versions"));
}

/// Someone changes the WasmPlugin between canaryctl's read and its write: the API server
/// refuses the replace (409), canaryctl says so and exits 1, and the other change stays.
#[test]
fn a_change_between_read_and_write_is_refused_not_overwritten() {
    let api = api();
    api.change_after_next_get(|config| config["weights"] = json!({"canary": 50}));
    let output = ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"],
    );
    fails(
        &output,
        "wasmplugin default/canary-filter changed since canaryctl read it",
    );
    fails(&output, "nothing was written: re-run");
    assert_eq!(api.conflicts(), 1);
    assert_eq!(api.updates(), 0);
    assert_eq!(weight(&stored(&api)), 50.0);
    assert!(history(&api).is_empty());
    // Re-run, as told: it works on the current version.
    ok(&ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"],
    ));
    assert_eq!(weight(&stored(&api)), 10.0);
    assert_eq!(weight(&history(&api)[0]), 50.0);
}

/// Two `set` runs read the same version (the stand-in holds both reads until both arrived):
/// one is stored, the other refused with the message; the stored one's change is in the
/// final resource and the refused one's is not. Never one silently lost.
#[test]
fn two_concurrent_sets_one_kept_one_refused() {
    let api = api();
    api.hold_gets_until(2);
    let spawn = |args: &[&str]| {
        command(&api, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let weight_run = spawn(&["set", "--wasmplugin", PLUGIN, "--weight", "canary=30"]);
    let seed_run = spawn(&["set", "--wasmplugin", PLUGIN, "--seed", "7"]);
    let weight_run = weight_run.wait_with_output().unwrap();
    let seed_run = seed_run.wait_with_output().unwrap();
    for output in [&weight_run, &seed_run] {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
    }
    let final_config = stored(&api);
    let weight_kept = weight(&final_config) == 30.0;
    let seed_kept = final_config["sticky"]["seed"] == json!(7);
    assert_eq!(
        (weight_run.status.success(), seed_run.status.success()),
        (weight_kept, seed_kept),
        "a run that succeeded has its change in the final resource, a refused one has not: {final_config}"
    );
    assert!(
        weight_kept ^ seed_kept,
        "exactly one stored: {final_config}"
    );
    let refused = if weight_kept { &seed_run } else { &weight_run };
    fails(refused, "changed since canaryctl read it");
    assert_eq!((api.updates(), api.conflicts()), (1, 1));
}

/// Whether a run's change is in a configuration.
type KeptBy = fn(&Value) -> bool;

/// Three `set` runs at once without help: every run that said it wrote has its change in the
/// final resource; every other one exited 1 saying the resource changed since it read it.
#[test]
fn concurrent_sets_never_lose_a_change_silently() {
    let api = api();
    let runs: [(&[&str], KeptBy); 3] = [
        (&["--weight", "canary=30"], |c| weight(c) == 30.0),
        (&["--seed", "7"], |c| c["sticky"]["seed"] == json!(7)),
        (&["--cluster", "canary=app-v3"], |c| {
            c["versions"][1]["cluster"] == "app-v3"
        }),
    ];
    let children: Vec<_> = runs
        .iter()
        .map(|(args, _)| {
            let mut all = vec!["set", "--wasmplugin", PLUGIN];
            all.extend_from_slice(args);
            command(&api, &all)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let final_config = stored(&api);
    let mut stored_runs = 0;
    for ((args, kept), output) in runs.iter().zip(&outputs) {
        if output.status.success() {
            stored_runs += 1;
            assert!(
                kept(&final_config),
                "{args:?} said it wrote, but: {final_config}"
            );
        } else {
            fails(output, "changed since canaryctl read it");
        }
    }
    println!("{stored_runs} of 3 stored, {} refused", 3 - stored_runs);
    assert!(stored_runs >= 1);
    assert_eq!(api.updates(), stored_runs);
    assert_eq!(api.conflicts(), 3 - stored_runs);
}

/// The history is bounded, and undo goes back through it in order, one change at a time.
#[test]
fn undo_walks_back_a_bounded_history() {
    let api = api();
    for weight in 1..=12 {
        ok(&ctl(
            &api,
            &[
                "set",
                "--wasmplugin",
                PLUGIN,
                "--weight",
                &format!("canary={weight}"),
            ],
        ));
    }
    let entries = history(&api);
    assert_eq!(entries.len(), canary_control::mesh::wasmplugin::HISTORY_LEN);
    assert_eq!(weight(entries.last().unwrap()), 11.0);
    assert_eq!(weight(&entries[0]), 2.0);
    ok(&ctl(&api, &["undo", "--wasmplugin", PLUGIN]));
    assert_eq!(weight(&stored(&api)), 11.0);
    ok(&ctl(&api, &["undo", "--wasmplugin", PLUGIN]));
    assert_eq!(weight(&stored(&api)), 10.0);
    assert_eq!(history(&api).len(), 8);
}

/// Refused input and a first undo write nothing.
#[test]
fn invalid_changes_and_an_empty_history_write_nothing() {
    let api = api();
    let output = ctl(&api, &["set", "--wasmplugin", PLUGIN, "--weight", "beta=5"]);
    assert_eq!(output.status.code(), Some(1));
    let output = ctl(&api, &["undo", "--wasmplugin", PLUGIN]);
    fails(
        &output,
        "no earlier version of wasmplugin default/canary-filter",
    );
    // A pluginConfig the filter refuses is refused by every command, naming the field.
    api.create_wasmplugin(
        "default",
        "broken",
        json!({"versions": [{"name": "stable", "cluster": "a"}], "default": "nope"}),
    );
    let output = ctl(
        &api,
        &["set", "--wasmplugin", "default/broken", "--seed", "3"],
    );
    fails(
        &output,
        "spec.pluginConfig: the filter configuration is invalid",
    );
    let output = ctl(&api, &["validate", "--wasmplugin", "default/broken"]);
    fails(
        &output,
        "spec.pluginConfig: the filter configuration is invalid",
    );
    assert_eq!(api.updates(), 0);
}

/// No kubectl on PATH: exit 1, says how to install it, and nothing reaches the server.
#[test]
fn no_kubectl_is_a_clear_error() {
    let api = api();
    let empty = tempfile::tempdir().unwrap();
    let output = command(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"],
    )
    .env("PATH", empty.path())
    .output()
    .unwrap();
    fails(&output, "kubectl not found");
    fails(&output, "apt-get install kubernetes-client");
    assert!(api.requests().is_empty());
    assert_eq!(stored(&api), plugin_config());
}

/// No API server listening: exit 1, says no cluster is reachable.
#[test]
fn no_cluster_is_a_clear_error() {
    let kubeconfig = {
        let api = api();
        std::fs::read_to_string(api.kubeconfig()).unwrap()
        // The stand-in stops here: its port no longer answers.
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    let output = Command::new(CANARYCTL)
        .args(["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"])
        .env("KUBECONFIG", &path)
        .env("KUBECACHEDIR", dir.path().join("cache"))
        .env_remove("CANARY_ADMIN")
        .output()
        .unwrap();
    fails(
        &output,
        "no Kubernetes API server reachable through kubectl",
    );
}

/// 403 on reading, and 403 on writing: exit 1, says permission is missing, nothing written.
#[test]
fn no_permission_is_a_clear_error() {
    let api = api();
    api.forbid(&[Verb::Get]);
    let output = ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"],
    );
    fails(
        &output,
        "cannot read wasmplugin default/canary-filter: no permission (403 Forbidden)",
    );
    api.forbid(&[Verb::Update]);
    let output = ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=10"],
    );
    let stderr = fails(
        &output,
        "cannot write wasmplugin default/canary-filter: no permission (403 Forbidden)",
    );
    assert!(
        stderr.contains("cannot update resource \"wasmplugins\""),
        "{stderr}"
    );
    assert_eq!(api.updates(), 0);
    assert_eq!(stored(&api), plugin_config());
    // Reading is allowed: validate and explain still work.
    ok(&ctl(&api, &["validate", "--wasmplugin", PLUGIN]));
}

/// No such WasmPlugin: exit 1, says so.
#[test]
fn no_such_resource_is_a_clear_error() {
    let api = api();
    let output = ctl(&api, &["rollback", "--wasmplugin", "default/missing"]);
    fails(
        &output,
        "cannot read wasmplugin default/missing: no such resource (404 Not Found)",
    );
    let output = ctl(&api, &["set", "--wasmplugin", "missing", "--seed", "1"]);
    fails(&output, "--wasmplugin: expected NAMESPACE/NAME");
    assert_eq!(api.updates(), 0);
}

/// --kubeconfig and --context go to kubectl; --wasmplugin with --ecds, or with --admin, is
/// refused before anything is read.
#[test]
fn kubectl_flags_pass_through_and_conflicts_are_refused() {
    let api = api();
    let kubeconfig = api.kubeconfig().display().to_string();
    let output = Command::new(CANARYCTL)
        .args([
            "validate",
            "--wasmplugin",
            PLUGIN,
            "--kubeconfig",
            &kubeconfig,
        ])
        .args(["--context", "stand-in"])
        .env_remove("KUBECONFIG")
        .env_remove("CANARY_WASMPLUGIN")
        .env("KUBECACHEDIR", api.cache_dir())
        .output()
        .unwrap();
    assert!(ok(&output).contains("valid"));
    let output = ctl(
        &api,
        &[
            "validate",
            "--wasmplugin",
            PLUGIN,
            "--context",
            "no-such-context",
        ],
    );
    fails(&output, "no-such-context");

    let output = ctl(
        &api,
        &[
            "set",
            "--wasmplugin",
            PLUGIN,
            "--ecds",
            "x.yaml",
            "--seed",
            "1",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let output = command(&api, &["set", "--seed", "1"])
        .env("CANARY_WASMPLUGIN", PLUGIN)
        .env("CANARY_ECDS", "x.yaml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "both set in the environment");
    let output = ctl(
        &api,
        &[
            "set",
            "--wasmplugin",
            PLUGIN,
            "--admin",
            "127.0.0.1:9901",
            "--seed",
            "1",
        ],
    );
    fails(&output, "drop --admin");
    assert!(api.requests().iter().all(|r| !r.starts_with("PUT")));
    assert!(Path::new(&kubeconfig).exists());
}

/// A configuration of about 27 KiB: the testers' rule and a pin for each of 260 users.
fn big_plugin_config() -> Value {
    let mut config = plugin_config();
    let rules = config["rules"].as_array_mut().unwrap();
    for user in 0..260 {
        rules.push(json!({"name": format!("pin-user-{user:04}"),
                          "when": {"header": {"name": "x-user-id", "equals": format!("user-{user:04}")}},
                          "version": "stable"}));
    }
    config
}

/// canaryctl keeps up to 10 earlier configurations in an annotation, but the API server refuses
/// an object whose annotations pass 256 KiB (422, `metadata.annotations: Too long`; the
/// stand-in refuses it as the real one does). With a configuration of about 27 KiB and nine
/// earlier writes of it, the tenth write would pass the limit: canaryctl keeps only the newest
/// configurations that fit, the write is stored, and `undo` still goes back one step.
#[test]
fn a_big_configuration_shortens_the_history_instead_of_being_refused() {
    let api = KubeApi::start().unwrap_or_else(|err| panic!("{err}"));
    let config = big_plugin_config();
    let size = serde_json::to_string(&config).unwrap().len();
    assert!((26_300..29_000).contains(&size), "{size} bytes");
    api.create_wasmplugin("default", "canary-filter", config.clone());
    // Nine earlier writes of it (about 243 KiB: the stored object is within the limit); a
    // tenth entry would take the annotations past 256 KiB.
    let nine = serde_json::to_string(&vec![config.clone(); 9]).unwrap();
    assert!(nine.len() < 256 * 1024);
    assert!(serde_json::to_string(&vec![config; 10]).unwrap().len() > 256 * 1024);
    api.annotate("default", "canary-filter", HISTORY_ANNOTATION, &nine);

    ok(&ctl(
        &api,
        &["set", "--wasmplugin", PLUGIN, "--weight", "canary=5"],
    ));
    assert_eq!((api.updates(), api.refusals()), (1, 0));
    assert_eq!(weight(&stored(&api)), 5.0);
    let kept = history(&api);
    assert!((1..10).contains(&kept.len()), "{} entries kept", kept.len());
    assert_eq!(
        weight(kept.last().unwrap()),
        0.0,
        "the newest entry is the configuration before"
    );

    ok(&ctl(&api, &["undo", "--wasmplugin", PLUGIN]));
    assert_eq!(weight(&stored(&api)), 0.0);
}

/// `kubectl replace` as a user runs it, with the stand-in as its cluster.
fn kubectl_replace(api: &KubeApi, object: &Value) -> Output {
    let mut child = Command::new("kubectl")
        .args(["replace", "-f", "-"])
        .env("KUBECONFIG", api.kubeconfig())
        .env("KUBECACHEDIR", api.cache_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Objects the real API server with Istio's CRD refuses are refused by the stand-in, each
/// broken field named as the API server names it, and the real kubectl prints them: the CRD's
/// structural schema (a sha256 that is not 64 hex digits, a port past 65535, a pull policy
/// that does not exist) and its CEL rules (a URL scheme Istio does not fetch from, a wildcard
/// in the selector, both a selector and targetRefs). A valid change still goes through.
#[test]
fn objects_istios_crd_refuses_are_refused_with_the_api_servers_causes() {
    let api = api();
    let mut object = api.wasmplugin("default", "canary-filter").unwrap();
    let spec = &mut object["spec"];
    spec["sha256"] = json!("ABC");
    spec["url"] = json!("ftp://registry.example.com/canary-filter.wasm");
    spec["selector"] = json!({"matchLabels": {"app": "front*"}});
    spec["targetRefs"] = json!([{"kind": "Service", "name": "checkout"}]);
    spec["match"] = json!([{"mode": "CLIENT", "ports": [{"number": 70000}]}]);
    spec["imagePullPolicy"] = json!("Never");
    let output = kubectl_replace(&api, &object);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for cause in [
        r#"The WasmPlugin "canary-filter" is invalid"#,
        r#"spec.sha256: Invalid value: "ABC": spec.sha256 in body should match '(^$|^[a-f0-9]{64}$)'"#,
        "spec.match[0].ports[0].number: Invalid value: 70000: spec.match[0].ports[0].number in body should be less than or equal to 65535",
        r#"spec.imagePullPolicy: Unsupported value: "Never": supported values: "UNSPECIFIED_POLICY", "IfNotPresent", "Always""#,
        r#"spec.url: Invalid value: "string": url must have schema one of [http, https, file, oci]"#,
        r#"spec.selector.matchLabels[app]: Invalid value: "string": wildcard not allowed in label value match"#,
        r#"spec: Invalid value: "object": only one of targetRefs or selector can be set"#,
    ] {
        assert!(stderr.contains(cause), "{cause:?} not in: {stderr}");
    }
    assert_eq!((api.updates(), api.refusals()), (0, 1));

    // The same object with valid values is stored.
    let mut object = api.wasmplugin("default", "canary-filter").unwrap();
    object["spec"]["sha256"] = json!("ab".repeat(32));
    object["spec"]["imagePullPolicy"] = json!("IfNotPresent");
    let output = kubectl_replace(&api, &object);
    assert!(output.status.success());
    assert_eq!((api.updates(), api.refusals()), (1, 1));
}

/// A rollout through a WasmPlugin whose sidecars fetch the module again on every write (an
/// image tagged `:latest`, no sha256, no pull policy: Istio's `Always`) is warned about before
/// it starts; with `imagePullPolicy: IfNotPresent` it is not.
#[test]
fn a_rollout_warns_when_each_step_would_fetch_the_module_again() {
    let api = api();
    let mut object = api.wasmplugin("default", "canary-filter").unwrap();
    object["spec"]["url"] = json!("oci://registry.example.com/canary-filter:latest");
    assert!(kubectl_replace(&api, &object).status.success());
    let dry_run = [
        "rollout",
        "--wasmplugin",
        PLUGIN,
        "--canary",
        "canary",
        "--admin",
        "127.0.0.1:1",
        "--dry-run",
    ];
    let output = ctl(&api, &dry_run);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: the WasmPlugin pulls oci://registry.example.com/canary-filter:latest with \
             no imagePullPolicy (for an image tagged :latest, Istio's default is Always), and no \
             sha256: every write of it (each step of this rollout) makes every selected sidecar \
             fetch the module again"
        ),
        "{stderr}"
    );
    let mut object = api.wasmplugin("default", "canary-filter").unwrap();
    object["spec"]["imagePullPolicy"] = json!("IfNotPresent");
    assert!(kubectl_replace(&api, &object).status.success());
    let output = ctl(&api, &dry_run);
    assert!(output.status.success());
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("warning:"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
