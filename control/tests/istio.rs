//! The Istio resources: golden output, and the pluginConfig inside passes the filter's own
//! validation. (No Kubernetes here: what can be checked offline is checked.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;

use canary_control::mesh::istio_resources::{
    pod_annotations, render, IstioOptions, BOOTSTRAP_OVERRIDE_KEY,
};
use canary_filter::{CanaryConfig, RoutingPlan};

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");
const GOLDEN: &str = "tests/golden/istio.yaml";

/// The rendered documents, parsed.
fn documents(rendered: &str) -> Vec<serde_json::Value> {
    rendered
        .split("---\n")
        .map(|doc| serde_json::from_str(doc).unwrap())
        .collect()
}

fn shipped_config() -> CanaryConfig {
    let ecds = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/ecds/canary-filter.yaml"),
    )
    .unwrap();
    canary_control::mesh::ecds::parse(&ecds).unwrap().config
}

fn options() -> IstioOptions {
    IstioOptions {
        name: "canary-filter".into(),
        namespace: "shop".into(),
        selector: vec![("app".into(), "frontend".into())],
        url: "oci://registry.example.com/canary-filter:0.1.0".into(),
        sha256: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
        phase: "STATS".into(),
        priority: Some(10),
        host: "checkout".into(),
        version_label: "version".into(),
        label_values: vec![
            ("stable".into(), "v1".into()),
            ("canary".into(), "v2".into()),
        ],
        istio_version: "1.22".parse().unwrap(),
        pull_policy: None,
        pull_secret: None,
    }
}

#[test]
fn rendering_matches_the_golden_file() {
    let yaml = render(&shipped_config(), &options()).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &yaml).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(yaml, want, "rendering changed; UPDATE_GOLDEN=1 cargo test -p canary-control --test istio rewrites {GOLDEN}");
}

#[test]
fn the_resources_fit_together_and_the_plugin_config_is_valid() {
    let config = shipped_config();
    let docs = documents(&render(&config, &options()).unwrap());
    assert_eq!(docs.len(), 5);
    let plugin = &docs[0];
    assert_eq!(plugin["apiVersion"], "extensions.istio.io/v1alpha1");
    assert_eq!(plugin["kind"], "WasmPlugin");
    for (field, want) in [
        ("failStrategy", "FAIL_OPEN"),
        ("type", "HTTP"),
        ("phase", "STATS"),
    ] {
        assert_eq!(plugin["spec"][field], want);
    }
    assert_eq!(plugin["spec"]["selector"]["matchLabels"]["app"], "frontend");
    assert_eq!(plugin["spec"]["match"][0]["mode"], "CLIENT");
    assert_eq!(plugin["spec"]["priority"], 10);
    let plugin_config = serde_json::to_vec(&plugin["spec"]["pluginConfig"]).unwrap();
    let parsed = CanaryConfig::from_json(&plugin_config).unwrap();
    assert_eq!(
        parsed,
        as_istio_routes(&config),
        "the pluginConfig is the configuration, writing the version header only"
    );
    RoutingPlan::try_from(&parsed).unwrap();

    // The native removal of client-sent routing headers, in the same sidecars, before routing.
    let strip = &docs[1];
    assert_eq!(strip["kind"], "EnvoyFilter");
    assert_eq!(
        strip["spec"]["workloadSelector"]["labels"]["app"],
        "frontend"
    );
    let patch = &strip["spec"]["configPatches"][0];
    assert_eq!(patch["match"]["context"], "SIDECAR_OUTBOUND");
    assert_eq!(patch["patch"]["operation"], "MERGE");
    let removed: Vec<&str> = patch["patch"]["value"]["typed_config"]
        ["early_header_mutation_extensions"][0]["typed_config"]["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["remove"].as_str().unwrap())
        .collect();
    assert_eq!(removed, ["x-canary-version-checkout"]);

    let rule = &docs[2];
    assert_eq!(rule["kind"], "DestinationRule");
    let subsets: Vec<(&str, &str)> = rule["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["labels"]["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(subsets, [("stable", "v1"), ("canary", "v2")]);

    let service = &docs[3];
    assert_eq!(service["kind"], "VirtualService");
    let routes = service["spec"]["http"].as_array().unwrap();
    assert_eq!(
        routes[0]["match"][0]["headers"]["x-canary-version-checkout"]["exact"],
        "canary"
    );
    // Only the plugin's own callers are routed on the header: everyone else's sidecar has no
    // such route (istiod leaves it out), so a header they send picks nothing.
    assert_eq!(
        routes[0]["match"][0]["sourceLabels"],
        serde_json::json!({"app": "frontend"})
    );
    assert_eq!(routes[0]["match"][0]["sourceNamespace"], "shop");
    assert_eq!(routes[0]["route"][0]["destination"]["subset"], "canary");
    // The last route has no match and goes to the default version.
    assert!(routes.last().unwrap().get("match").is_none());
    assert_eq!(
        routes.last().unwrap()["route"][0]["destination"]["subset"],
        "stable"
    );
}

/// The shipped configuration is Envoy's (the cluster header only): for Istio the plugin writes
/// the version header instead, which the VirtualService routes on, and no cluster header.
#[test]
fn the_plugin_writes_the_header_istio_routes_on() {
    let envoy = shipped_config();
    assert_eq!(envoy.version_header, "");
    let docs = documents(&render(&envoy, &options()).unwrap());
    let plugin_config = &docs[0]["spec"]["pluginConfig"];
    assert_eq!(plugin_config["version_header"], "x-canary-version-checkout");
    assert_eq!(plugin_config["route_header"], "");
    assert_eq!(
        docs[3]["spec"]["http"][0]["match"][0]["headers"]["x-canary-version-checkout"]["exact"],
        "canary"
    );
    // A configuration naming its own version header keeps it.
    let mut named = shipped_config();
    named.version_header = "x-release".into();
    let docs = documents(&render(&named, &options()).unwrap());
    assert_eq!(
        docs[0]["spec"]["pluginConfig"]["version_header"],
        "x-release"
    );
    assert_eq!(
        docs[3]["spec"]["http"][0]["match"][0]["headers"]["x-release"]["exact"],
        "canary"
    );
}

/// `config` as the plugin for Istio must read: version header written (checkout's own when the
/// configuration names none), cluster header not, only calls to checkout routed.
fn as_istio_routes(config: &CanaryConfig) -> CanaryConfig {
    let mut want = config.clone();
    want.route_header = String::new();
    if want.version_header.is_empty() || want.version_header == "x-canary-version" {
        want.version_header = "x-canary-version-checkout".into();
    }
    want.hosts = Some(vec!["checkout.shop.svc.cluster.local".into()]);
    want
}

/// Two services called by one workload: each plugin routes only calls to its own host, and
/// writes a header only its own VirtualService reads.
#[test]
fn each_service_gets_its_own_hosts_and_header() {
    let mut payments = options();
    payments.name = "payments-canary".into();
    payments.host = "payments".into();
    let mut rendered = Vec::new();
    for options in [options(), payments] {
        let docs = documents(&render(&shipped_config(), &options).unwrap());
        let config = serde_json::to_vec(&docs[0]["spec"]["pluginConfig"]).unwrap();
        let plan = RoutingPlan::from_json(&config).unwrap();
        let header = plan.version_header().unwrap().to_string();
        let matched: Vec<&String> = docs[3]["spec"]["http"][0]["match"][0]["headers"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(matched, [&header]);
        rendered.push((options.host.clone(), plan, header));
    }
    let [(checkout, checkout_plan, checkout_header), (payments, payments_plan, payments_header)] =
        &rendered[..]
    else {
        panic!("two renderings");
    };
    assert_ne!(checkout_header, payments_header);
    for (plan, own, other) in [
        (checkout_plan, checkout, payments),
        (payments_plan, payments, checkout),
    ] {
        for suffix in [
            "",
            ":80",
            ".shop",
            ".shop.svc.cluster.local",
            ".shop.svc.cluster.local:80",
        ] {
            let own = format!("{own}{suffix}");
            let other = format!("{other}{suffix}");
            assert!(plan.routes_authority(Some(own.as_bytes())), "{own}");
            assert!(!plan.routes_authority(Some(other.as_bytes())), "{other}");
        }
        assert!(!plan.routes_authority(Some(b"search")));
    }
}

/// Hosts the configuration lists are kept when they include `--host`, and refused otherwise.
#[test]
fn configured_hosts_must_include_the_routed_host() {
    let mut config = shipped_config();
    config.hosts = Some(vec![
        "checkout.shop.svc.cluster.local".into(),
        "checkout.example.com".into(),
    ]);
    let docs = documents(&render(&config, &options()).unwrap());
    assert_eq!(
        docs[0]["spec"]["pluginConfig"]["hosts"],
        serde_json::json!(["checkout.shop.svc.cluster.local", "checkout.example.com"])
    );
    config.hosts = Some(vec!["payments.shop.svc.cluster.local".into()]);
    let err = render(&config, &options()).unwrap_err().to_string();
    assert!(err.contains("do not include --host \"checkout\""), "{err}");
}

#[test]
fn bad_istio_inputs_are_refused() {
    let mut bad_url = options();
    bad_url.url = "registry.example.com/x".into();
    assert!(render(&shipped_config(), &bad_url)
        .unwrap_err()
        .to_string()
        .contains("--url"));
    let mut bad_label = options();
    bad_label.label_values.push(("beta".into(), "v9".into()));
    assert!(render(&shipped_config(), &bad_label)
        .unwrap_err()
        .to_string()
        .contains("beta"));
}

/// The DestinationRule and VirtualService in the API version the release serves
/// (`networking.istio.io/v1` from 1.22, `v1beta1` before); releases whose proxy lacks the early
/// header mutation the EnvoyFilter needs are refused, naming the first release that has it.
#[test]
fn the_api_versions_follow_the_istio_release() {
    let api_versions = |release: &str| -> Vec<String> {
        let mut options = options();
        options.istio_version = release.parse().unwrap();
        documents(&render(&shipped_config(), &options).unwrap())
            .iter()
            .map(|doc| {
                format!(
                    "{} {}",
                    doc["apiVersion"].as_str().unwrap(),
                    doc["kind"].as_str().unwrap()
                )
            })
            .collect()
    };
    let served = |networking: &str| {
        vec![
            "extensions.istio.io/v1alpha1 WasmPlugin".to_string(),
            "networking.istio.io/v1alpha3 EnvoyFilter".to_string(),
            format!("networking.istio.io/{networking} DestinationRule"),
            format!("networking.istio.io/{networking} VirtualService"),
            "v1 ConfigMap".to_string(),
        ]
    };
    for (release, networking) in [
        ("1.20.5", "v1beta1"),
        ("1.21.1", "v1beta1"),
        ("1.22", "v1"),
        ("1.22.0", "v1"),
        ("1.28.2", "v1"),
    ] {
        assert_eq!(api_versions(release), served(networking), "{release}");
    }
    for (release, first) in [
        ("1.20.4", "1.20.5"),
        ("1.21.0", "1.21.1"),
        ("1.19.10", "1.20.5"),
    ] {
        let mut options = options();
        options.istio_version = release.parse().unwrap();
        let err = render(&shipped_config(), &options).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("Istio {release} is not supported"))
                && err.contains("early header mutation")
                && err.contains(&format!("{first} or later")),
            "{release}: {err}"
        );
    }
    // Through the command line: the default is 1.22, an old release exits 1 with the reason.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = |extra: &[&str]| {
        Command::new(CANARYCTL)
            .args([
                "istio",
                "--selector",
                "app=frontend",
                "--url",
                "oci://r.example/c:1.0.0",
            ])
            .args(["--sha256", &"ab".repeat(32), "--host", "checkout"])
            .args(extra)
            .current_dir(&root)
            .output()
            .unwrap()
    };
    let output = run(&[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs = documents(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(docs[3]["apiVersion"], "networking.istio.io/v1");
    let output = run(&["--istio-version", "1.21.1"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs = documents(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(docs[2]["apiVersion"], "networking.istio.io/v1beta1");
    let output = run(&["--istio-version", "1.21.0"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Istio 1.21.0 is not supported"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing rendered");
    let output = run(&["--istio-version", "1.21"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--istio-version 1.21.1 or later"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The module's pull settings: `IfNotPresent` unless `--pull-policy` says otherwise (no write
/// of the WasmPlugin, a rollout step included, makes the sidecars fetch it again), the pull
/// secret when given; a warning for a mutable tag without `--sha256`, and another for `Always`
/// without it (each write then fetches again).
#[test]
fn the_module_is_pulled_once_and_mutable_tags_are_warned_about() {
    let plugin = |options: &IstioOptions| {
        documents(&render(&shipped_config(), options).unwrap())[0]["spec"].clone()
    };
    let spec = plugin(&options());
    assert_eq!(spec["imagePullPolicy"], "IfNotPresent");
    assert!(spec.get("imagePullSecret").is_none());
    let mut with_secret = options();
    with_secret.pull_policy = Some("Always".parse().unwrap());
    with_secret.pull_secret = Some("registry-credentials".into());
    let spec = plugin(&with_secret);
    assert_eq!(spec["imagePullPolicy"], "Always");
    assert_eq!(spec["imagePullSecret"], "registry-credentials");

    let mut bad_sha = options();
    bad_sha.sha256 = Some("ABC".into());
    let err = render(&shipped_config(), &bad_sha).unwrap_err().to_string();
    assert!(
        err.contains("--sha256 must be") && err.contains("64 lower-case hex"),
        "{err}"
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let stderr = |extra: &[&str]| {
        let output = Command::new(CANARYCTL)
            .args(["istio", "--selector", "app=frontend", "--host", "checkout"])
            .args(extra)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let warnings = |text: &str| text.lines().filter(|l| l.starts_with("warning: ")).count();
    let latest = ["--url", "oci://r.example/canary-filter:latest"];
    let said = stderr(&latest);
    assert_eq!(warnings(&said), 1, "{said}");
    assert!(
        said.contains("warning: the image tag of oci://r.example/canary-filter:latest is mutable"),
        "{said}"
    );
    let said = stderr(&[&latest[..], &["--pull-policy", "Always"]].concat());
    assert_eq!(warnings(&said), 2, "{said}");
    assert!(
        said.contains("each rollout step") && said.contains("allow-all"),
        "{said}"
    );
    let sha = "ab".repeat(32);
    let said = stderr(&[&latest[..], &["--pull-policy", "Always", "--sha256", &sha]].concat());
    assert_eq!(warnings(&said), 0, "{said}");
}

#[test]
fn the_cli_prints_the_resources_and_says_when_kubectl_is_missing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let args = [
        "istio",
        "--selector",
        "app=frontend",
        "--url",
        "oci://r.example/c:1",
        "--host",
        "checkout",
        "--namespace",
        "shop",
    ];
    let output = Command::new(CANARYCTL)
        .args(args)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let kinds: Vec<String> = documents(&text)
        .iter()
        .map(|doc| doc["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "WasmPlugin",
            "EnvoyFilter",
            "DestinationRule",
            "VirtualService",
            "ConfigMap"
        ]
    );
    // The pod annotation the sidecars need goes to stderr: stdout is for `kubectl apply -f -`.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"{"sidecar.istio.io/bootstrapOverride":"canary-filter-stats"}"#)
            && stderr.contains("kubectl -n shop patch deployment"),
        "{stderr}"
    );
    let output = Command::new(CANARYCTL)
        .args(args)
        .arg("--apply")
        .env("PATH", "/nonexistent")
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot run kubectl"));
}

#[test]
fn the_dockerfile_packages_only_the_wasm() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/istio/Dockerfile"),
    )
    .unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        instructions,
        [
            "FROM scratch",
            "COPY target/wasm32-wasip1/release/canary_filter.wasm ./plugin.wasm"
        ]
    );
    // The build context (the repository root) is the module alone: everything ignored but it.
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore"))
            .unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        patterns,
        ["*", "!target/wasm32-wasip1/release/canary_filter.wasm"]
    );
}

/// Values YAML 1.1 (which kubectl reads) would take for booleans, numbers or dates stay
/// strings: the documents are JSON, where every string is quoted.
#[test]
fn ambiguous_strings_stay_strings() {
    let mut config = shipped_config();
    config.rules[0].when.header.as_mut().unwrap().equals = Some("yes".into());
    let mut options = options();
    options.label_values = vec![
        ("stable".into(), "on".into()),
        ("canary".into(), "1:20".into()),
    ];
    let rendered = render(&config, &options).unwrap();
    for quoted in ["\"yes\"", "\"on\"", "\"1:20\""] {
        assert!(
            rendered.contains(quoted),
            "{quoted} unquoted in\n{rendered}"
        );
    }
    let docs = documents(&rendered);
    let plugin_config = serde_json::to_vec(&docs[0]["spec"]["pluginConfig"]).unwrap();
    let parsed = CanaryConfig::from_json(&plugin_config).unwrap();
    assert_eq!(parsed, as_istio_routes(&config));
    assert_eq!(docs[2]["spec"]["subsets"][0]["labels"]["version"], "on");
}

/// Every rendered resource passes the OpenAPI schema of Istio's CRDs, as packaged in npm's
/// `@kubernetes-models/istio` (generated from Istio's published CRDs; `make istio-schemas`
/// installs it into .node/). Also a resource the schema must refuse, so the check can fail.
#[test]
fn the_resources_pass_istios_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = root.join(".node/node_modules/@kubernetes-models/istio");
    assert!(
        modules.is_dir(),
        "{} is missing: run `make istio-schemas` (npm install of @kubernetes-models/istio)",
        modules.display()
    );
    let mut config = shipped_config();
    config.rules[0].when.header.as_mut().unwrap().equals = Some("yes".into());
    let mut with_yes = options();
    with_yes.label_values = vec![("stable".into(), "on".into())];
    let mut minimal = options();
    minimal.sha256 = None;
    minimal.priority = None;
    let mut older = options();
    older.istio_version = "1.21.1".parse().unwrap();
    older.pull_policy = Some("Always".parse().unwrap());
    older.pull_secret = Some("registry-credentials".into());
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, config, options) in [
        ("shipped", shipped_config(), options()),
        ("ambiguous", config, with_yes),
        ("minimal", shipped_config(), minimal),
        ("v1beta1", shipped_config(), older),
    ] {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, render(&config, &options).unwrap()).unwrap();
        files.push(path);
    }
    // A WasmPlugin whose url is a number: the schema refuses it.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "x"}, "spec": {"url": 3}}"#,
    )
    .unwrap();
    let validate = |file: &Path| {
        Command::new("node")
            .arg(root.join("control/tests/istio-schemas.mjs"))
            .arg(file)
            .current_dir(&root)
            .output()
            .expect("node runs (Debian's nodejs; make istio-schemas installs it)")
    };
    for file in &files {
        let output = validate(file);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {stdout}{}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("valid ")).count(),
            5,
            "{stdout}"
        );
    }
    // A ConfigMap whose data holds a number: Kubernetes' schema refuses it.
    let broken_map = dir.path().join("broken-map.json");
    std::fs::write(
        &broken_map,
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": 3}}"#,
    )
    .unwrap();
    let output = validate(&broken_map);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("data/a must be string"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let output = validate(&broken);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("spec/url must be string"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Istio's sidecar `stats_config` as its bootstrap template renders it without annotations
/// (istio/istio `tools/packaging/common/envoy_bootstrap.json` at 86c9f01fd73, the inclusion
/// lists of `pkg/bootstrap/config.go`): its own tags, and a stats matcher that keeps only what
/// it names, `required_prefixes` among them (Istio's are
/// `cluster_manager,listener_manager,server,cluster.xds-grpc,wasm`).
fn istio_stats_config(required_prefixes: &[&str]) -> serde_json::Value {
    let tags = serde_json::json!([
        {"tag_name": "cluster_name", "regex": "^cluster(\\.(.+);)"},
        {"tag_name": "http_conn_manager_prefix", "regex": "^http\\.(((?:[_.[:digit:]\\w]*|[_\\[\\]aAbBcCdDeEfF[:digit:]\\w\\:]*));\\.)"},
        {"tag_name": "thread_name", "regex": "^server(\\.(.+))\\.watchdog"},
        {"tag_name": "tcp_prefix", "regex": "^tcp\\.((.*?)\\.)\\w+?$"},
        {"regex": "_rq(_(\\d{3}))$", "tag_name": "response_code"},
        {"tag_name": "response_code_class", "regex": "_rq(_(\\dxx))$"},
        {"tag_name": "http_conn_manager_listener_prefix", "regex": "^listener(?=\\.).*?\\.http\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)"},
        {"tag_name": "listener_address", "regex": "^listener\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)"},
        {"tag_name": "mongo_prefix", "regex": "^mongo\\.(.+?)\\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"},
        {"regex": "(cache\\.(.+?)\\.)", "tag_name": "cache"},
        {"regex": "(component\\.(.+?)\\.)", "tag_name": "component"},
        {"regex": "(tag\\.(.+?);\\.)", "tag_name": "tag"},
        {"regex": "(wasm_filter\\.(.+?)\\.)", "tag_name": "wasm_filter"},
        {"tag_name": "authz_enforce_result", "regex": "rbac(\\.(allowed|denied))"},
        {"tag_name": "authz_dry_run_action", "regex": "(\\.istio_dry_run_(allow|deny)_)"},
        {"tag_name": "authz_dry_run_result", "regex": "(\\.shadow_(allowed|denied))"}
    ]);
    let mut patterns = vec![serde_json::json!({"prefix": "reporter="})];
    patterns.extend(
        required_prefixes
            .iter()
            .map(|prefix| serde_json::json!({"prefix": prefix})),
    );
    for suffix in [
        "rbac.allowed",
        "rbac.denied",
        "shadow_allowed",
        "shadow_denied",
    ] {
        patterns.push(serde_json::json!({"suffix": suffix}));
    }
    patterns.push(serde_json::json!({"safe_regex": {"regex": "vhost\\..*\\.route\\..*"}}));
    patterns.push(serde_json::json!({"prefix": "component"}));
    patterns.push(serde_json::json!({"prefix": "istio"}));
    serde_json::json!({
        "use_all_default_tags": false,
        "stats_tags": tags,
        "stats_matcher": {"inclusion_list": {"patterns": patterns}},
    })
}

/// The sidecar settings `canaryctl istio` renders, in a real Envoy given Istio's sidecar
/// `stats_config` and the ConfigMap's bootstrap override as `--config-yaml` (what Istio's agent
/// does with `sidecar.istio.io/bootstrapOverride`): the filter's stats are kept and carry
/// their labels, the latency in the filter's buckets. Without the override they carry none;
/// without Istio's `wasm` inclusion prefix they are not kept at all.
#[test]
fn the_sidecar_settings_label_the_filters_stats_under_istios_bootstrap() {
    use canary_harness::mesh::{Isolated, Layout, Mesh};

    let mut options = options();
    options.name = "canary-filter".into();
    assert_eq!(
        serde_json::Value::Object(pod_annotations(&options)),
        serde_json::json!({"sidecar.istio.io/bootstrapOverride": "canary-filter-stats"})
    );
    let docs = documents(&render(&shipped_config(), &options).unwrap());
    let config_map = docs.iter().find(|doc| doc["kind"] == "ConfigMap").unwrap();
    assert_eq!(config_map["metadata"]["name"], "canary-filter-stats");
    let fragment = config_map["data"][BOOTSTRAP_OVERRIDE_KEY]
        .as_str()
        .unwrap()
        .to_string();
    let config = r#"{"service": "checkout",
        "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
        "default": "stable", "weights": {"canary": 50}, "sticky": {"keys": [{"header": "x-user-id"}]}}"#;
    let istio_prefixes = [
        "cluster_manager",
        "listener_manager",
        "server",
        "cluster.xds-grpc",
        "wasm",
    ];
    let start = |prefixes: &[&str], config_yaml: Option<String>| {
        let layout = Layout::isolated(Isolated {
            stats_config: Some(istio_stats_config(prefixes)),
            config_yaml,
            ..Isolated::default()
        });
        Mesh::start(layout, Some(config)).unwrap_or_else(|err| panic!("{err}"))
    };
    let traffic = |mesh: &Mesh| {
        for i in 0..40 {
            let reply = mesh.get(&[("x-user-id", &format!("u{i}"))]).unwrap();
            assert_eq!(reply.status, 200);
        }
    };
    // Histograms reach /stats/prometheus at Envoy's stats flush (1 s in the front bootstrap).
    let wait_for = |mesh: &Mesh, text: &str| {
        mesh.wait_for(std::time::Duration::from_secs(10), || {
            Ok(mesh.prometheus()?.contains(text))
        })
        .unwrap_or_else(|err| panic!("{err}: no {text:?} in\n{}", mesh.prometheus().unwrap()));
    };

    let sidecar = start(&istio_prefixes, Some(fragment));
    traffic(&sidecar);
    wait_for(
        &sidecar,
        r#"canary_request_duration_ms_bucket{canary_service="checkout",canary_version="canary",canary_rule="weights",le="7"}"#,
    );
    let text = sidecar.prometheus().unwrap();
    for series in [
        r#"canary_requests_total{canary_service="checkout",canary_version="canary",canary_rule="weights"}"#,
        r#"canary_requests_total{canary_service="checkout",canary_version="stable",canary_rule="weights"}"#,
        r#"canary_responses_total{canary_service="checkout",canary_version="canary",canary_rule="weights",canary_code_class="2xx"}"#,
        r#"canary_config_hash{canary_service="checkout"}"#,
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    // canaryctl's one parser reads the sidecar's stats as the front's: every request counted
    // (counters reach Envoy on the filter's 0.1 s flush).
    let requests = || -> u64 {
        canary_control::metrics::stats::parse_prometheus(&sidecar.prometheus().unwrap())
            .unwrap()
            .iter()
            .filter(|(key, _)| key.service == "checkout")
            .map(|(_, series)| series.requests)
            .sum()
    };
    sidecar
        .wait_for(std::time::Duration::from_secs(5), || Ok(requests() == 40))
        .unwrap_or_else(|err| panic!("{err}: {} requests counted", requests()));
    drop(sidecar);

    // Istio's bootstrap alone: the stats are there, but the labels are not.
    let untagged = start(&istio_prefixes, None);
    traffic(&untagged);
    wait_for(&untagged, "canary_requests_total");
    let text = untagged.prometheus().unwrap();
    assert!(!text.contains("canary_service=\""), "{text}");
    drop(untagged);

    // Without the `wasm` inclusion prefix the filter's stats are not created at all: the
    // inclusion list is what keeps them.
    let excluded = start(&istio_prefixes[..4], None);
    traffic(&excluded);
    wait_for(&excluded, "envoy_cluster_manager");
    let raw = excluded
        .front()
        .admin_get("/stats?filter=wasmcustom")
        .unwrap();
    assert!(raw.trim().is_empty(), "{raw}");
}
