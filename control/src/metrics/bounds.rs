//! The latency histogram's bucket bounds, defined once: the shipped front Envoy's
//! `histogram_bucket_settings` (`envoy/front.yaml`, compared by a test below), the buckets
//! `canaryctl istio` renders for Istio's sidecars, and the judge simulation's. The filter
//! records whole milliseconds and knows no bounds: Envoy's bootstrap puts the samples in
//! buckets.

/// The upper bounds in ms of the filter's latency histograms (per version and per feature);
/// Envoy adds the `+Inf` bucket.
pub const LATENCY_BOUNDS_MS: [f64; 22] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0,
    500.0, 750.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Both histograms of `envoy/front.yaml` (per version, per feature) have these buckets.
    #[test]
    fn the_shipped_front_has_these_bounds() {
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/front.yaml"),
        )
        .unwrap();
        let front: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let settings = front["stats_config"]["histogram_bucket_settings"]
            .as_sequence()
            .unwrap();
        let prefixes: Vec<&str> = settings
            .iter()
            .map(|s| s["match"]["prefix"].as_str().unwrap())
            .collect();
        assert_eq!(
            prefixes,
            [
                "wasmcustom.canary_request_duration_ms",
                "wasmcustom.canary_feature_request_duration_ms"
            ]
        );
        for setting in settings {
            let shipped: Vec<f64> = setting["buckets"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|b| b.as_f64().unwrap())
                .collect();
            assert_eq!(shipped, LATENCY_BOUNDS_MS);
        }
    }
}
