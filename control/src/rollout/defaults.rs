//! The defaults of `canaryctl rollout`, in one place: the flags take their defaults from here
//! (the CLI reference shows them), as do [`crate::judge::JudgeSettings::default`] and the judge
//! simulation's plan (`make judge-sim`, JUDGE.md).

/// `--steps`: the weights stepped through, as the flag takes them ([`steps`] reads them).
pub const STEPS: &str = "1,5,10,25,50,100";
/// `--interval`: the time between reads.
pub const INTERVAL: &str = "1m";
/// `--settle`: the wait after each push before the step's first read.
pub const SETTLE: &str = "2s";
/// `--max-holds`: holds in a row at one step before the rollout stops, the weight held.
pub const MAX_HOLDS: u32 = 20;
/// `--max-failed-reads`: failed reads in a row before the rollout rolls back.
pub const MAX_FAILED_READS: u32 = 3;
/// `--min-requests`: responses each side needs at a step before it can pass.
pub const MIN_REQUESTS: u64 = 100;
/// `--min-intervals`: intervals a step lasts at least before it can pass.
pub const MIN_INTERVALS: u32 = 3;
/// `--alpha`: the chance, over the rollout, of rolling back a canary within the margins.
pub const ALPHA: f64 = 0.01;
/// `--error-ratio`: the canary's 5xx rate may be this many times stable's.
pub const ERROR_RATIO: f64 = 1.5;
/// `--error-margin`: percentage points on top of the ratio.
pub const ERROR_MARGIN: f64 = 0.1;
/// `--max-error-rate`: the ceiling of the canary's 5xx rate, percent.
pub const MAX_ERROR_RATE: f64 = 5.0;
/// `--latency-margin-ms`: the canary's allowed excess latency, ms.
pub const LATENCY_MARGIN_MS: f64 = 10.0;
/// `--detect`: the regression the last judged step must be able to catch, as a multiple of the
/// allowed rate.
pub const DETECT: f64 = 1.8;
/// `--gate-timeout`: how long a gate has to answer.
pub const GATE_TIMEOUT: &str = "10s";
/// `--gate-max-refusals`: refusals in a row after which a gate has failed.
pub const GATE_MAX_REFUSALS: u32 = 3;
/// `--notify-timeout`: how long one notification may take.
pub const NOTIFY_TIMEOUT: &str = "2s";

/// The weights of [`STEPS`].
pub fn steps() -> Vec<f64> {
    STEPS.split(',').filter_map(|w| w.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    /// The default plan as the guide documents it.
    #[test]
    fn the_default_steps_are_1_5_10_25_50_100() {
        assert_eq!(super::steps(), [1.0, 5.0, 10.0, 25.0, 50.0, 100.0]);
    }
}
