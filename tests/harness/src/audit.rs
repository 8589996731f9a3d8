//! Reading a rollout's audit log (`canaryctl rollout --audit`, one JSON event a line).

use std::path::Path;

use serde_json::Value;

use crate::Result;

/// Every event of the audit log at `audit`, in order.
pub fn events(audit: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(audit)?;
    text.lines()
        .map(|line| serde_json::from_str(line).map_err(|err| format!("{err}: {line:?}").into()))
        .collect()
}

/// The `verdict` events among `events`.
pub fn verdicts(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|event| event["event"] == "verdict")
        .collect()
}

/// The check named `name` in a `verdict` event.
pub fn check<'a>(verdict: &'a Value, name: &str) -> Option<&'a Value> {
    verdict["checks"]
        .as_array()?
        .iter()
        .find(|check| check["name"] == name)
}

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
