//! From the deterministic measure to µs in Envoy: the module's fuel at [`FUEL_PER_US`], each
//! host call at its price measured in Envoy's V8 (`make bench-host-calls`, BENCHMARKS.md).
//! The sources of both are in BENCHMARKS.md ("The deterministic measure").

use crate::Cost;

/// wasmi fuel per µs of CPU in Envoy's V8 on the benchmark machine. Calibrated on the module
/// before the rules' index (BENCHMARKS.md, "Calibration"): with wrk's request, a thousand
/// header rules cost 483,273 fuel more than the typical configuration (three rules) for the
/// same host calls, and 50.5 µs more in Envoy (medians of 4 rounds; 300 region rules: 132,693
/// fuel, 10.3 µs). That is 9,600 and 12,900 fuel per µs, on a machine at a load average of 13
/// to 23; rounded to 10,000, the lower side, which prices fuel higher.
pub const FUEL_PER_US: f64 = 10_000.0;

/// µs per host call in Envoy's V8 (BENCHMARKS.md: "What a host call costs", runs E, F and H;
/// the middle of the runs' values). Calls the table does not name are priced at
/// [`OTHER_CALL_US`].
pub const HOST_CALL_US: [(&str, f64); 9] = [
    // A header present: 0.60 (run H), 0.63 and 0.78 (runs E, F).
    ("proxy_get_header_map_value", 0.65),
    // `:status`: 0.79 and 0.55.
    ("proxy_get_header_map_value(response)", 0.65),
    // The whole map: 0.73 and 0.54 at wrk's 8 pairs, 0.83 with a browser's headers.
    ("proxy_get_header_map_pairs", 0.7),
    // A request-header write: 0.11; a response-header write: 0.26.
    ("proxy_replace_header_map_value", 0.11),
    ("proxy_replace_header_map_value(response)", 0.26),
    ("proxy_remove_header_map_value", 0.11),
    // The clock: 0.26 and 0.02; a histogram sample: 0.19 and -0.06.
    ("proxy_get_current_time_nanoseconds", 0.14),
    ("proxy_record_metric", 0.07),
    ("proxy_increment_metric", 0.07),
];

/// The price of a host call the table does not name.
pub const OTHER_CALL_US: f64 = 0.7;

/// The price of one call of `kind`.
pub fn call_us(kind: &str) -> f64 {
    HOST_CALL_US
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(OTHER_CALL_US, |(_, price)| *price)
}

/// The host calls' part of a cost, in µs.
pub fn host_calls_us(cost: &Cost) -> f64 {
    cost.calls
        .iter()
        .map(|(kind, calls)| call_us(kind) * *calls as f64)
        .sum()
}

/// A cost in µs: fuel at [`FUEL_PER_US`] plus the host calls at their prices.
pub fn estimate_us(cost: &Cost) -> f64 {
    cost.fuel as f64 / FUEL_PER_US + host_calls_us(cost)
}

/// `cost` over `floor`, in µs.
pub fn over_us(cost: &Cost, floor: &Cost) -> f64 {
    estimate_us(cost) - estimate_us(floor)
}
