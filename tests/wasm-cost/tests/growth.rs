//! The deterministic measure's short run in `make test`: the built filter (`make wasm`) and the
//! floor in wasmi, each row's requests played through the mock host, and the growth of a
//! request's cost between rows asserted in fuel and host calls, never in time. The bounds are
//! the targets in µs, turned into fuel by the calibration (`FUEL_PER_US`); where a
//! target is not met, the bound is the cost measured today, so that a change that makes it
//! worse fails (BENCHMARKS.md says which).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use canary_filter::decision::RequestDescription;
use canary_filter::RoutingPlan;
use canary_wasm_cost::calibration::FUEL_PER_US;
use canary_wasm_cost::{filter_module, measure, read_module, release_module, scenarios, Measured};

struct Modules {
    filter: Vec<u8>,
    floor: Vec<u8>,
}

/// The filter `make wasm` built, or the one `CANARY_FILTER_WASM` names (another build, to
/// compare).
fn modules() -> Modules {
    Modules {
        filter: read_module(&filter_module()).unwrap(),
        floor: read_module(&release_module("canary_floor.wasm")).unwrap(),
    }
}

fn row(modules: &Modules, rows: &[scenarios::Scenario], family: &str, label: &str) -> Measured {
    let scenario = rows
        .iter()
        .find(|row| row.family == family && row.label == label)
        .unwrap_or_else(|| panic!("no row {family} {label}"));
    measure(&modules.filter, &modules.floor, scenario).unwrap()
}

/// `grown` costs at most `us` µs of fuel more than `base`, with the same host calls.
fn grows_by_at_most(what: &str, base: &Measured, grown: &Measured, us: f64) {
    let bound = (us * FUEL_PER_US) as u64;
    let growth = grown.request.fuel.saturating_sub(base.request.fuel);
    println!(
        "{what}: {} -> {} fuel (+{growth}, bound +{bound}), host calls {:?}",
        base.request.fuel, grown.request.fuel, grown.request.calls
    );
    assert_eq!(
        grown.request.calls, base.request.calls,
        "{what}: the host calls changed"
    );
    assert!(
        growth <= bound,
        "{what}: +{growth} fuel, more than +{bound}"
    );
}

#[test]
fn rules_versions_and_cookies_cost_what_the_targets_allow() {
    let modules = modules();
    let rows = scenarios::all();
    // Rules: at most 1 µs more from 3 to 1,000, of each kind, none or the last one matching.
    for family in [
        "header rules (a name each)",
        "header rules (one name)",
        "cookie rules",
        "region rules",
    ] {
        for case in ["none matching", "the last matching"] {
            let base = row(&modules, &rows, family, &format!("3, {case}"));
            let grown = row(&modules, &rows, family, &format!("1000, {case}"));
            grows_by_at_most(&format!("{family}, {case}"), &base, &grown, 1.0);
        }
    }
    // Versions: at most 0.5 µs more from 2 to 16.
    let base = row(&modules, &rows, "versions", "2");
    let grown = row(&modules, &rows, "versions", "16");
    grows_by_at_most("versions", &base, &grown, 0.5);
    // Cookies: at most 1 µs more from 1 to 200 cookies.
    let base = row(&modules, &rows, "cookies in the header", "1");
    let grown = row(&modules, &rows, "cookies in the header", "200");
    grows_by_at_most("cookies, 1 to 200", &base, &grown, 1.0);
}

/// The lean configuration: the floor's host calls plus exactly one header read, and at most
/// 0.5 µs of fuel over the floor.
#[test]
fn the_lean_configuration_is_one_header_read_over_the_floor() {
    let modules = modules();
    let rows = scenarios::all();
    let floor = row(&modules, &rows, "reference", "the floor (e)");
    let lean = row(&modules, &rows, "reference", "lean (g)");
    let mut expected = floor.request.calls.clone();
    *expected
        .entry("proxy_get_header_map_value".to_string())
        .or_default() += 1;
    assert_eq!(lean.request.calls, expected);
    let over = lean.request.fuel - floor.request.fuel;
    println!("lean: {over} fuel over the floor");
    assert!(
        (over as f64) <= 0.5 * FUEL_PER_US,
        "{over} fuel over the floor"
    );
}

/// The measure itself: the same on every run, and it sees what the module does (the route
/// header written as the configuration says, the rule's version for a matching request).
#[test]
fn the_measure_is_repeatable_and_plays_real_requests() {
    let modules = modules();
    let rows = scenarios::all();
    let scenario = rows
        .iter()
        .find(|row| {
            row.family == "header rules (one name)" && row.label == "1000, the last matching"
        })
        .unwrap();
    let first = measure(&modules.filter, &modules.floor, scenario).unwrap();
    let again = measure(&modules.filter, &modules.floor, scenario).unwrap();
    assert_eq!(first.request, again.request);
    assert_eq!(first.configure, again.configure);

    let configuration = scenario.configuration.as_deref().unwrap();
    let mut vm =
        canary_wasm_cost::Vm::new(&modules.filter, configuration.as_bytes(), None).unwrap();
    vm.play(&scenario.requests[0]).unwrap();
    let headers = vm.request_headers_after();
    let value = |name: &str| {
        headers
            .iter()
            .find(|(have, _)| have == name)
            .map(|(_, value)| value.as_str())
    };
    // The last rule pins `canary`, whose cluster is app-v2.
    assert_eq!(value("x-canary-cluster"), Some("app-v2"));
    assert_eq!(value("x-canary-version"), Some("canary"));
    assert!(
        vm.log()
            .iter()
            .any(|line| line.contains("configuration accepted: 2 versions, 1000 rules")),
        "{:?}",
        vm.log()
    );
    // Requests that match no rule go by the split: the module in wasmi routes each as the
    // native core decides it.
    let miss = rows
        .iter()
        .find(|row| row.family == "header rules (one name)" && row.label == "1000, none matching")
        .unwrap();
    let plan = RoutingPlan::from_json(configuration.as_bytes()).unwrap();
    for request in &miss.requests {
        assert_routes_as_the_core(&mut vm, &plan, request, &format!("{:?}", request.headers));
    }
}

/// The module's pass over the `cookie` header (wasm SIMD, which the native core does not run)
/// routes every cookie row's requests as the native core decides them: the sticky key in the
/// last of 200 cookies, and the last of 1,000 cookie rules.
#[test]
fn the_cookie_pass_in_the_module_routes_as_the_core_decides() {
    let modules = modules();
    let rows = scenarios::all();
    let cookie_rows = rows.iter().filter(|row| {
        row.family == "cookies in the header"
            || (row.family == "cookie rules" && row.label.starts_with("1000"))
    });
    let mut played = 0;
    for scenario in cookie_rows {
        let configuration = scenario.configuration.as_deref().unwrap();
        let plan = RoutingPlan::from_json(configuration.as_bytes()).unwrap();
        let mut vm =
            canary_wasm_cost::Vm::new(&modules.filter, configuration.as_bytes(), None).unwrap();
        for request in &scenario.requests {
            let context = format!("{} {}", scenario.family, scenario.label);
            assert_routes_as_the_core(&mut vm, &plan, request, &context);
            played += 1;
        }
    }
    assert_eq!(played, 5 * 8);
}

/// Configure: the host calls a configuration makes when it is applied do not grow with its
/// rules (a rule's metrics are defined at its first use, not at configure), and neither do
/// those of a request that matches none. The fuel of configure grows with the rules (each is
/// parsed and compiled); its bound is today's, about 35,000 fuel a rule (BENCHMARKS.md).
#[test]
fn configure_makes_no_host_call_per_rule() {
    let modules = modules();
    let rows = scenarios::all();
    let three = row(
        &modules,
        &rows,
        "header rules (a name each)",
        "3, none matching",
    );
    let thousand = row(
        &modules,
        &rows,
        "header rules (a name each)",
        "1000, none matching",
    );
    println!(
        "configure: 3 rules {} fuel {:?}; 1,000 rules {} fuel {:?}",
        three.configure.fuel,
        three.configure.calls,
        thousand.configure.fuel,
        thousand.configure.calls
    );
    assert_eq!(thousand.configure.calls, three.configure.calls);
    let per_rule = (thousand.configure.fuel - three.configure.fuel) / 997;
    assert!(per_rule <= 36_000, "{per_rule} fuel a rule at configure");
}

/// Plays `request` in the module and asserts the version header it wrote is the one the
/// native core decides for the same headers (`context` names the case in a failure).
fn assert_routes_as_the_core(
    vm: &mut canary_wasm_cost::Vm,
    plan: &RoutingPlan,
    request: &canary_wasm_cost::Request,
    context: &str,
) {
    vm.play(request).unwrap();
    let mut description = RequestDescription::default();
    for (name, value) in &request.headers {
        description = description.header(name, value.clone());
    }
    let decision = plan.decide(&mut description.view(plan));
    let want = &plan.versions()[decision.version].name;
    let headers = vm.request_headers_after();
    let got = headers
        .iter()
        .find(|(name, _)| name == "x-canary-version")
        .map(|(_, value)| value);
    assert_eq!(got, Some(want), "{context}");
}
