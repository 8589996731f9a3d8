//! Reading a rollout's audit log (`canaryctl rollout --audit`, one JSON event a line).

use std::path::Path;

use crate::Result;

/// The canary's 5xx and all its responses over every judged interval (the `verdict` events).
pub fn canary_errors(audit: &Path) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(audit)?;
    let mut errors = 0;
    let mut answered = 0;
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        if event["event"] == "verdict" {
            let count = |field: &str| {
                event["canary"][field]
                    .as_u64()
                    .ok_or_else(|| format!("a verdict without canary.{field}: {line}"))
            };
            errors += count("errors_5xx")?;
            answered += count("responses")?;
        }
    }
    Ok((errors, answered))
}
