//! Prints the scaling table in the deterministic measure: per row, the fuel and host calls of
//! a request (the mean over the row's requests), both over the floor's, their µs estimate by
//! the calibration, the configure cost and the VM's memory. `make bench-cost` runs it.
//!
//! Usage: `canary-wasm-cost [FILTER.wasm [FLOOR.wasm]]` (defaults: the release builds under
//! `target/wasm32-wasip1/release/`). `CANARY_COST_ROWS=cookies` plays only the rows whose
//! family contains that text (and the floor, which the others are measured over).

use std::path::PathBuf;
use std::process::ExitCode;

use canary_wasm_cost::calibration::{self, FUEL_PER_US};
use canary_wasm_cost::{measure, read_module, release_module, scenarios, Cost, VmError, WARM_UP};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("canary-wasm-cost: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The host calls of a cost, short: `map 1, get 1, set 2, clock 2, hist 1`.
fn calls_summary(cost: &Cost) -> String {
    let short = |kind: &str| match kind {
        "proxy_get_header_map_pairs" => "map".to_string(),
        "proxy_get_header_map_value" => "get".to_string(),
        "proxy_get_header_map_value(response)" => "get resp".to_string(),
        "proxy_replace_header_map_value" => "set".to_string(),
        "proxy_replace_header_map_value(response)" => "set resp".to_string(),
        "proxy_get_current_time_nanoseconds" => "clock".to_string(),
        "proxy_record_metric" => "hist".to_string(),
        other => other.trim_start_matches("proxy_").to_string(),
    };
    cost.calls
        .iter()
        .filter(|(_, calls)| **calls > 0)
        .map(|(kind, calls)| format!("{} {calls}", short(kind)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--configs DIR`: writes each row's configuration to `DIR/<family>-<row>.json` (spaces and
/// punctuation as `-`), for the same rows in Envoy (`make bench-cost`).
fn write_configurations(dir: &str) -> Result<(), VmError> {
    std::fs::create_dir_all(dir).map_err(|err| VmError(format!("{dir}: {err}")))?;
    for scenario in scenarios::all() {
        let Some(configuration) = scenario.configuration else {
            continue;
        };
        let name: String = format!("{}-{}", scenario.family, scenario.label)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = format!("{dir}/{name}.json");
        std::fs::write(&path, configuration).map_err(|err| VmError(format!("{path}: {err}")))?;
    }
    Ok(())
}

fn run() -> Result<(), VmError> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--configs") {
        let dir = args
            .nth(1)
            .unwrap_or_else(|| "target/cost-configs".to_string());
        return write_configurations(&dir);
    }
    let filter_path = args
        .next()
        .map_or_else(|| release_module("canary_filter.wasm"), PathBuf::from);
    let floor_path = args
        .next()
        .map_or_else(|| release_module("canary_floor.wasm"), PathBuf::from);
    let filter = read_module(&filter_path)?;
    let floor = read_module(&floor_path)?;
    println!(
        "Deterministic measure: {} ({} bytes) in wasmi with fuel metering behind the mock \
         proxy-wasm host; per row the mean of its requests after {WARM_UP} not counted. \
         µs = fuel / {FUEL_PER_US} + host calls at their Envoy prices (BENCHMARKS.md).\n",
        filter_path.display(),
        filter.len()
    );
    println!(
        "| family | row | fuel/request | over the floor | host calls/request | \
         est. µs over the floor | configure fuel | est. configure ms (host calls included) | memory KiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut floor_cost: Option<Cost> = None;
    let only = std::env::var("CANARY_COST_ROWS").unwrap_or_default();
    let rows = scenarios::all().into_iter().enumerate();
    // The first row is the floor, which every other is measured over.
    for (_, scenario) in rows.filter(|(at, row)| *at == 0 || row.family.contains(only.as_str())) {
        let measured = measure(&filter, &floor, &scenario)?;
        let cost = measured.request;
        let floor = floor_cost.get_or_insert_with(|| cost.clone()).clone();
        println!(
            "| {} | {} | {} | {:+} | {} | {:+.2} | {} | {:.2} | {} |",
            scenario.family,
            scenario.label,
            cost.fuel,
            cost.fuel as i64 - floor.fuel as i64,
            calls_summary(&cost),
            calibration::over_us(&cost, &floor),
            measured.configure.fuel,
            calibration::estimate_us(&measured.configure) / 1000.0,
            measured.memory_bytes / 1024,
        );
    }
    Ok(())
}
